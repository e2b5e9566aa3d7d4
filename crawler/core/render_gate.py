"""The `auto` render gate (section 12): does a page whose raw verdict is `missing` need a browser?

Pure: the raw page's facts in, a `RenderDecision` out, saying why either way so a log line can.

A page is rendered only when it was a 2xx HTML response read whole, the index agent may fetch and
index it, a claim on it is still `missing`, and it looks built by scripts. The rules the contract
leaves open, decided here:

- "The target appears outside every link": the registrable domain of a pending target (which every
  spelling of its host contains) occurs, ASCII case aside, anywhere in the markup but inside an
  `<a href>` or `<area href>` element (its attributes and its content): in script text, JSON state,
  any other element's attributes, a `<template>` or `<noscript>`, a comment, or visible text (an
  unlinked mention is outside every link too; a linkifying script may well make it a link). An
  occurrence counts only as a whole name: no name character (`a-z0-9_-` or a non-ASCII byte)
  before it, unless it follows an escaped `/` or `@` (`%2F`, `\\u002F`, `\\x2F`, `%40`...: JSON
  and URL-encoded state); no name character, nor a dot and another label, after it. An IDNA domain
  is looked for in its Unicode spelling too. The raw bytes are searched first; only when the name is
  there is the parsed document, its links removed, serialised and searched again.
- "An empty `#root`...": an element of the body with one of `MOUNT_IDS` whose children are only
  white space, comments, and `script`, `style`, `template` or `noscript` elements (nothing a
  browser running scripts shows).
- "No `<a href>` at all": neither `<a href>` nor `<area href>`, the links of section 4.
- The document is parsed as `extract` parses it (Lexbor, scripting on), so both read one tree:
  when it reads a page for claimed targets and asked to, the extractor notes the signs
  (`script_signs`) on the tree it has built anyway, and the gate decides from them (`decide`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from enum import Flag, StrEnum, auto

from selectolax.lexbor import LexborHTMLParser, LexborNode

from crawler.core import urls
from crawler.models import ScriptSigns, Status

MOUNT_IDS = ("root", "app", "__next", "__nuxt", "___gatsby")
"""The ids single-page frameworks mount on: React (create-react-app, Vite), Vue, Next, Nuxt, Gatsby."""

_LINKS = "a[href], area[href]"
_MOUNTS = ", ".join(f"#{name}" for name in MOUNT_IDS)
_UNSHOWN = frozenset({"script", "style", "template", "noscript", "-comment"})
_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_-") | frozenset(range(0x80, 0x100))
# How an escaped `/` or `@` ends, lower-cased: a name right after one of these starts there.
_ESCAPED_SEPARATORS = (b"%2f", b"%252f", b"\\u002f", b"\\x2f", b"%40", b"\\u0040")
_UTF8_BOM = b"\xef\xbb\xbf"


class RenderReason(Flag):
    """Why a page looks built by scripts; any number of them."""

    TARGET_OUTSIDE_LINKS = auto()
    EMPTY_APP_ROOT = auto()
    NO_LINKS = auto()


class Skip(StrEnum):
    """Why a page is not rendered: the first condition it fails, in the contract's order."""

    NOT_MISSING = "not_missing"
    NOT_2XX = "not_2xx"
    NOT_HTML = "not_html"
    TRUNCATED = "truncated"
    ROBOTS_INDEX_DISALLOWED = "robots_index_disallowed"
    NOINDEX = "noindex"
    LOOKS_STATIC = "looks_static"


@dataclass(frozen=True, slots=True)
class RawPage:
    """What the raw fetch and verdict learned of a page, as far as the gate reads it."""

    status: Status
    """The raw verdict of the claims in question (those whose targets the gate is given)."""
    http_status: int | None
    is_html: bool
    truncated: bool
    robots_index_allowed: bool | None
    """None (not asked, `obey_robots` off) counts as allowed, as the verdict counts it."""
    noindex: bool
    """A `noindex` (or `none`) applies to the index agent, by meta or header."""


@dataclass(frozen=True, slots=True)
class RenderDecision:
    """Render or not, and why: exactly one of `reasons` and `skipped` is set."""

    reasons: RenderReason | None = None
    skipped: Skip | None = None

    def __post_init__(self) -> None:
        if (self.reasons is None) == (self.skipped is None) or self.reasons == RenderReason(0):
            raise ValueError("a render decision has either reasons or a skip")

    @property
    def render(self) -> bool:
        """True when the page goes to the browser."""
        return self.reasons is not None

    @property
    def why(self) -> tuple[str, ...]:
        """The decision's words for a log line: the reasons to render, else the skip."""
        if self.reasons is not None:
            return tuple((reason.name or "").lower() for reason in self.reasons)
        return (str(self.skipped),)


def needs_render(page: RawPage, html: str | bytes, targets: Sequence[str]) -> RenderDecision:
    """Whether `auto` renders a page, given its facts, its decoded HTML (text, or its UTF-8 bytes,
    as `extract.parse_page` takes it) and the target URLs of its claims still `missing`."""
    skipped = _precondition(page)
    if skipped is not None:
        return RenderDecision(skipped=skipped)
    data = html.encode("utf-8", "surrogatepass") if isinstance(html, str) else html
    return decide(page, script_signs(data, targets), targets)


def decide(page: RawPage, signs: ScriptSigns, targets: Sequence[str]) -> RenderDecision:
    """`needs_render` from signs read before (`script_signs`, for `targets` or more of them)."""
    skipped = _precondition(page)
    if skipped is not None:
        return RenderDecision(skipped=skipped)
    reasons = RenderReason(0)
    if not signs.has_links:
        reasons |= RenderReason.NO_LINKS
    if signs.empty_app_root:
        reasons |= RenderReason.EMPTY_APP_ROOT
    if any(target in signs.named for target in targets):
        reasons |= RenderReason.TARGET_OUTSIDE_LINKS
    return RenderDecision(reasons=reasons) if reasons else RenderDecision(skipped=Skip.LOOKS_STATIC)


def script_signs(data: bytes, targets: Sequence[str], tree: LexborHTMLParser | None = None) -> ScriptSigns:
    """The signs that the document `data` (UTF-8) is built by scripts, the targets named outside
    its links among `targets`.

    `tree`: `data` already parsed as this module parses it, read and left unchanged (the extractor
    passes its own, sparing a second parse of the page); None parses it here.
    """
    data = data.removeprefix(_UTF8_BOM)
    if tree is None:
        tree = LexborHTMLParser(data, scripting=True)
    names = {target: _names([target]) for target in targets}
    lowered = data.lower()
    mentioned = [target for target, spelled in names.items() if spelled and _mentions(lowered, spelled)]
    named: frozenset[str] = frozenset()
    if mentioned:  # rare: a tree of its own, whose links are taken out
        serialised = _without_links(LexborHTMLParser(data, scripting=True))
        named = frozenset(target for target in mentioned if _mentions(serialised, names[target]))
    return ScriptSigns(
        has_links=_has_link(tree),
        empty_app_root=any(_is_empty(mount) for mount in tree.css(_MOUNTS)),
        named=named,
    )


def _precondition(page: RawPage) -> Skip | None:
    """The first of the contract's conditions for `auto` that the page fails, else None."""
    failed = (
        (page.status is not Status.MISSING, Skip.NOT_MISSING),
        (page.http_status is None or not 200 <= page.http_status < 300, Skip.NOT_2XX),
        (not page.is_html, Skip.NOT_HTML),
        (page.truncated, Skip.TRUNCATED),
        (page.robots_index_allowed is False, Skip.ROBOTS_INDEX_DISALLOWED),
        (page.noindex, Skip.NOINDEX),
    )
    return next((skip for fails, skip in failed if fails), None)


def _names(targets: Iterable[str]) -> tuple[bytes, ...]:
    """The lower-case spellings of the targets' registrable domains, as UTF-8 bytes."""
    found: dict[bytes, None] = {}  # ordered and without repeats
    for target in targets:
        domain = urls.registrable_domain(urls.host_key(target))
        if not domain:
            continue
        found[domain.encode("ascii", "replace")] = None
        if "xn--" in domain:
            # A label the IDNA 2003 codec refuses: its ASCII spelling is searched alone.
            with suppress(UnicodeError):
                found[domain.encode("ascii").decode("idna").lower().encode("utf-8")] = None
    return tuple(found)


def _mentions(lowered: bytes, names: Sequence[bytes]) -> bool:
    """True when one of `names` occurs in `lowered` as a whole name (see the module docstring)."""
    for name in names:
        start = lowered.find(name)
        while start >= 0:
            end = start + len(name)
            if _starts_name(lowered, start) and _ends_name(lowered, end):
                return True
            start = lowered.find(name, start + 1)
    return False


def _starts_name(text: bytes, start: int) -> bool:
    """True when no name character precedes `start`, or an escaped separator does."""
    return start == 0 or text[start - 1] not in _NAME_BYTES or text.endswith(_ESCAPED_SEPARATORS, 0, start)


def _ends_name(text: bytes, end: int) -> bool:
    """True when no name character follows `end`, nor a dot that starts another label."""
    if end == len(text):
        return True
    after = text[end]
    if after == ord("."):
        return end + 1 == len(text) or text[end + 1] not in _NAME_BYTES
    return after not in _NAME_BYTES


def _has_link(tree: LexborHTMLParser) -> bool:
    """True when the document has an `<a href>` or `<area href>` (an SVG `xlink:href` is no href)."""
    return any("href" in node.attributes for node in tree.css(_LINKS))


def _is_empty(mount: LexborNode) -> bool:
    """True when `mount` shows nothing: only white space, comments and unshown elements inside."""
    child = mount.child
    while child is not None:
        if child.is_text_node:
            if (child.text_content or "").strip():
                return False
        elif child.tag not in _UNSHOWN:
            return False
        child = child.next
    return True


def _without_links(tree: LexborHTMLParser) -> bytes:
    """The document, lower-cased UTF-8, once its links are taken out of it.

    The serialised document spells the names as the markup did, character references resolved;
    `remove` (not `decompose`) so that a link nested in a removed one stays valid memory.
    """
    for node in tree.css(_LINKS):
        if "href" in node.attributes:
            node.remove()
    return (tree.html or "").encode("utf-8", "surrogatepass").lower()
