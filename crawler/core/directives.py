"""Robots directives and the canonical URL, as they apply to one index agent.

Pure: takes the plain values of `crawler.models`, returns plain values.

A directive is written `name` or `name: value`: the name lower-cased, a value kept as
written with its whitespace collapsed, e.g. `noindex`, `max-snippet: -1`,
`unavailable_after: 25 Jun 2010 15:00:00 PST`. The lists reported in a result hold every
directive addressed to the index agent, known or not (`noarchive`, `index`, ...), in the
order first seen, without repeats; `none` is kept as written and means noindex + nofollow.

Combining: positive directives (`index`, `follow`, `all`) never cancel a negative one; the
most restrictive wins, so one `noindex` from any source applies, and of several valid
`unavailable_after` dates the earliest applies.

Scoping: meta tags are scoped by their `name` (`robots` or the index agent). In an
`X-Robots-Tag` value, a piece `agent: directive` scopes that piece and the pieces after
it in the same header value to `agent`, until the next `agent:` piece. This reads Google's
documented one-agent-per-header form, and also what a proxy makes of two such headers
folded into one (`googlebot: noindex, otherbot: nofollow`). A piece is taken as a
directive, not a scope, when the part before its first colon is a known directive name
(`unavailable_after`, `max-snippet`, `noindex`, ...): `unavailable_after: 2030-01-01` is no agent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from crawler.core import urls
from crawler.models import Fetched, Page

VALUED = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})
"""Directives that carry a value after a colon."""
KNOWN = VALUED | {
    "all",
    "follow",
    "index",
    "indexifembedded",
    "noarchive",
    "nocache",
    "nofollow",
    "noimageindex",
    "noindex",
    "none",
    "nosnippet",
    "notranslate",
}
"""Directive names Google or Bing document; any other `word:` in an X-Robots-Tag value is an agent."""
NOINDEX = frozenset({"noindex", "none"})
NOFOLLOW = frozenset({"nofollow", "none"})
# RFC 822 and RFC 850 dates open with a weekday and a comma: "Friday, 25-Jun-10 ...".
_WEEKDAY_CUT = re.compile(r"unavailable_after\s*:\s*(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\s*$", re.I)
_AGENT = re.compile(r"[a-z0-9_.\-/]+")
_LINK_TARGET = re.compile(r"\s*<([^>]*)>")
_LINK_PARAM = re.compile(r'\s*;\s*([^\s=;,]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;,]*))?')
# A header canonical carrying these describes an alternate version, as in the `<head>` rule.
_ALTERNATE_PARAMS = frozenset({"hreflang", "media", "type"})


def split_directives(content: str) -> list[str]:
    """The comma-separated pieces of a directive list, trimmed, with date commas rejoined."""
    pieces: list[str] = []
    for piece in content.split(","):
        if pieces and _WEEKDAY_CUT.search(pieces[-1]):
            pieces[-1] = f"{pieces[-1]}, {piece.strip()}"
        else:
            pieces.append(piece.strip())
    return [piece for piece in pieces if piece]


def normalize(piece: str) -> str | None:
    """One directive as `name` or `name: value` (see the module docstring); None when empty."""
    name, colon, value = piece.partition(":")
    name = " ".join(name.split()).lower()
    value = " ".join(value.split())
    if not name:
        return None
    return f"{name}: {value}" if colon and value else name


def meta_directives(meta: Iterable[tuple[str, str]], agent: str) -> tuple[str, ...]:
    """Directives of every `<meta name=robots|agent>` (names case-insensitive), in order."""
    names = {"robots", agent.strip().lower()}
    found = (
        normalize(piece)
        for name, content in meta
        if name.strip().lower() in names
        for piece in split_directives(content)
    )
    return _unique(found)


def header_directives(headers: Iterable[tuple[str, str]], agent: str) -> tuple[str, ...]:
    """Directives of every `X-Robots-Tag` header that is unscoped or scoped to `agent`."""
    agent = agent.strip().lower()
    found: list[str | None] = []
    for name, value in headers:
        if name.lower() == "x-robots-tag":
            found.extend(directive for scope, directive in _scoped(value) if scope in (None, agent))
    return _unique(found)


def _scoped(value: str) -> Iterator[tuple[str | None, str | None]]:
    """(agent or None, directive) for each piece of one header value; scopes carry forward."""
    scope: str | None = None
    for piece in split_directives(value):
        head, colon, rest = piece.partition(":")
        head = head.strip().lower()
        if colon and head not in KNOWN and _AGENT.fullmatch(head):
            scope, piece = head, rest
        yield scope, normalize(piece)


def _unique(directives: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(directive for directive in directives if directive))


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_date(text: str) -> datetime | None:
    """An `unavailable_after` date (ISO 8601, RFC 822 or RFC 850) in UTC, or None when invalid.

    A date without a zone is taken as UTC; RFC 822 zone names (GMT, PST, EDT, ...) count.
    """
    text = text.strip()
    if not text:
        return None
    # "25 Jun 2010" has no time, which RFC 822 requires; people write it, so midnight it is.
    candidates = (text, f"{text} 00:00:00")
    parsed = _iso_date(text) or next(filter(None, map(_rfc822_date, candidates)), None)
    return as_utc(parsed) if parsed is not None else None


def _iso_date(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _rfc822_date(text: str) -> datetime | None:
    try:
        return parsedate_to_datetime(text)
    except (ValueError, TypeError, OverflowError, IndexError):
        return None


def unavailable_after(directives: Iterable[str]) -> datetime | None:
    """The earliest valid `unavailable_after` date among `directives`, or None."""
    dates = (
        parse_date(value)
        for name, _, value in (directive.partition(": ") for directive in directives)
        if name == "unavailable_after"
    )
    return min(filter(None, dates), default=None)


def link_header(value: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(target as written, parameters with lower-case names) of each link in a `Link` value (RFC 8288).

    Quoted parameter values are unquoted; of a repeated parameter the first counts.
    A link that cannot be read is skipped up to the next comma.
    """
    pos = 0
    while pos < len(value):
        target = _LINK_TARGET.match(value, pos)
        if target is None:
            pos = _after_comma(value, pos)
            continue
        params: dict[str, str] = {}
        pos = target.end()
        while param := _LINK_PARAM.match(value, pos):
            params.setdefault(param.group(1).lower(), _unquote(param.group(2) or ""))
            pos = param.end()
        yield target.group(1).strip(), params
        pos = _after_comma(value, pos)


def _after_comma(value: str, pos: int) -> int:
    comma = value.find(",", pos)
    return len(value) if comma < 0 else comma + 1


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    return raw


def header_canonical(headers: Iterable[tuple[str, str]], base: str) -> str | None:
    """The first `Link: <...>; rel="canonical"` of the headers, resolved against `base`."""
    for name, value in headers:
        if name.lower() != "link":
            continue
        for target, params in link_header(value):
            rels = params.get("rel", "").lower().split()
            if "canonical" in rels and not _ALTERNATE_PARAMS & params.keys():
                resolved = urls.resolve(target, base)
                if resolved is not None and urls.is_http(resolved):
                    return resolved
    return None


def canonical(page: Page | None, headers: Iterable[tuple[str, str]], base: str) -> str | None:
    """The effective canonical: the page's `<head>` one, else the `Link` header's; http(s) only."""
    if page is not None and page.canonical and urls.is_http(page.canonical):
        return page.canonical
    return header_canonical(headers, base)


def is_elsewhere(canonical_url: str | None, final_url: str | None) -> bool:
    """True when the canonical names another page than `final_url` (page normalisation)."""
    if not canonical_url or not final_url:
        return False
    declared, actual = urls.normalize_page(canonical_url), urls.normalize_page(final_url)
    return declared is not None and actual is not None and declared != actual


@dataclass(frozen=True, slots=True)
class Indexing:
    """What the page and its final response tell the index agent, combined."""

    meta_robots: tuple[str, ...]
    x_robots_tag: tuple[str, ...]
    noindex: bool
    nofollow: bool
    expired: bool
    canonical: str | None
    canonical_elsewhere: bool


def indexing(fetched: Fetched, *, index_agent: str, now: datetime) -> Indexing:
    """The robots directives and canonical of a fetched page for `index_agent` at time `now`."""
    page = fetched.page
    meta = meta_directives(page.meta_robots, index_agent) if page is not None else ()
    header = header_directives(fetched.headers, index_agent)
    names = {directive.partition(": ")[0] for directive in meta + header}
    deadline = unavailable_after(meta + header)
    final_url = fetched.final_url or fetched.url
    canonical_url = canonical(page, fetched.headers, final_url)
    return Indexing(
        meta_robots=meta,
        x_robots_tag=header,
        noindex=bool(names & NOINDEX),
        nofollow=bool(names & NOFOLLOW),
        expired=deadline is not None and as_utc(now) >= deadline,
        canonical=canonical_url,
        canonical_elsewhere=is_elsewhere(canonical_url, final_url),
    )
