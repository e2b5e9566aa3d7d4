"""Fuzzing with hypothesis: hostile input through the stages a server or a user controls.

The stage modules have their own never-raises properties on random text; these go further:

- a page's bytes and headers through the whole pure path the pipeline takes (is_html, decode,
  parse, verdict), built from fragments of hostile markup, and the result's output record;
- robots.txt built from hostile lines (encodings, line endings, wildcards, huge values);
- Retry-After values, numbers and dates from any server;
- claim files built from CSV's own grammar (quotes, delimiters, line endings, BOMs, NULs),
  whose row numbers must stay true, and any text on a stream with the format sniffed.
"""

from __future__ import annotations

import io
import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crawler.app.inputs import read_claims
from crawler.core import decode, extract, urls, verdict
from crawler.core.retry import parse_retry_after
from crawler.core.robots import RobotsPolicy
from crawler.errors import InputError
from crawler.models import Claim, Fetched, InvalidClaim, Result, Status

TARGET = "https://target.example/landing"
PAGE = "https://source.example/dir/page?q=1"
NOW = datetime(2026, 11, 21, 19, 30, tzinfo=UTC)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_FILES = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Pages -------------------------------------------------------------------------------------

MARKUP = [
    b"<a href='", b"<a href=", b"https://target.example/landing", b"//target.example/landing#x",
    b"HTTPS://WWW.TARGET.EXAMPLE:443/./landing/", b"'>", b">", b"</a>", b"anchor text", b"<area href=",
    b"<base href='//elsewhere.example/'>", b"<base href='javascript:alert(1)'>", b"<base href=''>",
    b"<meta http-equiv=refresh content='0;url=", b"<meta http-equiv=refresh content=\"0; URL='",
    b"<meta name=robots content='noindex, nofollow'>", b"<meta name=GOOGLEBOT content=none>",
    b"<meta name=robots content='unavailable_after: Mon, 01 Jan 2001 00:00:00 GMT'>",
    b"<meta charset=utf-16>", b"<meta charset=x-klingon>",
    b"<meta http-equiv=content-type content='text/html;charset=", b"<link rel=canonical href='",
    b"<link rel=canonical hreflang=de href=/de>", b"rel='nofollow ugc,sponsored'", b" rel=NOFOLLOW",
    b" style='display:none'", b" style='visibility: hidden !important'", b" hidden", b"<template>",
    b"</template>", b"<!--", b"-->", b"<script>", b"</script>", b"<noscript>", b"<svg><a href=x>",
    b"<math><mi>", b"<table><a href=/t>", b"<frameset>", b"<plaintext>", b"<xmp>", b"<nav>", b"<footer>",
    b"<aside class=comments>", b"<main>", b"<iframe srcdoc='<a href=z>'>", b"<img alt='alt text' src=x>",
    b"&#0;", b"&amp;", b"&#x110000;", b"\\", b"javascript:", b"mailto:x@y", b"%zz", b"%2e%2e/", b"\t\n\r",
    b"\x00", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xe2\x80\xae", b"\xc3\x28", b"\xed\xa0\x80",
    b"cf-chl-widget", b"g-recaptcha", b"<title>Just a moment...</title>", b"target.example",
]  # fmt: skip
CONTENT_TYPES = [
    None, "text/html", "text/html; charset=utf-8", "text/html; charset=utf-16",
    "text/html;charset=\"latin1\"", "text/html; charset=x-klingon", "application/xhtml+xml",
    "text/html; charset=replacement", "text/html; charset=iso-2022-jp",
    "TEXT/HTML; CHARSET=SHIFT_JIS, text/plain", "application/octet-stream",
]  # fmt: skip
HEADER_VALUES = [
    "noindex", "googlebot: noindex", "otherbot: none", "unavailable_after: 25 Jun 2010 15:00:00 PST",
    "unavailable_after: Monday, 01-Jan-99 00:00:00 GMT", "all", ",,,", ":", "googlebot:",
    "<x>; rel=canonical", '<https://source.example/other>; rel="canonical"', "<>; rel=canonical",
    "<javascript:x>; rel=canonical",
]  # fmt: skip

page_bytes = st.lists(st.one_of(st.sampled_from(MARKUP), st.binary(max_size=16)), max_size=60).map(b"".join)
headers = st.lists(
    st.tuples(
        st.sampled_from(["x-robots-tag", "link", "content-type"]), st.sampled_from(HEADER_VALUES) | st.text()
    ),
    max_size=4,
)
claims = st.builds(
    Claim,
    source_url=st.just(PAGE),
    target_url=st.sampled_from([TARGET, "https://target.example/", "http://www.target.example/landing/"]),
    expected_anchor=st.none() | st.sampled_from(["anchor text", "ALT TEXT", ""]),
    expected_rel=st.none() | st.sampled_from(["follow", "nofollow", "sponsored", "ugc"]),
    match=st.sampled_from(["exact", "page", "prefix", "domain"]),
)
PAGE_STATUSES = {Status.PAGE_ERROR, Status.MISSING, Status.NOT_INDEXABLE, Status.NOFOLLOW, Status.VERIFIED}


class TestPages:
    @FUZZ
    @given(
        body=page_bytes,
        content_type=st.sampled_from(CONTENT_TYPES),
        extra=headers,
        claim=claims,
        status=st.sampled_from([200, 203, 404, 503]),
    )
    def test_bytes_to_verdict(
        self, body: bytes, content_type: str | None, extra: list[tuple[str, str]], claim: Claim, status: int
    ) -> None:
        """Any page bytes and headers go through is_html, decode, parse and the verdict to a valid record."""
        result = judge(body, content_type, extra, claim, status)
        assert result.status in PAGE_STATUSES
        assert (result.status is Status.PAGE_ERROR) == (
            not 200 <= status < 300 or result.reason == "not_html"
        )
        if result.link is not None:
            assert urls.is_http(result.link.url)
        record = json.loads(json.dumps(result.to_dict(), ensure_ascii=False))
        assert Result.from_dict(record) == result

    @FUZZ
    @given(body=page_bytes, content_type=st.sampled_from(CONTENT_TYPES))
    @example(body=b"<base href='javascript:alert(1)'><a href=/landing>x</a>", content_type=None)
    def test_decoded_text_is_always_parsable(self, body: bytes, content_type: str | None) -> None:
        """Any declared charset decodes to text the parser takes whole; the base URL is one a browser keeps.

        HTML's "set the frozen base URL": a `<base href>` that fails to parse, or is a data: or
        javascript: URL, leaves the document's own URL as the base.
        """
        decoded = decode.decode_html(body, content_type)
        decoded.text.encode("utf-8")
        page = extract.parse_page(decoded.text, PAGE)
        assert urls.parse(page.base_url) is not None
        assert not page.base_url.startswith(("data:", "javascript:"))
        assert all(urls.parse(link.url) is not None for link in page.links)


def judge(
    body: bytes, content_type: str | None, extra: list[tuple[str, str]], claim: Claim, status: int
) -> Result:
    """What the pipeline does with a final response: the pure path from bytes to a result."""
    page, encoding = None, None
    if decode.is_html(content_type, body):
        decoded = decode.decode_html(body, content_type)
        page, encoding = extract.parse_page(decoded.text, PAGE), decoded.encoding
    header_list = (("content-type", content_type),) if content_type else ()
    fetched = Fetched(
        url=PAGE,
        status=status,
        final_url=PAGE,
        headers=(*header_list, *extra),
        content_type=content_type,
        encoding=encoding,
        bytes=len(body),
        attempts=1,
        robots_crawler_allowed=True,
        robots_index_allowed=True,
        page=page,
    )
    return verdict.decide(claim, fetched, run_id="fuzz", now=NOW)


# robots.txt --------------------------------------------------------------------------------

ROBOTS_LINES = [
    "User-agent: *", "User-agent: backlink-crawler", "user-agent:BACKLINK-CRAWLER/2.0",
    "User-agent: backlink", "User-agent: Googlebot", "User-agent: * ", "useragent backlink-crawler",
    "Disallow: /", "Disallow:", "Allow: /", "Disallow: /*", "Disallow: /*.php$", "Disallow: /%E4%BD%A0",
    "Disallow: /" + "*a" * 200 + "$", "Allow: /" + "x" * 5000,
    "Disallow: /你好", "Disallow: /%zz", "Disallow: $", "Allow: *", "Disallow /no-colon", "Crawl-delay: 5",
    "Crawl-delay: -1", "Crawl-delay: 1e999", "Crawl-delay: nan", "Crawl-delay: inf", "Crawl-delay: 0x10",
    "Sitemap: /s.xml", "Host: example.com", "# comment", "", " ", "\x00", "\ufeff", "<html>",
    "User-agent: *\rDisallow: /cr-only", "Disallow: /a#frag", "Disallow: /a?b=c",
]  # fmt: skip
ROBOTS_URLS = st.sampled_from(
    [
        "http://h.test/",
        "http://h.test/a",
        "http://h.test/robots.txt",
        "http://h.test/x.php",
        "http://h.test/%zz",
    ]
) | st.text(max_size=40).map(lambda text: "http://h.test/" + text)


def robots_body(lines: list[str], encoding: str, ending: str) -> bytes:
    text = ending.join(lines)
    if encoding == "utf-8-bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")
    if encoding == "utf-16":
        return text.encode("utf-16", "surrogatepass")
    return text.encode("utf-8", "surrogatepass")


class TestRobots:
    @FUZZ
    @given(
        lines=st.lists(st.sampled_from(ROBOTS_LINES) | st.text(max_size=30), max_size=40),
        encoding=st.sampled_from(["utf-8", "utf-8-bom", "utf-16"]),
        ending=st.sampled_from(["\n", "\r\n", "\r"]),
        status=st.sampled_from([200, 206, 301, 404, 429, 500, 999]),
        url=ROBOTS_URLS,
        agent=st.sampled_from(["backlink-crawler", "Googlebot", "BACKLINK-CRAWLER", "", "*"]),
    )
    def test_hostile_files(
        self, lines: list[str], encoding: str, ending: str, status: int, url: str, agent: str
    ) -> None:
        """Any mix of hostile lines, encodings and line endings gives a policy; delays are finite and >= 0."""
        policy = RobotsPolicy.from_response(status, robots_body(lines, encoding, ending), max_bytes=4096)
        assert isinstance(policy.can_fetch(url, agent), bool)
        delay = policy.crawl_delay(agent)
        assert delay is None or (math.isfinite(delay) and delay >= 0)
        if not 200 <= status < 500 or status == 429:
            assert not policy.can_fetch(url, agent)


# Retry-After -------------------------------------------------------------------------------

OFFSETS = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
DATES = st.builds(
    lambda moment, zone, style: _http_date(moment.replace(tzinfo=zone), style),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    OFFSETS,
    st.sampled_from(["imf", "rfc850", "asctime", "numeric-zone"]),
)


def _http_date(moment: datetime, style: str) -> str:
    if style == "rfc850":
        return moment.strftime("%A, %d-%b-%y %H:%M:%S GMT")
    if style == "asctime":
        return moment.strftime("%a %b %d %H:%M:%S %Y")
    if style == "numeric-zone":
        return format_datetime(moment)
    return format_datetime(moment.astimezone(UTC), usegmt=True)


class TestRetryAfter:
    @FUZZ
    @given(
        value=st.one_of(
            st.text(), DATES, st.integers().map(str), st.from_regex(r"\s*[0-9\u0660-\u0669\u00b2]+\s*")
        )
    )
    def test_any_value(self, value: str) -> None:
        """Any Retry-After a server sends gives None or a non-negative number of seconds, never an error."""
        seconds = parse_retry_after(value, NOW)
        assert seconds is None or (seconds >= 0 and not math.isnan(seconds))


# Claim files -------------------------------------------------------------------------------

CELLS = [
    "http://a.test/", "https://b.test/p?q=1", TARGET, "javascript:alert(1)", "http://", "ftp://x.test/", "",
    " ", '"', '""', '"quoted, with comma"', '"multi\nline"', ",", ";", "\t", "\r", "\n", "\r\n", "\x00",
    "\ufeff", "é", "nofollow", "follow", "domain", "=1+1", "x" * 300,
]  # fmt: skip
HEADERS = [
    "source_url,target_url", "id,source_url,target_url,expected_rel,match,vendor", "SOURCE_URL ; Target_URL",
    "\ufeffsource_url,target_url,note", "source_url\ttarget_url", '"source_url","target_url"',
]  # fmt: skip
LINE = re.compile(r"\r\n|\r|\n")


class TestClaimFiles:
    @FUZZ_FILES
    @given(
        header=st.sampled_from(HEADERS),
        rows=st.lists(st.lists(st.sampled_from(CELLS) | st.text(max_size=8), max_size=6), max_size=12),
        delimiter=st.sampled_from([",", ";", "\t"]),
        ending=st.sampled_from(["\n", "\r\n", "\r"]),
        garbage=st.binary(max_size=8),
    )
    def test_csv_grammar(
        self, tmp_path: Path, header: str, rows: list[list[str]], delimiter: str, ending: str, garbage: bytes
    ) -> None:
        """CSV of quotes, delimiters, line endings, BOMs and NULs: storable items, true row numbers."""
        text = ending.join([header, *(delimiter.join(cells) for cells in rows)]) + ending
        content = text.encode("utf-8", "surrogatepass") + garbage
        path = tmp_path / "claims.csv"
        path.write_bytes(content)
        try:
            items = list(read_claims(path))
        except InputError:
            return
        physical_rows = len(LINE.findall(content.decode("latin-1"))) + 1  # a last line may lack its end
        numbers = []
        for item in items:
            if isinstance(item, Claim):
                assert (urls.is_http(item.source_url), urls.is_http(item.target_url)) == (True, True)
                continue
            assert isinstance(item, InvalidClaim)
            found = re.match(r"row (\d+): ", item.reason)
            assert found is not None, item.reason
            numbers.append(int(found.group(1)))
            item.reason.encode("utf-8")  # storable: no lone surrogates, NULs replaced
            assert "\x00" not in item.id + item.source_url + item.target_url
        assert numbers == sorted(numbers)
        assert all(2 <= number <= physical_rows for number in numbers)

    @FUZZ_FILES
    @given(text=st.text(max_size=300), format=st.sampled_from([None, "csv", "tsv", "jsonl", "ndjson"]))
    @example(text="\r0", format=None)  # a CR in the first line of a stream not opened with newline=""
    def test_any_text_on_a_stream(self, text: str, format: str | None) -> None:
        """Any text handed over as a stream, format given or sniffed, yields items or one InputError."""
        try:
            with read_claims(io.StringIO(text), format=format) as reader:
                items = list(reader)
        except InputError:
            return
        assert all(isinstance(item, Claim | InvalidClaim) for item in items)
