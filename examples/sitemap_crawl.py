"""A custom crawl: claims generated from a sitemap, checked as they are generated.

A publisher promised that every article in its sitemap links to our site. The claims come
from an async generator that reads the sitemap, so checking starts before the list is
complete and nothing is held in memory. The publisher is served on loopback by the example
itself; pass a sitemap URL and our domain to run it against a real site:

    python examples/sitemap_crawl.py
    python examples/sitemap_crawl.py https://publisher.example/sitemap.xml https://oursite.example/
"""

from __future__ import annotations

import asyncio
import sys
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

import crawler

SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
ARTICLES = {
    "/articles/1.html": '<p>See <a href="https://oursite.example/guide">our friends</a>.</p>',
    "/articles/2.html": '<p>See <a rel="nofollow" href="https://www.oursite.example/">them</a>.</p>',
    "/articles/3.html": "<p>No link here, only a mention of oursite.example.</p>",
}


async def claims_from_sitemap(sitemap_url: str, our_site: str) -> AsyncIterator[crawler.Claim]:
    async with aiohttp.ClientSession() as session, session.get(sitemap_url) as response:
        tree = ElementTree.fromstring(await response.read())
    for loc in tree.iter(f"{SITEMAP_NS}loc"):
        if loc.text:
            yield crawler.Claim(
                source_url=loc.text.strip(), target_url=our_site, match=crawler.MatchMode.DOMAIN
            )


async def publisher() -> tuple[web.AppRunner, str]:
    """A small publisher site on loopback: a sitemap, a robots.txt and three articles."""
    app = web.Application()
    base: list[str] = []

    async def sitemap(request: web.Request) -> web.Response:
        urls = "".join(f"<url><loc>{base[0]}{path}</loc></url>" for path in ARTICLES)
        body = f'<urlset xmlns="{SITEMAP_NS[1:-1]}">{urls}</urlset>'
        return web.Response(text=body, content_type="application/xml")

    async def article(request: web.Request) -> web.Response:
        body = f"<!doctype html><title>{request.path}</title><main>{ARTICLES[request.path]}</main>"
        return web.Response(text=body, content_type="text/html")

    app.router.add_get("/sitemap.xml", sitemap)

    async def robots(request: web.Request) -> web.Response:
        return web.Response(text="User-agent: *\nAllow: /\n")

    app.router.add_get("/robots.txt", robots)
    for path in ARTICLES:
        app.router.add_get(path, article)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.10", 0).start()
    base.append(f"http://127.0.0.10:{runner.addresses[0][1]}")
    return runner, base[0]


async def main(argv: list[str]) -> None:
    runner = None
    if len(argv) == 2:
        sitemap_url, our_site, settings = argv[0], argv[1], crawler.Settings()
    else:
        runner, base = await publisher()
        sitemap_url, our_site = f"{base}/sitemap.xml", "https://oursite.example/"
        settings = crawler.Settings(allow_private=True, delay=0.0)  # loopback demo only
    counts: Counter[str] = Counter()
    async for result in crawler.verify(claims_from_sitemap(sitemap_url, our_site), settings):
        counts[result.status] += 1
        print(f"{result.status:<10} {result.source_url} {' '.join(result.flags)}")
    print("summary:", ", ".join(f"{status} {n}" for status, n in sorted(counts.items())))
    if runner is not None:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
