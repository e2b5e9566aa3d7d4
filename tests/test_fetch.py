"""fetch: one request against real loopback servers: bodies, limits, timeouts, retries, the guard."""

from __future__ import annotations

import asyncio
import functools
import gzip
import socket
import ssl
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import brotli
import pytest
import settings_for_tests
import trustme
from aiohttp import web
from servers import Servers, redirect, respond

from crawler.config import Settings
from crawler.core.guard import forbidden_address
from crawler.engine.fetch import Chain, Fetcher, reason_of
from crawler.engine.politeness import Politeness
from crawler.models import Redirect

# Server-side timing: loopback scheduling noise allowed below an expected wait.
TOLERANCE = 0.15
# Upper bounds only prove "ended long before the server would have": generous for busy CI machines.
SLACK = 1.0
BOMB_BYTES = 128 * 1024 * 1024

# Two retries: the tests of retrying count three attempts.
fast = functools.partial(settings_for_tests.fast, retries=2)


@asynccontextmanager
async def fetcher(settings: Settings) -> AsyncIterator[Fetcher]:
    gates = Politeness(concurrency=settings.concurrency, per_host=settings.per_host, delay=settings.delay)
    async with Fetcher(settings, gates) as client:
        yield client


def free_port(host: str) -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@functools.cache
def gzip_bomb() -> bytes:
    """BOMB_BYTES of zeros, gzip-compressed a MiB at a time (no big buffer in the test process)."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join(packer.compress(zeros) for _ in range(BOMB_BYTES >> 20)) + packer.flush()


@functools.cache
def brotli_bomb() -> bytes:
    """BOMB_BYTES of zeros, brotli-compressed a MiB at a time."""
    packer = brotli.Compressor(quality=5)
    zeros = bytes(1 << 20)
    return b"".join(packer.process(zeros) for _ in range(BOMB_BYTES >> 20)) + bytes(packer.finish())


class TestAddressGuard:
    @pytest.mark.parametrize(
        "address",
        [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fe80::1%eth0",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "not-an-address",
        ],
    )
    def test_refused(self, address: str) -> None:
        """Loopback, private, link-local, CGNAT, multicast, reserved and their IPv6 wrappings are refused."""
        assert forbidden_address(address)

    @pytest.mark.parametrize(
        "address",
        [
            "8.8.8.8",
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::",
            "64:ff9b::808:808",
        ],
    )
    def test_public(self, address: str) -> None:
        """Public unicast addresses pass, also when wrapped in an IPv6 form that routes to them."""
        assert not forbidden_address(address)

    async def test_ip_literal_never_reaches_the_server(self, servers: Servers) -> None:
        """A URL naming a loopback IP is refused before any connection: the server counts zero."""
        site = await servers.app({"/": respond("hi")}, "127.0.0.2")
        async with fetcher(fast(allow_private=False)) as client:
            answer = await client.get(site.url("/"), max_bytes=1000)
        assert (answer.reason, answer.status, site.log.count()) == ("forbidden_address", None, 0)

    async def test_ipv6_loopback_literal_is_refused(self, servers: Servers) -> None:
        """http://[::1]:port/ is refused with the guard on and reached with allow_private."""
        site = await servers.app({"/": respond("hi")}, "::1")
        async with fetcher(fast(allow_private=False)) as client:
            refused = await client.get(site.url("/"), max_bytes=1000)
        assert (refused.reason, site.log.count()) == ("forbidden_address", 0)
        async with fetcher(fast()) as client:
            reached = await client.get(site.url("/"), max_bytes=1000)
        assert (reached.status, site.log.count()) == (200, 1)

    async def test_localhost_is_refused(self, servers: Servers) -> None:
        """`localhost` resolves to loopback, so the guard refuses it after resolution."""
        site = await servers.app({"/": respond("hi")}, "127.0.0.1")
        async with fetcher(fast(allow_private=False)) as client:
            answer = await client.get(site.named("localhost"), max_bytes=1000)
        assert (answer.reason, site.log.count()) == ("forbidden_address", 0)

    async def test_resolve_override_is_guarded(self, servers: Servers) -> None:
        """A name mapped to loopback with `resolve` is refused unless allow_private is set."""
        site = await servers.app({"/": respond("hi")}, "127.0.0.1")
        settings = fast(allow_private=False, resolve={"evil.test": "127.0.0.1"})
        async with fetcher(settings) as client:
            answer = await client.get(site.named("evil.test"), max_bytes=1000)
        assert (answer.reason, site.log.count()) == ("forbidden_address", 0)

    async def test_resolve_override_reaches_the_mapped_address(self, servers: Servers) -> None:
        """With allow_private, `resolve` sends a name to the given address and keeps the URL's port."""
        site = await servers.app({"/": respond("hi")}, "127.0.0.3")
        async with fetcher(fast(resolve={"Site.Test": "127.0.0.3"})) as client:
            answer = await client.get(site.named("site.test"), max_bytes=1000)
        assert (answer.status, answer.body, site.log.count()) == (200, b"hi", 1)
        assert site.log.hits[0].headers is not None
        assert site.log.hits[0].headers["Host"] == f"site.test:{site.port}"

    async def test_proxy_on_loopback_is_allowed_but_targets_are_checked(self, servers: Servers) -> None:
        """The proxy may be local; the target's own address is still checked before asking it."""
        lines: list[bytes] = []

        async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            lines.append(await reader.readline())
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nproxied")
            await writer.drain()

        server = await servers.raw(proxy, "127.0.0.4")
        settings = fast(
            allow_private=False,
            proxy=server.url(""),
            resolve={"public.test": "93.184.216.34", "evil.test": "127.0.0.5"},
        )
        async with fetcher(settings) as client:
            good = await client.get("http://public.test/page", max_bytes=1000)
            bad = await client.get("http://evil.test/page", max_bytes=1000)
        assert (good.status, good.body) == (200, b"proxied")
        assert lines == [b"GET http://public.test/page HTTP/1.1\r\n"]
        assert bad.reason == "forbidden_address"


class TestResponses:
    async def test_plain_get(self, servers: Servers) -> None:
        """A 200 comes back with its body and lower-cased headers (every instance); our headers are sent."""

        async def handler(request: web.Request) -> web.Response:
            resp = web.Response(text="hello", content_type="text/html")
            resp.headers.add("Set-Cookie", "a=1")
            resp.headers.add("Set-Cookie", "b=2")
            return resp

        site = await servers.app({"/": handler}, "127.0.0.2")
        async with fetcher(fast(headers={"X-Extra": "yes"})) as client:
            answer = await client.get(site.url("/"), max_bytes=1000)
        assert (answer.status, answer.body, answer.attempts, answer.truncated) == (200, b"hello", 1, False)
        assert [v for k, v in answer.headers if k == "set-cookie"] == ["a=1", "b=2"]
        sent = site.log.hits[0].headers
        assert sent is not None
        assert sent["User-Agent"] == Settings().user_agent
        assert sent["Accept-Encoding"] == "gzip, deflate, br"
        assert sent["X-Extra"] == "yes"

    @pytest.mark.parametrize(
        ("encoding", "compress"),
        [("gzip", gzip.compress), ("br", brotli.compress), ("deflate", zlib.compress)],
    )
    async def test_compressed_bodies_are_decoded(
        self, servers: Servers, encoding: str, compress: Any
    ) -> None:
        """gzip, br and deflate bodies arrive decoded."""
        page = b"<p>" + b"compressed " * 1000 + b"</p>"
        handler = respond(compress(page), headers={"Content-Encoding": encoding})
        site = await servers.app({"/": handler}, "127.0.0.2")
        async with fetcher(fast()) as client:
            answer = await client.get(site.url("/"), max_bytes=1 << 20)
        assert (answer.body, answer.truncated) == (page, False)

    async def test_truncated_at_max_bytes(self, servers: Servers) -> None:
        """A body longer than max_bytes is cut there and flagged."""
        site = await servers.app({"/": respond(b"x" * 100_000)}, "127.0.0.2")
        async with fetcher(fast()) as client:
            answer = await client.get(site.url("/"), max_bytes=1000)
            exact = await client.get(site.url("/"), max_bytes=100_000)
        assert (len(answer.body), answer.truncated) == (1000, True)
        assert (len(exact.body), exact.truncated) == (100_000, False)

    @pytest.mark.parametrize(("encoding", "bomb"), [("gzip", gzip_bomb), ("br", brotli_bomb)])
    async def test_compression_bomb_stays_bounded(self, servers: Servers, encoding: str, bomb: Any) -> None:
        """128 MiB of zeros compressed to a few hundred KiB is read to max_bytes only, in bounded memory."""
        site = await servers.app({"/": respond(bomb(), headers={"Content-Encoding": encoding})}, "127.0.0.2")
        tracemalloc.start()
        try:
            async with fetcher(fast()) as client:
                answer = await client.get(site.url("/"), max_bytes=256 * 1024)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (len(answer.body), answer.truncated) == (256 * 1024, True)
        assert peak < 16 * 1024 * 1024

    async def test_large_headers_are_accepted(self, servers: Servers) -> None:
        """A 20 KB header (aiohttp's default limit is 8190) is read; one above max_header_bytes fails."""
        site = await servers.app(
            {
                "/big": respond("ok", headers={"X-Big": "v" * 20_000}),
                "/huge": respond("ok", headers={"X-Huge": "v" * 70_000}),
            },
            "127.0.0.2",
        )
        async with fetcher(fast(retries=0)) as client:
            big = await client.get(site.url("/big"), max_bytes=100)
            huge = await client.get(site.url("/huge"), max_bytes=100)
        assert (big.status, big.header("x-big")) == (200, "v" * 20_000)
        assert (huge.status, huge.reason) == (None, "connection_error")

    async def test_redirect_is_returned_not_followed(self, servers: Servers) -> None:
        """A 301 comes back with its Location resolved (fragment dropped); the target isn't requested."""
        site = await servers.app({"/a": redirect("../b?x=1#frag"), "/b": respond("b")}, "127.0.0.2")
        async with fetcher(fast()) as client:
            answer = await client.get(site.url("/a"), max_bytes=1000)
        assert (answer.status, answer.location) == (301, site.url("/b?x=1"))
        assert site.log.count("/b") == 0

    async def test_redirect_to_non_http_is_final(self, servers: Servers) -> None:
        """A redirect to mailto: has nothing to follow: it is the final answer."""
        site = await servers.app({"/a": redirect("mailto:x@example.com")}, "127.0.0.2")
        async with fetcher(fast()) as client:
            answer = await client.get(site.url("/a"), max_bytes=1000)
        assert (answer.status, answer.location) == (301, None)


class TestFailures:
    async def test_connection_refused(self) -> None:
        """Nothing listening gives connection_error after every attempt."""
        port = free_port("127.0.0.2")
        async with fetcher(fast()) as client:
            answer = await client.get(f"http://127.0.0.2:{port}/", max_bytes=100)
        assert (answer.reason, answer.attempts) == ("connection_error", 3)

    async def test_dns_failure_is_not_retried(self) -> None:
        """A name that doesn't resolve gives dns_error at once."""
        async with fetcher(fast()) as client:
            answer = await client.get("http://no-such-host.invalid/", max_bytes=100)
        assert (answer.reason, answer.attempts) == ("dns_error", 1)

    async def test_tls_failure(self, servers: Servers) -> None:
        """An untrusted certificate gives tls_error; with verify_tls off the page is read."""
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("tls.test").configure_cert(context)
        site = await servers.app({"/": respond("secret")}, "127.0.0.6", tls=context)
        settings = fast(resolve={"tls.test": "127.0.0.6"})
        async with fetcher(settings) as client:
            refused = await client.get(site.named("tls.test"), max_bytes=100)
        async with fetcher(fast(resolve={"tls.test": "127.0.0.6"}, verify_tls=False)) as client:
            accepted = await client.get(site.named("tls.test"), max_bytes=100)
        assert (refused.reason, refused.attempts) == ("tls_error", 1)
        assert (accepted.status, accepted.body) == (200, b"secret")

    async def test_slow_headers_time_out(self, servers: Servers) -> None:
        """A server that never answers is given up after `timeout`, once per attempt."""
        site = await servers.app({"/": respond("late", delay=10)}, "127.0.0.2")
        started = time.monotonic()
        async with fetcher(fast(timeout=0.4, retries=1)) as client:
            answer = await client.get(site.url("/"), max_bytes=100)
        took = time.monotonic() - started
        assert (answer.reason, answer.attempts, site.log.count()) == ("timeout", 2, 2)
        assert 0.8 <= took < 0.8 + SLACK

    async def test_dripping_body_ends_at_total_timeout(self, servers: Servers) -> None:
        """A body sent one byte at a time (each within any read timeout) still ends at `timeout`."""

        async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.05)

        server = await servers.raw(drip, "127.0.0.2")
        started = time.monotonic()
        async with fetcher(fast(timeout=0.5, retries=0)) as client:
            answer = await client.get(server.url("/"), max_bytes=10_000)
        assert answer.reason == "timeout"
        assert time.monotonic() - started < 0.5 + SLACK

    async def test_corrupt_compressed_body(self, servers: Servers) -> None:
        """A body that claims gzip but isn't is a failed request, not an exception."""
        lying = respond(b"not gzip at all" * 100, headers={"Content-Encoding": "gzip"})
        site = await servers.app({"/": lying})
        async with fetcher(fast(retries=0)) as client:
            answer = await client.get(site.url("/"), max_bytes=100_000)
        assert (answer.status, answer.reason) == (None, "connection_error")

    async def test_reset_connections_are_retried(self, servers: Servers) -> None:
        """A server that drops every connection unanswered costs every attempt, then connection_error."""

        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.transport.abort()

        server = await servers.raw(hang_up, "127.0.0.2")
        async with fetcher(fast()) as client:
            answer = await client.get(server.url("/"), max_bytes=100)
        assert (answer.reason, answer.attempts) == ("connection_error", 3)
        # aiohttp resends a GET once by itself when the connection drops before the answer.
        assert server.log.count() in (3, 6)

    async def test_closed_keepalive_connection_is_resent(self, servers: Servers) -> None:
        """A kept-alive connection the server closed is replaced without costing an attempt."""
        served = 0

        async def once_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal served
            await reader.readuntil(b"\r\n\r\n")
            served += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")  # the next request on this connection: hang up
            writer.transport.abort()

        server = await servers.raw(once_per_connection, "127.0.0.2")
        async with fetcher(fast(retries=0)) as client:
            first = await client.get(server.url("/"), max_bytes=100)
            second = await client.get(server.url("/"), max_bytes=100)
        assert (first.status, second.status, second.attempts) == (200, 200, 1)
        assert (served, server.log.count()) == (2, 2)


class TestConnectionPool:
    async def test_idle_connections_are_bounded_least_recently_used_first(self, servers: Servers) -> None:
        """After 12 hosts, only `max_idle_connections` (4) stay open: the 4 most recent, reused."""
        opened: dict[str, int] = {}
        open_now: dict[str, int] = {}

        def keep_alive(host: str) -> Any:
            async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                opened[host] = opened.get(host, 0) + 1
                open_now[host] = open_now.get(host, 0) + 1
                try:
                    while await reader.readuntil(b"\r\n\r\n"):
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        await writer.drain()
                except asyncio.IncompleteReadError:
                    pass  # the client closed the connection
                finally:
                    open_now[host] -= 1

            return handler

        hosts = [f"127.0.4.{n}" for n in range(1, 13)]
        sites = [await servers.raw(keep_alive(host), host) for host in hosts]
        async with fetcher(fast(max_idle_connections=4)) as client:
            for site in sites:
                assert (await client.get(site.url("/"), max_bytes=100)).status == 200
            await asyncio.sleep(0.2)  # closes reach the servers
            assert sum(open_now.values()) == 4
            assert [open_now[host] for host in hosts[-4:]] == [1, 1, 1, 1]
            for site in sites[-4:]:
                assert (await client.get(site.url("/"), max_bytes=100)).status == 200
        assert [opened[host] for host in hosts] == [1] * 12  # the kept ones were reused


class TestRetries:
    async def test_503_then_success(self, servers: Servers) -> None:
        """A 503 is retried and the next 200 is the answer, on attempt 2."""
        answers = iter([503, 200])

        async def flaky(request: web.Request) -> web.Response:
            return web.Response(text="x", status=next(answers))

        site = await servers.app({"/": flaky}, "127.0.0.2")
        async with fetcher(fast()) as client:
            answer = await client.get(site.url("/"), max_bytes=100)
        assert (answer.status, answer.attempts, site.log.count()) == (200, 2, 2)

    async def test_persistent_500_uses_every_attempt(self, servers: Servers) -> None:
        """A 500 on every attempt ends as the last 500 after retries + 1 requests, spaced by backoff."""
        site = await servers.app({"/": respond("err", status=500)}, "127.0.0.2")
        async with fetcher(fast(backoff=0.2)) as client:
            answer = await client.get(site.url("/"), max_bytes=100)
        assert (answer.status, answer.attempts, site.log.count()) == (500, 3, 3)
        first, second, third = site.log.starts()
        assert second - first >= 0.1 - TOLERANCE / 10  # half the first step at least (equal jitter)
        assert third - second >= 0.2 - TOLERANCE / 10

    async def test_404_is_not_retried(self, servers: Servers) -> None:
        """A 404 is final on the first attempt."""
        site = await servers.app({"/": respond("gone", status=404)}, "127.0.0.2")
        async with fetcher(fast()) as client:
            answer = await client.get(site.url("/"), max_bytes=100)
        assert (answer.status, answer.attempts, site.log.count()) == (404, 1, 1)

    async def test_retry_after_is_honoured(self, servers: Servers) -> None:
        """A 429 with Retry-After: 1 makes the next request wait a second, server-side."""
        answers = iter([429, 200])

        async def limited(request: web.Request) -> web.Response:
            return web.Response(text="x", status=next(answers), headers={"Retry-After": "1"})

        site = await servers.app({"/": limited}, "127.0.0.2")
        async with fetcher(fast(max_retry_after=5)) as client:
            answer = await client.get(site.url("/"), max_bytes=100)
        first, second = site.log.starts()
        assert (answer.status, answer.attempts) == (200, 2)
        assert second - first >= 1.0 - TOLERANCE

    async def test_retry_after_is_capped(self, servers: Servers) -> None:
        """Retry-After: 3600 waits only max_retry_after."""
        site = await servers.app(
            {"/": respond("busy", status=503, headers={"Retry-After": "3600"})}, "127.0.0.2"
        )
        async with fetcher(fast(max_retry_after=0.3, retries=1)) as client:
            answer = await client.get(site.url("/"), max_bytes=100)
        first, second = site.log.starts()
        assert (answer.status, answer.attempts) == (503, 2)
        assert 0.3 - TOLERANCE <= second - first < 0.3 + SLACK


class TestChain:
    def test_hops_within_budget(self) -> None:
        """Hops are recorded in order until the budget is spent."""
        chain = Chain(limit=2)
        assert chain.follow("http://a/1", 301, "http://a/2")
        assert chain.follow("http://a/2", 302, "http://a/3")
        assert not chain.follow("http://a/3", 301, "http://a/4")
        assert chain.hops == [Redirect("http://a/1", 301), Redirect("http://a/2", 302)]
        assert chain.left == 0

    def test_loop_is_refused(self) -> None:
        """The same URL giving the same redirect again is a loop, whatever the budget left."""
        chain = Chain(limit=10)
        assert chain.follow("http://a/1", 301, "http://a/2")
        assert chain.follow("http://a/2", 301, "http://a/1")
        assert not chain.follow("http://a/1", 301, "http://a/2")
        assert len(chain.hops) == 2


class TestReasons:
    @pytest.mark.parametrize(
        ("exc", "reason"),
        [
            (TimeoutError(), "timeout"),
            (ssl.SSLError(), "tls_error"),
            (socket.gaierror(), "dns_error"),
            (ConnectionResetError(), "connection_error"),
            (ValueError("odd URL"), "connection_error"),
        ],
    )
    def test_exceptions_become_reason_words(self, exc: BaseException, reason: str) -> None:
        """Each kind of failure maps to the contract's reason word."""
        assert reason_of(exc) == reason
