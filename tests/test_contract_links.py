"""Contract, section 4: which links count, their text, rel, hidden and region, the four match modes,
the charset order, and instant meta refreshes, through `import crawler` against loopback servers.
"""

from __future__ import annotations

from typing import Any

import pytest
from contract import TARGET, html, judge, link_of, linked, settings, verify_all
from servers import Servers, redirect, respond

import crawler
from crawler import Flag, Region, Status


async def page_result(servers: Servers, body: str, **claim: Any) -> Status:
    result, _ = await judge(servers, {"/": respond(body)}, **claim)
    return result.status


class TestWhichLinks:
    async def test_area_href_counts(self, servers: Servers) -> None:
        """An `<area href>` in an image map is a link, its text the area's alt."""
        body = html(
            f'<map name="m"><area shape="rect" coords="0,0,9,9" href="{TARGET}" alt="Map link"></map>'
        )
        result, _ = await judge(servers, {"/": respond(body)})
        assert result.status is Status.VERIFIED
        assert link_of(result).text == "Map link"

    async def test_template_contents_do_not_count(self, servers: Servers) -> None:
        """A link inside `<template>` is not part of the document: missing."""
        body = html(f'<template><a href="{TARGET}">x</a></template>')
        assert await page_result(servers, body) is Status.MISSING

    async def test_link_in_html5_misnested_markup(self, servers: Servers) -> None:
        """Links are found as an HTML5 parser builds the tree, even in broken markup."""
        body = f'<table><tr><td><p><b><a href="{TARGET}">x</b></a></td></tr></table>'
        assert await page_result(servers, body) is Status.VERIFIED

    async def test_link_only_in_noscript_counts_hidden(self, servers: Servers) -> None:
        """A link that only a `<noscript>` holds counts (a crawler that runs no scripts reads it), hidden."""
        body = html(f'<p>Ad</p><noscript><div><a href="{TARGET}">Our partner</a></div></noscript>')
        result, _ = await judge(servers, {"/": respond(body)}, expected_anchor="our partner")
        assert result.status is Status.VERIFIED
        assert link_of(result).text == "Our partner"
        assert link_of(result).hidden is True
        assert Flag.HIDDEN in result.flags
        assert Flag.ANCHOR_MISMATCH not in result.flags

    async def test_noscript_in_head_keeps_the_head(self, servers: Servers) -> None:
        """A tracking pixel in a `<noscript>` in `<head>` does not end the head: the canonical after
        it still counts."""
        head = '<noscript><img src="/px.gif"></noscript><link rel="canonical" href="http://elsewhere.test/">'
        result, _ = await judge(servers, {"/": respond(html(f'<a href="{TARGET}">x</a>', head=head))})
        assert result.status is Status.NOT_INDEXABLE
        assert Flag.CANONICAL_ELSEWHERE in result.flags

    async def test_link_in_comment_does_not_count(self, servers: Servers) -> None:
        """An `<a>` inside an HTML comment or a script is no link."""
        body = html(f'<!-- <a href="{TARGET}">x</a> --><script>var a = \'<a href="{TARGET}">\';</script>')
        assert await page_result(servers, body) is Status.MISSING

    @pytest.mark.parametrize(
        "href",
        [
            "javascript:location.href='http://target.test/page'",
            "mailto:someone@target.test",
            "tel:+123",
            "ftp://target.test/page",
        ],
    )
    async def test_non_http_links_never_match(self, servers: Servers, href: str) -> None:
        """javascript:, mailto:, tel: and other non-http(s) links never match, even in domain mode."""
        body = html(f'<a href="{href}">x</a>')
        assert await page_result(servers, body, match="domain") is Status.MISSING

    async def test_base_href(self, servers: Servers) -> None:
        """Relative hrefs resolve against the first `<base href>`, not the page URL."""
        head = '<base href="http://target.test/dir/"><base href="http://other.test/">'
        body = html('<a href="../page">x</a>', head=head)
        result, _ = await judge(servers, {"/": respond(body)})
        assert result.status is Status.VERIFIED
        assert (link_of(result).href, link_of(result).url) == ("../page", TARGET)

    async def test_relative_href_against_final_url(self, servers: Servers) -> None:
        """Without a base, hrefs resolve against the final URL after redirects."""
        routes = {"/a/start": redirect("/b/here"), "/b/here": respond(html('<a href="there">x</a>'))}
        site = await servers.app(routes, host="127.0.0.2")
        claim = crawler.Claim(site.url("/a/start"), site.url("/b/there"), id="c")
        result = (await verify_all([claim]))["c"]
        assert result.status is Status.VERIFIED
        assert link_of(result).url == site.url("/b/there")

    @pytest.mark.parametrize(
        "href",
        [
            " \t\x01http://target.test/page\x1f ",  # C0 controls and spaces around
            "http://tar\tget.te\nst/pa\nge",  # tabs and newlines removed anywhere
            "http:\\\\target.test\\page",  # backslashes as slashes
            "//target.test/page",  # protocol-relative
            "HTTP://TARGET.TEST:80/./x/../page",  # case, default port, dot segments
        ],
    )
    async def test_whatwg_resolution(self, servers: Servers, href: str) -> None:
        """hrefs resolve with WHATWG rules, so browser-accepted oddities match the target."""
        body = html(f'<a href="{href}">x</a>')
        result, _ = await judge(servers, {"/": respond(body)}, match="exact")
        assert result.status is Status.VERIFIED, href
        assert link_of(result).href == href

    async def test_idna_host(self, servers: Servers) -> None:
        """A Unicode host in an href matches its IDNA (punycode) form."""
        body = html('<a href="http://BÜCHER.test/page">x</a>')
        result, _ = await judge(servers, {"/": respond(body)}, target_url="http://xn--bcher-kva.test/page")
        assert result.status is Status.VERIFIED
        assert link_of(result).url == "http://xn--bcher-kva.test/page"


class TestLinkFacts:
    async def test_text_collapsed(self, servers: Servers) -> None:
        """`text` is the text content, whitespace collapsed and trimmed."""
        body = html(f'<a href="{TARGET}">\n  Best <b>running</b>\t\tshoes  </a>')
        result, _ = await judge(servers, {"/": respond(body)})
        assert link_of(result).text == "Best running shoes"

    async def test_image_alt_as_text(self, servers: Servers) -> None:
        """A link holding only an image takes the image's alt as its text."""
        body = html(f'<a href="{TARGET}"> <img src="/logo.png" alt="Target  Logo"> </a>')
        result, _ = await judge(servers, {"/": respond(body)}, expected_anchor="target logo")
        assert link_of(result).text == "Target Logo"
        assert Flag.ANCHOR_MISMATCH not in result.flags

    @pytest.mark.parametrize(
        ("inner", "text", "image"),
        [
            ('<noscript><img src="/a.jpg" alt="Joshua Sokol"></noscript>', "Joshua Sokol", True),
            ('<noscript><img class="x" src="/a.jpg"></noscript> Joshua Sokol', "Joshua Sokol", False),
            (
                '<script type="text/x"><![CDATA[ <source srcset="v.jpg"> ]]></script>Joshua Sokol',
                "Joshua Sokol",
                False,
            ),
            ("<svg><style>.pocztaA {fill: #444; }</style></svg> Joshua\u00a0 Sokol", "Joshua Sokol", False),
            ("<template>Draft</template>Joshua Sokol", "Joshua Sokol", False),
        ],
    )
    async def test_text_holds_no_markup_nor_code(
        self, servers: Servers, inner: str, text: str, image: bool
    ) -> None:
        """No raw markup from a `<noscript>`, no script, style or template content in a link's text."""
        body = html(f'<a href="{TARGET}">{inner}</a>')
        result, _ = await judge(servers, {"/": respond(body)}, expected_anchor="joshua sokol")
        assert (link_of(result).text, link_of(result).image) == (text, image)
        assert Flag.ANCHOR_MISMATCH not in result.flags

    @pytest.mark.parametrize(
        ("rel", "tokens"),
        [
            ("ugc,nofollow", ["ugc", "nofollow"]),
            ("NoFollow  Noopener", ["nofollow", "noopener"]),
            (" sponsored,\tugc ,nofollow", ["sponsored", "ugc", "nofollow"]),
        ],
    )
    async def test_rel_tokens(self, servers: Servers, rel: str, tokens: list[str]) -> None:
        """rel splits on ASCII whitespace and commas, lower-cased."""
        result, _ = await judge(servers, {"/": respond(linked(f'rel="{rel}"'))})
        assert list(link_of(result).rel) == tokens
        assert result.status is Status.NOFOLLOW

    @pytest.mark.parametrize(
        "wrapper",
        [
            "<div hidden><p>{a}</p></div>",
            '<div style="display:none"><p>{a}</p></div>',
            '<div style="color: red; DISPLAY : NONE !important">{a}</div>',
            '<span style="visibility: hidden">{a}</span>',
            "{a_hidden}",
            '<div style="visibility: visible"><p style="visibility: collapse">{a}</p></div>',
            '<div style="display: none"><p style="visibility: visible">{a}</p></div>',
            "<noscript>{a}</noscript>",
        ],
    )
    async def test_hidden(self, servers: Servers, wrapper: str) -> None:
        """Hidden: the link or an ancestor has `hidden`, display:none, or the nearest visibility is
        hidden or collapse; or the link sits in `<noscript>`."""
        anchor = f'<a href="{TARGET}">x</a>'
        body = html(wrapper.format(a=anchor, a_hidden=f'<a style="display:none" href="{TARGET}">x</a>'))
        result, _ = await judge(servers, {"/": respond(body)})
        assert link_of(result).hidden is True
        assert Flag.HIDDEN in result.flags

    @pytest.mark.parametrize(
        "wrapper",
        [
            '<div style="display: block" class="hidden-xs">{a}</div>',
            '<div hidden="until-found">{a}</div>',
            '<div style="visibility: hidden"><p style="visibility: visible">{a}</p></div>',
        ],
    )
    async def test_visible(self, servers: Servers, wrapper: str) -> None:
        """A link with no hiding ancestor is not hidden: `hidden=until-found` is found by search, and
        a nearer `visibility: visible` undoes a hidden one further out."""
        body = html(wrapper.format(a=f'<a href="{TARGET}">x</a>'))
        result, _ = await judge(servers, {"/": respond(body)})
        assert link_of(result).hidden is False

    @pytest.mark.parametrize(
        ("wrapper", "region"),
        [
            ("<main>{a}</main>", Region.MAIN),
            ("<article><p>{a}</p></article>", Region.MAIN),
            ("<nav><ul><li>{a}</li></ul></nav>", Region.NAV),
            ("<header>{a}</header><main>x</main>", Region.HEADER),
            ("<main>x</main><footer>{a}</footer>", Region.FOOTER),
            ("<aside>{a}</aside>", Region.ASIDE),
            ('<div id="comments"><ol><li>{a}</li></ol></div>', Region.COMMENTS),
            ('<div role="navigation">{a}</div>', Region.NAV),
        ],
    )
    async def test_region(self, servers: Servers, wrapper: str, region: Region) -> None:
        """Each link's region is main, nav, header, footer, aside or comments; boilerplate unless main."""
        body = html(wrapper.format(a=f'<a href="{TARGET}">x</a>'))
        result, _ = await judge(servers, {"/": respond(body)})
        assert link_of(result).region is region
        assert (Flag.BOILERPLATE in result.flags) is (region is not Region.MAIN)


class TestMatchModes:
    @pytest.mark.parametrize(
        ("href", "hit"),
        [
            ("http://target.test/page", True),
            ("http://target.test/page#section", True),  # fragments always ignored
            ("http://TARGET.test:80/page", True),  # WHATWG serialisation
            ("https://target.test/page", False),
            ("http://target.test/page/", False),
            ("http://www.target.test/page", False),
            ("http://target.test/page?x=1", False),
        ],
    )
    async def test_exact(self, servers: Servers, href: str, hit: bool) -> None:
        """exact: the resolved URL equals the target after WHATWG serialisation, fragment ignored."""
        status = await page_result(servers, html(f'<a href="{href}">x</a>'), match="exact")
        assert (status is Status.VERIFIED) is hit

    @pytest.mark.parametrize(
        ("target", "href", "hit"),
        [
            ("http://target.test/page", "https://target.test/page", True),  # scheme ignored
            ("http://target.test/page", "http://WWW.Target.Test/page", True),  # one www. dropped
            ("https://target.test/page", "https://target.test:443/page", True),  # default port
            ("http://target.test/a/page", "http://target.test/a/b/../page", True),  # dot segments
            ("http://target.test/~user/a%2fb", "http://target.test/%7Euser/a%2Fb", True),  # percent-encoding
            ("http://target.test", "http://target.test/", True),  # empty path is /
            ("http://target.test/page/", "http://target.test/page", True),  # one trailing slash
            ("http://target.test/page?a=1&b=2", "http://target.test/page?a=1&b=2#f", True),
            ("http://target.test/page?a=1&b=2", "http://target.test/page?b=2&a=1", False),  # query order kept
            ("http://target.test/page", "http://target.test/page?a=1", False),
            ("http://target.test/page", "http://target.test:8080/page", False),
            ("http://target.test/page", "http://www.www.target.test/page", False),  # only one www.
            ("http://target.test/page", "http://target.test/Page", False),  # path case kept
            ("http://bücher.test/", "http://xn--bcher-kva.test/", True),  # IDNA
            ("http://target.test/page", "http://target.test/page?utm_source=nl&gclid=x", True),  # tracking
            ("http://target.test/page?id=7", "http://target.test/page?fbclid=f&id=7&_ga=1", True),
            ("http://target.test/page?utm_campaign=a", "http://target.test/page", True),
            ("http://target.test/page", "http://target.test/page?utm=1", False),  # no `utm_` prefix
        ],
    )
    async def test_page(self, servers: Servers, target: str, href: str, hit: bool) -> None:
        """page (the default): both URLs normalised as the contract lists, then compared."""
        status = await page_result(servers, html(f'<a href="{href}">x</a>'), target_url=target)
        assert (status is Status.VERIFIED) is hit

    @pytest.mark.parametrize(
        ("href", "hit"),
        [
            ("http://target.test/blog", True),
            ("http://target.test/blog/", True),
            ("http://target.test/blog/post-1", True),
            ("https://www.target.test/blog/2024/post?x=1", True),
            ("http://target.test/blog?page=2", True),
            ("http://target.test/blogger", False),  # not at a segment boundary
            ("http://target.test/", False),
        ],
    )
    async def test_prefix(self, servers: Servers, href: str, hit: bool) -> None:
        """prefix: the normalised link starts with the normalised target at a path-segment boundary."""
        body = html(f'<a href="{href}">x</a>')
        status = await page_result(servers, body, target_url="http://target.test/blog", match="prefix")
        assert (status is Status.VERIFIED) is hit

    @pytest.mark.parametrize(
        ("href", "hit"),
        [
            ("https://shop.example.co.uk/any/page", True),
            ("http://example.co.uk/", True),
            ("http://a.b.example.co.uk/x", True),
            ("http://other.co.uk/", False),  # same public suffix, another registrable domain
            ("http://notexample.co.uk/", False),
            ("http://example.co.uk.evil.test/", False),
        ],
    )
    async def test_domain(self, servers: Servers, href: str, hit: bool) -> None:
        """domain: the link's host is the target's registrable domain (public suffix list) or under it."""
        body = html(f'<a href="{href}">x</a>')
        status = await page_result(servers, body, target_url="https://www.example.co.uk/x", match="domain")
        assert (status is Status.VERIFIED) is hit


def charset_page(text: str, encoding: str, meta: str = "") -> bytes:
    return f'<html><head>{meta}</head><body><a href="{TARGET}">{text}</a></body></html>'.encode(encoding)


class TestCharset:
    async def test_bom_beats_header_and_meta(self, servers: Servers) -> None:
        """A UTF-8 byte-order mark wins over the header's charset and a meta charset."""
        body = b"\xef\xbb\xbf" + charset_page("café déjà", "utf-8", '<meta charset="iso-8859-5">')
        handler = respond(body, content_type="text/html; charset=windows-1251")
        result, _ = await judge(servers, {"/": handler}, expected_anchor="café déjà")
        assert link_of(result).text == "café déjà"
        assert result.encoding == "utf-8"

    async def test_utf16_bom(self, servers: Servers) -> None:
        """A UTF-16LE byte-order mark decodes the page as UTF-16 whatever the header says."""
        body = b"\xff\xfe" + charset_page("Überall", "utf-16-le")
        result, _ = await judge(servers, {"/": respond(body, content_type="text/html; charset=utf-8")})
        assert link_of(result).text == "Überall"

    async def test_header_beats_meta(self, servers: Servers) -> None:
        """The Content-Type charset wins over a `<meta charset>`."""
        body = charset_page("café", "windows-1252", '<meta charset="utf-8">')
        handler = respond(body, content_type="text/html; charset=windows-1252")
        result, _ = await judge(servers, {"/": handler})
        assert link_of(result).text == "café"
        assert result.encoding == "windows-1252"

    @pytest.mark.parametrize(
        "meta",
        [
            '<meta charset="windows-1251">',
            '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">',
        ],
    )
    async def test_meta_beats_detection(self, servers: Servers, meta: str) -> None:
        """Without a header charset, `<meta charset>` or http-equiv in the first 1024 bytes decides."""
        body = charset_page("Привет мир", "windows-1251", meta)
        result, _ = await judge(servers, {"/": respond(body, content_type="text/html")})
        assert link_of(result).text == "Привет мир"
        assert result.encoding == "windows-1251"

    async def test_detection_last(self, servers: Servers) -> None:
        """With no BOM, header charset or meta, the charset is detected from the bytes."""
        words = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 20
        body = f'<html><body><p>{words}</p><a href="{TARGET}">ссылка</a></body></html>'.encode()
        result, _ = await judge(servers, {"/": respond(body, content_type="text/html")})
        assert link_of(result).text == "ссылка"

    async def test_query_in_the_page_encoding(self, servers: Servers) -> None:
        """On a page decoded from windows-1252, a link's query is percent-encoded in windows-1252."""
        body = '<html><body><a href="http://target.test/page?q=caf\u00e9">x</a></body></html>'.encode(
            "cp1252"
        )
        handler = respond(body, content_type="text/html; charset=windows-1252")
        result, _ = await judge(
            servers, {"/": handler}, target_url="http://target.test/page?q=caf%E9", match="exact"
        )
        assert result.status is Status.VERIFIED
        assert link_of(result).url == "http://target.test/page?q=caf%E9"

    async def test_decode_errors_replaced(self, servers: Servers) -> None:
        """Bytes invalid in the declared charset are replaced, never fatal."""
        body = b'<html><body><p>\xff\xfe\xc3(</p><a href="' + TARGET.encode() + b'">ok \xe9</a></body></html>'
        result, _ = await judge(servers, {"/": respond(body, content_type="text/html; charset=utf-8")})
        assert result.status is Status.VERIFIED
        assert link_of(result).text == "ok \ufffd"


class TestMetaRefresh:
    @pytest.mark.parametrize("content", ["0; url=/dest", "1;URL='/dest'", "0.5, url=/dest"])
    async def test_instant_refresh_followed(self, servers: Servers, content: str) -> None:
        """A refresh of at most 1 s is followed like a redirect, the verdict taken on its target page."""
        start = html("<p>moving</p>", head=f'<meta http-equiv="Refresh" content="{content}">')
        routes = {"/start": respond(start), "/dest": respond(linked())}
        result, site = await judge(servers, routes, "/start")
        assert result.status is Status.VERIFIED
        assert result.final_url == site.url("/dest")
        assert [hop.to_dict() for hop in result.redirects] == [{"url": site.url("/start"), "status": None}]
        assert {Flag.META_REFRESH, Flag.SOURCE_REDIRECTED} <= set(result.flags)

    async def test_slow_refresh_not_followed(self, servers: Servers) -> None:
        """A refresh of 5 s is no redirect: the verdict is on the page itself."""
        start = html("<p>moving</p>", head='<meta http-equiv="refresh" content="5; url=/dest">')
        routes = {"/start": respond(start), "/dest": respond(linked())}
        result, site = await judge(servers, routes, "/start")
        assert result.status is Status.MISSING
        assert result.redirects == ()
        assert site.log.count("/dest") == 0

    async def test_refresh_counts_against_max_redirects(self, servers: Servers) -> None:
        """A meta refresh hop counts against max_redirects like an HTTP redirect."""
        start = html("", head='<meta http-equiv="refresh" content="0; url=/dest">')
        routes = {"/first": redirect("/start"), "/start": respond(start), "/dest": respond(linked())}
        result, _ = await judge(servers, routes, "/first", config=settings(max_redirects=1))
        assert (result.status, result.reason) == (Status.PAGE_ERROR, "too_many_redirects")

    async def test_redirects_then_refresh_listed_in_order(self, servers: Servers) -> None:
        """`redirects` lists every hop in order, HTTP ones with their status, the refresh with null."""
        start = html("", head='<meta http-equiv="refresh" content="0;url=/dest">')
        routes = {"/a": redirect("/b", 301), "/b": redirect("/start", 307), "/start": respond(start)}
        result, site = await judge(servers, routes | {"/dest": respond(linked())}, "/a")
        hops = [(hop.url, hop.status) for hop in result.redirects]
        assert hops == [(site.url("/a"), 301), (site.url("/b"), 307), (site.url("/start"), None)]
        assert result.http_status == 200
