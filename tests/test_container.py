"""The container recipe, proven without a Docker engine.

The Dockerfile's own commands are read from it and run here: its `pip wheel` build, its
offline `pip install` into a fresh virtual environment, its ENV, WORKDIR and ENTRYPOINT.
Then the entrypoint runs `verify` on the demo site exactly as `docker run` would, and we
check the exit code, the JSON logs on stderr and the graceful stop on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import venv
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crawler.app.demo import DemoSite, serve

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(name: str) -> list[str]:
    """Every argument text of the Dockerfile instruction `name`, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(name + " ")]


def pip_command(marker: str) -> list[str]:
    """The `python -m pip ...` part of the RUN instruction that contains `marker`."""
    for run in instructions("RUN"):
        for part in run.split("&&"):
            if marker in part:
                return shlex.split(part)
    raise AssertionError(f"no RUN with {marker!r} in the Dockerfile")


def image_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for spec in instructions("ENV"):
        for pair in shlex.split(spec):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the project installed the way the image installs it."""
    work = tmp_path_factory.mktemp("image")
    wheels, prefix = work / "wheels", work / "venv"
    build = [arg.replace("/wheels", str(wheels)) for arg in pip_command("pip wheel")]
    assert build[:3] == ["python", "-m", "pip"]
    subprocess.run([sys.executable, *build[1:]], cwd=ROOT, check=True, capture_output=True, timeout=600)
    venv.EnvBuilder(with_pip=True).create(prefix)
    install = [arg.replace("/wheels", str(wheels)) for arg in pip_command("pip install")]
    wheel = sorted(wheels.glob("backlink_crawler-*.whl"))
    assert len(wheel) == 1
    install = [str(wheel[0]) if arg.endswith("backlink_crawler-*.whl") else arg for arg in install]
    assert "--no-index" in install  # the final stage installs offline, from the built wheels only
    subprocess.run([str(prefix / "bin/python"), *install[1:]], check=True, capture_output=True, timeout=600)
    return prefix


@pytest.fixture
async def site() -> AsyncIterator[DemoSite]:
    async with serve() as running:
        yield running


def entrypoint(prefix: Path) -> list[str]:
    (spec,) = instructions("ENTRYPOINT")
    command = json.loads(spec)
    return [str(prefix / "bin" / command[0]), *command[1:]]


def container_env(**extra: str) -> dict[str, str]:
    """The image's ENV plus what a user passes with `-e`; nothing of this test's environment leaks in."""
    return {"PATH": "/usr/bin:/bin", "HOME": "/tmp", **image_environment(), **extra}


def test_image_declares_what_a_job_needs() -> None:
    """Non-root user, /data as working directory and volume, exec-form entrypoint, JSON logs."""
    assert instructions("USER")[-1] not in ("root", "0")
    assert instructions("WORKDIR")[-1] == "/data"
    assert json.loads(instructions("VOLUME")[-1]) == ["/data"]
    assert json.loads(instructions("ENTRYPOINT")[0]) == ["crawler"]
    assert image_environment()["CRAWLER_LOG_FORMAT"] == "json"


@pytest.mark.slow  # builds the wheel and installs it into a fresh virtual environment
async def test_entrypoint_verifies_the_demo_claims(image: Path, site: DemoSite, tmp_path: Path) -> None:
    """`docker run -v $PWD:/data image verify claims.csv` exits 0, writes the db to /data, logs JSON."""
    (tmp_path / "claims.csv").write_text(site.claims_text(), encoding="utf-8")
    env = container_env(CRAWLER_ALLOW_PRIVATE="true", CRAWLER_DELAY="0")
    proc = await asyncio.create_subprocess_exec(
        *entrypoint(image), "verify", "claims.csv", "--output", "-",
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, stderr.decode()
    results = [json.loads(line) for line in stdout.decode().splitlines()]
    assert len(results) == len(site.claims_text().splitlines()) - 1
    logs = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    assert logs
    assert all({"timestamp", "level", "event"} <= log.keys() for log in logs)
    assert any(log["event"] == "run finished" for log in logs)
    assert (tmp_path / "crawler.sqlite").is_file()


@pytest.mark.slow  # the same image as above, and a run stopped in the middle
async def test_sigterm_to_pid_one_stops_cleanly(image: Path, site: DemoSite, tmp_path: Path) -> None:
    """SIGTERM to the entrypoint process (PID 1 in the container) gives exit 130 and a resumable run."""
    (tmp_path / "claims.csv").write_text(site.claims_text(), encoding="utf-8")
    # A long per-host delay keeps the run busy long enough to be stopped in the middle.
    env = container_env(CRAWLER_ALLOW_PRIVATE="true", CRAWLER_DELAY="5")
    proc = await asyncio.create_subprocess_exec(
        *entrypoint(image), "verify", "claims.csv",
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    while b"run started" not in await asyncio.wait_for(proc.stderr.readline(), timeout=60):
        pass
    await asyncio.sleep(1.0)
    os.kill(proc.pid, signal.SIGTERM)
    await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode == 130
    resumed = await asyncio.create_subprocess_exec(
        *entrypoint(image), "verify", "--delay", "0",
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(resumed.communicate(), timeout=120)
    assert resumed.returncode == 0, stderr.decode()
    started = [json.loads(line) for line in stderr.decode().splitlines() if '"run started"' in line]
    assert started[0]["resumed"] is True
