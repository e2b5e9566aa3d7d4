"""A throwaway PostgreSQL cluster for the tests: initdb in a temporary directory, a free port on
127.0.0.1, trust authentication, stopped and deleted afterwards.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user that
Debian's package creates. Without PostgreSQL the tests that need it skip, naming what is
missing; under CI (the CI variable set) they fail instead, since CI installs it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True, slots=True)
class Cluster:
    """A running cluster: where it listens, and a URL per database."""

    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, database: str, sql: str) -> str:
        """Run `sql` with psql (as the cluster's user); returns what it printed."""
        done = subprocess.run(
            [_binary("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql, self.url(database)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout


def _binary(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:
        raise FileNotFoundError(name)
    return on_path


def _missing() -> str | None:
    for name in ("initdb", "pg_ctl", "psql"):
        try:
            _binary(name)
        except FileNotFoundError:
            return f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a postgres user to own the cluster"
    return None


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    """Starts a cluster for the duration of the block."""
    problem = _missing()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs PostgreSQL: {problem}")
        pytest.skip(problem)
    owner = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    as_owner = ["runuser", "-u", owner, "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="crawler-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        record = pwd.getpwnam(owner)
        os.chown(base, record.pw_uid, record.pw_gid)
    host, port = "127.0.0.1", _free_port("127.0.0.1")
    try:
        subprocess.run(
            [
                *as_owner,
                _binary("initdb"),
                "-D",
                str(data),
                "-U",
                owner,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        options = f"-c listen_addresses={host} -p {port} -k {base} -c fsync=off -c full_page_writes=off"
        options += " -c synchronous_commit=off -c max_connections=100"
        subprocess.run(
            [
                *as_owner,
                _binary("pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(base / "log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        yield Cluster(host, port, owner)
    finally:
        subprocess.run(
            [*as_owner, _binary("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)
