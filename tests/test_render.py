"""render: pages rendered in a real Chromium, every request of theirs seen by real loopback servers.

One Chromium serves the module (launching one costs about a second). Without Chromium or the
`render` extra the tests skip, saying which is missing; under CI (the `CI` variable set) they fail
instead: CI installs both, so a skip there would hide a broken set-up.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import settings_for_tests
from servers import Server, Servers, respond, running

from crawler.config import Settings
from crawler.core import urls
from crawler.engine import render
from crawler.engine.fetch import Fetcher
from crawler.engine.politeness import Politeness
from crawler.engine.render import Chromium, Ending, Failure, Rendered, Renderer, _PageRun, check_rendering
from crawler.engine.robots_cache import RobotsCache
from crawler.engine.subresources import SUBRESOURCE_CAP, CrawlerSubresources, Refusal
from crawler.errors import RenderError
from crawler.models import Reason

# The browser lives on the module's event loop, so the tests that use it run there too.
ON_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

RENDER_TIMEOUT = 10.0
"""Long enough never to end a test that is not about it, even on a busy machine."""
SHORT_TIMEOUT = 2.0
"""For the tests of pages that never settle or never yield."""
BOUND = 5.0
"""Section 12: a page that never settles costs at most render_timeout plus this."""
TARGET = "https://target.test/landing"
JS = "application/javascript"


def fast(**changes: Any) -> Settings:
    return settings_for_tests.fast(**({"render": "auto", "render_timeout": RENDER_TIMEOUT} | changes))


def browser_or_skip() -> str:
    try:
        return check_rendering(fast())
    except RenderError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs Chromium and the render extra, yet: {exc}")
        pytest.skip(f"cannot render here: {exc}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Chromium]:
    """One Chromium for the module's tests; each render gets a browser context of its own."""
    async with Chromium(browser_or_skip()) as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def hosts() -> AsyncIterator[Servers]:
    """Loopback servers for one test, on the module's event loop (the browser's)."""
    async with running() as factory:
        yield factory


@asynccontextmanager
async def rendering(chromium: Chromium, settings: Settings) -> AsyncIterator[tuple[Renderer, Fetcher]]:
    """A renderer whose pages' requests go through a fresh crawler client, and that client."""
    gates = Politeness(concurrency=settings.concurrency, per_host=settings.per_host, delay=settings.delay)
    async with Fetcher(settings, gates) as client:
        subresources = CrawlerSubresources(client, RobotsCache(client, settings), settings)
        async with Renderer(settings, subresources, chromium=chromium) as renderer:
            yield renderer, client


def page(body: str, head: str = "") -> str:
    return f"<!doctype html><html><head><meta charset=utf-8>{head}</head><body>{body}</body></html>"


def html_of(rendered: Rendered) -> str:
    assert rendered.html is not None, rendered
    return rendered.html


def paths(server: Server) -> list[str]:
    return sorted(hit.path for hit in server.log.hits)


@dataclass(frozen=True, slots=True)
class Listener:
    """A raw TCP server counting connections, and a UDP socket counting datagrams, on one address."""

    tcp: Server
    udp_port: int
    datagrams: list[bytes]


@asynccontextmanager
async def listening(hosts: Servers, address: str) -> AsyncIterator[Listener]:
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)

    datagrams: list[bytes] = []

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
            datagrams.append(data)

    tcp = await hosts.raw(hold, address)
    udp, _ = await asyncio.get_running_loop().create_datagram_endpoint(Receiver, local_addr=(address, 0))
    try:
        yield Listener(tcp, int(udp.get_extra_info("sockname")[1]), datagrams)
    finally:
        udp.close()


@ON_MODULE_LOOP
class TestScripts:
    async def test_script_built_link_is_in_the_rendered_document(
        self, chromium: Chromium, hosts: Servers
    ) -> None:
        """A link a script builds from fetched JSON is in the document, taken as soon as it appears."""
        script = (
            "fetch('/data.json').then((r) => r.json()).then((d) => {"
            " const a = document.createElement('a'); a.href = d.href; a.textContent = 'shoes';"
            " document.body.append(a); document.body.dataset.agent = navigator.userAgent; });"
        )
        site = await hosts.app(
            {
                "/": respond(page("<div id=root></div><script src=/app.js></script>")),
                "/app.js": respond(script, content_type=JS),
                "/data.json": respond(f'{{"href": "{TARGET}"}}', content_type="application/json"),
            }
        )
        settings = fast()
        async with rendering(chromium, settings) as (renderer, client):
            raw = await client.get(site.url("/"), max_bytes=settings.max_bytes)
            rendered = await renderer.render(
                site.url("/"), raw.body, wait_for=[urls.Target.of(TARGET, "page")]
            )
        assert rendered.ending is Ending.LINKS
        html = html_of(rendered)
        assert f'<a href="{TARGET}">shoes</a>' in html
        assert f'data-agent="{settings.user_agent}"' in html
        assert site.log.count("/") == 1  # our client's fetch: the browser never asked for it
        assert (site.log.count("/app.js"), site.log.count("/data.json")) == (1, 1)
        agents = {hit.headers.get("User-Agent") for hit in site.log.hits if hit.headers is not None}
        assert agents == {settings.user_agent}
        assert (rendered.requested, rendered.answered, rendered.refused) == (2, 2, {})

    async def test_always_takes_the_document_once_settled(self, chromium: Chromium, hosts: Servers) -> None:
        """Without targets to wait for, the document is taken after the load event and 500 ms of quiet."""
        script = (
            "setTimeout(() => fetch('/late')"
            ".then(() => document.body.append(document.createElement('hr'))), 200);"
        )
        site = await hosts.app({"/late": respond("ok", content_type="text/plain", delay=0.3)})
        async with rendering(chromium, fast()) as (renderer, _):
            rendered = await renderer.render(site.url("/"), page(f"<p>static</p><script>{script}</script>"))
        assert rendered.ending is Ending.SETTLED
        assert "<hr>" in html_of(rendered)
        assert 1.0 <= rendered.elapsed < RENDER_TIMEOUT  # 0.2 s, then 0.3 s in flight, then 0.5 s of quiet

    async def test_waits_for_a_link_that_matches_not_one_to_the_same_site(
        self, chromium: Chromium, hosts: Servers
    ) -> None:
        """A link to another page of the target's site does not end the wait; the matching one does,
        while a request is still in flight."""
        script = (
            "const add = (href) => { const a = document.createElement('a'); a.href = href;"
            " document.body.append(a); };"
            "add('https://target.test/elsewhere'); fetch('/slow');"
            f"setTimeout(() => add('{TARGET}?utm_source=x'), 400);"
        )
        site = await hosts.app({"/slow": respond("late", content_type="text/plain", delay=30)})
        started = time.monotonic()
        async with rendering(chromium, fast()) as (renderer, _):
            rendered = await renderer.render(
                site.url("/"), page(f"<script>{script}</script>"), wait_for=[urls.Target.of(TARGET, "page")]
            )
        assert rendered.ending is Ending.LINKS
        assert "utm_source" in html_of(rendered)
        assert 0.4 <= rendered.elapsed < RENDER_TIMEOUT
        assert time.monotonic() - started < RENDER_TIMEOUT  # the slow request was abandoned
        assert rendered.refused == {Refusal.CANCELLED: 1}

    async def test_a_page_that_never_settles_is_taken_at_render_timeout(
        self, chromium: Chromium, hosts: Servers
    ) -> None:
        """Requests every 100 ms never leave 500 ms of quiet: the document is taken at render_timeout."""
        site = await hosts.app({"/tick": respond("", content_type="text/plain")})
        script = "setInterval(() => fetch('/tick'), 100); document.body.append(document.createElement('hr'));"
        async with rendering(chromium, fast(render_timeout=SHORT_TIMEOUT)) as (renderer, _):
            rendered = await renderer.render(site.url("/"), page(f"<script>{script}</script>"))
        assert rendered.timed_out
        assert "<hr>" in html_of(rendered)
        assert SHORT_TIMEOUT <= rendered.elapsed < SHORT_TIMEOUT + BOUND
        assert site.log.count("/tick") >= 5

    async def test_a_main_thread_that_never_yields_fails_within_the_bound(
        self, chromium: Chromium, hosts: Servers
    ) -> None:
        """`while (true) {}` leaves no readable document: a failure within render_timeout + 5 s,
        and the next page renders as usual."""
        site = await hosts.app({})
        started = time.monotonic()
        async with rendering(chromium, fast(render_timeout=SHORT_TIMEOUT)) as (renderer, _):
            spinning = await renderer.render(site.url("/"), page("<script>while (true) {}</script>"))
            spent = time.monotonic() - started
            after = await renderer.render(site.url("/next"), page("<p>fine</p>"), wait_for=None)
        assert (spinning.html, spinning.failure) == (None, Failure.UNRESPONSIVE)
        assert spent < SHORT_TIMEOUT + BOUND
        assert after.ending is Ending.SETTLED
        assert "fine" in html_of(after)


class TestSettling:
    async def test_a_wait_cancelled_as_a_request_ends_stays_cancelled(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The wait for quiet ends when the render gives up on it, even when one of the page's
        requests ended just before: with Python 3.11's wait_for the cancel was lost, and a page
        fetching every 100 ms kept the render waiting for ever (a full test run hung on
        `test_a_page_that_never_settles_is_taken_at_render_timeout` once in ten). No browser:
        the order of the wake-ups is set here, one step of the event loop at a time, and the quiet
        asked for is an hour, so only the cancel can end the wait however slow the machine is."""
        monkeypatch.setattr(render, "QUIET", 3600.0)
        unused = CrawlerSubresources.__new__(CrawlerSubresources)  # no request is made
        run = _PageRun("https://a.test/", "", unused)
        run._loaded()
        settling = asyncio.create_task(run._settled())
        await asyncio.sleep(0.05)  # waiting for an hour of quiet, no request in flight
        run._changed.set()  # a request of the page ends: its wake-up is scheduled...
        await asyncio.sleep(0)  # ...and has run when the render gives the wait up
        settling.cancel()
        done, _ = await asyncio.wait({settling}, timeout=5)
        assert done == {settling}
        assert settling.cancelled()


@ON_MODULE_LOOP
class TestRequests:
    async def test_robots_txt_refuses_subresources_and_redirect_hops(
        self, chromium: Chromium, hosts: Servers
    ) -> None:
        """robots.txt for our product token holds for a page's requests, redirect hops included;
        it is fetched once for its origin."""
        other = await hosts.app(
            {
                "/robots.txt": respond(
                    "User-agent: backlink-crawler\nDisallow: /private\n", content_type="text/plain"
                ),
                "/public.js": respond("document.body.dataset.public = 'ran';", content_type=JS),
                "/go.js": respond(status=302, content_type=None, headers={"Location": "/private/hop.js"}),
                "/private/x.js": respond("document.body.dataset.private = 'ran';", content_type=JS),
            },
            host="127.0.0.3",
        )
        scripts = "".join(
            f"<script src={other.url(path)}></script>" for path in ("/private/x.js", "/go.js", "/public.js")
        )
        async with rendering(chromium, fast()) as (renderer, _):
            rendered = await renderer.render("http://127.0.0.2:9/", page(scripts))
        assert paths(other) == ["/go.js", "/public.js", "/robots.txt"]
        html = html_of(rendered)
        assert 'data-public="ran"' in html
        assert "data-private" not in html
        assert rendered.refused == {Reason.ROBOTS_DISALLOWED: 2}

    async def test_images_fonts_styles_media_and_favicons_are_never_requested(
        self, chromium: Chromium, hosts: Servers
    ) -> None:
        """Only scripts, fetch and XHR reach the network; the page still renders."""
        head = (
            "<link rel=stylesheet href=/s.css><link rel=icon href=/favicon.ico>"
            "<link rel=preload as=font href=/f.woff2 crossorigin><link rel=prefetch href=/next.html>"
            "<style>@font-face { font-family: F; src: url(/g.woff2); } p { font-family: F; }"
            " body { background: url(/bg.png); }</style>"
        )
        body = (
            "<p>text</p><img src=/i.png><picture><source srcset=/i.webp><img src=/j.png></picture>"
            "<video src=/v.mp4 autoplay muted></video><audio src=/a.mp3 autoplay></audio>"
            "<iframe src=/frame.html></iframe><object data=/o.swf></object>"
            "<script>fetch('/api').then(() => document.body.append(document.createElement('hr')));"
            "new Image().src = '/pixel.gif'; navigator.sendBeacon('/beacon', 'x');</script>"
        )
        site = await hosts.app({"/api": respond("{}", content_type="application/json")})
        async with rendering(chromium, fast()) as (renderer, _):
            rendered = await renderer.render(site.url("/"), page(body, head))
        assert paths(site) == ["/api", "/robots.txt"]
        assert "<hr>" in html_of(rendered)
        assert rendered.refused[Refusal.DROPPED_TYPE] >= 8

    async def test_at_most_fifty_requests_of_a_page_reach_the_network(
        self, chromium: Chromium, hosts: Servers
    ) -> None:
        """A page making 80 requests gets 50 through; the rest fail inside the page."""
        site = await hosts.app({})
        script = "for (let i = 0; i < 80; i++) fetch('/n/' + i).catch(() => {});"
        async with rendering(chromium, fast()) as (renderer, _):
            rendered = await renderer.render(site.url("/"), page(f"<script>{script}</script>"))
        assert sum(path.startswith("/n/") for path in paths(site)) == SUBRESOURCE_CAP
        assert rendered.requested == SUBRESOURCE_CAP
        assert rendered.refused == {Refusal.CAP: 80 - SUBRESOURCE_CAP}

    async def test_delay_does_not_hold_between_a_pages_own_requests(
        self, chromium: Chromium, hosts: Servers
    ) -> None:
        """Three scripts of the page's own host are fetched back to back, whatever `delay` says."""
        site = await hosts.app({f"/{n}.js": respond("", content_type=JS) for n in "abc"})
        scripts = "".join(f"<script src=/{n}.js></script>" for n in "abc")
        async with rendering(chromium, fast(delay=0.6, render_timeout=5.0)) as (renderer, _):
            await renderer.render(site.url("/"), page(scripts))
        starts = sorted(site.log.starts("/a.js") + site.log.starts("/b.js") + site.log.starts("/c.js"))
        assert len(starts) == 3
        assert starts[-1] - starts[0] < 0.3


@ON_MODULE_LOOP
class TestIsolation:
    async def test_the_browser_reaches_no_host_by_itself(self, chromium: Chromium, hosts: Servers) -> None:
        """Hints, prefetches, speculation rules, frames, beacons, event streams, workers, WebRTC and
        WebTransport aimed at another host never reach it; our client, behind the address guard,
        refuses what is forwarded to it. (A secure page: WebTransport exists only there.)"""
        async with listening(hosts, "127.0.0.4") as other:
            base, port, udp = other.tcp.base, other.tcp.port, other.udp_port
            head = (
                f"<link rel=preconnect href={base}><link rel=dns-prefetch href={base}>"
                f"<link rel=prefetch href={base}/pf><link rel=preload as=script href={base}/pl.js>"
                f"<link rel=icon href={base}/favicon.ico><link rel=manifest href={base}/m.json>"
                '<script type=speculationrules>{"prefetch": [{"source": "list", "urls": ["'
                f'{base}/spec"]}}], "prerender": [{{"source": "list", "urls": ["{base}/pre"]}}]}}</script>'
            )
            script = f"""
                fetch("{base}/api").catch(() => {{}});
                new EventSource("{base}/events");
                navigator.sendBeacon("{base}/beacon", "x");
                const worker = `fetch("{base}/from-worker").catch(() => {{}})`;
                new Worker(URL.createObjectURL(new Blob([worker], {{type: "text/javascript"}})));
                const pc = new RTCPeerConnection({{iceServers: [{{urls: "stun:127.0.0.4:{udp}"}},
                    {{urls: "turn:127.0.0.4:{port}?transport=tcp", username: "u", credential: "c"}}]}});
                pc.createDataChannel("d"); pc.createOffer().then((offer) => pc.setLocalDescription(offer));
                try {{ new WebTransport("https://127.0.0.4:{udp}/"); }} catch (e) {{}}
                window.open("{base}/popup");
                setTimeout(() => {{ location.href = "{base}/away"; }}, 100);
            """
            body = (
                f"<a href={base}/link ping={base}/ping>link</a><img src={base}/i.png>"
                f"<iframe src={base}/frame></iframe><script src={base}/s.js></script>"
                f"<script>{script}</script>"
            )
            async with rendering(chromium, fast(allow_private=False)) as (renderer, _):
                rendered = await renderer.render("https://site.test/", page(body, head))
                await asyncio.sleep(0.5)  # anything still on its way has had time to arrive
        assert (other.tcp.log.count(), len(other.datagrams)) == (0, 0)
        assert rendered.html is not None
        assert rendered.refused[Reason.FORBIDDEN_ADDRESS] >= 2  # the script and the fetch
        assert rendered.refused[Refusal.NAVIGATION] >= 1

    async def test_websockets_never_reach_a_server(self, chromium: Chromium, hosts: Servers) -> None:
        """A WebSocket is closed unopened, even to a host our client may reach."""
        async with listening(hosts, "127.0.0.5") as other:
            script = f"""
                const ws = new WebSocket("ws://127.0.0.5:{other.tcp.port}/socket");
                ws.onclose = () => document.body.append(document.createElement('hr'));
            """
            async with rendering(chromium, fast()) as (renderer, _):
                rendered = await renderer.render("http://127.0.0.2:9/", page(f"<script>{script}</script>"))
        assert other.tcp.log.count() == 0
        assert rendered.refused == {Refusal.WEBSOCKET: 1}
        assert "<hr>" in html_of(rendered)


@ON_MODULE_LOOP
class TestRelaunch:
    async def test_a_fresh_chromium_takes_over_after_restart_after_pages(self, hosts: Servers) -> None:
        """Chromium is relaunched every `restart_after` pages; pages render across the change."""
        settings = fast()
        site = await hosts.app({})
        async with Chromium(browser_or_skip(), restart_after=2) as browser:
            async with rendering(browser, settings) as (renderer, _):
                rendered = await asyncio.gather(
                    *(renderer.render(site.url(f"/{n}"), page(f"<p>page {n}</p>")) for n in range(3))
                )
            assert browser.launches == 2
        assert [f"page {n}" in html_of(r) for n, r in enumerate(rendered)] == [True] * 3


class TestMissing:
    def test_a_missing_browser_names_the_setting_and_the_path(self, tmp_path: Path) -> None:
        """`browser` naming no executable: the error names the setting and the path tried."""
        missing = tmp_path / "no-such-chromium"
        with pytest.raises(RenderError, match="browser") as error:
            check_rendering(fast(browser=missing))
        assert str(missing) in str(error.value)

    def test_no_browser_anywhere_names_what_was_looked_for(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Nothing on the PATH and no Chromium of Playwright's: the names looked for and the setting."""
        pytest.importorskip("playwright")
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "none"))
        with pytest.raises(RenderError) as error:
            check_rendering(fast())
        message = str(error.value)
        assert all(name in message for name in ("chromium, chromium-browser, google-chrome", "`browser`"))
        assert str(tmp_path / "none") in message

    def test_a_missing_extra_names_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without Playwright installed, the error names the `render` extra and how to install it."""
        for name in [name for name in sys.modules if name == "playwright" or name.startswith("playwright.")]:
            monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.setitem(sys.modules, "playwright", None)
        with pytest.raises(RenderError, match=r"pip install 'backlink-crawler\[render\]'"):
            check_rendering(fast())
