"""Orchestration: claims in, each source page fetched once, a verdict per claim out.

The only module that knows the order of the stages: claims are grouped by page; for each
page, robots.txt of every origin on the way is checked (fetched once per origin and run),
every hop is requested through `fetch.Fetcher` (politeness, retries, the address guard),
redirects and instant meta refreshes are followed, the final body is decoded and parsed,
and `verdict.decide` judges every claim of the page.

Memory stays flat however many claims come in:

- claims are pulled lazily; at most `max_pending_pages` pages, and `CLAIMS_PER_PAGE` times as
  many claims, wait or are in flight at once (the input is not read further meanwhile);
- a claim for a page already pending joins it; the last `RECENT_PAGES` finished pages are
  remembered (with their bodies, `RECENT_BYTES` at most), so a claim arriving just after its
  page was fetched is judged without a new request (older pages are fetched again if claimed
  again);
- robots.txt answers are kept for `ROBOTS_ORIGINS` origins at most (least recently used
  dropped first) and 24 hours at most;
- at most `RESULTS_AHEAD` results wait for the consumer before the pages stop being judged.

Closing the generator (or cancelling the task iterating it) cancels every request in flight
and closes the session before returning.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from crawler import logs
from crawler.config import Settings
from crawler.core import decode, extract, urls, verdict
from crawler.core.robots import RobotsPolicy
from crawler.engine.fetch import Chain, Fetcher, Response
from crawler.engine.politeness import Politeness
from crawler.models import Claim, Fetched, InvalidClaim, Page, Result

log = logs.get_logger(__name__)

CLAIMS_PER_PAGE = 16
RECENT_PAGES = 128
RECENT_BYTES = 8 * 1024 * 1024
ROBOTS_ORIGINS = 20_000
ROBOTS_TTL = 24 * 3600.0
ROBOTS_REDIRECTS = 5  # RFC 9309, section 2.3.1.2
RESULTS_AHEAD = 1024
# Failures meaning "this host gives no response at all": the page is unreachable, not blocked.
NO_RESPONSE = frozenset({"dns_error", "connection_error", "tls_error"})
INTERNAL_ERROR = "internal_error"

Item = Claim | InvalidClaim


async def verify(
    claims: Iterable[Item] | AsyncIterable[Item],
    settings: Settings | None = None,
    *,
    run_id: str | None = None,
) -> AsyncGenerator[Result, None]:
    """Verify `claims`, yielding each result as soon as it is decided (not in input order)."""
    run = _Run(settings or Settings(), run_id or uuid.uuid4().hex)
    # aclosing: leaving early stops the run's tasks before the session closes, not at GC time.
    async with run.fetcher, aclosing(run.results(claims)) as results:
        async for result in results:
            yield result


@dataclass(frozen=True, slots=True)
class RobotsAnswer:
    """robots.txt of one origin: a policy, or why the host gave no response at all."""

    policy: RobotsPolicy | None
    reason: str | None = None
    attempts: int = 0


class RobotsCache:
    """robots.txt per origin: fetched once, shared by concurrent askers, kept 24 h at most."""

    def __init__(self, fetcher: Fetcher, settings: Settings) -> None:
        self._fetcher = fetcher
        self._settings = settings
        # An origin's answer, or the task fetching it while it is not known yet.
        self._entries: OrderedDict[str, tuple[float, RobotsAnswer | asyncio.Task[RobotsAnswer]]] = (
            OrderedDict()
        )
        self._loading: set[asyncio.Task[RobotsAnswer]] = set()

    async def get(self, origin: str) -> RobotsAnswer:
        """The answer for `origin` (scheme://host[:port]), fetching robots.txt when not known."""
        entry = self._entries.get(origin)
        if entry is None or time.monotonic() - entry[0] > ROBOTS_TTL:
            task = asyncio.create_task(self._load(origin))
            self._loading.add(task)
            task.add_done_callback(lambda done: self._settle(origin, done))
            entry = self._entries[origin] = (time.monotonic(), task)
            if len(self._entries) > ROBOTS_ORIGINS:
                self._entries.popitem(last=False)
        self._entries.move_to_end(origin)
        known = entry[1]
        if isinstance(known, RobotsAnswer):
            return known
        # Shielded: one asker giving up must not cancel the fetch the others wait for.
        return await asyncio.shield(known)

    def _settle(self, origin: str, task: asyncio.Task[RobotsAnswer]) -> None:
        """Keep the answer rather than its finished task (a task weighs more than many policies)."""
        self._loading.discard(task)
        entry = self._entries.get(origin)
        if entry is not None and entry[1] is task and not task.cancelled() and task.exception() is None:
            self._entries[origin] = (entry[0], task.result())

    def cancel(self) -> list[asyncio.Task[RobotsAnswer]]:
        """Cancel every robots.txt fetch in flight; returns them to be awaited."""
        for task in self._loading:
            task.cancel()
        return list(self._loading)

    async def _load(self, origin: str) -> RobotsAnswer:
        chain = Chain(ROBOTS_REDIRECTS)
        url = first = origin + "/robots.txt"
        while True:
            answer = await self._fetcher.get(url, max_bytes=self._settings.max_robots_bytes)
            if answer.reason is not None:
                return _robots_failure(answer, hop=url != first)
            if answer.location is None:
                policy = RobotsPolicy.from_response(
                    answer.status or 0, answer.body, max_bytes=self._settings.max_robots_bytes
                )
                return RobotsAnswer(policy, attempts=answer.attempts)
            if not chain.follow(url, answer.status, answer.location):
                # RFC 9309: past five redirects robots.txt may be taken as unavailable (4xx).
                return RobotsAnswer(RobotsPolicy.allow_all(), attempts=answer.attempts)
            url = answer.location


def _robots_failure(answer: Response, *, hop: bool) -> RobotsAnswer:
    """No robots.txt response: no response at all from the site itself means unreachable.

    A timeout, and any failure past a redirect (the site did answer), leave robots.txt
    unreachable in RFC 9309's sense: complete disallow. A forbidden address blocks the site
    under that name wherever it comes, so a robots.txt redirect into a private network says so.
    """
    if answer.reason == "forbidden_address" or (not hop and answer.reason in NO_RESPONSE):
        return RobotsAnswer(None, answer.reason, answer.attempts)
    return RobotsAnswer(RobotsPolicy.unavailable_policy(), attempts=answer.attempts)


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

    def __init__(self, fetcher: Fetcher, robots: RobotsCache, settings: Settings) -> None:
        self._fetcher = fetcher
        self._robots = robots
        self._settings = settings

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
            page, encoding = self.parse(answer, claims) if answer.location is None else (None, None)
            target = answer.location or _refresh_target(answer, page)
            if target is None or not trail.chain.follow(
                current, None if answer.location is None else answer.status, target
            ):
                reason = None if target is None else "too_many_redirects"
                fetched = await self._final(url, answer, trail, page, encoding, reason)
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
            refusal = "robots_unavailable" if robots.policy.unavailable else "robots_disallowed"
            return Permit(refusal, robots=robots)
        delay = robots.policy.crawl_delay(token)
        if delay is None:
            return Permit(robots=robots)
        cap = self._settings.max_crawl_delay
        return Permit(interval=min(delay, cap), capped=delay > cap, robots=robots)

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

    def parse(self, answer: Response, claims: Sequence[Claim] = ()) -> tuple[Page | None, str | None]:
        """The page of an HTML answer and its encoding; a 2xx page is read for `claims` only."""
        content_type = answer.header("content-type")
        if not decode.is_html(content_type, answer.body):
            return None, None
        decoded = decode.decode_html(answer.body, content_type)
        targets = None
        if claims and 200 <= (answer.status or 0) < 300:
            targets = list(dict.fromkeys(urls.Target.of(claim.target_url, claim.match) for claim in claims))
        page = extract.parse_page(
            decoded.utf8,
            answer.url,
            index_agent=self._settings.index_agent,
            targets=targets,
        )
        return page, decoded.encoding

    def reread(self, fetched: Fetched, final: Response | None, claim: Claim) -> Fetched:
        """`fetched` with its page read again for `claim` when it was read for other targets."""
        page = fetched.page
        if page is None or final is None or page.covers(urls.Target.of(claim.target_url, claim.match)):
            return fetched
        return replace(fetched, page=self.parse(final, [claim])[0])

    async def _final(
        self,
        url: str,
        answer: Response,
        trail: _Trail,
        page: Page | None,
        encoding: str | None,
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


def _refresh_target(answer: Response, page: Page | None) -> str | None:
    """Where an instant meta refresh of a 2xx page leads, unless to the page itself."""
    if page is None or page.refresh_url is None or not 200 <= (answer.status or 0) < 300:
        return None
    target = urls.without_fragment(page.refresh_url)
    return target if urls.is_http(target) and target != answer.url else None


def page_key(url: str) -> str:
    """The page a source URL names: WHATWG-serialised, without fragment."""
    parsed = urls.parse(url)
    return urls.without_fragment(parsed.href if parsed is not None else url)


_DONE = object()


@dataclass(slots=True)
class _Run:
    """The state of one `verify` call."""

    settings: Settings
    run_id: str
    politeness: Politeness = field(init=False)
    fetcher: Fetcher = field(init=False)
    robots: RobotsCache = field(init=False)
    pages: PageFetcher = field(init=False)
    pending: dict[str, list[Claim]] = field(default_factory=dict)
    waiting_claims: int = 0
    recent: OrderedDict[str, tuple[Fetched, Response | None]] = field(default_factory=OrderedDict)
    recent_bytes: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    out: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    out_room: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(RESULTS_AHEAD))
    room_changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        s = self.settings
        self.politeness = Politeness(concurrency=s.concurrency, per_host=s.per_host, delay=s.delay)
        self.fetcher = Fetcher(s, self.politeness)
        self.robots = RobotsCache(self.fetcher, s)
        self.pages = PageFetcher(self.fetcher, self.robots, s)

    async def results(self, claims: Iterable[Item] | AsyncIterable[Item]) -> AsyncGenerator[Result, None]:
        feed = asyncio.create_task(self._feed(claims))
        try:
            while (item := await self.out.get()) is not _DONE:
                self.out_room.release()
                assert isinstance(item, Result)
                yield item
            await feed  # raises what the claims iterable raised, if anything
        finally:
            await self._stop(feed)

    async def _stop(self, feed: asyncio.Task[None]) -> None:
        tasks = [feed, *self.tasks, *self.robots.cancel()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _feed(self, claims: Iterable[Item] | AsyncIterable[Item]) -> None:
        try:
            async with aclosing(_each(claims)) as items:
                async for item in items:
                    await self._take(item)
            while self.tasks:
                await asyncio.wait(list(self.tasks))
        finally:
            self.out.put_nowait(_DONE)  # never blocks: the queue itself is unbounded

    async def _take(self, item: Item) -> None:
        if isinstance(item, InvalidClaim):
            await self._emit(verdict.invalid(item, run_id=self.run_id, now=datetime.now(UTC)))
            return
        while not self._has_room():
            self.room_changed.clear()
            await self.room_changed.wait()
        key = page_key(item.source_url)
        if key in self.pending:
            self.pending[key].append(item)
            self.waiting_claims += 1
        elif key in self.recent:
            self.recent.move_to_end(key)
            await self._emit(self._decide(item, *self.recent[key]))
        else:
            self.pending[key] = [item]
            self.waiting_claims += 1
            task = asyncio.create_task(self._page(key))
            self.tasks.add(task)
            task.add_done_callback(self._finished)

    def _has_room(self) -> bool:
        # Page tasks, not pending pages, are counted: a task whose results wait for a slow
        # consumer still holds its page in memory.
        limit = self.settings.max_pending_pages
        return len(self.tasks) < limit and self.waiting_claims < limit * CLAIMS_PER_PAGE

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.room_changed.set()

    async def _page(self, key: str) -> None:
        final = None
        try:
            # The list itself: claims that join while the page is fetched are read for too.
            fetched, final = await self.pages.fetch(key, self.pending[key])
        except Exception:  # a bug, perhaps triggered by a hostile page: one page fails, not the run
            log.exception("page_failed", url=key)
            fetched = Fetched(url=key, reason=INTERNAL_ERROR)
        claims = self.pending.pop(key)
        self._remember(key, fetched, final)
        log.debug("page", url=key, status=fetched.status, reason=fetched.reason, claims=len(claims))
        for claim in claims:
            await self._emit(self._decide(claim, fetched, final))
            self.waiting_claims -= 1

    def _remember(self, key: str, fetched: Fetched, final: Response | None) -> None:
        self.recent[key] = (fetched, final)
        self.recent_bytes += len(final.body) if final is not None else 0
        while len(self.recent) > RECENT_PAGES or self.recent_bytes > RECENT_BYTES:
            _, (_, dropped) = self.recent.popitem(last=False)
            self.recent_bytes -= len(dropped.body) if dropped is not None else 0

    def _decide(self, claim: Claim, fetched: Fetched, final: Response | None = None) -> Result:
        now = datetime.now(UTC)
        agent = self.settings.index_agent
        try:
            fetched = self.pages.reread(fetched, final, claim)
            return verdict.decide(claim, fetched, run_id=self.run_id, now=now, index_agent=agent)
        except Exception:  # same as above: report this claim as not checked, keep going
            log.exception("verdict_failed", url=fetched.url, claim_id=claim.id)
            failed = Fetched(url=fetched.url, reason=INTERNAL_ERROR)
            return verdict.decide(claim, failed, run_id=self.run_id, now=now, index_agent=agent)

    async def _emit(self, result: Result) -> None:
        await self.out_room.acquire()
        self.out.put_nowait(result)


async def _each(claims: Iterable[Item] | AsyncIterable[Item]) -> AsyncGenerator[Item, None]:
    if isinstance(claims, AsyncIterable):
        async for item in claims:
            yield item
    else:
        for item in claims:
            yield item
