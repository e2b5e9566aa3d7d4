"""The SQLite store: claims, runs and results in one file, readable with the sqlite3 shell.

The only module that uses aiosqlite; `SQLiteStore` is a `RunStore` (`base.py`). Tables (schema
version in `PRAGMA user_version`, statements in `sqlite_sql.py`):

- `claims`: one row per claim id, the last import wins; `invalid_reason` is set for a row
  that is not a usable claim; `tags` is a JSON object; `page_key` groups claims by page.
- `runs`: one row per run, `status` running, finished or interrupted; `settings` JSON;
  `claims`, `decided` and `counts` (JSON, by status) written when the run stops.
- `run_claims`: the claims a run checks.
- `results`: at most one per (run, claim); the columns a user filters on (`state` among them:
  the claim's monitoring state after the result), and `data`, the full result as JSON (the
  export format, its `state` included), so every field round-trips.
- `claim_states`: each checked claim's folded history (section 9) and the run of its last
  result; `events`: the events the fold reported, in the order stored. Both are written with
  the results that cause them, in one transaction (`sqlite_history.py`), and can be rebuilt
  from the results alone (`rebuild_history`).
- `claims.referring_domain`: the registrable domain of a usable claim's source, for the report's
  series over runs.

Writes are batched, one transaction per batch, never a commit per result. Reads stream:
every query that may return many rows is paged by key, never fetched whole, and no read
stays open while results are written. A run that was stopped (interrupted, killed) is
resumed by the next `begin_run`: claims already decided are not offered again, and
UNIQUE(run_id, claim_id) makes deciding a claim twice in one run impossible.

One process at a time holds a database's run. `begin_run` takes the hold, `finish_run` and
`close` end it; readers (`results`, `report`, `run_info`: export and report) never take it
and work beside a run. While another process, or another store in this one, holds it,
`begin_run` raises `RunHeldError` naming the holder: pid, host name, since when, and its run.
The hold is an exclusive `flock` on the side file `<database>.lock`, in which the holder
writes who it is, rather than a row in the database, because:

- the kernel ends it when its process ends, however it ends (kill -9, the OOM killer), so a
  run whose holder died is resumed by the next `begin_run`, with no stale lock to guess about;
- a row would need a liveness check (the pid, and its start time against pid reuse) that is
  wrong on another host or in another container's pid namespace, while a kernel lock holds
  for every process that can use the database at all: WAL keeps it on one host (its index
  is shared memory), and containers sharing a volume share the kernel;
- `flock`, not `fcntl` locks: those belong to a process, so a second store in the same
  process would get the lock too, and closing any descriptor of the file drops them all;
- a side file, not the database itself: SQLite keeps `fcntl` locks on that file, which a
  descriptor of ours, once closed, would drop.

The file is removed when the hold ends; one left by a killed process is simply taken over.

Every sqlite3 error of a public method surfaces as a `StoreError` naming the database, what
was being done and the cause, with the likely reason where SQLite's words mislead (a
directory the write-ahead log can't write in says "unable to open database file"): one
place, `store.base.guarded`. A value this crawler can't read back (edited by hand, written by another
version) is a `sqlite3.DataError` on its way there. At open, a database whose schema is not
this crawler's (tables or columns missing, a `user_version` unknown or newer) is refused
before anything is written. The database's thread is told to stop before `close` first
waits, so it stops however the close ends (cancelled, or interrupted by a second signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Mapping,
    Sequence,
)
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Self, TypeVar

import aiosqlite

from crawler.core import urls
from crawler.core.figures import ClaimRow, RunPoint
from crawler.core.history import Event, EventType, State
from crawler.errors import ClaimError, RunHeldError, StoreError, UnknownClaimError
from crawler.models import Claim, Flag, InvalidClaim, Result, Status, new_run_id
from crawler.store import sqlite_history as fold
from crawler.store import sqlite_sql as sql
from crawler.store.base import (
    ClaimFields,
    ClaimSource,
    ImportCounts,
    OnSaved,
    Report,
    ResultWriter,
    Run,
    RunInfo,
    RunStatus,
    Saved,
    TagCount,
    batches,
    guarded,
    guarded_stream,
    stored_time,
)

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl
    import resource

if TYPE_CHECKING:
    from crawler.store.base import RunStore

_T = TypeVar("_T")
_S = TypeVar("_S")
BATCH = 1000
"""Rows per page of a read."""
IMPORT_BATCH = 10000
"""Claims per import transaction: claim ids and page keys are hashes, so each batch dirties
index pages all over the file, and larger transactions write each of those pages fewer times."""
MONITORING_VERSION = 2
"""The schema version that brought states and events: reaching it folds the results already stored."""
BUSY_TIMEOUT = 30.0
"""Seconds a statement waits for another connection's write lock before it fails."""


class SQLiteStore:
    """One SQLite file: `async with SQLiteStore(path) as store:` opens (creating or upgrading it)
    and closes it."""

    faults: ClassVar[tuple[type[Exception], ...]] = (sqlite3.Error,)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._connection: aiosqlite.Connection | None = None
        self._hold: _Hold | None = None

    def failure(self, action: str, error: Exception) -> StoreError:
        """The one-line StoreError for `error`, met while trying to `action`."""
        return _failure(self.path, action, error)

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> Self:
        """The store at `path`, open; close it with `close()`."""
        store = cls(path)
        await store._connect()
        return store

    async def __aenter__(self) -> Self:
        if self._connection is None:
            await self._connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the database and end this store's hold on a run, if it has one; safe to call twice.

        The database's thread is told to stop and the hold let go before anything is awaited
        (every write of this store was awaited before), and again on the way out if that was
        interrupted (a second signal): a thread left waiting for work keeps a process from exiting.
        """
        try:
            stopping = self._connection.stop() if self._connection is not None else None
            self._connection = None
            self._release()
            if stopping is not None:
                await stopping
        except sqlite3.Error as error:
            raise self.failure("close the database", error) from error
        finally:
            if self._connection is not None:
                connection, self._connection = self._connection, None
                connection.stop()
            self._release()

    @property
    def _db(self) -> aiosqlite.Connection:
        if self._connection is None:
            raise StoreError(f"{self.path}: the store is not open")
        return self._connection

    @guarded("open the database")
    async def _connect(self) -> None:
        # isolation_level=None: no implicit transactions; each batch opens and ends its own.
        connection = aiosqlite.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT)
        _as_daemon(connection)
        try:
            await connection
        except BaseException:
            await _stopped(connection)  # aiosqlite stops its thread itself: let it finish first
            raise
        try:
            for pragma in sql.PRAGMAS:
                await connection.execute(f"PRAGMA {pragma}")
            await connection.create_function(
                sql.REFERRING_DOMAIN, 1, urls.referring_domain, deterministic=True
            )
            await _migrate(connection, self.path)
        except BaseException:
            stopping = connection.stop()
            if stopping is not None:
                await stopping
            raise
        self._connection = connection

    @guarded("begin a run")
    async def begin_run(self, settings: Mapping[str, object], *, fresh: bool = False) -> Run:
        """Resume the latest run if it did not finish (unless `fresh`), else start a new one.

        Takes the database's hold first (see the module's docstring): `RunHeldError` while
        another process, or another store, has it. A resumed run records the settings it
        continues with. With `fresh`, a run left `running` by a killed process is marked
        interrupted, and stays resumable by id only.
        """
        db = self._db
        hold = self._hold = self._hold or _Hold.take(self.path)
        settings_json = json.dumps(dict(settings), default=str, ensure_ascii=False)
        row = await self._one(sql.LATEST_RUN)
        if row is not None and row[2] != RunStatus.FINISHED and not fresh:
            await db.execute(sql.RESUME_RUN, (settings_json, row[0]))
            run = Run(row[0], row[1], resumed=True)
        else:
            if row is not None and row[2] != RunStatus.FINISHED:
                await db.execute(sql.INTERRUPT_RUN, (row[0],))
            now = datetime.now(UTC)
            run = Run(new_run_id(now), stored_time(now), resumed=False)
            await db.execute(sql.BEGIN_RUN, (run.id, run.started_at, settings_json))
        hold.announce(run.id)
        return run

    @guarded("import claims")
    async def add_claims(self, run: Run, items: ClaimSource) -> ImportCounts:
        """Upsert claims by id (the later row wins) and attach them to `run`, a transaction a batch.

        A plain iterable (a file being read) is read in a worker thread, so a slow input
        never blocks the event loop.
        """
        counts = ImportCounts()
        async for batch in batches(items, IMPORT_BATCH):
            counts += await self._import(run, batch)
        return counts

    async def _import(self, run: Run, batch: list[Claim | InvalidClaim]) -> ImportCounts:
        now = stored_time(datetime.now(UTC))
        rows = list({item.id: _claim_row(item, now, run.id) for item in batch}.values())  # last one wins
        try:  # the BEGIN too: cancelled while it waits, it still runs, and must be rolled back
            await self._db.execute(sql.BEGIN_WRITE)
            added, updated, known = await self._upsert(rows)
            await self._db.executemany(sql.ATTACH, rows)
            usable = [(str(row["id"]), str(row["source_url"]), str(row["target_url"])) for row in known]
            await _call(self._db, functools.partial(fold.restart_changed, claims=usable))
            await self._db.commit()
        except BaseException:
            # Queued behind what was queued before it (and before this await suspends), so it
            # runs even if this await is cancelled; without a transaction it does nothing.
            await self._db.rollback()
            raise
        invalid = sum(isinstance(item, InvalidClaim) for item in batch)
        return ImportCounts(added, updated, len(batch) - added - updated, invalid)

    async def _upsert(self, rows: list[dict[str, object]]) -> tuple[int, int, list[dict[str, object]]]:
        """Insert the new claims and update the changed ones: (added, updated, the usable claims
        that were there before, whose histories an import may restart).

        Asking first which ids exist spares a fresh import the update pass and a re-import
        the insert attempts; each pass costs about as much as the write itself.
        """
        ids = json.dumps([row["id"] for row in rows])
        known = {row[0] for row in await self._db.execute_fetchall(sql.EXISTING, (ids,))}
        new = [row for row in rows if row["id"] not in known]
        old = [row for row in rows if row["id"] in known]
        usable = [row for row in old if row["invalid_reason"] is None]
        return await self._many(sql.INSERT_CLAIM, new), await self._many(sql.UPDATE_CLAIM, old), usable

    async def _many(self, statement: str, rows: list[dict[str, object]]) -> int:
        """Rows changed by `sql` run once per row."""
        return (await self._db.executemany(statement, rows)).rowcount if rows else 0

    @guarded("attach the stored claims to the run")
    async def add_all_claims(self, run: Run) -> int:
        """Attach every claim in the database to `run` (a re-check); returns how many were new to it."""
        cursor = await self._db.execute(sql.ATTACH_ALL, (run.id,))
        return cursor.rowcount

    @guarded_stream("read the claims to verify")
    async def pending(self, run: Run) -> AsyncGenerator[Claim | InvalidClaim, None]:
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

    @guarded("save results")
    async def save(self, results: Sequence[Result]) -> Saved:
        """Store a batch of results and fold them into their claims' histories, in one transaction
        run whole on the database's thread: results (with their state), states and events are
        stored together or not at all. A claim already decided in its run keeps its first result,
        and only the results stored are folded. Each result must be for a claim of its run (a
        foreign key says so). Returns what was stored."""
        if not results:
            return Saved()
        return await _call(self._db, functools.partial(fold.save_batch, results=list(results)))

    def writer(
        self, *, batch_size: int = 500, max_delay: float = 0.25, on_saved: OnSaved | None = None
    ) -> ResultWriter:
        """A buffer for results saved in batches: when full, every `max_delay` seconds, and on exit;
        `on_saved` gets what each batch stored."""
        return ResultWriter(self, batch_size=batch_size, max_delay=max_delay, on_saved=on_saved)

    @guarded("attach the claims in those states to the run")
    async def add_claims_in_states(self, run: Run, states: Collection[State]) -> int:
        """Attach to `run` the stored claims whose state is one of `states` (`new` takes the claims
        never checked too); returns how many were new to the run."""
        wanted = sorted({State(state).value for state in states})
        parameters = {"run_id": run.id, "states": json.dumps(wanted)}
        attached = (await self._db.execute(sql.ATTACH_IN_STATES, parameters)).rowcount
        if State.NEW.value in wanted:
            attached += (await self._db.execute(sql.ATTACH_NEVER_FOLDED, {"run_id": run.id})).rowcount
        return attached

    @guarded("finish the run")
    async def finish_run(self, run: Run, *, interrupted: bool = False) -> RunInfo:
        """Mark the run finished (or interrupted, to be resumed), record its counts, end the hold."""
        info = await self.run_info(run.id)
        counts = json.dumps({status.value: n for status, n in info.by_status.items()})
        status = RunStatus.INTERRUPTED if interrupted else RunStatus.FINISHED
        finished = (status.value, stored_time(datetime.now(UTC)), info.claims, info.decided, counts, run.id)
        await self._db.execute(sql.FINISH_RUN, finished)
        points = await _call(self._db, functools.partial(fold.point, run_id=run.id))
        await self._db.execute(sql.SET_POINTS, (points, run.id))
        await self._db.execute(sql.OPTIMIZE)
        self._release()
        return await self.run_info(run.id)

    @guarded("read the run")
    async def run_info(self, run_id: str | None = None) -> RunInfo:
        """The run `run_id` (None or "latest": the latest run) as it stands now."""
        run_id = await self._run_id(run_id)
        row = await self._one(sql.RUN, (run_id,))
        assert row is not None  # _run_id checked it exists
        claims = await self._one(sql.RUN_CLAIMS, (run_id,))
        by_status = await self._db.execute_fetchall(sql.RUN_STATUSES, (run_id,))
        counts = {_stored(f"run {run_id}: a status", Status, status): n for status, n in by_status}
        return RunInfo(
            row[0],
            row[1],
            row[2],
            _stored(f"run {run_id}: its status", RunStatus, row[3]),
            _stored(f"run {run_id}: its settings", json.loads, row[4]),
            claims[0] if claims else 0,
            sum(counts.values()),
            {status: counts[status] for status in Status if status in counts},
        )

    @guarded("list the runs")
    async def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        ids = await self._db.execute_fetchall(sql.RUN_IDS)
        return [await self.run_info(row[0]) for row in ids]

    @guarded_stream("read results")
    async def results(
        self, run_id: str | None = None, *, statuses: Collection[Status] = ()
    ) -> AsyncGenerator[Result, None]:
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
            for rowid, data in rows:
                yield _stored(f"results row {rowid}", _result, data)
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

    @guarded("count the results")
    async def report(self, run_id: str | None = None, *, max_tag_values: int = 20) -> Report:
        """Counts of a run by status, by flag and by tag (the `max_tag_values` commonest values a key)."""
        info = await self.run_info(run_id)
        flags = await self._db.execute_fetchall(sql.FLAG_COUNTS, (info.id,))
        rows = await self._db.execute_fetchall(sql.TAG_COUNTS, (info.id, max_tag_values))
        by_tag: dict[tuple[str, str | None], dict[Status, int]] = {}
        for key, value, status, n in rows:
            by_tag.setdefault((key, value), {})[_stored("results: a status", Status, status)] = n
        tags = tuple(TagCount(key, value, counts) for (key, value), counts in by_tag.items())
        return Report(info, {_stored("results: a flag", Flag, flag): n for flag, n in flags}, tags)

    @guarded_stream("read results")
    async def export_rows(
        self, run_id: str | None = None, *, statuses: Collection[Status] = ()
    ) -> AsyncGenerator[tuple[Result, ClaimFields], None]:
        """Results of a run with their claims' fields, in the order the claims were first imported.

        Nothing when the database has no run yet; StoreError for a run id that doesn't exist.
        """
        if run_id in (None, "latest") and await self._one(sql.ANY_RUN) is None:
            return
        run = await self._run_id(run_id)
        wanted = [Status(status).value for status in statuses]
        query = sql.export_page(len(wanted))
        after = 0
        while True:
            rows = list(await self._db.execute_fetchall(query, (after, run, *wanted, BATCH)))
            for rowid, data, anchor, rel, match in rows:
                result = _stored(f"the result of claims row {rowid}", _result, data)
                yield result, ClaimFields(anchor, rel, match or "page")
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

    @guarded_stream("read events")
    async def events(
        self, *, run_id: str | None = None, since: str | None = None, types: Collection[str] = ()
    ) -> AsyncGenerator[Event, None]:
        """The events of a run (None or "latest": the latest), or, with `since`, of every run after
        that one (`run_id` is then ignored), in the order stored; `types` keeps those event types
        (ValueError for a word that is not one). Nothing when the database has no run yet."""
        wanted = sorted({EventType(kind).value for kind in types})
        if since is not None:
            await self._run_id(since)
            runs = [row[0] for row in await self._db.execute_fetchall(sql.RUNS_AFTER, (since,))]
        elif run_id in (None, "latest") and await self._one(sql.ANY_RUN) is None:
            return
        else:
            runs = [await self._run_id(run_id)]
        for run in runs:
            if wanted:
                pages = [self._pages(sql.RUN_EVENTS_OF_TYPE, (kind, run)) for kind in wanted]
                rows = _merged(pages)
            else:
                rows = self._pages(sql.RUN_EVENTS, (run,))
            async for rowid, data in rows:
                yield _stored(f"events row {rowid}", _event, data)

    @guarded("read the claim's history")
    async def history(self, claim_id: str) -> list[tuple[Result, tuple[Event, ...]]]:
        """Every result of the claim in run order, each with the events it caused (in order).

        `UnknownClaimError` when no claim has that id; a claim never checked has an empty history.
        """
        await self._claim(claim_id)
        results = await self._db.execute_fetchall(sql.CLAIM_RESULTS, (claim_id,))
        caused: dict[str, list[Event]] = {}
        for (data,) in await self._db.execute_fetchall(sql.CLAIM_EVENTS, (claim_id,)):
            event = _stored(f"an event of claim {claim_id}", _event, data)
            caused.setdefault(event.run_id, []).append(event)
        history = [_stored(f"a result of claim {claim_id}", _result, data) for (data,) in results]
        return [(result, tuple(caused.get(result.run_id, ()))) for result in history]

    @guarded("read the result")
    async def result(self, claim_id: str, run_id: str | None = None) -> Result | None:
        """The claim's result in run `run_id` (None: its latest result in any run), None if it has
        none there. `UnknownClaimError` for an unknown claim, StoreError for an unknown run."""
        await self._claim(claim_id)
        if run_id is None:
            row = await self._one(sql.LATEST_RESULT, (claim_id,))
        else:
            row = await self._one(sql.RUN_RESULT, (await self._run_id(run_id), claim_id))
        return None if row is None else _stored(f"a result of claim {claim_id}", _result, row[0])

    @guarded("count the claims by state")
    async def state_counts(self, run_id: str | None = None) -> dict[State, int]:
        """The run's decided claims by their state after it, in the order of `State` (a result
        stored before states existed counts as new)."""
        run = await self._run_id(run_id)
        rows = await self._db.execute_fetchall(sql.STATE_COUNTS, (run,))
        counts = {_stored(f"run {run}: a state", State, state): n for state, n in rows}
        return {state: counts[state] for state in State if state in counts}

    @guarded_stream("read the run's results")
    async def report_rows(self, run_id: str | None = None) -> AsyncGenerator[ClaimRow, None]:
        """One row per result of the run (in the order decided), with its state and its claim's
        expected anchor: what the report's figures are computed from."""
        run = await self._run_id(run_id)
        after = 0
        while True:
            rows = list(await self._db.execute_fetchall(sql.REPORT_ROWS, (run, after, BATCH)))
            for rowid, data, anchor in rows:
                result = _stored(f"results row {rowid}", _result, data)
                yield _stored(f"results row {rowid}", _report_row(anchor), result)
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

    @guarded("read the runs' series")
    async def run_points(self) -> list[RunPoint]:
        """Every run, oldest first: its live claims (state live or suspect after it), their
        referring domains, and its found, lost and recovered events (kept with a run when it
        stops; counted now for a run still going)."""
        points = []
        for run_id, started_at, status, kept in await self._db.execute_fetchall(sql.RUN_POINTS):
            if kept is None or status == RunStatus.RUNNING:
                kept = await _call(self._db, functools.partial(fold.point, run_id=run_id))
            figures = _stored(f"run {run_id}: its points", json.loads, kept)
            points.append(_stored(f"run {run_id}: its points", _point(run_id, started_at), figures))
        return points

    @guarded("rebuild the claims' states and events")
    async def rebuild_history(self) -> tuple[int, int]:
        """Fold every claim's states and events again from the stored results alone, in run order
        (each run's own `confirm_runs` and `unreachable_runs`), restarting a usable claim whose
        URLs now differ; in one transaction. Returns (claims, events)."""
        return await _call(self._db, fold.rebuild)

    async def _claim(self, claim_id: str) -> None:
        if await self._one(sql.CLAIM, (claim_id,)) is None:
            raise UnknownClaimError(f"no claim {claim_id!r} in {self.path}")

    async def _pages(self, statement: str, parameters: tuple[str, ...]) -> AsyncIterator[tuple[int, str]]:
        """(rowid, data) rows of a statement paged by rowid (its last two parameters: after, limit)."""
        after = 0
        while True:
            rows = list(await self._db.execute_fetchall(statement, (*parameters, after, BATCH)))
            for rowid, data in rows:
                yield rowid, data
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

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

    def _release(self) -> None:
        hold, self._hold = self._hold, None
        if hold is not None:
            hold.release()


Store = SQLiteStore
"""The public name (`crawler.Store`): the SQLite store is the one every command uses by default."""

if TYPE_CHECKING:
    _IS_A_RUN_STORE: type[RunStore] = SQLiteStore  # mypy checks the class against the protocol here


# The hold -------------------------------------------------------------------------------------


class _Hold:
    """This process's hold on a database's run: an exclusive lock on `<database>.lock`, a file
    in which the holder writes who it is (one JSON line) for the process it turns away."""

    def __init__(self, path: str, descriptor: int) -> None:
        self.path = path
        self._descriptor = descriptor
        self._since = stored_time(datetime.now(UTC))
        # A store dropped without being closed (its close interrupted) still lets go, when collected.
        self._close = weakref.finalize(self, os.close, descriptor)

    @classmethod
    def take(cls, database: str) -> _Hold:
        """The hold of `database`'s run, or RunHeldError naming the process that has it."""
        path = os.path.realpath(database) + ".lock"  # a symbolic link to the database shares it
        for _ in range(100):
            descriptor = _open_lock_file(database, path)
            try:
                locked = _lock(descriptor)
                held_by = None if locked else _holder(descriptor)
                mine = locked and _same_file(descriptor, path)
            except BaseException as error:
                os.close(descriptor)
                if isinstance(error, OSError):
                    raise StoreError(
                        f"{database}: cannot hold its run: {path}: {error.strerror or error}"
                    ) from None
                raise
            if mine:
                hold = cls(path, descriptor)
                hold.announce(None)
                return hold
            os.close(descriptor)
            if held_by is not None:
                raise RunHeldError(
                    f"{database}: its run is held by {held_by}: one process at a time works on a"
                    " database's run; wait for it to end, or stop it (the next verify resumes the run)"
                )
            # Locked just as its holder removed it on leaving: lock the file that is there now.
        raise StoreError(f"{database}: cannot hold its run: {path} is replaced again and again")

    def announce(self, run_id: str | None) -> None:
        """Write who holds the run, and which run, for anyone who is turned away."""
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": self._since, "run": run_id}
        line = (json.dumps(holder) + "\n").encode()
        with contextlib.suppress(OSError):  # the hold works without it; a refusal says less
            os.lseek(self._descriptor, 0, os.SEEK_SET)
            os.write(self._descriptor, line)
            os.ftruncate(self._descriptor, len(line))  # after the write: never seen empty

    def release(self) -> None:
        """Let go (once): the file is removed while still locked, so whoever opened it meanwhile
        finds it gone (`_same_file`) and locks the next one instead."""
        if not self._close.alive:
            return
        try:
            if sys.platform != "win32" and _same_file(self._descriptor, self.path):
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
        finally:
            self._close()


def _open_lock_file(database: str, path: str) -> int:
    flags = os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        return os.open(path, os.O_RDWR | flags, 0o666)
    except PermissionError as error:
        failure: OSError = error
        with contextlib.suppress(OSError):  # another user's lock file: locking it needs no write
            return os.open(path, os.O_RDONLY | flags)
    except OSError as error:
        failure = error
    raise StoreError(f"{database}: cannot hold its run: {path}: {failure.strerror or failure}")


_WINDOWS_LOCK_AT = 1 << 30
"""Where the lock byte lies on Windows, whose locks also bar reading: far after the holder's line."""


def _lock(descriptor: int) -> bool:
    """Lock the open file without waiting: False when another open file has it locked."""
    try:
        if sys.platform == "win32":
            os.lseek(descriptor, _WINDOWS_LOCK_AT, os.SEEK_SET)
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        else:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, getattr(errno, "EDEADLOCK", 0)):
            return False  # Windows says EACCES or EDEADLOCK
        raise
    return True


def _same_file(descriptor: int, path: str) -> bool:
    """Whether `path` still names the file open as `descriptor`."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _holder(descriptor: int) -> str:
    """Who holds the lock, as they wrote it (given a moment to write it, if they just took it)."""
    for _ in range(50):
        os.lseek(descriptor, 0, os.SEEK_SET)
        line = os.read(descriptor, 4096).partition(b"\n")[0]
        with contextlib.suppress(ValueError):
            holder = json.loads(line)
            if isinstance(holder, dict):
                run = f", run {holder['run']}" if holder.get("run") else ""
                return (
                    f"process {holder.get('pid')} on host {holder.get('host')}"
                    f" (holding it since {holder.get('since')}{run})"
                )
        time.sleep(0.01)
    return "another process (which has not said who it is)"


# Errors ---------------------------------------------------------------------------------------


def _failure(path: str, action: str, error: Exception) -> StoreError:
    """The one-line StoreError for `error`, met while trying to `action` on the database at `path`."""
    cause = str(error) or type(error).__name__
    hint = _hint(path, getattr(error, "sqlite_errorname", ""))
    return StoreError(f"{path}: cannot {action}: {cause}" + (f"; {hint}" if hint else ""))


def _hint(path: str, name: str) -> str:
    """What SQLite's error `name` (SQLITE_...) most likely means for the file at `path`."""
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM")):
        return _access_hint(path)
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR")):
        return _space_hint(path, full=name == "SQLITE_FULL")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return "the file is damaged or not a database: restore a copy, or recover what is left (.recover)"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return f"another program kept it locked for more than {BUSY_TIMEOUT:.0f} s"
    return ""


def _access_hint(path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    user = f"user {os.geteuid()}" if hasattr(os, "geteuid") else "this user"
    if not os.path.isdir(directory):
        return f"{directory} is not a directory"
    if os.path.isdir(path):
        return "it is a directory"
    if not os.path.exists(path):
        cause = _why_not_created(path)
        return f"it can't be created in {directory}: {cause}" if cause else ""
    if not os.access(directory, os.W_OK):
        name = os.path.basename(path)
        return (
            f"the directory {directory} can't be written (a read-only mount, or not writable by {user}),"
            f" and SQLite's write-ahead log needs to create {name}-wal and {name}-shm beside the database"
        )
    if not os.access(path, os.W_OK):
        return f"the file can't be written (read-only, or not writable by {user})"
    if not os.access(path, os.R_OK):
        return f"the file can't be read by {user}"
    return ""


def _why_not_created(path: str) -> str:
    """The system's own word for why `path` can't be created ("" if it can: then it is removed)."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return ""
    except OSError as error:
        return error.strerror or str(error)
    os.close(descriptor)
    with contextlib.suppress(OSError):
        os.unlink(path)
    return ""


def _space_hint(path: str, *, full: bool) -> str:
    facts = []
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
        if free < 64 << 20:
            facts.append(f"{free >> 20} MiB free on its disk")
    limit = _file_size_limit()
    if limit is not None:
        facts.append(f"this process may write files of at most {limit} bytes (ulimit -f)")
    if facts:
        return "writing failed: " + ", ".join(facts)
    return (
        "the disk is full" if full else "the disk or file system failed (full? gone? a network mount lost?)"
    )


def _file_size_limit() -> int | None:
    if sys.platform == "win32":
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def _stored(what: str, decode: Callable[[_S], _T], value: _S) -> _T:
    """`decode(value)` of a value read from the database; one this crawler can't read (edited by
    hand, written by another program or version) is a sqlite3.DataError naming `what`."""
    try:
        return decode(value)
    except (ValueError, KeyError, TypeError) as error:
        raise sqlite3.DataError(f"{what} can't be read back: {error}") from error


def _result(data: str) -> Result:
    return Result.from_dict(json.loads(data))


def _report_row(expected_anchor: str | None) -> Callable[[Result], ClaimRow]:
    return functools.partial(ClaimRow.of, expected_anchor=expected_anchor)


def _point(run_id: str, started_at: str) -> Callable[[list[int]], RunPoint]:
    return lambda figures: RunPoint(run_id, started_at, *figures)


def _event(data: str) -> Event:
    return Event.from_dict(json.loads(data))


async def _call(connection: aiosqlite.Connection, work: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run `work` on the database's own thread as one queued call: a cancelled caller never splits
    it (the call runs whole; its outcome is dropped). aiosqlite's queue is internal to it, but it
    is the one way to keep several statements and the Python between them out of the event loop's
    reach; `execute` does no more than this."""
    execute: Callable[[Callable[[], _T]], Awaitable[_T]] = connection._execute
    return await execute(lambda: work(connection._conn))


async def _merged(streams: list[AsyncIterator[tuple[int, str]]]) -> AsyncIterator[tuple[int, str]]:
    """Rows of streams each ordered by rowid, merged in rowid order."""
    heads: dict[int, tuple[int, str]] = {}
    for n, stream in enumerate(streams):
        if (row := await anext(stream, None)) is not None:
            heads[n] = row
    while heads:
        n = min(heads, key=lambda key: heads[key][0])
        yield heads[n]
        if (row := await anext(streams[n], None)) is not None:
            heads[n] = row
        else:
            del heads[n]


# Opening ----------------------------------------------------------------------------------------


def _as_daemon(connection: aiosqlite.Connection) -> None:
    """Make the connection's thread (not started yet) a daemon. A close interrupted before it
    began (a second signal) never tells the thread to stop, and a thread that waits for work
    keeps a process from exiting; a daemon ends with it, as a killed process's thread would,
    and SQLite rolls back what was not committed (the writer's batches are awaited before)."""
    thread = getattr(connection, "_thread", None)
    if isinstance(thread, threading.Thread) and not thread.is_alive():
        thread.daemon = True


async def _stopped(connection: aiosqlite.Connection) -> None:
    """Wait until the thread of a connection that failed to open has stopped (aiosqlite stops it
    itself), so it never reports to an event loop that is already closed."""
    thread = getattr(connection, "_thread", None)
    if isinstance(thread, threading.Thread) and thread.is_alive():
        await asyncio.to_thread(thread.join, BUSY_TIMEOUT)


async def _migrate(connection: aiosqlite.Connection, path: str) -> None:
    """Bring the schema to the latest version, each step in its own transaction, then check it."""
    async with connection.execute(sql.USER_VERSION) as cursor:
        version = (await cursor.fetchone() or (0,))[0]
    if version > len(sql.MIGRATIONS):
        raise StoreError(f"{path}: schema version {version} is newer than this crawler knows")
    if version < 0:
        raise StoreError(f"{path}: not a database of this crawler (unknown schema version {version})")
    if version == 0:
        async with connection.execute(sql.ANY_TABLE) as cursor:
            if (await cursor.fetchone() or (0,))[0]:
                raise StoreError(f"{path}: a database of something else (tables but no crawler schema)")
    if 0 < version < len(sql.MIGRATIONS):
        await _check_schema(connection, path, version, version)  # ours, before it is changed
    for number in range(version, len(sql.MIGRATIONS)):
        try:
            # The transaction stays open after the script (no COMMIT in it) for the step's Python part.
            await connection.executescript(
                f"BEGIN IMMEDIATE; {sql.MIGRATIONS[number]} PRAGMA user_version = {number + 1};"
            )
            if number + 1 == MONITORING_VERSION:
                await _call(connection, fold.refold)  # results stored before states existed
            await connection.commit()
        except BaseException:
            await connection.rollback()
            raise
    await _check_schema(connection, path, version, len(sql.MIGRATIONS))


async def _check_schema(connection: aiosqlite.Connection, path: str, version: int, built: int) -> None:
    """StoreError unless the database has every table and column the first `built` migrations make
    (its `version` is named in the message)."""
    found = {(table, column) for table, column in await connection.execute_fetchall(sql.SCHEMA_COLUMNS)}
    if missing := _schema(built) - found:
        tables = sorted({table for table, _ in missing} - {table for table, _ in found})
        columns = sorted(f"{table}.{column}" for table, column in missing)
        lacks = f"no table {', '.join(tables)}" if tables else f"no column {', '.join(columns)}"
        raise StoreError(f"{path}: not a database of this crawler (schema version {version}, but {lacks})")


@functools.cache
def _schema(built: int) -> frozenset[tuple[str, str]]:
    """Every (table, column) of the schema the first `built` migrations build."""
    with contextlib.closing(sqlite3.connect(":memory:")) as database:
        database.create_function(sql.REFERRING_DOMAIN, 1, urls.referring_domain, deterministic=True)
        database.executescript("".join(sql.MIGRATIONS[:built]))
        return frozenset(database.execute(sql.SCHEMA_COLUMNS).fetchall())


# Rows -------------------------------------------------------------------------------------------


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
        "referring_domain": None,
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
    row["referring_domain"] = urls.referring_domain(item.source_url)
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
    """The stored claim; a row edited by hand into something unusable is an invalid claim saying
    why (the run goes on, as with a bad input row), never a failure of the whole run."""
    _, claim_id, source, target, anchor, rel, match, tags_json, invalid_reason = row
    try:
        tags = json.loads(tags_json)
    except (ValueError, TypeError):
        tags = None
    if not isinstance(tags, dict):
        return InvalidClaim(claim_id, source, target, "stored claim: tags: not a JSON object", {})
    if invalid_reason is not None:
        return InvalidClaim(claim_id, source, target, invalid_reason, tags)
    try:
        return Claim(source, target, anchor, rel, match, claim_id, tags)
    except ClaimError as error:
        return InvalidClaim(claim_id, source, target, f"stored claim: {error}", tags)
