"""The values every stage shares: claims in, results out, and what lies between.

Pure: no I/O, no event loop. Field names of `Result` and `Link` are the public
output format (see the README); changing one is a breaking change.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from crawler.core import urls
from crawler.core.urls import MatchMode as MatchMode
from crawler.errors import ClaimError


class Status(StrEnum):
    """The verdict on one claim, checked in this order: the first that applies wins."""

    INVALID = "invalid"
    BLOCKED = "blocked"
    UNREACHABLE = "unreachable"
    PAGE_ERROR = "page_error"
    MISSING = "missing"
    NOT_INDEXABLE = "not_indexable"
    NOFOLLOW = "nofollow"
    VERIFIED = "verified"


class Flag(StrEnum):
    """Facts worth knowing beside the status; a result carries any number of them."""

    NOFOLLOW = "nofollow"
    SPONSORED = "sponsored"
    UGC = "ugc"
    PAGE_NOFOLLOW = "page_nofollow"
    NOINDEX = "noindex"
    ROBOTS_INDEX_DISALLOWED = "robots_index_disallowed"
    CANONICAL_ELSEWHERE = "canonical_elsewhere"
    EXPIRED = "expired"
    SOURCE_REDIRECTED = "source_redirected"
    CROSS_HOST_REDIRECT = "cross_host_redirect"
    ANCHOR_MISMATCH = "anchor_mismatch"
    REL_MISMATCH = "rel_mismatch"
    HIDDEN = "hidden"
    BOILERPLATE = "boilerplate"
    MULTIPLE_MATCHES = "multiple_matches"
    TRUNCATED = "truncated"
    CRAWL_DELAY_CAPPED = "crawl_delay_capped"
    BEYOND_INDEX_LIMIT = "beyond_index_limit"
    WRONG_TARGET = "wrong_target"
    UNLINKED_MENTION = "unlinked_mention"
    BOT_CHALLENGE = "bot_challenge"
    META_REFRESH = "meta_refresh"
    JS_RENDERED = "js_rendered"
    RENDER_FAILED = "render_failed"


class Reason(StrEnum):
    """Why a page could not be judged: the machine word of `Result.reason`.

    A final status other than 2xx is `http_<status>` (`Reason.http(404)`), and an `invalid`
    result's reason names the row and the problem; every other reason is one of these.
    """

    ROBOTS_DISALLOWED = "robots_disallowed"
    ROBOTS_UNAVAILABLE = "robots_unavailable"
    FORBIDDEN_ADDRESS = "forbidden_address"
    DNS_ERROR = "dns_error"
    CONNECTION_ERROR = "connection_error"
    TLS_ERROR = "tls_error"
    TIMEOUT = "timeout"
    NO_RESPONSE = "no_response"
    """The request ended without a status and without a known failure (never seen in practice)."""
    TOO_MANY_REDIRECTS = "too_many_redirects"
    NOT_HTML = "not_html"
    INTERNAL_ERROR = "internal_error"
    """A bug of the crawler while fetching or judging this page; the run went on."""

    @staticmethod
    def http(status: int) -> str:
        """The reason of a final response with a status other than 2xx, e.g. `http_404`."""
        return f"http_{status}"


BLOCKING_REASONS = frozenset({Reason.ROBOTS_DISALLOWED, Reason.ROBOTS_UNAVAILABLE, Reason.FORBIDDEN_ADDRESS})
"""Reasons of a page we did not fetch: its status is `blocked`."""
NO_RESPONSE_REASONS = frozenset({Reason.DNS_ERROR, Reason.CONNECTION_ERROR, Reason.TLS_ERROR})
"""Failures meaning "this host gives no response at all"."""


class ExpectedRel(StrEnum):
    """The kind of link the buyer paid for."""

    FOLLOW = "follow"
    NOFOLLOW = "nofollow"
    SPONSORED = "sponsored"
    UGC = "ugc"


class Region(StrEnum):
    """Where on the page a link sits; everything but `main` is boilerplate."""

    MAIN = "main"
    NAV = "nav"
    HEADER = "header"
    FOOTER = "footer"
    ASIDE = "aside"
    COMMENTS = "comments"


def new_run_id(now: datetime) -> str:
    """A run id: when it started (UTC, to the second) and six random hex digits, e.g.
    `20260101T080000Z-1a2b3c`; ids sort by start time."""
    return f"{as_utc(now):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def claim_key(source_url: str, target_url: str) -> str:
    """The default claim id: a stable hash of the two URLs as written."""
    digest = hashlib.sha256(f"{source_url}\n{target_url}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")
"""What no database stores as text: NUL, and lone surrogates (what Python's surrogateescape
makes of bytes that were not UTF-8)."""


def text_problem(text: str) -> str | None:
    """Why `text` can't be stored as text, or None."""
    bad = UNSTORABLE_TEXT.search(text)
    if bad is None:
        return None
    return "contains a NUL byte" if bad.group() == "\x00" else "not valid UTF-8"


@dataclass(frozen=True, slots=True, init=False)
class Claim:
    """A claim: "the page `source_url` contains a link to `target_url`", and what was paid for.

    Built values are valid: a bad URL, rel or match mode, or text no database can store (a NUL, a
    lone surrogate), raises `ClaimError`. `expected_rel` and `match` take their enum or its word,
    as a file or a caller writes it (`"dofollow"` is `follow`); `id` defaults to a stable hash of
    the two URLs.
    """

    source_url: str
    target_url: str
    expected_anchor: str | None
    expected_rel: ExpectedRel | None
    match: MatchMode
    id: str
    tags: Mapping[str, str]

    def __init__(
        self,
        source_url: str,
        target_url: str,
        expected_anchor: str | None = None,
        expected_rel: ExpectedRel | str | None = None,
        match: MatchMode | str = MatchMode.PAGE,
        id: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> None:
        for name, url in (("source_url", source_url), ("target_url", target_url)):
            problem = urls.problem_with_absolute_http_url(url)
            if problem:
                raise ClaimError(name, problem)
        tags = dict(tags or {})
        texts = {
            "source_url": source_url,
            "target_url": target_url,
            "id": id,
            "expected_anchor": expected_anchor or "",
            "tags": "".join((*tags, *tags.values())),
        }
        if UNSTORABLE_TEXT.search("".join(texts.values())) is not None:  # one search for them all
            name, problem = next((n, p) for n, t in texts.items() if (p := text_problem(t)) is not None)
            raise ClaimError(name, problem)
        setattr_ = object.__setattr__
        setattr_(self, "source_url", source_url)
        setattr_(self, "target_url", target_url)
        setattr_(self, "expected_anchor", expected_anchor)
        setattr_(self, "expected_rel", None if expected_rel is None else _expected_rel(expected_rel))
        setattr_(self, "match", _enum(MatchMode, "match", match))
        setattr_(self, "id", id or claim_key(source_url, target_url))
        setattr_(self, "tags", tags)


_E = TypeVar("_E", bound=StrEnum)


def _enum(kind: type[_E], field_name: str, value: object) -> _E:
    if isinstance(value, kind):
        return value
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ClaimError(field_name, f"{value!r} is not one of {allowed}") from None


def _expected_rel(value: object) -> ExpectedRel:
    if isinstance(value, str) and value.strip().lower() == "dofollow":  # a common name for follow
        return ExpectedRel.FOLLOW
    return _enum(ExpectedRel, "expected_rel", value)


@dataclass(frozen=True, slots=True)
class InvalidClaim:
    """An input row that is not a usable claim; it becomes an `invalid` result, never a drop.

    `reason` names the row and the problem, e.g. "row 7: target_url: missing".
    """

    id: str
    source_url: str
    target_url: str
    reason: str
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Link:
    """One `<a href>` or `<area href>` of a page, raw beside resolved."""

    href: str
    url: str
    text: str
    rel: tuple[str, ...]
    hidden: bool
    region: Region
    beyond_index_limit: bool = False
    image: bool = False
    """The text is an image's `alt` (the link has no text of its own)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "href": self.href,
            "url": self.url,
            "text": self.text,
            "image": self.image,
            "rel": list(self.rel),
            "hidden": self.hidden,
            "region": self.region.value,
        }


@dataclass(frozen=True, slots=True)
class ScriptSigns:
    """Whether a page looks built by scripts, as the `auto` render gate reads it
    (`crawler.core.render_gate`), noted while the page is parsed for its links anyway."""

    has_links: bool
    """An `<a href>` or `<area href>` in the document as parsed (not in `<noscript>` content)."""
    empty_app_root: bool
    """An element with a single-page framework's mount id that shows nothing."""
    named: frozenset[str]
    """The target URLs whose host or registrable domain the markup names outside every link."""


@dataclass(frozen=True, slots=True)
class Page:
    """What the HTML of one fetched page says, independent of any claim."""

    url: str
    base_url: str
    links: tuple[Link, ...]
    meta_robots: tuple[tuple[str, str], ...]
    """(name lower-cased, content) of every `<meta name=robots|<index agent>>`, in document order."""
    canonical: str | None
    """The `<head>` canonical, resolved; the Link header fallback is the verdict's job."""
    refresh_url: str | None
    """Target of an instant (delay <= 1 s) meta refresh, resolved."""
    visible_text: str | None
    """Text a reader sees, whitespace collapsed and lower-cased, for unlinked mentions; None when
    not read (every target of `targets` has a matching link)."""
    bot_challenge: bool
    outbound_links: int
    targets: tuple[urls.Target, ...] | None = None
    """The targets the page was read for (`links` then holds only the links that may go to their
    sites, see `extract.parse_page`); None: read whole."""
    script_signs: ScriptSigns | None = None
    """The render gate's signs for the targets without a matching link, when asked and some are."""

    def covers(self, target: urls.Target) -> bool:
        """True when a verdict on `target` may be read off this page."""
        return self.targets is None or target in self.targets


@dataclass(frozen=True, slots=True)
class Redirect:
    """A redirect followed: the URL that answered with it and its status (None for a meta refresh)."""

    url: str
    status: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "status": self.status}


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where the archived response of a page lies: a WARC file (relative to `archive`), the
    offset of its record, and the record's `WARC-Record-ID`."""

    file: str
    offset: int
    record_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "offset": self.offset, "record_id": self.record_id}


@dataclass(frozen=True, slots=True)
class Fetched:
    """Everything the engine learned about one source page: the verdict's only input besides the claim.

    `reason` is set when no usable response came (robots_disallowed, robots_unavailable,
    forbidden_address, timeout, dns_error, tls_error, connection_error, too_many_redirects).
    `page` is set when the final response was HTML or XHTML and was parsed.
    """

    url: str
    reason: str | None = None
    status: int | None = None
    final_url: str | None = None
    redirects: tuple[Redirect, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    """Final response headers, names lower-cased, every instance kept in order."""
    content_type: str | None = None
    encoding: str | None = None
    bytes: int = 0
    elapsed_ms: int = 0
    attempts: int = 0
    truncated: bool = False
    crawl_delay_capped: bool = False
    robots_crawler_allowed: bool | None = None
    robots_index_allowed: bool | None = None
    page: Page | None = None
    body_sha256: str | None = None
    """SHA-256 (hex) of the final response's body after content decoding; None without one."""
    evidence: Evidence | None = None
    """Where the final response (or the rendered document) is archived, when `archive` is set."""


@dataclass(frozen=True, slots=True)
class Result:
    """The verdict on one claim in one run. `to_dict` is the documented output record."""

    claim_id: str
    source_url: str
    target_url: str
    tags: Mapping[str, str]
    run_id: str
    checked_at: str
    status: Status
    reason: str | None = None
    flags: tuple[Flag, ...] = ()
    http_status: int | None = None
    final_url: str | None = None
    redirects: tuple[Redirect, ...] = ()
    content_type: str | None = None
    encoding: str | None = None
    bytes: int = 0
    elapsed_ms: int = 0
    attempts: int = 0
    robots_crawler_allowed: bool | None = None
    robots_index_allowed: bool | None = None
    meta_robots: tuple[str, ...] = ()
    x_robots_tag: tuple[str, ...] = ()
    canonical_url: str | None = None
    indexable: bool | None = None
    link: Link | None = None
    links_matched: int = 0
    outbound_links: int = 0
    state: str | None = None
    """The claim's monitoring state after this result (see `crawler.core.history`); None until
    the result has been folded into the claim's history by a store."""
    body_sha256: str | None = None
    """SHA-256 (hex) of the page body the verdict was taken on, after content decoding."""
    evidence: Evidence | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as the contract's JSON object (field order as documented)."""
        return {
            "claim_id": self.claim_id,
            "source_url": self.source_url,
            "target_url": self.target_url,
            "tags": dict(self.tags),
            "run_id": self.run_id,
            "checked_at": self.checked_at,
            "state": self.state,
            "body_sha256": self.body_sha256,
            "status": self.status.value,
            "reason": self.reason,
            "flags": [flag.value for flag in self.flags],
            "http_status": self.http_status,
            "final_url": self.final_url,
            "redirects": [hop.to_dict() for hop in self.redirects],
            "content_type": self.content_type,
            "encoding": self.encoding,
            "bytes": self.bytes,
            "elapsed_ms": self.elapsed_ms,
            "attempts": self.attempts,
            "robots_crawler_allowed": self.robots_crawler_allowed,
            "robots_index_allowed": self.robots_index_allowed,
            "meta_robots": list(self.meta_robots),
            "x_robots_tag": list(self.x_robots_tag),
            "canonical_url": self.canonical_url,
            "indexable": self.indexable,
            "link": self.link.to_dict() if self.link else None,
            "links_matched": self.links_matched,
            "outbound_links": self.outbound_links,
            "evidence": self.evidence.to_dict() if self.evidence else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """Inverse of `to_dict`: rebuilds a result read back from storage or JSON."""
        link = data.get("link")
        return cls(
            claim_id=data["claim_id"],
            source_url=data["source_url"],
            target_url=data["target_url"],
            tags=dict(data.get("tags") or {}),
            run_id=data["run_id"],
            checked_at=data["checked_at"],
            status=Status(data["status"]),
            reason=data.get("reason"),
            flags=tuple(Flag(flag) for flag in data.get("flags") or ()),
            http_status=data.get("http_status"),
            final_url=data.get("final_url"),
            redirects=tuple(Redirect(h["url"], h["status"]) for h in data.get("redirects") or ()),
            content_type=data.get("content_type"),
            encoding=data.get("encoding"),
            bytes=data.get("bytes") or 0,
            elapsed_ms=data.get("elapsed_ms") or 0,
            attempts=data.get("attempts") or 0,
            robots_crawler_allowed=data.get("robots_crawler_allowed"),
            robots_index_allowed=data.get("robots_index_allowed"),
            meta_robots=tuple(data.get("meta_robots") or ()),
            x_robots_tag=tuple(data.get("x_robots_tag") or ()),
            canonical_url=data.get("canonical_url"),
            indexable=data.get("indexable"),
            link=(
                Link(
                    href=link["href"],
                    url=link["url"],
                    text=link["text"],
                    rel=tuple(link["rel"]),
                    hidden=link["hidden"],
                    region=Region(link["region"]),
                    image=bool(link.get("image")),
                )
                if link
                else None
            ),
            links_matched=data.get("links_matched") or 0,
            outbound_links=data.get("outbound_links") or 0,
            state=data.get("state"),
            body_sha256=data.get("body_sha256"),
            evidence=Evidence(**evidence) if (evidence := data.get("evidence")) else None,
        )
