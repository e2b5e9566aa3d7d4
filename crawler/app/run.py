"""A run's life, one for the library and the command line: begin or resume, import, verify, finish.

`verify_into` (the library) and `verify_run` (`crawler verify`) share `run_claims`: the store
begins a run or resumes an interrupted one, the inputs are imported one by one (logging what
each added) or every stored claim is attached for a re-check, what is pending is verified by
the engine's pipeline, each result is saved in batches (and folded into its claim's monitoring
state in the same transaction) and then handed to `on_result`, carrying its `state`, with the
events of the batch to `on_events`; the run is left finished, or interrupted when it was
cancelled (SIGINT or SIGTERM for the command, a cancelled task for a library caller): the next
run resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import signal
from collections import Counter
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

import structlog

from crawler.__main__ import STOP_SIGNALS
from crawler.app import display
from crawler.app.export import json_line
from crawler.config import Settings
from crawler.core.history import Event, State
from crawler.engine import leases, parsing, pipeline
from crawler.errors import OutputError, StoreError
from crawler.models import Claim, InvalidClaim, Result
from crawler.store.backends import open_store
from crawler.store.base import Report, Run, RunInfo, RunStore

try:
    import uvloop
except ImportError:  # not built for Windows; asyncio's own loop does the same job slower
    uvloop = None  # type: ignore[assignment]

_T = TypeVar("_T")
log = structlog.get_logger()

Item = Claim | InvalidClaim
ClaimSource = Iterable[Item] | AsyncIterable[Item]
ResultSink = Callable[[Result], Awaitable[None]]
EventSink = Callable[[Sequence[Event]], Awaitable[None]]
"""Gets the events of each batch of results stored, in the order stored."""


async def verify_into(
    store: RunStore,
    claims: ClaimSource | None = None,
    settings: Settings | None = None,
    *,
    fresh: bool = False,
    on_result: ResultSink | None = None,
    on_events: EventSink | None = None,
    states: Collection[State] = (),
) -> RunInfo:
    """Verify `claims` in a run of `store` and return the run's counts.

    `claims` are imported first (the same claim twice is stored once); None re-checks every
    claim already in the store, or with `states` only those in these states (in a new run). An
    interrupted latest run is resumed unless `fresh`: claims it decided are not fetched again.
    Each result is saved, in batches, and then passed to `on_result` with the claim's state;
    the events each batch caused go to `on_events`. Cancelling the call leaves the run
    interrupted and resumable.
    """
    sources = [] if claims is None else [claims]
    info, _ = await run_claims(
        store,
        sources,
        settings or Settings(),
        fresh=fresh,
        on_result=on_result,
        on_events=on_events,
        states=states,
    )
    return info


async def run_claims(
    store: RunStore,
    sources: Sequence[ClaimSource],
    settings: Settings,
    *,
    fresh: bool,
    on_result: ResultSink | None = None,
    on_start: Callable[[int], None] | None = None,
    stop_on_signals: bool = False,
    on_events: EventSink | None = None,
    states: Collection[State] = (),
) -> tuple[RunInfo, bool]:
    """One run of `store` over `sources` (none: every stored claim, or with `states` the stored
    claims in those states, always in a new run); returns its counts and whether it was
    interrupted (only with `stop_on_signals`: SIGINT and SIGTERM stop the work, what was decided
    is saved). `on_start` gets the number of claims to verify, once imported. Results reach
    `on_result` once stored, with their state; the events they caused reach `on_events`.
    Any error, or the caller's cancellation, leaves the run interrupted and is raised.
    """
    if states and sources:
        raise ValueError("a run over claims in given states takes no input")
    run = await store.begin_run(settings.record(), fresh=fresh or bool(states))
    log.info("run started", run_id=run.id, resumed=run.resumed)
    if run.resumed and sources:
        log.warning(
            "new claims join the interrupted run being resumed",
            run_id=run.id,
            hint="use --fresh (fresh=True) to start a new run instead",
        )
    sinks = _Sinks(on_result, on_events, on_start)
    # A shared run (PostgreSQL): this process works on the hosts it leases, fenced by the leases.
    sharing = (
        leases.leasing(store, settings)
        if isinstance(store, leases.LeaseBackend)
        else contextlib.nullcontext()
    )
    async with sharing:
        work = asyncio.create_task(_work(store, run, sources, settings, sinks, states))
        try:
            interrupted = await (_until_done_or_signalled(work) if stop_on_signals else _until_done(work))
        except BaseException:  # an input file failing mid-way, the caller cancelled: keep it resumable
            work.cancel()
            await asyncio.wait([work])
            with contextlib.suppress(StoreError):  # a second database error must not hide the first
                await store.finish_run(run, interrupted=True)
            raise
        info = await store.finish_run(run, interrupted=interrupted)
    log.info(
        "run interrupted" if interrupted else "run finished",
        run_id=run.id,
        claims=info.claims,
        decided=info.decided,
        **{status.value: n for status, n in info.by_status.items()},
    )
    return info, interrupted


@dataclass(frozen=True, slots=True)
class _Sinks:
    """Where a run's news goes: results once stored, their events, the number of claims to verify."""

    on_result: ResultSink | None = None
    on_events: EventSink | None = None
    on_start: Callable[[int], None] | None = None

    async def saved(self, results: Sequence[Result], events: Sequence[Event]) -> None:
        if self.on_result is not None:
            for result in results:
                await self.on_result(result)
        if self.on_events is not None and events:
            await self.on_events(events)


async def _work(
    store: RunStore,
    run: Run,
    sources: Sequence[ClaimSource],
    settings: Settings,
    sinks: _Sinks,
    states: Collection[State],
) -> None:
    for source in sources:
        counts = await store.add_claims(run, source)
        log.info("claims imported", run_id=run.id, **dataclasses.asdict(counts))
    if states:
        attached = await store.add_claims_in_states(run, states)
        log.info("claims in states attached", run_id=run.id, states=sorted(states), claims=attached)
    elif not sources and not run.resumed:
        await store.add_all_claims(run)
    if sinks.on_start is not None:
        sinks.on_start((await store.run_info(run.id)).pending)
    async with parsing.page_reader(settings.workers) as reader:
        # aclosing: the generator is closed at once if we stop early, not at garbage collection.
        verified = pipeline.verify(store.pending(run), settings, run_id=run.id, reader=reader)
        await _save(store, verified, sinks)


async def _save(store: RunStore, verified: AsyncGenerator[Result, None], sinks: _Sinks) -> None:
    """Results into the store's writer; what each batch stored (results with their state, events)
    goes to the sinks after the batch is committed, so `--output` lines carry the state."""
    async with store.writer(on_saved=sinks.saved) as writer, contextlib.aclosing(verified) as results:
        async for result in results:
            await writer.add(result)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a command's run ended: its counts, whether a signal stopped it, and the reasons of
    the results this process decided."""

    report: Report
    interrupted: bool
    reasons: Mapping[str, int] = dataclasses.field(default_factory=dict)
    events: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """The events this process stored, counted by type (for `--fail-on-event`)."""

    @property
    def info(self) -> RunInfo:
        return self.report.run


async def verify_run(
    db: str | os.PathLike[str],
    inputs: Sequence[ClaimSource],
    settings: Settings,
    *,
    fresh: bool,
    output: TextIO | None = None,
    progress: display.RunProgress | None = None,
    events_output: TextIO | None = None,
    states: Collection[State] = (),
) -> RunOutcome:
    """`crawler verify` but the argument parsing: `run_claims` on the database `db` (a SQLite
    file or a PostgreSQL URL), each
    result also written to `output` (JSON Lines) and shown by `progress`, each event written to
    `events_output` (JSON Lines); with `states`, a new run over the stored claims in those states.
    SIGINT and SIGTERM stop the run, interrupted and resumable."""
    shown = progress or display.Silent()
    reasons: Counter[str] = Counter()
    kinds: Counter[str] = Counter()

    async def on_result(result: Result) -> None:
        _emit(output, result)
        shown.advance(result)
        if result.reason is not None:
            reasons[result.reason] += 1

    async def on_events(events: Sequence[Event]) -> None:
        for event in events:
            _emit(events_output, event)
            kinds[event.event.value] += 1

    async with open_store(db) as store:
        try:
            info, interrupted = await run_claims(
                store,
                inputs,
                settings,
                fresh=fresh,
                on_result=on_result,
                on_start=shown.start,
                stop_on_signals=True,
                on_events=on_events,
                states=states,
            )
        finally:
            shown.stop()
        return RunOutcome(await store.report(info.id), interrupted, reasons, kinds)


def run_async(work: Coroutine[Any, Any, _T]) -> _T:
    """Run `work` on uvloop where it exists, else on asyncio's loop, with the collector tuned."""
    _tune_garbage_collector()
    if uvloop is not None:
        return uvloop.run(work)
    return asyncio.run(work)


# Young objects a collection waits for: a run allocates containers by the thousand per page
# (parse results, results, rows) and frees them by reference counting, while the default 700
# made the collector scan them some 1,700 times on 4,000 pages (8% of the run's CPU, measured).
YOUNG_OBJECTS_PER_COLLECTION = 50_000


def _tune_garbage_collector() -> None:
    """A command's process only: start-up's objects (modules, settings) are never scanned again,
    and young ones less often. A library caller's collector is left as it is."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS_PER_COLLECTION, middle, old)


def _emit(output: TextIO | None, record: Result | Event) -> None:
    """One JSON line on `output` (a result as export writes it, an event as section 9 has it)."""
    if output is None:
        return
    try:
        if isinstance(record, Result):
            line = json_line(record)
        else:
            line = json.dumps(record.to_dict(), ensure_ascii=False, separators=(",", ":"))
        output.write(line + "\n")
        output.flush()  # "as soon as decided": a reader of the stream sees each result at once
    except BrokenPipeError:
        raise  # the reader went away: the command line exits as a shell expects
    except OSError as error:
        name = getattr(output, "name", "output")
        raise OutputError(f"{name}: cannot write: {error.strerror or error}") from None


async def _until_done(work: asyncio.Task[None]) -> bool:
    await asyncio.wait([work])
    work.result()  # an error of the work is raised here
    return False


async def _until_done_or_signalled(work: asyncio.Task[None]) -> bool:
    """Wait for `work`; SIGINT, SIGTERM or SIGHUP cancel it. True when it was cancelled.

    The handlers of before are put back afterwards (asyncio would leave SIGTERM to its default,
    which ends the process with 143 while the run's summary is written).
    """
    loop = asyncio.get_running_loop()
    handled = {}
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        previous = signal.getsignal(signum)
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal handlers on Windows
            loop.add_signal_handler(signum, work.cancel)
            handled[signum] = previous
    try:
        await asyncio.wait([work])
    finally:
        for signum, previous in handled.items():
            loop.remove_signal_handler(signum)
            if previous is not None:
                signal.signal(signum, previous)
    if work.cancelled():
        return True
    work.result()  # an error of the work is raised here
    return False


until_done_or_signalled = _until_done_or_signalled
"""For the commands that run work of their own (`crawler worker`)."""
