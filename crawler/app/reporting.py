"""A run's figures gathered from a store: the one input of `report` (table, JSON, HTML), of the
summary `verify` and `demo` print, and of the webhook's counts.

The numbers are computed by `crawler.core.figures` from rows the store streams (results with
their claims' states and expected anchors, the run's events, one point per earlier run), so a
run of a million claims is summarised in bounded memory.
"""

from __future__ import annotations

from collections.abc import Sequence

from crawler.core.figures import Accumulator, Figures, RunMeta
from crawler.store.base import RunStore


async def gather(store: RunStore, run_id: str | None = None, *, by: Sequence[str] = ()) -> Figures:
    """The figures of run `run_id` (None or "latest": the latest run).

    `by` names the tag columns to break down (default: every column with at most 50 values).
    Brand terms for the anchor classes are the run's own `brand_terms` setting.
    """
    info = await store.run_info(run_id)
    meta = RunMeta(info.id, info.started_at, info.finished_at, info.status.value, dict(info.settings))
    brand_terms = info.settings.get("brand_terms") or ()
    figures = Accumulator(meta, by=by, brand_terms=[str(term) for term in brand_terms])
    for point in await store.run_points():
        figures.add_run(point)
        if point.run_id == info.id:
            break  # the series ends with the reported run
    async for event in store.events(run_id=info.id):
        figures.add_event(event)
    async for row in store.report_rows(info.id):
        figures.add(row)
    return figures.result()
