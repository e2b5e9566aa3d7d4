"""`<noscript>`: the page is parsed with scripting on, then each `<noscript>`'s content is read as
markup (contract, section 4): its links count, hidden, and no link text holds raw markup."""

from __future__ import annotations

from crawler.core.extract import INDEX_LIMIT_BYTES, parse_page
from crawler.models import Link, Region

URL = "https://example.com/dir/page.html"


def links(html: str) -> tuple[Link, ...]:
    return parse_page(html, URL).links


def only(html: str) -> Link:
    (link,) = links(html)
    return link


class TestLinksInNoscript:
    def test_a_link_only_in_noscript_counts_hidden(self) -> None:
        """A fallback link for browsers without scripts is a link of the page, flagged hidden."""
        link = only('<p>Ad</p><noscript><a href="https://ads.example/click?id=1">Ad</a></noscript>')
        assert (link.url, link.text, link.hidden) == ("https://ads.example/click?id=1", "Ad", True)

    def test_document_order_is_where_the_noscript_is(self) -> None:
        """Links of a `<noscript>` come between the links before and after it."""
        html = (
            '<a href="/1">1</a><noscript><div><a href="/n1">n1</a></div><a href="/n2">n2</a></noscript>'
            '<a href="/2">2</a>'
        )
        assert [link.href for link in links(html)] == ["/1", "/n1", "/n2", "/2"]

    def test_in_head(self) -> None:
        """A `<noscript>` in `<head>` neither ends the head (the canonical after it stays) nor hides
        its link."""
        html = (
            '<head><noscript><img src="/px.gif"><a href="/h">h</a></noscript>'
            '<link rel="canonical" href="/c"></head><body><p>x</p></body>'
        )
        page = parse_page(html, URL)
        assert page.canonical == "https://example.com/c"
        assert [(link.href, link.hidden) for link in page.links] == [("/h", True)]

    def test_region_around_and_inside(self) -> None:
        """The landmarks around a `<noscript>` and inside its content give the link its region."""
        html = (
            '<nav><noscript><a href="/n">n</a></noscript></nav>'
            '<noscript><footer><a href="/f">f</a></footer></noscript>'
            '<div id="disqus_thread"></div><noscript><a href="/d">d</a></noscript>'
        )
        assert [(link.href, link.region) for link in links(html)] == [
            ("/n", Region.NAV),
            ("/f", Region.FOOTER),
            ("/d", Region.MAIN),
        ]

    def test_template_in_noscript_does_not_count(self) -> None:
        """A `<template>`'s links never count, in a `<noscript>`'s content neither."""
        html = '<noscript><template><a href="/t">t</a></template><a href="/n">n</a></noscript>'
        assert [link.href for link in links(html)] == ["/n"]

    def test_nested_noscript(self) -> None:
        """The first `</noscript>` ends the content: a `<noscript>` in it is an element, hidden too."""
        html = '<noscript><noscript><a href="/deep">d</a></noscript><a href="/after">a</a>'
        assert [(link.href, link.hidden) for link in links(html)] == [("/deep", True), ("/after", False)]

    def test_counted_among_outbound_links(self) -> None:
        """Links of a `<noscript>` are links of the page: they count as outbound."""
        page = parse_page('<noscript><a href="https://other.example/">o</a></noscript>', URL)
        assert page.outbound_links == 1

    def test_svg_noscript_is_an_element_like_any_other(self) -> None:
        """An SVG `<noscript>` is no HTML `<noscript>`: its text is text, not markup to read."""
        html = (
            '<svg><noscript>&lt;a href="/text"&gt;not a link&lt;/a&gt;</noscript></svg><a href="/real">r</a>'
        )
        assert [link.href for link in links(html)] == ["/real"]

    def test_beyond_the_index_limit(self) -> None:
        """A link of a `<noscript>` starts where its `<noscript>` does, for the 2 MB limit too."""
        filler = "x" * INDEX_LIMIT_BYTES
        html = (
            f'<noscript><a href="/early">e</a></noscript><p>{filler}</p>'
            '<noscript><a href="/late">l</a></noscript><a href="/last">z</a>'
        )
        assert [(link.href, link.beyond_index_limit) for link in links(html)] == [
            ("/early", False),
            ("/late", True),
            ("/last", True),
        ]


class TestTextAroundNoscript:
    def test_an_image_in_noscript_gives_the_alt(self) -> None:
        """`<a href><noscript><img alt="A"></noscript></a>`: the text is `A`, an image's."""
        link = only('<a href="/i"><noscript><img alt="A"></noscript></a>')
        assert (link.text, link.image, link.hidden) == ("A", True, False)

    def test_no_markup_in_the_text(self) -> None:
        """A lazy-loaded image's fallback adds no markup to the text (quanta.org's author cards)."""
        html = (
            '<a href="/authors/joshua-sokol/"><img data-src="/j.jpg" class="lazy">'
            '<noscript><img class="absolute fit-x" src="/j.jpg" /></noscript> Joshua Sokol '
            "<span>Contributing Correspondent</span></a>"
        )
        assert only(html).text == "Joshua Sokol Contributing Correspondent"

    def test_character_references_decoded(self) -> None:
        """Read as markup, the content's character references are characters."""
        assert only('<a href="/t"><noscript>Tom &amp; Jerry</noscript></a>').text == "Tom & Jerry"

    def test_plain_text_kept(self) -> None:
        """Plain text in a `<noscript>` is part of the link's text."""
        assert only('<a href="/r">Read <noscript>more</noscript></a>').text == "Read more"

    def test_scripts_in_the_content_are_no_text(self) -> None:
        """Scripts and styles of the content are no text of the link either."""
        html = '<a href="/s"><noscript><script>var x = 1;</script><style>.a{}</style>Text</noscript></a>'
        assert only(html).text == "Text"

    def test_a_link_in_a_noscript_in_a_link(self) -> None:
        """The content's link counts, hidden; its text is also the outer link's, as in the DOM."""
        html = '<a href="/o">Outer <noscript><a href="/i">Inner</a></noscript></a>'
        assert [(link.href, link.text, link.hidden) for link in links(html)] == [
            ("/o", "Outer Inner", False),
            ("/i", "Inner", True),
        ]


class TestWhatDoesNotCount:
    def test_robots_meta_in_noscript(self) -> None:
        """A robots `<meta>` in `<noscript>` is for browsers without scripts: it does not count."""
        html = '<noscript><meta name="robots" content="noindex"><a href="/x">x</a></noscript>'
        assert parse_page(html, URL).meta_robots == ()

    def test_visible_text_leaves_the_content_out(self) -> None:
        """What a `<noscript>` says is not visible text, read as markup or not."""
        html = (
            '<p>Shown</p><noscript><a href="/x">nojs.example</a></noscript><noscript>plain.example</noscript>'
        )
        assert parse_page(html, URL).visible_text == "shown"
