"""The library front door: the public names, and every example run as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import crawler

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class TestPublicSurface:
    def test_all_matches_the_namespace(self) -> None:
        """`__all__` lists every public name of `crawler` and nothing else (modules aside)."""
        public = {
            name
            for name in dir(crawler)
            if not name.startswith("_") and not isinstance(getattr(crawler, name), type(sys))
        }
        assert sorted(crawler.__all__) == crawler.__all__
        assert set(crawler.__all__) == public | {"__version__"}

    def test_everything_public_is_documented(self) -> None:
        """Every exported class and function carries a docstring (help(crawler.verify) reads well)."""
        undocumented = [
            name
            for name in crawler.__all__
            if callable(getattr(crawler, name)) and not getattr(crawler, name).__doc__
        ]
        assert undocumented == []

    def test_py_typed_ships(self) -> None:
        """The package declares its type hints to type checkers."""
        assert (Path(crawler.__file__).parent / "py.typed").is_file()


def run_example(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=90, check=False
    )


@pytest.mark.parametrize(
    ("example", "expected_lines"),
    [
        (
            "verify_list.py",
            [
                r"^verified\s+http://[\d.:]+/2024/best-running-shoes.html\s+anchor='best running shoes'",
                r"^nofollow\s+http://[\d.:]+/reviews/gear-roundup.html\s+.*flags=sponsored",
                r"^missing\s+http://[\d.:]+/about.html",
            ],
        ),
        (
            "webhook_sink.py",
            [
                r"^run \S+: 24 results stored, \d+ alerts posted$",
                r"^  alert: d08 page_error http_404 vendor=\"linkhub\"$",
                r"^  alert: d21 unreachable connection_error vendor=\"dirsubmit\"$",
            ],
        ),
        (
            "sitemap_crawl.py",
            [
                r"^verified\s+http://127.0.0.10:\d+/articles/1.html",
                r"^nofollow\s+http://127.0.0.10:\d+/articles/2.html nofollow$",
                r"^missing\s+http://127.0.0.10:\d+/articles/3.html unlinked_mention$",
                r"^summary: missing 1, nofollow 1, verified 1$",
            ],
        ),
    ],
)
def test_example_runs(example: str, expected_lines: list[str]) -> None:
    """Each example runs offline against its local servers and prints the verdicts a reader expects."""
    import re

    done = run_example(example)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # a library prints nothing it was not asked for: no engine debug lines
    for pattern in expected_lines:
        assert re.search(pattern, done.stdout, re.M), f"{pattern!r} not in:\n{done.stdout}"


def test_webhook_alerts_only_unverified() -> None:
    """The webhook sink posts every result that is not verified, and none that is."""
    done = run_example("webhook_sink.py")
    alerts = [line for line in done.stdout.splitlines() if line.startswith("  alert:")]
    posted = int(done.stdout.split(" results stored, ")[1].split()[0])
    assert len(alerts) == posted > 0
    assert not any(" verified " in line for line in alerts)
