"""The SQLite store: schema, imports as upserts, runs and resume, batched writes, export and report.

Failures through the command line are in test_store_errors.py, the run's hold in test_run_lock.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from stores import claim, result

import crawler
from crawler.errors import StoreError
from crawler.models import (
    Claim,
    ExpectedRel,
    Flag,
    InvalidClaim,
    Link,
    MatchMode,
    Redirect,
    Region,
    Status,
)
from crawler.store.base import ImportCounts, RunStatus, RunStore, TagCount
from crawler.store.sqlite import BATCH, IMPORT_BATCH, SQLiteStore, Store
from crawler.store.sqlite_sql import MIGRATIONS

SETTINGS = {"delay": 1.0, "user_agent": "backlink-crawler/test"}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(tmp_path / "crawler.sqlite") as opened:
        yield opened


class TestSchema:
    async def test_fresh_database(self, tmp_path: Path) -> None:
        """A new file gets every table, the latest schema version, WAL mode and a clean integrity check."""
        path = tmp_path / "new.sqlite"
        async with Store(path):
            pass
        with sqlite3.connect(path) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert {"claims", "runs", "run_claims", "results"} <= tables
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert db.execute("PRAGMA foreign_key_check").fetchall() == []

    async def test_reopening_keeps_data(self, tmp_path: Path) -> None:
        """Opening an existing database migrates nothing and keeps its claims."""
        path = tmp_path / "db.sqlite"
        async with Store(path) as store:
            run = await store.begin_run(SETTINGS)
            await store.add_claims(run, [claim(1)])
        store = await Store.open(path)
        try:
            assert (await store.run_info()).claims == 1
        finally:
            await store.close()

    async def test_not_a_database(self, tmp_path: Path) -> None:
        """A file that is not SQLite is a StoreError naming the file."""
        path = tmp_path / "claims.csv"
        path.write_text("source_url,target_url\n" * 100)
        with pytest.raises(StoreError, match=r"claims\.csv"):
            await Store.open(path)

    async def test_newer_schema_is_refused(self, tmp_path: Path) -> None:
        """A database written by a newer version is not touched."""
        path = tmp_path / "future.sqlite"
        with sqlite3.connect(path) as db:
            db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
        with pytest.raises(StoreError, match="newer"):
            await Store.open(path)

    async def test_other_applications_database_is_refused(self, tmp_path: Path) -> None:
        """A SQLite file with someone else's tables is not turned into ours."""
        path = tmp_path / "other.sqlite"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE invoices (id INTEGER)")
        with pytest.raises(StoreError, match="something else"):
            await Store.open(path)

    async def test_reader_beside_a_writer(self, tmp_path: Path) -> None:
        """A second store on the same file (an export during a run) reads what the first has saved."""
        path = tmp_path / "db.sqlite"
        async with Store(path) as writer_store, Store(path) as reader_store:
            run = await writer_store.begin_run(SETTINGS)
            await writer_store.add_claims(run, [claim(n) for n in range(3)])
            async with writer_store.writer(batch_size=2) as writer:
                for n in range(3):
                    await writer.add(result(claim(n), run.id))
                assert len([r async for r in reader_store.results()]) == 2
                assert (await reader_store.report()).run.decided == 2
            assert (await reader_store.run_info(run.id)).decided == 3

    async def test_closed_store_says_so(self, tmp_path: Path) -> None:
        """Using a store that is not open is a StoreError naming it, not an AttributeError."""
        with pytest.raises(StoreError, match=r"x\.sqlite: the store is not open"):
            await Store(tmp_path / "x.sqlite").runs()

    def test_the_sqlite_store_is_the_public_store(self) -> None:
        """`crawler.Store` is the SQLite store, and it is a RunStore (mypy checks the assignment)."""
        assert crawler.Store is Store is SQLiteStore
        seam: type[RunStore] = SQLiteStore
        assert seam.__name__ == "SQLiteStore"

    async def test_another_programs_version_1_is_refused_untouched(self, tmp_path: Path) -> None:
        """A database saying schema version 1 without our tables is refused at open, and left as it was."""
        path = tmp_path / "other.sqlite"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE runs (id INTEGER, note TEXT)")
            db.execute("CREATE TABLE invoices (id INTEGER)")
            db.execute("PRAGMA user_version = 1")
        pattern = r"other\.sqlite: not a database of this crawler \(schema version 1, but no table claims, "
        with pytest.raises(StoreError, match=pattern + r"results, run_claims\)"):
            await Store.open(path)
        with sqlite3.connect(path) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert tables == {"runs", "invoices"}

    async def test_a_missing_column_is_named(self, tmp_path: Path) -> None:
        """A crawler database that lost a column (edited by hand) is refused, naming the column."""
        path = tmp_path / "db.sqlite"
        async with Store(path):
            pass
        with sqlite3.connect(path) as db:
            db.execute("ALTER TABLE results DROP COLUMN final_url")
        with pytest.raises(StoreError, match=r"but no column results\.final_url\)"):
            await Store.open(path)

    async def test_negative_schema_version_is_refused(self, tmp_path: Path) -> None:
        """A user_version no crawler ever wrote is refused."""
        path = tmp_path / "odd.sqlite"
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA user_version = -3")
        with pytest.raises(StoreError, match="unknown schema version -3"):
            await Store.open(path)

    async def test_damaged_file(self, tmp_path: Path) -> None:
        """A database whose pages were overwritten with garbage: a StoreError naming it and the damage."""
        path = tmp_path / "db.sqlite"
        async with Store(path) as store:
            run = await store.begin_run(SETTINGS)
            await store.add_claims(run, [claim(n) for n in range(2000)])
            await store.save([result(claim(n), run.id) for n in range(2000)])
        with path.open("r+b") as file:
            file.seek(4096)  # everything but the first page, which holds the header and the schema
            file.write(bytes(range(256)) * (path.stat().st_size // 256))

        async def read() -> None:
            async with Store(path) as store:
                await store.run_info()
                [r async for r in store.results()]

        damaged = "database disk image is malformed; the file is damaged"
        with pytest.raises(StoreError, match=damaged) as caught:
            await read()
        assert str(caught.value).startswith(f"{path}: cannot ")


class TestStoredValues:
    async def test_tags_that_are_not_json_make_an_invalid_claim(self, store: Store, tmp_path: Path) -> None:
        """claims.tags edited into anything but a JSON object: that claim is invalid; the run goes on."""
        run = await store.begin_run(SETTINGS)
        await store.add_claims(run, [claim(1), claim(2)])
        with sqlite3.connect(tmp_path / "crawler.sqlite") as db:
            db.execute("UPDATE claims SET tags = 'not json' WHERE id = ?", (claim(1).id,))
        pending = {item.id: item async for item in store.pending(run)}
        assert pending[claim(1).id] == InvalidClaim(
            claim(1).id, claim(1).source_url, claim(1).target_url, "stored claim: tags: not a JSON object"
        )
        assert pending[claim(2).id] == claim(2)

    async def test_a_result_that_is_not_json(self, store: Store, tmp_path: Path) -> None:
        """A results.data cell that is not a result: a StoreError naming the database and the row."""
        run = await store.begin_run(SETTINGS)
        await store.add_claims(run, [claim(1)])
        await store.save([result(claim(1), run.id)])
        with sqlite3.connect(tmp_path / "crawler.sqlite") as db:
            db.execute("UPDATE results SET data = '{oops'")
        unreadable = r"crawler\.sqlite: cannot read results: results row 1 can't be read back"
        with pytest.raises(StoreError, match=unreadable):
            [r async for r in store.results()]

    async def test_a_status_no_crawler_wrote(self, store: Store, tmp_path: Path) -> None:
        """A results.status edited into an unknown word: the report says which, as a StoreError."""
        run = await store.begin_run(SETTINGS)
        await store.add_claims(run, [claim(1)])
        await store.save([result(claim(1), run.id)])
        with sqlite3.connect(tmp_path / "crawler.sqlite") as db:
            db.execute("UPDATE results SET status = 'gone'")
        with pytest.raises(StoreError, match=r"run \S+: a status can't be read back: 'gone' is not a valid"):
            await store.report()


class TestImport:
    async def test_importing_twice_adds_nothing(self, store: Store) -> None:
        """The second import of the same claims changes nothing and duplicates nothing."""
        run = await store.begin_run(SETTINGS)
        items = [claim(n) for n in range(5)] + [InvalidClaim("bad", "", "", "row 7: source_url: missing")]
        assert await store.add_claims(run, items) == ImportCounts(added=6, invalid=1)
        assert await store.add_claims(run, items) == ImportCounts(unchanged=6, invalid=1)
        assert (await store.run_info(run.id)).claims == 6

    async def test_same_id_different_urls_later_row_wins(self, store: Store) -> None:
        """An import is an upsert by id: a corrected row replaces the claim, counted as updated."""
        run = await store.begin_run(SETTINGS)
        first = Claim("https://a.example/old", "https://t.example/", id="k1", tags={"vendor": "x"})
        second = Claim("https://a.example/new", "https://t.example/", id="k1", match=MatchMode.EXACT)
        assert await store.add_claims(run, [first]) == ImportCounts(added=1)
        assert await store.add_claims(run, [second]) == ImportCounts(updated=1)
        assert [item async for item in store.pending(run)] == [second]

    async def test_duplicate_ids_within_one_batch(self, store: Store) -> None:
        """Two rows with one id in the same file: the later is kept."""
        run = await store.begin_run(SETTINGS)
        rows = [claim(1, id="dup"), claim(2, id="dup")]
        counts = await store.add_claims(run, rows)
        assert (counts.added, counts.total) == (1, 2)
        assert [item async for item in store.pending(run)] == [rows[1]]

    async def test_invalid_rows_are_stored_and_pending(self, store: Store) -> None:
        """Invalid rows come back from pending as InvalidClaim with their reason, before valid claims."""
        run = await store.begin_run(SETTINGS)
        bad = InvalidClaim(
            "i1", "ftp://a.example/", "https://t.example/", "row 3: source_url: nope", {"v": "1"}
        )
        await store.add_claims(run, [claim(1), bad])
        assert [item async for item in store.pending(run)] == [bad, claim(1)]

    async def test_every_claim_field_round_trips(self, store: Store) -> None:
        """Anchor, rel, match, id and tags survive storage unchanged."""
        run = await store.begin_run(SETTINGS)
        full = Claim(
            "https://a.example/p?q=1",
            "https://t.example/x",
            expected_anchor="Buy  Shoes",
            expected_rel=ExpectedRel.NOFOLLOW,
            match=MatchMode.DOMAIN,
            id="own-id",
            tags={"vendor": "acme", "price": "12.50"},
        )
        await store.add_claims(run, [full])
        assert [item async for item in store.pending(run)] == [full]

    async def test_sql_looking_text_is_stored_verbatim(self, store: Store) -> None:
        """Quotes and SQL in ids, URLs and tags are data, never SQL."""
        run = await store.begin_run(SETTINGS)
        nasty = "'); DROP TABLE claims; --\" \\ %_ \u2028 ☃"
        item = Claim(
            f"https://a.example/?q={nasty}", "https://t.example/", id=nasty, tags={nasty: nasty, "x'": '"'}
        )
        await store.add_claims(run, [item])
        assert [got async for got in store.pending(run)] == [item]

    async def test_async_iterable_input(self, store: Store) -> None:
        """Claims may come from an async iterable, in batches larger than one transaction."""
        run = await store.begin_run(SETTINGS)

        async def produce() -> AsyncIterator[Claim]:
            for n in range(2500):
                yield claim(n)

        assert (await store.add_claims(run, produce())).added == 2500

    async def test_add_all_claims(self, store: Store) -> None:
        """A re-check run attaches every stored claim, including those of earlier runs."""
        first = await store.begin_run(SETTINGS)
        await store.add_claims(first, [claim(n) for n in range(3)])
        await store.finish_run(first)
        second = await store.begin_run(SETTINGS)
        assert await store.add_all_claims(second) == 3
        assert len([item async for item in store.pending(second)]) == 3

    @pytest.mark.parametrize("turns", [1, 2, 3, 5, 8, 13, 40, 200])
    async def test_cancelled_import_leaves_the_run_finishable(self, tmp_path: Path, turns: int) -> None:
        """An import cancelled at any await (its BEGIN included) leaves no transaction open: the run
        is then recorded as interrupted, with its counts, and whole batches only were imported."""
        path = tmp_path / "db.sqlite"

        async def produce() -> AsyncIterator[Claim]:  # no thread: the first await is the BEGIN
            for n in range(2 * IMPORT_BATCH + 5):
                yield claim(n)

        async with Store(path) as store:
            run = await store.begin_run(SETTINGS)
            task = asyncio.create_task(store.add_claims(run, produce()))
            for _ in range(turns):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            info = await store.finish_run(run, interrupted=True)
        with sqlite3.connect(path) as db:
            row = db.execute("SELECT status, claims, decided FROM runs").fetchone()
            imported = db.execute("SELECT count(*) FROM claims").fetchone()[0]
        assert row == ("interrupted", info.claims, 0)
        assert info.claims == imported
        assert imported % IMPORT_BATCH == 0


class TestPending:
    async def test_groups_pages_and_interleaves_hosts(self, store: Store) -> None:
        """Claims of one page come together; pages of one host are spread among other hosts."""
        run = await store.begin_run(SETTINGS)
        items = [
            Claim(f"https://{host}.example/p{page}", f"https://t.example/{n}")
            for n in range(3)
            for host in ("a", "b", "c")
            for page in range(8)
        ]
        await store.add_claims(run, items)
        order = [item.source_url async for item in store.pending(run)]
        assert sorted(order) == sorted(item.source_url for item in items)
        pages = [url for n, url in enumerate(order) if n == 0 or order[n - 1] != url]
        assert len(pages) == 24  # each page's three claims are adjacent
        hosts = [url.split("/")[2] for url in pages]
        switches = sum(1 for a, b in itertools.pairwise(hosts) if a != b)
        assert switches > 6  # not host after host

    async def test_spellings_of_one_page_are_adjacent(self, store: Store) -> None:
        """http and https, or www., of one page sort next to each other."""
        run = await store.begin_run(SETTINGS)
        spellings = ["https://a.example/p", "http://a.example/p", "https://www.a.example/p/"]
        others = [f"https://z{n}.example/" for n in range(20)]
        await store.add_claims(run, [Claim(url, "https://t.example/") for url in spellings + others])
        order = [item.source_url async for item in store.pending(run)]
        positions = sorted(order.index(url) for url in spellings)
        assert positions == list(range(positions[0], positions[0] + 3))

    async def test_many_pages_of_results_while_saving(self, store: Store) -> None:
        """Over several read pages, saving results as claims come yields every claim exactly once."""
        run = await store.begin_run(SETTINGS)
        items = [claim(n, host=f"h{n % 17}.example") for n in range(2 * BATCH + 345)]
        await store.add_claims(run, items)
        seen = []
        async for item in store.pending(run):
            seen.append(item.id)
            await store.save([result(item, run.id)])
        assert sorted(seen) == sorted(item.id for item in items)
        assert [item async for item in store.pending(run)] == []


class TestRuns:
    async def test_resume_after_an_unfinished_run(self, tmp_path: Path) -> None:
        """Closing without finish_run leaves the run resumable: same id, only undecided claims pending."""
        path = tmp_path / "db.sqlite"
        items = [claim(n) for n in range(10)]
        async with Store(path) as store:
            run = await store.begin_run(SETTINGS)
            await store.add_claims(run, items)
            await store.save([result(item, run.id) for item in items[:4]])
        async with Store(path) as store:
            again = await store.begin_run(SETTINGS)
            assert (again.id, again.resumed) == (run.id, True)
            left = [item async for item in store.pending(again)]
            assert sorted(item.id for item in left) == sorted(item.id for item in items[4:])
            await store.save([result(items[0], run.id, Status.VERIFIED)])  # decided already: ignored
            statuses = {r.claim_id: r.status async for r in store.results(run.id)}
            assert statuses[items[0].id] is Status.MISSING
            assert len(statuses) == 4

    async def test_interrupted_run_is_resumed_and_finished_run_is_not(self, store: Store) -> None:
        """finish_run(interrupted=True) keeps a run resumable; a finished run makes the next one new."""
        run = await store.begin_run(SETTINGS)
        info = await store.finish_run(run, interrupted=True)
        assert info.status is RunStatus.INTERRUPTED
        resumed = await store.begin_run(SETTINGS)
        assert resumed.id == run.id
        assert resumed.resumed
        await store.finish_run(resumed)
        new = await store.begin_run(SETTINGS)
        assert new.id != run.id
        assert not new.resumed

    async def test_fresh_starts_a_new_run_and_keeps_old_results(self, store: Store) -> None:
        """`fresh` starts over; the unfinished run is marked interrupted and its results stay."""
        run = await store.begin_run(SETTINGS)
        await store.add_claims(run, [claim(1), claim(2)])
        await store.save([result(claim(1), run.id)])
        new = await store.begin_run(SETTINGS, fresh=True)
        assert new.id != run.id
        runs = await store.runs()
        assert [(info.id, info.status, info.decided) for info in runs] == [
            (run.id, RunStatus.INTERRUPTED, 1),
            (new.id, RunStatus.RUNNING, 0),
        ]

    async def test_finish_run_records_counts(self, tmp_path: Path) -> None:
        """A finished run has its counts in the runs table for sqlite3-shell users too."""
        path = tmp_path / "db.sqlite"
        async with Store(path) as store:
            run = await store.begin_run(SETTINGS)
            await store.add_claims(run, [claim(1), claim(2), claim(3)])
            await store.save([result(claim(1), run.id, Status.VERIFIED), result(claim(2), run.id)])
            info = await store.finish_run(run)
        assert (info.claims, info.decided, info.pending) == (3, 2, 1)
        assert info.by_status == {Status.MISSING: 1, Status.VERIFIED: 1}
        assert info.settings == SETTINGS
        with sqlite3.connect(path) as db:
            row = db.execute("SELECT status, claims, decided, counts, finished_at FROM runs").fetchone()
        assert row[:4] == ("finished", 3, 2, '{"missing": 1, "verified": 1}')
        assert row[4].endswith("Z")

    async def test_survives_kill_9(self, tmp_path: Path) -> None:
        """A process killed with SIGKILL mid-run loses no saved result; the next run resumes it."""
        path = tmp_path / "db.sqlite"
        script = f"""
import asyncio, os, signal
from crawler.models import Claim, Result, Status
from crawler.store.sqlite import Store
async def main():
    store = await Store.open({str(path)!r})
    run = await store.begin_run({{}})
    claims = [Claim(f"https://a.example/{{n}}", "https://t.example/") for n in range(100)]
    await store.add_claims(run, claims)
    async with store.writer(batch_size=10) as writer:
        for item in claims[:35]:
            saved = Result(item.id, item.source_url, item.target_url, {{}}, run.id, "t", Status.MISSING)
            await writer.add(saved)
        os.kill(os.getpid(), signal.SIGKILL)
asyncio.run(main())
"""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == -9, stderr
        async with Store(path) as store:
            run = await store.begin_run(SETTINGS)
            assert run.resumed
            info = await store.run_info(run.id)
            assert (info.claims, info.decided) == (100, 30)  # three full batches were saved
            assert len([item async for item in store.pending(run)]) == 70
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


class TestWriter:
    async def test_flushes_on_size_and_on_exit(self, store: Store) -> None:
        """A full buffer is saved at once; the rest when the writer closes."""
        run = await store.begin_run(SETTINGS)
        items = [claim(n) for n in range(7)]
        await store.add_claims(run, items)
        async with store.writer(batch_size=3, max_delay=60) as writer:
            for item in items:
                await writer.add(result(item, run.id))
            assert (await store.run_info(run.id)).decided == 6
        assert (await store.run_info(run.id)).decided == 7

    async def test_flushes_on_time(self, store: Store) -> None:
        """A result waits at most about `max_delay` before it is saved."""
        run = await store.begin_run(SETTINGS)
        await store.add_claims(run, [claim(1)])
        async with store.writer(batch_size=100, max_delay=0.05) as writer:
            await writer.add(result(claim(1), run.id))
            for _ in range(100):
                if (await store.run_info(run.id)).decided:
                    break
                await asyncio.sleep(0.02)
            assert (await store.run_info(run.id)).decided == 1

    async def test_flushes_when_cancelled(self, store: Store) -> None:
        """Cancelling the task that holds the writer still saves everything it was given."""
        run = await store.begin_run(SETTINGS)
        items = [claim(n) for n in range(5)]
        await store.add_claims(run, items)
        given = asyncio.Event()

        async def work() -> None:
            async with store.writer(batch_size=100, max_delay=60) as writer:
                for item in items:
                    await writer.add(result(item, run.id))
                given.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(work())
        await given.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await store.run_info(run.id)).decided == 5

    async def test_cancelled_again_while_flushing(self, store: Store) -> None:
        """Cancelling over and over while the writer flushes on its way out still saves the batch."""
        run = await store.begin_run(SETTINGS)
        items = [claim(n) for n in range(50)]
        await store.add_claims(run, items)
        given = asyncio.Event()

        async def work() -> None:
            async with store.writer(batch_size=1000, max_delay=60) as writer:
                for item in items:
                    await writer.add(result(item, run.id))
                given.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(work())
        await given.wait()
        while not task.done():
            task.cancel()
            await asyncio.sleep(0)
        assert (await store.run_info(run.id)).decided == 50

    async def test_a_failed_timed_save_is_raised_on_exit(self, store: Store) -> None:
        """A batch the database refuses (a claim not in the run) is an error at exit, not lost silently."""
        run = await store.begin_run(SETTINGS)

        async def write_unattached() -> None:
            async with store.writer(batch_size=100, max_delay=0.01) as writer:
                await writer.add(result(claim(1), run.id))  # never attached to the run
                await asyncio.sleep(0.1)

        with pytest.raises(StoreError, match=r"crawler\.sqlite: cannot save results: FOREIGN KEY"):
            await write_unattached()

    async def test_a_failed_timed_save_stops_the_next_add(self, store: Store) -> None:
        """Once a timed save has failed, the next result added raises it: a run stops at once rather
        than fetch everything else for nothing."""
        run = await store.begin_run(SETTINGS)
        await store.add_claims(run, [claim(2)])
        added = 0

        async def write() -> None:
            nonlocal added
            async with store.writer(batch_size=100, max_delay=0.01) as writer:
                await writer.add(result(claim(1), run.id))  # never attached to the run
                for _ in range(500):
                    await asyncio.sleep(0.01)
                    await writer.add(result(claim(2), run.id))
                    added += 1

        with pytest.raises(StoreError, match="FOREIGN KEY"):
            await write()
        assert added < 100

    async def test_save_refuses_a_claim_outside_the_run(self, store: Store) -> None:
        """save() is all or nothing: a result for a claim the run doesn't have fails the batch."""
        run = await store.begin_run(SETTINGS)
        await store.add_claims(run, [claim(1)])
        with pytest.raises(StoreError, match="cannot save results: FOREIGN KEY constraint failed"):
            await store.save([result(claim(1), run.id), result(claim(2), run.id)])
        assert (await store.run_info(run.id)).decided == 0


class TestResults:
    async def test_every_contract_field_round_trips(self, store: Store) -> None:
        """results() gives back exactly what was saved, field for field."""
        run = await store.begin_run(SETTINGS)
        item = claim(1, tags={"vendor": "acme", "quote": 'it\'s "fine"'})
        await store.add_claims(run, [item])
        saved = result(
            item,
            run.id,
            Status.NOFOLLOW,
            reason=None,
            flags=(Flag.NOFOLLOW, Flag.SPONSORED, Flag.SOURCE_REDIRECTED),
            http_status=200,
            final_url="https://a.example/final",
            redirects=(Redirect("https://a.example/page-1", 301), Redirect("https://a.example/mid", None)),
            content_type="text/html; charset=utf-8",
            encoding="utf-8",
            bytes=12345,
            elapsed_ms=678,
            attempts=2,
            robots_crawler_allowed=True,
            robots_index_allowed=False,
            meta_robots=("nofollow",),
            x_robots_tag=("noarchive",),
            canonical_url="https://a.example/canonical",
            indexable=False,
            link=Link(
                href="/t",
                url="https://target.example/1",
                text="Ünïcode \u2028 text",
                rel=("nofollow", "sponsored"),
                hidden=True,
                region=Region.FOOTER,
            ),
            links_matched=3,
            outbound_links=42,
        )  # fmt: skip
        stored = await store.save([saved])
        got = [r async for r in store.results(run.id)]
        assert [r.to_dict() for r in got] == [dataclasses.replace(saved, state="live").to_dict()]
        assert stored.results == (dataclasses.replace(saved, state="live"),)  # the state it folded to

    async def test_status_filter_latest_run_and_order(self, store: Store) -> None:
        """Results come in decision order, filtered by status, from the latest run by default."""
        old = await store.begin_run(SETTINGS)
        await store.add_claims(old, [claim(0)])
        await store.save([result(claim(0), old.id)])
        await store.finish_run(old)
        run = await store.begin_run(SETTINGS)
        items = [claim(n) for n in range(BATCH + 10)]
        await store.add_claims(run, items)
        statuses = [Status.VERIFIED, Status.MISSING, Status.BLOCKED]
        await store.save([result(item, run.id, statuses[n % 3]) for n, item in enumerate(items)])
        everything = [r.claim_id async for r in store.results()]
        assert everything == [item.id for item in items]
        wanted = {Status.MISSING, Status.BLOCKED}
        some = [r async for r in store.results(run.id, statuses=wanted)]
        assert len(some) == len([n for n in range(len(items)) if n % 3])
        assert {r.status for r in some} == wanted
        assert [r.claim_id async for r in store.results(old.id)] == [claim(0).id]
        assert [r.claim_id async for r in store.results("latest", statuses=[Status.VERIFIED])][:2] == [
            items[0].id,
            items[3].id,
        ]

    async def test_unknown_run_and_empty_database(self, store: Store) -> None:
        """No runs yet gives no results; an unknown run id is a StoreError."""
        assert [r async for r in store.results()] == []
        with pytest.raises(StoreError, match="nope"):
            [r async for r in store.results("nope")]

    async def test_surrogates_in_a_result_do_not_lose_the_batch(self, store: Store) -> None:
        """Half a surrogate pair (which SQLite can't take) is saved as U+FFFD, the batch kept."""
        run = await store.begin_run(SETTINGS)
        await store.add_claims(run, [claim(1), claim(2)])
        link = Link("/x", "https://target.example/1", "bad \udc80 text", (), False, Region.MAIN)
        await store.save([result(claim(1), run.id, link=link), result(claim(2), run.id)])
        got = {r.claim_id: r async for r in store.results(run.id)}
        saved_link = got[claim(1).id].link
        assert saved_link is not None
        assert saved_link.text == "bad \ufffd text"
        assert claim(2).id in got


class TestReport:
    async def test_counts_by_status_flag_and_tag(self, store: Store) -> None:
        """The report counts results by status, by flag and by tag value, rarest values summed."""
        run = await store.begin_run(SETTINGS)
        items = [claim(n, tags={"vendor": f"v{n % 3}", "note": f"n{n}"}) for n in range(9)]
        await store.add_claims(run, [*items, claim(99)])
        await store.save(
            [
                result(item, run.id, Status.VERIFIED if n < 5 else Status.MISSING)
                for n, item in enumerate(items)
            ]
            + [result(claim(99), run.id, Status.NOFOLLOW, flags=(Flag.NOFOLLOW, Flag.HIDDEN))]
        )
        report = await store.report(max_tag_values=2)
        assert report.run.by_status == {Status.MISSING: 4, Status.NOFOLLOW: 1, Status.VERIFIED: 5}
        assert list(report.run.by_status) == [Status.MISSING, Status.NOFOLLOW, Status.VERIFIED]
        assert report.by_flag == {Flag.HIDDEN: 1, Flag.NOFOLLOW: 1}
        vendors = [tag for tag in report.by_tag if tag.key == "vendor"]
        assert vendors == [
            TagCount("vendor", "v0", {Status.MISSING: 1, Status.VERIFIED: 2}),
            TagCount("vendor", "v1", {Status.MISSING: 1, Status.VERIFIED: 2}),
            TagCount("vendor", None, {Status.MISSING: 2, Status.VERIFIED: 1}),
        ]
        notes = [tag for tag in report.by_tag if tag.key == "note"]
        assert [tag.value for tag in notes] == ["n0", "n1", None]
        assert sum(tag.total for tag in notes) == 9


class TestClose:
    async def test_a_cancelled_close_stops_the_database_thread(self, tmp_path: Path) -> None:
        """A close cancelled at its first await still stops the database's thread (one left waiting
        for work would keep the process from exiting)."""
        before = set(_database_threads())
        store = await Store.open(tmp_path / "db.sqlite")
        (thread,) = set(_database_threads()) - before
        closing = asyncio.create_task(store.close())
        await asyncio.sleep(0)
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        await asyncio.to_thread(thread.join, 10)
        assert not thread.is_alive()

    async def test_closing_twice(self, tmp_path: Path) -> None:
        """close() on a closed store does nothing."""
        store = await Store.open(tmp_path / "db.sqlite")
        await store.close()
        await store.close()

    async def test_interrupted_anywhere_in_close(self, tmp_path: Path) -> None:
        """KeyboardInterrupt (a second SIGTERM) raised at any bytecode of close() never leaves it half
        done: the store is closed (its thread stopped, its hold let go, with the store still
        referenced and no garbage collection to finalise it) or, interrupted before it began,
        untouched; and the thread, a daemon, never keeps the process from exiting."""
        script = _INTERRUPTED_CLOSE.format(path=str(tmp_path / "db.sqlite"))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=100)
        assert process.returncode == 0, err.decode()
        interrupted = int(out.decode().split()[-1])
        assert interrupted > 10  # that many places in close() were tried


def _database_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if "_connection_worker_thread" in thread.name]


# Raises KeyboardInterrupt at the n-th bytecode close() runs, for n = 1, 2, ... until one close
# runs to its end; after each, with the store kept and the collector off, the store is either
# closed (no thread, no hold left) or untouched (then closed again).
_INTERRUPTED_CLOSE = """
import asyncio, gc, sys, threading
gc.disable()
kept = []
from crawler.store.sqlite import SQLiteStore

def threads():
    return [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]

async def close_interrupted_at(at):
    store = await SQLiteStore.open({path!r})
    kept.append(store)
    await store.begin_run({{}})
    seen = 0
    def opcode(frame, event, arg):
        nonlocal seen
        if event == "opcode":
            seen += 1
            if seen == at:
                raise KeyboardInterrupt
        return opcode
    def call(frame, event, arg):
        if frame.f_code is SQLiteStore.close.__code__:
            frame.f_trace_opcodes = True
            return opcode
        return None
    sys.settrace(call)
    try:
        await store.close()
        return False
    except KeyboardInterrupt:
        return True
    finally:
        sys.settrace(None)

async def main():
    at, began = 0, False
    while True:
        at += 1
        interrupted = await close_interrupted_at(at)
        assert all(thread.daemon for thread in threads())
        store = kept[-1]
        if store._connection is not None or store._hold is not None:  # untouched: closed again
            assert store._connection is not None and store._hold is not None, f"half closed at {{at}}"
            assert not began, f"close began, then was left untouched at bytecode {{at}}"
            await store.close()
        else:
            began = True
        for thread in threads():
            await asyncio.to_thread(thread.join, 10)
        assert not threads(), f"thread left running when interrupted at bytecode {{at}}"
        async with SQLiteStore({path!r}) as store:
            await store.begin_run({{}})  # the hold was let go
        if not interrupted:
            print(at - 1)
            return

asyncio.run(main())
"""
