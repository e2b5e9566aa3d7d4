"""robots.txt as RFC 9309 reads it: what each answer means, which group applies, which rule wins.

Pure: the fetcher hands over the status and body it got (after following up to 5 redirects), or
asks for `RobotsPolicy.unavailable_policy()` when robots.txt timed out after retries.

protego matches the rules: longest match wins, ties go to allow, `*` and `$` wildcards,
percent-encoding equivalence, `/robots.txt` is always allowed. It sees the file only after one
pass of our own (`_Reader`) that fixes what it gets wrong:

- Group choice. protego applies a group when its user-agent value occurs in our agent at a token
  boundary, so `User-agent: backlink` would apply to `backlink-crawler` (scrapy/protego#65).
  RFC 9309 applies a group only when its product token equals ours, case-insensitively, else the
  `*` group. So each user-agent line is rewritten to the product token it names: its leading run
  of letters, digits, `-` and `_`, so `Googlebot/2.1` and `Googlebot Images` name `googlebot`
  and `MJ12bot` names `mj12bot`. Google's parser reads values the same way except that it also
  stops at digits (there `MJ12bot` names `MJ`, and `bot1` and `bot2` share a group); we keep
  them. As there, `*` followed by a space is the `*` group. protego is then asked with our token
  when a group names it exactly, and with `*` otherwise. Groups naming one token merge.
- Group boundaries. RFC 9309 (2.2.4) says records other than user-agent, allow and disallow
  must not end a group; protego ends one at any of them, so `User-agent: a`, `Crawl-delay: 5`,
  `User-agent: b`, `Disallow: /x` would give `a` no rules. protego is only shown user-agent and
  rule lines; Crawl-delay is read here instead: it applies to the agents named above it in the
  group, back to the previous Crawl-delay (so `*` then `Crawl-delay: 10` then `bot` then
  `Crawl-delay: 1` gives each its own), or to the whole group when it follows the group's rules.
- Encoding. The first `max_bytes` are read; a UTF-8 byte-order mark, or the part of one Google's
  parser also skips, is dropped; the rest is UTF-8 with undecodable bytes replaced. A UTF-16 byte
  order mark (real files have one) decodes the file as UTF-16: the site owner wrote rules, and
  reading them as garbage would allow what they forbid.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from protego import Protego

ROBOTS_MAX_BYTES = 500 * 1024
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# Field names as protego spells them (it forgives a few typos), so both read a line alike.
_USER_AGENT_FIELDS = frozenset({"user-agent", "useragent", "user agent"})
_RULE_FIELDS = frozenset({"allow", "disallow", "dissallow", "dissalow", "disalow", "diasllow", "disallaw"})
_CRAWL_DELAY_FIELDS = frozenset({"crawl-delay", "crawl delay"})
_KNOWN_FIELDS = (
    _USER_AGENT_FIELDS
    | _RULE_FIELDS
    | _CRAWL_DELAY_FIELDS
    | {"sitemap", "sitemaps", "site-map", "host", "request-rate", "request rate", "visit-time", "visit time"}
)
_PRODUCT_TOKEN = re.compile(r"[A-Za-z0-9_-]*")
_ALL = "*"


@dataclass(frozen=True, slots=True)
class RobotsPolicy:
    """What one origin's robots.txt allows, for any agent.

    Build it with `from_response`, `allow_all` or `unavailable_policy`. `unavailable` is True
    when robots.txt could not be had (5xx, 429, timeout): then everything is disallowed.
    """

    unavailable: bool
    _rules: Protego | None = field(default=None, repr=False)
    _groups: frozenset[str] = field(default=frozenset(), repr=False)
    """The product tokens (lower-case) that have a group of their own."""
    _delays: tuple[tuple[str, float], ...] = field(default=(), repr=False)
    """(product token or `*`, seconds) for each group that sets a Crawl-delay."""

    @classmethod
    def from_response(cls, status: int, body: bytes, *, max_bytes: int = ROBOTS_MAX_BYTES) -> RobotsPolicy:
        """The policy a robots.txt response sets, per RFC 9309 section 2.3.1.

        2xx: the body's rules. 3xx (the fetcher gave up following redirects) and 4xx other than
        429: robots.txt is "unavailable" in the RFC's sense, everything is allowed. 429 and 5xx:
        "unreachable", everything is disallowed. Any other status is no answer at all and is
        treated as unreachable too.
        """
        if 200 <= status < 300:
            return cls._parsed(_text(body[:max_bytes]))
        if 300 <= status < 500 and status != 429:
            return cls.allow_all()
        return cls.unavailable_policy()

    @classmethod
    def allow_all(cls) -> RobotsPolicy:
        """No restrictions: robots.txt is missing (4xx) or not obeyed."""
        return cls(unavailable=False)

    @classmethod
    def unavailable_policy(cls) -> RobotsPolicy:
        """robots.txt answered 5xx or 429, or timed out after retries: assume complete disallow."""
        return cls(unavailable=True)

    @classmethod
    def _parsed(cls, text: str) -> RobotsPolicy:
        reader = _Reader()
        for line in text.splitlines():
            reader.feed(line)
        return cls(
            unavailable=False,
            _rules=Protego.parse("".join(reader.lines)),
            _groups=frozenset(reader.groups - {"", _ALL}),
            _delays=tuple(sorted(reader.delays_by_group.items())),
        )

    def can_fetch(self, url: str, agent: str) -> bool:
        """Whether `agent` (a product token such as "backlink-crawler" or "Googlebot") may fetch `url`.

        `agent` is compared whole: pass the product token, not a full User-Agent header. A URL
        too malformed to match rules against is not fetched.
        """
        if self.unavailable:
            return False
        if self._rules is None:
            return True
        try:
            return self._rules.can_fetch(url, self._group_for(agent))
        except ValueError:
            return False

    def crawl_delay(self, agent: str) -> float | None:
        """The Crawl-delay, in seconds, of the group that applies to `agent`; None when it sets none."""
        group = self._group_for(agent)
        return next((seconds for name, seconds in self._delays if name == group), None)

    def _group_for(self, agent: str) -> str:
        """The name to ask protego with: our token when a group names it exactly, else `*`."""
        token = agent.strip().lower()
        return token if token in self._groups else _ALL


def _text(body: bytes) -> str:
    for bom, codec in _UTF16_BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, "replace")
    for size in (3, 2, 1):
        if body.startswith(_UTF8_BOM[:size]):
            return body[size:].decode("utf-8", "replace")
    return body.decode("utf-8", "replace")


class _Reader:
    """One pass over the lines: what protego should parse, which tokens have groups, their delays."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.groups: set[str] = set()
        self.delays_by_group: dict[str, float] = {}
        self._group: list[str] = []
        self._undelayed: list[str] = []
        self._in_rules = False

    def feed(self, line: str) -> None:
        directive = _directive(line.split("#", 1)[0].strip())
        if directive is None:
            return
        name, value = directive
        if name in _USER_AGENT_FIELDS:
            self._agent(_product_token(value))
        elif name in _RULE_FIELDS:
            self.lines.append(f"{name}: {value}\n")
            self._in_rules = True
        elif name in _CRAWL_DELAY_FIELDS:
            self._crawl_delay(value)
        # Anything else (Sitemap, Host, unknown records) neither ends a group nor concerns us.

    def _agent(self, token: str) -> None:
        if self._in_rules:  # a user-agent line after rules opens the next group
            self._group, self._undelayed, self._in_rules = [], [], False
        self._group.append(token)
        self._undelayed.append(token)
        self.groups.add(token)
        self.lines.append(f"user-agent: {token}\n")

    def _crawl_delay(self, value: str) -> None:
        seconds = _seconds(value)
        if seconds is None:
            return
        for token in self._group if self._in_rules else self._undelayed:
            self.delays_by_group[token] = seconds
        if not self._in_rules:
            self._undelayed = []


def _directive(line: str) -> tuple[str, str] | None:
    """(field lower-cased, value) of a line without its comment, read as protego reads it."""
    name, colon, value = line.partition(":")
    name = name.strip().lower()
    if colon and (name in _KNOWN_FIELDS or not value or value[0].isspace()):
        return name, value.strip()
    # protego also reads "User-agent FooBot", "Disallow /x" and "User agent FooBot".
    words = line.split()
    for count in (1, 2):
        if (candidate := " ".join(words[:count]).lower()) in _KNOWN_FIELDS:
            return candidate, " ".join(words[count:])
    return (name, value.strip()) if colon else None


def _product_token(value: str) -> str:
    """The product token a user-agent value names, lower-case; "" when it names none."""
    if value == _ALL or (value[:1] == _ALL and value[1:2].isspace()):
        return _ALL
    match = _PRODUCT_TOKEN.match(value)
    return match.group().lower() if match else ""


def _seconds(value: str) -> float | None:
    """A Crawl-delay value as seconds: a finite, non-negative number, else None (ignored)."""
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
