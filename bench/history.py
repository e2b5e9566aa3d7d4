"""What monitoring costs at scale: `--claims` (1,000,000) claims checked in `--runs` (5) runs,
written straight through the SQLite store (no fetching), then the reads behind `changes`,
`history`, `report` and its series timed.

Claims spread over 20,000 source hosts. Each run decides every claim with a synthetic result
whose pattern makes the fold work: most links stay present, some are removed (suspect, then
lost), some come back, some change rel or anchor, some pages fail with 404 or 500, some hosts
block us by robots.txt. Results are saved as the crawler saves them (`store.save`, batches of
`--batch`, 500 by default as the writer does), so the fold, the states and the events are
written with them, one transaction a batch.

Timed, each the median of `--repeat` (5) tries:

- `events(run)`: every event of the latest run, and only its `lost` and `rel_changed` events;
- `events(since=first run)`: every event after the first run;
- `history(claim_id)`: one claim's results and events (claims picked at random);
- `result(claim_id)`: one claim's latest result (for `evidence`);
- `state_counts(run)`, `run_points()`, and a whole pass of `report_rows(run)`.

    .venv/bin/python bench/history.py
    .venv/bin/python bench/history.py --claims 200000 --db /somewhere/with/space.sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from crawler.models import Claim, Flag, Link, Region, Result, Status
from crawler.store.sqlite import Store

SETTINGS = {"confirm_runs": 2, "unreachable_runs": 3}


def claims(count: int) -> list[Claim]:
    return [
        Claim(
            f"https://site{n % 20000}.example/post/{n}",
            f"https://shop.example/p/{n % 1000}",
            expected_anchor="running shoes",
            tags={"vendor": f"v{n % 7}"},
        )
        for n in range(count)
    ]


def decide(item: Claim, n: int, run: int, run_id: str) -> Result:
    """A synthetic result: what claim `n` shows in run `run` (patterns by n modulo 100)."""
    kind = n % 100
    base: dict[str, Any] = {"http_status": 200, "indexable": True}
    status, reason, flags = Status.VERIFIED, None, tuple[Flag, ...]()
    text, rel = "Running shoes", tuple[str, ...]()
    if (kind < 5 and run >= 1) or (kind < 8 and run in (1, 2)):  # removed for good; removed, restored
        status = Status.MISSING
    elif kind < 11 and run >= 2:  # turned nofollow
        status, rel, flags = Status.NOFOLLOW, ("nofollow",), (Flag.NOFOLLOW,)
    elif kind < 13 and run >= 3:  # anchor rewritten
        text = "Shoes for running"
    elif kind < 15 and run == 2:  # page gone once
        status, reason, base = Status.PAGE_ERROR, "http_404", {"http_status": 404}
    elif kind < 18 and run in (1, 2, 3):  # outage
        status, reason, base = Status.PAGE_ERROR, "http_500", {"http_status": 500}
    elif kind < 19 and run >= 1:  # robots block
        status, reason, base = Status.BLOCKED, "robots_disallowed", {}
    link = Link("/p", item.target_url, text, rel, False, Region.MAIN) if status in _PRESENT else None
    return Result(
        item.id,
        item.source_url,
        item.target_url,
        item.tags,
        run_id,
        "2026-01-01T00:00:00.000Z",
        status,
        reason=reason,
        flags=flags,
        link=link,
        **base,
    )


_PRESENT = (Status.VERIFIED, Status.NOFOLLOW, Status.NOT_INDEXABLE)


async def build(path: Path, count: int, runs: int, batch: int) -> list[str]:
    """The database: `count` claims, `runs` runs over all of them; returns the run ids."""
    items = claims(count)
    run_ids = []
    async with Store(path) as store:
        for run_number in range(runs):
            started = time.perf_counter()
            run = await store.begin_run(SETTINGS, fresh=True)
            if run_number == 0:
                await store.add_claims(run, items)
                print(f"  imported {count:,} claims in {time.perf_counter() - started:.1f} s", flush=True)
            else:
                await store.add_all_claims(run)
            saving = time.perf_counter()
            events = 0
            for start in range(0, count, batch):
                chunk = items[start : start + batch]
                saved = await store.save(
                    [decide(c, start + i, run_number, run.id) for i, c in enumerate(chunk)]
                )
                events += len(saved.events)
                if (start // batch) % 400 == 0 and start:
                    rate = start / (time.perf_counter() - saving)
                    print(f"  run {run_number + 1}: {start:,} results, {rate:,.0f} results/s", flush=True)
            took = time.perf_counter() - saving
            finishing = time.perf_counter()
            await store.finish_run(run)  # counts, and the run's point on the series
            print(
                f"run {run_number + 1}/{runs}: {count:,} results and {events:,} events in {took:.1f} s"
                f" ({count / took:,.0f} results/s, fold and writes);"
                f" finish_run {time.perf_counter() - finishing:.1f} s",
                flush=True,
            )
            run_ids.append(run.id)
    return run_ids


async def timed(label: str, repeat: int, work: Callable[[], Awaitable[object]]) -> None:
    times = []
    outcome: object = None
    for _ in range(repeat):
        started = time.perf_counter()
        outcome = await work()
        times.append(time.perf_counter() - started)
    median, worst = statistics.median(times) * 1000, max(times) * 1000
    print(f"{label:<40} median {median:9.1f} ms   max {worst:9.1f} ms   -> {outcome}")


async def measure(path: Path, count: int, run_ids: list[str], repeat: int) -> None:
    items = claims(min(count, 100000))
    picks = random.Random(7).sample(items, repeat)
    latest, first = run_ids[-1], run_ids[0]
    async with Store(path) as store:

        async def all_events() -> int:
            return sum([1 async for _ in store.events(run_id=latest)])

        async def some_events() -> int:
            return sum([1 async for _ in store.events(run_id=latest, types=["lost", "rel_changed"])])

        async def since_events() -> int:
            return sum([1 async for _ in store.events(since=first)])

        async def first_events_found() -> int:
            return sum([1 async for _ in store.events(run_id=first, types=["found"])])

        chosen = iter(picks * 3)

        async def one_history() -> int:
            return len(await store.history(next(chosen).id))

        async def one_result() -> str | None:
            found = await store.result(next(chosen).id)
            return found.state if found else None

        async def report_pass() -> int:
            return sum([1 async for _ in store.report_rows(latest)])

        async def counts() -> dict[str, int]:
            return {state.value: n for state, n in (await store.state_counts(latest)).items()}

        async def points() -> int:
            return len(await store.run_points())

        await timed("events(latest run), all", repeat, all_events)
        await timed("events(latest run, lost+rel_changed)", repeat, some_events)
        await timed("events(first run, found)", 1, first_events_found)
        await timed("events(since=first run), all", 1, since_events)
        await timed("history(claim_id)", repeat, one_history)
        await timed("result(claim_id)", repeat, one_result)
        await timed("state_counts(latest run)", repeat, counts)
        await timed("run_points() over every run", 1, points)
        await timed("report_rows(latest run), whole pass", 1, report_pass)
        started = time.perf_counter()
        rebuilt = await store.rebuild_history() if os.environ.get("BENCH_REBUILD") else None
        if rebuilt:
            print(f"rebuild_history(): {rebuilt} in {time.perf_counter() - started:.1f} s")


async def main(arguments: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(arguments.db) if arguments.db else Path(scratch) / "history.sqlite"
        if path.exists():
            raise SystemExit(f"{path} exists: the benchmark builds its own database")
        print(
            f"{arguments.claims:,} claims x {arguments.runs} runs, batches of {arguments.batch}", flush=True
        )
        started = time.perf_counter()
        run_ids = await build(path, arguments.claims, arguments.runs, arguments.batch)
        size = path.stat().st_size + (
            path.with_name(path.name + "-wal").stat().st_size
            if path.with_name(path.name + "-wal").exists()
            else 0
        )
        print(f"built in {time.perf_counter() - started:.0f} s, {size / 2**20:,.0f} MiB", flush=True)
        await measure(path, arguments.claims, run_ids, arguments.repeat)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", help="build the database here (default: a temporary directory)")
    asyncio.run(main(parser.parse_args()))
