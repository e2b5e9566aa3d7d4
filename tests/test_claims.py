"""Claim files: CSV, TSV, JSON Lines and standard input, streamed, every bad row an InvalidClaim."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.app.inputs import read_claims
from crawler.core.claims import MAX_FIELD, MAX_LINE, claim_from_fields
from crawler.errors import InputError
from crawler.models import Claim, ExpectedRel, InvalidClaim, MatchMode, claim_key

HEADER = "source_url,target_url,expected_anchor,expected_rel,match,id,vendor\n"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def read(tmp_path: Path, name: str, content: str | bytes) -> list[Claim | InvalidClaim]:
    return list(read_claims(write(tmp_path, name, content)))


def only_invalid(items: list[Claim | InvalidClaim]) -> list[str]:
    return [item.reason for item in items if isinstance(item, InvalidClaim)]


def storable(item: Claim | InvalidClaim) -> bool:
    """Every string of the item encodes as UTF-8 (what SQLite needs)."""
    texts = [item.id, item.source_url, item.target_url, *item.tags, *item.tags.values()]
    if isinstance(item, InvalidClaim):
        texts.append(item.reason)
    try:
        "".join(texts).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in "".join(texts)


class TestCsv:
    def test_fields_tags_and_defaults(self, tmp_path: Path) -> None:
        """Known columns become claim fields, other columns tags; empty cells are absent."""
        items = read(
            tmp_path,
            "c.csv",
            HEADER + "https://a.com/p,https://t.com/,Buy shoes,sponsored,prefix,k1,acme\n"
            "https://b.com/,https://t.com/x,,,,,\n",
        )
        first, second = items
        assert first == Claim(
            "https://a.com/p", "https://t.com/", "Buy shoes", ExpectedRel.SPONSORED, MatchMode.PREFIX, "k1",
            {"vendor": "acme"},
        )  # fmt: skip
        assert isinstance(second, Claim)
        assert (second.expected_anchor, second.expected_rel, second.match) == (None, None, MatchMode.PAGE)
        assert second.id == claim_key("https://b.com/", "https://t.com/x")
        assert second.tags == {}

    def test_header_names_trimmed_and_case_insensitive(self, tmp_path: Path) -> None:
        """` Source_URL ` is source_url; a tag keeps its name as written, trimmed."""
        items = read(
            tmp_path, "c.csv", " Source_URL , TARGET_url ,  Vendor \nhttps://a.com/,https://t.com/,x\n"
        )
        assert isinstance(items[0], Claim)
        assert items[0].tags == {"Vendor": "x"}

    def test_values_trimmed_but_tags_verbatim(self, tmp_path: Path) -> None:
        """URL cells are trimmed; a tag value keeps its spaces; a blank tag is dropped."""
        items = read(
            tmp_path,
            "c.csv",
            "source_url,target_url,note,empty\n  https://a.com/ , https://t.com/ , a b ,  \n",
        )
        assert items == [Claim("https://a.com/", "https://t.com/", tags={"note": " a b "})]

    def test_bom_is_skipped(self, tmp_path: Path) -> None:
        """A UTF-8 byte-order mark before the header does not hide the source_url column."""
        items = read(tmp_path, "c.csv", b"\xef\xbb\xbfsource_url,target_url\nhttps://a.com/,https://t.com/\n")
        assert [type(item) for item in items] == [Claim]

    def test_row_numbers_as_a_spreadsheet_shows_them(self, tmp_path: Path) -> None:
        """Header is row 1; blank lines and a quoted multi-line cell each count as spreadsheets count."""
        content = (
            "source_url,target_url,note\n"
            'https://a.com/,https://t.com/,"two\nlines"\n'
            "\n"
            "ftp://a.com/,https://t.com/,\n"
        )
        assert only_invalid(read(tmp_path, "c.csv", content)) == [
            "row 4: source_url: not an http(s) URL: 'ftp://a.com/'"
        ]

    def test_leading_blank_lines_before_header(self, tmp_path: Path) -> None:
        """Blank lines before the header shift every row number by as many rows."""
        items = read(tmp_path, "c.csv", "\n\nsource_url,target_url\nhttps://a.com/,\n")
        assert only_invalid(items) == ["row 4: target_url: missing"]

    def test_unclosed_quote_is_one_invalid_row(self, tmp_path: Path) -> None:
        """An unclosed quote swallows the following lines into one cell: that row is invalid, naming it."""
        content = 'source_url,target_url\n"https://a.com/,https://t.com/\nhttps://b.com/,https://t.com/\n'
        items = read(tmp_path, "c.csv", content)
        assert len(items) == 1
        assert only_invalid(items)[0].startswith("row 2: source_url: contains a line break")

    def test_nul_byte_makes_the_row_invalid(self, tmp_path: Path) -> None:
        """A NUL in a cell is reported, stored as U+FFFD, and the next row is read."""
        content = "source_url,target_url,tag\nhttps://a.com/,https://t.com/,a\x00b\nhttps://b.com/,https://t.com/,\n"
        bad, good = read(tmp_path, "c.csv", content)
        assert isinstance(bad, InvalidClaim)
        assert bad.reason == "row 2: tag: contains a NUL byte"
        assert bad.tags == {"tag": "a\ufffdb"}
        assert isinstance(good, Claim)

    def test_undecodable_bytes_make_the_row_invalid(self, tmp_path: Path) -> None:
        """Latin-1 bytes in a UTF-8 file invalidate their row only; the values stay storable."""
        content = b"source_url,target_url,vendor\nhttps://a.com/,https://t.com/,Caf\xe9\nhttps://b.com/,https://t.com/,ok\n"
        bad, good = read(tmp_path, "c.csv", content)
        assert isinstance(bad, InvalidClaim)
        assert bad.reason == "row 2: vendor: not valid UTF-8"
        assert bad.tags == {"vendor": "Caf\ufffd"}
        assert storable(bad)
        assert isinstance(good, Claim)

    def test_one_megabyte_field(self, tmp_path: Path) -> None:
        """A 1 MB cell makes its row invalid without crashing; the rows after it are read."""
        content = f"source_url,target_url,note\nhttps://a.com/,https://t.com/,{'x' * 1_000_000}\nhttps://b.com/,https://t.com/,\n"
        items = read(tmp_path, "c.csv", content)
        assert [type(item) for item in items] == [InvalidClaim, Claim]
        assert only_invalid(items)[0].startswith("row 2: ")
        assert storable(items[0])

    def test_field_over_the_limit_in_a_short_line(self, tmp_path: Path) -> None:
        """A value just over MAX_FIELD (under the csv module's own limit) is reported by name."""
        content = f"source_url,target_url\nhttps://a.com/{'x' * MAX_FIELD},https://t.com/\n"
        assert only_invalid(read(tmp_path, "c.csv", content)) == [
            f"row 2: source_url: longer than {MAX_FIELD} characters"
        ]

    def test_line_longer_than_the_limit_is_skipped(self, tmp_path: Path) -> None:
        """A physical line past MAX_LINE is one invalid row and never held whole."""
        content = f"source_url,target_url\n{'y' * (MAX_LINE + 10)}\nhttps://b.com/,https://t.com/\n"
        items = read(tmp_path, "c.csv", content)
        assert only_invalid(items) == [f"row 2: line: longer than {MAX_LINE} characters"]
        assert isinstance(items[1], Claim)

    def test_too_many_cells_is_invalid_too_few_are_empty(self, tmp_path: Path) -> None:
        """An unquoted comma shifting columns is caught; trailing empty and missing cells are fine."""
        content = (
            "source_url,target_url,expected_anchor\n"
            "https://a.com/,https://t.com/,shoes, cheap\n"
            "https://b.com/,https://t.com/,,,,\n"
            "https://c.com/,https://t.com/\n"
            "https://d.com/\n"
        )
        items = read(tmp_path, "c.csv", content)
        assert [type(item) for item in items] == [InvalidClaim, Claim, Claim, InvalidClaim]
        assert only_invalid(items) == [
            "row 2: cells: 4 cells but the header has 3",
            "row 5: target_url: missing",
        ]

    def test_repeated_and_unnamed_columns(self, tmp_path: Path) -> None:
        """The first non-empty cell of a repeated name wins; an unnamed column is tag "column N"."""
        content = "source_url,vendor,vendor,target_url,\nhttps://a.com/,,second,https://t.com/,extra\n"
        assert read(tmp_path, "c.csv", content) == [
            Claim("https://a.com/", "https://t.com/", tags={"vendor": "second", "column 5": "extra"})
        ]

    def test_semicolon_delimiter_is_recognised_from_the_header(self, tmp_path: Path) -> None:
        """A "CSV" saved with semicolons (spreadsheets in many locales) is read with `;`."""
        items = read(tmp_path, "c.csv", "source_url;target_url;price\nhttps://a.com/;https://t.com/;12,50\n")
        assert items == [Claim("https://a.com/", "https://t.com/", tags={"price": "12,50"})]

    def test_row_with_another_delimiter_is_invalid(self, tmp_path: Path) -> None:
        """A data row written with the wrong delimiter lands in one cell and is reported."""
        items = read(tmp_path, "c.csv", "source_url,target_url\nhttps://a.com/;https://t.com/\n")
        assert only_invalid(items) == ["row 2: target_url: missing"]

    @pytest.mark.parametrize(
        ("header", "message"),
        [
            ("url,target\n", "found: 'url', 'target'"),
            ("source_url|target_url2\n", "no source_url and target_url columns"),
            ("", "empty"),
        ],
    )
    def test_header_without_url_columns_is_an_input_error(
        self, tmp_path: Path, header: str, message: str
    ) -> None:
        """A header lacking source_url or target_url (or no header) makes the whole file unusable."""
        with pytest.raises(InputError, match=message):
            read_claims(write(tmp_path, "c.csv", header + "https://a.com/,https://t.com/\n" * bool(header)))

    def test_missing_file_and_directory_are_input_errors(self, tmp_path: Path) -> None:
        """A path that can't be read raises InputError at once, naming the path."""
        with pytest.raises(InputError, match=r"nope\.csv"):
            read_claims(tmp_path / "nope.csv")
        with pytest.raises(InputError, match=re.escape(str(tmp_path))):
            read_claims(tmp_path)

    def test_read_error_mid_file_is_an_input_error(self) -> None:
        """A stream failing after some rows (a dying disk or pipe) raises InputError, not OSError."""

        class Failing(io.StringIO):
            def readline(self, size: int = -1, /) -> str:  # type: ignore[override]  # as typeshed does
                if self.tell() > 40:
                    raise OSError(5, "Input/output error")
                return super().readline(size)

        reader = read_claims(Failing("source_url,target_url\n" + "https://a.com/,https://t.com/\n" * 5))
        assert isinstance(next(reader), Claim)
        with pytest.raises(InputError, match="Input/output error"):
            list(reader)

    def test_same_id_twice_yields_both_rows_in_order(self, tmp_path: Path) -> None:
        """Duplicate ids are not dropped by the reader: the store keeps the later one."""
        content = (
            "id,source_url,target_url\nk,https://a.com/,https://t.com/\nk,https://b.com/,https://t.com/\n"
        )
        items = read(tmp_path, "c.csv", content)
        assert [(item.id, item.source_url) for item in items] == [
            ("k", "https://a.com/"),
            ("k", "https://b.com/"),
        ]


class TestUrls:
    @pytest.mark.parametrize(
        ("url", "problem"),
        [
            ("javascript:alert(1)", "not an http(s) URL"),
            ("data:text/html,hi", "not an http(s) URL"),
            ("file:///etc/passwd", "not an http(s) URL"),
            ("ftp://a.com/", "not an http(s) URL"),
            ("https://", "not a valid URL"),
            ("https://a.com:99999/", "not a valid URL"),
            ("https://exa mple.com/", "not a valid URL"),
            ("a.com/page", "not a valid URL"),
            ("//a.com/page", "not a valid URL"),
        ],
    )
    def test_unusable_source_urls(self, tmp_path: Path, url: str, problem: str) -> None:
        """Other schemes, no host, a bad port or a relative URL make the row invalid, naming the field."""
        reasons = only_invalid(read(tmp_path, "c.csv", f'source_url,target_url\n"{url}",https://t.com/\n'))
        assert len(reasons) == 1
        assert reasons[0].startswith(f"row 2: source_url: {problem}")

    @pytest.mark.parametrize(
        "url", ["https://[::1]:8080/x", "https://a.com/my page", "HTTP://A.COM/", "https://bücher.de/"]
    )
    def test_usable_source_urls(self, tmp_path: Path, url: str) -> None:
        """IPv6 literals, spaces in a path, upper-case schemes and IDNA hosts are usable, as in browsers."""
        items = read(tmp_path, "c.csv", f'source_url,target_url\n"{url}",https://t.com/\n')
        assert items == [Claim(url, "https://t.com/")]

    def test_bad_rel_and_match(self, tmp_path: Path) -> None:
        """An unknown expected_rel or match is reported with the allowed words."""
        content = "source_url,target_url,expected_rel,match\nhttps://a.com/,https://t.com/,do-follow,\nhttps://a.com/,https://t.com/,,fuzzy\n"
        reasons = only_invalid(read(tmp_path, "c.csv", content))
        assert reasons[0].startswith("row 2: expected_rel: 'do-follow' is not one of follow, nofollow")
        assert reasons[1].startswith("row 3: match: 'fuzzy' is not one of exact, page")


class TestInvalidIds:
    def test_rows_without_urls_get_distinct_stable_ids(self, tmp_path: Path) -> None:
        """Two rows without URLs don't share an id, and reading the file again gives the same ids."""
        content = "source_url,target_url,vendor\n,,a\n,,b\n"
        first = [item.id for item in read(tmp_path, "c.csv", content)]
        again = [item.id for item in read(tmp_path, "c2.csv", content)]
        assert len(set(first)) == 2
        assert first == again

    def test_given_id_is_kept_on_an_invalid_row(self, tmp_path: Path) -> None:
        """An invalid row with its own id keeps it, so a corrected row with that id replaces it."""
        items = read(tmp_path, "c.csv", "id,source_url,target_url\nrow-9,ftp://a.com/,https://t.com/\n")
        assert items[0].id == "row-9"

    def test_invalid_row_with_both_urls_uses_the_claim_key(self, tmp_path: Path) -> None:
        """With both URLs present, an invalid row's id is the default claim id of those URLs."""
        items = read(tmp_path, "c.csv", "source_url,target_url\nftp://a.com/,https://t.com/\n")
        assert items[0].id == claim_key("ftp://a.com/", "https://t.com/")


class TestJsonLines:
    def test_objects_and_value_types(self, tmp_path: Path) -> None:
        """Strings stay, null is absent, numbers, booleans and arrays become their JSON text."""
        line = json.dumps(
            {"Source_URL": "https://a.com/", "target_url": "https://t.com/", "price": 12.5, "paid": True}
            | {"x": None, "ids": [1, 2]}
        )
        items = read(tmp_path, "c.jsonl", line)
        assert items == [
            Claim("https://a.com/", "https://t.com/", tags={"price": "12.5", "paid": "true", "ids": "[1,2]"})
        ]

    def test_broken_lines_are_invalid_rows_named_by_line_number(self, tmp_path: Path) -> None:
        """Bad JSON, non-objects and deep nesting are reported by line number; blank lines count."""
        content = (
            '{"source_url": "https://a.com/", "target_url": "https://t.com/"}\n'
            "\n"
            '{"source_url": "https://a.com/",\n'
            "[1, 2]\n"
            '"just a string"\n'
            + "[" * 100_000
            + "\n"
            + '{"source_url": "https://b.com/", "target_url": "https://t.com/"}\n'
        )
        items = read(tmp_path, "c.ndjson", content)
        assert [type(item) for item in items] == [
            Claim,
            InvalidClaim,
            InvalidClaim,
            InvalidClaim,
            InvalidClaim,
            Claim,
        ]
        reasons = only_invalid(items)
        assert reasons[0].startswith("row 3: json: not valid JSON: ")
        assert reasons[1:3] == [
            "row 4: json: a JSON array, not an object",
            "row 5: json: a JSON string, not an object",
        ]
        assert reasons[3].startswith("row 6: json: ")

    def test_missing_and_non_string_urls(self, tmp_path: Path) -> None:
        """A JSON object without target_url, or with a number for a URL, is an invalid row."""
        content = '{"source_url": "https://a.com/"}\n{"source_url": 5, "target_url": "https://t.com/"}\n'
        assert only_invalid(read(tmp_path, "c.jsonl", content)) == [
            "row 1: target_url: missing",
            "row 2: source_url: not a valid URL: '5'",
        ]

    def test_escaped_nul_and_lone_surrogate(self, tmp_path: Path) -> None:
        """JSON escapes for NUL or half a surrogate pair make the row invalid and storable."""
        content = (
            '{"source_url": "https://a.com/\\u0000", "target_url": "https://t.com/"}\n'
            '{"source_url": "https://a.com/", "target_url": "https://t.com/", "v": "\\ud800"}\n'
        )
        items = read(tmp_path, "c.jsonl", content)
        assert only_invalid(items) == ["row 1: source_url: contains a NUL byte", "row 2: v: not valid UTF-8"]
        assert all(storable(item) for item in items)

    def test_empty_file_has_no_claims(self, tmp_path: Path) -> None:
        """An empty JSON Lines file is no claims, not an error."""
        assert read(tmp_path, "c.jsonl", "\n\n") == []


class TestSniffingAndStreams:
    GOOD = ("https://a.com/", "https://t.com/")

    @pytest.mark.parametrize(
        "content",
        [
            "source_url,target_url\nhttps://a.com/,https://t.com/\n",
            "source_url\ttarget_url\nhttps://a.com/\thttps://t.com/\n",
            '\n{"source_url": "https://a.com/", "target_url": "https://t.com/"}\n',
            "\ufeffsource_url,target_url\nhttps://a.com/,https://t.com/\n",
        ],
    )
    def test_format_sniffed_from_a_stream(self, content: str) -> None:
        """Without a suffix, `{` means JSON Lines, a tab in the header TSV, else CSV; a BOM is skipped."""
        items = list(read_claims(io.StringIO(content)))
        assert [(item.source_url, item.target_url) for item in items] == [self.GOOD]

    def test_format_argument_wins(self, tmp_path: Path) -> None:
        """`format="tsv"` reads a .txt file as TSV."""
        path = write(tmp_path, "claims.txt", "source_url\ttarget_url\nhttps://a.com/\thttps://t.com/\n")
        assert [item.source_url for item in read_claims(path, format="tsv")] == ["https://a.com/"]

    def test_unknown_format_and_json_array_are_input_errors(self, tmp_path: Path) -> None:
        """A format we don't read, or a JSON array instead of JSON Lines, is refused up front."""
        with pytest.raises(InputError, match="unknown format"):
            read_claims(io.StringIO(""), format="xml")
        with pytest.raises(InputError, match="JSON Lines"):
            read_claims(write(tmp_path, "c.json", '[{"source_url": "https://a.com/"}]'))

    def test_stdin_dash(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """`-` reads standard input as UTF-8 bytes, sniffed, and leaves it open afterwards."""
        raw = io.BytesIO(b'\xef\xbb\xbf{"source_url": "https://a.com/", "target_url": "https://t.com/"}\n')
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw, encoding="latin-1"))
        items = list(read_claims("-"))
        assert [(item.source_url, item.target_url) for item in items] == [self.GOOD]
        assert not raw.closed

    def test_stdin_of_a_real_process(self) -> None:
        """Piped into a real process, `-` with format=tsv reads every row."""
        script = (
            "from crawler.app.inputs import read_claims\n"
            "print(sum(1 for _ in read_claims('-', format='tsv')))"
        )
        rows = "".join(f"https://a.com/{n}\thttps://t.com/\n" for n in range(500))
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=("source_url\ttarget_url\n" + rows).encode(),
            capture_output=True,
            timeout=60,
            check=True,
        )
        assert done.stdout.strip() == b"500"

    def test_reading_is_streamed(self) -> None:
        """Taking the first claim of a large input reads only the start of it."""
        stream = io.StringIO("source_url,target_url\n" + "https://a.com/,https://t.com/\n" * 200_000)
        reader = read_claims(stream)
        next(reader)
        assert stream.tell() < 64 * 1024

    def test_file_closed_when_done_and_caller_stream_left_open(self, tmp_path: Path) -> None:
        """The reader closes a file it opened, and never a stream the caller passed in."""
        stream = io.StringIO("source_url,target_url\nhttps://a.com/,https://t.com/\n")
        list(read_claims(stream))
        assert not stream.closed
        with read_claims(write(tmp_path, "c.csv", "source_url,target_url\n")) as reader:
            assert list(reader) == []


class TestClaimFromFields:
    def test_mapping_with_none_and_case(self) -> None:
        """Keys are matched case-insensitively, None and blank values are absent."""
        claim = claim_from_fields(
            {"SOURCE_URL": "https://a.com/", "target_url": " https://t.com/ ", "match": None, "vendor": " "},
            row=7,
        )
        assert claim == Claim("https://a.com/", "https://t.com/")

    def test_reason_names_row_and_field(self) -> None:
        """The reason reads "row N: field: problem"."""
        invalid = claim_from_fields({"source_url": "https://a.com/"}, row=12)
        assert isinstance(invalid, InvalidClaim)
        assert invalid.reason == "row 12: target_url: missing"

    def test_tag_name_too_long(self) -> None:
        """An absurdly long column name is reported (shortened) instead of being stored as a tag."""
        invalid = claim_from_fields(
            {"source_url": "https://a.com/", "target_url": "https://t.com/", "k" * (MAX_FIELD + 1): "v"}, 2
        )
        assert isinstance(invalid, InvalidClaim)
        assert invalid.reason.endswith(f": longer than {MAX_FIELD} characters")
        assert len(invalid.reason) < 2 * 1024


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class TestFuzz:
    @FUZZ
    @given(body=st.text(), suffix=st.sampled_from(["c.csv", "c.tsv", "c.jsonl", "c.txt"]))
    def test_arbitrary_text_never_crashes(self, tmp_path: Path, body: str, suffix: str) -> None:
        """Any text under a valid header yields only storable claims or row-numbered invalid rows."""
        header = (
            ""
            if suffix == "c.jsonl"
            else "source_url,target_url\n".replace(",", "\t" if "tsv" in suffix else ",")
        )
        self.check(tmp_path / suffix, (header + body).encode("utf-8", "surrogatepass"))

    @FUZZ
    @given(body=st.binary(), suffix=st.sampled_from(["c.csv", "c.jsonl", "c.txt"]))
    def test_arbitrary_bytes_never_crash(self, tmp_path: Path, body: bytes, suffix: str) -> None:
        """Arbitrary bytes raise at most InputError for the whole file, never anything else."""
        self.check(tmp_path / suffix, body)

    @FUZZ
    @given(
        lines=st.lists(
            st.one_of(st.text(), st.dictionaries(st.text(), st.one_of(st.none(), st.text(), st.integers())))
        )
    )
    def test_arbitrary_json_lines(self, tmp_path: Path, lines: list[object]) -> None:
        """Lines of arbitrary JSON values or text each give one storable item."""
        text = "\n".join(
            json.dumps(line) if isinstance(line, dict) else str(line).replace("\n", " ") for line in lines
        )
        self.check(tmp_path / "c.jsonl", text.encode("utf-8", "surrogatepass"))

    @staticmethod
    def check(path: Path, content: bytes) -> None:
        path.write_bytes(content)
        try:
            items = list(read_claims(path))
        except InputError:
            return
        for item in items:
            assert storable(item)
            if isinstance(item, InvalidClaim):
                assert item.reason.startswith("row ")
