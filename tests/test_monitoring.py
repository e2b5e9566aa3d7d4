"""Monitoring in both stores (section 9): results folded into states and events as they are
saved, in the same transaction; the fold rebuilt from the results alone; the reads behind
`changes`, `history`, `verify --states`, `evidence`, export and the report's series; and the
same claims over the same runs give the same answers on SQLite and PostgreSQL.

Every test runs on a real SQLite file and on a real PostgreSQL database (the `backend`
fixture); results are built by hand (no fetching), one helper per kind of observation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from postgres_cluster import Cluster
from stores import Backend, claim

from crawler.app import reporting
from crawler.core.figures import RunPoint
from crawler.core.history import Event, EventType, State
from crawler.errors import StoreError, UnknownClaimError
from crawler.models import Claim, Flag, InvalidClaim, Link, Region, Result, Status
from crawler.store.base import ClaimFields, Run, RunStore, Saved
from crawler.store.sqlite import Store

SETTINGS: dict[str, object] = {"confirm_runs": 2, "unreachable_runs": 3}
Make = Callable[[Claim | InvalidClaim, str], Result]


def outcome(status: Status, **fields: Any) -> Make:
    """A maker of results with `status` and `fields`, for any claim and run."""

    def make(item: Claim | InvalidClaim, run_id: str) -> Result:
        return Result(
            item.id,
            item.source_url,
            item.target_url,
            dict(item.tags),
            run_id,
            "2026-01-01T00:00:00Z",
            status,
            **fields,
        )

    return make


def link(text: str = "Best shoes", rel: tuple[str, ...] = ()) -> Link:
    return Link("/t", "https://target.example/", text, rel, False, Region.MAIN)


PRESENT = outcome(Status.VERIFIED, link=link(), indexable=True, http_status=200)
NOFOLLOW = outcome(Status.NOFOLLOW, link=link(rel=("nofollow",)), indexable=True, flags=(Flag.NOFOLLOW,))
RENAMED = outcome(Status.VERIFIED, link=link("Cheap trainers"), indexable=True)
NOINDEX = outcome(Status.NOT_INDEXABLE, link=link(), indexable=False, flags=(Flag.NOINDEX,))
ABSENT = outcome(Status.MISSING, http_status=200)
GONE = outcome(Status.PAGE_ERROR, reason="http_404", http_status=404)
SERVER_ERROR = outcome(Status.PAGE_ERROR, reason="http_500", http_status=500)
ROBOTS = outcome(Status.BLOCKED, reason="robots_disallowed")
CHALLENGE = outcome(Status.MISSING, http_status=403, flags=(Flag.BOT_CHALLENGE,))
DOWN = outcome(Status.UNREACHABLE, reason="connection_error")
INVALID = outcome(Status.INVALID, reason="row 9: source_url: not a URL")

SCENARIOS: dict[str, list[Make]] = {
    "removed": [PRESENT, ABSENT, ABSENT, ABSENT, ABSENT],
    "restored": [PRESENT, ABSENT, ABSENT, PRESENT, PRESENT],
    "rel_change": [PRESENT, PRESENT, NOFOLLOW, NOFOLLOW, PRESENT],
    "anchor_change": [PRESENT, RENAMED, RENAMED, ABSENT, RENAMED],
    "noindex": [PRESENT, NOINDEX, NOINDEX, PRESENT, PRESENT],
    "gone": [PRESENT, GONE, GONE, GONE, PRESENT],
    "outage": [PRESENT, SERVER_ERROR, SERVER_ERROR, SERVER_ERROR, PRESENT],
    "robots": [PRESENT, ROBOTS, ROBOTS, PRESENT, ROBOTS],
    "challenge": [PRESENT, CHALLENGE, ABSENT, CHALLENGE, ABSENT],
    "never_there": [ABSENT, GONE, PRESENT, DOWN, DOWN],
}


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[RunStore]:
    async with backend.open() as opened:
        yield opened


async def one_run(
    store: RunStore,
    made: Sequence[tuple[Claim | InvalidClaim, Make]],
    settings: dict[str, object] | None = None,
) -> Run:
    """A fresh run over the claims of `made`, each decided as its maker says, then finished."""
    await next_millisecond()
    run = await store.begin_run(settings or SETTINGS, fresh=True)
    await store.add_claims(run, [item for item, _ in made])
    await store.save([make(item, run.id) for item, make in made])
    await next_millisecond()
    await store.finish_run(run)
    return run


async def next_millisecond() -> None:
    """Wait for the wall clock's next millisecond. Runs' times are stored to the millisecond, and
    `answers` names each time by the run and the end it belongs to: a run started in the
    millisecond the last one finished (or finished in the one it started) would give one time two
    names, and SQLite, being faster, more often than PostgreSQL (one full test run in ten)."""
    await asyncio.sleep((1_000_000 - time.time_ns() % 1_000_000) / 1e9 + 0.0001)


async def scenario_runs(store: RunStore) -> tuple[dict[str, Claim], list[Run]]:
    """Five runs over one claim per scenario, each claim taking its scenario's results in turn."""
    claims = {name: claim(n, tags={"case": name}) for n, name in enumerate(SCENARIOS)}
    runs = []
    for index in range(5):
        runs.append(await one_run(store, [(claims[name], makes[index]) for name, makes in SCENARIOS.items()]))
    return claims, runs


async def answers(store: RunStore) -> dict[str, Any]:
    """Everything the store answers about its runs and claims, run ids and times named by the
    runs' order: per run its states, events, results, export rows, report counts and figures;
    each claim's history; the events since the first run; the series of points."""
    runs = await store.runs()
    names: dict[str, str] = {}
    for n, info in enumerate(runs):
        names.update({info.id: f"run {n}", info.started_at: f"start {n}", info.finished_at or "": f"end {n}"})
    per_run: list[dict[str, Any]] = []
    for info in runs:
        report = await store.report(info.id)
        per_run.append(
            {
                "info": dataclasses.asdict(info),
                "states": await store.state_counts(info.id),
                "events": [event.to_dict() async for event in store.events(run_id=info.id)],
                "results": [result.to_dict() async for result in store.results(info.id)],
                "export": [(result.to_dict(), fields) async for result, fields in store.export_rows(info.id)],
                "report": (report.by_flag, report.by_tag),
                "figures": (await reporting.gather(store, info.id, by=["case"])).to_json(),
            }
        )
    claim_ids = sorted({result["claim_id"] for run in per_run for result in run["results"]})
    histories = {
        claim_id: [
            (result.to_dict(), [e.to_dict() for e in caused])
            for result, caused in await store.history(claim_id)
        ]
        for claim_id in claim_ids
    }
    since = [event.to_dict() async for event in store.events(since=runs[0].id)]
    points = [dataclasses.asdict(point) for point in await store.run_points()]
    found: dict[str, Any] = named(
        {"runs": per_run, "histories": histories, "since": since, "points": points}, names
    )
    return found


def named(value: Any, names: dict[str, str]) -> Any:
    """`value` with every string that `names` knows replaced by its name, all the way down."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, dict):
        return {key: named(item, names) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [named(item, names) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return named(dataclasses.asdict(value), names)
    return value


async def events_of(store: RunStore, run: Run) -> list[Event]:
    return [event async for event in store.events(run_id=run.id)]


async def kinds(store: RunStore, run: Run) -> list[tuple[str, str]]:
    """(case tag, event type) of the run's events, in order."""
    return [(event.tags["case"], event.event.value) async for event in store.events(run_id=run.id)]


class TestFold:
    async def test_results_of_several_runs_are_folded(self, store: RunStore) -> None:
        """Each run's results carry the claim's state after them, and each run stores the events of
        the table: a removal is suspect (no event) for one run, lost on the second."""
        claims, runs = await scenario_runs(store)
        removed = claims["removed"].id
        states = [(await store.result(removed, run.id)) for run in runs]
        assert [result.state if result else None for result in states] == [
            "live", "suspect", "lost", "lost", "lost"
        ]  # fmt: skip
        assert ("removed", "found") in await kinds(store, runs[0])
        assert not [kind for kind in await kinds(store, runs[1]) if kind[0] == "removed"]
        assert [kind for kind in await kinds(store, runs[2]) if kind[0] == "removed"] == [("removed", "lost")]
        lost = [event async for event in store.events(run_id=runs[2].id, types=["lost"])]
        reasons = {event.tags["case"]: event.reason.value if event.reason else None for event in lost}
        assert reasons == {"removed": "link_removed", "restored": "link_removed", "gone": "page_gone"}
        assert lost[0].last_seen_run == runs[0].id

    async def test_every_scenario_reports_what_the_table_says(self, store: RunStore) -> None:
        """Restoration, rel and anchor changes, noindex, outages, robots and challenge pages give
        exactly the events of section 9; 500s and challenges never make a loss."""
        _, runs = await scenario_runs(store)
        per_run = [await kinds(store, run) for run in runs]
        found = {case for case, kind in per_run[0] if kind == "found"}
        assert found == set(SCENARIOS) - {"never_there"}
        assert ("never_there", "not_found") in per_run[0]
        assert ("rel_change", "rel_changed") in per_run[2]
        assert ("rel_change", "rel_changed") in per_run[4]
        assert ("anchor_change", "anchor_changed") in per_run[1]
        assert ("anchor_change", "recovered") not in per_run[4]  # one absent run: suspect, not lost
        assert ("noindex", "indexability_changed") in per_run[1]
        assert ("restored", "recovered") in per_run[3]
        assert ("gone", "recovered") in per_run[4]
        assert ("robots", "blocked") in per_run[2]
        assert ("robots", "unblocked") in per_run[3]
        assert ("never_there", "found") in per_run[2]

        def of(case: str) -> list[tuple[int, str]]:
            return [(index, kind) for index, run in enumerate(per_run) for name, kind in run if name == case]

        assert of("outage") == [(0, "found"), (3, "unreachable")]  # three 500s: unreachable, never lost
        # Challenge pages neither break nor extend the row: absent, challenge, absent confirms the loss.
        assert of("challenge") == [(0, "found"), (4, "lost")]
        counts = await store.state_counts(runs[-1].id)
        assert counts == {State.LIVE: 7, State.SUSPECT: 1, State.LOST: 2}

    async def test_confirm_runs_come_from_the_run_settings(self, store: RunStore) -> None:
        """A run stored with confirm_runs = 1 confirms a loss at the first absent observation."""
        item = claim(1)
        await one_run(store, [(item, PRESENT)])
        run = await one_run(store, [(item, ABSENT)], {"confirm_runs": 1})
        assert [event.event async for event in store.events(run_id=run.id)] == [EventType.LOST]

    async def test_a_claim_decided_twice_in_a_run_is_folded_once(self, store: RunStore) -> None:
        """A second result for a claim already decided in its run is neither stored nor folded."""
        item = claim(1)
        run = await store.begin_run(SETTINGS)
        await store.add_claims(run, [item])
        first = await store.save([PRESENT(item, run.id), ABSENT(item, run.id)])
        again = await store.save([ABSENT(item, run.id)])
        assert [result.state for result in first.results] == ["live"]
        assert [event.event for event in first.events] == [EventType.FOUND]
        assert again == Saved()
        assert (await store.history(item.id))[0][0].state == "live"

    async def test_the_writer_hands_on_what_was_stored(self, store: RunStore) -> None:
        """`on_saved` gets each batch's results with their state, and its events, after the save."""
        items = [claim(n) for n in range(3)]
        run = await store.begin_run(SETTINGS)
        await store.add_claims(run, items)
        handed: list[tuple[list[str | None], list[str]]] = []

        async def on_saved(results: Any, events: Any) -> None:
            assert (await store.run_info(run.id)).decided >= len(results)  # stored first
            handed.append(([r.state for r in results], [e.event.value for e in events]))

        async with store.writer(batch_size=2, max_delay=60, on_saved=on_saved) as writer:
            for item in items:
                await writer.add(PRESENT(item, run.id))
        assert handed == [(["live", "live"], ["found", "found"]), (["live"], ["found"])]


class TestRebuild:
    async def test_rebuild_gives_the_same_rows(self, backend: Backend) -> None:
        """States and events rebuilt from the results alone equal, row for row, those written run
        by run, also after they were wiped; a URL change on import restarts the claim both ways."""
        async with backend.open() as store:
            claims, _ = await scenario_runs(store)
            moved = Claim("https://moved.example/", claims["removed"].target_url, id=claims["removed"].id)
            run = await store.begin_run(SETTINGS, fresh=True)
            await store.add_claims(run, [moved])
            await store.finish_run(run)
            await one_run(store, [(claims["restored"], PRESENT), (claims["robots"], DOWN)])
            before = await backend.derived()
            assert (await store.rebuild_history()) == (len(SCENARIOS), len(before["events"]))
            assert await backend.derived() == before
        await backend.wipe_monitoring()
        async with backend.open() as store:
            await store.rebuild_history()
            assert (await store.history(moved.id))[-1][0].state == "lost"  # the last result's state
        assert await backend.derived() == before
        states = dict(await backend.rows("SELECT claim_id, state FROM claim_states"))
        assert states[moved.id] == "new"  # restarted by the import, and by the rebuild

    async def test_upgrading_a_database_folds_its_results(self, backend: Backend) -> None:
        """A database of the schema before states (version 1) gets them, and referring domains,
        when it is opened: the same rows a database kept up to date has."""
        async with backend.open() as store:
            await scenario_runs(store)
        before = await backend.derived()
        await backend.downgrade()
        async with backend.open() as store:
            points = await store.run_points()
        assert await backend.derived() == before
        assert points[0].referring_domains == 1  # every source is on a.example


class TestTransactions:
    async def test_a_failing_save_leaves_nothing(self, store: RunStore, backend: Backend) -> None:
        """A batch the database refuses stores no result, no state and no event of it."""
        run = await store.begin_run(SETTINGS)
        await store.add_claims(run, [claim(1)])
        with pytest.raises(StoreError, match=r"(?i)foreign key"):
            await store.save([PRESENT(claim(1), run.id), PRESENT(claim(2), run.id)])  # 2 is not in the run
        got = await backend.derived()
        assert (got["claim_states"], got["events"], got["results"]) == ([], [], [])

    async def test_kill_9_never_leaves_them_out_of_step(self, backend: Backend) -> None:
        """A process killed at any moment of its saves leaves results, states and events in step:
        one state and one `found` event for each stored result."""
        script = f"""
import asyncio
from crawler.models import Claim, Link, Region, Result, Status
{backend.store_class}
async def main():
    store = await Store.open({backend.db!r})
    run = await store.begin_run({{}})
    claims = [Claim(f"https://a.example/{{n}}", "https://t.example/") for n in range(20000)]
    await store.add_claims(run, claims)
    print("ready", flush=True)
    link = Link("/", "https://t.example/", "t", (), False, Region.MAIN)
    for start in range(0, len(claims), 200):
        await store.save([
            Result(c.id, c.source_url, c.target_url, {{}}, run.id, "t", Status.VERIFIED, link=link)
            for c in claims[start:start + 200]
        ])
asyncio.run(main())
"""
        for delay in (0.05, 0.3):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
            )
            assert process.stdout is not None
            assert (await asyncio.wait_for(process.stdout.readline(), 60)) == b"ready\n"
            await asyncio.sleep(delay)
            process.kill()
            await process.wait()
            ((results,),) = await backend.rows("SELECT count(*) FROM results")
            assert await backend.rows("SELECT count(*) FROM claim_states") == [(results,)]
            assert await backend.rows("SELECT count(*) FROM events WHERE event = 'found'") == [(results,)]
            assert await backend.rows("SELECT count(*) FROM results WHERE state = 'live'") == [(results,)]
        assert results > 0  # killed in the middle of its saves, not before them


class TestImport:
    async def test_a_url_change_on_import_starts_again_from_new(
        self, store: RunStore, backend: Backend
    ) -> None:
        """Re-imported with another source URL, a lost claim reads `new` at once, and is `found`
        again by its next present result; the same URLs again keep its state."""
        item = claim(1)
        await one_run(store, [(item, PRESENT)])
        await one_run(store, [(item, ABSENT)])
        await one_run(store, [(item, ABSENT)])
        run = await store.begin_run(SETTINGS, fresh=True)
        await store.add_claims(run, [item])
        assert await backend.rows("SELECT state FROM claim_states") == [("lost",)]
        moved = Claim("https://b.example/new", item.target_url, id=item.id)
        await store.add_claims(run, [moved])
        assert await backend.rows("SELECT state FROM claim_states") == [("new",)]
        saved = await store.save([PRESENT(moved, run.id)])
        assert [(event.event, event.old_state) for event in saved.events] == [(EventType.FOUND, State.NEW)]

    async def test_an_invalid_row_does_not_restart_the_claim(self, store: RunStore, backend: Backend) -> None:
        """A broken row under a known id changes the claim, not its history's URLs."""
        item = claim(1)
        await one_run(store, [(item, PRESENT)])
        run = await store.begin_run(SETTINGS, fresh=True)
        await store.add_claims(run, [InvalidClaim(item.id, "nonsense", item.target_url, "row 2: bad")])
        assert await backend.rows("SELECT state FROM claim_states") == [("live",)]

    async def test_referring_domain_is_kept_with_the_claim(self, tmp_path: Path) -> None:
        """SQLite keeps the registrable domain of the source with the claim, from its import (none
        for an invalid row); PostgreSQL keeps it with each result (`TestBothStores`)."""
        async with Store(tmp_path / "crawler.sqlite") as store:
            run = await store.begin_run(SETTINGS)
            await store.add_claims(
                run, [claim(1, host="blog.shop.co.uk"), InvalidClaim("x", "bad", "bad", "r")]
            )
        with sqlite3.connect(tmp_path / "crawler.sqlite") as db:
            found = db.execute("SELECT referring_domain FROM claims ORDER BY rowid").fetchall()
        assert found == [("shop.co.uk",), (None,)]


class TestReads:
    async def test_events_of_a_run_since_a_run_and_by_type(self, store: RunStore) -> None:
        """`events` gives a run's events in order, every run's after `since`, and keeps the types asked."""
        _, runs = await scenario_runs(store)
        latest = [event async for event in store.events()]
        assert latest == [event async for event in store.events(run_id=runs[-1].id)]
        since = [event async for event in store.events(since=runs[2].id)]
        assert {event.run_id for event in since} == {runs[3].id, runs[4].id}
        assert since == [*(await events_of(store, runs[3])), *(await events_of(store, runs[4]))]
        some = [event async for event in store.events(since=runs[0].id, types=["recovered", "rel_changed"])]
        assert {event.event.value for event in some} == {"recovered", "rel_changed"}
        everything = [event for run in runs[1:] for event in await events_of(store, run)]
        assert some == [event for event in everything if event.event.value in ("recovered", "rel_changed")]
        with pytest.raises(ValueError, match="nonsense"):
            [event async for event in store.events(types=["nonsense"])]

    async def test_history_of_a_claim(self, store: RunStore) -> None:
        """`history` lists each result in run order with the events it caused; an unknown id is an error."""
        claims, runs = await scenario_runs(store)
        history = await store.history(claims["restored"].id)
        assert [result.run_id for result, _ in history] == [run.id for run in runs]
        assert [[event.event.value for event in events] for _, events in history] == [
            ["found"], [], ["lost"], ["recovered"], []
        ]  # fmt: skip
        with pytest.raises(UnknownClaimError, match="no claim 'nope'"):
            await store.history("nope")
        with pytest.raises(UnknownClaimError):
            await store.result("nope")
        latest = await store.result(claims["restored"].id)
        assert latest is not None
        assert latest.run_id == runs[-1].id

    async def test_claims_in_states_make_a_run(self, store: RunStore, backend: Backend) -> None:
        """`add_claims_in_states` attaches exactly the claims in those states (new: never checked too)."""
        claims, _ = await scenario_runs(store)
        unchecked = claim(99)
        run = await store.begin_run(SETTINGS, fresh=True)
        await store.add_claims(run, [unchecked])
        await store.finish_run(run, interrupted=True)  # never checked (a shared run never finishes so)
        run = await store.begin_run(SETTINGS, fresh=True)
        assert await store.add_claims_in_states(run, [State.LOST, State.NEW]) == 3
        attached = await backend.rows("SELECT claim_id FROM run_claims WHERE run_id = $1", run.id)
        assert {claim_id for (claim_id,) in attached} == {
            claims["removed"].id,
            claims["challenge"].id,
            unchecked.id,
        }

    async def test_report_rows_and_run_points(self, store: RunStore) -> None:
        """Report rows carry state and expected anchor; each run's point counts live claims, their
        referring domains and its found, lost and recovered events."""
        items = [
            (claim(1, host="x.one.example", expected_anchor="shoes"), PRESENT),
            (claim(2, host="two.example"), ABSENT),
        ]
        run = await one_run(store, items)
        report = [row async for row in store.report_rows(run.id)]
        assert [(row.state, row.expected_anchor) for row in report] == [
            (State.LIVE, "shoes"),
            (State.NOT_FOUND, None),
        ]
        second = await one_run(store, [(item, ABSENT) for item, _ in items])
        points = await store.run_points()
        assert points == [
            RunPoint(run.id, run.started_at, live=1, referring_domains=1, found=1),
            RunPoint(second.id, second.started_at, live=1, referring_domains=1),
        ]
        assert await store.state_counts(second.id) == {State.SUSPECT: 1, State.NOT_FOUND: 1}

    async def test_export_rows_follow_the_import_order(self, store: RunStore) -> None:
        """Export rows come in the claims' first import order, with their anchor, rel and match."""
        items = [
            claim(n, expected_anchor=f"a{n}", expected_rel="nofollow", match="domain") for n in (5, 1, 3)
        ]
        run = await store.begin_run(SETTINGS)
        await store.add_claims(run, items)
        await store.save([ABSENT(items[1], run.id), PRESENT(items[2], run.id), ABSENT(items[0], run.id)])
        got = [(result.claim_id, fields) async for result, fields in store.export_rows(run.id)]
        assert got == [
            (item.id, ClaimFields(f"a{n}", "nofollow", "domain"))
            for n, item in zip((5, 1, 3), items, strict=True)
        ]
        missing = [result.claim_id async for result, _ in store.export_rows(statuses=[Status.MISSING])]
        assert missing == [items[0].id, items[1].id]


class TestBothStores:
    async def test_the_same_runs_give_the_same_answers(self, tmp_path: Path, postgres: Cluster) -> None:
        """The same claims over the same runs (a URL changed on import and a broken row among them)
        give the same states, events, results, histories, export rows, report counts, figures and
        series on SQLite and on PostgreSQL, run ids and times aside; a rebuild changes none of it."""
        got = []
        for backend in (Backend.sqlite(tmp_path), Backend.postgres(postgres)):
            async with backend.open() as store:
                claims, _ = await scenario_runs(store)
                moved = Claim("https://moved.example/", claims["removed"].target_url, id=claims["removed"].id)
                broken = InvalidClaim(
                    "broken", "nonsense", "", "row 9: source_url: not a URL", {"case": "broken"}
                )
                await one_run(
                    store,
                    [(moved, PRESENT), (claims["gone"], GONE), (claims["robots"], DOWN), (broken, INVALID)],
                )
                got.append(await answers(store))
                assert await store.rebuild_history() == (
                    len(SCENARIOS) + 1,
                    len(got[-1]["since"]) + len(got[-1]["runs"][0]["events"]),
                )
                assert await answers(store) == got[-1]
        sqlite, postgresql = got
        assert postgresql == sqlite
        # The last run: the moved claim found again, one 404 after a present run, an outage, the broken row.
        assert sqlite["runs"][-1]["states"] == {State.LIVE: 1, State.SUSPECT: 2, State.INVALID: 1}

    async def test_each_result_keeps_its_referring_domain(self, postgres: Cluster) -> None:
        """PostgreSQL keeps the registrable domain of the source each result was checked on, which
        the report's series counts (SQLite computes it from the result's source)."""
        backend = Backend.postgres(postgres)
        async with backend.open() as store:
            run = await one_run(
                store, [(claim(1, host="blog.shop.co.uk"), PRESENT), (claim(2, host="x.shop.co.uk"), PRESENT)]
            )
            assert await backend.rows("SELECT referring_domain FROM results") == [("shop.co.uk",)] * 2
            assert (await store.run_points())[0] == RunPoint(
                run.id, run.started_at, live=2, referring_domains=1, found=2
            )
