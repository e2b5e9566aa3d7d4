"""Results as text: JSON Lines, one JSON array, or CSV for spreadsheets.

Pure: turns `Result` values into lines and rows; the caller owns the stream.

CSV, written for a spreadsheet user:

- one column per result field, named and ordered as in the output contract; text, numbers
  and booleans (`true`/`false`) as they are, null as an empty cell; the nested fields
  (`tags`, `flags`, `redirects`, `meta_robots`, `x_robots_tag`, `link`) as compact JSON
  text, so nothing is lost;
- then what was paid for (`expected_anchor`, `expected_rel`, `match`: "paid for X, found Y"
  in one row), the best link flattened (`link_href`, `link_url`, `link_text`, `link_rel` as
  space-separated tokens, `link_hidden`, `link_region`), and one `tag:<name>` column per
  tag found in the exported results (e.g. `tag:vendor`), so a sheet can filter on them;
- a cell that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab
  or a carriage return) gets a leading `'`, the usual guard against CSV injection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from crawler.models import Result, Status
from crawler.store.base import ClaimFields


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    JSON = "json"
    XLSX = "xlsx"


CLAIM_FIELDS: tuple[str, ...] = ("expected_anchor", "expected_rel", "match")
"""What was paid for, after the contract's result fields: "paid for X, found Y" in one row."""


_BLANK = Result(
    claim_id="", source_url="", target_url="", tags={}, run_id="", checked_at="", status=Status.INVALID
)
FIELDS: tuple[str, ...] = tuple(_BLANK.to_dict())
"""The contract's result fields, in their documented order (taken from `Result.to_dict`)."""
LINK_FIELDS: tuple[str, ...] = ("href", "url", "text", "rel", "hidden", "region")
TAG_PREFIX = "tag:"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def json_line(result: Result, claim: ClaimFields | None = None) -> str:
    """The result as one line of JSON (no newline), UTF-8 characters kept as they are; with
    `claim`, the claim's expected anchor, rel and match mode after the result's fields."""
    record = result.to_dict()
    if claim is not None:
        record |= {
            "expected_anchor": claim.expected_anchor,
            "expected_rel": claim.expected_rel,
            "match": claim.match,
        }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def csv_header(tag_keys: Sequence[str]) -> list[str]:
    """Column names: the contract's fields, what was paid for, the flattened link, one column per tag."""
    return [
        *FIELDS,
        *CLAIM_FIELDS,
        *(f"link_{name}" for name in LINK_FIELDS),
        *(TAG_PREFIX + key for key in tag_keys),
    ]


def csv_row(result: Result, claim: ClaimFields, tag_keys: Sequence[str]) -> list[str]:
    """The cells of `result` under `csv_header(tag_keys)`, formulas neutralised."""
    return [neutralise(text) for text in cells(result, claim, tag_keys)]


def cells(result: Result, claim: ClaimFields, tag_keys: Sequence[str]) -> list[str]:
    """The cells of `result` under `csv_header(tag_keys)`, as text (the xlsx export types them)."""
    record = result.to_dict()
    link = record["link"] or {}
    values = [cell(record[name]) for name in FIELDS]
    values += [cell(claim.expected_anchor), cell(claim.expected_rel), cell(claim.match)]
    values += [
        " ".join(link.get("rel", ())) if name == "rel" else cell(link.get(name)) for name in LINK_FIELDS
    ]
    values += [cell(result.tags.get(key)) for key in tag_keys]
    return values


def neutralise(text: str) -> str:
    """`text` with a leading `'` when a spreadsheet would take it for a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def cell(value: Any) -> str:
    """A value as a cell's text: null empty, booleans true/false, lists and objects as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)
