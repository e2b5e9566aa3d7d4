"""Rendering in Chromium (section 12): the only Playwright code.

`check_rendering` finds the browser and the `render` extra before any request; `Renderer`
renders one page at a time per place (`render_concurrency`) in one Chromium (`Chromium`),
relaunched every `RESTART_AFTER` pages and whenever it breaks.

The browser has no network of its own: it is launched with a proxy that does not exist (no
direct connection; Playwright sends loopback through it too), a host resolver that resolves
nothing, WebRTC kept off UDP, and service workers blocked. Every request a page makes is
intercepted in its browser context:

- the page's own document is fulfilled from the response the crawler already received, as
  UTF-8 (it is never requested again); any other navigation is aborted, so the page stays;
- scripts, `fetch` and XHR GETs go to a `Subresources` (the crawler's client, robots.txt, the
  address guard, the budget of 50 requests: see `crawler.engine.subresources`); everything else
  (images, media, fonts, style sheets, favicons, prefetches, frames, beacons, event streams,
  non-GET methods) is refused like a network error; WebSockets are closed unopened.

The document is taken at the first of: every awaited target has a matching link (`wait_for`,
`auto` mode), the load event and then `QUIET` seconds with no request in flight, or
`render_timeout`. Reading it is given `CONTENT_GRACE` more seconds: a main thread that never
yields never answers (Playwright issue 19374), so the render fails instead, and closing the
browser context kills the spinning renderer. A render costs at most `render_timeout + 5` s
from the moment it has its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import shutil
import time
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from crawler import logs
from crawler.config import Settings
from crawler.core import urls
from crawler.engine.subresources import Answer, Budget, Refusal, Refused, Subresources, screen
from crawler.errors import RenderError

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Playwright, Request, Route, WebSocketRoute

log = logs.get_logger(__name__)

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
EXTRA = "pip install 'backlink-crawler[render]'"
QUIET = 0.5
"""Seconds with no request in flight, after the load event, that make a page settled."""
CONTENT_GRACE = 4.0
"""Seconds to read the document once taken; with `CLOSE_GRACE`, the 5 s of section 12."""
CLOSE_GRACE = 1.0
"""Seconds a render waits for its browser context to close (about 30 ms when all is well)."""
RESTART_AFTER = 250
"""Pages rendered by one Chromium before a fresh one takes over (renderer memory only grows)."""
LINK_POLL_MS = 100
BROWSER_ARGS = (
    # No name resolution: with the dead proxy below, the browser reaches nothing by itself.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    # WebRTC would otherwise send STUN over UDP past the proxy (measured: it reaches loopback).
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
)
DEAD_PROXY = "http://127.0.0.1:9"
"""The discard port: nothing listens there, so a connection that escapes interception fails."""
# In the page: the links whose host is one of the awaited domains, once every domain has one and
# they differ from what was last checked (`previous`); false otherwise, so polling goes on.
_LINKS_JS = """([domains, previous]) => {
  const hrefs = [], seen = new Set();
  for (const a of document.links) {
    let host;
    try { host = new URL(a.href).hostname; } catch (e) { continue; }
    const domain = domains.find((d) => host === d || host.endsWith("." + d));
    if (domain !== undefined) { hrefs.push(a.href); seen.add(domain); }
  }
  const joined = hrefs.join("\\n");
  return seen.size === domains.length && joined !== previous ? hrefs : false;
}"""


class Ending(StrEnum):
    """What ended the wait for the document."""

    LINKS = "links"
    """Every awaited target has a matching link (`auto` mode)."""
    SETTLED = "settled"
    """The load event, then `QUIET` seconds with no request in flight."""
    TIMEOUT = "timeout"
    """`render_timeout`: the document as it stood then."""
    FAILED = "failed"
    """The page crashed, or the browser failed: no document."""


class Failure(StrEnum):
    """Why no document could be read (`Rendered.failure`)."""

    UNRESPONSIVE = "unresponsive"
    """The page's main thread never yielded (`while (true) {}`): the document can't be read."""
    CRASHED = "crashed"
    BROWSER_ERROR = "browser_error"


@dataclass(frozen=True, slots=True)
class Rendered:
    """One page rendered: the document (or why none), how the wait ended, and what it cost.

    For the verdict: no `html` means `render_failed`; an `html` taken at `Ending.TIMEOUT` is
    judged, and leaves `render_failed` if the claim is still `missing` on it.
    """

    url: str
    html: str | None
    ending: Ending
    failure: Failure | None = None
    elapsed: float = 0.0
    requested: int = 0
    """Requests of the page's budget taken (sent, or refused by robots.txt on the way)."""
    answered: int = 0
    """Answers handed to the page."""
    refused: Mapping[str, int] = field(default_factory=dict)
    """Requests refused, by reason (a `Refusal` or `Reason` word)."""

    @property
    def timed_out(self) -> bool:
        return self.ending is Ending.TIMEOUT


def check_rendering(settings: Settings) -> str:
    """The Chromium executable to render with; `RenderError` naming what is missing otherwise.

    Sends no request. Order: the `browser` setting (a path, or a name looked up on the PATH),
    else the first of `BROWSER_NAMES` on the PATH, else a Chromium installed by Playwright.
    """
    try:
        importlib.import_module("playwright.async_api")
    except ImportError as exc:
        raise RenderError(
            f"render = {settings.render}: the `render` extra is not installed ({exc}): {EXTRA}"
        ) from None
    if settings.browser is not None:
        return _given_browser(settings.browser)
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    installed = _playwright_chromium()
    if installed is not None and _is_executable(Path(installed)):
        return installed
    where = f" (looked at {installed})" if installed else ""
    raise RenderError(
        f"render = {settings.render}: no Chromium found: none of {', '.join(BROWSER_NAMES)} is on the PATH "
        f"and Playwright has installed none{where}; set the `browser` setting "
        "(--browser, CRAWLER_BROWSER) to a Chromium executable"
    )


def _given_browser(path: Path) -> str:
    if _is_executable(path):
        return str(path)
    if len(path.parts) == 1 and (found := shutil.which(str(path))) is not None:
        return found
    problem = "is not executable" if path.exists() else "does not exist"
    raise RenderError(f"browser: {path} {problem} (the `browser` setting names the Chromium to render with)")


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _playwright_chromium() -> str | None:
    """Where Playwright installs its Chromium (whether there or not), or None if it can't say.

    Asked of Playwright's driver in a thread of its own: its synchronous API refuses a thread
    with a running event loop, and the command may well have one.
    """

    def ask() -> str:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            return pw.chromium.executable_path

    with ThreadPoolExecutor(1) as pool:
        try:
            return pool.submit(ask).result(timeout=60)
        except Exception:  # no driver, a broken install: there is no such Chromium
            return None


@dataclass(slots=True)
class _Launched:
    """One Chromium process and the contexts it has served and is serving."""

    browser: Browser
    served: int = 0
    active: int = 0
    retired: bool = False
    closing: bool = False


class Chromium:
    """Playwright's driver and one Chromium at a time, relaunched every `restart_after` contexts,
    and when it disconnects or a context can't be closed. An async context manager."""

    def __init__(self, executable: str, *, restart_after: int = RESTART_AFTER) -> None:
        self.executable = executable
        self.restart_after = restart_after
        self._driver: Any = None  # the `async_playwright()` context manager
        self._pw: Playwright | None = None
        self._current: _Launched | None = None
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self.launches = 0

    async def __aenter__(self) -> Chromium:
        from playwright.async_api import async_playwright

        self._driver = async_playwright()
        self._pw = await self._driver.__aenter__()
        try:
            async with self._lock:
                self._current = _Launched(await self._launch())
        except BaseException:
            await self._driver.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._current is not None:
            self._retire(self._current, force=True)
        await asyncio.gather(*self._closing, return_exceptions=True)
        if self._driver is not None:
            await self._driver.__aexit__(kind, exc, tb)

    async def _launch(self) -> Browser:
        from playwright.async_api import Error

        assert self._pw is not None, "Chromium used outside `async with`"
        try:
            browser = await self._pw.chromium.launch(
                executable_path=self.executable,
                headless=True,
                proxy={"server": DEAD_PROXY},
                args=list(BROWSER_ARGS),
                # The command handles its signals and closes the browser on its way out.
                handle_sigint=False,
                handle_sigterm=False,
                handle_sighup=False,
            )
        except Error as exc:
            first = (exc.message or str(exc)).strip().splitlines()[0]
            raise RenderError(f"browser: {self.executable} could not be started: {first}") from None
        self.launches += 1
        log.debug("browser_launched", executable=self.executable, version=browser.version)
        return browser

    async def context(self, user_agent: str) -> tuple[BrowserContext, _Launched]:
        """A fresh browser context (no cache, cookies or storage shared with any other page)."""
        async with self._lock:
            current = self._current
            if current is None or current.served >= self.restart_after or not current.browser.is_connected():
                if current is not None:
                    self._retire(current)
                current = self._current = _Launched(await self._launch())
            current.served += 1
            current.active += 1
        try:
            context = await current.browser.new_context(
                user_agent=user_agent, service_workers="block", accept_downloads=False
            )
        except BaseException:
            self.release(current)
            raise
        return context, current

    async def close_context(self, context: BrowserContext, launched: _Launched) -> None:
        """Close `context` (killing its renderer); a context that won't close retires its browser."""
        try:
            async with asyncio.timeout(CONTENT_GRACE):
                await context.close()
        except Exception:  # a timeout, or the browser is gone already
            log.warning("browser_context_close_failed", executable=self.executable)
            self._retire(launched, force=True)
        finally:
            self.release(launched)

    def release(self, launched: _Launched) -> None:
        launched.active -= 1
        if launched.retired and launched.active == 0:
            self._close_later(launched)

    def _retire(self, launched: _Launched, *, force: bool = False) -> None:
        """No new context on `launched`; it closes once idle (at once when `force`)."""
        if self._current is launched:
            self._current = None
        launched.retired = True
        if force or launched.active == 0:
            self._close_later(launched)

    def _close_later(self, launched: _Launched) -> None:
        if launched.closing:  # once is enough
            return
        launched.closing = True
        task = asyncio.create_task(self._close(launched.browser))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, browser: Browser) -> None:
        try:
            async with asyncio.timeout(10):
                await browser.close()
        except Exception:  # closing twice, or a browser past saving: the driver kills it on exit
            log.debug("browser_close_failed", executable=self.executable)


class Renderer:
    """Renders pages in Chromium, `render_concurrency` at a time. An async context manager.

    Without `chromium`, it launches its own (from `executable`, else `check_rendering`); tests
    and benchmarks share one between renderers.
    """

    def __init__(
        self,
        settings: Settings,
        subresources: Subresources,
        *,
        chromium: Chromium | None = None,
        executable: str | None = None,
    ) -> None:
        self._settings = settings
        self._subresources = subresources
        self._own = chromium is None
        self._chromium = chromium
        self._executable = executable
        self._places = asyncio.Semaphore(settings.render_concurrency)
        self._launching = asyncio.Lock()

    async def __aenter__(self) -> Renderer:
        # The executable is found now (a missing browser fails the run before any request); the
        # browser itself starts with the first page that needs it, so a run that renders nothing
        # never pays for one.
        if self._chromium is None and self._executable is None:
            self._executable = check_rendering(self._settings)
        return self

    async def _browser(self) -> Chromium:
        async with self._launching:
            if self._chromium is None:
                assert self._executable is not None
                self._chromium = await Chromium(self._executable).__aenter__()
            return self._chromium

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._own and self._chromium is not None:
            await self._chromium.__aexit__(kind, exc, tb)
            self._chromium = None

    async def render(
        self, url: str, html: str | bytes, *, wait_for: Sequence[urls.Target] | None = None
    ) -> Rendered:
        """Render the page at final URL `url` from its decoded `html` (text, or UTF-8 bytes).

        `wait_for`: the targets still missing on the raw page (`auto`): the document is taken
        as soon as each has a matching link. None (`always`): it is taken once the page settles.
        """
        async with self._places:
            run = _PageRun(urls.without_fragment(url), html, self._subresources)
            started = time.monotonic()
            try:
                async with asyncio.timeout(self._settings.render_timeout + CONTENT_GRACE + CLOSE_GRACE):
                    rendered = await self._render(run, wait_for, started + self._settings.render_timeout)
            except TimeoutError:  # only a browser past answering gets here
                rendered = Rendered(run.url, None, Ending.FAILED, Failure.UNRESPONSIVE)
            finally:
                run.stop()
            rendered = run.counted(rendered, time.monotonic() - started)
        log.debug(
            "render",
            url=rendered.url,
            ending=rendered.ending,
            failure=rendered.failure,
            ms=round(rendered.elapsed * 1000),
            requested=rendered.requested,
            answered=rendered.answered,
            refused=dict(rendered.refused),
        )
        return rendered

    async def _render(
        self, run: _PageRun, wait_for: Sequence[urls.Target] | None, deadline: float
    ) -> Rendered:
        """Render `run` taking the document by `deadline` (monotonic), reading it within `CONTENT_GRACE`."""
        from playwright.async_api import Error

        try:
            chromium = await self._browser()
            context, launched = await chromium.context(self._settings.user_agent)
        except (Error, RenderError) as exc:  # a relaunch that failed: this page fails, the next retries
            log.warning("browser_unavailable", error=str(exc))
            return Rendered(run.url, None, Ending.FAILED, Failure.BROWSER_ERROR)
        try:
            ending = await run.wait(context, wait_for, deadline)
            if ending is not Ending.FAILED:
                async with asyncio.timeout(CONTENT_GRACE):
                    html = await run.content()
                return Rendered(run.url, html, ending)
        except TimeoutError:
            return Rendered(run.url, None, Ending.FAILED, Failure.UNRESPONSIVE)
        except Error:  # the page crashed, or the browser is gone
            pass
        finally:
            run.stop()  # no request of this page waits on the network any longer
            closing = asyncio.create_task(chromium.close_context(context, launched))
            # Waited for, but not cancelled with the render: a context left open keeps spinning.
            await asyncio.wait({closing}, timeout=CLOSE_GRACE)
        return Rendered(run.url, None, Ending.FAILED, run.failure or Failure.BROWSER_ERROR)


class _PageRun:
    """One page in its browser context: its requests, their count in flight, the waits."""

    def __init__(self, url: str, html: str | bytes, subresources: Subresources) -> None:
        self.url = url
        self.html = html
        self.subresources = subresources
        self.budget = Budget()
        self.page: Page | None = None
        self.failure: Failure | None = None
        self.answered = 0
        self.refused: Counter[str] = Counter()
        self._served = False
        self._in_flight = 0
        self._quiet_since = float("inf")  # until the load event
        self._changed = asyncio.Event()
        self._crashed = asyncio.Event()
        self._tasks: set[asyncio.Task[Answer | Refused]] = set()

    async def wait(
        self, context: BrowserContext, wait_for: Sequence[urls.Target] | None, deadline: float
    ) -> Ending:
        """Open the page and wait for the first of links, settled, crash and `deadline`.

        Playwright's `Error` when the browser fails on the way."""
        await context.route("**/*", self._route)
        await context.route_web_socket("**/*", self._refuse_socket)
        page = self.page = await context.new_page()
        page.on("load", lambda _: self._loaded())
        page.on("crash", lambda _: self._crash())
        await page.goto(self.url, wait_until="commit", timeout=max(1.0, deadline - time.monotonic()) * 1000)
        waits: dict[asyncio.Task[None], Ending] = {
            asyncio.create_task(self._settled()): Ending.SETTLED,
            asyncio.create_task(_until(self._crashed)): Ending.FAILED,
        }
        if wait_for:  # polled in the document from its commit on
            waits[asyncio.create_task(_links(page, wait_for))] = Ending.LINKS
        try:
            done, _ = await asyncio.wait(
                waits, timeout=max(0.0, deadline - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        endings = {waits[task] for task in done if not task.cancelled() and task.exception() is None}
        for ending in (Ending.FAILED, Ending.LINKS, Ending.SETTLED):  # a crash outranks the rest
            if ending in endings:
                return ending
        return Ending.TIMEOUT

    async def content(self) -> str:
        assert self.page is not None
        return await self.page.content()

    def stop(self) -> None:
        """Cancel the page's requests still on their way (they hold per-host places)."""
        for task in self._tasks:
            task.cancel()

    def counted(self, rendered: Rendered, elapsed: float) -> Rendered:
        return Rendered(
            rendered.url,
            rendered.html,
            rendered.ending,
            rendered.failure,
            elapsed,
            self.budget.taken,
            self.answered,
            dict(self.refused),
        )

    def _loaded(self) -> None:
        self._quiet_since = time.monotonic()
        self._changed.set()

    def _crash(self) -> None:
        self.failure = Failure.CRASHED
        self._crashed.set()

    async def _settled(self) -> None:
        """Return once the load event has fired and no request has been in flight for `QUIET` s."""
        while True:
            loaded = self._quiet_since != float("inf")
            left = self._quiet_since + QUIET - time.monotonic() if loaded and not self._in_flight else None
            if left is not None and left <= 0:
                return
            self._changed.clear()
            # asyncio.timeout, never wait_for (here or anywhere a cancel must hold): Python 3.11's
            # wait_for returns the result when a cancel arrives just after what it awaits is done,
            # so a render given up as one of its requests ended went on waiting for quiet that a
            # page fetching every 100 ms never gives (a test hung once in ten full runs).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._changed.wait()

    async def _route(self, route: Route) -> None:
        request = route.request
        if not self._served and self._is_own_document(request):
            self._served = True
            await _quietly(
                route.fulfill(
                    status=200, headers={"content-type": "text/html; charset=utf-8"}, body=self.html
                )
            )
            return
        refusal = screen(request.resource_type, request.method, request.url, request.is_navigation_request())
        if refusal is not None:
            self.refused[refusal] += 1
            await _quietly(route.abort("aborted" if refusal is Refusal.NAVIGATION else "failed"))
            return
        self._in_flight += 1
        self._changed.set()
        try:
            await self._forward(route, request.url)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._quiet_since = max(self._quiet_since, time.monotonic())
            self._changed.set()

    def _is_own_document(self, request: Request) -> bool:
        from playwright.async_api import Error

        try:
            return (
                request.is_navigation_request()
                and self.page is not None
                and request.frame == self.page.main_frame
            )
        except Error:  # a worker's request has no frame
            return False

    async def _forward(self, route: Route, url: str) -> None:
        task = asyncio.create_task(self.subresources.fetch(url, self.budget))
        self._tasks.add(task)
        await asyncio.wait({task})  # not cancelled with Playwright's task: `stop` ends it
        self._tasks.discard(task)
        if task.cancelled():
            outcome: Answer | Refused = Refused(Refusal.CANCELLED)
        elif (error := task.exception()) is not None:
            log.error("subresource_failed", url=url, exc_info=error)
            outcome = Refused("internal_error")
        else:
            outcome = task.result()
        if isinstance(outcome, Refused):
            self.refused[outcome.reason] += 1
            await _quietly(route.abort("failed"))
            return
        self.answered += 1
        await _quietly(
            route.fulfill(status=outcome.status, headers=outcome.page_headers(), body=outcome.body)
        )

    async def _refuse_socket(self, socket: WebSocketRoute) -> None:
        self.refused[Refusal.WEBSOCKET] += 1
        await _quietly(socket.close())


async def _until(event: asyncio.Event) -> None:
    await event.wait()


async def _quietly(action: Awaitable[None]) -> None:
    """Answer a request; the page or its context may be gone already, which is no error."""
    from playwright.async_api import Error

    with contextlib.suppress(Error):
        await action


async def _links(page: Page, targets: Sequence[urls.Target]) -> None:
    """Return once every target has a matching link in the document (polled in the page)."""
    from playwright.async_api import Error

    domains = sorted({target.domain or target.host for target in targets})
    if "" in domains:  # a target no link can match: only settling or the timeout ends the wait
        await asyncio.Event().wait()
    previous = ""
    while True:
        try:
            handle = await page.wait_for_function(
                _LINKS_JS, arg=[domains, previous], polling=LINK_POLL_MS, timeout=0
            )
            found = await handle.json_value()
        except Error:  # the document was replaced (document.open): poll the new one
            await asyncio.sleep(LINK_POLL_MS / 1000)
            continue
        hrefs = [href for href in found if isinstance(href, str)] if isinstance(found, list) else []
        if all(target.matching(hrefs) for target in targets):
            return
        previous = "\n".join(hrefs)
