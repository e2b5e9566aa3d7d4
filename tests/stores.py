"""Both stores, for the tests that must hold for each: a SQLite file, or a database of its own in
the session's PostgreSQL cluster, opened the same way and read back with plain SQL.

The `backend` fixture (conftest.py) gives one of each in turn; a test written against `Backend`
runs on both without a line of its own for either. `claim` and `result` make the values the
store tests save.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from postgres_cluster import Cluster

from crawler.models import Claim, InvalidClaim, Result, Status
from crawler.store.base import RunStore
from crawler.store.postgres import PostgresStore
from crawler.store.sqlite import Store

_numbers = itertools.count()


def claim(n: int, host: str = "a.example", **kwargs: Any) -> Claim:
    """Claim `n`: page `n` of `host` linking to target `n`."""
    return Claim(f"https://{host}/page-{n}", f"https://target.example/{n}", **kwargs)


def result(item: Claim | InvalidClaim, run_id: str, status: Status = Status.MISSING, **kwargs: Any) -> Result:
    """A result of `item` in `run_id`, checked at a fixed time."""
    return Result(
        claim_id=item.id,
        source_url=item.source_url,
        target_url=item.target_url,
        tags=item.tags,
        run_id=run_id,
        checked_at="2026-01-02T03:04:05.678Z",
        status=status,
        **kwargs,
    )


DERIVED = {
    "sqlite": {
        "claim_states": "SELECT * FROM claim_states ORDER BY claim_id",
        "events": "SELECT rowid, * FROM events ORDER BY rowid",
        "results": "SELECT rowid, state, data FROM results ORDER BY rowid",
        "points": "SELECT id, points FROM runs ORDER BY rowid",
    },
    "postgres": {
        "claim_states": "SELECT claim_id, state, history, run_id FROM claim_states ORDER BY claim_id",
        "events": "SELECT * FROM events ORDER BY result_seq, n",
        "results": "SELECT seq, state, referring_domain, data FROM results ORDER BY seq",
        "points": "SELECT id, points FROM runs ORDER BY seq",
    },
}
"""Every row the monitoring fold derives: claim states, events (with their keys), the results'
states, the runs' kept points."""

WIPE = {
    "sqlite": """
        DELETE FROM claim_states; DELETE FROM events;
        UPDATE results SET state = NULL, data = json_set(data, '$.state', NULL);
    """,
    "postgres": """
        DELETE FROM claim_states; DELETE FROM events;
        UPDATE results SET state = NULL, referring_domain = NULL,
            data = jsonb_set(data::jsonb, '{state}', 'null')::text;
    """,
}
"""Everything derived thrown away, `data` rewritten as another program would write it."""

DOWNGRADE = {
    "sqlite": """
        DROP TABLE claim_states; DROP TABLE events;
        DROP INDEX results_by_state; DROP INDEX results_by_claim;
        ALTER TABLE results DROP COLUMN state;
        ALTER TABLE claims DROP COLUMN referring_domain;
        ALTER TABLE runs DROP COLUMN points;
        UPDATE results SET data = json_set(data, '$.state', NULL);
        PRAGMA user_version = 1;
    """,
    "postgres": """
        DROP TABLE claim_states; DROP TABLE events;
        DROP INDEX results_by_state; DROP INDEX results_by_claim; DROP INDEX claims_by_seq;
        ALTER TABLE results DROP COLUMN state, DROP COLUMN referring_domain;
        ALTER TABLE runs DROP COLUMN points;
        UPDATE results SET data = jsonb_set(data::jsonb, '{state}', 'null')::text;
        DELETE FROM crawler_schema WHERE version > 1;
    """,
}
"""A database of the schema before states (version 1), with its results as that version wrote them."""


@dataclass(frozen=True, slots=True)
class Backend:
    """One store's database: `kind` "sqlite" (`db` a file path) or "postgres" (`db` a URL)."""

    kind: str
    db: str

    @classmethod
    def sqlite(cls, directory: Path) -> Backend:
        return cls("sqlite", str(directory / "crawler.sqlite"))

    @classmethod
    def postgres(cls, cluster: Cluster) -> Backend:
        return cls("postgres", cluster.create_database(f"both_{next(_numbers)}"))

    def open(self) -> RunStore:
        """The store, to be opened with `async with`."""
        return PostgresStore(self.db) if self.kind == "postgres" else Store(self.db)

    @property
    def store_class(self) -> str:
        """The import of the store's class as `Store`, for a script run in another process."""
        if self.kind == "postgres":
            return "from crawler.store.postgres import PostgresStore as Store"
        return "from crawler.store.sqlite import Store"

    async def rows(self, query: str, *parameters: object) -> list[tuple[Any, ...]]:
        """Rows of `query` ($1, $2... parameters on both), as tuples."""
        if self.kind == "postgres":
            connection = await asyncpg.connect(self.db)
            try:
                return [tuple(row) for row in await connection.fetch(query, *parameters)]
            finally:
                await connection.close()
        with sqlite3.connect(self.db) as db:
            return db.execute(re.sub(r"\$(\d+)", r"?\1", query), parameters).fetchall()

    async def execute(self, script: str) -> None:
        """Run statements separated by semicolons, in one transaction."""
        if self.kind == "postgres":
            connection = await asyncpg.connect(self.db)
            try:
                await connection.execute(f"BEGIN; {script} COMMIT;")
            finally:
                await connection.close()
            return
        with sqlite3.connect(self.db) as db:
            db.executescript(script)

    async def derived(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row the monitoring fold derives (see `DERIVED`)."""
        return {name: await self.rows(query) for name, query in DERIVED[self.kind].items()}

    async def wipe_monitoring(self) -> None:
        await self.execute(WIPE[self.kind])

    async def downgrade(self) -> None:
        """Make the database one of schema version 1 (before states and events)."""
        await self.execute(DOWNGRADE[self.kind])
