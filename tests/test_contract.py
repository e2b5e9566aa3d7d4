"""Contract, section 3: every status with its reason, in precedence order; every flag; the best match.

Each test serves a small site on loopback and verifies claims through `import crawler`.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme
from contract import TARGET, closed_port, html, judge, link_of, linked, settings, verify_all
from servers import Servers, redirect, respond

import crawler
from crawler import Flag, Status

ROBOTS = "/robots.txt"


class TestStatuses:
    async def test_invalid_claim_row(self) -> None:
        """An unusable input row gives status `invalid` with its reason, and the run goes on."""
        bad = crawler.InvalidClaim("bad", "", TARGET, "row 3: source_url: missing")
        results = await verify_all([bad])
        assert results["bad"].status is Status.INVALID
        assert results["bad"].reason == "row 3: source_url: missing"

    async def test_verified(self, servers: Servers) -> None:
        """A followed link on an indexable page is `verified`, with no reason and indexable true."""
        result, _ = await judge(servers, {"/": respond(linked())})
        assert (result.status, result.reason, result.indexable) == (Status.VERIFIED, None, True)
        assert result.http_status == 200

    async def test_missing(self, servers: Servers) -> None:
        """A parsed page without a link to the target is `missing`, links_matched 0, link null."""
        result, _ = await judge(servers, {"/": respond(html("<p>nothing here</p>"))})
        assert (result.status, result.reason, result.link, result.links_matched) == (
            Status.MISSING,
            None,
            None,
            0,
        )

    @pytest.mark.parametrize("rel", ["nofollow", "sponsored", "ugc"])
    async def test_nofollow_by_rel(self, servers: Servers, rel: str) -> None:
        """A matched link carrying nofollow, sponsored or ugc is `nofollow` and flagged with its rel."""
        result, _ = await judge(servers, {"/": respond(linked(f'rel="{rel}"'))})
        assert result.status is Status.NOFOLLOW
        assert Flag(rel) in result.flags

    async def test_nofollow_by_page(self, servers: Servers) -> None:
        """A page-wide meta nofollow makes a followed link `nofollow`, flagged page_nofollow."""
        page = respond(linked().replace("<title>", '<meta name="robots" content="nofollow"><title>'))
        result, _ = await judge(servers, {"/": page})
        assert result.status is Status.NOFOLLOW
        assert Flag.PAGE_NOFOLLOW in result.flags
        assert result.indexable is True

    async def test_not_indexable(self, servers: Servers) -> None:
        """A matched link on a noindex page is `not_indexable` with indexable false."""
        page = respond(linked(), headers={"X-Robots-Tag": "noindex"})
        result, _ = await judge(servers, {"/": page})
        assert (result.status, result.indexable) == (Status.NOT_INDEXABLE, False)

    @pytest.mark.parametrize("status", [404, 410, 500])
    async def test_page_error_http_status(self, servers: Servers, status: int) -> None:
        """A non-2xx final response is `page_error` with reason http_NNN, even when it carries the link."""
        result, _ = await judge(servers, {"/": respond(linked(), status=status)})
        assert (result.status, result.reason, result.http_status) == (
            Status.PAGE_ERROR,
            f"http_{status}",
            status,
        )
        assert result.link is None

    async def test_page_error_not_html(self, servers: Servers) -> None:
        """A body that is neither HTML nor XHTML is `page_error` with reason not_html."""
        png = b"\x89PNG\r\n\x1a\n" + TARGET.encode()
        result, _ = await judge(servers, {"/": respond(png, content_type="image/png")})
        assert (result.status, result.reason) == (Status.PAGE_ERROR, "not_html")

    async def test_xhtml_is_a_page(self, servers: Servers) -> None:
        """An application/xhtml+xml page is parsed like HTML."""
        body = f'<html xmlns="http://www.w3.org/1999/xhtml"><body><a href="{TARGET}">x</a></body></html>'
        result, _ = await judge(servers, {"/": respond(body, content_type="application/xhtml+xml")})
        assert result.status is Status.VERIFIED

    async def test_page_error_redirect_loop(self, servers: Servers) -> None:
        """A redirect loop is `page_error` with reason too_many_redirects."""
        result, _ = await judge(servers, {"/a": redirect("/b"), "/b": redirect("/a")}, "/a")
        assert (result.status, result.reason) == (Status.PAGE_ERROR, "too_many_redirects")

    async def test_page_error_too_many_hops(self, servers: Servers) -> None:
        """More hops than max_redirects is `page_error` too_many_redirects; max_redirects hops pass."""
        routes = {f"/{n}": redirect(f"/{n + 1}") for n in range(3)} | {"/3": respond(linked())}
        over, _ = await judge(servers, routes, "/0", config=settings(max_redirects=2))
        assert (over.status, over.reason) == (Status.PAGE_ERROR, "too_many_redirects")
        within, _ = await judge(servers, routes, "/0", host="127.0.0.3", config=settings(max_redirects=3))
        assert within.status is Status.VERIFIED
        assert len(within.redirects) == 3

    async def test_blocked_robots_disallowed(self, servers: Servers) -> None:
        """robots.txt disallowing our crawler blocks the page (robots_disallowed) without fetching it."""
        routes = {
            ROBOTS: respond("User-agent: *\nDisallow: /\n", content_type="text/plain"),
            "/": respond(linked()),
        }
        result, site = await judge(servers, routes)
        assert (result.status, result.reason) == (Status.BLOCKED, "robots_disallowed")
        assert result.robots_crawler_allowed is False
        assert site.log.count("/") == 0

    @pytest.mark.parametrize("status", [500, 503, 429])
    async def test_blocked_robots_unavailable(self, servers: Servers, status: int) -> None:
        """robots.txt answering 5xx or 429 means complete disallow: blocked, robots_unavailable."""
        routes = {ROBOTS: respond("oops", status=status, content_type="text/plain"), "/": respond(linked())}
        result, site = await judge(servers, routes)
        assert (result.status, result.reason) == (Status.BLOCKED, "robots_unavailable")
        assert site.log.count("/") == 0

    async def test_blocked_robots_timeout(self, servers: Servers) -> None:
        """robots.txt timing out after retries means complete disallow: blocked, robots_unavailable."""
        routes = {ROBOTS: respond("User-agent: *\nAllow: /\n", delay=5), "/": respond(linked())}
        result, _ = await judge(servers, routes, config=settings(timeout=0.3, retries=1))
        assert (result.status, result.reason) == (Status.BLOCKED, "robots_unavailable")

    async def test_blocked_forbidden_address_by_default(self, servers: Servers) -> None:
        """With default settings a loopback literal is never requested: blocked, forbidden_address."""
        result, site = await judge(servers, {"/": respond(linked())}, config=crawler.Settings())
        assert (result.status, result.reason) == (Status.BLOCKED, "forbidden_address")
        assert result.indexable is None
        assert site.log.count() == 0

    async def test_unreachable_dns_error(self) -> None:
        """A name that does not resolve (.invalid) is `unreachable`, dns_error, not blocked."""
        results = await verify_all([crawler.Claim("http://nowhere.invalid/page", TARGET, id="x")])
        assert (results["x"].status, results["x"].reason) == (Status.UNREACHABLE, "dns_error")
        assert results["x"].http_status is None

    async def test_unreachable_connection_refused(self) -> None:
        """A refused connection is `unreachable`, connection_error, not blocked."""
        source = f"http://127.0.0.2:{closed_port('127.0.0.2')}/"
        results = await verify_all([crawler.Claim(source, TARGET, id="x")])
        assert (results["x"].status, results["x"].reason) == (Status.UNREACHABLE, "connection_error")

    async def test_unreachable_timeout(self, servers: Servers) -> None:
        """A page that doesn't answer within `timeout` is `unreachable`, reason timeout."""
        routes = {"/": respond(linked(), delay=5)}
        result, _ = await judge(servers, routes, config=settings(timeout=0.3))
        assert (result.status, result.reason) == (Status.UNREACHABLE, "timeout")

    async def test_unreachable_tls_error(self, servers: Servers) -> None:
        """A certificate that doesn't verify is `unreachable`, tls_error (verify_tls=false accepts it)."""
        authority = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.2").configure_cert(context)
        site = await servers.app({"/": respond(linked())}, host="127.0.0.2", tls=context)
        claim = crawler.Claim(site.url("/"), TARGET, id="x")
        strict, lenient = await verify_all([claim]), await verify_all([claim], settings(verify_tls=False))
        assert (strict["x"].status, strict["x"].reason) == (Status.UNREACHABLE, "tls_error")
        assert lenient["x"].status is Status.VERIFIED

    async def test_ipv6_loopback(self, servers: Servers) -> None:
        """An IPv6 literal source works like any other (and is a forbidden address by default)."""
        site = await servers.app({"/": respond(linked())}, host="::1")
        claim = crawler.Claim(site.url("/"), TARGET, id="x")
        assert (await verify_all([claim]))["x"].status is Status.VERIFIED
        guarded = (await verify_all([claim], crawler.Settings()))["x"]
        assert (guarded.status, guarded.reason) == (Status.BLOCKED, "forbidden_address")

    async def test_unreachable_reset(self, servers: Servers) -> None:
        """A server that closes the connection without answering is `unreachable`."""

        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.transport.abort()

        site = await servers.raw(hang_up, host="127.0.0.2")
        results = await verify_all([crawler.Claim(site.url("/"), TARGET, id="x")])
        assert (results["x"].status, results["x"].reason) == (Status.UNREACHABLE, "connection_error")


class TestPrecedence:
    async def test_blocked_before_page_error(self, servers: Servers) -> None:
        """A disallowed page that would 404 is `blocked`: robots is decided before any fetch."""
        routes = {ROBOTS: respond("User-agent: *\nDisallow: /x\n", content_type="text/plain")}
        result, _ = await judge(servers, routes | {"/x": respond("gone", status=404)}, "/x")
        assert result.status is Status.BLOCKED

    async def test_page_error_before_missing(self, servers: Servers) -> None:
        """A 404 page without the link is `page_error`, not `missing`."""
        result, _ = await judge(servers, {"/": respond(html("nothing"), status=404)})
        assert result.status is Status.PAGE_ERROR

    async def test_missing_before_not_indexable(self, servers: Servers) -> None:
        """A noindex page without the link is `missing` (and still says noindex)."""
        page = respond(html("no link"), headers={"X-Robots-Tag": "noindex"})
        result, _ = await judge(servers, {"/": page})
        assert result.status is Status.MISSING
        assert Flag.NOINDEX in result.flags

    async def test_not_indexable_before_nofollow(self, servers: Servers) -> None:
        """A nofollow link on a noindex page is `not_indexable`."""
        page = respond(linked('rel="nofollow"'), headers={"X-Robots-Tag": "noindex"})
        result, _ = await judge(servers, {"/": page})
        assert result.status is Status.NOT_INDEXABLE
        assert {Flag.NOFOLLOW, Flag.NOINDEX} <= set(result.flags)


class TestNotIndexable:
    async def test_robots_disallows_index_agent(self, servers: Servers) -> None:
        """robots.txt disallowing Googlebot (but not us) makes the page not_indexable."""
        robots = "User-agent: Googlebot\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
        routes = {ROBOTS: respond(robots, content_type="text/plain"), "/": respond(linked())}
        result, _ = await judge(servers, routes)
        assert result.status is Status.NOT_INDEXABLE
        assert (result.robots_crawler_allowed, result.robots_index_allowed) == (True, False)
        assert Flag.ROBOTS_INDEX_DISALLOWED in result.flags

    @pytest.mark.parametrize(
        ("meta", "flags"),
        [
            ("noindex", {Flag.NOINDEX}),
            ("none", {Flag.NOINDEX, Flag.PAGE_NOFOLLOW}),
            ("unavailable_after: 2001-01-01", {Flag.EXPIRED}),
        ],
    )
    async def test_meta_directives(self, servers: Servers, meta: str, flags: set[Flag]) -> None:
        """noindex, none and a past unavailable_after make a matched link not_indexable, flagged."""
        page = linked().replace("<title>", f'<meta name="robots" content="{meta}"><title>')
        result, _ = await judge(servers, {"/": respond(page)})
        assert result.status is Status.NOT_INDEXABLE
        assert flags <= set(result.flags)

    async def test_canonical_elsewhere(self, servers: Servers) -> None:
        """A canonical naming another page makes it not_indexable, flagged canonical_elsewhere."""
        page = linked().replace("<title>", '<link rel="canonical" href="/other"><title>')
        result, site = await judge(servers, {"/": respond(page)})
        assert result.status is Status.NOT_INDEXABLE
        assert result.canonical_url == site.url("/other")
        assert Flag.CANONICAL_ELSEWHERE in result.flags


class TestFlags:
    async def test_source_redirected_same_host(self, servers: Servers) -> None:
        """A redirect to another page of the same host flags source_redirected only."""
        result, site = await judge(servers, {"/old": redirect("/new"), "/new": respond(linked())}, "/old")
        assert result.status is Status.VERIFIED
        assert Flag.SOURCE_REDIRECTED in result.flags
        assert Flag.CROSS_HOST_REDIRECT not in result.flags
        assert result.final_url == site.url("/new")

    async def test_cross_host_redirect(self, servers: Servers) -> None:
        """A redirect to another host flags source_redirected and cross_host_redirect."""
        other = await servers.app({"/": respond(linked())}, host="127.0.0.3")
        result, _ = await judge(servers, {"/": redirect(other.url("/"))})
        assert result.status is Status.VERIFIED
        assert {Flag.SOURCE_REDIRECTED, Flag.CROSS_HOST_REDIRECT} <= set(result.flags)

    async def test_anchor_mismatch(self, servers: Servers) -> None:
        """An expected anchor differing from the link text flags anchor_mismatch; the status stays."""
        result, _ = await judge(
            servers, {"/": respond(linked(text="Other words"))}, expected_anchor="cheap shoes"
        )
        assert result.status is Status.VERIFIED
        assert Flag.ANCHOR_MISMATCH in result.flags

    async def test_anchor_compared_collapsed_and_folded(self, servers: Servers) -> None:
        """Anchors are compared after whitespace collapsing and case folding."""
        page = respond(linked(text="  Straße\n  SHOES "))
        result, _ = await judge(servers, {"/": page}, expected_anchor="strasse shoes")
        assert Flag.ANCHOR_MISMATCH not in result.flags

    @pytest.mark.parametrize(
        ("rel", "expected", "mismatch"),
        [
            ("nofollow", "follow", True),
            ("", "sponsored", True),
            ("sponsored", "sponsored", False),
            ("", "follow", False),
            ("ugc nofollow", "ugc", False),
        ],
    )
    async def test_rel_mismatch(self, servers: Servers, rel: str, expected: str, mismatch: bool) -> None:
        """rel_mismatch says whether the link's rel is what expected_rel paid for."""
        result, _ = await judge(servers, {"/": respond(linked(f'rel="{rel}"'))}, expected_rel=expected)
        assert (Flag.REL_MISMATCH in result.flags) is mismatch

    async def test_hidden(self, servers: Servers) -> None:
        """A link inside a display:none element is flagged hidden and reported hidden."""
        page = html(f'<main><div style="display: none"><a href="{TARGET}">x</a></div></main>')
        result, _ = await judge(servers, {"/": respond(page)})
        assert Flag.HIDDEN in result.flags
        assert link_of(result).hidden

    async def test_boilerplate(self, servers: Servers) -> None:
        """A link in the footer is flagged boilerplate, its region footer."""
        page = html(f'<main>text</main><footer><a href="{TARGET}">x</a></footer>')
        result, _ = await judge(servers, {"/": respond(page)})
        assert Flag.BOILERPLATE in result.flags
        assert link_of(result).region is crawler.Region.FOOTER

    async def test_multiple_matches(self, servers: Servers) -> None:
        """Two links to the target flag multiple_matches and count in links_matched."""
        page = html(f'<a href="{TARGET}">one</a> <a href="{TARGET}#x">two</a> <a href="/other">no</a>')
        result, _ = await judge(servers, {"/": respond(page)})
        assert Flag.MULTIPLE_MATCHES in result.flags
        assert result.links_matched == 2

    async def test_truncated(self, servers: Servers) -> None:
        """A body longer than max_bytes is cut, flagged truncated, and parsed as far as read."""
        page = linked() + "<!--" + "x" * 50_000 + "-->"
        result, _ = await judge(servers, {"/": respond(page)}, config=settings(max_bytes=10_000))
        assert result.status is Status.VERIFIED
        assert Flag.TRUNCATED in result.flags
        assert result.bytes == 10_000

    async def test_crawl_delay_capped(self, servers: Servers) -> None:
        """A Crawl-delay above max_crawl_delay is capped (the wait is the cap) and flagged."""
        robots = respond("User-agent: *\nCrawl-delay: 60\n", content_type="text/plain")
        config = settings(max_crawl_delay=0.2)
        result, site = await judge(servers, {ROBOTS: robots, "/": respond(linked())}, config=config)
        assert Flag.CRAWL_DELAY_CAPPED in result.flags
        (robots_at,), (page_at,) = site.log.starts(ROBOTS), site.log.starts("/")
        assert 0.15 <= page_at - robots_at < 5

    async def test_beyond_index_limit(self, servers: Servers) -> None:
        """A link starting after the first 2 MB of the decoded page is flagged beyond_index_limit."""
        filler = "<p>" + "words " * 400_000 + "</p>"
        result, _ = await judge(servers, {"/": respond(html(filler + f'<a href="{TARGET}">x</a>'))})
        assert result.status is Status.VERIFIED
        assert Flag.BEYOND_INDEX_LIMIT in result.flags

    async def test_not_beyond_index_limit_early_link(self, servers: Servers) -> None:
        """A link before the 2 MB mark of a long page is not flagged beyond_index_limit."""
        filler = "<p>" + "words " * 400_000 + "</p>"
        result, _ = await judge(servers, {"/": respond(html(f'<a href="{TARGET}">x</a>' + filler))})
        assert Flag.BEYOND_INDEX_LIMIT not in result.flags

    async def test_wrong_target(self, servers: Servers) -> None:
        """No link to the target but one to another page of its site: wrong_target, that link reported."""
        page = html('<a href="http://www.target.test/elsewhere">x</a>')
        result, _ = await judge(servers, {"/": respond(page)})
        assert result.status is Status.MISSING
        assert Flag.WRONG_TARGET in result.flags
        assert link_of(result).url == "http://www.target.test/elsewhere"

    async def test_unlinked_mention(self, servers: Servers) -> None:
        """No link but the target's host in the visible text: missing, unlinked_mention."""
        result, _ = await judge(servers, {"/": respond(html("<p>Visit target.test for more.</p>"))})
        assert result.status is Status.MISSING
        assert Flag.UNLINKED_MENTION in result.flags

    async def test_bot_challenge(self, servers: Servers) -> None:
        """A 403 Cloudflare challenge page is flagged bot_challenge (an inconclusive page_error)."""
        page = '<html><head><title>Just a moment...</title></head><body><div id="cf-chl-widget"></div>'
        result, _ = await judge(servers, {"/": respond(page, status=403)})
        assert (result.status, result.reason) == (Status.PAGE_ERROR, "http_403")
        assert Flag.BOT_CHALLENGE in result.flags

    @pytest.mark.parametrize(
        ("status", "headers", "body"),
        [
            (503, {"cf-mitigated": "challenge"}, "<p>Checking your browser before accessing the site.</p>"),
            (403, {}, "<h1>Are you a robot?</h1><p>Please complete the CAPTCHA to continue.</p>"),
            (429, {}, "<h1>Please verify you are a human</h1>"),
        ],
    )
    async def test_bot_challenge_without_vendor_marker(
        self, servers: Servers, status: int, headers: dict[str, str], body: str
    ) -> None:
        """A refusal asking the reader to prove being human (or Cloudflare's challenge header) is flagged."""
        page = respond(html(body), status=status, headers=headers)
        result, _ = await judge(servers, {"/": page}, config=settings(obey_robots=False))
        assert result.status is Status.PAGE_ERROR
        assert Flag.BOT_CHALLENGE in result.flags

    async def test_meta_refresh(self, servers: Servers) -> None:
        """An instant meta refresh is followed: flagged, listed in redirects with status null."""
        start = html("", head='<meta http-equiv="refresh" content="0; url=/dest">')
        routes = {"/start": respond(start), "/dest": respond(linked())}
        result, site = await judge(servers, routes, "/start")
        assert result.status is Status.VERIFIED
        assert Flag.META_REFRESH in result.flags
        assert result.final_url == site.url("/dest")
        assert [(hop.url, hop.status) for hop in result.redirects] == [(site.url("/start"), None)]

    async def test_flags_are_contract_words(self, servers: Servers) -> None:
        """Every flag a result carries is one of the contract's words."""
        words = {
            "nofollow", "sponsored", "ugc", "page_nofollow", "noindex", "robots_index_disallowed",
            "canonical_elsewhere", "expired", "source_redirected", "cross_host_redirect",
            "anchor_mismatch", "rel_mismatch", "hidden", "boilerplate", "multiple_matches", "truncated",
            "crawl_delay_capped", "beyond_index_limit", "wrong_target", "unlinked_mention",
            "bot_challenge", "meta_refresh", "js_rendered", "render_failed",
        }  # fmt: skip
        assert {flag.value for flag in Flag} == words


class TestBestMatch:
    @pytest.mark.parametrize(
        ("links", "chosen"),
        [
            ('<a rel="nofollow" href="{t}">first</a><a href="{t}">second</a>', "second"),
            ('<a hidden href="{t}">first</a><a href="{t}">second</a>', "second"),
            ('<nav><a href="{t}">first</a></nav><main><a href="{t}">second</a></main>', "second"),
            ('<a href="{t}">first</a><a href="{t}">second</a>', "first"),
            ('<a rel="ugc" href="{t}">first</a><a hidden href="{t}">second</a>', "second"),
            ('<a hidden href="{t}">first</a><footer><a href="{t}">second</a></footer>', "second"),
        ],
    )
    async def test_best_match_order(self, servers: Servers, links: str, chosen: str) -> None:
        """Best match: followed, then visible, then main content, then document order."""
        result, _ = await judge(servers, {"/": respond(html(links.format(t=TARGET)))})
        assert link_of(result).text == chosen
        assert result.links_matched == 2
        assert Flag.MULTIPLE_MATCHES in result.flags

    async def test_followed_hidden_link_verifies(self, servers: Servers) -> None:
        """A hidden followed link beats a visible nofollow one: verified, flagged hidden, not nofollow."""
        page = html(f'<a rel="nofollow" href="{TARGET}">a</a><span hidden><a href="{TARGET}">b</a></span>')
        result, _ = await judge(servers, {"/": respond(page)})
        assert result.status is Status.VERIFIED
        assert Flag.HIDDEN in result.flags
        assert Flag.NOFOLLOW not in result.flags


async def test_one_result_per_claim(servers: Servers) -> None:
    """Many claims on one page give one result each, every one for its own claim."""
    site = await servers.app({"/": respond(linked())}, host="127.0.0.2")
    claims = [crawler.Claim(site.url("/"), f"{TARGET}?n={n}", id=f"c{n}") for n in range(5)]
    results = await verify_all(claims)
    assert sorted(results) == [f"c{n}" for n in range(5)]
    assert site.log.count("/") == 1
