"""Where pages are read: in the run's own process, or in worker processes (`workers` > 1).

Reading a page (decoding its bytes, parsing the HTML, reading its links) is most of a run's CPU
and runs on one core at a time in a Python process. With `workers` above 1 the bodies go to a
pool of processes as bytes and come back as `Page` values; everything else stays in the run's
process: politeness, robots.txt, redirects, rendering, verdicts and the store. So per-host limits,
robots.txt once per origin and the results are exactly those of one process, by construction.
A worker gets a page's bytes and targets, never the claim set: its memory does not grow with
the input.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType

from crawler.core import decode, extract, urls
from crawler.errors import CrawlerError
from crawler.models import Page

Read = tuple[Page | None, str | None, str]
"""A page read: what its HTML says (None when the body is not HTML), the charset it was read in,
and the SHA-256 (hex) of the body (hashed here: with workers, off the run's process, where a
190 KB page costs a few tenths of a millisecond)."""


class WorkerError(CrawlerError):
    """A worker process died (killed, out of memory): the run stops, resumable."""


def read_page(
    body: bytes,
    content_type: str | None,
    url: str,
    *,
    index_agent: str,
    targets: Sequence[urls.Target] | None,
) -> Read:
    """The page of an HTML body at final URL `url`, read for `targets` (None: whole), and its charset."""
    digest = hashlib.sha256(body).hexdigest()
    if not decode.is_html(content_type, body):
        return None, None, digest
    decoded = decode.decode_html(body, content_type)
    page = extract.parse_page(
        decoded.utf8, url, index_agent=index_agent, targets=targets, encoding=decoded.encoding
    )
    return page, decoded.encoding, digest


class PageReader:
    """Reads pages in this process: the library's way, and the command's with one worker."""

    async def read(
        self,
        body: bytes,
        content_type: str | None,
        url: str,
        *,
        index_agent: str,
        targets: Sequence[urls.Target] | None,
    ) -> Read:
        return read_page(body, content_type, url, index_agent=index_agent, targets=targets)

    async def __aenter__(self) -> PageReader:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        return None


class PoolReader(PageReader):
    """Reads pages in `workers` processes; the event loop only sends bytes and awaits `Page`s.

    Workers are started fresh (`spawn`: nothing of the parent's loop or sockets is inherited) and
    ignore SIGINT: the run's process alone decides when to stop, and shuts them down.
    A worker that dies fails the run with `WorkerError`, never hangs it, and the workers die with
    the run's process, however it ends.
    """

    def __init__(self, workers: int) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_start,
            initargs=(os.getpid(),),
        )

    async def read(
        self,
        body: bytes,
        content_type: str | None,
        url: str,
        *,
        index_agent: str,
        targets: Sequence[urls.Target] | None,
    ) -> Read:
        loop = asyncio.get_running_loop()
        call = _Call(content_type, url, index_agent, tuple(targets) if targets is not None else None)
        try:
            return await loop.run_in_executor(self._pool, call, body)
        except BrokenProcessPool:
            raise WorkerError(
                "a worker process died (killed or out of memory): run verify again to resume"
            ) from None

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        # Pages still queued are not needed any more; running ones finish within milliseconds.
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)


class _Call:
    """A picklable call of `read_page` with everything but the body."""

    __slots__ = ("content_type", "index_agent", "targets", "url")

    def __init__(
        self, content_type: str | None, url: str, index_agent: str, targets: tuple[urls.Target, ...] | None
    ) -> None:
        self.content_type, self.url, self.index_agent, self.targets = content_type, url, index_agent, targets

    def __call__(self, body: bytes) -> Read:
        return read_page(
            body, self.content_type, self.url, index_agent=self.index_agent, targets=self.targets
        )


def _worker_start(parent: int) -> None:
    """In each worker: Ctrl-C is the run's process's business, and the worker dies with it.

    SIGINT reaches the whole process group from a terminal: the run's process stops its workers
    itself. SIGTERM keeps its default, since the pool terminates its workers with it when one
    of them died.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker blocks on its queue, whose write end it holds too, so it would never see its parent
    # go (kill -9): on Linux the kernel kills it with its parent, elsewhere a thread watches.
    if not _die_with_parent():
        threading.Thread(target=_watch, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent ends; False where that can't be asked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def page_reader(workers: int) -> PageReader:
    """In this process for one worker, else a pool of `workers` processes."""
    return PoolReader(workers) if workers > 1 else PageReader()
