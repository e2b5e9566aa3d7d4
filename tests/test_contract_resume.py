"""Contract, section 7: an interrupted `crawler verify` exits 130 with what it decided saved, the next
`verify` resumes the run without fetching decided pages again, and `--fresh` starts a new run.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest
from contract import TARGET, cli, environ, linked, rows
from servers import Server, Servers, respond

PAGES = 8


@pytest.fixture
async def slow(servers: Servers) -> Server:
    """PAGES pages on one host, each answered after 0.15 s: a run takes over a second."""
    routes = {f"/{n}": respond(linked(), delay=0.15) for n in range(PAGES)}
    return await servers.app(routes, host="127.0.0.6")


def claims(tmp_path: Path, site: Server) -> None:
    lines = ["id,source_url,target_url"] + [f"c{n},{site.url(f'/{n}')},{TARGET}" for n in range(PAGES)]
    (tmp_path / "claims.csv").write_text("\n".join(lines) + "\n")


async def interrupted(tmp_path: Path, how: signal.Signals, after: int) -> int:
    """Start `verify claims.csv`, send `how` once `after` results are out; its exit code."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", "verify", "claims.csv", "--db", "c.sqlite", "--output", "out.jsonl",
        cwd=tmp_path, env=environ(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    output = tmp_path / "out.jsonl"
    async with asyncio.timeout(30):
        for _ in range(1500):  # polls the file the process writes: there is no event to wait on
            if output.exists() and output.read_text().count("\n") >= after:
                break
            await asyncio.sleep(0.02)
        process.send_signal(how)
        return await process.wait()


def decided(tmp_path: Path) -> dict[str, str]:
    """claim id -> run id of every result in the database."""
    return dict(rows(tmp_path / "c.sqlite", "SELECT claim_id, run_id FROM results"))


@pytest.mark.slow  # runs stopped by a signal, then resumed: 2 to 4 s each
class TestInterrupt:
    async def test_sigint_exits_130_and_resume_skips_decided(self, slow: Server, tmp_path: Path) -> None:
        """SIGINT exits 130 with results saved; the next verify resumes the run and skips decided claims."""
        claims(tmp_path, slow)
        assert await interrupted(tmp_path, signal.SIGINT, after=2) == 130
        saved = decided(tmp_path)
        assert 2 <= len(saved) < PAGES
        assert rows(tmp_path / "c.sqlite", "SELECT status FROM runs") == [("interrupted",)]
        (run_id,) = set(saved.values())
        done = await cli("verify", "--db", "c.sqlite", "--output", "-", cwd=tmp_path)
        assert done.code == 0, done.stderr
        assert {record["run_id"] for record in done.jsonl()} == {run_id}
        assert {record["claim_id"] for record in done.jsonl()}.isdisjoint(saved)
        assert len(decided(tmp_path)) == PAGES
        for claim_id in saved:
            assert slow.log.count(f"/{claim_id[1:]}") == 1  # decided before: not fetched again
        assert rows(tmp_path / "c.sqlite", "SELECT id, status FROM runs") == [(run_id, "finished")]

    async def test_kill_9_resumed(self, slow: Server, tmp_path: Path) -> None:
        """After kill -9 the run is resumed by the next verify (with the same input), one result a claim."""
        claims(tmp_path, slow)
        assert await interrupted(tmp_path, signal.SIGKILL, after=3) == -signal.SIGKILL
        done = await cli("verify", "claims.csv", "--db", "c.sqlite", cwd=tmp_path)
        assert done.code == 0, done.stderr
        runs = rows(tmp_path / "c.sqlite", "SELECT id, status FROM runs")
        assert [status for _, status in runs] == ["finished"]
        assert rows(tmp_path / "c.sqlite", "SELECT count(*), count(DISTINCT claim_id) FROM results") == [
            (PAGES, PAGES)
        ]
        assert rows(tmp_path / "c.sqlite", "SELECT count(*) FROM claims") == [(PAGES,)]

    async def test_fresh_starts_a_new_run(self, slow: Server, tmp_path: Path) -> None:
        """SIGTERM exits 130 too; --fresh then starts a new run, keeping the interrupted run's results."""
        claims(tmp_path, slow)
        assert await interrupted(tmp_path, signal.SIGTERM, after=1) == 130
        before = decided(tmp_path)
        done = await cli("verify", "--db", "c.sqlite", "--fresh", "--output", "-", cwd=tmp_path)
        assert done.code == 0, done.stderr
        assert len(done.jsonl()) == PAGES
        runs = rows(tmp_path / "c.sqlite", "SELECT id, status FROM runs ORDER BY rowid")
        assert [status for _, status in runs] == ["interrupted", "finished"]
        assert {record["run_id"] for record in done.jsonl()} == {runs[1][0]}
        kept = rows(tmp_path / "c.sqlite", "SELECT count(*) FROM results WHERE run_id = ?", (runs[0][0],))
        assert kept == [(len(before),)]
