"""Claims into a store, verified, results saved: a run in one call.

The command line adds signals, a progress bar and an output stream around the same call.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable

from crawler.config import Settings
from crawler.engine import pipeline
from crawler.models import Claim, InvalidClaim, Result
from crawler.store.sqlite import Run, RunInfo, Store

Item = Claim | InvalidClaim
ResultSink = Callable[[Result], Awaitable[None]]


async def verify_into(
    store: Store,
    claims: Iterable[Item] | AsyncIterable[Item] | None = None,
    settings: Settings | None = None,
    *,
    fresh: bool = False,
    on_result: ResultSink | None = None,
) -> RunInfo:
    """Verify `claims` in a run of `store` and return the run's counts.

    `claims` are imported first (the same claim twice is stored once); None re-checks every
    claim already in the store. An interrupted latest run is resumed unless `fresh`: claims it
    decided are not fetched again. Each result is saved, in batches, and passed to `on_result`
    as soon as it is decided. Cancelling the call leaves the run interrupted and resumable.
    """
    settings = settings or Settings()
    run = await store.begin_run(settings_record(settings), fresh=fresh)
    try:
        await _import(store, run, claims)
        await verify_pending(store, run, settings, on_result)
    except BaseException:
        await store.finish_run(run, interrupted=True)
        raise
    return await store.finish_run(run)


async def _import(store: Store, run: Run, claims: Iterable[Item] | AsyncIterable[Item] | None) -> None:
    if claims is not None:
        await store.add_claims(run, claims)
    elif not run.resumed:
        await store.add_all_claims(run)


async def verify_pending(store: Store, run: Run, settings: Settings, on_result: ResultSink | None) -> None:
    """Verify the claims of `run` that have no result yet, saving each result in batches."""
    # aclosing: the generator is closed at once if we stop early, not at garbage collection.
    verified = pipeline.verify(store.pending(run), settings, run_id=run.id)
    async with store.writer() as writer, contextlib.aclosing(verified) as results:
        async for result in results:
            await writer.add(result)
            if on_result is not None:
                await on_result(result)


def settings_record(settings: Settings) -> dict[str, object]:
    """The settings stored with a run; header values are left out, they may hold secrets."""
    record: dict[str, object] = {name: getattr(settings, name) for name in settings.__dataclass_fields__}
    record["headers"] = sorted(settings.headers)
    record["resolve"] = dict(settings.resolve)
    return record
