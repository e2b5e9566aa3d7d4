"""Monitoring, reports and evidence through the real command line: a loopback site whose page
changes between runs, real subprocesses, a real webhook; each test on a SQLite file and on a
PostgreSQL database, and the commands' output compared between the two."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from aiohttp import web
from contract import TARGET, cli, html, linked
from postgres_cluster import Cluster
from servers import Server, Servers
from stores import Backend

LINKED = linked(text="running shoes")
GONE = html("<main><p>The link was removed.</p></main>")
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")
MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z?")
ELAPSED = re.compile(r'"elapsed_ms": ?\d+')


class Site:
    """One page whose body a test changes between runs, and a webhook that keeps what it gets."""

    def __init__(self) -> None:
        self.body = LINKED
        self.posted: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/robots.txt", self._robots)
        app.router.add_get("/post", self._page)
        app.router.add_get("/other", self._other)
        app.router.add_post("/hook", self._hook)
        return app

    async def _robots(self, request: web.Request) -> web.Response:
        return web.Response(text="User-agent: *\nAllow: /\n")

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=self.body, content_type="text/html")

    async def _other(self, request: web.Request) -> web.Response:
        return web.Response(text=LINKED, content_type="text/html")

    async def _hook(self, request: web.Request) -> web.Response:
        self.posted.append(await request.json())
        return web.Response(status=204)


@pytest.fixture
def db(backend: Backend) -> str:
    """The `--db` of the test: a SQLite file, then a PostgreSQL URL."""
    return backend.db


@pytest.fixture
async def changing(servers: Servers, tmp_path: Path) -> tuple[Site, Server]:
    site = Site()
    server = await servers.app(site.app())
    (tmp_path / "claims.csv").write_text(
        "id,source_url,target_url,expected_anchor,vendor,price\n"
        f"c1,{server.url('/post')},{TARGET},running shoes,acme,100\n"
        f"c2,{server.url('/other')},{TARGET},,globex,50\n"
    )
    return site, server


async def verify(
    tmp_path: Path, db: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    done = await cli("verify", *args, "--db", db, cwd=tmp_path, env=env)
    return done.code, done.stdout, done.stderr


class TestLossConfirmed:
    async def test_a_removed_link_is_suspect_then_lost(
        self, changing: tuple[Site, Server], tmp_path: Path, db: str
    ) -> None:
        """Run 1 live; the link goes: run 2 suspect (no event); run 3 lost, reported by changes,
        history, --events, --fail-on-event and the webhook; history of an unknown id is exit 2."""
        site, server = changing
        hook = {"CRAWLER_NOTIFY": server.url("/hook")}
        assert (await verify(tmp_path, db, "claims.csv", "-q", env=hook))[0] == 0
        site.body = GONE
        code, _, _ = await verify(tmp_path, db, "-q", "--fail-on-event", "lost", env=hook)
        assert code == 0  # one miss is not a loss
        code, events, err = await verify(
            tmp_path, db, "-q", "--fail-on-event", "lost", "--events", "-", env=hook
        )
        assert code == 1, err
        assert "--fail-on-event matched 1 lost" in err
        (lost,) = [json.loads(line) for line in events.splitlines()]
        assert (lost["claim_id"], lost["event"], lost["reason"]) == ("c1", "lost", "link_removed")
        assert (lost["old_state"], lost["new_state"]) == ("suspect", "lost")

        changes = await cli("changes", "--db", db, "--format", "jsonl", cwd=tmp_path)
        assert [json.loads(line)["event"] for line in changes.stdout.splitlines()] == ["lost"]
        history = await cli("history", "c1", "--db", db, "--format", "jsonl", cwd=tmp_path)
        rows = [json.loads(line) for line in history.stdout.splitlines()]
        assert [row["state"] for row in rows[:-1]] == ["live", "suspect", "lost"]
        assert [row["events"] for row in rows[:-1]] == [["found"], [], ["lost"]]
        assert rows[-1]["summary"]["live_runs"] == 1
        assert rows[-1]["summary"]["runs"] == 3
        unknown = await cli("history", "nope", "--db", db, cwd=tmp_path)
        assert (unknown.code, unknown.stdout) == (2, "")
        assert "nope" in unknown.stderr
        assert "Traceback" not in unknown.stderr

        assert len(site.posted) == 3
        last = site.posted[-1]
        assert last["by_state"]["lost"] == 1
        assert last["by_severity"]["losses"][0]["events"][0]["event"] == "lost"

        report = json.loads((await cli("report", "--db", db, "--format", "json", cwd=tmp_path)).stdout)
        assert report["lost_since_previous_run"] == 1
        assert report["by_state"]["lost"] == 1
        assert [point["lost"] for point in report["runs"]] == [0, 0, 1]

        again = await verify(tmp_path, db, "-q", "--states", "lost")
        assert again[0] == 0
        runs = [
            json.loads(line)
            for line in (await cli("runs", "--db", db, "--format", "jsonl", cwd=tmp_path)).stdout.splitlines()
        ]
        assert runs[0]["claims"] == 1  # only the lost claim

    async def test_rebuild_gives_the_same_rows(
        self, changing: tuple[Site, Server], tmp_path: Path, db: str
    ) -> None:
        """`crawler history --rebuild` recomputes states and events from the results alone: same rows."""
        site, _ = changing
        assert (await verify(tmp_path, db, "claims.csv", "-q"))[0] == 0
        site.body = GONE
        for _ in range(2):
            assert (await verify(tmp_path, db, "-q"))[0] == 0
        listed = await cli("runs", "--db", db, "--format", "jsonl", cwd=tmp_path)
        first = json.loads(listed.stdout.splitlines()[-1])["id"]
        every_event = [("--run", first), ("--since", first)]

        async def events() -> list[str]:
            found = []
            for option, run_id in every_event:
                done = await cli("changes", "--db", db, option, run_id, "--format", "jsonl", cwd=tmp_path)
                assert done.code == 0, done.stderr
                found += done.stdout.splitlines()
            return found

        before = await events()
        rebuilt = await cli("history", "--rebuild", "--db", db, cwd=tmp_path)
        assert rebuilt.code == 0, rebuilt.stderr
        assert await events() == before
        assert [json.loads(line)["event"] for line in before] == ["found", "found", "lost"]


class TestReportsAndExports:
    async def test_html_report_and_xlsx_export(
        self, changing: tuple[Site, Server], tmp_path: Path, db: str
    ) -> None:
        """report --html writes one self-contained file; export --format xlsx a sheet with what was paid."""
        assert (await verify(tmp_path, db, "claims.csv", "-q"))[0] == 0
        done = await cli("report", "--db", db, "--html", "report.html", "--by", "vendor", cwd=tmp_path)
        assert done.code == 0, done.stderr
        page = (tmp_path / "report.html").read_text(encoding="utf-8")
        assert "Content-Security-Policy" in page
        assert "<script" not in page
        assert "acme" in page
        done = await cli("export", "--db", db, "--format", "xlsx", "--output", "out.xlsx", cwd=tmp_path)
        assert done.code == 0, done.stderr
        rows = sheet_rows(tmp_path / "out.xlsx")
        header = rows[0]
        assert header[:3] == ["claim_id", "source_url", "target_url"]
        record = dict(zip(header, rows[1], strict=True))
        assert (record["claim_id"], record["expected_anchor"], record["status"]) == (
            "c1",
            "running shoes",
            "verified",
        )
        assert [row[0] for row in rows[1:]] == ["c1", "c2"]  # input order

    async def test_evidence_command(self, changing: tuple[Site, Server], tmp_path: Path, db: str) -> None:
        """`crawler evidence` prints where the page's record lies and, with --body, the body itself."""
        assert (await verify(tmp_path, db, "claims.csv", "-q", "--archive", "warc"))[0] == 0
        done = await cli("evidence", "c1", "--db", db, cwd=tmp_path)
        assert done.code == 0, done.stderr
        fields = dict(line.split(": ", 1) for line in done.stdout.splitlines())
        assert list(fields) == ["file", "offset", "record_id", "url", "date", "http_status", "body_sha256"]
        assert fields["http_status"] == "200"
        body = await cli("evidence", "c1", "--db", db, "--body", cwd=tmp_path)
        assert body.stdout == LINKED
        assert hashlib.sha256(body.stdout.encode()).hexdigest() == fields["body_sha256"]
        unknown = await cli("evidence", "nope", "--db", db, cwd=tmp_path)
        assert unknown.code == 2
        assert "nope" in unknown.stderr


class TestBothStores:
    async def test_every_command_prints_the_same(
        self, changing: tuple[Site, Server], tmp_path: Path, postgres: Cluster
    ) -> None:
        """The same runs through the command line on a SQLite file and on a PostgreSQL database
        (each command on both at once): every command exits as the other does and prints the
        same, run ids, times and durations aside."""
        site, _ = changing
        dbs = (str(tmp_path / "c.sqlite"), Backend.postgres(postgres).db)

        async def on_both(*command: str, code: int = 0) -> str:
            words = [[word.format(first=first) for word in command] for first in firsts]
            done = await asyncio.gather(
                *(cli(*w, "--db", db, cwd=tmp_path) for w, db in zip(words, dbs, strict=True))
            )
            assert [d.code for d in done] == [code, code], (command, [d.stderr for d in done])
            sqlite, postgresql = (unvarying(d.stdout) for d in done)
            assert postgresql == sqlite, command
            return sqlite

        firsts = ["", ""]
        site.body = LINKED
        await on_both("verify", "claims.csv", "-q")
        firsts = [
            (await cli("runs", "--db", db, "--format", "jsonl", cwd=tmp_path)).jsonl()[0]["id"] for db in dbs
        ]
        site.body = GONE
        await on_both("verify", "-q", "--fail-on-event", "lost")
        lost = await on_both("verify", "-q", "--fail-on-event", "lost", "--events", "-", code=1)
        assert '"event": "lost"' in lost
        await on_both("verify", "-q", "--states", "lost")
        commands = [
            ["report"],
            ["report", "--format", "json"],
            ["report", "--by", "vendor"],
            ["report", "--run", "{first}", "--format", "json"],
            ["changes"],
            ["changes", "--run", "{first}", "--format", "csv"],
            ["changes", "--since", "{first}", "--event", "lost,found"],
            ["history", "c1"],
            ["history", "c2", "--format", "jsonl"],
            ["export"],
            ["export", "--format", "jsonl", "--run", "{first}"],
            ["export", "--format", "json", "--status", "missing"],
            ["runs", "--format", "jsonl"],
        ]
        for command in commands:
            assert await on_both(*command), command  # something was compared
        since = await on_both("changes", "--since", "{first}", "--format", "jsonl")
        await on_both("history", "--rebuild")
        assert await on_both("changes", "--since", "{first}", "--format", "jsonl") == since
        await on_both("export", "--format", "xlsx", "--output", "{first}.xlsx")
        sheets = []
        for first in firsts:
            header, *rows = sheet_rows(tmp_path / f"{first}.xlsx")
            column = header.index("elapsed_ms")
            sheets.append(
                unvarying(json.dumps([header, *([*row[:column], 0, *row[column + 1 :]] for row in rows)]))
            )
        assert sheets[0] == sheets[1]


def sheet_rows(path: Path) -> list[list[Any]]:
    """The rows of the first sheet of an xlsx file, the file closed again."""
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        sheet = book.active
        assert sheet is not None
        return [list(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()


def unvarying(text: str) -> str:
    """`text` without what differs from one run of the same claims to the next: run ids, times,
    the milliseconds a request took (in JSON and in CSV), and the order in which claims of one run
    were decided (the worker processes' parsing may finish in either order, on either store): lines
    sorted, and the lists of a JSON document."""
    text = ELAPSED.sub('"elapsed_ms": 0', MOMENT.sub("<time>", RUN_ID.sub("<run>", text)))
    with contextlib.suppress(ValueError):  # one JSON document (JSON Lines are lines)
        return json.dumps(_sorted(json.loads(text)), indent=1)
    rows = list(csv.reader(io.StringIO(text)))
    if rows and rows[0][:1] == ["claim_id"] and "elapsed_ms" in rows[0]:
        column = rows[0].index("elapsed_ms")
        rows = [rows[0], *([*row[:column], "0", *row[column + 1 :]] for row in rows[1:])]
        return json.dumps(sorted(rows))
    return "\n".join(sorted(text.splitlines()))


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted((_sorted(item) for item in value), key=lambda item: json.dumps(item, sort_keys=True))
    return value
