"""A database that can't be opened, read or written: one line naming it and the cause, exit 2,
never a traceback (contract, section 7), through the real command line. And signals during the
store's work: a run stopped in the middle of an import is left interrupted with its counts, and a
second SIGTERM never keeps the process from exiting.

Tests run as root in the container, where permissions don't apply: a command that must meet an
unwritable directory or file runs without root's capabilities (then the owner's permission bits
hold for it, as for a container's user on a host folder it may not write). A full disk is a file
size limit (RLIMIT_FSIZE): writes past it fail as on a full disk.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from contract import TARGET, Done, cli, environ, linked, rows
from servers import Server, Servers, respond

# Runs the command line argv[3:] with files limited to argv[1] bytes (writing past it fails with
# EFBIG) unless that is "-", and without any capability when argv[2] is "drop" (Linux).
_LAUNCHER = """
import ctypes, resource, runpy, signal, sys
_, limit, drop, *args = sys.argv
if limit != "-":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
if drop == "drop":
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
    class Sets(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.capset(ctypes.byref(Header(0x20080522, 0)), (Sets * 2)()) != 0:  # capabilities, version 3
        raise OSError(ctypes.get_errno(), "capset")
sys.argv = ["crawler", *args]
runpy.run_module("crawler", run_name="__main__", alter_sys=True)
"""


def error_line(done: Done, path: str) -> str:
    """The command's one error line, which names `path`; exit 2 and no traceback."""
    assert done.code == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("crawler: error:")]
    assert line.startswith(f"crawler: error: {path}: "), line
    return line


async def run(*args: str, cwd: Path, unprivileged: bool = False, file_size: int | None = None) -> Done:
    """The command line ARGS without root's privileges, or with files limited to `file_size` bytes."""
    limit = "-" if file_size is None else str(file_size)
    drop = "drop" if unprivileged and os.geteuid() == 0 else "-"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _LAUNCHER, limit, drop, *args, cwd=cwd, env=environ(loopback=False),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


def blocked_claims(path: Path, n: int) -> None:
    """`n` claims on a loopback page: blocked at once (forbidden_address), nothing is fetched."""
    lines = ["id,source_url,target_url"] + [f"c{i},http://127.0.0.1:9/p{i},{TARGET}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")


def make_database(directory: Path, claims: int = 3) -> Path:
    """A finished crawler database of `claims` blocked claims, made by the command line."""
    blocked_claims(directory / "claims.csv", claims)
    done = subprocess.run(
        [sys.executable, "-m", "crawler", "verify", "claims.csv", "--db", "c.sqlite", "-q"],
        cwd=directory, env=environ(loopback=False), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return directory / "c.sqlite"


@pytest.fixture(scope="module")
def unprivileged() -> bool:
    """Commands can run where permission bits hold (the test is skipped where they can't)."""
    if sys.platform != "linux":
        pytest.skip("drops Linux capabilities")
    probe = subprocess.run([sys.executable, "-c", _LAUNCHER, "-", "drop", "--version"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"root's capabilities can't be dropped here: {probe.stderr.decode()[-200:]}")
    return True


async def eventually(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Poll `condition`, about files another process writes: there is no event to wait on."""
    for _ in range(int(seconds / 0.01)):
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true after {seconds} s")


class TestCantOpen:
    async def test_a_directory_where_nothing_can_be_created(self, tmp_path: Path) -> None:
        """`--db /proc/x.sqlite`: exit 2, one line naming the path and why it can't be created."""
        blocked_claims(tmp_path / "claims.csv", 1)
        done = await run("verify", "claims.csv", "--db", "/proc/x.sqlite", cwd=tmp_path)
        line = error_line(done, "/proc/x.sqlite")
        assert "cannot open the database: unable to open database file" in line
        assert "can't be created in /proc: No such file or directory" in line

    async def test_a_parent_that_is_a_file(self, tmp_path: Path) -> None:
        """A --db whose directory is a file: exit 2 naming it, for every command."""
        blocked_claims(tmp_path / "claims.csv", 1)
        for command in (("verify", "claims.csv"), ("export",), ("report",)):
            done = await run(*command, "--db", "claims.csv/x.sqlite", cwd=tmp_path)
            error_line(done, "claims.csv/x.sqlite")

    async def test_a_directory_this_user_cannot_write(self, tmp_path: Path, unprivileged: bool) -> None:
        """A new database in a folder the user can't write (a host folder in a container): the
        line says why it can't be created there."""
        blocked_claims(tmp_path / "claims.csv", 1)
        (tmp_path / "ro").mkdir(mode=0o555)
        done = await run(
            "verify", "claims.csv", "--db", "ro/c.sqlite", cwd=tmp_path, unprivileged=unprivileged
        )
        line = error_line(done, "ro/c.sqlite")
        why = f"unable to open database file; it can't be created in {tmp_path / 'ro'}: Permission denied"
        assert why in line
        assert not (tmp_path / "ro" / "c.sqlite").exists()

    async def test_an_existing_database_in_a_read_only_directory(
        self, tmp_path: Path, unprivileged: bool
    ) -> None:
        """A database whose directory can't be written (a read-only mount): every command says the
        write-ahead log needs that directory, where SQLite's own words mislead."""
        folder = tmp_path / "folder"
        folder.mkdir()
        make_database(folder)
        folder.chmod(0o555)
        try:
            for command in ("verify", "export", "report"):
                done = await run(command, "--db", "c.sqlite", cwd=folder, unprivileged=unprivileged)
                line = error_line(done, "c.sqlite")
                assert "cannot open the database" in line
                assert (
                    f"the directory {folder} can't be written (a read-only mount, or not writable by " in line
                )
                assert (
                    "write-ahead log needs to create c.sqlite-wal and c.sqlite-shm beside the database"
                    in line
                )
        finally:
            folder.chmod(0o755)

    async def test_a_database_file_this_user_cannot_write(self, tmp_path: Path, unprivileged: bool) -> None:
        """A read-only database file: verify exits 2 saying so; export still reads it."""
        make_database(tmp_path).chmod(0o444)
        done = await run("verify", "--db", "c.sqlite", cwd=tmp_path, unprivileged=unprivileged)
        line = error_line(done, "c.sqlite")
        assert "cannot begin a run: attempt to write a readonly database; the file can't be written" in line
        exported = await run(
            "export", "--db", "c.sqlite", "--format", "jsonl", cwd=tmp_path, unprivileged=True
        )
        assert exported.code == 0, exported.stderr
        assert len(exported.stdout.splitlines()) == 3


class TestNotOurs:
    async def test_a_damaged_file(self, tmp_path: Path) -> None:
        """Pages overwritten with garbage ('database disk image is malformed'): every command says so."""
        db = make_database(tmp_path, claims=300)
        with db.open("r+b") as file:
            file.seek(4096)  # all but the first page (the header and the schema)
            file.write(bytes(range(256)) * (db.stat().st_size // 256))
        for command in ("verify", "export", "report"):
            line = error_line(await run(command, "--db", "c.sqlite", cwd=tmp_path), "c.sqlite")
            assert "database disk image is malformed; the file is damaged or not a database" in line

    async def test_garbage(self, tmp_path: Path) -> None:
        """A file that is not SQLite at all: every command names it."""
        (tmp_path / "c.sqlite").write_bytes(os.urandom(10000))
        for command in ("verify", "export", "report"):
            line = error_line(await run(command, "--db", "c.sqlite", cwd=tmp_path), "c.sqlite")
            assert "file is not a database" in line

    async def test_an_empty_file_left_by_a_kill(self, tmp_path: Path) -> None:
        """SQLite makes the file before the store builds its schema (in one transaction): a kill
        between the two leaves an empty file, which the next command builds on, losing nothing."""
        (tmp_path / "c.sqlite").write_bytes(b"")
        blocked_claims(tmp_path / "claims.csv", 2)
        done = await run("verify", "claims.csv", "--db", "c.sqlite", "-q", cwd=tmp_path)
        assert done.code == 0, done.stderr
        assert rows(tmp_path / "c.sqlite", "SELECT claim_id, reason FROM results ORDER BY claim_id") == [
            ("c0", "forbidden_address"), ("c1", "forbidden_address")
        ]  # fmt: skip

    async def test_another_programs_database(self, tmp_path: Path) -> None:
        """A SQLite file of another program, user_version 1 ('no such table: runs' before): refused
        at open by every command, and left untouched."""
        with sqlite3.connect(tmp_path / "c.sqlite") as db:
            db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
            db.execute("PRAGMA user_version = 1")
        blocked_claims(tmp_path / "claims.csv", 1)
        for command in (("verify", "claims.csv"), ("export",), ("report",)):
            line = error_line(await run(*command, "--db", "c.sqlite", cwd=tmp_path), "c.sqlite")
            assert line.endswith("not a database of this crawler (schema version 1, but no table claims, "
                                 "results, run_claims, runs)")  # fmt: skip
        assert rows(tmp_path / "c.sqlite", "SELECT name FROM sqlite_master") == [("notes",)]

    async def test_a_newer_crawlers_database(self, tmp_path: Path) -> None:
        """A database of a newer version: refused, not touched."""
        db = make_database(tmp_path)
        with sqlite3.connect(db) as connection:
            connection.execute("PRAGMA user_version = 99")
        line = error_line(await run("verify", "--db", "c.sqlite", cwd=tmp_path), "c.sqlite")
        assert line.endswith("schema version 99 is newer than this crawler knows")

    async def test_tags_that_are_not_json(self, tmp_path: Path) -> None:
        """A claims.tags cell set to 'not json' by hand: the re-check goes on, that claim invalid."""
        db = make_database(tmp_path)
        with sqlite3.connect(db) as connection:
            connection.execute("UPDATE claims SET tags = 'not json' WHERE id = 'c1'")
        done = await run("verify", "--db", "c.sqlite", "--output", "-", "-q", cwd=tmp_path)
        assert done.code == 0, done.stderr
        by_id = {record["claim_id"]: record for record in done.jsonl()}
        assert (by_id["c1"]["status"], by_id["c1"]["reason"]) == (
            "invalid",
            "stored claim: tags: not a JSON object",
        )
        assert by_id["c0"]["status"] == "blocked"

    async def test_a_stored_result_that_is_not_json(self, tmp_path: Path) -> None:
        """A results.data cell edited by hand: export names the database and the row."""
        db = make_database(tmp_path)
        with sqlite3.connect(db) as connection:
            connection.execute("UPDATE results SET data = 'not json' WHERE rowid = 2")
        line = error_line(await run("export", "--db", "c.sqlite", cwd=tmp_path), "c.sqlite")
        assert "cannot read results: results row 2 can't be read back: Expecting value" in line


class TestDiskFull:
    async def test_during_the_import(self, tmp_path: Path) -> None:
        """Writes failing during an import: one line naming the database and the cause; the next
        verify, with room again, resumes the run and finishes it."""
        blocked_claims(tmp_path / "claims.csv", 3000)
        done = await run("verify", "claims.csv", "--db", "c.sqlite", "-q", cwd=tmp_path, file_size=300_000)
        line = error_line(done, "c.sqlite")
        assert (
            "cannot import claims: disk I/O error; writing failed: this process may write files of at" in line
        )
        assert rows(tmp_path / "c.sqlite", "SELECT status FROM runs") == [("interrupted",)]
        again = await run("verify", "claims.csv", "--db", "c.sqlite", "-q", cwd=tmp_path)
        assert again.code == 0, again.stderr
        assert rows(tmp_path / "c.sqlite", "SELECT status, claims, decided FROM runs") == [
            ("finished", 3000, 3000)
        ]

    async def test_during_the_run(self, tmp_path: Path) -> None:
        """Writes failing while results are saved: one line, the run left resumable, then resumed."""
        make_database(tmp_path, claims=2000)
        done = await run("verify", "--fresh", "--db", "c.sqlite", "-q", cwd=tmp_path, file_size=600_000)
        line = error_line(done, "c.sqlite")
        assert "cannot save results: disk I/O error; writing failed: this process may write files of" in line
        assert [status for (status,) in rows(tmp_path / "c.sqlite", "SELECT status FROM runs")] == [
            "finished",
            "interrupted",
        ]
        again = await run("verify", "--db", "c.sqlite", "-q", cwd=tmp_path)
        assert again.code == 0, again.stderr
        assert rows(tmp_path / "c.sqlite", "SELECT status, decided FROM runs") == [
            ("finished", 2000),
            ("finished", 2000),
        ]


class TestSignals:
    @pytest.mark.parametrize("after", [0.05, 0.4, 1.0, 2.0])
    async def test_sigterm_during_a_large_import(self, tmp_path: Path, after: float) -> None:
        """One SIGTERM while a large file is imported: exit 130, the run interrupted with its counts
        recorded (not left running with none), and whole import batches only."""
        blocked_claims(tmp_path / "claims.csv", 60_000)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawler", "verify", "claims.csv", "--db", "c.sqlite", "-q",
            cwd=tmp_path, env=environ(loopback=False), stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await eventually(lambda: _has_run(tmp_path / "c.sqlite"))
        await asyncio.sleep(after)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 130, stderr.decode()
        assert "Traceback" not in stderr.decode()
        ((status, claims, decided),) = rows(tmp_path / "c.sqlite", "SELECT status, claims, decided FROM runs")
        assert status == "interrupted"
        assert claims == rows(tmp_path / "c.sqlite", "SELECT count(*) FROM claims")[0][0]
        assert claims % 10_000 == 0
        assert decided == 0

    @pytest.mark.parametrize("gap", [0.0, 0.005, 0.02, 0.05, 0.1, 0.2])
    async def test_a_second_sigterm_never_hangs(self, servers: Servers, tmp_path: Path, gap: float) -> None:
        """Two SIGTERMs `gap` seconds apart while a run works: the process exits at once with 130,
        and the next verify still resumes the run to one result a claim."""
        site = await slow_site(servers)
        lines = ["id,source_url,target_url"] + [f"c{n},{site.url(f'/{n}')},{TARGET}" for n in range(8)]
        (tmp_path / "claims.csv").write_text("\n".join(lines) + "\n")
        args = ("verify", "claims.csv", "--db", "c.sqlite", "--output", "out.jsonl")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "crawler",
            *args,
            cwd=tmp_path,
            env=environ(),
            stderr=asyncio.subprocess.PIPE,
        )
        output = tmp_path / "out.jsonl"
        await eventually(lambda: output.exists() and output.read_text().count("\n") >= 1)
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(gap)
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)  # a hang fails here
        assert process.returncode == 130, stderr.decode()
        done = await cli("verify", "--db", "c.sqlite", cwd=tmp_path)
        assert done.code == 0, done.stderr
        assert rows(tmp_path / "c.sqlite", "SELECT count(*), count(DISTINCT claim_id) FROM results") == [
            (8, 8)
        ]
        assert rows(tmp_path / "c.sqlite", "SELECT status FROM runs") == [("finished",)]


async def slow_site(servers: Servers) -> Server:
    """Eight pages on one host, each answered after 0.15 s."""
    return await servers.app({f"/{n}": respond(linked(), delay=0.15) for n in range(8)}, host="127.0.0.8")


def _has_run(db: Path) -> bool:
    try:
        return bool(rows(db, "SELECT 1 FROM runs"))
    except sqlite3.Error:  # not created yet, or its schema not yet written
        return False
