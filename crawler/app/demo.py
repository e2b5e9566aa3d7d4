"""The bundled demo site: a few hosts served on loopback, and claims that exercise every status.

`serve()` starts one small aiohttp server per host of `demo_site/site.toml`, each on its own
loopback address (127.0.0.2, 127.0.0.3, ...) and a free port, serving the files under
`demo_site/hosts/<name>/`; a host marked `serve = false` gets an address and port where nothing
listens. `{name}` in the claims, pages and redirects is replaced by that host's `address:port`.

Everything stays on this machine, so the crawler must be allowed private addresses for the
demo (`DEMO_SETTINGS`); never do that against the open web.
"""

from __future__ import annotations

import io
import mimetypes
import socket
import tomllib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

from crawler.app.inputs import ClaimReader, read_claims
from crawler.config import RenderMode, Settings
from crawler.engine import render
from crawler.errors import RenderError

SITE = resources.files("crawler.app") / "demo_site"
# Fast but still polite: the demo shows the real engine, not a special mode of it.
DEMO_SETTINGS = Settings(
    allow_private=True,
    delay=0.05,
    timeout=5.0,
    connect_timeout=2.0,
    retries=1,
    backoff=0.1,
    max_retry_after=1.0,
)


def demo_settings() -> Settings:
    """`DEMO_SETTINGS`, rendering pages that look built by scripts where a browser is found."""
    rendering = replace(DEMO_SETTINGS, render=RenderMode.AUTO)
    try:
        render.check_rendering(rendering)
    except RenderError:
        return DEMO_SETTINGS
    return rendering


@dataclass(frozen=True, slots=True)
class DemoHost:
    """One host of the demo site as `site.toml` describes it."""

    name: str
    address: str
    serve: bool = True
    redirects: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DemoSite:
    """The running demo site: where each host answers, and the claims written for it."""

    authorities: Mapping[str, str]
    """Host name to "address:port"."""
    root: Traversable = SITE

    def expand(self, text: str) -> str:
        """`text` with every `{name}` of a host replaced by its address:port."""
        for name, authority in self.authorities.items():
            text = text.replace("{" + name + "}", authority)
        return text

    def claims_text(self) -> str:
        """The bundled claims CSV with real addresses in it."""
        return self.expand((self.root / "claims.csv").read_text(encoding="utf-8"))

    def claims(self) -> ClaimReader:
        """The bundled claims, read like any claims file (so its bad row is `invalid`)."""
        return read_claims(io.StringIO(self.claims_text()), format="csv")


def load_hosts(root: Traversable = SITE) -> tuple[DemoHost, ...]:
    """The hosts of `site.toml`, in file order."""
    table = tomllib.loads((root / "site.toml").read_text(encoding="utf-8"))
    return tuple(DemoHost(name=name, **spec) for name, spec in table["hosts"].items())


@asynccontextmanager
async def serve(root: Traversable = SITE) -> AsyncIterator[DemoSite]:
    """Serve every host of the demo site until the block ends."""
    authorities: dict[str, str] = {}
    runners: list[web.AppRunner] = []
    try:
        for host in load_hosts(root):
            sock = _bound_socket(host.address)
            address, port = sock.getsockname()[:2]
            authorities[host.name] = f"{address}:{port}"
            if not host.serve:
                sock.close()  # the port was free a moment ago and nothing will listen on it
                continue
            runner = web.AppRunner(_app(host, root / "hosts" / host.name, authorities), access_log=None)
            runners.append(runner)
            await runner.setup()
            await web.SockSite(runner, sock).start()
        yield DemoSite(authorities=dict(authorities), root=root)
    finally:
        for runner in runners:
            await runner.cleanup()


def _bound_socket(address: str) -> socket.socket:
    """A socket bound to `address` on a free port; 127.0.0.1 where only that one exists.

    Linux routes all of 127.0.0.0/8 to the loopback interface; macOS has 127.0.0.1 alone
    unless aliases are added, and then the hosts differ by port only.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((address, 0))
    except OSError:
        sock.bind(("127.0.0.1", 0))
    return sock


def _app(host: DemoHost, files: Traversable, authorities: Mapping[str, str]) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        return _respond(host, files, authorities, request.path)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


def _respond(host: DemoHost, files: Traversable, authorities: Mapping[str, str], path: str) -> web.Response:
    site = DemoSite(authorities)
    if path in host.redirects:
        raise web.HTTPMovedPermanently(site.expand(host.redirects[path]))
    file = _file(files, path)
    if file is None:
        return web.Response(
            status=404,
            text="<!doctype html><title>Not found</title><h1>Not found</h1>",
            content_type="text/html",
        )
    content_type = mimetypes.guess_type(path if not path.endswith("/") else "index.html")[0] or "text/html"
    body = site.expand(file.read_text(encoding="utf-8"))
    return web.Response(text=body, content_type=content_type, headers=dict(host.headers.get(path, {})))


def _file(files: Traversable, path: str) -> Traversable | None:
    """The file serving `path`, or None; parts that could climb out of the host are refused."""
    parts = [part for part in path.split("/") if part]
    if any(part in (".", "..") or "\\" in part for part in parts):
        return None
    file = files.joinpath(*parts) if parts else files
    if file.is_dir():
        file = file / "index.html"
    return file if file.is_file() else None
