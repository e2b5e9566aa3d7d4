"""One source page fetched: robots.txt for every hop, redirects and instant meta refreshes
followed, the final body decoded and parsed. The result is a `Fetched`, the verdict's input.

A 2xx page is read for the targets of the claims waiting for it (see `crawler.core.extract`):
links that can't go to a claimed target's site are counted, not read whole. A claim that
arrives later for another target has the kept body read again (`reread`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from crawler.config import RenderMode, Settings
from crawler.core import urls
from crawler.engine.fetch import Chain, Fetcher, Response
from crawler.engine.parsing import PageReader, Read
from crawler.engine.robots_cache import RobotsAnswer, RobotsCache
from crawler.models import Claim, Fetched, Page, Reason


@dataclass(frozen=True, slots=True)
class Permit:
    """May we request a URL, and how far apart from the last request to its host."""

    refusal: str | None = None
    interval: float | None = None
    capped: bool = False
    robots: RobotsAnswer | None = None


@dataclass(slots=True)
class _Trail:
    """What one page fetch accumulates over its hops."""

    chain: Chain
    elapsed: float = 0.0
    capped: bool = False
    attempts: int = 0


class PageFetcher:
    """Fetches one source page: robots per hop, redirects, meta refresh, decode and parse."""

    def __init__(
        self, fetcher: Fetcher, robots: RobotsCache, settings: Settings, reader: PageReader | None = None
    ) -> None:
        self._fetcher = fetcher
        self._robots = robots
        self._settings = settings
        self.reader = reader or PageReader()

    async def fetch(self, url: str, claims: Sequence[Claim] = ()) -> tuple[Fetched, Response | None]:
        """Everything learned about the page at `url` (no fragment), as the verdict's input, and
        the final response when its page was read for targets (see `reread`).

        A 2xx page is read for the targets of `claims`, as they are when its body has come: the
        caller may add claims to the list meanwhile. No claims: it is read whole.
        """
        trail = _Trail(Chain(self._settings.max_redirects))
        current = url
        while True:
            permit = await self._permit(current)
            trail.capped = trail.capped or permit.capped
            if permit.refusal is not None:
                return await self._refused(url, current, trail, permit), None
            answer = await self._fetcher.get(
                current, max_bytes=self._settings.max_bytes, interval=permit.interval
            )
            trail.elapsed += answer.elapsed
            trail.attempts = answer.attempts
            if answer.reason is not None:
                return self._fetched(url, current, trail, reason=answer.reason), None
            page, encoding, digest = await self.read(answer, claims) if answer.location is None else _UNREAD
            target = answer.location or _refresh_target(answer, page)
            if target is None or not trail.chain.follow(
                current, None if answer.location is None else answer.status, target
            ):
                reason = None if target is None else Reason.TOO_MANY_REDIRECTS
                fetched = await self._final(url, answer, trail, page, encoding, digest, reason)
                return fetched, answer if page is not None and page.targets is not None else None
            current = target

    async def _permit(self, url: str) -> Permit:
        if not self._settings.obey_robots:
            return Permit()
        robots = await self._robots.get(urls.origin(url))
        if robots.policy is None:
            return Permit(robots.reason, robots=robots)
        token = self._settings.product_token
        if not robots.policy.can_fetch(url, token):
            unavailable = robots.policy.unavailable
            refusal = Reason.ROBOTS_UNAVAILABLE if unavailable else Reason.ROBOTS_DISALLOWED
            return Permit(refusal, robots=robots)
        delay = robots.policy.crawl_delay(token)
        if delay is None:
            return Permit(robots=robots)
        cap = self._settings.max_crawl_delay
        return Permit(interval=max(self._settings.delay, min(delay, cap)), capped=delay > cap, robots=robots)

    async def _refused(self, url: str, current: str, trail: _Trail, permit: Permit) -> Fetched:
        robots = permit.robots
        if robots is None or robots.policy is None:  # robots.txt host gave no response
            trail.attempts = robots.attempts if robots is not None else 0
            return self._fetched(url, current, trail, reason=permit.refusal)
        return replace(
            self._fetched(url, current, trail, reason=permit.refusal),
            robots_crawler_allowed=False,
            robots_index_allowed=robots.policy.can_fetch(current, self._settings.index_agent),
        )

    async def read(self, answer: Response, claims: Sequence[Claim] = ()) -> Read:
        """The page of an HTML answer and its encoding; a 2xx page is read for `claims` only."""
        targets = None
        if claims and 200 <= (answer.status or 0) < 300:
            targets = list(dict.fromkeys(urls.Target.of(claim.target_url, claim.match) for claim in claims))
        return await self.reader.read(
            answer.body,
            answer.header("content-type"),
            answer.url,
            index_agent=self._settings.index_agent,
            targets=targets,
            script_signs=targets is not None and self._settings.render is RenderMode.AUTO,
        )

    async def reread(self, fetched: Fetched, final: Response | None, claim: Claim) -> Fetched:
        """`fetched` with its page read again for `claim` when it was read for other targets."""
        page = fetched.page
        if page is None or final is None or page.covers(urls.Target.of(claim.target_url, claim.match)):
            return fetched
        return replace(fetched, page=(await self.read(final, [claim]))[0])

    async def _final(
        self,
        url: str,
        answer: Response,
        trail: _Trail,
        page: Page | None,
        encoding: str | None,
        digest: str | None,
        reason: str | None = None,
    ) -> Fetched:
        policy = (await self._robots.get(urls.origin(answer.url))).policy
        token, agent = self._settings.product_token, self._settings.index_agent
        return self._fetched(
            url,
            answer.url,
            trail,
            reason=reason,
            status=answer.status,
            headers=answer.headers,
            content_type=answer.header("content-type"),
            encoding=encoding,
            bytes=len(answer.body),
            truncated=answer.truncated,
            body_sha256=digest if digest is not None else hashlib.sha256(answer.body).hexdigest(),
            evidence=answer.evidence,
            robots_crawler_allowed=policy.can_fetch(answer.url, token) if policy else None,
            robots_index_allowed=policy.can_fetch(answer.url, agent) if policy else None,
            page=page,
        )

    @staticmethod
    def _fetched(url: str, final_url: str, trail: _Trail, *, reason: str | None, **response: Any) -> Fetched:
        return Fetched(
            url=url,
            reason=reason,
            final_url=final_url,
            redirects=tuple(trail.chain.hops),
            elapsed_ms=round(trail.elapsed * 1000),
            attempts=trail.attempts,
            crawl_delay_capped=trail.capped,
            **response,
        )


_UNREAD: tuple[None, None, None] = (None, None, None)
"""A redirect's answer: its body is not read."""


def _refresh_target(answer: Response, page: Page | None) -> str | None:
    """Where an instant meta refresh of a 2xx page leads, unless to the page itself."""
    if page is None or page.refresh_url is None or not 200 <= (answer.status or 0) < 300:
        return None
    target = urls.without_fragment(page.refresh_url)
    return target if urls.is_http(target) and target != answer.url else None
