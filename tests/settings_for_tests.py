"""Settings for tests against loopback servers: one helper instead of a copy in each module.

`fast()` allows private addresses (tests/servers.py listens on 127.0.0.x), sends a host's requests
back to back, and keeps timeouts, retries, backoff and Retry-After short, so that a failing path
fails in seconds. A test that needs another value passes it (`fast(retries=0)`); a module whose
tests all need one binds it once (`functools.partial(fast, retries=2)`), so the difference is
written where it matters.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import crawler

LOOPBACK: Mapping[str, Any] = MappingProxyType(
    {
        "allow_private": True,
        "delay": 0.0,
        "timeout": 2.0,
        "connect_timeout": 1.0,
        "retries": 1,
        "backoff": 0.01,
        "max_retry_after": 1.0,
    }
)
"""What `fast()` changes from the defaults; everything else (sizes, robots, redirects) stays."""


def fast(**changes: Any) -> crawler.Settings:
    """Settings for loopback tests: `LOOPBACK` over the defaults, then `changes` over that."""
    return crawler.Settings(**(dict(LOOPBACK) | changes))
