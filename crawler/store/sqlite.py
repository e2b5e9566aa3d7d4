"""The SQLite store: claims, runs and results in one file, readable with the sqlite3 shell.

The only module that uses aiosqlite. Tables (schema version in `PRAGMA user_version`):

- `claims`: one row per claim id, the last import wins; `invalid_reason` is set for a row
  that is not a usable claim; `tags` is a JSON object; `page_key` groups claims by page.
- `runs`: one row per run, `status` running, finished or interrupted; `settings` JSON;
  `claims`, `decided` and `counts` (JSON, by status) written when the run stops.
- `run_claims`: the claims a run checks.
- `results`: at most one per (run, claim); the columns a user filters on, and `data`, the
  full result as JSON (the export format), so every field round-trips.

Writes are batched, one transaction per batch, never a commit per result. Reads stream:
every query that may return many rows is paged by key, never fetched whole, and no read
stays open while results are written. A run that was stopped (interrupted, killed) is
resumed by the next `begin_run`: claims already decided are not offered again, and
UNIQUE(run_id, claim_id) makes deciding a claim twice in one run impossible. Readers
(export, report) may use the file while a run writes to it; two runs at once may not:
the second would resume the first's run.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import re
import secrets
import sqlite3
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite

from crawler.core import urls
from crawler.errors import ClaimError, StoreError
from crawler.models import Claim, Flag, InvalidClaim, Result, Status
from crawler.store import sqlite_sql as sql

_T = TypeVar("_T")
_SURROGATE = re.compile("[\ud800-\udfff]")
BATCH = 1000
"""Rows per page of a read."""
IMPORT_BATCH = 10000
"""Claims per import transaction: claim ids and page keys are hashes, so each batch dirties
index pages all over the file, and larger transactions write each of those pages fewer times."""


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


class Store:
    """One SQLite file. `async with Store(path) as store:` opens (creating or upgrading it) and closes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._connection: aiosqlite.Connection | None = None

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> Store:
        """The store at `path`, open; close it with `close()`."""
        store = cls(path)
        await store._connect()
        return store

    async def __aenter__(self) -> Store:
        if self._connection is None:
            await self._connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.execute("PRAGMA optimize")
            await connection.close()

    @property
    def _db(self) -> aiosqlite.Connection:
        if self._connection is None:
            raise StoreError("the store is not open")
        return self._connection

    async def _connect(self) -> None:
        # isolation_level=None: no implicit transactions; each batch opens and ends its own.
        connection = await aiosqlite.connect(self.path, isolation_level=None, timeout=30.0)
        try:
            for pragma in sql.PRAGMAS:
                await connection.execute(f"PRAGMA {pragma}")
            await _migrate(connection, self.path)
        except sqlite3.DatabaseError as error:
            await connection.close()
            raise StoreError(f"{self.path}: not usable as a crawler database: {error}") from None
        except BaseException:
            await connection.close()
            raise
        self._connection = connection

    async def begin_run(self, settings: Mapping[str, object], *, fresh: bool = False) -> Run:
        """Resume the latest run if it did not finish (unless `fresh`), else start a new one.

        A resumed run records the settings it continues with. With `fresh`, a run left
        `running` by a killed process is marked interrupted, and stays resumable by id only.
        """
        settings_json = json.dumps(dict(settings), default=str, ensure_ascii=False)
        row = await self._one(sql.LATEST_RUN)
        if row is not None and row[2] != RunStatus.FINISHED:
            if not fresh:
                await self._db.execute(sql.RESUME_RUN, (settings_json, row[0]))
                return Run(row[0], row[1], resumed=True)
            await self._db.execute(sql.INTERRUPT_RUN, (row[0],))
        now = datetime.now(UTC)
        run = Run(f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}", _iso(now), resumed=False)
        await self._db.execute(sql.BEGIN_RUN, (run.id, run.started_at, settings_json))
        return run

    async def add_claims(
        self, run: Run, items: Iterable[Claim | InvalidClaim] | AsyncIterable[Claim | InvalidClaim]
    ) -> ImportCounts:
        """Upsert claims by id (the later row wins) and attach them to `run`, a transaction a batch.

        A plain iterable (a file being read) is read in a worker thread, so a slow input
        never blocks the event loop.
        """
        counts = ImportCounts()
        async for batch in _batches(items, IMPORT_BATCH):
            counts += await self._import(run, batch)
        return counts

    async def _import(self, run: Run, batch: list[Claim | InvalidClaim]) -> ImportCounts:
        now = _iso(datetime.now(UTC))
        rows = list({item.id: _claim_row(item, now, run.id) for item in batch}.values())  # last one wins
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            added, updated = await self._upsert(rows)
            await self._db.executemany(sql.ATTACH, rows)
        except BaseException:
            # Awaiting queues the rollback at once, so it runs even if this await is cancelled.
            await self._db.rollback()
            raise
        await self._db.commit()
        invalid = sum(isinstance(item, InvalidClaim) for item in batch)
        return ImportCounts(added, updated, len(batch) - added - updated, invalid)

    async def _upsert(self, rows: list[dict[str, object]]) -> tuple[int, int]:
        """Insert the new claims and update the changed ones: (added, updated).

        Asking first which ids exist spares a fresh import the update pass and a re-import
        the insert attempts; each pass costs about as much as the write itself.
        """
        ids = json.dumps([row["id"] for row in rows])
        known = {row[0] for row in await self._db.execute_fetchall(sql.EXISTING, (ids,))}
        new = [row for row in rows if row["id"] not in known]
        old = [row for row in rows if row["id"] in known]
        return await self._many(sql.INSERT_CLAIM, new), await self._many(sql.UPDATE_CLAIM, old)

    async def _many(self, statement: str, rows: list[dict[str, object]]) -> int:
        """Rows changed by `sql` run once per row."""
        return (await self._db.executemany(statement, rows)).rowcount if rows else 0

    async def add_all_claims(self, run: Run) -> int:
        """Attach every claim in the database to `run` (a re-check); returns how many were new to it."""
        cursor = await self._db.execute(sql.ATTACH_ALL, (run.id,))
        return cursor.rowcount

    async def pending(self, run: Run) -> AsyncIterator[Claim | InvalidClaim]:
        """The run's claims without a result: invalid ones first, then page by page.

        Claims of one source page come together; pages are ordered by a hash, which spreads
        the pages of one host across the run instead of queueing them behind each other.
        """
        after = ("", "")
        while True:
            rows = list(await self._db.execute_fetchall(sql.PENDING, (run.id, *after, BATCH)))
            for row in rows:
                yield _claim_of(row)
            if len(rows) < BATCH:
                return
            after = (rows[-1][0], rows[-1][1])

    async def save(self, results: Sequence[Result]) -> None:
        """Store a batch of results in one transaction; a claim already decided in its run keeps
        its first result. Each result must be for a claim of its run (a foreign key says so)."""
        if results:
            payload = json.dumps([result.to_dict() for result in results], ensure_ascii=False)
            await self._db.execute(sql.SAVE, (_utf8(payload),))

    def writer(self, *, batch_size: int = 500, max_delay: float = 1.0) -> ResultWriter:
        """A buffer for results saved in batches: when full, every `max_delay` seconds, and on exit."""
        return ResultWriter(self, batch_size=batch_size, max_delay=max_delay)

    async def finish_run(self, run: Run, *, interrupted: bool = False) -> RunInfo:
        """Mark the run finished (or interrupted, to be resumed) and record its counts."""
        info = await self.run_info(run.id)
        counts = json.dumps({status.value: n for status, n in info.by_status.items()})
        status = RunStatus.INTERRUPTED if interrupted else RunStatus.FINISHED
        finished = (status.value, _iso(datetime.now(UTC)), info.claims, info.decided, counts, run.id)
        await self._db.execute(sql.FINISH_RUN, finished)
        return await self.run_info(run.id)

    async def run_info(self, run_id: str | None = None) -> RunInfo:
        """The run `run_id` (None or "latest": the latest run) as it stands now."""
        run_id = await self._run_id(run_id)
        row = await self._one(sql.RUN, (run_id,))
        assert row is not None  # _run_id checked it exists
        claims = await self._one(sql.RUN_CLAIMS, (run_id,))
        by_status = await self._db.execute_fetchall(sql.RUN_STATUSES, (run_id,))
        counts = {Status(status): n for status, n in by_status}
        ordered = {status: counts[status] for status in Status if status in counts}
        claimed = claims[0] if claims else 0
        return RunInfo(
            row[0],
            row[1],
            row[2],
            RunStatus(row[3]),
            json.loads(row[4]),
            claimed,
            sum(counts.values()),
            ordered,
        )

    async def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        ids = await self._db.execute_fetchall(sql.RUN_IDS)
        return [await self.run_info(row[0]) for row in ids]

    async def results(
        self, run_id: str | None = None, *, statuses: Collection[Status] = ()
    ) -> AsyncIterator[Result]:
        """Results of a run (None or "latest": the latest) in the order they were decided.

        Nothing when the database has no run yet; StoreError for a run id that doesn't exist.
        """
        if run_id in (None, "latest") and await self._one(sql.ANY_RUN) is None:
            return
        run = await self._run_id(run_id)
        wanted = [Status(status).value for status in statuses]
        query = sql.results_page(len(wanted))
        after = 0
        while True:
            rows = list(await self._db.execute_fetchall(query, (run, after, *wanted, BATCH)))
            for row in rows:
                yield Result.from_dict(json.loads(row[1]))
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

    async def report(self, run_id: str | None = None, *, max_tag_values: int = 20) -> Report:
        """Counts of a run by status, by flag and by tag (the `max_tag_values` commonest values a key)."""
        info = await self.run_info(run_id)
        flags = await self._db.execute_fetchall(sql.FLAG_COUNTS, (info.id,))
        rows = await self._db.execute_fetchall(sql.TAG_COUNTS, (info.id, max_tag_values))
        by_tag: dict[tuple[str, str | None], dict[Status, int]] = {}
        for key, value, status, n in rows:
            by_tag.setdefault((key, value), {})[Status(status)] = n
        tags = tuple(TagCount(key, value, counts) for (key, value), counts in by_tag.items())
        return Report(info, {Flag(flag): n for flag, n in flags}, tags)

    async def _run_id(self, run_id: str | None) -> str:
        if run_id in (None, "latest"):
            row = await self._one(sql.LATEST_RUN_ID)
        else:
            row = await self._one(sql.RUN_ID, (run_id,))
        if row is None:
            latest = run_id in (None, "latest")
            raise StoreError(f"no run yet in {self.path}" if latest else f"no run {run_id!r} in {self.path}")
        return str(row[0])

    async def _one(self, statement: str, parameters: Sequence[object] = ()) -> sqlite3.Row | None:
        async with self._db.execute(statement, parameters) as cursor:
            return await cursor.fetchone()


class ResultWriter:
    """Buffers results and saves them in batches: when `batch_size` are waiting, every
    `max_delay` seconds, and on exit, also when the exit is a cancellation."""

    def __init__(self, store: Store, *, batch_size: int, max_delay: float) -> None:
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
            if not ticker.cancelled() and ticker.exception() is not None:
                raise StoreError("saving results failed") from ticker.exception()

    async def add(self, result: Result) -> None:
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


async def _migrate(connection: aiosqlite.Connection, path: str) -> None:
    """Bring the schema to the latest version, each step in its own transaction."""
    async with connection.execute(sql.USER_VERSION) as cursor:
        version = (await cursor.fetchone() or (0,))[0]
    if version > len(sql.MIGRATIONS):
        raise StoreError(f"{path}: schema version {version} is newer than this crawler knows")
    if version == 0:
        async with connection.execute(sql.ANY_TABLE) as cursor:
            if (await cursor.fetchone() or (0,))[0]:
                raise StoreError(f"{path}: a database of something else (tables but no crawler schema)")
    for number in range(version, len(sql.MIGRATIONS)):
        try:
            await connection.executescript(
                f"BEGIN IMMEDIATE; {sql.MIGRATIONS[number]} PRAGMA user_version = {number + 1}; COMMIT;"
            )
        except BaseException:
            await connection.rollback()
            raise


async def _batches(items: Iterable[_T] | AsyncIterable[_T], size: int) -> AsyncIterator[list[_T]]:
    """Lists of up to `size` items; a plain iterable is read in a worker thread (it may be a file)."""
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


def _claim_row(item: Claim | InvalidClaim, now: str, run_id: str) -> dict[str, object]:
    row: dict[str, object] = {
        "id": item.id,
        "source_url": item.source_url,
        "target_url": item.target_url,
        "expected_anchor": None,
        "expected_rel": None,
        "match": "page",
        "tags": json.dumps(dict(item.tags), ensure_ascii=False),
        "invalid_reason": None,
        "page_key": "",  # invalid claims sort first: deciding them needs no fetch
        "now": now,
        "run_id": run_id,
    }
    if isinstance(item, InvalidClaim):
        row["invalid_reason"] = item.reason
        return row
    row["expected_anchor"] = item.expected_anchor
    row["expected_rel"] = item.expected_rel.value if item.expected_rel else None
    row["match"] = item.match.value
    row["page_key"] = _page_key(item.source_url)
    return row


def _page_key(source_url: str) -> str:
    """A hash of the page (as `page` matching normalises it), then of the URL as written.

    Sorting by it keeps claims of one page together, spellings of one URL together within
    that, and spreads the pages of a host over the whole run.
    """
    page = urls.normalize_page(source_url) or source_url
    return _digest(page, 16) + _digest(source_url, 8)


def _digest(text: str, size: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:size]


def _claim_of(row: sqlite3.Row) -> Claim | InvalidClaim:
    _, claim_id, source, target, anchor, rel, match, tags_json, invalid_reason = row
    tags = json.loads(tags_json)
    if invalid_reason is not None:
        return InvalidClaim(claim_id, source, target, invalid_reason, tags)
    try:
        return Claim(source, target, anchor, rel, match, claim_id, tags)
    except ClaimError as error:  # a row edited by hand into something unusable
        return InvalidClaim(claim_id, source, target, f"stored claim: {error}", tags)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utf8(text: str) -> str:
    """`text` as SQLite can take it: a lone surrogate (never valid UTF-8) becomes U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text
