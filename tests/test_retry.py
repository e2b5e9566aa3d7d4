"""retry: what is retryable, the backoff schedule, Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from crawler.core import retry

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class TestRetryable:
    @pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 599])
    def test_server_trouble_is_retried(self, status: int) -> None:
        """429 and every 5xx status may be tried again."""
        assert retry.retryable(status, None)

    @pytest.mark.parametrize("status", [200, 204, 301, 304, 400, 403, 404, 410, 451])
    def test_answers_are_final(self, status: int) -> None:
        """Successes, redirects and client errors other than 429 are final."""
        assert not retry.retryable(status, None)

    @pytest.mark.parametrize("reason", ["timeout", "connection_error"])
    def test_transient_failures_are_retried(self, reason: str) -> None:
        """Timeouts and broken connections may succeed on another attempt."""
        assert retry.retryable(None, reason)

    @pytest.mark.parametrize("reason", ["dns_error", "tls_error", "forbidden_address"])
    def test_lasting_failures_are_final(self, reason: str) -> None:
        """A missing name, a bad certificate or a refused address won't change in seconds."""
        assert not retry.retryable(None, reason)


class TestBackoff:
    def test_doubles_each_attempt(self) -> None:
        """Without jitter the wait is half of base x 2^(attempt-1): the fixed part of the step."""
        assert [retry.backoff(n, 1.0, 0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]

    def test_jitter_fills_the_other_half(self) -> None:
        """Full jitter reaches the whole step, and jitter stays inside [half step, step]."""
        assert retry.backoff(3, 1.0, 1.0) == 4.0
        assert 2.0 <= retry.backoff(3, 1.0, 0.37) <= 4.0

    def test_capped(self) -> None:
        """A late attempt never waits longer than MAX_BACKOFF."""
        assert retry.backoff(30, 1.0, 1.0) == retry.MAX_BACKOFF

    def test_zero_base_means_no_wait(self) -> None:
        """backoff = 0 (tests, benchmarks) retries at once."""
        assert retry.backoff(2, 0.0, 0.9) == 0.0

    def test_retry_after_wins_when_longer(self) -> None:
        """The server's Retry-After replaces a shorter backoff, never a longer one."""
        assert retry.wait_before_retry(1, 1.0, 0.0, 7.0) == 7.0
        assert retry.wait_before_retry(3, 1.0, 1.0, 0.5) == 4.0
        assert retry.wait_before_retry(1, 1.0, 0.0, None) == 0.5


class TestRetryAfter:
    def test_seconds(self) -> None:
        """A number is seconds."""
        assert retry.parse_retry_after(" 120 ", NOW) == 120.0

    def test_http_date(self) -> None:
        """An HTTP date is the time left until it."""
        later = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
        assert retry.parse_retry_after(later, NOW) == 90.0

    def test_past_date_is_now(self) -> None:
        """A date already passed asks for no wait."""
        earlier = format_datetime(NOW - timedelta(hours=1), usegmt=True)
        assert retry.parse_retry_after(earlier, NOW) == 0.0

    @pytest.mark.parametrize(
        "value",
        [
            None,
            "",
            "soon",
            "-5",
            "1.5e3",
            "Mon, 99 Foo 2024",
            "\u00b2",
            "\u0661\u0662",
            "\uff11\uff12",
            "12\u00b2",
        ],
    )
    def test_unusable_values_are_ignored(self, value: str | None) -> None:
        """Absent, negative or garbled values, and non-ASCII digits, give None, never an exception."""
        assert retry.parse_retry_after(value, NOW) is None
