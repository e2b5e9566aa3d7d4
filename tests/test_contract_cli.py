"""Contract, sections 1, 2 and 7 through the command line: `python -m crawler` in real subprocesses,
claims files in every format, the exported fields and their JSON types, runs, exit codes, settings.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from contract import TARGET, cli, html, linked, rows
from servers import Server, Servers, redirect, respond

import crawler

CONTRACT_TYPES: dict[str, tuple[type, ...]] = {
    "claim_id": (str,),
    "source_url": (str,),
    "target_url": (str,),
    "tags": (dict,),
    "run_id": (str,),
    "checked_at": (str,),
    "state": (str,),
    "body_sha256": (str, type(None)),
    "status": (str,),
    "reason": (str, type(None)),
    "flags": (list,),
    "http_status": (int, type(None)),
    "final_url": (str, type(None)),
    "redirects": (list,),
    "content_type": (str, type(None)),
    "encoding": (str, type(None)),
    "bytes": (int,),
    "elapsed_ms": (int,),
    "attempts": (int,),
    "robots_crawler_allowed": (bool, type(None)),
    "robots_index_allowed": (bool, type(None)),
    "meta_robots": (list,),
    "x_robots_tag": (list,),
    "canonical_url": (str, type(None)),
    "indexable": (bool, type(None)),
    "link": (dict, type(None)),
    "links_matched": (int,),
    "outbound_links": (int,),
    "evidence": (dict, type(None)),
}
"""Section 2, written out: the fields and their JSON types (the test must not trust the code)."""
STATUSES = (
    "invalid",
    "blocked",
    "unreachable",
    "page_error",
    "missing",
    "not_indexable",
    "nofollow",
    "verified",
)


@pytest.fixture
async def site(servers: Servers) -> Server:
    """One page per outcome on 127.0.0.2."""
    robots = "User-agent: *\nDisallow: /private\n"
    refresh = html("", head='<meta http-equiv="refresh" content="0; url=/verified">')
    routes = {
        "/robots.txt": respond(robots, content_type="text/plain"),
        "/verified": respond(linked(text="Great shoes")),
        "/nofollow": respond(linked('rel="sponsored"')),
        "/missing": respond(html("<p>no link</p>")),
        "/noindex": respond(linked(), headers={"X-Robots-Tag": "noindex"}),
        "/gone": respond("gone", status=404),
        "/moved": redirect("/verified", 301),
        "/refresh": respond(refresh),
        "/private": respond(linked()),
    }
    return await servers.app(routes, host="127.0.0.2")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {record["claim_id"]: record for record in records}


CLAIM_FIELDS = ("expected_anchor", "expected_rel", "match")
"""What `export` adds to the section 2 fields (section 7): what was paid for."""


def assert_contract_record(record: dict[str, Any], extra: tuple[str, ...] = ()) -> None:
    """`record` has exactly the section 2 fields (and `extra`), each of its JSON type."""
    assert set(record) == set(CONTRACT_TYPES) | set(extra)
    for name, types in CONTRACT_TYPES.items():
        value = record[name]
        assert isinstance(value, types), (name, value)
        assert not (int in types and bool not in types and isinstance(value, bool)), (name, value)
    assert record["status"] in STATUSES
    checked = datetime.fromisoformat(record["checked_at"].replace("Z", "+00:00"))
    assert checked.utcoffset() == timedelta(0)
    for hop in record["redirects"]:
        assert set(hop) == {"url", "status"}
        assert isinstance(hop["status"], int | None)
    if record["link"] is not None:
        assert set(record["link"]) == {"href", "url", "text", "image", "rel", "hidden", "region"}
        assert isinstance(record["link"]["rel"], list)
        assert isinstance(record["link"]["hidden"], bool)
        assert record["link"]["region"] in ("main", "nav", "header", "footer", "aside", "comments")


def claims_csv(site: Server) -> str:
    lines = [
        "id,source_url,target_url,expected_anchor,expected_rel,match,vendor,price",
        f"v,{site.url('/verified')},{TARGET},great  SHOES,,,acme,120",
        f"n,{site.url('/nofollow')},{TARGET},,follow,,acme,",
        f"m,{site.url('/missing')},{TARGET},,,,globex,80",
        f"x,{site.url('/noindex')},{TARGET},,,,globex,",
        f"g,{site.url('/gone')},{TARGET},,,exact,globex,",
        f"r,{site.url('/moved')},{TARGET},,,,,",
        f"f,{site.url('/refresh')},{TARGET},,,,,",
        f"b,{site.url('/private')},{TARGET},,,,,",
        f"i,ftp://files.example/x,{TARGET},,,,acme,",
    ]
    return "\n".join(lines) + "\n"


EXPECTED = {
    "v": "verified",
    "n": "nofollow",
    "m": "missing",
    "x": "not_indexable",
    "g": "page_error",
    "r": "verified",
    "f": "verified",
    "b": "blocked",
    "i": "invalid",
}


class TestVerifyExportReport:
    async def test_one_run_every_output(self, site: Server, tmp_path: Path) -> None:
        """One run: --output, export jsonl/json/csv and report agree, with the section 2 fields and types."""
        write(tmp_path / "claims.csv", claims_csv(site))
        options = ["--db", "c.sqlite", "--output", "out.jsonl", "--fail-on", "missing,nofollow"]
        done = await cli("verify", "claims.csv", *options, cwd=tmp_path)
        assert done.code == 1, done.stderr  # finished, and a result matched --fail-on
        assert all(isinstance(json.loads(line), dict) for line in done.stderr.splitlines())  # JSON logs
        jsonl, array, table, report, chosen = await asyncio.gather(
            *(
                cli("export", "--db", "c.sqlite", "--format", f, cwd=tmp_path)
                for f in ("jsonl", "json", "csv")
            ),
            cli("report", "--db", "c.sqlite", cwd=tmp_path),
            cli(
                "export", "--db", "c.sqlite", "--format", "jsonl", "--status", "missing,blocked", cwd=tmp_path
            ),
        )
        records = jsonl.jsonl()
        assert {r["claim_id"]: r["status"] for r in records} == EXPECTED
        for record in records:
            assert_contract_record(record, CLAIM_FIELDS)
        assert len({record["run_id"] for record in records}) == 1
        assert json.loads(array.stdout) == records
        written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        for record in written:
            assert_contract_record(record)
        exported = [{k: v for k, v in r.items() if k not in CLAIM_FIELDS} for r in records]
        assert sorted(written, key=lambda r: r["claim_id"]) == sorted(exported, key=lambda r: r["claim_id"])
        spreadsheet = list(csv.DictReader(io.StringIO(table.stdout)))
        assert set(CONTRACT_TYPES) <= set(spreadsheet[0])
        assert {row["claim_id"]: row["status"] for row in spreadsheet} == EXPECTED
        assert sorted(r["claim_id"] for r in chosen.jsonl()) == ["b", "m"]
        assert_report(report.stdout)

    async def test_result_values(self, site: Server, tmp_path: Path) -> None:
        """Tags, empty cells, reasons, redirects (final response excluded, meta refresh null) as exported."""
        write(tmp_path / "claims.csv", claims_csv(site))
        done = await cli("verify", "claims.csv", "--db", "c.sqlite", "--output", "-", cwd=tmp_path)
        assert done.code == 0, done.stderr
        results = by_id(done.jsonl())
        assert results["v"]["tags"] == {"vendor": "acme", "price": "120"}
        assert results["n"]["tags"] == {"vendor": "acme"}  # an empty cell is no tag
        assert results["r"]["tags"] == {}
        assert "anchor_mismatch" not in results["v"]["flags"]  # "great  SHOES" after folding
        assert results["v"]["link"]["text"] == "Great shoes"
        assert results["v"]["indexable"] is True
        assert results["v"]["redirects"] == []
        assert {"sponsored", "rel_mismatch"} <= set(results["n"]["flags"])
        assert results["g"]["reason"] == "http_404"
        assert results["g"]["http_status"] == 404
        assert results["b"]["reason"] == "robots_disallowed"
        assert results["b"]["robots_crawler_allowed"] is False
        assert re.match(r"row 10\b", results["i"]["reason"])
        assert results["r"]["redirects"] == [{"url": site.url("/moved"), "status": 301}]
        assert results["r"]["final_url"] == site.url("/verified")
        assert "source_redirected" in results["r"]["flags"]
        assert results["f"]["redirects"] == [{"url": site.url("/refresh"), "status": None}]
        assert "meta_refresh" in results["f"]["flags"]
        assert results["x"]["x_robots_tag"] == ["noindex"]

    async def test_default_id_and_database(self, site: Server, tmp_path: Path) -> None:
        """Without an id, a claim's id is a stable hash of its URLs; --db defaults to crawler.sqlite."""
        source = site.url("/verified")
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
        write(tmp_path / "a" / "c.csv", f"source_url,target_url,id\n{source},{TARGET},\n")
        write(
            tmp_path / "b" / "c.jsonl",
            json.dumps({"source_url": source, "target_url": TARGET, "id": ""}) + "\n",
        )
        first, second = await asyncio.gather(
            cli("verify", "c.csv", "--output", "-", cwd=tmp_path / "a"),
            cli("verify", "c.jsonl", "--output", "-", cwd=tmp_path / "b"),
        )
        ((one,), (two,)) = first.jsonl(), second.jsonl()
        assert one["claim_id"] == two["claim_id"]
        assert one["claim_id"]
        assert one["status"] == "verified"
        assert (tmp_path / "a" / "crawler.sqlite").is_file()
        export = await cli("export", "--format", "jsonl", cwd=tmp_path / "a")
        assert [r["claim_id"] for r in export.jsonl()] == [one["claim_id"]]

    async def test_demo_shows_every_status(self, tmp_path: Path) -> None:
        """`crawler demo` verifies the bundled claims offline and shows every status."""
        done = await cli("demo", cwd=tmp_path, loopback=False)
        assert done.code == 0, done.stderr
        for status in STATUSES:
            assert re.search(rf"\b{status}\b", done.stdout), status


def assert_report(text: str) -> None:
    """The report of the claims_csv run: counts by status, by flag and by vendor."""
    for word in ("verified", "nofollow", "missing", "blocked", "sponsored", "vendor", "acme", "globex"):
        assert word in text
    # The "By status" row: the word, then its count of 3 (the headline figures show shares).
    assert any(re.search(r"\bverified\b[^0-9%]*\b3\b", line) for line in text.splitlines())


class TestInputs:
    async def test_tsv_and_jsonl_files(self, site: Server, tmp_path: Path) -> None:
        """`.tsv` (tabs) and `.jsonl` (one object a line) are read by suffix, several inputs in one run."""
        write(
            tmp_path / "a.tsv", f"source_url\ttarget_url\tvendor\n{site.url('/verified')}\t{TARGET}\tacme\n"
        )
        jsonl = [
            {"source_url": site.url("/nofollow"), "target_url": TARGET, "vendor": "globex", "price": 12.5},
            {"source_url": site.url("/missing"), "target_url": TARGET, "expected_anchor": None},
        ]
        write(tmp_path / "b.jsonl", "\n".join(json.dumps(item) for item in jsonl) + "\n")
        done = await cli("verify", "a.tsv", "b.jsonl", "--db", "c.sqlite", "--output", "-", cwd=tmp_path)
        assert done.code == 0, done.stderr
        statuses = sorted((r["status"], r["tags"].get("vendor")) for r in done.jsonl())
        assert statuses == [("missing", None), ("nofollow", "globex"), ("verified", "acme")]

    async def test_stdin(self, site: Server, tmp_path: Path) -> None:
        """`-` reads standard input, its format from --format or else sniffed (CSV, TSV, JSON Lines)."""
        source = site.url("/verified")
        texts = {
            "csv": f"source_url,target_url\n{source},{TARGET}\n",
            "tsv": f"target_url\tsource_url\n{TARGET}\t{source}\n",
            "jsonl": json.dumps({"target_url": TARGET, "source_url": source}) + "\n",
        }
        cases = [("csv", None), ("tsv", None), ("jsonl", None), ("csv", "csv")]
        runs = []
        for n, (kind, flag) in enumerate(cases):
            options = ["--format", flag] if flag else []
            options += ["--db", f"{n}.sqlite", "--output", "-"]
            runs.append(cli("verify", "-", *options, cwd=tmp_path, stdin=texts[kind].encode()))
        for done, case in zip(await asyncio.gather(*runs), cases, strict=True):
            assert done.code == 0, (case, done.stderr)
            assert [r["status"] for r in done.jsonl()] == ["verified"], case

    async def test_invalid_rows_named_and_run_goes_on(self, site: Server, tmp_path: Path) -> None:
        """Unusable rows become `invalid` results whose reason names the row; the others are verified."""
        good = site.url("/verified")
        lines = [
            "source_url,target_url,id",
            f"{good},{TARGET},ok1",
            f"{good},,no-target",
            f"mailto:x@y.test,{TARGET},mailto",
            f"http://exa mple.test/,{TARGET},unparsable",
            f"/relative/page,{TARGET},relative",
            f"{good},{TARGET},ok2",
        ]
        write(tmp_path / "c.csv", "\n".join(lines) + "\n")
        jsonl = [
            json.dumps({"source_url": good, "target_url": TARGET, "id": "ok3"}),
            '{"source_url": "' + good + '", "target_url": ',
            json.dumps([good, TARGET]),
            json.dumps({"source_url": good, "id": "no-target-json"}),
        ]
        write(tmp_path / "c.jsonl", "\n".join(jsonl) + "\n")
        done = await cli("verify", "c.csv", "c.jsonl", "--db", "c.sqlite", "--output", "-", cwd=tmp_path)
        assert done.code == 0, done.stderr
        records = done.jsonl()
        assert len(records) == 10
        statuses = {r["claim_id"]: r["status"] for r in records}
        assert [statuses[key] for key in ("ok1", "ok2", "ok3")] == ["verified"] * 3
        invalid = [r["reason"] for r in records if r["status"] == "invalid"]
        named = sorted(
            int(match.group(1)) for reason in invalid if (match := re.match(r"row (\d+)\b", reason))
        )
        assert named == [2, 3, 3, 4, 4, 5, 6]
        assert statuses["no-target"] == statuses["no-target-json"] == "invalid"

    async def test_unusable_input_or_database_exits_2(self, tmp_path: Path) -> None:
        """A missing claims file, one without URL columns, or no database to read: exit 2, nothing created."""
        write(tmp_path / "bad.csv", "url,target\nhttp://a.test/,http://b.test/\n")
        runs = await asyncio.gather(
            cli("verify", "absent.csv", "--db", "a.sqlite", cwd=tmp_path),
            cli("verify", "bad.csv", "--db", "b.sqlite", cwd=tmp_path),
            cli("verify", "--db", "none.sqlite", cwd=tmp_path),
            cli("export", "--db", "none.sqlite", cwd=tmp_path),
            cli("report", "--db", "none.sqlite", cwd=tmp_path),
        )
        assert [done.code for done in runs] == [2] * 5
        assert "absent.csv" in runs[0].stderr
        assert "bad.csv" in runs[1].stderr
        assert not any(name.endswith(".sqlite") for name in os.listdir(tmp_path))


class TestRuns:
    async def test_reimport_and_recheck(self, site: Server, tmp_path: Path) -> None:
        """Importing twice adds no claim; verify with no input re-checks them all; --run picks a run."""
        write(tmp_path / "claims.csv", claims_csv(site))
        for _ in range(2):
            done = await cli(
                "verify", "claims.csv", "--db", "c.sqlite", "--fail-on", "unreachable", cwd=tmp_path
            )
            assert done.code == 0, done.stderr
        fetched = site.log.count("/verified")
        again = await cli("verify", "--db", "c.sqlite", cwd=tmp_path)
        assert again.code == 0, again.stderr
        assert site.log.count("/verified") > fetched  # fetched again: a re-check
        db = tmp_path / "c.sqlite"
        assert rows(db, "SELECT count(*) FROM claims") == [(len(EXPECTED),)]
        runs = [run_id for (run_id,) in rows(db, "SELECT id FROM runs ORDER BY rowid")]
        per_run = rows(db, "SELECT run_id, count(*), count(DISTINCT claim_id) FROM results GROUP BY run_id")
        assert sorted(per_run) == sorted((run, len(EXPECTED), len(EXPECTED)) for run in runs)
        first, latest = await asyncio.gather(
            cli("export", "--db", "c.sqlite", "--format", "jsonl", "--run", runs[0], cwd=tmp_path),
            cli("export", "--db", "c.sqlite", "--format", "jsonl", "--run", "latest", cwd=tmp_path),
        )
        assert {r["run_id"] for r in first.jsonl()} == {runs[0]}
        assert {r["run_id"] for r in latest.jsonl()} == {runs[2]}
        assert sorted(r["claim_id"] for r in latest.jsonl()) == sorted(EXPECTED)


class TestInvalidIds:
    def test_bad_rows_of_two_files_are_two_claims(self, tmp_path: Path) -> None:
        """Unusable rows at the same row number of two files get different ids, so both are kept."""
        ids = []
        for name in ("a", "b"):
            write(tmp_path / f"{name}.jsonl", f'{{"broken {name}\n')
            with crawler.read_claims(tmp_path / f"{name}.jsonl") as claims:
                ids += [claim.id for claim in claims]
            with crawler.read_claims(tmp_path / f"{name}.jsonl") as claims:
                assert [claim.id for claim in claims] == ids[-1:]  # stable when read again
        assert len(set(ids)) == 2

    def test_claims_are_streamed(self) -> None:
        """A claims stream is read row by row: the first claim comes before the input ends."""
        read_end, write_end = os.pipe()
        with open(read_end, encoding="utf-8") as stream, open(write_end, "w", encoding="utf-8") as writer:
            writer.write(f"source_url,target_url\nhttp://a.test/,{TARGET}\n")
            writer.flush()
            claims = crawler.read_claims(stream, format="csv")
            first = next(claims)
            assert isinstance(first, crawler.Claim)
            assert first.source_url == "http://a.test/"
            writer.write(f"http://b.test/,{TARGET}\n")
            writer.close()
            assert [claim.source_url for claim in claims] == ["http://b.test/"]
