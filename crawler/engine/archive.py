"""WARC evidence: every response the crawler receives, as WARC/1.1 records, and reading one back.

`Archive` writes, for each exchange, a `response` record and then a `request` record
(`WARC-Concurrent-To` the response), each its own gzip member, with warcio's record
builder; a rendered document is a `conversion` record whose `WARC-Refers-To` is the page's
response. Compression, hashing and file I/O run on one writer thread; the event loop only
hands over the exchange and awaits its `Archived` (where the record lies, the body's
SHA-256). `read_record` reads a record back by its `Evidence`.

Decisions a user can rely on:

- The body is stored as the crawler read it: after content decoding (aiohttp inflates gzip,
  deflate and br). So that every WARC reader returns those bytes, not an attempt to inflate
  them again, `Content-Encoding` and `Transfer-Encoding` get an `x-orig-` prefix
  (`x-orig-Content-Encoding: br`: the convention of Webrecorder's browsertrix-crawler, which
  archives browser-decoded bodies too), and `Content-Length` is the stored length, the
  server's value kept as `x-orig-Content-Length` when it differs. No record says
  `Content-Encoding: br`, so warcio 1.8's failure to inflate brotli with brotli >= 1.2
  (`'brotli.Decompressor' object has no attribute 'unused_data'`) never applies to ours.
- `WARC-Payload-Digest` is `sha256:<hex>` of the stored body: the result's `body_sha256`,
  checked by `warcio check`. `WARC-Block-Digest` is SHA-256 too.
- A body cut at `max_bytes` carries `WARC-Truncated: length`. A redirect whose body was
  not read is archived with an empty body and the same flag (its cap was zero bytes).
- Request headers are archived as sent, except the values of `redact` (`Authorization`,
  `Proxy-Authorization` and `Cookie` by default): evidence files get shared, secrets don't.
- Header bytes that are not ASCII are percent-encoded (warcio writes HTTP headers as ASCII).
- Files are `<run_id>-NNNNN.warc.gz` in the archive directory, each opened with a
  `warcinfo` record. A record goes into the current file while the file stays within
  `max_bytes`; otherwise a new file starts, and a record larger than `max_bytes` is alone
  in its file (without the warcinfo). A process never writes into an existing file: it
  numbers on from the highest file of the run, so a resumed run (or another process of
  the same run) adds files and a file cut short by a crash stays as it is.
- Each record is flushed to the operating system once written; files are fsynced when
  rotated and closed.
- Any failure to write (unwritable directory, disk full, a record that can't be built)
  raises `ArchiveError` from that write, every later write and `close`: evidence is never
  dropped silently. A record cut short by the failure is truncated away, so the file ends
  with its last whole record.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import io
import os
import re
import string
import uuid
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import NoReturn, TypeVar
from urllib.parse import quote, urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawler.config import __version__
from crawler.errors import ArchiveError
from crawler.models import Evidence

DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_REDACT = ("authorization", "proxy-authorization", "cookie")
GZIP_LEVEL = 1
"""zlib's fastest. On the bench site's pages (193 KiB of HTML) level 1 compresses 5.1x in 1.2 ms a
page, level 6 (zlib's default) 6.0x in 2.7 ms and 9 (warcio's own gzip wrapper) hardly smaller
for 1.7x level 6's CPU: files 19% larger buy back more than half of what archiving costs a run."""
SUFFIX = ".warc.gz"
_RENAMED = frozenset({"content-encoding", "transfer-encoding"})
_SAFE = "".join(sorted(set(string.printable) - set(string.whitespace) - {"%"})) + " \t"
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Archived:
    """A record written: where it lies, and the SHA-256 (hex) of the body it holds."""

    evidence: Evidence
    body_sha256: str


@dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP request and the response received, as the crawler saw them."""

    url: str
    status: int
    headers: tuple[tuple[str, str], ...]
    """Response headers as received: every instance, in order, names as written."""
    body: bytes
    """The body after content decoding, as far as it was read."""
    method: str = "GET"
    request_headers: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    """The reason phrase received; empty: the standard one for the status."""
    truncated: bool = False
    """The body was cut at the crawler's byte cap (or, for a redirect, not read)."""
    date: datetime = field(default_factory=lambda: datetime.now(UTC))
    """When the response was received (timezone-aware)."""
    ip_address: str | None = None
    http_version: str = "HTTP/1.1"

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {self.url!r}")
        if not 100 <= self.status <= 999:
            raise ValueError(f"not an HTTP status: {self.status}")
        if not self.method.isalpha():
            raise ValueError(f"not an HTTP method: {self.method!r}")
        if self.http_version not in ("HTTP/1.0", "HTTP/1.1"):
            raise ValueError(f"not an HTTP/1 version: {self.http_version!r}")
        if self.date.tzinfo is None:
            raise ValueError("date must be timezone-aware")


@dataclass(frozen=True, slots=True)
class ArchivedRecord:
    """A record read back: what `crawler evidence` prints, and the decoded body."""

    url: str
    date: str
    record_type: str
    record_id: str
    http_status: int | None
    headers: tuple[tuple[str, str], ...]
    """HTTP headers as archived (none for a conversion record)."""
    body: bytes
    body_sha256: str
    truncated: str | None
    """The `WARC-Truncated` reason, or None for a whole body."""


class Archive:
    """A run's WARC writer; use as `async with Archive(directory, run_id) as archive:`."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        run_id: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pending: int = 64,
        redact: Collection[str] = DEFAULT_REDACT,
        info: Mapping[str, str] | None = None,
    ) -> None:
        if not _RUN_ID.fullmatch(run_id):
            raise ValueError(f"a run id must be letters, digits, '.', '_' or '-': {run_id!r}")
        if max_bytes < 1 or max_pending < 1:
            raise ValueError("max_bytes and max_pending must be positive")
        self._files = _Files(Path(directory), run_id, max_bytes, dict(info or {}))
        self._redact = frozenset(name.lower() for name in redact)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warc-writer")
        self._slots = asyncio.Semaphore(max_pending)
        self._closed = False

    async def __aenter__(self) -> Archive:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the directory and find the run's next file number: fails early, before any request."""
        await self._call(self._files.open)

    async def write_response(self, exchange: Exchange) -> Archived:
        """Archive a response and its request; return where the response record lies."""
        return await self._call(self._files.write_exchange, exchange, self._redact)

    async def write_conversion(
        self,
        refers_to: Evidence,
        url: str,
        document: bytes,
        *,
        content_type: str = "text/html; charset=utf-8",
        date: datetime | None = None,
    ) -> Archived:
        """Archive a rendered document of the page whose response record is `refers_to`."""
        when = date or datetime.now(UTC)
        return await self._call(self._files.write_conversion, refers_to, url, document, content_type, when)

    async def close(self) -> None:
        """Write what is pending, fsync and close the file; raise `ArchiveError` if anything failed."""
        if self._closed:
            self._files.raise_error()
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._files.close)
        finally:
            self._executor.shutdown(wait=False)

    async def _call(self, function: Callable[..., _T], *args: object) -> _T:
        if self._closed:
            raise RuntimeError("archive used after close()")
        self._files.raise_error()
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)


class _Files:
    """The writer thread's side: the current file, its size, numbering and rotation."""

    def __init__(self, directory: Path, run_id: str, max_bytes: int, info: dict[str, str]) -> None:
        self.directory = directory
        self.run_id = run_id
        self.max_bytes = max_bytes
        self.info = info
        self.error: ArchiveError | None = None
        self._number: int | None = None
        self._file: io.FileIO | None = None
        self._name = ""
        self._size = 0
        self._builder = _Builder()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def open(self) -> None:
        if self._number is not None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._number = _next_number(self.directory, self.run_id)
        except OSError as exc:
            self._fail(str(self.directory), exc)

    def write_exchange(self, exchange: Exchange, redact: frozenset[str]) -> Archived:
        response_id, request_id = _record_id(), _record_id()
        digest = hashlib.sha256(exchange.body).hexdigest()
        response = self._build(lambda: self._builder.response(exchange, response_id, digest))
        request = self._build(lambda: self._builder.request(exchange, request_id, response_id, redact))
        evidence = self._append(response, response_id)
        self._append(request, request_id)
        return Archived(evidence, digest)

    def write_conversion(
        self, refers_to: Evidence, url: str, document: bytes, content_type: str, date: datetime
    ) -> Archived:
        record_id, digest = _record_id(), hashlib.sha256(document).hexdigest()
        fields = _fields("conversion", record_id, date, url) | {"WARC-Refers-To": refers_to.record_id}
        record = self._build(lambda: self._builder.conversion(url, document, content_type, fields, digest))
        return Archived(self._append(record, record_id), digest)

    def close(self) -> None:
        self.raise_error()
        if self._file is not None:
            self._close_file()

    def _build(self, build: Callable[[], bytes]) -> bytes:
        self.raise_error()
        try:
            return build()
        except Exception as exc:  # a record we can't build is evidence lost: stop the run
            self._fail(str(self.directory / self._name if self._name else self.directory), exc)

    def _append(self, record: bytes, record_id: str) -> Evidence:
        self.open()
        if self._file is None or self._size + len(record) > self.max_bytes:
            self._rotate(len(record))
        assert self._file is not None
        offset = self._size
        try:
            _write_all(self._file, record)
        except OSError as exc:
            self._truncate(offset)
            self._fail(str(self.directory / self._name), exc)
        self._size += len(record)
        return Evidence(self._name, offset, record_id)

    def _rotate(self, coming: int) -> None:
        if self._file is not None:
            self._close_file()
        assert self._number is not None
        while True:
            self._name = f"{self.run_id}-{self._number:05d}{SUFFIX}"
            self._number += 1
            path = self.directory / self._name
            try:
                self._file = path.open("xb", buffering=0)  # each record reaches the OS whole or fails
                break
            except FileExistsError:  # another process of the run took this number
                continue
            except OSError as exc:
                self._fail(str(path), exc)
        self._size = 0
        warcinfo = self._build(lambda: self._builder.warcinfo(self._name, self.run_id, self.info))
        if len(warcinfo) + coming <= self.max_bytes:
            self._append(warcinfo, "")

    def _close_file(self) -> None:
        assert self._file is not None
        file, self._file = self._file, None
        try:
            try:
                os.fsync(file.fileno())
            finally:
                file.close()
        except OSError as exc:
            self._fail(str(self.directory / self._name), exc)

    def _truncate(self, size: int) -> None:
        """Drop a record cut short, so the file still ends with a whole record (best effort)."""
        assert self._file is not None
        with contextlib.suppress(OSError):
            self._file.truncate(size)
            self._file.close()
        self._file = None

    def _fail(self, path: str, cause: BaseException) -> NoReturn:
        self.error = ArchiveError(path, cause)
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        raise self.error from cause


class _Builder:
    """Records as gzip members, built with warcio's record builder (one, reused by the thread)."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._writer = WARCWriter(self._buffer, gzip=False, warc_version="1.1")

    def response(self, exchange: Exchange, record_id: str, digest: str) -> bytes:
        reason = _ascii(exchange.reason) or _phrase(exchange.status)
        headers = _response_headers(exchange.headers, len(exchange.body))
        http = StatusAndHeaders(
            f"{exchange.status} {reason}".rstrip(), headers, protocol=exchange.http_version
        )
        fields = _fields("response", record_id, exchange.date, exchange.url)
        if exchange.ip_address:
            fields["WARC-IP-Address"] = exchange.ip_address
        if exchange.truncated:
            fields["WARC-Truncated"] = "length"
        return self._http_record(exchange.url, http, exchange.body, digest, fields)

    def request(self, exchange: Exchange, record_id: str, response_id: str, redact: frozenset[str]) -> bytes:
        headers = [
            (_ascii(name), "[redacted]" if name.lower() in redact else _ascii(value))
            for name, value in exchange.request_headers
        ]
        line = f"{exchange.method} {_request_target(exchange.url)} {exchange.http_version}"
        http = StatusAndHeaders(line, headers, is_http_request=True)
        fields = _fields("request", record_id, exchange.date, exchange.url)
        fields["WARC-Concurrent-To"] = response_id
        return self._http_record(exchange.url, http, b"", hashlib.sha256().hexdigest(), fields)

    def conversion(
        self, url: str, document: bytes, content_type: str, fields: dict[str, str], digest: str
    ) -> bytes:
        """The block is the document alone: block and payload digests are the same."""
        fields |= {"WARC-Payload-Digest": f"sha256:{digest}", "WARC-Block-Digest": f"sha256:{digest}"}
        return self._serialise(
            self._writer.create_warc_record(
                url,
                "conversion",
                payload=io.BytesIO(document),
                length=len(document),
                warc_content_type=content_type,
                warc_headers_dict=fields,
            )
        )

    def warcinfo(self, filename: str, run_id: str, info: Mapping[str, str]) -> bytes:
        fields = {
            "software": f"backlink-crawler/{__version__}",
            "format": "WARC File Format 1.1",
            "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
            "isPartOf": run_id,
            **info,
        }
        return self._serialise(self._writer.create_warcinfo_record(filename, fields))

    def _http_record(
        self, url: str, http: StatusAndHeaders, body: bytes, digest: str, fields: dict[str, str]
    ) -> bytes:
        http.compute_headers_buffer()  # the bytes warcio writes: the block digest covers them
        block = hashlib.sha256(http.headers_buff)
        block.update(body)
        fields["WARC-Payload-Digest"] = f"sha256:{digest}"
        fields["WARC-Block-Digest"] = f"sha256:{block.hexdigest()}"
        kind = fields["WARC-Type"]
        return self._serialise(
            self._writer.create_warc_record(
                url,
                kind,
                payload=io.BytesIO(body),
                length=len(body),
                http_headers=http,
                warc_headers_dict=fields,
            )
        )

    def _serialise(self, record: ArcWarcRecord) -> bytes:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.write_record(record)
        return zlib.compress(self._buffer.getbuffer(), GZIP_LEVEL, wbits=31)  # one gzip member


def _fields(kind: str, record_id: str, date: datetime, url: str) -> dict[str, str]:
    """The leading WARC fields, in the order readers show them."""
    return {
        "WARC-Type": kind,
        "WARC-Record-ID": record_id,
        "WARC-Date": _warc_date(date),
        "WARC-Target-URI": url,
    }


def read_record(directory: str | os.PathLike[str], evidence: Evidence) -> ArchivedRecord:
    """The record `evidence` points at, its body decoded as any WARC reader decodes it."""
    root = Path(directory)
    path = root / evidence.file
    try:
        if Path(evidence.file).is_absolute() or ".." in Path(evidence.file).parts:
            raise ValueError("the file must be a name inside the archive directory")
        with path.open("rb") as stream:
            stream.seek(evidence.offset)
            record = next(iter(ArchiveIterator(stream)), None)
            if record is None or record.rec_headers.get_header("WARC-Record-ID") != evidence.record_id:
                raise ValueError(f"no record {evidence.record_id} at offset {evidence.offset}")
            return _read(record)
    except Exception as exc:  # OSError, warcio's ArchiveLoadFailed, a bad gzip member...
        raise ArchiveError(str(path), exc) from exc


def _read(record: ArcWarcRecord) -> ArchivedRecord:
    body = record.content_stream().read()
    warc = record.rec_headers
    http = record.http_headers
    return ArchivedRecord(
        url=warc.get_header("WARC-Target-URI"),
        date=warc.get_header("WARC-Date"),
        record_type=record.rec_type,
        record_id=warc.get_header("WARC-Record-ID"),
        http_status=int(http.get_statuscode()) if http and record.rec_type == "response" else None,
        headers=tuple(http.headers) if http else (),
        body=body,
        body_sha256=hashlib.sha256(body).hexdigest(),
        truncated=warc.get_header("WARC-Truncated"),
    )


def files(directory: str | os.PathLike[str], run_id: str) -> list[str]:
    """The names of the run's WARC files in `directory`, in the order they were written."""
    pattern = re.compile(re.escape(run_id) + r"-(\d{5,})" + re.escape(SUFFIX))
    found = []
    for entry in os.scandir(directory):
        matched = pattern.fullmatch(entry.name)
        if matched:
            found.append((int(matched.group(1)), entry.name))
    return [name for _, name in sorted(found)]


def _next_number(directory: Path, run_id: str) -> int:
    names = files(directory, run_id)
    return int(names[-1][len(run_id) + 1 : -len(SUFFIX)]) + 1 if names else 0


def _write_all(file: io.FileIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = file.write(view)
        if not written:
            raise OSError(errno.EIO, "a write made no progress")
        view = view[written:]


def _response_headers(headers: Iterable[tuple[str, str]], length: int) -> list[tuple[str, str]]:
    """Headers as received, except what would make a reader decode the decoded body again."""
    out = []
    stored = str(length)
    for name, value in headers:
        lower = name.lower()
        if lower in _RENAMED or (lower == "content-length" and value.strip() != stored):
            name = "x-orig-" + name
        out.append((_ascii(name), _ascii(value)))
    if not any(name.lower() == "content-length" for name, _ in out):
        out.append(("Content-Length", stored))
    return out


def _request_target(url: str) -> str:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _ascii(target).replace(" ", "%20")


def _ascii(text: str) -> str:
    """`text` as printable ASCII: other bytes (as received, surrogate-escaped) percent-encoded."""
    if text.isascii() and text.isprintable():
        return text
    return quote(text.encode("utf-8", "surrogateescape"), safe=_SAFE).replace("\t", " ")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _warc_date(date: datetime) -> str:
    return date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record_id() -> str:
    return f"<urn:uuid:{uuid.uuid4()}>"
