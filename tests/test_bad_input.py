"""Bad claims files, read by `crawler.read_claims` and by the real command line.

Every unusable row becomes an `invalid` result whose reason starts with its row number; the
rows around it are unaffected; no exception escapes; exit codes are the contract's (0 the run
finished, 1 with --fail-on matching, 2 an input file that can't be used at all).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from servers import Server, respond, running

from crawler.app.inputs import read_claims
from crawler.errors import InputError
from crawler.models import Claim, InvalidClaim

TARGET = "https://target.example/landing"
LINKED = f'<html><body><main><a href="{TARGET}">anchor</a></main></body></html>'
HEADER = b"id,source_url,target_url,note\n"
GOOD = "http://good.test/{id}"


def good(row_id: str) -> bytes:
    return row(row_id, GOOD.format(id=row_id).encode())


def row(row_id: str, source: bytes, note: bytes = b"fine", *, target: bytes = TARGET.encode()) -> bytes:
    return b",".join([row_id.encode(), source, target, note]) + b"\n"


# Each case: the bytes after the header, and the row number of every row read, with whether
# it is a claim (True) or invalid (False). Row 1 is the header, so data starts at row 2.
AROUND = [(2, True), (3, False), (4, True)]  # a bad row between two good ones
CSV_CASES: dict[str, tuple[bytes, list[tuple[int, bool]]]] = {
    "unclosed quote": (
        good("a") + row("b", b'"http://b.test/') + good("c") + good("d"),
        [(2, True), (3, False)],  # the quote swallows the rest of the file into one cell
    ),
    "NUL byte": (good("a") + row("b", b"http://b.test/\x00x") + good("c"), AROUND),
    "NUL in a tag": (good("a") + row("b", b"http://b.test/", b"n\x00te") + good("c"), AROUND),
    "invalid UTF-8": (good("a") + row("b", b"http://b.test/\xff\xfe") + good("c"), AROUND),
    "1 MB field": (good("a") + row("b", b"http://b.test/" + b"x" * (1 << 20)) + good("c"), AROUND),
    "1 MB tag": (good("a") + row("b", b"http://b.test/", b"y" * (1 << 20)) + good("c"), AROUND),
    "wrong delimiter in a row": (
        good("a") + row("b", b"http://b.test/").replace(b",", b";") + good("c"),
        AROUND,
    ),
    "too many cells": (good("a") + row("b", b"http://b.test/", b"n,extra") + good("c"), AROUND),
    "multi-line tag keeps counting": (
        good("a") + row("b", GOOD.format(id="b").encode(), b'"two\nlines"') + row("c", b"nope"),
        [(2, True), (3, True), (4, False)],
    ),
    "blank lines count as rows": (good("a") + b"\n\n" + row("c", b""), [(2, True), (5, False)]),
    "a lone CR ends a row": (  # as old Mac files and spreadsheets have it: rows 3 and 4
        good("a").replace(b"\n", b"\r\n") + row("b", b"http://b.test/\r") + good("c"),
        [(2, True), (3, False), (4, False), (5, True)],
    ),
}
BAD_URLS = {
    "space in the host": "http://exa mple.test/",
    "javascript": "javascript:alert(1)",
    "data": "data:text/html,<a href=x>x</a>",
    "file": "file:///etc/passwd",
    "ftp": "ftp://files.test/x",
    "mailto": "mailto:someone@example.test",
    "no host": "http://",
    "port 99999": "http://a.test:99999/",
    "unclosed IPv6": "http://[::1/",
    "bad IPv6": "http://[12345::]/",
    "IPv6 zone": "http://[fe80::1%25eth0]/",
    "scheme-relative": "//a.test/page",
    "no scheme": "a.test/page",
}
FINE_URLS = {
    "space in the path": ("http://a.test/with space", "http://a.test/with%20space"),
    "IPv6 literal": ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    "IPv4-mapped literal": ("http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/"),
    "extra slashes": ("http:///a.test/p", "http://a.test/p"),
}


def read(path: Path) -> list[Claim | InvalidClaim]:
    with read_claims(path) as reader:
        return list(reader)


def row_of(item: Claim | InvalidClaim) -> int | None:
    return int(item.reason.split(":", 1)[0].removeprefix("row ")) if isinstance(item, InvalidClaim) else None


class TestReadClaims:
    @pytest.mark.parametrize("case", CSV_CASES)
    def test_bad_csv_rows(self, tmp_path: Path, case: str) -> None:
        """Each bad CSV row is one invalid item naming its row; good rows before and after are claims."""
        body, expected = CSV_CASES[case]
        path = tmp_path / "claims.csv"
        path.write_bytes(HEADER + body)
        items = read(path)
        assert [isinstance(item, Claim) for item in items] == [ok for _, ok in expected]
        assert [row_of(item) for item in items] == [None if ok else row for row, ok in expected]

    @pytest.mark.parametrize("bom", [b"\xef\xbb\xbf", b"\xef\xbb\xbf\xef\xbb\xbf"], ids=["one", "two"])
    def test_byte_order_marks(self, tmp_path: Path, bom: bytes) -> None:
        """A UTF-8 byte-order mark (even doubled by a careless export) doesn't hide the id column."""
        path = tmp_path / "claims.csv"
        path.write_bytes(bom + HEADER + good("a"))
        (item,) = read(path)
        assert isinstance(item, Claim)
        assert item.id == "a"

    def test_semicolon_file(self, tmp_path: Path) -> None:
        """A whole file saved with semicolons (many locales' "CSV") is read with them."""
        path = tmp_path / "claims.csv"
        path.write_bytes(HEADER.replace(b",", b";") + good("a").replace(b",", b";"))
        assert [item.id for item in read(path) if isinstance(item, Claim)] == ["a"]

    @pytest.mark.parametrize("case", BAD_URLS)
    def test_unusable_urls(self, tmp_path: Path, case: str) -> None:
        """A URL that is not an absolute http(s) URL makes its row invalid, naming the field it is in."""
        url = BAD_URLS[case]
        path = tmp_path / "claims.csv"
        path.write_text(f'id,source_url,target_url\ns,"{url}",{TARGET}\nt,http://a.test/,"{url}"\n', "utf-8")
        source_bad, target_bad = read(path)
        assert isinstance(source_bad, InvalidClaim)
        assert source_bad.reason.startswith("row 2: source_url: ")
        assert isinstance(target_bad, InvalidClaim)
        assert target_bad.reason.startswith("row 3: target_url: ")
        assert (source_bad.id, target_bad.id) == ("s", "t")

    @pytest.mark.parametrize("case", FINE_URLS)
    def test_odd_but_usable_urls(self, tmp_path: Path, case: str) -> None:
        """Spaces in a path, IPv6 literals and extra slashes are what a browser accepts: claims."""
        url, serialised = FINE_URLS[case]
        path = tmp_path / "claims.csv"
        path.write_text(f'source_url,target_url\n"{url}",{TARGET}\n', "utf-8")
        (item,) = read(path)
        assert isinstance(item, Claim)
        from crawler.engine.pipeline import page_key

        assert page_key(item.source_url) == serialised

    def test_broken_json_lines(self, tmp_path: Path) -> None:
        """Truncated, non-object, binary, trailing-garbage and over-long lines are invalid by line number."""
        lines = [
            json.dumps({"id": "a", "source_url": "http://a.test/", "target_url": TARGET}).encode(),
            b'{"id": "b", "source_url": "http://b.test/", "target_',
            b"[1, 2, 3]",
            b'"a string"',
            b"\x00\xff\xfe garbage",
            json.dumps({"id": "c", "source_url": "http://c.test/", "target_url": TARGET}).encode()
            + b" trailing",
            b'{"id": "d", "source_url": "http://d.test/", "target_url": "' + b"x" * (5 << 20) + b'"}',
            b"{" * 100_000 + b"}" * 100_000,
            json.dumps({"id": "e", "source_url": "http://e.test/", "target_url": TARGET}).encode(),
        ]
        path = tmp_path / "claims.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        items = read(path)
        assert [item.id for item in items if isinstance(item, Claim)] == ["a", "e"]
        assert [row_of(item) for item in items if isinstance(item, InvalidClaim)] == [2, 3, 4, 5, 6, 7, 8]

    def test_same_id_twice(self, tmp_path: Path) -> None:
        """Two rows with one id and different URLs are both read, in order (the store keeps the later)."""
        path = tmp_path / "claims.csv"
        path.write_text(
            f"id,source_url,target_url\nsame,http://a.test/,{TARGET}\nsame,http://b.test/,{TARGET}\n"
        )
        assert [(item.id, item.source_url) for item in read(path)] == [
            ("same", "http://a.test/"),
            ("same", "http://b.test/"),
        ]

    @pytest.mark.parametrize(
        ("name", "content"),
        [
            ("image.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
            ("utf16.csv", "source_url,target_url\n".encode("utf-16")),
            ("empty.csv", b""),
            ("header-only-wrong.csv", b"url,link\n"),
            ("array.json", b'[{"source_url": "http://a.test/"}]\n'),
        ],
    )
    def test_unusable_files_raise_input_error_naming_them(
        self, tmp_path: Path, name: str, content: bytes
    ) -> None:
        """A file that is no claims file at all raises InputError naming it, before any row is read."""
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InputError, match=name.replace(".", r"\.")):
            read(path)


# The command line --------------------------------------------------------------------------


@pytest.fixture
async def site() -> AsyncIterator[Server]:
    async with running() as factory:
        yield await factory.app({"/p/{id}": respond(LINKED)}, "127.0.0.2")


def _environ() -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CRAWLER_")}
    return {**environ, "CRAWLER_ALLOW_PRIVATE": "true", "CRAWLER_DELAY": "0", "CRAWLER_RETRIES": "0"}


async def crawler(*args: str, cwd: Path, stdin: bytes | None = None) -> tuple[int, str]:
    """`python -m crawler ARGS` as a subprocess: (exit code, standard error)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", *args,
        cwd=cwd, env=_environ(),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
    assert process.returncode is not None
    return process.returncode, err.decode(errors="replace")


def results(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT r.claim_id, r.status, r.reason, c.source_url"
            " FROM results AS r JOIN claims AS c ON c.id = r.claim_id"
        ).fetchall()


def served(site: Server, body: bytes) -> bytes:
    """`body` with its good rows pointed at the test site."""
    return body.replace(b"http://good.test/", site.url("/p/").encode())


class TestCommandLine:
    async def test_every_bad_file_in_one_run(self, site: Server, tmp_path: Path) -> None:
        """All the bad CSV cases, bad URLs and broken JSON lines in one verify: exit 0, each row its result.

        The command stores what the reader yields: claims verified, every other row invalid with
        the reader's row-numbered reason (the later of two rows with one id wins).
        """
        inputs = []
        for n, (body, _) in enumerate(CSV_CASES.values()):
            prefix = f"f{n}-".encode()  # ids unique across files: an import is an upsert by id
            (tmp_path / f"case{n}.csv").write_bytes(
                served(site, HEADER + re.sub(rb"(?m)^(?=[a-z])", prefix, body))
            )
            inputs.append(f"case{n}.csv")
        bad_urls = "".join(f'u{i},"{url}",{TARGET}\n' for i, url in enumerate(BAD_URLS.values()))
        (tmp_path / "urls.csv").write_text("id,source_url,target_url\n" + bad_urls, "utf-8")
        (tmp_path / "broken.jsonl").write_bytes(b'{"id": "j1", "source_url": \n\x00\xff\n[1]\n')
        inputs += ["urls.csv", "broken.jsonl"]
        expected = {
            item.id: ("invalid", item.reason) if isinstance(item, InvalidClaim) else ("verified", None)
            for name in inputs
            for item in read(tmp_path / name)
        }
        code, err = await crawler("verify", *inputs, "--db", "c.sqlite", cwd=tmp_path)
        assert code == 0, err
        stored = {
            claim_id: (status, reason) for claim_id, status, reason, _ in results(tmp_path / "c.sqlite")
        }
        assert stored == expected
        invalid = [reason for status, reason in stored.values() if status == "invalid"]
        assert len(invalid) >= len(BAD_URLS) + len(CSV_CASES) + 2
        assert all(re.match(r"row \d+: ", reason) for reason in invalid)

    async def test_fail_on_invalid_exits_1(self, site: Server, tmp_path: Path) -> None:
        """--fail-on invalid turns a finished run with a bad row into exit code 1."""
        (tmp_path / "c.csv").write_bytes(
            served(site, HEADER + good("a") + b"b,javascript:x," + TARGET.encode() + b"\n")
        )
        code, err = await crawler("verify", "c.csv", "--db", "c.sqlite", "--fail-on", "invalid", cwd=tmp_path)
        assert code == 1, err
        assert sorted(status for _, status, _, _ in results(tmp_path / "c.sqlite")) == ["invalid", "verified"]

    async def test_bad_rows_from_standard_input(self, site: Server, tmp_path: Path) -> None:
        """Claims piped on standard input (format sniffed) get the same treatment, row numbers included."""
        body = served(site, HEADER + good("a") + b"b,ftp://x.test/," + TARGET.encode() + b"\n\x00\xff,\n")
        code, err = await crawler("verify", "-", "--db", "c.sqlite", cwd=tmp_path, stdin=body)
        assert code == 0, err
        stored = sorted(
            (status, str(reason).split(":")[0]) for _, status, reason, _ in results(tmp_path / "c.sqlite")
        )
        assert stored == [("invalid", "row 3"), ("invalid", "row 4"), ("verified", "None")]

    async def test_same_id_different_urls(self, site: Server, tmp_path: Path) -> None:
        """Two rows with one id: one claim, the later row's URL, one result (an import is an upsert)."""
        body = (
            HEADER + f"same,{site.url('/p/first')},{TARGET}\nsame,{site.url('/p/second')},{TARGET}\n".encode()
        )
        (tmp_path / "c.csv").write_bytes(body)
        code, err = await crawler("verify", "c.csv", "--db", "c.sqlite", cwd=tmp_path)
        assert code == 0, err
        assert [(claim_id, source) for claim_id, _, _, source in results(tmp_path / "c.sqlite")] == [
            ("same", site.url("/p/second"))
        ]
        assert site.log.count("/p/first") == 0

    async def test_bad_rows_of_two_files_are_two_results(self, site: Server, tmp_path: Path) -> None:
        """Unusable rows at the same row number of two files are two invalid results, not one."""
        for name in ("a", "b"):
            line = json.dumps({"id": f"{name}1", "source_url": site.url(f"/p/{name}"), "target_url": TARGET})
            (tmp_path / f"{name}.jsonl").write_text(f"{line}\n{{broken {name}\n", "utf-8")
        code, err = await crawler("verify", "a.jsonl", "b.jsonl", "--db", "c.sqlite", cwd=tmp_path)
        assert code == 0, err
        statuses = sorted(status for _, status, _, _ in results(tmp_path / "c.sqlite"))
        assert statuses == ["invalid", "invalid", "verified", "verified"]

    @pytest.mark.parametrize(
        ("name", "content"),
        [
            ("image.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
            ("columns.csv", b"url,link\nhttp://a.test/,http://b.test/\n"),
            ("empty.csv", b""),
            ("array.json", b'[{"source_url": "http://a.test/"}]\n'),
        ],
    )
    async def test_unusable_file_exits_2_and_creates_nothing(
        self, tmp_path: Path, name: str, content: bytes
    ) -> None:
        """A file that is no claims file stops verify with exit 2, naming it, before a database exists."""
        (tmp_path / name).write_bytes(content)
        code, err = await crawler("verify", name, "--db", "c.sqlite", cwd=tmp_path)
        assert code == 2
        assert name in err
        assert "Traceback" not in err
        assert not (tmp_path / "c.sqlite").exists()
