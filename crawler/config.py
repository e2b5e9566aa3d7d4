"""Settings: one frozen value, built from defaults < config file < environment < flags.

The only module that reads `os.environ`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/backlink-crawler/backlink-crawler"
DEFAULT_USER_AGENT = f"backlink-crawler/{__version__} (+{PROJECT_URL})"


@dataclass(frozen=True, slots=True)
class Settings:
    """How the crawler fetches. Every field has a safe default; see config/crawler.toml."""

    user_agent: str = DEFAULT_USER_AGENT
    index_agent: str = "Googlebot"
    concurrency: int = 64
    per_host: int = 1
    delay: float = 1.0
    max_crawl_delay: float = 30.0
    timeout: float = 30.0
    connect_timeout: float = 10.0
    retries: int = 2
    backoff: float = 1.0
    max_retry_after: float = 120.0
    max_redirects: int = 10
    max_bytes: int = 5 * 1024 * 1024
    max_robots_bytes: int = 500 * 1024
    max_header_bytes: int = 65536
    max_pending_pages: int = 4096
    obey_robots: bool = True
    allow_private: bool = False
    verify_tls: bool = True
    proxy: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    resolve: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        positive = (
            "concurrency",
            "per_host",
            "max_redirects",
            "max_bytes",
            "max_robots_bytes",
            "max_header_bytes",
            "max_pending_pages",
            "timeout",
            "connect_timeout",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be greater than 0, not {getattr(self, name)!r}")
        non_negative = ("delay", "max_crawl_delay", "retries", "backoff", "max_retry_after")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)!r}")
        if not self.product_token:
            raise ValueError("user_agent must start with a product token")
        object.__setattr__(self, "headers", dict(self.headers))
        object.__setattr__(self, "resolve", {k.lower(): v for k, v in self.resolve.items()})

    @property
    def product_token(self) -> str:
        """The part of `user_agent` before the first `/` or space: what robots.txt groups match."""
        return self.user_agent.strip().split("/", 1)[0].split(" ", 1)[0]
