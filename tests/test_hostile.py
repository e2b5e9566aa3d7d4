"""Hostile servers: each ends with the contract's status and reason, in bounded time and memory,
while a normal host crawled in the same run is verified as if nothing happened.

Every server has its own loopback address. Raw servers (asyncio streams) misbehave where
aiohttp's server won't: they answer robots.txt with a clean 404 and save their tricks for the
page. Memory is the growth of this process's resident set during the run (sampled by a thread,
and the kernel's peak when the run raised it); test servers live in the same process, so they
stream what they send instead of holding it.
"""

from __future__ import annotations

import asyncio
import functools
import resource
import ssl
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

import brotli
import pytest
import trustme
from aiohttp import web
from servers import Handler, RawHandler, Server, Servers, redirect, respond
from settings_for_tests import fast

from crawler.config import Settings
from crawler.engine.fetch import MAX_HEADERS
from crawler.engine.pipeline import verify
from crawler.models import Claim, Flag, Result, Status

TARGET = "https://target.example/landing"
LINKED = f'<html><body><main><p>text</p><a href="{TARGET}">anchor</a></main></body></html>'
MIB = 1 << 20
# Growth of the resident set allowed for one run: a fixed allowance for the run's session,
# tasks and allocator slack, plus a cost per byte of the page cap (`max_bytes`). The cap is read,
# decoded (1 to 4 bytes a character) and parsed: Lexbor's tree of a hostile page costs up to ~30
# bytes per byte of HTML (measured: 5 MiB of NULs, 94 MiB; 5 MiB of `<p>` elements, 133 MiB).
# A bomb or an endless body read whole would cost gigabytes.
RSS_FIXED = 64 * MIB
RSS_PER_PAGE_BYTE = 32
# Upper bounds on wall time prove "ended long before the server would have"; generous for
# busy machines.
SLACK = 2.0
BOMB_GIB = 4
ROBOTS_404 = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

RawPage = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# Memory ------------------------------------------------------------------------------------


def resident() -> int:
    """This process's resident set now, in bytes (Linux /proc)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


class RssGrowth:
    """Peak growth of the resident set over a block: a sampling thread, and the kernel's peak.

    A thread sees what the event loop's own code allocates even while that code runs; when
    the block raised the process's lifetime peak (`ru_maxrss`), that peak is exact.
    """

    def __init__(self) -> None:
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._maxrss_before = 0

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.baseline)

    def __enter__(self) -> RssGrowth:
        self.baseline = self.peak = resident()
        self._maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if maxrss > self._maxrss_before:  # kibibytes on Linux
            self.peak = max(self.peak, maxrss * 1024)

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, resident())


# Runs --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Crawl:
    """The results of one run by source URL, in the order they came, with its cost."""

    results: dict[str, Result]
    order: list[str]
    seconds: float
    rss_growth: int

    def __getitem__(self, url: str) -> Result:
        return self.results[url]


async def normal_site(servers: Servers) -> Server:
    """A well-behaved host on 127.0.0.2: robots.txt allows all, the page links to the target."""
    robots = respond("User-agent: *\nAllow: /\n", content_type="text/plain")
    return await servers.app({"/robots.txt": robots, "/": respond(LINKED)}, "127.0.0.2")


async def crawl_beside_normal(servers: Servers, sources: list[str], settings: Settings) -> Crawl:
    """Verify `sources` and a normal host's page in one run; the normal page must be verified."""
    normal = await normal_site(servers)
    claims = [Claim(source, TARGET) for source in [*sources, normal.url("/")]]
    results: dict[str, Result] = {}
    order: list[str] = []
    started = time.monotonic()
    with RssGrowth() as rss:
        async for result in verify(claims, settings):
            results[result.source_url] = result
            order.append(result.source_url)
    crawl = Crawl(results, order, time.monotonic() - started, rss.growth)
    assert len(results) == len(claims)
    assert crawl[normal.url("/")].status is Status.VERIFIED, crawl[normal.url("/")]
    assert normal.log.count("/") == 1
    bound = RSS_FIXED + RSS_PER_PAGE_BYTE * settings.max_bytes
    assert crawl.rss_growth < bound, f"resident set grew by {crawl.rss_growth / MIB:.1f} MiB"
    return crawl


def outcome(result: Result) -> tuple[Status, str | None]:
    return result.status, result.reason


# Raw servers -------------------------------------------------------------------------------


async def request_path(reader: asyncio.StreamReader) -> str:
    """Read one request head; its path."""
    head = await reader.readuntil(b"\r\n\r\n")
    return head.split(b" ", 2)[1].decode("latin-1")


def page_only(page: RawPage) -> RawHandler:
    """A raw handler: robots.txt gets a clean 404 (allow all), every other path gets `page`."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await request_path(reader) == "/robots.txt":
            writer.write(ROBOTS_404)
            await writer.drain()
            return
        await page(reader, writer)

    return handler


async def forever() -> None:
    """Stall until the test's servers are closed."""
    await asyncio.Event().wait()


# Compression bombs: deflate blocks cut with a full flush restart from an empty history, so the
# block compressing one MiB of zeros is the same bytes every time and gigabytes cost a loop.


@dataclass(frozen=True, slots=True)
class Bomb:
    """A compressed body streamed from parts: `head`, then `block` x `blocks`, then `tail`."""

    encoding: str
    head: bytes
    block: bytes
    blocks: int
    tail: bytes
    inflated: int

    @property
    def size(self) -> int:
        return len(self.head) + len(self.block) * self.blocks + len(self.tail)

    def chunks(self, per_chunk: int = 64) -> Iterator[bytes]:
        yield self.head
        for start in range(0, self.blocks, per_chunk):
            yield self.block * min(per_chunk, self.blocks - start)
        yield self.tail


def gzip_bomb(prefix: bytes, mebibytes: int) -> Bomb:
    """`prefix` then `mebibytes` MiB of zeros, as one valid gzip member (CRC and size right)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(MIB)
    head = packer.compress(prefix) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = ZeroCrc(zeros).after(zlib.crc32(prefix), mebibytes)
    size = len(prefix) + mebibytes * MIB
    trailer = crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return Bomb("gzip", header + head, block, mebibytes, packer.flush() + trailer, size)


def brotli_bomb(prefix: bytes, mebibytes: int) -> Bomb:
    """`prefix` then `mebibytes` MiB of zeros, brotli; flushed blocks repeat once history is zeros."""
    packer = brotli.Compressor(quality=5)
    zeros = bytes(MIB)
    head = packer.process(prefix) + packer.flush()
    warm = [packer.process(zeros) + packer.flush() for _ in range(3)]
    block = packer.process(zeros) + packer.flush()
    assert block == warm[-1], "brotli blocks did not settle into a repeating pattern"
    head += b"".join(warm)
    return Bomb("br", head, block, mebibytes - 3, packer.finish(), len(prefix) + mebibytes * MIB)


class ZeroCrc:
    """CRC-32 continued over many MiB of zeros without reading them.

    CRC-32 over zeros is an affine map of the starting value over GF(2): learn it from 33
    calls on one MiB, then raise it to the n-th power by squaring.
    """

    Affine = tuple[list[int], int]

    def __init__(self, zeros: bytes) -> None:
        constant = zlib.crc32(zeros, 0)
        self.step: ZeroCrc.Affine = ([zlib.crc32(zeros, 1 << i) ^ constant for i in range(32)], constant)

    def after(self, start: int, times: int) -> int:
        power: ZeroCrc.Affine = ([1 << i for i in range(32)], 0)
        square = self.step
        while times:
            if times & 1:
                power = self._compose(square, power)
            square = self._compose(square, square)
            times >>= 1
        return self._apply(power[0], start) ^ power[1]

    @staticmethod
    def _apply(columns: list[int], value: int) -> int:
        out = 0
        for bit, column in enumerate(columns):
            if value >> bit & 1:
                out ^= column
        return out

    @classmethod
    def _compose(cls, outer: Affine, inner: Affine) -> Affine:
        columns = [cls._apply(outer[0], column) for column in inner[0]]
        return columns, cls._apply(outer[0], inner[1]) ^ outer[1]


@functools.cache
def bomb(encoding: str, mebibytes: int = BOMB_GIB * 1024) -> Bomb:
    build = gzip_bomb if encoding == "gzip" else brotli_bomb
    return build(LINKED.encode(), mebibytes)


def serve_bomb(made: Bomb) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/html; charset=utf-8", "Content-Encoding": made.encoding}
        )
        response.content_length = made.size
        await response.prepare(request)
        for chunk in made.chunks():
            await response.write(chunk)  # drains: a reader that stopped stops us here
        return response

    return handler


class TestBombs:
    @pytest.mark.parametrize("encoding", ["gzip", "br"])
    def test_bomb_is_a_valid_stream(self, encoding: str) -> None:
        """The bomb builder makes a stream that inflates to the prefix and the zeros, nothing else."""
        small = bomb(encoding, mebibytes=8)
        packed = b"".join(small.chunks(per_chunk=3))
        inflated = zlib.decompress(packed, 31) if encoding == "gzip" else brotli.decompress(packed)
        assert inflated == LINKED.encode() + bytes(8 * MIB)
        assert small.inflated == len(inflated)

    @pytest.mark.parametrize("encoding", ["gzip", "br"])
    async def test_compression_bomb_is_cut_at_max_bytes(self, servers: Servers, encoding: str) -> None:
        """A few MB inflating to 4 GiB is read to max_bytes (5 MiB): truncated, verified, bounded."""
        made = bomb(encoding)
        assert (made.inflated >= BOMB_GIB << 30, made.size < 8 * MIB) == (True, True)
        host = await servers.app({"/": serve_bomb(made)}, "127.0.0.3")
        crawl = await crawl_beside_normal(servers, [host.url("/")], fast())
        result = crawl[host.url("/")]
        assert (result.status, result.bytes, result.http_status) == (Status.VERIFIED, 5 * MIB, 200)
        assert Flag.TRUNCATED in result.flags
        assert crawl.seconds < 3 + SLACK


class TestEndlessBodies:
    async def test_endless_body_is_cut_at_max_bytes(self, servers: Servers) -> None:
        """A body that never ends is read to max_bytes, then the connection is dropped."""
        sent = 0

        async def endless(request: web.Request) -> web.StreamResponse:
            nonlocal sent
            response = web.StreamResponse(headers={"Content-Type": "text/html"})
            await response.prepare(request)
            await response.write(LINKED.encode())
            chunk = b"and more words " * 4000
            while True:
                await response.write(chunk)
                sent += len(chunk)

        host = await servers.app({"/": endless}, "127.0.0.3")
        crawl = await crawl_beside_normal(servers, [host.url("/")], fast(max_bytes=2 * MIB))
        result = crawl[host.url("/")]
        assert (result.status, result.bytes) == (Status.VERIFIED, 2 * MIB)
        assert Flag.TRUNCATED in result.flags
        assert crawl.seconds < 2 + SLACK

    async def test_dripping_body_ends_at_the_total_timeout(self, servers: Servers) -> None:
        """One byte a second (every read on time) still ends at `timeout`, per attempt: timeout."""

        async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n")
            for byte in LINKED.encode():
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1.0)

        host = await servers.raw(page_only(drip), "127.0.0.3")
        crawl = await crawl_beside_normal(servers, [host.url("/")], fast(timeout=1.0, retries=1))
        result = crawl[host.url("/")]
        assert (*outcome(result), result.attempts) == (Status.UNREACHABLE, "timeout", 2)
        assert 2.0 <= crawl.seconds < 2.0 + SLACK

    async def test_headers_that_never_end(self, servers: Servers) -> None:
        """A header section that keeps coming a line at a time ends at `timeout`."""

        async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 200 OK\r\n")
            for n in range(10_000):
                writer.write(f"X-Line-{n}: more\r\n".encode())
                await writer.drain()
                await asyncio.sleep(0.1)

        host = await servers.raw(page_only(trickle), "127.0.0.3")
        crawl = await crawl_beside_normal(servers, [host.url("/")], fast(timeout=1.0, retries=0))
        assert outcome(crawl[host.url("/")]) == (Status.UNREACHABLE, "timeout")
        assert crawl.seconds < 1.0 + SLACK


class TestHeaders:
    async def test_header_line_up_to_max_header_bytes_is_accepted(self, servers: Servers) -> None:
        """A 64 KiB header line (the default max_header_bytes) is read; one byte more per field is refused."""
        limit = Settings().max_header_bytes
        name = "X-Big"
        at_limit = respond(LINKED, headers={name: "v" * (limit - len(name))})
        beyond = respond(LINKED, headers={name: "v" * (limit - len(name) + 1)})
        host = await servers.app({"/at": at_limit, "/beyond": beyond}, "127.0.0.3")
        crawl = await crawl_beside_normal(servers, [host.url("/at"), host.url("/beyond")], fast())
        assert crawl[host.url("/at")].status is Status.VERIFIED
        refused = crawl[host.url("/beyond")]
        assert (*outcome(refused), refused.attempts) == (Status.UNREACHABLE, "connection_error", 2)

    async def test_header_count(self, servers: Servers) -> None:
        """Up to MAX_HEADERS header lines are read; 1,000 are refused as a connection error, cleanly."""

        def many(count: int) -> RawPage:
            async def page(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                lines = "".join(f"X-Header-{n}: value {n}\r\n" for n in range(count))
                body = LINKED.encode()
                writer.write(
                    f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n"
                    f"Connection: close\r\n{lines}\r\n".encode()
                    + body
                )
                await writer.drain()

            return page

        accepted = await servers.raw(page_only(many(MAX_HEADERS - 10)), "127.0.0.3")
        refused = await servers.raw(page_only(many(1000)), "127.0.0.4")
        crawl = await crawl_beside_normal(servers, [accepted.url("/"), refused.url("/")], fast())
        assert crawl[accepted.url("/")].status is Status.VERIFIED
        assert outcome(crawl[refused.url("/")]) == (Status.UNREACHABLE, "connection_error")

    @pytest.mark.parametrize(
        "status_line",
        [b"HTTP/1.1 two hundred OK", b"HTTX/1.1 200 OK", b"HTTP/1.1 2000 OK", b"\x00\xff\xfe", b""],
        ids=["words", "protocol", "five-digits", "binary", "empty"],
    )
    async def test_invalid_status_line(self, servers: Servers, status_line: bytes) -> None:
        """A status line that is not HTTP gives connection_error after the retries, not an exception."""

        async def page(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(status_line + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()

        host = await servers.raw(page_only(page), "127.0.0.3")
        crawl = await crawl_beside_normal(servers, [host.url("/")], fast())
        assert outcome(crawl[host.url("/")]) == (Status.UNREACHABLE, "connection_error")

    async def test_protocol_oddities(self, servers: Servers) -> None:
        """Informational answers, bare LFs and HTTP/1.0 are read; ambiguous framing is refused cleanly.

        A response with both Content-Length and chunked framing, two lengths, a bad chunk size,
        a header line without a colon or a NUL is what request-smuggling and cache-poisoning
        attacks are made of: connection_error, never a guess.
        """
        body = LINKED.encode()
        length = b"Content-Length: %d\r\n" % len(body)
        kind = b"Content-Type: text/html\r\n"
        readable = {
            "early hints": b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
            + b"HTTP/1.1 200 OK\r\n"
            + kind
            + length
            + b"\r\n"
            + body,
            "bare LF": (b"HTTP/1.1 200 OK\r\n" + kind + length + b"\r\n").replace(b"\r\n", b"\n") + body,
            "HTTP/1.0 to the close": b"HTTP/1.0 200 OK\r\n" + kind + b"\r\n" + body,
        }
        refused = {
            "length and chunked": b"HTTP/1.1 200 OK\r\n"
            + kind
            + length
            + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "two lengths": b"HTTP/1.1 200 OK\r\n" + kind + length + b"Content-Length: 1\r\n\r\n" + body,
            "bad chunk size": b"HTTP/1.1 200 OK\r\n"
            + kind
            + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n",
            "no colon": b"HTTP/1.1 200 OK\r\n" + kind + b"Garbage line\r\n" + length + b"\r\n" + body,
            "NUL in a header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n" + kind + length + b"\r\n" + body,
        }

        def answer(payload: bytes) -> RawPage:
            async def page(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                writer.write(payload)
                await writer.drain()

            return page

        hosts = {}
        for n, (name, payload) in enumerate({**readable, **refused}.items()):
            hosts[name] = await servers.raw(page_only(answer(payload)), f"127.0.6.{n + 1}")
        crawl = await crawl_beside_normal(servers, [host.url("/") for host in hosts.values()], fast())
        outcomes = {name: outcome(crawl[host.url("/")]) for name, host in hosts.items()}
        expected: dict[str, tuple[Status, str | None]] = dict.fromkeys(readable, (Status.VERIFIED, None))
        expected |= dict.fromkeys(refused, (Status.UNREACHABLE, "connection_error"))
        assert outcomes == expected

    async def test_unparsable_retry_after(self, servers: Servers) -> None:
        """A 503 whose Retry-After is no number and no date is retried on the backoff, not a crash."""
        values = iter(["\u00b2", "\u0661\u0662", "1e999", "Sun, 99 Foo 0000 99:99:99 GMT", "-1"])

        async def busy(request: web.Request) -> web.Response:
            return web.Response(status=503, headers={"Retry-After": next(values, "soon")})

        host = await servers.app({"/": busy}, "127.0.0.3")
        crawl = await crawl_beside_normal(servers, [host.url("/")], fast(retries=4))
        result = crawl[host.url("/")]
        assert (*outcome(result), result.attempts) == (Status.PAGE_ERROR, "http_503", 5)
        assert crawl.seconds < 1 + SLACK


class TestBrokenConnections:
    async def test_reset_mid_body(self, servers: Servers) -> None:
        """A connection reset halfway through the body costs every attempt, then connection_error."""

        async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n")
            writer.write(LINKED.encode() + b" " * 20_000)
            await writer.drain()
            writer.transport.abort()

        host = await servers.raw(page_only(half), "127.0.0.3")
        crawl = await crawl_beside_normal(servers, [host.url("/")], fast(retries=2))
        result = crawl[host.url("/")]
        assert (*outcome(result), result.attempts) == (Status.UNREACHABLE, "connection_error", 3)

    async def test_self_signed_tls(self, servers: Servers) -> None:
        """A certificate nobody vouches for is tls_error with verification on, verified with it off."""
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("tls.test").configure_cert(context)
        host = await servers.app({"/": respond(LINKED)}, "127.0.0.3", tls=context)
        source = host.named("tls.test")
        checked = await crawl_beside_normal(servers, [source], fast(resolve={"tls.test": "127.0.0.3"}))
        assert (*outcome(checked[source]), checked[source].attempts) == (Status.UNREACHABLE, "tls_error", 1)
        unchecked = await crawl_beside_normal(
            servers, [source], fast(resolve={"tls.test": "127.0.0.3"}, verify_tls=False)
        )
        assert unchecked[source].status is Status.VERIFIED
        assert unchecked[source].final_url == source


class TestContent:
    async def test_image_served_as_html(self, servers: Servers) -> None:
        """PNG bytes labelled text/html are parsed as HTML, as a browser would: missing, not a crash."""
        png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 400
        host = await servers.app({"/": respond(png, content_type="text/html")}, "127.0.0.3")
        crawl = await crawl_beside_normal(servers, [host.url("/")], fast())
        result = crawl[host.url("/")]
        assert (result.status, result.http_status, result.bytes) == (Status.MISSING, 200, len(png))

    async def test_unknown_charset_label(self, servers: Servers) -> None:
        """A charset label nobody knows is ignored: the bytes decide (UTF-8 here), the link is found."""
        page = f'<html><body><a href="{TARGET}">café crème</a></body></html>'.encode()
        host = await servers.app(
            {"/": respond(page, content_type="text/html; charset=x-klingon")}, "127.0.0.3"
        )
        crawl = await crawl_beside_normal(servers, [host.url("/")], fast())
        result = crawl[host.url("/")]
        assert (result.status, result.encoding) == (Status.VERIFIED, "utf-8")
        assert result.link is not None
        assert result.link.text == "café crème"

    async def test_utf16_pages(self, servers: Servers) -> None:
        """UTF-16 with a byte-order mark, and UTF-16 named only by the header, are decoded and verified."""
        text = f'<html><body><a href="{TARGET}">δοκιμή</a></body></html>'
        routes = {
            "/bom-be": respond(b"\xfe\xff" + text.encode("utf-16-be"), content_type="text/html"),
            "/header": respond(text.encode("utf-16-le"), content_type="text/html; charset=utf-16"),
        }
        host = await servers.app(routes, "127.0.0.3")
        crawl = await crawl_beside_normal(servers, [host.url(path) for path in routes], fast())
        for path, encoding in (("/bom-be", "utf-16be"), ("/header", "utf-16le")):
            result = crawl[host.url(path)]
            assert (result.status, result.encoding) == (Status.VERIFIED, encoding)
            assert result.link is not None
            assert result.link.text == "δοκιμή"


class TestRedirects:
    async def test_redirect_loop(self, servers: Servers) -> None:
        """A loop of three stops at the first repeat: page_error too_many_redirects, each hop once."""
        routes = {"/a": redirect("/b"), "/b": redirect("/c", 302), "/c": redirect("/a", 307)}
        host = await servers.app(routes, "127.0.0.3")
        crawl = await crawl_beside_normal(servers, [host.url("/a")], fast())
        result = crawl[host.url("/a")]
        assert outcome(result) == (Status.PAGE_ERROR, "too_many_redirects")
        assert [hop.status for hop in result.redirects] == [301, 302, 307]
        assert [host.log.count(p) for p in ("/a", "/b", "/c")] == [2, 1, 1]

    async def test_fifty_hop_chain(self, servers: Servers) -> None:
        """A 50-hop chain stops after max_redirects (10) hops; hop 11 is never requested."""
        routes: dict[str, Handler] = {f"/r{n}": redirect(f"/r{n + 1}") for n in range(50)}
        routes["/r50"] = respond(LINKED)
        host = await servers.app(routes, "127.0.0.3")
        crawl = await crawl_beside_normal(servers, [host.url("/r0")], fast())
        result = crawl[host.url("/r0")]
        assert (*outcome(result), len(result.redirects)) == (Status.PAGE_ERROR, "too_many_redirects", 10)
        assert result.final_url == host.url("/r10")
        assert (host.log.count("/r10"), host.log.count("/r11")) == (1, 0)

    async def test_meta_refresh_loop(self, servers: Servers) -> None:
        """Pages refreshing to each other stop at the first repeat; one refreshing to itself is the page."""

        def refresh(to: str, extra: str = "") -> Handler:
            return respond(f'<meta http-equiv="refresh" content="0; url={to}">{extra}')

        routes = {"/a": refresh("/b"), "/b": refresh("/a"), "/self": refresh("/self#top", LINKED)}
        host = await servers.app(routes, "127.0.0.3")
        crawl = await crawl_beside_normal(servers, [host.url("/a"), host.url("/self")], fast())
        looped = crawl[host.url("/a")]
        assert outcome(looped) == (Status.PAGE_ERROR, "too_many_redirects")
        assert [hop.status for hop in looped.redirects] == [None, None]
        assert crawl[host.url("/self")].status is Status.VERIFIED
        assert (host.log.count("/a"), host.log.count("/self")) == (2, 1)


class TestHostileRobots:
    async def test_ten_megabyte_robots_txt(self, servers: Servers) -> None:
        """A 10 MB robots.txt is cut at max_robots_bytes: early rules hold, a late `Disallow: /` unseen."""
        early = b"User-agent: *\nDisallow: /private\n"
        filler = b"# " + b"x" * 1022 + b"\n"

        async def robots(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            await response.write(early)
            for _ in range(10 * 1024):
                await response.write(filler)
            await response.write(b"Disallow: /\n")
            return response

        routes = {"/robots.txt": robots, "/public": respond(LINKED), "/private": respond(LINKED)}
        host = await servers.app(routes, "127.0.0.3")
        sources = [host.url("/public"), host.url("/private")]
        crawl = await crawl_beside_normal(servers, sources, fast())
        assert crawl[host.url("/public")].status is Status.VERIFIED
        assert outcome(crawl[host.url("/private")]) == (Status.BLOCKED, "robots_disallowed")
        assert (host.log.count("/robots.txt"), host.log.count("/private")) == (1, 0)

    async def test_robots_txt_redirect_loop(self, servers: Servers) -> None:
        """robots.txt redirecting in a circle counts as unavailable (4xx): allow all, a few requests."""
        routes = {"/robots.txt": redirect("/r1"), "/r1": redirect("/robots.txt"), "/": respond(LINKED)}
        host = await servers.app(routes, "127.0.0.3")
        crawl = await crawl_beside_normal(servers, [host.url("/")], fast())
        assert crawl[host.url("/")].status is Status.VERIFIED
        assert host.log.count("/robots.txt") + host.log.count("/r1") <= 6

    async def test_slow_robots_txt(self, servers: Servers) -> None:
        """robots.txt slower than `timeout` blocks its host (robots_unavailable); one in time is waited for.

        The normal host's result comes first: a slow robots.txt holds up its own host only.
        """
        too_slow = await servers.app(
            {"/robots.txt": respond("", delay=30), "/": respond(LINKED)}, "127.0.0.3"
        )
        in_time = await servers.app(
            {"/robots.txt": respond("User-agent: *\nAllow: /\n", delay=0.5), "/": respond(LINKED)},
            "127.0.0.4",
        )
        sources = [too_slow.url("/"), in_time.url("/")]
        crawl = await crawl_beside_normal(servers, sources, fast(timeout=1.0, retries=1))
        assert outcome(crawl[too_slow.url("/")]) == (Status.BLOCKED, "robots_unavailable")
        assert crawl[in_time.url("/")].status is Status.VERIFIED
        assert too_slow.log.count("/") == 0
        assert crawl.order[0] not in sources
        assert crawl.seconds < 2.0 + SLACK


class TestCrawlLimits:
    @contextmanager
    def no_more_than(self, seconds: float) -> Iterator[None]:
        started = time.monotonic()
        yield
        assert time.monotonic() - started < seconds

    async def test_many_hostile_hosts_at_once(self, servers: Servers) -> None:
        """Stallers, droppers and bombs together on 12 hosts: every claim gets its result, in bounded time."""

        async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await forever()

        async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.transport.abort()

        hosts: list[Server] = []
        for n in range(4):
            hosts.append(await servers.raw(page_only(stall), f"127.0.1.{n + 1}"))
            hosts.append(await servers.raw(page_only(drop), f"127.0.2.{n + 1}"))
            hosts.append(await servers.app({"/": serve_bomb(bomb("gzip"))}, f"127.0.3.{n + 1}"))
        with self.no_more_than(3.0 + SLACK):
            crawl = await crawl_beside_normal(
                servers, [host.url("/") for host in hosts], fast(timeout=1.0, retries=1, max_bytes=MIB)
            )
        reasons = sorted(str(crawl[host.url("/")].reason) for host in hosts)
        assert reasons == ["None"] * 4 + ["connection_error"] * 4 + ["timeout"] * 4
