"""The only aiohttp code: one session per run, the address guard, limits, retries, redirects.

`Fetcher.get` makes one request (no redirects followed: the caller checks robots.txt and
the guard for every hop), retries it as `retry` says, and always returns a `Response`
value: aiohttp, asyncio, ssl and OS exceptions become a reason word in `reason_of`, the one
place that knows them.

The address guard (SSRF) refuses loopback, private, link-local, CGNAT, multicast, reserved
and unspecified addresses, also when wrapped in an IPv6 form (IPv4-mapped, -compatible,
6to4, NAT64). It is applied to the addresses a name resolves to, inside the connector's
resolver, so the address checked is the address connected to (a name that resolves to
127.0.0.1 can't slip through), and to IP-literal URLs, which aiohttp never resolves. With a
proxy, the proxy connects, so the target's name is resolved and checked here beforehand.

A keep-alive connection that the server closed before answering is resent once by aiohttp
itself (RFC 9112, section 9.3.1.1) for GET; that resend is not one of our attempts.
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import SimpleNamespace, TracebackType
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from crawler import logs
from crawler.config import Settings
from crawler.core import guard, retry, urls
from crawler.engine.archive import Archive, Exchange
from crawler.engine.politeness import Politeness
from crawler.models import Evidence, Reason, Redirect

log = logs.get_logger(__name__)

ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ACCEPT_ENCODING = "gzip, deflate, br"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Real sites send more than aiohttp's default of 128 header lines (cookies, CSP, tracing).
MAX_HEADERS = 512


class ForbiddenAddressError(OSError):
    """Every address of a host is refused by the guard (an OSError so aiohttp cleans up as for DNS)."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host}: no public address")
        self.host = host


class GuardedResolver(AbstractResolver):
    """aiohttp's default resolver, with `resolve` overrides, keeping public addresses only.

    An override maps a host name (lower-case) to one IP address; the port stays the URL's,
    as with curl's `--resolve`. Overridden addresses pass the guard like resolved ones.
    `exempt` names (the proxy) are resolved without the guard.
    """

    def __init__(self, *, overrides: Mapping[str, str], guard: bool, exempt: frozenset[str]) -> None:
        self._inner: AbstractResolver | None = None  # made on first use: it needs a running loop
        self._overrides = {name.lower().rstrip("."): ip.strip("[]") for name, ip in overrides.items()}
        self._guard = guard
        self._exempt = exempt

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.lower().rstrip(".")
        override = self._overrides.get(name)
        if override is not None:
            found = [_numeric_result(host, override, port)]
        elif guard.is_localhost(name):  # RFC 6761: loopback, whatever a resolver would say
            found = [_numeric_result(host, address, port) for address in guard.LOOPBACK]
        else:
            self._inner = self._inner or aiohttp.DefaultResolver()
            found = await self._inner.resolve(host, port, family)
        if not self._guard or name in self._exempt:
            return found
        allowed = [result for result in found if not guard.forbidden_address(result["host"])]
        if not allowed:
            raise ForbiddenAddressError(host)
        return allowed

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def _numeric_result(host: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return ResolveResult(
        hostname=host, host=address, port=port, family=family, proto=0, flags=socket.AI_NUMERICHOST
    )


def reason_of(exc: BaseException) -> str:
    """The contract's reason word for a failed request: the one place that knows exceptions."""
    cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    if isinstance(cause, ForbiddenAddressError):
        return Reason.FORBIDDEN_ADDRESS
    if isinstance(exc, TimeoutError):  # asyncio's timeouts and aiohttp's ServerTimeoutError
        return Reason.TIMEOUT
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError | ssl.CertificateError):
        return Reason.TLS_ERROR
    if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return Reason.DNS_ERROR
    return Reason.CONNECTION_ERROR


@dataclass(frozen=True, slots=True)
class Response:
    """One request's outcome: an HTTP answer (status set) or a failure (reason set)."""

    url: str
    status: int | None = None
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    truncated: bool = False
    location: str | None = None
    """The absolute http(s) URL a redirect status points to; None when not a redirect to follow."""
    elapsed: float = 0.0
    attempts: int = 1
    evidence: Evidence | None = None
    """Where this response is archived (`archive` setting), else None."""

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower-case), or None."""
        return next((value for key, value in self.headers if key == name), None)


@dataclass(slots=True)
class Chain:
    """The redirects of one fetch: hop budget and loop detection.

    A loop is the same URL answering with the same redirect twice: without cookies (we keep
    none, like search engine crawlers) the chain can only go round again.
    """

    limit: int
    hops: list[Redirect] = field(default_factory=list)
    seen: set[tuple[str, int | None, str]] = field(default_factory=set)

    def follow(self, url: str, status: int | None, target: str) -> bool:
        """Record the hop url -> target and return True, or False when it must not be followed."""
        key = (url, status, target)
        if len(self.hops) >= self.limit or key in self.seen:
            return False
        self.seen.add(key)
        self.hops.append(Redirect(url, status))
        return True

    @property
    def left(self) -> int:
        return self.limit - len(self.hops)


class Fetcher:
    """The run's HTTP client: an async context manager owning one aiohttp session."""

    def __init__(
        self,
        settings: Settings,
        politeness: Politeness,
        *,
        rng: random.Random | None = None,
        archive: Archive | None = None,
        room: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.politeness = politeness
        self.archive = archive
        self._room = room
        self._rng = rng or random.Random()
        proxy_host = URL(settings.proxy).host if settings.proxy else None
        self._resolver = GuardedResolver(
            overrides=settings.resolve,
            guard=not settings.allow_private,
            exempt=frozenset({proxy_host.lower()}) if proxy_host else frozenset(),
        )
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fetcher:
        sent = aiohttp.TraceConfig()
        sent.on_request_headers_sent.append(self._on_headers_sent)
        self._session = _session(self.settings, self._resolver, sent)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._session is not None:
                await self._session.close()
        finally:
            await self._resolver.close()

    async def get(self, url: str, *, max_bytes: int, interval: float | None = None) -> Response:
        """GET `url` politely, with retries; redirects are returned, not followed."""
        host = urls.host_key(url)
        attempt = 1
        while True:
            async with self.politeness.slot(host, interval=interval):
                if self._room is not None:  # the pages read elsewhere must keep up (`parsing.PoolReader`)
                    await self._room()
                answer = replace(await self._once(url, host, max_bytes), attempts=attempt)
            pause = self._retry_after(answer)
            if pause is not None:
                self.politeness.pause(host, pause)
            if attempt > self.settings.retries or not retry.retryable(answer.status, answer.reason):
                return answer
            wait = retry.wait_before_retry(attempt, self.settings.backoff, self._rng.random(), pause)
            log.debug("retry", url=url, status=answer.status, reason=answer.reason, wait=round(wait, 3))
            await self.politeness.clock.sleep(wait)
            attempt += 1

    async def _on_headers_sent(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: object
    ) -> None:
        host = context.trace_request_ctx
        if isinstance(host, str):
            self.politeness.sent(host)

    def _retry_after(self, answer: Response) -> float | None:
        if answer.status not in retry.RETRY_AFTER_STATUSES:
            return None
        seconds = retry.parse_retry_after(answer.header("retry-after"), datetime.now(UTC))
        return None if seconds is None else min(seconds, self.settings.max_retry_after)

    async def _once(self, url: str, host: str, max_bytes: int) -> Response:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.settings.timeout):
                answer = await self._request(url, host, max_bytes)
        except Exception as exc:  # a hostile server must not end the run: every failure is a value
            answer = Response(url, reason=reason_of(exc))
            _log_failure(url, exc, answer.reason)
        answer = replace(answer, elapsed=time.monotonic() - started)
        if self.archive is not None and answer.status is not None:
            answer = replace(answer, evidence=await self._archived(answer))
        log.debug(
            "request",
            url=url,
            status=answer.status,
            reason=answer.reason,
            bytes=len(answer.body),
            ms=round(answer.elapsed * 1000),
        )
        return answer

    async def _archived(self, answer: Response) -> Evidence:
        """Archive `answer` (an ArchiveError stops the run: evidence is never dropped silently)."""
        assert self.archive is not None
        assert answer.status is not None
        exchange = Exchange(
            answer.url,
            answer.status,
            answer.headers,
            answer.body,
            request_headers=tuple(request_headers(self.settings).items()),
            truncated=answer.truncated or answer.location is not None,  # a redirect's body is not read
        )
        return (await self.archive.write_response(exchange)).evidence

    async def _request(self, url: str, host: str, max_bytes: int) -> Response:
        assert self._session is not None, "Fetcher used outside `async with`"
        target = URL(url, encoded=True)
        await self._guard(target)
        async with self._session.get(target, allow_redirects=False, trace_request_ctx=host) as resp:
            headers = tuple((name.lower(), value) for name, value in resp.headers.items())
            location = _redirect_target(url, resp.status, resp.headers.get("Location"))
            if location is not None:
                return Response(url, resp.status, headers=headers, location=location)
            body, truncated = await _read(resp, max_bytes)
            if truncated:
                resp.close()  # the rest is unwanted: drop the connection rather than drain it
            return Response(url, resp.status, headers=headers, body=body, truncated=truncated)

    async def _guard(self, target: URL) -> None:
        """Refuse IP-literal hosts that aren't public, and with a proxy, names resolving to such."""
        if self.settings.allow_private or target.raw_host is None:
            return
        host = target.raw_host
        if guard.is_ip_literal(host) or guard.is_localhost(host):
            if guard.forbidden_host(host):
                raise ForbiddenAddressError(host)
        elif self.settings.proxy:
            await self._resolver.resolve(host, target.port or 0, socket.AF_UNSPEC)


class IdleBoundConnector(aiohttp.TCPConnector):
    """A TCPConnector keeping at most `max_idle` idle keep-alive connections, least recently used out.

    aiohttp bounds connections in use (`limit`), not idle ones: a crawl over many hosts would
    keep a socket, and a file descriptor, per host until its keep-alive expires, and reach the
    process's descriptor limit (1024 by default on many systems) with requests failing as
    connection errors. httpx calls this bound max_keepalive_connections; aiohttp has no public
    hook for it, so `_release` is extended and the pool read as aiohttp 3.10 to 3.14 keep it
    (`_conns`: connection key -> (connection, last use), oldest first). tests/test_fetch.py
    counts the sockets, so a change of aiohttp's internals shows.
    """

    def __init__(self, *, max_idle: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_idle = max_idle

    def _release(self, key: ConnectionKey, protocol: ResponseHandler, *, should_close: bool = False) -> None:
        super()._release(key, protocol, should_close=should_close)
        pool = self._conns
        idle = self.idle
        while idle > self.max_idle:
            oldest = min(pool, key=lambda k: pool[k][0][1])
            connection, _ = pool[oldest][0]
            del pool[oldest][0]
            if not pool[oldest]:
                del pool[oldest]
            connection.close()
            idle -= 1

    @property
    def idle(self) -> int:
        """Idle connections kept for reuse now."""
        return sum(len(conns) for conns in self._conns.values())


def _session(
    settings: Settings, resolver: AbstractResolver, trace: aiohttp.TraceConfig
) -> aiohttp.ClientSession:
    connector = IdleBoundConnector(
        max_idle=settings.max_idle_connections,
        resolver=resolver,
        ssl=settings.verify_tls,  # False: no certificate checks
        limit=0,  # `Politeness` bounds requests; a pool limit would only add hidden waits
        ttl_dns_cache=300,
        keepalive_timeout=_keepalive(settings.delay),
    )
    headers = {
        **request_headers(settings),
    }
    return aiohttp.ClientSession(
        connector=connector,
        headers=headers,
        proxy=settings.proxy,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None, connect=settings.connect_timeout),
        max_line_size=settings.max_header_bytes,
        max_field_size=settings.max_header_bytes,
        max_headers=MAX_HEADERS,
        trace_configs=[trace],
    )


def request_headers(settings: Settings) -> dict[str, str]:
    """The headers every request sends (aiohttp adds Host and Connection)."""
    return {
        "User-Agent": settings.user_agent,
        "Accept": ACCEPT,
        "Accept-Encoding": ACCEPT_ENCODING,
        **settings.headers,
    }


def _keepalive(delay: float) -> float:
    """Seconds an idle connection is kept: long enough for the host's next request.

    aiohttp bounds connections in use, not idle ones; a crawl touching many hosts once each
    would otherwise hold a socket per host for aiohttp's default 15 s.
    """
    return min(2 * delay + 2, 15.0)


def _redirect_target(url: str, status: int, location: str | None) -> str | None:
    if status not in REDIRECT_STATUSES or not location:
        return None
    resolved = urls.resolve(location, url)
    return urls.without_fragment(resolved) if resolved and urls.is_http(resolved) else None


async def _read(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the decoded body, and whether more was there.

    aiohttp inflates gzip, deflate and br in pieces of at most its read buffer and stops
    reading the socket while the buffer is full, so a compression bomb costs no more memory
    than the bytes we ask for; each read returns what is buffered, up to what is still wanted.
    """
    chunks = []
    size = 0
    while size <= limit:
        chunk = await resp.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    return (body[:limit], True) if size > limit else (body, False)


def _log_failure(url: str, exc: Exception, reason: str | None) -> None:
    known = (aiohttp.ClientError, OSError, TimeoutError, HttpProcessingError, ValueError)
    if isinstance(exc, known):
        log.debug("request_failed", url=url, reason=reason, error=repr(exc))
    else:  # not an exception a server should be able to cause: worth a look
        log.warning("request_failed_unexpectedly", url=url, reason=reason, exc_info=exc)
