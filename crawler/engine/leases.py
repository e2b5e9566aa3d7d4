"""Host leases: many processes, on any number of machines, share one run through its database.

A process works on a host's claims only while it holds the host's *claims lease*, and sends a
request to any host (its own pages, a redirect hop from another host's page, robots.txt) only
while it holds one of the host's *request places*; both are rows of the database, behind the
`LeaseBackend` protocol (`crawler.store.postgres` implements it). So:

- `feed` takes ready hosts (no live holder, claims pending), at most as many as this process
  works on at once, and yields their pending claims, a few pages a host, page by page in
  turn: the pipeline judges them as in a single process. A host is given back once the
  results of its claims are saved, and may be taken again, by anyone, for its next pages.
- `hold` (the `SharedGates` of `politeness.py`) takes a request place of the host: at most
  `per_host` are live across all processes, their starts spaced by the interval the request
  asks for (`delay`, or a capped Crawl-delay); the place is let go when the request ends, and
  the host's next start set to the interval after this request's bytes left (and after any
  Retry-After pause). Nothing waits for a place while holding another, so cross-host
  redirects never deadlock: a hop to a host this process has not leased waits for a place
  of that host like any request, and whoever holds that host's claims keeps them.
- `answer` (the `SharedRobots` of `robots_cache.py`): the first process to claim an origin
  fetches its robots.txt and stores the answer; the others wait for it and read it.
- A heartbeat renews every lease, place and claim this process holds every third of `lease`.
  Hosts it fails to renew are lost: their results are dropped here, and the database's fence
  refuses them anyway once another process has taken the host over. A request still in flight
  when its place could have expired (no renewal for `lease` less a margin) is cancelled: it
  fails as an internal error, whose result is dropped with its host.

A killed process loses nothing: its hosts' claims stay pending until their lease expires and
another process takes them; its places and robots.txt claims expire the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, TypeVar, runtime_checkable

from crawler import logs
from crawler.config import Settings
from crawler.engine import parsing, pipeline, robots_cache
from crawler.engine.politeness import shared_gates
from crawler.engine.robots_cache import RobotsAnswer, from_record, shared_robots
from crawler.errors import StoreError
from crawler.models import Claim, InvalidClaim, Result

log = logs.get_logger(__name__)

Item = Claim | InvalidClaim
PAGES_PER_LEASE = 16
"""Pages of a host handed out under one lease: a host's pages go to whoever is free next."""
POLL = (0.02, 0.5)
"""Shortest and longest wait between two looks at the database while waiting for work."""


@runtime_checkable
class LeaseBackend(Protocol):
    """A store whose runs are shared (`crawler.store.postgres`): the statements the leases run
    in the run it began or joined, and where it finds the leases that fence its saves."""

    worker: str

    def attach(self, leases: HostLeases | None) -> None:
        """Fence saves and feed `pending` with `leases` (None: detach them)."""

    async def take_hosts(self, limit: int, lease: float) -> list[tuple[str, int]]: ...

    async def leased_claims(self, hosts: Sequence[str], pages: int) -> list[tuple[str, str, Item]]:
        """(host, page key, claim) of up to `pages` pending pages of each host, a page's together."""
        ...

    async def renew(self, hosts: Mapping[str, int], places: Sequence[str], lease: float) -> set[str]: ...

    async def release_host(self, host: str, token: int) -> None: ...

    async def take_gate(
        self, host: str, holder: str, places: int, interval: float, lease: float
    ) -> float: ...

    async def release_gate(
        self, host: str, holder: str, interval: float, since_sent: float, pause: float
    ) -> None: ...

    async def robots_answer(self, origin: str) -> str | None: ...

    async def claim_robots(self, origin: str, lease: float) -> bool: ...

    async def store_robots(self, origin: str, answer: str | None) -> None:
        """Store the answer (None: give the claim up, for another process to fetch)."""
        ...

    async def any_undone(self) -> bool: ...


@dataclass(slots=True)
class _Owned:
    token: int
    valid_until: float
    outstanding: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Place:
    host: str
    holder: str
    interval: float
    taken_at: float
    timeout: asyncio.Timeout | None = None


@dataclass(frozen=True, slots=True)
class Fenced:
    """A batch of results split for saving: by host under its token, or not under a lease."""

    tokens: Mapping[str, int]
    leased: tuple[tuple[str, Result], ...]
    free: tuple[Result, ...]
    dropped: int


class HostLeases:
    """This process's leases in one shared run: the feed, the shared gates and robots answers."""

    def __init__(
        self,
        backend: LeaseBackend,
        *,
        lease: float,
        per_host: int,
        max_hosts: int,
        max_robots_bytes: int,
        pages_per_lease: int = PAGES_PER_LEASE,
    ) -> None:
        self.backend = backend
        self.lease = lease
        self.per_host = per_host
        self.max_hosts = max(1, max_hosts)
        self.max_robots_bytes = max_robots_bytes
        self.pages_per_lease = pages_per_lease
        self.margin = lease / 6  # a request stops this long before its place could expire
        self.owned: dict[str, _Owned] = {}
        self.lost = 0
        self._claim_host: dict[str, str] = {}
        self._places: dict[str, _Place] = {}
        self._serial = itertools.count()
        self._sent: dict[str, float] = {}
        self._pauses: dict[str, float] = {}
        self._releases: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()

    @classmethod
    def for_settings(cls, backend: LeaseBackend, settings: Settings) -> HostLeases:
        """Leases sized by the settings: no more hosts than this process works on at once."""
        return cls(
            backend,
            lease=settings.lease,
            per_host=settings.per_host,
            max_hosts=min(
                settings.concurrency // settings.per_host, settings.max_pending_pages // PAGES_PER_LEASE
            ),
            max_robots_bytes=settings.max_robots_bytes,
        )

    # The feed ---------------------------------------------------------------------------------

    async def feed(self) -> AsyncIterator[Item]:
        """The claims of the hosts leased, as they are leased, until the run has none pending."""
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            wait = POLL[0]
            while True:
                if heartbeat.done():
                    heartbeat.result()  # its failure, raised here
                room = self.max_hosts - len(self.owned)
                batch = await self._take(room) if room > 0 else []
                if batch:
                    wait = POLL[0]
                    for item in batch:
                        yield item
                    continue
                if not self.owned and not await self.backend.any_undone():
                    return
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._room.wait()
                wait = min(wait * 2, POLL[1])
        finally:
            heartbeat.cancel()
            await asyncio.wait([heartbeat])

    async def _take(self, room: int) -> list[Item]:
        now = _now()
        taken = await self.backend.take_hosts(room, self.lease)
        if not taken:
            return []
        for host, token in taken:
            self.owned[host] = _Owned(token, now + self.lease)
        pages: dict[str, dict[str, list[Item]]] = {host: {} for host, _ in taken}
        for host, page, item in await self.backend.leased_claims([h for h, _ in taken], self.pages_per_lease):
            pages[host].setdefault(page, []).append(item)
        for host, by_page in pages.items():
            if not by_page:  # decided meanwhile by another process
                await self._release(host)
        for host, by_page in pages.items():
            owned = self.owned.get(host)
            for items in by_page.values():
                for item in items:
                    self._claim_host[item.id] = host
                    if owned is not None:
                        owned.outstanding.add(item.id)
        log.debug("hosts_leased", hosts=[host for host, _ in taken])
        # A page of each host in turn: no host's pages queue up behind another's.
        lists = [list(by_page.values()) for by_page in pages.values()]
        return [item for turn in itertools.zip_longest(*lists) for page in turn if page for item in page]

    def fence(self, results: Sequence[Result]) -> Fenced:
        """Split results for saving: those of hosts this process still leases, with their tokens,
        those decided under no lease (a library caller's own), and how many were dropped."""
        tokens: dict[str, int] = {}
        leased: list[tuple[str, Result]] = []
        free: list[Result] = []
        dropped = 0
        for result in results:
            host = self._claim_host.pop(result.claim_id, None)
            if host is None:
                free.append(result)
                continue
            owned = self.owned.get(host)
            if owned is None:
                dropped += 1
                continue
            tokens[host] = owned.token
            leased.append((host, result))
        return Fenced(tokens, tuple(leased), tuple(free), dropped)

    async def settle(self, fenced: Fenced, stored: set[str]) -> None:
        """After a save: hosts whose every claim handed out is settled are given back."""
        refused = len(fenced.leased) - sum(result.claim_id in stored for _, result in fenced.leased)
        if refused or fenced.dropped:
            # Decided too late: the host was taken over (the database's fence said so), or this
            # process knew its lease lost (renewal refused or failed) and dropped them itself.
            log.warning("late_results_refused", by_database=refused, by_lost_lease=fenced.dropped)
        for host, result in fenced.leased:
            owned = self.owned.get(host)
            if owned is not None:
                owned.outstanding.discard(result.claim_id)
        for host in {host for host, _ in fenced.leased}:
            owned = self.owned.get(host)
            if owned is not None and not owned.outstanding:
                await self._release(host)

    async def _release(self, host: str) -> None:
        owned = self.owned.pop(host, None)
        if owned is not None:
            await self.backend.release_host(host, owned.token)
        self._room.set()

    async def close(self) -> None:
        """Give back every host leased and let every request place go."""
        for host in list(self.owned):
            with contextlib.suppress(StoreError):
                await self._release(host)
        if self._releases:
            await asyncio.wait(list(self._releases))

    # Renewals ---------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            await self.renew()

    async def renew(self) -> None:
        """One round of the heartbeat: every lease, place and robots.txt claim of this process
        extended; hosts the database no longer gives it are lost. Only the hosts the round asked
        for can be lost by it: one taken while the round was in flight was not part of it (its
        lease is as new as can be), and one given back and taken again has another token."""
        now = _now()
        held = {host: owned.token for host, owned in self.owned.items()}
        try:
            kept = await self.backend.renew(held, list(self._places), self.lease)
        except StoreError as error:
            log.warning("lease_renewal_failed", error=str(error))
            self._expire(now)
            return
        for host, token in held.items():
            owned = self.owned.get(host)
            if owned is None or owned.token != token:
                continue
            if host in kept:
                owned.valid_until = now + self.lease
            else:
                self._lose(host)
        for place in self._places.values():
            if place.timeout is not None:
                place.timeout.reschedule(now + self.lease - self.margin)

    def _expire(self, now: float) -> None:
        """Renewals fail: hosts whose lease may run out before the next try are given up now."""
        for host, owned in list(self.owned.items()):
            if owned.valid_until - self.margin <= now + self.lease / 3:
                self._lose(host)

    def _lose(self, host: str) -> None:
        if self.owned.pop(host, None) is not None:
            self.lost += 1
            log.warning("lease_lost", host=host)
            self._room.set()

    # Request places (politeness.SharedGates) ------------------------------------------------

    @contextlib.asynccontextmanager
    async def hold(self, host: str, interval: float) -> AsyncIterator[None]:
        """One of `host`'s request places for the length of a request."""
        holder = f"{self.backend.worker}#{next(self._serial)}"
        wait = POLL[0]
        while True:
            taken_at = _now()
            answer = await self.backend.take_gate(host, holder, self.per_host, interval, self.lease)
            if answer == 0:
                break
            if answer > 0:  # the host's next start is that far away
                await asyncio.sleep(answer)
            else:  # every place is busy: look again soon
                await asyncio.sleep(wait)
                wait = min(wait * 2, POLL[1])
        place = self._places[holder] = _Place(host, holder, interval, taken_at)
        try:
            async with asyncio.timeout_at(taken_at + self.lease - self.margin) as timeout:
                place.timeout = timeout
                yield
        finally:
            del self._places[holder]
            task = asyncio.create_task(self._let_go(place))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    def sent(self, host: str) -> None:
        self._sent[host] = _now()

    def pause(self, host: str, seconds: float) -> None:
        self._pauses[host] = max(self._pauses.get(host, 0.0), _now() + seconds)

    async def _let_go(self, place: _Place) -> None:
        # A task of its own, run after the request's caller has recorded any Retry-After pause.
        now = _now()
        since_sent = now - max(self._sent.get(place.host, place.taken_at), place.taken_at)
        pause = max(0.0, self._pauses.pop(place.host, now) - now)
        try:
            await self.backend.release_gate(place.host, place.holder, place.interval, since_sent, pause)
        except StoreError as error:  # the place expires by itself
            log.warning("request_place_release_failed", host=place.host, error=str(error))

    # robots.txt answers (robots_cache.SharedRobots) ------------------------------------------

    async def answer(self, origin: str, load: Callable[[], Awaitable[RobotsAnswer]]) -> RobotsAnswer:
        """The run's answer for `origin`: stored by another process, or fetched here, once."""
        wait = POLL[0]
        while True:
            stored = await self.backend.robots_answer(origin)
            if stored is not None:
                return from_record(json.loads(stored), max_bytes=self.max_robots_bytes)
            if await self.backend.claim_robots(origin, self.lease):
                break
            await asyncio.sleep(wait)
            wait = min(wait * 2, POLL[1])
        try:
            loaded = await load()
        except BaseException:
            await asyncio.shield(self.backend.store_robots(origin, None))
            raise
        await self.backend.store_robots(origin, json.dumps(robots_cache.to_record(loaded)))
        return loaded


def _now() -> float:
    """asyncio's clock, the one `asyncio.timeout_at` reads."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


@contextlib.asynccontextmanager
async def leasing(store: LeaseBackend, settings: Settings) -> AsyncIterator[HostLeases]:
    """This process's leases in the run `store` began or joined, for the length of the block:
    `store.pending` feeds their claims, `store.save` is fenced by them, and the pipelines built
    in this context (and in tasks created inside the block) share their gates and robots.txt."""
    leases = HostLeases.for_settings(store, settings)
    store.attach(leases)
    gates, robots = shared_gates.set(leases), shared_robots.set(leases)
    try:
        yield leases
    finally:
        shared_gates.reset(gates)
        shared_robots.reset(robots)
        try:
            await leases.close()
        finally:
            store.attach(None)


class _Run(Protocol):
    @property
    def id(self) -> str: ...


_R = TypeVar("_R", bound=_Run)
_I = TypeVar("_I", covariant=True)


class _Writer(Protocol):
    async def __aenter__(self) -> _Writer: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None: ...

    async def add(self, result: Result) -> None: ...


class SharedRunStore(LeaseBackend, Protocol[_R, _I]):
    """What `work` needs of a store whose runs are shared (structurally: no store is imported here)."""

    async def join_run(self, settings: Mapping[str, object]) -> _R | None: ...

    def pending(self, run: _R) -> AsyncIterator[Item]: ...

    def writer(self) -> _Writer: ...

    async def finish_run(self, run: _R, *, interrupted: bool = False) -> _I: ...


async def work(store: SharedRunStore[_R, _I], settings: Settings, *, wait: bool) -> _I | None:
    """`crawler worker`: join the store's running run and work on it until it is finished.

    No running run: None at once, or with `wait` the next run that starts, once it is joined.
    Cancelled (SIGINT, SIGTERM), this process's hosts are given back for others to take at once.
    """
    run = await store.join_run(settings.record())
    wait_for = POLL[0]
    while run is None and wait:
        await asyncio.sleep(wait_for)
        wait_for = min(2 * wait_for, 2.0)
        run = await store.join_run(settings.record())
    if run is None:
        return None
    log.info("run joined", run_id=run.id)
    async with leasing(store, settings):
        try:
            async with parsing.page_reader(settings.workers) as reader:
                verified = pipeline.verify(store.pending(run), settings, run_id=run.id, reader=reader)
                async with store.writer() as writer, contextlib.aclosing(verified) as results:
                    async for result in results:
                        await writer.add(result)
        except BaseException:
            with contextlib.suppress(StoreError):
                await asyncio.shield(store.finish_run(run, interrupted=True))
            raise
        return await store.finish_run(run)
