"""archive: WARC/1.1 evidence written to real files, re-read with warcio and its command line."""

from __future__ import annotations

import asyncio
import errno
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import brotli
import pytest
from servers import Servers, respond
from warcio.archiveiterator import ArchiveIterator

from crawler.engine.archive import Archive, Exchange, files, read_record
from crawler.errors import ArchiveError
from crawler.models import Evidence

RUN = "20250101T000000Z-abc123"
PAGE = b"<!doctype html><title>t</title><a href='https://target.example/'>buy</a>" * 20
WHEN = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@dataclass(frozen=True)
class Record:
    """A record as warcio's ArchiveIterator reads it, body decoded as any reader would."""

    file: str
    offset: int
    kind: str
    record_id: str
    warc: dict[str, str]
    http: list[tuple[str, str]]
    body: bytes


def records(directory: Path) -> Iterator[Record]:
    """Every record of every WARC file in `directory`, in file order."""
    for name in sorted(os.listdir(directory)):
        with (directory / name).open("rb") as stream:
            iterator = ArchiveIterator(stream)
            for record in iterator:
                body = record.content_stream().read()
                yield Record(
                    name,
                    iterator.get_record_offset(),
                    record.rec_type,
                    record.rec_headers.get_header("WARC-Record-ID"),
                    dict(record.rec_headers.headers),
                    list(record.http_headers.headers) if record.http_headers else [],
                    body,
                )


def exchange(body: bytes = PAGE, **fields: object) -> Exchange:
    """A 200 HTML exchange of `body`, other fields as given."""
    base: dict[str, object] = {
        "url": "https://source.example/page?a=1",
        "status": 200,
        "headers": (("Content-Type", "text/html; charset=utf-8"),),
        "body": body,
        "request_headers": (("Host", "source.example"), ("User-Agent", "backlink-crawler/0.1.0")),
        "date": WHEN,
    }
    return Exchange(**(base | fields))  # type: ignore[arg-type]


def _contents(directory: Path) -> list[bytes]:
    return [path.read_bytes() for path in directory.iterdir()]


def warcio_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """warcio's own command line, as a user runs it."""
    command = [sys.executable, "-c", "import sys; from warcio.cli import main; main(sys.argv[1:])", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


class TestRecords:
    async def test_response_then_request_with_sha256_digests(self, tmp_path: Path) -> None:
        """The response record holds the body whose SHA-256 is returned and is its payload digest."""
        async with Archive(tmp_path, RUN) as archive:
            archived = await archive.write_response(exchange())
        assert archived.body_sha256 == hashlib.sha256(PAGE).hexdigest()
        kinds = [(r.kind, r.offset) for r in records(tmp_path)]
        assert [kind for kind, _ in kinds] == ["warcinfo", "response", "request"]
        response, request = [r for r in records(tmp_path) if r.kind != "warcinfo"]
        assert (response.file, response.offset, response.record_id) == (
            archived.evidence.file,
            archived.evidence.offset,
            archived.evidence.record_id,
        )
        assert hashlib.sha256(response.body).hexdigest() == archived.body_sha256
        assert response.warc["WARC-Payload-Digest"] == f"sha256:{archived.body_sha256}"
        assert response.warc["WARC-Target-URI"] == "https://source.example/page?a=1"
        assert response.warc["WARC-Date"] == "2025-01-02T03:04:05.678901Z"
        assert "WARC-Truncated" not in response.warc
        assert request.warc["WARC-Concurrent-To"] == response.record_id
        assert ("User-Agent", "backlink-crawler/0.1.0") in request.http

    async def test_file_is_version_1_1_and_gzip_per_record(self, tmp_path: Path) -> None:
        """Each record is its own gzip member starting WARC/1.1, at the offset the index gives."""
        async with Archive(tmp_path, RUN) as archive:
            archived = await archive.write_response(exchange())
        raw = (tmp_path / archived.evidence.file).read_bytes()
        member = gzip.GzipFile(fileobj=io.BytesIO(raw[archived.evidence.offset :])).read(9)
        assert member == b"WARC/1.1\r"

    async def test_headers_every_instance_in_order(self, tmp_path: Path) -> None:
        """Repeated response headers are all archived, in the order received."""
        headers = (
            ("X-Robots-Tag", "googlebot: noindex"),
            ("Set-Cookie", "a=1"),
            ("X-Robots-Tag", "otherbot: nofollow"),
            ("Set-Cookie", "b=2"),
        )
        async with Archive(tmp_path, RUN) as archive:
            await archive.write_response(exchange(headers=headers))
        (response,) = [r for r in records(tmp_path) if r.kind == "response"]
        assert [h for h in response.http if h[0] in ("X-Robots-Tag", "Set-Cookie")] == list(headers)
        assert response.http[-1] == ("Content-Length", str(len(PAGE)))  # added: replay tools want it

    async def test_decoded_body_drops_the_encoding_headers(self, tmp_path: Path) -> None:
        """Content-Encoding and Transfer-Encoding become x-orig-*, Content-Length is the stored length."""
        headers = (
            ("Content-Encoding", "gzip"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "123"),
        )
        async with Archive(tmp_path, RUN) as archive:
            await archive.write_response(exchange(headers=headers))
        (response,) = [r for r in records(tmp_path) if r.kind == "response"]
        names = dict(response.http)
        assert "Content-Encoding" not in names
        assert "Transfer-Encoding" not in names
        assert names["x-orig-Content-Encoding"] == "gzip"
        assert names["x-orig-Transfer-Encoding"] == "chunked"
        assert names["x-orig-Content-Length"] == "123"
        assert names["Content-Length"] == str(len(PAGE))
        assert response.body == PAGE

    async def test_brotli_page_from_a_real_server_reads_back(self, tmp_path: Path, servers: Servers) -> None:
        """A page served with br, read by aiohttp as the crawler does, comes back from warcio unchanged."""
        site = await servers.app(
            {"/": respond(brotli.compress(PAGE), headers={"Content-Encoding": "br"})}, host="127.0.0.2"
        )
        async with aiohttp.ClientSession() as session, session.get(site.url("/")) as resp:
            body = await resp.read()
            received = tuple((k.decode(), v.decode()) for k, v in resp.raw_headers)
            sent = tuple(resp.request_info.headers.items())
        assert body == PAGE
        async with Archive(tmp_path, RUN) as archive:
            archived = await archive.write_response(
                Exchange(
                    site.url("/"), resp.status, received, body, request_headers=sent, reason=resp.reason or ""
                )
            )
        (response,) = [r for r in records(tmp_path) if r.kind == "response"]
        assert ("x-orig-Content-Encoding", "br") in response.http
        assert response.body == PAGE  # warcio's default reading: no brotli involved
        assert read_record(tmp_path, archived.evidence).body == PAGE

    async def test_truncated_body_is_flagged(self, tmp_path: Path) -> None:
        """A body cut at max_bytes is archived with WARC-Truncated: length."""
        async with Archive(tmp_path, RUN) as archive:
            await archive.write_response(exchange(body=PAGE[:100], truncated=True))
        (response,) = [r for r in records(tmp_path) if r.kind == "response"]
        assert response.warc["WARC-Truncated"] == "length"
        assert response.body == PAGE[:100]

    async def test_conversion_refers_to_the_response(self, tmp_path: Path) -> None:
        """A rendered document is a conversion record whose WARC-Refers-To is the page's response."""
        dom = b"<html><body><a href='https://target.example/'>rendered</a></body></html>"
        async with Archive(tmp_path, RUN) as archive:
            page = await archive.write_response(exchange())
            rendered = await archive.write_conversion(page.evidence, "https://source.example/page?a=1", dom)
        (conversion,) = [r for r in records(tmp_path) if r.kind == "conversion"]
        assert conversion.record_id == rendered.evidence.record_id
        assert conversion.warc["WARC-Refers-To"] == page.evidence.record_id
        assert conversion.warc["Content-Type"] == "text/html; charset=utf-8"
        assert conversion.body == dom
        assert rendered.body_sha256 == hashlib.sha256(dom).hexdigest()

    async def test_secrets_in_request_headers_are_redacted(self, tmp_path: Path) -> None:
        """Authorization, Cookie and names passed in `redact` never reach the file."""
        sent = (("Authorization", "Bearer s3cret"), ("Cookie", "sid=s3cret"), ("X-Api-Key", "s3cret"))
        async with Archive(tmp_path, RUN, redact=("authorization", "cookie", "x-api-key")) as archive:
            await archive.write_response(exchange(request_headers=sent))
        (request,) = [r for r in records(tmp_path) if r.kind == "request"]
        assert dict(request.http)["Authorization"] == "[redacted]"
        assert all(b"s3cret" not in gzip.decompress(raw) for raw in _contents(tmp_path))

    async def test_odd_header_bytes_are_percent_encoded(self, tmp_path: Path) -> None:
        """Non-ASCII (surrogate-escaped) header bytes and line breaks can't break the record."""
        headers = (("X-Latin", "caf\udce9"), ("X-Utf8", "café"), ("X-Split", "a\r\nInjected: 1"))
        async with Archive(tmp_path, RUN) as archive:
            await archive.write_response(exchange(headers=headers, url="https://source.example/ü path"))
        (response,) = [r for r in records(tmp_path) if r.kind == "response"]
        http = dict(response.http)
        assert (http["X-Latin"], http["X-Utf8"]) == ("caf%E9", "caf%C3%A9")
        assert http["X-Split"] == "a%0D%0AInjected: 1"
        assert "Injected" not in http

    async def test_concurrent_writes_all_land(self, tmp_path: Path) -> None:
        """Writes awaited together each get a record of their own, all readable."""
        bodies = [PAGE + str(i).encode() for i in range(50)]
        async with Archive(tmp_path, RUN, max_pending=4) as archive:
            done = await asyncio.gather(*(archive.write_response(exchange(body=b)) for b in bodies))
        assert len({a.evidence for a in done}) == 50
        for archived, body in zip(done, bodies, strict=True):
            assert read_record(tmp_path, archived.evidence).body == body


class TestFiles:
    async def test_rotation_keeps_files_within_max_bytes(self, tmp_path: Path) -> None:
        """At a small max_bytes, files rotate; a file over the limit holds exactly one record."""
        max_bytes = 4000
        async with Archive(tmp_path, RUN, max_bytes=max_bytes) as archive:
            done = [await archive.write_response(exchange(body=os.urandom(900))) for _ in range(12)]
        names = files(tmp_path, RUN)
        assert len(names) > 3
        assert names == [f"{RUN}-{n:05d}.warc.gz" for n in range(len(names))]
        for name in names:
            in_file = [r for r in records(tmp_path) if r.file == name]
            assert (tmp_path / name).stat().st_size <= max_bytes or len(in_file) == 1
        for archived in done:
            assert read_record(tmp_path, archived.evidence).body_sha256 == archived.body_sha256

    async def test_record_larger_than_max_is_alone(self, tmp_path: Path) -> None:
        """A response bigger than max_bytes goes alone in its file, without even a warcinfo."""
        async with Archive(tmp_path, RUN, max_bytes=2000) as archive:
            await archive.write_response(exchange(body=os.urandom(300)))
            big = await archive.write_response(exchange(body=os.urandom(5000)))
            await archive.write_response(exchange(body=os.urandom(300)))
        alone = [r for r in records(tmp_path) if r.file == big.evidence.file]
        assert [(r.kind, r.offset) for r in alone] == [("response", 0)]
        assert (tmp_path / big.evidence.file).stat().st_size > 2000

    async def test_resume_numbers_on_and_never_overwrites(self, tmp_path: Path) -> None:
        """A new process of the same run starts a new file after the highest one; old files are untouched."""
        async with Archive(tmp_path, RUN) as archive:
            first = await archive.write_response(exchange())
        (tmp_path / f"{RUN}-00007.warc.gz").write_bytes(b"cut short by a crash")
        (tmp_path / "other-run-00042.warc.gz").write_bytes(b"")
        before = (tmp_path / first.evidence.file).read_bytes()
        async with Archive(tmp_path, RUN) as archive:
            second = await archive.write_response(exchange())
        assert first.evidence.file == f"{RUN}-00000.warc.gz"
        assert second.evidence.file == f"{RUN}-00008.warc.gz"
        assert (tmp_path / first.evidence.file).read_bytes() == before
        assert (tmp_path / f"{RUN}-00007.warc.gz").read_bytes() == b"cut short by a crash"

    async def test_nothing_written_makes_no_file(self, tmp_path: Path) -> None:
        """Opening and closing an archive that received nothing leaves no empty WARC behind."""
        async with Archive(tmp_path / "new", RUN):
            pass
        assert os.listdir(tmp_path / "new") == []

    def test_run_id_must_be_a_file_name(self, tmp_path: Path) -> None:
        """A run id that could escape the directory is refused."""
        with pytest.raises(ValueError, match="run id"):
            Archive(tmp_path, "../x")


class TestFailures:
    async def test_unwritable_directory_fails_on_open(self, tmp_path: Path) -> None:
        """An archive directory that can't be created raises ArchiveError naming it (works as root too)."""
        (tmp_path / "file").write_text("not a directory")
        with pytest.raises(ArchiveError) as caught:
            async with Archive(tmp_path / "file" / "warc", RUN):
                pass
        assert caught.value.path == str(tmp_path / "file" / "warc")
        assert isinstance(caught.value.cause, OSError)

    async def test_directory_lost_mid_run_fails_next_write_and_close(self, tmp_path: Path) -> None:
        """When the next file can't be created, that write, later writes and close all raise ArchiveError."""
        directory = tmp_path / "warc"
        archive = Archive(directory, RUN, max_bytes=1500)
        await archive.write_response(exchange(body=os.urandom(1000)))
        for name in os.listdir(directory):
            (directory / name).unlink()
        directory.rmdir()
        directory.write_text("the directory is gone")
        with pytest.raises(ArchiveError):
            await archive.write_response(exchange(body=os.urandom(1000)))
        with pytest.raises(ArchiveError):
            await archive.write_response(exchange())
        with pytest.raises(ArchiveError):
            await archive.close()

    def test_full_disk_keeps_the_file_whole(self, tmp_path: Path) -> None:
        """A write failing for lack of room (a file size limit) raises ArchiveError; the file stays valid."""
        script = textwrap.dedent(
            f"""
            import asyncio, json, os, resource, signal
            from crawler.engine.archive import Archive, ArchiveError, Exchange
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
            async def main():
                archive = Archive({str(tmp_path)!r}, {RUN!r})
                written = 0
                try:
                    while True:
                        await archive.write_response(Exchange("http://a.example/", 200, (), os.urandom(3000)))
                        written += 1
                except ArchiveError as error:
                    failed = error
                try:
                    await archive.close()
                except ArchiveError as again:
                    closed = again is failed
                print(json.dumps({{"written": written, "errno": failed.cause.errno, "closed": closed}}))
            asyncio.run(main())
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
        )
        report = json.loads(out.stdout)
        assert report["written"] >= 4
        assert report["closed"] is True
        assert report["errno"] == errno.EFBIG  # the same path as ENOSPC: an OSError on write
        responses = [r for r in records(tmp_path) if r.kind == "response"]
        # The failed exchange may have got its response record in whole before its request failed.
        assert len(responses) - report["written"] in (0, 1)
        for path in tmp_path.iterdir():  # warcio check accepts a cut gzip member: gzip does not
            gzip.decompress(path.read_bytes())
        assert warcio_cli("check", *map(str, tmp_path.iterdir())).returncode == 0


class TestReading:
    async def test_read_record_gives_what_evidence_prints(self, tmp_path: Path) -> None:
        """read_record returns url, date, status, headers, decoded body and its hash."""
        async with Archive(tmp_path, RUN) as archive:
            archived = await archive.write_response(exchange(status=404, reason="Not Found"))
        record = read_record(tmp_path, archived.evidence)
        assert record.url == "https://source.example/page?a=1"
        assert record.date == "2025-01-02T03:04:05.678901Z"
        assert (record.http_status, record.record_type) == (404, "response")
        assert record.record_id == archived.evidence.record_id
        assert ("Content-Type", "text/html; charset=utf-8") in record.headers
        assert (record.body, record.body_sha256) == (PAGE, archived.body_sha256)
        assert record.truncated is None

    async def test_wrong_evidence_raises_archive_error(self, tmp_path: Path) -> None:
        """A record id not at the offset, a missing file, a path outside the directory: ArchiveError."""
        async with Archive(tmp_path, RUN) as archive:
            good = (await archive.write_response(exchange())).evidence
        bad = [
            Evidence(good.file, good.offset, "<urn:uuid:00000000-0000-0000-0000-000000000000>"),
            Evidence("missing.warc.gz", 0, good.record_id),
            Evidence(f"../{tmp_path.name}/{good.file}", good.offset, good.record_id),
        ]
        for evidence in bad:
            with pytest.raises(ArchiveError):
                read_record(tmp_path, evidence)


class TestWarcioCommandLine:
    async def test_check_and_index_accept_the_files(self, tmp_path: Path) -> None:
        """`warcio check` verifies every digest and `warcio index` lists every record at its offset."""
        async with Archive(tmp_path, RUN, max_bytes=3000) as archive:
            page = await archive.write_response(exchange(body=os.urandom(1000), truncated=True))
            await archive.write_response(exchange(status=301, headers=(("Location", "/x"),), body=b""))
            await archive.write_conversion(page.evidence, "https://source.example/page?a=1", b"<p>dom</p>")
        paths = [str(tmp_path / name) for name in files(tmp_path, RUN)]
        checked = warcio_cli("check", "-v", *paths)
        assert checked.returncode == 0, checked.stdout
        assert "digest pass" in checked.stdout
        index = warcio_cli("index", "-f", "offset,warc-type,warc-record-id", *paths)
        lines = [json.loads(line) for line in index.stdout.splitlines()]
        (indexed,) = [line for line in lines if line["warc-record-id"] == page.evidence.record_id]
        assert (int(indexed["offset"]), indexed["warc-type"]) == (page.evidence.offset, "response")
        assert [line["warc-type"] for line in lines].count("response") == 2
