"""What WARC evidence costs the event loop: 4,000 pages of ~100 KB written through `Archive`.

The pages are the real HTML of ../shared/corpus/pages between 75 and 135 KB (synthetic HTML of
100 KB when the corpus is absent), cycled to `--pages`. `--writers` tasks (the crawler's
`concurrency`, 64) each build an `Exchange` and await `write_response`, as the engine does
once a body has arrived. The same tasks run once without an archive (the baseline), then
with one, in a fresh temporary directory.

Figures:

- loop CPU per page: CPU time of the event loop's thread (`time.thread_time`) over the run,
  minus the baseline's, divided by the pages: what archiving takes from the crawl itself;
- writer CPU per page: the process's CPU minus the loop thread's (serialising, SHA-256,
  gzip, writes, on the writer thread);
- throughput: pages archived per second of wall time, far above what a polite crawl fetches;
- loop lag: how late a 5 ms timer fires while the archive works (p50, p99, max), against
  the baseline: a blocked loop would show here;
- size on disk against the bodies' size.

    .venv/bin/python bench/archive.py
    .venv/bin/python bench/archive.py --pages 1000 --level 9     # warcio's own gzip level
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from crawler.engine import archive
from crawler.engine.archive import Archive, Exchange

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "pages"
HEADERS = (
    ("Content-Type", "text/html; charset=utf-8"),
    ("Content-Encoding", "gzip"),
    ("Vary", "Accept-Encoding"),
    ("Cache-Control", "max-age=600"),
)
SENT = (("Host", "bench.example"), ("User-Agent", "backlink-crawler/0.1.0"), ("Accept-Encoding", "gzip"))


def pages() -> list[bytes]:
    """~100 KB HTML bodies: the corpus's, else synthetic."""
    if CORPUS.is_dir():
        found = [p.read_bytes() for p in sorted(CORPUS.iterdir()) if 75_000 <= p.stat().st_size <= 135_000]
        if found:
            return found
    row = b"<p>Lorem ipsum dolor sit amet, <a href='/x%d'>link %d</a> consectetur adipiscing.</p>\n"
    return [b"<html><body>" + b"".join(row % (i, i) for i in range(1200)) + b"</body></html>"]


async def run(bodies: Sequence[bytes], count: int, writers: int, directory: Path | None) -> dict[str, float]:
    """Write `count` pages with `writers` tasks (no archive when `directory` is None)."""
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - start - 0.005)

    source = itertools.islice(itertools.cycle(enumerate(bodies)), count)

    async def writer(store: Archive | None) -> None:
        for index, body in source:
            exchange = Exchange(f"https://bench.example/{index}", 200, HEADERS, body, request_headers=SENT)
            if store is not None:
                await store.write_response(exchange)
            else:
                await asyncio.sleep(0)

    tick = asyncio.create_task(ticker())
    loop_cpu, cpu, wall = time.thread_time(), time.process_time(), time.perf_counter()
    if directory is None:
        await asyncio.gather(*(writer(None) for _ in range(writers)))
    else:
        async with Archive(directory, "bench") as store:
            await asyncio.gather(*(writer(store) for _ in range(writers)))
    loop_cpu, cpu, wall = time.thread_time() - loop_cpu, time.process_time() - cpu, time.perf_counter() - wall
    stop.set()
    await tick
    ordered = sorted(lags)
    return {
        "loop_cpu": loop_cpu,
        "cpu": cpu,
        "wall": wall,
        "lag_p50": statistics.median(ordered),
        "lag_p99": ordered[int(len(ordered) * 0.99)],
        "lag_max": ordered[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=4000)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--level", type=int, default=archive.GZIP_LEVEL, help="gzip level of each record")
    args = parser.parse_args()
    archive.GZIP_LEVEL = args.level
    bodies = pages()
    total = sum(len(bodies[i % len(bodies)]) for i in range(args.pages))
    mean = total / args.pages / 1000
    print(f"{args.pages} pages, {len(bodies)} distinct, mean {mean:.1f} KB, gzip level {args.level}")
    base = asyncio.run(run(bodies, args.pages, args.writers, None))
    with tempfile.TemporaryDirectory() as tmp:
        warc = asyncio.run(run(bodies, args.pages, args.writers, Path(tmp)))
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
    per_page = 1000 / args.pages
    loop_ms = (warc["loop_cpu"] - base["loop_cpu"]) * per_page
    print(f"loop CPU per page     {loop_ms:.3f} ms (baseline run {base['loop_cpu'] * per_page:.3f} ms)")
    print(f"writer CPU per page   {(warc['cpu'] - warc['loop_cpu']) * per_page:.3f} ms")
    print(f"throughput            {args.pages / warc['wall']:.0f} pages/s ({warc['wall']:.2f} s wall)")
    for name in ("lag_p50", "lag_p99", "lag_max"):
        print(
            f"loop {name[4:]:<5} lag        {warc[name] * 1000:.2f} ms (baseline {base[name] * 1000:.2f} ms)"
        )
    print(
        f"on disk               {size / 1e6:.1f} MB for {total / 1e6:.1f} MB of bodies ({size / total:.1%})"
    )


if __name__ == "__main__":
    main()
