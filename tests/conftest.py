"""Fixtures shared by every test module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from servers import Servers, running

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


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
