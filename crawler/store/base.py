"""What a store is to the rest of the crawler: the values it returns and the `RunStore` protocol.

The run lifecycle (`app/run.py`) and the commands (`app/cli.py`, `app/display.py`) know a store
only through these names; `sqlite.py` and `postgres.py` implement them. The values are plain
frozen data, so the display and the reports import nothing of a database driver. `ResultWriter`
batches results for any store's `save` and hands what each batch stored (results with their
monitoring state, and the events they caused) on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, ClassVar, Concatenate, ParamSpec, Protocol, Self, TypeVar

from crawler.core.figures import ClaimRow, RunPoint
from crawler.core.history import Event, State
from crawler.errors import StoreError
from crawler.models import Claim, Flag, InvalidClaim, Result, Status

_T = TypeVar("_T")
_P = ParamSpec("_P")

ClaimSource = Iterable[Claim | InvalidClaim] | AsyncIterable[Claim | InvalidClaim]
"""Claims to import: a plain iterable (a file being read) or an async one."""


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class Run:
    """The run being worked on; `resumed` when it continues one that stopped before finishing."""

    id: str
    started_at: str
    resumed: bool


@dataclass(frozen=True, slots=True)
class ImportCounts:
    """What an import did; `added + updated + unchanged` rows were read, `invalid` of them unusable."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0

    @property
    def total(self) -> int:
        return self.added + self.updated + self.unchanged

    def __add__(self, other: ImportCounts) -> ImportCounts:
        return ImportCounts(
            self.added + other.added,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.invalid + other.invalid,
        )


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as it stands: `decided` of its `claims` have a result, counted by status."""

    id: str
    started_at: str
    finished_at: str | None
    status: RunStatus
    settings: Mapping[str, Any]
    claims: int
    decided: int
    by_status: Mapping[Status, int]

    @property
    def pending(self) -> int:
        return self.claims - self.decided


@dataclass(frozen=True, slots=True)
class TagCount:
    """Results carrying the tag `key` = `value`, by status; `value` None sums the rarer values."""

    key: str
    value: str | None
    by_status: Mapping[Status, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


@dataclass(frozen=True, slots=True)
class Report:
    """A run summarised: counts by status (in `run`), by flag and by tag."""

    run: RunInfo
    by_flag: Mapping[Flag, int]
    by_tag: tuple[TagCount, ...]


@dataclass(frozen=True, slots=True)
class Saved:
    """What one `save` stored: the results new to their run, each with the claim's state after it,
    in the order given, and the events they caused, in the order stored."""

    results: tuple[Result, ...] = ()
    events: tuple[Event, ...] = ()


OnSaved = Callable[[Sequence[Result], Sequence[Event]], Awaitable[None]]
"""Called by `ResultWriter` after each batch is stored, with what `save` stored."""


@dataclass(frozen=True, slots=True)
class ClaimFields:
    """The claim's own fields that export adds to each result."""

    expected_anchor: str | None = None
    expected_rel: str | None = None
    match: str = "page"


RunRef = str | None
"""A run: its id, or None or "latest" for the latest run."""


class RunStore(Protocol):
    """A database of claims, runs and results, as the run lifecycle and the commands use it.

    Every failure of the database (it can't be opened, read or written, or it holds something
    that is not ours) is a `StoreError` naming the database and the cause, never the driver's
    own exception. Opened with `async with`, closed by leaving the block.
    """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None: ...

    async def close(self) -> None:
        """Close the database, ending this store's hold on a run; safe to call twice."""
        ...

    async def begin_run(self, settings: Mapping[str, object], *, fresh: bool = False) -> Run:
        """Resume the latest run if it did not finish (unless `fresh`), else start a new one.

        Raises `RunHeldError` when the backend lets one process at a time work on a run and
        another one does (SQLite); a backend whose runs are shared joins it instead.
        """
        ...

    async def add_claims(self, run: Run, items: ClaimSource) -> ImportCounts:
        """Upsert claims by id (the later row wins) and attach them to `run`."""
        ...

    async def add_all_claims(self, run: Run) -> int:
        """Attach every stored claim to `run` (a re-check); returns how many were new to it."""
        ...

    def pending(self, run: Run) -> AsyncIterator[Claim | InvalidClaim]:
        """The run's claims without a result, claims of one source page together."""
        ...

    async def save(self, results: Sequence[Result]) -> Saved:
        """Store a batch of results at once and fold them into their claims' histories (section 9),
        results, states and events in one transaction; a claim already decided in its run keeps its
        first result, and only results actually stored are folded. Returns what was stored."""
        ...

    def writer(
        self, *, batch_size: int = 500, max_delay: float = 0.25, on_saved: OnSaved | None = None
    ) -> ResultWriter:
        """A buffer that saves results in batches (see `ResultWriter`)."""
        ...

    async def add_claims_in_states(self, run: Run, states: Collection[State]) -> int:
        """Attach to `run` the stored claims whose state is one of `states` (`new`: also the claims
        never checked); returns how many were attached. For `verify --states`."""
        ...

    async def finish_run(self, run: Run, *, interrupted: bool = False) -> RunInfo:
        """Mark the run finished (or interrupted, to be resumed), record its counts, end the hold."""
        ...

    async def run_info(self, run_id: str | None = None) -> RunInfo:
        """The run `run_id` (None or "latest": the latest run) as it stands now."""
        ...

    async def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        ...

    def results(
        self, run_id: str | None = None, *, statuses: Collection[Status] = ()
    ) -> AsyncIterator[Result]:
        """Results of a run (None or "latest": the latest) in the order they were decided."""
        ...

    async def report(self, run_id: str | None = None, *, max_tag_values: int = 20) -> Report:
        """Counts of a run by status, by flag and by tag (the `max_tag_values` commonest values a key)."""
        ...

    def export_rows(
        self, run_id: RunRef = None, *, statuses: Collection[Status] = ()
    ) -> AsyncIterator[tuple[Result, ClaimFields]]:
        """Results of a run with their claims' fields, in the order the claims were first imported."""
        ...

    def events(
        self, *, run_id: RunRef = None, since: str | None = None, types: Collection[str] = ()
    ) -> AsyncIterator[Event]:
        """The events of a run (None or "latest": the latest), or, with `since`, of every run after
        that one (`run_id` is then ignored), in the order stored; `types` keeps those event types."""
        ...

    async def history(self, claim_id: str) -> list[tuple[Result, tuple[Event, ...]]]:
        """Every result of the claim in run order, each with the events it caused.

        Raises `UnknownClaimError` (a StoreError) when no claim has that id."""
        ...

    async def result(self, claim_id: str, run_id: RunRef = None) -> Result | None:
        """The claim's result in the run (None: its latest result in any run), None if it has none.

        Raises `UnknownClaimError` when no claim has that id, StoreError for an unknown run."""
        ...

    async def state_counts(self, run_id: RunRef = None) -> dict[State, int]:
        """Claims decided in the run by their state after it (a result without one counts as new)."""
        ...

    def report_rows(self, run_id: RunRef = None) -> AsyncIterator[ClaimRow]:
        """One row per result of the run, with its state and its claim's expected anchor."""
        ...

    async def run_points(self) -> list[RunPoint]:
        """Every run, oldest first: live claims, their referring domains, found, lost and recovered."""
        ...

    async def rebuild_history(self) -> tuple[int, int]:
        """Fold every claim's states and events again from the stored results alone, in run order
        (each run's own `confirm_runs` and `unreachable_runs`), restarting a claim whose URLs now
        differ; returns (claims, events) written."""
        ...


class _Saves(Protocol):
    async def save(self, results: Sequence[Result]) -> Saved: ...


class ResultWriter:
    """Buffers results and saves them in batches: when `batch_size` are waiting, every
    `max_delay` seconds, and on exit, also when the exit is a cancellation. After each batch,
    `on_saved` gets what was stored (results with their state, and events)."""

    def __init__(
        self, store: _Saves, *, batch_size: int, max_delay: float, on_saved: OnSaved | None = None
    ) -> None:
        self._store = store
        self._batch_size = batch_size
        self._max_delay = max_delay
        self._on_saved = on_saved
        self._buffer: list[Result] = []
        self._ticker: asyncio.Task[None] | None = None
        self._timed: asyncio.Future[None] | None = None
        """The flush the ticker started: never cut short (its results must all reach `on_saved`)."""

    async def __aenter__(self) -> ResultWriter:
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        ticker, self._ticker = self._ticker, None
        try:
            if ticker is not None:
                ticker.cancel()  # stops its sleep; a flush it started goes on, shielded
                await asyncio.wait([ticker])  # unlike awaiting it, never swallows our own cancellation
            if self._timed is not None:
                await asyncio.wait([self._timed])  # its results reach on_saved before ours do
        finally:
            # The save runs in a task of its own, which a second cancellation while awaiting here
            # does not stop: nothing already buffered is lost.
            await self.flush()
        for done in (ticker, self._timed):
            failed = _failure(done) if done is not None else None
            if failed is not None and failed is not error:  # not raised by `add` already
                raise failed

    async def add(self, result: Result) -> None:
        failed = _failure(self._ticker) if self._ticker is not None and self._ticker.done() else None
        if failed is not None:
            raise failed  # a timed save failed: stop now, not after fetching the rest of the run
        self._buffer.append(result)
        if len(self._buffer) >= self._batch_size:
            await self.flush()

    async def flush(self) -> None:
        """Save everything buffered now, then hand what was stored to `on_saved`.

        Cancelled while the batch is being saved, it still waits for the save (once more) and
        hands its results on before the cancellation goes on: what is in the database was also
        written to `--output`.
        """
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        saving = asyncio.ensure_future(self._store.save(batch))
        try:
            saved = await asyncio.shield(saving)
        except asyncio.CancelledError:
            await asyncio.wait([saving])
            if not saving.cancelled() and saving.exception() is None:
                await self._hand_on(saving.result())
            raise
        await self._hand_on(saved)

    async def _hand_on(self, saved: Saved) -> None:
        if self._on_saved is not None and (saved.results or saved.events):
            await self._on_saved(saved.results, saved.events)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._max_delay)
            self._timed = asyncio.ensure_future(self.flush())
            await asyncio.shield(self._timed)


def _failure(ticker: asyncio.Future[None]) -> BaseException | None:
    """What ended the timed saves, if anything did (a StoreError, unless the store has a bug)."""
    if not ticker.done() or ticker.cancelled():
        return None
    failed = ticker.exception()
    return None if isinstance(failed, asyncio.CancelledError) else failed


async def batches(items: Iterable[_T] | AsyncIterable[_T], size: int) -> AsyncIterator[list[_T]]:
    """Lists of up to `size` items, for a store's import; a plain iterable is read in a worker
    thread (it may be a file being read)."""
    if isinstance(items, AsyncIterable):
        batch: list[_T] = []
        async for item in items:
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch
        return
    iterator = iter(items)
    while batch := await asyncio.to_thread(_take, iterator, size):
        yield batch


def _take(iterator: Iterator[_T], size: int) -> list[_T]:
    return list(itertools.islice(iterator, size))


def stored_time(moment: datetime) -> str:
    """A UTC time as both stores write it: ISO 8601 to the millisecond (cut, not rounded), e.g.
    `2026-01-01T08:00:00.000Z`."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Guarded(Protocol):
    """A store whose driver's errors (`faults`) become one-line StoreErrors (`failure`)."""

    faults: ClassVar[tuple[type[Exception], ...]]

    def failure(self, action: str, error: Exception) -> StoreError: ...


_G = TypeVar("_G", bound=Guarded)
_Method = Callable[Concatenate[_G, _P], Coroutine[Any, Any, _T]]
_Stream = Callable[Concatenate[_G, _P], AsyncGenerator[_T, None]]


def guarded(action: str) -> Callable[[_Method[_G, _P, _T]], _Method[_G, _P, _T]]:
    """A store method whose driver errors become a StoreError saying it could not `action`."""

    def decorate(method: _Method[_G, _P, _T]) -> _Method[_G, _P, _T]:
        @functools.wraps(method)
        async def guarded(store: _G, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
            try:
                return await method(store, *args, **kwargs)
            except store.faults as error:
                raise store.failure(action, error) from error

        return guarded

    return decorate


def guarded_stream(action: str) -> Callable[[_Stream[_G, _P, _T]], _Stream[_G, _P, _T]]:
    """`guarded` for a method that yields rows as it reads them."""

    def decorate(method: _Stream[_G, _P, _T]) -> _Stream[_G, _P, _T]:
        @functools.wraps(method)
        async def guarded(store: _G, /, *args: _P.args, **kwargs: _P.kwargs) -> AsyncGenerator[_T, None]:
            try:
                async with contextlib.aclosing(method(store, *args, **kwargs)) as items:
                    async for item in items:
                        yield item
            except store.faults as error:
                raise store.failure(action, error) from error

        return guarded

    return decorate
