"""xlsx: results written for spreadsheet users and claim rows read back, on real workbook files."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from crawler.app import xlsx
from crawler.app.xlsx import XlsxError, read_xlsx_rows, write_results_xlsx

HEADER = ["claim_id", "source_url", "status", "bytes", "note"]


def sheet_xml(path: Path, member: str = "xl/worksheets/sheet1.xml") -> str:
    """The XML of a workbook part, as written on disk."""
    with zipfile.ZipFile(path) as archive:
        return archive.read(member).decode()


def patch(path: Path, member: str, change: Callable[[str], str]) -> None:
    """Rewrite one part of a workbook, as another application would have written it."""
    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    parts[member] = change(parts[member].decode()).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            target.writestr(name, data)


def workbook(path: Path, rows: Mapping[int, Sequence[Any]], formats: dict[str, str] | None = None) -> Path:
    """A workbook saved by openpyxl's normal mode, each row at its number (absent rows: not in the file)."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    for number, values in rows.items():
        for column, value in enumerate(values, 1):
            if value is not None:
                sheet.cell(row=number, column=column, value=value)
    for coordinate, number_format in (formats or {}).items():
        sheet[coordinate].number_format = number_format
    book.save(path)
    return path


def read(path: Path) -> list[tuple[int, dict[str, str | None]]]:
    return list(read_xlsx_rows(path))


class TestWrite:
    def test_header_bold_panes_frozen_filter_over_rows(self, tmp_path: Path) -> None:
        """The header is bold, panes are frozen at A2, and the auto-filter spans the header and every row."""
        path = tmp_path / "results.xlsx"
        rows = [
            ["c1", "https://a.example/", "verified", 123, None],
            ["c2", "https://b.example/", "missing", 0, "x"],
        ]
        assert write_results_xlsx(path, HEADER, rows) == 2
        sheet = openpyxl.load_workbook(path).worksheets[0]
        assert sheet.title == "results"
        assert sheet.freeze_panes == "A2"
        assert sheet.auto_filter.ref == "A1:E3"
        assert [cell.value for cell in sheet[1]] == HEADER
        assert all(cell.font.b for cell in sheet[1])
        assert [cell.value for cell in sheet[2]] == rows[0]
        assert sheet.column_dimensions["B"].width > sheet.column_dimensions["C"].width

    def test_formula_looking_text_stays_text(self, tmp_path: Path) -> None:
        """Cells such as =HYPERLINK(...), +1 or #N/A are stored as text: no formula, no error cell."""
        path = tmp_path / "results.xlsx"
        texts = ['=HYPERLINK("https://evil.example/","click")', "=1+1", "+1", "-2", "@SUM(A1)", "#N/A", "="]
        write_results_xlsx(path, ["text"], [[text] for text in texts])
        assert "<f>" not in sheet_xml(path)
        cells = [row[0] for row in openpyxl.load_workbook(path).worksheets[0].iter_rows(min_row=2)]
        assert [(cell.value, cell.data_type) for cell in cells] == [(text, "s") for text in texts]

    def test_typed_cells_and_what_excel_cannot_hold(self, tmp_path: Path) -> None:
        """Numbers, booleans, dates stay typed; huge integers, NaN, control characters, lists become text."""
        path = tmp_path / "results.xlsx"
        aware = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
        row = [
            12,
            2.5,
            True,
            aware,
            2**60,
            float("nan"),
            "a\x0bb",
            ["hidden", "boilerplate"],
            {"k": 1},
            "x" * 40000,
        ]
        write_results_xlsx(path, [f"c{i}" for i in range(len(row))], [row])
        values = [cell.value for cell in openpyxl.load_workbook(path).worksheets[0][2]]
        assert values[:4] == [12, 2.5, True, datetime(2024, 5, 1, 10, 0)]
        assert values[4:9] == [str(2**60), "nan", "a\ufffdb", '["hidden","boilerplate"]', '{"k":1}']
        assert values[9] == "x" * 32767

    def test_wider_rows_widen_the_filter(self, tmp_path: Path) -> None:
        """A row longer than the header still falls inside the auto-filter."""
        path = tmp_path / "results.xlsx"
        write_results_xlsx(path, ["a", "b"], [["1", "2", "3"]])
        assert openpyxl.load_workbook(path).worksheets[0].auto_filter.ref == "A1:C2"

    def test_rows_past_the_sheet_limit_go_on_in_a_second_sheet(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past the rows a sheet holds, a second sheet with the same header, panes and filter goes on."""
        monkeypatch.setattr(xlsx, "MAX_ROWS", 4)  # Excel's 1,048,576, made small
        path = tmp_path / "results.xlsx"
        assert write_results_xlsx(path, ["n"], ([i] for i in range(5))) == 5
        first, second = openpyxl.load_workbook(path).worksheets
        assert [row[0].value for row in first.iter_rows()] == ["n", 0, 1, 2]
        assert [row[0].value for row in second.iter_rows()] == ["n", 3, 4]
        assert (second.title, second.freeze_panes, second.auto_filter.ref) == ("results 2", "A2", "A1:A3")
        assert first.auto_filter.ref == "A1:A4"

    def test_a_failed_export_leaves_no_file(self, tmp_path: Path) -> None:
        """When the rows fail midway, the target keeps its earlier content and no partial file is left."""
        path = tmp_path / "results.xlsx"
        path.write_bytes(b"earlier export")

        def rows() -> Iterator[list[object]]:
            yield ["c1", "https://a.example/", "verified", 1, None]
            raise RuntimeError("the database went away")

        temporary = set(Path(tempfile.gettempdir()).glob("openpyxl.*"))
        with pytest.raises(RuntimeError):
            write_results_xlsx(path, HEADER, rows())
        assert path.read_bytes() == b"earlier export"
        assert set(Path(tempfile.gettempdir()).glob("openpyxl.*")) <= temporary
        assert sorted(p.name for p in tmp_path.iterdir()) == ["results.xlsx"]

    def test_written_rows_read_back_as_typed(self, tmp_path: Path) -> None:
        """What write_results_xlsx writes, read_xlsx_rows reads as the text a user sees."""
        path = tmp_path / "results.xlsx"
        write_results_xlsx(path, HEADER, [["c1", "https://a.example/", "verified", 123, "=SUM(A1)"]])
        assert read(path) == [
            (
                2,
                {
                    "claim_id": "c1",
                    "source_url": "https://a.example/",
                    "status": "verified",
                    "bytes": "123",
                    "note": "=SUM(A1)",
                },
            )
        ]


class TestRead:
    def test_blank_leading_rows_and_row_numbers(self, tmp_path: Path) -> None:
        """The first non-blank row is the header, blank rows are skipped, rows keep their sheet numbers."""
        path = workbook(
            tmp_path / "claims.xlsx",
            {
                3: ["   "],
                4: ["source_url", "target_url"],
                5: ["https://a.example/", "https://t.example/"],
                7: ["https://b.example/", "https://t.example/"],
                8: [None, "  "],
            },
        )
        assert read(path) == [
            (5, {"source_url": "https://a.example/", "target_url": "https://t.example/"}),
            (7, {"source_url": "https://b.example/", "target_url": "https://t.example/"}),
        ]

    def test_numbers_dates_and_booleans_as_a_user_writes_them(self, tmp_path: Path) -> None:
        """Integers without .0, floats at Excel's 15 digits, percentages, ISO dates, TRUE/FALSE, errors."""
        values = [
            12,
            12.0,
            0.1 + 0.2,
            1e20,
            1.5e-7,
            -3.25,
            0.15,
            date(2024, 5, 1),
            datetime(2024, 5, 1, 10, 30),
            time(10, 30),
            timedelta(hours=36, minutes=30),
            True,
            "#N/A",
        ]
        header = [f"c{i}" for i in range(len(values))]
        path = workbook(tmp_path / "claims.xlsx", {1: header, 2: values}, formats={"G2": "0%"})
        ((number, row),) = read(path)
        assert number == 2
        assert list(row.values()) == [
            "12",
            "12",
            "0.3",
            "100000000000000000000",
            "0.00000015",
            "-3.25",
            "15%",
            "2024-05-01",
            "2024-05-01T10:30:00",
            "10:30:00",
            "36:30:00",
            "TRUE",
            "#N/A",
        ]

    def test_empty_cells_unnamed_and_repeated_columns(self, tmp_path: Path) -> None:
        """Empty cells are None; unnamed columns are "column N"; a repeated name keeps its first value."""
        path = workbook(
            tmp_path / "claims.xlsx",
            {
                1: [" source_url ", None, "vendor", "vendor"],
                2: ["https://a.example/", "x", None, "acme", "extra"],
                3: ["  https://b.example/", None, "first", "second"],
            },
        )
        assert read(path) == [
            (2, {"source_url": "https://a.example/", "column 2": "x", "vendor": "acme", "column 5": "extra"}),
            (3, {"source_url": "  https://b.example/", "column 2": None, "vendor": "first"}),
        ]

    def test_formulas_read_as_their_saved_values(self, tmp_path: Path) -> None:
        """A formula cell gives the value Excel saved with it, never the formula; none saved, it is empty."""
        path = workbook(tmp_path / "claims.xlsx", {1: ["a", "b"], 2: ["=1+1", "=2+2"]})
        patch(
            path, "xl/worksheets/sheet1.xml", lambda xml: xml.replace("<f>1+1</f><v />", "<f>1+1</f><v>2</v>")
        )
        assert read(path) == [(2, {"a": "2", "b": None})]

    def test_a_wrong_declared_size_does_not_cut_rows(self, tmp_path: Path) -> None:
        """A sheet declaring a smaller size than it has (as some applications write) is read whole."""
        path = workbook(tmp_path / "claims.xlsx", {1: ["a"], 2: ["x"], 3: ["y"], 4: ["z"]})
        patch(path, "xl/worksheets/sheet1.xml", lambda xml: xml.replace('ref="A1:A4"', 'ref="A1:A2"'))
        assert 'ref="A1:A2"' in sheet_xml(path)
        assert [values["a"] for _, values in read(path)] == ["x", "y", "z"]

    def test_the_first_sheet_in_tab_order(self, tmp_path: Path) -> None:
        """The first sheet is read even when another one is active."""
        book = openpyxl.Workbook()
        first = book.active
        assert isinstance(first, Worksheet)
        first.append(["source_url"])
        first.append(["https://first.example/"])
        other = book.create_sheet("notes")
        other.append(["source_url"])
        other.append(["https://other.example/"])
        book.active = 1
        book.save(tmp_path / "claims.xlsx")
        assert read(tmp_path / "claims.xlsx") == [(2, {"source_url": "https://first.example/"})]

    def test_unreadable_files_raise_at_once(self, tmp_path: Path) -> None:
        """A missing file or one that is not a workbook raises XlsxError when opened, before iterating."""
        with pytest.raises(XlsxError, match="no such file"):
            read_xlsx_rows(tmp_path / "missing.xlsx")
        csv = tmp_path / "claims.xlsx"
        csv.write_text("source_url,target_url\n")
        with pytest.raises(XlsxError, match=r"not an \.xlsx workbook"):
            read_xlsx_rows(csv)

    def test_an_empty_workbook_yields_nothing(self, tmp_path: Path) -> None:
        """A workbook with no rows, or only a header, yields no row."""
        assert read(workbook(tmp_path / "empty.xlsx", {})) == []
        assert read(workbook(tmp_path / "header.xlsx", {1: ["source_url"]})) == []


def test_timezone_aware_dates_are_written_in_utc(tmp_path: Path) -> None:
    """An aware datetime is converted to UTC, since Excel cells have no time zone."""
    path = tmp_path / "results.xlsx"
    write_results_xlsx(path, ["checked"], [[datetime(2024, 1, 1, 23, 30, tzinfo=UTC)]])
    assert read(path) == [(2, {"checked": "2024-01-01T23:30:00"})]
