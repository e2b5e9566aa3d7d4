"""Evidence end to end (SPEC sections 2 and 11): `body_sha256` on every result whose page answered,
and with `archive` set every response received (pages, redirect hops, robots.txt) kept as WARC
records, re-read with warcio and hashed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import brotli
import settings_for_tests
from contract import TARGET, cli, linked
from servers import Server, Servers, redirect, respond
from warcio.archiveiterator import ArchiveIterator

import crawler
from crawler.engine.archive import read_record

PAGE = linked()


def records(directory: Path) -> list[tuple[str, str, bytes]]:
    """(type, target URI, payload) of every record in the archive's files, in file order."""
    found = []
    for path in sorted(directory.iterdir()):
        with path.open("rb") as stream:
            for record in ArchiveIterator(stream):
                uri = record.rec_headers.get_header("WARC-Target-URI") or ""
                found.append((record.rec_type, uri, record.content_stream().read()))
    return found


async def site_of(servers: Servers) -> tuple[Server, Server]:
    other = await servers.app({"/landing": respond(PAGE)}, "127.0.0.3")
    main = await servers.app(
        {
            "/robots.txt": respond("User-agent: *\nDisallow: /private\n", content_type="text/plain"),
            "/page": respond(brotli.compress(PAGE.encode()), headers={"Content-Encoding": "br"}),
            "/gone": respond("gone", status=404),
            "/moved": redirect(other.url("/landing")),
            "/private": respond(PAGE),
        },
        "127.0.0.2",
    )
    return main, other


Items = list[crawler.Claim | crawler.InvalidClaim]


async def verify(claims: Items, **changes: object) -> dict[str, crawler.Result]:
    settings = settings_for_tests.fast(retries=0, **changes)
    return {result.claim_id: result async for result in crawler.verify(claims, settings)}


def claims_of(main: Server) -> Items:
    return [
        crawler.Claim(main.url("/page"), TARGET, id="page"),
        crawler.Claim(main.url("/gone"), TARGET, id="gone"),
        crawler.Claim(main.url("/moved"), TARGET, id="moved"),
        crawler.Claim(main.url("/private"), TARGET, id="private"),
        crawler.Claim("http://127.0.0.9:9/", TARGET, id="nothing"),
        crawler.InvalidClaim("bad", "ftp://x", TARGET, "row 2: source_url: not an http(s) URL"),
    ]


class TestBodyHash:
    async def test_set_when_the_page_answered_null_otherwise(self, servers: Servers) -> None:
        """body_sha256 hashes the decoded body of the page judged; blocked, unreachable, invalid: null."""
        main, _ = await site_of(servers)
        results = await verify(claims_of(main))
        assert results["page"].body_sha256 == hashlib.sha256(PAGE.encode()).hexdigest()
        assert results["moved"].body_sha256 == hashlib.sha256(PAGE.encode()).hexdigest()
        assert results["gone"].status is crawler.Status.PAGE_ERROR
        assert results["gone"].body_sha256 == hashlib.sha256(b"gone").hexdigest()
        for claim_id in ("private", "nothing", "bad"):
            assert results[claim_id].body_sha256 is None
            assert results[claim_id].evidence is None


class TestArchive:
    async def test_every_response_is_archived_and_found_again(self, servers: Servers, tmp_path: Path) -> None:
        """Pages, the redirect hop and robots.txt are archived; evidence points at the page's record,
        whose payload hashes to body_sha256."""
        main, other = await site_of(servers)
        archive = tmp_path / "warc"
        results = await verify(claims_of(main), archive=str(archive))
        found = records(archive)
        responses = [uri for kind, uri, _ in found if kind == "response"]
        assert sorted(responses) == sorted(
            [
                main.url("/robots.txt"),
                main.url("/page"),
                main.url("/gone"),
                main.url("/moved"),
                other.url("/robots.txt"),
                other.url("/landing"),
            ]
        )
        assert len([kind for kind, _, _ in found if kind == "request"]) == len(responses)
        for claim_id in ("page", "gone", "moved"):
            result = results[claim_id]
            assert result.evidence is not None
            record = read_record(archive, result.evidence)
            assert hashlib.sha256(record.body).hexdigest() == result.body_sha256
            assert record.url == (result.final_url or result.source_url)
        assert all(name.startswith(results["page"].run_id) for name in (p.name for p in archive.iterdir()))

    async def test_truncated_body_is_marked(self, servers: Servers, tmp_path: Path) -> None:
        """A body cut at max_bytes is archived with WARC-Truncated: length."""
        big = await servers.app({"/": respond(linked() + "x" * 200_000)})
        archive = tmp_path / "warc"
        claims: list[crawler.Claim | crawler.InvalidClaim] = [crawler.Claim(big.url("/"), TARGET)]
        (result,) = (
            await verify(claims, archive=str(archive), max_bytes=100_000, obey_robots=False)
        ).values()
        assert result.evidence is not None
        assert read_record(archive, result.evidence).truncated == "length"

    async def test_unwritable_archive_is_exit_2_before_any_request(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """An archive directory that can't be made (its parent is a file) stops verify with exit 2."""
        main, _ = await site_of(servers)
        (tmp_path / "claims.csv").write_text(f"source_url,target_url\n{main.url('/page')},{TARGET}\n")
        (tmp_path / "file").write_text("not a directory")
        done = await cli("verify", "claims.csv", "--db", "c.sqlite", "--archive", "file/warc", cwd=tmp_path)
        assert done.code == 2
        assert "archive" in done.stderr
        assert "Traceback" not in done.stderr
        assert main.log.hits == []
