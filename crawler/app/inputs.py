"""Claims files opened: a path, `-` for standard input, or a stream, read as `crawler.core.claims` says.

The edge of the claims stage: this module opens files and picks the format from the suffix;
turning rows into claims is pure and lives in `crawler.core.claims`.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TextIO

from crawler.app.xlsx import read_xlsx_rows
from crawler.core.claims import claim_from_fields, claims_of
from crawler.errors import InputError
from crawler.models import Claim, InvalidClaim

FORMATS = ("csv", "tsv", "jsonl", "xlsx")
SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xlsx": "xlsx",
}


def read_claims(source: str | os.PathLike[str] | TextIO, *, format: str | None = None) -> ClaimReader:
    """Claims of a file (`-` is standard input) or text stream, one per data row, in order.

    The format comes from `format`, else the file's suffix, else the first non-blank
    line: `{` means JSON Lines, a tab TSV, anything else CSV. The file is opened and its
    header checked now, so a missing file or a header without the URL columns raises
    `InputError` before any row is read; rows are read as the result is iterated.
    """
    if format is not None and format.lower() not in FORMATS and format.lower() != "ndjson":
        raise InputError(f"unknown format {format!r}: use csv, tsv, jsonl or xlsx")
    if _format(source, format) == "xlsx":
        if not isinstance(source, str | os.PathLike) or str(source) == "-":
            raise InputError("xlsx claims are read from a file, not from a stream")
        return ClaimReader(_xlsx_claims(source), _keep)
    stream, name, release = _open(source)
    try:
        rows = claims_of(stream, name, _format(source, format))
    except BaseException:
        release()
        raise
    return ClaimReader(rows, release)


class ClaimReader(Iterator[Claim | InvalidClaim]):
    """The claims of one input, read lazily; releases the file when exhausted or closed."""

    def __init__(self, rows: Iterator[Claim | InvalidClaim], release: Callable[[], object]) -> None:
        self._rows = rows
        self._release: Callable[[], object] | None = release

    def __next__(self) -> Claim | InvalidClaim:
        try:
            return next(self._rows)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        """Close the file (standard input is let go, a stream the caller passed in stays open)."""
        if self._release is not None:
            self._release()
            self._release = None

    def __enter__(self) -> ClaimReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at exit the stream may already be gone
            self.close()


def _open(source: str | os.PathLike[str] | TextIO) -> tuple[TextIO, str, Callable[[], object]]:
    """(text stream, name for messages, how to let it go): UTF-8, BOM skipped, bad bytes kept.

    surrogateescape keeps undecodable bytes as lone surrogates, so the row they are in is
    reported as invalid instead of the whole file failing to decode.
    """
    if not isinstance(source, str | os.PathLike):
        return source, str(getattr(source, "name", "<stream>")), _keep
    if str(source) == "-":
        if not isinstance(getattr(sys.stdin, "buffer", None), io.BufferedIOBase):
            return sys.stdin, "<stdin>", _keep
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="surrogateescape", newline="")
        return stdin, "<stdin>", stdin.detach  # detach, not close: the process's stdin stays open
    try:
        stream = open(source, encoding="utf-8-sig", errors="surrogateescape", newline="")  # noqa: SIM115
    except OSError as error:
        raise InputError(f"{source}: {error.strerror or error}") from None
    return stream, str(source), stream.close


def _xlsx_claims(path: str | os.PathLike[str]) -> Iterator[Claim | InvalidClaim]:
    """The claims of the first sheet of a workbook, row numbers as the sheet shows them; the
    workbook is opened and its header checked now (a missing file or URL column: InputError)."""
    rows = read_xlsx_rows(path)
    first = next(rows, None)
    if first is None:
        return iter(())
    names = {name.strip().lower() for name in first[1]}
    if not {"source_url", "target_url"} <= names:
        found = ", ".join(repr(name) for name in list(first[1])[:10])
        raise InputError(
            f"{os.fspath(path)}: the header has no source_url and target_url columns (found: {found})"
        )
    return (claim_from_fields(fields, row) for row, fields in itertools.chain([first], rows))


def _keep() -> None:
    """Releasing a stream the caller owns: nothing to do."""


def _format(source: str | os.PathLike[str] | TextIO, format: str | None) -> str | None:
    """The format asked for or implied by the suffix; None means sniff it."""
    if format is not None:
        return "jsonl" if format.lower() == "ndjson" else format.lower()
    if isinstance(source, str | os.PathLike) and str(source) != "-":
        return SUFFIXES.get(Path(source).suffix.lower())
    return None
