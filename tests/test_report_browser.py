"""The HTML report looked at as a person would: opened from disk in headless Chromium, it shows
something (the screenshot is not blank) and asks for nothing (no request but the file itself).

Without Chromium or Playwright the test skips, naming what is missing; under CI it fails instead.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Literal

import pytest
from test_figures import figures_of

from crawler.app.report_html import render
from crawler.config import RenderMode, Settings
from crawler.engine.render import check_rendering
from crawler.errors import RenderError


def chromium() -> str:
    try:
        return check_rendering(Settings(render=RenderMode.AUTO))
    except RenderError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs Chromium and Playwright, yet: {exc}")
        pytest.skip(f"no browser here: {exc}")


def distinct_rows(png: bytes) -> int:
    """How many distinct pixel rows a PNG screenshot has (a blank page has one)."""
    width = int.from_bytes(png[16:20], "big")
    height = int.from_bytes(png[20:24], "big")
    data, at = b"", 8
    while at < len(png):
        size = int.from_bytes(png[at : at + 4], "big")
        kind = png[at + 4 : at + 8]
        if kind == b"IDAT":
            data += png[at + 8 : at + 8 + size]
        at += 12 + size
    raw = zlib.decompress(data)
    stride = len(raw) // height
    assert stride >= width * 3
    # Filter bytes aside, rows that differ in their bytes show different pixels.
    return len({raw[row * stride + 1 : (row + 1) * stride] for row in range(height)})


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_report_renders_and_requests_nothing(tmp_path: Path, scheme: Literal["light", "dark"]) -> None:
    """The report opened from a file shows charts and tables, and the browser requests nothing else."""
    from playwright.async_api import async_playwright

    executable = chromium()
    report = tmp_path / "report.html"
    report.write_text(render(figures_of()), encoding="utf-8")
    requested: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            page = await browser.new_page(color_scheme=scheme, viewport={"width": 1200, "height": 900})
            page.on("request", lambda request: requested.append(request.url))
            await page.goto(report.as_uri(), wait_until="load")
            shot = await page.screenshot(full_page=True)
            charts = await page.locator("figure svg").count()
            tables = await page.locator("figure table").count()
        finally:
            await browser.close()
    assert requested == [report.as_uri()]
    assert charts >= 4
    assert tables >= charts
    assert distinct_rows(shot) > 100
