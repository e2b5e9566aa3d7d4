"""Spreadsheets end to end: an .xlsx claims file verified by the real command line, and a run's
results exported as .xlsx and read back."""

from __future__ import annotations

from pathlib import Path

import openpyxl
from contract import TARGET, cli, linked
from servers import Servers, respond


def workbook(path: Path, rows: list[list[object]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append([])  # a blank first row: the header is the first non-blank one
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


class TestClaimsFromXlsx:
    async def test_rows_are_claims_numbered_as_the_sheet_shows(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """An .xlsx file's first sheet is read like a CSV: tags kept, a bad row invalid with its sheet row."""
        site = await servers.app({"/a": respond(linked()), "/b": respond(linked('rel="sponsored"'))})
        claims = workbook(
            tmp_path / "claims.xlsx",
            [
                ["source_url", "target_url", "vendor", "price"],
                [site.url("/a"), TARGET, "acme", 120],
                [site.url("/b"), TARGET, "globex", 80.5],
                ["ftp://bad.example/", TARGET, "globex", 10],
            ],
        )
        done = await cli("verify", str(claims), "--db", "c.sqlite", "-q", cwd=tmp_path)
        assert done.code == 0, done.stderr
        exported = await cli("export", "--db", "c.sqlite", "--format", "jsonl", cwd=tmp_path)
        by_vendor = {(r["tags"]["vendor"], r["tags"]["price"]): r for r in exported.jsonl()}
        assert by_vendor[("acme", "120")]["status"] == "verified"
        assert by_vendor[("globex", "80.5")]["status"] == "nofollow"
        assert by_vendor[("globex", "10")]["status"] == "invalid"
        assert by_vendor[("globex", "10")]["reason"].startswith("row 5: source_url")

    async def test_a_sheet_without_url_columns_is_exit_2(self, tmp_path: Path) -> None:
        """A workbook whose header lacks source_url and target_url stops the command in one line."""
        claims = workbook(tmp_path / "claims.xlsx", [["url", "link"], ["https://a.example/", TARGET]])
        done = await cli("verify", str(claims), "--db", "c.sqlite", cwd=tmp_path)
        assert done.code == 2
        assert "no source_url and target_url columns" in done.stderr
        assert "Traceback" not in done.stderr

    async def test_not_a_workbook_is_exit_2(self, tmp_path: Path) -> None:
        """A file named .xlsx that is not a workbook is one line naming it, exit 2."""
        (tmp_path / "claims.xlsx").write_text("source_url,target_url\n")
        done = await cli("verify", "claims.xlsx", "--db", "c.sqlite", cwd=tmp_path)
        assert done.code == 2
        assert "claims.xlsx" in done.stderr
        assert "Traceback" not in done.stderr
