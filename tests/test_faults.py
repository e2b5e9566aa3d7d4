"""Crashes and stops of `crawler verify` (a real subprocess, a real SQLite file): nothing lost, nothing twice.

kill -9 lands at seeded random moments (during start-up, import, fetching, saving); the same
command is then run again, as a scheduler would. SIGTERM must end the process within 10 s with
exit code 130 and every result it had decided saved.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from servers import Server, Servers, respond

# Real processes killed and stopped over and over: seconds each (kill -9 trials take ~17 s).
pytestmark = pytest.mark.slow

TARGET = "https://target.example/landing"
LINKED = f'<html><body><main><a href="{TARGET}">anchor</a></main></body></html>'
SEED = 20_260_521
TRIALS = 10
CLAIMS = 40
PAGE_SECONDS = 0.2
# Half the kills land this long after the process starts (start-up takes about half a second):
# imports, opening the database, the claims import; the others this long after the trial's
# first request reached the server: fetching, deciding, saving (every second).
STARTUP_WINDOW = (0.05, 0.8)
CRAWL_WINDOW = (0.1, 2.5)


def _environ() -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CRAWLER_")}
    return {**environ, "CRAWLER_ALLOW_PRIVATE": "true", "CRAWLER_DELAY": "0"}


async def start(*args: str, cwd: Path) -> asyncio.subprocess.Process:
    """`python -m crawler ARGS`, its output discarded, without blocking the loop serving the sites."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", *args,
        cwd=cwd, env=_environ(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def finish(process: asyncio.subprocess.Process, seconds: float = 60) -> str:
    _, err = await asyncio.wait_for(process.communicate(), timeout=seconds)
    return err.decode(errors="replace")


def rows(db: Path, sql: str, *parameters: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, parameters).fetchall()


def has_schema(db: Path) -> bool:
    """Whether the store built its tables: SQLite makes the file when it opens it, and the schema
    follows in a transaction of its own, so a kill between the two leaves an empty database (one
    the next command builds on, as the kill test's re-runs show)."""
    return db.exists() and rows(db, "PRAGMA user_version") != [(0,)]


def assert_consistent(db: Path) -> None:
    """The database is sound and no claim has two results in one run."""
    if not db.exists():
        return  # killed before the store opened it
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    if not has_schema(db):
        assert rows(db, "SELECT count(*) FROM sqlite_master") == [(0,)]  # empty, not half-built
        return
    twice = rows(db, "SELECT run_id, claim_id FROM results GROUP BY run_id, claim_id HAVING count(*) > 1")
    assert twice == []


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]  # a line cut by the stop is not a decided result
    return [json.loads(line) for line in complete.splitlines()]


async def until_requested(host: Server, process: asyncio.subprocess.Process) -> None:
    """Wait for the next request to reach `host`."""
    seen = host.log.count()
    deadline = time.monotonic() + 30
    while host.log.count() == seen:
        assert process.returncode is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline, "no request reached the site in 30 s"
        await asyncio.sleep(0.01)


async def until_lines(path: Path, count: int, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 30
    while len(lines(path)) < count:
        assert process.returncode is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline, f"fewer than {count} results in {path.name} after 30 s"
        await asyncio.sleep(0.02)


def claims_file(tmp_path: Path, sources: list[str]) -> str:
    body = "".join(f"k{n:02},{source},{TARGET}\n" for n, source in enumerate(sources))
    (tmp_path / "claims.csv").write_text("id,source_url,target_url\n" + body, encoding="utf-8")
    return "claims.csv"


class TestKill9:
    async def test_random_kills_then_rerun(self, servers: Servers, tmp_path: Path) -> None:
        """Ten kill -9 at seeded random moments, each run again: one result per claim, a sound file."""
        host = await servers.app({"/p/{n}": respond(LINKED, delay=PAGE_SECONDS)}, "127.0.0.2")
        sources = [host.url(f"/p/{n}") for n in range(CLAIMS)]
        command = ("verify", claims_file(tmp_path, sources), "--db", "c.sqlite", "--quiet")
        db = tmp_path / "c.sqlite"
        rng = random.Random(SEED)
        for _ in range(TRIALS):
            process = await start(*command, cwd=tmp_path)
            if rng.random() < 0.5:  # start-up: imports, opening the database, importing claims
                await asyncio.sleep(rng.uniform(*STARTUP_WINDOW))
            else:  # the crawl: timed from its first request, so a slow start-up doesn't shift it
                await until_requested(host, process)
                await asyncio.sleep(rng.uniform(*CRAWL_WINDOW))
            process.kill()
            await finish(process)
            assert_consistent(db)
        decided_before_last = rows(db, "SELECT count(*) FROM results")[0][0]

        last = await start(*command, cwd=tmp_path)
        err = await finish(last)
        assert last.returncode == 0, err
        assert_consistent(db)
        # A kill landing after a run's end leaves it finished; the next command then starts a
        # re-check. Every run but the last must then be whole.
        runs = rows(db, "SELECT id, status FROM runs ORDER BY rowid")
        assert {status for _, status in runs} == {"finished"}
        for run_id, _ in runs:
            decided = rows(db, "SELECT claim_id FROM results WHERE run_id = ? ORDER BY claim_id", run_id)
            assert decided == [(f"k{n:02}",) for n in range(CLAIMS)]
        assert rows(db, "SELECT count(*) FROM claims") == [(CLAIMS,)]
        assert decided_before_last > 0  # the kills interrupted real work, some of it saved
        # A kill loses the results not yet saved (the writer saves every second) and the
        # requests in flight: a few pages are fetched again, never many.
        fetched = host.log.count() - host.log.count("/robots.txt")
        assert CLAIMS <= fetched <= len(runs) * CLAIMS + TRIALS * (1.0 / PAGE_SECONDS + 2)


class TestSigterm:
    async def test_stop_with_requests_in_flight(self, servers: Servers, tmp_path: Path) -> None:
        """SIGTERM while pages hang: exit 130 within 10 s, every result written out is in the database."""
        released = asyncio.Event()

        async def hanging(request: web.Request) -> web.StreamResponse:
            await released.wait()
            return web.Response(text=LINKED, content_type="text/html")

        quick = [await servers.app({"/p/{n}": respond(LINKED)}, f"127.0.0.{2 + i}") for i in (0, 1)]
        stuck = [await servers.app({"/p/{n}": hanging}, f"127.0.0.{4 + i}") for i in (0, 1)]
        sources = [host.url(f"/p/{n}") for n in range(5) for host in [*quick, *stuck]]
        out, db = tmp_path / "out.jsonl", tmp_path / "c.sqlite"
        command = ("verify", claims_file(tmp_path, sources), "--db", "c.sqlite", "--quiet")
        process = await start(*command, "--output", str(out), cwd=tmp_path)
        await until_lines(out, 10, process)  # every page of the quick hosts
        await asyncio.sleep(0.3)
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        err = await finish(process, seconds=30)
        assert (process.returncode, time.monotonic() - stopped < 10) == (130, True), err
        assert_consistent(db)
        written = {(line["claim_id"], line["status"]) for line in lines(out)}
        saved = set(rows(db, "SELECT claim_id, status FROM results"))
        assert written == saved
        assert len(saved) == 10
        assert rows(db, "SELECT status FROM runs") == [("interrupted",)]
        assert sum(host.log.count() for host in stuck) >= 2  # their requests were in flight

        released.set()
        resumed = await start(*command, cwd=tmp_path)
        err = await finish(resumed)
        assert resumed.returncode == 0, err
        per_claim = rows(db, "SELECT claim_id, count(*) FROM results GROUP BY claim_id")
        assert sorted(per_claim) == [(f"k{n:02}", 1) for n in range(len(sources))]
        assert [host.log.count(f"/p/{n}") for host in quick for n in range(5)] == [1] * 10

    @pytest.mark.parametrize("moment", [0.05, 0.4, 0.8])
    async def test_stop_at_any_moment(self, servers: Servers, tmp_path: Path, moment: float) -> None:
        """SIGTERM during start-up, import or the crawl: 130 (or a clean finish) fast, and a sound file."""
        host = await servers.app({"/p/{n}": respond(LINKED, delay=PAGE_SECONDS)}, "127.0.0.2")
        out, db = tmp_path / "out.jsonl", tmp_path / "c.sqlite"
        sources = [host.url(f"/p/{n}") for n in range(20)]
        command = ("verify", claims_file(tmp_path, sources), "--db", "c.sqlite", "--quiet")
        process = await start(*command, "--output", str(out), cwd=tmp_path)
        await asyncio.sleep(moment)
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        err = await finish(process, seconds=30)
        # Before its handlers are set, Python's default for SIGTERM ends the process at once.
        assert process.returncode in (130, -signal.SIGTERM), err
        assert time.monotonic() - stopped < 10
        assert_consistent(db)
        if has_schema(db) and rows(db, "SELECT count(*) FROM runs") != [(0,)]:
            saved = set(rows(db, "SELECT claim_id, status FROM results"))
            assert {(line["claim_id"], line["status"]) for line in lines(out)} <= saved
