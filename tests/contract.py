"""Helpers of the contract tests (tests/test_contract*.py): the crawler as a user drives it.

The library through `import crawler` only, the command line as `python -m crawler` in a real
subprocess, and sites on real loopback servers (tests/servers.py), one address per host.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
import sqlite3
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers import Handler, Server, Servers
from settings_for_tests import fast

import crawler

TARGET = "http://target.test/page"
"""A claimed target that is never fetched: only links to it are looked for."""
# Contract tests count requests: no retries unless a test asks for them.
settings = functools.partial(fast, timeout=3.0, connect_timeout=2.0, retries=0)
"""Settings for loopback tests (`settings_for_tests.fast`) without retries."""


def html(body: str, head: str = "") -> str:
    """A whole HTML document."""
    return f"<!DOCTYPE html><html><head><title>t</title>{head}</head><body>{body}</body></html>"


def linked(attrs: str = "", text: str = "anchor text", target: str = TARGET) -> str:
    """A document whose main content links to `target`."""
    return html(f'<main><p>Some words.</p><a href="{target}" {attrs}>{text}</a></main>')


async def verify_all(
    claims: Iterable[crawler.Claim | crawler.InvalidClaim], config: crawler.Settings | None = None
) -> dict[str, crawler.Result]:
    """Every result of one `crawler.verify` run, by claim id."""
    found = {}
    async for result in crawler.verify(list(claims), config or settings()):
        assert result.claim_id not in found, "one result per claim per run"
        found[result.claim_id] = result
    return found


async def judge(
    servers: Servers,
    routes: Mapping[str, Handler],
    path: str = "/",
    *,
    host: str = "127.0.0.2",
    config: crawler.Settings | None = None,
    **claim: Any,
) -> tuple[crawler.Result, Server]:
    """Serve `routes` on `host`, verify one claim whose source is `path` there, return its result."""
    site = await servers.app(routes, host=host)
    claim.setdefault("target_url", TARGET)
    (result,) = (await verify_all([crawler.Claim(source_url=site.url(path), **claim)], config)).values()
    return result, site


def closed_port(host: str) -> int:
    """A port on `host` where nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


# Command line -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Done:
    """A finished `python -m crawler` process."""

    code: int
    stdout: str
    stderr: str

    def jsonl(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def environ(extra: Mapping[str, str] | None = None, *, loopback: bool = True) -> dict[str, str]:
    """The test process's environment without CRAWLER_ variables, plus what a loopback run needs."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("CRAWLER_")}
    if loopback:
        base |= {"CRAWLER_ALLOW_PRIVATE": "true", "CRAWLER_DELAY": "0", "CRAWLER_RETRIES": "0"}
    return base | dict(extra or {})


async def cli(
    *args: str,
    cwd: Path,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    loopback: bool = True,
) -> Done:
    """Run `python -m crawler ARGS` in `cwd` without blocking the loop serving the test sites."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crawler",
        *args,
        cwd=cwd,
        env=environ(env, loopback=loopback),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


def rows(db: Path, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a query on the SQLite file `db`, read with the standard sqlite3 module."""
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, parameters).fetchall()


def link_of(result: crawler.Result) -> crawler.Link:
    """The result's reported link, which the test expects to be there."""
    assert result.link is not None, f"no link reported: {result.status} {result.flags}"
    return result.link
