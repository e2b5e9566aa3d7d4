"""Worker processes (`workers` > 1) read pages for the run's process: the same results as one
process, politeness held server side, and a worker that dies fails the run cleanly, resumable."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from contract import TARGET, environ, html, linked, rows
from servers import Server, Servers, redirect, respond

from crawler.core import urls
from crawler.core.urls import MatchMode
from crawler.engine.parsing import PAGES_AHEAD, PoolReader, Read, WorkerError, read_page

DELAY = 0.25
JITTER = 0.08
"""The servers stamp a request when their event loop gets to it, not when it reached the socket:
on a loaded 2-core machine (the crawler, its workers and the servers share it) that lag reaches
some 10 ms, and 60 ms was seen with more processes. A request sent without waiting shows a gap
near 0, far below DELAY - JITTER; and the span of a host's requests must hold DELAY for each gap."""
# Fields that tell two runs apart even when they agree (SPEC section 13).
RUN_FIELDS = ("run_id", "checked_at", "elapsed_ms", "evidence")
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")


async def varied_site(servers: Servers) -> list[Server]:
    """Four hosts with every kind of page: followed, nofollow, noindex, gone, redirected across
    hosts, meta refresh, robots disallow, a windows-1252 page, a link only in <noscript>."""
    robots = respond("User-agent: *\nDisallow: /private\n", content_type="text/plain")
    other = await servers.app(
        {"/robots.txt": robots, "/landing": respond(linked()), "/private": respond(linked())}, HOSTS[1]
    )
    latin = linked(text="caf\xe9").encode("cp1252")
    main = await servers.app(
        {
            "/robots.txt": respond("User-agent: *\nAllow: /\n", content_type="text/plain"),
            "/followed": respond(linked()),
            "/nofollow": respond(linked('rel="nofollow"')),
            "/noindex": respond(linked(), headers={"X-Robots-Tag": "noindex"}),
            "/gone": respond("gone", status=410),
            "/moved": redirect(other.url("/landing")),
            "/refresh": respond(
                html("", f'<meta http-equiv="refresh" content="0; url={other.url("/landing")}">')
            ),
            "/latin": respond(latin, content_type="text/html; charset=windows-1252"),
            "/noscript": respond(html(f'<noscript><a href="{TARGET}">only here</a></noscript>')),
            "/missing": respond(html("<p>nothing</p>")),
            "/image": respond(b"\x89PNG", content_type="image/png"),
        },
        HOSTS[0],
    )
    more = [
        await servers.app({f"/p{n}": respond(linked(text=f"page {n}")) for n in range(12)}, host)
        for host in HOSTS[2:]
    ]
    return [main, other, *more]


def claims_file(sites: list[Server], path: Path) -> Path:
    main, other, *more = sites
    paths = ["/followed", "/nofollow", "/noindex", "/gone", "/moved", "/refresh", "/latin", "/noscript",
             "/missing", "/image"]  # fmt: skip
    urls = [main.url(p) for p in paths] + [other.url("/private")]
    urls += [site.url(f"/p{n}") for site in more for n in range(12)]
    lines = ["source_url,target_url,expected_anchor"] + [f"{url},{TARGET},anchor text" for url in urls]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def crawler(*args: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", *args, cwd=cwd, env=environ(env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def comparable(jsonl: str) -> dict[str, dict[str, Any]]:
    found = {}
    for line in jsonl.splitlines():
        record = json.loads(line)
        found[record["claim_id"]] = {k: v for k, v in record.items() if k not in RUN_FIELDS}
    return found


class TestSameAsOneProcess:
    async def test_every_field_agrees(self, servers: Servers, tmp_path: Path) -> None:
        """The same claims verified with 1 and with 2 workers give the same results, field by field."""
        claims = claims_file(await varied_site(servers), tmp_path / "claims.csv")
        exported = {}
        for workers in ("1", "2"):
            db = f"w{workers}.sqlite"
            code, _, err = await crawler("verify", str(claims), "--db", db, "-q", cwd=tmp_path,
                                         env={"CRAWLER_WORKERS": workers})  # fmt: skip
            assert code == 0, err
            code, out, err = await crawler("export", "--db", db, "--format", "jsonl", cwd=tmp_path, env={})
            assert code == 0, err
            exported[workers] = comparable(out)
        assert len(exported["1"]) == 35
        assert exported["1"] == exported["2"]
        statuses = {record["status"] for record in exported["2"].values()}
        assert statuses >= {"verified", "nofollow", "not_indexable", "page_error", "missing", "blocked"}

    async def test_politeness_holds_server_side(self, servers: Servers, tmp_path: Path) -> None:
        """With 2 workers, each host sees one request at a time and starts at least `delay` apart."""
        sites = await varied_site(servers)
        claims = claims_file(sites, tmp_path / "claims.csv")
        env = {"CRAWLER_WORKERS": "2", "CRAWLER_DELAY": str(DELAY), "CRAWLER_PER_HOST": "1"}
        code, _, err = await crawler("verify", str(claims), "--db", "c.sqlite", "-q", cwd=tmp_path, env=env)
        assert code == 0, err
        for site in sites:
            starts = sorted(site.log.starts())
            assert site.log.peak == 1
            gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
            assert min(gaps) >= DELAY - JITTER
            assert sum(gaps) >= len(gaps) * DELAY - JITTER  # stamping lags cancel out over the span


def workers_of(pid: int) -> list[int]:
    """The worker processes of the command `pid` (its multiprocessing children), from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return [child for child in found if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not reaped yet, is not alive)."""
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


async def slow_run(servers: Servers, tmp_path: Path) -> tuple[Server, Path]:
    """A host of 300 pages answering in 50 ms each, and a claims file for them."""
    slow = await servers.app({f"/p{n}": respond(linked(), delay=0.05) for n in range(300)}, HOSTS[0])
    claims = tmp_path / "claims.csv"
    rows = "".join(f"{slow.url(f'/p{n}')},{TARGET}\n" for n in range(300))
    claims.write_text("source_url,target_url\n" + rows)
    return slow, claims


async def started(server: Server, requests: int) -> None:
    """Returns once `server` has seen `requests` requests: the run is well under way."""
    for _ in range(600):
        if len(server.log.hits) >= requests:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the run never got going")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to find the worker processes")
class TestWorkerDeath:
    async def test_a_killed_worker_fails_the_run_cleanly(self, servers: Servers, tmp_path: Path) -> None:
        """kill -9 of a worker mid-run: the command exits 2 with one line, the run is interrupted,
        and the next verify resumes it to the end."""
        slow, claims = await slow_run(servers, tmp_path)
        env = environ({"CRAWLER_WORKERS": "2", "CRAWLER_PER_HOST": "4"})
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawler", "verify", str(claims), "--db", "c.sqlite", "-q",
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await started(slow, 40)
        workers = workers_of(process.pid)
        assert len(workers) == 2
        os.kill(workers[-1], signal.SIGKILL)
        _, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 2, err.decode()
        assert "worker process died" in err.decode()
        assert "Traceback" not in err.decode()
        assert rows(tmp_path / "c.sqlite", "SELECT status FROM runs") == [("interrupted",)]
        code, _, err2 = await crawler(
            "verify", "--db", "c.sqlite", "-q", cwd=tmp_path, env={"CRAWLER_WORKERS": "2"}
        )
        assert code == 0, err2
        assert rows(tmp_path / "c.sqlite", "SELECT count(*) FROM results") == [(300,)]

    async def test_sigterm_stops_parent_and_workers(self, servers: Servers, tmp_path: Path) -> None:
        """SIGTERM to the command: exit 130, what was decided is saved, no worker is left behind."""
        slow, claims = await slow_run(servers, tmp_path)
        env = environ({"CRAWLER_WORKERS": "2", "CRAWLER_PER_HOST": "4"})
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawler", "verify", str(claims), "--db", "c.sqlite", "-q",
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await started(slow, 40)
        workers = workers_of(process.pid)
        assert len(workers) == 2
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 130, err.decode()
        assert not any(alive(pid) for pid in workers)
        decided = rows(tmp_path / "c.sqlite", "SELECT count(*) FROM results")[0][0]
        assert 0 < decided < 300

    async def test_killing_the_command_ends_its_workers(self, servers: Servers, tmp_path: Path) -> None:
        """kill -9 of the command: its workers end with it (none is left behind holding its pipes)."""
        slow, claims = await slow_run(servers, tmp_path)
        env = environ({"CRAWLER_WORKERS": "2", "CRAWLER_PER_HOST": "4"})
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawler", "verify", str(claims), "--db", "c.sqlite", "-q",
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await started(slow, 40)
        workers = workers_of(process.pid)
        assert len(workers) == 2
        process.kill()
        await asyncio.wait_for(process.communicate(), timeout=30)  # returns once no one holds the pipes
        for _ in range(100):
            if not any(alive(pid) for pid in workers):
                break
            await asyncio.sleep(0.05)
        assert not any(alive(pid) for pid in workers)


class TestPoolReader:
    """The pool itself, in this process: answers reach their questions, errors travel back."""

    async def test_answers_match_their_questions(self) -> None:
        """Pages of different sizes asked all at once: each answer is that of its own page."""
        targets = (urls.Target.of(TARGET, MatchMode.EXACT),)
        bodies = [
            html(f'<p>{"filler " * size}</p><a href="{TARGET}">page {n}</a>').encode()
            for n, size in enumerate([0, 50_000, 10, 200_000, 3, 0, 80_000, 1] * 4)
        ]
        alone = [read_page(body, "text/html", f"http://a.test/{n}", index_agent="googlebot", targets=targets)
                 for n, body in enumerate(bodies)]  # fmt: skip
        async with PoolReader(2) as pool:
            pooled = await asyncio.gather(*(
                pool.read(body, "text/html", f"http://a.test/{n}", index_agent="googlebot", targets=targets)
                for n, body in enumerate(bodies)
            ))  # fmt: skip
        assert pooled == alone
        assert [page.links[0].text for page, _, _ in pooled if page] == [f"page {n}" for n in range(32)]

    async def test_a_failure_in_a_worker_is_that_pages_alone(self) -> None:
        """A page whose reading raises fails with that exception; the next page reads fine."""
        wrong: Any = ("not a target",)
        async with PoolReader(2) as pool:
            with pytest.raises(AttributeError):
                await pool.read(
                    b"<a href=/x>x</a>", "text/html", "http://a.test/", index_agent="g", targets=wrong
                )
            page, _, _ = await pool.read(b"<a href=/x>x</a>", "text/html", "http://a.test/", index_agent="g",
                                         targets=None)  # fmt: skip
        assert page is not None
        assert [link.url for link in page.links] == ["http://a.test/x"]

    async def test_a_killed_worker_fails_every_page_asked(self) -> None:
        """kill -9 of a worker: the pages asked of it and every later page fail with WorkerError."""
        body = html(f"<p>{'filler ' * 100_000}</p>").encode()
        async with PoolReader(2) as pool:
            asked = [asyncio.ensure_future(pool.read(body, "text/html", "http://a.test/", index_agent="g",
                                                     targets=None)) for _ in range(20)]  # fmt: skip
            await asyncio.sleep(0)
            for process in pool.processes:
                os.kill(process, signal.SIGKILL)
            outcomes = await asyncio.gather(*asked, return_exceptions=True)
            assert any(isinstance(outcome, WorkerError) for outcome in outcomes)
            with pytest.raises(WorkerError, match="worker process died"):
                await pool.read(body, "text/html", "http://a.test/", index_agent="g", targets=None)

    async def test_fetching_waits_for_the_readers(self) -> None:
        """With PAGES_AHEAD pages a worker asked and none answered (the worker is stopped), no
        request may start (`room` waits); an answer makes room again."""
        body = html("<p>a page</p>").encode()
        async with PoolReader(1) as pool:

            def ask() -> asyncio.Future[Read]:
                return asyncio.ensure_future(
                    pool.read(body, "text/html", "http://a.test/", index_agent="g", targets=None)
                )

            await ask()  # the worker is up
            (worker,) = pool.processes
            os.kill(worker, signal.SIGSTOP)
            try:
                asked = [ask() for _ in range(PAGES_AHEAD)]
                await asyncio.sleep(0)
                room = asyncio.ensure_future(pool.room())
                done, _ = await asyncio.wait([room], timeout=0.2)
                assert not done  # the stopped worker can't answer: nothing may be fetched
            finally:
                os.kill(worker, signal.SIGCONT)
            await asyncio.wait_for(room, timeout=30)
            assert len(await asyncio.gather(*asked)) == PAGES_AHEAD
