"""Rows to claims: CSV, TSV and JSON Lines text, streamed, every unusable row a value.

Pure: reads the text stream it is given (files are opened by `crawler.app.inputs`), no
network, no event loop. A stream is never loaded whole: rows are read one at a time, and a
line or field past its limit is skipped, not kept in memory. `claims_of` raises `InputError`
only when the input as a whole is unusable (unreadable, no `source_url`/`target_url`
columns); every other
problem becomes an `InvalidClaim` whose reason is "row N: <field>: <problem>", and
reading goes on.

Decisions a user can rely on:

- Row numbers are what a spreadsheet shows: the header is row 1 (after any blank lines),
  a quoted cell spanning lines is still one row. In JSON Lines, the line number.
- Text is UTF-8, a byte-order mark skipped. A row with bytes that are not UTF-8 (or a NUL)
  is invalid, naming the first such field; its values are kept with U+FFFD in their place.
- Header names are trimmed; `source_url`, `target_url`, `expected_anchor`, `expected_rel`,
  `match` and `id` are matched case-insensitively, every other column is a tag named as
  written (an unnamed column is "column N"). When a name repeats, its first non-empty
  cell wins. The values of those six fields are trimmed; tag values are kept verbatim.
  An empty (or blank) cell is an absent field, so an empty tag is not kept.
- The delimiter is `,` for CSV and a tab for TSV; when the header lacks the two URL
  columns that way but has them split on `;`, a tab, `,` or `|`, that delimiter is used
  (spreadsheets in many locales save "CSV" with semicolons).
- A row with fewer cells than the header has its missing cells empty (spreadsheets drop
  trailing empty cells); a row with more non-empty cells than the header is invalid,
  since an unquoted delimiter inside a value shifts every column after it.
- A URL cell with a line break or another control character is invalid: it is almost
  always an unclosed quote that swallowed the following rows.
- JSON Lines values: strings as written, `null` absent, numbers, booleans, arrays and
  objects as their compact JSON text (so `"price": 12.5` becomes the tag "12.5").
- Two rows with the same id are both yielded; the store keeps the later one (an import
  is an upsert), so re-importing a corrected file fixes its claims.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from typing import TextIO

from crawler.errors import ClaimError, InputError
from crawler.models import UNSTORABLE_TEXT, Claim, InvalidClaim, claim_key, text_problem

FIELDS = ("source_url", "target_url", "expected_anchor", "expected_rel", "match", "id")
REQUIRED = ("source_url", "target_url")
MAX_FIELD = 65536
"""Characters in one value; longer ones make their row invalid (no real URL or anchor is this long)."""
MAX_LINE = 4 * 1024 * 1024
"""Characters in one physical line; the rest of a longer line is skipped, never held in memory."""

_DELIMITERS = {"csv": ",", "tsv": "\t"}
_FALLBACK_DELIMITERS = (";", "\t", ",", "|")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_JSON_TYPES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}
_SHOWN = 1024  # characters of an over-long value kept in an invalid claim


class _LineTooLong(Exception):
    """Raised by `_Lines` in place of a line longer than `MAX_LINE`, whose rest it skipped."""


class _Lines:
    """Physical lines of a text stream, bounded by `MAX_LINE`, with lines read ahead put back."""

    def __init__(self, stream: TextIO, name: str) -> None:
        self._stream = stream
        self._name = name
        self._ahead: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._ahead:
            return self._ahead.pop()
        line = self._read(MAX_LINE + 1)
        if not line:
            raise StopIteration
        if len(line) > MAX_LINE and line[-1] not in "\r\n":
            while (rest := self._read(MAX_LINE)) and rest[-1] not in "\r\n":
                pass
            raise _LineTooLong
        return line

    def _read(self, limit: int) -> str:
        try:
            return self._stream.readline(limit)
        except OSError as error:  # a disk or pipe failing mid-file: the input is unreadable
            raise InputError(f"{self._name}: {error.strerror or error}") from None

    def put_back(self, line: str) -> None:
        self._ahead.append(line)


def claims_of(stream: TextIO, name: str, format: str | None = None) -> Iterator[Claim | InvalidClaim]:
    """The claims of a text stream, one per data row, in order; `name` is for messages.

    `format` is csv, tsv or jsonl; None: from the first non-blank line (`{` means JSON Lines,
    a tab TSV, anything else CSV). The header is checked now, so a header without the URL
    columns raises `InputError` before any row is read; rows are read as the result is iterated.
    """
    lines = _Lines(stream, name)
    return _rows(lines, name, format, _skip_blank(lines, name))


def _skip_blank(lines: _Lines, name: str) -> tuple[int, str | None]:
    """(blank lines skipped, first non-blank line or None), that line put back."""
    blank = 0
    try:
        for line in lines:
            line = line.removeprefix("\ufeff")  # a stream opened by the caller may keep its BOM
            if line.strip():
                lines.put_back(line)
                return blank, line
            blank += 1
    except _LineTooLong:
        raise InputError(f"{name}: the first line is longer than {MAX_LINE} characters") from None
    return blank, None


def _rows(
    lines: _Lines, name: str, format: str | None, start: tuple[int, str | None]
) -> Iterator[Claim | InvalidClaim]:
    """Check the header now (raising InputError), then return the lazy row iterator."""
    blank, first = start
    format = format or _sniff(first, name)
    if format == "jsonl":
        return _jsonl_rows(lines, blank)
    if first is None:
        raise InputError(f"{name}: empty: expected a header row with source_url and target_url")
    delimiter = _delimiter(first, _DELIMITERS[format], name)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = [_clean(cell).strip() for cell in next(reader)]
    except (csv.Error, _LineTooLong) as error:
        raise InputError(f"{name}: unreadable header: {error or 'line too long'}") from None
    return _csv_rows(reader, header, blank + 1)


def _sniff(first: str | None, name: str) -> str:
    head = (first or "").lstrip()
    if head.startswith("["):
        raise InputError(f"{name}: a JSON array is not supported: write one object a line (JSON Lines)")
    if head.startswith("{") or first is None:
        return "jsonl"
    return "tsv" if "\t" in first else "csv"


def _delimiter(first: str, preferred: str, name: str) -> str:
    """The delimiter that gives the header both URL columns, the preferred one first."""
    for delimiter in (preferred, *_FALLBACK_DELIMITERS):
        names = {cell.strip().lower() for cell in _header_cells(first, delimiter)}
        if all(field in names for field in REQUIRED):
            return delimiter
    found = ", ".join(repr(_clean(cell).strip()) for cell in _header_cells(first, preferred)[:10])
    raise InputError(f"{name}: the header has no source_url and target_url columns (found: {found})")


def _header_cells(line: str, delimiter: str) -> list[str]:
    """The cells of a header line; none when the csv module can't read it (a stray CR)."""
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return []


def _csv_rows(reader: Iterator[list[str]], header: list[str], row: int) -> Iterator[Claim | InvalidClaim]:
    columns = _columns(header)
    while True:
        row += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except _LineTooLong:
            yield _invalid({}, {}, row, "line", f"longer than {MAX_LINE} characters")
            continue
        except csv.Error as error:
            yield _invalid({}, {}, row, "cells", str(error))
            continue
        if any(cell.strip() for cell in cells):
            yield _from_cells(columns, cells, row)


def _columns(header: list[str]) -> list[tuple[int, str, bool]]:
    """(index, name, is one of the six fields) of each column, named once for all rows."""
    columns = []
    for index, raw in enumerate(header):
        name = raw.strip() or f"column {index + 1}"
        known = name.lower() in FIELDS
        columns.append((index, name.lower() if known else name, known))
    return columns


def _from_cells(columns: list[tuple[int, str, bool]], cells: list[str], row: int) -> Claim | InvalidClaim:
    known: dict[str, str] = {}
    tags: dict[str, str] = {}
    for index, name, is_known in columns[: len(cells)]:
        value = cells[index]
        if not value.strip():
            continue
        if is_known:
            known.setdefault(name, value.strip())
        else:
            tags.setdefault(name, value)
    if len(cells) > len(columns) and any(cell.strip() for cell in cells[len(columns) :]):
        problem = f"{len(cells)} cells but the header has {len(columns)}"
        return _invalid(known, tags, row, "cells", problem, raw="\x1f".join(cells))
    return _claim(known, tags, row)


def _jsonl_rows(lines: _Lines, row: int) -> Iterator[Claim | InvalidClaim]:
    while True:
        row += 1
        try:
            line = next(lines)
        except StopIteration:
            return
        except _LineTooLong:
            yield _invalid({}, {}, row, "line", f"longer than {MAX_LINE} characters")
            continue
        if line.strip():
            yield _from_json_line(line, row)


def _from_json_line(line: str, row: int) -> Claim | InvalidClaim:
    try:
        value = json.loads(line)
    except RecursionError:
        return _invalid({}, {}, row, "json", "nested too deeply", raw=line)
    except json.JSONDecodeError as error:
        return _invalid({}, {}, row, "json", f"not valid JSON: {error.msg} (column {error.colno})", raw=line)
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        return _invalid({}, {}, row, "json", f"not valid JSON: {error}", raw=line)
    if not isinstance(value, dict):
        return _invalid({}, {}, row, "json", f"a JSON {_JSON_TYPES[type(value)]}, not an object", raw=line)
    return claim_from_fields({str(key): _json_text(item) for key, item in value.items()}, row)


def _json_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def claim_from_fields(fields: Mapping[str, str | None], row: int) -> Claim | InvalidClaim:
    """The claim of one row (names as in the header, values as read), or why it is unusable."""
    known, tags = _split(fields)
    return _claim(known, tags, row)


def _claim(known: dict[str, str], tags: dict[str, str], row: int) -> Claim | InvalidClaim:
    problem = _text_problem(known, tags)
    if problem is not None:
        return _invalid(known, tags, row, *problem)
    try:
        return Claim(
            source_url=known.get("source_url", ""),
            target_url=known.get("target_url", ""),
            expected_anchor=known.get("expected_anchor"),
            expected_rel=known.get("expected_rel"),
            match=known.get("match", "page"),
            id=known.get("id", ""),
            tags=tags,
        )
    except ClaimError as error:
        return _invalid(known, tags, row, error.field, error.problem)


def _split(fields: Mapping[str, str | None]) -> tuple[dict[str, str], dict[str, str]]:
    """(the six known fields, trimmed; the tags, verbatim), blank values dropped, first one kept."""
    known: dict[str, str] = {}
    tags: dict[str, str] = {}
    for index, (raw_name, value) in enumerate(fields.items(), start=1):
        if value is None or not value.strip():
            continue
        name = raw_name.strip() or f"column {index}"
        if name.lower() in FIELDS:
            known.setdefault(name.lower(), value.strip())
        else:
            tags.setdefault(name, value)
    return known, tags


def _text_problem(known: dict[str, str], tags: dict[str, str]) -> tuple[str, str] | None:
    """(field, problem) for the first value that can't be kept as text, or None."""
    everything = (*known.values(), *tags.values(), *tags)
    longest = max(map(len, everything), default=0)
    if longest <= MAX_FIELD and UNSTORABLE_TEXT.search("".join(everything)) is None:
        return _url_problem(known)  # the common case, checked at once
    for name, value in (*known.items(), *tags.items(), *((name, name) for name in tags)):
        if len(value) > MAX_FIELD:
            return _clean(name), f"longer than {MAX_FIELD} characters"
        problem = text_problem(value)
        if problem is not None:
            return _clean(name), problem
    return _url_problem(known)


def _url_problem(known: dict[str, str]) -> tuple[str, str] | None:
    for name in REQUIRED:
        if name in known and _CONTROL.search(known[name]):
            return name, "contains a line break or control character (an unclosed quote?)"
    return None


def _invalid(
    known: dict[str, str], tags: dict[str, str], row: int, field: str, problem: str, *, raw: str = ""
) -> InvalidClaim:
    """An invalid row: values made safe to store; an id that only this row can have.

    `raw` is the row's text when its values could not be read (a broken JSON line).
    """
    source = _clean(known.get("source_url", ""))
    target = _clean(known.get("target_url", ""))
    given = _clean(known.get("id", ""))
    return InvalidClaim(
        id=given or _invalid_key(source, target, row, (known, tags, raw)),
        source_url=source,
        target_url=target,
        reason=f"row {row}: {field}: {problem}",
        tags={_clean(name): _clean(value) for name, value in tags.items()},
    )


def _invalid_key(source: str, target: str, row: int, content: object) -> str:
    # With both URLs present the key is the default claim id, so importing the same file
    # twice stores the row once. Without them, the row number and the row's content: two
    # unusable rows at the same row number of two files are two claims, yet reading the
    # same file again gives the same ids.
    if source and target:
        return claim_key(source, target)
    return claim_key(f"row {row}", json.dumps(content, ensure_ascii=False, sort_keys=True))


def _clean(text: str) -> str:
    """`text` storable as UTF-8: bad bytes and NULs as U+FFFD, an over-long value shortened."""
    if len(text) > MAX_FIELD:
        text = text[:_SHOWN] + "…"
    if UNSTORABLE_TEXT.search(text) is None:
        return text
    return UNSTORABLE_TEXT.sub("\ufffd", text)
