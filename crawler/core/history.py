"""Monitoring over time (SPEC section 9): a claim's results, in run order, to states and events.

Each result is read as an `Observation`; `step` folds one into a `ClaimHistory` (the claim's
state and the little the next step needs) and returns the events it causes; `fold` runs a whole
history from the start, as `crawler history --rebuild` does. Pure: the same results give the same
states and events, whenever and wherever they are folded.

Where the contract is silent, this module decides (the README repeats it):

- Quality changes (`rel_changed`, `anchor_changed`, `indexability_changed`) compare a present
  observation with the previous *present* one, whatever lay between. Reading "consecutive" as
  "adjacent runs" would hide a downgrade to `nofollow` behind one night of outage, the change a
  buyer most needs to hear of. A link that comes back from `lost` with another anchor reports
  `recovered` and `anchor_changed`. After a restart from `new` there is nothing to compare with.
- `anchor_changed` compares texts after `normalize_anchor` and reports them as the links carry them.
- `unreachable` is reported once per row of inconclusive observations, on its
  `unreachable_runs`-th; a longer row reports nothing more (the count goes on); a conclusive
  observation ends the row. It is reported in every state, `suspect` included: "nothing is
  reported" while suspect concerns the loss not yet confirmed, not the fetches.
- An `invalid` result is about the claim's row, not the link. The state reads `invalid` at once and
  nothing is reported; underneath, the link's state, both rows and the last present link are kept,
  and the next conclusive observation goes on from them, with `invalid` as the event's `old_state`:
  live, invalid, present reports nothing; new, invalid, present reports `found`; live, absent,
  invalid, absent confirms a loss. An inconclusive observation leaves `invalid` as it is.
- One state event per transition. Leaving `blocked` reports `unblocked`, except into `lost`, which
  reports `lost` (the table names `blocked` among its sources): one run never tells the same claim's
  buyer both "recovered" and "lost". `blocked` to `not_found` reports `unblocked`.
- `reason` is set on `lost` only (`link_removed` or `page_gone`), as the table gives it.
- A challenge page or a failed render is inconclusive whatever its status: a 404 flagged
  `bot_challenge` is not `gone` ("a challenge page is never evidence that a link was removed").
- A present result without `indexable` counts as indexable unless its status is `not_indexable`.
- URL changes: a history remembers the URLs its results were checked against. `step` starts again
  from `new` when a result's URLs differ, so a rebuild restarts where the claim changed; `on_import`
  does the same when a claim is imported with new URLs, so its state reads `new` before the next
  run. Invalid results never restart a history (their URLs are whatever the broken row held). A
  change that no run checked (A to B and back to A between two runs) is invisible to a rebuild.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from crawler.models import ExpectedRel, Link, Result, Status

__all__ = [
    "ClaimHistory",
    "Event",
    "EventType",
    "LossReason",
    "Observation",
    "RelKind",
    "State",
    "fold",
    "normalize_anchor",
    "observe",
    "on_import",
    "rel_kind",
    "step",
]


class Observation(StrEnum):
    """What one result says about the link; only conclusive ones move a state."""

    PRESENT = "present"
    ABSENT = "absent"
    GONE = "gone"
    BARRED = "barred"
    INVALID = "invalid"
    INCONCLUSIVE = "inconclusive"


class State(StrEnum):
    """A claim's monitoring state after a result."""

    NEW = "new"
    LIVE = "live"
    SUSPECT = "suspect"
    LOST = "lost"
    NOT_FOUND = "not_found"
    BLOCKED = "blocked"
    INVALID = "invalid"


class EventType(StrEnum):
    """The rows of the events table, in its order."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    LOST = "lost"
    RECOVERED = "recovered"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    REL_CHANGED = "rel_changed"
    ANCHOR_CHANGED = "anchor_changed"
    INDEXABILITY_CHANGED = "indexability_changed"
    UNREACHABLE = "unreachable"


class LossReason(StrEnum):
    """Why a `lost` event happened: the last observation of the row."""

    LINK_REMOVED = "link_removed"
    PAGE_GONE = "page_gone"


RelKind = ExpectedRel
"""A link's rel kind: the same four words as a claim's `expected_rel`."""

_PRESENT = frozenset({Status.VERIFIED, Status.NOFOLLOW, Status.NOT_INDEXABLE})
_GONE_REASONS = frozenset({"http_404", "http_410"})
_BARRED_REASONS = frozenset({"robots_disallowed", "forbidden_address"})
# Strings, not Flag members: the flags are StrEnums and compare equal to their values.
_INCONCLUSIVE_FLAGS = frozenset({"bot_challenge", "render_failed"})
_REL_PRECEDENCE = (RelKind.SPONSORED, RelKind.UGC, RelKind.NOFOLLOW)


def observe(result: Result) -> Observation:
    """Read a result as an observation; an outage, a challenge or a server error proves nothing."""
    if result.status in _PRESENT:
        return Observation.PRESENT
    if result.status is Status.INVALID:
        return Observation.INVALID
    if result.status is Status.BLOCKED:
        return Observation.BARRED if result.reason in _BARRED_REASONS else Observation.INCONCLUSIVE
    if _INCONCLUSIVE_FLAGS.intersection(result.flags):
        return Observation.INCONCLUSIVE
    if result.status is Status.MISSING:
        return Observation.ABSENT
    if result.status is Status.PAGE_ERROR and result.reason in _GONE_REASONS:
        return Observation.GONE
    return Observation.INCONCLUSIVE


def rel_kind(rel: Iterable[str]) -> RelKind:
    """`follow` when no token is nofollow, sponsored or ugc, else the first of sponsored > ugc > nofollow."""
    tokens = {token.lower() for token in rel}
    return next((kind for kind in _REL_PRECEDENCE if kind.value in tokens), RelKind.FOLLOW)


def normalize_anchor(text: str) -> str:
    """Text as section 1 compares anchors: NFKC, case folded, punctuation as spaces, whitespace collapsed."""
    # NFKC again after casefold: folding can leave a sequence that NFKC composes differently.
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    spaced = "".join(" " if unicodedata.category(char).startswith("P") else char for char in folded)
    return " ".join(spaced.split())


@dataclass(frozen=True, slots=True)
class ClaimHistory:
    """A claim's state and what the next step needs of its past; `ClaimHistory()` is the start."""

    state: State = State.NEW
    state_before_invalid: State | None = None
    """The link's own state while `state` is invalid (see the module docstring), else None."""
    ever_live: bool = False
    misses_in_a_row: int = 0
    """Conclusive non-present observations since the claim left `live` (non-zero only in suspect)."""
    inconclusive_in_a_row: int = 0
    rel: RelKind | None = None
    """Rel kind of the last present observation's link (None: none yet)."""
    text: str | None = None
    """Text of the last present observation's link, as written."""
    indexable: bool | None = None
    last_seen_run: str | None = None
    source_url: str | None = None
    """The URLs the results were checked against (None until the first usable result)."""
    target_url: str | None = None

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise ValueError(f"impossible claim history: {problem}")

    def _problem(self) -> str | None:
        if (self.state is State.INVALID) != (self.state_before_invalid is not None):
            return "state_before_invalid is set exactly when the state is invalid"
        if self.state_before_invalid is State.INVALID:
            return "state_before_invalid is a state of the link, never invalid"
        if self.misses_in_a_row < 0 or self.inconclusive_in_a_row < 0:
            return "a count in a row is negative"
        if self.misses_in_a_row and self.link_state is not State.SUSPECT:
            return "misses are counted only while suspect"
        if self.link_state in (State.LIVE, State.SUSPECT, State.LOST) and not self.ever_live:
            return f"{self.link_state} but never live"
        return None

    @property
    def link_state(self) -> State:
        """The state of the link itself: `state`, or the one underneath an invalid claim."""
        return self.state_before_invalid or self.state

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict, for the store's row of this claim."""
        return {
            "state": self.state.value,
            "state_before_invalid": _value(self.state_before_invalid),
            "ever_live": self.ever_live,
            "misses_in_a_row": self.misses_in_a_row,
            "inconclusive_in_a_row": self.inconclusive_in_a_row,
            "rel": _value(self.rel),
            "text": self.text,
            "indexable": self.indexable,
            "last_seen_run": self.last_seen_run,
            "source_url": self.source_url,
            "target_url": self.target_url,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClaimHistory:
        """Inverse of `to_dict`; a missing key takes its starting value, a bad one raises ValueError."""
        before = data.get("state_before_invalid")
        rel = data.get("rel")
        return cls(
            state=State(data.get("state", State.NEW)),
            state_before_invalid=State(before) if before is not None else None,
            ever_live=bool(data.get("ever_live", False)),
            misses_in_a_row=int(data.get("misses_in_a_row", 0)),
            inconclusive_in_a_row=int(data.get("inconclusive_in_a_row", 0)),
            rel=RelKind(rel) if rel is not None else None,
            text=data.get("text"),
            indexable=data.get("indexable"),
            last_seen_run=data.get("last_seen_run"),
            source_url=data.get("source_url"),
            target_url=data.get("target_url"),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One row of the events table, as reported; `to_dict` is the contract's JSON object."""

    run_id: str
    claim_id: str
    source_url: str
    target_url: str
    tags: Mapping[str, str]
    event: EventType
    old_state: State
    new_state: State
    reason: LossReason | None
    old: str | bool | None
    """The compared field before (rel kind or text: string; indexable: boolean), else None."""
    new: str | bool | None
    checked_at: str
    last_seen_run: str | None
    """The last run, this one included, in which the link was present."""

    def to_dict(self) -> dict[str, Any]:
        """The event as the contract's JSON object, fields in the documented order."""
        return {
            "run_id": self.run_id,
            "claim_id": self.claim_id,
            "source_url": self.source_url,
            "target_url": self.target_url,
            "tags": dict(self.tags),
            "event": self.event.value,
            "old_state": self.old_state.value,
            "new_state": self.new_state.value,
            "reason": _value(self.reason),
            "old": self.old,
            "new": self.new,
            "checked_at": self.checked_at,
            "last_seen_run": self.last_seen_run,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """Inverse of `to_dict`, for events read back from storage."""
        reason = data.get("reason")
        return cls(
            run_id=data["run_id"],
            claim_id=data["claim_id"],
            source_url=data["source_url"],
            target_url=data["target_url"],
            tags=dict(data.get("tags") or {}),
            event=EventType(data["event"]),
            old_state=State(data["old_state"]),
            new_state=State(data["new_state"]),
            reason=LossReason(reason) if reason is not None else None,
            old=data.get("old"),
            new=data.get("new"),
            checked_at=data["checked_at"],
            last_seen_run=data.get("last_seen_run"),
        )


def on_import(history: ClaimHistory, source_url: str, target_url: str) -> ClaimHistory:
    """The history to keep when a usable claim is imported: a fresh one (`new`) if its URLs changed."""
    if history.source_url is None:
        return replace(history, source_url=source_url, target_url=target_url)
    if (history.source_url, history.target_url) == (source_url, target_url):
        return history
    return ClaimHistory(source_url=source_url, target_url=target_url)


def step(
    history: ClaimHistory, result: Result, *, confirm_runs: int = 2, unreachable_runs: int = 3
) -> tuple[ClaimHistory, tuple[Event, ...]]:
    """Fold one result into a claim's history: the history after it and the events it causes."""
    _check(confirm_runs=confirm_runs, unreachable_runs=unreachable_runs)
    seen = observe(result)
    if seen is Observation.INVALID:
        return replace(history, state=State.INVALID, state_before_invalid=history.link_state), ()
    history = on_import(history, result.source_url, result.target_url)
    if seen is Observation.INCONCLUSIVE:
        return _inconclusive(history, result, unreachable_runs)
    if seen is Observation.PRESENT:
        return _present(history, result)
    return _miss(history, result, seen, confirm_runs)


def fold(
    results: Iterable[Result], *, confirm_runs: int = 2, unreachable_runs: int = 3
) -> tuple[ClaimHistory, tuple[Event, ...]]:
    """One claim's results in run order, folded from the start: its final history and every event.

    For a rebuild, pass the outcome through `on_import` with the claim's current URLs.
    """
    history = ClaimHistory()
    events: list[Event] = []
    claim_id: str | None = None
    for result in results:
        if claim_id not in (None, result.claim_id):
            raise ValueError(f"fold takes one claim's results: {claim_id} then {result.claim_id}")
        claim_id = result.claim_id
        history, caused = step(history, result, confirm_runs=confirm_runs, unreachable_runs=unreachable_runs)
        events.extend(caused)
    return history, tuple(events)


FOLD_DEFAULTS = {"confirm_runs": 2, "unreachable_runs": 3}
"""The fold's settings (`step`'s keywords) and their defaults."""


def settings_of(stored: object) -> dict[str, int]:
    """The fold's settings among a run's stored settings (its JSON, parsed): a whole number of
    runs, at least 1, else the default (a run recorded before the setting existed has none)."""
    found = stored if isinstance(stored, Mapping) else {}
    return {name: _runs(found.get(name), default) for name, default in FOLD_DEFAULTS.items()}


def _runs(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else default


def _check(**settings: int) -> None:
    for name, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of runs, at least 1: {value!r}")


def _inconclusive(
    history: ClaimHistory, result: Result, unreachable_runs: int
) -> tuple[ClaimHistory, tuple[Event, ...]]:
    after = replace(history, inconclusive_in_a_row=history.inconclusive_in_a_row + 1)
    if after.inconclusive_in_a_row != unreachable_runs:
        return after, ()
    return after, (_event(result, after, EventType.UNREACHABLE, history.state),)


def _present(history: ClaimHistory, result: Result) -> tuple[ClaimHistory, tuple[Event, ...]]:
    link = result.link
    after = replace(
        history,
        state=State.LIVE,
        state_before_invalid=None,
        ever_live=True,
        misses_in_a_row=0,
        inconclusive_in_a_row=0,
        rel=rel_kind(link.rel) if link else None,
        text=link.text if link else None,
        indexable=_indexable(result),
        last_seen_run=result.run_id,
    )
    arrival = {
        State.NEW: EventType.FOUND,
        State.NOT_FOUND: EventType.FOUND,
        State.LOST: EventType.RECOVERED,
        State.BLOCKED: EventType.UNBLOCKED,
    }.get(history.link_state)
    events = [_event(result, after, arrival, history.state)] if arrival else []
    for kind, old, new in _changes(history, after, link):
        events.append(_event(result, after, kind, after.state, old=old, new=new))
    return after, tuple(events)


def _indexable(result: Result) -> bool:
    if result.indexable is not None:
        return result.indexable
    return result.status is not Status.NOT_INDEXABLE


def _changes(
    before: ClaimHistory, after: ClaimHistory, link: Link | None
) -> Iterable[tuple[EventType, str | bool, str | bool]]:
    """Quality changes between the previous present observation and this one, in table order."""
    if before.rel is not None and after.rel is not None and before.rel != after.rel:
        yield EventType.REL_CHANGED, before.rel.value, after.rel.value
    if (
        before.text is not None
        and link is not None
        and normalize_anchor(before.text) != normalize_anchor(link.text)
    ):
        yield EventType.ANCHOR_CHANGED, before.text, link.text
    if before.indexable is not None and after.indexable is not None and before.indexable != after.indexable:
        yield EventType.INDEXABILITY_CHANGED, before.indexable, after.indexable


def _miss(
    history: ClaimHistory, result: Result, seen: Observation, confirm_runs: int
) -> tuple[ClaimHistory, tuple[Event, ...]]:
    """A conclusive non-present observation: absent, gone or barred."""
    barred = seen is Observation.BARRED
    misses = 0
    if history.link_state in (State.LIVE, State.SUSPECT):
        misses = history.misses_in_a_row + 1
        goes_to = State.SUSPECT if misses < confirm_runs else State.BLOCKED if barred else State.LOST
    else:
        goes_to = State.BLOCKED if barred else State.LOST if history.ever_live else State.NOT_FOUND
    after = replace(
        history,
        state=goes_to,
        state_before_invalid=None,
        misses_in_a_row=misses if goes_to is State.SUSPECT else 0,
        inconclusive_in_a_row=0,
    )
    kind = _departure(history.link_state, goes_to)
    if kind is None:
        return after, ()
    reason = None
    if kind is EventType.LOST:
        reason = LossReason.PAGE_GONE if seen is Observation.GONE else LossReason.LINK_REMOVED
    return after, (_event(result, after, kind, history.state, reason=reason),)


def _departure(before: State, after: State) -> EventType | None:
    """The one state event of a move on a non-present observation (see the module docstring)."""
    if after is before or after is State.SUSPECT:
        return None
    if after is State.LOST:
        return EventType.LOST
    if after is State.BLOCKED:
        return EventType.BLOCKED
    if before is State.BLOCKED:
        return EventType.UNBLOCKED
    return EventType.NOT_FOUND if before is State.NEW else None


def _event(
    result: Result,
    after: ClaimHistory,
    kind: EventType,
    old_state: State,
    *,
    reason: LossReason | None = None,
    old: str | bool | None = None,
    new: str | bool | None = None,
) -> Event:
    return Event(
        run_id=result.run_id,
        claim_id=result.claim_id,
        source_url=result.source_url,
        target_url=result.target_url,
        tags=dict(result.tags),
        event=kind,
        old_state=old_state,
        new_state=after.state,
        reason=reason,
        old=old,
        new=new,
        checked_at=result.checked_at,
        last_seen_run=after.last_seen_run,
    )


def _value(member: StrEnum | None) -> str | None:
    return member.value if member is not None else None
