"""Contract, section 6: fetching and politeness, measured on the server side of loopback sites."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import zlib
from collections.abc import AsyncIterator

import brotli
import pytest
from aiohttp import web
from contract import TARGET, judge, linked, settings, verify_all
from servers import Servers, respond

import crawler
from crawler import Flag, Status

GAP_TOLERANCE = 0.05


def gaps(starts: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(sorted(starts))]


class TestDefaults:
    def test_settings_defaults(self) -> None:
        """Every setting of section 6 has the contract's default."""
        defaults = crawler.Settings()
        assert defaults.user_agent.startswith(f"backlink-crawler/{crawler.__version__} (+http")
        assert defaults.user_agent.endswith(")")
        assert defaults.product_token == "backlink-crawler"
        assert defaults.index_agent == "Googlebot"
        assert (defaults.concurrency, defaults.per_host, defaults.delay) == (64, 1, 1.0)
        assert (defaults.max_crawl_delay, defaults.timeout, defaults.connect_timeout) == (30.0, 30.0, 10.0)
        assert (defaults.retries, defaults.max_retry_after, defaults.max_redirects) == (2, 120.0, 10)
        assert defaults.max_bytes == 5 * 1024 * 1024
        assert (defaults.obey_robots, defaults.allow_private) == (True, False)

    def test_settings_are_values(self) -> None:
        """Settings are frozen values that reject impossible ones."""
        with pytest.raises(AttributeError):
            crawler.Settings().delay = 3  # type: ignore[misc]
        with pytest.raises(ValueError, match="concurrency"):
            crawler.Settings(concurrency=0)


class TestRequests:
    async def test_default_user_agent_sent(self, servers: Servers) -> None:
        """The default User-Agent is sent on every request, robots.txt included."""
        _, site = await judge(servers, {"/": respond(linked())}, config=settings())
        agents = {hit.path: hit.headers["User-Agent"] for hit in site.log.hits if hit.headers}
        assert agents == {"/robots.txt": crawler.Settings().user_agent, "/": crawler.Settings().user_agent}

    async def test_configured_user_agent_and_headers_sent(self, servers: Servers) -> None:
        """A configured user_agent and extra headers are sent."""
        config = settings(user_agent="AuditBot/2.0", headers={"Accept-Language": "fr"})
        _, site = await judge(servers, {"/": respond(linked())}, config=config)
        (hit,) = [hit for hit in site.log.hits if hit.path == "/"]
        assert hit.headers is not None
        assert (hit.headers["User-Agent"], hit.headers["Accept-Language"]) == ("AuditBot/2.0", "fr")

    @pytest.mark.parametrize(
        ("coding", "compress"),
        [("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress)],
    )
    async def test_compressed_bodies_accepted(self, servers: Servers, coding: str, compress: object) -> None:
        """gzip, deflate and br bodies are decoded, and all three are advertised in Accept-Encoding."""
        assert callable(compress)
        body = compress(linked().encode())
        handler = respond(body, headers={"Content-Encoding": coding})
        result, site = await judge(servers, {"/": handler})
        assert result.status is Status.VERIFIED
        assert result.bytes == len(linked().encode())
        (hit,) = [hit for hit in site.log.hits if hit.path == "/"]
        assert hit.headers is not None
        advertised = {token.split(";")[0].strip() for token in hit.headers["Accept-Encoding"].split(",")}
        assert {"gzip", "deflate", "br"} <= advertised

    async def test_decompression_capped(self, servers: Servers) -> None:
        """max_bytes caps the decoded body of a compressed response (a bomb is cut, flagged truncated)."""
        bomb = gzip.compress(linked().encode() + b"<!--" + b"0" * 20_000_000)
        handler = respond(bomb, headers={"Content-Encoding": "gzip"})
        result, _ = await judge(servers, {"/": handler}, config=settings(max_bytes=100_000))
        assert result.status is Status.VERIFIED
        assert Flag.TRUNCATED in result.flags
        assert result.bytes == 100_000

    async def test_resolve_override(self, servers: Servers) -> None:
        """`resolve` maps a host name to an address, the URL's port and Host header kept."""
        site = await servers.app({"/": respond(linked())}, host="127.0.0.4")
        config = settings(resolve={"blog.example": "127.0.0.4"})
        results = await verify_all([crawler.Claim(site.named("blog.example"), TARGET, id="c")], config)
        assert results["c"].status is Status.VERIFIED
        (hit,) = [hit for hit in site.log.hits if hit.path == "/"]
        assert hit.headers is not None
        assert hit.headers["Host"] == f"blog.example:{site.port}"

    async def test_resolved_private_address_guarded(self, servers: Servers) -> None:
        """A name resolving to a loopback address is refused without allow_private."""
        site = await servers.app({"/": respond(linked())}, host="127.0.0.4")
        config = settings(resolve={"blog.example": "127.0.0.4"}, allow_private=False)
        results = await verify_all([crawler.Claim(site.named("blog.example"), TARGET, id="c")], config)
        assert (results["c"].status, results["c"].reason) == (Status.BLOCKED, "forbidden_address")
        assert site.log.count() == 0

    async def test_obey_robots_off(self, servers: Servers) -> None:
        """With obey_robots false a robots.txt disallow does not block; it still decides indexability."""
        routes = {"/robots.txt": respond("User-agent: *\nDisallow: /\n", content_type="text/plain")}
        config = settings(obey_robots=False)
        result, site = await judge(servers, routes | {"/": respond(linked())}, config=config)
        assert site.log.count("/") == 1
        assert (result.status, result.robots_index_allowed) == (Status.NOT_INDEXABLE, False)


class TestOncePerPage:
    async def test_each_page_fetched_once(self, servers: Servers) -> None:
        """Many claims on few pages fetch each distinct page once, whatever their order and fragments."""
        site = await servers.app({f"/{n}": respond(linked()) for n in range(3)}, host="127.0.0.2")
        claims = [
            crawler.Claim(site.url(f"/{n % 3}") + ("#frag" if n % 2 else ""), f"{TARGET}?{n}", id=str(n))
            for n in range(30)
        ]
        results = await verify_all(claims)
        assert len(results) == 30
        assert [site.log.count(f"/{n}") for n in range(3)] == [1, 1, 1]

    async def test_each_page_once_from_async_source(self, servers: Servers) -> None:
        """Claims of one page arriving slowly from an async iterator still fetch the page once."""
        site = await servers.app({"/": respond(linked(), delay=0.2)}, host="127.0.0.2")

        async def trickle() -> AsyncIterator[crawler.Claim]:
            for n in range(4):
                yield crawler.Claim(site.url("/"), f"{TARGET}?{n}")
                await asyncio.sleep(0.05)

        results = [result async for result in crawler.verify(trickle(), settings())]
        assert len(results) == 4
        assert site.log.count("/") == 1


class TestPoliteness:
    async def test_delay_between_starts_robots_included(self, servers: Servers) -> None:
        """Request starts to one host are `delay` apart, robots.txt counted; one at a time."""
        site = await servers.app({f"/{n}": respond(linked()) for n in range(3)}, host="127.0.0.2")
        await verify_all([crawler.Claim(site.url(f"/{n}"), TARGET) for n in range(3)], settings(delay=0.25))
        assert site.log.count() == 4
        assert min(gaps(site.log.starts())) >= 0.25 - GAP_TOLERANCE
        assert site.log.peak == 1

    async def test_host_limits_span_ports(self, servers: Servers) -> None:
        """The host is the hostname: two ports of one host share its delay, robots.txt included."""
        one = await servers.app({"/a": respond(linked())}, host="127.0.0.2")
        two = await servers.app({"/b": respond(linked())}, host="127.0.0.2")
        await verify_all(
            [crawler.Claim(one.url("/a"), TARGET), crawler.Claim(two.url("/b"), TARGET)], settings(delay=0.2)
        )
        starts = one.log.starts() + two.log.starts()
        assert len(starts) == 4  # a robots.txt per origin, a page per origin
        assert min(gaps(starts)) >= 0.2 - GAP_TOLERANCE

    async def test_per_host_in_flight(self, servers: Servers) -> None:
        """per_host bounds the requests in flight to one host; other hosts proceed in parallel."""
        routes = {f"/{n}": respond(linked(), delay=0.2) for n in range(4)}
        one = await servers.app(routes, host="127.0.0.2")
        two = await servers.app(routes, host="127.0.0.3")
        claims = [crawler.Claim(site.url(f"/{n}"), TARGET) for site in (one, two) for n in range(4)]
        await verify_all(claims, settings(obey_robots=False))
        assert (one.log.peak, two.log.peak) == (1, 1)
        assert min(two.log.starts()) < max(one.log.starts())  # the hosts were served side by side
        await verify_all(claims, settings(obey_robots=False, per_host=2))
        assert (one.log.peak, two.log.peak) == (2, 2)

    async def test_concurrency_total(self, servers: Servers) -> None:
        """concurrency bounds the requests in flight over all hosts."""
        state = {"now": 0, "peak": 0}

        async def slow(request: web.Request) -> web.StreamResponse:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            await asyncio.sleep(0.1)
            state["now"] -= 1
            return web.Response(text=linked(), content_type="text/html")

        sites = [await servers.app({"/": slow}, host=f"127.0.0.{n}") for n in range(2, 7)]
        await verify_all(
            [crawler.Claim(site.url("/"), TARGET) for site in sites],
            settings(concurrency=2, obey_robots=False),
        )
        assert state["peak"] == 2

    async def test_retries_on_5xx(self, servers: Servers) -> None:
        """A 503 is retried (`retries` more attempts); attempts counts the requests made."""
        answers = iter([503, 503, 200])

        async def flaky(request: web.Request) -> web.StreamResponse:
            return web.Response(text=linked(), status=next(answers), content_type="text/html")

        result, site = await judge(servers, {"/": flaky}, config=settings(retries=2))
        assert (result.status, result.attempts, site.log.count("/")) == (Status.VERIFIED, 3, 3)

    async def test_retries_exhausted(self, servers: Servers) -> None:
        """A page still 500 after retries is page_error http_500 with every attempt counted."""
        result, _ = await judge(servers, {"/": respond("x", status=500)}, config=settings(retries=2))
        assert (result.status, result.reason, result.attempts) == (Status.PAGE_ERROR, "http_500", 3)

    async def test_404_not_retried(self, servers: Servers) -> None:
        """A 404 is final: one attempt."""
        result, site = await judge(servers, {"/": respond("x", status=404)}, config=settings(retries=2))
        assert (result.attempts, site.log.count("/")) == (1, 1)

    async def test_timeout_retried(self, servers: Servers) -> None:
        """A timeout is retried before the page is unreachable."""
        result, site = await judge(
            servers, {"/": respond("x", delay=3)}, config=settings(retries=1, timeout=0.2)
        )
        assert (result.status, result.reason, result.attempts) == (Status.UNREACHABLE, "timeout", 2)
        assert site.log.count("/") == 2

    async def test_retry_after_honoured_up_to_cap(self, servers: Servers) -> None:
        """A 429's Retry-After is honoured, capped at max_retry_after."""
        answers = iter([429, 200])

        async def limited(request: web.Request) -> web.StreamResponse:
            status = next(answers)
            headers = {"Retry-After": "3600"} if status == 429 else {}
            return web.Response(text=linked(), status=status, content_type="text/html", headers=headers)

        config = settings(retries=1, max_retry_after=0.4, obey_robots=False)
        result, site = await judge(servers, {"/": limited}, config=config)
        assert result.status is Status.VERIFIED
        (gap,) = gaps(site.log.starts("/"))
        assert 0.4 - GAP_TOLERANCE <= gap < 3
