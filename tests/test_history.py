"""The monitoring fold (SPEC section 9): observations, states, events, and their storage form.

Results are written as one-letter codes so that a row of the table reads like a claim's story:
P present, A absent, G gone, B barred, X unreachable, and the rest in `RESULTS` below.
"""

from __future__ import annotations

import ast
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crawler.core.history
from crawler.core.history import (
    ClaimHistory,
    Event,
    EventType,
    LossReason,
    Observation,
    RelKind,
    State,
    fold,
    normalize_anchor,
    observe,
    on_import,
    rel_kind,
    step,
)
from crawler.models import Flag, Link, Region, Result, Status

SOURCE = "https://blog.example.org/2024/best-running-shoes"
TARGET = "https://shop.example.com/shoes"
TEXT = "Best running shoes"
# The lead adds Flag.RENDER_FAILED; until then the flag's string value works the same.
RENDER_FAILED = cast(Flag, Flag.__members__.get("RENDER_FAILED", "render_failed"))


def link(text: str = TEXT, rel: tuple[str, ...] = ()) -> Link:
    return Link(href=TARGET, url=TARGET, text=text, rel=rel, hidden=False, region=Region.MAIN)


def result(
    status: Status,
    reason: str | None = None,
    *,
    flags: tuple[Flag, ...] = (),
    found: Link | None = None,
    indexable: bool | None = None,
) -> Result:
    return Result(
        claim_id="c1",
        source_url=SOURCE,
        target_url=TARGET,
        tags={"vendor": "acme", "price": "120"},
        run_id="",
        checked_at="",
        status=status,
        reason=reason,
        flags=flags,
        link=found,
        indexable=indexable,
    )


RESULTS = {
    "P": result(Status.VERIFIED, found=link(), indexable=True),
    "N": result(Status.NOFOLLOW, found=link(rel=("nofollow",)), indexable=True),
    "S": result(Status.NOFOLLOW, found=link(rel=("ugc", "sponsored")), indexable=True),
    "T": result(Status.VERIFIED, found=link("Cheap trainers"), indexable=True),
    "Q": result(Status.NOT_INDEXABLE, found=link(), indexable=False),
    "A": result(Status.MISSING, indexable=True),
    "G": result(Status.PAGE_ERROR, "http_404"),
    "H": result(Status.PAGE_ERROR, "http_410"),
    "B": result(Status.BLOCKED, "robots_disallowed"),
    "F": result(Status.BLOCKED, "forbidden_address"),
    "X": result(Status.UNREACHABLE, "timeout"),
    "E": result(Status.PAGE_ERROR, "http_503"),
    "U": result(Status.BLOCKED, "robots_unavailable"),
    "C": result(Status.MISSING, flags=(Flag.BOT_CHALLENGE,)),
    "R": result(Status.MISSING, flags=(RENDER_FAILED,)),
    "I": result(Status.INVALID, "row 3: target_url: missing"),
}
CONCLUSIVE = "PNSTQAGHBFI"
INCONCLUSIVE = "XEUCR"


def story(codes: str) -> list[Result]:
    """The results of one claim over runs r1, r2, ..., one code a run (spaces ignored)."""
    letters = codes.replace(" ", "")
    return [
        replace(RESULTS[code], run_id=f"r{run}", checked_at=f"2026-01-{run:02d}T06:00:00Z")
        for run, code in enumerate(letters, start=1)
    ]


def walk(codes: str, **options: int) -> list[tuple[ClaimHistory, tuple[Event, ...]]]:
    """Each step's history and events, stepping one result at a time."""
    history, steps = ClaimHistory(), []
    for each in story(codes):
        history, events = step(history, each, **options)
        steps.append((history, events))
    return steps


def told(codes: str, **options: int) -> list[str]:
    """Each run as "state" or "state event,event", the way the table below is written."""
    return [
        " ".join([history.state.value, ",".join(event.event.value for event in events)]).strip()
        for history, events in walk(codes, **options)
    ]


class TestObserve:
    """A result read as an observation."""

    @pytest.mark.parametrize(
        ("code", "expected"),
        [
            ("P", Observation.PRESENT),
            ("N", Observation.PRESENT),
            ("Q", Observation.PRESENT),
            ("A", Observation.ABSENT),
            ("G", Observation.GONE),
            ("H", Observation.GONE),
            ("B", Observation.BARRED),
            ("F", Observation.BARRED),
            ("I", Observation.INVALID),
            ("X", Observation.INCONCLUSIVE),
            ("E", Observation.INCONCLUSIVE),
            ("U", Observation.INCONCLUSIVE),
            ("C", Observation.INCONCLUSIVE),
            ("R", Observation.INCONCLUSIVE),
        ],
    )
    def test_each_kind_of_result(self, code: str, expected: Observation) -> None:
        """Each status, reason and flag of section 9's list gives its observation."""
        assert observe(RESULTS[code]) is expected

    def test_challenge_on_a_404_is_inconclusive(self) -> None:
        """A challenge page served with 404 is never evidence that the page is gone."""
        assert observe(result(Status.PAGE_ERROR, "http_404", flags=(Flag.BOT_CHALLENGE,))) is (
            Observation.INCONCLUSIVE
        )

    def test_other_flags_keep_a_miss_absent(self) -> None:
        """A `missing` flagged `wrong_target` or `unlinked_mention` is still absent."""
        flags = (Flag.WRONG_TARGET, Flag.UNLINKED_MENTION)
        assert observe(result(Status.MISSING, flags=flags)) is Observation.ABSENT


TRANSITIONS = [
    ("first present is found", "P", {}, "live found"),
    ("first absent is not found", "A", {}, "not_found not_found"),
    ("first 404 is not found", "G", {}, "not_found not_found"),
    ("first barred is blocked", "B", {}, "blocked blocked"),
    ("forbidden address is barred", "F", {}, "blocked blocked"),
    ("not found then present is found", "A P", {}, "not_found not_found | live found"),
    ("not found stays quietly", "A G A", {}, "not_found not_found | not_found | not_found"),
    ("a miss then a recovery reports nothing", "P A P", {}, "live found | suspect | live"),
    ("two misses confirm a loss", "P A A", {}, "live found | suspect | lost lost"),
    ("an outage between two misses", "P A X A", {}, "live found | suspect | suspect | lost lost"),
    ("outages never advance a loss", "P A X X", {}, "live found | suspect | suspect | suspect"),
    ("a challenge page is inconclusive", "P C C A", {}, "live found | live | live | suspect"),
    ("a failed render is inconclusive", "P R R A", {}, "live found | live | live | suspect"),
    ("a server error is inconclusive", "P E A E", {}, "live found | live | suspect | suspect"),
    ("robots unavailable is inconclusive", "P U U", {}, "live found | live | live"),
    ("404 twice is lost", "P G G", {}, "live found | suspect | lost lost"),
    ("410 twice is lost", "P H H", {}, "live found | suspect | lost lost"),
    ("absent then gone is lost", "P A G", {}, "live found | suspect | lost lost"),
    ("blocked after confirm", "P B B", {}, "live found | suspect | blocked blocked"),
    ("a row ending barred is blocked", "P A B", {}, "live found | suspect | blocked blocked"),
    ("a row ending absent is lost", "P B A", {}, "live found | suspect | lost lost"),
    ("blocked to live is unblocked", "B P", {}, "blocked blocked | live unblocked"),
    ("blocked to not found", "B A", {}, "blocked blocked | not_found unblocked"),
    ("lost to live is recovered", "P A A P", {}, "live found | suspect | lost lost | live recovered"),
    ("lost to blocked at once", "P A A B", {}, "live found | suspect | lost lost | blocked blocked"),
    ("blocked to lost at once", "P B B A", {}, "live found | suspect | blocked blocked | lost lost"),
    ("lost stays quietly", "P A A G A", {}, "live found | suspect | lost lost | lost | lost"),
    ("not found to blocked", "A B", {}, "not_found not_found | blocked blocked"),
    ("blocked stays quietly", "B F B", {}, "blocked blocked | blocked | blocked"),
    ("inconclusive from new stays new", "X E", {}, "new | new"),
    ("invalid at once from live", "P I", {}, "live found | invalid"),
    ("invalid from the start", "I", {}, "invalid"),
    ("invalid then present is found", "I P", {}, "invalid | live found"),
    ("invalid then absent is not found", "I A", {}, "invalid | not_found not_found"),
    ("live through invalid reports nothing", "P I P", {}, "live found | invalid | live"),
    ("invalid keeps the row of misses", "P A I A", {}, "live found | suspect | invalid | lost lost"),
    ("invalid from live needs a row", "P I A P", {}, "live found | invalid | suspect | live"),
    (
        "lost through invalid is recovered",
        "P A A I P",
        {},
        "live found | suspect | lost lost | invalid | live recovered",
    ),
    ("inconclusive keeps invalid", "P I X", {}, "live found | invalid | invalid"),
    ("invalid then barred is blocked", "I B", {}, "invalid | blocked blocked"),
    ("blocked through invalid is unblocked", "B I P", {}, "blocked blocked | invalid | live unblocked"),
    ("unreachable on the third", "X X X", {}, "new | new | new unreachable"),
    ("unreachable once per row", "P X X X X", {}, "live found | live | live | live unreachable | live"),
    (
        "a new row reports again",
        "XXX P XXX",
        {},
        "new | new | new unreachable | live found | live | live | live unreachable",
    ),
    ("a miss breaks the row", "P X X A X X", {}, "live found | live | live | suspect | suspect | suspect"),
    (
        "unreachable while suspect",
        "P A X X X",
        {},
        "live found | suspect | suspect | suspect | suspect unreachable",
    ),
    ("invalid does not break the row", "X X I X", {}, "new | new | invalid | invalid unreachable"),
    ("confirm_runs 1 loses at once", "P A", {"confirm_runs": 1}, "live found | lost lost"),
    ("confirm_runs 1 blocks at once", "P B", {"confirm_runs": 1}, "live found | blocked blocked"),
    (
        "confirm_runs 3 needs three",
        "P A A A",
        {"confirm_runs": 3},
        "live found | suspect | suspect | lost lost",
    ),
    ("confirm_runs 3 forgives two", "P A G P", {"confirm_runs": 3}, "live found | suspect | suspect | live"),
    ("unreachable_runs 1", "P X X", {"unreachable_runs": 1}, "live found | live unreachable | live"),
    ("unreachable_runs 5", "XXXXX", {"unreachable_runs": 5}, "new | new | new | new | new unreachable"),
]


class TestTransitions:
    """Every transition of section 9, one claim's story a row."""

    @pytest.mark.parametrize(
        ("codes", "options", "expected"),
        [case[1:] for case in TRANSITIONS],
        ids=[case[0] for case in TRANSITIONS],
    )
    def test_table(self, codes: str, options: dict[str, int], expected: str) -> None:
        """The story gives these states and events, run by run."""
        assert " | ".join(told(codes, **options)) == expected

    @pytest.mark.parametrize(("codes", "reason"), [("P A A", "link_removed"), ("P A G", "page_gone")])
    def test_loss_reason_is_the_last_observation(self, codes: str, reason: str) -> None:
        """A confirmed loss takes its reason from the observation that completed the row."""
        (lost,) = walk(codes)[-1][1]
        assert lost.reason == reason
        assert lost.to_dict()["reason"] == reason

    def test_page_gone_at_once_from_blocked(self) -> None:
        """A 404 after blocked is lost at once with reason page_gone."""
        (lost,) = walk("P B B H")[-1][1]
        assert (lost.event, lost.old_state, lost.reason) == (
            EventType.LOST,
            State.BLOCKED,
            LossReason.PAGE_GONE,
        )

    @pytest.mark.parametrize("codes", ["P A A", "P B B", "P A A P", "B P", "A", "B A"])
    def test_state_events_name_both_states(self, codes: str) -> None:
        """A state event's old_state is the state before the result and new_state the one after."""
        steps = walk(codes)
        before = steps[-2][0].state if len(steps) > 1 else State.NEW
        (event,) = steps[-1][1]
        assert (event.old_state, event.new_state) == (before, steps[-1][0].state)

    def test_suspect_then_lost_names_suspect(self) -> None:
        """The loss that completes a row of two leaves suspect, not live."""
        (event,) = walk("P A A")[-1][1]
        assert (event.old_state, event.new_state) == (State.SUSPECT, State.LOST)

    def test_leaving_invalid_names_invalid(self) -> None:
        """An event on the result after an invalid one has invalid as its old_state."""
        (event,) = walk("I P")[-1][1]
        assert (event.event, event.old_state, event.new_state) == (EventType.FOUND, State.INVALID, State.LIVE)

    def test_unreachable_keeps_the_state(self) -> None:
        """An unreachable event changes no state: old_state and new_state are the claim's state."""
        (event,) = walk("P A X X X")[-1][1]
        assert (event.old_state, event.new_state, event.reason) == (State.SUSPECT, State.SUSPECT, None)

    @pytest.mark.parametrize(
        "options", [{"confirm_runs": 0}, {"unreachable_runs": 0}, {"confirm_runs": True}]
    )
    def test_settings_below_one_are_refused(self, options: dict[str, int]) -> None:
        """A count of runs below one is a ValueError, not a fold that never confirms."""
        with pytest.raises(ValueError, match=next(iter(options))):
            step(ClaimHistory(), story("P")[0], **options)


class TestQualityChanges:
    """rel_changed, anchor_changed and indexability_changed, with their old and new values."""

    def changes(self, codes: str) -> list[tuple[str, object, object]]:
        return [(event.event.value, event.old, event.new) for event in walk(codes)[-1][1]]

    def test_rel_changed(self) -> None:
        """A followed link that turns nofollow reports both kinds as strings."""
        assert self.changes("P N") == [("rel_changed", "follow", "nofollow")]

    def test_rel_kind_precedence(self) -> None:
        """The reported kind is the link's token of highest precedence: sponsored > ugc > nofollow."""
        assert self.changes("N S") == [("rel_changed", "nofollow", "sponsored")]

    def test_anchor_changed(self) -> None:
        """Another anchor text reports both texts as the links carry them."""
        assert self.changes("P T") == [("anchor_changed", TEXT, "Cheap trainers")]

    def test_anchor_compared_after_normalisation(self) -> None:
        """Case, punctuation and spacing alone are no change of anchor."""
        reworded = replace(RESULTS["P"], link=link("  BEST running-shoes! "))
        history, _ = fold(story("P"))
        assert step(history, reworded)[1] == ()

    def test_indexability_changed(self) -> None:
        """A page that turns noindex reports the two values as booleans."""
        changes = self.changes("P Q")
        assert changes == [("indexability_changed", True, False)]
        assert all(isinstance(value, bool) for value in changes[0][1:])

    def test_indexability_back(self) -> None:
        """A page indexable again reports false then true."""
        assert self.changes("Q P") == [("indexability_changed", False, True)]

    def test_several_changes_in_table_order(self) -> None:
        """Changes of rel, anchor and indexability in one run come in the table's order."""
        changed = replace(
            RESULTS["Q"], status=Status.NOT_INDEXABLE, link=link("Cheap trainers", ("sponsored",))
        )
        history, _ = fold(story("P"))
        _, events = step(history, changed)
        assert [event.event for event in events] == [
            EventType.REL_CHANGED,
            EventType.ANCHOR_CHANGED,
            EventType.INDEXABILITY_CHANGED,
        ]

    def test_across_an_outage(self) -> None:
        """Consecutive means among present observations: an outage between them hides nothing."""
        assert self.changes("P X E N") == [("rel_changed", "follow", "nofollow")]

    def test_across_a_miss(self) -> None:
        """A change seen when the suspect link comes back is reported, with no state event."""
        assert self.changes("P A N") == [("rel_changed", "follow", "nofollow")]

    def test_across_a_loss(self) -> None:
        """A lost link that comes back changed reports recovered, then the change, both in live."""
        events = walk("P A A T")[-1][1]
        assert [(e.event, e.old_state, e.new_state) for e in events] == [
            (EventType.RECOVERED, State.LOST, State.LIVE),
            (EventType.ANCHOR_CHANGED, State.LIVE, State.LIVE),
        ]

    def test_no_change_no_event(self) -> None:
        """The same link run after run reports nothing after found."""
        assert told("P P P") == ["live found", "live", "live"]

    def test_no_comparison_after_a_restart(self) -> None:
        """After the claim's URLs change, the first present observation compares with nothing."""
        history, _ = fold(story("P"))
        moved = replace(RESULTS["N"], target_url=TARGET + "/new", run_id="r2")
        assert [event.event for event in step(history, moved)[1]] == [EventType.FOUND]


class TestRelKind:
    """A link's rel kind."""

    @pytest.mark.parametrize(
        ("rel", "kind"),
        [
            ((), RelKind.FOLLOW),
            (("noopener", "noreferrer"), RelKind.FOLLOW),
            (("nofollow",), RelKind.NOFOLLOW),
            (("NoFollow",), RelKind.NOFOLLOW),
            (("ugc", "nofollow"), RelKind.UGC),
            (("nofollow", "ugc", "sponsored"), RelKind.SPONSORED),
        ],
    )
    def test_kind(self, rel: tuple[str, ...], kind: RelKind) -> None:
        """follow without nofollow/sponsored/ugc, else the token of highest precedence."""
        assert rel_kind(rel) is kind


class TestNormalizeAnchor:
    """The anchor normalisation of section 1."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("  Best\u00a0Running \n Shoes! ", "best running shoes"),
            ("\uff22\uff45\uff53\uff54", "best"),
            ("Straße", "strasse"),
            ("rock'n'roll", "rock n roll"),
            ("«Chaussures» — pas chères…", "chaussures pas chères"),
            ("C++ & C#", "c++ c"),
            ("", ""),
            ("...", ""),
        ],
    )
    def test_examples(self, text: str, expected: str) -> None:
        """NFKC, case folding, punctuation as spaces, whitespace collapsed."""
        assert normalize_anchor(text) == expected

    @settings(max_examples=300)
    @given(st.text())
    def test_idempotent(self, text: str) -> None:
        """Normalising a normalised text changes nothing."""
        once = normalize_anchor(text)
        assert normalize_anchor(once) == once


class TestEvent:
    """An event as the contract's JSON object."""

    def test_fields_in_order(self) -> None:
        """to_dict gives exactly section 9's fields, in its order, and JSON can carry it."""
        (lost,) = walk("P A G")[-1][1]
        data = lost.to_dict()
        assert list(data) == [
            "run_id", "claim_id", "source_url", "target_url", "tags", "event", "old_state",
            "new_state", "reason", "old", "new", "checked_at", "last_seen_run",
        ]  # fmt: skip
        assert data == {
            "run_id": "r3",
            "claim_id": "c1",
            "source_url": SOURCE,
            "target_url": TARGET,
            "tags": {"vendor": "acme", "price": "120"},
            "event": "lost",
            "old_state": "suspect",
            "new_state": "lost",
            "reason": "page_gone",
            "old": None,
            "new": None,
            "checked_at": "2026-01-03T06:00:00Z",
            "last_seen_run": "r1",
        }
        assert json.loads(json.dumps(data)) == data

    @pytest.mark.parametrize(
        ("codes", "last_seen"),
        [("P", "r1"), ("A", None), ("P A A", "r1"), ("P X P A A P", "r6"), ("P N", "r2"), ("X X X", None)],
    )
    def test_last_seen_run(self, codes: str, last_seen: str | None) -> None:
        """last_seen_run is the last run, this one included, in which the link was present."""
        event = walk(codes)[-1][1][-1]
        assert event.last_seen_run == last_seen

    def test_round_trip(self) -> None:
        """from_dict rebuilds every event of a story from its JSON object."""
        _, events = fold(story("P N T Q A A P B B A X X X"))
        assert events
        assert [Event.from_dict(json.loads(json.dumps(event.to_dict()))) for event in events] == list(events)


class TestClaimHistory:
    """The history kept between runs, and its storage form."""

    def test_start(self) -> None:
        """A fresh history is new, never live, with nothing seen."""
        assert ClaimHistory().to_dict() == {
            "state": "new",
            "state_before_invalid": None,
            "ever_live": False,
            "misses_in_a_row": 0,
            "inconclusive_in_a_row": 0,
            "rel": None,
            "text": None,
            "indexable": None,
            "last_seen_run": None,
            "source_url": None,
            "target_url": None,
        }

    def test_from_empty_dict(self) -> None:
        """A stored row missing keys reads as the start."""
        assert ClaimHistory.from_dict({}) == ClaimHistory()

    @pytest.mark.parametrize(
        "changes",
        [
            {"state": State.LOST},
            {"state": State.INVALID},
            {"state_before_invalid": State.LIVE, "ever_live": True},
            {"state": State.INVALID, "state_before_invalid": State.INVALID},
            {"state": State.LIVE, "ever_live": True, "misses_in_a_row": 1},
            {"inconclusive_in_a_row": -1},
        ],
    )
    def test_impossible_histories_are_refused(self, changes: dict[str, object]) -> None:
        """A history no fold can reach raises ValueError when built or read back."""
        with pytest.raises(ValueError, match="impossible"):
            ClaimHistory.from_dict({**ClaimHistory().to_dict(), **changes})

    def test_bad_value_is_refused(self) -> None:
        """An unknown state in a stored row raises ValueError."""
        with pytest.raises(ValueError, match="gone"):
            ClaimHistory.from_dict({"state": "gone"})

    def test_records_what_the_next_step_needs(self) -> None:
        """After a story the history holds the last present link and the rows in progress."""
        history, _ = fold(story("P N A X"))
        assert (history.state, history.ever_live, history.misses_in_a_row) == (State.SUSPECT, True, 1)
        assert (history.inconclusive_in_a_row, history.rel, history.text) == (1, RelKind.NOFOLLOW, TEXT)
        assert (history.indexable, history.last_seen_run) == (True, "r2")
        assert (history.source_url, history.target_url) == (SOURCE, TARGET)


class TestUrlChanges:
    """A claim whose source_url or target_url changes starts again from new."""

    def test_on_import_with_new_urls(self) -> None:
        """Imported with another target, a lost claim is new again and forgets its past."""
        history, _ = fold(story("P A A"))
        assert on_import(history, SOURCE, TARGET + "/v2") == ClaimHistory(
            source_url=SOURCE, target_url=TARGET + "/v2"
        )

    def test_on_import_with_the_same_urls(self) -> None:
        """Imported again unchanged, the history is kept as it is."""
        history, _ = fold(story("P A A"))
        assert on_import(history, SOURCE, TARGET) is history

    def test_on_import_of_a_fresh_claim(self) -> None:
        """A claim never checked records its URLs and stays new."""
        assert on_import(ClaimHistory(), SOURCE, TARGET).to_dict()["source_url"] == SOURCE

    def test_step_restarts_on_new_urls(self) -> None:
        """A result for other URLs starts from new, so a rebuild restarts where the claim changed."""
        history, _ = fold(story("P A A"))
        moved = replace(RESULTS["A"], source_url=SOURCE + "?v=2", run_id="r4")
        after, events = step(history, moved)
        assert (after.state, [event.event for event in events]) == (State.NOT_FOUND, [EventType.NOT_FOUND])

    def test_invalid_results_never_restart(self) -> None:
        """An invalid row's URLs are whatever the broken row held: the link's history goes on."""
        history, _ = fold(story("P"))
        broken = replace(RESULTS["I"], target_url="", run_id="r2")
        history, _ = step(history, broken)
        after, events = step(history, replace(RESULTS["P"], run_id="r3"))
        assert (after.state, events) == (State.LIVE, ())


class TestFold:
    """A whole history folded from the start."""

    def test_fold_equals_repeated_step(self) -> None:
        """fold gives the last step's history and every step's events, in order."""
        codes = "P N A X A P B B P Q I A A"
        steps = walk(codes)
        assert fold(story(codes)) == (steps[-1][0], tuple(e for _, events in steps for e in events))

    def test_empty(self) -> None:
        """No results: the start and no events."""
        assert fold([]) == (ClaimHistory(), ())

    def test_one_claim_only(self) -> None:
        """Results of two claims are a caller's mistake, refused."""
        with pytest.raises(ValueError, match="one claim"):
            fold([*story("P"), replace(RESULTS["P"], claim_id="c2")])

    def test_options_reach_every_step(self) -> None:
        """fold passes confirm_runs and unreachable_runs on to step."""
        history, events = fold(story("P A X"), confirm_runs=1, unreachable_runs=1)
        assert history.state is State.LOST
        assert [event.event for event in events] == [EventType.FOUND, EventType.LOST, EventType.UNREACHABLE]


STORIES = st.text(alphabet=CONCLUSIVE + INCONCLUSIVE, max_size=14)
QUIET = {EventType.REL_CHANGED, EventType.ANCHOR_CHANGED, EventType.INDEXABILITY_CHANGED}


class TestProperties:
    """What holds for every story."""

    @settings(max_examples=150)
    @given(STORIES, st.sampled_from(INCONCLUSIVE), st.integers(1, 4))
    def test_inconclusive_never_changes_the_state(self, codes: str, code: str, confirm_runs: int) -> None:
        """An inconclusive observation leaves the state and the row of misses as they were."""
        history, _ = fold(story(codes), confirm_runs=confirm_runs)
        after, _ = step(history, replace(RESULTS[code], run_id="next"), confirm_runs=confirm_runs)
        assert (after.state, after.misses_in_a_row) == (history.state, history.misses_in_a_row)

    @settings(max_examples=150)
    @given(STORIES, st.integers(1, 4), st.integers(1, 4))
    def test_fold_is_deterministic_and_steps(self, codes: str, confirm_runs: int, unreachable: int) -> None:
        """Folding twice gives the same outcome, and the same as stepping one result at a time."""
        options = {"confirm_runs": confirm_runs, "unreachable_runs": unreachable}
        steps = walk(codes, **options)
        expected = (steps[-1][0] if steps else ClaimHistory(), tuple(e for _, ev in steps for e in ev))
        assert fold(story(codes), **options) == fold(story(codes), **options) == expected

    @settings(max_examples=150)
    @given(STORIES, st.integers(1, 4))
    def test_events_agree_with_states(self, codes: str, confirm_runs: int) -> None:
        """Each event names the states around it, a run has at most one state event, suspect none."""
        before = ClaimHistory()
        for after, events in walk(codes, confirm_runs=confirm_runs):
            moves = [event for event in events if event.event not in QUIET | {EventType.UNREACHABLE}]
            assert len(moves) <= 1
            assert not (moves and after.state is State.SUSPECT)
            for event in events:
                old = before.state if event in moves else after.state
                assert (event.old_state, event.new_state) == (old, after.state)
            before = after

    @settings(max_examples=150)
    @given(STORIES)
    def test_storage_round_trip(self, codes: str) -> None:
        """Every history a story reaches survives to_dict, JSON and from_dict unchanged."""
        for history, _ in walk(codes):
            assert ClaimHistory.from_dict(json.loads(json.dumps(history.to_dict()))) == history


class TestPurity:
    """The fold is a pure stage."""

    def test_imports_only_the_standard_library_and_models(self) -> None:
        """The module imports nothing but the standard library and crawler.models, and never awaits."""
        tree = ast.parse(Path(crawler.core.history.__file__).read_text(encoding="utf-8"))
        imported = {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
        assert outside == {"crawler.models"}
        assert "asyncio" not in imported
        assert not any(isinstance(node, ast.Await | ast.AsyncFunctionDef) for node in ast.walk(tree))
