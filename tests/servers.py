"""Real loopback servers for tests: aiohttp apps and raw TCP handlers on chosen 127.0.0.x addresses.

Every server records what it saw (request start times, paths, headers, the peak number of
requests in flight), so tests measure politeness on the server side. `running()` gives a
factory that stops every server it started; conftest.py makes it the `servers` fixture:

    from servers import Servers, respond

    async def test_x(servers: Servers) -> None:
        site = await servers.app({"/": respond("<a href=/x>x</a>")}, host="127.0.0.2")
        site.url("/")          # http://127.0.0.2:<port>/
        site.named("a.test")   # http://a.test:<port>/ with resolve={"a.test": "127.0.0.2"}
        site.log.count("/")    # requests the server received for "/"
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDictProxy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Hit:
    """One request as the server saw it, stamped with `time.monotonic()` when it arrived."""

    at: float
    path: str
    headers: CIMultiDictProxy[str] | None = None


@dataclass(slots=True)
class Log:
    """What a server saw: every request, and how many it served at once at most."""

    hits: list[Hit] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0

    def count(self, path: str | None = None) -> int:
        return len(self.starts(path))

    def starts(self, path: str | None = None) -> list[float]:
        return [hit.at for hit in self.hits if path is None or hit.path == path]

    def enter(self, hit: Hit) -> None:
        self.hits.append(hit)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def leave(self) -> None:
        self.in_flight -= 1


@dataclass(frozen=True, slots=True)
class Server:
    """A running server: where it listens and what it saw."""

    host: str
    port: int
    log: Log
    scheme: str = "http"

    @property
    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base + path

    def named(self, name: str, path: str = "/") -> str:
        """The URL of `path` under host `name` (map it with Settings.resolve={name: host})."""
        return f"{self.scheme}://{name}:{self.port}{path}"


def respond(
    body: str | bytes = "",
    *,
    status: int = 200,
    content_type: str | None = "text/html; charset=utf-8",
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
) -> Handler:
    """A handler answering every request the same way, after `delay` seconds."""
    payload = body.encode() if isinstance(body, str) else body

    async def handler(request: web.Request) -> web.StreamResponse:
        if delay:
            await asyncio.sleep(delay)
        out = dict(headers or {})
        if content_type is not None:
            out["Content-Type"] = content_type
        return web.Response(body=payload, status=status, headers=out)

    return handler


def redirect(location: str, status: int = 301) -> Handler:
    """A handler answering with a redirect to `location`."""
    return respond(status=status, content_type=None, headers={"Location": location})


def _recording(log: Log) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        log.enter(Hit(time.monotonic(), request.path, request.headers))
        try:
            return await handler(request)
        finally:
            log.leave()

    return middleware


class Servers:
    """Starts servers on loopback addresses and stops them all on `close()`."""

    def __init__(self) -> None:
        self._runners: list[web.AppRunner] = []
        self._raw: list[asyncio.Server] = []
        self._handlers: set[asyncio.Task[None]] = set()

    async def app(
        self,
        routes: Mapping[str, Handler] | web.Application,
        host: str = "127.0.0.2",
        *,
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> Server:
        """Serve `routes` (path -> handler, or a whole application) on `host`."""
        log = Log()
        app = routes if isinstance(routes, web.Application) else web.Application()
        app.middlewares.append(_recording(log))
        if not isinstance(routes, web.Application):
            for path, handler in routes.items():
                app.router.add_get(path, handler)
        # Handlers that stall on purpose are cancelled, not waited for, when a test ends.
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port, ssl_context=tls)
        await site.start()
        bound = runner.addresses[0][1]
        return Server(host, bound, log, "https" if tls else "http")

    async def raw(self, handler: RawHandler, host: str = "127.0.0.2", *, port: int = 0) -> Server:
        """Serve a raw TCP `handler` on `host`: for misbehaving servers aiohttp won't imitate."""
        log = Log()

        async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            log.enter(Hit(time.monotonic(), ""))
            task = asyncio.current_task()
            assert task is not None
            self._handlers.add(task)
            try:
                await handler(reader, writer)
            except ConnectionError:
                pass  # the client gave up first: that's what many of these tests provoke
            finally:
                log.leave()
                self._handlers.discard(task)
                writer.close()

        server = await asyncio.start_server(counted, host, port)
        self._raw.append(server)
        return Server(host, server.sockets[0].getsockname()[1], log)

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        for server in self._raw:
            server.close()
        for task in self._handlers:
            task.cancel()  # handlers that stall forever on purpose
        await asyncio.gather(*self._handlers, return_exceptions=True)
        for server in self._raw:
            await server.wait_closed()


@asynccontextmanager
async def running() -> AsyncIterator[Servers]:
    """A server factory; every server it started is stopped on exit."""
    factory = Servers()
    try:
        yield factory
    finally:
        await factory.close()
