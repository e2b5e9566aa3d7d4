"""The bundled demo: its loopback site serves what the claims expect; `crawler demo` shows every status."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from crawler.app import demo
from crawler.config import RenderMode
from crawler.models import Claim, InvalidClaim, Status


async def _get(url: str) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False) as response:
        return response.status, dict(response.headers), await response.text()


class TestSite:
    async def test_each_host_has_its_own_loopback_address(self) -> None:
        """Every host answers on a distinct 127.0.0.x address (where the system has them)."""
        async with demo.serve() as site:
            addresses = [authority.rsplit(":", 1)[0] for authority in site.authorities.values()]
        assert all(address.startswith("127.") for address in addresses)
        assert len(set(site.authorities.values())) == len(demo.load_hosts())

    async def test_pages_robots_and_missing_files(self) -> None:
        """Pages are HTML, robots.txt is text, and a file that is not there is a 404 page."""
        async with demo.serve() as site:
            page = await _get(site.expand("http://{blog}/2024/best-running-shoes.html"))
            robots = await _get(site.expand("http://{directory}/robots.txt"))
            missing = await _get(site.expand("http://{blog}/2023/deleted-post.html"))
            index = await _get(site.expand("http://{blog}/"))
        assert page[0] == 200
        assert page[1]["Content-Type"].startswith("text/html")
        assert "https://www.acme-shoes.example/running" in page[2]
        assert robots[0] == 200
        assert robots[1]["Content-Type"].startswith("text/plain")
        assert "User-agent: backlink-crawler\nDisallow: /" in robots[2]
        assert missing[0] == 404
        assert index[0] == 200

    async def test_redirects_and_headers_come_from_site_toml(self) -> None:
        """A redirect points at the other host's real address; configured headers are sent."""
        async with demo.serve() as site:
            moved = await _get(site.expand("http://{blog}/old/gear-guide.html"))
            archive = await _get(site.expand("http://{news}/archive/2019.html"))
            expected = site.expand("http://{news}/guides/gear-guide.html")
        assert moved[0] == 301
        assert moved[1]["Location"] == expected
        assert archive[1]["X-Robots-Tag"] == "googlebot: noindex"

    async def test_paths_cannot_leave_the_host(self) -> None:
        """Dot segments and backslashes never reach another host's files or the claims file."""
        async with demo.serve() as site:
            base = site.expand("http://{blog}")
            answers = [
                await _get(f"{base}/%2e%2e/news/robots.txt"),
                await _get(f"{base}/..%5cnews%5crobots.txt"),
                await _get(f"{base}/%2e%2e/%2e%2e/claims.csv"),
            ]
        assert [status for status, _, _ in answers] == [404, 404, 404]

    async def test_the_unserved_host_refuses_connections(self) -> None:
        """Nothing listens on the address of the host marked `serve = false`."""
        async with demo.serve() as site:
            with pytest.raises(aiohttp.ClientConnectionError):
                await _get(site.expand("http://{gone}/links.html"))

    async def test_claims_point_at_the_running_site(self) -> None:
        """The bundled claims get real addresses; exactly the two broken rows are invalid."""
        async with demo.serve() as site:
            claims = list(site.claims())
        assert len(claims) == 24
        assert all("{" not in claim.source_url for claim in claims)
        invalid = [claim for claim in claims if isinstance(claim, InvalidClaim)]
        assert [claim.id for claim in invalid] == ["d22", "d23"]
        valid = [claim for claim in claims if isinstance(claim, Claim)]
        assert all(claim.tags["case"] for claim in valid)


def test_demo_command_shows_every_status(tmp_path: Path) -> None:
    """`crawler demo` verifies the bundled claims offline and every status of the contract appears."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CRAWLER_")}
    done = subprocess.run(
        [sys.executable, "-m", "crawler", "demo", "--db", str(tmp_path / "demo.sqlite")],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    assert "loopback" in done.stdout
    for status in Status:
        assert status.value in done.stdout
    with sqlite3.connect(tmp_path / "demo.sqlite") as db:
        rows = db.execute("SELECT claim_id, status, data FROM results").fetchall()
    statuses = {claim: status for claim, status, _ in rows}
    flags = {flag for _, _, data in rows for flag in json.loads(data)["flags"]}
    assert set(statuses.values()) == {status.value for status in Status}
    assert len(statuses) == 24
    expected = {
        "d01": "verified",
        "d08": "page_error",
        "d09": "missing",
        "d10": "nofollow",
        "d12": "not_indexable",
        "d20": "blocked",
        "d21": "unreachable",
        "d22": "invalid",
    }
    assert {claim: statuses[claim] for claim in expected} == expected
    assert {
        "sponsored",
        "ugc",
        "anchor_mismatch",
        "canonical_elsewhere",
        "hidden",
        "boilerplate",
        "wrong_target",
        "unlinked_mention",
        "meta_refresh",
        "source_redirected",
    } <= flags
    assert not (tmp_path / "crawler.sqlite").exists()
    # The script-built partner list: found on the rendered page where a browser is, else missing.
    d24 = json.loads(next(data for claim, _, data in rows if claim == "d24"))
    if demo.demo_settings().render is RenderMode.AUTO:
        assert (d24["status"], "js_rendered" in d24["flags"]) == ("verified", True)
    else:
        assert d24["status"] == "missing"
