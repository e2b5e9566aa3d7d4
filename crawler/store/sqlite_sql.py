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
    # Monitoring (section 9): each claim's folded history, and the events the fold reported.
    # `referring_domain` is the registrable domain of a usable claim's source (for the report's
    # series), filled in for claims stored before it by a function the store registers.
    """
    ALTER TABLE claims ADD COLUMN referring_domain TEXT;
    UPDATE claims SET referring_domain = crawler_referring_domain(source_url) WHERE invalid_reason IS NULL;
    ALTER TABLE results ADD COLUMN state TEXT;
    ALTER TABLE runs ADD COLUMN points TEXT;
    UPDATE results SET state = json_extract(data, '$.state');
    CREATE INDEX results_by_claim ON results (claim_id);
    CREATE INDEX results_by_state ON results (run_id, state);
    CREATE TABLE claim_states (
        claim_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        history TEXT NOT NULL,
        run_id TEXT
    ) WITHOUT ROWID;
    CREATE INDEX claim_states_by_state ON claim_states (state);
    CREATE TABLE events (
        run_id TEXT NOT NULL,
        claim_id TEXT NOT NULL,
        event TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX events_by_run ON events (run_id);
    CREATE INDEX events_by_claim ON events (claim_id);
    CREATE INDEX events_by_event ON events (event, run_id);
    """,
)
"""Schema changes from the first release on; entry N takes a database from version N to N+1."""

INSERT_CLAIM = """
    INSERT OR IGNORE INTO claims (id, source_url, target_url, expected_anchor, expected_rel, match,
                                  tags, invalid_reason, page_key, referring_domain, imported_at, updated_at)
    VALUES (:id, :source_url, :target_url, :expected_anchor, :expected_rel, :match,
            :tags, :invalid_reason, :page_key, :referring_domain, :now, :now)
"""
UPDATE_CLAIM = """
    UPDATE claims SET source_url = :source_url, target_url = :target_url,
        expected_anchor = :expected_anchor, expected_rel = :expected_rel, match = :match,
        tags = :tags, invalid_reason = :invalid_reason, page_key = :page_key,
        referring_domain = :referring_domain, updated_at = :now
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
                                   final_url, checked_at, state, data)
    SELECT json_extract(value, '$.run_id'), json_extract(value, '$.claim_id'),
           json_extract(value, '$.status'), json_extract(value, '$.reason'),
           json_extract(value, '$.flags'), json_extract(value, '$.tags'),
           json_extract(value, '$.http_status'), json_extract(value, '$.final_url'),
           json_extract(value, '$.checked_at'), json_extract(value, '$.state'), value
    FROM json_each(?)
"""
DECIDED = "SELECT claim_id FROM results WHERE run_id = ? AND claim_id IN (SELECT value FROM json_each(?))"
"""Which of a run's claims (a JSON array) already have a result: a batch folds only the others."""
HISTORIES = "SELECT claim_id, history FROM claim_states WHERE claim_id IN (SELECT value FROM json_each(?))"
RUN_SETTINGS = "SELECT settings FROM runs WHERE id = ?"
PUT_STATE = """
    INSERT INTO claim_states (claim_id, state, history, run_id) VALUES (?, ?, ?, ?)
    ON CONFLICT (claim_id) DO UPDATE SET
        state = excluded.state, history = excluded.history, run_id = excluded.run_id
"""
RESTART_STATE = "UPDATE claim_states SET state = ?, history = ? WHERE claim_id = ?"
"""An import that changed a claim's URLs: its history starts again (the run of its last result stays)."""
ADD_EVENT = "INSERT INTO events (run_id, claim_id, event, data) VALUES (?, ?, ?, ?)"
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
RESUME_RUN = (
    "UPDATE runs SET status = 'running', finished_at = NULL, settings = ?, points = NULL WHERE id = ?"
)
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


# Monitoring reads. Events are read in the order stored (rowid), which is the order decided.
RUN_EVENTS = "SELECT rowid, data FROM events WHERE run_id = ? AND rowid > ? ORDER BY rowid LIMIT ?"
RUN_EVENTS_OF_TYPE = """
    SELECT rowid, data FROM events WHERE event = ? AND run_id = ? AND rowid > ? ORDER BY rowid LIMIT ?
"""
"""One type at a time: (event, run_id) then rowid is an index order, so each page is a range read."""
RUNS_AFTER = "SELECT id FROM runs WHERE rowid > (SELECT rowid FROM runs WHERE id = ?) ORDER BY rowid"
CLAIM = "SELECT 1 FROM claims WHERE id = ?"
CLAIM_RESULTS = """
    SELECT r.data FROM results AS r JOIN runs AS ru ON ru.id = r.run_id
    WHERE r.claim_id = ? ORDER BY ru.rowid
"""
CLAIM_EVENTS = "SELECT data FROM events WHERE claim_id = ? ORDER BY rowid"
LATEST_RESULT = """
    SELECT r.data FROM results AS r JOIN runs AS ru ON ru.id = r.run_id
    WHERE r.claim_id = ? ORDER BY ru.rowid DESC LIMIT 1
"""
RUN_RESULT = "SELECT data FROM results WHERE run_id = ? AND claim_id = ?"
STATE_COUNTS = "SELECT coalesce(state, 'new'), count(*) FROM results WHERE run_id = ? GROUP BY 1"
"""A result stored before states existed counts as `new`, as the report's figures read it."""
REPORT_ROWS = """
    SELECT r.rowid, r.data, c.expected_anchor FROM results AS r LEFT JOIN claims AS c ON c.id = r.claim_id
    WHERE r.run_id = ? AND r.rowid > ? ORDER BY r.rowid LIMIT ?
"""
RUN_POINT = """
    SELECT
        (SELECT count(*) FROM results AS r WHERE r.run_id = :run AND r.state IN ('live', 'suspect')),
        (SELECT count(DISTINCT crawler_referring_domain(json_extract(r.data, '$.source_url')))
         FROM results AS r WHERE r.run_id = :run AND r.state IN ('live', 'suspect')),
        (SELECT count(*) FROM events AS e WHERE e.event = 'found' AND e.run_id = :run),
        (SELECT count(*) FROM events AS e WHERE e.event = 'lost' AND e.run_id = :run),
        (SELECT count(*) FROM events AS e WHERE e.event = 'recovered' AND e.run_id = :run)
"""
"""A run's point on the over-time series: live claims, their referring domains, found, lost and
recovered events. Referring domains are those of the sources the results were checked on (a
claim's source may have changed since). It reads every live result of the run (seconds on a
million claims), so it is kept in `runs.points` when the run stops; a rebuild writes it again."""
RUN_POINTS = "SELECT id, started_at, status, points FROM runs ORDER BY rowid"
SET_POINTS = "UPDATE runs SET points = ? WHERE id = ?"
STOPPED_RUNS = "SELECT id FROM runs WHERE status != 'running' ORDER BY rowid"
"""The runs whose points are kept (a running run's are counted when asked for)."""
ATTACH_IN_STATES = """
    INSERT OR IGNORE INTO run_claims (run_id, claim_id, page_key)
    SELECT :run_id, c.id, c.page_key FROM claim_states AS s CROSS JOIN claims AS c
    WHERE s.state IN (SELECT value FROM json_each(:states)) AND c.id = s.claim_id
"""
ATTACH_NEVER_FOLDED = """
    INSERT OR IGNORE INTO run_claims (run_id, claim_id, page_key)
    SELECT :run_id, c.id, c.page_key FROM claims AS c
    WHERE NOT EXISTS (SELECT 1 FROM claim_states AS s WHERE s.claim_id = c.id)
"""
"""Claims without a folded result are `new`: `verify --states new` takes them too."""

# Rebuilding the fold from the results alone.
CLEAR_STATES = "DELETE FROM claim_states"
CLEAR_EVENTS = "DELETE FROM events"
RUN_ORDER = "SELECT id, settings FROM runs ORDER BY rowid"
# Each claim's results in run order, with the claim's current URLs; SQLite walks results_by_claim
# and sorts only the few rows of each claim by run.
ALL_RESULTS = """
    SELECT r.rowid, r.claim_id, r.state, r.data, c.source_url, c.target_url, c.invalid_reason
    FROM results AS r JOIN runs AS ru ON ru.id = r.run_id LEFT JOIN claims AS c ON c.id = r.claim_id
    ORDER BY r.claim_id, ru.rowid
"""
REBUILD_TABLES = """
    CREATE TEMP TABLE IF NOT EXISTS rebuilt_events (
        result INTEGER NOT NULL, n INTEGER NOT NULL, run_id TEXT NOT NULL, claim_id TEXT NOT NULL,
        event TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (result, n)) WITHOUT ROWID;
    CREATE TEMP TABLE IF NOT EXISTS rebuilt_states (result INTEGER PRIMARY KEY, state TEXT NOT NULL);
    DELETE FROM rebuilt_events;
    DELETE FROM rebuilt_states;
"""
REBUILT_EVENT = "INSERT INTO rebuilt_events VALUES (?, ?, ?, ?, ?, ?)"
REBUILT_STATE = "INSERT INTO rebuilt_states VALUES (?, ?)"
# Events in the order a run stores them: by the result that caused them, then as the fold gave them.
COPY_EVENTS = """
    INSERT INTO events (run_id, claim_id, event, data)
    SELECT run_id, claim_id, event, data FROM rebuilt_events ORDER BY result, n
"""
COPY_STATES = """
    UPDATE results SET state = s.state, data = json_set(data, '$.state', s.state)
    FROM rebuilt_states AS s WHERE results.rowid = s.result
"""
DROP_REBUILT = "DELETE FROM rebuilt_events; DELETE FROM rebuilt_states;"
REFERRING_DOMAIN = "crawler_referring_domain"
"""The SQL function (one argument, a source URL) the store registers on every connection."""


def export_page(statuses: int) -> str:
    """A page of a run's results with their claims' fields, in the claims' import order (the
    claims table's rowid), after a claims rowid; `statuses` placeholders for the statuses kept."""
    where = f"AND r.status IN ({', '.join('?' * statuses)})" if statuses else ""
    return f"""
        SELECT c.rowid, r.data, c.expected_anchor, c.expected_rel, c.match
        FROM claims AS c CROSS JOIN results AS r
        WHERE c.rowid > ? AND r.run_id = ? AND r.claim_id = c.id {where}
        ORDER BY c.rowid LIMIT ?
    """
