"""robots.txt per origin for one run: fetched once, shared by concurrent askers, kept 24 h at most.

RFC 9309: a 2xx answer is parsed (`crawler.core.robots`), up to five redirects are followed
with the rules applied to the original origin, 4xx other than 429 allows all, and 5xx, 429 or
a timeout after retries disallows all (`unavailable`). A site that gives no response at all
(DNS, refused connection, TLS) is unreachable, not blocked.

When other processes work on the same run (a shared PostgreSQL run), `shared_robots` holds
their common answers (`crawler.engine.leases`): an origin is fetched by one of them, once,
and the others read its answer, rebuilt from the status and body it got (`to_record`).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any, Protocol

from crawler.config import Settings
from crawler.core.robots import RobotsPolicy
from crawler.engine.fetch import Chain, Fetcher, Response
from crawler.models import NO_RESPONSE_REASONS, Reason

ROBOTS_ORIGINS = 20_000
ROBOTS_TTL = 24 * 3600.0
ROBOTS_REDIRECTS = 5  # RFC 9309, section 2.3.1.2


@dataclass(frozen=True, slots=True)
class RobotsAnswer:
    """robots.txt of one origin: a policy, or why the host gave no response at all."""

    policy: RobotsPolicy | None
    reason: str | None = None
    attempts: int = 0
    source: tuple[int, bytes] | None = None
    """The status and body the policy was read from, when it was read from a response."""


def to_record(answer: RobotsAnswer) -> dict[str, Any]:
    """`answer` as JSON values, from which `from_record` builds the same answer again."""
    record: dict[str, Any] = {"attempts": answer.attempts, "reason": answer.reason}
    if answer.source is not None:
        record["status"], record["body"] = answer.source[0], base64.b64encode(answer.source[1]).decode()
    elif answer.policy is not None:
        record["unavailable"] = answer.policy.unavailable
    return record


def from_record(record: dict[str, Any], *, max_bytes: int) -> RobotsAnswer:
    """The answer `to_record` gave `record` for."""
    attempts, reason = int(record["attempts"]), record["reason"]
    if "status" in record:
        status, body = int(record["status"]), base64.b64decode(record["body"])
        policy = RobotsPolicy.from_response(status, body, max_bytes=max_bytes)
        return RobotsAnswer(policy, reason, attempts, (status, body))
    if "unavailable" in record:
        unavailable = RobotsPolicy.unavailable_policy() if record["unavailable"] else RobotsPolicy.allow_all()
        return RobotsAnswer(unavailable, reason, attempts)
    return RobotsAnswer(None, reason, attempts)


class SharedRobots(Protocol):
    """Answers shared with other processes: `load` is called by one of them per origin."""

    async def answer(self, origin: str, load: Callable[[], Awaitable[RobotsAnswer]]) -> RobotsAnswer: ...


shared_robots: ContextVar[SharedRobots | None] = ContextVar("shared_robots", default=None)
"""The answers a `RobotsCache` made in this context shares with other processes (None: none)."""


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
        self._shared = shared_robots.get()

    async def get(self, origin: str) -> RobotsAnswer:
        """The answer for `origin` (scheme://host[:port]), fetching robots.txt when not known."""
        entry = self._entries.get(origin)
        if entry is None or time.monotonic() - entry[0] > ROBOTS_TTL:
            task = asyncio.create_task(self._answer(origin))
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

    async def _answer(self, origin: str) -> RobotsAnswer:
        # The body is kept only until the answer is shared: the cache holds policies, not bodies.
        if self._shared is None:
            return replace(await self._load(origin), source=None)
        return replace(await self._shared.answer(origin, lambda: self._load(origin)), source=None)

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
                return RobotsAnswer(
                    policy, attempts=answer.attempts, source=(answer.status or 0, answer.body)
                )
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
    if answer.reason == Reason.FORBIDDEN_ADDRESS or (not hop and answer.reason in NO_RESPONSE_REASONS):
        return RobotsAnswer(None, answer.reason, answer.attempts)
    return RobotsAnswer(RobotsPolicy.unavailable_policy(), attempts=answer.attempts)
