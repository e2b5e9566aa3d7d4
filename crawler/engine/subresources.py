"""A rendered page's requests, sent by the crawler's own client under the crawler's rules (section 12).

The browser has no network of its own: `crawler.engine.render` hands each request a page makes
that it does not drop (a script, a `fetch`, an XHR) to a `Subresources`, whose one method answers
it or refuses it. `CrawlerSubresources`, the real one, sends it with the run's `Fetcher` (the
`user_agent` setting, the address guard, `per_host`, retries, `max_bytes`) after asking the run's
`RobotsCache` whether our product token may fetch it.

Decisions a user can rely on:

- Every URL asked for, redirect hops included, takes one request of the page's `Budget`
  (`SUBRESOURCE_CAP` = 50) before robots.txt is asked: at most 50 subresource requests of a page
  reach the network, and at most 50 robots.txt files are looked up for it.
- robots.txt of a subresource's origin is the run's robots.txt of that origin: fetched once per
  run, shared with the pages (a later page of that origin does not fetch it again), under the
  host's politeness like any robots.txt request, and not counted against the page's budget.
- Redirects are followed here, robots.txt and the guard applied to every hop, at most
  `max_redirects`; the page gets the last answer (its `response.url` stays the URL it asked for).
- `delay` does not hold between a page's own requests (`interval=NO_SPACING`), nor a robots.txt
  `Crawl-delay`, which spaces a crawler's page requests, not the parts of one page view.
- A body cut at `max_bytes` is refused rather than handed over: a truncated script or JSON
  document only fails later, with a less honest error.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from crawler.config import Settings
from crawler.core import urls
from crawler.engine.fetch import Chain, Fetcher
from crawler.engine.robots_cache import RobotsCache
from crawler.models import Reason

SUBRESOURCE_CAP = 50
"""Requests of one rendered page that may reach the network (section 12)."""
NO_SPACING = 0.0
"""The `interval` of a subresource request: no `delay` after the host's last request."""
FETCHED_TYPES = frozenset({"script", "fetch", "xhr"})
"""What a page may request. Section 12 drops images, media, fonts, style sheets and favicons;
this drops the rest of Chromium's types too (prefetch and other hints, frames, beacons, event
streams, manifests, text tracks): none of them writes a document's links."""
_NOT_PASSED = frozenset(
    {"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive", "location"}
    | {"set-cookie", "set-cookie2"}  # our client keeps no cookies; the page gets none either
)


class Refusal(StrEnum):
    """Why a page's request got no answer, besides the `Reason` words of a failed fetch."""

    CAP = "cap"
    """The page's budget of `SUBRESOURCE_CAP` requests is spent."""
    DROPPED_TYPE = "dropped_type"
    """Images, media, fonts, style sheets, favicons, prefetches, frames, beacons, event streams."""
    METHOD = "method"
    """Not a GET: the crawler sends no writes to anyone's site."""
    NAVIGATION = "navigation"
    """The page tried to leave (a script redirect, a form, a popup): rendering stays on the page."""
    NOT_HTTP = "not_http"
    TRUNCATED = "truncated"
    """The body is longer than `max_bytes`."""
    WEBSOCKET = "websocket"
    CANCELLED = "cancelled"
    """The render ended while the request was still on its way."""


class Budget:
    """The requests one page may still send; each URL asked for, redirect hops included, takes one."""

    __slots__ = ("limit", "taken")

    def __init__(self, limit: int = SUBRESOURCE_CAP) -> None:
        self.limit = limit
        self.taken = 0

    def take(self) -> bool:
        """Take one request; False when none is left."""
        if self.taken >= self.limit:
            return False
        self.taken += 1
        return True


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer to hand to the page: the last one of its redirects, body decoded."""

    url: str
    status: int
    headers: tuple[tuple[str, str], ...]
    """Names lower-cased, every instance in order, as `fetch.Response` keeps them."""
    body: bytes

    def page_headers(self) -> dict[str, str]:
        """The headers as the page gets them: the body is decoded and whole, redirects followed,
        cookies dropped; repeated headers joined with commas."""
        out: dict[str, str] = {}
        for name, value in self.headers:
            if name not in _NOT_PASSED:
                out[name] = f"{out[name]}, {value}" if name in out else value
        return out


@dataclass(frozen=True, slots=True)
class Refused:
    """No answer for the page: it sees a network error. `reason` is a `Refusal` or a `Reason` word."""

    reason: str


def screen(resource_type: str, method: str, url: str, navigation: bool) -> Refusal | None:
    """Why a page's request is refused before the network is asked, or None when it may go.

    `resource_type` is Chromium's (`script`, `fetch`, `image`...); `navigation`: the request would
    load a document in a frame (the page's own document is answered before this is asked).
    """
    if navigation or resource_type == "document":
        return Refusal.NAVIGATION
    if resource_type not in FETCHED_TYPES:
        return Refusal.DROPPED_TYPE
    if method != "GET":
        return Refusal.METHOD
    return None if urls.is_http(url) else Refusal.NOT_HTTP


class Subresources(Protocol):
    """Where a rendered page's requests go: the one seam between the browser and the network."""

    async def fetch(self, url: str, budget: Budget) -> Answer | Refused:
        """Answer a GET of `url` (absolute, no fragment), taking from `budget` per request sent."""
        ...


class CrawlerSubresources:
    """`Subresources` through the run's own client, robots.txt cache and settings."""

    def __init__(self, fetcher: Fetcher, robots: RobotsCache, settings: Settings) -> None:
        self._fetcher = fetcher
        self._robots = robots
        self._settings = settings

    async def fetch(self, url: str, budget: Budget) -> Answer | Refused:
        chain = Chain(self._settings.max_redirects)
        current = url
        while True:
            if not urls.is_http(current):
                return Refused(Refusal.NOT_HTTP)
            if not budget.take():
                return Refused(Refusal.CAP)
            refusal = await self._refusal(current)
            if refusal is not None:
                return Refused(refusal)
            answer = await self._fetcher.get(current, max_bytes=self._settings.max_bytes, interval=NO_SPACING)
            if answer.reason is not None or answer.status is None:
                return Refused(answer.reason or Reason.NO_RESPONSE)
            if answer.location is None:
                if answer.truncated:
                    return Refused(Refusal.TRUNCATED)
                return Answer(current, answer.status, answer.headers, answer.body)
            if not chain.follow(current, answer.status, answer.location):
                return Refused(Reason.TOO_MANY_REDIRECTS)
            current = answer.location

    async def _refusal(self, url: str) -> str | None:
        """Why robots.txt forbids our product token `url`, or None when it may be fetched."""
        if not self._settings.obey_robots:
            return None
        robots = await self._robots.get(urls.origin(url))
        if robots.policy is None:  # the host gave no response, or its address is forbidden
            return robots.reason or Reason.NO_RESPONSE
        if robots.policy.can_fetch(url, self._settings.product_token):
            return None
        return Reason.ROBOTS_UNAVAILABLE if robots.policy.unavailable else Reason.ROBOTS_DISALLOWED
