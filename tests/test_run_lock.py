"""One process at a time holds a SQLite database's run (contract, section 7).

A second `verify` while a run is in progress exits 2 naming the process that holds it (pid,
host name, since when), so an overlapping cron job never doubles the load on a host; a run
whose process died (kill -9) is resumed; readers (export, report) never wait for the hold.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from contract import TARGET, cli, environ, linked, rows
from servers import Server, Servers, respond

from crawler.errors import RunHeldError
from crawler.models import Claim
from crawler.store.base import RunStatus
from crawler.store.sqlite import SQLiteStore

PAGES = 6
SINCE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

# Holds the store at argv[1] with a run of the claims argv[3:] -> argv[2], prints the run id, waits.
_HOLDER = """
import asyncio, sys
from crawler.models import Claim
from crawler.store.sqlite import SQLiteStore
async def main():
    store = await SQLiteStore.open(sys.argv[1])
    run = await store.begin_run({})
    await store.add_claims(run, [Claim(url, sys.argv[2], id=f"c{n}") for n, url in enumerate(sys.argv[3:])])
    print(run.id, flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


@pytest.fixture
async def slow(servers: Servers) -> Server:
    """PAGES pages on one host, each answered after 0.2 s: a run takes over a second."""
    routes = {f"/{n}": respond(linked(), delay=0.2) for n in range(PAGES)}
    return await servers.app(routes, host="127.0.0.7")


def write_claims(tmp_path: Path, site: Server) -> None:
    lines = ["id,source_url,target_url"] + [f"c{n},{site.url(f'/{n}')},{TARGET}" for n in range(PAGES)]
    (tmp_path / "claims.csv").write_text("\n".join(lines) + "\n")


@asynccontextmanager
async def holder(db: Path, site: Server) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """Another process holding `db`'s run (of PAGES claims on `site`): it and its run id."""
    urls = [site.url(f"/{n}") for n in range(PAGES)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, str(db), TARGET, *urls, env=environ(), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        yield process, line.decode().strip()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def refusal(stderr: str) -> str:
    """The one error line of a refused command (and no traceback)."""
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("crawler: error:")]
    return line


class TestSecondProcess:
    async def test_second_verify_exits_2_naming_the_holder(self, slow: Server, tmp_path: Path) -> None:
        """While another process holds the run, verify exits 2 naming its pid, host, start and run,
        fetching and importing nothing."""
        write_claims(tmp_path, slow)
        async with holder(tmp_path / "c.sqlite", slow) as (process, run_id):
            for extra in ((), ("--fresh",)):
                done = await cli("verify", "claims.csv", "--db", "c.sqlite", *extra, cwd=tmp_path)
                assert done.code == 2
                line = refusal(done.stderr)
                assert line.startswith("crawler: error: c.sqlite: its run is held by ")
                assert f"process {process.pid} on host {socket.gethostname()}" in line
                assert re.search(f"holding it since {SINCE}, run {run_id}", line)
        assert slow.log.count() == 0
        assert rows(tmp_path / "c.sqlite", "SELECT id, status FROM runs") == [(run_id, "running")]

    async def test_the_run_of_a_killed_holder_is_resumed(self, slow: Server, tmp_path: Path) -> None:
        """After kill -9 of the holder (its lock file left behind), the next verify resumes its run."""
        write_claims(tmp_path, slow)
        async with holder(tmp_path / "c.sqlite", slow) as (process, run_id):
            process.kill()
            await process.wait()
        assert (tmp_path / "c.sqlite.lock").exists()
        done = await cli("verify", "--db", "c.sqlite", "--output", "-", cwd=tmp_path)
        assert done.code == 0, done.stderr
        assert {record["run_id"] for record in done.jsonl()} == {run_id}
        assert len(done.jsonl()) == PAGES
        assert rows(tmp_path / "c.sqlite", "SELECT id, status FROM runs") == [(run_id, "finished")]
        assert not (tmp_path / "c.sqlite.lock").exists()

    async def test_overlapping_cron_jobs_do_not_double_the_requests(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """Two `crawler verify` on one database: the second exits 2 naming the first, which then
        finishes alone; every page is fetched once."""
        gate = asyncio.Event()  # holds the first run's pages until the second verify has been refused

        async def gated(request: web.Request) -> web.StreamResponse:
            await gate.wait()
            return web.Response(text=linked(), content_type="text/html")

        site = await servers.app({"/0": respond(linked()), **{f"/{n}": gated for n in range(1, PAGES)}})
        write_claims(tmp_path, site)
        args = ("verify", "claims.csv", "--db", "c.sqlite")
        first = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawler", *args, "--output", "out.jsonl",
            cwd=tmp_path, env=environ(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        output = tmp_path / "out.jsonl"
        for _ in range(1500):  # polls the file the first process writes: there is no event to wait on
            if output.exists() and output.read_text().count("\n") >= 1:
                break
            await asyncio.sleep(0.02)
        second = await cli(*args, cwd=tmp_path)
        gate.set()
        _, first_stderr = await asyncio.wait_for(first.communicate(), timeout=60)
        assert first.returncode == 0, first_stderr.decode()
        assert second.code == 2
        assert f"process {first.pid} on host {socket.gethostname()}" in refusal(second.stderr)
        assert [site.log.count(f"/{n}") for n in range(PAGES)] == [1] * PAGES
        assert rows(tmp_path / "c.sqlite", "SELECT count(*), count(DISTINCT claim_id) FROM results") == [
            (PAGES, PAGES)
        ]

    async def test_readers_work_beside_the_holder(self, slow: Server, tmp_path: Path) -> None:
        """export and report never take the hold: they read the held run while it runs."""
        async with holder(tmp_path / "c.sqlite", slow) as (_, run_id):
            exported = await cli("export", "--db", "c.sqlite", "--format", "jsonl", cwd=tmp_path)
            reported = await cli("report", "--db", "c.sqlite", "--format", "json", cwd=tmp_path)
        assert (exported.code, exported.stdout) == (0, "")
        assert reported.code == 0, reported.stderr
        summary = json.loads(reported.stdout)["run"]
        assert (summary["id"], summary["state"]) == (run_id, "running")

    async def test_the_lock_file_names_the_holder_and_goes_with_the_run(
        self, slow: Server, tmp_path: Path
    ) -> None:
        """`<db>.lock` holds one JSON line naming the holder while it runs, and is gone after."""
        write_claims(tmp_path, slow)
        async with holder(tmp_path / "c.sqlite", slow) as (process, run_id):
            line = (tmp_path / "c.sqlite.lock").read_text().splitlines()[0]
            written = json.loads(line)
            assert (written["pid"], written["host"], written["run"]) == (
                process.pid,
                socket.gethostname(),
                run_id,
            )
            assert re.fullmatch(SINCE, written["since"])
            process.send_signal(signal.SIGKILL)
        done = await cli("verify", "--db", "c.sqlite", cwd=tmp_path)
        assert done.code == 0, done.stderr
        assert sorted(os.listdir(tmp_path)) == ["c.sqlite", "claims.csv"]


class TestOneProcess:
    async def test_a_second_store_is_refused_until_the_first_lets_go(self, tmp_path: Path) -> None:
        """Two stores on one file in one process: the second can't begin while the first holds the
        run; once the first finishes it, the second begins the next one."""
        path = tmp_path / "db.sqlite"
        async with SQLiteStore(path) as first, SQLiteStore(path) as second:
            run = await first.begin_run({})
            with pytest.raises(RunHeldError, match=f"held by process {os.getpid()} on host "):
                await second.begin_run({}, fresh=True)
            assert (await second.run_info()).status is RunStatus.RUNNING  # fresh did not touch it
            await first.finish_run(run)
            after = await second.begin_run({})
        assert (after.resumed, after.id != run.id) == (False, True)

    async def test_close_lets_go_and_the_next_store_resumes(self, tmp_path: Path) -> None:
        """Closing a store that did not finish its run lets go of it; the next store resumes it."""
        path = tmp_path / "db.sqlite"
        async with SQLiteStore(path) as store:
            run = await store.begin_run({})
        async with SQLiteStore(path) as store:
            again = await store.begin_run({})
        assert (again.id, again.resumed) == (run.id, True)

    async def test_the_holder_may_begin_again(self, tmp_path: Path) -> None:
        """The store that holds the run may call begin_run again (verify_into twice on one store)."""
        async with SQLiteStore(tmp_path / "db.sqlite") as store:
            run = await store.begin_run({})
            assert (await store.begin_run({})).id == run.id

    async def test_a_link_to_the_database_is_the_same_database(self, tmp_path: Path) -> None:
        """A symbolic link to the database shares its hold."""
        path = tmp_path / "db.sqlite"
        (tmp_path / "link.sqlite").symlink_to(path)
        async with SQLiteStore(path) as store, SQLiteStore(tmp_path / "link.sqlite") as aliased:
            await store.begin_run({})
            with pytest.raises(RunHeldError, match=r"link\.sqlite: its run is held by process"):
                await aliased.begin_run({})

    async def test_readers_never_take_the_hold(self, tmp_path: Path) -> None:
        """results, run_info, runs and report of another store work while a run is held."""
        path = tmp_path / "db.sqlite"
        async with SQLiteStore(path) as store, SQLiteStore(path) as reader:
            run = await store.begin_run({})
            await store.add_claims(run, [Claim("https://a.example/", TARGET)])
            assert [result async for result in reader.results()] == []
            assert (await reader.run_info()).claims == 1
            assert [info.id for info in await reader.runs()] == [run.id]
            assert (await reader.report()).run.id == run.id

    async def test_a_lock_file_left_behind_is_taken_over(self, tmp_path: Path) -> None:
        """A lock file whose holder is gone (nobody has it locked) does not stop a run, whatever it says."""
        path = tmp_path / "db.sqlite"
        stale = {"pid": 1, "host": "elsewhere", "since": "2020-01-01T00:00:00.000Z", "run": "old"}
        (tmp_path / "db.sqlite.lock").write_text(json.dumps(stale) + "\n" + "x" * 500)
        async with SQLiteStore(path) as store:
            run = await store.begin_run({})
            written = json.loads((tmp_path / "db.sqlite.lock").read_text())
            assert (written["pid"], written["run"]) == (os.getpid(), run.id)

    async def test_a_holder_that_has_not_said_who_it_is(self, tmp_path: Path) -> None:
        """A lock taken by a process that wrote nothing (yet) is still a refusal, saying so."""
        import fcntl

        path = tmp_path / "db.sqlite"
        with (tmp_path / "db.sqlite.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            async with SQLiteStore(path) as store:
                with pytest.raises(RunHeldError, match=r"held by another process \(which has not said who"):
                    await store.begin_run({})
