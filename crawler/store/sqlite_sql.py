"""The SQL of the SQLite store: the schema, its migrations, and every statement `sqlite.py` runs.

Pure text: no connection here. Statements take `?` or `:name` parameters, never values
formatted in. Keeping the SQL apart lets it be read (and reviewed with the sqlite3 shell) as
one piece, and keeps `sqlite.py` about transactions, batching, paging and errors.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE claims (
        id TEXT PRIMARY KEY,
        source_url TEXT NOT NULL,
        target_url TEXT NOT NULL,
        expected_anchor TEXT,
        expected_rel TEXT,
        match TEXT NOT NULL DEFAULT 'page',
        tags TEXT NOT NULL DEFAULT '{}',
        invalid_reason TEXT,
        page_key TEXT NOT NULL,
        imported_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted')),
        settings TEXT NOT NULL DEFAULT '{}',
        claims INTEGER,
        decided INTEGER,
        counts TEXT
    );
    CREATE TABLE run_claims (
        run_id TEXT NOT NULL REFERENCES runs (id),
        claim_id TEXT NOT NULL REFERENCES claims (id),
        page_key TEXT NOT NULL,
        PRIMARY KEY (run_id, claim_id)
    ) WITHOUT ROWID;
    CREATE INDEX run_claims_by_page ON run_claims (run_id, page_key, claim_id);
    CREATE TABLE results (
        run_id TEXT NOT NULL,
        claim_id TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        flags TEXT NOT NULL DEFAULT '[]',
        tags TEXT NOT NULL DEFAULT '{}',
        http_status INTEGER,
        final_url TEXT,
        checked_at TEXT NOT NULL,
        data TEXT NOT NULL,
        UNIQUE (run_id, claim_id),
        FOREIGN KEY (run_id, claim_id) REFERENCES run_claims (run_id, claim_id)
    );
    CREATE INDEX results_by_run ON results (run_id);
    CREATE INDEX results_by_status ON results (run_id, status);
    """,
)
"""Schema changes from the first release on; entry N takes a database from version N to N+1."""

INSERT_CLAIM = """
    INSERT OR IGNORE INTO claims (id, source_url, target_url, expected_anchor, expected_rel, match,
                                  tags, invalid_reason, page_key, imported_at, updated_at)
    VALUES (:id, :source_url, :target_url, :expected_anchor, :expected_rel, :match,
            :tags, :invalid_reason, :page_key, :now, :now)
"""
UPDATE_CLAIM = """
    UPDATE claims SET source_url = :source_url, target_url = :target_url,
        expected_anchor = :expected_anchor, expected_rel = :expected_rel, match = :match,
        tags = :tags, invalid_reason = :invalid_reason, page_key = :page_key, updated_at = :now
    WHERE id = :id AND (source_url IS NOT :source_url OR target_url IS NOT :target_url
        OR expected_anchor IS NOT :expected_anchor OR expected_rel IS NOT :expected_rel
        OR match IS NOT :match OR tags IS NOT :tags OR invalid_reason IS NOT :invalid_reason)
"""
EXISTING = "SELECT id FROM claims WHERE id IN (SELECT value FROM json_each(?))"
ATTACH = """
    INSERT INTO run_claims (run_id, claim_id, page_key) VALUES (:run_id, :id, :page_key)
    ON CONFLICT (run_id, claim_id) DO UPDATE SET page_key = excluded.page_key
    WHERE page_key IS NOT excluded.page_key
"""
# CROSS JOIN makes SQLite walk run_claims in page order (its index) and look claims up,
# so each page of the query reads only the rows it returns.
PENDING = """
    SELECT rc.page_key, c.id, c.source_url, c.target_url, c.expected_anchor, c.expected_rel,
           c.match, c.tags, c.invalid_reason
    FROM run_claims AS rc CROSS JOIN claims AS c
    WHERE rc.run_id = ? AND (rc.page_key, rc.claim_id) > (?, ?) AND c.id = rc.claim_id
      AND NOT EXISTS (SELECT 1 FROM results AS r WHERE r.run_id = rc.run_id AND r.claim_id = rc.claim_id)
    ORDER BY rc.page_key, rc.claim_id
    LIMIT ?
"""
# A whole batch is one statement over a JSON array: one transaction, and a single call into
# the database thread, so a cancelled task cannot leave half a batch or an open transaction.
SAVE = """
    INSERT OR IGNORE INTO results (run_id, claim_id, status, reason, flags, tags, http_status,
                                   final_url, checked_at, data)
    SELECT json_extract(value, '$.run_id'), json_extract(value, '$.claim_id'),
           json_extract(value, '$.status'), json_extract(value, '$.reason'),
           json_extract(value, '$.flags'), json_extract(value, '$.tags'),
           json_extract(value, '$.http_status'), json_extract(value, '$.final_url'),
           json_extract(value, '$.checked_at'), value
    FROM json_each(?)
"""
TAG_COUNTS = """
    WITH counts AS (
        SELECT t.key AS key, t.value AS value, r.status AS status, count(*) AS n
        FROM results AS r, json_each(r.tags) AS t WHERE r.run_id = ? GROUP BY 1, 2, 3),
    ranked AS (
        SELECT key, value, row_number() OVER (PARTITION BY key ORDER BY sum(n) DESC, value) AS rank
        FROM counts GROUP BY key, value)
    SELECT c.key, CASE WHEN rk.rank <= ? THEN c.value END, c.status, sum(c.n)
    FROM counts AS c JOIN ranked AS rk ON rk.key = c.key AND rk.value = c.value
    GROUP BY 1, 2, 3 ORDER BY 1, min(rk.rank), 3
"""

PRAGMAS = ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON", "analysis_limit = 1000")
"""Set on every connection: readers beside a writer, durable commits without a sync per batch,
the foreign keys the schema declares, and statistics from a sample (as SQLite advises): the
`OPTIMIZE` that ends a run reads part of each index, not all of it, however large the file."""
USER_VERSION = "PRAGMA user_version"
ANY_TABLE = "SELECT count(*) FROM sqlite_master"
SCHEMA_COLUMNS = """
    SELECT m.name, c.name FROM sqlite_schema AS m, pragma_table_info(m.name) AS c
    WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite%'
"""
"""Every (table, column) of a database: at open, the latest schema's must all be there."""
OPTIMIZE = "PRAGMA optimize"
"""After a run's writes: refreshes the planner's statistics where they have gone stale."""
BEGIN_WRITE = "BEGIN IMMEDIATE"
"""A write transaction that takes the write lock at once, not at its first write."""

# Runs.
LATEST_RUN = "SELECT id, started_at, status FROM runs ORDER BY rowid DESC LIMIT 1"
RESUME_RUN = "UPDATE runs SET status = 'running', finished_at = NULL, settings = ? WHERE id = ?"
INTERRUPT_RUN = "UPDATE runs SET status = 'interrupted' WHERE id = ?"
BEGIN_RUN = "INSERT INTO runs (id, started_at, status, settings) VALUES (?, ?, 'running', ?)"
FINISH_RUN = "UPDATE runs SET status = ?, finished_at = ?, claims = ?, decided = ?, counts = ? WHERE id = ?"
RUN = "SELECT id, started_at, finished_at, status, settings FROM runs WHERE id = ?"
RUN_CLAIMS = "SELECT count(*) FROM run_claims WHERE run_id = ?"
RUN_STATUSES = "SELECT status, count(*) FROM results WHERE run_id = ? GROUP BY status"
RUN_IDS = "SELECT id FROM runs ORDER BY rowid"
ANY_RUN = "SELECT 1 FROM runs LIMIT 1"
LATEST_RUN_ID = "SELECT id FROM runs ORDER BY rowid DESC LIMIT 1"
RUN_ID = "SELECT id FROM runs WHERE id = ?"

# Claims of a run.
ATTACH_ALL = (
    "INSERT OR IGNORE INTO run_claims (run_id, claim_id, page_key) SELECT ?, id, page_key FROM claims"
)

# Results.
FLAG_COUNTS = """
    SELECT f.value, count(*) FROM results AS r, json_each(r.flags) AS f
    WHERE r.run_id = ? GROUP BY f.value ORDER BY 2 DESC, 1
"""


def results_page(statuses: int) -> str:
    """A page of a run's results after a rowid, in the order decided; `statuses` placeholders
    (none: every status) for the statuses kept."""
    where = f"AND status IN ({', '.join('?' * statuses)})" if statuses else ""
    return f"SELECT rowid, data FROM results WHERE run_id = ? AND rowid > ? {where} ORDER BY rowid LIMIT ?"
