"""Rendering cost: seconds per page and peak memory of the browser, on pages built by scripts.

One loopback aiohttp server serves a handful of pages whose links a script writes; each is
rendered `--rounds` times through the crawler's own `Renderer` (its requests through the
crawler's client, as in a run), in `auto` mode (waiting for the claimed link) and in `always`
mode (waiting for the page to settle: the load event, then 500 ms with no request in flight).
A sampler reads /proc every 50 ms and sums the memory of every process under this one but
itself: Playwright's driver (node) and the Chromium tree (browser, GPU/utility and renderers).
RSS counts shared pages once per process; PSS shares them out, so it is the fairer total.

    .venv/bin/python bench/render.py
    .venv/bin/python bench/render.py --rounds 20 --concurrency 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from crawler.config import RenderMode, Settings
from crawler.core import urls
from crawler.engine.fetch import Fetcher
from crawler.engine.politeness import Politeness
from crawler.engine.render import Renderer, check_rendering
from crawler.engine.robots_cache import RobotsCache
from crawler.engine.subresources import CrawlerSubresources

HOST = "127.0.0.1"
TARGET = "https://target.example/landing"
ADD_LINKS = (
    "function addLinks(hrefs) { const main = document.getElementById('root');"
    " for (const href of hrefs) { const a = document.createElement('a'); a.href = href;"
    " a.textContent = 'link ' + href; const p = document.createElement('p'); p.append(a);"
    " main.append(p); } }"
)


def shell(script: str) -> str:
    """A page with an empty mount point, filled by `script`."""
    return f"<!doctype html><html><head><title>bench</title></head><body><div id=root></div>{script}</body>"


def filler_js(kilobytes: int) -> str:
    """A script of about `kilobytes` KiB that the engine has to parse and run (a bundle's stand-in)."""
    functions = [f"function f{i}(x) {{ return x * {i} + {i % 7}; }}" for i in range(kilobytes * 20)]
    return "\n".join(functions) + f"\nwindow.total = f{kilobytes * 20 - 1}(2);\n"


def links_json(n: int) -> str:
    return json.dumps([f"https://site{i}.example/page" for i in range(n - 1)] + [TARGET])


PAGES: dict[str, str] = {
    # No script at all: the fixed cost of a render (context, navigation, settle).
    "static": "<!doctype html><html><body><div id=root>"
    + "".join(f'<p><a href="https://site{i}.example/">x</a></p>' for i in range(20))
    + f'<a href="{TARGET}">t</a></div></body></html>',
    # An inline script writes 50 links.
    "inline": shell(f"<script>{ADD_LINKS} addLinks({links_json(50)});</script>"),
    # A script fetches 200 links as JSON, then writes them (a typical client-rendered list).
    "api": shell(f"<script>{ADD_LINKS} fetch('/api.json').then((r) => r.json()).then(addLinks);</script>"),
    # Five 100 KiB scripts, then an XHR for the data: a bundled single-page app.
    "bundle": shell(
        "".join(f"<script src=/chunk{i}.js></script>" for i in range(5))
        + f"<script>{ADD_LINKS} const x = new XMLHttpRequest(); x.open('GET', '/api.json');"
        " x.onload = () => addLinks(JSON.parse(x.responseText)); x.send();</script>"
    ),
    # One 1 MiB script that builds 2,000 elements before the links (a heavy framework page).
    "heavy": shell(
        "<script src=/big.js></script>"
        f"<script>{ADD_LINKS} const root = document.getElementById('root');"
        " for (let i = 0; i < 2000; i++) { const d = document.createElement('div');"
        " d.textContent = 'row ' + i; root.append(d); }"
        " setTimeout(() => fetch('/api.json').then((r) => r.json()).then(addLinks), 50);</script>"
    ),
}


def app() -> web.Application:
    assets = {
        "/api.json": (links_json(200), "application/json"),
        "/big.js": (filler_js(1024), "application/javascript"),
        **{f"/chunk{i}.js": (filler_js(100), "application/javascript") for i in range(5)},
        "/robots.txt": ("User-agent: *\nAllow: /\n", "text/plain"),
    }
    application = web.Application()
    for path, (body, kind) in assets.items():
        application.router.add_get(path, _answer(body, kind))
    return application


def _answer(body: str, kind: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=body, content_type=kind)

    return handler


# Memory of the process tree -------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _descendants(root: int) -> Iterator[int]:
    tree = _children()
    stack = list(tree.get(root, []))
    while stack:
        pid = stack.pop()
        yield pid
        stack.extend(tree.get(pid, []))


def _kib(path: Path, key: str) -> int:
    with suppress(OSError):
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    return 0


@dataclass(slots=True)
class Sampler:
    """Peak RSS and PSS (KiB) of this process's descendants, browser and driver apart."""

    peak: dict[str, int] = field(
        default_factory=lambda: {"chromium_rss": 0, "chromium_pss": 0, "driver_rss": 0}
    )
    processes: int = 0

    def sample(self) -> None:
        totals = dict.fromkeys(self.peak, 0)
        count = 0
        for pid in _descendants(os.getpid()):
            proc = Path(f"/proc/{pid}")
            with suppress(OSError):
                command = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                if "node" in Path(command).name:
                    totals["driver_rss"] += _kib(proc / "status", "VmRSS:")
                    continue
                count += 1
                totals["chromium_rss"] += _kib(proc / "status", "VmRSS:")
                totals["chromium_pss"] += _kib(proc / "smaps_rollup", "Pss:")
        self.processes = max(self.processes, count)
        for key, value in totals.items():
            self.peak[key] = max(self.peak[key], value)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.sample)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)


# The benchmark ---------------------------------------------------------------------------


async def bench(rounds: int, concurrency: int) -> None:
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = runner.addresses[0][1]
    settings = Settings(allow_private=True, delay=0.0, render=RenderMode.AUTO, render_concurrency=concurrency)
    executable = check_rendering(settings)
    sampler, stop = Sampler(), asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    gates = Politeness(concurrency=settings.concurrency, per_host=settings.per_host, delay=settings.delay)
    target = [urls.Target.of(TARGET, "page")]
    print(f"{executable}; {rounds} rounds; render_concurrency {concurrency}; medians in seconds")
    print(f"{'page':8} {'auto s':>7} {'always s':>9} {'requests':>9}  ending (auto / always)")
    started = time.monotonic()
    renders = 0
    try:
        async with Fetcher(settings, gates) as client:
            subresources = CrawlerSubresources(client, RobotsCache(client, settings), settings)
            async with Renderer(settings, subresources, executable=executable) as renderer:
                for name, html in PAGES.items():
                    url = f"http://{HOST}:{port}/{name}"
                    times: dict[str, list[float]] = {"auto": [], "always": []}
                    endings: dict[str, set[str]] = {"auto": set(), "always": set()}
                    requested = 0
                    for mode, wait_for in (("auto", target), ("always", None)):
                        batches = [renderer.render(url, html, wait_for=wait_for) for _ in range(rounds)]
                        for rendered in await asyncio.gather(*batches):
                            if rendered.html is None or TARGET not in rendered.html:
                                raise SystemExit(f"{name}: the link was not rendered: {rendered}")
                            times[mode].append(rendered.elapsed)
                            endings[mode].add(rendered.ending)
                            requested = rendered.requested
                            renders += 1
                    print(
                        f"{name:8} {statistics.median(times['auto']):7.3f}"
                        f" {statistics.median(times['always']):9.3f} {requested:9d}"
                        f"  {'/'.join(sorted(endings['auto']))} / {'/'.join(sorted(endings['always']))}"
                    )
    finally:
        stop.set()
        await sampling
        await runner.cleanup()
    wall = time.monotonic() - started
    peak = sampler.peak
    print(
        f"{renders} renders in {wall:.1f} s: {renders / wall:.2f} pages/s at render_concurrency {concurrency}"
    )
    print(
        f"peak memory: Chromium tree RSS {peak['chromium_rss'] / 1024:.0f} MiB,"
        f" PSS {peak['chromium_pss'] / 1024:.0f} MiB ({sampler.processes} processes at most);"
        f" Playwright driver RSS {peak['driver_rss'] / 1024:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=10, help="renders of each page in each mode")
    parser.add_argument("--concurrency", type=int, default=1, help="render_concurrency")
    options = parser.parse_args()
    if not sys.platform.startswith("linux"):
        sys.exit("bench/render.py reads /proc: Linux only")
    asyncio.run(bench(options.rounds, options.concurrency))


if __name__ == "__main__":
    main()
