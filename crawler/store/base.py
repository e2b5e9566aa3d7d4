"""What a store is to the rest of the crawler: the values it returns and the `RunStore` protocol.

The run lifecycle (`app/run.py`) and the commands (`app/cli.py`, `app/display.py`) know a store
only through these names; `sqlite.py` is one implementation, and a PostgreSQL store will be
another beside it. The values are plain frozen data, so the display and the reports import
nothing of a database driver. `ResultWriter` batches results for any store's `save`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self

from crawler.models import Claim, Flag, InvalidClaim, Result, Status

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

    async def save(self, results: Sequence[Result]) -> None:
        """Store a batch of results at once; a claim already decided in its run keeps its first."""
        ...

    def writer(self, *, batch_size: int = 500, max_delay: float = 1.0) -> ResultWriter:
        """A buffer that saves results in batches (see `ResultWriter`)."""
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


class _Saves(Protocol):
    async def save(self, results: Sequence[Result]) -> None: ...


class ResultWriter:
    """Buffers results and saves them in batches: when `batch_size` are waiting, every
    `max_delay` seconds, and on exit, also when the exit is a cancellation."""

    def __init__(self, store: _Saves, *, batch_size: int, max_delay: float) -> None:
        self._store = store
        self._batch_size = batch_size
        self._max_delay = max_delay
        self._buffer: list[Result] = []
        self._ticker: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ResultWriter:
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
        # The save is queued before its first suspension, and the store runs it whole, so a
        # second cancellation while awaiting here loses nothing already buffered.
        await self.flush()
        if ticker is not None:
            await asyncio.wait([ticker])  # unlike awaiting it, never swallows our own cancellation
            failed = _failure(ticker)
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
        """Save everything buffered now."""
        batch, self._buffer = self._buffer, []
        if batch:
            await self._store.save(batch)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._max_delay)
            await self.flush()


def _failure(ticker: asyncio.Task[None]) -> BaseException | None:
    """What ended the timed saves, if anything did (a StoreError, unless the store has a bug)."""
    return None if ticker.cancelled() else ticker.exception()
