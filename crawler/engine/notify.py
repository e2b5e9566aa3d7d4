"""The run's webhook (SPEC section 9): one POST after the run, retried a few times, never fatal.

The document comes from `crawler.core.alerts`. A webhook that keeps failing is logged and
given up: the run's outcome stands and its events stay in the database (`crawler changes`).
The URL is the user's own endpoint (Slack, a chat bridge, an internal service), so the address
guard for crawled pages does not apply to it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from crawler import logs
from crawler.core import alerts

log = logs.get_logger(__name__)

ATTEMPTS = 3
TIMEOUT = 10.0
"""Seconds for one POST, the answer included."""


async def notify(
    url: str,
    document: Mapping[str, Any],
    *,
    format: str = "json",
    user_agent: str = "backlink-crawler",
    attempts: int = ATTEMPTS,
    backoff: float = 1.0,
) -> bool:
    """POST the run's `document` (as is, or as a Slack message) to `url`; True once it is taken.

    Retried on a connection error, a timeout, 429 and 5xx, `backoff`, 2 x `backoff`... apart;
    another status (a 4xx: the URL or the payload is wrong) is final.
    """
    body = alerts.slack_message(document) if format == "slack" else dict(document)
    data = json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": user_agent}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for attempt in range(1, attempts + 1):
            problem = await _post(session, url, data, headers)
            if problem is None:
                log.info("webhook sent", run_id=document.get("run_id"), attempt=attempt)
                return True
            final = attempt == attempts or not problem.startswith(("http_5", "http_429", "error"))
            log.warning("webhook failed", run_id=document.get("run_id"), attempt=attempt, problem=problem)
            if final:
                break
            await asyncio.sleep(backoff * 2 ** (attempt - 1))
    log.error("webhook given up: the events stay in the database", run_id=document.get("run_id"))
    return False


async def _post(session: aiohttp.ClientSession, url: str, data: bytes, headers: dict[str, str]) -> str | None:
    """None when the webhook took the document, else what went wrong (`http_NNN` or `error: ...`)."""
    try:
        async with session.post(url, data=data, headers=headers, allow_redirects=False) as response:
            await response.read()
            return None if 200 <= response.status < 300 else f"http_{response.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        return f"error: {type(error).__name__}: {error}"
