"""The package's layout is a rule, not a habit: pure stages stay pure, dependencies point inward,
and the public surface is one table."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import crawler

PACKAGE = Path(crawler.__file__).parent
# What a pure module may never load, directly or through what it imports.
IMPURE = ("aiohttp", "aiosqlite", "asyncpg", "asyncio", "playwright", "warcio", "openpyxl")
PURE = sorted(
    ["crawler.models", "crawler.errors"]
    + [f"crawler.core.{path.stem}" for path in (PACKAGE / "core").glob("*.py") if path.stem != "__init__"]
)
# Each folder may import from the folders listed, and from itself; top-level modules are shared.
MAY_IMPORT = {
    "core": {"core"},
    "engine": {"core", "engine"},
    "store": {"core", "store"},
    "app": {"core", "engine", "store", "app"},
}


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_load_no_io_library(module: str) -> None:
    """Importing a pure module in a fresh interpreter loads no network, database, browser or loop library."""
    probe = f"import sys, {module}; print(' '.join(sorted(set({IMPURE!r}) & set(sys.modules))))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == []


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("folder", sorted(MAY_IMPORT))
def test_dependencies_point_inward(folder: str) -> None:
    """A module of core/ imports no engine, store or app module; engine and store import no app module."""
    folders = set(MAY_IMPORT)
    wrong = []
    for path in sorted((PACKAGE / folder).glob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "crawler" and len(parts) > 1 and parts[1] in folders - MAY_IMPORT[folder]:
                wrong.append(f"{path.name} imports {name}")
    assert wrong == []


def test_public_names_are_one_table() -> None:
    """`__all__`, the lazily loaded names and the type checkers' imports of `crawler` agree."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    typed = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("crawler.")
        for alias in node.names
    }
    assert crawler.__all__ == sorted(typed)
    for name in crawler.__all__:
        assert getattr(crawler, name) is not None
    assert set(crawler.__all__) <= set(dir(crawler))
