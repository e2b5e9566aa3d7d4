"""Per-host gates: how many requests a host gets at once, and how far apart they start.

Every request, robots.txt and redirect hops included, goes through `Politeness.slot(host)`:

1. it waits for one of the host's `per_host` places (a host's own queue);
2. it waits until the host is ready: `interval` seconds after the previous start to that host
   (`delay`, or a longer robots Crawl-delay) and after any Retry-After pause;
3. only then it takes one of the `concurrency` global places.

A request that waits for its host holds no global place, so a slow or throttled host never
holds up the others (no head-of-line blocking). The start time is stamped after the global
place is won and the host's readiness checked again, with no await in between: two places
of one host can't start closer than `interval`, however the global queue orders them.

The start is stamped again when the request's headers are sent (`sent`), so the spacing
holds where it matters, on the server's side, even when our event loop is busy.

The clock is injectable, so the tests of this module run on virtual time.

When other processes work on the same hosts (a shared PostgreSQL run), `shared_gates` holds
their common gates (`crawler.engine.leases`): a request also holds one of the host's places
there, taken after its local place and before its global one, so `per_host` and the spacing
hold across every process; the local gate still keeps this process's own requests in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """Where the gates read the time and wait."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock: `time.monotonic` and `asyncio.sleep`."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class SharedGates(Protocol):
    """Host gates shared with other processes: one place a request, spaced by `interval`."""

    def hold(self, host: str, interval: float) -> AbstractAsyncContextManager[None]: ...

    def sent(self, host: str) -> None: ...

    def pause(self, host: str, seconds: float) -> None: ...


shared_gates: ContextVar[SharedGates | None] = ContextVar("shared_gates", default=None)
"""The gates a `Politeness` made in this context shares with other processes (None: none)."""


@dataclass(slots=True)
class HostGate:
    """The state of one host: its places, its last start and any pause."""

    places: asyncio.Semaphore
    users: int = 0
    last_start: float = float("-inf")
    longest_interval: float = 0.0
    paused_until: float = float("-inf")

    def ready_at(self, interval: float) -> float:
        """The earliest time a request with this `interval` may start."""
        return max(self.last_start + interval, self.paused_until)

    def forgettable(self, now: float) -> bool:
        """True when dropping this gate loses nothing: nobody uses it and every wait has passed."""
        return self.users == 0 and now >= self.ready_at(self.longest_interval)


class Politeness:
    """The gates of every host, and the global bound on requests in flight."""

    def __init__(self, *, concurrency: int, per_host: int, delay: float, clock: Clock | None = None) -> None:
        self.per_host = per_host
        self.delay = delay
        self.clock: Clock = clock or MonotonicClock()
        self._global = asyncio.Semaphore(concurrency)
        self._gates: dict[str, HostGate] = {}
        self._sweep_above = 1024
        self._shared = shared_gates.get()

    @asynccontextmanager
    async def slot(self, host: str, *, interval: float | None = None) -> AsyncIterator[None]:
        """Hold a place for one request to `host`, started `interval` (default `delay`) after the last.

        The caller decides the gap: pages pass the longer of `delay` and a capped Crawl-delay, a
        rendered page's own requests pass 0 (a page with twenty scripts must not take twenty delays).
        """
        gate = self._gate(host)
        gap = self.delay if interval is None else interval
        gate.users += 1
        try:
            async with gate.places, self._held(host, gap):
                await self._start(gate, gap)
                try:
                    yield
                finally:
                    self._global.release()
        finally:
            gate.users -= 1

    def _held(self, host: str, interval: float) -> AbstractAsyncContextManager[object]:
        if self._shared is None:
            return contextlib.nullcontext()
        return self._shared.hold(host, interval)

    def sent(self, host: str) -> None:
        """A request to `host` is on the wire now: the next start is spaced from this moment.

        A start is stamped when the request passes its gate; between that and the request's
        bytes leaving, a busy event loop (or a new connection) may lose some milliseconds, and
        a late request followed by a prompt one would arrive closer than `delay` apart.
        """
        gate = self._gates.get(host)
        if gate is not None:
            gate.last_start = max(gate.last_start, self.clock.now())
        if self._shared is not None:
            self._shared.sent(host)

    def pause(self, host: str, seconds: float) -> None:
        """Start nothing on `host` for `seconds` from now (a Retry-After answer)."""
        gate = self._gate(host)
        gate.paused_until = max(gate.paused_until, self.clock.now() + seconds)
        if self._shared is not None:
            self._shared.pause(host, seconds)

    def __len__(self) -> int:
        """How many host gates are remembered (idle ones are dropped as the table grows)."""
        return len(self._gates)

    async def _start(self, gate: HostGate, interval: float) -> None:
        gate.longest_interval = max(gate.longest_interval, interval)
        while True:
            wait = gate.ready_at(interval) - self.clock.now()
            if wait > 0:
                await self.clock.sleep(wait)
                continue
            await self._global.acquire()
            # Another place of this host may have started, or a pause begun, while we queued.
            now = self.clock.now()
            if gate.ready_at(interval) <= now:
                gate.last_start = now
                return
            self._global.release()

    def _gate(self, host: str) -> HostGate:
        gate = self._gates.get(host)
        if gate is None:
            self._sweep()
            gate = self._gates[host] = HostGate(asyncio.Semaphore(self.per_host))
        return gate

    def _sweep(self) -> None:
        # Memory follows the hosts in use, not every host ever seen: idle gates whose waits
        # have passed are dropped whenever the table doubles since the last sweep.
        if len(self._gates) < self._sweep_above:
            return
        now = self.clock.now()
        for host in [h for h, gate in self._gates.items() if gate.forgettable(now)]:
            del self._gates[host]
        self._sweep_above = max(1024, 2 * len(self._gates))
