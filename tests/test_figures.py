"""Report figures (section 10): every figure of a small run against numbers computed by hand."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from crawler.core.anchors import AnchorClass
from crawler.core.figures import Accumulator, ClaimRow, Figures, RunMeta, RunPoint, TagFigures, is_number
from crawler.core.history import Event, EventType, LossReason, State
from crawler.models import Flag, Link, Region, Result, Status

RUN = RunMeta("r2", "2024-02-01T00:00:00Z", "2024-02-01T01:00:00Z", "finished", {"delay": 1.0})
TARGET = "https://www.acme.com/"


def row(claim_id: str, status: Status, state: str, source: str, **fields: Any) -> ClaimRow:
    return ClaimRow(claim_id, source, TARGET, status, State(state), **fields)


def event(claim_id: str, kind: str, **fields: Any) -> Event:
    """An event of run r2 with only what the figures read set."""
    values: dict[str, Any] = {
        "run_id": "r2",
        "claim_id": claim_id,
        "source_url": "https://a.org/",
        "target_url": TARGET,
        "tags": {},
        "event": EventType(kind),
        "old_state": State.LIVE,
        "new_state": State.LIVE,
        "reason": None,
        "old": None,
        "new": None,
        "checked_at": "2024-02-01T00:30:00Z",
        "last_seen_run": None,
    }
    return Event(**(values | fields))


def found(claim_id: str, status: Status, source: str, text: str, **fields: Any) -> ClaimRow:
    fields.setdefault("indexable", True)
    return row(claim_id, status, "live", source, link_text=text, **fields)


# Eleven claims; the comments give what each one counts for.
ROWS = (
    # verified, followed, branded ("acme"), example.com
    found("c1", Status.VERIFIED, "https://blog.example.com/a", "Acme", tags={"vendor": "v1", "price": "10"}),
    # verified, followed, exact, example.com again
    found(
        "c2",
        Status.VERIFIED,
        "https://news.example.com/b",
        "running shoes",
        expected_anchor="Running shoes",
        tags={"vendor": "v1", "price": "20"},
    ),
    # nofollow by rel: not followed, generic
    found(
        "c3",
        Status.NOFOLLOW,
        "https://forum.other.org/t",
        "Click here",
        link_rel=("nofollow",),
        flags=(Flag.NOFOLLOW,),
        tags={"vendor": "v2", "price": "5"},
    ),
    # not indexable but followed, naked URL
    found(
        "c4",
        Status.NOT_INDEXABLE,
        "https://site.co.uk/p",
        "https://acme.com",
        indexable=False,
        flags=(Flag.NOINDEX,),
        tags={"vendor": "v2", "price": "7.5"},
    ),
    # page_nofollow: not followed although rel is empty; image
    found(
        "c5",
        Status.NOFOLLOW,
        "https://x.site.co.uk/q",
        "Acme logo",
        link_image=True,
        flags=(Flag.PAGE_NOFOLLOW,),
        tags={"vendor": "v3", "price": "1"},
    ),
    # missing but still live (suspect): a referring domain, a failure
    row("c6", Status.MISSING, "suspect", "https://gone.net/x", tags={"vendor": "v1", "price": "30"}),
    row("c7", Status.MISSING, "lost", "https://lost.net/y", tags={"vendor": "v2", "price": "40"}),
    row(
        "c8",
        Status.PAGE_ERROR,
        "not_found",
        "https://err.net/z",
        reason="http_404",
        tags={"vendor": "v3", "price": "2.5"},
    ),
    row("c9", Status.UNREACHABLE, "new", "https://down.net/", reason="timeout", tags={"price": "100"}),
    row("c10", Status.INVALID, "invalid", "https://bad.net/", reason="row 10: target_url: missing"),
    # verified, followed ("external" is no nofollow token), same normalised anchor as c2
    found(
        "c11",
        Status.VERIFIED,
        "https://www.another.org/z",
        "Running  Shoes!",
        link_rel=("external",),
        expected_anchor="running shoes",
        tags={"vendor": "v1"},
    ),
)
EVENTS = (
    event("c11", "found"),
    event("c7", "lost", reason=LossReason.LINK_REMOVED, tags={"vendor": "v2", "price": "40"}),
    event("c3", "recovered"),
    event("c1", "rel_changed", old="nofollow", new="follow"),
    event("c2", "anchor_changed", old="shoes", new="running shoes"),
)


def figures_of(
    rows: tuple[ClaimRow, ...] = ROWS, events: tuple[Event, ...] = EVENTS, **options: Any
) -> Figures:
    accumulator = Accumulator(RUN, **options)
    accumulator.add_run(RunPoint("r1", "2024-01-01T00:00:00Z", live=5, referring_domains=4, found=5))
    for event in events:
        accumulator.add_event(event)
    for claim in rows:
        accumulator.add(claim)
    return accumulator.result()


@pytest.fixture(scope="module")
def figures() -> Figures:
    return figures_of()


class TestHeadlineFigures:
    def test_claims_live_verified(self, figures: Figures) -> None:
        """Claims count every row; live counts states live and suspect; verified share is over all claims."""
        assert (figures.claims, figures.live, figures.verified) == (11, 7, 3)
        assert figures.verified_share == pytest.approx(3 / 11)

    def test_lost_since_previous_run_counts_lost_events(self, figures: Figures) -> None:
        """Lost since the previous run is the number of the run's `lost` events, not of lost states."""
        assert figures.lost == 1

    def test_followed_share_over_present_results(self, figures: Figures) -> None:
        """Followed: present, rel kind follow and no page_nofollow (c1, c2, c4, c11 of six present)."""
        assert (figures.present, figures.followed) == (6, 4)
        assert figures.followed_share == pytest.approx(4 / 6)

    def test_indexable_share_over_present_results(self, figures: Figures) -> None:
        """Indexable share: present results whose page is indexable (all but c4) over present results."""
        assert figures.indexable == 5
        assert figures.indexable_share == pytest.approx(5 / 6)

    def test_empty_run_has_no_shares(self) -> None:
        """With nothing to divide by, shares are None rather than zero or an error."""
        empty = figures_of((), ())
        assert (empty.claims, empty.verified_share, empty.followed_share, empty.indexable_share) == (
            0,
            None,
            None,
            None,
        )


class TestDomains:
    def test_referring_domains_of_live_claims(self, figures: Figures) -> None:
        """Registrable domains of live claims' sources: subdomains fold, suspect counts, others don't."""
        assert figures.referring_domains == 5

    def test_top_domains_with_live_and_followed(self, figures: Figures) -> None:
        """Top domains by live links, then followed links, then name."""
        top = [(d.domain, d.live, d.followed) for d in figures.top_domains]
        assert top == [
            ("example.com", 2, 2),
            ("site.co.uk", 2, 1),
            ("another.org", 1, 1),
            ("gone.net", 1, 0),
            ("other.org", 1, 0),
        ]

    def test_top_domains_capped(self) -> None:
        """At most `top` referring domains are listed, while all are counted."""
        rows = tuple(found(f"c{i}", Status.VERIFIED, f"https://d{i}.example{i}.com/", "x") for i in range(30))
        figures = figures_of(rows, (), top=20)
        assert (figures.referring_domains, len(figures.top_domains)) == (30, 20)


class TestCounts:
    def test_statuses_in_section_3_order(self, figures: Figures) -> None:
        """Every status is counted, zeros included, in the order of section 3."""
        assert list(figures.statuses.items()) == [
            (Status.INVALID, 1),
            (Status.BLOCKED, 0),
            (Status.UNREACHABLE, 1),
            (Status.PAGE_ERROR, 1),
            (Status.MISSING, 2),
            (Status.NOT_INDEXABLE, 1),
            (Status.NOFOLLOW, 2),
            (Status.VERIFIED, 3),
        ]

    def test_reasons_commonest_first_invalid_rows_as_one(self) -> None:
        """Results by reason, commonest first; every invalid row's reason counts as `invalid`."""
        rows = (
            row("a", Status.PAGE_ERROR, "new", "https://a.org/", reason="http_404"),
            row("b", Status.UNREACHABLE, "new", "https://b.org/", reason="timeout"),
            row("c", Status.PAGE_ERROR, "new", "https://c.org/", reason="http_404"),
            row("d", Status.INVALID, "invalid", "https://d.org/", reason="row 2: source_url: missing"),
            row("e", Status.INVALID, "invalid", "https://e.org/", reason="row 3: target_url: missing"),
            row("f", Status.VERIFIED, "live", "https://f.org/"),
        )
        found = figures_of(rows, ())
        assert list(found.reasons.items()) == [("http_404", 2), ("invalid", 2), ("timeout", 1)]
        assert found.to_json()["reasons"] == {"http_404": 2, "invalid": 2, "timeout": 1}

    def test_flags(self, figures: Figures) -> None:
        """Each flag counts the claims carrying it."""
        assert {flag: n for flag, n in figures.flags.items() if n} == {
            Flag.NOFOLLOW: 1,
            Flag.NOINDEX: 1,
            Flag.PAGE_NOFOLLOW: 1,
        }

    def test_by_state(self, figures: Figures) -> None:
        """Claims by state after the run, every state listed in section 9's order."""
        assert list(figures.by_state.items()) == [
            (State.NEW, 1),
            (State.LIVE, 6),
            (State.SUSPECT, 1),
            (State.LOST, 1),
            (State.NOT_FOUND, 1),
            (State.BLOCKED, 0),
            (State.INVALID, 1),
        ]

    def test_anchor_classes_of_present_results(self, figures: Figures) -> None:
        """Anchor classes count the reported link of each present result, and only those."""
        assert dict(figures.anchor_classes) == {
            AnchorClass.EMPTY: 0,
            AnchorClass.IMAGE: 1,
            AnchorClass.EXACT: 2,
            AnchorClass.NAKED_URL: 1,
            AnchorClass.BRANDED: 1,
            AnchorClass.PARTIAL: 0,
            AnchorClass.GENERIC: 1,
            AnchorClass.OTHER: 0,
        }

    def test_brand_terms_reach_the_classes(self) -> None:
        """The accumulator's brand terms make an anchor branded."""
        rows = (found("c1", Status.VERIFIED, "https://a.org/", "Zappo deals"),)
        assert figures_of(rows, (), brand_terms=["zappo"]).anchor_classes[AnchorClass.BRANDED] == 1

    def test_top_anchors(self, figures: Figures) -> None:
        """Anchors grouped by normalised text, by count then referring domains then text."""
        top = [(a.text, a.count, a.referring_domains) for a in figures.top_anchors]
        assert top == [
            ("running shoes", 2, 2),
            ("acme", 1, 1),
            ("acme logo", 1, 1),
            ("click here", 1, 1),
            ("https acme com", 1, 1),
        ]

    def test_anchor_referring_domains_are_distinct(self) -> None:
        """An anchor's referring domains count each registrable domain once."""
        rows = (
            found("c1", Status.VERIFIED, "https://a.example.com/", "Go"),
            found("c2", Status.VERIFIED, "https://b.example.com/", "go"),
            found("c3", Status.VERIFIED, "https://c.org/", "GO!"),
            found("c4", Status.VERIFIED, "https://a.example.com/2", "go"),
        )
        assert [(a.text, a.count, a.referring_domains) for a in figures_of(rows, ()).top_anchors] == [
            ("go", 4, 2)
        ]


class TestByTag:
    def test_rows_worst_first(self, figures: Figures) -> None:
        """Each value: claims, verified, failures (not present), lost events; highest failure rate first."""
        rows = figures.by_tag["vendor"]
        assert [(r.value, r.claims, r.verified, r.failed, r.lost) for r in rows] == [
            (None, 2, 0, 2, 0),
            ("v3", 2, 0, 1, 0),
            ("v2", 3, 0, 1, 1),
            ("v1", 4, 3, 1, 0),
        ]
        assert [r.failure_rate for r in rows] == pytest.approx([1.0, 0.5, 1 / 3, 0.25])
        assert rows[-1].verified_share == pytest.approx(0.75)

    def test_numeric_column_summed_over_failed_claims(self, figures: Figures) -> None:
        """A column of numbers (price) is summed per value over its failed claims, and over the run."""
        sums = {r.value: r.sums["price"] for r in figures.by_tag["vendor"]}
        assert sums == {None: Decimal(100), "v3": Decimal("2.5"), "v2": Decimal(40), "v1": Decimal(30)}
        assert figures.failed_sums == {"price": Decimal("172.5")}

    def test_column_with_a_word_is_not_numeric(self) -> None:
        """One value that is no plain number makes a column non-numeric: it is never summed."""
        rows = (
            row("c1", Status.MISSING, "not_found", "https://a.org/", tags={"vendor": "a", "price": "19.99"}),
            row("c2", Status.MISSING, "not_found", "https://b.org/", tags={"vendor": "a", "price": "$5"}),
        )
        figures = figures_of(rows, ())
        assert figures.failed_sums == {}
        assert all(not r.sums for r in figures.by_tag["vendor"])

    def test_decimal_sums_are_exact(self) -> None:
        """Sums are decimal: 0.1 + 0.2 is 0.3, and JSON gives integers for whole sums."""
        rows = (
            row(
                "c1", Status.MISSING, "not_found", "https://a.org/", tags={"v": "a", "price": "0.1", "n": "2"}
            ),
            row(
                "c2",
                Status.MISSING,
                "not_found",
                "https://b.org/",
                tags={"v": "a", "price": " .2 ", "n": "-1"},
            ),
        )
        out = figures_of(rows, ()).to_json()
        assert out["failed_sums"] == {"price": 0.3, "n": 1}
        assert isinstance(out["failed_sums"]["n"], int)

    def test_ties_on_failure_rate_put_more_claims_first(self) -> None:
        """Equal failure rates are ordered by number of claims, larger first."""
        rows = (
            row("c1", Status.MISSING, "not_found", "https://a.org/", tags={"v": "small"}),
            row("c2", Status.MISSING, "not_found", "https://b.org/", tags={"v": "big"}),
            row("c3", Status.MISSING, "not_found", "https://c.org/", tags={"v": "big"}),
        )
        assert [r.value for r in figures_of(rows, ()).by_tag["v"]] == ["big", "small"]

    def test_fifty_distinct_values_kept_fifty_one_dropped(self) -> None:
        """A column with 50 distinct values gets rows; one with 51 gets none."""
        rows = tuple(
            row(
                f"c{i}",
                Status.VERIFIED,
                "live",
                "https://a.org/",
                tags={"fifty": str(i % 50), "more": str(i)},
            )
            for i in range(51)
        )
        by_tag = figures_of(rows, ()).by_tag
        assert list(by_tag) == ["fifty"]
        assert len(by_tag["fifty"]) == 50

    def test_by_names_the_columns(self) -> None:
        """With `by`, exactly the named columns get rows, however many values they have."""
        rows = tuple(
            row(f"c{i}", Status.VERIFIED, "live", "https://a.org/", tags={"few": "x", "many": str(i)})
            for i in range(60)
        )
        by_tag = figures_of(rows, (), by=["many", "absent"]).by_tag
        assert list(by_tag) == ["many", "absent"]
        assert len(by_tag["many"]) == 60
        assert [(r.value, r.claims) for r in by_tag["absent"]] == [(None, 60)]

    def test_lost_event_before_its_claim(self) -> None:
        """A lost event counts for its tag value whatever the order events and rows arrive in."""
        accumulator = Accumulator(RUN)
        accumulator.add_event(event("c1", "lost", tags={"vendor": "a"}))
        accumulator.add(row("c1", Status.MISSING, "lost", "https://a.org/", tags={"vendor": "a"}))
        assert accumulator.result().by_tag["vendor"] == (TagFigures("a", 1, 0, 0, 1, {}),)


class TestRunsAndChanges:
    def test_series_ends_with_this_run(self, figures: Figures) -> None:
        """Earlier runs come as fed; the reported run's point is computed from its own rows and events."""
        assert figures.runs == (
            RunPoint("r1", "2024-01-01T00:00:00Z", 5, 4, 5, 0, 0),
            RunPoint("r2", "2024-02-01T00:00:00Z", live=7, referring_domains=5, found=1, lost=1, recovered=1),
        )

    def test_fed_point_of_this_run_is_replaced_in_place(self) -> None:
        """A fed point with the reported run's id keeps its place and takes the computed numbers."""
        accumulator = Accumulator(RUN)
        accumulator.add_run(RunPoint("r2", live=99))
        accumulator.add_run(RunPoint("r3"))
        assert [(p.run_id, p.live) for p in accumulator.result().runs] == [("r2", 0), ("r3", 0)]

    def test_event_counts_by_severity(self, figures: Figures) -> None:
        """Events are counted per type and listed by severity: losses first, finds last."""
        kinds = ["lost", "rel_changed", "anchor_changed", "recovered", "found"]
        assert {k: n for k, n in figures.event_counts.items() if n} == dict.fromkeys(kinds, 1)
        assert [e.event for e in figures.events] == kinds
        assert list(figures.event_counts)[:3] == [EventType.LOST, EventType.BLOCKED, EventType.UNREACHABLE]

    def test_events_capped(self) -> None:
        """At most `max_events` events are listed, losses first, and the rest counted."""
        events = (*(event(f"f{i}", "found") for i in range(8)), event("l", "lost"))
        figures = figures_of((), events, max_events=5)
        assert [e.claim_id for e in figures.events] == ["l", "f0", "f1", "f2", "f3"]
        assert figures.events_left_out == 4


class TestProblems:
    def test_every_claim_not_verified_in_status_order(self, figures: Figures) -> None:
        """Problems are the claims not verified, present ones included, grouped in section 3's order."""
        assert [p.claim_id for p in figures.problems] == ["c10", "c9", "c8", "c6", "c7", "c4", "c3", "c5"]
        assert sum(figures.problem_counts.values()) == 8
        assert Status.VERIFIED not in figures.problem_counts

    def test_cap_and_rest(self) -> None:
        """The list stops at the cap, earlier statuses first; the rest is counted."""
        figures = figures_of(max_problems=3)
        assert [p.claim_id for p in figures.problems] == ["c10", "c9", "c8"]
        assert figures.problems_left_out == 5

    def test_thousand_in_all(self) -> None:
        """By default at most 1,000 problems are listed, however they arrive."""
        missing = (row(f"m{i}", Status.MISSING, "not_found", "https://a.org/") for i in range(1500))
        invalid = (row(f"i{i}", Status.INVALID, "invalid", "https://b.org/") for i in range(10))
        accumulator = Accumulator(RUN)
        for claim in (*missing, *invalid):
            accumulator.add(claim)
        figures = accumulator.result()
        assert len(figures.problems) == 1000
        assert [p.claim_id for p in figures.problems[:11]] == [*(f"i{i}" for i in range(10)), "m0"]
        assert figures.problems_left_out == 510


class TestJson:
    def test_contract_keys(self, figures: Figures) -> None:
        """The JSON holds the contract's keys, referring_domains as an integer, and serialises."""
        out = json.loads(json.dumps(figures.to_json()))
        for key in ("claims", "live", "referring_domains", "statuses", "flags", "anchor_classes"):
            assert key in out
        for key in ("by_state", "by_tag", "runs"):
            assert key in out
        assert out["referring_domains"] == 5
        assert out["statuses"]["missing"] == 2
        assert out["anchor_classes"]["exact"] == 2
        assert out["by_state"]["suspect"] == 1
        assert out["lost_since_previous_run"] == 1
        assert out["by_tag"]["vendor"][0] == {
            "value": None,
            "claims": 2,
            "verified": 0,
            "verified_share": 0.0,
            "failed": 2,
            "failure_rate": 1.0,
            "lost": 0,
            "sums": {"price": 100},
        }
        assert out["runs"][-1] == {
            "run_id": "r2",
            "started_at": "2024-02-01T00:00:00Z",
            "live": 7,
            "referring_domains": 5,
            "found": 1,
            "lost": 1,
            "recovered": 1,
        }
        assert out["problems"]["left_out"] == 0
        assert out["problems"]["claims"][0]["reason"] == "row 10: target_url: missing"


class TestHelpers:
    @pytest.mark.parametrize(
        ("value", "expected"), [("19.99", True), ("-3", True), (".5", True), ("1,000", False)]
    )
    def test_is_number(self, value: str, expected: bool) -> None:
        """Plain decimal numbers count as numbers; separators and signs of currency do not."""
        assert is_number(value) is expected

    def test_row_of_a_result(self) -> None:
        """A stored result and its claim's expected anchor make a row; no state reads as new."""
        link = Link("/x", TARGET, "Acme", ("nofollow",), False, Region.MAIN, image=True)
        result = Result(
            "c1",
            "https://a.org/",
            TARGET,
            {"vendor": "v"},
            "r2",
            "t",
            Status.NOFOLLOW,
            link=link,
            state="live",
        )
        built = ClaimRow.of(result, expected_anchor="acme")
        assert (built.state, built.link_text, built.link_rel, built.link_image) == (
            State.LIVE,
            "Acme",
            ("nofollow",),
            True,
        )
        assert (built.expected_anchor, built.tags) == ("acme", {"vendor": "v"})
        assert ClaimRow.of(replace(result, state=None, link=None)).state is State.NEW
