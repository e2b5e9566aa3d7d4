"""The page extractor: what a browser's parse of the HTML says about links, robots and redirects."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.core import urls
from crawler.core.decode import decode_html
from crawler.core.extract import COMMENT_MARKERS, INDEX_LIMIT_BYTES, collapse, parse_page, rel_tokens
from crawler.models import Link, Page, Region

URL = "https://example.com/dir/page.html"


def links(html: str, url: str = URL) -> tuple[Link, ...]:
    return parse_page(html, url).links


def only(html: str) -> Link:
    (link,) = links(html)
    return link


class TestAnchors:
    @pytest.mark.parametrize(
        ("html", "expected"),
        [
            # An unclosed <a> is closed by the next one: two links, not one nested in the other.
            ('<a href="/1">one<a href="/2">two</a>', [("/1", "one"), ("/2", "two")]),
            # A block inside an open <a>: the adoption agency clones the anchor into the block.
            ('<a href="/1"><p>para</a> after</p>', [("/1", ""), ("/1", "para")]),
            ('<a href="/1">one <div><a href="/2">two</a></div>', [("/1", "one"), ("/1", ""), ("/2", "two")]),
            # Misnested formatting: </a> closes the <b> inside it; the text after is not linked.
            ('<a href="/1">x<b>bold</a>tail</b>', [("/1", "xbold")]),
            # An <a> in a table before any cell is foster-parented before the table.
            (
                '<table><a href="/f">foster</a><tr><td><a href="/c">cell</a></td></tr></table>',
                [("/f", "foster"), ("/c", "cell")],
            ),
            ('<a href="/1">never closed', [("/1", "never closed")]),
        ],
    )
    def test_text_a_browser_sees(self, html: str, expected: list[tuple[str, str]]) -> None:
        """Nested, misnested and unclosed anchors become the links and texts a browser shows."""
        assert [(link.href, link.text) for link in links(html)] == expected

    @pytest.mark.parametrize(
        ("html", "href", "url"),
        [
            ('<a href="?a=1&amp;b=2">', "?a=1&b=2", "https://example.com/dir/page.html?a=1&b=2"),
            # A legacy entity without `;` followed by `=` or a letter stays as written in an attribute.
            ('<a href="?x=1&copy=2">', "?x=1&copy=2", "https://example.com/dir/page.html?x=1&copy=2"),
            ('<a href="?q&notit;">', "?q&notit;", "https://example.com/dir/page.html?q&notit;"),
            # ...and is decoded when anything else follows.
            ('<a href="/c&copy">', "/c\u00a9", "https://example.com/c%C2%A9"),
            ('<a href="/&#x41;&#66;">', "/AB", "https://example.com/AB"),
            ('<a href=" \t/pa\nth\t ">', " \t/pa\nth\t ", "https://example.com/path"),
            ('<a href="\\\\evil.example\\x">', "\\\\evil.example\\x", "https://evil.example/x"),
            ('<a href="//cdn.example.org/x">', "//cdn.example.org/x", "https://cdn.example.org/x"),
            ('<a href="http://bücher.de/ü">', "http://bücher.de/ü", "http://xn--bcher-kva.de/%C3%BC"),
            ('<a href="HTTP://EXAMPLE.com">', "HTTP://EXAMPLE.com", "http://example.com/"),
            ("<a href>", "", URL),
            ('<a href="#top">', "#top", URL + "#top"),
            ('<a href="../up">', "../up", "https://example.com/up"),
        ],
    )
    def test_href_as_written_and_resolved(self, html: str, href: str, url: str) -> None:
        """`href` keeps the decoded attribute as written; `url` is its WHATWG resolution."""
        link = only(html + "x</a>")
        assert (link.href, link.url) == (href, url)

    @pytest.mark.parametrize(
        "href",
        [
            "javascript:void(0)",
            " JavaScript:alert(1)",
            "mailto:a@b.c",
            "tel:+123",
            "data:text/html,x",
            "ftp://f.example/",
            "http://[::1",
        ],
    )
    def test_non_http_links_are_dropped(self, href: str) -> None:
        """Links that resolve to no http(s) URL (or to nothing) are not links to any target."""
        assert links(f'<a href="{href}">x</a><a href="/kept">k</a>')[0].href == "/kept"
        assert len(links(f'<a href="{href}">x</a>')) == 0

    def test_area_and_document_order(self) -> None:
        """`<area href>` counts beside `<a href>`, in document order; `<a>` without href does not."""
        html = '<a name="x">anchor</a><map><area href="/m" alt="Map area"></map><a href="/a">a</a>'
        assert [(link.href, link.text) for link in links(html)] == [("/m", "Map area"), ("/a", "a")]

    def test_template_contents_are_ignored(self) -> None:
        """Links inside `<template>` are inert markup, not part of the page."""
        html = '<template><a href="/t">t</a></template><a href="/real">real<template>x</template></a>'
        assert [(link.href, link.text) for link in links(html)] == [("/real", "real")]

    def test_svg_xlink_href_is_no_href(self) -> None:
        """An SVG `<a xlink:href>` has no `href` attribute, so it is no link; an SVG `<a href>` is."""
        html = '<svg><a xlink:href="/x"><text>x</text></a><a href="/s"><text>s</text></a></svg>'
        assert [link.href for link in links(html)] == ["/s"]

    def test_noscript_links_count(self) -> None:
        """A link inside `<noscript>` counts, hidden, where the `<noscript>` is (tests/test_noscript.py)."""
        html = '<a href="/1">1</a><noscript><a href="/n">n</a></noscript><a href="/2">2</a>'
        assert [(link.href, link.hidden) for link in links(html)] == [
            ("/1", False),
            ("/n", True),
            ("/2", False),
        ]


class TestTextAndRel:
    @pytest.mark.parametrize(
        ("html", "text"),
        [
            ('<a href="/">  Best \n\t <b>Shoes</b>  </a>', "Best Shoes"),
            ('<a href="/">Best&nbsp;&nbsp;Shoes</a>', "Best Shoes"),
            ('<a href="/"><img src="l.png" alt="  Pretty   Logo "></a>', "Pretty Logo"),
            ('<a href="/"><img alt=""><img alt="Second"></a>', "Second"),
            ('<a href="/"> <img alt="Logo"> Words </a>', "Words"),
            ('<a href="/"><img src="x.png"></a>', ""),
            ('<a href="/">A<!-- comment -->B</a>', "AB"),
            # Scripts, styles and templates inside a link are no text of it.
            ('<a href="/">Video<script>var s = "<b>";</script> title</a>', "Video title"),
            (
                '<a href="/"><script type="text/x"><![CDATA[ <source srcset="x.jpg"> ]]></script>Card</a>',
                "Card",
            ),
            ('<a href="/"><style>.a { fill: #444; }</style>Mail</a>', "Mail"),
            ('<a href="/"><svg><style>.pocztaA {fill: #444; }</style><path/></svg> poczta</a>', "poczta"),
            ('<a href="/"><template>Not this</template>This</a>', "This"),
            ('<a href="/"><script>x</script><img alt="Only the image"></a>', "Only the image"),
            # Unicode white space collapses: no-break, ideographic, thin, line separator...
            ('<a href="/">Best&nbsp;\u3000\u2009Shoes\u2028now</a>', "Best Shoes now"),
            ('<a href="/">\u00a0 Best \u00a0</a>', "Best"),
            # ...other characters stay: a zero-width space and the information separators are no white space.
            ('<a href="/">a\u200bb</a>', "a\u200bb"),
            ('<a href="/">a \x1c b</a>', "a \x1c b"),
        ],
    )
    def test_text(self, html: str, text: str) -> None:
        """Text is the collapsed text content without scripts, styles and templates; an image-only
        link takes its first non-empty alt."""
        assert only(html).text == text

    @pytest.mark.parametrize(
        ("html", "text", "image"),
        [
            ('<a href="/">Words</a>', "Words", False),
            ('<a href="/"><img alt="Logo"></a>', "Logo", True),
            ('<a href="/"><img alt="Logo"> Words</a>', "Words", False),
            ('<a href="/"><img src="x.png"></a>', "", False),
            ('<map name="m"><area href="/" alt="Region"></map>', "Region", True),
            ('<map name="m"><area href="/"></map>', "", False),
        ],
    )
    def test_image(self, html: str, text: str, image: bool) -> None:
        """`image` says the text is an image's alt: the link has none of its own."""
        assert (only(html).text, only(html).image) == (text, image)

    @pytest.mark.parametrize(
        ("rel", "tokens"),
        [
            ("ugc,nofollow", ("ugc", "nofollow")),
            ("NoFollow  Sponsored", ("nofollow", "sponsored")),
            (" nofollow,\tnoopener\n, ", ("nofollow", "noopener")),
            ("", ()),
            ("nofollow\u00a0ugc", ("nofollow\u00a0ugc",)),  # only ASCII whitespace separates
        ],
    )
    def test_rel_tokens(self, rel: str, tokens: tuple[str, ...]) -> None:
        """rel splits on ASCII whitespace and commas, lower-cased, without empty tokens."""
        assert only(f'<a href="/" rel="{rel}">x</a>').rel == tokens
        assert rel_tokens(rel) == tokens

    def test_no_rel(self) -> None:
        """A link without rel has no tokens."""
        assert only('<a href="/">x</a>').rel == ()
        assert rel_tokens(None) == ()

    def test_collapse(self) -> None:
        """collapse joins any run of Unicode white space into one space and trims, nothing else."""
        assert collapse("\n a \t\u00a0 b  ") == "a b"
        assert collapse("\u3000a\u2003\u205fb\x85") == "a b"
        assert collapse(" a\x1fb  c ") == "a\x1fb c"


class TestBase:
    @pytest.mark.parametrize(
        ("html", "base", "first"),
        [
            (
                '<base href="https://cdn.example.net/assets/">',
                "https://cdn.example.net/assets/",
                "https://cdn.example.net/assets/x",
            ),
            ('<base href="sub/">', "https://example.com/dir/sub/", "https://example.com/dir/sub/x"),
            ('<base href="/">', "https://example.com/", "https://example.com/x"),
            (
                '<base target="_blank" style="x"><base href="/b/"><base href="/ignored/">',
                "https://example.com/b/",
                "https://example.com/b/x",
            ),
            ('<base href="http://[::1">', URL, "https://example.com/dir/x"),
            (
                '<p>body first</p><base href="/late/">',
                "https://example.com/late/",
                "https://example.com/late/x",
            ),
        ],
    )
    def test_base(self, html: str, base: str, first: str) -> None:
        """The first `<base href>` resolves against the page URL and becomes the base of every href."""
        page = parse_page(html + '<a href="x">x</a>', URL)
        assert page.base_url == base
        assert page.links[0].url == first

    def test_no_base_means_page_url(self) -> None:
        """Without `<base href>` the base is the final URL."""
        assert parse_page("<p>x</p>", URL).base_url == URL

    def test_base_in_noscript_does_not_count(self) -> None:
        """A `<base>` inside `<noscript>` is for browsers without scripts: not the page's base."""
        page = parse_page('<noscript><base href="/nojs/"><a href="x">x</a></noscript><a href="y">y</a>', URL)
        assert page.base_url == URL
        assert [link.url for link in page.links] == ["https://example.com/dir/x", "https://example.com/dir/y"]


class TestEncoding:
    def test_queries_in_the_page_encoding(self) -> None:
        """On a windows-1252 page, link, base, canonical and refresh queries are written in it."""
        html = (
            '<base href="/b/?from=caf\u00e9"><link rel="canonical" href="/c?q=\u00e9">'
            '<meta http-equiv="refresh" content="0; url=/r?q=\u00e9">'
            '<a href="?q=caf\u00e9">q</a><a href="/caf\u00e9">path</a>'
            '<a href="/x?q=\u0436">no such letter</a>'
        )
        page = parse_page(html, URL, encoding="windows-1252")
        assert page.base_url == "https://example.com/b/?from=caf%E9"
        assert page.canonical == "https://example.com/c?q=%E9"
        assert page.refresh_url == "https://example.com/r?q=%E9"
        assert [link.url for link in page.links] == [
            "https://example.com/b/?q=caf%E9",
            "https://example.com/caf%C3%A9",
            "https://example.com/x?q=%26%231078%3B",
        ]

    def test_utf8_by_default(self) -> None:
        """Without an encoding, the page is UTF-8 and so are its queries."""
        assert only('<a href="/x?q=\u00e9">q</a>').url == "https://example.com/x?q=%C3%A9"

    def test_read_for_targets_alike(self) -> None:
        """A link read for a target is resolved in the page's encoding too."""
        target = urls.Target.of("https://example.com/x?q=%E9", "exact")
        page = parse_page('<a href="/x?q=\u00e9">q</a>', URL, targets=[target], encoding="windows-1252")
        assert [link.url for link in page.links] == ["https://example.com/x?q=%E9"]


class TestHidden:
    @pytest.mark.parametrize(
        ("html", "hidden"),
        [
            ('<a href="/" hidden>x</a>', True),
            ('<div hidden><p><a href="/">x</a></p></div>', True),
            ('<a href="/" style="display:none">x</a>', True),
            ('<div style="DISPLAY : NONE !important"><a href="/">x</a></div>', True),
            ('<span style="color:red; visibility: hidden"><a href="/">x</a></span>', True),
            ('<div style="visibility:collapse"><a href="/">x</a></div>', True),
            ('<div style="display:none; display:block"><a href="/">x</a></div>', False),
            ('<div style="display:none !important; display:block"><a href="/">x</a></div>', True),
            ('<div style="display:block; font-family: none"><a href="/">x</a></div>', False),
            ('<a href="/" style="display:inline">x</a>', False),
            ('<div aria-hidden="true"><a href="/">x</a></div>', False),
            ('<a href="/">x</a>', False),
            # `hidden=until-found` is found by search and scrolling: not hidden.
            ('<div hidden="until-found"><a href="/">x</a></div>', False),
            ('<a href="/" hidden="UNTIL-FOUND">x</a>', False),
            ('<div hidden="until-found "><a href="/">x</a></div>', True),  # an invalid value hides
            ('<div hidden=""><a href="/">x</a></div>', True),
            # The nearest inline visibility wins: a `visible` nearer the link undoes a `hidden`.
            (
                '<div style="visibility:hidden"><p style="visibility:visible"><a href="/">x</a></p></div>',
                False,
            ),
            ('<div style="visibility:hidden"><a href="/" style="visibility: visible">x</a></div>', False),
            (
                '<div style="visibility:visible"><p style="visibility:hidden"><a href="/">x</a></p></div>',
                True,
            ),
            (
                '<div style="visibility:hidden"><p style="visibility:inherit"><a href="/">x</a></p></div>',
                True,
            ),
            ('<div style="visibility:hidden"><p style="visibility:unset"><a href="/">x</a></p></div>', True),
            (
                '<div style="visibility:hidden"><p style="visibility:initial"><a href="/">x</a></p></div>',
                False,
            ),
            ('<div style="visibility:hidden; visibility: bogus"><a href="/">x</a></div>', True),
            ('<div style="visibility:hidden !important; visibility:visible"><a href="/">x</a></div>', True),
            # ...but nothing undoes `display: none` or `hidden` around the link.
            ('<div style="display:none"><a href="/" style="visibility:visible">x</a></div>', True),
            ('<div hidden><p style="display:block"><a href="/">x</a></p></div>', True),
        ],
    )
    def test_hidden(self, html: str, hidden: bool) -> None:
        """Hidden: a `hidden` attribute (but until-found) or an inline display:none on the link or an
        ancestor, or the nearest inline visibility hidden or collapse."""
        assert only(html).hidden is hidden

    def test_hidden_stops_at_its_element(self) -> None:
        """A hidden element hides its own links only, not those after it."""
        html = '<div hidden><a href="/1">1</a></div><a href="/2">2</a>'
        assert [link.hidden for link in links(html)] == [True, False]


class TestRegion:
    @pytest.mark.parametrize(
        ("html", "region"),
        [
            ('<p><a href="/">x</a></p>', Region.MAIN),
            ('<nav><a href="/">x</a></nav>', Region.NAV),
            ('<header><a href="/">x</a></header>', Region.HEADER),
            ('<footer><div><a href="/">x</a></div></footer>', Region.FOOTER),
            ('<aside><a href="/">x</a></aside>', Region.ASIDE),
            ('<header><nav><a href="/">x</a></nav></header>', Region.NAV),
            ('<nav><main><a href="/">x</a></main></nav>', Region.MAIN),
            ('<div role="navigation"><a href="/">x</a></div>', Region.NAV),
            ('<div role="Banner"><a href="/">x</a></div>', Region.HEADER),
            ('<div role="contentinfo"><a href="/">x</a></div>', Region.FOOTER),
            ('<div role="complementary"><a href="/">x</a></div>', Region.ASIDE),
            ('<nav role="presentation"><a href="/">x</a></nav>', Region.MAIN),
            # HTML-AAM: a header or footer inside sectioning content or <main> is not the page's.
            ('<article><header><a href="/">x</a></header></article>', Region.MAIN),
            ('<main><footer><a href="/">x</a></footer></main>', Region.MAIN),
            ('<section><header><a href="/">x</a></header></section>', Region.MAIN),
            ('<div role="main"><header><a href="/">x</a></header></div>', Region.MAIN),
            ('<aside><footer><a href="/">x</a></footer></aside>', Region.ASIDE),
            ('<article><header role="banner"><a href="/">x</a></header></article>', Region.HEADER),
            ('<article><nav><a href="/">x</a></nav></article>', Region.NAV),
            # Comments win over any landmark, by id or class token, case-insensitively.
            ('<div id="comments"><a href="/">x</a></div>', Region.COMMENTS),
            ('<ol class="commentlist"><li><a href="/">x</a></li></ol>', Region.COMMENTS),
            ('<div class="media Comment-Body"><a href="/">x</a></div>', Region.COMMENTS),
            ('<div id="disqus_thread"><a href="/">x</a></div>', Region.COMMENTS),
            ('<section class="comments-area"><nav><a href="/">x</a></nav></section>', Region.COMMENTS),
            ('<footer><div class="comment"><a href="/">x</a></div></footer>', Region.COMMENTS),
            ('<div class="no-comments commentary"><a href="/">x</a></div>', Region.MAIN),
            ('<a href="/" class="comment">x</a>', Region.MAIN),
        ],
    )
    def test_region(self, html: str, region: Region) -> None:
        """Comments by id/class first, else the nearest landmark, else main."""
        assert only(html).region is region

    @pytest.mark.parametrize("marker", sorted(COMMENT_MARKERS))
    def test_every_comment_marker(self, marker: str) -> None:
        """Each documented marker makes a comments region as an id or as a class token, in any case."""
        assert only(f'<div id="{marker.upper()}"><a href="/">x</a></div>').region is Region.COMMENTS
        assert (
            only(f'<div class="x {marker.title()}"><p><a href="/">x</a></p></div>').region is Region.COMMENTS
        )

    def test_regions_of_siblings(self) -> None:
        """Each link gets its own region; cached ancestors do not leak into siblings."""
        html = (
            '<body class="x"><header class="site"><a href="/h">h</a></header>'
            '<div class="wrap"><article><a href="/m">m</a><div id="comments"><a href="/c">c</a></div>'
            '</article><aside><a href="/a">a</a></aside></div><footer><a href="/f">f</a></footer></body>'
        )
        assert [link.region for link in links(html)] == [
            Region.HEADER,
            Region.MAIN,
            Region.COMMENTS,
            Region.ASIDE,
            Region.FOOTER,
        ]


class TestMetaRobots:
    def test_head_and_body_in_document_order(self) -> None:
        """Every robots and index-agent meta counts, head or body, names lower-cased, content as written."""
        html = (
            '<head><meta name="ROBOTS" content="NoIndex"><meta name="bingbot" content="nofollow"></head>'
            '<body><p>x</p><meta name="GoogleBot" content="nofollow, noarchive">'
            '<meta name="robots"><meta name="googlebot-news" content="noindex"></body>'
        )
        assert parse_page(html, URL).meta_robots == (
            ("robots", "NoIndex"),
            ("googlebot", "nofollow, noarchive"),
            ("robots", ""),
        )

    def test_other_index_agent(self) -> None:
        """With another index agent its metas count and Googlebot's do not."""
        html = '<meta name="googlebot" content="noindex"><meta name="BingBot" content="none">'
        assert parse_page(html, URL, index_agent="Bingbot").meta_robots == (("bingbot", "none"),)

    def test_template_meta_is_ignored(self) -> None:
        """A meta inside `<template>` is not part of the document."""
        assert (
            parse_page('<template><meta name="robots" content="noindex"></template>', URL).meta_robots == ()
        )


class TestCanonical:
    @pytest.mark.parametrize(
        ("html", "canonical"),
        [
            ('<link rel="canonical" href="/c">', "https://example.com/c"),
            ('<base href="/b/"><link rel="Canonical foo" href="c">', "https://example.com/b/c"),
            (
                '<link rel="canonical" hreflang="de" href="/de"><link rel="canonical" href="/c">',
                "https://example.com/c",
            ),
            (
                '<link rel="canonical" media="print" href="/p">'
                '<link rel="canonical" type="text/html" href="/t">',
                None,
            ),
            ('<link rel="canonical" lang="en" href="/l">', None),
            (
                '<link rel="alternate" href="/a"><link rel="canonical" href="/c">'
                '<link rel="canonical" href="/d">',
                "https://example.com/c",
            ),
            ('<link rel="canonical" href="javascript:x">', None),
            ("<p>body</p><link rel='canonical' href='/body'>", None),
            ("<head></head><body><link rel='canonical' href='/body'></body>", None),
            # With scripting on, a pixel in <noscript> does not close <head> before the canonical.
            (
                '<noscript><img src="/px.gif"></noscript><link rel="canonical" href="/c">',
                "https://example.com/c",
            ),
            ("<title>t</title>", None),
            # Nor does the content of a `<noscript>` count, read as markup for its link or not.
            ('<noscript><link rel="canonical" href="/n"></noscript>', None),
            ('<noscript><a href="/x">x</a><link rel="canonical" href="/n"></noscript>', None),
        ],
    )
    def test_canonical(self, html: str, canonical: str | None) -> None:
        """The first `<head>` canonical without hreflang/lang/media/type, resolved against the base."""
        assert parse_page(html, URL).canonical == canonical


class TestRefresh:
    @pytest.mark.parametrize(
        ("content", "target"),
        [
            ("0; url=/next", "https://example.com/next"),
            ("0;URL='/q'", "https://example.com/q"),
            ("1; url=&quot;/x y&quot;", "https://example.com/x%20y"),
            ("0.5,url=/y", "https://example.com/y"),
            (".5; url=/dot", "https://example.com/dot"),
            ("1.9; url=/d", "https://example.com/d"),
            ("  0 ;  URL = /spaces", "https://example.com/spaces"),
            ("0; /bare", "https://example.com/bare"),
            ("0 https://other.example/", "https://other.example/"),
            ("0; url='/quoted' trailing", "https://example.com/quoted"),
            ("0; url=sub", "https://example.com/dir/sub"),
            ("0", None),
            ("0;", None),
            ("2; url=/two", None),
            ("30; url=/later", None),
            ("0; url=javascript:alert(1)", None),
            ("0x; url=/x", None),
            ("soon; url=/x", None),
            ("9" * 5000 + "; url=/x", None),
        ],
    )
    def test_refresh(self, content: str, target: str | None) -> None:
        """Instant (<= 1 s) refreshes parsed as browsers do; a longer delay or no URL is no redirect."""
        assert parse_page(f'<meta http-equiv="refresh" content="{content}">', URL).refresh_url == target

    def test_first_parsable_refresh_wins(self) -> None:
        """A malformed refresh is skipped; the first that parses is the page's, even in the body."""
        html = (
            '<meta http-equiv="REFRESH" content="soon"><p>x</p>'
            '<meta http-equiv="refresh" content="0; url=/first">'
            '<meta http-equiv="refresh" content="0; url=/second">'
        )
        assert parse_page(html, URL).refresh_url == "https://example.com/first"

    @pytest.mark.parametrize("extra", ["", '<a href="/link">a link, so the content is read</a>'])
    def test_noscript_refresh_is_ignored(self, extra: str) -> None:
        """A refresh in `<noscript>` is for browsers without scripts; we parse as one with them."""
        html = f'<noscript><meta http-equiv="refresh" content="0; url=/nojs">{extra}</noscript>'
        assert parse_page(html, URL).refresh_url is None


class TestIndexLimit:
    def test_link_after_the_limit(self) -> None:
        """Links starting after the first 2 MB of UTF-8 text are flagged; earlier ones are not."""
        html = '<a href="/early">e</a><p>' + "x" * INDEX_LIMIT_BYTES + '</p><a href="/late">l</a>'
        assert [(link.href, link.beyond_index_limit) for link in links(html)] == [
            ("/early", False),
            ("/late", True),
        ]

    def test_limit_counts_bytes_not_characters(self) -> None:
        """The limit is in UTF-8 bytes: two-byte characters reach it with half as many characters."""
        filler = "\u00e9" * (INDEX_LIMIT_BYTES // 2)
        html = f'<a href="/early">e</a><p>{filler}</p><a href="/late">l</a>'
        assert len(html) < INDEX_LIMIT_BYTES
        assert [link.beyond_index_limit for link in links(html)] == [False, True]

    def test_link_cut_by_the_limit(self) -> None:
        """A link whose start tag straddles the limit was never seen whole: it is beyond."""
        head = '<a href="/early">e</a><p>'
        filler = "x" * (INDEX_LIMIT_BYTES - len(head) - 5)
        html = head + filler + '</p><a href="/cut">c</a><a href="/after">a</a>'
        assert [link.beyond_index_limit for link in links(html)] == [False, True, True]

    def test_short_page_is_within(self) -> None:
        """On a page under the limit no link is beyond it, including non-http ones skipped in between."""
        html = '<a href="mailto:x@y.z">m</a><a href="/1">1</a>' * 50
        assert not any(link.beyond_index_limit for link in links(html))


class TestPage:
    def test_outbound_links(self) -> None:
        """Outbound links are those to another host; www and subdomains are other hosts."""
        html = (
            '<a href="/in">1</a><a href="https://EXAMPLE.com:8443/x">2</a><a href="http://example.com/y">3</a>'
            '<a href="https://www.example.com/">4</a><a href="https://blog.example.com/">5</a>'
            '<a href="https://other.org/">6</a>'
        )
        assert parse_page(html, URL).outbound_links == 3

    def test_visible_text(self) -> None:
        """Visible text leaves out scripts, styles, noscript, templates and the head; lower-cased."""
        html = (
            "<head><title>Title Here</title><style>.x{}</style></head>"
            "<body><p>Visit\n  <b>Example.COM</b></p>"
            "<script>var s = 'script.example';</script><noscript>nojs.example</noscript>"
            "<template>tpl.example</template><style>p{}</style><div>Last&nbsp;words</div></body>"
        )
        assert parse_page(html, URL).visible_text == "visit example.com last words"

    def test_page_fields(self) -> None:
        """The page keeps its final URL; an empty document has no links, no metas, no canonical."""
        assert parse_page("", URL) == Page(
            url=URL,
            base_url=URL,
            links=(),
            meta_robots=(),
            canonical=None,
            refresh_url=None,
            visible_text="",
            bot_challenge=False,
            outbound_links=0,
        )

    def test_byte_order_mark_is_no_text(self) -> None:
        """A leading U+FEFF that a decoder left in place is not part of the visible text."""
        assert parse_page("\ufeff<p>Hello</p>", URL).visible_text == "hello"

    def test_frameset_page(self) -> None:
        """A frameset document (no body) still parses."""
        page = parse_page('<frameset><frame src="/f"></frameset>', URL)
        assert (page.links, page.visible_text) == ((), "")


CLOUDFLARE = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>'
    '<meta name="robots" content="noindex,nofollow"><meta http-equiv="refresh" content="390"></head>'
    '<body class="no-js"><div class="main-wrapper" role="main"><div class="main-content">'
    "<noscript><div><span>Enable JavaScript and cookies to continue</span></div></noscript></div></div>"
    "<script>(function(){window._cf_chl_opt={cvId: '3',cZone: 'example.com',cType: 'managed'};"
    "var cpo = document.createElement('script');"
    "cpo.src = '/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=8';}());</script></body></html>"
)
ARTICLE = (
    "<html><head><title>{title}</title>{script}</head><body><nav>"
    + "".join(f'<a href="/s{i}">section {i}</a>' for i in range(12))
    + "</nav><article><p>"
    + "A long article about shoes. " * 100
    + '</p></article><div id="comments"><form><div class="g-recaptcha" data-sitekey="k"></div>'
    '<script src="https://www.google.com/recaptcha/api.js"></script></form></div></body></html>'
)
JSD = "<script>a.src='/cdn-cgi/challenge-platform/scripts/jsd/main.js'</script>"


class TestBotChallenge:
    @pytest.mark.parametrize(
        "html",
        [
            CLOUDFLARE,
            "<title>Attention Required! | Cloudflare</title><p>Sorry, you have been blocked</p>",
            '<div class="cf-chl-widget"></div>',
            '<meta name="robots" content="noindex"><script src="/_Incapsula_Resource?SWJIYLWA=1"></script>',
            "<p>Please enable JS</p><script src='https://ct.captcha-delivery.com/c.js'></script>",
            '<title>Access to this page has been denied</title><div id="px-captcha"></div>',
            "<script>document.cookie='sucuri_cloudproxy_js=x'</script>",
            "<script>window.awsWafCookieDomainList = [];window.gokuProps = {'key': 'k'};</script>"
            '<script src="https://abc.token.awswaf.com/abc/challenge.js"></script>',
            '<div id="captcha-container"></div><script>AwsWafCaptcha.renderCaptcha(c, {});</script>',
            '<form id="captcha-form"><div class="g-recaptcha" data-sitekey="k"></div></form>',
            '<form><div class="h-captcha" data-sitekey="k"></div></form>',
        ],
    )
    def test_challenge_pages(self, html: str) -> None:
        """Thin pages carrying a vendor's challenge title or marker are challenges."""
        assert parse_page(html, URL).bot_challenge

    @pytest.mark.parametrize(
        "html",
        [
            ARTICLE.format(title="Shoes", script=""),
            ARTICLE.format(title="Just a moment...", script=""),
            ARTICLE.format(title="Shoes", script=JSD),
            f"<title>Tiny</title>{JSD}<p>A small page.</p>",
            "<title>Tiny</title><p>Hello</p>",
            # A single-page-app shell: thin, with the scripts such apps load on every page.
            '<div id="root"></div><script src="https://www.google.com/recaptcha/api.js?render=k"></script>'
            '<script src="https://abc.token.awswaf.com/abc/challenge.js"></script>',
        ],
    )
    def test_normal_pages(self, html: str) -> None:
        """Full pages with a reCAPTCHA comment form, an unlucky title or Cloudflare's bot script are not."""
        assert not parse_page(html, URL).bot_challenge


_FRAGMENTS = st.sampled_from(
    [
        "<a href=",
        '<a href="',
        '">',
        "</a>",
        "<area href=/m alt=m>",
        "<base href=",
        '<meta http-equiv="refresh" content="',
        '<meta name="robots" content="',
        "<link rel=canonical href=",
        "<template>",
        "</template>",
        "<svg><a xlink:href=/x>",
        "<table>",
        "<p>",
        "<img alt=",
        '<div style="display:none">',
        "<header>",
        "<noscript>",
        "</noscript>",
        "<script>",
        "</script>",
        "<style>",
        "<svg>",
        "<foreignObject>",
        '<p hidden="until-found">',
        '<i style="visibility: visible">',
        "?q=",
        "0; url=",
        "javascript:",
        "//",
        "&amp;",
        "&copy",
        "&#0;",
        "\x00",
        "\ud800",
        "\udfff",
        "\u00e9",
    ]
)
_HTML = st.lists(st.one_of(_FRAGMENTS, st.text(max_size=20)), max_size=40).map("".join)
_HOSTS = st.one_of(
    st.from_regex(
        r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,2}\.[a-z]{2,6}",
        fullmatch=True,
    ),
    st.ip_addresses(v=4).map(str),
    st.just("[::1]"),
    st.just("bücher.de"),
)
_PATHS = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="#?"), max_size=20)
_URLS = st.builds(
    lambda scheme, host, path, query: f"{scheme}://{host}/{path}{query}",
    st.sampled_from(["http", "https"]),
    _HOSTS,
    _PATHS,
    st.sampled_from(["", "?q=1", "?"]),
).filter(lambda url: urls.problem_with_absolute_http_url(url) is None)


@settings(max_examples=300, deadline=None)
@given(html=_HTML, url=_URLS, encoding=st.sampled_from(["utf-8", "windows-1252", "shift_jis", "iso-2022-jp"]))
def test_never_raises(html: str, url: str, encoding: str) -> None:
    """Any text at any http(s) URL, in any encoding, gives a page whose links are http(s) and whose
    fields are consistent."""
    page = parse_page(html, url, encoding=encoding)
    assert page.url == url
    assert all(urls.is_http(link.url) for link in page.links)
    assert all(token and token == token.lower() for link in page.links for token in link.rel)
    assert not any(link.beyond_index_limit for link in page.links)
    host = urls.host_key(url)
    assert page.outbound_links == sum(1 for link in page.links if urls.host_key(link.url) != host)
    assert page.visible_text is not None
    assert page.visible_text == page.visible_text.lower()
    assert page.refresh_url is None or urls.is_http(page.refresh_url)


@settings(max_examples=200, deadline=None)
@given(html=_HTML, url=_URLS)
def test_utf8_bytes_parse_as_the_text(html: str, url: str) -> None:
    """Handing the parser the text's UTF-8 bytes gives the same page as handing it the text."""
    html = "\ufeff" + html if len(html) % 2 else html
    assert parse_page(html.encode("utf-8", "surrogatepass"), url) == parse_page(html, url)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from(
            [
                b'<a href="/x">',
                b"</a>",
                b"\xc3",
                b"\xa9",
                b"\xf0\x9f",
                b"\xed\xa0\x80",
                b"\xff",
                b"caf\xc3\xa9 ",
            ]
        ),
        max_size=30,
    )
)
def test_bytes_not_utf8_parse_as_python_replaces_them(parts: list[bytes]) -> None:
    """A body said to be UTF-8 but holding other bytes reads as the standard's decoder reads it
    (a U+FFFD per maximal subpart), also where a tag cuts a sequence (Lexbor would join it)."""
    body = b"<p>" + b"".join(parts)
    url = "https://example.org/"
    decoded = decode_html(body, "text/html; charset=utf-8")
    assert parse_page(decoded.utf8, url) == parse_page(body.decode("utf-8", "replace"), url)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(codec=None, blacklist_categories=())), url=_URLS)
def test_never_raises_on_any_text(text: str, url: str) -> None:
    """Arbitrary text, lone surrogates and NULs included, parses without raising."""
    assert parse_page(text, url).url == url
