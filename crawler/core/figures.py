"""The figures of a run's report (section 10 of the contract), computed from plain rows.

Pure. The store feeds an `Accumulator` as a stream: one `ClaimRow` per claim of the run (its
result and its state after the run), the run's events (`history.Event`) and the earlier runs' points
(`RunPoint`), in any interleaving; `result()` then gives the `Figures`, which the report command
prints (`Figures.to_json()`) or places in HTML. Memory grows with distinct values only (referring
domains, tag values, anchor texts), never with rows: problems and listed events are capped.

Definitions the contract leaves open, chosen here:

- Tag columns: by default every column with at most `max_tag_values` (50) distinct values; with
  `by`, exactly those columns, whatever their number of values. Claims without the column form the
  row of value None. A column is *numeric* when each of its values is a plain decimal number
  (`19.99`, `-3`, `.5`; no thousands separators, currency signs or exponents).
- "lost" in a tag row counts the run's `lost` events carrying that tag value (the same figure as
  "lost since the previous run"). A lost event comes from an absent or gone result of this run,
  so the lost claims are among the failed ones: numeric sums run over the failed claims.
- A result without a state (stored before states existed) counts as `new`.
- Anchor texts are grouped by their normalised text; their referring domains are the distinct
  registrable domains of the sources of present results carrying them.
- Problems list claims in the order of section 3, then in the order fed; events are listed by
  severity (`EVENT_ORDER`), then in the order fed; each list keeps at most its cap.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from crawler.core import urls
from crawler.core.anchors import AnchorClass, Classifier
from crawler.core.history import Event, EventType, RelKind, State, normalize_anchor, rel_kind
from crawler.models import Flag, Result, Status

LIVE_STATES = frozenset({State.LIVE, State.SUSPECT})
"""A claim in these states after the run is live (a loss not yet confirmed is still live)."""
PRESENT = frozenset({Status.VERIFIED, Status.NOFOLLOW, Status.NOT_INDEXABLE})
PROBLEMS = tuple(status for status in Status if status is not Status.VERIFIED)
"""The statuses of problems, in the order of section 3."""
EVENT_ORDER = (
    EventType.LOST,
    EventType.BLOCKED,
    EventType.UNREACHABLE,
    EventType.REL_CHANGED,
    EventType.INDEXABILITY_CHANGED,
    EventType.ANCHOR_CHANGED,
    EventType.NOT_FOUND,
    EventType.UNBLOCKED,
    EventType.RECOVERED,
    EventType.FOUND,
)
"""Event types by severity: losses and downgrades first, then recoveries and finds."""
MAX_TAG_VALUES = 50
TOP = 20
MAX_PROBLEMS = 1000
MAX_EVENTS = 1000
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


@dataclass(frozen=True, slots=True)
class RunMeta:
    """The reported run: its id, times, state (`running`, `finished`, `interrupted`) and settings."""

    id: str
    started_at: str
    finished_at: str | None = None
    state: str = "finished"
    settings: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClaimRow:
    """One claim of the run: its result's facts and its monitoring state after the run.

    `link_*` describe the reported link (`link_text` None when the result has none);
    `expected_anchor` is the claim's.
    """

    claim_id: str
    source_url: str
    target_url: str
    status: Status
    state: State
    reason: str | None = None
    flags: tuple[Flag, ...] = ()
    link_text: str | None = None
    link_rel: tuple[str, ...] = ()
    link_image: bool = False
    indexable: bool | None = None
    expected_anchor: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, result: Result, *, expected_anchor: str | None = None) -> ClaimRow:
        """The row of a stored result and its claim's expected anchor."""
        link = result.link
        return cls(
            claim_id=result.claim_id,
            source_url=result.source_url,
            target_url=result.target_url,
            status=result.status,
            state=State(result.state) if result.state else State.NEW,
            reason=result.reason,
            flags=result.flags,
            link_text=link.text if link else None,
            link_rel=link.rel if link else (),
            link_image=link.image if link else False,
            indexable=result.indexable,
            expected_anchor=expected_anchor,
            tags=result.tags,
        )


@dataclass(frozen=True, slots=True)
class RunPoint:
    """One run on the over-time chart: live links, referring domains and its events' counts."""

    run_id: str
    started_at: str = ""
    live: int = 0
    referring_domains: int = 0
    found: int = 0
    lost: int = 0
    recovered: int = 0


@dataclass(frozen=True, slots=True)
class DomainFigures:
    """A referring domain: its live claims and, of those, the followed ones."""

    domain: str
    live: int
    followed: int


@dataclass(frozen=True, slots=True)
class AnchorFigures:
    """An anchor text (normalised): the present results carrying it and their referring domains."""

    text: str
    count: int
    referring_domains: int


@dataclass(frozen=True, slots=True)
class TagFigures:
    """The claims of one tag value (None: the claims without the column) and how they fared.

    `sums` holds, for each numeric tag column, its sum over this value's failed claims.
    """

    value: str | None
    claims: int
    verified: int
    present: int
    lost: int
    sums: Mapping[str, Decimal] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.claims - self.present

    @property
    def verified_share(self) -> float | None:
        return _share(self.verified, self.claims)

    @property
    def failure_rate(self) -> float | None:
        return _share(self.failed, self.claims)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "claims": self.claims,
            "verified": self.verified,
            "verified_share": self.verified_share,
            "failed": self.failed,
            "failure_rate": self.failure_rate,
            "lost": self.lost,
            "sums": {column: _number(total) for column, total in self.sums.items()},
        }


@dataclass(frozen=True, slots=True)
class Figures:
    """Every figure of a run's report; `to_json` is the shape of `crawler report --format json`."""

    run: RunMeta
    claims: int
    live: int
    verified: int
    present: int
    followed: int
    indexable: int
    lost: int
    """Lost since the previous run: the run's `lost` events."""
    referring_domains: int
    top_domains: tuple[DomainFigures, ...]
    statuses: Mapping[Status, int]
    reasons: Mapping[str, int]
    """Results by reason (why a page could not be judged), commonest first; `invalid` rows as one."""
    flags: Mapping[Flag, int]
    by_state: Mapping[State, int]
    anchor_classes: Mapping[AnchorClass, int]
    top_anchors: tuple[AnchorFigures, ...]
    by_tag: Mapping[str, tuple[TagFigures, ...]]
    """Tag column to its rows, worst first (highest failure rate, then most claims)."""
    failed_sums: Mapping[str, Decimal]
    """Each numeric tag column's sum over all failed claims of the run."""
    runs: tuple[RunPoint, ...]
    event_counts: Mapping[EventType, int]
    events: tuple[Event, ...]
    problem_counts: Mapping[Status, int]
    problems: tuple[ClaimRow, ...]

    @property
    def verified_share(self) -> float | None:
        return _share(self.verified, self.claims)

    @property
    def followed_share(self) -> float | None:
        return _share(self.followed, self.present)

    @property
    def indexable_share(self) -> float | None:
        return _share(self.indexable, self.present)

    @property
    def events_left_out(self) -> int:
        return sum(self.event_counts.values()) - len(self.events)

    @property
    def problems_left_out(self) -> int:
        return sum(self.problem_counts.values()) - len(self.problems)

    def to_json(self) -> dict[str, Any]:
        """The figures as JSON values (shares are fractions, None when nothing to divide by)."""
        run = self.run
        return {
            "run": {
                "id": run.id,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "state": run.state,
                "settings": dict(run.settings),
            },
            "claims": self.claims,
            "live": self.live,
            "verified": self.verified,
            "verified_share": self.verified_share,
            "lost_since_previous_run": self.lost,
            "present": self.present,
            "followed": self.followed,
            "followed_share": self.followed_share,
            "indexable": self.indexable,
            "indexable_share": self.indexable_share,
            "referring_domains": self.referring_domains,
            "top_referring_domains": [asdict(domain) for domain in self.top_domains],
            "statuses": {status.value: n for status, n in self.statuses.items()},
            "reasons": dict(self.reasons),
            "flags": {flag.value: n for flag, n in self.flags.items()},
            "by_state": {state.value: n for state, n in self.by_state.items()},
            "anchor_classes": {kind.value: n for kind, n in self.anchor_classes.items()},
            "top_anchors": [asdict(anchor) for anchor in self.top_anchors],
            "by_tag": {column: [row.to_dict() for row in rows] for column, rows in self.by_tag.items()},
            "failed_sums": {column: _number(total) for column, total in self.failed_sums.items()},
            "runs": [asdict(point) for point in self.runs],
            "changes": {
                "counts": {kind.value: n for kind, n in self.event_counts.items()},
                "events": [event.to_dict() for event in self.events],
                "left_out": self.events_left_out,
            },
            "problems": {
                "counts": {status.value: n for status, n in self.problem_counts.items()},
                "claims": [_problem(row) for row in self.problems],
                "left_out": self.problems_left_out,
            },
        }


def is_number(value: str) -> bool:
    """True for a plain decimal number (`19.99`, `-3`, `.5`), white space around it allowed."""
    return _NUMBER.fullmatch(value.strip()) is not None


class _Group:
    """Running counts of one tag value."""

    __slots__ = ("claims", "lost", "present", "sums", "verified")

    def __init__(self) -> None:
        self.claims = self.verified = self.present = self.lost = 0
        self.sums: dict[str, Decimal] = {}


class _Column:
    """A tag column: its values' groups (until it has too many) and whether it is numeric so far."""

    __slots__ = ("groups", "numeric", "overflowed")

    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {}
        self.numeric = True
        self.overflowed = False


class _Domain:
    __slots__ = ("followed", "id", "live")

    def __init__(self, number: int) -> None:
        self.id = number
        self.live = self.followed = 0


class Accumulator:
    """Takes a run's rows one at a time (`add`, `add_event`, `add_run`); `result()` gives the figures."""

    def __init__(
        self,
        run: RunMeta,
        *,
        by: Sequence[str] = (),
        brand_terms: Iterable[str] = (),
        max_tag_values: int = MAX_TAG_VALUES,
        top: int = TOP,
        max_problems: int = MAX_PROBLEMS,
        max_events: int = MAX_EVENTS,
    ) -> None:
        self._run = run
        self._by = tuple(dict.fromkeys(by))
        self._classifier = Classifier(brand_terms)
        self._max_tag_values, self._top = max_tag_values, top
        self._max_problems, self._max_events = max_problems, max_events
        self._live = self._followed = self._indexable = 0
        self._statuses: Counter[Status] = Counter()
        self._reasons: Counter[str] = Counter()
        self._flags: Counter[Flag] = Counter()
        self._states: Counter[State] = Counter()
        self._classes: Counter[AnchorClass] = Counter()
        self._anchors: Counter[str] = Counter()
        # An anchor's referring domains: one domain's id, or a set once there are two.
        self._anchor_domains: dict[str, int | set[int]] = {}
        self._domains: dict[str, _Domain] = {}
        self._columns: dict[str, _Column] = {}
        self._failed_sums: dict[str, Decimal] = {}
        self._total = _Group()  # the whole run as one group: claims, verified, present, lost
        self._problems: dict[Status, list[ClaimRow]] = {}
        self._events: dict[EventType, list[Event]] = {}
        self._event_counts: Counter[EventType] = Counter()
        self._runs: list[RunPoint] = []

    def add(self, row: ClaimRow) -> None:
        """Counts one claim of the run."""
        present = row.status in PRESENT
        self._total.claims += 1
        self._statuses[row.status] += 1
        if row.reason is not None:  # an invalid row's reason names its row: counted as one word
            self._reasons["invalid" if row.status is Status.INVALID else row.reason] += 1
        self._flags.update(row.flags)
        self._states[row.state] += 1
        if row.status is Status.VERIFIED:
            self._total.verified += 1
        else:
            self._add_problem(row)
        if row.state in LIVE_STATES or present:
            domain = self._domain(row.source_url)
            if row.state in LIVE_STATES:
                self._live += 1
                domain.live += 1
            if present:
                self._add_present(row, domain)
        self._add_tags(row, present)

    def add_event(self, event: Event) -> None:
        """Counts one event of the run; a `lost` event counts for each tag value it carries."""
        self._event_counts[event.event] += 1
        listed = self._events.setdefault(event.event, [])
        if len(listed) < self._max_events:
            listed.append(event)
        if event.event is EventType.LOST:
            self._total.lost += 1
            for group in self._groups({name: value for name, value in event.tags.items() if value}):
                group.lost += 1

    def add_run(self, point: RunPoint) -> None:
        """Adds an earlier run to the over-time series (oldest first); the reported run's own point
        is computed, so a point with its id only fixes its place in the series."""
        self._runs.append(point)

    def result(self) -> Figures:
        """The figures of everything added so far."""
        domains = [(name, d) for name, d in self._domains.items() if d.live]
        return Figures(
            run=self._run,
            claims=self._total.claims,
            live=self._live,
            verified=self._total.verified,
            present=self._total.present,
            followed=self._followed,
            indexable=self._indexable,
            lost=self._total.lost,
            referring_domains=len(domains),
            top_domains=tuple(
                DomainFigures(name, d.live, d.followed)
                for name, d in heapq.nsmallest(
                    self._top, domains, key=lambda i: (-i[1].live, -i[1].followed, i[0])
                )
            ),
            statuses={status: self._statuses[status] for status in Status},
            reasons=dict(sorted(self._reasons.items(), key=lambda item: (-item[1], item[0]))),
            flags={flag: self._flags[flag] for flag in Flag},
            by_state={state: self._states[state] for state in State},
            anchor_classes={kind: self._classes[kind] for kind in AnchorClass},
            top_anchors=self._top_anchors(),
            by_tag=self._by_tag(),
            failed_sums={name: total for name, total in self._failed_sums.items() if self._numeric(name)},
            runs=self._series(),
            event_counts={kind: self._event_counts[kind] for kind in EVENT_ORDER},
            events=_capped(self._events, EVENT_ORDER, self._max_events),
            problem_counts={status: self._statuses[status] for status in PROBLEMS},
            problems=_capped(self._problems, PROBLEMS, self._max_problems),
        )

    def _domain(self, source_url: str) -> _Domain:
        name = urls.registrable_domain(urls.host_key(source_url))
        found = self._domains.get(name)
        if found is None:
            found = self._domains[name] = _Domain(len(self._domains))
        return found

    def _add_present(self, row: ClaimRow, domain: _Domain) -> None:
        self._total.present += 1
        if row.indexable:
            self._indexable += 1
        if rel_kind(row.link_rel) is RelKind.FOLLOW and Flag.PAGE_NOFOLLOW not in row.flags:
            self._followed += 1
            domain.followed += 1
        text = row.link_text or ""
        anchor = normalize_anchor(text)
        kind = self._classifier.classify(
            text,
            image=row.link_image,
            expected_anchor=row.expected_anchor,
            target_url=row.target_url,
            words=anchor,
        )
        self._classes[kind] += 1
        self._anchors[anchor] += 1
        seen = self._anchor_domains.get(anchor)
        if seen is None:
            self._anchor_domains[anchor] = domain.id
        elif isinstance(seen, set):
            seen.add(domain.id)
        elif seen != domain.id:
            self._anchor_domains[anchor] = {seen, domain.id}

    def _add_problem(self, row: ClaimRow) -> None:
        listed = self._problems.setdefault(row.status, [])
        if len(listed) < self._max_problems:
            listed.append(row)

    def _add_tags(self, row: ClaimRow, present: bool) -> None:
        tags = {name: value for name, value in row.tags.items() if value}
        groups = self._groups(tags)
        for group in groups:
            group.claims += 1
            group.verified += row.status is Status.VERIFIED
            group.present += present
        if present:
            return
        for name, value in tags.items():
            if self._columns[name].numeric:
                amount = Decimal(value.strip())
                self._failed_sums[name] = self._failed_sums.get(name, Decimal(0)) + amount
                for group in groups:
                    group.sums[name] = group.sums.get(name, Decimal(0)) + amount

    def _groups(self, tags: Mapping[str, str]) -> list[_Group]:
        """The groups of the tag values in `tags` (made when new), each column told its value: a
        column that gets more than `max_tag_values` values (and is not named by `by`) is dropped."""
        groups = []
        for name, value in tags.items():
            column = self._columns.get(name)
            if column is None:
                column = self._columns[name] = _Column()
            if column.numeric and not is_number(value):
                column.numeric = False
            if column.overflowed or (self._by and name not in self._by):
                continue
            group = column.groups.get(value)
            if group is None:
                if not self._by and len(column.groups) >= self._max_tag_values:
                    column.overflowed = True
                    column.groups.clear()
                    continue
                group = column.groups[value] = _Group()
            groups.append(group)
        return groups

    def _numeric(self, name: str) -> bool:
        column = self._columns.get(name)
        return column is not None and column.numeric

    def _by_tag(self) -> dict[str, tuple[TagFigures, ...]]:
        names = self._by or tuple(name for name, column in self._columns.items() if not column.overflowed)
        numeric = [name for name in self._columns if self._numeric(name)]
        by_tag = {}
        for name in names:
            column = self._columns.get(name, _Column())
            rows = [self._tag_figures(value, group, numeric) for value, group in column.groups.items()]
            rest = _rest(self._total, column.groups.values(), self._failed_sums, numeric)
            if rest.claims:
                rows.append(self._tag_figures(None, rest, numeric))
            rows.sort(key=lambda r: (-(r.failure_rate or 0.0), -r.claims, r.value is None, r.value or ""))
            by_tag[name] = tuple(rows)
        return by_tag

    @staticmethod
    def _tag_figures(value: str | None, group: _Group, numeric: Sequence[str]) -> TagFigures:
        sums = {name: group.sums.get(name, Decimal(0)) for name in numeric}
        return TagFigures(value, group.claims, group.verified, group.present, group.lost, sums)

    def _top_anchors(self) -> tuple[AnchorFigures, ...]:
        def domains(anchor: str) -> int:
            seen = self._anchor_domains[anchor]
            return len(seen) if isinstance(seen, set) else 1

        top = heapq.nsmallest(self._top, self._anchors.items(), key=lambda i: (-i[1], -domains(i[0]), i[0]))
        return tuple(AnchorFigures(text, count, domains(text)) for text, count in top)

    def _series(self) -> tuple[RunPoint, ...]:
        counts = self._event_counts
        own = RunPoint(
            self._run.id,
            self._run.started_at,
            self._live,
            sum(1 for d in self._domains.values() if d.live),
            counts[EventType.FOUND],
            counts[EventType.LOST],
            counts[EventType.RECOVERED],
        )
        points = [own if point.run_id == own.run_id else point for point in self._runs]
        if all(point.run_id != own.run_id for point in self._runs):
            points.append(own)
        return tuple(points)


def _rest(
    total: _Group, groups: Iterable[_Group], failed_sums: Mapping[str, Decimal], numeric: Sequence[str]
) -> _Group:
    """The claims without a column: the run's totals less the column's groups."""
    rest = _Group()
    rest.claims, rest.verified, rest.present, rest.lost = (
        total.claims,
        total.verified,
        total.present,
        total.lost,
    )
    rest.sums = {name: failed_sums.get(name, Decimal(0)) for name in numeric}
    for group in groups:
        rest.claims -= group.claims
        rest.verified -= group.verified
        rest.present -= group.present
        rest.lost -= group.lost
        for name in numeric:
            rest.sums[name] -= group.sums.get(name, Decimal(0))
    return rest


def _capped(lists: Mapping[Any, list[Any]], order: Iterable[Any], cap: int) -> tuple[Any, ...]:
    """The items of `lists` taken in `order` of their keys, at most `cap` in all."""
    taken: list[Any] = []
    for key in order:
        taken.extend(lists.get(key, ())[: cap - len(taken)])
    return tuple(taken)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _number(amount: Decimal) -> int | float:
    """A sum as a JSON number: an integer when it is whole."""
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _problem(row: ClaimRow) -> dict[str, Any]:
    return {
        "claim_id": row.claim_id,
        "source_url": row.source_url,
        "target_url": row.target_url,
        "status": row.status.value,
        "reason": row.reason,
        "flags": [flag.value for flag in row.flags],
        "state": row.state,
        "tags": dict(row.tags),
    }
