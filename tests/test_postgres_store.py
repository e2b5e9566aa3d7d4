"""The PostgreSQL store against a real cluster: schema and its version, imports as upserts, runs
shared rather than held, results round trip, report, the fence, and one-line errors."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from postgres_cluster import Cluster

from crawler.config import Settings
from crawler.engine.leases import leasing
from crawler.errors import StoreError
from crawler.models import Claim, ExpectedRel, Flag, InvalidClaim, Link, Region, Result, Status
from crawler.store import postgres_sql
from crawler.store.base import ImportCounts, Run, RunStatus
from crawler.store.postgres import PostgresStore

SETTINGS = {"delay": 1.0, "lease": 3.0, "concurrency": 4, "per_host": 1}
LEASES = Settings(lease=3.0, concurrency=4)
_numbers = itertools.count()


def claim(n: int, host: str = "a.example", **kwargs: object) -> Claim:
    return Claim(f"https://{host}/page-{n}", f"https://target.example/{n}", **kwargs)  # type: ignore[arg-type]


def result(
    item: Claim | InvalidClaim, run_id: str, status: Status = Status.MISSING, **kwargs: object
) -> Result:
    return Result(
        claim_id=item.id,
        source_url=item.source_url,
        target_url=item.target_url,
        tags=item.tags,
        run_id=run_id,
        checked_at="2026-01-02T03:04:05.678Z",
        status=status,
        **kwargs,  # type: ignore[arg-type]
    )


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
        assert saved.results == (first, second)
        assert [r async for r in store.results(run.id)] == [first, second]
        assert [r async for r in store.results(statuses=[Status.VERIFIED])] == [second]

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
        """Results of a host whose lease was taken over are refused; the taker's are stored."""
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
                assert (await slow.save([result(item, run.id, Status.MISSING)])).results == ()
                assert len((await taker.save([result(item, run.id, Status.VERIFIED)])).results) == 1
                await feed.aclose()  # type: ignore[attr-defined]
                await taken.aclose()  # type: ignore[attr-defined]
            assert [r.status async for r in taker.results()] == [Status.VERIFIED]
