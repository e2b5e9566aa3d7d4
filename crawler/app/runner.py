"""A run as the command line makes it: claims into the store, verified, results saved.

`verify_run` is the whole of `crawler verify` but the argument parsing: it opens the store,
resumes or begins a run, imports the inputs one by one (logging what each added), or attaches
every stored claim for a re-check, verifies what is pending with `batch.verify_pending` (the
library's own loop), writes each result to an optional JSON Lines stream and the progress
display, and leaves the run finished, or interrupted when SIGINT or SIGTERM cancelled it (the
next run resumes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import signal
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import structlog

from crawler.app import batch, display
from crawler.app.export import json_line
from crawler.app.inputs import ClaimReader
from crawler.config import Settings
from crawler.models import Result
from crawler.store.sqlite import Report, Run, RunInfo, Store

try:
    import uvloop
except ImportError:  # not built for Windows; asyncio's own loop does the same job slower
    uvloop = None  # type: ignore[assignment]

_T = TypeVar("_T")
log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended: its counts, and whether a signal stopped it."""

    report: Report
    interrupted: bool

    @property
    def info(self) -> RunInfo:
        return self.report.run


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


async def verify_run(
    db: Path,
    inputs: Sequence[ClaimReader],
    settings: Settings,
    *,
    fresh: bool,
    output: TextIO | None = None,
    progress: display.RunProgress | None = None,
) -> RunOutcome:
    """One run: import `inputs` (none: re-check every claim), verify what is pending, save.

    The work runs in a task that SIGINT and SIGTERM cancel; the results decided until then
    are saved and the run is marked interrupted, to be resumed.
    """
    progress = progress or display.Silent()
    async with Store(db) as store:
        run = await store.begin_run(batch.settings_record(settings), fresh=fresh)
        log.info("run started", run_id=run.id, resumed=run.resumed, db=str(db))
        work = asyncio.create_task(_work(store, run, inputs, settings, output, progress))
        try:
            interrupted = await _until_done_or_signalled(work)
        except BaseException:  # e.g. an input file that fails mid-way: keep the run resumable
            await store.finish_run(run, interrupted=True)
            raise
        await store.finish_run(run, interrupted=interrupted)
        report = await store.report(run.id)
    info = report.run
    log.info(
        "run interrupted" if interrupted else "run finished",
        run_id=run.id,
        claims=info.claims,
        decided=info.decided,
        **{status.value: n for status, n in info.by_status.items()},
    )
    return RunOutcome(report, interrupted)


async def _work(
    store: Store,
    run: Run,
    inputs: Sequence[ClaimReader],
    settings: Settings,
    output: TextIO | None,
    progress: display.RunProgress,
) -> None:
    for reader in inputs:
        counts = await store.add_claims(run, reader)
        log.info("claims imported", run_id=run.id, **dataclasses.asdict(counts))
    if not inputs and not run.resumed:
        await store.add_all_claims(run)
    progress.start((await store.run_info(run.id)).pending)

    async def on_result(result: Result) -> None:
        _emit(output, result)
        progress.advance(result)

    try:
        await batch.verify_pending(store, run, settings, on_result)
    finally:
        progress.stop()


class OutputError(OSError):
    """The `--output` stream can't be written (a full disk, a closed pipe): the run stops, resumable."""


def _emit(output: TextIO | None, result: Result) -> None:
    if output is None:
        return
    try:
        output.write(json_line(result) + "\n")
        output.flush()  # "as soon as decided": a reader of the stream sees each result at once
    except BrokenPipeError:
        raise  # the reader went away: the command line exits as a shell expects
    except OSError as error:
        name = getattr(output, "name", "output")
        raise OutputError(f"{name}: cannot write: {error.strerror or error}") from None


async def _until_done_or_signalled(work: asyncio.Task[None]) -> bool:
    """Wait for `work`; SIGINT or SIGTERM cancel it. True when it was cancelled.

    The handlers of before are put back afterwards (asyncio would leave SIGTERM to its default,
    which ends the process with 143 while the run's summary is written).
    """
    loop = asyncio.get_running_loop()
    handled = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
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
