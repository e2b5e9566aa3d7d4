"""The `auto` render gate: which raw `missing` pages look built by scripts (contract section 12)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from crawler.core import extract, urls
from crawler.core.decode import decode_html
from crawler.core.render_gate import (
    MOUNT_IDS,
    RawPage,
    RenderDecision,
    RenderReason,
    Skip,
    decide,
    needs_render,
)
from crawler.models import Status

TARGET = "https://www.target-shop.example/spring-sale"
MADE_UP = "https://www.made-up-target-4f2a.example/landing"
"""A target no corpus page names: only the empty-mount and no-links rules can fire for it."""
MISSING = RawPage(
    status=Status.MISSING,
    http_status=200,
    is_html=True,
    truncated=False,
    robots_index_allowed=True,
    noindex=False,
)
OUTSIDE = RenderReason.TARGET_OUTSIDE_LINKS
EMPTY = RenderReason.EMPTY_APP_ROOT
NO_LINKS = RenderReason.NO_LINKS
# An ordinary server-built page: navigation and article links, the target nowhere.
ARTICLE = """<!doctype html><html><head><title>Spring gardening</title>
<link rel="canonical" href="https://blog.example/spring"></head>
<body><header><nav><a href="/">Home</a> <a href="/about">About</a></nav></header>
<main id="app"><article><h1>Spring gardening</h1><p>Plant early, water often. See
<a href="https://seeds.example/tomatoes">our favourite seeds</a>.</p></article></main>
<footer><a href="/privacy">Privacy</a></footer>{extra}</body></html>"""


def _gate(html: str | bytes, targets: tuple[str, ...]) -> RenderDecision:
    """The gate's decision on a missing page, checked against the one the engine takes: from the
    signs the extractor noted on its own tree while it read the page for those targets."""
    decision = needs_render(MISSING, html, targets)
    wanted = [urls.Target.of(target, urls.MatchMode.PAGE) for target in targets]
    page = extract.parse_page(html, "https://site.test/post", targets=wanted, script_signs=True)
    if page.script_signs is not None:  # None: every target has a link there (no claim is missing)
        assert decide(MISSING, page.script_signs, targets) == decision
    return decision


def _reasons(html: str | bytes, *targets: str) -> RenderReason | None:
    return _gate(html, targets or (TARGET,)).reasons


def _article(extra: str) -> str:
    return ARTICLE.replace("{extra}", extra)


class TestPreconditions:
    """Only a whole 2xx HTML page that the index agent may index, with a claim missing, renders."""

    SHELL = '<html><body><div id="root"></div><script src="/app.js"></script></body></html>'

    @pytest.mark.parametrize(
        ("page", "skip"),
        [
            (replace(MISSING, status=Status.VERIFIED), Skip.NOT_MISSING),
            (replace(MISSING, status=Status.NOT_INDEXABLE), Skip.NOT_MISSING),
            (replace(MISSING, status=Status.PAGE_ERROR, http_status=404), Skip.NOT_MISSING),
            (replace(MISSING, http_status=404), Skip.NOT_2XX),
            (replace(MISSING, http_status=None), Skip.NOT_2XX),
            (replace(MISSING, http_status=304), Skip.NOT_2XX),
            (replace(MISSING, is_html=False), Skip.NOT_HTML),
            (replace(MISSING, truncated=True), Skip.TRUNCATED),
            (replace(MISSING, robots_index_allowed=False), Skip.ROBOTS_INDEX_DISALLOWED),
            (replace(MISSING, noindex=True), Skip.NOINDEX),
            (replace(MISSING, truncated=True, noindex=True), Skip.TRUNCATED),
        ],
    )
    def test_a_failed_condition_skips_even_a_script_shell(self, page: RawPage, skip: Skip) -> None:
        """A shell that would render is skipped for the first condition it fails, named."""
        decision = needs_render(page, self.SHELL, [TARGET])
        assert decision == RenderDecision(skipped=skip)
        assert not decision.render
        assert decision.why == (skip.value,)

    @pytest.mark.parametrize("http_status", [200, 203, 299])
    def test_any_2xx_with_robots_unknown_renders(self, http_status: int) -> None:
        """A 2xx of any kind counts, and robots not asked (None) counts as allowed, as in the verdict."""
        page = replace(MISSING, http_status=http_status, robots_index_allowed=None)
        assert needs_render(page, self.SHELL, [TARGET]).reasons == EMPTY | NO_LINKS


class TestScriptBuiltPages:
    """Pages whose links scripts would build render, and the decision says which sign it saw."""

    def test_react_shell(self) -> None:
        """create-react-app's shell: an empty `#root`, a noscript notice beside it, no link at all."""
        html = """<!doctype html><html><head><title>Shop</title>
        <script defer src="/static/js/main.3f2a.js"></script></head>
        <body><noscript>You need to enable JavaScript to run this app.</noscript>
        <div id="root"></div></body></html>"""
        decision = _gate(html, (TARGET,))
        assert decision.reasons == EMPTY | NO_LINKS
        assert decision.render
        assert decision.why == ("empty_app_root", "no_links")

    def test_next_client_only_page_with_its_state(self) -> None:
        """Next.js without server rendering: empty `#__next`, the target in `__NEXT_DATA__`."""
        html = """<html><body><div id="__next"></div>
        <script id="__NEXT_DATA__" type="application/json">{"props":{"pageProps":{"partners":
        [{"name":"Target","url":"https://www.target-shop.example/spring-sale"}]}},"page":"/"}</script>
        <a href="/imprint">Imprint</a></body></html>"""
        assert _reasons(html) == OUTSIDE | EMPTY

    def test_nuxt_state_escapes_its_slashes(self) -> None:
        """Nuxt (devalue) writes `/` as `\\u002F`: the name after it still counts."""
        html = """<html><body><div id="__nuxt"><!----></div><script>window.__NUXT__={data:[{link:
        "https:\\u002F\\u002Ftarget-shop.example\\u002Fspring-sale"}]}</script></body></html>"""
        assert _reasons(html) == OUTSIDE | EMPTY | NO_LINKS

    def test_gatsby_mount_empty_beside_server_links(self) -> None:
        """An empty `#___gatsby` renders even when the page has links of its own."""
        html = _article('<div id="___gatsby">\n  <!-- hydrated later -->\n</div>')
        assert _reasons(html) == EMPTY

    @pytest.mark.parametrize("mount", MOUNT_IDS)
    def test_every_mount_id(self, mount: str) -> None:
        """Each framework's mount id counts, empty or holding only what a browser does not show."""
        inside = (
            "<script>boot()</script><style>p{}</style><template><p>x</p></template><noscript>!</noscript>"
        )
        assert _reasons(_article(f'<div id="{mount}"> {inside} </div>')) == EMPTY

    @pytest.mark.parametrize(
        "place",
        [
            '<script>window.__STATE__={"partner":"https:\\/\\/target-shop.example\\/spring-sale"}</script>',
            "<script>var u = 'https://shop.target-shop.example/x';</script>",
            '<script type="application/ld+json">{"sameAs": "https://www.target-shop.example/"}</script>',
            '<div data-partner-url="https://www.target-shop.example/spring-sale" class="js-partner"></div>',
            '<div data-props="{&quot;href&quot;:&quot;https://TARGET-SHOP.example&quot;}"></div>',
            '<button data-href="https://www.target-shop.example/">Shop now</button>',
            '<a class="js-link" data-url="https://www.target-shop.example/">Shop</a>',
            '<script>go("https%3A%2F%2Ftarget-shop.example%2Fspring-sale")</script>',
            '<script src="https://widget.target-shop.example/badge.js" async></script>',
            '<template><a href="https://www.target-shop.example/spring-sale">Spring sale</a></template>',
            "<p>Our partner target-shop.example has a sale.</p>",
        ],
        ids=[
            "json-escaped",
            "script-text",
            "json-ld",
            "data-attribute",
            "entity-quoted-json",
            "data-href",
            "anchor-without-href",
            "percent-encoded",
            "widget-script",
            "template",
            "visible-text",
        ],
    )
    def test_target_outside_every_link(self, place: str) -> None:
        """The target's host or registrable domain outside every link, however written, renders."""
        assert _reasons(_article(place)) == OUTSIDE

    def test_idna_target_in_unicode_spelling(self) -> None:
        """An IDNA target is found in the Unicode spelling a script writes."""
        html = _article('<script>cfg = {shop: "https://bücher-laden.example/angebot"}</script>')
        assert _reasons(html, "https://xn--bcher-laden-thb.example/") == OUTSIDE

    def test_any_pending_target_counts(self) -> None:
        """Of several targets still missing, one named outside the links is enough."""
        html = _article('<script>p = "target-shop.example"</script>')
        assert _reasons(html, "https://absent.example/", TARGET) == OUTSIDE

    def test_text_and_bytes_agree(self) -> None:
        """The decoded text and its UTF-8 bytes (with or without a BOM) give the same decision."""
        html = _article('<script>cfg = {shop: "https://bücher-laden.example/"}</script>')
        target = "https://xn--bcher-laden-thb.example/"
        decisions = {
            needs_render(MISSING, body, [target])
            for body in (html, html.encode(), b"\xef\xbb\xbf" + html.encode(), "\ufeff" + html)
        }
        assert decisions == {RenderDecision(reasons=OUTSIDE)}


class TestStaticPages:
    """Ordinary pages, and names that only look like the target's, do not render."""

    def test_article_without_the_target(self) -> None:
        """A server-built article that never names the target looks static."""
        decision = needs_render(MISSING, _article(""), [TARGET])
        assert decision == RenderDecision(skipped=Skip.LOOKS_STATIC)
        assert decision.why == ("looks_static",)

    @pytest.mark.parametrize(
        "link",
        [
            '<a href="https://www.target-shop.example/other">www.target-shop.example</a>',
            '<a title="target-shop.example" href="/out?to=https%3A%2F%2Ftarget-shop.example">Partner</a>',
            '<map><area href="https://target-shop.example/" alt="target-shop.example"></map>',
            '<a href="https://target-shop.example/"><svg><a href="https://target-shop.example/x">'
            "target-shop.example</a></svg></a>",
        ],
        ids=["href-and-text", "redirect-link", "area", "nested-svg-link"],
    )
    def test_target_only_inside_links(self, link: str) -> None:
        """A name inside a link's attributes or content is inside a link (a `wrong_target` page)."""
        assert _reasons(_article(link)) is None

    @pytest.mark.parametrize(
        "text",
        [
            "nottarget-shop.example",
            "my-target-shop.example",
            "target-shop.example.org",
            "target-shop.examples",
            "target-shop.example_x",
            "ütarget-shop.example",
        ],
    )
    def test_lookalike_names(self, text: str) -> None:
        """Another name that holds the target's as a substring is not the target's."""
        assert _reasons(_article(f"<script>var u = 'https://{text}/';</script>")) is None

    def test_name_at_the_end_of_a_sentence(self) -> None:
        """A final dot ends the name rather than starting another label."""
        assert _reasons(_article("<p>Buy at target-shop.example.</p>")) == OUTSIDE

    @pytest.mark.parametrize(
        "mount",
        [
            '<div id="root"><h1>Server rendered</h1></div>',
            '<div id="app">Loading…</div>',
            '<div id="Root"></div>',  # ids are case-sensitive
            '<div class="root"></div>',
        ],
    )
    def test_mount_with_content_or_no_mount(self, mount: str) -> None:
        """A mount that shows something, or an element that is no mount, is no sign."""
        assert _reasons(_article(mount)) is None

    def test_links_only_in_noscript_content(self) -> None:
        """Links in `<noscript>` content are read as links (section 4), but a browser running
        scripts shows none of them: to the gate such a page has no link, and a mount holding
        only such content is empty (the extractor's tree, changed by reading them, is not used)."""
        html = (
            '<html><body><div id="root"><noscript><a href="/plain">plain site</a></noscript></div>'
            "<noscript><p>Enable JavaScript or <a href='/lite'>use the lite site</a></p></noscript>"
            "</body></html>"
        )
        assert _reasons(html) == EMPTY | NO_LINKS
        whole = extract.parse_page(html, "https://site.test/")
        assert [link.url for link in whole.links] == ["https://site.test/plain", "https://site.test/lite"]

    def test_links_only_in_svg_xlink_or_without_href(self) -> None:
        """An `<a>` without href and an SVG `xlink:href` are no links: such a page has none."""
        html = '<html><body><a name="top">Top</a><svg><a xlink:href="/x">x</a></svg></body></html>'
        assert _reasons(html) == NO_LINKS

    def test_area_is_a_link(self) -> None:
        """An image map's `<area href>` is a link (section 4), so the page has one."""
        html = '<html><body><map name="m"><area href="/x" alt="X"></map></body></html>'
        assert _reasons(html) is None


class TestDecision:
    """The decision is one frozen value: render with reasons, or skip with one word."""

    @pytest.mark.parametrize(
        ("reasons", "skipped"),
        [(None, None), (OUTSIDE, Skip.NOINDEX), (RenderReason(0), None)],
    )
    def test_exactly_one_side(self, reasons: RenderReason | None, skipped: Skip | None) -> None:
        """Both sides, neither, or an empty set of reasons is refused when built."""
        with pytest.raises(ValueError, match="either reasons or a skip"):
            RenderDecision(reasons=reasons, skipped=skipped)


# Every `<a>` or `<area>` start tag with an href attribute, ASCII case-insensitively: an
# independent, rougher reading of "has a link" (a tag inside a script or comment would fool it).
_LINK_TAG = re.compile(rb"<(?:a|area)\s[^>]*?\bhref\s*=", re.IGNORECASE)
EXPECTED_WITHOUT_LINKS = 34
"""Corpus pages that trigger the gate for a target they never name, all through `no_links`.
Measured: 32 of Readability's hand-made fixtures under 4 KB (`ol`, `rtl-1`...), its
`data-url-image` fixture (65 KB of one data: image) and `mathjax`, a saved MathJax demo page
without a single link whose formulas a script typesets. The other 96 pages of `pages/` (all its
saved real-site articles among them) and the 144 of `pages-raw/` do not."""
LARGE_WITHOUT_LINKS = {"data-url-image.html", "mathjax.html"}


def _corpus(shared: Path) -> list[tuple[Path, bytes]]:
    """(path, UTF-8 body) of every corpus page, decoded as the pipeline decodes it."""
    pages = sorted((shared / "corpus/pages").glob("*.html"))
    raw = sorted((shared / "corpus/pages-raw").glob("*/*.html"))
    # pages/ must be served as UTF-8 (see the corpus README); pages-raw/ says its own charset.
    return [(path, decode_html(path.read_bytes(), "text/html; charset=utf-8").utf8) for path in pages] + [
        (path, decode_html(path.read_bytes(), "text/html").utf8) for path in raw
    ]


def test_corpus_pages_with_a_made_up_target(shared: Path) -> None:
    """Real article pages do not trigger the gate: only link-less fixtures do, by `no_links`."""
    fired = {}
    for path, body in _corpus(shared):
        decision = _gate(body, (MADE_UP,))
        assert decision.render is not bool(_LINK_TAG.search(body)), path.name
        if decision.render:
            fired[path] = decision.reasons
    assert set(fired.values()) == {NO_LINKS}
    assert len(fired) == EXPECTED_WITHOUT_LINKS, sorted(path.name for path in fired)
    assert {path.parent.name for path in fired} == {"pages"}
    assert {path.name for path in fired if path.stat().st_size > 4096} == LARGE_WITHOUT_LINKS


def test_corpus_pages_find_a_state_blob_and_ignore_a_link(shared: Path) -> None:
    """In every real page, a state blob naming the target is found, a link to it is not."""
    name = "made-up-target-4f2a.example"
    blob = f'<script>self.__STATE__={{"u":"https:\\/\\/www.{name}\\/landing"}}</script>'.encode()
    link = f'<a href="https://www.{name}/landing" title="{name}">{name}</a>'.encode()
    for path, body in _corpus(shared):
        end = body.lower().rfind(b"</body>")
        end = len(body) if end < 0 else end
        with_blob = _gate(body[:end] + blob + body[end:], (MADE_UP,)).reasons
        with_link = _gate(body[:end] + link + body[end:], (MADE_UP,)).reasons
        assert with_blob is not None, path.name
        assert OUTSIDE in with_blob, path.name
        assert with_link is None or OUTSIDE not in with_link, path.name
