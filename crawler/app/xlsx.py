"""Excel files: results written as .xlsx, streamed; rows of a claims workbook read, streamed.

Both use openpyxl's streaming modes (write-only and read-only), so a million rows never sit
in memory.

Writing (`write_results_xlsx`), for a spreadsheet user:

- the header row is bold, the panes are frozen below it, and an auto-filter covers the
  header and every row written; URL columns are wider than the others;
- cells are typed: text is always text (a value such as `=HYPERLINK(...)`, `+1` or `#N/A`
  stays text, never a formula or an error: no prefix is needed, unlike CSV), numbers and
  booleans are numbers and booleans, None is an empty cell, lists and objects are compact
  JSON text (as in CSV), datetimes are dates (timezone-aware ones in UTC);
- what Excel cannot hold exactly is written as text: integers of 16 digits or more (Excel
  keeps 15), NaN and infinities; control characters that XML forbids become U+FFFD, and
  text past Excel's 32,767 characters a cell is cut there;
- past Excel's 1,048,576 rows a sheet, the rows go on in a second sheet ("results 2"),
  with the same header, panes and filter;
- the file appears whole or not at all: it is written beside the target and renamed.

Reading (`read_xlsx_rows`), as the claims reader needs it:

- the first sheet in tab order; values, not formulas (the values Excel saved with them);
- the first row with a non-blank cell is the header, its names trimmed; a column with no
  name, or a cell past the header's last column, is named "column N" (N from 1, as in CSV);
  when a name repeats, its first non-empty cell wins;
- each later row that is not blank yields (its row number as the spreadsheet shows it, the
  cells by column name): text as written, None for an empty cell, numbers as a user writes
  them (12, not 12.0; 0.3, not 0.30000000000000004; 15% for a percentage cell), dates in ISO
  8601 (`2024-05-01`, or `2024-05-01T10:30:00` with a time), durations as `36:30:00`,
  booleans TRUE/FALSE as Excel shows them, error cells as their code (`#N/A`); a formula
  saved without its value (written by a script, never opened in Excel) is an empty cell;
- the file stays open until the rows are read to the end or the iterator is closed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, Cell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from crawler.errors import InputError

if TYPE_CHECKING:  # a private module: imported for its type only
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

MAX_ROWS = 1_048_576
MAX_COLUMNS = 16_384
MAX_TEXT = 32_767
EXACT_DIGITS = 15
"""Significant digits Excel keeps of a number."""
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_BOLD = Font(bold=True)

Value = str | int | float | bool | datetime | date | time | Cell | None


class XlsxError(InputError):
    """A workbook that can't be read: `path` and what went wrong."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


def write_results_xlsx(
    path: str | os.PathLike[str],
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    sheet_title: str = "results",
) -> int:
    """Write `header` and `rows` to a new .xlsx file at `path`; return the number of rows."""
    if not 0 < len(header) <= MAX_COLUMNS:
        raise ValueError(f"a header of 1 to {MAX_COLUMNS} columns is needed, not {len(header)}")
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        count = _write(partial, header, rows, sheet_title)
        partial.replace(target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return count


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]], title: str) -> int:
    book = Workbook(write_only=True)
    try:
        sheet = _sheet(book, title, header)
        count = in_sheet = 0
        width = len(header)
        for row in rows:
            if in_sheet == MAX_ROWS - 1:
                _filter(sheet, width, in_sheet)
                sheet = _sheet(book, f"{title} {len(book.worksheets) + 1}", header)
                in_sheet, width = 0, len(header)
            sheet.append([_cell(sheet, value) for value in row])
            width = max(width, len(row))
            in_sheet += 1
            count += 1
        _filter(sheet, width, in_sheet)
    except BaseException:
        _discard(book)
        raise
    book.save(path)
    return count


def _discard(book: Workbook) -> None:
    """Close the sheets of an export that failed and delete their temporary files now.

    Left alone, openpyxl keeps them until the process exits and complains ("Exception ignored
    in ... _write_rows") when it collects the unfinished sheets.
    """
    for sheet in book.worksheets:
        with contextlib.suppress(Exception):
            sheet.close()
            _unstubbed(sheet)._writer.cleanup()


def _sheet(book: Workbook, title: str, header: Sequence[str]) -> WriteOnlyWorksheet:
    sheet: WriteOnlyWorksheet = book.create_sheet(title)
    sheet.freeze_panes = "A2"
    for index, name in enumerate(header, 1):  # widths go before the first row, in write-only mode
        _unstubbed(sheet).column_dimensions[get_column_letter(index)].width = _width(name)
    cells = []
    for name in header:
        cell = WriteOnlyCell(sheet, value=_text(name))
        cell.data_type = "s"
        cell.font = _BOLD
        cells.append(cell)
    sheet.append(cells)
    return sheet


def _filter(sheet: WriteOnlyWorksheet, width: int, rows: int) -> None:
    """An auto-filter over the header and `rows` rows: set before the sheet is closed at save."""
    _unstubbed(sheet).auto_filter.ref = f"A1:{get_column_letter(min(width, MAX_COLUMNS))}{rows + 1}"


def _unstubbed(sheet: WriteOnlyWorksheet) -> Any:
    """The sheet with the attributes write-only sheets get from `Worksheet._setup` (auto_filter,
    column_dimensions), which types-openpyxl does not declare."""
    return sheet


def _width(name: str) -> float:
    return 50 if "url" in name.lower() or "href" in name.lower() else min(max(len(name) + 4, 10), 40)


def _cell(sheet: WriteOnlyWorksheet, value: object) -> Value:
    """`value` as openpyxl should store it: text that looks like a formula or an error stays text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = _text(value)
        if text.startswith("=") or text in ERROR_CODES:
            cell = WriteOnlyCell(sheet, value=text)
            cell.data_type = "s"
            return cell
        return text
    if isinstance(value, int):
        return value if abs(value) < 10**EXACT_DIGITS else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date | time):
        return value
    if isinstance(value, dict | list | tuple):
        return _text(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))
    return _text(str(value))


def _text(value: str) -> str:
    """Text Excel can hold: XML-forbidden characters replaced, cut at 32,767 characters."""
    return _ILLEGAL.sub("\ufffd", str(value))[:MAX_TEXT]


def read_xlsx_rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(row number, {column name: cell text}) for each non-blank row after the header.

    The workbook is opened now, so a missing or unreadable file raises `XlsxError` here; a
    sheet damaged further in raises it while iterating.
    """
    name = os.fspath(path)
    try:
        with warnings.catch_warnings():  # openpyxl warns about parts it drops (styles, extensions)
            warnings.simplefilter("ignore")
            book = load_workbook(name, read_only=True, data_only=True)
    except Exception as exc:  # zipfile, XML, KeyError, InvalidFileException, OSError...
        raise XlsxError(name, _problem(exc)) from exc
    return _rows(book, name)


def _rows(book: Workbook, name: str) -> Iterator[tuple[int, dict[str, str | None]]]:
    try:
        if not book.worksheets:
            return
        sheet = book.worksheets[0]
        sheet.reset_dimensions()  # the declared size may be wrong: read every row there is
        header: list[str] | None = None
        for number, cells in enumerate(sheet.iter_rows(), 1):
            texts = [_render(cell.value, cell.number_format) for cell in cells]
            if not any(text and text.strip() for text in texts):
                continue
            if header is None:
                header = [(text or "").strip() or f"column {i}" for i, text in enumerate(texts, 1)]
                continue
            yield number, _named(header, texts)
    except XlsxError:
        raise
    except Exception as exc:
        raise XlsxError(name, _problem(exc)) from exc
    finally:
        book.close()


def _named(header: list[str], texts: list[str | None]) -> dict[str, str | None]:
    row: dict[str, str | None] = dict.fromkeys(header)
    for index, text in enumerate(texts):
        if text is None or text == "":
            continue
        key = header[index] if index < len(header) else f"column {index + 1}"
        if row.get(key) is None:  # a repeated name: its first non-empty cell wins
            row[key] = text
    return row


def _render(value: object, number_format: str | None) -> str | None:
    """A cell's value as its user would type it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        if number_format and "%" in number_format:
            return _number(value * 100) + "%"
        return _number(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _duration(value)
    return str(value)


def _number(value: float) -> str:
    """Shortest plain decimal of `value` at Excel's 15 significant digits: 12, 0.3, 1500000."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 10**EXACT_DIGITS:
        return str(int(value))
    text = format(Decimal(f"{value:.{EXACT_DIGITS}g}"), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _duration(value: timedelta) -> str:
    """A duration cell ([h]:mm:ss) as Excel shows it: 36:30:00."""
    seconds = round(value.total_seconds())
    sign = "-" if seconds < 0 else ""
    hours, rest = divmod(abs(seconds), 3600)
    return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _problem(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if type(exc).__name__ in ("BadZipFile", "InvalidFileException"):
        return "not an .xlsx workbook (an old .xls, a password-protected file? save it as .xlsx)"
    return f"unreadable workbook: {type(exc).__name__}: {exc}"
