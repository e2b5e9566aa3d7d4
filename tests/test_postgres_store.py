"""The PostgreSQL store against a real cluster: schema and its version (a version-1 database
upgraded), imports as upserts, runs shared rather than held, results round trip, report, the
fence (a refused result changes no state and causes no event), concurrent saves and imports
keeping states in step, and one-line errors. What both stores must do alike is tested on both
in test_monitoring.py."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest
from postgres_cluster import Cluster
from stores import DOWNGRADE, Backend, claim, result

from crawler.config import Settings
from crawler.core.history import EventType, State
from crawler.engine.leases import leasing
from crawler.errors import StoreError
from crawler.models import Claim, ExpectedRel, Flag, InvalidClaim, Link, Region, Status
from crawler.store import postgres_sql
from crawler.store.base import ImportCounts, Run, RunStatus, Saved
from crawler.store.postgres import PostgresStore

SETTINGS = {"delay": 1.0, "lease": 3.0, "concurrency": 4, "per_host": 1}
LEASES = Settings(lease=3.0, concurrency=4)
_numbers = itertools.count()
RENEWAL_WAITING = """
    SELECT count(*) > 0 FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'
      AND query LIKE '%UPDATE hosts SET expires_at%'
"""
"""A renewal (`postgres_sql.RENEW`) waits for a row lock in this test's database."""
# Rows as the previous release (schema version 1) stored them.
VERSION_1_RUN = (
    "INSERT INTO runs (id, started_at, status) VALUES ($1, '2026-01-01T00:00:00.000Z', 'finished')"
)
VERSION_1_CLAIM = (
    "INSERT INTO claims (id, source_url, target_url, page_key, host) VALUES ($1, $2, $3, '', '')"
)
VERSION_1_ATTACHED = (
    "INSERT INTO run_claims (run_id, claim_id, page_key, host, done) VALUES ($1, $2, '', '', true)"
)
VERSION_1_RESULT = """
    INSERT INTO results (run_id, claim_id, status, checked_at, data) VALUES ($1, $2, $3, $4, $5)
"""


@pytest.fixture
def database(postgres: Cluster) -> str:
    """A new empty database of the session's cluster."""
    return postgres.create_database(f"store_{next(_numbers)}")


@pytest.fixture
async def store(database: str) -> AsyncIterator[PostgresStore]:
    async with PostgresStore(database) as opened:
        yield opened


async def leased(store: PostgresStore, run: Run) -> list[Claim | InvalidClaim]:
    """Every pending claim of `run`, through the lease feed, each decided as soon as fed."""
    items = []
    async with leasing(store, LEASES):
        async for item in store.pending(run):
            items.append(item)
            await store.save([result(item, run.id)])
    return items


class TestSchema:
    async def test_version_table_says_the_latest(self, store: PostgresStore, postgres: Cluster) -> None:
        """Opening creates the tables and records the schema version in `crawler_schema`."""
        name = store.url.rsplit("/", 1)[1]
        assert postgres.psql(name, "SELECT max(version) FROM crawler_schema").strip() == str(
            len(postgres_sql.MIGRATIONS)
        )

    async def test_reopening_migrates_nothing(self, database: str) -> None:
        """A second open of an up-to-date database changes nothing and works."""
        async with PostgresStore(database):
            pass
        async with PostgresStore(database) as again:
            assert await again.runs() == []

    async def test_newer_schema_refused(self, database: str, postgres: Cluster) -> None:
        """A database written by a newer crawler is refused in one line."""
        async with PostgresStore(database):
            pass
        postgres.psql(database.rsplit("/", 1)[1], "INSERT INTO crawler_schema VALUES (99)")
        with pytest.raises(StoreError, match="schema version 99 is newer"):
            async with PostgresStore(database):
                pass

    async def test_a_version_1_database_is_upgraded(self, database: str) -> None:
        """A database the first schema made, with runs and results the previous release stored,
        gets states, events and kept points when opened: its claims' histories, as folded."""
        item, run_id = claim(1), "20260101T000000Z-000001"
        found = Link("/", item.target_url, "t", (), False, Region.MAIN)
        data = result(item, run_id, Status.VERIFIED, link=found).to_dict()
        connection = await asyncpg.connect(database)
        try:
            async with connection.transaction():
                await connection.execute(postgres_sql.VERSION_TABLE)
                await connection.execute(postgres_sql.MIGRATIONS[0])
                await connection.execute(postgres_sql.SET_VERSION, 1)
                await connection.execute(VERSION_1_RUN, run_id)
                await connection.execute(VERSION_1_CLAIM, item.id, item.source_url, item.target_url)
                await connection.execute(VERSION_1_ATTACHED, run_id, item.id)
                await connection.execute(
                    VERSION_1_RESULT, run_id, item.id, data["status"], data["checked_at"], json.dumps(data)
                )
        finally:
            await connection.close()
        async with PostgresStore(database) as store:
            ((stored, events),) = await store.history(item.id)
            assert stored.state == "live"
            assert [event.event for event in events] == [EventType.FOUND]
            assert await store.state_counts(run_id) == {State.LIVE: 1}
            (point,) = await store.run_points()
            assert (point.live, point.referring_domains, point.found) == (1, 1, 1)

    async def test_the_tests_downgrade_makes_version_1(self, database: str, postgres: Cluster) -> None:
        """The downgrade test_monitoring uses to stand for a version-1 database leaves exactly the
        tables, columns and indexes the first schema made (so its upgrade test upgrades that)."""
        first = postgres.create_database(f"store_{next(_numbers)}")
        connection = await asyncpg.connect(first)
        try:
            await connection.execute(postgres_sql.VERSION_TABLE)
            await connection.execute(postgres_sql.MIGRATIONS[0])
        finally:
            await connection.close()
        async with PostgresStore(database):
            pass
        backend = Backend("postgres", database)
        await backend.execute(DOWNGRADE["postgres"])
        shape = """
            SELECT table_name, column_name, data_type FROM information_schema.columns
            WHERE table_schema = 'public' UNION ALL
            SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
            ORDER BY 1, 2
        """
        assert await backend.rows(shape) == await Backend("postgres", first).rows(shape)

    async def test_unreachable_server_is_one_line(self) -> None:
        """A server that does not answer is a StoreError naming the database, password hidden."""
        with pytest.raises(
            StoreError, match=r"postgresql://u:\*\*\*@127\.0\.0\.1:9/db: cannot open"
        ) as caught:
            async with PostgresStore("postgresql://u:secret@127.0.0.1:9/db"):
                pass
        assert "secret" not in str(caught.value)
        assert "\n" not in str(caught.value)


class TestImport:
    async def test_import_twice_keeps_one_row_each(self, store: PostgresStore) -> None:
        """The same claims imported twice are stored once; a changed one is an update."""
        run = await store.begin_run(SETTINGS)
        claims = [claim(n) for n in range(10)]
        assert await store.add_claims(run, claims) == ImportCounts(added=10)
        changed = [*claims[:9], claim(9, tags={"vendor": "x"})]
        assert await store.add_claims(run, changed) == ImportCounts(updated=1, unchanged=9)
        info = await store.run_info(run.id)
        assert info.claims == 10

    async def test_invalid_claims_are_decided_without_a_host(self, store: PostgresStore) -> None:
        """An invalid row is kept and fed as an invalid claim."""
        run = await store.begin_run(SETTINGS)
        bad = InvalidClaim("bad1", "nonsense", "", "source_url: not a URL", {})
        counts = await store.add_claims(run, [bad, claim(1)])
        assert counts.invalid == 1
        fed = await leased(store, run)
        assert sorted(item.id for item in fed) == sorted(["bad1", claim(1).id])


class TestRuns:
    async def test_second_begin_joins_the_running_run(self, database: str) -> None:
        """Runs are shared: a second store beginning a run joins the one running."""
        async with PostgresStore(database) as first, PostgresStore(database) as second:
            run = await first.begin_run(SETTINGS)
            joined = await second.begin_run(SETTINGS)
            assert joined.id == run.id
            assert joined.resumed
            assert (await second.join_run(SETTINGS)) == joined

    async def test_join_without_a_running_run(self, store: PostgresStore) -> None:
        """A worker finds nothing to join when no run is running (an interrupted one included)."""
        assert await store.join_run(SETTINGS) is None
        run = await store.begin_run(SETTINGS)
        await store.add_claims(run, [claim(1)])
        await store.finish_run(run, interrupted=True)
        assert (await store.run_info()).status is RunStatus.INTERRUPTED
        assert await store.join_run(SETTINGS) is None
        resumed = await store.begin_run(SETTINGS)
        assert resumed.id == run.id
        assert resumed.resumed

    async def test_finished_only_when_every_claim_is_decided(self, store: PostgresStore) -> None:
        """finish_run marks the run finished once no claim is pending, with its counts."""
        run = await store.begin_run(SETTINGS)
        await store.add_claims(run, [claim(n, host=f"h{n % 3}.example") for n in range(9)])
        assert len(await leased(store, run)) == 9
        info = await store.finish_run(run)
        assert info.status is RunStatus.FINISHED
        assert (info.claims, info.decided) == (9, 9)
        fresh = await store.begin_run(SETTINGS)
        assert fresh.id != run.id
        assert not fresh.resumed
        assert await store.add_all_claims(fresh) == 9
        assert [info.id for info in await store.runs()] == [run.id, fresh.id]


class TestResults:
    async def test_round_trip(self, store: PostgresStore) -> None:
        """Every field of a result comes back as it was saved, in the order decided."""
        run = await store.begin_run(SETTINGS)
        items = [claim(1, tags={"vendor": "acme"}, expected_rel=ExpectedRel.FOLLOW), claim(2)]
        await store.add_claims(run, items)
        link = Link("/x", "https://target.example/1", "caf\xe9", ("nofollow",), False, Region.MAIN)
        first = result(
            items[0], run.id, Status.NOFOLLOW, link=link, http_status=200, flags=(Flag.JS_RENDERED,)
        )
        second = result(items[1], run.id, Status.VERIFIED)
        saved = await store.save([first, second])
        stored = (dataclasses.replace(first, state="live"), dataclasses.replace(second, state="live"))
        assert saved.results == stored
        assert [event.event for event in saved.events] == [EventType.FOUND] * 2
        assert [r async for r in store.results(run.id)] == list(stored)
        assert [r async for r in store.results(statuses=[Status.VERIFIED])] == [stored[1]]

    async def test_first_result_kept(self, store: PostgresStore) -> None:
        """A claim already decided in its run keeps its first result."""
        run = await store.begin_run(SETTINGS)
        item = claim(1)
        await store.add_claims(run, [item])
        await store.save([result(item, run.id, Status.VERIFIED)])
        assert (await store.save([result(item, run.id, Status.MISSING)])).results == ()
        assert [r.status async for r in store.results()] == [Status.VERIFIED]

    async def test_report_counts(self, store: PostgresStore) -> None:
        """Counts by status, flag and tag, as the SQLite store gives them."""
        run = await store.begin_run(SETTINGS)
        items = [claim(n, tags={"vendor": "acme" if n < 3 else "other"}) for n in range(5)]
        await store.add_claims(run, items)
        await store.save(
            [
                result(item, run.id, Status.VERIFIED if n % 2 else Status.MISSING)
                for n, item in enumerate(items)
            ]
        )
        report = await store.report(run.id)
        assert report.run.by_status == {Status.VERIFIED: 2, Status.MISSING: 3}
        by_tag = {(t.key, t.value): dict(t.by_status) for t in report.by_tag}
        assert by_tag[("vendor", "acme")] == {Status.MISSING: 2, Status.VERIFIED: 1}
        assert by_tag[("vendor", "other")] == {Status.MISSING: 1, Status.VERIFIED: 1}


class TestFence:
    async def test_lease_taken_over_refuses_late_results(self, database: str, postgres: Cluster) -> None:
        """Results of a host whose lease was taken over are refused, with no state and no event
        (a refused `verified` would have been `found`); the taker's are stored and folded."""
        backend = Backend("postgres", database)
        async with PostgresStore(database) as slow, PostgresStore(database) as taker:
            run = await slow.begin_run(SETTINGS)
            await slow.add_claims(run, [claim(1)])
            async with leasing(slow, LEASES), leasing(taker, LEASES):
                feed = slow.pending(run)
                item = await anext(feed)
                # The lease runs out (as for a worker frozen past it) and another process takes it.
                postgres.psql(database.rsplit("/", 1)[1], "UPDATE hosts SET expires_at = now()")
                await taker.join_run(SETTINGS)
                taken = taker.pending(run)
                assert (await anext(taken)).id == item.id
                assert await slow.save([result(item, run.id, Status.VERIFIED)]) == Saved()
                assert await backend.rows("SELECT count(*) FROM claim_states") == [(0,)]
                assert await backend.rows("SELECT count(*) FROM events") == [(0,)]
                saved = await taker.save([result(item, run.id, Status.MISSING)])
                assert [(r.status, r.state) for r in saved.results] == [(Status.MISSING, "not_found")]
                assert [event.event for event in saved.events] == [EventType.NOT_FOUND]
                await feed.aclose()  # type: ignore[attr-defined]
                await taken.aclose()  # type: ignore[attr-defined]
            assert [r.status async for r in taker.results()] == [Status.MISSING]
            assert [event.event async for event in taker.events()] == [EventType.NOT_FOUND]
            assert await backend.rows("SELECT state FROM claim_states") == [("not_found",)]

    async def test_an_expired_lease_changes_no_state(self, database: str, postgres: Cluster) -> None:
        """A result saved after its lease ran out (nobody took the host yet) is refused, and the
        claim's state and history stay as the earlier run left them: no loss begins, no event."""
        backend = Backend("postgres", database)
        item = claim(1)
        async with PostgresStore(database) as store:
            first = await store.begin_run(SETTINGS)
            await store.add_claims(first, [item])
            found = Link("/", item.target_url, "t", (), False, Region.MAIN)
            await store.save([result(item, first.id, Status.VERIFIED, link=found)])
            await store.finish_run(first)
            before = await backend.rows("SELECT * FROM claim_states")
            run = await store.begin_run(SETTINGS)
            await store.add_all_claims(run)
            async with leasing(store, LEASES):
                feed = store.pending(run)
                assert (await anext(feed)).id == item.id
                postgres.psql(database.rsplit("/", 1)[1], "UPDATE hosts SET expires_at = now()")
                assert await store.save([result(item, run.id, Status.MISSING)]) == Saved()
                await feed.aclose()  # type: ignore[attr-defined]
            assert await backend.rows("SELECT * FROM claim_states") == before
            assert [event.event async for event in store.events(run_id=run.id)] == []
            assert [state async for state in store.results(run.id)] == []
            assert (await store.result(item.id)) is not None


class TestRaces:
    async def test_a_host_taken_while_a_renewal_is_in_flight_is_kept(self, database: str) -> None:
        """The heartbeat renews the hosts it asked for: a host the feed leases while a renewal
        waits in the database is not lost when the answer (without it) comes back. It was, and
        its results were dropped and its pages fetched again by whoever took it after the lease."""
        async with PostgresStore(database) as store:
            run = await store.begin_run(SETTINGS)
            await store.add_claims(run, [claim(1, "a.example")])
            blocker, watcher = await asyncpg.connect(database), await asyncpg.connect(database)
            try:
                # A lease this long: no heartbeat of its own runs during the test.
                async with leasing(store, Settings(lease=600.0, concurrency=4)) as leases:
                    feed = store.pending(run)
                    first = await anext(feed)
                    async with blocker.transaction():
                        await blocker.execute("SELECT 1 FROM hosts WHERE host = 'a.example' FOR UPDATE")
                        renewal = asyncio.create_task(leases.renew())
                        async with asyncio.timeout(30):
                            while not await watcher.fetchval(RENEWAL_WAITING):  # noqa: ASYNC110 -- the server's state
                                await asyncio.sleep(0.01)
                        await store.add_claims(run, [claim(2, "b.example")])
                        second = await anext(feed)
                        assert set(leases.owned) == {"a.example", "b.example"}
                    await renewal
                    assert (leases.lost, set(leases.owned)) == (0, {"a.example", "b.example"})
                    saved = await store.save([result(first, run.id), result(second, run.id)])
                    assert len(saved.results) == 2
                    await feed.aclose()  # type: ignore[attr-defined]
            finally:
                await blocker.close()
                await watcher.close()

    async def test_a_robots_fetch_given_up_stays_given_up(self, database: str) -> None:
        """A robots.txt claim given up (its fetch failed or was cancelled) is free at once, for
        this process too: the heartbeat does not take it back. It did, and every process then
        waited for an answer nobody was fetching, as long as the giver lived."""
        origin = "https://a.example"
        async with PostgresStore(database) as store, PostgresStore(database) as other:
            run = await store.begin_run(SETTINGS)
            await other.join_run(SETTINGS)
            async with leasing(store, Settings(lease=600.0)) as leases:
                assert await store.claim_robots(origin, leases.lease)
                assert not await other.claim_robots(origin, leases.lease)
                await store.store_robots(origin, None)
                await leases.renew()
                assert await other.claim_robots(origin, leases.lease)
            await store.finish_run(run)

    async def test_only_the_places_held_are_renewed(self, database: str) -> None:
        """The heartbeat renews the request places this process holds, not every place the
        database has in its name: one given by a reply it never read (its request cancelled as
        the answer came) expires after one lease instead of being renewed for as long as the
        process lives, and with `per_host` 1 closing the host to every process meanwhile."""
        backend = Backend("postgres", database)
        async with PostgresStore(database) as store:
            run = await store.begin_run(SETTINGS)
            await store.add_claims(run, [claim(1, "a.example"), claim(2, "b.example")])
            async with leasing(store, Settings(lease=600.0)) as leases:
                assert await store.take_gate("a.example", f"{store.worker}#lost", 1, 0.0, 10.0) == 0
                async with leases.hold("b.example", 0.0):
                    await leases.renew()
                    expiries = await backend.rows(
                        "SELECT host, expires_at - clock_timestamp() < interval '20 seconds' FROM gates"
                        " ORDER BY host"
                    )
                    assert expiries == [("a.example", True), ("b.example", False)]
            await store.finish_run(run, interrupted=True)


class TestConcurrency:
    async def test_workers_and_an_import_at_once_keep_states_in_step(self, database: str) -> None:
        """Four stores saving their share of a run's claims in small batches while a fifth imports
        the same claims again (tags changed, so every row is updated under its lock) wait for each
        other without a deadlock; every stored result has its state and its `found` event, in the
        rows a rebuild derives again, and reads page through them all."""
        backend = Backend("postgres", database)
        items = [claim(n, host=f"h{n % 7}.example") for n in range(2400)]
        found = Link("/", "https://target.example/", "t", (), False, Region.MAIN)
        async with PostgresStore(database) as first:
            run = await first.begin_run(SETTINGS)
            await first.add_claims(run, items)

            async def save_share(share: int) -> None:
                async with PostgresStore(database) as store:
                    mine = items[share::4]
                    for start in range(0, len(mine), 40):
                        batch = mine[start : start + 40]
                        await store.save([result(i, run.id, Status.VERIFIED, link=found) for i in batch])

            async def import_again() -> None:
                async with PostgresStore(database) as store:
                    for round_ in range(3):
                        tagged = [dataclasses.replace(i, tags={"round": str(round_)}) for i in items]
                        await store.add_claims(run, reversed(tagged))

            await asyncio.gather(*(save_share(n) for n in range(4)), import_again())
            assert await backend.rows("SELECT count(*) FROM claim_states WHERE state = 'live'") == [(2400,)]
            assert len([event async for event in first.events(types=["found"])]) == 2400
            assert len([row async for row in first.export_rows()]) == 2400
            before = await backend.derived()
            assert await first.rebuild_history() == (2400, 2400)
            assert await backend.derived() == before
