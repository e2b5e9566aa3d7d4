"""The PostgreSQL store: one run shared by every process that joins it, on any number of machines.

The only module that uses asyncpg; `PostgresStore` works as `SQLiteStore` does (`base.py`), with
the same tables (statements and schema in `postgres_sql.py`, its version in `crawler_schema`),
except that a run is shared, not held: `begin_run` joins the `running` run if there is one, and
`join_run` (for `crawler worker`) joins it or says there is none. Work is handed out by host
leases (`crawler.engine.leases`, for which this store is the `LeaseBackend`): `pending` yields
the claims of the hosts this process leases, until no claim of the run is pending anywhere,
and `save` stores a result only while its host's lease still holds (the fence), so a process
that stalled past its lease (SIGSTOP, a long pause) has its late results refused.

`save` folds the results it stores into their claims' monitoring states and events (section
9) in the same transaction, behind the same fence (`postgres_history.py`): a refused result
changes nothing. Every read behind `changes`, `history`, `evidence`, `export`, `report` and
`verify --states` gives what the SQLite store gives, in the same order.

`finish_run` marks the run finished once every claim has a result; interrupted, it gives this
process's hosts back at once, and marks the run interrupted only when no other process is
still working on it.

The URL is libpq's (`postgresql://user:password@host:port/database`); behind PgBouncer in
transaction pooling mode add `?statement_cache_size=0` (asyncpg's prepared statements do not
survive a change of server connection). No session state is used: no session advisory lock,
no temporary table, no LISTEN. Every asyncpg or connection error is a `StoreError` naming the
database (without its password) and what was being done.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import secrets
import socket
import urllib.parse
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
from typing import Any, ClassVar, Protocol, Self, TypeVar

import asyncpg

from crawler.core import urls
from crawler.core.figures import ClaimRow, RunPoint
from crawler.core.history import Event, EventType, State
from crawler.errors import ClaimError, StoreError, UnknownClaimError
from crawler.models import Claim, Flag, InvalidClaim, Result, Status, new_run_id
from crawler.store import postgres_history as fold
from crawler.store import postgres_sql as sql
from crawler.store.base import (
    ClaimFields,
    ClaimSource,
    ImportCounts,
    OnSaved,
    Report,
    ResultWriter,
    Run,
    RunInfo,
    RunRef,
    RunStatus,
    Saved,
    TagCount,
    batches,
    guarded,
    guarded_stream,
    stored_time,
)

_T = TypeVar("_T")
_S = TypeVar("_S")
BATCH = 1000
"""Rows per page of a read."""
IMPORT_BATCH = 5000
"""Claims per import statement."""
POOL_SIZE = 8
"""Connections a process keeps: the feed, the heartbeat, saves and request places at once."""
DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)
FAULTS = (*DB_ERRORS, fold.Unreadable, fold.Raced)
"""What a public method turns into a StoreError: the driver's errors and values it can't read back."""
MONITORING_VERSION = 2
"""The schema version that brought states and events: reaching it folds the results already stored."""
ATTEMPTS = 5
"""Tries of a transaction that PostgreSQL aborted to break a deadlock (or that met a writer of an
older version): each try starts again from the start, with nothing of the last one kept."""
RETRIED = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError, fold.Raced)


class _Fenced(Protocol):
    @property
    def tokens(self) -> Mapping[str, int]: ...
    @property
    def leased(self) -> Sequence[tuple[str, Result]]: ...
    @property
    def free(self) -> Sequence[Result]: ...


class _Leases(Protocol):
    """This process's host leases (`crawler.engine.leases.HostLeases`), attached by `leasing`."""

    def feed(self) -> AsyncIterator[Claim | InvalidClaim]: ...

    def fence(self, results: Sequence[Result]) -> _Fenced: ...

    async def settle(self, fenced: Any, stored: set[str]) -> None: ...

    async def close(self) -> None: ...


class PostgresStore:
    """One PostgreSQL database: `async with PostgresStore(url) as store:` opens (creating or
    upgrading its tables) and closes it."""

    faults: ClassVar[tuple[type[Exception], ...]] = FAULTS

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = _redacted(url)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._pool: asyncpg.Pool | None = None
        self._leases: _Leases | None = None
        self._run_id: str | None = None

    @classmethod
    async def open(cls, url: str) -> Self:
        store = cls(url)
        await store._connect()
        return store

    async def __aenter__(self) -> Self:
        if self._pool is None:
            await self._connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Give back this process's leases and close the connections; safe to call twice."""
        pool, self._pool = self._pool, None
        leases, self._leases = self._leases, None
        if pool is None:
            return
        try:
            if leases is not None:
                self._pool = pool  # the leases give their hosts back through it
                try:
                    await leases.close()
                finally:
                    self._pool = None
        finally:
            await _closed(pool)

    @property
    def _db(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError(f"{self.name}: the store is not open")
        return self._pool

    @guarded("open the database")
    async def _connect(self) -> None:
        dsn, options = _connection_options(self.url)
        self._pool = await asyncpg.create_pool(dsn, min_size=1, max_size=POOL_SIZE, **options)
        try:
            await self._migrate()
        except BaseException:
            pool, self._pool = self._pool, None
            pool.terminate()
            raise

    async def _migrate(self) -> None:
        async with self._db.acquire() as db, db.transaction():
            await db.execute(sql.SCHEMA_LOCK)
            exists = await db.fetchval("SELECT to_regclass('crawler_schema') IS NOT NULL")
            if not exists and await db.fetchval(sql.FOREIGN_TABLES):
                raise StoreError(f"{self.name}: a database of something else (tables but no crawler schema)")
            await db.execute(sql.VERSION_TABLE)
            version = await db.fetchval(sql.VERSION) or 0
            if version > len(sql.MIGRATIONS):
                raise StoreError(f"{self.name}: schema version {version} is newer than this crawler knows")
            for number in range(version, len(sql.MIGRATIONS)):
                await db.execute(sql.MIGRATIONS[number])
                if number + 1 == MONITORING_VERSION:
                    await fold.refold(db)  # results stored before states existed
                await db.execute(sql.SET_VERSION, number + 1)

    async def _in_transaction(self, work: Callable[[asyncpg.Connection], Awaitable[_T]]) -> _T:
        """`work` in a transaction of its own on one connection, tried again when PostgreSQL
        aborted it to break a deadlock (see `ATTEMPTS`)."""
        async with self._db.acquire() as db:
            attempt = 1
            while True:
                try:
                    async with db.transaction():
                        return await work(db)
                except RETRIED:
                    if attempt >= ATTEMPTS:
                        raise
                    attempt += 1

    def failure(self, action: str, error: Exception) -> StoreError:
        """The one-line StoreError for `error`, met while trying to `action`."""
        if isinstance(error, StoreError):
            return error
        cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if isinstance(error, OSError | asyncio.TimeoutError):
            cause = f"the server can't be reached ({cause})"
        return StoreError(f"{self.name}: cannot {action}: {cause}")

    # Runs ---------------------------------------------------------------------------------------

    @guarded("begin a run")
    async def begin_run(self, settings: Mapping[str, object], *, fresh: bool = False) -> Run:
        """Join the running run (shared: any number of processes work on it), else resume the
        latest run if it was interrupted (unless `fresh`), else start a new one."""
        settings_json = json.dumps(dict(settings), default=str, ensure_ascii=False)
        while True:
            async with self._db.acquire() as db, db.transaction():
                running = await db.fetchrow(sql.RUNNING_RUN)
                if running is not None:
                    run = Run(running["id"], running["started_at"], resumed=True)
                    break
                latest = await db.fetchrow(sql.LATEST_RUN)
                if latest is not None and latest["status"] == RunStatus.INTERRUPTED and not fresh:
                    if await db.execute(sql.RESUME_RUN, latest["id"]) == "UPDATE 1":
                        run = Run(latest["id"], latest["started_at"], resumed=True)
                        break
                    continue
                now = datetime.now(UTC)
                run = Run(new_run_id(now), stored_time(now), resumed=False)
                if await db.fetchval(sql.BEGIN_RUN, run.id, run.started_at, settings_json) is not None:
                    break
            # Another process started or resumed a run at the same moment: join that one.
        await self._join(run, settings)
        return run

    @guarded("join the running run")
    async def join_run(self, settings: Mapping[str, object]) -> Run | None:
        """The running run, joined (never an interrupted one); None when no run is running."""
        running = await self._db.fetchrow(sql.RUNNING_RUN)
        if running is None:
            return None
        run = Run(running["id"], running["started_at"], resumed=True)
        await self._join(run, settings)
        return run

    async def _join(self, run: Run, settings: Mapping[str, object]) -> None:
        self._run_id = run.id
        lease = settings.get("lease", 60.0)
        await self._db.execute(sql.JOIN_WORKERS, run.id, self.worker, float(lease or 60.0))  # type: ignore[arg-type]

    def attach(self, leases: _Leases | None) -> None:
        """Feed `pending` from `leases` and fence `save` by them (`crawler.engine.leases.leasing`)."""
        self._leases = leases

    @guarded("finish the run")
    async def finish_run(self, run: Run, *, interrupted: bool = False) -> RunInfo:
        """Give this process's hosts back; mark the run finished when every claim has a result
        (or interrupted, when no other process still works on it)."""
        if self._leases is not None:
            await self._leases.close()  # hosts given back now, not after the lease runs out
        info = await self.run_info(run.id)
        counts = json.dumps({status.value: n for status, n in info.by_status.items()})
        finished = (stored_time(datetime.now(UTC)), info.claims, info.decided, counts)
        async with self._db.acquire() as db, db.transaction():
            if await db.fetchval(sql.LOCK_RUN, run.id) == RunStatus.RUNNING:
                status = None
                if interrupted:
                    if not await db.fetchval(sql.OTHER_WORKERS, run.id, self.worker):
                        status = RunStatus.INTERRUPTED
                elif not await db.fetchval(sql.ANY_UNDONE, run.id):
                    status = RunStatus.FINISHED
                if status is not None:
                    points = await fold.point(db, run.id)
                    await db.execute(sql.FINISH_RUN, run.id, status.value, *finished, points)
            await db.execute(sql.LEAVE_WORKERS, run.id, self.worker)
        return await self.run_info(run.id)

    @guarded("read the run")
    async def run_info(self, run_id: str | None = None) -> RunInfo:
        run_id = await self._run_ref(run_id)
        row = await self._db.fetchrow(sql.RUN, run_id)
        assert row is not None
        claims = await self._db.fetchval(sql.RUN_CLAIMS, run_id)
        counts = {Status(status): n for status, n in await self._db.fetch(sql.RUN_STATUSES, run_id)}
        return RunInfo(
            row["id"],
            row["started_at"],
            row["finished_at"],
            RunStatus(row["status"]),
            json.loads(row["settings"]),
            claims or 0,
            sum(counts.values()),
            {status: counts[status] for status in Status if status in counts},
        )

    @guarded("list the runs")
    async def runs(self) -> list[RunInfo]:
        return [await self.run_info(row["id"]) for row in await self._db.fetch(sql.RUN_IDS)]

    async def _run_ref(self, run_id: RunRef) -> str:
        if run_id in (None, "latest"):
            found = await self._db.fetchval(sql.LATEST_RUN_ID)
            if found is None:
                raise StoreError(f"no run yet in {self.name}")
            return str(found)
        if await self._db.fetchval(sql.RUN_ID, run_id) is None:
            raise StoreError(f"no run {run_id!r} in {self.name}")
        return str(run_id)

    # Claims -------------------------------------------------------------------------------------

    @guarded("import claims")
    async def add_claims(self, run: Run, items: ClaimSource) -> ImportCounts:
        """Upsert claims by id (the later row wins) and attach them to `run`, a transaction a batch."""
        counts = ImportCounts()
        async for batch in batches(items, IMPORT_BATCH):
            rows = list({item.id: _claim_row(item) for item in batch}.values())
            added, updated = await self._in_transaction(functools.partial(_import, run_id=run.id, rows=rows))
            invalid = sum(isinstance(item, InvalidClaim) for item in batch)
            counts += ImportCounts(added, updated, len(batch) - added - updated, invalid)
        return counts

    @guarded("attach the stored claims to the run")
    async def add_all_claims(self, run: Run) -> int:
        return int(await self._db.fetchval(sql.ATTACH_ALL, run.id))

    @guarded("attach the claims in those states to the run")
    async def add_claims_in_states(self, run: Run, states: Collection[State]) -> int:
        """Attach to `run` the stored claims whose state is one of `states` (`new` takes the claims
        never checked too); returns how many were new to the run."""
        wanted = sorted({State(state).value for state in states})
        async with self._db.acquire() as db, db.transaction():
            attached = int(await db.fetchval(sql.ATTACH_IN_STATES, run.id, wanted))
            if State.NEW.value in wanted:
                attached += int(await db.fetchval(sql.ATTACH_NEVER_FOLDED, run.id))
        return attached

    def pending(self, run: Run) -> AsyncIterator[Claim | InvalidClaim]:
        """The claims of the hosts this process leases in `run`, as it leases them, until no
        claim of the run is pending in any process (`crawler.engine.leases`)."""
        if self._leases is None or self._run_id != run.id:
            raise StoreError(
                f"{self.name}: run {run.id} is shared: work on it inside `crawler.engine.leases.leasing`"
            )
        return self._guarded_feed("lease hosts", self._leases.feed())

    async def _guarded_feed(self, action: str, items: AsyncIterator[_T]) -> AsyncGenerator[_T, None]:
        try:
            async for item in items:
                yield item
        except DB_ERRORS as error:
            raise self.failure(action, error) from error
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()

    # Results ------------------------------------------------------------------------------------

    @guarded("save results")
    async def save(self, results: Sequence[Result]) -> Saved:
        """Store a batch of results and fold them into their claims' histories, in one transaction:
        those decided under a lease only while the lease holds (the fence), a claim already decided
        in its run keeping its first result; results, states and events are committed together.
        Returns what was stored (each result with its state) and the events, in order."""
        if not results:
            return Saved()
        firsts: dict[tuple[str, str], Result] = {}
        for result in results:
            firsts.setdefault((result.run_id, result.claim_id), result)
        leases = self._leases
        fenced = leases.fence(list(firsts.values())) if leases is not None else None
        save = functools.partial(
            fold.save_batch,
            worker=self.worker,
            tokens=fenced.tokens if fenced is not None else {},
            batch=_hosts(firsts, fenced),
        )
        saved = await self._in_transaction(save)
        if leases is not None:
            await leases.settle(fenced, {result.claim_id for result in saved.results})
        return saved

    def writer(
        self, *, batch_size: int = 500, max_delay: float = 0.25, on_saved: OnSaved | None = None
    ) -> ResultWriter:
        return ResultWriter(self, batch_size=batch_size, max_delay=max_delay, on_saved=on_saved)

    @guarded_stream("read results")
    async def results(
        self, run_id: str | None = None, *, statuses: Collection[Status] = ()
    ) -> AsyncGenerator[Result, None]:
        """Results of a run (None or "latest": the latest) in the order they were decided."""
        if run_id in (None, "latest") and await self._db.fetchval(sql.LATEST_RUN_ID) is None:
            return
        run = await self._run_ref(run_id)
        wanted = [Status(status).value for status in statuses]
        async for row in self._pages(sql.RESULTS_PAGE, run, wanted):
            yield _stored(f"results row {row['seq']}", _result, row["data"])

    @guarded("count the results")
    async def report(self, run_id: str | None = None, *, max_tag_values: int = 20) -> Report:
        info = await self.run_info(run_id)
        flags = await self._db.fetch(sql.FLAG_COUNTS, info.id)
        by_tag: dict[tuple[str, str | None], dict[Status, int]] = {}
        for key, value, status, n in await self._db.fetch(sql.TAG_COUNTS, info.id, max_tag_values):
            by_tag.setdefault((key, value), {})[Status(status)] = n
        tags = tuple(TagCount(key, value, counts) for (key, value), counts in by_tag.items())
        return Report(info, {Flag(flag): n for flag, n in flags}, tags)

    @guarded_stream("read results")
    async def export_rows(
        self, run_id: RunRef = None, *, statuses: Collection[Status] = ()
    ) -> AsyncGenerator[tuple[Result, ClaimFields], None]:
        """Results of a run with their claims' fields, in the order the claims were first imported.

        Nothing when the database has no run yet; StoreError for a run id that doesn't exist.
        """
        if run_id in (None, "latest") and await self._db.fetchval(sql.LATEST_RUN_ID) is None:
            return
        run = await self._run_ref(run_id)
        wanted = [Status(status).value for status in statuses]
        async for row in self._pages(sql.EXPORT_PAGE, run, wanted):
            result = _stored(f"the result of claims row {row['seq']}", _result, row["data"])
            yield result, ClaimFields(row["expected_anchor"], row["expected_rel"], row["match"] or "page")

    # Monitoring (section 9) --------------------------------------------------------------------

    @guarded_stream("read events")
    async def events(
        self, *, run_id: RunRef = None, since: str | None = None, types: Collection[str] = ()
    ) -> AsyncGenerator[Event, None]:
        """The events of a run (None or "latest": the latest), or, with `since`, of every run after
        that one (`run_id` is then ignored), in the order stored; `types` keeps those event types
        (ValueError for a word that is not one). Nothing when the database has no run yet."""
        wanted = sorted({EventType(kind).value for kind in types})
        if since is not None:
            runs = [row["id"] for row in await self._db.fetch(sql.RUNS_AFTER, await self._run_ref(since))]
        elif run_id in (None, "latest") and await self._db.fetchval(sql.LATEST_RUN_ID) is None:
            return
        else:
            runs = [await self._run_ref(run_id)]
        for run in runs:
            after = (0, 0)
            while True:
                rows = await self._db.fetch(sql.RUN_EVENTS, run, wanted, *after, BATCH)
                for row in rows:
                    yield _stored(f"event {row['result_seq']}.{row['n']}", _event, row["data"])
                if len(rows) < BATCH:
                    break
                after = (rows[-1]["result_seq"], rows[-1]["n"])

    @guarded("read the claim's history")
    async def history(self, claim_id: str) -> list[tuple[Result, tuple[Event, ...]]]:
        """Every result of the claim in run order with the events it caused (in order).

        `UnknownClaimError` when no claim has that id; a claim never checked has an empty history.
        """
        await self._claim(claim_id)
        results = await self._db.fetch(sql.CLAIM_RESULTS, claim_id)
        caused: dict[str, list[Event]] = {}
        for row in await self._db.fetch(sql.CLAIM_EVENTS, claim_id):
            event = _stored(f"an event of claim {claim_id}", _event, row["data"])
            caused.setdefault(event.run_id, []).append(event)
        history = [_stored(f"a result of claim {claim_id}", _result, row["data"]) for row in results]
        return [(result, tuple(caused.get(result.run_id, ()))) for result in history]

    @guarded("read the result")
    async def result(self, claim_id: str, run_id: RunRef = None) -> Result | None:
        """The claim's result in run `run_id` (None: its latest result in any run), None if it has
        none there. `UnknownClaimError` for an unknown claim, StoreError for an unknown run."""
        await self._claim(claim_id)
        if run_id is None:
            data = await self._db.fetchval(sql.LATEST_RESULT, claim_id)
        else:
            data = await self._db.fetchval(sql.RUN_RESULT, await self._run_ref(run_id), claim_id)
        return None if data is None else _stored(f"a result of claim {claim_id}", _result, data)

    @guarded("count the claims by state")
    async def state_counts(self, run_id: RunRef = None) -> dict[State, int]:
        """The run's decided claims by their state after it, in the order of `State` (a result
        stored before states existed counts as new)."""
        run = await self._run_ref(run_id)
        rows = await self._db.fetch(sql.STATE_COUNTS, run)
        counts = {_stored(f"run {run}: a state", State, row["state"]): row["count"] for row in rows}
        return {state: counts[state] for state in State if state in counts}

    @guarded_stream("read the run's results")
    async def report_rows(self, run_id: RunRef = None) -> AsyncGenerator[ClaimRow, None]:
        """One row per result of the run (in the order decided), with its state and its claim's
        expected anchor: what the report's figures are computed from."""
        run = await self._run_ref(run_id)
        async for row in self._pages(sql.REPORT_ROWS, run):
            result = _stored(f"results row {row['seq']}", _result, row["data"])
            of = functools.partial(ClaimRow.of, expected_anchor=row["expected_anchor"])
            yield _stored(f"results row {row['seq']}", of, result)

    @guarded("read the runs' series")
    async def run_points(self) -> list[RunPoint]:
        """Every run, oldest first: its live claims (state live or suspect after it), their
        referring domains, and its found, lost and recovered events (kept with a run when it
        stops; counted now for a run still going)."""
        points = []
        async with self._db.acquire() as db:
            for row in await db.fetch(sql.RUN_POINTS):
                kept = row["points"]
                if kept is None or row["status"] == RunStatus.RUNNING:
                    kept = await fold.point(db, row["id"])
                what = f"run {row['id']}: its points"
                figures = _stored(what, json.loads, kept)
                points.append(_stored(what, functools.partial(_point, row["id"], row["started_at"]), figures))
        return points

    @guarded("rebuild the claims' states and events")
    async def rebuild_history(self) -> tuple[int, int]:
        """Fold every claim's states and events again from the stored results alone, in run order
        (each run's own `confirm_runs` and `unreachable_runs`), restarting a usable claim whose
        URLs now differ; in one transaction, while saves and imports wait. Returns (claims, events)."""
        return await self._in_transaction(_rebuild)

    async def _claim(self, claim_id: str) -> None:
        if await self._db.fetchval(sql.CLAIM, claim_id) is None:
            raise UnknownClaimError(f"no claim {claim_id!r} in {self.name}")

    async def _pages(self, statement: str, run_id: str, *parameters: object) -> AsyncIterator[asyncpg.Record]:
        """Rows of a statement paged by `seq` (its parameters: the run, `parameters`, after, limit)."""
        after = 0
        while True:
            rows = await self._db.fetch(statement, run_id, *parameters, after, BATCH)
            for row in rows:
                yield row
            if len(rows) < BATCH:
                return
            after = rows[-1]["seq"]

    # The lease backend (crawler.engine.leases) ---------------------------------------------------

    @property
    def _run(self) -> str:
        if self._run_id is None:
            raise StoreError(f"{self.name}: no run joined")
        return self._run_id

    @guarded("lease hosts")
    async def take_hosts(self, limit: int, lease: float) -> list[tuple[str, int]]:
        rows = await self._db.fetch(sql.TAKE_HOSTS, self._run, self.worker, limit, lease)
        return [(row["host"], row["token"]) for row in rows]

    @guarded("read the claims of leased hosts")
    async def leased_claims(
        self, hosts: Sequence[str], pages: int
    ) -> list[tuple[str, str, Claim | InvalidClaim]]:
        rows = await self._db.fetch(sql.LEASED_CLAIMS, self._run, list(hosts), pages)
        return [(row["host"], row["page_key"], _claim_of(row)) for row in rows]

    @guarded("renew leases")
    async def renew(self, hosts: Mapping[str, int], places: Sequence[str], lease: float) -> set[str]:
        rows = await self._db.fetch(
            sql.RENEW, self._run, self.worker, lease, list(hosts), list(hosts.values()), list(places)
        )
        return {row["host"] for row in rows}

    @guarded("give a host back")
    async def release_host(self, host: str, token: int) -> None:
        await self._db.execute(sql.RELEASE_HOST, self._run, host, self.worker, token)

    @guarded("take a request place")
    async def take_gate(self, host: str, holder: str, places: int, interval: float, lease: float) -> float:
        return float(await self._db.fetchval(sql.TAKE_GATE, self._run, host, holder, places, interval, lease))

    @guarded("let a request place go")
    async def release_gate(
        self, host: str, holder: str, interval: float, since_sent: float, pause: float
    ) -> None:
        await self._db.execute(sql.RELEASE_GATE, self._run, host, holder, interval, since_sent, pause)

    @guarded("read a robots.txt answer")
    async def robots_answer(self, origin: str) -> str | None:
        answer = await self._db.fetchval(sql.ROBOTS_ANSWER, self._run, origin)
        return None if answer is None else str(answer)

    @guarded("claim a robots.txt fetch")
    async def claim_robots(self, origin: str, lease: float) -> bool:
        return await self._db.fetchval(sql.CLAIM_ROBOTS, self._run, origin, self.worker, lease) is not None

    @guarded("store a robots.txt answer")
    async def store_robots(self, origin: str, answer: str | None) -> None:
        if answer is None:
            await self._db.execute(sql.GIVE_UP_ROBOTS, self._run, origin, self.worker)
        else:
            await self._db.execute(sql.STORE_ROBOTS, self._run, origin, self.worker, answer)

    @guarded("look for pending claims")
    async def any_undone(self) -> bool:
        return bool(await self._db.fetchval(sql.ANY_UNDONE, self._run))


async def _import(
    db: asyncpg.Connection, *, run_id: str, rows: list[tuple[str | None, ...]]
) -> tuple[int, int]:
    """Upsert a batch of claims (rows of `_claim_row`, one per id) and attach them to the run;
    restart the histories of claims whose URLs changed. (added, updated)."""
    await db.execute(sql.REOPEN_RUN, run_id)
    await db.execute(sql.LOCK_CLAIMS, [row[0] for row in rows])  # in id order, as saves take them
    columns = [list(column) for column in zip(*rows, strict=True)]
    added, updated = await db.fetchrow(sql.UPSERT_CLAIMS, *columns, run_id)
    usable = [(str(row[0]), str(row[1]), str(row[2])) for row in rows if row[7] is None]
    await fold.restart_changed(db, usable)
    return int(added), int(updated)


async def _rebuild(db: asyncpg.Connection) -> tuple[int, int]:
    await db.execute(sql.LOCK_RUNS)
    await db.execute(sql.LOCK_ALL_CLAIMS)
    return await fold.refold(db)


def _hosts(firsts: Mapping[tuple[str, str], Result], fenced: _Fenced | None) -> list[tuple[str, Result]]:
    """The results to save, in the order given, each with the host whose lease fences it ("" for a
    result decided under no lease); results the leases dropped are left out."""
    if fenced is None:
        return [("", result) for result in firsts.values()]
    leased = {(result.run_id, result.claim_id): host for host, result in fenced.leased}
    free = {(result.run_id, result.claim_id) for result in fenced.free}
    return [(leased.get(key, ""), result) for key, result in firsts.items() if key in leased or key in free]


def _stored(what: str, decode: Callable[[_S], _T], value: _S) -> _T:
    """`decode(value)` of a value read from the database; one this crawler can't read (edited by
    hand, written by another program or version) is `fold.Unreadable` naming `what`."""
    try:
        return decode(value)
    except (ValueError, KeyError, TypeError) as error:
        raise fold.Unreadable(f"{what} can't be read back: {error}") from error


def _result(data: str) -> Result:
    return Result.from_dict(json.loads(data))


def _event(data: str) -> Event:
    return Event.from_dict(json.loads(data))


def _point(run_id: str, started_at: str, figures: Sequence[int]) -> RunPoint:
    return RunPoint(run_id, started_at, *figures)


async def _closed(pool: asyncpg.Pool) -> None:
    try:
        async with asyncio.timeout(10):
            await pool.close()
    except (TimeoutError, *DB_ERRORS):
        pool.terminate()


def _connection_options(url: str) -> tuple[str, dict[str, Any]]:
    """The URL without the options that are asyncpg's rather than the server's, and those options."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, Any] = {}
    kept = []
    for key, value in query:
        if key == "statement_cache_size":
            options[key] = int(value)
        else:
            kept.append((key, value))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(kept))), options


def _redacted(url: str) -> str:
    """The URL without its password (it names the database in messages)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _claim_row(item: Claim | InvalidClaim) -> tuple[str | None, ...]:
    tags = json.dumps(dict(item.tags), ensure_ascii=False)
    if isinstance(item, InvalidClaim):
        return (item.id, item.source_url, item.target_url, None, None, "page", tags, item.reason, "", "")
    rel = item.expected_rel.value if item.expected_rel else None
    page = urls.normalize_page(item.source_url) or item.source_url
    return (
        item.id,
        item.source_url,
        item.target_url,
        item.expected_anchor,
        rel,
        item.match.value,
        tags,
        None,
        page,
        urls.host_key(item.source_url),
    )


def _claim_of(row: Mapping[str, Any]) -> Claim | InvalidClaim:
    """The stored claim; a row edited by hand into something unusable is an invalid claim."""
    claim_id, source, target = row["id"], row["source_url"], row["target_url"]
    try:
        tags = json.loads(row["tags"])
    except (ValueError, TypeError):
        tags = None
    if not isinstance(tags, dict):
        return InvalidClaim(claim_id, source, target, "stored claim: tags: not a JSON object", {})
    if row["invalid_reason"] is not None:
        return InvalidClaim(claim_id, source, target, row["invalid_reason"], tags)
    try:
        return Claim(
            source, target, row["expected_anchor"], row["expected_rel"], row["match"], claim_id, tags
        )
    except ClaimError as error:
        return InvalidClaim(claim_id, source, target, f"stored claim: {error}", tags)
