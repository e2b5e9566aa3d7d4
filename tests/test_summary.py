"""The run's summary tables read whole in an 80-column terminal as in a 120-column one."""

from __future__ import annotations

import pytest
from rich.console import Console
from test_figures import figures_of, row

from crawler.app.summary import summary_tables
from crawler.core.figures import Figures
from crawler.models import Flag, Status

LONG_VENDOR = "Link Building Services Unlimited International Group Ltd (reseller programme)"


def wide_run() -> Figures:
    """A run with long vendor names, every status and a flag name of the longest kind."""
    rows = tuple(
        row(
            f"c{n}",
            status,
            "live" if status is Status.VERIFIED else "not_found",
            f"https://site{n}.example/",
            reason="robots_unavailable" if status is Status.BLOCKED else None,
            flags=(Flag.ROBOTS_INDEX_DISALLOWED, Flag.SOURCE_REDIRECTED),
            tags={"vendor": f"{LONG_VENDOR} {n % 3}", "price": str(10 * n)},
        )
        for n, status in enumerate(list(Status) * 3)
    )
    return figures_of(rows, ())


@pytest.mark.parametrize("width", [80, 120])
def test_tables_fit_and_cut_nothing(width: int) -> None:
    """No line is wider than the terminal and no value or header is cut short with an ellipsis."""
    console = Console(width=width, record=True, no_color=True)
    console.print(summary_tables(wide_run()))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    for word in ("not_indexable", "robots_index_disallowed", "source_redirected", "robots_unavailable"):
        assert word in text
    flattened = " ".join(text.split())
    assert "Services" in flattened
    assert "By vendor (worst first)" in text


def test_tag_tables_can_be_chosen() -> None:
    """`tags` keeps only the named tag columns."""
    console = Console(width=120, record=True, no_color=True)
    console.print(summary_tables(wide_run(), tags=["price"]))
    text = console.export_text()
    assert "By price" in text
    assert "By vendor" not in text
