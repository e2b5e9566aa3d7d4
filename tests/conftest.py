"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import hypothesis
import pytest
from postgres_cluster import Cluster, running_cluster
from servers import Servers, running
from stores import Backend

# Property tests find the same examples on every run (CI and `make test` stay deterministic, and no
# example database replays a failure found elsewhere); `make fuzz` searches at random instead.
hypothesis.settings.register_profile("repeatable", derandomize=True, database=None, deadline=None)
hypothesis.settings.register_profile("random", derandomize=False, deadline=None)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every hypothesis test is marked `property`, so `make fuzz` selects them wherever they live."""
    for item in items:
        if isinstance(item, pytest.Function) and getattr(item.obj, "is_hypothesis_test", False):
            item.add_marker(pytest.mark.property)


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared real-world corpus beside the project; tests that need it skip without it."""
    if not (SHARED / "corpus").is_dir():
        pytest.skip("../shared/corpus is absent (it ships beside the project, not inside it)")
    return SHARED


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    """Loopback HTTP servers for one test, each on an address of its own; closed after it."""
    async with running() as factory:
        yield factory


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A throwaway PostgreSQL cluster for the whole session (tests create their own databases)."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A database for one test, on each store in turn: a SQLite file, then a database of the
    session's PostgreSQL cluster (skipped, as the cluster is, without PostgreSQL)."""
    if request.param == "postgres":
        return Backend.postgres(request.getfixturevalue("postgres"))
    return Backend.sqlite(tmp_path)
