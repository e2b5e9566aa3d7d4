"""A run's figures as terminal tables: what `crawler verify`, `report` and `demo` print.

The numbers are `crawler.core.figures`' (the HTML report and `report --format json` show the
same); this module only places them. Every table has at most six narrow columns and wraps
long values instead of cutting them, so it stays readable in an 80-column terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Group, RenderableType
from rich.table import Column, Table
from rich.text import Text

from crawler.app.display import STATUS_STYLE
from crawler.core.figures import Figures, TagFigures

TAG_ROWS = 20
"""Values shown per tag column (worst first); `report --format json` and the HTML report have all."""


def summary_tables(figures: Figures, *, tags: Sequence[str] | None = None) -> RenderableType:
    """The figures of a run for people: headline, statuses, states, reasons, flags, anchors, tags
    (every tag column, or `tags`) and the changes since the previous run."""
    parts: list[RenderableType | None] = [_run_line(figures), _headline(figures), _statuses(figures)]
    parts.append(_counts("state", "claims", ((state.value, n) for state, n in figures.by_state.items())))
    parts.append(_counts("reason", "results", figures.reasons.items()))
    parts.append(_counts("flag", "results", ((flag.value, n) for flag, n in figures.flags.items())))
    classes = ((kind.value, n) for kind, n in figures.anchor_classes.items())
    parts.append(_counts("anchor class", "links", classes))
    for column, rows in figures.by_tag.items():
        if tags is None or column in tags:
            parts.append(_tag_table(column, rows, figures))
    parts.append(_counts("change", "events", ((kind.value, n) for kind, n in figures.event_counts.items())))
    return Group(*(part for part in parts if part is not None))


def _run_line(figures: Figures) -> Text:
    run = figures.run
    ended = f", ended {run.finished_at}" if run.finished_at else ""
    return Text(f"Run {run.id} ({run.state}): {figures.claims} claims, started {run.started_at}{ended}")


def _headline(figures: Figures) -> Table:
    table = _table("Figures", Column("figure"), Column("value", justify="right"))
    rows = [
        ("claims", str(figures.claims)),
        ("live links", str(figures.live)),
        ("verified", _share(figures.verified_share)),
        ("lost since the previous run", str(figures.lost)),
        ("referring domains", str(figures.referring_domains)),
        ("followed (of links present)", _share(figures.followed_share)),
        ("indexable (of links present)", _share(figures.indexable_share)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _statuses(figures: Figures) -> Table:
    table = _table(
        "By status", Column("status"), Column("results", justify="right"), Column("share", justify="right")
    )
    for status, n in figures.statuses.items():
        share = _share(n / figures.claims) if figures.claims else "-"
        table.add_row(Text(status.value, style=STATUS_STYLE[status]), str(n), share)
    table.add_section()
    table.add_row("total", str(figures.claims), "")
    return table


def _counts(kind: str, unit: str, rows: Iterable[tuple[str, int]]) -> Table | None:
    shown = [(name, n) for name, n in rows if n]
    if not shown:
        return None
    table = _table(f"By {kind}", Column(kind, overflow="fold"), Column(unit, justify="right"))
    for name, n in shown:
        table.add_row(name, str(n))
    return table


def _tag_table(column: str, rows: Sequence[TagFigures], figures: Figures) -> Table:
    sums = [name for name in figures.failed_sums if name != column]
    table = _table(
        f"By {column} (worst first)",
        Column(column, overflow="fold", ratio=1),
        Column("claims", justify="right"),
        Column("verified", justify="right"),
        Column("failing", justify="right"),
        Column("lost", justify="right"),
        *(Column(f"{name} lost or failing", justify="right", overflow="fold") for name in sums[:1]),
    )
    for row in rows[:TAG_ROWS]:
        value = Text(row.value) if row.value is not None else Text("(none)", style="italic")
        owed = [_number(row.sums.get(name)) for name in sums[:1]]
        table.add_row(
            value, str(row.claims), _share(row.verified_share), _share(row.failure_rate), str(row.lost), *owed
        )
    if len(rows) > TAG_ROWS:
        table.caption = f"{len(rows) - TAG_ROWS} more values: crawler report --format json"
    return table


def _table(title: str, *columns: Column) -> Table:
    return Table(*columns, title=title, title_justify="left")


def _share(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction:.0%}"


def _number(value: object) -> str:
    return "" if value is None else str(value)
