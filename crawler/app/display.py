"""What a person sees: the progress of a run, and tables of results, runs, events and a claim's
history (a run's figures are `summary.py`'s).

On a terminal, a progress bar on standard error (counts per status, rate, time left);
anywhere else one structured log line every `LOG_EVERY` seconds instead. Tables are rich
tables, plain text when the stream is not a terminal.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TextIO

import structlog
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table
from rich.text import Text

from crawler.app.export import cell as _cell
from crawler.app.export import neutralise
from crawler.core.history import Event
from crawler.models import Result, Status
from crawler.store.base import RunInfo

LOG_EVERY = 10.0
"""Seconds between two progress log lines when standard error is not a terminal."""
_REFRESH = 0.1
STATUS_STYLE = {
    Status.VERIFIED: "green",
    Status.NOFOLLOW: "yellow",
    Status.NOT_INDEXABLE: "yellow",
    Status.MISSING: "red",
    Status.PAGE_ERROR: "red",
    Status.UNREACHABLE: "magenta",
    Status.BLOCKED: "magenta",
    Status.INVALID: "dim",
}
log = structlog.get_logger()


class RunProgress(Protocol):
    """Told about each result as it is decided, between `start` and `stop`."""

    def start(self, total: int) -> None: ...
    def advance(self, result: Result) -> None: ...
    def stop(self) -> None: ...


class Silent:
    """No progress at all (`--quiet`)."""

    def start(self, total: int) -> None:
        pass

    def advance(self, result: Result) -> None:
        pass

    def stop(self) -> None:
        pass


class _Counts:
    """Results so far by status, and the rate since `start`."""

    def __init__(self) -> None:
        self.by_status: Counter[Status] = Counter()
        self.total = 0
        self.started = time.monotonic()

    @property
    def done(self) -> int:
        return sum(self.by_status.values())

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)


class ProgressLog(_Counts):
    """A `progress` log line every `every` seconds: for logs that a machine reads."""

    def __init__(self, every: float = LOG_EVERY) -> None:
        super().__init__()
        self._every = every
        self._next = 0.0

    def start(self, total: int) -> None:
        self.total, self.started = total, time.monotonic()
        self._next = self.started + self._every

    def advance(self, result: Result) -> None:
        self.by_status[result.status] += 1
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self._every
            counts = {status.value: n for status, n in self.by_status.items()}
            log.info(
                "progress", decided=self.done, total=self.total, per_second=round(self.rate(), 1), **counts
            )

    def stop(self) -> None:
        pass


class _BarWithCounts(Progress):
    """A progress bar with the counts per status on a line of their own below it."""

    counts = Text()

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        yield self.counts


class ProgressBar(_Counts):
    """A rich progress bar on a terminal; log lines are printed above it while it runs."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self._progress = _BarWithCounts(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task("verifying", total=None, rate="", start=False)
        self._shown = 0.0

    def start(self, total: int) -> None:
        self.total, self.started = total, time.monotonic()
        self._progress.update(self._task, total=total)
        self._progress.start_task(self._task)
        self._progress.start()

    def advance(self, result: Result) -> None:
        self.by_status[result.status] += 1
        now = time.monotonic()
        if now - self._shown >= _REFRESH or self.done == self.total:
            self._shown = now
            self._progress.counts = self._line()
            self._progress.update(self._task, completed=self.done, rate=f"{self.rate():.1f}/s")

    def stop(self) -> None:
        self._progress.stop()

    def _line(self) -> Text:
        parts = [Text(f"{s.value} {n}", style=STATUS_STYLE[s]) for s in Status if (n := self.by_status[s])]
        return Text("  ").join(parts)


def run_progress(console: Console, *, quiet: bool) -> RunProgress:
    """The right progress display for where standard error goes."""
    if quiet:
        return Silent()
    return ProgressBar(console) if console.is_terminal else ProgressLog()


def results_table(results: Iterable[Result], *, note_tag: str = "case") -> Table:
    """One row per result: claim, what it is about (its `note_tag` tag), status, reason, flags."""
    table = Table(
        "claim", Column(Text(note_tag)), "status", "reason", "flags", title="Results", title_justify="left"
    )
    for result in results:
        flags = " ".join(flag.value for flag in result.flags)
        note, reason = result.tags.get(note_tag, ""), result.reason or ""
        table.add_row(Text(result.claim_id), Text(note), _status(result.status), Text(reason), flags)
    return table


def console(stream: TextIO) -> Console:
    """A console on `stream`: styled on a terminal, plain and wide enough for tables elsewhere."""
    if stream.isatty():
        return Console(file=stream)
    return Console(file=stream, width=160, no_color=True, highlight=False)


def _status(status: Status) -> Text:
    return Text(status.value, style=STATUS_STYLE[status])


def run_record(run: RunInfo) -> dict[str, Any]:
    """A run as `crawler runs --format jsonl` prints it."""
    return {
        "id": run.id,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "state": run.status.value,
        "claims": run.claims,
        "decided": run.decided,
        "counts": {status.value: n for status, n in run.by_status.items() if n},
    }


def runs_table(records: Iterable[Mapping[str, Any]]) -> Table:
    """Runs, newest first: id, state, when, claims decided, and the counts by status."""
    table = Table(
        Column("run", overflow="fold"),
        "state",
        Column("started", overflow="fold"),
        Column("decided", justify="right"),
        Column("counts", overflow="fold", ratio=1),
        title="Runs",
        title_justify="left",
    )
    for record in records:
        counts = " ".join(f"{status} {n}" for status, n in record["counts"].items())
        table.add_row(
            record["id"],
            record["state"],
            record["started_at"],
            f"{record['decided']}/{record['claims']}",
            counts,
        )
    return table


EVENT_FIELDS = (
    *("run_id", "claim_id", "source_url", "target_url", "tags", "event", "old_state", "new_state"),
    *("reason", "old", "new", "checked_at", "last_seen_run"),
)
"""An event's fields, in the contract's order: the columns of `crawler changes --format csv`."""


def event_cells(event: Event) -> list[str]:
    """An event as CSV cells (tags as JSON text, booleans as true/false, null as empty)."""
    record = event.to_dict()
    return [neutralise(_cell(record[name])) for name in EVENT_FIELDS]


def events_table(events: Sequence[Event]) -> Table:
    """Events as a table: what happened to which claim, and the values compared."""
    table = Table(
        Column("run", overflow="fold"),
        Column("claim", overflow="fold"),
        "event",
        Column("states", overflow="fold"),
        Column("detail", overflow="fold", ratio=1),
        Column("page", overflow="fold", ratio=1),
        title=f"Changes ({len(events)})",
        title_justify="left",
    )
    for event in events:
        detail = event.reason.value if event.reason else ""
        if event.old is not None or event.new is not None:
            detail = f"{_cell(event.old)} -> {_cell(event.new)}"
        states = f"{event.old_state.value} -> {event.new_state.value}"
        table.add_row(event.run_id, event.claim_id, event.event.value, states, detail, event.source_url)
    return table


def history_records(rows: Sequence[tuple[Result, tuple[Event, ...]]]) -> list[dict[str, Any]]:
    """`crawler history --format jsonl`: one object per result, then `{"summary": {...}}`."""
    records: list[dict[str, Any]] = []
    live = 0
    first_seen = last_seen = None
    for result, events in rows:
        present = result.status in (Status.VERIFIED, Status.NOFOLLOW, Status.NOT_INDEXABLE)
        if present:
            live += 1
            first_seen = first_seen or result.run_id
            last_seen = result.run_id
        records.append(
            {
                "run_id": result.run_id,
                "checked_at": result.checked_at,
                "status": result.status.value,
                "reason": result.reason,
                "http_status": result.http_status,
                "rel": list(result.link.rel) if result.link is not None and present else None,
                "text": result.link.text if result.link is not None and present else None,
                "indexable": result.indexable,
                "state": result.state,
                "events": [event.event.value for event in events],
            }
        )
    state = rows[-1][0].state if rows else None
    since = None
    for result, _ in reversed(rows):
        if result.state != state:
            break
        since = result.run_id
    summary = {
        "state": state,
        "since_run": since,
        "first_seen_run": first_seen,
        "last_seen_run": last_seen,
        "live_runs": live,
        "runs": len(rows),
    }
    return [*records, {"summary": summary}]


def history_table(claim_id: str, records: Sequence[Mapping[str, Any]]) -> Group:
    """One row per result of the claim, and its summary beneath."""
    table = Table(
        Column("run", overflow="fold"),
        "status",
        Column("reason", overflow="fold"),
        "state",
        Column("events", overflow="fold"),
        Column("link", overflow="fold", ratio=1),
        title=f"History of {claim_id}",
        title_justify="left",
    )
    for record in records[:-1]:
        link = (
            f"{record['text']!r} {' '.join(record['rel'] or []) or 'follow'}"
            if record["text"] is not None
            else ""
        )
        table.add_row(
            record["run_id"],
            record["status"],
            record["reason"] or "",
            record["state"] or "",
            " ".join(record["events"]),
            link,
        )
    summary = records[-1]["summary"]
    line = (
        f"{summary['state']} since run {summary['since_run']}; first seen {summary['first_seen_run']}, "
        f"last seen {summary['last_seen_run']}; live in {summary['live_runs']} of {summary['runs']} runs"
    )
    return Group(table, Text(line))
