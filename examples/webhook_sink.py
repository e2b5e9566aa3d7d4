"""A custom result sink: post every purchased link that is not (or no longer) verified to a webhook.

Results go two ways at once: into the SQLite store (the history that re-checks compare
against) and, for the ones worth an alert, as JSON to a webhook. Here the webhook is a small
receiver served on loopback by the example itself; point WEBHOOK_URL at your own.

    python examples/webhook_sink.py
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

import crawler
from crawler.app.demo import DEMO_SETTINGS, serve


class WebhookSink:
    """Posts each result whose status is not `verified` to `url`, as the contract's JSON record."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.posted = 0

    async def __call__(self, result: crawler.Result) -> None:
        if result.status is crawler.Status.VERIFIED:
            return
        async with self.session.post(self.url, json=result.to_dict()) as response:
            response.raise_for_status()
        self.posted += 1


async def receiver(received: list[dict[str, Any]]) -> web.AppRunner:
    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.9", 0).start()
    return runner


async def main() -> None:
    received: list[dict[str, Any]] = []
    hook_runner = await receiver(received)
    port = hook_runner.addresses[0][1]
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            serve() as site,
            aiohttp.ClientSession() as session,
            crawler.Store(Path(tmp) / "links.sqlite") as store,
        ):
            sink = WebhookSink(session, f"http://127.0.0.9:{port}/hook")
            info = await crawler.verify_into(store, site.claims(), DEMO_SETTINGS, on_result=sink)
    await hook_runner.cleanup()
    print(f"run {info.id}: {info.decided} results stored, {sink.posted} alerts posted")
    for alert in received:
        vendor = json.dumps(alert["tags"].get("vendor"))
        print(f"  alert: {alert['claim_id']} {alert['status']} {alert['reason'] or ''} vendor={vendor}")


if __name__ == "__main__":
    asyncio.run(main())
