"""Politeness through the real command line: 100 hosts x 20 pages at a 0.5 s delay, timed by the servers.

A child process serves 100 loopback hosts (127.0.4.1 to 127.0.4.100, one minimal HTTP/1.1 server
bound to every address, same port) and stamps each request with its own clock, per local address,
as its first bytes arrive. `crawler verify` runs as a user runs it, on a CSV of one claim a
page (hosts interleaved), with CRAWLER_DELAY=0.5 and the default per_host 1 and concurrency 64.

Two figures, both must hold:

- efficiency: the ideal is 10 s. Each host gets 21 requests (robots.txt counts against the host's
  budget like any request, as the contract says, then 20 pages); no two may start closer than
  the delay, so the last starts 20 x 0.5 = 10 s after the first at best, and hosts run side by
  side. The time counted is the command's wall time, from start to exit: interpreter start-up,
  import of the claims, the last answer and the last write are all in it. Goal: within 1.1x.
- spacing: as the server saw them, no two request starts to one host closer than the delay minus
  TOLERANCE (the server's own event loop stamps a request a little after it arrives); with one
  request in flight per host, two requests of a host at once would break this rule too.

    .venv/bin/python bench/politeness.py
    .venv/bin/python bench/politeness.py --hosts 50 --pages 40 --delay 0.25
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

TARGET = "https://target.example/landing"
PAGE = (
    "<!doctype html><html><head><title>polite</title></head><body><main><p>text</p>"
    f'<a href="{TARGET}">anchor</a>' + "<p>filler paragraph</p>" * 40 + "</main></body></html>"
)
ROBOTS = "User-agent: *\nAllow: /\n"
TOLERANCE = 0.005
"""Seconds a server-side gap may fall short of the delay: the server's event loop picks a request up
a little after its bytes arrive, and a busy moment can delay one stamp more than the next."""
GOAL = 1.1


def host(i: int) -> str:
    return f"127.0.4.{i + 1}"


class _Stamping(asyncio.Protocol):
    """A minimal HTTP/1.1 server connection that stamps each request when its first bytes arrive.

    Stamped in `data_received`, before any parsing or dispatch, so that the server's own work
    adds as little as possible between a request's arrival and its stamp.
    """

    def __init__(self, starts: dict[str, list[float]]) -> None:
        self.starts = starts
        self.pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.address = transport.get_extra_info("sockname")[0]

    def data_received(self, data: bytes) -> None:
        if not self.pending:
            self.starts[self.address].append(time.monotonic())
        self.pending += data
        while b"\r\n\r\n" in self.pending:  # GET requests only: no bodies to skip
            head, _, self.pending = self.pending.partition(b"\r\n\r\n")
            self.respond(head.split(b" ", 2)[1].decode())
            if self.pending:
                self.starts[self.address].append(time.monotonic())

    def respond(self, path: str) -> None:
        if path == "/__stats":
            kind, body = "application/json", json.dumps(self.starts)
        elif path == "/robots.txt":
            kind, body = "text/plain", ROBOTS
        else:
            kind, body = "text/html", PAGE
        payload = body.encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(payload)}\r\n\r\n"
        self.transport.write(head.encode() + payload)


def serve(port: int, hosts: int) -> None:
    """Child process: every host on `port`; GET /__stats gives the stamps per local address."""
    gc.disable()  # a collection pause in the server would show as a short gap after a long one
    starts: dict[str, list[float]] = defaultdict(list)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for i in range(hosts):
            await loop.create_server(lambda: _Stamping(starts), host(i), port, backlog=1024)
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def write_claims(path: Path, port: int, hosts: int, pages: int) -> None:
    """One claim a page, hosts interleaved so that every host has work from the start."""
    rows = [f"http://{host(i)}:{port}/p/{n},{TARGET}" for n in range(pages) for i in range(hosts)]
    path.write_text("source_url,target_url\n" + "\n".join(rows) + "\n", encoding="utf-8")


def verify(crawler: str, workdir: Path, delay: float) -> tuple[float, float, Counter[str]]:
    """(start and wall seconds of `crawler verify` on the monotonic clock the server shares, results by
    status)."""
    env = dict(os.environ, CRAWLER_ALLOW_PRIVATE="true", CRAWLER_DELAY=str(delay), NO_COLOR="1")
    db = workdir / "polite.sqlite"
    command = [crawler, "verify", str(workdir / "claims.csv"), "--db", str(db), "--quiet"]
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"crawler verify exited {done.returncode}: {done.stderr[-2000:]}")
    exported = subprocess.run(
        [crawler, "export", "--db", str(db), "--format", "jsonl"], capture_output=True, text=True, check=True
    )
    return started, wall, Counter(json.loads(line)["status"] for line in exported.stdout.splitlines())


def stats(port: int) -> dict[str, list[float]]:
    """Request stamps per host address (the stats request itself is the last one of host 0)."""
    with urllib.request.urlopen(f"http://{host(0)}:{port}/__stats", timeout=10) as answer:
        data: dict[str, list[float]] = json.load(answer)
    data[host(0)].pop()
    return data


def spacing(starts: dict[str, list[float]], delay: float) -> tuple[int, float, float]:
    """(violations, smallest gap, server-side span from the first request to the last).

    With one request in flight per host, two requests of a host at once show as a gap below the
    delay too: this one count covers both rules.
    """
    bad = 0
    smallest = float("inf")
    for times in starts.values():
        for a, b in itertools.pairwise(sorted(times)):
            smallest = min(smallest, b - a)
            bad += b - a < delay - TOLERANCE
    every = [stamp for times in starts.values() for stamp in times]
    return bad, smallest, max(every) - min(every)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--pages", type=int, default=20, help="pages per host")
    parser.add_argument("--delay", type=float, default=0.5)
    parser.add_argument("--port", type=int, default=18390)
    parser.add_argument("--crawler", default=".venv/bin/crawler")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port, args.hosts)
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--port", str(args.port), "--hosts", str(args.hosts)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            sys.exit("the server process did not start")
        with tempfile.TemporaryDirectory(prefix="bench-polite-") as tmp:
            write_claims(Path(tmp) / "claims.csv", args.port, args.hosts, args.pages)
            started, wall, statuses = verify(args.crawler, Path(tmp), args.delay)
        data = stats(args.port)
    finally:
        server.terminate()
        server.wait()
    report(args, started, wall, statuses, data)


def report(
    args: argparse.Namespace,
    started: float,
    wall: float,
    statuses: Counter[str],
    data: dict[str, list[float]],
) -> None:
    ideal = args.pages * args.delay  # pages + robots.txt = pages + 1 requests, `pages` gaps a host
    bad, smallest, span = spacing(data, args.delay)
    requests = sum(len(times) for times in data.values())
    print(f"{args.hosts} hosts x {args.pages} pages, delay {args.delay} s, per_host 1: {requests} requests")
    print(f"results: {dict(statuses)}")
    print(f"ideal {ideal:.2f} s ({args.pages + 1} requests a host, robots.txt included)")
    print(f"crawler verify wall time {wall:.2f} s = {wall / ideal:.3f}x the ideal (goal <= {GOAL}x)")
    print(f"server-side span, first request to last: {span:.2f} s = {span / ideal:.3f}x the ideal")
    first = min(min(times) for times in data.values())
    print(f"  before the first request (start-up, import) {first - started:.2f} s, ", end="")
    print(f"after the last (last answer, writes, exit) {started + wall - first - span:.2f} s")
    tolerance = f"tolerance {TOLERANCE * 1000:.0f} ms"
    print(f"gap violations: {bad} (smallest gap {smallest * 1000:.1f} ms, {tolerance})")
    met = wall <= GOAL * ideal and bad == 0 and statuses.get("verified", 0) == args.hosts * args.pages
    print("goal met" if met else "goal NOT met")


if __name__ == "__main__":
    main()
