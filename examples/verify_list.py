"""Verify a Python list of claims and print each result as it is decided.

    python examples/verify_list.py                       # against the bundled demo site, offline
    python examples/verify_list.py SOURCE_URL TARGET_URL # one claim of your own, on the open web

No database: `crawler.verify` takes any iterable of claims and yields results.
"""

from __future__ import annotations

import asyncio
import sys

import crawler
from crawler.app.demo import DEMO_SETTINGS, serve


async def show(claims: list[crawler.Claim], settings: crawler.Settings) -> None:
    async for result in crawler.verify(claims, settings):
        anchor = repr(result.link.text) if result.link else "-"
        flags = ",".join(result.flags) or "-"
        print(f"{result.status:<14} {result.source_url}  anchor={anchor}  flags={flags}")


async def main(argv: list[str]) -> None:
    if len(argv) == 2:
        await show([crawler.Claim(source_url=argv[0], target_url=argv[1])], crawler.Settings())
        return
    async with serve() as site:  # the demo site lives on loopback: private addresses allowed
        blog, news = site.authorities["blog"], site.authorities["news"]
        claims = [
            crawler.Claim(
                source_url=f"http://{blog}/2024/best-running-shoes.html",
                target_url="https://www.acme-shoes.example/running",
                expected_anchor="best running shoes",
                expected_rel=crawler.ExpectedRel.FOLLOW,
            ),
            crawler.Claim(
                source_url=f"http://{news}/reviews/gear-roundup.html",
                target_url="https://trailgear.example/tents",
            ),
            crawler.Claim(
                source_url=f"http://{blog}/about.html",
                target_url="https://www.bikeshop.example/",
            ),
        ]
        await show(claims, DEMO_SETTINGS)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
