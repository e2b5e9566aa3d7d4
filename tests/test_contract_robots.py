"""Contract, section 5: robots.txt (RFC 9309), meta robots, X-Robots-Tag, canonical and `indexable`,
through `import crawler` against loopback servers.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pytest
from aiohttp import web
from contract import TARGET, html, judge, linked, settings, verify_all
from multidict import CIMultiDict
from servers import Handler, Servers, redirect, respond

import crawler
from crawler import Flag, Status

ROBOTS = "/robots.txt"
GAP_TOLERANCE = 0.05


def robots(text: str, status: int = 200) -> dict[str, Handler]:
    return {ROBOTS: respond(text, status=status, content_type="text/plain")}


def with_meta(meta: str, page: str | None = None) -> str:
    return (page or linked()).replace("<title>", f"{meta}<title>")


class TestRobotsTxt:
    async def test_fetched_once_per_origin(self, servers: Servers) -> None:
        """robots.txt is requested once per origin per run, however many pages the run fetches there."""
        routes = robots("User-agent: *\nAllow: /\n") | {f"/{n}": respond(linked()) for n in range(6)}
        one = await servers.app(routes, host="127.0.0.2")
        two = await servers.app(routes, host="127.0.0.2")  # same host, another port: another origin
        claims = [crawler.Claim(site.url(f"/{n}"), TARGET) for site in (one, two) for n in range(6)]
        results = await verify_all(claims)
        assert {result.status for result in results.values()} == {Status.VERIFIED}
        assert (one.log.count(ROBOTS), two.log.count(ROBOTS)) == (1, 1)

    @pytest.mark.parametrize("name", ["crawler", "backlink", "backlink-crawler-pro", "*backlink-crawler"])
    async def test_group_of_another_token_does_not_apply(self, servers: Servers, name: str) -> None:
        """A group for another product token (even a substring of ours) does not apply to us."""
        routes = robots(f"User-agent: {name}\nDisallow: /\n\nUser-agent: *\nAllow: /\n")
        result, _ = await judge(servers, routes | {"/": respond(linked())})
        assert result.status is Status.VERIFIED
        assert result.robots_crawler_allowed is True

    @pytest.mark.parametrize("name", ["backlink-crawler", "BackLink-Crawler", "backlink-crawler/2.0"])
    async def test_own_group_applies(self, servers: Servers, name: str) -> None:
        """A group naming our product token (case-insensitively) applies instead of `*`."""
        routes = robots(f"User-agent: *\nAllow: /\n\nUser-agent: {name}\nDisallow: /private\n")
        site = await servers.app(routes | {"/private": respond(linked()), "/open": respond(linked())})
        claims = [crawler.Claim(site.url(path), TARGET, id=path) for path in ("/private", "/open")]
        results = await verify_all(claims)
        assert (results["/private"].status, results["/private"].reason) == (
            Status.BLOCKED,
            "robots_disallowed",
        )
        assert results["/open"].status is Status.VERIFIED

    async def test_own_group_replaces_star_group(self, servers: Servers) -> None:
        """When our group exists, the `*` group's rules do not add to it (they still bind Googlebot)."""
        routes = robots("User-agent: *\nDisallow: /\n\nUser-agent: backlink-crawler\nAllow: /\n")
        result, _ = await judge(servers, routes | {"/": respond(linked())})
        assert (result.robots_crawler_allowed, result.robots_index_allowed) == (True, False)
        assert result.status is Status.NOT_INDEXABLE

    async def test_product_token_from_user_agent_setting(self, servers: Servers) -> None:
        """The product token is the user_agent setting's part before the first `/` or space."""
        routes = robots("User-agent: auditbot\nDisallow: /\n") | {"/": respond(linked())}
        config = settings(user_agent="AuditBot/3.1 (+https://audit.example)")
        result, _ = await judge(servers, routes, config=config)
        assert (result.status, result.reason) == (Status.BLOCKED, "robots_disallowed")

    @pytest.mark.parametrize(
        ("rules", "allowed"),
        [
            ("Disallow: /dir\nAllow: /dir/page", True),  # longer allow wins
            ("Allow: /dir\nDisallow: /dir/page", False),  # longer disallow wins
            ("Disallow: /dir/page\nAllow: /dir/page", True),  # tie goes to allow
            ("Disallow: /*.html$", False),
            ("Disallow: /dir/p*e.html", False),
            ("Disallow:", True),
        ],
    )
    async def test_longest_match_wins(self, servers: Servers, rules: str, allowed: bool) -> None:
        """The longest matching rule wins, ties go to allow, wildcards as RFC 9309 says."""
        routes = robots(f"User-agent: *\n{rules}\n") | {"/dir/page.html": respond(linked())}
        result, _ = await judge(servers, routes, "/dir/page.html")
        assert (result.status is Status.VERIFIED) is allowed

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
    async def test_4xx_allows_all(self, servers: Servers, status: int) -> None:
        """robots.txt answering 4xx (other than 429) means allow all."""
        routes = robots("User-agent: *\nDisallow: /\n", status=status) | {"/": respond(linked())}
        result, _ = await judge(servers, routes)
        assert result.status is Status.VERIFIED
        assert result.robots_crawler_allowed is True

    async def test_5xx_retried_then_disallow(self, servers: Servers) -> None:
        """robots.txt answering 503 is retried; still 503 after retries means complete disallow."""
        routes = robots("down", status=503) | {"/": respond(linked())}
        result, site = await judge(servers, routes, config=settings(retries=2))
        assert (result.status, result.reason) == (Status.BLOCKED, "robots_unavailable")
        assert site.log.count(ROBOTS) == 3

    async def test_redirect_followed_rules_for_original_origin(self, servers: Servers) -> None:
        """A robots.txt redirect to another origin is followed; its rules apply to the original origin."""
        rules = await servers.app(robots("User-agent: *\nDisallow: /private\n"), host="127.0.0.3")
        routes = {
            ROBOTS: redirect(rules.url(ROBOTS)),
            "/private": respond(linked()),
            "/ok": respond(linked()),
        }
        site = await servers.app(routes, host="127.0.0.2")
        claims = [crawler.Claim(site.url(path), TARGET, id=path) for path in ("/private", "/ok")]
        results = await verify_all(claims)
        assert results["/private"].reason == "robots_disallowed"
        assert results["/ok"].status is Status.VERIFIED
        assert site.log.count("/private") == 0

    async def test_five_robots_redirects_followed(self, servers: Servers) -> None:
        """Five robots.txt redirects in a row are followed and the file they reach applies."""
        routes = {ROBOTS: redirect("/r1")} | {f"/r{n}": redirect(f"/r{n + 1}") for n in range(1, 5)}
        routes |= {"/r5": respond("User-agent: *\nDisallow: /\n", content_type="text/plain")}
        result, site = await judge(servers, routes | {"/": respond(linked())})
        assert result.reason == "robots_disallowed"
        assert site.log.count("/r5") == 1

    async def test_too_many_robots_redirects_allow(self, servers: Servers) -> None:
        """Past 5 robots.txt redirects the file is taken as unavailable (4xx): allow all."""
        routes = {ROBOTS: redirect("/r1")} | {f"/r{n}": redirect(f"/r{n + 1}") for n in range(1, 9)}
        routes |= {"/r9": respond("User-agent: *\nDisallow: /\n", content_type="text/plain")}
        result, _ = await judge(servers, routes | {"/": respond(linked())})
        assert result.status is Status.VERIFIED

    async def test_utf8_bom_stripped(self, servers: Servers) -> None:
        """A UTF-8 byte-order mark before the first record does not hide it."""
        body = "\ufeffUser-agent: *\nDisallow: /\n".encode()
        routes = {ROBOTS: respond(body, content_type="text/plain"), "/": respond(linked())}
        result, _ = await judge(servers, routes)
        assert result.reason == "robots_disallowed"

    async def test_only_first_500_kib_parsed(self, servers: Servers) -> None:
        """Rules past the first 500 KiB of robots.txt are not read."""
        padding = "# " + "x" * 600 * 1024 + "\n"
        routes = robots(f"User-agent: *\n{padding}Disallow: /\n") | {"/": respond(linked())}
        result, _ = await judge(servers, routes)
        assert result.status is Status.VERIFIED

    async def test_redirect_hop_checked(self, servers: Servers) -> None:
        """Our token decides every URL we request: a redirect into a disallowed path is blocked there."""
        routes = robots("User-agent: *\nDisallow: /private\n")
        routes |= {"/start": redirect("/private/page"), "/private/page": respond(linked())}
        result, site = await judge(servers, routes, "/start")
        assert (result.status, result.reason) == (Status.BLOCKED, "robots_disallowed")
        assert site.log.count("/private/page") == 0

    async def test_redirect_hop_on_other_origin_checked(self, servers: Servers) -> None:
        """A redirect to another origin is checked against that origin's robots.txt."""
        other = await servers.app(
            robots("User-agent: *\nDisallow: /\n") | {"/": respond(linked())}, "127.0.0.3"
        )
        result, _ = await judge(servers, {"/": redirect(other.url("/"))})
        assert (result.status, result.reason) == (Status.BLOCKED, "robots_disallowed")
        assert Flag.CROSS_HOST_REDIRECT in result.flags
        assert other.log.count("/") == 0

    async def test_index_agent_decides_index_allowed(self, servers: Servers) -> None:
        """robots_index_allowed is the index agent's (Googlebot by default) verdict on the final URL."""
        routes = robots("User-agent: googlebot\nDisallow: /final\n") | {
            "/start": redirect("/final"),
            "/final": respond(linked()),
        }
        result, _ = await judge(servers, routes, "/start")
        assert (result.robots_crawler_allowed, result.robots_index_allowed) == (True, False)
        assert result.status is Status.NOT_INDEXABLE

    async def test_index_agent_setting(self, servers: Servers) -> None:
        """The index_agent setting names whose robots group decides indexability."""
        routes = robots("User-agent: bingbot\nDisallow: /\n") | {"/": respond(linked())}
        default, _ = await judge(servers, routes)
        assert default.status is Status.VERIFIED
        bing, _ = await judge(servers, routes, host="127.0.0.3", config=settings(index_agent="Bingbot"))
        assert bing.status is Status.NOT_INDEXABLE

    async def test_crawl_delay_honoured(self, servers: Servers) -> None:
        """A Crawl-delay for our group spaces request starts to that host by at least its value."""
        routes = robots("User-agent: *\nCrawl-delay: 0.3\n") | {f"/{n}": respond(linked()) for n in range(3)}
        site = await servers.app(routes, host="127.0.0.2")
        results = await verify_all([crawler.Claim(site.url(f"/{n}"), TARGET) for n in range(3)])
        assert all(Flag.CRAWL_DELAY_CAPPED not in result.flags for result in results.values())
        starts = sorted(site.log.starts())
        assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.3 - GAP_TOLERANCE


class TestMetaRobots:
    async def test_meta_in_body_counts(self, servers: Servers) -> None:
        """A `<meta name=robots>` in the body counts like one in the head."""
        page = html(f'<main><a href="{TARGET}">x</a></main><meta name="robots" content="noindex">')
        result, _ = await judge(servers, {"/": respond(page)})
        assert result.status is Status.NOT_INDEXABLE
        assert result.meta_robots == ("noindex",)

    async def test_index_agent_meta_applies(self, servers: Servers) -> None:
        """`<meta name=googlebot>` applies (name and content case-insensitive)."""
        result, _ = await judge(
            servers, {"/": respond(with_meta('<meta NAME="GoogleBot" CONTENT="NoIndex">'))}
        )
        assert result.status is Status.NOT_INDEXABLE
        assert Flag.NOINDEX in result.flags

    async def test_other_agent_meta_ignored(self, servers: Servers) -> None:
        """`<meta name=bingbot content=noindex>` does not apply to Googlebot."""
        result, _ = await judge(servers, {"/": respond(with_meta('<meta name="bingbot" content="noindex">'))})
        assert result.status is Status.VERIFIED
        assert result.meta_robots == ()

    async def test_most_restrictive_wins(self, servers: Servers) -> None:
        """Directives of all applying metas combine; a noindex beats an index."""
        meta = '<meta name="robots" content="index, follow"><meta name="googlebot" content="noindex">'
        result, _ = await judge(servers, {"/": respond(with_meta(meta))})
        assert result.status is Status.NOT_INDEXABLE
        assert set(result.meta_robots) == {"index", "follow", "noindex"}

    async def test_none(self, servers: Servers) -> None:
        """`none` means noindex and nofollow."""
        result, _ = await judge(servers, {"/": respond(with_meta('<meta name="robots" content="none">'))})
        assert result.status is Status.NOT_INDEXABLE
        assert {Flag.NOINDEX, Flag.PAGE_NOFOLLOW} <= set(result.flags)

    @pytest.mark.parametrize(
        "date",
        [
            "Friday, 25-Jun-10 15:00:00 GMT",  # RFC 850: has a comma
            "Fri, 25 Jun 2010 15:00:00 GMT",  # RFC 822
            "25 Jun 2010 15:00:00 PST",
            "2010-06-25T15:00:00+00:00",  # ISO 8601
            "2010-06-25",
        ],
    )
    async def test_unavailable_after_passed(self, servers: Servers, date: str) -> None:
        """A passed unavailable_after (RFC 822, RFC 850 or ISO 8601) expires the page."""
        meta = f'<meta name="robots" content="noarchive, unavailable_after: {date}">'
        result, _ = await judge(servers, {"/": respond(with_meta(meta))})
        assert result.status is Status.NOT_INDEXABLE
        assert Flag.EXPIRED in result.flags
        assert result.indexable is False

    @pytest.mark.parametrize(
        "date",
        [
            "Sunday, 25-Jun-45 15:00:00 GMT",
            "Sun, 25 Jun 2045 15:00:00 GMT",
            "2045-06-25",
            "not a date",
            "31-31-31",
        ],
    )
    async def test_unavailable_after_future_or_invalid(self, servers: Servers, date: str) -> None:
        """A future or invalid unavailable_after date does not expire the page."""
        meta = f'<meta name="robots" content="unavailable_after: {date}">'
        result, _ = await judge(servers, {"/": respond(with_meta(meta))})
        assert result.status is Status.VERIFIED
        assert Flag.EXPIRED not in result.flags

    async def test_rfc850_directive_reported_whole(self, servers: Servers) -> None:
        """An RFC 850 date is not split at its comma in the reported directives."""
        meta = '<meta name="robots" content="unavailable_after: Friday, 25-Jun-10 15:00:00 GMT, noarchive">'
        result, _ = await judge(servers, {"/": respond(with_meta(meta))})
        assert "noarchive" in result.meta_robots
        assert len(result.meta_robots) == 2


class TestXRobotsTag:
    @pytest.mark.parametrize(
        ("values", "noindex"),
        [
            (["noindex"], True),
            (["googlebot: noindex"], True),
            (["GoogleBot: NOINDEX, nofollow"], True),
            (["otherbot: noindex"], False),
            (["otherbot: noindex", "googlebot: noarchive"], False),
            (["noarchive", "none"], True),
            (["unavailable_after: 2001-01-01"], True),
        ],
    )
    async def test_scoping(self, servers: Servers, values: list[str], noindex: bool) -> None:
        """Every X-Robots-Tag instance counts; a scoped value applies only to its agent."""
        site = await _serve_headers(servers, [("X-Robots-Tag", value) for value in values])
        results = await verify_all([crawler.Claim(site, TARGET, id="c")])
        assert (results["c"].status is Status.NOT_INDEXABLE) is noindex

    async def test_reported_for_index_agent(self, servers: Servers) -> None:
        """x_robots_tag lists the directives addressed to the index agent only."""
        site = await _serve_headers(
            servers, [("X-Robots-Tag", "bingbot: noindex"), ("X-Robots-Tag", "nofollow")]
        )
        results = await verify_all([crawler.Claim(site, TARGET, id="c")])
        assert results["c"].x_robots_tag == ("nofollow",)
        assert results["c"].status is Status.NOFOLLOW
        assert Flag.PAGE_NOFOLLOW in results["c"].flags


async def _serve_headers(servers: Servers, headers: list[tuple[str, str]]) -> str:
    """A page carrying the link, answered with every one of `headers` (repeats kept); its URL."""

    async def handler(request: web.Request) -> web.StreamResponse:
        out: CIMultiDict[str] = CIMultiDict(headers)
        return web.Response(text=linked(), content_type="text/html", headers=out)

    site = await servers.app({"/": handler}, host="127.0.0.3")
    return site.url("/")


class TestCanonical:
    async def test_head_canonical_elsewhere(self, servers: Servers) -> None:
        """A `<head>` canonical to another page: canonical_elsewhere, not indexable."""
        result, site = await judge(servers, {"/": respond(with_meta('<link rel="canonical" href="other">'))})
        assert result.canonical_url == site.url("/other")
        assert result.indexable is False
        assert Flag.CANONICAL_ELSEWHERE in result.flags

    @pytest.mark.parametrize("href", ["/", "http://127.0.0.2:{port}/#top", "./"])
    async def test_canonical_to_itself(self, servers: Servers, href: str) -> None:
        """A canonical naming the page itself (after page normalisation) is not elsewhere."""
        site = await servers.app({"/": _canonical_page(href)}, host="127.0.0.2")
        results = await verify_all([crawler.Claim(site.url("/"), TARGET, id="c")])
        assert results["c"].status is Status.VERIFIED
        assert results["c"].indexable is True

    async def test_body_canonical_ignored(self, servers: Servers) -> None:
        """A canonical link in the body does not count."""
        page = html(f'<a href="{TARGET}">x</a><link rel="canonical" href="/other">')
        result, _ = await judge(servers, {"/": respond(page)})
        assert result.canonical_url is None
        assert result.status is Status.VERIFIED

    @pytest.mark.parametrize("attribute", ['hreflang="de"', 'lang="de"', 'media="print"', 'type="text/html"'])
    async def test_alternate_canonical_skipped(self, servers: Servers, attribute: str) -> None:
        """A canonical with hreflang, lang, media or type is skipped; the next plain one counts."""
        meta = f'<link rel="canonical" {attribute} href="/de/page"><link rel="canonical" href="/plain">'
        result, site = await judge(servers, {"/": respond(with_meta(meta))})
        assert result.canonical_url == site.url("/plain")

    async def test_link_header_canonical(self, servers: Servers) -> None:
        """Without a `<head>` canonical, a `Link: <...>; rel="canonical"` header counts."""
        handler = respond(
            linked(), headers={"Link": '</style.css>; rel="preload", </other>; rel="canonical"'}
        )
        result, site = await judge(servers, {"/": handler})
        assert result.canonical_url == site.url("/other")
        assert result.status is Status.NOT_INDEXABLE

    async def test_head_canonical_beats_header(self, servers: Servers) -> None:
        """A `<head>` canonical is preferred to the Link header's."""
        handler = respond(
            with_meta('<link rel="canonical" href="/">'), headers={"Link": '</x>; rel="canonical"'}
        )
        result, site = await judge(servers, {"/": handler})
        assert result.canonical_url == site.url("/")
        assert result.status is Status.VERIFIED


def _canonical_page(href: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        link = href.format(port=request.url.port)
        return web.Response(text=with_meta(f'<link rel="canonical" href="{link}">'), content_type="text/html")

    return handler


class TestIndexable:
    @pytest.mark.parametrize(
        ("routes", "indexable"),
        [
            ({"/": respond(linked())}, True),
            ({"/": respond(html("no link"))}, True),
            ({"/": respond(linked(), status=404)}, False),
            ({"/": respond(with_meta('<meta name="robots" content="noindex">'))}, False),
            ({"/": respond(linked(), headers={"X-Robots-Tag": "none"})}, False),
            (robots("User-agent: *\nDisallow: /\n") | {"/": respond(linked())}, None),
        ],
    )
    async def test_indexable(
        self, servers: Servers, routes: Mapping[str, Handler], indexable: bool | None
    ) -> None:
        """indexable: true for a 2xx page Googlebot may index; false otherwise; null when not fetched."""
        result, _ = await judge(servers, routes)
        assert result.indexable is indexable
