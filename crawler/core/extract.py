"""Decoded HTML and its final URL to the facts a verdict needs: links, robots metas, canonical.

Pure: plain values in, a `Page` out, and no text makes it raise. The page is parsed once by
Lexbor (HTML5 tree construction, as browsers build it) with scripting enabled, as a browser that
runs scripts parses it, so a tracking pixel in a `<noscript>` in `<head>` does not end the head
early and hide a later canonical. The `<base>`, metas, canonical and title are those of that tree,
where the content of a `<noscript>` is one text node: its own never count. That content is then
parsed as a fragment, scripting off, as a crawler that runs no scripts reads it, and put in the
element's place: its links count (hidden: a browser running scripts does not show them), and a
link around it gets its text and images, never its markup. It is parsed only where that changes
what is read: at once when it may hold a link; when it sits in a link, once that link's text is
read. A page longer than `INDEX_LIMIT_BYTES` is parsed a second time, its indexed prefix only.

The rules the contract leaves open, decided here:

- Links are `<a href>` and `<area href>` elements in any namespace (an SVG `<a href>` is a link in
  browsers too; an SVG `xlink:href` is no `href`), never inside `<template>`, kept when they
  resolve to http(s). A link of a `<noscript>` comes in document order where the `<noscript>` is.
  An SVG or MathML `<noscript>` is an element like any other: its content is parsed already.
- Text is the text content without that of `<script>`, `<style>` and `<template>`, Unicode white
  space collapsed (`collapse`). A link without text takes the first non-empty `alt` of an
  `<img>` inside it (`<noscript>` content included), an `<area>` its own `alt`: `Link.image`.
- Hidden: the link or an ancestor has a `hidden` attribute (but `hidden=until-found`) or an
  inline `display: none`; or the nearest inline `visibility` on it or an ancestor is `hidden` or
  `collapse` (a `visible` nearer in wins); or it sits in a `<noscript>`. In an inline style the
  last declaration wins unless an earlier one is `!important`; a `visibility` that is none of its
  keywords is dropped, as CSS drops it; `inherit`, `unset` and `revert` leave it to the ancestors,
  `initial` is `visible`. Stylesheets are not read.
- Region: `comments` when an ancestor's id or one of its class tokens is in `COMMENT_MARKERS`
  (WordPress, Disqus and common theme names; case-insensitive). Otherwise the nearest landmark:
  `nav`, `aside`, `header`, `footer`, `main` or an explicit ARIA role navigation, complementary,
  banner, contentinfo, main. As HTML-AAM says, a `<header>` or `<footer>` inside `article`,
  `aside`, `main`, `nav` or `section` is no page banner or content info: it is skipped. No
  landmark means `main`.
- Bot challenge: see `_is_bot_challenge`.

Reading for the claimed targets (the one place this optimisation is described). A verdict on a
claim reads only the links that match its target or lie on the target's registrable domain
(`wrong_target`), and the visible text only when none matches (`unlinked_mention`) or the page is
thin (`bot_challenge`). So when the engine knows the targets of a page's claims it passes them,
`parse_page(targets=...)`, and:

- only the links whose href may hold a target's registrable domain (`_names`, `_read_whole`) are
  read whole: resolved, text, rel, hidden, region. The others are only counted, for `http_links`
  and `Page.outbound_links`, and read off as written (`_as_written`) when plainly written;
- the visible text is read only when a target has no matching link or the page is thin;
- the page keeps its targets (`Page.targets`); `Page.covers` tells whether a verdict on a target
  may be taken on it, `verdict` refuses one that may not, and the engine reads the page again,
  for a claim it was not read for.

`tests/test_read_for_targets.py` holds the results to those of a whole read, on every corpus page.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

from crawler.core import render_gate, urls
from crawler.models import Link, Page, Region

INDEX_LIMIT_BYTES = 2 * 1024 * 1024
"""Googlebot reads the first 2 MB of a page's decoded text (UTF-8 bytes); links after are not indexed."""
MAX_REFRESH_DELAY = 1
"""A meta refresh of at most this many seconds is a redirect, as browsers and Google treat it."""
COMMENT_MARKERS = frozenset(
    {
        "comment",
        "comments",
        "commentlist",  # WordPress themes before 3.x
        "comment-list",
        "comments-area",
        "comment-body",
        "comment-content",
        "comment-respond",  # the WordPress comment form
        "disqus_thread",
    }
)
"""An element whose id or a class token is one of these (lower-cased) holds reader comments."""

LINKS = "a[href], area[href]"
# What the page says besides its links: the `<noscript>`s to read as markup, the scripts and styles
# inside links (no text of theirs), and the `<base>` and `<meta>`s. Lexbor lists the elements in
# document order, each once (the selectors are disjoint).
_BESIDE_LINKS = "noscript, a[href] script, a[href] style, base[href], meta"
# The tags that can give the links inside an element another context than its parent's (landmark
# and sectioning tags, `<noscript>`); attributes can too, see `_may_change_context`.
_CONTEXT_TAG_NAMES = "nav, aside, header, footer, main, article, section, noscript"
_INVISIBLE = "script, style, noscript, template, iframe, noembed, noframes"
_ASCII_WHITESPACE = " \t\n\f\r"
_UTF8_BOM = b"\xef\xbb\xbf"
_REL_SEPARATORS = str.maketrans("\t\n\f\r,", "     ")
_CANONICAL_EXCLUDED = ("hreflang", "lang", "media", "type")
_TAG_LANDMARKS = {
    "nav": Region.NAV,
    "aside": Region.ASIDE,
    "header": Region.HEADER,
    "footer": Region.FOOTER,
    "main": Region.MAIN,
}
_ROLE_LANDMARKS = {
    "navigation": Region.NAV,
    "complementary": Region.ASIDE,
    "banner": Region.HEADER,
    "contentinfo": Region.FOOTER,
    "main": Region.MAIN,
}
_NOT_LANDMARK_ROLES = frozenset({"presentation", "none"})
_SECTIONING_TAGS = frozenset({"article", "aside", "main", "nav", "section"})
_SECTIONING_ROLES = frozenset({"article", "complementary", "main", "navigation", "region"})
_SCOPED_LANDMARKS = frozenset({"header", "footer"})

# A challenge page is thin: a CAPTCHA or a "checking your browser" notice, little text, few links.
# Only then do its vendor's markers count; a normal page may embed reCAPTCHA in a comment form or
# Cloudflare's bot-detection script (/cdn-cgi/challenge-platform/scripts/jsd/) on every page. The
# markers are those of the challenge itself, not of scripts that sites load on every page (thin
# single-page-app shells too): reCAPTCHA v3's api.js, AWS WAF's challenge.js integration.
CHALLENGE_MAX_LINKS = 10
CHALLENGE_MAX_TEXT = 2000
_CHALLENGE_TITLES = frozenset(
    {
        "just a moment...",  # Cloudflare
        "attention required! | cloudflare",
        "please wait... | cloudflare",
        "access to this page has been denied",  # PerimeterX
        "access to this page has been denied.",
    }
)
_CHALLENGE_MARKERS = (
    b"cf-chl",  # Cloudflare challenge ids and classes (cf-chl-widget, cf-chl-bypass)
    b"cf_chl",  # Cloudflare challenge options and tokens (_cf_chl_opt, __cf_chl_tk)
    b"/cdn-cgi/challenge-platform/h/",  # Cloudflare challenge orchestration script
    b"_incapsula_resource",  # Imperva Incapsula
    b"px-captcha",  # PerimeterX / HUMAN
    b"captcha-delivery.com",  # DataDome
    b"sucuri_cloudproxy",  # Sucuri firewall
    b"gokuprops",  # AWS WAF challenge interstitial (window.gokuProps)
    b"awswafcaptcha",  # AWS WAF CAPTCHA (AwsWafCaptcha.renderCaptcha)
    b"g-recaptcha",  # a reCAPTCHA widget
    b"h-captcha",  # an hCaptcha widget
)


def parse_page(
    html: str | bytes,
    url: str,
    *,
    index_agent: str = "Googlebot",
    targets: Sequence[urls.Target] | None = None,
    encoding: str = "utf-8",
    script_signs: bool = False,
) -> Page:
    """What the page at final URL `url` says; see the module docstring for the rules.

    `html` is the decoded text, or its UTF-8 bytes (`decode.Decoded.utf8`): the parser reads
    bytes, so a body that came in UTF-8 is parsed without being decoded first. `encoding` is the
    WHATWG name of the encoding it was decoded from (`decode.Decoded.encoding`): the queries of
    its URLs are written in it (`urls.resolve`). `targets`: the claimed targets, when known; see
    "Reading for the claimed targets" in the module docstring. `script_signs`: note the `auto`
    render gate's signs (`render_gate.script_signs`) when some target has no matching link.
    """
    data = html.encode("utf-8", "surrogatepass") if isinstance(html, str) else html
    data = data.removeprefix(_UTF8_BOM)  # a byte-order mark left by a decoder is no text of the page
    tree = LexborHTMLParser(data, scripting=True)
    elements = _gather(tree)
    base_url = _base_url(elements.base_href, url, encoding)
    base = _Base.of(base_url, urls.host_key(url), encoding)
    indexed = _indexed_count(data, len(elements.hrefs))
    found = _links(elements, base, indexed, _names(targets, base_url))
    thin = found.http_links < CHALLENGE_MAX_LINKS
    visible_text = None
    link_urls = [link.url for link in found.links]
    unmatched = [] if targets is None else [t.url for t in targets if not t.matching(link_urls)]
    signs = None
    if script_signs and unmatched:  # on this tree, unless a `<noscript>` read as markup changed it
        signs = render_gate.script_signs(data, unmatched, None if elements.noscript_read else tree)
    if targets is None or thin or unmatched:
        visible_text = _visible_text(tree)  # last: it strips the tree of what is unseen
    return Page(
        url=url,
        base_url=base_url,
        links=found.links,
        meta_robots=_meta_robots(elements.metas, index_agent),
        canonical=_canonical(tree.head, base),
        refresh_url=_refresh_url(elements.metas, base),
        visible_text=visible_text,
        bot_challenge=thin and _is_bot_challenge(data, _title(tree), visible_text or ""),
        outbound_links=found.outbound,
        targets=None if targets is None else tuple(targets),
        script_signs=signs,
    )


def collapse(text: str) -> str:
    """`text` with every run of Unicode white space (the no-break space included) as one space, trimmed."""
    # str.split() also splits at U+001C to U+001F, which are no white space: rare, so tested first.
    if "\x1c" in text or "\x1d" in text or "\x1e" in text or "\x1f" in text:
        return _WHITE_SPACE.sub(" ", text).strip(" ")
    return " ".join(text.split())


_WHITE_SPACE = re.compile("[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


def rel_tokens(rel: str | None) -> tuple[str, ...]:
    """The tokens of a `rel` value: split on ASCII whitespace and commas, lower-cased, no empties."""
    if not rel:
        return ()
    return tuple(token for token in rel.lower().translate(_REL_SEPARATORS).split(" ") if token)


def _host(url: str) -> str:
    """`urls.host_key` of a URL the WHATWG parser serialised, read off the string without reparsing.

    Such a URL is `scheme://[userinfo@]host[:port]/...` with a lower-case host; `@` and `/` in the
    userinfo are percent-encoded; an IPv6 host is bracketed.
    """
    authority = url.split("/", 3)[2].rpartition("@")[2]
    if authority.startswith("["):
        return authority[: authority.find("]") + 1]
    return authority.partition(":")[0]


def _base_url(href: str | None, url: str, encoding: str) -> str:
    """The first `<base href>` resolved against the page URL; else the page URL, also for a
    data: or javascript: base (HTML's "set the frozen base URL", as browsers do)."""
    resolved = urls.resolve(href, url, encoding) if href is not None else None
    return url if resolved is None or resolved.startswith(("data:", "javascript:")) else resolved


def _indexed_count(data: bytes, total: int) -> int:
    """How many of the page's links start within its first `INDEX_LIMIT_BYTES`.

    Lexbor gives no source offsets, so the prefix is parsed on its own: tree construction is
    incremental, so the links it holds are the first ones of the whole page, in the same order.
    A link whose start tag the limit cuts is not in it: Googlebot never saw that tag whole. (Foster
    parenting moves an `<a>` written inside a table before it; one written past the limit there
    would shift the count by one: accepted, it needs a table across the 2 MB mark.)
    """
    if len(data) <= INDEX_LIMIT_BYTES:
        return total
    cut = INDEX_LIMIT_BYTES
    while cut and data[cut] & 0xC0 == 0x80:  # back off to the start of a UTF-8 character
        cut -= 1
    prefix = LexborHTMLParser(data[:cut], scripting=True)
    return min(total, len(_gather(prefix).hrefs))


def _tag_ids(names: str) -> frozenset[int]:
    """Lexbor's ids of the tags `names` (comma separated), asked of Lexbor rather than copied."""
    html = "".join(f"<{name}></{name}>" for name in names.split(", "))
    return frozenset(node.tag_id for node in LexborHTMLParser(html).css(names))


_Attributes = dict[str, str | None]
_AREA_TAGS = _tag_ids("area")
_NOSCRIPT_TAGS = _tag_ids("noscript")
_META_TAGS = _tag_ids("meta")
_BASE_TAGS = _tag_ids("base")
_CONTEXT_TAGS = _tag_ids(_CONTEXT_TAG_NAMES)
_A_TAGS = _tag_ids("a")
_FOREIGN_ROOTS = _tag_ids("svg, math")
# SVG and MathML elements in which the HTML parser reads the tags of HTML elements as such. (An
# HTML `<title>` holds text only, so a `<title>` above a `<noscript>` is SVG's.)
_INTEGRATION_POINTS = _tag_ids("foreignObject, desc, title, mi, mo, mn, ms, mtext, annotation-xml")


@dataclass(frozen=True, slots=True)
class _Elements:
    """The elements of a page `parse_page` reads, in document order."""

    links: list[LexborNode]
    """The link elements, those of `<noscript>` content included."""
    hrefs: list[str]
    """Their hrefs."""
    base_href: str | None
    """The href of the first `<base href>`."""
    metas: list[_Attributes]
    """The attributes of every `<meta>` (not those of `<noscript>` content)."""
    unread: dict[int, list[LexborNode]]
    """The `<noscript>`s inside a link (by its `mem_id`) whose content is read as markup when the
    link's text is (`_noscript`)."""
    noscript_read: bool
    """Some `<noscript>` content outside links was read as markup: the tree is not the parser's."""


def _gather(tree: LexborHTMLParser) -> _Elements:
    """The elements of `tree` that `parse_page` reads, once the content of its `<noscript>`s is
    read as markup and the scripts and styles inside links are taken out.

    Two walks of the tree: one for the rest, which changes the tree, then one for the links (one
    walk for both costs more, in Python, than it saves in Lexbor). CSS `[href]` also matches an
    SVG `xlink:href`, which is no `href`: such elements are no links.
    """
    base_href = None
    metas = []
    unread: dict[int, list[LexborNode]] = {}
    noscript_read = False
    for node in tree.css(_BESIDE_LINKS):
        tag = node.tag_id
        if tag in _META_TAGS:
            metas.append(node.attributes)
        elif tag in _BASE_TAGS:
            if base_href is None:
                base_href = node.attrs.sget("href", None)
        elif tag in _NOSCRIPT_TAGS:
            noscript_read |= _noscript(node, unread)
        else:
            node.decompose(recursive=False)  # a script or style inside a link: no text of it
    links = tree.css(LINKS)
    hrefs = [node.attrs.sget("href", None) for node in links]  # a bare `href` is ""
    if None in hrefs:
        links = [node for node, href in zip(links, hrefs, strict=True) if href is not None]
    hrefs_read = [href for href in hrefs if href is not None]
    return _Elements(links, hrefs_read, base_href, metas, unread, noscript_read)


def _noscript(element: LexborNode, unread: dict[int, list[LexborNode]]) -> bool:
    """Reads the content of a `<noscript>` as markup when it may hold a link; else files it under
    the link around it, if any, to be read when that link's text is (nothing else reads it).
    True when it was read (the tree changed)."""
    markup = _markup(element)
    if markup is None:
        return False
    link, html = _noscript_place(element)
    if not html:
        return False
    if "<a" in markup.lower():  # `<a` and `<area`
        _read_as_markup(element, markup)
        return True
    if link is not None:
        unread.setdefault(link, []).append(element)
    return False


def _markup(element: LexborNode) -> str | None:
    """The content of a `<noscript>` (one text node, when parsed with scripting) when reading it as
    markup changes it: it holds a tag or a character reference (plain text reads the same)."""
    content = element.first_child
    if content is None or not content.is_text_node or content.next is not None:
        return None  # empty, read already, or an SVG or MathML `noscript`, parsed as any element
    text = content.text()
    return text if "<" in text or "&" in text else None


def _read_as_markup(element: LexborNode, markup: str) -> None:
    """The content of a `<noscript>` parsed as a fragment, scripting off, and put in its place,
    without scripts, styles and templates (no text of a link is theirs)."""
    fragment = LexborHTMLParser(markup, is_fragment=True, fragment_tag="noscript")
    for text in element.iter(include_text=True):  # the one text node that the markup was
        text.decompose()
    node = fragment.root
    while node is not None:
        element.insert_child(node)  # a deep copy into the page's tree
        node = node.next
    for unseen in element.css("script, style, template"):
        unseen.decompose(recursive=False)


def _noscript_place(element: LexborNode) -> tuple[int | None, bool]:
    """(the `mem_id` of the nearest link around it, if any; an HTML element) of a `<noscript>`:
    the nearest `<svg>`, `<math>` or integration point above it tells its namespace, none: HTML."""
    link = None
    html: bool | None = None
    parent = element.parent
    while parent is not None:
        tag = parent.tag_id
        if link is None and tag in _A_TAGS and parent.attrs.sget("href", None) is not None:
            link = parent.mem_id
        if html is None and tag in _INTEGRATION_POINTS:
            html = True
        elif html is None and tag in _FOREIGN_ROOTS:
            html = False
        parent = parent.parent
    return link, html is not False


def _names(targets: Sequence[urls.Target] | None, base_url: str) -> frozenset[str] | None:
    """The DNS names a link's URL must hold to be read whole; None: every link is.

    A link to a target or to its site has the target's registrable domain in its host. A
    relative link has the base's host: when that holds a name, every link is read.
    """
    if targets is None:
        return None
    names = frozenset(urls.dns_name(target.domain) for target in targets)
    base_host = urls.host_key(base_url)
    if "" in names or any(name in base_host for name in names):
        return None
    return names


@dataclass(frozen=True, slots=True)
class _Found:
    links: tuple[Link, ...]
    """The http(s) links read whole."""
    http_links: int
    """How many links of the page are http(s), read whole or not."""
    outbound: int
    """How many of them go to another host than the page's."""


def _links(elements: _Elements, base: _Base, indexed: int, names: frozenset[str] | None) -> _Found:
    """The page's http(s) links, in document order (the first `indexed` within the limit).

    Only those whose href may hold one of `names` (all when None) are read whole; the others are
    only counted, read off as written when they are plainly written (`_as_written`).
    """
    nodes, hrefs, unread = elements.links, elements.hrefs, elements.unread
    counts = Counter(hrefs)  # pages repeat hrefs: each is looked at once, in first-seen order
    whole = _read_whole(list(counts), names)
    urls_of: dict[str, str] = {}
    http_links = outbound = 0
    for href, times in counts.items():
        destination = None if href in whole else _as_written(href, base)
        if destination is None:
            url = base.http(href)
            if url is None:
                continue  # mailto:, javascript:, tel:, unparsable...
            if href in whole:
                urls_of[href] = url
            destination = (True, _host(url) != base.page_host)
        is_http, elsewhere = destination
        http_links += times * is_http
        outbound += times * elsewhere
    links = []
    contexts: dict[int, _Context] = {}
    for position in [i for i, href in enumerate(hrefs) if href in urls_of] if urls_of else ():
        node, href = nodes[position], hrefs[position]
        if unread:  # `<noscript>`s in the link, read as markup for its text (`_noscript`)
            for noscript in unread.pop(node.mem_id, ()):
                _read_as_markup(noscript, noscript.text())
        attrs = node.attributes
        context = _context(node, contexts)
        hidden = context.hides(attrs) if "hidden" in attrs or "style" in attrs else context.hidden
        rel = rel_tokens(attrs["rel"]) if "rel" in attrs else ()
        text, image = _link_text(node, attrs)
        # Positional: a frozen dataclass is built noticeably faster so.
        links.append(Link(href, urls_of[href], text, rel, hidden, context.region, position >= indexed, image))
    return _Found(tuple(links), http_links, outbound)


def _read_whole(hrefs: list[str], names: frozenset[str] | None) -> set[str]:
    """The hrefs of `hrefs` that may resolve to a host holding one of `names` (all when None).

    A plainly relative href resolves to the base's host, which holds none (see `_names`).
    """
    if names is None:
        return set(hrefs)
    found = {hrefs[i] for name in names for i in urls.may_contain(hrefs, name)}
    return {
        href for href in found if (written := _HREF.match(href)) is None or written.lastgroup != "relative"
    }


@dataclass(frozen=True, slots=True)
class _Base:
    """The base URL of a page's links, and what a relative link resolves to."""

    url: str
    page_host: str
    encoding: str
    """The page's encoding: the queries of its URLs are written in it."""
    relative_is_http: bool
    relative_outbound: bool
    """A relative link is an http(s) link to another host than the page's (a `<base>` elsewhere)."""

    @classmethod
    def of(cls, url: str, page_host: str, encoding: str) -> _Base:
        is_http = urls.is_http(url)
        return cls(url, page_host, encoding, is_http, is_http and urls.host_key(url) != page_host)

    def http(self, href: str) -> str | None:
        """`href` resolved against the base when that gives an http(s) URL, else None."""
        resolved = urls.resolve(href, self.url, self.encoding)
        return resolved if resolved is not None and urls.is_http(resolved) else None


# An href that surely resolves to the base's host: empty, a query or fragment, a path from the
# root (`/x`, but not `//host`, `/\\host` nor a tab or newline, removed before parsing), or a path
# whose first segment holds no `:` (which could end a scheme) and starts with no space or control.
_PLAIN_RELATIVE = r"$|[#?]|/(?![/\\\t\n\r])|[^\x00-\x20/\\:?#][^\t\n\r:/\\?#]*(?:[/\\?#]|$)"
# Three alternatives, told by the name of the last group matched (`lastgroup`): a plain relative
# href (`relative`); an http(s) URL whose authority is written as the WHATWG parser writes it
# (`host` or `port`: the groups `scheme`, `host`, `port` of `urls.WRITTEN_AUTHORITY`); or any other
# absolute URL (`other_scheme`).
_HREF = re.compile(
    rf"(?P<relative>{_PLAIN_RELATIVE})|{urls.WRITTEN_AUTHORITY}|(?P<other_scheme>[a-zA-Z][a-zA-Z0-9+.\-]*):"
)


def _as_written(href: str, base: _Base) -> tuple[bool, bool] | None:
    """(an http(s) link, to another host than the page's) of an href, read off as it is written;
    None when only the WHATWG parser can tell."""
    written = _HREF.match(href)
    if written is None:
        return None
    alternative = written.lastgroup
    if alternative == "relative":
        return base.relative_is_http, base.relative_outbound
    if alternative == "other_scheme":
        scheme = written["other_scheme"].lower()
        return None if scheme in ("http", "https") else (False, False)  # `HTTP://`, `https:x`: unusual
    host = written["host"]
    return (True, host != base.page_host) if urls.kept_as_written(host, written["port"]) else None


def _link_text(node: LexborNode, attrs: _Attributes) -> tuple[str, bool]:
    """The link's collapsed text, and False; without any, its image's alt (an `<area>`: its own
    alt), and True."""
    text = collapse(node.text())
    if text:
        return text, False
    if node.tag_id in _AREA_TAGS:
        alt = collapse(attrs.get("alt") or "")
        return alt, bool(alt)
    for image in node.css("img[alt]"):
        alt = collapse(image.attributes.get("alt") or "")
        if alt:
            return alt, True
    return "", False


@dataclass(frozen=True, slots=True)
class _Context:
    """What an element's ancestors (and the element) decide for the links inside it."""

    concealed: bool = False
    """Hidden by a `hidden` attribute, `display: none` or a `<noscript>`: nothing inside undoes it."""
    invisible: bool = False
    """The nearest inline `visibility` is hidden or collapse: a `visible` inside undoes it."""
    region: Region = Region.MAIN
    sectioned: bool = False
    """Inside sectioning content or `main`, where `<header>`/`<footer>` are not page landmarks."""

    def inside(self, attrs: _Attributes) -> tuple[bool, bool]:
        """(concealed, invisible) inside an element with the attributes `attrs`."""
        concealed, visibility = _hiding(attrs)
        invisible = self.invisible if visibility is None else visibility
        return self.concealed or concealed, invisible

    @property
    def hidden(self) -> bool:
        """A link inside that sets nothing of its own is hidden."""
        return self.concealed or self.invisible

    def hides(self, attrs: _Attributes) -> bool:
        """True when a link with the attributes `attrs` is hidden in this context."""
        concealed, invisible = self.inside(attrs)
        return concealed or invisible


_ROOT = _Context()


def _context(node: LexborNode, cache: dict[int, _Context]) -> _Context:
    """The context `node`'s ancestors make; each ancestor is looked at once per page (`cache`)."""
    path = []
    context = _ROOT
    parent = node.parent
    while parent is not None:
        key = parent.mem_id
        known = cache.get(key)
        if known is not None:
            context = known
            break
        path.append((key, parent))
        parent = parent.parent
    for key, element in reversed(path):
        attrs = element.attributes
        # Most elements (a div, a list item) change nothing: tested here, without a call for them.
        if element.tag_id in _CONTEXT_TAGS or (attrs and _may_change_context(attrs)):
            context = _enter(context, element, attrs)
        cache[key] = context
    return context


def _enter(outer: _Context, element: LexborNode, attrs: _Attributes) -> _Context:
    """The context inside `element` (its attributes `attrs`), given the one around it."""
    tag = element.tag or ""
    role = _role(attrs)
    if outer.region is Region.COMMENTS or _is_comments(attrs):
        region = Region.COMMENTS
    else:
        region = _landmark(tag, role, outer.sectioned) or outer.region
    concealed, invisible = outer.inside(attrs)
    return _Context(
        concealed=concealed or tag == "noscript",
        invisible=invisible,
        region=region,
        sectioned=outer.sectioned or tag in _SECTIONING_TAGS or role in _SECTIONING_ROLES,
    )


def _may_change_context(attrs: _Attributes) -> bool:
    """True when an attribute may change the context: role, hidden, style, or an id or class that
    may name comments (a substring test; `_is_comments` decides)."""
    if "role" in attrs or "hidden" in attrs or "style" in attrs:
        return True
    marks = f"{attrs.get('class') or ''} {attrs.get('id') or ''}".lower()
    return "comment" in marks or "disqus" in marks


def _role(attrs: _Attributes) -> str:
    """The element's explicit ARIA role (the first token), lower-cased; "" when none."""
    tokens = (attrs.get("role") or "").lower().split()
    return tokens[0] if tokens else ""


def _landmark(tag: str, role: str, sectioned: bool) -> Region | None:
    """The region an element opens as a landmark, or None when it is none."""
    if role in _ROLE_LANDMARKS:
        return _ROLE_LANDMARKS[role]
    if role in _NOT_LANDMARK_ROLES or (sectioned and tag in _SCOPED_LANDMARKS):
        return None
    return _TAG_LANDMARKS.get(tag)


def _is_comments(attrs: _Attributes) -> bool:
    """True when the element's id or one of its class tokens marks reader comments."""
    ident = attrs.get("id")
    if ident and ident.lower() in COMMENT_MARKERS:
        return True
    classes = attrs.get("class")
    return classes is not None and not COMMENT_MARKERS.isdisjoint(classes.lower().split())


def _hiding(attrs: _Attributes) -> tuple[bool, bool | None]:
    """What an element's own attributes say: (a `hidden` attribute, but `until-found`, or an inline
    `display: none`; its inline `visibility` hides: None when it sets none, leaving it to its parent)."""
    hidden = "hidden" in attrs and (attrs["hidden"] or "").lower() != "until-found"
    style = attrs.get("style")
    if style is None:
        return hidden, None
    display_none, visibility = _inline_style(style)
    return hidden or display_none, visibility


# What a `visibility` keyword says: hidden (True), shown (False), or the parent's (None).
_VISIBILITY: dict[str, bool | None] = {"visible": False, "hidden": True, "collapse": True, "initial": False}
_VISIBILITY |= dict.fromkeys(("inherit", "unset", "revert", "revert-layer"))


def _inline_style(style: str) -> tuple[bool, bool | None]:
    """(the winning `display` is none, the winning `visibility` hides: None when there is none)."""
    lowered = style.lower()
    if "none" not in lowered and "visibility" not in lowered:
        return False, None  # the common case, without splitting
    winners = _winning_declarations(lowered)
    return winners.get("display") == "none", _VISIBILITY.get(winners.get("visibility", "inherit"))


def _winning_declarations(style: str) -> dict[str, str]:
    """`display` and `visibility` values of a style: the last wins, unless an earlier is !important.

    A `visibility` value that is no keyword of it is invalid: CSS drops the declaration.
    """
    values: dict[str, str] = {}
    important: set[str] = set()
    for declaration in style.split(";"):
        name, colon, value = declaration.partition(":")
        name = name.strip()
        if not colon or name not in ("display", "visibility"):
            continue
        value, bang, flag = value.partition("!")
        value = value.strip()
        if name == "visibility" and value not in _VISIBILITY:
            continue
        if bang and flag.strip() == "important":
            important.add(name)
        elif name in important:
            continue
        values[name] = value
    return values


def _title(tree: LexborHTMLParser) -> str:
    """The document's `<title>`, collapsed and lower-cased ("" when none)."""
    head = tree.head
    title = head.css_first("head > title") if head is not None else None  # not a `<noscript>`'s
    return collapse(title.text()).lower() if title is not None else ""


def _meta_robots(metas: list[_Attributes], index_agent: str) -> tuple[tuple[str, str], ...]:
    """(name, content) of every `<meta name=robots>` or `<meta name=index_agent>`, head or body."""
    names = {"robots", index_agent.strip().lower()}
    found = []
    for attrs in metas:
        name = (attrs.get("name") or "").strip().lower()
        if name in names:
            found.append((name, attrs.get("content") or ""))
    return tuple(found)


def _canonical(head: LexborNode | None, base: _Base) -> str | None:
    """The first plain `<link rel=canonical href>` of `<head>` (no hreflang, lang, media, type),
    resolved; not one of a `<noscript>`."""
    if head is None:
        return None
    for element in head.css("head > link[rel][href]"):
        attrs = element.attributes
        if "canonical" in rel_tokens(attrs.get("rel")):
            if any(name in attrs for name in _CANONICAL_EXCLUDED):
                continue
            return base.http(attrs.get("href") or "")
    return None


def _refresh_url(metas: list[_Attributes], base: _Base) -> str | None:
    """The target of the page's meta refresh when it is instant (delay <= 1 s) and elsewhere.

    As in browsers, the first refresh whose content parses is the page's refresh; a longer delay
    or no URL (a reload of the page itself) is no redirect.
    """
    for attrs in metas:
        if (attrs.get("http-equiv") or "").strip().lower() != "refresh" or "content" not in attrs:
            continue
        refresh = _parse_refresh(attrs.get("content") or "")
        if refresh is None:
            continue
        delay, target = refresh
        return base.http(target) if delay <= MAX_REFRESH_DELAY and target else None
    return None


def _parse_refresh(content: str) -> tuple[int, str] | None:
    """(whole seconds, URL as written or "") of a refresh, by the HTML declarative refresh steps.

    `0;URL='x'`, `1; url=x`, `0.5,url=x` (fractions are dropped: 0 s) and `5` (no URL) parse;
    None when the content does not start with a time.
    """
    rest = content.lstrip(_ASCII_WHITESPACE)
    digits = len(rest) - len(rest.lstrip("0123456789"))
    if not digits and not rest.startswith("."):
        return None
    delay = int(rest[:digits] or "0") if digits <= 9 else 10**9  # ten digits: decades, never instant
    rest = rest[digits:].lstrip("0123456789.")
    if rest:
        if rest[0] not in ";," + _ASCII_WHITESPACE:
            return None
        rest = rest.lstrip(_ASCII_WHITESPACE)
        if rest[:1] in (";", ","):
            rest = rest[1:].lstrip(_ASCII_WHITESPACE)
    return delay, _refresh_target(rest)


def _refresh_target(rest: str) -> str:
    """The URL part of a refresh after the time: an optional `url =`, then an optionally quoted URL."""
    if rest[:3].lower() == "url":
        after = rest[3:].lstrip(_ASCII_WHITESPACE)
        if not after.startswith("="):
            return rest  # as the standard says: then the whole rest is the URL
        rest = after[1:].lstrip(_ASCII_WHITESPACE)
    if rest[:1] in ("'", '"'):
        rest = rest[1:].split(rest[0], 1)[0]
    return rest


def _visible_text(tree: LexborHTMLParser) -> str:
    """The body's text as a reader sees it, collapsed and lower-cased. Removes unseen elements.

    Text nodes are joined by a space: two blocks never glue into a word that is not on the page
    (a host name split by inline markup, `ex<b>ample.com</b>`, is the rarer loss). Text hidden by
    an attribute or a style stays: it is on the page, as the contract's list of exclusions says.
    """
    for element in tree.css(_INVISIBLE):
        element.decompose(recursive=False)  # detached with its subtree; nothing to free now
    root = tree.body or tree.root
    # Whitespace-only nodes (skipped: a third of the text to collapse) and the spaces around text
    # need no stripping here: `collapse` does it.
    return collapse(root.text(separator=" ", skip_empty=True)).lower() if root else ""


def _is_bot_challenge(data: bytes, title: str, visible_text: str) -> bool:
    """True for a CAPTCHA or WAF challenge page, given that it is thin (few links).

    The rule: a thin page (fewer than `CHALLENGE_MAX_LINKS` http(s) links and fewer than
    `CHALLENGE_MAX_TEXT` characters of visible text) whose title is a challenge title
    (Cloudflare's "Just a moment...", PerimeterX's "Access to this page has been denied"...) or
    whose markup holds a vendor's challenge marker (`_CHALLENGE_MARKERS`).
    """
    if len(visible_text) >= CHALLENGE_MAX_TEXT:
        return False
    if title in _CHALLENGE_TITLES:
        return True
    lowered = data.lower()  # ASCII letters only, as the markers are
    return any(marker in lowered for marker in _CHALLENGE_MARKERS)
