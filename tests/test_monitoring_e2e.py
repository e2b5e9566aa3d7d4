"""Monitoring end to end (section 9): a loopback site whose pages change between runs, verified
run after run through `crawler.verify_into` and the command line; states and events as a user
sees them (results as they are decided, `--output` lines, export).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiohttp import web
from contract import TARGET, html, linked
from servers import Server, Servers
from settings_for_tests import fast

import crawler
from crawler.core.history import Event
from crawler.models import Claim, Result

CHALLENGE = '<html><head><title>Just a moment...</title></head><body><div id="cf-chl-widget"></div>'
PLAIN = html("<p>Nothing to see here.</p>")
LINKED = linked()
RUNS = 4
# Each page over four runs: (HTTP status, body); the robots page is barred from run 2 on.
PAGES: dict[str, list[tuple[int, str]]] = {
    "removed": [(200, LINKED), (200, PLAIN), (200, PLAIN), (200, PLAIN)],
    "restored": [(200, LINKED), (200, PLAIN), (200, PLAIN), (200, LINKED)],
    "rel": [(200, LINKED), (200, linked('rel="nofollow"')), (200, linked('rel="nofollow"')), (200, LINKED)],
    "anchor": [
        (200, LINKED),
        (200, linked(text="another text")),
        (200, linked(text="another text")),
        (200, LINKED),
    ],
    "noindex": [(200, LINKED), (200, html(linked(), head='<meta name="robots" content="noindex">'))] * 2,
    "gone": [(200, LINKED), (404, PLAIN), (404, PLAIN), (404, PLAIN)],
    "flaky": [(200, LINKED), (500, PLAIN), (500, PLAIN), (500, PLAIN)],
    "robots": [(200, LINKED)] * RUNS,
    "challenge": [(200, LINKED), (403, CHALLENGE), (403, CHALLENGE), (200, LINKED)],
}


class Site:
    """The test site: page `name` answers as `PAGES[name][run]` for the current `run`."""

    def __init__(self) -> None:
        self.run = 0

    async def page(self, request: web.Request) -> web.Response:
        status, body = PAGES[request.match_info["name"]][self.run]
        return web.Response(status=status, text=body, content_type="text/html")

    async def robots(self, request: web.Request) -> web.Response:
        return web.Response(text="User-agent: *\nDisallow: /robots\n" if self.run else "")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/robots.txt", self.robots)
        app.router.add_get("/{name}", self.page)
        return app


@pytest.fixture
async def site(servers: Servers) -> tuple[Site, Server]:
    changing = Site()
    return changing, await servers.app(changing.app(), host="127.0.0.9")


def claims(server: Server) -> list[Claim]:
    return [Claim(server.url(f"/{name}"), TARGET, id=name) for name in PAGES]


async def verify_runs(path: Path, changing: Site, server: Server) -> list[tuple[list[Result], list[Event]]]:
    """Every run of the site, each as a re-check of the stored claims (the first imports them):
    the results as handed on, and the events."""
    runs = []
    async with crawler.Store(path) as store:
        for number in range(RUNS):
            changing.run = number
            results: list[Result] = []
            events: list[Event] = []

            async def on_result(result: Result, into: list[Result] = results) -> None:
                into.append(result)

            async def on_events(caused: Sequence[Event], into: list[Event] = events) -> None:
                into.extend(caused)

            await crawler.verify_into(
                store,
                claims(server) if number == 0 else None,
                fast(retries=0, workers=1, confirm_runs=2, unreachable_runs=3),
                fresh=True,
                on_result=on_result,
                on_events=on_events,
            )
            runs.append((results, events))
    return runs


def table(runs: list[tuple[list[Result], list[Event]]]) -> dict[str, list[tuple[str | None, list[str]]]]:
    """Per claim: (state, events) in each run."""
    out: dict[str, list[tuple[str | None, list[str]]]] = {name: [] for name in PAGES}
    for results, events in runs:
        for result in results:
            caused = [event.event.value for event in events if event.claim_id == result.claim_id]
            out[result.claim_id].append((result.state, caused))
    return out


class TestChangingSite:
    async def test_states_and_events_over_four_runs(self, site: tuple[Site, Server], tmp_path: Path) -> None:
        """Each kind of change gives the states and events of section 9, as results are handed on."""
        changing, server = site
        got = table(await verify_runs(tmp_path / "c.sqlite", changing, server))
        found = ("live", ["found"])
        assert got["removed"] == [found, ("suspect", []), ("lost", ["lost"]), ("lost", [])]
        assert got["restored"] == [found, ("suspect", []), ("lost", ["lost"]), ("live", ["recovered"])]
        assert got["rel"] == [found, ("live", ["rel_changed"]), ("live", []), ("live", ["rel_changed"])]
        assert got["anchor"] == [
            found,
            ("live", ["anchor_changed"]),
            ("live", []),
            ("live", ["anchor_changed"]),
        ]
        assert got["noindex"] == [
            found, ("live", ["indexability_changed"]), ("live", ["indexability_changed"]),
            ("live", ["indexability_changed"]),
        ]  # fmt: skip
        assert got["gone"] == [found, ("suspect", []), ("lost", ["lost"]), ("lost", [])]
        # Server errors and challenge pages are inconclusive: never a loss; the third is `unreachable`.
        assert got["flaky"] == [found, ("live", []), ("live", []), ("live", ["unreachable"])]
        assert got["challenge"] == [found, ("live", []), ("live", []), ("live", [])]
        assert got["robots"] == [found, ("suspect", []), ("blocked", ["blocked"]), ("blocked", [])]

    async def test_the_reasons_and_the_stored_events(self, site: tuple[Site, Server], tmp_path: Path) -> None:
        """`lost` says link_removed or page_gone; the events handed on are the events stored."""
        changing, server = site
        runs = await verify_runs(tmp_path / "c.sqlite", changing, server)
        async with crawler.Store(tmp_path / "c.sqlite") as store:
            stored = [
                [event async for event in store.events(run_id=results[0].run_id)] for results, _ in runs
            ]
            history = await store.history("gone")
        assert stored == [events for _, events in runs]
        lost = {event.claim_id: event for event in runs[2][1] if event.event.value == "lost"}
        assert {name: event.reason.value if event.reason else None for name, event in lost.items()} == {
            "removed": "link_removed",
            "restored": "link_removed",
            "gone": "page_gone",
        }
        assert lost["gone"].last_seen_run == runs[0][0][0].run_id
        assert [result.http_status for result, _ in history] == [200, 404, 404, 404]


class TestCommandLine:
    async def test_state_in_output_and_export(self, site: tuple[Site, Server], tmp_path: Path) -> None:
        """`verify --output` lines and `export` carry each result's state; a second run with the
        link removed reads suspect."""
        changing, server = site
        lines = "".join(f"{server.url('/' + name)},{TARGET},{name}\n" for name in ("removed", "gone"))
        (tmp_path / "claims.csv").write_text("source_url,target_url,id\n" + lines)
        common = ("--db", "c.sqlite", "--allow-private", "--delay", "0", "--retries", "0", "--workers", "1")
        first = await cli("verify", "claims.csv", *common, "--output", "-", cwd=tmp_path)
        assert {(line["claim_id"], line["state"]) for line in first} == {
            ("removed", "live"),
            ("gone", "live"),
        }
        changing.run = 1
        await cli("verify", *common, "--fresh", cwd=tmp_path)
        exported = await cli("export", "--db", "c.sqlite", "--format", "jsonl", cwd=tmp_path)
        assert {(line["claim_id"], line["state"]) for line in exported} == {
            ("removed", "suspect"),
            ("gone", "suspect"),
        }


async def cli(*args: str, cwd: Path) -> list[dict[str, object]]:
    """`python -m crawler ARGS`; the JSON lines of its standard output (it must exit 0)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
