"""When to try a request again, and how long to wait first.

Pure: decisions are taken from the outcome alone (status or failure reason), and the jitter
comes in as a number so the schedule is reproducible in tests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from crawler.models import Reason

# Failures worth another attempt: the server may answer next time. A DNS failure, a bad
# certificate or a forbidden address won't change within seconds, so those are final.
RETRYABLE_REASONS = frozenset({Reason.TIMEOUT, Reason.CONNECTION_ERROR})
# Statuses whose Retry-After header pauses the whole host (RFC 9110, section 10.2.3).
RETRY_AFTER_STATUSES = frozenset({429, 503})
# No single backoff wait grows past this, whatever the attempt number.
MAX_BACKOFF = 60.0


def retryable(status: int | None, reason: str | None) -> bool:
    """True when an attempt that ended with `status` (or failed with `reason`) may be repeated."""
    if reason is not None:
        return reason in RETRYABLE_REASONS
    return status is not None and (status == 429 or 500 <= status <= 599)


def backoff(attempt: int, base: float, jitter: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based).

    Exponential (`base`, 2 x `base`, 4 x `base`, ...) with "equal jitter": half of the step
    is fixed and half is scaled by `jitter` in [0, 1), so clients that failed together
    don't come back together, yet no wait is shorter than half the step.
    """
    step = min(base * 2.0 ** (attempt - 1), MAX_BACKOFF)
    return step / 2 + step / 2 * min(max(jitter, 0.0), 1.0)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from `now` that a Retry-After value asks for; None when absent or unusable.

    The value is either a number of seconds or an HTTP date (RFC 9110, section 10.2.3);
    a date in the past means "now" (0).
    """
    if value is None:
        return None
    text = value.strip()
    # ASCII digits only (RFC 9110's DIGIT): str.isdigit() also passes "²", which float() refuses.
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def wait_before_retry(attempt: int, base: float, jitter: float, retry_after: float | None) -> float:
    """The wait before the next attempt: the backoff, or the server's Retry-After when longer.

    `retry_after` must already be capped by the caller (the `max_retry_after` setting).
    """
    wait = backoff(attempt, base, jitter)
    return max(wait, retry_after) if retry_after is not None else wait
