"""Decoding against shared data: the WHATWG label table, html5lib's encoding cases, real pages."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path

from crawler.core.decode import decode_html, encoding_for_label, prescan

# html5lib cases our decoder answers differently, on purpose (case number in file order).
HTML5LIB_NEEDS_SCRIPT = {"scripted/tests1.dat#1"}
"""The meta is written by document.write(): only a script engine sees it."""
HTML5LIB_LATE_META_IN_ASCII = {f"tests1.dat#{n}" for n in range(48, 54)}
"""A meta after 2048-8193 ASCII bytes: a browser's parser switches to it, the contract's prescan
reads 1024 bytes, and for ASCII text the encoding changes nothing."""


def html5lib_cases(root: Path) -> Iterator[tuple[str, bytes, str]]:
    """(id, data, expected encoding) for each `#data`/`#encoding` case under `root`."""
    for path in sorted(root.rglob("*.dat")):
        chunks = path.read_bytes().split(b"#data\n")[1:]
        for number, chunk in enumerate(chunks, start=1):
            data, _, expected = chunk.partition(b"#encoding\n")
            # The newline before "#encoding" separates the sections; it is not data.
            yield f"{path.relative_to(root)}#{number}", data[:-1], expected.split(b"\n")[0].decode()


class TestWhatwgLabels:
    def test_every_label_of_the_standard(self, shared: Path) -> None:
        """Every label in the WHATWG Encoding Standard's table names the encoding the table says."""
        table = json.loads((shared / "corpus/encoding/whatwg-encodings.json").read_text(encoding="utf-8"))
        expected = {
            label: encoding["name"].lower()
            for section in table
            for encoding in section["encodings"]
            for label in encoding["labels"]
        }
        assert len(expected) == 228
        assert {label: encoding_for_label(label.upper()) for label in expected} == expected

    def test_every_encoding_decodes(self, shared: Path) -> None:
        """Each WHATWG encoding, named in a header, decodes arbitrary bytes without raising."""
        table = json.loads((shared / "corpus/encoding/whatwg-encodings.json").read_text(encoding="utf-8"))
        every_byte = bytes(range(256)) * 2
        for section in table:
            for encoding in section["encodings"]:
                name = encoding["name"].lower()
                decoded = decode_html(every_byte, f"text/html; charset={name}")
                assert decoded.encoding == name
                assert decoded.text


class TestHtml5libEncoding:
    def test_cases(self, shared: Path) -> None:
        """html5lib's encoding cases come out as expected, apart from the documented deviations."""
        cases = list(html5lib_cases(shared / "corpus/html5lib/encoding"))
        wrong = {
            case_id
            for case_id, data, expected in cases
            if decode_html(data, None).encoding != encoding_for_label(expected)
        }
        assert len(cases) == 83
        assert wrong == HTML5LIB_NEEDS_SCRIPT | HTML5LIB_LATE_META_IN_ASCII

    def test_prescan_alone(self, shared: Path) -> None:
        """The prescan (no BOM, no detection) gets every case whose answer lies in its 1024 bytes."""
        outside = HTML5LIB_NEEDS_SCRIPT | HTML5LIB_LATE_META_IN_ASCII
        wrong = {
            case_id
            for case_id, data, expected in html5lib_cases(shared / "corpus/html5lib/encoding")
            if case_id not in outside
            and not data.startswith(codecs.BOM_UTF8)
            and (prescan(data) or "windows-1252") != encoding_for_label(expected)
        }
        # The one left: a meta after 1024 bytes of a non-UTF-8 page, which detection reads.
        assert wrong == {"tests1.dat#54"}


class TestRealPages:
    def test_pages_raw(self, shared: Path) -> None:
        """trafilatura's byte-exact pages: valid UTF-8 yields no U+FFFD, ISO-8859-1 is windows-1252."""
        root = shared / "corpus/pages-raw"
        index = json.loads((root / "trafilatura-index.json").read_text(encoding="utf-8"))
        results = {}
        for entry in index["pages"]:
            decoded = decode_html((root / entry["file"]).read_bytes(), None)
            results[entry["file"]] = decoded.encoding
            if entry["valid_utf8"]:
                assert "\ufffd" not in decoded.text, entry["file"]
            if entry["bom"]:
                assert decoded.encoding == entry["bom"]
                assert not decoded.text.startswith("\ufeff")
            if entry["declared_charset"] in ("iso-8859-1", "windows-1252"):
                assert decoded.encoding == "windows-1252", entry["file"]
        assert len(results) == 144

    def test_readability_pages(self, shared: Path) -> None:
        """Mozilla Readability's pages (all UTF-8) decode without U+FFFD, served with or without a charset."""
        pages = sorted((shared / "corpus/pages").glob("*.html"))
        undeclared_wrong = set()
        for path in pages:
            body = path.read_bytes()
            assert "\ufffd" not in decode_html(body, "text/html; charset=utf-8").text, path.name
            if "\ufffd" in decode_html(body, "text/html").text:
                undeclared_wrong.add(path.name)
        assert len(pages) == 130
        # It declares gb2312 in its meta but its bytes are UTF-8: the declaration wins, as in browsers.
        assert undeclared_wrong == {"qq.html"}

    def test_real_euc_jp_page(self, shared: Path) -> None:
        """The real Yahoo! Japan page's EUC-JP meta decides (the file's bytes are UTF-8 by now)."""
        data = (shared / "corpus/html5lib/encoding/test-yahoo-jp.dat").read_bytes()
        assert decode_html(data.split(b"#data\n", 1)[1], None).encoding == "euc-jp"

    def test_big5_sample_is_detected(self, shared: Path) -> None:
        """html5lib's undeclared Big5 text is detected as Big5."""
        body = (shared / "corpus/html5lib/encoding/chardet/test_big5.txt").read_bytes()
        assert decode_html(body, None).encoding == "big5"
