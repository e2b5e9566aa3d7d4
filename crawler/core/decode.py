"""Bytes to text, the way a browser picks the charset: BOM, header, meta prescan, detection.

Pure. The order is the contract's (and the HTML standard's encoding sniffing algorithm):

1. a byte-order mark (UTF-8, UTF-16LE, UTF-16BE) wins over everything and is stripped;
2. the `charset` parameter of the Content-Type header;
3. the HTML prescan of the first 1024 bytes (`<meta charset>`, `<meta http-equiv=content-type>`);
   for `application/xhtml+xml` the XML declaration instead, then UTF-8, as XML parsers do;
4. detection, bounded so it stays fast on a 5 MB body, see `_detect`.

Labels are the WHATWG Encoding Standard's: `latin1`, `iso-8859-1` and `ascii` mean windows-1252,
`gb2312` means GBK, `x-sjis` means Shift_JIS, and so on. A label the standard does not know is
ignored and the next step decides. Decoding never fails: bytes that do not decode become U+FFFD.

The other way, `encode_or_fail` writes text in a page's encoding, as a browser writes the query
of a URL on that page (`urls.resolve`).
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

# The WHATWG Encoding Standard's table: name, the Python codec whose mapping matches the WHATWG
# decoder, then the labels; an indented line carries on the labels of the line above. GBK decodes
# as gb18030, Big5 as big5hkscs, Shift_JIS as cp932 and EUC-KR as cp949 (the supersets browsers
# use); "-" marks the two encodings decoded by hand.
_TABLE = """
utf-8 utf-8 unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8
ibm866 cp866 866 cp866 csibm866 ibm866
iso-8859-2 iso8859_2 csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 iso_8859-2:1987 l2
  latin2
iso-8859-3 iso8859_3 csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 iso_8859-3:1988 l3
  latin3
iso-8859-4 iso8859_4 csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 iso_8859-4:1988 l4
  latin4
iso-8859-5 iso8859_5 csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 iso_8859-5
  iso_8859-5:1988
iso-8859-6 iso8859_6 arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6
  iso-8859-6-e iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987
iso-8859-7 iso8859_7 csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 iso8859-7
  iso88597 iso_8859-7 iso_8859-7:1987 sun_eu_greek
iso-8859-8 iso8859_8 csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 iso8859-8
  iso88598 iso_8859-8 iso_8859-8:1988 visual
iso-8859-8-i iso8859_8 csiso88598i iso-8859-8-i logical
iso-8859-10 iso8859_10 csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6
iso-8859-13 iso8859_13 iso-8859-13 iso8859-13 iso885913
iso-8859-14 iso8859_14 iso-8859-14 iso8859-14 iso885914
iso-8859-15 iso8859_15 csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9
iso-8859-16 iso8859_16 iso-8859-16
koi8-r koi8_r cskoi8r koi koi8 koi8-r koi8_r
koi8-u koi8_u koi8-ru koi8-u
macintosh mac_roman csmacintosh mac macintosh x-mac-roman
windows-874 cp874 dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874
windows-1250 cp1250 cp1250 windows-1250 x-cp1250
windows-1251 cp1251 cp1251 windows-1251 x-cp1251
windows-1252 cp1252 ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 iso8859-1
  iso88591 iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252
windows-1253 cp1253 cp1253 windows-1253 x-cp1253
windows-1254 cp1254 cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9
  iso_8859-9:1989 l5 latin5 windows-1254 x-cp1254
windows-1255 cp1255 cp1255 windows-1255 x-cp1255
windows-1256 cp1256 cp1256 windows-1256 x-cp1256
windows-1257 cp1257 cp1257 windows-1257 x-cp1257
windows-1258 cp1258 cp1258 windows-1258 x-cp1258
x-mac-cyrillic mac_cyrillic x-mac-cyrillic x-mac-ukrainian
gbk gb18030 chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk
gb18030 gb18030 gb18030
big5 big5hkscs big5 big5-hkscs cn-big5 csbig5 x-x-big5
euc-jp euc_jp cseucpkdfmtjapanese euc-jp x-euc-jp
iso-2022-jp iso2022_jp csiso2022jp iso-2022-jp
shift_jis cp932 csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis
euc-kr cp949 cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 ksc5601
  ksc_5601 windows-949
replacement - csiso2022kr hz-gb-2312 iso-2022-cn iso-2022-cn-ext iso-2022-kr replacement
utf-16be utf-16-be unicodefffe utf-16be
utf-16le utf-16-le csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le
x-user-defined - x-user-defined
"""


def _parse_table(table: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    rows: list[tuple[str, str, tuple[str, ...]]] = []
    for line in table.strip().splitlines():
        if line.startswith(" "):
            name, codec, labels = rows.pop()
            rows.append((name, codec, (*labels, *line.split())))
        else:
            name, codec, *words = line.split()
            rows.append((name, codec, tuple(words)))
    return tuple(rows)


_ENCODINGS = _parse_table(_TABLE)
_LABELS = {label: name for name, _, labels in _ENCODINGS for label in labels}
_CODECS = {name: codec for name, codec, _ in _ENCODINGS}
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xfe\xff", "utf-16be"), (b"\xff\xfe", "utf-16le"))
_ASCII_WHITESPACE = "\t\n\x0c\r "
_DEFAULT = "windows-1252"

PRESCAN_BYTES = 1024
# A meta declaration further down still switches a browser's decoder while it parses ("change
# the encoding"); we look for one that far into the page when the prescan found none.
_LATE_SCAN_BYTES = 64 * 1024
# charset-normalizer reads this much, starting a little before the first non-ASCII byte.
_SAMPLE_BYTES = 64 * 1024
# Detection picks among the encodings a browser can decode (UTF-8 is settled before it runs).
_DETECTABLE = sorted({codec for _, codec, _ in _ENCODINGS if codec != "-" and not codec.startswith("utf")})
_BY_CODEC = {codec: name for name, codec, _ in reversed(_ENCODINGS) if codec != "-"}
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*?\sencoding\s*=\s*["']([^"'>]*)["']""")


@dataclass(frozen=True, slots=True)
class Decoded:
    """A body as the HTML parser reads it, UTF-8, and the WHATWG name (lower-case) of the
    encoding it was decoded from."""

    utf8: bytes
    """The text as UTF-8: a valid UTF-8 body itself (most pages), else the text re-encoded."""
    encoding: str

    @property
    def text(self) -> str:
        """The decoded text."""
        return self.utf8.decode("utf-8", "replace")


def decode_html(body: bytes, content_type: str | None) -> Decoded:
    """`body` as UTF-8, its charset decided before parsing in the contract's order; never raises."""
    encoding, bom = _bom_sniff(body)
    if encoding is None:
        encoding = header_charset(content_type) or _in_document(body, _essence(content_type))
    data = body[bom:] if bom else body
    if encoding == "utf-8" and _is_utf8(data):
        return Decoded(data, encoding)  # the bytes are the text's own
    # Bytes that are no UTF-8 are replaced here, as the standard's decoder does: Lexbor's own
    # decoding differs (a sequence cut by a tag is completed by the bytes after the tag).
    return Decoded(_decode(data, encoding).encode("utf-8", "surrogatepass"), encoding)


def encoding_for_label(label: str) -> str | None:
    """The WHATWG encoding a label names ("latin1" -> "windows-1252"), or None for an unknown label."""
    key = label.strip(_ASCII_WHITESPACE)
    # ASCII case-insensitive only: "\u212a" (Kelvin sign) must not lower-case into a "k" label.
    return _LABELS.get(key.lower()) if key.isascii() else None


def output_encoding(encoding: str) -> str:
    """The encoding a page's URL queries are written in (HTML's "get an output encoding"), given
    the name or a label of the page's: the page's own, but UTF-8 for the UTF-16 and replacement
    encodings, which nothing is encoded in (and for a label the standard does not know)."""
    name = encoding_for_label(encoding) or "utf-8"
    return "utf-8" if name in _NO_ENCODER else name


def is_ascii_in(text: str, encoding: str) -> bool:
    """True when every character of `text` is ASCII that `encoding` (see `output_encoding`)
    encodes as itself: always so but in ISO-2022-JP, where U+000E, U+000F and U+001B can't be."""
    return text.isascii() and (encoding != "iso-2022-jp" or not _ISO_2022_JP_UNENCODABLE.search(text))


def encode_or_fail(text: str, encoding: str) -> Iterator[bytes | int]:
    """`text` in `encoding` (a WHATWG name with an encoder, see `output_encoding`), as the Encoding
    Standard's "encode or fail" run to the end: runs of bytes, and between them the code point of
    each character that the encoding can't represent.

    Single-byte encodings (and x-user-defined) invert the decoder above, so they are exact. The
    others use Python's encoder of the family, held to the standard where they differ on
    characters of the web (see `_JAPANESE` and `_encode_char`); rarer differences remain (EUC-JP's
    NEC and IBM rows, Big5's HKSCS additions).
    """
    if encoding == "iso-2022-jp":
        yield from _encode_iso_2022_jp(text)
        return
    encode = _char_encoder(encoding)
    run = bytearray()
    for char in text:
        encoded = encode(char)
        if encoded is not None:
            run += encoded
            continue
        if run:
            yield bytes(run)
            run.clear()
        yield ord(char)
    if run:
        yield bytes(run)


_NO_ENCODER = frozenset({"utf-8", "utf-16be", "utf-16le", "replacement"})
_MULTI_BYTE_CODECS = {"gbk": "gb18030", "gb18030": "gb18030", "big5": "cp950", "euc-jp": "euc_jp"}
_MULTI_BYTE_CODECS |= {"shift_jis": "cp932", "euc-kr": "cp949"}
# The Japanese encoders of the standard write the yen sign and overline as the bytes of `\` and
# `~`, and the two minus signs as one (Python's codecs know one or the other).
_JAPANESE = {
    "shift_jis": str.maketrans({"\u00a5": "\\", "\u203e": "~", "\u2212": "\uff0d"}),
    "euc-jp": str.maketrans({"\u00a5": "\\", "\u203e": "~", "\uff0d": "\u2212"}),
    "iso-2022-jp": str.maketrans({"\uff0d": "\u2212", "\uff9e": "\u309b", "\uff9f": "\u309c"}),
}


@cache
def _char_encoder(encoding: str) -> Callable[[str], bytes | None]:
    """The bytes of one character in `encoding`, None when it has none."""
    codec = _MULTI_BYTE_CODECS.get(encoding)
    if codec is None:
        # Single-byte: the inverse of the decoder (a byte it leaves undecoded encodes nothing).
        decoded = _decode(bytes(range(256)), encoding)
        table = {char: bytes((byte,)) for byte, char in enumerate(decoded) if char != "\ufffd"}
        return table.get
    return lambda char: _encode_char(char, encoding, codec)


def _encode_char(char: str, encoding: str, codec: str) -> bytes | None:
    if encoding in _JAPANESE:
        char = char.translate(_JAPANESE[encoding])
    if encoding == "gbk" and char == "\u20ac":
        return b"\x80"
    if char == "\ue5e5" and codec == "gb18030":  # left out of the standard's index
        return None
    try:
        encoded = char.encode(codec)
    except UnicodeEncodeError:
        return None
    if encoding == "gbk" and len(encoded) > 2:  # GBK is gb18030 without its four-byte sequences
        return None
    if encoding == "euc-jp" and encoded[0] == 0x8F:  # JIS X 0212: decoded, never encoded
        return None
    if encoding == "shift_jis" and encoded[0] in (0xED, 0xEE):  # NEC's copy of IBM's rows
        return _ibm_extensions().get(char, encoded)
    return encoded


@cache
def _ibm_extensions() -> dict[str, bytes]:
    """Shift_JIS's IBM extensions (lead bytes 0xFA to 0xFC), which the standard's encoder uses
    for the characters that Windows also has in NEC's selection of them (0xED, 0xEE)."""
    pairs = [bytes((lead, trail)) for lead in (0xFA, 0xFB, 0xFC) for trail in range(0x40, 0xFD)]
    return {pair.decode("cp932", "replace"): pair for pair in pairs if pair[1] != 0x7F}


# Characters that ISO-2022-JP can't carry (they would switch its state), and its half-width
# katakana, which the standard's encoder writes as full-width ones.
_ISO_2022_JP_UNENCODABLE = re.compile("[\x0e\x0f\x1b]")
_HALF_WIDTH_KATAKANA = re.compile("[\uff61-\uff9d]")


def _encode_iso_2022_jp(text: str) -> Iterator[bytes | int]:
    text = _HALF_WIDTH_KATAKANA.sub(lambda found: unicodedata.normalize("NFKC", found[0]), text)
    for index, piece in enumerate(_ISO_2022_JP_UNENCODABLE.split(text.translate(_JAPANESE["iso-2022-jp"]))):
        if index:
            yield 0xFFFD  # the standard's encoder reports these as U+FFFD
        yield from _encode_runs(piece, "iso2022_jp")


def _encode_runs(text: str, codec: str) -> Iterator[bytes | int]:
    """`text` by a stateful codec: a run at a time, each back to ASCII at its end, as the
    standard's encoder is when it meets a character it can't represent."""
    while text:
        try:
            yield text.encode(codec)
            return
        except UnicodeEncodeError as error:
            if error.start:
                yield text[: error.start].encode(codec)
            yield ord(text[error.start])
            text = text[error.start + 1 :]


def header_charset(content_type: str | None) -> str | None:
    """The encoding named by the first `charset` parameter of a Content-Type value, if known."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip(_ASCII_WHITESPACE).lower() == "charset":
            # A comma ends the value too: duplicate headers arrive joined by commas.
            value = value.strip(_ASCII_WHITESPACE).split(",", 1)[0].strip(_ASCII_WHITESPACE)
            return encoding_for_label(value.strip('"'))
    return None


def is_html(content_type: str | None, body: bytes) -> bool:
    """Whether a response is an HTML or XHTML page.

    The server's word decides when it gave one: `text/html` and `application/xhtml+xml` are pages
    (even when the bytes are an image: a browser would try to render them as HTML too), any other
    type is not, `text/plain` included (browsers show it as text, so its "links" are not links).
    With no Content-Type, or one that says nothing (`application/octet-stream`, `*/*`,
    `unknown/unknown`), the first bytes are sniffed for an HTML signature as the MIME Sniffing
    standard does: whitespace, then `<!DOCTYPE HTML`, `<html`, `<head`, `<body`, `<a`, `<p`, ...
    followed by a space or `>`.
    """
    essence = _essence(content_type)
    if essence in _HTML_TYPES:
        return True
    return essence in _UNDECLARED_TYPES and _has_html_signature(body)


_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_UNDECLARED_TYPES = frozenset(
    {"", "*/*", "application/octet-stream", "application/unknown", "unknown/unknown"}
)
# The MIME Sniffing standard's HTML signatures, each followed by a space or '>'.
_HTML_TAGS = (
    "<!doctype html", "<html", "<head", "<script", "<iframe", "<h1", "<div", "<font", "<table",
    "<a", "<style", "<title", "<b", "<body", "<br", "<p", "<!--",
)  # fmt: skip
_HTML_SIGNATURES = tuple(tag + end for tag in _HTML_TAGS for end in " >")


def _has_html_signature(body: bytes) -> bool:
    encoding, bom = _bom_sniff(body)
    codec = _CODECS[encoding] if encoding else "latin-1"
    head = body[bom : bom + 512].decode(codec, "replace").lstrip(_ASCII_WHITESPACE).lower()
    return head.startswith(_HTML_SIGNATURES)


def _essence(content_type: str | None) -> str:
    """The MIME type without parameters, lower-cased ("" when absent)."""
    return (content_type or "").split(";", 1)[0].split(",", 1)[0].strip(_ASCII_WHITESPACE).lower()


def _bom_sniff(body: bytes) -> tuple[str | None, int]:
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return encoding, len(bom)
    return None, 0


def _in_document(body: bytes, essence: str) -> str:
    """What the bytes themselves say when neither a BOM nor the header did."""
    if essence == "application/xhtml+xml":
        return _xml_declared(body[:PRESCAN_BYTES]) or "utf-8"
    return prescan(body[:PRESCAN_BYTES]) or _detect(body)


def _xml_declared(head: bytes) -> str | None:
    match = _XML_ENCODING.match(head)
    declared = encoding_for_label(match.group(1).decode("latin-1")) if match else None
    # A declaration readable as ASCII is not UTF-16, whatever it says (as for HTML's <meta>).
    return "utf-8" if declared in ("utf-16be", "utf-16le") else declared


def _detect(body: bytes) -> str:
    """The charset of an undeclared page, from a bounded look at its bytes.

    ASCII text is windows-1252, the HTML standard's default for most locales (every
    ASCII-compatible encoding decodes it the same). Bytes that are valid UTF-8 are UTF-8: other
    encodings almost never produce valid multi-byte UTF-8 by chance. Otherwise the bytes are
    neither, and a `<meta>` declaration further down (within 64 KiB) is the best evidence there
    is: a browser's parser switches to it too when it meets it. Last, charset-normalizer reads a
    64 KiB sample starting near the first non-ASCII byte; when it gives up, windows-1252.
    """
    if body.isascii():
        return _DEFAULT
    if _is_utf8(body, cut_short=True):
        return "utf-8"
    late = prescan(body[:_LATE_SCAN_BYTES], limit=_LATE_SCAN_BYTES)
    if late is not None:
        return late
    first = _NON_ASCII.search(body)
    start = max(0, first.start() - 1024) if first else 0
    return _guess(body[start : start + _SAMPLE_BYTES])


def _is_utf8(data: bytes, *, cut_short: bool = False) -> bool:
    """Valid UTF-8; with `cut_short`, also when one character is cut short at the end (a body cut
    at max_bytes may be UTF-8 still, but is not valid as it is)."""
    if data.isascii():  # many pages, told at memory speed
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        return cut_short and error.reason == "unexpected end of data" and error.end == len(data)
    return True


def _guess(sample: bytes) -> str:
    # Imported here: most pages never get this far, and the import is a noticeable part of start-up.
    from charset_normalizer import from_bytes

    best = from_bytes(sample, cp_isolation=_DETECTABLE).best()
    if best is None:
        return _DEFAULT
    # Western text decodes the same in several single-byte encodings; prefer the web's default.
    if "cp1252" in (best.encoding, *best.could_be_from_charset):
        return _DEFAULT
    return _BY_CODEC.get(best.encoding, _DEFAULT)


def _decode(data: bytes, encoding: str) -> str:
    if encoding == "replacement":
        # The standard decodes these (ISO-2022-KR, HZ, ...) to one U+FFFD: they smuggle markup.
        return "\ufffd" if data else ""
    if encoding == "x-user-defined":
        return data.decode("latin-1").translate(_X_USER_DEFINED)
    return data.decode(_CODECS[encoding], _ERRORS)


_X_USER_DEFINED = {byte: 0xF780 + byte - 0x80 for byte in range(0x80, 0x100)}
_ERRORS = "crawler-whatwg-replace"


def _whatwg_replace(error: UnicodeError) -> tuple[str, int]:
    """Python's `replace`, except where the WHATWG decoders define what Python's codecs do not.

    The windows-125x indexes map their unassigned bytes 0x80-0x9F to the C1 controls (so
    windows-1252 decodes every byte), and gb18030 decodes a lone 0x80 as the euro sign.
    """
    if not isinstance(error, UnicodeDecodeError):
        raise error
    byte = error.object[error.start]
    if error.encoding == "charmap" and 0x80 <= byte <= 0x9F:
        return chr(byte), error.start + 1
    if error.encoding == "gb18030" and byte == 0x80:
        return "\u20ac", error.start + 1
    return "\ufffd", error.end


codecs.register_error(_ERRORS, _whatwg_replace)


# The HTML standard's prescan ("prescan a byte stream to determine its encoding"), on bytes
# lower-cased up front: every comparison it makes is ASCII case-insensitive.
_SKIP_SPACE = re.compile(rb"[\t\n\x0c\r ]*")
_SKIP_SPACE_SLASH = re.compile(rb"[\t\n\x0c\r /]*")
_VALUE_END = re.compile(rb"[\t\n\x0c\r >]")
_TAG_NAME_END = _VALUE_END
_LETTERS = frozenset(b"abcdefghijklmnopqrstuvwxyz")


class _OutOfBytes(Exception):
    """The prescan ran past its input: it gives up, as the standard says."""


def prescan(head: bytes, limit: int = PRESCAN_BYTES) -> str | None:
    """The encoding a `<meta>` in the first `limit` bytes declares, per the HTML standard, or None."""
    data = head[:limit].lower()
    if data.startswith(b"<\x00?\x00x\x00"):
        return "utf-16le"
    if data.startswith(b"\x00<\x00?\x00x"):
        return "utf-16be"
    # Only a <meta> that spells "charset" can declare one; most pages need no byte-by-byte scan.
    if b"<meta" not in data or b"charset" not in data:
        return None
    try:
        return _Prescan(data).run()
    except (_OutOfBytes, IndexError):  # IndexError: a construct cut off by the end of the input
        return None


class _Prescan:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def run(self) -> str | None:
        data = self.data
        while (lt := data.find(b"<", self.pos)) >= 0:
            self.pos = lt
            if data.startswith(b"<!--", lt):
                # The '>' of the first "-->" after '<'; its dashes may be those of "<!--".
                self.pos = self._index(b"-->", lt + 2) + 2
            elif data.startswith(b"<meta", lt) and data[lt + 5] in b"\t\n\x0c\r /":
                self.pos = lt + 6
                if (charset := self._meta()) is not None:
                    return charset
            elif data[lt + 1] in _LETTERS or (data[lt + 1] == ord("/") and data[lt + 2] in _LETTERS):
                self.pos = self._search(_TAG_NAME_END, lt + 1)
                while self._attribute() is not None:
                    pass
            elif data[lt + 1] in b"!/?":
                self.pos = self._index(b">", lt + 1)
            self.pos += 1
        return None

    def _meta(self) -> str | None:
        seen: set[bytes] = set()
        got_pragma = False
        need_pragma: bool | None = None
        charset: str | None = None
        while (attribute := self._attribute()) is not None:
            name, value = attribute
            if name in seen:
                continue
            seen.add(name)
            if name == b"http-equiv":
                got_pragma = got_pragma or value == b"content-type"
            elif name == b"content" and need_pragma is None:
                charset = _charset_in_content(value.decode("latin-1"))
                need_pragma = True if charset is not None else None
            elif name == b"charset":
                charset = encoding_for_label(value.decode("latin-1"))
                need_pragma = False
        if need_pragma is None or (need_pragma and not got_pragma) or charset is None:
            return None
        if charset in ("utf-16be", "utf-16le"):
            return "utf-8"  # a page that can carry an ASCII <meta> is not UTF-16
        return "windows-1252" if charset == "x-user-defined" else charset

    def _attribute(self) -> tuple[bytes, bytes] | None:
        """The standard's "get an attribute": (name, value), or None at the tag's end."""
        data = self.data
        pos = self._skip(_SKIP_SPACE_SLASH, self.pos)
        if data[pos] == ord(">"):
            self.pos = pos
            return None
        start = pos
        # A name runs to '=' (not as its first byte), whitespace, '/' or '>'.
        while data[pos] not in b"\t\n\x0c\r />" and (data[pos] != ord("=") or pos == start):
            pos += 1
            self._check(pos)
        name = data[start:pos]
        pos = self._skip(_SKIP_SPACE, pos)
        if data[pos] != ord("="):
            self.pos = pos
            return name, b""
        pos = self._skip(_SKIP_SPACE, pos + 1)
        quote = data[pos]
        if quote in b"\"'":
            end = self._index(bytes([quote]), pos + 1)
            self.pos = end + 1
            return name, data[pos + 1 : end]
        if quote == ord(">"):
            self.pos = pos
            return name, b""
        end = self._search(_VALUE_END, pos + 1)
        self.pos = end
        return name, data[pos:end]

    def _skip(self, pattern: re.Pattern[bytes], pos: int) -> int:
        match = pattern.match(self.data, pos)
        end = match.end() if match else pos
        return self._check(end)

    def _search(self, pattern: re.Pattern[bytes], pos: int) -> int:
        match = pattern.search(self.data, pos)
        if match is None:
            raise _OutOfBytes
        return match.start()

    def _index(self, needle: bytes, pos: int) -> int:
        found = self.data.find(needle, pos)
        if found < 0:
            raise _OutOfBytes
        return found

    def _check(self, pos: int) -> int:
        if pos >= len(self.data):
            raise _OutOfBytes
        return pos


def _charset_in_content(content: str) -> str | None:
    """The standard's "extract a character encoding from a meta element" on a content value."""
    pos = 0
    while True:
        found = content.find("charset", pos)
        if found < 0:
            return None
        pos = _skip_whitespace(content, found + 7)
        if content[pos : pos + 1] == "=":
            break
    pos = _skip_whitespace(content, pos + 1)
    quote = content[pos : pos + 1]
    if quote in ('"', "'"):
        end = content.find(quote, pos + 1)
        return encoding_for_label(content[pos + 1 : end]) if end >= 0 else None
    stop = _CONTENT_VALUE_END.search(content, pos)
    return encoding_for_label(content[pos : stop.start() if stop else len(content)]) if quote else None


_CONTENT_VALUE_END = re.compile(r"[\t\n\x0c\r ;]")


def _skip_whitespace(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _ASCII_WHITESPACE:
        pos += 1
    return pos
