"""Rendering end to end (SPEC section 12): claims verified through `crawler.verify` and the command
line with `render` on, a real Chromium, and every request seen by real loopback servers.

Without Chromium or the `render` extra these tests skip, naming what is missing; under CI they
fail instead (CI installs both).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import settings_for_tests
from contract import cli, html
from servers import Server, Servers, respond

import crawler
from crawler.engine.render import check_rendering
from crawler.errors import RenderError

TARGET = "https://target.test/landing"
JS = "application/javascript"
BUILDS_LINK = f"""
document.getElementById('root').innerHTML = '<main><a href="{TARGET}">partner</a></main>';
"""


def settings(**changes: Any) -> crawler.Settings:
    return settings_for_tests.fast(**({"render": "auto", "render_timeout": 10.0, "retries": 0} | changes))


@pytest.fixture(autouse=True)
def browser() -> None:
    """Skips (or, under CI, fails) where no Chromium can be found."""
    try:
        check_rendering(settings())
    except RenderError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs Chromium and the render extra, yet: {exc}")
        pytest.skip(f"cannot render here: {exc}")


def app_shell(script: str = "/app.js", head: str = "") -> str:
    return html(f'<div id="root"></div><script src="{script}"></script>', head)


async def verify(site: Server, path: str = "/", **changes: Any) -> crawler.Result:
    claims = [crawler.Claim(site.url(path), TARGET)]
    (result,) = [result async for result in crawler.verify(claims, settings(**changes))]
    return result


class TestAuto:
    async def test_script_built_link_is_found_and_flagged(self, servers: Servers) -> None:
        """A link that only a script builds is found on the rendered page, flagged js_rendered."""
        site = await servers.app(
            {"/": respond(app_shell()), "/app.js": respond(BUILDS_LINK, content_type=JS)}
        )
        result = await verify(site)
        assert result.status is crawler.Status.VERIFIED
        assert crawler.Flag.JS_RENDERED in result.flags
        assert result.link is not None
        assert result.link.text == "partner"
        assert site.log.count("/") == 1  # the browser never requested the page again

    async def test_a_raw_link_is_never_rendered(self, servers: Servers) -> None:
        """A page whose raw HTML has the link is judged as it is: its scripts are never fetched."""
        page = html(f'<a href="{TARGET}">raw</a><script src="/app.js"></script>')
        site = await servers.app({"/": respond(page), "/app.js": respond(BUILDS_LINK, content_type=JS)})
        result = await verify(site)
        assert result.status is crawler.Status.VERIFIED
        assert crawler.Flag.JS_RENDERED not in result.flags
        assert site.log.count("/app.js") == 0

    async def test_noindex_page_is_not_rendered(self, servers: Servers) -> None:
        """A page with noindex for the index agent is not worth a browser: missing, scripts unfetched."""
        page = app_shell(head='<meta name="robots" content="noindex">')
        site = await servers.app({"/": respond(page), "/app.js": respond(BUILDS_LINK, content_type=JS)})
        result = await verify(site)
        assert result.status is crawler.Status.MISSING
        assert site.log.count("/app.js") == 0

    async def test_script_on_a_disallowed_host_is_never_requested(self, servers: Servers) -> None:
        """A subresource on a host whose robots.txt disallows us fails inside the page, unrequested."""
        cdn = await servers.app(
            {
                "/robots.txt": respond("User-agent: *\nDisallow: /\n", content_type="text/plain"),
                "/app.js": respond(BUILDS_LINK, content_type=JS),
            },
            "127.0.0.3",
        )
        site = await servers.app({"/": respond(app_shell(cdn.url("/app.js")))})
        result = await verify(site)
        assert result.status is crawler.Status.MISSING
        assert cdn.log.count("/app.js") == 0
        assert cdn.log.count("/robots.txt") == 1

    async def test_a_script_that_never_ends_is_render_failed(self, servers: Servers) -> None:
        """`while(true){}` gives `missing` with render_failed, within render_timeout plus 5 s."""
        site = await servers.app(
            {"/": respond(app_shell()), "/app.js": respond("while(true){}", content_type=JS)}
        )
        started = time.monotonic()
        result = await verify(site, render_timeout=2.0)
        assert time.monotonic() - started < 2.0 + 5.0 + 3.0  # + start-up of the browser
        assert result.status is crawler.Status.MISSING
        assert crawler.Flag.RENDER_FAILED in result.flags


class TestAlways:
    async def test_verdict_on_the_rendered_document(self, servers: Servers) -> None:
        """`always`: a script that makes a followed raw link nofollow gives `nofollow`."""
        page = html(
            f'<main><a id="x" href="{TARGET}">partner</a></main>'
            "<script>document.getElementById('x').rel = 'nofollow';</script>"
        )
        site = await servers.app({"/": respond(page)})
        assert (await verify(site, render="off")).status is crawler.Status.VERIFIED
        result = await verify(site, render="always")
        assert result.status is crawler.Status.NOFOLLOW
        assert crawler.Flag.JS_RENDERED not in result.flags  # the link itself was in the raw page


class TestCommandLine:
    async def test_missing_browser_is_exit_2_before_any_request(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """render on with a browser path that does not exist: exit 2 naming the setting, nothing fetched."""
        site = await servers.app({"/": respond(app_shell())})
        (tmp_path / "claims.csv").write_text(f"source_url,target_url\n{site.url('/')},{TARGET}\n")
        env = {"CRAWLER_RENDER": "auto", "CRAWLER_BROWSER": str(tmp_path / "no-such-chromium")}
        done = await cli("verify", "claims.csv", "--db", "c.sqlite", cwd=tmp_path, env=env)
        assert done.code == 2
        assert "browser" in done.stderr
        assert "no-such-chromium" in done.stderr
        assert "Traceback" not in done.stderr
        assert site.log.hits == []

    async def test_rendered_run_through_the_command(self, servers: Servers, tmp_path: Path) -> None:
        """`crawler verify --render auto` finds the script-built link and exports js_rendered."""
        site = await servers.app(
            {"/": respond(app_shell()), "/app.js": respond(BUILDS_LINK, content_type=JS)}
        )
        (tmp_path / "claims.csv").write_text(f"source_url,target_url\n{site.url('/')},{TARGET}\n")
        done = await cli("verify", "claims.csv", "--db", "c.sqlite", "--render", "auto", "-q", cwd=tmp_path)
        assert done.code == 0, done.stderr
        exported = await cli("export", "--db", "c.sqlite", "--format", "jsonl", cwd=tmp_path)
        (record,) = exported.jsonl()
        assert record["status"] == "verified"
        assert "js_rendered" in record["flags"]
