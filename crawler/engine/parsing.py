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
import collections
import contextlib
import ctypes
import hashlib
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from types import TracebackType

from crawler.core import decode, extract, urls
from crawler.errors import CrawlerError
from crawler.models import Page

Read = tuple[Page | None, str | None, str]
"""A page read: what its HTML says (None when the body is not HTML), the charset it was read in,
and the SHA-256 (hex) of the body (hashed here: with workers, off the run's process, where a
190 KB page costs a few tenths of a millisecond)."""


PAGES_AHEAD = 4
"""Pages a worker may have waiting for it, or being read: enough that none idles."""


class WorkerError(CrawlerError):
    """A worker process died (killed, out of memory): the run stops, resumable."""


def read_page(
    body: bytes,
    content_type: str | None,
    url: str,
    *,
    index_agent: str,
    targets: Sequence[urls.Target] | None,
    script_signs: bool = False,
) -> Read:
    """The page of an HTML body at final URL `url`, read for `targets` (None: whole), and its charset;
    with the render gate's signs when `script_signs` (see `extract.parse_page`)."""
    digest = hashlib.sha256(body).hexdigest()
    if not decode.is_html(content_type, body):
        return None, None, digest
    decoded = decode.decode_html(body, content_type)
    page = extract.parse_page(
        decoded.utf8,
        url,
        index_agent=index_agent,
        targets=targets,
        encoding=decoded.encoding,
        script_signs=script_signs,
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
        script_signs: bool = False,
    ) -> Read:
        return read_page(
            body, content_type, url, index_agent=index_agent, targets=targets, script_signs=script_signs
        )

    async def room(self) -> None:
        """Returns when a page more may be fetched: at once here, where reading blocks the loop."""

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

    Each worker has a socket pair of its own: the event loop writes a page as one frame and reads
    the answers, in order, as the socket becomes readable; a page goes to the worker with the
    fewest pages outstanding. (A `ProcessPoolExecutor` did the same with two threads and three
    queues between them: 0.46 ms of the run's process's CPU a 190 KB page, against 0.27 ms here,
    in the process that bounds the run; `bench/RESULTS.md`.)
    """

    def __init__(self, workers: int) -> None:
        self._count = workers
        self._workers: list[_Worker] = []
        self._broken: str | None = None
        self._asked = 0
        self._waiting_for_room: collections.deque[asyncio.Future[None]] = collections.deque()

    async def __aenter__(self) -> PoolReader:
        context = multiprocessing.get_context("spawn")
        for _ in range(self._count):
            ours, theirs = socket.socketpair()
            process = context.Process(target=_serve, args=(theirs, os.getpid()), daemon=True)
            process.start()
            theirs.close()
            self._workers.append(_Worker(ours, process, self._break))
        return self

    async def read(
        self,
        body: bytes,
        content_type: str | None,
        url: str,
        *,
        index_agent: str,
        targets: Sequence[urls.Target] | None,
        script_signs: bool = False,
    ) -> Read:
        if self._broken is not None or not self._workers:
            raise WorkerError(self._broken or "the page readers are not running")
        call = (content_type, url, index_agent, tuple(targets) if targets is not None else None, script_signs)
        worker = min(self._workers, key=_Worker.outstanding)
        self._asked += 1
        try:
            outcome = await worker.ask(call, body)
        finally:
            self._asked -= 1
            self._make_room()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def room(self) -> None:
        """Returns once fewer than `PAGES_AHEAD` pages a worker wait for the workers.

        The fetcher asks before each request: with reading off the event loop, requests would
        otherwise outrun the workers and fetched bodies pile up (500 MB of them on the bench site
        with `max_pending_pages` tasks each holding one); so the fetching slows to the readers' pace.
        """
        while self._asked >= PAGES_AHEAD * self._count and self._broken is None:
            waiting = asyncio.get_running_loop().create_future()
            self._waiting_for_room.append(waiting)
            try:
                await waiting
            except asyncio.CancelledError:
                if not waiting.cancelled():  # woken, then cancelled: the room goes to the next
                    self._make_room()
                raise

    def _make_room(self) -> None:
        """Wake one fetch waiting for room (one an answer: not every waiter at every answer)."""
        while self._waiting_for_room:
            waiting = self._waiting_for_room.popleft()
            if not waiting.done():
                waiting.set_result(None)
                return

    @property
    def processes(self) -> list[int]:
        """The workers' process ids."""
        return [worker.process.pid for worker in self._workers if worker.process.pid is not None]

    def _break(self, why: str) -> None:
        """A worker died or its socket failed: every page asked of any worker fails the run."""
        self._broken = self._broken or why
        for worker in self._workers:
            worker.fail(why)
        while self._waiting_for_room:  # they go on to fail in `read`
            self._make_room()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        # Pages still asked are not needed any more: a closed socket is a worker's signal to end.
        workers, self._workers = self._workers, []
        self._broken = self._broken or "the page readers were shut down"
        for worker in workers:
            await worker.close()
        await asyncio.to_thread(_join, [worker.process for worker in workers])


_FRAME = struct.Struct("!II")
"""A question's frame: the lengths of the pickled call and of the body, then both."""
_ANSWER = struct.Struct("!I")
"""An answer's frame: the length of the pickled `Read` (or exception), then it."""


class _Worker:
    """The run's end of one worker: questions leave in order, answers come back in that order."""

    def __init__(self, ours: socket.socket, process: BaseProcess, on_broken: Callable[[str], None]) -> None:
        ours.setblocking(False)
        self.process = process
        self._socket = ours
        self._on_broken = on_broken
        self._outbox: asyncio.Queue[tuple[bytes, asyncio.Future[Read | BaseException]]] = asyncio.Queue()
        self._waiting: collections.deque[asyncio.Future[Read | BaseException]] = collections.deque()
        self._tasks = (asyncio.create_task(self._send()), asyncio.create_task(self._receive()))

    def outstanding(self) -> int:
        return self._outbox.qsize() + len(self._waiting)

    async def ask(self, call: tuple[object, ...], body: bytes) -> Read | BaseException:
        head = pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
        answer: asyncio.Future[Read | BaseException] = asyncio.get_running_loop().create_future()
        self._outbox.put_nowait((b"".join((_FRAME.pack(len(head), len(body)), head, body)), answer))
        return await answer

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame, answer = await self._outbox.get()
                self._waiting.append(answer)  # before the frame leaves: its answer may come at once
                await loop.sock_sendall(self._socket, frame)
        except OSError as error:
            self._on_broken(f"a worker process died ({error.strerror}): run verify again to resume")

    async def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                (size,) = _ANSWER.unpack(await _received(loop, self._socket, _ANSWER.size))
                outcome = pickle.loads(await _received(loop, self._socket, size))
                answer = self._waiting.popleft()
                if not answer.done():  # its reader may have been cancelled (the run is stopping)
                    answer.set_result(outcome)
        except (OSError, EOFError) as error:
            why = (
                error.strerror if isinstance(error, OSError) and error.strerror else "killed or out of memory"
            )
            self._on_broken(f"a worker process died ({why}): run verify again to resume")

    def fail(self, why: str) -> None:
        """Fail every question asked and not answered; later ones fail in `PoolReader.read`."""
        for answer in self._waiting:
            if not answer.done():
                answer.set_exception(WorkerError(why))
        self._waiting.clear()
        while not self._outbox.empty():
            _, answer = self._outbox.get_nowait()
            if not answer.done():
                answer.set_exception(WorkerError(why))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.fail("the page readers were shut down")
        self._socket.close()


async def _received(loop: asyncio.AbstractEventLoop, connection: socket.socket, size: int) -> bytearray:
    """Exactly `size` bytes from `connection`; EOFError when it closes first (its worker died)."""
    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size:
        count = await loop.sock_recv_into(connection, view[got:])
        if count == 0:
            raise EOFError
        got += count
    return data


def _serve(connection: socket.socket, parent: int) -> None:
    """A worker: reads pages as the run's process asks, until it closes its end (or goes)."""
    _worker_start(parent)
    with connection, contextlib.suppress(ConnectionError):  # the run stopped: nothing to answer
        while (header := _read_exactly(connection, _FRAME.size)) is not None:
            head_size, body_size = _FRAME.unpack(header)
            head, body = _read_exactly(connection, head_size), _read_exactly(connection, body_size)
            if head is None or body is None:
                return
            content_type, url, index_agent, targets, signs = pickle.loads(head)
            outcome: Read | BaseException
            try:
                outcome = read_page(
                    body, content_type, url, index_agent=index_agent, targets=targets, script_signs=signs
                )
                answer = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as error:  # a bug met on a hostile page: that page alone fails
                answer = _pickled_error(error)
            connection.sendall(_ANSWER.pack(len(answer)) + answer)


def _pickled_error(error: Exception) -> bytes:
    try:
        return pickle.dumps(error, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # an exception that does not pickle is sent as its words
        return pickle.dumps(RuntimeError(f"{type(error).__name__}: {error}"))


def _read_exactly(connection: socket.socket, size: int) -> bytes | None:
    """Exactly `size` bytes, or None when the run's process closed its end (or ended) first."""
    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size:
        count = connection.recv_into(view[got:])
        if count == 0:
            return None
        got += count
    return bytes(data)


def _join(processes: Sequence[BaseProcess], grace: float = 5.0) -> None:
    """Wait for the workers to end (they do once their socket closes); kill the ones that don't."""
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _worker_start(parent: int) -> None:
    """In each worker: Ctrl-C is the run's process's business, and the worker dies with it.

    SIGINT reaches the whole process group from a terminal: the run's process stops its workers
    itself. SIGTERM keeps its default.
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
