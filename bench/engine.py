"""The fetch engine's two figures: throughput, and politeness kept under load.

A child process serves 50 loopback hosts (127.0.3.1 to 127.0.3.50, one aiohttp application
bound to every address, same port) and stamps every request with the server's clock, per
local address. The crawler runs in this process through `crawler.engine.pipeline.verify`, one claim
per page, robots.txt fetched once per host:

1. throughput: requests per second with delay 0 and per_host 2 (server-side count / wall time);
2. politeness: 50 hosts x 20 pages with delay 0.2 s; a violation is two request starts to
   one host closer than the delay (minus TOLERANCE, for scheduling noise on the server side)
   or more than per_host requests in flight at one host. There must be none.

    .venv/bin/python bench/engine.py                 # both figures
    .venv/bin/python bench/engine.py --pages 400     # more pages per host for throughput
    .venv/bin/python bench/engine.py --uvloop        # on uvloop, as the command line runs
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

import structlog
from aiohttp import ClientSession, web

from crawler.config import Settings
from crawler.engine.pipeline import verify
from crawler.models import Claim, Status

HOSTS = [f"127.0.3.{i}" for i in range(1, 51)]
TARGET = "https://target.example/landing"
PAGE = (
    "<!doctype html><html><head><title>bench</title></head><body><main><p>text</p>"
    f'<a href="{TARGET}">anchor</a>' + "<p>filler paragraph</p>" * 40 + "</main></body></html>"
)
ROBOTS = "User-agent: *\nAllow: /\n"
# Server-side stamps come from one process and one clock; this allows for its event loop
# picking a request up a little late or early relative to the client's spacing.
TOLERANCE = 0.010


def serve(port: int) -> None:
    """Child process: every host on `port`, stamping each request; GET /__stats dumps the stamps."""
    starts: dict[str, list[float]] = defaultdict(list)
    in_flight: dict[str, int] = defaultdict(int)
    peak: dict[str, int] = defaultdict(int)

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/__stats":
            body = json.dumps({"starts": starts, "peak": peak})
            starts.clear()
            peak.clear()
            return web.Response(text=body, content_type="application/json")
        host = request.transport.get_extra_info("sockname")[0] if request.transport else "?"
        starts[host].append(time.monotonic())
        in_flight[host] += 1
        peak[host] = max(peak[host], in_flight[host])
        try:
            await asyncio.sleep(0)  # let concurrent requests of the host overlap, as real ones do
            if request.path == "/robots.txt":
                return web.Response(text=ROBOTS, content_type="text/plain")
            return web.Response(text=PAGE, content_type="text/html")
        finally:
            in_flight[host] -= 1

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        for host in HOSTS:
            await web.TCPSite(runner, host, port, backlog=1024).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


async def stats(port: int) -> dict[str, Any]:
    async with ClientSession() as session, session.get(f"http://{HOSTS[0]}:{port}/__stats") as resp:
        data: dict[str, Any] = await resp.json()
        return data


def claims(port: int, pages: int) -> list[Claim]:
    """One claim per page, hosts interleaved so every host has work from the start."""
    return [Claim(f"http://{host}:{port}/p/{n}", TARGET) for n in range(pages) for host in HOSTS]


async def crawl(port: int, pages: int, settings: Settings) -> tuple[float, int, dict[str, Any]]:
    """(wall seconds, verified results, server stats) of one run."""
    await stats(port)  # reset
    started = time.monotonic()
    verified = 0
    async for result in verify(claims(port, pages), settings):
        verified += result.status is Status.VERIFIED
    wall = time.monotonic() - started
    return wall, verified, await stats(port)


def violations(data: dict[str, Any], delay: float, per_host: int) -> tuple[int, float]:
    """(politeness violations, smallest gap seen) from the server's stamps."""
    bad = sum(1 for peak in data["peak"].values() if peak > per_host)
    smallest = float("inf")
    for times in data["starts"].values():
        for a, b in itertools.pairwise(sorted(times)):
            smallest = min(smallest, b - a)
            bad += b - a < delay - TOLERANCE
    return bad, smallest


def settings(delay: float) -> Settings:
    """Loopback hosts, 64 requests in flight, 2 a host, no retries (every host answers)."""
    return Settings(allow_private=True, timeout=10.0, retries=0, delay=delay, per_host=2, concurrency=64)


async def run(port: int, pages: int) -> None:
    fast = settings(delay=0.0)
    wall, verified, data = await crawl(port, pages, fast)
    requests = sum(len(times) for times in data["starts"].values())
    rate = requests / wall
    print(f"throughput: {requests} requests ({verified} pages verified) in {wall:.2f} s = {rate:.0f} req/s")
    print(f"  (50 hosts, {pages} pages each, delay 0, per_host 2, concurrency 64)")

    polite = settings(delay=0.2)
    wall, verified, data = await crawl(port, 20, polite)
    bad, smallest = violations(data, 0.2, 2)
    requests = sum(len(times) for times in data["starts"].values())
    print(
        f"politeness: {bad} violations over {requests} requests ({verified} pages verified) in {wall:.2f} s"
    )
    print(f"  (50 hosts x 20 pages, delay 0.2 s, per_host 2; smallest gap {smallest * 1000:.1f} ms,")
    print(f"   tolerance {TOLERANCE * 1000:.0f} ms; ideal wall time {20 * 0.2:.1f} s for 21 requests a host)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=18290)
    parser.add_argument("--pages", type=int, default=200, help="pages per host for the throughput run")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port)
        return
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--port", str(args.port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            sys.exit("the server process did not start")
        if args.uvloop:
            import uvloop

            uvloop.run(run(args.port, args.pages))
        else:
            asyncio.run(run(args.port, args.pages))
    finally:
        server.terminate()
        server.wait()
    print(f"loop: {'uvloop' if args.uvloop else 'asyncio'}; cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
