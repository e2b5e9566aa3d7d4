"""pipeline.verify end to end against real loopback servers: politeness, robots.txt, redirects, grouping."""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from servers import Handler, Server, Servers, redirect, respond
from settings_for_tests import fast

import crawler
from crawler.config import Settings
from crawler.engine import robots_cache
from crawler.engine.fetch import Fetcher
from crawler.engine.pipeline import RESULTS_AHEAD, verify
from crawler.engine.politeness import Politeness
from crawler.engine.robots_cache import RobotsCache
from crawler.models import Claim, Flag, InvalidClaim, Redirect, Result, Status

# Server-side gaps may come out a little short of the client's spacing: the first request to
# a host also pays a TCP handshake, which delays its arrival more than a kept-alive one.
GAP_TOLERANCE = 0.05
TARGET = "https://target.example/landing"
LINKED = f'<html><body><main><p>text</p><a href="{TARGET}">anchor</a></main></body></html>'
ALLOW_ALL = "User-agent: *\nAllow: /\n"


def robots_txt(text: str = ALLOW_ALL, status: int = 200, delay: float = 0.0) -> Handler:
    return respond(text, status=status, content_type="text/plain", delay=delay)


async def site(
    servers: Servers, host: str, routes: Mapping[str, Handler], robots: Handler | None = None
) -> Server:
    """A server on `host` with `routes` and a robots.txt (allow all unless given)."""
    return await servers.app({"/robots.txt": robots or robots_txt(), **routes}, host)


async def run(claims: Iterable[Claim | InvalidClaim], settings: Settings) -> list[Result]:
    return [result async for result in verify(claims, settings)]


async def one(source: str, settings: Settings) -> Result:
    (result,) = await run([Claim(source, TARGET)], settings)
    return result


def gaps(starts: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(sorted(starts))]


class TestPoliteness:
    async def test_per_host_in_flight_is_bounded(self, servers: Servers) -> None:
        """With per_host=2 the server never sees more than two requests at once."""
        host = await site(servers, "127.0.0.2", {"/p/{n}": respond(LINKED, delay=0.1)})
        claims = [Claim(host.url(f"/p/{n}"), TARGET) for n in range(10)]
        results = await run(claims, fast(per_host=2))
        assert {r.status for r in results} == {Status.VERIFIED}
        assert host.log.peak == 2

    async def test_request_starts_are_spaced_by_delay(self, servers: Servers) -> None:
        """Starts to one host, robots.txt included, are at least `delay` apart on the server's clock."""
        host = await site(servers, "127.0.0.2", {"/p/{n}": respond(LINKED)})
        claims = [Claim(host.url(f"/p/{n}"), TARGET) for n in range(5)]
        await run(claims, fast(per_host=2, delay=0.2))
        assert host.log.count() == 6
        assert min(gaps(host.log.starts())) >= 0.2 - GAP_TOLERANCE

    async def test_crawl_delay_is_honoured(self, servers: Servers) -> None:
        """A Crawl-delay for our token spaces the page requests by that much."""
        robots = robots_txt("User-agent: backlink-crawler\nCrawl-delay: 0.4\nAllow: /\n")
        host = await site(servers, "127.0.0.2", {"/p/{n}": respond(LINKED)}, robots)
        results = await run([Claim(host.url(f"/p/{n}"), TARGET) for n in range(3)], fast())
        assert min(gaps(host.log.starts())) >= 0.4 - GAP_TOLERANCE
        assert all(Flag.CRAWL_DELAY_CAPPED not in r.flags for r in results)

    async def test_crawl_delay_is_capped(self, servers: Servers) -> None:
        """A Crawl-delay above max_crawl_delay waits max_crawl_delay and flags the results."""
        robots = robots_txt("User-agent: *\nCrawl-delay: 3600\n")
        host = await site(servers, "127.0.0.2", {"/p/{n}": respond(LINKED)}, robots)
        results = await run([Claim(host.url(f"/p/{n}"), TARGET) for n in range(3)], fast(max_crawl_delay=0.3))
        page_gaps = gaps(host.log.starts())
        assert min(page_gaps) >= 0.3 - GAP_TOLERANCE
        assert max(page_gaps) < 1.0
        assert all(Flag.CRAWL_DELAY_CAPPED in r.flags for r in results)

    async def test_retry_after_pauses_the_host(self, servers: Servers) -> None:
        """After a 429 with Retry-After: 1, no request reaches that host for a second."""
        first = True

        async def page(request: web.Request) -> web.Response:
            nonlocal first
            if first:
                first = False
                return web.Response(status=429, headers={"Retry-After": "1"})
            return web.Response(text=LINKED, content_type="text/html")

        host = await site(servers, "127.0.0.2", {"/p/{n}": page})
        claims = [Claim(host.url(f"/p/{n}"), TARGET) for n in range(3)]
        results = await run(claims, fast(max_retry_after=2.0))  # room above the server's Retry-After: 1
        assert {r.status for r in results} == {Status.VERIFIED}
        limited = host.log.starts("/p/0") + host.log.starts("/p/1") + host.log.starts("/p/2")
        throttled_at = min(limited)
        after = [t for t in limited if t > throttled_at]
        assert len(after) == 3
        assert min(after) - throttled_at >= 1.0 - GAP_TOLERANCE

    async def test_slow_host_does_not_hold_up_fast_hosts(self, servers: Servers) -> None:
        """Twenty fast hosts are all verified while a host answering in 2 s still has its first page out.

        Three global places and three pages of the slow host: were its waiting pages holding
        places, the fast hosts would have to wait for the slow answers.
        """
        slow = await site(servers, "127.0.0.40", {"/p/{n}": respond(LINKED, delay=2.0)})
        fast_sites = [await site(servers, f"127.0.0.{50 + i}", {"/": respond(LINKED)}) for i in range(20)]
        claims = [Claim(slow.url(f"/p/{n}"), TARGET) for n in range(3)]
        claims += [Claim(s.url("/"), TARGET) for s in fast_sites]
        started = time.monotonic()
        seen: list[str] = []
        async with aclosing(verify(claims, fast(concurrency=3, timeout=5.0))) as results:
            async for result in results:
                seen.append(result.source_url)
                if len(seen) == len(fast_sites):
                    break
        assert time.monotonic() - started < 1.9  # the slow host's first answer comes at 2 s
        assert sorted(seen) == sorted(s.url("/") for s in fast_sites)
        assert slow.log.count("/p/0") + slow.log.count("/p/1") + slow.log.count("/p/2") == 1


class TestRobots:
    async def test_disallowed_page_is_never_requested(self, servers: Servers) -> None:
        """A Disallow rule blocks the page before any request; an allowed page is fetched."""
        robots = robots_txt("User-agent: *\nDisallow: /private\n")
        host = await site(
            servers, "127.0.0.2", {"/private": respond(LINKED), "/public": respond(LINKED)}, robots
        )
        blocked = await one(host.url("/private"), fast())
        allowed = await one(host.url("/public"), fast())
        assert (blocked.status, blocked.reason, blocked.robots_crawler_allowed) == (
            Status.BLOCKED,
            "robots_disallowed",
            False,
        )
        assert allowed.status is Status.VERIFIED
        assert host.log.count("/private") == 0

    @pytest.mark.parametrize("status", [404, 403, 410])
    async def test_client_error_allows_all(self, servers: Servers, status: int) -> None:
        """robots.txt answering 4xx (not 429) means no restrictions."""
        host = await site(servers, "127.0.0.2", {"/": respond(LINKED)}, robots_txt("Disallow: /", status))
        result = await one(host.url("/"), fast())
        assert (result.status, result.robots_crawler_allowed) == (Status.VERIFIED, True)

    @pytest.mark.parametrize("status", [429, 500, 503])
    async def test_server_error_blocks_after_retries(self, servers: Servers, status: int) -> None:
        """robots.txt answering 5xx or 429 on every attempt means complete disallow: robots_unavailable."""
        host = await site(servers, "127.0.0.2", {"/": respond(LINKED)}, robots_txt("", status))
        result = await one(host.url("/"), fast(retries=2))
        assert (result.status, result.reason) == (Status.BLOCKED, "robots_unavailable")
        assert (host.log.count("/robots.txt"), host.log.count("/")) == (3, 0)

    async def test_timeout_blocks(self, servers: Servers) -> None:
        """robots.txt that never answers within the timeout means complete disallow."""
        host = await site(servers, "127.0.0.2", {"/": respond(LINKED)}, robots_txt(delay=5))
        result = await one(host.url("/"), fast(timeout=0.3, retries=0))
        assert (result.status, result.reason) == (Status.BLOCKED, "robots_unavailable")
        assert host.log.count("/") == 0

    async def test_redirect_chain_applies_rules_to_the_original_origin(self, servers: Servers) -> None:
        """robots.txt redirected twice, to another host, still governs the first origin."""
        other = await site(servers, "127.0.0.3", {"/rules.txt": robots_txt("User-agent: *\nDisallow: /no\n")})
        host = await site(
            servers,
            "127.0.0.2",
            {"/no": respond(LINKED), "/hop": redirect(other.url("/rules.txt"), 302)},
            redirect("/hop"),
        )
        result = await one(host.url("/no"), fast())
        assert (result.status, result.reason) == (Status.BLOCKED, "robots_disallowed")
        assert (other.log.count("/rules.txt"), host.log.count("/no")) == (1, 0)

    async def test_too_many_robots_redirects_allow_all(self, servers: Servers) -> None:
        """Past five robots.txt redirects, robots.txt counts as unavailable (4xx): allow all."""
        routes: dict[str, Handler] = {f"/r{n}": redirect(f"/r{n + 1}") for n in range(10)}
        host = await site(servers, "127.0.0.2", {"/": respond(LINKED), **routes}, redirect("/r0"))
        result = await one(host.url("/"), fast())
        assert result.status is Status.VERIFIED
        assert host.log.count("/r5") == 0

    async def test_oversized_file_is_read_to_the_cap(self, servers: Servers) -> None:
        """Rules past max_robots_bytes are not seen."""
        text = "User-agent: *\nDisallow: /early\n#" + "x" * 2000 + "\nDisallow: /late\n"
        routes = {"/early": respond(LINKED), "/late": respond(LINKED)}
        host = await site(servers, "127.0.0.2", routes, robots_txt(text))
        results = await run(
            [Claim(host.url(p), TARGET) for p in ("/early", "/late")], fast(max_robots_bytes=1000)
        )
        by_source = {r.source_url: r.status for r in results}
        assert by_source == {host.url("/early"): Status.BLOCKED, host.url("/late"): Status.VERIFIED}

    async def test_byte_order_mark_is_ignored(self, servers: Servers) -> None:
        """A UTF-8 BOM before the first line does not hide the first group."""
        host = await site(
            servers, "127.0.0.2", {"/x": respond(LINKED)}, robots_txt("\ufeffUser-agent: *\nDisallow: /x\n")
        )
        result = await one(host.url("/x"), fast())
        assert (result.status, result.reason) == (Status.BLOCKED, "robots_disallowed")

    async def test_substring_group_does_not_apply(self, servers: Servers) -> None:
        """A group for `crawler` is not a group for `backlink-crawler`: the `*` group applies."""
        text = "User-agent: crawler\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
        host = await site(servers, "127.0.0.2", {"/": respond(LINKED)}, robots_txt(text))
        assert (await one(host.url("/"), fast())).status is Status.VERIFIED

    async def test_index_agent_disallowed(self, servers: Servers) -> None:
        """We may fetch, but robots.txt keeps the index agent out: not_indexable."""
        text = "User-agent: Googlebot\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
        host = await site(servers, "127.0.0.2", {"/": respond(LINKED)}, robots_txt(text))
        result = await one(host.url("/"), fast())
        assert (result.status, result.robots_crawler_allowed, result.robots_index_allowed) == (
            Status.NOT_INDEXABLE,
            True,
            False,
        )

    async def test_obey_robots_false_fetches_anyway(self, servers: Servers) -> None:
        """With obey_robots off the page is fetched; robots.txt still says what it would allow."""
        host = await site(
            servers, "127.0.0.2", {"/": respond(LINKED)}, robots_txt("User-agent: *\nDisallow: /\n")
        )
        result = await one(host.url("/"), fast(obey_robots=False))
        assert (result.http_status, result.robots_crawler_allowed, result.robots_index_allowed) == (
            200,
            False,
            False,
        )
        assert result.status is Status.NOT_INDEXABLE

    async def test_disallowed_hop_blocks_the_chain(self, servers: Servers) -> None:
        """A redirect into a path robots.txt forbids stops there; the hop so far is recorded."""
        other = await site(
            servers,
            "127.0.0.3",
            {"/secret": respond(LINKED)},
            robots_txt("User-agent: *\nDisallow: /secret\n"),
        )
        host = await site(servers, "127.0.0.2", {"/start": redirect(other.url("/secret"))})
        result = await one(host.url("/start"), fast())
        assert (result.status, result.reason, result.final_url) == (
            Status.BLOCKED,
            "robots_disallowed",
            other.url("/secret"),
        )
        assert result.redirects == (Redirect(host.url("/start"), 301),)
        assert other.log.count("/secret") == 0

    async def test_robots_fetched_once_per_origin(self, servers: Servers) -> None:
        """Concurrent pages of one origin share one robots.txt request."""
        host = await site(servers, "127.0.0.2", {"/p/{n}": respond(LINKED)})
        await run([Claim(host.url(f"/p/{n}"), TARGET) for n in range(8)], fast(per_host=4))
        assert host.log.count("/robots.txt") == 1

    async def test_an_answer_older_than_a_day_is_fetched_again(
        self, servers: Servers, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An origin's robots.txt answer is kept 24 h at most (`ROBOTS_TTL`, here cut to 50 ms once
        the answer is in): a later page of a long run asks again."""
        host = await site(servers, "127.0.0.2", {})
        settings = fast()
        gates = Politeness(concurrency=settings.concurrency, per_host=settings.per_host, delay=0.0)
        async with Fetcher(settings, gates) as client:
            cache = RobotsCache(client, settings)
            await cache.get(host.url(""))
            await cache.get(host.url(""))
            assert host.log.count("/robots.txt") == 1
            monkeypatch.setattr(robots_cache, "ROBOTS_TTL", 0.05)
            await asyncio.sleep(0.1)
            await cache.get(host.url(""))
            assert host.log.count("/robots.txt") == 2

    async def test_no_response_is_unreachable_not_blocked(self, servers: Servers) -> None:
        """DNS failure and connection refused on robots.txt make the page unreachable."""
        with_dns = await one("http://no-such-host.invalid/page", fast())
        refused = await one("http://127.0.0.2:1/page", fast(retries=0))
        assert (with_dns.status, with_dns.reason) == (Status.UNREACHABLE, "dns_error")
        assert (refused.status, refused.reason) == (Status.UNREACHABLE, "connection_error")


class TestRedirects:
    async def test_chain_is_followed_and_recorded(self, servers: Servers) -> None:
        """Each redirect response is recorded in order; the verdict is on the final page."""
        host = await site(
            servers, "127.0.0.2", {"/a": redirect("/b"), "/b": redirect("/c", 302), "/c": respond(LINKED)}
        )
        result = await one(host.url("/a"), fast())
        assert result.status is Status.VERIFIED
        assert result.redirects == (Redirect(host.url("/a"), 301), Redirect(host.url("/b"), 302))
        assert (result.final_url, result.http_status) == (host.url("/c"), 200)
        assert Flag.SOURCE_REDIRECTED in result.flags

    async def test_loop_is_too_many_redirects(self, servers: Servers) -> None:
        """A redirect loop stops at the first repeat with too_many_redirects, hops recorded."""
        host = await site(servers, "127.0.0.2", {"/a": redirect("/b"), "/b": redirect("/a")})
        result = await one(host.url("/a"), fast())
        assert (result.status, result.reason) == (Status.PAGE_ERROR, "too_many_redirects")
        assert result.redirects == (Redirect(host.url("/a"), 301), Redirect(host.url("/b"), 301))
        assert host.log.count("/a") == 2

    async def test_more_than_max_redirects(self, servers: Servers) -> None:
        """A chain longer than max_redirects stops after max_redirects hops."""
        routes: dict[str, Handler] = {f"/r{n}": redirect(f"/r{n + 1}") for n in range(6)}
        host = await site(servers, "127.0.0.2", routes)
        result = await one(host.url("/r0"), fast(max_redirects=3))
        assert (result.status, result.reason, len(result.redirects)) == (
            Status.PAGE_ERROR,
            "too_many_redirects",
            3,
        )
        assert host.log.count("/r4") == 0

    async def test_cross_host_redirect(self, servers: Servers) -> None:
        """A redirect to another host is followed there (its own robots.txt) and flagged."""
        other = await site(servers, "127.0.0.3", {"/": respond(LINKED)})
        host = await site(servers, "127.0.0.2", {"/": redirect(other.named("other.test"))})
        result = await one(
            host.named("site.test"), fast(resolve={"site.test": "127.0.0.2", "other.test": "127.0.0.3"})
        )
        assert result.status is Status.VERIFIED
        assert Flag.CROSS_HOST_REDIRECT in result.flags
        assert other.log.count("/robots.txt") == 1

    async def test_meta_refresh_is_a_hop(self, servers: Servers) -> None:
        """An instant meta refresh is followed like a redirect and listed with status None."""
        refresh = (
            '<html><head><meta http-equiv="refresh" content="0; url=/dest"></head><body>moved</body></html>'
        )
        host = await site(servers, "127.0.0.2", {"/m": respond(refresh), "/dest": respond(LINKED)})
        result = await one(host.url("/m"), fast())
        assert result.status is Status.VERIFIED
        assert result.redirects == (Redirect(host.url("/m"), None),)
        assert Flag.META_REFRESH in result.flags

    @pytest.mark.parametrize(
        "location",
        ["http://127.0.0.1:{port}/", "http://localhost:{port}/", "http://[::ffff:127.0.0.1]:{port}/"],
    )
    @pytest.mark.parametrize("obey_robots", [True, False])
    async def test_redirect_to_a_forbidden_address(
        self, servers: Servers, location: str, obey_robots: bool
    ) -> None:
        """With the guard on, a public page redirecting to loopback is blocked; loopback sees nothing."""
        private = await servers.app({"/": respond(LINKED), "/robots.txt": robots_txt()}, "127.0.0.1")
        target = location.format(port=private.port)

        async def public(request: web.Request) -> web.StreamResponse:
            if request.path == "/robots.txt":
                return web.Response(text=ALLOW_ALL, content_type="text/plain")
            return web.Response(status=302, headers={"Location": target})

        # The "public" site is reached through a proxy on loopback (the proxy itself may be private).
        proxy = await servers.app({"/robots.txt": public, "/start": public}, "127.0.0.4")
        settings = fast(
            allow_private=False,
            proxy=proxy.url(""),
            resolve={"public.test": "93.184.216.34"},
            obey_robots=obey_robots,
        )
        result = await one("http://public.test/start", settings)
        assert (result.status, result.reason) == (Status.BLOCKED, "forbidden_address")
        assert result.redirects == (Redirect("http://public.test/start", 302),)
        assert private.log.count() == 0


class TestPages:
    async def test_many_claims_one_request(self, servers: Servers) -> None:
        """Fifty claims on one page (fragments differ) cost one page request and one robots.txt request."""
        host = await site(servers, "127.0.0.2", {"/": respond(LINKED, delay=0.1)})
        claims = [Claim(host.url(f"/#c{n}"), f"https://target.example/{n}") for n in range(50)]
        results = await run(claims, fast())
        assert len(results) == 50
        assert (host.log.count("/"), host.log.count("/robots.txt")) == (1, 1)

    async def test_recently_finished_page_is_not_refetched(self, servers: Servers) -> None:
        """A claim arriving after its page was fetched is judged from memory, not fetched again,
        even for a target the page was not read for (its body is read again)."""
        other = "https://other.example/deal"
        page = LINKED.replace("</main>", f'<a href="{other}" rel="sponsored">deal</a> x.example</main>')
        host = await site(servers, "127.0.0.2", {"/a": respond(page), "/b": respond(LINKED, delay=0.2)})
        claims = [
            Claim(host.url("/a"), TARGET),
            Claim(host.url("/b"), TARGET),
            Claim(host.url("/a"), "https://x.example/"),
            Claim(host.url("/a"), other),
        ]
        results = await run(claims, fast(max_pending_pages=1))
        by_target = {result.target_url: result for result in results if result.source_url.endswith("/a")}
        assert len(results) == 4
        assert host.log.count("/a") == 1
        assert by_target[TARGET].status is Status.VERIFIED
        assert (by_target["https://x.example/"].status, by_target["https://x.example/"].flags) == (
            Status.MISSING,
            (Flag.UNLINKED_MENTION,),
        )
        nofollow = by_target[other]
        assert nofollow.link is not None
        assert (nofollow.status, nofollow.link.text) == (Status.NOFOLLOW, "deal")
        assert by_target[TARGET].outbound_links == by_target[other].outbound_links == 2

    async def test_invalid_claims_become_results(self) -> None:
        """An InvalidClaim is turned into an invalid result without any request."""
        item = InvalidClaim("row-3", "nope", TARGET, "row 3: source_url: not a valid URL")
        (result,) = await run([item], fast())
        assert (result.status, result.reason, result.claim_id) == (Status.INVALID, item.reason, "row-3")

    async def test_page_errors(self, servers: Servers) -> None:
        """A 404 is page_error http_404; a PDF is not_html; a cut body is flagged truncated."""
        routes = {
            "/gone": respond("<a href='x'>x</a>", status=404),
            "/pdf": respond(b"%PDF-1.7", content_type="application/pdf"),
            "/long": respond(LINKED + "<p>filler</p>" * 1000),
        }
        host = await site(servers, "127.0.0.2", routes)
        results = await run([Claim(host.url(p), TARGET) for p in routes], fast(max_bytes=2000))
        by_path = {r.source_url.rsplit("/", 1)[1]: r for r in results}
        assert (by_path["gone"].status, by_path["gone"].reason) == (Status.PAGE_ERROR, "http_404")
        assert (by_path["pdf"].status, by_path["pdf"].reason) == (Status.PAGE_ERROR, "not_html")
        assert (by_path["long"].status, by_path["long"].bytes) == (Status.VERIFIED, 2000)
        assert Flag.TRUNCATED in by_path["long"].flags

    async def test_result_carries_what_was_fetched(self, servers: Servers) -> None:
        """Status, final URL, content type, encoding, bytes, time and attempts reach the result."""
        host = await site(servers, "127.0.0.2", {"/": respond(LINKED.encode("utf-8"))})
        result = await one(host.url("/"), fast())
        assert (result.http_status, result.final_url, result.encoding, result.attempts) == (
            200,
            host.url("/"),
            "utf-8",
            1,
        )
        assert result.content_type == "text/html; charset=utf-8"
        assert result.bytes == len(LINKED.encode())
        assert result.link is not None
        assert result.link.url == TARGET

    async def test_garbage_server_is_unreachable(self, servers: Servers) -> None:
        """A server answering with bytes that are not HTTP gives a result, not an exception."""

        async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"\x00\xff NOT HTTP AT ALL\r\n\r\n" * 10)
            await writer.drain()

        server = await servers.raw(garbage, "127.0.0.2")
        result = await one(server.url("/"), fast(retries=0, obey_robots=False))
        assert (result.status, result.reason) == (Status.UNREACHABLE, "connection_error")


class TestStreaming:
    async def test_claims_are_pulled_lazily(self, servers: Servers) -> None:
        """With max_pending_pages=3 the input is read only a few claims ahead of the work."""
        host = await site(servers, "127.0.0.2", {"/p/{n}": respond(LINKED, delay=0.05)})
        pulled = 0

        async def claims() -> AsyncIterator[Claim]:
            nonlocal pulled
            for n in range(1000):
                pulled += 1
                yield Claim(host.url(f"/p/{n}"), TARGET)

        results = verify(claims(), fast(max_pending_pages=3))
        first = await anext(results)
        await results.aclose()
        assert first.status is Status.VERIFIED
        assert pulled <= 6

    async def test_slow_consumer_stops_the_input(self, servers: Servers) -> None:
        """A consumer that stops reading stops the crawl after RESULTS_AHEAD results, not at the end."""
        host = await site(servers, "127.0.0.2", {"/p/{n}": respond(LINKED)})
        pulled = 0

        async def claims() -> AsyncIterator[Claim]:
            nonlocal pulled
            for n in range(RESULTS_AHEAD * 3):
                pulled += 1
                yield Claim(host.url(f"/p/{n}"), TARGET)

        async with aclosing(verify(claims(), fast(per_host=8, max_pending_pages=4))) as results:
            await anext(results)
            await asyncio.sleep(1.5)  # the consumer is busy elsewhere
            # queued results + the one consumed + one page per task + one claim at the door
            bound = RESULTS_AHEAD + 1 + 4 + 1
            assert pulled <= bound
            assert host.log.count("/robots.txt") + bound - 1 >= host.log.count()

    async def test_claims_iterable_errors_propagate(self) -> None:
        """An error raised while reading the claims comes out of verify."""

        def claims() -> Iterable[Claim]:
            yield Claim("http://127.0.0.2:1/", TARGET)
            raise OSError("input file vanished")

        with pytest.raises(OSError, match="input file vanished"):
            await run(claims(), fast(retries=0))

    async def test_aclose_stops_everything(self, servers: Servers) -> None:
        """Closing the generator early cancels the requests in flight and leaves no task behind."""
        host = await site(
            servers, "127.0.0.2", {"/fast": respond(LINKED), "/slow/{n}": respond(LINKED, delay=30)}
        )
        claims = [Claim(host.url("/fast"), TARGET)] + [
            Claim(host.url(f"/slow/{n}"), TARGET) for n in range(5)
        ]
        results = verify(claims, fast(per_host=6, timeout=60))
        first = await anext(results)
        started = time.monotonic()
        await results.aclose()
        assert first.source_url == host.url("/fast")
        assert time.monotonic() - started < 1.0
        assert _pipeline_tasks() == []

    async def test_cancelling_the_consumer_is_clean(self, servers: Servers) -> None:
        """Cancelling the task that iterates verify closes the session without warnings or stray tasks."""
        host = await site(servers, "127.0.0.2", {"/slow/{n}": respond(LINKED, delay=30)})
        claims = [Claim(host.url(f"/slow/{n}"), TARGET) for n in range(5)]
        loop = asyncio.get_running_loop()
        complaints: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: complaints.append(context))

        async def consume() -> None:
            async for _ in verify(claims, fast(per_host=5, timeout=60)):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gc.collect()
        await asyncio.sleep(0)
        assert _pipeline_tasks() == []
        assert complaints == []


def _pipeline_tasks() -> list[asyncio.Task[Any]]:
    """Tasks still running code of the crawler package."""
    package = str(Path(crawler.__file__).parent)
    return [
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and getattr(task.get_coro(), "cr_code", None) is not None
        and task.get_coro().cr_code.co_filename.startswith(package)  # type: ignore[union-attr]
    ]
