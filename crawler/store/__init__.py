"""Where claims, runs and results are kept, behind one seam.

`base.py` is the seam: the `RunStore` protocol (what the run lifecycle and the commands ask of
a database: open and close, begin a run, import claims, the claims still pending, save
results, finish the run, and the reads behind export and report) and the plain values it
returns. The rest of the crawler depends on those names only; `display.py` and the reports
never import a database driver.

Each backend keeps its transaction logic and its SQL apart: `sqlite.py` (the only aiosqlite
code, `SQLiteStore`, public as `crawler.Store`) with `sqlite_sql.py` and `sqlite_history.py`;
`postgres.py` (the only asyncpg code, `PostgresStore`) with `postgres_sql.py` and
`postgres_history.py`; `backends.open_store` picks one by the `--db` it is given. What differs
between backends is said in their docstrings: a SQLite run is held by one process at a time (a
second `begin_run` raises `RunHeldError`), a PostgreSQL run is shared by every process that
joins it. Every failure of a backend is a `StoreError` naming the database and the cause.
"""

from crawler.store.base import (
    ClaimFields,
    ClaimSource,
    ImportCounts,
    Report,
    ResultWriter,
    Run,
    RunInfo,
    RunStatus,
    RunStore,
    Saved,
    TagCount,
)

__all__ = [
    "ClaimFields",
    "ClaimSource",
    "ImportCounts",
    "Report",
    "ResultWriter",
    "Run",
    "RunInfo",
    "RunStatus",
    "RunStore",
    "Saved",
    "TagCount",
]
