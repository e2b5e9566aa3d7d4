"""The verdict: the business rules of the contract (sections 3 to 5), and nothing else.

Pure. `decide` takes a claim and what the engine learned about its source page; `invalid`
turns an unusable input row into its result.

Status, first that applies wins: invalid, blocked, unreachable, page_error, missing,
not_indexable, nofollow, verified.

Which flags a status can carry, each group adding to the ones before it:

- invalid: none.
- blocked: the hops followed before the block (`source_redirected`, `cross_host_redirect`,
  `meta_refresh`), so "redirected to another host, which forbids us" explains itself.
- unreachable: also `crawl_delay_capped`, since we did wait and request.
- page_error: also what the response says of itself: `truncated`, `bot_challenge`; and when
  the final response was a 2xx (`not_html`), the indexability flags below, because
  `indexable` is computed for it too.
- missing: the indexability flags (`noindex`, `page_nofollow`, `robots_index_disallowed`,
  `canonical_elsewhere`, `expired`), plus `wrong_target` and `unlinked_mention`.
- not_indexable, nofollow, verified: the indexability flags, plus the flags of the best
  matching link (`nofollow`, `sponsored`, `ugc`, `anchor_mismatch`, `rel_mismatch`,
  `hidden`, `boilerplate`, `beyond_index_limit`) and `multiple_matches`.

Flags come in the order of the `Flag` enum, each once. `indexable` is None when no response
came (blocked, unreachable), False for a non-2xx final response or a redirect loop, else the
contract's rule. An unreachable result always has a reason: `no_response` when the engine
gave none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ada_url import idna_to_unicode

from crawler.core import directives, urls
from crawler.core.directives import Indexing
from crawler.core.history import normalize_anchor
from crawler.models import (
    Claim,
    ExpectedRel,
    Fetched,
    Flag,
    InvalidClaim,
    Link,
    Page,
    Region,
    Result,
    Status,
)

BLOCKED_REASONS = frozenset({"robots_disallowed", "robots_unavailable", "forbidden_address"})
TOO_MANY_REDIRECTS = "too_many_redirects"
NOT_FOLLOWED = frozenset({"nofollow", "sponsored", "ugc"})
_REL_FLAGS = {"nofollow": Flag.NOFOLLOW, "sponsored": Flag.SPONSORED, "ugc": Flag.UGC}
_MATCHED = frozenset({Status.NOT_INDEXABLE, Status.NOFOLLOW, Status.VERIFIED})
_FLAG_ORDER = {flag: position for position, flag in enumerate(Flag)}


@dataclass(frozen=True, slots=True)
class _Verdict:
    status: Status
    reason: str | None = None
    link: Link | None = None
    links_matched: int = 0


def decide(
    claim: Claim, fetched: Fetched, *, run_id: str, now: datetime, index_agent: str = "Googlebot"
) -> Result:
    """The contract's verdict on `claim`, given everything fetched for its source page."""
    signals = directives.indexing(fetched, index_agent=index_agent, now=now)
    verdict = _judge(claim, fetched, signals)
    return _result(claim, fetched, signals, verdict, run_id=run_id, now=now)


def invalid(item: InvalidClaim, *, run_id: str, now: datetime) -> Result:
    """The result of an input row that is not a usable claim; its reason names row and problem."""
    return Result(
        claim_id=item.id,
        source_url=item.source_url,
        target_url=item.target_url,
        tags=item.tags,
        run_id=run_id,
        checked_at=checked_at(now),
        status=Status.INVALID,
        reason=item.reason,
    )


def checked_at(now: datetime) -> str:
    """`now` as ISO 8601 UTC to the second, e.g. 2026-11-21T19:30:00Z (naive means UTC)."""
    return directives.as_utc(now).strftime("%Y-%m-%dT%H:%M:%SZ")


def _judge(claim: Claim, fetched: Fetched, signals: Indexing) -> _Verdict:
    """The status and its reason, in the contract's order (invalid is `invalid()`'s)."""
    reason = fetched.reason
    if reason in BLOCKED_REASONS:
        return _Verdict(Status.BLOCKED, reason)
    if reason == TOO_MANY_REDIRECTS:
        return _Verdict(Status.PAGE_ERROR, reason)
    if reason is not None or fetched.status is None:
        return _Verdict(Status.UNREACHABLE, reason or "no_response")
    if not _ok(fetched):
        return _Verdict(Status.PAGE_ERROR, f"http_{fetched.status}")
    if fetched.page is None:
        return _Verdict(Status.PAGE_ERROR, "not_html")
    return _read(claim, fetched.page, signals, indexable=_indexable(fetched, signals))


def _read(claim: Claim, page: Page, signals: Indexing, *, indexable: bool) -> _Verdict:
    """Statuses 5 to 8, from the links of a parsed 2xx page."""
    target = urls.Target.of(claim.target_url, claim.match)
    if not page.covers(target):  # see "Reading for the claimed targets" in `crawler.core.extract`
        raise ValueError(f"the page was read for other targets than {claim.target_url!r}")
    links = page.links
    link_urls = [link.url for link in links]
    matches = [links[i] for i in target.matching(link_urls) if urls.is_http(link_urls[i])]
    if not matches:
        same_site = [links[i] for i in target.same_site_among(link_urls) if urls.is_http(link_urls[i])]
        return _Verdict(Status.MISSING, link=best(same_site) if same_site else None)
    link = best(matches)
    if not indexable:
        status = Status.NOT_INDEXABLE
    elif not followed(link) or signals.nofollow:
        status = Status.NOFOLLOW
    else:
        status = Status.VERIFIED
    return _Verdict(status, link=link, links_matched=len(matches))


def followed(link: Link) -> bool:
    """True when the link passes authority: none of nofollow, sponsored, ugc."""
    return not NOT_FOLLOWED & _rel(link)


def best(links: Sequence[Link]) -> Link:
    """The link to report of several (at least one): followed, then visible, then main content,
    then first in the document."""
    order = min(
        range(len(links)),
        key=lambda i: (not followed(links[i]), links[i].hidden, links[i].region is not Region.MAIN, i),
    )
    return links[order]


def _ok(fetched: Fetched) -> bool:
    """True when the final response was a 2xx: its directives and canonical then count."""
    return fetched.reason is None and fetched.status is not None and 200 <= fetched.status < 300


def _indexable(fetched: Fetched, signals: Indexing) -> bool:
    """The contract's rule, for a result that got a response."""
    return (
        _ok(fetched)
        and fetched.robots_index_allowed is not False
        and not signals.noindex
        and not signals.expired
        and not signals.canonical_elsewhere
    )


def _flags(claim: Claim, fetched: Fetched, signals: Indexing, verdict: _Verdict) -> tuple[Flag, ...]:
    """Every flag the status allows (see the module docstring), in enum order."""
    status = verdict.status
    found = set(_hop_flags(claim, fetched))
    if status is not Status.BLOCKED and fetched.crawl_delay_capped:
        found.add(Flag.CRAWL_DELAY_CAPPED)
    if status in (Status.BLOCKED, Status.UNREACHABLE):
        return _ordered(found)
    found |= _response_flags(fetched)
    if _ok(fetched):
        found |= _indexing_flags(fetched, signals)
    if status is Status.MISSING and fetched.page is not None:
        found |= _missing_flags(claim, fetched.page, verdict.link)
    if status in _MATCHED and verdict.link is not None:
        found |= _link_flags(claim, verdict.link, verdict.links_matched)
    return _ordered(found)


def _hop_flags(claim: Claim, fetched: Fetched) -> Iterable[Flag]:
    final = fetched.final_url
    if final and urls.normalize_page(final) != urls.normalize_page(claim.source_url):
        yield Flag.SOURCE_REDIRECTED
    if final and urls.host_key(final) != urls.host_key(claim.source_url):
        yield Flag.CROSS_HOST_REDIRECT
    if any(hop.status is None for hop in fetched.redirects):
        yield Flag.META_REFRESH


def _response_flags(fetched: Fetched) -> set[Flag]:
    found = {Flag.TRUNCATED} if fetched.truncated else set()
    if is_challenge(fetched):
        found.add(Flag.BOT_CHALLENGE)
    return found


# A refusal (403, 429, 503) whose page asks the reader to prove they are human is a challenge
# whatever vendor serves it; Cloudflare also says so in a header.
CHALLENGE_STATUSES = frozenset({403, 429, 503})
CHALLENGE_WORDS = (
    "captcha",
    "checking your browser",
    "verify you are human",
    "verify you are a human",
    "are you a robot",
    "not a robot",
    "unusual traffic",
)


def is_challenge(fetched: Fetched) -> bool:
    """True for a CAPTCHA or WAF challenge: the page's own markers, Cloudflare's header, or a
    refusal whose visible text asks for proof of being human."""
    page = fetched.page
    if page is not None and page.bot_challenge:
        return True
    if any(
        name == "cf-mitigated" and value.strip().lower() == "challenge" for name, value in fetched.headers
    ):
        return True
    if page is None or page.visible_text is None or fetched.status not in CHALLENGE_STATUSES:
        return False  # (the engine reads every refusal's text: it reads pages for targets when 2xx only)
    return any(word in page.visible_text for word in CHALLENGE_WORDS)


def _indexing_flags(fetched: Fetched, signals: Indexing) -> set[Flag]:
    facts = {
        Flag.NOINDEX: signals.noindex,
        Flag.PAGE_NOFOLLOW: signals.nofollow,
        Flag.ROBOTS_INDEX_DISALLOWED: fetched.robots_index_allowed is False,
        Flag.CANONICAL_ELSEWHERE: signals.canonical_elsewhere,
        Flag.EXPIRED: signals.expired,
    }
    return {flag for flag, present in facts.items() if present}


def _missing_flags(claim: Claim, page: Page, other_link: Link | None) -> set[Flag]:
    found = {Flag.WRONG_TARGET} if other_link is not None else set()
    # A page read for targets holds its text whenever one of them is missing (see "Reading for
    # the claimed targets" in `crawler.core.extract`).
    if page.visible_text is not None and mentions_host(page.visible_text, urls.host_key(claim.target_url)):
        found.add(Flag.UNLINKED_MENTION)
    return found


def mentions_host(text: str, host: str) -> bool:
    """True when `host`, with or without `www.`, stands as a whole name in the (lower-case) `text`.

    An IDNA host is also looked for in its Unicode form, which is how a page displays it.
    """
    bare = host.removeprefix("www.")
    if not bare:
        return False
    spellings = {bare, idna_to_unicode(bare) or bare}
    text = text.lower()
    # The substring test (a `www.` spelling contains the bare one) rules out most pages at C speed.
    # Then: not part of a longer name, no name character before, none (nor a dot and more) after.
    return any(
        name in text and re.search(rf"(?<![\w.-])(?:www\.)?{re.escape(name)}(?![\w-]|\.[\w-])", text)
        for name in spellings
    )


def _link_flags(claim: Claim, link: Link, links_matched: int) -> set[Flag]:
    found = {_REL_FLAGS[token] for token in _rel(link) & NOT_FOLLOWED}
    facts = {
        Flag.ANCHOR_MISMATCH: anchor_mismatch(claim.expected_anchor, link.text),
        Flag.REL_MISMATCH: claim.expected_rel is not None and not rel_matches(claim.expected_rel, link),
        Flag.HIDDEN: link.hidden,
        Flag.BOILERPLATE: link.region is not Region.MAIN,
        Flag.BEYOND_INDEX_LIMIT: link.beyond_index_limit,
        Flag.MULTIPLE_MATCHES: links_matched > 1,
    }
    return found | {flag for flag, present in facts.items() if present}


def anchor_mismatch(expected: str | None, text: str) -> bool:
    """True when an expected anchor was given (not blank) and differs from the link's text once
    both are normalised as section 1 says (`history.normalize_anchor`: NFKC, case folding,
    punctuation as spaces, whitespace collapsed). An expected anchor of punctuation only is
    compared too: it matches a text of punctuation only."""
    if expected is None or not expected.strip():
        return False
    return normalize_anchor(expected) != normalize_anchor(text)


def rel_matches(expected: ExpectedRel, link: Link) -> bool:
    """True when the link is what was paid for: follow means none of nofollow, sponsored, ugc."""
    if expected is ExpectedRel.FOLLOW:
        return followed(link)
    return expected.value in _rel(link)


def _rel(link: Link) -> frozenset[str]:
    return frozenset(token.lower() for token in link.rel)


def _ordered(flags: set[Flag]) -> tuple[Flag, ...]:
    return tuple(sorted(flags, key=_FLAG_ORDER.__getitem__))


def _result(
    claim: Claim, fetched: Fetched, signals: Indexing, verdict: _Verdict, *, run_id: str, now: datetime
) -> Result:
    """Everything fetched, copied beside the verdict."""
    responded = verdict.status not in (Status.BLOCKED, Status.UNREACHABLE)
    return Result(
        claim_id=claim.id,
        source_url=claim.source_url,
        target_url=claim.target_url,
        tags=claim.tags,
        run_id=run_id,
        checked_at=checked_at(now),
        status=verdict.status,
        reason=verdict.reason,
        flags=_flags(claim, fetched, signals, verdict),
        http_status=fetched.status,
        final_url=fetched.final_url,
        redirects=fetched.redirects,
        content_type=fetched.content_type,
        encoding=fetched.encoding,
        bytes=fetched.bytes,
        elapsed_ms=fetched.elapsed_ms,
        attempts=fetched.attempts,
        robots_crawler_allowed=fetched.robots_crawler_allowed,
        robots_index_allowed=fetched.robots_index_allowed,
        meta_robots=signals.meta_robots,
        x_robots_tag=signals.x_robots_tag,
        canonical_url=signals.canonical,
        indexable=_indexable(fetched, signals) if responded else None,
        link=verdict.link,
        links_matched=verdict.links_matched,
        outbound_links=fetched.page.outbound_links if fetched.page is not None else 0,
    )
