"""Security: the address guard (SSRF) with the default settings, SQL-looking input, CSV injection.

No test sends a packet beyond loopback. Loopback servers stand in for the private network:
with the guard on (allow_private false, the default) they must count zero requests, and a
control run with allow_private proves each URL really points at them. Other private ranges
are checked without any connection: the guard's pure check, its resolver (names mapped with
`resolve`, no lookup, no connect), and runs through a proxy on loopback, so that a request the
guard let through could only ever reach that proxy, which counts it.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
import os
import sqlite3
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from servers import Handler, Server, Servers, redirect, respond
from settings_for_tests import fast

from crawler.config import Settings
from crawler.core.guard import forbidden_address
from crawler.engine.fetch import Fetcher, ForbiddenAddressError, GuardedResolver
from crawler.engine.pipeline import verify
from crawler.engine.politeness import Politeness
from crawler.models import Claim, Result, Status

TARGET = "https://target.example/landing"
LINKED = f'<html><body><main><a href="{TARGET}">anchor</a></main></body></html>'
ALLOW_ALL = "User-agent: *\nAllow: /\n"
# A public address for names reached through the proxy: never connected to, the proxy is.
PUBLIC = "93.184.216.34"
# A refusal happens before any connection: no connect timeout is ever waited for.
FAST = 1.0


# The loopback test settings with the guard back on (allow_private false, the default), no retries.
guarded = functools.partial(fast, allow_private=False, retries=0)


async def private_site(servers: Servers, host: str) -> Server:
    """A site standing for an internal service: robots.txt allows all, its page links to the target."""
    routes = {"/robots.txt": respond(ALLOW_ALL, content_type="text/plain"), "/": respond(LINKED)}
    return await servers.app(routes, host)


async def run(sources: list[str], settings: Settings) -> dict[str, Result]:
    """Results by source URL; with the guard on the run must be quick: refusals cost no waiting."""
    started = time.monotonic()
    results = {r.source_url: r async for r in verify([Claim(s, TARGET) for s in sources], settings)}
    assert len(results) == len(sources)
    if not settings.allow_private:
        assert time.monotonic() - started < FAST
    return results


def blocked(result: Result) -> bool:
    return (result.status, result.reason) == (Status.BLOCKED, "forbidden_address")


class TestRanges:
    @pytest.mark.parametrize(
        ("first", "last", "before", "after"),
        [
            ("10.0.0.0", "10.255.255.255", "9.255.255.255", "11.0.0.0"),
            ("100.64.0.0", "100.127.255.255", "100.63.255.255", "100.128.0.0"),
            ("127.0.0.0", "127.255.255.255", "126.255.255.255", "128.0.0.0"),
            ("169.254.0.0", "169.254.255.255", "169.253.255.255", "169.255.0.0"),
            ("172.16.0.0", "172.31.255.255", "172.15.255.255", "172.32.0.0"),
            ("192.168.0.0", "192.168.255.255", "192.167.255.255", "192.169.0.0"),
            ("fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:4860::8888", "2606:4700::1111"),
            ("fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2a00:1450::1", "2400:cb00::1"),
        ],
    )
    def test_range_boundaries(self, first: str, last: str, before: str, after: str) -> None:
        """Both ends of every private range are refused; the public neighbours just outside pass."""
        assert (forbidden_address(first), forbidden_address(last)) == (True, True)
        assert (forbidden_address(before), forbidden_address(after)) == (False, False)

    @pytest.mark.parametrize(
        "address",
        [
            "169.254.169.254",  # cloud metadata (AWS, GCP, Azure)
            "fd00:ec2::254",  # AWS metadata over IPv6
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::ffff:192.168.1.1",
            "::ffff:7f00:1",
            "0:0:0:0:0:ffff:127.0.0.1",
            "fec0::1",  # site-local, deprecated but still routed in places
            "64:ff9b:1::a00:1",  # local-use NAT64
            "64:ff9b:1:7f00:1::",
            "4000::1",  # outside IANA's global unicast space
            "[::1]",
        ],
    )
    def test_wrapped_and_odd_forms_are_refused(self, address: str) -> None:
        """Metadata addresses, IPv4-mapped private addresses, site-local and non-unicast IPv6 are refused."""
        assert forbidden_address(address)

    @pytest.mark.parametrize(
        "address",
        ["10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "fd00::1", "fe80::1"],
    )
    async def test_resolver_refuses_names_of_private_addresses(self, address: str) -> None:
        """A name mapped to a private address is refused by the guard's resolver: nothing is looked up."""
        resolver = GuardedResolver(overrides={"internal.test": address}, guard=True, exempt=frozenset())
        with pytest.raises(ForbiddenAddressError):
            await resolver.resolve("internal.test", 80)
        open_resolver = GuardedResolver(overrides={"internal.test": address}, guard=False, exempt=frozenset())
        assert [found["host"] for found in await open_resolver.resolve("internal.test", 80)] == [address]


LOOPBACK_SPELLINGS = [
    "http://127.0.0.1:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f.1:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0x7f000001:{port}/",
    "http://127.1:{port}/",
    "http://127.0.0.1.:{port}/",
    "http://%31%32%37.0.0.1:{port}/",
    "http://0:{port}/",  # 0.0.0.0: connecting there reaches this machine
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://localhost:{port}/",
]


class TestLoopbackNeverReached:
    async def test_every_spelling_of_loopback(self, servers: Servers) -> None:
        """Integer, hex, octal, short, dotted, escaped, 0 and IPv4-mapped spellings all stop at the guard.

        The control run (allow_private) reaches the server once per page, so each URL does point at it.
        """
        site = await private_site(servers, "127.0.0.1")
        sources = [spelling.format(port=site.port) for spelling in LOOPBACK_SPELLINGS]
        results = await run(sources, guarded())
        assert [source for source in sources if not blocked(results[source])] == []
        assert site.log.count() == 0
        control = await run(sources, guarded(allow_private=True))
        assert {result.status for result in control.values()} == {Status.VERIFIED}
        assert site.log.count("/") >= 1

    async def test_ipv6_loopback_and_names_mapped_to_loopback(self, servers: Servers) -> None:
        """[::1], and names that `resolve` maps to 127.0.0.3 or ::1, are refused before connecting."""
        v4 = await private_site(servers, "127.0.0.3")
        v6 = await private_site(servers, "::1")
        resolve = {"intranet.test": "127.0.0.3", "db.test": "::1"}
        sources = [v6.url("/"), v4.named("intranet.test"), v6.named("db.test")]
        results = await run(sources, guarded(resolve=resolve))
        assert [blocked(results[source]) for source in sources] == [True] * 3
        assert (v4.log.count(), v6.log.count()) == (0, 0)
        control = await run(sources, guarded(resolve=resolve, allow_private=True))
        assert {result.status for result in control.values()} == {Status.VERIFIED}

    async def test_fetcher_refuses_spellings_it_is_handed_raw(self, servers: Servers) -> None:
        """Below the pipeline's WHATWG serialisation, hex names the OS reads as 127.0.0.1 meet the guard.

        aiohttp refuses all-digit forms (octal, integer, short) as invalid URLs by itself, guard or not.
        """
        site = await private_site(servers, "127.0.0.1")
        hex_forms, digit_forms = ["0x7f.1", "0x7f000001", "0x7f.0.0.1"], ["0177.0.0.1", "2130706433", "127.1"]

        async def reasons(settings: Settings) -> list[str | None]:
            gates = Politeness(concurrency=4, per_host=1, delay=0.0)
            async with Fetcher(settings, gates) as client:
                return [
                    (await client.get(f"http://{host}:{site.port}/", max_bytes=1000)).reason
                    for host in hex_forms + digit_forms
                ]

        assert await reasons(guarded()) == ["forbidden_address"] * 3 + ["connection_error"] * 3
        assert site.log.count() == 0
        assert await reasons(guarded(allow_private=True)) == [None] * 3 + ["connection_error"] * 3
        assert site.log.count() == 3


class Proxy:
    """A "public" site reached through a proxy on loopback: every request of a run ends here.

    The names in a run map to a public address, so the guard lets them through to the proxy;
    a request the guard failed to stop, whatever its address, would arrive here too and be
    counted by its absolute URL.
    """

    def __init__(self, routes: Mapping[str, Handler]) -> None:
        self.routes = dict(routes)
        self.seen: list[str] = []
        self.server: Server | None = None

    async def start(self, servers: Servers) -> Proxy:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self.server = await servers.app(app, "127.0.0.4")
        return self

    def settings(self, **changes: Any) -> Settings:
        assert self.server is not None
        resolve = {"public.test": PUBLIC, **changes.pop("resolve", {})}
        return guarded(proxy=self.server.url(""), resolve=resolve, **changes)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(f"http://{request.host}{request.path_qs}")
        handler = self.routes.get(request.path) if request.host == "public.test" else None
        if handler is None:
            return web.Response(status=404)
        return await handler(request)


class TestPrivateNetworksThroughAProxy:
    @pytest.mark.parametrize(
        "address", ["10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "fd00::1"]
    )
    async def test_names_of_private_addresses(self, servers: Servers, address: str) -> None:
        """A name that `resolve` maps into a private range is refused before the proxy is asked."""
        proxy = await Proxy({}).start(servers)
        results = await run(["http://internal.test/page"], proxy.settings(resolve={"internal.test": address}))
        assert blocked(results["http://internal.test/page"])
        assert proxy.seen == []

    @pytest.mark.parametrize(
        "location",
        [
            "http://10.0.0.1/admin",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/latest/meta-data/",
            "http://192.168.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://metadata.test/computeMetadata/v1/",
            "http://[::ffff:10.0.0.1]/",
        ],
    )
    async def test_redirect_into_a_private_network(self, servers: Servers, location: str) -> None:
        """A public page redirecting to a private address (literal, odd spelling or name) is blocked there."""
        proxy = await Proxy(
            {"/robots.txt": respond(ALLOW_ALL, content_type="text/plain"), "/start": redirect(location, 302)}
        ).start(servers)
        settings = proxy.settings(resolve={"metadata.test": "169.254.169.254"})
        result = (await run(["http://public.test/start"], settings))["http://public.test/start"]
        assert blocked(result)
        assert [hop.url for hop in result.redirects] == ["http://public.test/start"]
        assert proxy.seen == ["http://public.test/robots.txt", "http://public.test/start"]

    async def test_meta_refresh_into_a_private_network(self, servers: Servers) -> None:
        """An instant meta refresh to the metadata address is a hop like any other: blocked."""
        refresh = '<meta http-equiv="refresh" content="0; url=http://169.254.169.254/latest/">'
        proxy = await Proxy(
            {"/robots.txt": respond(ALLOW_ALL, content_type="text/plain"), "/start": respond(refresh)}
        ).start(servers)
        result = (await run(["http://public.test/start"], proxy.settings()))["http://public.test/start"]
        assert blocked(result)
        assert proxy.seen == ["http://public.test/robots.txt", "http://public.test/start"]

    @pytest.mark.parametrize(
        "location",
        ["http://10.0.0.1/robots.txt", "http://169.254.169.254/robots.txt", "http://0x7f.1/robots.txt"],
    )
    async def test_robots_txt_redirect_into_a_private_network(self, servers: Servers, location: str) -> None:
        """robots.txt redirecting to a private address blocks the site (forbidden_address), page unasked."""
        proxy = await Proxy({"/robots.txt": redirect(location, 301), "/page": respond(LINKED)}).start(servers)
        result = (await run(["http://public.test/page"], proxy.settings()))["http://public.test/page"]
        assert blocked(result)
        assert proxy.seen == ["http://public.test/robots.txt"]

    @pytest.mark.parametrize(
        "location", ["file:///etc/passwd", "ftp://files.test/x", "gopher://127.0.0.1:6379/_INFO", "data:,x"]
    )
    async def test_redirect_to_other_schemes_is_not_followed(self, servers: Servers, location: str) -> None:
        """A redirect to file:, ftp:, gopher: or data: is a final answer (page_error), never a request."""
        proxy = await Proxy(
            {"/robots.txt": respond(ALLOW_ALL, content_type="text/plain"), "/start": redirect(location, 302)}
        ).start(servers)
        result = (await run(["http://public.test/start"], proxy.settings()))["http://public.test/start"]
        assert (result.status, result.reason, result.redirects) == (Status.PAGE_ERROR, "http_302", ())
        assert proxy.seen == ["http://public.test/robots.txt", "http://public.test/start"]


# Through the command line: SQL-looking text and spreadsheet formulas -------------------------

SQL = "'); DROP TABLE results;--"
FORMULAS = ['=HYPERLINK("http://evil.test")', "+1+1", "-2+3", "@SUM(A1:A9)", "\tTAB", "\rCR"]


def _environ() -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CRAWLER_")}
    return {**environ, "CRAWLER_ALLOW_PRIVATE": "true", "CRAWLER_DELAY": "0"}


async def crawler(*args: str, cwd: Path) -> tuple[int, str, str]:
    """`python -m crawler ARGS` in a subprocess, without blocking the loop serving the test site."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", *args,
        cwd=cwd, env=_environ(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class TestStoredText:
    async def test_sql_in_ids_tags_and_tag_names_is_data(self, servers: Servers, tmp_path: Path) -> None:
        """Ids, tag values and tag names that read as SQL are stored and exported verbatim; tables survive."""
        site = await private_site(servers, "127.0.0.2")
        rows = [
            {"id": SQL, "source_url": site.url("/"), "target_url": TARGET, "vendor": SQL, SQL: "x"},
            {"id": "a' OR '1'='1", "source_url": site.url("/?q=1"), "target_url": TARGET, "vendor": 'b"; --'},
        ]
        (tmp_path / "claims.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
        code, _, err = await crawler("verify", "claims.jsonl", "--db", "c.sqlite", "--quiet", cwd=tmp_path)
        assert code == 0, err
        code, out, err = await crawler("export", "--db", "c.sqlite", "--format", "jsonl", cwd=tmp_path)
        assert code == 0, err
        exported = {record["claim_id"]: record for record in map(json.loads, out.splitlines())}
        assert set(exported) == {SQL, "a' OR '1'='1"}
        assert exported[SQL]["tags"] == {"vendor": SQL, SQL: "x"}
        assert exported["a' OR '1'='1"]["tags"] == {"vendor": 'b"; --'}
        assert {record["status"] for record in exported.values()} == {"verified"}
        with sqlite3.connect(tmp_path / "c.sqlite") as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert {"claims", "results", "runs"} <= tables
            assert db.execute("SELECT count(*) FROM results").fetchone() == (2,)

    async def test_csv_export_neutralises_formulas(self, servers: Servers, tmp_path: Path) -> None:
        """Cells a spreadsheet would run (=, +, -, @, tab, CR first), from claims or page, get a leading '."""
        anchor = "=cmd|'/c calc'!A1"
        page = f'<html><body><a href="{TARGET}">{anchor}</a></body></html>'
        site = await servers.app({"/": respond(page)}, "127.0.0.2")
        # Ids are trimmed on import (claims.py), tags are kept verbatim: tab and CR starts are tags only.
        rows = [
            {"id": formula.strip(), "source_url": site.url(f"/?n={n}"), "target_url": TARGET, "note": formula}
            for n, formula in enumerate(FORMULAS)
        ]
        (tmp_path / "claims.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
        code, _, err = await crawler("verify", "claims.jsonl", "--db", "c.sqlite", "--quiet", cwd=tmp_path)
        assert code == 0, err
        code, out, err = await crawler("export", "--db", "c.sqlite", "--format", "csv", cwd=tmp_path)
        assert code == 0, err
        table = list(csv.DictReader(io.StringIO(out, newline="")))
        ids = [formula.strip() for formula in FORMULAS]
        assert sorted(row["claim_id"] for row in table) == sorted(
            i if i[0].isalpha() else "'" + i for i in ids
        )
        assert sorted(row["tag:note"] for row in table) == sorted("'" + formula for formula in FORMULAS)
        assert {row["link_text"] for row in table} == {"'" + anchor}
        dangerous = [
            cell for row in table for cell in row.values() if cell[:1] in ("=", "+", "-", "@", "\t", "\r")
        ]
        assert dangerous == []
