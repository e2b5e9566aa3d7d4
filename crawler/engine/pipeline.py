"""Orchestration: claims in, each source page fetched once, a verdict per claim out.

The only module that knows the order of the stages: claims are grouped by page; each page is
fetched by `pages.PageFetcher` (robots.txt of every origin on the way from `robots_cache`, every
hop through `fetch.Fetcher` with politeness, retries and the address guard, redirects and
instant meta refreshes followed, the body decoded and parsed), and `verdict.decide` judges
every claim of the page.

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
import contextlib
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime

from crawler import logs
from crawler.config import RenderMode, Settings
from crawler.core import urls, verdict
from crawler.engine.archive import DEFAULT_REDACT, Archive
from crawler.engine.fetch import Fetcher, Response
from crawler.engine.judge import Judge
from crawler.engine.pages import PageFetcher
from crawler.engine.parsing import PageReader
from crawler.engine.politeness import Politeness
from crawler.engine.render import Renderer
from crawler.engine.robots_cache import RobotsCache
from crawler.engine.subresources import CrawlerSubresources
from crawler.errors import CrawlerError
from crawler.models import Claim, Fetched, InvalidClaim, Reason, Result, new_run_id

log = logs.get_logger(__name__)

CLAIMS_PER_PAGE = 16
RECENT_PAGES = 128
RECENT_BYTES = 8 * 1024 * 1024
RESULTS_AHEAD = 1024

Item = Claim | InvalidClaim


async def verify(
    claims: Iterable[Item] | AsyncIterable[Item],
    settings: Settings | None = None,
    *,
    run_id: str | None = None,
    reader: PageReader | None = None,
) -> AsyncGenerator[Result, None]:
    """Verify `claims`, yielding each result as soon as it is decided (not in input order).

    Pages are read in this process, or by `reader` (see `crawler.engine.parsing`). With the
    `archive` setting, every response received is archived (`crawler.engine.archive`); an archive
    that can't be written stops the run with `ArchiveError`.
    """
    settings = settings or Settings()
    run_id = run_id or new_run_id(datetime.now(UTC))
    async with contextlib.AsyncExitStack() as stack:
        archive = None
        if settings.archive is not None:
            redact = (*DEFAULT_REDACT, *(name.lower() for name in settings.headers))
            archive = Archive(settings.archive, run_id, max_bytes=settings.archive_max_bytes, redact=redact)
            await stack.enter_async_context(archive)
        run = _Run(settings, run_id, reader or PageReader(), archive)
        # aclosing: leaving early stops the run's tasks before the session closes, not at GC time.
        await stack.enter_async_context(run.fetcher)
        if settings.render is not RenderMode.OFF:  # the browser starts before any request
            subresources = CrawlerSubresources(run.fetcher, run.robots, settings)
            run.render_with(await stack.enter_async_context(Renderer(settings, subresources)))
        results = await stack.enter_async_context(aclosing(run.results(claims)))
        async for result in results:
            yield result


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
    reader: PageReader
    archive: Archive | None
    politeness: Politeness = field(init=False)
    fetcher: Fetcher = field(init=False)
    robots: RobotsCache = field(init=False)
    pages: PageFetcher = field(init=False)
    judge: Judge = field(init=False)
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
        self.fetcher = Fetcher(s, self.politeness, archive=self.archive, room=self.reader.room)
        self.robots = RobotsCache(self.fetcher, s)
        self.pages = PageFetcher(self.fetcher, self.robots, s, self.reader)
        self.judge = Judge(s, self.run_id, self.pages, archive=self.archive)

    def render_with(self, renderer: Renderer) -> None:
        """Judge pages on their rendered document too, as `render` says."""
        self.judge = Judge(self.settings, self.run_id, self.pages, renderer, self.archive)

    async def results(self, claims: Iterable[Item] | AsyncIterable[Item]) -> AsyncGenerator[Result, None]:
        feed = asyncio.create_task(self._feed(claims))
        try:
            while (item := await self.out.get()) is not _DONE:
                if isinstance(item, CrawlerError):
                    raise item  # the run's own failure (a dead worker, an archive that can't be written)
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
            for result in await self.judge.results([item], *self.recent[key]):
                await self._emit(result)
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
        try:
            await self._judge_page(key)
        except CrawlerError as error:  # not this page's fault: the whole run stops
            self.out.put_nowait(error)

    async def _judge_page(self, key: str) -> None:
        final = None
        try:
            # The list itself: claims that join while the page is fetched are read for too.
            fetched, final = await self.pages.fetch(key, self.pending[key])
        except CrawlerError:
            raise
        except Exception:  # a bug, perhaps triggered by a hostile page: one page fails, not the run
            log.exception("page_failed", url=key)
            fetched = Fetched(url=key, reason=Reason.INTERNAL_ERROR)
        claims = self.pending.pop(key)
        self._remember(key, fetched, final)
        log.debug("page", url=key, status=fetched.status, reason=fetched.reason, claims=len(claims))
        for result in await self.judge.results(claims, fetched, final):
            await self._emit(result)
            self.waiting_claims -= 1

    def _remember(self, key: str, fetched: Fetched, final: Response | None) -> None:
        self.recent[key] = (fetched, final)
        self.recent_bytes += len(final.body) if final is not None else 0
        while len(self.recent) > RECENT_PAGES or self.recent_bytes > RECENT_BYTES:
            _, (_, dropped) = self.recent.popitem(last=False)
            self.recent_bytes -= len(dropped.body) if dropped is not None else 0

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
