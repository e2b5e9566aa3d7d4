"""Charset decision (BOM, header, meta prescan, detection), decoding, and the HTML test."""

from __future__ import annotations

import codecs
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.core.decode import Decoded, decode_html, encoding_for_label, header_charset, is_html, prescan

RUSSIAN = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 20
JAPANESE = "いろはにほへと ちりぬるを わかよたれそ つねならむ。日本語の文章です。" * 20
GERMAN = "Falsches Üben von Xylophonmusik quält jeden größeren Zwerg. " * 20


MARKUP_PARTS = (
    *(b"<meta", b" ", b"\t", b"charset", b"=", b'"', b"'", b"utf-8", b"koi8-r", b"utf-16", b"x-user-defined"),
    *(b"content", b"http-equiv", b"content-type", b">", b"<", b"/", b"<!--", b"-->", b"<?", b"<!", b"a"),
    *(b"\xff", b"\x00", b";", b"<\x00?\x00x\x00"),
)


def page(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head>{head}<title>t</title></head><body><p>{body}</p></body></html>"


class TestCharsetOrder:
    @pytest.mark.parametrize(
        ("body", "content_type", "encoding", "text"),
        [
            pytest.param(
                page(RUSSIAN, '<meta charset="windows-1251">').encode("cp1251"),
                "text/html",
                "windows-1251",
                RUSSIAN,
                id="cp1251-via-meta-charset",
            ),
            pytest.param(
                page(RUSSIAN, '<meta http-equiv="Content-Type" content="text/html; charset=cp1251">').encode(
                    "cp1251"
                ),
                None,
                "windows-1251",
                RUSSIAN,
                id="cp1251-via-http-equiv",
            ),
            pytest.param(
                page(JAPANESE).encode("cp932"),
                "text/html; charset=Shift_JIS",
                "shift_jis",
                JAPANESE,
                id="shift-jis-via-header",
            ),
            pytest.param(
                page(JAPANESE).encode("cp932"),
                'text/html; charset="x-sjis"',
                "shift_jis",
                JAPANESE,
                id="quoted-alias-label-via-header",
            ),
            pytest.param(
                page(JAPANESE, '<meta charset="iso-8859-2">').encode("cp932"),
                "text/html; charset=shift_jis",
                "shift_jis",
                JAPANESE,
                id="header-beats-meta",
            ),
            pytest.param(
                b"\xef\xbb\xbf" + page(GERMAN).encode("utf-8"),
                "text/html; charset=iso-8859-1",
                "utf-8",
                GERMAN,
                id="utf8-bom-beats-contradicting-header",
            ),
            pytest.param(
                codecs.BOM_UTF16_LE + page(GERMAN, '<meta charset="iso-8859-1">').encode("utf-16-le"),
                "text/html; charset=windows-1251",
                "utf-16le",
                GERMAN,
                id="utf16le-bom-page",
            ),
            pytest.param(
                codecs.BOM_UTF16_BE + page(JAPANESE).encode("utf-16-be"),
                None,
                "utf-16be",
                JAPANESE,
                id="utf16be-bom-page",
            ),
            pytest.param(
                page(GERMAN, '<meta charset="iso-8859-2">').encode("iso-8859-2"),
                "text/html; charset=no-such-charset",
                "iso-8859-2",
                GERMAN,
                id="unknown-header-label-falls-through-to-meta",
            ),
            pytest.param(
                page(GERMAN, '<meta charset="klingon-8">').encode("utf-8"),
                "text/html",
                "utf-8",
                GERMAN,
                id="unknown-meta-label-falls-through-to-detection",
            ),
            pytest.param(
                page(GERMAN, '<meta charset="latin1">').encode("cp1252"),
                None,
                "windows-1252",
                GERMAN,
                id="latin1-means-windows-1252",
            ),
            pytest.param(
                page("中文网页", '<meta charset="gb2312">').encode("gbk"),
                None,
                "gbk",
                "中文网页",
                id="gb2312-means-gbk",
            ),
            pytest.param(
                page(GERMAN, '<meta charset="utf-16">').encode("utf-8"),
                None,
                "utf-8",
                GERMAN,
                id="meta-utf16-means-utf8",
            ),
            pytest.param(
                page(GERMAN).encode("utf-16-le"),
                "text/html; charset=utf-16",
                "utf-16le",
                GERMAN,
                id="header-utf16-label-is-utf16le",
            ),
        ],
    )
    def test_charset_and_text(self, body: bytes, content_type: str | None, encoding: str, text: str) -> None:
        """Each source of the charset is used in the contract's order and the text comes out intact."""
        decoded = decode_html(body, content_type)
        assert decoded.encoding == encoding
        assert text in decoded.text
        assert not decoded.text.startswith("\ufeff")

    def test_meta_after_1024_bytes_is_not_the_prescan(self) -> None:
        """A meta past the first 1024 bytes is ignored: an ASCII page stays windows-1252."""
        body = page("plain ascii", "<!--" + "x" * 1100 + '--><meta charset="shift_jis">').encode("ascii")
        assert prescan(body) is None
        assert decode_html(body, None) == Decoded(body, "windows-1252")

    def test_late_meta_never_overrides_utf8_bytes(self) -> None:
        """Valid UTF-8 bytes decode as UTF-8 even when a meta past 1024 bytes says otherwise."""
        body = page(GERMAN, "<!--" + "x" * 1100 + '--><meta charset="iso-8859-2">').encode("utf-8")
        assert decode_html(body, None).encoding == "utf-8"

    def test_late_meta_decides_bytes_that_are_not_utf8(self) -> None:
        """Detection takes a meta past 1024 bytes as its evidence when the bytes are not UTF-8."""
        body = page(RUSSIAN, "<script>" + "x" * 1100 + '</script><meta charset="koi8-r">').encode("koi8_r")
        decoded = decode_html(body, "text/html")
        assert (decoded.text, decoded.encoding) == (body.decode("koi8_r"), "koi8-r")

    @pytest.mark.parametrize(("end", "found"), [(1023, True), (1024, False), (1025, False)])
    def test_prescan_window_is_1024_bytes(self, end: int, found: bool) -> None:
        """A meta whose '>' is within the first 1024 bytes counts, one cut by the limit does not."""
        meta = b'<meta charset="koi8-r">'
        body = b"<!--" + b"x" * (end + 1 - len(meta) - 7) + b"-->" + meta + b"<p>text</p>"
        assert body.index(b">", body.index(meta)) == end
        assert prescan(body) == ("koi8-r" if found else None)


class TestDetection:
    @pytest.mark.parametrize(
        ("text", "codec", "encoding"),
        [
            (RUSSIAN, "cp1251", "windows-1251"),
            (RUSSIAN, "koi8_r", "koi8-r"),
            (JAPANESE, "cp932", "shift_jis"),
            (JAPANESE, "euc_jp", "euc-jp"),
            (GERMAN, "cp1252", "windows-1252"),
            (GERMAN, "utf-8", "utf-8"),
        ],
    )
    def test_undeclared_pages(self, text: str, codec: str, encoding: str) -> None:
        """A page declaring nothing is decoded by detection, correctly for common encodings."""
        body = page(text).encode(codec)
        decoded = decode_html(body, "text/html")
        assert (decoded.text, decoded.encoding) == (page(text), encoding)

    def test_ascii_is_windows_1252(self) -> None:
        """An undeclared ASCII page reports the HTML standard's default encoding."""
        assert decode_html(page("hello").encode(), None).encoding == "windows-1252"

    def test_utf8_cut_inside_a_character_is_still_utf8(self) -> None:
        """A UTF-8 body cut at max_bytes in the middle of a character is still detected as UTF-8."""
        body = page(GERMAN).encode("utf-8") + "€".encode()[:2]
        decoded = decode_html(body, None)
        assert decoded.encoding == "utf-8"
        assert decoded.text == page(GERMAN) + "\ufffd"

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(("Grüße aus München. " * 300_000).encode("cp1252"), id="latin1"),
            pytest.param(("Grüße aus München. " * 300_000).encode("utf-8"), id="utf8"),
            pytest.param(random.Random(7).randbytes(5 * 1024 * 1024), id="random"),
            pytest.param(
                b"<meta name=a>" + b'<div class="a" id="b">text</div>\n' * 150_000 + b"\xe9",
                id="markup-then-latin1",
            ),
        ],
    )
    def test_five_megabytes_decode_fast(self, body: bytes) -> None:
        """Detection is bounded: a 5 MB undeclared body is decoded in well under a second."""
        start = time.perf_counter()
        decoded = decode_html(body[: 5 * 1024 * 1024], None)
        elapsed = time.perf_counter() - start
        assert decoded.text
        assert elapsed < 1.0, f"{elapsed:.2f} s"


class TestDecoding:
    def test_windows_1252_decodes_every_byte(self) -> None:
        """windows-1252 maps 0x80 to the euro sign and its unassigned bytes to C1 controls, as WHATWG."""
        decoded = decode_html(bytes([0x80, 0x81, 0x8D, 0x9D, 0xE9]), "text/html; charset=latin1")
        assert decoded.text == "\u20ac\x81\x8d\x9d\xe9"

    def test_invalid_utf8_is_replaced(self) -> None:
        """Bytes that are not UTF-8 in a page declared UTF-8 become U+FFFD, never an error."""
        decoded = decode_html(b"<p>a\xffb\xc3</p>", "text/html; charset=utf-8")
        assert (decoded.text, decoded.encoding) == ("<p>a\ufffdb\ufffd</p>", "utf-8")

    @pytest.mark.parametrize(
        ("body", "content_type", "utf8"),
        [
            (b"<p>\xc3\xa9t\xc3\xa9</p>", "text/html; charset=utf-8", b"<p>\xc3\xa9t\xc3\xa9</p>"),
            (b"\xef\xbb\xbf<p>x</p>", "text/html; charset=latin1", b"<p>x</p>"),
            (b"<p>plain</p>", None, b"<p>plain</p>"),
            (b"<p>a\xffb</p>", "text/html; charset=utf-8", b"<p>a\xef\xbf\xbdb</p>"),
            (b"<p>\xe9</p>", "text/html; charset=windows-1252", b"<p>\xc3\xa9</p>"),
        ],
    )
    def test_utf8_is_the_body_itself_when_it_is_valid_utf8(
        self, body: bytes, content_type: str | None, utf8: bytes
    ) -> None:
        """A valid UTF-8 body is handed on as it came; others are decoded and re-encoded."""
        decoded = decode_html(body, content_type)
        assert decoded.utf8 == utf8
        assert decoded.text == body.removeprefix(b"\xef\xbb\xbf").decode(
            "utf-8" if decoded.encoding == "utf-8" else "cp1252", "replace"
        )

    def test_gb18030_lone_0x80_is_the_euro_sign(self) -> None:
        """The WHATWG GBK decoder reads a lone 0x80 as the euro sign."""
        assert decode_html(b"\x80", "text/html; charset=gbk").text == "\u20ac"

    def test_x_user_defined_from_the_header(self) -> None:
        """x-user-defined maps high bytes to the private use area; from a meta it means windows-1252."""
        assert decode_html(b"a\x80\xff", "text/html; charset=x-user-defined").text == "a\uf780\uf7ff"
        assert decode_html(b'<meta charset="x-user-defined">\x80', None).encoding == "windows-1252"

    def test_replacement_encoding_yields_one_replacement_character(self) -> None:
        """ISO-2022-KR and friends decode to a single U+FFFD, as the Encoding Standard says."""
        assert decode_html(b"<p>hi</p>", "text/html; charset=iso-2022-kr") == Decoded(
            b"\xef\xbf\xbd", "replacement"
        )

    def test_xhtml_uses_its_xml_declaration(self) -> None:
        """application/xhtml+xml follows the XML declaration, and UTF-8 without one."""
        xhtml = '<?xml version="1.0" encoding="ISO-8859-2"?><html><p>ż</p></html>'
        assert decode_html(xhtml.encode("iso-8859-2"), "application/xhtml+xml").encoding == "iso-8859-2"
        assert decode_html("<html>ż</html>".encode(), "application/xhtml+xml").encoding == "utf-8"


class TestLabels:
    @pytest.mark.parametrize(
        ("label", "encoding"),
        [
            ("  UTF8\t", "utf-8"),
            ("ISO-8859-1", "windows-1252"),
            ("ascii", "windows-1252"),
            ("x-sjis", "shift_jis"),
            ("utf-16", "utf-16le"),
            ("ks_c_5601-1987", "euc-kr"),
            ("utf-7", None),
            ("\u212aoi8-r", None),
        ],
    )
    def test_whatwg_labels(self, label: str, encoding: str | None) -> None:
        """Labels resolve as the Encoding Standard says, ASCII case-insensitively, unknown ones to None."""
        assert encoding_for_label(label) == encoding

    @pytest.mark.parametrize(
        ("content_type", "encoding"),
        [
            ("text/html; charset=UTF-8", "utf-8"),
            ('text/html;charset="iso-8859-2"', "iso-8859-2"),
            ("text/html; charset=utf-8, text/html", "utf-8"),
            ("text/html; charset=koi8-r; charset=utf-8", "koi8-r"),
            ("text/html; charset=", None),
            ("text/html", None),
            (None, None),
        ],
    )
    def test_header_charset(self, content_type: str | None, encoding: str | None) -> None:
        """The first charset parameter of the header names the encoding, if its label is known."""
        assert header_charset(content_type) == encoding


class TestIsHtml:
    @pytest.mark.parametrize(
        ("content_type", "body", "expected"),
        [
            ("text/html; charset=utf-8", b"", True),
            ("TEXT/HTML", b"plain", True),
            ("application/xhtml+xml", b"<html/>", True),
            ("text/html", b"\x89PNG\r\n\x1a\n", True),
            ("text/plain", b"<html><body>hi</body></html>", False),
            ("application/json", b"<html>", False),
            ("image/png", b"\x89PNG\r\n\x1a\n", False),
            (None, b"  \n<!DOCTYPE html><html>", True),
            ("", b"<a href='/x'>x</a>", True),
            ("application/octet-stream", b"\xef\xbb\xbf<html>", True),
            (None, codecs.BOM_UTF16_LE + "<html>".encode("utf-16-le"), True),
            (None, b"<?xml version='1.0'?><rss/>", False),
            (None, b"<abbr>x</abbr>", False),
            (None, b"<html", False),
            (None, b"%PDF-1.4", False),
            ("application/octet-stream", b"\x00\x01\x02", False),
        ],
    )
    def test_is_html(self, content_type: str | None, body: bytes, expected: bool) -> None:
        """The declared type decides; with none (or octet-stream) the MIME sniffing HTML signatures do."""
        assert is_html(content_type, body) is expected


class TestNeverRaises:
    @settings(max_examples=300, deadline=None)
    @given(body=st.binary(max_size=4096), content_type=st.one_of(st.none(), st.text(max_size=60)))
    def test_any_bytes_and_header(self, body: bytes, content_type: str | None) -> None:
        """No body and no header makes decoding or the HTML test raise; the text always encodes as UTF-8."""
        decoded = decode_html(body, content_type)
        assert encoding_for_label(decoded.encoding) == decoded.encoding
        decoded.text.encode("utf-8")  # what the HTML parser is handed: no lone surrogates
        is_html(content_type, body)

    @settings(max_examples=300, deadline=None)
    @given(parts=st.lists(st.sampled_from(MARKUP_PARTS), max_size=40))
    def test_markup_fragments(self, parts: list[bytes]) -> None:
        """Fragments of meta markup, cut anywhere, never make the prescan or decoding raise."""
        body = b"".join(parts)
        result = prescan(body)
        assert result is None or encoding_for_label(result) == result
        decode_html(body, None)
