"""politeness: per-host places, start intervals, pauses and the global bound, on virtual time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import defaultdict
from collections.abc import Awaitable, Iterable

import pytest

from crawler.engine.politeness import Politeness

# How many loop turns let every woken task run until it blocks again on virtual time.
SETTLE_TURNS = 50


class VirtualClock:
    """Time that jumps to the next sleeper's wake-up as soon as every task is blocked."""

    def __init__(self) -> None:
        self.t = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.t + max(seconds, 0.0), next(self._order), future))
        await future

    async def run(self, work: Iterable[Awaitable[None]]) -> None:
        """Run `work` to completion, advancing time whenever nothing else can happen."""
        tasks = [asyncio.ensure_future(item) for item in work]
        while not all(task.done() for task in tasks):
            for _ in range(SETTLE_TURNS):
                await asyncio.sleep(0)
            if self._sleepers:
                wake, _, future = heapq.heappop(self._sleepers)
                self.t = max(self.t, wake)
                if not future.done():
                    future.set_result(None)
        for task in tasks:
            task.result()


class Recorder:
    """Start times and in-flight counts per host, as a server would see them."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.starts: dict[str, list[float]] = defaultdict(list)
        self.in_flight: dict[str, int] = defaultdict(int)
        self.peak: dict[str, int] = defaultdict(int)
        self.total = 0
        self.total_peak = 0

    async def request(self, gates: Politeness, host: str, work: float, interval: float | None = None) -> None:
        async with gates.slot(host, interval=interval):
            self.starts[host].append(self.clock.now())
            self.in_flight[host] += 1
            self.total += 1
            self.peak[host] = max(self.peak[host], self.in_flight[host])
            self.total_peak = max(self.total_peak, self.total)
            await self.clock.sleep(work)
            self.in_flight[host] -= 1
            self.total -= 1

    def gaps(self, host: str) -> list[float]:
        times = sorted(self.starts[host])
        return [b - a for a, b in itertools.pairwise(times)]


def setup(
    concurrency: int = 64, per_host: int = 1, delay: float = 0.0
) -> tuple[VirtualClock, Politeness, Recorder]:
    clock = VirtualClock()
    gates = Politeness(concurrency=concurrency, per_host=per_host, delay=delay, clock=clock)
    return clock, gates, Recorder(clock)


async def test_per_host_places_are_never_exceeded() -> None:
    """With per_host=2 no host ever has more than two requests in flight."""
    clock, gates, rec = setup(per_host=2)
    await clock.run(rec.request(gates, host, 1.0) for host in ("a", "b", "c") for _ in range(10))
    assert rec.peak == {"a": 2, "b": 2, "c": 2}
    assert clock.now() == pytest.approx(5.0)


async def test_starts_are_spaced_by_delay_even_with_two_places() -> None:
    """Two places of one host still start `delay` apart, whichever finishes first."""
    clock, gates, rec = setup(per_host=2, delay=0.5)
    await clock.run(rec.request(gates, "a", work) for work in (2.0, 0.1, 1.3, 0.2, 0.7, 0.0))
    assert len(rec.starts["a"]) == 6
    assert min(rec.gaps("a")) >= 0.5


async def test_crawl_delay_interval_is_longer_than_delay() -> None:
    """A request with a longer interval (a robots Crawl-delay) waits that long after the last start."""
    clock, gates, rec = setup(delay=0.5)
    await clock.run(rec.request(gates, "a", 0.0, interval=3.0) for _ in range(4))
    assert rec.gaps("a") == [3.0, 3.0, 3.0]


async def test_interval_is_the_callers_gap() -> None:
    """An explicit interval replaces the delay (a rendered page's own requests pass 0); none keeps it."""
    clock, gates, rec = setup(delay=1.0)
    await clock.run(rec.request(gates, "a", 0.0, interval=0.1) for _ in range(3))
    assert rec.gaps("a") == pytest.approx([0.1, 0.1])
    clock, gates, rec = setup(delay=1.0)
    await clock.run(rec.request(gates, "a", 0.0) for _ in range(3))
    assert rec.gaps("a") == [1.0, 1.0]


async def test_pause_holds_the_host_only() -> None:
    """A Retry-After pause delays the paused host and no other."""
    clock, gates, rec = setup()
    gates.pause("slow", 10.0)
    await clock.run([rec.request(gates, "slow", 0.0), rec.request(gates, "fast", 0.0)])
    assert rec.starts["slow"] == [10.0]
    assert rec.starts["fast"] == [0.0]


async def test_global_bound() -> None:
    """No more than `concurrency` requests are in flight over all hosts."""
    clock, gates, rec = setup(concurrency=3, per_host=4)
    await clock.run(rec.request(gates, f"h{i % 5}", 1.0) for i in range(40))
    assert rec.total_peak == 3


async def test_waiting_host_takes_no_global_place() -> None:
    """With one global place, a host waiting out its delay lets every other host go first."""
    clock, gates, rec = setup(concurrency=1, delay=10.0)

    async def later(host: str) -> None:
        await clock.sleep(1.0)  # queue behind the throttled host's waiting requests
        await rec.request(gates, host, 1.0)

    work = [rec.request(gates, "throttled", 0.5) for _ in range(3)]
    work += [later(f"other{i}") for i in range(5)]
    await clock.run(work)
    assert rec.starts["throttled"] == [0.0, 10.0, 20.0]
    assert sorted(rec.starts[f"other{i}"][0] for i in range(5)) == [1.0, 2.0, 3.0, 4.0, 5.0]


async def test_cancelled_waiter_gives_its_place_back() -> None:
    """A request cancelled while waiting for its host frees the place for the next one."""
    clock, gates, rec = setup(delay=5.0)
    first = asyncio.ensure_future(rec.request(gates, "a", 0.0))
    doomed = asyncio.ensure_future(rec.request(gates, "a", 0.0))

    async def cancel_soon() -> None:
        await clock.sleep(1.0)
        doomed.cancel()

    await clock.run([first, cancel_soon()])
    assert doomed.cancelled()
    await clock.run([rec.request(gates, "a", 0.0)])
    assert rec.starts["a"] == [0.0, 5.0]


async def test_idle_gates_are_forgotten() -> None:
    """Memory follows the hosts in use: thousands of finished hosts leave a bounded table."""
    clock, gates, rec = setup(delay=1.0)
    for batch in range(10):
        await clock.run(rec.request(gates, f"h{batch}-{i}", 0.0) for i in range(500))
        clock.t += 2.0  # every gate of the batch is past its delay: forgettable
    assert len(gates) <= 2048
    assert sum(len(v) for v in rec.starts.values()) == 5000


async def test_late_send_moves_the_start() -> None:
    """A request whose bytes leave late spaces the next start from when they left."""
    clock, gates, rec = setup(delay=1.0)

    async def sent_late() -> None:
        async with gates.slot("a"):
            rec.starts["a"].append(clock.now())
            await clock.sleep(0.3)  # connecting, or a busy event loop
            gates.sent("a")

    await clock.run([sent_late(), rec.request(gates, "a", 0.0)])
    assert rec.starts["a"] == [0.0, 1.3]
