"""Benchmark scripts in a plain clone, where ../shared is absent: they say so and exit cleanly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_copy(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a copy of bench/`script` from a project laid out in `tmp_path`, with no ../shared beside it."""
    copy = tmp_path / "project" / "bench" / script
    copy.parent.mkdir(parents=True)
    shutil.copy(BENCH / script, copy)
    assert not (tmp_path / "shared").exists()
    command = [sys.executable, str(copy), *args]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)


class TestParsePage:
    def test_without_shared_skips(self, tmp_path: Path) -> None:
        """Without ../shared/corpus, parse_page.py prints one line naming it and exits 0."""
        done = run_copy(tmp_path, "parse_page.py")
        assert (done.returncode, done.stderr) == (0, "")
        assert done.stdout.splitlines() == [
            "parse_page: skipped: no ../shared/corpus/pages beside the project (give --pages DIR)"
        ]

    def test_pages_without_html_is_a_usage_error(self, tmp_path: Path) -> None:
        """`--pages` naming a directory without pages exits 2 with argparse's message, no traceback."""
        (tmp_path / "empty").mkdir()
        done = run_copy(tmp_path, "parse_page.py", "--pages", "empty")
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr.splitlines()[-1] == "parse_page.py: error: --pages empty: no .html files there"
