"""WHATWG resolution, page normalisation and the four match modes."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.core import urls
from crawler.core.urls import Target, normalize_page, resolve


class TestResolve:
    @pytest.mark.parametrize(
        ("href", "base", "expected"),
        [
            ("../d?x#f", "http://a.com/b/c", "http://a.com/d?x#f"),
            ("  /p\t\na\nth ", "http://a.com/x", "http://a.com/path"),
            ("\\\\evil.com\\x", "https://a.com/", "https://evil.com/x"),
            ("//cdn.example/x", "https://a.com/", "https://cdn.example/x"),
            ("https:example.com", "https://a.com/q/", "https://a.com/q/example.com"),
            ("http://bücher.de/", "https://a.com/", "http://xn--bcher-kva.de/"),
            ("/%2e%2E/x", "http://a.com/b/c", "http://a.com/x"),
            ("http://0x7f.1/", "http://a.com/", "http://127.0.0.1/"),
            ("?a=1&b=2", "http://a.com/p", "http://a.com/p?a=1&b=2"),
        ],
    )
    def test_resolves_like_a_browser(self, href: str, base: str, expected: str) -> None:
        """Hrefs resolve to what a browser would request."""
        assert resolve(href, base) == expected

    def test_unparsable_href_gives_none(self) -> None:
        """An href a browser cannot parse resolves to None instead of raising."""
        assert resolve("http://[::1", "http://a.com/") is None

    def test_wpt_urltestdata(self, shared: Path) -> None:
        """Every web-platform-tests case with an http(s) base resolves as the standard says."""
        cases = json.loads((shared / "corpus/wpt/urltestdata.json").read_text(encoding="utf-8"))
        http_cases = [
            case
            for case in cases
            if isinstance(case, dict) and (case.get("base") or "").startswith(("http:", "https:"))
        ]
        wrong = [
            case
            for case in http_cases
            if resolve(case["input"], case["base"]) != (None if case.get("failure") else case["href"])
        ]
        assert len(http_cases) == 202
        assert wrong == []


class TestQueryEncoding:
    @pytest.mark.parametrize(
        ("href", "encoding", "expected"),
        [
            ("?q=café", "windows-1252", "http://a.com/p?q=caf%E9"),
            ("?q=café", "utf-8", "http://a.com/p?q=caf%C3%A9"),
            ("?q=Привет", "windows-1251", "http://a.com/p?q=%CF%F0%E8%E2%E5%F2"),
            ("?q=日本", "shift_jis", "http://a.com/p?q=%93%FA%96{"),
            ("?q=日本", "gbk", "http://a.com/p?q=%C8%D5%B1%BE"),
            ("?q=€", "gbk", "http://a.com/p?q=%80"),
            # A character the encoding lacks is written as `&#N;`, percent-encoded, as forms do.
            ("?q=ж€", "windows-1252", "http://a.com/p?q=%26%231078%3B%80"),
            ("?q=日", "iso-8859-2", "http://a.com/p?q=%26%2326085%3B"),
            # Only the query: the path and the fragment are UTF-8 whatever the page's encoding.
            ("/café?q=café#café", "windows-1252", "http://a.com/caf%C3%A9?q=caf%E9#caf%C3%A9"),
            ("#?q=é", "windows-1252", "http://a.com/p#?q=%C3%A9"),
            # The query as the parser reads it: trimmed, without tabs and newlines, escapes kept.
            (" ?q=\tcafé\n ", "windows-1252", "http://a.com/p?q=caf%E9"),
            ("?q=%C3%A9é&r=\"'<> x", "windows-1252", "http://a.com/p?q=%C3%A9%E9&r=%22%27%3C%3E%20x"),
            ("https://b.com/x?q=é#f", "windows-1252", "https://b.com/x?q=%E9#f"),
            # UTF-16 and replacement pages write their URLs in UTF-8 (HTML's output encoding).
            ("?q=é", "utf-16le", "http://a.com/p?q=%C3%A9"),
            ("?q=é", "replacement", "http://a.com/p?q=%C3%A9"),
            # Not special: UTF-8 always.
            ("mailto:x@a.com?subject=é", "windows-1252", "mailto:x@a.com?subject=%C3%A9"),
            # A label names its encoding; one the standard does not know is UTF-8.
            ("?q=é", "latin1", "http://a.com/p?q=%E9"),
            ("?q=é", "no-such-encoding", "http://a.com/p?q=%C3%A9"),
        ],
    )
    def test_query_in_the_page_encoding(self, href: str, encoding: str, expected: str) -> None:
        """On a page decoded from another encoding than UTF-8, the query is percent-encoded in it."""
        assert resolve(href, "http://a.com/p", encoding) == expected

    def test_wpt_percent_encoding(self, shared: Path) -> None:
        """Every web-platform-tests percent-encoding case: a query in each encoding, as browsers write it."""
        cases = json.loads((shared / "corpus/wpt/percent-encoding.json").read_text(encoding="utf-8"))
        checked = wrong = 0
        for case in cases:
            if isinstance(case, str):
                continue  # a comment
            for encoding, output in case["output"].items():
                checked += 1
                got = resolve(f"?{case['input']}", "https://doesnotmatter.invalid/", encoding)
                wrong += got != f"https://doesnotmatter.invalid/?{output}"
        assert (checked, wrong) == (16, 0)

    @given(st.text(alphabet=st.characters(max_codepoint=0x7F, exclude_characters="#"), max_size=16))
    def test_ascii_is_escaped_as_the_parser_escapes_it(self, ascii_text: str) -> None:
        """In a re-encoded query, ASCII is escaped as the WHATWG parser escapes it in UTF-8: only the
        non-ASCII character differs (é, last, is `%E9` in windows-1252, `%C3%A9` in UTF-8)."""
        href = f"?{ascii_text}é"
        in_utf8 = resolve(href, "http://a.com/")
        assert in_utf8 is not None
        assert resolve(href, "http://a.com/", "windows-1252") == in_utf8.removesuffix("%C3%A9") + "%E9"


class TestNormalizePage:
    @pytest.mark.parametrize(
        ("a", "b"),
        [
            ("http://example.com/", "https://example.com"),
            ("http://www.Example.com/a/", "https://example.com/a"),
            ("http://example.com:80/a", "http://example.com/a"),
            ("http://example.com/a/./b/../c", "http://example.com/a/c"),
            ("http://example.com/%7euser", "http://example.com/~user"),
            ("http://example.com/%c3%a9", "http://example.com/%C3%A9"),
            ("http://example.com/a?", "http://example.com/a"),
            ("http://example.com/a#top", "http://example.com/a"),
            ("http://xn--bcher-kva.de/", "http://bücher.de"),
            ("http://example.com./x", "http://example.com/x"),
            # Tracking parameters are dropped; a query left without parameters is no query.
            ("http://example.com/a?utm_source=nl&utm_medium=mail", "http://example.com/a"),
            ("http://example.com/a?id=1&gclid=x&fbclid=y", "http://example.com/a?id=1"),
            (
                "http://example.com/a?b=1&_ga=2&gbraid=3&a=4&wbraid=5&msclkid=6&yclid=7&mc_cid=8&mc_eid=9&_gl=0",
                "http://example.com/a?b=1&a=4",
            ),
            ("http://example.com/a?UTM_Source=x&GCLID=y", "http://example.com/a"),
            ("http://example.com/a?utm%5Fsource=x", "http://example.com/a"),
            ("http://example.com/a?&utm_source=x&", "http://example.com/a"),
            ("http://example.com/a?&", "http://example.com/a"),
            ("http://example.com/a?utm_=1", "http://example.com/a"),
        ],
    )
    def test_same_page(self, a: str, b: str) -> None:
        """Spellings the contract calls the same page normalise alike."""
        assert normalize_page(a) == normalize_page(b)

    @pytest.mark.parametrize(
        ("a", "b"),
        [
            ("http://example.com/a?x=1&y=2", "http://example.com/a?y=2&x=1"),
            ("http://example.com/a//", "http://example.com/a"),
            ("http://example.com:8080/", "http://example.com/"),
            ("http://www.www.example.com/", "http://example.com/"),
            ("http://example.com/A", "http://example.com/a"),
            ("http://example.com/a%2Fb", "http://example.com/a/b"),
            ("http://sub.example.com/", "http://example.com/"),
            ("http://example.com/a?utm=1", "http://example.com/a"),  # no `utm_` prefix
            ("http://example.com/a?_gac=1", "http://example.com/a"),
            ("http://example.com/a?ref=utm_source", "http://example.com/a"),  # a value, not a name
            ("http://example.com/a?x=1&utm_source=s&y=2", "http://example.com/a?y=2&x=1"),
        ],
    )
    def test_different_pages(self, a: str, b: str) -> None:
        """Query order, case of the path, ports, subdomains and escaped slashes still differ; only
        tracking parameters are dropped."""
        assert normalize_page(a) != normalize_page(b)

    def test_crawler_commons_pairs(self, shared: Path) -> None:
        """crawler-commons' weird/normalised pairs agree, but for rules the contract does not adopt."""
        path = shared / "corpus/urls/crawler-commons/weirdToNormalizedUrls.csv"
        agree = disagree = 0
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            weird, expected = (cell.strip() for cell in next(csv.reader([line], skipinitialspace=True)))
            if not _adopted_rule(weird, expected):
                continue
            if normalize_page(weird) == normalize_page(expected):
                agree += 1
            else:
                disagree += 1
        assert (agree, disagree) == (86, 0)

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("http://0//", "//0.0.0.0/"),
            ("http://a.com//", "//a.com/"),
            ("http://a.com", "//a.com/"),
            ("http://a.com/a", "//a.com/a/"),
            ("http://a.com/a/", "//a.com/a/"),
            ("http://a.com/a//", "//a.com/a//"),
            ("http://a.com/a?q=1", "//a.com/a/?q=1"),
            ("http://a.com/a?x=1&utm_source=s&y=2&gclid=g", "//a.com/a/?x=1&y=2"),
            ("http://a.com/a?utm_source=s", "//a.com/a/"),
        ],
    )
    def test_trailing_slashes(self, url: str, expected: str) -> None:
        """One trailing slash is ignored, a path of slashes is the root, and the form normalises to itself."""
        assert normalize_page(url) == expected
        assert normalize_page("http:" + expected) == expected

    @given(
        st.from_regex(
            r"https?://[a-zA-Z0-9.\-]{1,20}(:[0-9]{1,5})?(/[ -~]{0,30})?"
            r"(\?((utm_|_g|gclid|[a-z&=%])[ -~]{0,8}){0,4})?",
            fullmatch=True,
        )
    )
    def test_idempotent(self, url: str) -> None:
        """Normalising a normalised URL changes nothing."""
        once = normalize_page(url)
        if once is not None:
            scheme = url.split(":", 1)[0]
            assert normalize_page(f"{scheme}:{once}") == once


def _adopted_rule(weird: str, expected: str) -> bool:
    """False for pairs whose rule the contract leaves out: non-http input, `//` collapsing,
    and sorting or pruning query parameters (the contract keeps the query as it is)."""
    if not (weird.lower().startswith(("http:", "https:")) and expected.startswith(("http:", "https:"))):
        return False
    weird_rest = weird.split("://", 1)[1].split("#")[0]
    if "//" in weird_rest.split("?")[0]:
        return False
    weird_params = weird_rest.partition("?")[2].split("&")
    expected_params = expected.partition("?")[2].split("&")
    sorted_or_pruned = (
        any(p.endswith("=") for p in weird_params)
        or len(weird_params) != len(expected_params)
        or (weird_params != expected_params and sorted(weird_params) == sorted(expected_params))
    )
    return not sorted_or_pruned


class TestTarget:
    @pytest.mark.parametrize(
        ("mode", "target", "link", "expected"),
        [
            ("exact", "https://t.com/a", "https://t.com/a#x", True),
            ("exact", "https://t.com/a", "http://t.com/a", False),
            ("exact", "https://t.com/a/", "https://t.com/a", False),
            ("page", "https://t.com/a", "http://www.t.com/a/#x", True),
            ("page", "https://t.com/a", "http://t.com/a?x=1", False),
            ("page", "https://t.com/a?utm_source=nl", "http://t.com/a?utm_campaign=spring#top", True),
            ("page", "https://t.com/a?id=2", "http://t.com/a?fbclid=x&id=2", True),
            ("prefix", "https://t.com/blog/", "https://t.com/blog/post-1", True),
            ("prefix", "https://t.com/blog", "https://t.com/blogger", False),
            ("prefix", "https://t.com/blog", "https://t.com/blog?page=2", True),
            ("prefix", "https://t.com/", "https://www.t.com/anything", True),
            ("prefix", "https://t.com/blog", "https://t.com/blog/post?utm_source=x", True),
            ("domain", "https://www.t.co.uk/x", "https://shop.t.co.uk/", True),
            ("domain", "https://www.t.co.uk/x", "https://t.co.uk.evil.com/", False),
            ("domain", "https://a.github.io/", "https://b.github.io/", False),
        ],
    )
    def test_match_modes(self, mode: str, target: str, link: str, expected: bool) -> None:
        """Each match mode accepts exactly the links the contract describes."""
        assert Target.of(target, mode).matches(link) is expected


class TestHosts:
    def test_host_key_is_lower_case(self) -> None:
        """Two spellings of one host share one politeness budget."""
        assert urls.host_key("http://WWW.Example.COM:8080/x") == "www.example.com"

    def test_origin_keeps_scheme_and_port(self) -> None:
        """robots.txt origins differ by scheme and port."""
        assert urls.origin("https://a.com:8443/x?y") == "https://a.com:8443"
        assert urls.origin("http://a.com:80/x") == "http://a.com"

    @pytest.mark.parametrize(
        ("url", "problem"),
        [
            ("https://a.com/", None),
            ("", "missing"),
            ("ftp://a.com/", "not an http(s) URL: 'ftp://a.com/'"),
            ("http://[::1", "not a valid URL: 'http://[::1'"),
            ("a.com/page", "not a valid URL: 'a.com/page'"),
            ("http://a.com:99999/", "not a valid URL: 'http://a.com:99999/'"),
        ],
    )
    def test_claim_url_problems(self, url: str, problem: str | None) -> None:
        """Claim URLs must be absolute http(s) URLs; the problem is named."""
        assert urls.problem_with_absolute_http_url(url) == problem


# Spellings of one host that the parser reads alike, and other hosts, to try the cheap paths on.
SPELLINGS = [
    "https://target.com/p",
    "https://TARGET.com/p",
    "HTTPS://www.Target.COM:443/p",
    "https://t%61rget.com/p",
    "https://target.com./p",
    "  https://target.com/p",
    "\x01https://target.com/p ",
    "https:target.com/p",
    "https:\\\\target.com\\p",
    "https:/\\t%61rget.com/p",
    "https://tar\tget.com/p",
    "https://t\uff41rget.com/p",
    "https://user:p%40ss@target.com/p",
    "https://a@b@target.com/p",
    "https://target.com/p%20q",
    "https://target.com:8080/p",
    "http://blog.target.com/",
    "https://target.com.evil.example/p",
    "https://other.example/target.com",
    "https://other.example/%74arget",
    "https://127.0.0.1/p",
    "http://0x7f.1/p",
    "http://127.1:80/p",
    "http://[::1]/p",
    "https://xn--bcher-kva.example/",
    "https://bücher.example/",
    "mailto:a@target.com",
    "",
]
TARGETS = [
    "https://target.com/p",
    "https://www.target.com/",
    "https://target.com:8080/p",
    "http://127.0.0.1/p",
    "https://xn--bcher-kva.example/",
]


class TestCheapPaths:
    @pytest.mark.parametrize(
        ("url", "written"),
        [
            ("http://a.com/", ("a.com", "")),
            ("https://u:p@www.a.com:8443/x?y#z", ("www.a.com", "8443")),
            ("http://a.com.", ("a.com.", "")),
            ("http://127.0.0.1:18080/p", ("127.0.0.1", "18080")),
            ("http://A.com/", None),
            ("http://a.com:80/", None),
            ("http://a.com:080/", None),
            ("http://xn--bcher-kva.de/", None),
            ("http://0x7f.1/", None),
            ("http://1.2.3/", None),
            ("http://a..com/", None),
            ("http://a.com\t/", None),
            ("ftp://a.com/", None),
            ("http://[::1]/", None),
        ],
    )
    def test_written_host(self, url: str, written: tuple[str, str] | None) -> None:
        """Host and port are read off a URL only when it spells them as the parser writes them."""
        assert urls.written_host(url) == written

    def test_written_authority_names_its_groups(self) -> None:
        """The expression the extractor builds on names its groups: no group numbers to keep in step."""
        assert set(re.compile(urls.WRITTEN_AUTHORITY).groupindex) == {"scheme", "host", "port"}

    @given(
        st.from_regex(
            r"(https?|HTTP|ftp)://([a-zA-Z0-9_%@:.\-\[\]\t]|xn--|0x|www\.){0,12}([/?#\\ \t].{0,6})?",
            fullmatch=True,
        )
    )
    def test_written_host_agrees_with_the_parser(self, url: str) -> None:
        """Whenever the cheap reading answers, the WHATWG parser gives the same host and port."""
        written = urls.written_host(url)
        if written is not None:
            parsed = urls.parse(url)
            assert parsed is not None
            assert (parsed.hostname, parsed.port) == written

    @given(st.sampled_from(SPELLINGS), st.sampled_from(["target.com", "bücher.example", ""]))
    def test_may_contain_name_is_sound(self, url: str, name: str) -> None:
        """A URL whose parsed host holds the name is never ruled out by the substring test."""
        parsed = urls.parse(url)
        name = name.encode("idna").decode() if name else ""
        if parsed is not None and name in parsed.hostname:
            assert urls.may_contain_name(url, name)

    @given(
        st.sampled_from(TARGETS),
        st.sampled_from(["exact", "page", "prefix", "domain"]),
        st.lists(st.sampled_from(SPELLINGS), max_size=12),
    )
    def test_matching_is_matches_on_each(self, target: str, mode: str, links: list[str]) -> None:
        """Matching all of a page's links at once picks exactly the links `matches` accepts one by one."""
        prepared = Target.of(target, mode)
        assert prepared.matching(links) == [i for i, url in enumerate(links) if prepared.matches(url)]
        assert prepared.same_site_among(links) == [
            i for i, url in enumerate(links) if prepared.same_site(url)
        ]

    def test_matching_sees_through_spellings(self) -> None:
        """Upper case, escapes, a default port, a trailing dot or no slashes still match the page."""
        prepared = Target.of("https://target.com/p", "page")
        hits = prepared.matching(SPELLINGS)
        assert [SPELLINGS[i] for i in hits] == [
            "https://target.com/p",
            "https://TARGET.com/p",
            "HTTPS://www.Target.COM:443/p",
            "https://t%61rget.com/p",
            "https://target.com./p",
            "  https://target.com/p",
            "\x01https://target.com/p ",
            "https:target.com/p",
            "https:\\\\target.com\\p",
            "https:/\\t%61rget.com/p",
            "https://tar\tget.com/p",
            "https://t\uff41rget.com/p",
            "https://user:p%40ss@target.com/p",
            "https://a@b@target.com/p",
        ]
