"""The HTML report of a run: one self-contained file that places the figures (`core.figures`).

`render(figures)` is a pure function to a string; the CLI writes it. The page makes no request of
any kind (a Content-Security-Policy forbids everything but inline styles and data: images) and
runs no script. Every chart is inline SVG drawn by a small function below, with a `<table>` of the
same numbers beside it in the same `<figure>`.

Escaping is by construction: text is escaped when it becomes `Markup`, and only `Markup` is
placed without escaping. Long texts (URLs, tag values, anchors) are shown clipped, and long
lists capped, so the file stays small whatever the run: the figures themselves are bounded.
"""

from __future__ import annotations

import html
import re
import shlex
from collections.abc import Iterable, Sequence
from decimal import Decimal

from crawler.core.figures import PROBLEMS, ClaimRow, Figures, TagFigures
from crawler.core.history import Event
from crawler.models import Status

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
SHOWN_RUNS = 366
"""Runs on the over-time chart and table: the latest year of daily runs."""
SHOWN_TAG_COLUMNS = 10
SHOWN_TAG_VALUES = 50
SHOWN_SUMS = 5
"""Numeric tag columns whose sums are shown (cards, and columns of each by-tag table)."""
# Characters shown of a text, a URL and a chart label: with the caps above they bound the file
# (a worst case of long URLs, reasons, tags and names is tested to stay under 2 MB).
_CLIP = 80
_CLIP_URL = 120
_LABEL = 28
_KEY_SETTINGS = (
    "user_agent",
    "index_agent",
    "concurrency",
    "per_host",
    "delay",
    "timeout",
    "retries",
    "max_redirects",
    "max_bytes",
    "obey_robots",
    "confirm_runs",
    "unreachable_runs",
    "render",
    "brand_terms",
)
_STATUS_CLASS = {
    Status.VERIFIED: "good",
    Status.NOFOLLOW: "warn",
    Status.NOT_INDEXABLE: "warn",
    Status.MISSING: "bad",
    Status.PAGE_ERROR: "bad",
    Status.UNREACHABLE: "mute",
    Status.BLOCKED: "mute",
    Status.INVALID: "mute",
}
_PASSWORD = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*):[^/@]*@")
_STYLE = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1d1f23;--mute:#6b7079;--line:#d5d9df;--box:#f4f6f8;
--c0:#2f6db5;--c1:#c7661c;--good:#2e8540;--warn:#c99a06;--bad:#c0392b;--grey:#8a9099}
@media (prefers-color-scheme:dark){:root{--bg:#16181c;--fg:#e4e6ea;--mute:#9aa0a8;--line:#3a3f47;
--box:#20242a;--c0:#6ea8ef;--c1:#f0a05a;--good:#5cbf73;--warn:#e6c14a;--bad:#ef6f60;--grey:#7d848e}}
body{background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,sans-serif;margin:0 auto;
max-width:72rem;padding:1rem 1.5rem}
h1{font-size:1.6rem}h2{border-bottom:1px solid var(--line);margin-top:2.2rem;padding-bottom:.2rem}
nav a{color:var(--c0);margin-right:.8rem}
figure{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start;margin:1rem 0}
figcaption{flex-basis:100%;font-weight:600}
svg{max-width:36rem;width:100%;height:auto}svg text{fill:var(--fg);font-size:11px}
table{border-collapse:collapse;font-size:.9rem;margin:.4rem 0 1rem}th,td{border-bottom:1px solid var(--line);
padding:.2rem .6rem;text-align:left;vertical-align:top}td.n,th.n{text-align:right}
dl.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(11rem,1fr));gap:.8rem}
dl.cards div{background:var(--box);border-radius:6px;padding:.6rem .8rem}
dt{color:var(--mute);font-size:.85rem}dd{font-size:1.5rem;margin:0}
code{background:var(--box);padding:.1rem .3rem;word-break:break-all}.note{color:var(--mute)}
.axis{fill:none;stroke:var(--line)}.bar,.s0{fill:var(--c0)}.s1{fill:var(--c1)}.s2{fill:var(--bad)}
.good{fill:var(--good)}.warn{fill:var(--warn)}.bad{fill:var(--bad)}.mute{fill:var(--grey)}
.l0,.l1{fill:none;stroke-width:2}.l0{stroke:var(--c0)}.l1{stroke:var(--c1)}
.p0{fill:var(--c0)}.p1{fill:var(--c1)}
@media print{:root{--bg:#fff;--fg:#000;--box:#f2f2f2}nav{display:none}body{max-width:none;padding:0}
figure,table,tr{break-inside:avoid}h2{break-after:avoid}}
"""


class Markup(str):
    """HTML that is already safe: placed as it is, never escaped again."""

    __slots__ = ()


def escape(value: object) -> Markup:
    """`value` as HTML text: `Markup` stays as it is, anything else is escaped."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def element(tag: str, *children: object, **attributes: object) -> Markup:
    """`<tag attributes>children</tag>`, every child and attribute value escaped unless `Markup`.

    Attribute names come from code (`class_` is `class`, `_` in names becomes `-`); a None value
    leaves the attribute out; a child that is a list or tuple is its items in order.
    """
    names = (
        f' {name.rstrip("_").replace("_", "-")}="{escape(value)}"'
        for name, value in attributes.items()
        if value is not None
    )
    return Markup(f"<{tag}{''.join(names)}>{join(children)}</{tag}>")


def join(children: Iterable[object]) -> Markup:
    """The children's HTML, one after another (None left out)."""
    parts = []
    for child in children:
        if isinstance(child, list | tuple):
            parts.append(join(child))
        elif child is not None:
            parts.append(escape(child))
    return Markup("".join(parts))


def render(figures: Figures, *, db: str = "crawler.sqlite") -> str:
    """The whole report of `figures` as one HTML document; `db` is named in the commands it shows."""
    run = figures.run
    head = element(
        "head",
        Markup('<meta charset="utf-8">'),
        Markup(f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">'),
        Markup('<meta name="viewport" content="width=device-width,initial-scale=1">'),
        element("title", f"Backlink report, run {run.id}"),
        element("style", Markup(_STYLE)),
    )
    sections = [
        ("run", "The run", _run_section(figures)),
        ("figures", "Figures", _figures_section(figures)),
        ("statuses", "Statuses and flags", _status_section(figures)),
        ("by-tag", "By tag", _tag_section(figures)),
        ("domains", "Referring domains", _domain_section(figures)),
        ("anchors", "Anchor text", _anchor_section(figures)),
        ("over-time", "Over time", _time_section(figures)),
        ("changes", "Changes since the previous run", _changes_section(figures, db)),
        ("problems", "Problems", _problem_section(figures, db)),
    ]
    nav = element("nav", [element("a", title, href=f"#{key}") for key, title, _ in sections])
    body = element(
        "body",
        element("h1", f"Backlink report, run {run.id}"),
        nav,
        [element("section", element("h2", title), content, id=key) for key, title, content in sections],
    )
    return f'<!DOCTYPE html>\n<html lang="en">{head}{body}</html>\n'


def bar_chart(bars: Sequence[tuple[str, float, str | None]], *, title: str) -> Markup:
    """Horizontal bars, one per (label, value, CSS class), scaled to the largest value."""
    if not bars:
        return element("p", "Nothing to chart.", class_="note")
    top = max(value for _, value, _ in bars) or 1
    rows = []
    for i, (label, value, kind) in enumerate(bars):
        y = 6 + i * 22
        width = 300 * value / top
        rows.append(_svg_label(label, y + 12))
        rows.append(
            Markup(f'<rect class="{escape(kind or "bar")}" x="170" y="{y}" width="{width:.1f}" height="16"/>')
        )
        rows.append(_svg_text(_number(value), 176 + width, y + 12))
    return _svg(title, 560, 12 + 22 * len(bars), rows)


def stacked_bar_chart(
    bars: Sequence[tuple[str, Sequence[float]]], series: Sequence[str], *, title: str
) -> Markup:
    """Horizontal bars of stacked parts, one part per name of `series`, scaled to the largest total."""
    if not bars:
        return element("p", "Nothing to chart.", class_="note")
    top = max(sum(parts) for _, parts in bars) or 1
    rows = [_legend(series, "s", 0)]
    for i, (label, parts) in enumerate(bars):
        y = 26 + i * 22
        rows.append(_svg_label(label, y + 12))
        x = 170.0
        for j, part in enumerate(parts):
            width = 300 * part / top
            rows.append(Markup(f'<rect class="s{j}" x="{x:.1f}" y="{y}" width="{width:.1f}" height="16"/>'))
            x += width
        rows.append(_svg_text(_number(sum(parts)), x + 6, y + 12))
    return _svg(title, 560, 32 + 22 * len(bars), rows)


def line_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *, title: str) -> Markup:
    """One line per (name, values) over the x positions `labels` (first and last are written)."""
    if not labels:
        return element("p", "Nothing to chart.", class_="note")
    left, right, top_y, bottom = 60, 540, 30, 190
    top = max((max(values, default=0) for _, values in series), default=0) or 1
    step = (right - left) / max(len(labels) - 1, 1)
    parts = [
        _legend([name for name, _ in series], "p", 0),
        Markup(f'<path class="axis" d="M{left} {top_y}V{bottom}H{right}"/>'),
        _svg_text(_number(top), left - 6, top_y + 4, anchor="end"),
        _svg_text("0", left - 6, bottom + 4, anchor="end"),
        _svg_text(_clip(labels[0], _LABEL), left, bottom + 18),
    ]
    if len(labels) > 1:
        parts.append(_svg_text(_clip(labels[-1], _LABEL), right, bottom + 18, anchor="end"))
    for k, (_, values) in enumerate(series):
        points = [(left + i * step, bottom - (bottom - top_y) * v / top) for i, v in enumerate(values)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(Markup(f'<polyline class="l{k}" points="{path}"/>'))
        if len(points) <= 60:
            parts.extend(Markup(f'<circle class="p{k}" cx="{x:.1f}" cy="{y:.1f}" r="3"/>') for x, y in points)
    return _svg(title, 560, 210, parts)


def _svg(title: str, width: int, height: int, parts: Sequence[Markup]) -> Markup:
    return Markup(
        f'<svg viewBox="0 0 {width} {height}" role="img">{element("title", title)}{join(parts)}</svg>'
    )


def _svg_label(label: str, y: float) -> Markup:
    return _svg_text(_clip(label, _LABEL), 164, y, anchor="end")


def _svg_text(text: str, x: float, y: float, *, anchor: str = "start") -> Markup:
    return Markup(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(text)}</text>')


def _legend(names: Sequence[str], prefix: str, y: int) -> Markup:
    items = []
    for i, name in enumerate(names):
        x = 170 + i * 150
        items.append(Markup(f'<rect class="{prefix}{i}" x="{x}" y="{y + 4}" width="10" height="10"/>'))
        items.append(_svg_text(_clip(name, 22), x + 14, y + 13))
    return join(items)


def _figure(caption: str, chart: Markup, table: Markup) -> Markup:
    return element("figure", element("figcaption", caption), chart, table)


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], *, numeric: Iterable[int] = ()) -> Markup:
    """A table; columns at the `numeric` positions are right-aligned."""
    right = set(numeric)
    head = element(
        "tr", [element("th", name, class_="n" if i in right else None) for i, name in enumerate(header)]
    )
    body = [
        element("tr", [element("td", cell, class_="n" if i in right else None) for i, cell in enumerate(row)])
        for row in rows
    ]
    return element("table", element("thead", head), element("tbody", body))


def _fields(rows: Iterable[tuple[str, object]]) -> Markup:
    """A table of (name, value) rows, names as row headers."""
    return element(
        "table", element("tbody", [element("tr", element("th", k), element("td", v)) for k, v in rows])
    )


def _run_section(figures: Figures) -> Markup:
    run = figures.run
    rows: list[tuple[str, object]] = [
        ("Run", run.id),
        ("Started", run.started_at),
        ("Finished", run.finished_at or "not finished"),
        ("State", run.state),
        ("Claims", _count(figures.claims)),
    ]
    rows.extend((name, _setting(run.settings[name])) for name in _KEY_SETTINGS if name in run.settings)
    return _fields(rows)


def _figures_section(figures: Figures) -> Markup:
    cards = [
        ("Claims", _count(figures.claims)),
        ("Live links", _count(figures.live)),
        ("Verified share", _percent(figures.verified_share)),
        ("Lost since the previous run", _count(figures.lost)),
        ("Referring domains", _count(figures.referring_domains)),
        ("Followed share", _percent(figures.followed_share)),
        ("Indexable share", _percent(figures.indexable_share)),
    ]
    cards.extend(
        (f"{_clip(name, _LABEL)} of failed claims", _amount(total))
        for name, total in list(figures.failed_sums.items())[:SHOWN_SUMS]
    )
    notes = element(
        "p",
        "Live: state live or suspect after the run. The verified share is over all claims; "
        "followed and indexable shares are over the links found (verified, nofollow, not_indexable).",
        class_="note",
    )
    return join(
        [
            element(
                "dl", [element("div", element("dt", k), element("dd", v)) for k, v in cards], class_="cards"
            ),
            notes,
        ]
    )


def _status_section(figures: Figures) -> Markup:
    claims = figures.claims
    statuses = [(s.value, n, _STATUS_CLASS[s]) for s, n in figures.statuses.items()]
    flags = [(f.value, n, None) for f, n in figures.flags.items() if n]
    states = [(state, n, None) for state, n in figures.by_state.items()]
    return join(
        [
            _figure(
                "Claims by status",
                bar_chart(statuses, title="Claims by status"),
                _table(
                    ("status", "claims", "share"),
                    ((s, _count(n), _percent(_share(n, claims))) for s, n, _ in statuses),
                    numeric=(1, 2),
                ),
            ),
            _figure(
                "Claims by flag",
                bar_chart(flags, title="Claims by flag"),
                _table(("flag", "claims"), ((f, _count(n)) for f, n, _ in flags), numeric=(1,)),
            ),
            _figure(
                "Claims by state after the run",
                bar_chart(states, title="Claims by state"),
                _table(("state", "claims"), ((s, _count(n)) for s, n, _ in states), numeric=(1,)),
            ),
        ]
    )


def _tag_section(figures: Figures) -> Markup:
    if not figures.by_tag:
        return element("p", "No tag column with at most 50 distinct values.", class_="note")
    parts = []
    for column, rows in list(figures.by_tag.items())[:SHOWN_TAG_COLUMNS]:
        parts.append(_tag_figure(column, rows))
    if len(figures.by_tag) > SHOWN_TAG_COLUMNS:
        parts.append(
            element(
                "p",
                f"{len(figures.by_tag) - SHOWN_TAG_COLUMNS} more tag columns in the JSON report.",
                class_="note",
            )
        )
    return join(parts)


def _tag_figure(column: str, rows: Sequence[TagFigures]) -> Markup:
    shown = rows[:SHOWN_TAG_VALUES]
    sums = list(shown[0].sums)[:SHOWN_SUMS] if shown else []
    column = _clip(column, _CLIP)
    chart = stacked_bar_chart(
        [(_value(r.value), (r.verified, r.present - r.verified, r.failed)) for r in shown],
        ("verified", "other found", "failed"),
        title=f"Claims by {column}",
    )
    header = (
        column,
        "claims",
        "verified share",
        "failure rate",
        "lost",
        *(f"{_clip(name, _LABEL)} of failed" for name in sums),
    )
    table = _table(
        header,
        (
            (
                _clip(_value(r.value), _CLIP),
                _count(r.claims),
                _percent(r.verified_share),
                _percent(r.failure_rate),
                _count(r.lost),
                *(_amount(r.sums[name]) for name in sums),
            )
            for r in shown
        ),
        numeric=range(1, len(header)),
    )
    parts = [_figure(f"By {column}, worst first", chart, table)]
    if len(rows) > len(shown):
        parts.append(element("p", f"{len(rows) - len(shown)} more values in the JSON report.", class_="note"))
    return join(parts)


def _domain_section(figures: Figures) -> Markup:
    top = figures.top_domains
    count = element(
        "p",
        f"{_count(figures.referring_domains)} referring domains "
        "(registrable domains of the sources of live claims).",
    )
    chart = stacked_bar_chart(
        [(d.domain, (d.followed, d.live - d.followed)) for d in top],
        ("followed", "not followed"),
        title="Top referring domains",
    )
    table = _table(
        ("domain", "live links", "followed"),
        ((d.domain, _count(d.live), _count(d.followed)) for d in top),
        numeric=(1, 2),
    )
    return join([count, _figure(f"Top {len(top)} referring domains", chart, table)])


def _anchor_section(figures: Figures) -> Markup:
    found = figures.present
    classes = [(kind.value, n, None) for kind, n in figures.anchor_classes.items()]
    top = figures.top_anchors
    return join(
        [
            _figure(
                "Anchor classes of the links found",
                bar_chart(classes, title="Anchor classes"),
                _table(
                    ("class", "links", "share"),
                    ((k, _count(n), _percent(_share(n, found))) for k, n, _ in classes),
                    numeric=(1, 2),
                ),
            ),
            _figure(
                f"Top {len(top)} anchor texts (normalised)",
                bar_chart([(a.text or "(empty)", a.count, None) for a in top], title="Top anchor texts"),
                _table(
                    ("anchor text", "links", "referring domains"),
                    (
                        (_clip(a.text or "(empty)", _CLIP), _count(a.count), _count(a.referring_domains))
                        for a in top
                    ),
                    numeric=(1, 2),
                ),
            ),
        ]
    )


def _time_section(figures: Figures) -> Markup:
    runs = figures.runs[-SHOWN_RUNS:]
    chart = line_chart(
        [r.run_id for r in runs],
        [("live links", [r.live for r in runs]), ("referring domains", [r.referring_domains for r in runs])],
        title="Live links and referring domains per run",
    )
    table = _table(
        ("run", "started", "live links", "referring domains", "found", "lost", "recovered"),
        (
            (
                _clip(r.run_id, _CLIP),
                _clip(r.started_at, _CLIP),
                _count(r.live),
                _count(r.referring_domains),
                _count(r.found),
                _count(r.lost),
                _count(r.recovered),
            )
            for r in runs
        ),
        numeric=range(2, 7),
    )
    parts = [_figure("Per run", chart, table)]
    if len(figures.runs) > len(runs):
        parts.append(
            element("p", f"{len(figures.runs) - len(runs)} earlier runs are not shown.", class_="note")
        )
    return join(parts)


def _changes_section(figures: Figures, db: str) -> Markup:
    counts = [(kind, n) for kind, n in figures.event_counts.items() if n]
    if not counts:
        return element("p", "No events in this run.", class_="note")
    command = _command("changes", db, figures.run.id)
    parts = [
        _table(("event", "claims"), ((k, _count(n)) for k, n in counts), numeric=(1,)),
        element("h3", "Events, losses first"),
        _table(
            ("event", "claim", "source", "target", "old", "new", "reason"),
            (_event_cells(e) for e in figures.events),
        ),
    ]
    if figures.events_left_out:
        parts.append(
            element("p", f"{_count(figures.events_left_out)} more events: ", element("code", command))
        )
    return join(parts)


def _problem_section(figures: Figures, db: str) -> Markup:
    total = sum(figures.problem_counts.values())
    if not total:
        return element("p", "Every claim is verified.", class_="note")
    left_out = figures.problems_left_out
    summary = f"{_count(total)} claims are not verified."
    if left_out:
        summary += f" {_count(left_out)} of them are not listed here (the list stops at 1,000)."
    parts = [element("p", summary)]
    by_status: dict[Status, list[ClaimRow]] = {}
    for row in figures.problems:
        by_status.setdefault(row.status, []).append(row)
    for status in PROBLEMS:
        count = figures.problem_counts.get(status, 0)
        if not count:
            continue
        shown = by_status.get(status, [])
        command = _command("export", db, figures.run.id, status.value)
        parts.append(element("h3", f"{status.value}: {_count(count)}", id=f"problems-{status.value}"))
        rest = count - len(shown)
        listed = f"{_count(len(shown))} listed, {_count(rest)} more; all of them: " if rest else "Export: "
        parts.append(element("p", listed, element("code", command)))
        if shown:
            parts.append(
                _table(
                    ("claim", "source", "target", "reason", "flags", "state"),
                    (_problem_cells(r) for r in shown),
                )
            )
    return join(parts)


def _event_cells(event: Event) -> tuple[str, ...]:
    return (
        event.event.value,
        _clip(event.claim_id, 40),
        _clip_url(event.source_url),
        _clip_url(event.target_url),
        _clip(_json_word(event.old), _CLIP),
        _clip(_json_word(event.new), _CLIP),
        event.reason.value if event.reason else "",
    )


def _problem_cells(row: ClaimRow) -> tuple[str, ...]:
    return (
        _clip(row.claim_id, 40),
        _clip_url(row.source_url),
        _clip_url(row.target_url),
        _clip(row.reason or "", _CLIP),
        " ".join(flag.value for flag in row.flags),
        row.state,
    )


def _command(name: str, db: str, run_id: str, status: str | None = None) -> str:
    """The command line that lists what the report left out; a database password is masked."""
    words = ["crawler", name, "--db", _PASSWORD.sub(r"\1:***@", db), "--run", run_id]
    if status:
        words += ["--status", status]
    return shlex.join(words)


def _setting(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "(none)"
    return _clip(str(value), _CLIP)


def _json_word(value: str | bool | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _value(value: str | None) -> str:
    return "(none)" if value is None else value


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip_url(url: str) -> str:
    """A long URL shortened in the middle: its host and the end of its path stay readable."""
    if len(url) <= _CLIP_URL:
        return url
    tail = _CLIP_URL // 3
    return f"{url[: _CLIP_URL - tail - 1]}…{url[-tail:]}"


def _count(n: int) -> str:
    return f"{n:,}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _amount(value: Decimal) -> str:
    """A sum as written by people: `1,234.5`, `40` (no exponent, no trailing zeros)."""
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value.normalize():,f}"


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None
