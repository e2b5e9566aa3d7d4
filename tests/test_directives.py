"""Robots directives (meta and X-Robots-Tag), unavailable_after dates, and the canonical URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from crawler.core import directives
from crawler.core.directives import (
    canonical,
    header_canonical,
    header_directives,
    indexing,
    is_elsewhere,
    link_header,
    meta_directives,
    normalize,
    parse_date,
    split_directives,
    unavailable_after,
)
from crawler.models import Fetched, Page

FINAL = "https://news.example.org/article"
NOW = datetime(2026, 11, 21, 19, 30, tzinfo=UTC)


def page(meta: tuple[tuple[str, str], ...] = (), canonical_url: str | None = None) -> Page:
    return Page(
        url=FINAL,
        base_url=FINAL,
        links=(),
        meta_robots=meta,
        canonical=canonical_url,
        refresh_url=None,
        visible_text="",
        bot_challenge=False,
        outbound_links=0,
    )


def xrt(*values: str) -> tuple[tuple[str, str], ...]:
    return tuple(("x-robots-tag", value) for value in values)


class TestSplitAndNormalize:
    @pytest.mark.parametrize(
        ("content", "pieces"),
        [
            ("noindex, nofollow", ["noindex", "nofollow"]),
            (" ,noindex,, nofollow , ", ["noindex", "nofollow"]),
            ("", []),
            (
                "unavailable_after: Friday, 25-Jun-10 15:00:00 GMT, noindex",
                ["unavailable_after: Friday, 25-Jun-10 15:00:00 GMT", "noindex"],
            ),
            (
                "UNAVAILABLE_AFTER:Fri, 25 Jun 2010 15:00:00 GMT",
                ["UNAVAILABLE_AFTER:Fri, 25 Jun 2010 15:00:00 GMT"],
            ),
            (
                "unavailable_after: 25 Jun 2010 15:00:00 PST, nofollow",
                ["unavailable_after: 25 Jun 2010 15:00:00 PST", "nofollow"],
            ),
            ("friday, noindex", ["friday", "noindex"]),
        ],
    )
    def test_splits_on_commas_but_not_inside_dates(self, content: str, pieces: list[str]) -> None:
        """Directives split on commas, except the comma after a weekday in an unavailable_after date."""
        assert split_directives(content) == pieces

    @pytest.mark.parametrize(
        ("piece", "directive"),
        [
            ("NoIndex", "noindex"),
            ("  no   index ", "no index"),
            ("max-snippet:-1", "max-snippet: -1"),
            ("MAX-IMAGE-PREVIEW : Large", "max-image-preview: Large"),
            ("unavailable_after:   25 Jun 2010  15:00:00 PST", "unavailable_after: 25 Jun 2010 15:00:00 PST"),
            ("noindex:", "noindex"),
            ("", None),
            (": value", None),
        ],
    )
    def test_normal_form(self, piece: str, directive: str | None) -> None:
        """A directive is its lower-case name, or `name: value` with the value as written."""
        assert normalize(piece) == directive


class TestMetaDirectives:
    @pytest.mark.parametrize(
        ("meta", "agent", "expected"),
        [
            ((("robots", "NOINDEX, Follow"),), "Googlebot", ("noindex", "follow")),
            ((("googlebot", "nofollow"),), "Googlebot", ("nofollow",)),
            ((("GoogleBot", "nofollow"),), "Googlebot", ("nofollow",)),
            ((("bingbot", "noindex"),), "Googlebot", ()),
            ((("bingbot", "noindex"), ("googlebot", "nofollow")), "Bingbot", ("noindex",)),
            (
                (("robots", "index"), ("googlebot", "noindex"), ("robots", "noindex")),
                "Googlebot",
                ("index", "noindex"),
            ),
            ((("description", "noindex"),), "Googlebot", ()),
            ((("robots", ""),), "Googlebot", ()),
        ],
    )
    def test_applies_robots_and_the_index_agent_only(
        self, meta: tuple[tuple[str, str], ...], agent: str, expected: tuple[str, ...]
    ) -> None:
        """Meta robots and meta <index agent> apply, other agents' tags don't; repeats are listed once."""
        assert meta_directives(meta, agent) == expected


class TestHeaderDirectives:
    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            (xrt("noindex"), ("noindex",)),
            (xrt("googlebot: noindex"), ("noindex",)),
            (xrt("GoogleBot: NOINDEX, nofollow"), ("noindex", "nofollow")),
            (xrt("otherbot: noindex"), ()),
            (xrt("otherbot: noindex, nofollow"), ()),
            (xrt("googlebot: noindex, otherbot: nofollow"), ("noindex",)),
            (xrt("otherbot: nofollow, googlebot: noindex"), ("noindex",)),
            (xrt("otherbot: noindex", "nofollow"), ("nofollow",)),
            (xrt("googlebot-news: noindex"), ()),
            (
                xrt("unavailable_after: 25 Jun 2010 15:00:00 PST"),
                ("unavailable_after: 25 Jun 2010 15:00:00 PST",),
            ),
            (
                xrt("googlebot: unavailable_after: Friday, 25-Jun-10 15:00:00 GMT"),
                ("unavailable_after: Friday, 25-Jun-10 15:00:00 GMT",),
            ),
            (xrt("otherbot: unavailable_after: 2010-06-25"), ()),
            (xrt("max-snippet: 20, noarchive"), ("max-snippet: 20", "noarchive")),
            ((("X-Robots-Tag", "noindex"),), ("noindex",)),
            ((("x-robots", "noindex"), ("link", "noindex")), ()),
            (xrt("googlebot:"), ()),
            (xrt("noindex: yes"), ("noindex: yes",)),
        ],
    )
    def test_scoped_and_unscoped_values(
        self, headers: tuple[tuple[str, str], ...], expected: tuple[str, ...]
    ) -> None:
        """Unscoped values apply to all; `agent:` scopes what follows it; a date is no scope."""
        assert header_directives(headers, "Googlebot") == expected

    def test_another_index_agent(self) -> None:
        """The scope is compared with whichever index agent is configured, case-insensitively."""
        headers = xrt("googlebot: noindex", "BINGBOT: nofollow")
        assert header_directives(headers, "bingbot") == ("nofollow",)


class TestDates:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Friday, 25-Jun-10 15:00:00 GMT", datetime(2010, 6, 25, 15, tzinfo=UTC)),
            ("Fri, 25 Jun 2010 15:00:00 GMT", datetime(2010, 6, 25, 15, tzinfo=UTC)),
            ("25 Jun 2010 15:00:00 PST", datetime(2010, 6, 25, 23, tzinfo=UTC)),
            ("25 Jun 2010 15:00:00 +0200", datetime(2010, 6, 25, 13, tzinfo=UTC)),
            ("25 Jun 2010", datetime(2010, 6, 25, tzinfo=UTC)),
            ("2010-06-25", datetime(2010, 6, 25, tzinfo=UTC)),
            ("2010-06-25T15:00:00Z", datetime(2010, 6, 25, 15, tzinfo=UTC)),
            ("2010-06-25T15:00:00+02:00", datetime(2010, 6, 25, 13, tzinfo=UTC)),
            (" 2010-06-25 15:00 ", datetime(2010, 6, 25, 15, tzinfo=UTC)),
        ],
    )
    def test_rfc822_rfc850_and_iso8601(self, text: str, expected: datetime) -> None:
        """The three documented date formats (and Google's "PST" example) parse to the same instant in UTC."""
        assert parse_date(text) == expected

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "never",
            "tomorrow",
            "2010-13-45",
            "Fri, 32 Jun 2010 15:00:00 GMT",
            "25 Jun 99999999999999999999 10:00",
        ],
    )
    def test_invalid_dates_are_none(self, text: str) -> None:
        """A date that does not parse is None, never an exception."""
        assert parse_date(text) is None

    def test_earliest_valid_date_wins(self) -> None:
        """Of several unavailable_after dates the earliest valid one applies; invalid ones are ignored."""
        found = unavailable_after(
            [
                "unavailable_after: 2031-01-01",
                "unavailable_after: soon",
                "noindex",
                "unavailable_after: 2030-01-01",
            ]
        )
        assert found == datetime(2030, 1, 1, tzinfo=UTC)
        assert unavailable_after(["unavailable_after: soon"]) is None


class TestLinkHeader:
    def test_several_links_with_quoted_and_bare_parameters(self) -> None:
        """A Link value holds several links; quoted values may contain commas and semicolons."""
        value = (
            '<https://a.example/x,y;z>; rel="alternate canonical"; title="a, b; c", '
            "</fr/>; rel=alternate; hreflang=fr, <https://b.example/>; REL=Canonical; rel=next"
        )
        assert list(link_header(value)) == [
            ("https://a.example/x,y;z", {"rel": "alternate canonical", "title": "a, b; c"}),
            ("/fr/", {"rel": "alternate", "hreflang": "fr"}),
            ("https://b.example/", {"rel": "Canonical"}),
        ]

    def test_garbage_is_skipped(self) -> None:
        """Text that is not a link is skipped up to the next comma, and the rest still reads."""
        assert list(link_header('garbage; rel=canonical, <https://a.example/>; rel="x\\"y"')) == [
            ("https://a.example/", {"rel": 'x"y'}),
        ]

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ((("link", '<https://news.example.org/a>; rel="canonical"'),), "https://news.example.org/a"),
            ((("link", "</b/../c?q=1>; rel=canonical"),), "https://news.example.org/c?q=1"),
            ((("link", '<https://x.example/>; rel="alternate canonical"'),), "https://x.example/"),
            ((("Link", "<https://x.example/>; REL=CANONICAL"),), "https://x.example/"),
            (
                (
                    ("link", '<https://x.example/de>; rel="canonical"; hreflang="de"'),
                    ("link", "</en>; rel=canonical"),
                ),
                "https://news.example.org/en",
            ),
            (
                (("link", "<https://x.example/>; rel=next, <https://y.example/>; rel=canonical"),),
                "https://y.example/",
            ),
            ((("link", "<mailto:a@example.org>; rel=canonical"),), None),
            ((("link", "<https://x.example/>; rel=canonicalize"),), None),
            ((("x-link", "<https://x.example/>; rel=canonical"),), None),
        ],
    )
    def test_header_canonical(self, headers: tuple[tuple[str, str], ...], expected: str | None) -> None:
        """The first rel=canonical link without hreflang/media/type, resolved against the final URL."""
        assert header_canonical(headers, FINAL) == expected


class TestCanonical:
    def test_head_canonical_wins_over_header(self) -> None:
        """The `<head>` canonical is used when present; the Link header is the fallback."""
        headers = (("link", "<https://header.example/>; rel=canonical"),)
        assert (
            canonical(page(canonical_url="https://head.example/"), headers, FINAL) == "https://head.example/"
        )
        assert canonical(page(), headers, FINAL) == "https://header.example/"
        assert canonical(None, headers, FINAL) == "https://header.example/"

    @pytest.mark.parametrize(
        ("declared", "elsewhere"),
        [
            ("https://news.example.org/article", False),
            ("http://www.NEWS.example.org:80/article/#top", False),
            ("https://news.example.org/%61rticle", False),
            ("https://news.example.org/article?page=2", True),
            ("https://news.example.org/other", True),
            ("https://mirror.example.org/article", True),
            (None, False),
            ("http://[::1", False),
        ],
    )
    def test_elsewhere_by_page_normalisation(self, declared: str | None, elsewhere: bool) -> None:
        """A canonical is elsewhere only when its page normalisation differs from the final URL's."""
        assert is_elsewhere(declared, FINAL) is elsewhere


class TestIndexing:
    def fetched(
        self, meta: tuple[tuple[str, str], ...] = (), headers: tuple[tuple[str, str], ...] = ()
    ) -> Fetched:
        return Fetched(url=FINAL, status=200, final_url=FINAL, headers=headers, page=page(meta))

    def test_most_restrictive_wins_across_sources(self) -> None:
        """A meta `index` does not cancel a header `noindex`: negative directives combine."""
        found = indexing(
            self.fetched(meta=(("robots", "index, follow"),), headers=xrt("noindex")),
            index_agent="Googlebot",
            now=NOW,
        )
        assert (found.meta_robots, found.x_robots_tag) == (("index", "follow"), ("noindex",))
        assert (found.noindex, found.nofollow) == (True, False)

    def test_none_means_noindex_nofollow(self) -> None:
        """`none` is reported as written and means both noindex and nofollow."""
        found = indexing(self.fetched(meta=(("googlebot", "None"),)), index_agent="Googlebot", now=NOW)
        assert (found.meta_robots, found.noindex, found.nofollow) == (("none",), True, True)

    @pytest.mark.parametrize(
        ("date", "expired"),
        [
            ("Friday, 25-Jun-10 15:00:00 GMT", True),
            ("Saturday, 25-Jun-39 15:00:00 GMT", False),
            ("2026-11-21T19:30:00Z", True),
            ("2026-11-21T19:30:01Z", False),
            ("not a date", False),
        ],
    )
    def test_unavailable_after_against_now(self, date: str, expired: bool) -> None:
        """unavailable_after expires the page once `now` reaches the date; an invalid date is ignored."""
        found = indexing(
            self.fetched(meta=(("robots", f"unavailable_after: {date}"),)), index_agent="Googlebot", now=NOW
        )
        assert found.expired is expired
        assert found.meta_robots == (f"unavailable_after: {date}",)

    def test_now_in_another_zone_or_naive(self) -> None:
        """`now` is compared as an instant: another zone or a naive UTC value gives the same answer."""
        fetched = self.fetched(headers=xrt("unavailable_after: 2026-11-21T19:00:00Z"))
        tokyo = NOW.astimezone(timezone(timedelta(hours=9)))
        naive = NOW.replace(tzinfo=None)
        assert indexing(fetched, index_agent="Googlebot", now=tokyo).expired
        assert indexing(fetched, index_agent="Googlebot", now=naive).expired
        assert not indexing(fetched, index_agent="Googlebot", now=NOW - timedelta(hours=1)).expired

    def test_header_canonical_resolved_against_final_url(self) -> None:
        """Without a head canonical the Link header's one counts, resolved against the final URL."""
        fetched = self.fetched(headers=(("link", "</other>; rel=canonical"),))
        found = indexing(fetched, index_agent="Googlebot", now=NOW)
        assert found.canonical == "https://news.example.org/other"
        assert found.canonical_elsewhere


class TestRealWorld:
    def test_corpus_meta_robots(self, shared: Path) -> None:
        """Every meta robots tag of the real pages parses; index/follow pages are never noindex."""
        contents = [
            node.attributes.get("content") or ""
            for path in sorted((shared / "corpus/pages").glob("*.html"))
            for node in LexborHTMLParser(path.read_text(encoding="utf-8-sig")).css("meta[name]")
            if (node.attributes.get("name") or "").lower() in ("robots", "googlebot")
        ]
        assert len(contents) > 20
        for content in contents:
            found = meta_directives((("robots", content),), "Googlebot")
            assert all(d.partition(": ")[0] == d.partition(": ")[0].strip().lower() for d in found)
            noindex = directives.NOINDEX & {d.partition(": ")[0] for d in found}
            assert bool(noindex) == ("noindex" in content.lower() or content.strip().lower() == "none")


class TestNeverRaises:
    @given(st.text(), st.text())
    def test_any_header_value(self, value: str, agent: str) -> None:
        """Arbitrary header and meta text never raises; every directive found has a lower-case name."""
        for found in (header_directives(xrt(value), agent), meta_directives((("robots", value),), agent)):
            assert all(d and d.partition(": ")[0] == d.partition(": ")[0].lower() for d in found)
        assert isinstance(list(link_header(value)), list)
        header_canonical((("link", value),), FINAL)

    @given(st.text())
    def test_any_date(self, text: str) -> None:
        """Any date text gives a UTC datetime or None."""
        parsed = parse_date(text)
        assert parsed is None or parsed.tzinfo is UTC
