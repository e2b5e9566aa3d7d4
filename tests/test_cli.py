"""The `crawler` command end to end: real subprocesses, real SQLite files, real loopback servers."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from servers import Server, Servers, respond

from crawler.app import display, run
from crawler.app.export import csv_header, csv_row, neutralise
from crawler.models import Flag, Link, Region, Result, Status
from crawler.store.base import ClaimFields

# The output contract's field names (SPEC section 2), written out: the test must not trust the code.
CONTRACT_FIELDS = [
    "claim_id", "source_url", "target_url", "tags", "run_id", "checked_at", "state", "body_sha256",
    "status", "reason", "flags", "http_status", "final_url", "redirects", "content_type", "encoding",
    "bytes", "elapsed_ms", "attempts", "robots_crawler_allowed", "robots_index_allowed", "meta_robots",
    "x_robots_tag", "canonical_url", "indexable", "link", "links_matched", "outbound_links", "evidence",
]  # fmt: skip
TARGET = "https://target.example/product"
PAGES = {
    "/robots.txt": ("User-agent: *\nAllow: /\n", "text/plain"),
    "/verified": (f'<html><body><main><a href="{TARGET}">Great product</a></main></body></html>', None),
    "/nofollow": (f'<html><body><a rel="nofollow" href="{TARGET}">Great product</a></body></html>', None),
    "/missing": ("<html><body><p>No links here.</p></body></html>", None),
}


@dataclass(frozen=True, slots=True)
class Done:
    code: int
    stdout: str
    stderr: str
    seconds: float


@pytest.fixture
async def site(servers: Servers) -> Server:
    """A small site on 127.0.0.2: one page per status it can produce, and a 404."""
    routes = {
        path: respond(body, content_type=kind or "text/html; charset=utf-8")
        for path, (body, kind) in PAGES.items()
    }
    routes["/gone"] = respond("<h1>Not found</h1>", status=404)
    return await servers.app(routes, host="127.0.0.2")


def _environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CRAWLER_")}
    return {**environ, "CRAWLER_ALLOW_PRIVATE": "true", "CRAWLER_DELAY": "0", **(extra or {})}


async def crawler(
    *args: str, cwd: Path, stdin: bytes | None = None, env: Mapping[str, str] | None = None
) -> Done:
    """Run `python -m crawler ARGS` without blocking the loop that serves the test site."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", *args,
        cwd=cwd, env=_environ(env),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=90)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode(), time.monotonic() - started)


def _claims_csv(site: Server, path: Path, *, extra: str = "") -> Path:
    rows = [
        "id,source_url,target_url,expected_anchor,vendor,note",
        f'c1,{site.url("/verified")},{TARGET},great product,acme,=HYPERLINK("http://evil.example")',
        f"c2,{site.url('/nofollow')},{TARGET},,acme,",
        f"c3,{site.url('/missing')},{TARGET},,globex,",
        f"c4,{site.url('/gone')},{TARGET},,globex,",
        f"c5,ftp://files.example/x,{TARGET},,globex,",
    ]
    path.write_text("\n".join(rows) + "\n" + extra, encoding="utf-8")
    return path


EXPECTED = {"c1": "verified", "c2": "nofollow", "c3": "missing", "c4": "page_error", "c5": "invalid"}


def _db_rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


def _jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class TestVerify:
    async def test_verify_then_export_every_format(self, site: Server, tmp_path: Path) -> None:
        """verify stores a result per claim; export prints JSONL, JSON and CSV with the contract's fields."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        done = await crawler("verify", str(claims), "--db", "c.sqlite", cwd=tmp_path)
        assert done.code == 0, done.stderr
        assert "verified" in done.stdout  # the summary table
        events = [line["event"] for line in _jsonl(done.stderr)]  # JSON logs off a terminal
        assert events == ["run started", "claims imported", "run finished"]  # nothing per claim
        finished = _jsonl(done.stderr)[-1]
        assert (finished["claims"], finished["decided"], finished["verified"]) == (5, 5, 1)

        jsonl = await crawler("export", "--db", "c.sqlite", "--format", "jsonl", cwd=tmp_path)
        records = _jsonl(jsonl.stdout)
        assert {r["claim_id"]: r["status"] for r in records} == EXPECTED
        paid_for = ["expected_anchor", "expected_rel", "match"]
        assert all(list(record) == CONTRACT_FIELDS + paid_for for record in records)
        assert [r["claim_id"] for r in records] == ["c1", "c2", "c3", "c4", "c5"]  # input order
        by_id = {r["claim_id"]: r for r in records}
        assert by_id["c1"]["link"] == {
            "href": TARGET, "url": TARGET, "text": "Great product", "image": False,
            "rel": [], "hidden": False, "region": "main",
        }  # fmt: skip
        assert by_id["c1"]["tags"] == {"vendor": "acme", "note": '=HYPERLINK("http://evil.example")'}
        assert by_id["c4"]["reason"] == "http_404"
        assert str(by_id["c5"]["reason"]).startswith("row 6: source_url")

        as_json = await crawler("export", "--db", "c.sqlite", "--format", "json", cwd=tmp_path)
        assert json.loads(as_json.stdout) == records

        as_csv = await crawler("export", "--db", "c.sqlite", "--format", "csv", cwd=tmp_path)
        rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
        assert {row["claim_id"]: row["status"] for row in rows} == EXPECTED
        assert set(CONTRACT_FIELDS) <= set(rows[0])
        first = next(row for row in rows if row["claim_id"] == "c1")
        assert first["tag:note"] == '\'=HYPERLINK("http://evil.example")'  # neutralised for spreadsheets
        assert first["tag:vendor"] == "acme"
        assert json.loads(first["link"])["text"] == "Great product"
        assert (first["link_text"], first["link_region"], first["indexable"]) == (
            "Great product",
            "main",
            "true",
        )

    async def test_export_filters_by_status_and_run(self, site: Server, tmp_path: Path) -> None:
        """--status keeps the statuses asked for; --run picks a run by id; an unknown run exits 2."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        assert (await crawler("verify", str(claims), "--db", "c.sqlite", cwd=tmp_path)).code == 0
        [(run_id,)] = _db_rows(tmp_path / "c.sqlite", "SELECT id FROM runs")
        done = await crawler(
            "export", "--db", "c.sqlite", "--format", "jsonl",
            "--status", "missing,nofollow", "--run", str(run_id), cwd=tmp_path,
        )  # fmt: skip
        assert sorted(r["status"] for r in _jsonl(done.stdout)) == ["missing", "nofollow"]
        unknown = await crawler("export", "--db", "c.sqlite", "--run", "no-such-run", cwd=tmp_path)
        assert unknown.code == 2
        assert "no-such-run" in unknown.stderr
        bad_status = await crawler("export", "--db", "c.sqlite", "--status", "lost", cwd=tmp_path)
        assert bad_status.code == 2
        assert "--status" in bad_status.stderr

    async def test_report_counts_by_status_flag_and_tag(self, site: Server, tmp_path: Path) -> None:
        """report gives counts by status, by flag and by each tag value, as JSON and as a table."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        assert (await crawler("verify", str(claims), "--db", "c.sqlite", cwd=tmp_path)).code == 0
        done = await crawler("report", "--db", "c.sqlite", "--format", "json", cwd=tmp_path)
        report = json.loads(done.stdout)
        assert report["statuses"] == {
            "invalid": 1, "blocked": 0, "unreachable": 0, "page_error": 1,
            "missing": 1, "not_indexable": 0, "nofollow": 1, "verified": 1,
        }  # fmt: skip
        assert report["flags"]["nofollow"] == 1
        assert report["reasons"]["http_404"] == 1
        vendors = {row["value"]: row for row in report["by_tag"]["vendor"]}
        assert (vendors["acme"]["claims"], vendors["acme"]["verified"]) == (2, 1)
        assert vendors["globex"]["claims"] == 3
        assert report["run"]["state"] == "finished"
        table = await crawler("report", "--db", "c.sqlite", cwd=tmp_path)
        assert "By vendor" in table.stdout
        assert "globex" in table.stdout

    async def test_tables_show_user_text_verbatim(self, tmp_path: Path) -> None:
        """Tags and reasons that look like console markup are printed as written, not interpreted."""
        (tmp_path / "c.csv").write_text('source_url,target_url,vendor\nftp://a.example/,[/],"[red]x[/red]"\n')
        done = await crawler("verify", "c.csv", "--db", "c.sqlite", cwd=tmp_path)
        assert done.code == 0, done.stderr
        assert "[red]x[/red]" in done.stdout
        report = await crawler("report", "--db", "c.sqlite", cwd=tmp_path)
        assert "[red]x[/red]" in report.stdout

    async def test_fail_on(self, site: Server, tmp_path: Path) -> None:
        """--fail-on exits 1 when a result has one of the statuses, 0 when none has, 2 for a bad status."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        refused = await crawler("verify", str(claims), "--db", "c.sqlite", "--fail-on", "lost", cwd=tmp_path)
        assert refused.code == 2  # an unknown status is refused before anything runs
        assert not (tmp_path / "c.sqlite").exists()
        hit = await crawler(
            "verify", str(claims), "--db", "c.sqlite", "--fail-on", "missing,blocked", cwd=tmp_path
        )
        assert hit.code == 1
        miss = await crawler("verify", "--db", "c.sqlite", "--fail-on", "blocked,unreachable", cwd=tmp_path)
        assert miss.code == 0
        bad = await crawler("verify", "--db", "c.sqlite", "--fail-on", "missing,gone", cwd=tmp_path)
        assert bad.code == 2
        assert "--fail-on" in bad.stderr

    async def test_output_to_stdout_is_pure_jsonl(self, site: Server, tmp_path: Path) -> None:
        """With --output -, standard output holds the result lines and nothing else."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        done = await crawler("verify", str(claims), "--db", "c.sqlite", "--output", "-", cwd=tmp_path)
        assert done.code == 0, done.stderr
        lines = done.stdout.splitlines()
        records = [json.loads(line) for line in lines]
        assert {r["claim_id"]: r["status"] for r in records} == EXPECTED
        assert all(list(record) == CONTRACT_FIELDS for record in records)
        # Standard error is the log stream, JSON off a terminal: no summary table in it, the
        # counts are in the "run finished" line.
        logs = [json.loads(line) for line in done.stderr.splitlines()]
        finished = [log for log in logs if log["event"] == "run finished"]
        assert finished[0]["decided"] == len(EXPECTED)
        console = await crawler(
            "verify", str(claims), "--db", "c.sqlite", "--output", "-", "--fresh", "--log-format", "console",
            cwd=tmp_path,
        )  # fmt: skip
        assert "By status" in console.stderr  # for a person, the summary moved to standard error

    async def test_output_to_a_file(self, site: Server, tmp_path: Path) -> None:
        """--output PATH writes the same JSON lines to a file."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        done = await crawler("verify", str(claims), "--db", "c.sqlite", "--output", "out.jsonl", cwd=tmp_path)
        assert done.code == 0, done.stderr
        records = _jsonl((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
        assert {r["claim_id"]: r["status"] for r in records} == EXPECTED

    async def test_claims_from_stdin(self, site: Server, tmp_path: Path) -> None:
        """`-` reads claims from standard input, JSON Lines sniffed or CSV by --format."""
        lines = [
            json.dumps({"source_url": site.url("/verified"), "target_url": TARGET, "id": "j1"}),
            "{broken",
        ]
        done = await crawler("verify", "-", "--db", "c.sqlite", cwd=tmp_path, stdin="\n".join(lines).encode())
        assert done.code == 0, done.stderr
        statuses = dict(_db_rows(tmp_path / "c.sqlite", "SELECT claim_id, status FROM results"))
        assert statuses.pop("j1") == "verified"
        assert list(statuses.values()) == ["invalid"]
        csv_in = f"source_url,target_url\n{site.url('/missing')},{TARGET}\n".encode()
        done = await crawler("verify", "-", "--format", "csv", "--db", "d.sqlite", cwd=tmp_path, stdin=csv_in)
        assert done.code == 0, done.stderr
        assert _db_rows(tmp_path / "d.sqlite", "SELECT status FROM results") == [("missing",)]

    async def test_recheck_and_reimport(self, site: Server, tmp_path: Path) -> None:
        """Importing a file again adds no claim; verify without input re-checks every claim in a new run."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        for _ in range(2):
            assert (await crawler("verify", str(claims), "--db", "c.sqlite", cwd=tmp_path)).code == 0
        again = await crawler("verify", "--db", "c.sqlite", cwd=tmp_path)
        assert again.code == 0, again.stderr
        db = tmp_path / "c.sqlite"
        assert _db_rows(db, "SELECT count(*) FROM claims") == [(5,)]
        per_run = _db_rows(db, "SELECT run_id, count(*) FROM results GROUP BY run_id ORDER BY run_id")
        assert [n for _, n in per_run] == [5, 5, 5]

    async def test_settings_reach_the_fetcher(self, servers: Servers, tmp_path: Path) -> None:
        """A --header flag and the user agent from the environment are sent with every request."""
        seen = await servers.app(
            {"/p": respond("<p>hi</p>"), "/robots.txt": respond("", status=404)}, "127.0.0.3"
        )
        claims = tmp_path / "claims.csv"
        claims.write_text(f"source_url,target_url\n{seen.url('/p')},{TARGET}\n", encoding="utf-8")
        env = {"CRAWLER_USER_AGENT": "acme-checker/2.0"}
        done = await crawler(
            "verify", str(claims), "--db", "c.sqlite", "--header", "X-Team: seo", cwd=tmp_path, env=env
        )
        assert done.code == 0, done.stderr
        page = next(hit for hit in seen.log.hits if hit.path == "/p")
        assert page.headers is not None
        assert page.headers["User-Agent"] == "acme-checker/2.0"
        assert page.headers["X-Team"] == "seo"


class TestBadInput:
    async def test_missing_file_exits_2_naming_it(self, tmp_path: Path) -> None:
        """A claims file that does not exist exits 2 with its name, and creates no database."""
        done = await crawler("verify", "absent.csv", "--db", "c.sqlite", cwd=tmp_path)
        assert done.code == 2
        assert "absent.csv" in done.stderr
        assert not (tmp_path / "c.sqlite").exists()

    async def test_wrong_columns_exit_2_naming_the_file(self, tmp_path: Path) -> None:
        """A header without source_url and target_url exits 2, naming the file and what it found."""
        bad = tmp_path / "links.csv"
        bad.write_text("url,link\nhttp://a.example/,http://b.example/\n", encoding="utf-8")
        done = await crawler("verify", str(bad), "--db", "c.sqlite", cwd=tmp_path)
        assert done.code == 2
        assert "links.csv" in done.stderr
        assert "source_url" in done.stderr

    async def test_bad_rows_become_invalid_results(self, site: Server, tmp_path: Path) -> None:
        """Bad JSON lines and unusable rows are `invalid` results naming the line; the run goes on."""
        lines = [
            json.dumps({"source_url": site.url("/verified"), "target_url": TARGET}),
            "{not json",
            json.dumps(["a", "list"]),
            json.dumps({"source_url": "javascript:alert(1)", "target_url": TARGET}),
            json.dumps({"source_url": site.url("/missing")}),
        ]
        claims = tmp_path / "claims.jsonl"
        claims.write_text("\n".join(lines) + "\n", encoding="utf-8")
        done = await crawler("verify", str(claims), "--db", "c.sqlite", cwd=tmp_path)
        assert done.code == 0, done.stderr
        rows = _db_rows(tmp_path / "c.sqlite", "SELECT status, reason FROM results ORDER BY reason")
        assert sorted(status for status, _ in rows) == ["invalid"] * 4 + ["verified"]
        reasons = sorted(str(reason) for status, reason in rows if status == "invalid")
        assert [reason.split(":")[0] for reason in reasons] == ["row 2", "row 3", "row 4", "row 5"]
        assert "target_url" in reasons[3]

    async def test_no_input_and_no_database(self, tmp_path: Path) -> None:
        """verify with nothing to import and no database exits 2 instead of creating an empty one."""
        done = await crawler("verify", "--db", "none.sqlite", cwd=tmp_path)
        assert done.code == 2
        assert "none.sqlite" in done.stderr
        assert not (tmp_path / "none.sqlite").exists()

    async def test_export_and_report_need_a_database(self, tmp_path: Path) -> None:
        """export and report on a database that does not exist exit 2 and create nothing."""
        for command in ("export", "report"):
            done = await crawler(command, "--db", "none.sqlite", cwd=tmp_path)
            assert done.code == 2
            assert "none.sqlite" in done.stderr
        assert not (tmp_path / "none.sqlite").exists()

    async def test_database_in_a_missing_directory(self, site: Server, tmp_path: Path) -> None:
        """A --db whose directory does not exist exits 2 naming it, before any work."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        done = await crawler("verify", str(claims), "--db", "no/such/dir/c.sqlite", cwd=tmp_path)
        assert done.code == 2
        assert "no/such/dir" in done.stderr
        assert site.log.count() == 0

    async def test_bad_log_format_variable(self, tmp_path: Path) -> None:
        """CRAWLER_LOG_FORMAT with a format that does not exist exits 2 naming the variable."""
        (tmp_path / "c.sqlite").touch()
        done = await crawler("report", "--db", "c.sqlite", cwd=tmp_path, env={"CRAWLER_LOG_FORMAT": "xml"})
        assert done.code == 2
        assert "CRAWLER_LOG_FORMAT" in done.stderr

    @pytest.mark.parametrize(
        ("args", "env", "named"),
        [
            (
                (),
                {"CRAWLER_RETRYS": "1"},
                "CRAWLER_RETRYS: unknown setting 'retrys' (did you mean 'retries'?)",
            ),
            ((), {"CRAWLER_PER_HOST": "0"}, "CRAWLER_PER_HOST: per_host must be greater than 0"),
            (("--delay", "-1"), {}, "option --delay: delay must not be negative"),
            (("--config", "absent.toml"), {}, "config file absent.toml: cannot read it"),
        ],
    )
    async def test_bad_settings_stop_verify_before_any_work(
        self, site: Server, tmp_path: Path, args: tuple[str, ...], env: dict[str, str], named: str
    ) -> None:
        """A bad setting in any layer stops `verify` with exit 2 naming it: no request, no database."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        done = await crawler("verify", str(claims), "--db", "c.sqlite", *args, cwd=tmp_path, env=env)
        assert done.code == 2
        assert named in done.stderr
        assert site.log.count() == 0
        assert not (tmp_path / "c.sqlite").exists()

    @pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs a device that is always full")
    async def test_output_that_cannot_be_written(self, site: Server, tmp_path: Path) -> None:
        """An --output that fails mid-run (a full disk) exits 2 naming it; the run resumes later."""
        claims = _claims_csv(site, tmp_path / "claims.csv")
        done = await crawler("verify", str(claims), "--db", "c.sqlite", "--output", "/dev/full", cwd=tmp_path)
        assert done.code == 2
        assert "/dev/full: cannot write" in done.stderr
        assert "Traceback" not in done.stderr
        db = tmp_path / "c.sqlite"
        assert _db_rows(db, "SELECT status FROM runs") == [("interrupted",)]
        resumed = await crawler("verify", "--db", "c.sqlite", cwd=tmp_path)
        assert resumed.code == 0, resumed.stderr
        assert _db_rows(db, "SELECT count(*), count(DISTINCT claim_id) FROM results") == [(5, 5)]

    async def test_usage_errors_exit_2(self, tmp_path: Path) -> None:
        """An unknown command or option exits 2 (argparse's usage error)."""
        assert (await crawler("frobnicate", cwd=tmp_path)).code == 2
        assert (await crawler("export", "--format", "xml", cwd=tmp_path)).code == 2


class TestEntryPoints:
    async def test_console_script_and_module_are_the_same_program(self, tmp_path: Path) -> None:
        """The installed `crawler` script and `python -m crawler` give the same help and version."""
        script = Path(sys.executable).with_name("crawler")
        assert script.exists()
        process = await asyncio.create_subprocess_exec(
            str(script), "--version", stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
        )
        out, _ = await process.communicate()
        module = await crawler("--version", cwd=tmp_path)
        assert out.decode() == module.stdout
        assert module.stdout.startswith("crawler ")

    @pytest.mark.parametrize("entry", ["script", "module"])
    def test_sigterm_while_starting_is_an_interrupt(self, tmp_path: Path, entry: str) -> None:
        """SIGTERM while the command still imports its modules ends it with 130, as a stopped run."""
        (tmp_path / "claims.csv").write_text(f"source_url,target_url\nhttp://127.0.0.2:9/,{TARGET}\n")
        script = [str(Path(sys.executable).with_name("crawler"))]
        command = script if entry == "script" else [sys.executable, "-m", "crawler"]
        with subprocess.Popen(
            [*command, "verify", "claims.csv", "--db", "c.sqlite"],
            cwd=tmp_path,
            env=_environ(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        ) as process:
            time.sleep(0.15)  # the interpreter has started; the imports take some 0.3 s more
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
        assert process.returncode == 130, err.decode()
        assert b"Traceback" not in err

    def test_import_crawler_loads_the_engine_on_first_use(self) -> None:
        """`import crawler` is cheap (no aiohttp yet); each public name loads its module when used."""
        code = (
            "import sys, crawler\n"
            "print('aiohttp' in sys.modules)\n"
            "print(all(getattr(crawler, name) is not None for name in crawler.__all__))\n"
            "print(sorted(crawler._HOME_OF) == crawler.__all__)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.split() == ["False", "True", "True"]

    async def test_signal_handlers_of_before_are_back_after_a_run(self) -> None:
        """After a run, SIGTERM is handled as before it, not left to the default (exit 143)."""
        before = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            work = asyncio.create_task(asyncio.sleep(0))
            assert not await run._until_done_or_signalled(work)
            assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler
        finally:
            signal.signal(signal.SIGTERM, before)

    def test_the_command_tunes_its_own_garbage_collector_only(self) -> None:
        """A command's run freezes start-up objects and collects young ones less often; merely
        importing the package leaves a library caller's collector as it is."""
        code = (
            "import asyncio, gc, crawler\n"
            "print(gc.get_threshold()[0], gc.get_freeze_count() > 0)\n"
            "from crawler.app.run import run_async\n"
            "run_async(asyncio.sleep(0))\n"
            "print(gc.get_threshold()[0], gc.get_freeze_count() > 0)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        young = run.YOUNG_OBJECTS_PER_COLLECTION
        untouched, tuned = out.splitlines()
        assert untouched.split()[1] == "False"
        assert int(untouched.split()[0]) != young  # the interpreter's default
        assert tuned == f"{young} True"

    def test_export_to_a_reader_that_goes_away(self, tmp_path: Path) -> None:
        """`crawler export | head` ends with exit 141 and no traceback when the reader stops reading."""
        rows = "".join(f"ftp://x{i}.example/,{TARGET}\n" for i in range(3000))
        (tmp_path / "many.csv").write_text("source_url,target_url\n" + rows, encoding="utf-8")
        command, env = [sys.executable, "-m", "crawler"], _environ()
        verify = [*command, "verify", "many.csv", "--db", "c.sqlite", "-q"]
        subprocess.run(verify, check=True, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL)
        export = [*command, "export", "--db", "c.sqlite", "--format", "jsonl"]
        pipe = subprocess.PIPE
        with subprocess.Popen(
            export, cwd=tmp_path, env=env, stdout=pipe, stderr=pipe, stdin=subprocess.DEVNULL
        ) as process:
            assert process.stdout is not None
            assert process.stderr is not None
            assert process.stdout.read(100)
            process.stdout.close()  # the reader leaves, as `head` does
            err = process.stderr.read()
            assert process.wait(timeout=60) == 141
        assert b"Traceback" not in err


async def _slow_site(servers: Servers, pages: int) -> Server:
    routes = {f"/p{i}": respond(f'<a href="{TARGET}">x</a>', delay=1.0) for i in range(pages)}
    routes["/robots.txt"] = respond("User-agent: *\nAllow: /\n", content_type="text/plain")
    return await servers.app(routes, host="127.0.0.4")


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


async def _until_lines(path: Path, count: int) -> None:
    """Wait until `path` holds `count` lines: that many results were decided (30 s at most)."""
    for _ in range(600):  # a file another process writes: polled, there is nothing to await
        if _line_count(path) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} results in {path} after 30 s")


async def _start_slow_run(
    servers: Servers, tmp_path: Path, pages: int
) -> tuple[Server, asyncio.subprocess.Process, Path]:
    """`verify` of one claim per page of a slow site (1 s a page), started once two results are out."""
    slow = await _slow_site(servers, pages)
    rows = "".join(f"s{i},{slow.url(f'/p{i}')},{TARGET}\n" for i in range(pages))
    (tmp_path / "claims.csv").write_text("id,source_url,target_url\n" + rows, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", "verify", "claims.csv", "--db", "c.sqlite", "--output", str(out),
        cwd=tmp_path, env=_environ(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await _until_lines(out, 2)
    return slow, process, out


@pytest.mark.slow  # slow runs stopped by a signal, then resumed: 7 to 10 s each
class TestInterrupt:
    @pytest.mark.parametrize(
        "signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name
    )
    async def test_stop_mid_run_then_resume(
        self, servers: Servers, tmp_path: Path, signum: signal.Signals
    ) -> None:
        """A stopped run (SIGTERM, SIGINT, SIGHUP, the terminal closed: exit 130 fast; kill -9) resumes;
        each claim is decided once."""
        slow, process, _ = await _start_slow_run(servers, tmp_path, pages=8)
        stopped_at = time.monotonic()
        process.send_signal(signum)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
        waited = time.monotonic() - stopped_at
        db = tmp_path / "c.sqlite"
        if signum is signal.SIGKILL:
            assert process.returncode == -signal.SIGKILL
        else:
            assert process.returncode == 130, err.decode()
            assert waited < 10
            assert _db_rows(db, "SELECT status FROM runs") == [("interrupted",)]
            assert '"run interrupted"' in err.decode()
        saved = [claim for (claim,) in _db_rows(db, "SELECT claim_id FROM results")]
        assert len(saved) < 8

        resumed = await crawler("verify", "--db", "c.sqlite", cwd=tmp_path)
        assert resumed.code == 0, resumed.stderr
        assert _db_rows(db, "SELECT count(*) FROM runs") == [(1,)]
        per_claim = _db_rows(db, "SELECT claim_id, count(*) FROM results GROUP BY claim_id")
        assert sorted(per_claim) == [(f"s{i}", 1) for i in range(8)]
        assert _db_rows(db, "PRAGMA integrity_check") == [("ok",)]
        assert _db_rows(db, "SELECT status FROM runs") == [("finished",)]
        # Pages whose results were saved before the stop were not fetched again.
        assert [slow.log.count(f"/p{claim[1:]}") for claim in saved] == [1] * len(saved)
        # robots.txt once in each process: the stopped process's answer went with it.
        assert slow.log.count("/robots.txt") == 2

    async def test_fresh_starts_a_new_run(self, servers: Servers, tmp_path: Path) -> None:
        """--fresh leaves an interrupted run alone and starts a new one with every claim."""
        _, process, _ = await _start_slow_run(servers, tmp_path, pages=4)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 130
        fresh = await crawler("verify", "claims.csv", "--db", "c.sqlite", "--fresh", cwd=tmp_path)
        assert fresh.code == 0, fresh.stderr
        runs = _db_rows(tmp_path / "c.sqlite", "SELECT status FROM runs ORDER BY rowid")
        assert runs == [("interrupted",), ("finished",)]
        per_run = _db_rows(tmp_path / "c.sqlite", "SELECT count(*) FROM results GROUP BY run_id ORDER BY 1")
        assert per_run[-1] == (4,)


def _result(**changes: object) -> Result:
    base: dict[str, object] = {
        "claim_id": "c1",
        "source_url": "http://a.example/",
        "target_url": TARGET,
        "tags": {"vendor": "acme"},
        "run_id": "r1",
        "checked_at": "2026-01-01T00:00:00Z",
        "status": Status.NOFOLLOW,
    }
    return Result(**{**base, **changes})  # type: ignore[arg-type]


class TestProgressLog:
    def test_progress_lines_carry_counts(self) -> None:
        """Off a terminal, progress is a `progress` log line with the counts per status so far."""
        progress = display.ProgressLog(every=0.0)
        with structlog.testing.capture_logs() as captured:
            progress.start(total=3)
            progress.advance(_result(status=Status.VERIFIED))
            progress.advance(_result(status=Status.MISSING))
            progress.stop()
        assert [line["event"] for line in captured] == ["progress", "progress"]
        assert captured[-1]["decided"] == 2
        assert captured[-1]["total"] == 3
        assert (captured[-1]["verified"], captured[-1]["missing"]) == (1, 1)

    def test_quiet_shows_nothing(self) -> None:
        """--quiet chooses no progress display at all."""
        quiet = display.run_progress(display.console(io.StringIO()), quiet=True)
        assert isinstance(quiet, display.Silent)
        assert isinstance(
            display.run_progress(display.console(io.StringIO()), quiet=False), display.ProgressLog
        )


class TestCsvFormat:
    def test_header_has_every_contract_field_then_link_and_tags(self) -> None:
        """CSV columns: the contract's fields in order, what was paid for, the flattened link, the tags."""
        header = csv_header(["vendor", "price"])
        assert header[: len(CONTRACT_FIELDS)] == CONTRACT_FIELDS
        assert header[len(CONTRACT_FIELDS) :] == [
            "expected_anchor", "expected_rel", "match",
            "link_href", "link_url", "link_text", "link_rel", "link_hidden", "link_region",
            "tag:vendor", "tag:price",
        ]  # fmt: skip

    def test_cells(self) -> None:
        """Booleans are true/false, null is empty, nested values are JSON, rel tokens are space-separated."""
        link = Link("/p", TARGET, "Buy", ("nofollow", "ugc"), hidden=False, region=Region.COMMENTS)
        result = _result(flags=(Flag.NOFOLLOW, Flag.UGC), link=link, indexable=True, http_status=None)
        row = csv_row(result, ClaimFields("buy", "follow"), ["vendor", "price"])
        cells = dict(zip(csv_header(["vendor", "price"]), row, strict=True))
        assert (cells["expected_anchor"], cells["expected_rel"], cells["match"]) == ("buy", "follow", "page")
        assert cells["indexable"] == "true"
        assert cells["http_status"] == ""
        assert json.loads(cells["flags"]) == ["nofollow", "ugc"]
        assert json.loads(cells["tags"]) == {"vendor": "acme"}
        assert cells["link_rel"] == "nofollow ugc"
        assert cells["link_hidden"] == "false"
        assert (cells["tag:vendor"], cells["tag:price"]) == ("acme", "")

    @pytest.mark.parametrize(
        ("cell", "shown"),
        [
            ("=1+1", "'=1+1"),
            ("+33 1 23", "'+33 1 23"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("plain", "plain"),
            ("a=b", "a=b"),
            ("", ""),
        ],
    )
    def test_formulas_are_neutralised(self, cell: str, shown: str) -> None:
        """A cell a spreadsheet would run as a formula gets a leading quote; others are untouched."""
        assert neutralise(cell) == shown

    def test_link_text_and_tags_are_neutralised_in_rows(self) -> None:
        """Text from the page or the user (link text, tags) goes through the guard in every row."""
        link = Link("/p", TARGET, "=cmd()", (), hidden=False, region=Region.MAIN)
        row = csv_row(_result(link=link, tags={"vendor": "@x"}), ClaimFields("=paid"), ["vendor"])
        cells = dict(zip(csv_header(["vendor"]), row, strict=True))
        assert cells["link_text"] == "'=cmd()"
        assert cells["tag:vendor"] == "'@x"
        assert cells["expected_anchor"] == "'=paid"
