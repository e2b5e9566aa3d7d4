"""URLs as browsers see them: WHATWG resolution, page normalisation, match modes, hosts.

Pure. Parsing is ada-url's (the WHATWG parser Node.js uses), so `href` values resolve the
way a browser resolves them: tabs and newlines removed, backslashes as slashes, IDNA hosts,
`https:example.com` relative to an https base, and so on. ada-url encodes a query in UTF-8
only; `resolve` re-encodes it in the page's encoding where a browser would (see there).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache
from itertools import accumulate, repeat
from operator import add

from ada_url import URL, join_url
from publicsuffixlist import PublicSuffixList

from crawler.core import decode

HTTP_SCHEMES = frozenset({"http:", "https:"})
# A percent escape, a stray `%`, or a character that means the same encoded or not: those
# outside RFC 3986's unreserved and reserved sets, and `[` `]`, reserved for IPv6 hosts only.
_ESCAPABLE = re.compile(r"%([0-9A-Fa-f]{2})|%|[\x00-\x20\"<>\\^`{|}\x7f\[\]]")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# The authority of an http(s) URL as the WHATWG parser writes a plain host: userinfo (anything but
# the characters that end it), a lower-case DNS name whose last label is no number (the parser would
# read it as IPv4) with one trailing dot at most, or a dotted quad; a port without leading zero.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
WRITTEN_AUTHORITY = (
    r"(?P<scheme>https?)://(?:[^/?#\\@]*@)?"
    rf"(?P<host>(?:[a-z0-9-]+\.)*[a-z-][a-z0-9-]*\.?|(?:{_OCTET}\.){{3}}{_OCTET})"
    r"(?::(?P<port>[1-9][0-9]{0,4}))?(?=[/?#\\]|$)"
)
"""A regular expression with the groups `scheme`, `host` and `port`: see `written_host`."""
_WRITTEN_AUTHORITY = re.compile(WRITTEN_AUTHORITY)
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_MAX_PORT = 65535
# Entries per cache below: the URLs and hosts a run repeats come back soon (the claims of one page,
# a campaign's targets); a bigger cache would only hold a million-claim run's memory for nothing.
_CACHED = 4096
_DNS_NAME = re.compile(r"(?:[a-z0-9-]+\.)*[a-z-][a-z0-9-]*")
# What may make the parser spell a host otherwise than as written, ASCII case aside: a tab or
# newline anywhere (they are removed), an escape in the authority (up to the first `/`, `?`, `#` or
# `\` after `scheme://`; anywhere in a URL not written so, e.g. `https:host` or ` https://host`).
_ESCAPED_AUTHORITY = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^/?#\\]*%|(?![a-zA-Z][a-zA-Z0-9+.\-]*://).*%")


class MatchMode(StrEnum):
    """How a link's URL is compared with the claimed target."""

    EXACT = "exact"
    PAGE = "page"
    PREFIX = "prefix"
    DOMAIN = "domain"


def parse(url: str, base: str | None = None) -> URL | None:
    """The WHATWG parse of `url` (against `base`), or None when a browser would fail too."""
    try:
        return URL(url, base) if base is not None else URL(url)
    except ValueError:
        return None


def resolve(href: str, base: str, encoding: str = "utf-8") -> str | None:
    """`href` resolved against `base` and serialised, or None when it does not parse.

    `encoding` is the WHATWG name of the encoding the page was decoded from. On a page in another
    encoding than UTF-8, a browser percent-encodes the query of an http(s) (special, not ws) URL in
    that encoding, a character it can't represent as `&#N;` (the URL standard's "percent-encode
    after encoding"): `?q=café` is `?q=caf%E9` on a windows-1252 page. Only an href with non-ASCII
    text (`decode.is_ascii_in`) takes that path.
    """
    try:
        resolved = str(join_url(base, href))
    except ValueError:
        return None
    if encoding == "utf-8" or decode.is_ascii_in(href, encoding):
        return resolved
    return _query_encoded(resolved, href, decode.output_encoding(encoding))


# Schemes whose query the document's encoding encodes: the special ones but ws and wss.
_QUERY_ENCODED_SCHEMES = ("http:", "https:", "ftp:", "file:")
_C0_OR_SPACE = "".join(map(chr, range(0x21)))
_TAB_OR_NEWLINE = str.maketrans("", "", "\t\n\r")
_SURROGATE = re.compile("[\ud800-\udfff]")
# The special-query percent-encode set, by byte: C0 controls, space, `"`, `#`, `'`, `<`, `>` and
# every byte above 0x7E; the other bytes stand for themselves.
_QUERY_BYTES = [
    chr(byte) if 0x20 < byte < 0x7F and chr(byte) not in "\"#'<>" else f"%{byte:02X}" for byte in range(256)
]


def _query_encoded(resolved: str, href: str, encoding: str) -> str:
    """`resolved` with the query written in `href` percent-encoded in `encoding`, when it has one
    with non-ASCII text and the URL is special; else `resolved` as it is."""
    if encoding == "utf-8" or not resolved.startswith(_QUERY_ENCODED_SCHEMES):
        return resolved
    # As the parser reads the href: in a special URL, the first `?` before any `#` starts the query.
    written = href.strip(_C0_OR_SPACE).translate(_TAB_OR_NEWLINE).partition("#")[0]
    _, mark, query = written.partition("?")
    if not mark or decode.is_ascii_in(query, encoding):
        return resolved
    # The serialised URL's first `?` starts its query (path and userinfo escape it), and the `#`
    # after it its fragment (the query escapes it).
    head, _, rest = resolved.partition("?")
    _, hash_mark, fragment = rest.partition("#")
    return f"{head}?{_percent_encode_query(query, encoding)}{hash_mark}{fragment}"


def _percent_encode_query(query: str, encoding: str) -> str:
    """The URL standard's "percent-encode after encoding" of a query in `encoding`."""
    parts = []
    # A URL is a string of scalar values: a lone surrogate was U+FFFD before it got here.
    for piece in decode.encode_or_fail(_SURROGATE.sub("\ufffd", query), encoding):
        if isinstance(piece, int):
            parts.append(f"%26%23{piece}%3B")  # `&#N;`, as a form does
        else:
            parts.append("".join([_QUERY_BYTES[byte] for byte in piece]))
    return "".join(parts)


def is_http(url: str) -> bool:
    """True for an absolute URL whose scheme is http or https."""
    return url.startswith(("http:", "https:"))


def problem_with_absolute_http_url(url: object) -> str | None:
    """Why `url` is not a usable absolute http(s) URL, or None when it is."""
    if not isinstance(url, str) or not url.strip():
        return "missing"
    parsed = parse(url.strip())
    if parsed is None:
        return f"not a valid URL: {url!r}"
    if parsed.protocol not in HTTP_SCHEMES:
        return f"not an http(s) URL: {url!r}"
    if not parsed.hostname:
        return f"no host in {url!r}"
    return None


def without_fragment(url: str) -> str:
    """`url` with its fragment removed."""
    return url.split("#", 1)[0]


def written_host(url: str) -> tuple[str, str] | None:
    """(host, port) of an http(s) URL read off the string, when the string already spells them
    as the WHATWG parser serialises them; None when only a parse can tell.

    The cheap path for URLs the parser wrote (every link of a parsed page): a lower-case DNS name
    without IDNA labels, or a dotted-quad IPv4 address, and a port only when it is no default one
    ("" when none). Anything unusual (an escape, upper case, `xn--`, an empty label, a host ending
    in a number that is not a dotted quad, a default, zero or zero-padded port, a tab) gives None,
    never a wrong host.
    """
    found = _WRITTEN_AUTHORITY.match(url)
    if found is None:
        return None
    host, port = found["host"], found["port"]
    if not kept_as_written(host, port) or port == _DEFAULT_PORTS[found["scheme"]]:
        return None
    return host, port or ""


def kept_as_written(host: str, port: str | None) -> bool:
    """True when the WHATWG parser keeps a host and port that `WRITTEN_AUTHORITY` matched as they
    are written: no IDNA label (which it would check, and may refuse), a port in range."""
    return "xn--" not in host and (port is None or int(port) <= _MAX_PORT)


@lru_cache(maxsize=_CACHED)
def host_key(url: str) -> str:
    """The lower-cased host name of `url`: the unit of politeness ("" when there is none)."""
    written = written_host(url)
    if written is not None:
        return written[0]
    parsed = parse(url)
    return parsed.hostname.lower() if parsed is not None else ""


@lru_cache(maxsize=_CACHED)
def origin(url: str) -> str:
    """scheme://host[:port] of `url`: the unit robots.txt applies to."""
    parsed = parse(url)
    if parsed is None:
        return ""
    return f"{parsed.protocol}//{parsed.host}"


@lru_cache(maxsize=_CACHED)
def registrable_domain(host: str) -> str:
    """The registrable domain of `host` by the public suffix list (the host itself for IPs)."""
    host = host.lower().rstrip(".")
    if host.startswith("[") or host.replace(".", "").isdigit():
        return host
    return _public_suffixes().privatesuffix(host) or host


def referring_domain(url: str) -> str | None:
    """The registrable domain of a page's URL, the referring domain of a link on it (None when the
    URL has no host)."""
    host = host_key(url) if isinstance(url, str) else ""
    return registrable_domain(host) if host else None


@cache
def _public_suffixes() -> PublicSuffixList:
    """The list, read on first use (it takes a noticeable part of start-up, and many runs never
    need a registrable domain)."""
    return PublicSuffixList()


def _normalize_percent(component: str) -> str:
    """Unreserved characters decoded, other escapes upper-case, unsafe characters escaped."""

    def fix(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape is None:
            return "".join(f"%{byte:02X}" for byte in match.group(0).encode())
        byte = int(escape, 16)
        return chr(byte) if byte in _UNRESERVED else f"%{escape.upper()}"

    return _ESCAPABLE.sub(fix, component)


@lru_cache(maxsize=_CACHED)
def normalize_page(url: str) -> str | None:
    """The `page` form of an absolute URL, or None when it does not parse.

    Scheme ignored, host lower-case and IDNA (a trailing dot dropped), one leading `www.`
    dropped, default port dropped, dot segments removed, percent-encoding normalised
    (unreserved characters decoded, hex upper-case, characters that are neither unreserved
    nor reserved escaped, a stray `%` as `%25`), empty path as `/`, one
    trailing slash ignored (the form always ends its path with one: `/a` and `/a/` are `/a/`,
    `/a//` stays itself, so normalising a normalised URL changes nothing; a path of slashes only
    is the root), query kept in order without its tracking parameters (`is_tracking`), a query
    with no parameter left (empty, or `&` only) dropped, fragment and credentials ignored. The
    result looks like `//example.com/path?query`.
    """
    parsed = parse(url)
    if parsed is None:
        return None
    host = parsed.hostname.lower()
    host = host.rstrip(".") or host  # a host of dots only stays itself: "//" would name no host
    if host.startswith("www."):
        host = host[4:]
    if parsed.port:
        host = f"{host}:{parsed.port}"
    path = _normalize_percent(parsed.pathname or "/")
    if path.strip("/") == "":
        path = "/"  # a path of slashes only names the root: `//a.com//` is `//a.com/`
    elif not path.endswith("/"):
        path += "/"  # one trailing slash ignored, written so that the form normalises to itself
    return f"//{host}{path}{_without_tracking(_normalize_percent(parsed.search))}"


TRACKING_PARAMETERS = frozenset(
    {"gclid", "gbraid", "wbraid", "fbclid", "msclkid", "yclid", "mc_cid", "mc_eid", "_ga", "_gl"}
)
"""Query parameters that say who sent a visitor, not which page: `page` matching drops them, and
every `utm_*` one (see `is_tracking`)."""


def is_tracking(name: str) -> bool:
    """True for the name of a tracking parameter: `utm_*` or one of `TRACKING_PARAMETERS`.

    The name is compared after percent-encoding normalisation (`utm%5Fsource` is `utm_source`) and
    ASCII case-insensitively: `UTM_Source` and `GCLID` are written by hand or by tools that way,
    tag the same page for the same purpose, and no site names a parameter of its content so.
    """
    lowered = name.lower()
    return lowered.startswith("utm_") or lowered in TRACKING_PARAMETERS


def _without_tracking(query: str) -> str:
    """A normalised query (`?...` or "") without its tracking parameters, the others in order;
    "" when no parameter is left."""
    kept = [piece for piece in query[1:].split("&") if not is_tracking(piece.partition("=")[0])]
    rest = "&".join(kept)
    return f"?{rest}" if rest.strip("&") else ""


@dataclass(frozen=True, slots=True)
class Target:
    """A claimed target prepared once, then tested against every link of a page."""

    url: str
    mode: MatchMode
    exact: str
    page: str
    host: str
    """The target's host name, lower-case ("" when the URL does not parse)."""
    page_name: str = ""
    """The host name of `page` when a DNS name ("" else): a link whose URL lacks it can't match."""

    @classmethod
    def of(cls, url: str, mode: MatchMode | str) -> Target:
        """The target `url` prepared for `mode`; claims repeat their targets, so it is kept a while."""
        return _target(url, MatchMode(mode))

    @classmethod
    def _prepare(cls, url: str, mode: MatchMode) -> Target:
        parsed = parse(url)
        exact = without_fragment(parsed.href) if parsed is not None else without_fragment(url)
        page = normalize_page(url)
        return cls(
            url=url,
            mode=mode,
            exact=exact,
            page=page or exact,
            host=parsed.hostname.lower() if parsed is not None else "",
            page_name=dns_name(_page_host(page).rpartition(":")[0] or _page_host(page)) if page else "",
        )

    @property
    def domain(self) -> str:
        """The registrable domain of the target's host ("" when none)."""
        return registrable_domain(self.host) if self.host else ""

    def matches(self, link_url: str) -> bool:
        """True when `link_url` (absolute, serialised) counts as a link to this target."""
        if self.mode is MatchMode.EXACT:
            return without_fragment(link_url) == self.exact
        if self.mode is MatchMode.DOMAIN:
            return self.same_site(link_url)
        page = normalize_page(link_url)
        if page is None:
            return False
        if self.mode is MatchMode.PREFIX:
            # A target without query ends its path with `/`, so any longer link is at a segment boundary.
            return page.startswith(self.page) and (
                page == self.page or self.page.endswith("/") or page[len(self.page)] in "/?"
            )
        return page == self.page

    def same_site(self, link_url: str) -> bool:
        """True when `link_url`'s host is the target's registrable domain or under it."""
        domain = self.domain
        if not domain:
            return False
        written = written_host(link_url)
        host = written[0] if written is not None else host_key(link_url)
        return host == domain or host.endswith("." + domain)

    def matching(self, link_urls: Sequence[str]) -> list[int]:
        """Indices of the URLs of `link_urls` that `matches`, in order.

        Links to other hosts, most links of a page, are ruled out together without parsing them.
        """
        name = (
            ""
            if self.mode is MatchMode.EXACT
            else dns_name(self.domain)
            if self.mode is MatchMode.DOMAIN
            else self.page_name
        )
        return [i for i in may_contain(link_urls, name) if self.matches(link_urls[i])]

    def same_site_among(self, link_urls: Sequence[str]) -> list[int]:
        """Indices of the URLs of `link_urls` that are `same_site`, in order."""
        candidates = may_contain(link_urls, dns_name(self.domain))
        return [i for i in candidates if self.same_site(link_urls[i])]


def may_contain(link_urls: Sequence[str], name: str) -> Sequence[int]:
    """Indices of the URLs of `link_urls` whose host may contain `name`, as `may_contain_name` says;
    the URLs may be serialised or as written in an href.

    Tested on all the URLs at once first, joined by a space (no DNS name holds one, so no match
    spans two URLs): on most pages, for most targets, no URL holds the name and none may hide it.
    """
    if not name:
        return range(len(link_urls))
    joined = " ".join(link_urls)
    if not joined.isascii() or _has_control(joined):  # never so for URLs the parser wrote
        return [i for i, url in enumerate(link_urls) if may_contain_name(url, name)]
    lowered = joined.lower()  # ASCII: the offsets stay
    if name not in lowered and "%" not in joined:
        return ()
    ends = list(accumulate(map(add, map(len, link_urls), repeat(1))))  # each URL and its space
    named = _holding(lowered, name, ends)
    escaped = [i for i in _holding(joined, "%", ends) if _ESCAPED_AUTHORITY.match(link_urls[i])]
    return sorted({*named, *escaped})


def _holding(joined: str, needle: str, ends: list[int]) -> list[int]:
    """Indices of the URLs holding `needle`, given the URLs joined and where each one ends."""
    found = []
    at = joined.find(needle)
    while at >= 0:
        index = bisect_right(ends, at)
        found.append(index)
        at = joined.find(needle, ends[index])  # on from the next URL
    return found


@lru_cache(maxsize=_CACHED)
def _target(url: str, mode: MatchMode) -> Target:
    return Target._prepare(url, mode)


def may_contain_name(url: str, name: str) -> bool:
    """False when the host of `url` surely does not contain `name`, a lower-case DNS name ("": True).

    A substring test, sound however the URL is spelled: a host is lower-cased, and changed in no
    other way, by the WHATWG parser unless the URL holds a non-ASCII character, a tab or newline,
    or an escape in its authority; such URLs are given the benefit of the doubt.
    """
    if not name or name in url or not url.isascii():
        return True
    return _has_control(url) or bool(_ESCAPED_AUTHORITY.match(url)) or name in url.lower()


def _has_control(text: str) -> bool:
    return "\t" in text or "\n" in text or "\r" in text


def dns_name(host: str) -> str:
    """`host` when it is a lower-case DNS name the parser leaves as it is (no IP address), else ""."""
    return host if _DNS_NAME.fullmatch(host) else ""


def _page_host(page: str) -> str:
    """The host part of a `normalize_page` form `//host[:port]/path?query`."""
    end = len(page)
    for stop in "/?":
        found = page.find(stop, 2)
        if found >= 0:
            end = min(end, found)
    return page[2:end]
