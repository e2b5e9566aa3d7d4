"""The store a `--db` names: a PostgreSQL URL (`postgresql://...`, the `postgres` extra), else a
SQLite file. Each backend is imported only when named, so a SQLite user never loads asyncpg."""

from __future__ import annotations

import os

from crawler.errors import StoreError
from crawler.store.base import RunStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(db: str | os.PathLike[str]) -> bool:
    """True when `db` is a PostgreSQL URL rather than a file path."""
    return str(db).startswith(POSTGRES_SCHEMES)


def open_store(db: str | os.PathLike[str]) -> RunStore:
    """The store of `db`, to be opened with `async with`."""
    if is_postgres(db):
        try:
            from crawler.store.postgres import PostgresStore
        except ImportError:  # asyncpg is missing
            raise StoreError(
                "a PostgreSQL --db needs the postgres extra: pip install 'backlink-crawler[postgres]'"
            ) from None
        return PostgresStore(str(db))
    from crawler.store.sqlite import SQLiteStore

    return SQLiteStore(db)
