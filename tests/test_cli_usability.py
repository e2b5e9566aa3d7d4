"""What a newcomer and an adversarial tester met on the command line, each fixed and held here:
real subprocesses, real SQLite files, real loopback servers."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import pytest
from servers import Server, Servers, respond
from test_cli import PAGES, TARGET, _claims_csv, _jsonl, crawler

import crawler as library


@pytest.fixture
async def site(servers: Servers) -> Server:
    """The test_cli site: verified, nofollow, missing and 404 pages on one loopback host."""
    return await servers.app({path: respond(body, content_type=kind) for path, (body, kind) in PAGES.items()})


class TestHelpAndGlobalOptions:
    async def test_bare_command_prints_help(self, tmp_path: Path) -> None:
        """`crawler` alone shows what it can do (exit 0), not an error."""
        done = await crawler(cwd=tmp_path)
        assert done.code == 0
        assert "verify" in done.stdout
        assert "usage:" in done.stdout

    async def test_global_options_before_the_command(self, site: Server, tmp_path: Path) -> None:
        """`crawler --db x report` and `crawler --db=x -q export` work as they do after the command."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        assert (await crawler("verify", str(claims), "--db", "c.sqlite", "-q", cwd=tmp_path)).code == 0
        report = await crawler("--db", "c.sqlite", "report", "--format", "json", cwd=tmp_path)
        assert report.code == 0, report.stderr
        assert '"verified": 1' in report.stdout
        export = await crawler("--db=c.sqlite", "-q", "export", "--format", "jsonl", cwd=tmp_path)
        assert export.code == 0, export.stderr
        assert len(_jsonl(export.stdout)) == 5

    async def test_empty_default_reads_none_in_help(self, tmp_path: Path) -> None:
        """A setting whose default is empty says "(default: none)", not "(default: )" or "None"."""
        done = await crawler("verify", "--help", cwd=tmp_path)
        proxy = " ".join(done.stdout.split("\n  --proxy PROXY", 1)[1].split("\n  --", 1)[0].split())
        assert "(default: none)" in proxy

    async def test_quiet_demo_prints_nothing(self, tmp_path: Path) -> None:
        """`crawler demo -q` prints no tables: warnings and errors only."""
        done = await crawler("demo", "-q", cwd=tmp_path)
        assert done.code == 0, done.stderr
        assert done.stdout == ""

    async def test_a_worker_on_a_sqlite_database_is_refused(self, site: Server, tmp_path: Path) -> None:
        """`crawler worker` needs PostgreSQL: on a SQLite database, one line naming it, exit 2, and
        the database's run left to the process that holds it."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        assert (await crawler("verify", str(claims), "--db", "c.sqlite", "-q", cwd=tmp_path)).code == 0
        before = (tmp_path / "c.sqlite").read_bytes()
        done = await crawler("worker", "--db", "c.sqlite", cwd=tmp_path)
        assert done.code == 2
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "worker needs a PostgreSQL --db (postgresql://...), not c.sqlite" in done.stderr
        assert (tmp_path / "c.sqlite").read_bytes() == before


@pytest.mark.parametrize("option", ["--output", "--events"])
class TestOutputNeverDestroysInputs:
    async def test_output_naming_an_input_is_refused(self, site: Server, tmp_path: Path, option: str) -> None:
        """`--output` or `--events` naming a claims file exits 2 and leaves the file as it was."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        before = claims.read_bytes()
        done = await crawler("verify", str(claims), "--db", "c.sqlite", option, "claims.csv", cwd=tmp_path)
        assert done.code == 2
        assert f"{option} claims.csv: names {claims}" in done.stderr
        assert claims.read_bytes() == before
        assert not (tmp_path / "c.sqlite").exists()

    async def test_output_naming_the_database_through_a_link_is_refused(
        self, site: Server, tmp_path: Path, option: str
    ) -> None:
        """A hard link to the database is the database: exit 2, earlier runs kept."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        assert (await crawler("verify", str(claims), "--db", "c.sqlite", "-q", cwd=tmp_path)).code == 0
        os.link(tmp_path / "c.sqlite", tmp_path / "other-name")
        done = await crawler("verify", "--db", "c.sqlite", option, "other-name", cwd=tmp_path)
        assert done.code == 2
        assert f"{option} other-name: names c.sqlite" in done.stderr
        with sqlite3.connect(tmp_path / "c.sqlite") as db:
            assert db.execute("SELECT count(*) FROM runs").fetchone() == (1,)


class TestHints:
    async def test_fail_on_names_what_matched(self, site: Server, tmp_path: Path) -> None:
        """Exit 1 from --fail-on says which statuses caused it, with their counts."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        done = await crawler(
            "verify", str(claims), "--db", "c.sqlite", "--fail-on", "missing,nofollow", cwd=tmp_path
        )
        assert done.code == 1
        assert "--fail-on matched 1 missing, 1 nofollow" in done.stderr

    async def test_forbidden_addresses_name_allow_private(self, site: Server, tmp_path: Path) -> None:
        """Pages on loopback blocked by the address guard: the run says why and names --allow-private."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        env = {"CRAWLER_ALLOW_PRIVATE": "false"}
        done = await crawler("verify", str(claims), "--db", "c.sqlite", "-q", cwd=tmp_path, env=env)
        assert done.code == 0
        hint = [line for line in _jsonl(done.stderr) if "--allow-private" in line["event"]]
        assert len(hint) == 1
        assert hint[0]["event"].startswith("4 claim(s) blocked")

    async def test_new_input_joining_a_resumed_run_is_said(self, site: Server, tmp_path: Path) -> None:
        """A claims file given while an interrupted run is resumed is logged, with the --fresh hint."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        assert (await crawler("verify", str(claims), "--db", "c.sqlite", "-q", cwd=tmp_path)).code == 0
        with sqlite3.connect(tmp_path / "c.sqlite") as db:
            db.execute("UPDATE runs SET status = 'interrupted'")
        done = await crawler("verify", str(claims), "--db", "c.sqlite", cwd=tmp_path)
        assert done.code == 0
        warned = [line for line in _jsonl(done.stderr) if line["event"].startswith("new claims join")]
        assert len(warned) == 1
        assert "--fresh" in warned[0]["hint"]


class TestLibraryRuns:
    async def test_library_run_ids_look_like_the_commands(self, site: Server) -> None:
        """A run id made by `crawler.verify` has the command's shape: start time and six hex digits."""
        claims = [library.Claim(site.url("/verified"), TARGET)]
        settings = library.Settings(allow_private=True, delay=0, retries=0)
        results = [result async for result in library.verify(claims, settings)]
        assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", results[0].run_id)

    @pytest.mark.parametrize("name", ["localhost", "localhost.", "app.localhost", "APP.LOCALHOST."])
    async def test_localhost_names_are_forbidden_without_dns(self, site: Server, name: str) -> None:
        """`localhost` names are loopback by definition: blocked as forbidden_address, never a DNS error."""
        url = f"http://{name}:{site.port}/verified"
        settings = library.Settings(delay=0, retries=0, obey_robots=False)
        (result,) = [result async for result in library.verify([library.Claim(url, TARGET)], settings)]
        assert (result.status, result.reason) == (library.Status.BLOCKED, "forbidden_address")


class TestRuns:
    async def test_every_run_newest_first_with_named_keys(self, site: Server, tmp_path: Path) -> None:
        """`crawler runs --format jsonl`: one object a run, newest first, the contract's keys."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        for _ in range(2):
            assert (await crawler("verify", str(claims), "--db", "c.sqlite", "-q", cwd=tmp_path)).code == 0
        done = await crawler("runs", "--db", "c.sqlite", "--format", "jsonl", cwd=tmp_path)
        assert done.code == 0, done.stderr
        runs = _jsonl(done.stdout)
        assert [list(run) for run in runs] == [
            ["id", "started_at", "finished_at", "state", "claims", "decided", "counts"]
        ] * 2
        assert runs[0]["started_at"] > runs[1]["started_at"]  # ids of one second sort at random
        assert runs[0]["state"] == "finished"
        assert runs[0]["counts"] == {
            "invalid": 1,
            "page_error": 1,
            "missing": 1,
            "nofollow": 1,
            "verified": 1,
        }
        table = await crawler("runs", "--db", "c.sqlite", cwd=tmp_path)
        assert runs[1]["id"] in table.stdout
