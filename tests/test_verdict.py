"""The verdict: status order, every flag, the best match, indexability and copied fields."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.core.extract import parse_page
from crawler.core.verdict import decide, invalid
from crawler.models import (
    Claim,
    ExpectedRel,
    Fetched,
    Flag,
    InvalidClaim,
    Link,
    MatchMode,
    Page,
    Redirect,
    Region,
    Result,
    Status,
)

SOURCE = "https://news.example.org/article"
TARGET = "https://www.target.com/product"
NOW = datetime(2026, 11, 21, 19, 30, tzinfo=UTC)


def link(
    url: str = TARGET,
    *,
    text: str = "Target product",
    rel: tuple[str, ...] = (),
    hidden: bool = False,
    region: Region = Region.MAIN,
    beyond: bool = False,
) -> Link:
    return Link(
        href=url, url=url, text=text, rel=rel, hidden=hidden, region=region, beyond_index_limit=beyond
    )


def page(
    *links: Link,
    meta: tuple[tuple[str, str], ...] = (),
    canonical: str | None = None,
    text: str = "",
    challenge: bool = False,
) -> Page:
    return Page(
        url=SOURCE,
        base_url=SOURCE,
        links=links,
        meta_robots=meta,
        canonical=canonical,
        refresh_url=None,
        visible_text=text,
        bot_challenge=challenge,
        outbound_links=len(links),
    )


def fetched(pg: Page | None = None, **fields: Any) -> Fetched:
    """A 200 response for SOURCE carrying `pg` (a page with one followed link by default)."""
    defaults: dict[str, Any] = {"status": 200, "final_url": SOURCE, "robots_index_allowed": True}
    return Fetched(url=SOURCE, page=pg if pg is not None else page(link()), **(defaults | fields))


def verdict(got: Fetched, agent: str = "Googlebot", **claim_fields: Any) -> Result:
    claim = Claim(source_url=SOURCE, target_url=claim_fields.pop("target_url", TARGET), **claim_fields)
    return decide(claim, got, run_id="run-1", now=NOW, index_agent=agent)


def xrt(*values: str) -> tuple[tuple[str, str], ...]:
    return tuple(("x-robots-tag", value) for value in values)


class TestStatusOrder:
    @pytest.mark.parametrize(
        ("got", "status", "reason"),
        [
            (fetched(reason="robots_disallowed", status=None), Status.BLOCKED, "robots_disallowed"),
            (fetched(reason="robots_unavailable", status=None), Status.BLOCKED, "robots_unavailable"),
            (fetched(reason="forbidden_address", status=None), Status.BLOCKED, "forbidden_address"),
            (fetched(reason="timeout", status=None), Status.UNREACHABLE, "timeout"),
            (fetched(reason="dns_error", status=None), Status.UNREACHABLE, "dns_error"),
            (fetched(reason="tls_error", status=None), Status.UNREACHABLE, "tls_error"),
            (fetched(reason="connection_error", status=None), Status.UNREACHABLE, "connection_error"),
            (fetched(reason="connection_reset", status=None), Status.UNREACHABLE, "connection_reset"),
            (fetched(status=None), Status.UNREACHABLE, "no_response"),
            (fetched(reason="too_many_redirects", status=301), Status.PAGE_ERROR, "too_many_redirects"),
            (fetched(status=404), Status.PAGE_ERROR, "http_404"),
            (fetched(status=503), Status.PAGE_ERROR, "http_503"),
            (fetched(status=304), Status.PAGE_ERROR, "http_304"),
            (Fetched(url=SOURCE, status=200, final_url=SOURCE), Status.PAGE_ERROR, "not_html"),
            (fetched(page(link("https://elsewhere.example/"))), Status.MISSING, None),
            (fetched(page()), Status.MISSING, None),
            (fetched(robots_index_allowed=False), Status.NOT_INDEXABLE, None),
            (fetched(page(link(), meta=(("robots", "noindex"),))), Status.NOT_INDEXABLE, None),
            (fetched(page(link(), meta=(("googlebot", "none"),))), Status.NOT_INDEXABLE, None),
            (fetched(headers=xrt("noindex")), Status.NOT_INDEXABLE, None),
            (fetched(headers=xrt("unavailable_after: 2020-01-01")), Status.NOT_INDEXABLE, None),
            (fetched(page(link(), canonical="https://news.example.org/other")), Status.NOT_INDEXABLE, None),
            (fetched(page(link(rel=("nofollow",)))), Status.NOFOLLOW, None),
            (fetched(page(link(rel=("sponsored",)))), Status.NOFOLLOW, None),
            (fetched(page(link(rel=("UGC",)))), Status.NOFOLLOW, None),
            (fetched(page(link(), meta=(("robots", "nofollow"),))), Status.NOFOLLOW, None),
            (fetched(headers=xrt("googlebot: nofollow")), Status.NOFOLLOW, None),
            (fetched(page(link(rel=("noopener", "external")))), Status.VERIFIED, None),
            (fetched(robots_index_allowed=None), Status.VERIFIED, None),
            (fetched(status=204), Status.VERIFIED, None),
        ],
    )
    def test_each_status(self, got: Fetched, status: Status, reason: str | None) -> None:
        """Each rule of the contract gives its status and reason."""
        result = verdict(got)
        assert (result.status, result.reason) == (status, reason)

    @pytest.mark.parametrize(
        ("got", "status"),
        [
            (fetched(reason="robots_disallowed", status=200), Status.BLOCKED),
            (fetched(reason="timeout", status=200), Status.UNREACHABLE),
            (fetched(reason="too_many_redirects", status=200), Status.PAGE_ERROR),
            (fetched(status=404, robots_index_allowed=False), Status.PAGE_ERROR),
            (
                fetched(page(link("https://elsewhere.example/"), meta=(("robots", "noindex"),))),
                Status.MISSING,
            ),
            (fetched(page(link(rel=("nofollow",)), meta=(("robots", "noindex"),))), Status.NOT_INDEXABLE),
        ],
    )
    def test_earlier_rule_wins(self, got: Fetched, status: Status) -> None:
        """When several rules apply the earliest in the contract's order decides."""
        assert verdict(got).status is status

    def test_noindex_and_nofollow_link_keeps_both_flags(self) -> None:
        """A noindex page with a nofollow link is not_indexable and carries both facts as flags."""
        result = verdict(fetched(page(link(rel=("nofollow",)), meta=(("robots", "noindex"),))))
        assert result.status is Status.NOT_INDEXABLE
        assert {Flag.NOINDEX, Flag.NOFOLLOW} <= set(result.flags)


class TestAgents:
    @pytest.mark.parametrize(
        ("meta", "headers", "agent", "status"),
        [
            ((("googlebot", "noindex"),), (), "Googlebot", Status.NOT_INDEXABLE),
            ((("bingbot", "noindex"),), (), "Googlebot", Status.VERIFIED),
            ((("bingbot", "noindex"),), (), "Bingbot", Status.NOT_INDEXABLE),
            ((("googlebot", "noindex"),), (), "Bingbot", Status.VERIFIED),
            ((), xrt("googlebot: noindex"), "Googlebot", Status.NOT_INDEXABLE),
            ((), xrt("otherbot: noindex"), "Googlebot", Status.VERIFIED),
            ((), xrt("otherbot: noindex"), "OtherBot", Status.NOT_INDEXABLE),
            ((), xrt("noindex"), "Bingbot", Status.NOT_INDEXABLE),
            ((), xrt("otherbot: noindex", "googlebot: nofollow"), "Googlebot", Status.NOFOLLOW),
            ((), xrt("googlebot: noindex, otherbot: nofollow"), "Otherbot", Status.NOFOLLOW),
        ],
    )
    def test_directives_for_the_index_agent_only(
        self,
        meta: tuple[tuple[str, str], ...],
        headers: tuple[tuple[str, str], ...],
        agent: str,
        status: Status,
    ) -> None:
        """Agent-specific meta tags and scoped X-Robots-Tag values count only for that index agent."""
        assert verdict(fetched(page(link(), meta=meta), headers=headers), agent=agent).status is status

    def test_directives_reported(self) -> None:
        """meta_robots and x_robots_tag list the directives that apply, normalised, each once."""
        got = fetched(
            page(link(), meta=(("robots", "INDEX, Max-Snippet:-1"), ("bingbot", "noindex"))),
            headers=xrt(
                "otherbot: noarchive", "noarchive, unavailable_after: Friday, 25-Jun-49 15:00:00 GMT"
            ),
        )
        result = verdict(got)
        assert result.meta_robots == ("index", "max-snippet: -1")
        assert result.x_robots_tag == ("noarchive", "unavailable_after: Friday, 25-Jun-49 15:00:00 GMT")
        assert result.status is Status.VERIFIED


class TestUnavailableAfter:
    @pytest.mark.parametrize(
        ("date", "status"),
        [
            ("Friday, 25-Jun-10 15:00:00 GMT", Status.NOT_INDEXABLE),
            ("Monday, 25-Jun-40 15:00:00 GMT", Status.VERIFIED),
            ("25 Jun 2010 15:00:00 PST", Status.NOT_INDEXABLE),
            ("2026-11-21T19:29:59Z", Status.NOT_INDEXABLE),
            ("2026-11-21T19:30:01Z", Status.VERIFIED),
            ("the day after tomorrow", Status.VERIFIED),
        ],
    )
    def test_past_future_invalid(self, date: str, status: Status) -> None:
        """A passed unavailable_after date expires the page; a future or invalid one does not."""
        result = verdict(fetched(page(link(), meta=(("robots", f"unavailable_after: {date}"),))))
        assert result.status is status
        assert (Flag.EXPIRED in result.flags) is (status is Status.NOT_INDEXABLE)
        assert result.indexable is (status is Status.VERIFIED)


class TestCanonical:
    @pytest.mark.parametrize(
        "declared",
        [
            "https://news.example.org/article",
            "http://news.example.org/article/",
            "https://www.news.example.org/article#comments",
            "https://NEWS.example.org:443/./article",
        ],
    )
    def test_same_page_modulo_normalisation(self, declared: str) -> None:
        """A canonical that is the final URL after page normalisation is not elsewhere."""
        result = verdict(fetched(page(link(), canonical=declared)))
        assert (result.status, result.canonical_url) == (Status.VERIFIED, declared)
        assert Flag.CANONICAL_ELSEWHERE not in result.flags

    def test_link_header_canonical_elsewhere(self) -> None:
        """A Link header canonical to another page makes the page not indexable and is reported resolved."""
        headers = (("link", '</fr/article>; rel="alternate"; hreflang=fr, </amp>; rel="canonical"'),)
        result = verdict(fetched(headers=headers))
        assert result.status is Status.NOT_INDEXABLE
        assert result.canonical_url == "https://news.example.org/amp"
        assert Flag.CANONICAL_ELSEWHERE in result.flags

    def test_head_canonical_wins_over_link_header(self) -> None:
        """The head canonical decides even when a Link header names another page."""
        headers = (("link", "<https://mirror.example/>; rel=canonical"),)
        result = verdict(fetched(page(link(), canonical=SOURCE), headers=headers))
        assert (result.status, result.canonical_url) == (Status.VERIFIED, SOURCE)

    def test_canonical_compared_with_final_url(self) -> None:
        """After a redirect the canonical is compared with where we landed, not the claimed source."""
        final = "https://news.example.org/2026/article"
        got = fetched(page(link(), canonical=final), final_url=final, redirects=(Redirect(SOURCE, 301),))
        assert verdict(got).status is Status.VERIFIED


class TestBestMatch:
    @pytest.mark.parametrize(
        ("links", "best"),
        [
            ((link(rel=("nofollow",)), link(hidden=True)), 1),
            ((link(hidden=True), link(region=Region.FOOTER)), 1),
            ((link(region=Region.NAV), link(text="second")), 1),
            ((link(text="first"), link(text="second")), 0),
            ((link(rel=("ugc",), region=Region.COMMENTS), link(rel=("sponsored",))), 1),
            ((link(hidden=True, region=Region.ASIDE), link(hidden=True), link(rel=("nofollow",))), 1),
            (
                (link("https://elsewhere.example/"), link(region=Region.HEADER), link(text="x", hidden=True)),
                1,
            ),
        ],
    )
    def test_followed_visible_main_then_first(self, links: tuple[Link, ...], best: int) -> None:
        """The reported link is followed, then visible, then in main content, then first."""
        result = verdict(fetched(page(*links)))
        assert result.link is links[best]

    def test_counts_all_matches(self) -> None:
        """links_matched counts every matching link and more than one flags multiple_matches."""
        result = verdict(fetched(page(link(), link("https://elsewhere.example/"), link(TARGET + "#x"))))
        assert result.links_matched == 2
        assert Flag.MULTIPLE_MATCHES in result.flags
        single = verdict(fetched())
        assert (single.links_matched, Flag.MULTIPLE_MATCHES in single.flags) == (1, False)

    def test_followed_link_makes_verified_despite_nofollow_duplicate(self) -> None:
        """A followed match beats an earlier nofollow one, so the claim is verified."""
        result = verdict(fetched(page(link(rel=("nofollow",)), link(region=Region.FOOTER))))
        assert result.status is Status.VERIFIED
        assert set(result.flags) >= {Flag.BOILERPLATE, Flag.MULTIPLE_MATCHES}
        assert Flag.NOFOLLOW not in result.flags


class TestMatchModes:
    @pytest.mark.parametrize(
        ("mode", "url", "matched"),
        [
            (MatchMode.EXACT, "https://www.target.com/product", True),
            (MatchMode.EXACT, "https://www.target.com/product#reviews", True),
            (MatchMode.EXACT, "http://www.target.com/product", False),
            (MatchMode.EXACT, "https://www.target.com/product/", False),
            (MatchMode.PAGE, "http://target.com/product/", True),
            (MatchMode.PAGE, "https://WWW.TARGET.COM:443/%70roduct", True),
            (MatchMode.PAGE, "https://www.target.com/product?ref=1", False),
            (MatchMode.PAGE, "https://www.target.com/product/reviews", False),
            (MatchMode.PREFIX, "https://target.com/product/reviews", True),
            (MatchMode.PREFIX, "https://target.com/product?ref=1", True),
            (MatchMode.PREFIX, "https://target.com/products", False),
            (MatchMode.DOMAIN, "https://blog.target.com/anything", True),
            (MatchMode.DOMAIN, "http://target.com/", True),
            (MatchMode.DOMAIN, "https://nottarget.com/", False),
            (MatchMode.PAGE, "mailto:someone@target.com", False),
            (MatchMode.DOMAIN, "javascript:location='https://target.com/'", False),
        ],
    )
    def test_mode_through_the_verdict(self, mode: MatchMode, url: str, matched: bool) -> None:
        """Each match mode decides which links count, as section 4 says."""
        result = verdict(fetched(page(link(url))), match=mode)
        assert (result.status is Status.VERIFIED) is matched
        assert result.links_matched == int(matched)


class TestMissing:
    @pytest.mark.parametrize(
        ("mode", "url"),
        [
            (MatchMode.EXACT, "http://www.target.com/product"),
            (MatchMode.PAGE, "https://target.com/other"),
            (MatchMode.PREFIX, "https://shop.target.com/"),
        ],
    )
    def test_wrong_target_reports_the_other_link(self, mode: MatchMode, url: str) -> None:
        """Another link to the target's registrable domain makes missing + wrong_target, with that link."""
        other = link(url)
        result = verdict(fetched(page(link("https://elsewhere.example/"), other)), match=mode)
        assert (result.status, result.link, result.links_matched) == (Status.MISSING, other, 0)
        assert Flag.WRONG_TARGET in result.flags

    def test_wrong_target_prefers_the_best_other_link(self) -> None:
        """Of several other links to the target's site, the best by the usual order is reported."""
        links = (link("https://target.com/a", rel=("nofollow",)), link("https://target.com/b"))
        assert verdict(fetched(page(*links))).link is links[1]

    def test_no_same_site_link(self) -> None:
        """Without a link to the target's site there is no wrong_target and no link."""
        result = verdict(fetched(page(link("https://target.com.evil.example/product"))))
        assert (result.status, result.link) == (Status.MISSING, None)
        assert Flag.WRONG_TARGET not in result.flags

    @pytest.mark.parametrize(
        ("text", "target", "mentioned"),
        [
            ("see target.com for details", TARGET, True),
            ("visit www.target.com/product today", TARGET, True),
            ("visit target.com.", TARGET, True),
            ("my nottarget.com page", TARGET, False),
            ("target.company news", TARGET, False),
            ("target.com.evil.example", TARGET, False),
            ("nothing here", TARGET, False),
            ("bücher.example hat alles", "https://xn--bcher-kva.example/", True),
            ("shop at www.example.com", "https://example.com/", True),
        ],
    )
    def test_unlinked_mention(self, text: str, target: str, mentioned: bool) -> None:
        """A missing link whose target host (with or without www.) stands in the visible text is a mention."""
        result = verdict(fetched(page(link("https://elsewhere.example/"), text=text)), target_url=target)
        assert result.status is Status.MISSING
        assert (Flag.UNLINKED_MENTION in result.flags) is mentioned

    def test_mention_only_when_missing(self) -> None:
        """A page that links the target is not also an unlinked mention."""
        assert Flag.UNLINKED_MENTION not in verdict(fetched(page(link(), text="target.com"))).flags

    def test_missing_carries_no_link_flags(self) -> None:
        """The wrong-target link's own rel, anchor and region do not become flags of a missing result."""
        other = link("https://target.com/x", rel=("nofollow",), hidden=True, region=Region.NAV, text="x")
        result = verdict(fetched(page(other)), expected_anchor="Buy", expected_rel="follow")
        assert result.flags == (Flag.WRONG_TARGET,)


class TestLinkFlags:
    @pytest.mark.parametrize(
        ("expected", "text", "mismatch"),
        [
            ("Target product", "Target product", False),
            ("  target   PRODUCT ", "Target\u00a0product\n", False),
            ("STRASSE", "straße", False),
            ("Target", "Target product", True),
            ("", "anything", False),
            ("   ", "anything", False),
            (None, "anything", False),
            # NFKC: ligatures, full-width and compatibility forms are their plain letters.
            ("Office fixes", "O\ufb03ce \ufb01xes", False),
            ("Best shoes", "\uff22\uff45\uff53\uff54 shoes", False),
            ("Caf\u00e9", "Cafe\u0301", False),
            # Punctuation counts as a space, then whitespace collapses.
            ("best running-shoes!", "Best running shoes", False),
            ("Shoes & Boots", "shoes boots", False),
            ("\u201cQuoted\u201d, anchor", "quoted anchor", False),
            ("rock'n'roll", "rock n roll", False),
            ("best shoes", "best-shoes", False),
            ("bestshoes", "best shoes", True),
            ("Shoes + boots", "shoes boots", True),  # `+` is a symbol, not punctuation
            ("!!!", "...", False),
            ("!!!", "anchor", True),
        ],
    )
    def test_anchor_mismatch(self, expected: str | None, text: str, mismatch: bool) -> None:
        """Anchors compare after normalisation (NFKC, case folding, punctuation as spaces, whitespace
        collapsed); no expectation, no mismatch."""
        result = verdict(fetched(page(link(text=text))), expected_anchor=expected)
        assert (Flag.ANCHOR_MISMATCH in result.flags) is mismatch

    @pytest.mark.parametrize(
        ("expected", "rel", "mismatch"),
        [
            (ExpectedRel.FOLLOW, (), False),
            (ExpectedRel.FOLLOW, ("noopener",), False),
            (ExpectedRel.FOLLOW, ("nofollow",), True),
            (ExpectedRel.FOLLOW, ("sponsored",), True),
            (ExpectedRel.FOLLOW, ("ugc",), True),
            (ExpectedRel.NOFOLLOW, ("nofollow",), False),
            (ExpectedRel.NOFOLLOW, ("ugc", "nofollow"), False),
            (ExpectedRel.NOFOLLOW, ("sponsored",), True),
            (ExpectedRel.NOFOLLOW, (), True),
            (ExpectedRel.SPONSORED, ("sponsored", "nofollow"), False),
            (ExpectedRel.SPONSORED, ("nofollow",), True),
            (ExpectedRel.UGC, ("ugc",), False),
            (ExpectedRel.UGC, (), True),
            (None, ("nofollow",), False),
        ],
    )
    def test_rel_mismatch(self, expected: ExpectedRel | None, rel: tuple[str, ...], mismatch: bool) -> None:
        """expected_rel is checked against the best link's rel tokens as the contract defines each kind."""
        result = verdict(fetched(page(link(rel=rel))), expected_rel=expected)
        assert (Flag.REL_MISMATCH in result.flags) is mismatch

    @pytest.mark.parametrize(
        ("lk", "flags"),
        [
            (link(rel=("nofollow",)), {Flag.NOFOLLOW}),
            (link(rel=("sponsored", "ugc")), {Flag.SPONSORED, Flag.UGC}),
            (link(hidden=True), {Flag.HIDDEN}),
            (link(region=Region.NAV), {Flag.BOILERPLATE}),
            (link(region=Region.COMMENTS), {Flag.BOILERPLATE}),
            (link(beyond=True), {Flag.BEYOND_INDEX_LIMIT}),
            (link(), set()),
        ],
    )
    def test_flags_of_the_best_link(self, lk: Link, flags: set[Flag]) -> None:
        """rel, hidden, region and position of the reported link become flags."""
        assert set(verdict(fetched(page(lk))).flags) == flags

    def test_hidden_boilerplate_link_still_verified(self) -> None:
        """Hidden or boilerplate placement is a flag, not a different status."""
        result = verdict(fetched(page(link(hidden=True, region=Region.FOOTER))))
        assert (result.status, result.flags) == (Status.VERIFIED, (Flag.HIDDEN, Flag.BOILERPLATE))


class TestPageFlags:
    @pytest.mark.parametrize(
        ("got", "flag"),
        [
            (fetched(page(link(), meta=(("robots", "nofollow"),))), Flag.PAGE_NOFOLLOW),
            (fetched(page(link(), meta=(("robots", "none"),))), Flag.PAGE_NOFOLLOW),
            (fetched(page(link(), meta=(("robots", "none"),))), Flag.NOINDEX),
            (fetched(headers=xrt("noindex")), Flag.NOINDEX),
            (fetched(robots_index_allowed=False), Flag.ROBOTS_INDEX_DISALLOWED),
            (fetched(page(link(), canonical="https://news.example.org/")), Flag.CANONICAL_ELSEWHERE),
            (fetched(headers=xrt("unavailable_after: 1 Jan 2020 00:00:00 GMT")), Flag.EXPIRED),
            (
                fetched(final_url="https://news.example.org/new", redirects=(Redirect(SOURCE, 301),)),
                Flag.SOURCE_REDIRECTED,
            ),
            (
                fetched(final_url="https://amp.example.org/a", redirects=(Redirect(SOURCE, 302),)),
                Flag.CROSS_HOST_REDIRECT,
            ),
            (
                fetched(final_url="https://news.example.org/new", redirects=(Redirect(SOURCE, None),)),
                Flag.META_REFRESH,
            ),
            (fetched(truncated=True), Flag.TRUNCATED),
            (fetched(crawl_delay_capped=True), Flag.CRAWL_DELAY_CAPPED),
            (fetched(page(link(), challenge=True)), Flag.BOT_CHALLENGE),
            (fetched(page(link(), challenge=True), status=403), Flag.BOT_CHALLENGE),
            (fetched(page(link(), challenge=True), status=503, truncated=True), Flag.TRUNCATED),
        ],
    )
    def test_flag_is_set(self, got: Fetched, flag: Flag) -> None:
        """Each page and fetch fact of section 3 becomes its flag."""
        assert flag in verdict(got).flags

    @pytest.mark.parametrize(
        ("final_url", "flags"),
        [
            ("http://www.news.example.org/article/", {Flag.CROSS_HOST_REDIRECT}),
            ("https://news.example.org/article#x", set()),
            ("https://news.example.org/moved", {Flag.SOURCE_REDIRECTED}),
            ("https://other.example/article", {Flag.SOURCE_REDIRECTED, Flag.CROSS_HOST_REDIRECT}),
        ],
    )
    def test_redirect_flags(self, final_url: str, flags: set[Flag]) -> None:
        """source_redirected compares pages (normalised), cross_host_redirect compares host names."""
        got = fetched(final_url=final_url, redirects=(Redirect(SOURCE, 301),))
        assert set(verdict(got).flags) == flags

    def test_bot_challenge_keeps_the_usual_status(self) -> None:
        """A challenge page is decided by the usual rules and flagged as inconclusive."""
        result = verdict(fetched(page(challenge=True), status=403))
        assert (result.status, result.reason, result.flags) == (
            Status.PAGE_ERROR,
            "http_403",
            (Flag.BOT_CHALLENGE,),
        )
        missing = verdict(fetched(page(challenge=True)))
        assert (missing.status, missing.flags) == (Status.MISSING, (Flag.BOT_CHALLENGE,))

    def test_flags_by_status(self) -> None:
        """Blocked carries hops only, unreachable adds the capped delay, page errors add response facts."""
        hops = {"final_url": "https://other.example/x", "redirects": (Redirect(SOURCE, None),)}
        everything = {"truncated": True, "crawl_delay_capped": True, "robots_index_allowed": False} | hops
        noindex_page = page(link(), meta=(("robots", "noindex"),), challenge=True)
        redirect_flags = {Flag.SOURCE_REDIRECTED, Flag.CROSS_HOST_REDIRECT, Flag.META_REFRESH}
        blocked = verdict(fetched(noindex_page, reason="robots_disallowed", status=None, **everything))
        assert set(blocked.flags) == redirect_flags
        unreachable = verdict(fetched(noindex_page, reason="timeout", status=None, **everything))
        assert set(unreachable.flags) == redirect_flags | {Flag.CRAWL_DELAY_CAPPED}
        error = verdict(fetched(noindex_page, status=500, **everything))
        response_flags = {Flag.TRUNCATED, Flag.CRAWL_DELAY_CAPPED, Flag.BOT_CHALLENGE}
        assert set(error.flags) == redirect_flags | response_flags

    def test_not_html_carries_header_indexing_flags(self) -> None:
        """A 2xx non-HTML response is a page error, but its X-Robots-Tag still decides indexable and flags."""
        result = verdict(Fetched(url=SOURCE, status=200, final_url=SOURCE, headers=xrt("noindex")))
        assert (result.status, result.reason, result.indexable) == (Status.PAGE_ERROR, "not_html", False)
        assert result.flags == (Flag.NOINDEX,)
        plain = verdict(Fetched(url=SOURCE, status=200, final_url=SOURCE))
        assert (plain.indexable, plain.flags) == (True, ())

    def test_flags_in_enum_order_without_repeats(self) -> None:
        """Many flags at once come out once each, in the order of the Flag enum."""
        worst = link(rel=("ugc", "nofollow", "UGC"), hidden=True, region=Region.ASIDE, beyond=True)
        got = fetched(
            page(
                worst,
                worst,
                meta=(("robots", "none"), ("googlebot", "noindex, nofollow")),
                canonical="https://elsewhere.example/",
                challenge=True,
            ),
            headers=xrt("noindex", "unavailable_after: 2001-01-01"),
            robots_index_allowed=False,
            final_url="https://other.example/",
            redirects=(Redirect(SOURCE, 301), Redirect("https://mid.example/", None)),
            truncated=True,
            crawl_delay_capped=True,
        )
        result = verdict(got, expected_anchor="nope", expected_rel="sponsored")
        assert result.status is Status.NOT_INDEXABLE
        expected = [
            flag
            for flag in Flag
            if flag
            not in (
                Flag.SPONSORED,
                Flag.WRONG_TARGET,
                Flag.UNLINKED_MENTION,
                Flag.JS_RENDERED,  # set by the renderer, not the verdict
                Flag.RENDER_FAILED,
            )
        ]
        assert list(result.flags) == expected


class TestIndexable:
    @pytest.mark.parametrize(
        ("got", "indexable"),
        [
            (fetched(reason="robots_disallowed", status=None), None),
            (fetched(reason="timeout", status=None), None),
            (fetched(reason="too_many_redirects", status=None), False),
            (fetched(reason="too_many_redirects", status=302), False),
            (fetched(status=404), False),
            (fetched(page(link()), status=410, robots_index_allowed=True), False),
            (fetched(), True),
            (fetched(page(link("https://elsewhere.example/"))), True),
            (fetched(page(link("https://elsewhere.example/"), meta=(("robots", "noindex"),))), False),
            (fetched(robots_index_allowed=False), False),
            (fetched(page(link(rel=("nofollow",)))), True),
        ],
    )
    def test_indexable(self, got: Fetched, indexable: bool | None) -> None:
        """indexable is None without a response, False for errors, else the contract's rule."""
        assert verdict(got).indexable is indexable


class TestFields:
    def test_fetched_fields_copied(self) -> None:
        """Every fact of the fetch lands in the result unchanged."""
        hops = (Redirect("http://news.example.org/article", 301), Redirect(SOURCE, None))
        pg = page(link(), link("https://a.example/"), link("https://b.example/"))
        got = fetched(
            pg,
            status=200,
            final_url=SOURCE + "?amp",
            redirects=hops,
            content_type="text/html; charset=utf-8",
            encoding="utf-8",
            bytes=12345,
            elapsed_ms=678,
            attempts=2,
            robots_crawler_allowed=True,
            robots_index_allowed=None,
        )
        result = verdict(got, id="claim-7", tags={"vendor": "acme"})
        assert (result.claim_id, result.source_url, result.target_url) == ("claim-7", SOURCE, TARGET)
        assert (result.tags, result.run_id, result.checked_at) == (
            {"vendor": "acme"},
            "run-1",
            "2026-11-21T19:30:00Z",
        )
        assert (result.http_status, result.final_url, result.redirects) == (200, SOURCE + "?amp", hops)
        assert (result.content_type, result.encoding) == ("text/html; charset=utf-8", "utf-8")
        assert (result.bytes, result.elapsed_ms, result.attempts) == (12345, 678, 2)
        assert (result.robots_crawler_allowed, result.robots_index_allowed) == (True, None)
        assert (result.outbound_links, result.links_matched, result.link) == (3, 1, pg.links[0])

    @pytest.mark.parametrize(
        "now",
        [
            datetime(2026, 11, 21, 19, 30, 0, 999999, tzinfo=UTC),
            datetime(2026, 11, 22, 4, 30, tzinfo=timezone(timedelta(hours=9))),
            datetime(2026, 11, 21, 19, 30),
        ],
    )
    def test_checked_at_is_utc(self, now: datetime) -> None:
        """checked_at is `now` in UTC to the second with a Z, whatever zone `now` came in."""
        claim = Claim(source_url=SOURCE, target_url=TARGET)
        assert decide(claim, fetched(), run_id="r", now=now).checked_at == "2026-11-21T19:30:00Z"

    def test_invalid(self) -> None:
        """An unusable row becomes an invalid result with its reason, tags and nothing fetched."""
        item = InvalidClaim(
            id="row-3",
            source_url="ftp://x",
            target_url="",
            reason="row 3: target_url: missing",
            tags={"a": "b"},
        )
        result = invalid(item, run_id="run-9", now=NOW)
        assert result == Result(
            claim_id="row-3",
            source_url="ftp://x",
            target_url="",
            tags={"a": "b"},
            run_id="run-9",
            checked_at="2026-11-21T19:30:00Z",
            status=Status.INVALID,
            reason="row 3: target_url: missing",
        )

    def test_result_round_trips(self) -> None:
        """A decided result survives its own output format."""
        result = verdict(fetched(page(link(rel=("nofollow",))), headers=xrt("noarchive")))
        assert Result.from_dict(result.to_dict()) == result


class TestParsedPages:
    """The verdict over pages parsed by the extractor, as the pipeline runs them."""

    @pytest.mark.parametrize(
        ("html", "status", "flags"),
        [
            ('<a href="//www.target.com/product/">Target product</a>', Status.VERIFIED, ()),
            ('<a href="/x">x</a> <p>We love Target.com!</p>', Status.MISSING, (Flag.UNLINKED_MENTION,)),
            (
                '<a rel="ugc,nofollow" href="https://target.com/product">T</a>',
                Status.NOFOLLOW,
                (Flag.NOFOLLOW, Flag.UGC),
            ),
            (
                '<body><a href="https://target.com/product">T</a><meta name="GoogleBot" content="NoIndex">',
                Status.NOT_INDEXABLE,
                (Flag.NOINDEX,),
            ),
            (
                '<meta name=robots content="unavailable_after: Friday, 25-Jun-10 15:00:00 GMT, follow">'
                '<a href="https://target.com/product">T</a>',
                Status.NOT_INDEXABLE,
                (Flag.EXPIRED,),
            ),
            (
                '<link rel=canonical href="/article/"><nav><a href="https://target.com/product">T</a></nav>',
                Status.VERIFIED,
                (Flag.BOILERPLATE,),
            ),
            (
                '<link rel=canonical href="/print"><a href="https://target.com/product">T</a>',
                Status.NOT_INDEXABLE,
                (Flag.CANONICAL_ELSEWHERE,),
            ),
            ('<a href="https://target.com/other">T</a>', Status.MISSING, (Flag.WRONG_TARGET,)),
        ],
    )
    def test_parsed_html(self, html: str, status: Status, flags: tuple[Flag, ...]) -> None:
        """Real markup goes through parse_page and decide to the status and flags the contract gives."""
        got = fetched(parse_page(html, SOURCE))
        result = verdict(got)
        assert (result.status, result.flags) == (status, flags)


URLS = st.sampled_from(
    [
        TARGET,
        TARGET + "#frag",
        "http://target.com/product/",
        "https://target.com/product/more",
        "https://blog.target.com/",
        "https://elsewhere.example/",
        SOURCE,
        "https://news.example.org/other",
        "mailto:a@target.com",
        "javascript:void(0)",
        "",
        "http://[::1",
        "https://xn--bcher-kva.example/",
    ]
)
VALID_URLS = st.sampled_from([TARGET, SOURCE, "http://target.com/", "https://elsewhere.example/x?y=1"])
TOKENS = st.sampled_from(["nofollow", "sponsored", "ugc", "noopener", "NOFOLLOW", "", "x"])
DIRECTIVE_TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(
        st.sampled_from(
            [
                "noindex",
                "nofollow",
                "none",
                "index",
                "googlebot: noindex",
                "otherbot: nofollow",
                "unavailable_after: Friday, 25-Jun-10 15:00:00 GMT",
                "unavailable_after: 2099-01-01",
                "unavailable_after: garbage",
                "max-snippet: -1",
            ]
        ),
        max_size=4,
    ).map(", ".join),
)
LINKS = st.builds(
    Link,
    href=st.text(max_size=10),
    url=URLS,
    text=st.text(max_size=20),
    rel=st.lists(TOKENS, max_size=3).map(tuple),
    hidden=st.booleans(),
    region=st.sampled_from(Region),
    beyond_index_limit=st.booleans(),
)
PAGES = st.builds(
    Page,
    url=VALID_URLS,
    base_url=VALID_URLS,
    links=st.lists(LINKS, max_size=6).map(tuple),
    meta_robots=st.lists(
        st.tuples(st.sampled_from(["robots", "googlebot", "bingbot"]), DIRECTIVE_TEXT), max_size=3
    ).map(tuple),
    canonical=st.none() | URLS,
    refresh_url=st.none() | URLS,
    visible_text=st.text(max_size=30) | st.just("see www.target.com"),
    bot_challenge=st.booleans(),
    outbound_links=st.integers(0, 100),
)
HEADERS = st.lists(
    st.tuples(
        st.sampled_from(["x-robots-tag", "link", "content-type"]),
        DIRECTIVE_TEXT | st.just("</x>; rel=canonical"),
    ),
    max_size=4,
).map(tuple)
ANY_FETCH = st.builds(
    Fetched,
    url=VALID_URLS,
    reason=st.none()
    | st.sampled_from(
        [
            "robots_disallowed",
            "robots_unavailable",
            "forbidden_address",
            "timeout",
            "too_many_redirects",
            "weird",
        ]
    ),
    status=st.none() | st.sampled_from([200, 204, 301, 403, 404, 500, 503]) | st.integers(-5, 1000),
    final_url=st.none() | URLS,
    redirects=st.lists(
        st.builds(Redirect, url=URLS, status=st.none() | st.integers(300, 399)), max_size=3
    ).map(tuple),
    headers=HEADERS,
    truncated=st.booleans(),
    crawl_delay_capped=st.booleans(),
    robots_crawler_allowed=st.none() | st.booleans(),
    robots_index_allowed=st.none() | st.booleans(),
    page=st.none() | PAGES,
)
# Most arbitrary fetches stop early (blocked, unreachable, page_error); half of the examples are
# parsed 2xx pages so the link rules get exercised as much.
FETCHED = st.one_of(
    ANY_FETCH,
    st.builds(
        replace,
        ANY_FETCH,
        reason=st.none(),
        status=st.sampled_from([200, 203, 299]),
        page=PAGES,
        robots_index_allowed=st.sampled_from([True, True, None, False]),
    ),
)
CLAIMS = st.builds(
    Claim,
    source_url=VALID_URLS,
    target_url=st.sampled_from(
        [TARGET, TARGET, "http://target.com/", "https://xn--bcher-kva.example/", SOURCE]
    ),
    expected_anchor=st.none() | st.text(max_size=10),
    expected_rel=st.none() | st.sampled_from(ExpectedRel),
    match=st.sampled_from(MatchMode),
)


class TestProperties:
    @settings(max_examples=400, deadline=None)
    @given(CLAIMS, FETCHED, st.sampled_from(["Googlebot", "bingbot", "otherbot"]))
    def test_decide_never_raises(self, claim: Claim, got: Fetched, agent: str) -> None:
        """Any claim and fetch give exactly one status, with consistent flags, link and indexability."""
        result = decide(claim, got, run_id="r", now=NOW, index_agent=agent)
        assert isinstance(result.status, Status)
        assert result.status is not Status.INVALID
        assert list(result.flags) == [flag for flag in Flag if flag in result.flags]
        matched = result.status in (Status.NOT_INDEXABLE, Status.NOFOLLOW, Status.VERIFIED)
        assert (result.links_matched > 0) is matched
        assert (result.indexable is None) is (result.status in (Status.BLOCKED, Status.UNREACHABLE))
        assert (Flag.WRONG_TARGET in result.flags) is (
            result.status is Status.MISSING and result.link is not None
        )
        if result.status is Status.VERIFIED:
            assert result.indexable
            assert result.link is not None
            assert not {token.lower() for token in result.link.rel} & {"nofollow", "sponsored", "ugc"}
        if result.status is Status.NOFOLLOW:
            assert result.indexable is True
            assert {Flag.NOFOLLOW, Flag.SPONSORED, Flag.UGC, Flag.PAGE_NOFOLLOW} & set(result.flags)
        if result.status is Status.NOT_INDEXABLE:
            assert result.indexable is False
        if got.reason in ("robots_disallowed", "robots_unavailable", "forbidden_address"):
            assert result.status is Status.BLOCKED
