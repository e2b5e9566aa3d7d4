"""URLs as browsers see them: WHATWG resolution, page normalisation, match modes, hosts.

Pure. Parsing is ada-url's (the WHATWG parser Node.js uses), so `href` values resolve the
way a browser resolves them: tabs and newlines removed, backslashes as slashes, IDNA hosts,
`https:example.com` relative to an https base, and so on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ada_url import URL, join_url
from publicsuffixlist import PublicSuffixList

HTTP_SCHEMES = frozenset({"http:", "https:"})
# A percent escape, a stray `%`, or a character that means the same encoded or not: those
# outside RFC 3986's unreserved and reserved sets, and `[` `]`, reserved for IPv6 hosts only.
_ESCAPABLE = re.compile(r"%([0-9A-Fa-f]{2})|%|[\x00-\x20\"<>\\^`{|}\x7f\[\]]")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PSL = PublicSuffixList()


def parse(url: str, base: str | None = None) -> URL | None:
    """The WHATWG parse of `url` (against `base`), or None when a browser would fail too."""
    try:
        return URL(url, base) if base is not None else URL(url)
    except ValueError:
        return None


def resolve(href: str, base: str) -> str | None:
    """`href` resolved against `base` and serialised, or None when it does not parse."""
    try:
        return str(join_url(base, href))
    except ValueError:
        return None


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


@lru_cache(maxsize=65536)
def host_key(url: str) -> str:
    """The lower-cased host name of `url`: the unit of politeness ("" when there is none)."""
    parsed = parse(url)
    return parsed.hostname.lower() if parsed is not None else ""


def origin(url: str) -> str:
    """scheme://host[:port] of `url`: the unit robots.txt applies to."""
    parsed = parse(url)
    if parsed is None:
        return ""
    return f"{parsed.protocol}//{parsed.host}"


@lru_cache(maxsize=65536)
def registrable_domain(host: str) -> str:
    """The registrable domain of `host` by the public suffix list (the host itself for IPs)."""
    host = host.lower().rstrip(".")
    if host.startswith("[") or host.replace(".", "").isdigit():
        return host
    return _PSL.privatesuffix(host) or host


def _normalize_percent(component: str) -> str:
    """Unreserved characters decoded, other escapes upper-case, unsafe characters escaped."""

    def fix(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape is None:
            return "".join(f"%{byte:02X}" for byte in match.group(0).encode())
        byte = int(escape, 16)
        return chr(byte) if byte in _UNRESERVED else f"%{escape.upper()}"

    return _ESCAPABLE.sub(fix, component)


@lru_cache(maxsize=65536)
def normalize_page(url: str) -> str | None:
    """The `page` form of an absolute URL, or None when it does not parse.

    Scheme ignored, host lower-case and IDNA (a trailing dot dropped), one leading `www.`
    dropped, default port dropped, dot segments removed, percent-encoding normalised
    (unreserved characters decoded, hex upper-case, characters that are neither unreserved
    nor reserved escaped, a stray `%` as `%25`), empty path as `/`, one
    trailing slash ignored, query kept as is (an empty `?` dropped), fragment and
    credentials ignored. The result looks like `//example.com/path?query`.
    """
    parsed = parse(url)
    if parsed is None:
        return None
    host = parsed.hostname.lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    if parsed.port:
        host = f"{host}:{parsed.port}"
    path = _normalize_percent(parsed.pathname or "/")
    if path.endswith("/"):
        path = path[:-1]
    query = _normalize_percent(parsed.search)
    if query == "?":
        query = ""
    return f"//{host}{path}{query}"


@dataclass(frozen=True, slots=True)
class Target:
    """A claimed target prepared once, then tested against every link of a page."""

    url: str
    mode: str
    exact: str
    page: str
    domain: str

    @classmethod
    def of(cls, url: str, mode: str) -> Target:
        parsed = parse(url)
        exact = without_fragment(parsed.href) if parsed is not None else without_fragment(url)
        return cls(
            url=url,
            mode=mode,
            exact=exact,
            page=normalize_page(url) or exact,
            domain=registrable_domain(parsed.hostname) if parsed is not None else "",
        )

    def matches(self, link_url: str) -> bool:
        """True when `link_url` (absolute, serialised) counts as a link to this target."""
        if self.mode == "exact":
            return without_fragment(link_url) == self.exact
        if self.mode == "domain":
            return self.same_site(link_url)
        page = normalize_page(link_url)
        if page is None:
            return False
        if self.mode == "prefix":
            return page == self.page or (page.startswith(self.page) and page[len(self.page)] in "/?")
        return page == self.page

    def same_site(self, link_url: str) -> bool:
        """True when `link_url`'s host is the target's registrable domain or under it."""
        host = host_key(link_url)
        return bool(self.domain) and (host == self.domain or host.endswith("." + self.domain))
