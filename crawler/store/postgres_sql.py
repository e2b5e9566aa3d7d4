"""The SQL of the PostgreSQL store: the schema, its migrations, and every statement `postgres.py` runs.

Pure text: no connection here. Statements take `$n` parameters, never values formatted in.

Leases and fences are rows and WHERE clauses (no session advisory locks: PgBouncer's
transaction pooling would hand them to another client):

- `hosts.owner/token/expires_at` is a host's *claims lease*: who works its pending claims.
  `TAKE_HOSTS` gives the ready hosts to one worker (`FOR UPDATE SKIP LOCKED`, the token bumped);
  a result is stored only while its saver's lease is current and unexpired (`FENCE`).
- `gates` rows are *request places*: a request to a host, by anyone, for any reason (its own
  pages, a redirect hop from another host's page, robots.txt), holds one while in flight;
  at most `per_host` live rows a host, and `hosts.next_allowed_at` spaces their starts
  (`crawler_take_gate`, one call, one round trip). A dead holder's place expires.
- `robots` rows hold each origin's robots.txt answer for the run, fetched by whoever claimed
  the row first; an unanswered claim expires, and is claimed again, when its fetcher died.

Monitoring (section 9) keeps the SQLite store's tables: `claim_states` (each checked claim's
folded history), `events`, `results.state` and `runs.points`. An event's key is the result that
caused it and its place among that result's events, `(result_seq, n)`: the order stored is the
order the results were stored, and a rebuild writes the same keys. `results.referring_domain`
is the registrable domain of the source the result was checked on, for the report's series.

Every transaction that changes a claim's history locks the claim's row first (`LOCK_CLAIMS`, in
id order, so two of them never wait for each other in a cycle) and only then reads it: saves,
imports that may restart it, and `history --rebuild` (which locks the whole table).
"""

from __future__ import annotations

SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(4242171711)"
"""Migrations run one process at a time: a transaction-scoped lock, safe behind PgBouncer."""
VERSION_TABLE = "CREATE TABLE IF NOT EXISTS crawler_schema (version integer NOT NULL)"
VERSION = "SELECT max(version) FROM crawler_schema"
SET_VERSION = "INSERT INTO crawler_schema (version) VALUES ($1)"
FOREIGN_TABLES = """
    SELECT count(*) FROM information_schema.tables
    WHERE table_schema = current_schema() AND table_name IN ('claims', 'runs', 'results')
"""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE claims (
        id text PRIMARY KEY,
        source_url text NOT NULL,
        target_url text NOT NULL,
        expected_anchor text,
        expected_rel text,
        match text NOT NULL DEFAULT 'page',
        tags text NOT NULL DEFAULT '{}',
        invalid_reason text,
        page_key text NOT NULL,
        host text NOT NULL,
        seq bigserial,
        imported_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE runs (
        seq bigserial UNIQUE,
        id text PRIMARY KEY,
        started_at text NOT NULL,
        finished_at text,
        status text NOT NULL CHECK (status IN ('running', 'finished', 'interrupted')),
        settings text NOT NULL DEFAULT '{}',
        claims integer,
        decided integer,
        counts text
    );
    CREATE UNIQUE INDEX one_running_run ON runs ((true)) WHERE status = 'running';
    CREATE TABLE run_claims (
        run_id text NOT NULL REFERENCES runs (id),
        claim_id text NOT NULL REFERENCES claims (id),
        page_key text NOT NULL,
        host text NOT NULL,
        done boolean NOT NULL DEFAULT false,
        PRIMARY KEY (run_id, claim_id)
    );
    CREATE INDEX run_claims_undone ON run_claims (run_id, host, page_key) WHERE NOT done;
    CREATE TABLE results (
        seq bigserial,
        run_id text NOT NULL,
        claim_id text NOT NULL,
        status text NOT NULL,
        reason text,
        flags text NOT NULL DEFAULT '[]',
        tags text NOT NULL DEFAULT '{}',
        http_status integer,
        final_url text,
        checked_at text NOT NULL,
        data text NOT NULL,
        UNIQUE (run_id, claim_id),
        FOREIGN KEY (run_id, claim_id) REFERENCES run_claims (run_id, claim_id)
    );
    CREATE INDEX results_by_run ON results (run_id, seq);
    CREATE TABLE hosts (
        run_id text NOT NULL REFERENCES runs (id),
        host text NOT NULL,
        owner text,
        token bigint NOT NULL DEFAULT 0,
        expires_at timestamptz NOT NULL DEFAULT '-infinity',
        next_allowed_at timestamptz NOT NULL DEFAULT '-infinity',
        PRIMARY KEY (run_id, host)
    );
    CREATE TABLE gates (
        run_id text NOT NULL,
        host text NOT NULL,
        holder text NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (run_id, host, holder)
    );
    CREATE TABLE robots (
        run_id text NOT NULL,
        origin text NOT NULL,
        fetcher text NOT NULL,
        expires_at timestamptz NOT NULL,
        answer text,
        answered_at timestamptz,
        PRIMARY KEY (run_id, origin)
    );
    CREATE TABLE workers (
        run_id text NOT NULL,
        worker text NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (run_id, worker)
    );
    -- One request place of `host`, or how long to wait: 0 taken, > 0 seconds until the host may
    -- start again, < 0 every place is busy. The host row is locked first, so two callers never
    -- both count the places free.
    CREATE FUNCTION crawler_take_gate(p_run text, p_host text, p_holder text, p_places integer,
                                      p_interval float8, p_lease float8) RETURNS float8
    LANGUAGE plpgsql AS $$
    DECLARE
        ready timestamptz;
        busy integer;
        now_ timestamptz := clock_timestamp();
    BEGIN
        INSERT INTO hosts (run_id, host) VALUES (p_run, p_host) ON CONFLICT DO NOTHING;
        SELECT next_allowed_at INTO ready FROM hosts WHERE run_id = p_run AND host = p_host FOR UPDATE;
        IF ready > now_ THEN
            RETURN extract(epoch FROM ready - now_);
        END IF;
        DELETE FROM gates WHERE run_id = p_run AND host = p_host AND expires_at <= now_;
        SELECT count(*) INTO busy FROM gates WHERE run_id = p_run AND host = p_host;
        IF busy >= p_places THEN
            RETURN -1;
        END IF;
        INSERT INTO gates VALUES (p_run, p_host, p_holder, now_ + p_lease * interval '1 second');
        UPDATE hosts SET next_allowed_at = now_ + p_interval * interval '1 second'
        WHERE run_id = p_run AND host = p_host;
        RETURN 0;
    END $$;
    """,
    # Monitoring (section 9). The results already stored are folded by the store's Python when
    # it reaches this version, in the same transaction.
    """
    ALTER TABLE results ADD COLUMN state text;
    ALTER TABLE results ADD COLUMN referring_domain text;
    ALTER TABLE runs ADD COLUMN points text;
    CREATE INDEX results_by_claim ON results (claim_id);
    CREATE INDEX results_by_state ON results (run_id, state);
    CREATE INDEX claims_by_seq ON claims (seq);
    CREATE TABLE claim_states (
        claim_id text PRIMARY KEY,
        state text NOT NULL,
        history text NOT NULL,
        run_id text
    );
    CREATE INDEX claim_states_by_state ON claim_states (state);
    CREATE TABLE events (
        result_seq bigint NOT NULL,
        n integer NOT NULL,
        run_id text NOT NULL,
        claim_id text NOT NULL,
        event text NOT NULL,
        data text NOT NULL,
        PRIMARY KEY (result_seq, n)
    );
    CREATE INDEX events_by_run ON events (run_id, result_seq, n);
    CREATE INDEX events_by_claim ON events (claim_id, result_seq, n);
    CREATE INDEX events_by_event ON events (event, run_id, result_seq, n);
    """,
)
"""Schema changes from the first release on; entry N takes a database from version N to N+1."""

# Claims.
UPSERT_CLAIMS = """
    WITH incoming AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::text[], $8::text[], $9::text[], $10::text[])
            AS r(id, source_url, target_url, expected_anchor, expected_rel, match, tags,
                 invalid_reason, page_key, host)),
    old AS (SELECT c.* FROM claims AS c JOIN incoming USING (id)),
    written AS (
        INSERT INTO claims AS c (id, source_url, target_url, expected_anchor, expected_rel, match, tags,
                                 invalid_reason, page_key, host)
        SELECT * FROM incoming
        ON CONFLICT (id) DO UPDATE SET source_url = excluded.source_url, target_url = excluded.target_url,
            expected_anchor = excluded.expected_anchor, expected_rel = excluded.expected_rel,
            match = excluded.match, tags = excluded.tags, invalid_reason = excluded.invalid_reason,
            page_key = excluded.page_key, host = excluded.host, updated_at = now()
        WHERE (c.source_url, c.target_url, c.expected_anchor, c.expected_rel, c.match, c.tags,
               c.invalid_reason) IS DISTINCT FROM
              (excluded.source_url, excluded.target_url, excluded.expected_anchor, excluded.expected_rel,
               excluded.match, excluded.tags, excluded.invalid_reason)
        RETURNING c.id),
    attached AS (
        INSERT INTO run_claims (run_id, claim_id, page_key, host)
        SELECT $11, id, page_key, host FROM incoming
        ON CONFLICT (run_id, claim_id) DO UPDATE SET page_key = excluded.page_key, host = excluded.host
        WHERE (run_claims.page_key, run_claims.host) IS DISTINCT FROM (excluded.page_key, excluded.host)),
    new_hosts AS (
        INSERT INTO hosts (run_id, host) SELECT DISTINCT $11, host FROM incoming ON CONFLICT DO NOTHING)
    SELECT (SELECT count(*) FROM written WHERE id NOT IN (SELECT id FROM old)),
           (SELECT count(*) FROM written WHERE id IN (SELECT id FROM old))
"""
ATTACH_ALL = """
    WITH attached AS (
        INSERT INTO run_claims (run_id, claim_id, page_key, host)
        SELECT $1, id, page_key, host FROM claims ON CONFLICT DO NOTHING RETURNING host),
    new_hosts AS (
        INSERT INTO hosts (run_id, host) SELECT DISTINCT $1, host FROM attached ON CONFLICT DO NOTHING)
    SELECT count(*) FROM attached
"""
REOPEN_RUN = """
    UPDATE runs SET status = 'running', finished_at = NULL, points = NULL WHERE id = $1 RETURNING status
"""
"""Taken first by an import: its row lock orders it against `FINISH_IF_DONE` (claims added to a
run that had just finished reopen it; the importer then verifies them)."""

# Runs.
LATEST_RUN = "SELECT id, started_at, status FROM runs ORDER BY seq DESC LIMIT 1"
RUNNING_RUN = "SELECT id, started_at FROM runs WHERE status = 'running'"
RESUME_RUN = """
    UPDATE runs SET status = 'running', finished_at = NULL, points = NULL
    WHERE id = $1 AND status = 'interrupted'
"""
BEGIN_RUN = """
    INSERT INTO runs (id, started_at, status, settings) VALUES ($1, $2, 'running', $3)
    ON CONFLICT DO NOTHING RETURNING id
"""
LOCK_RUN = "SELECT status FROM runs WHERE id = $1 FOR UPDATE"
ANY_UNDONE = "SELECT EXISTS (SELECT 1 FROM run_claims WHERE run_id = $1 AND NOT done)"
FINISH_RUN = """
    UPDATE runs SET status = $2, finished_at = $3, claims = $4, decided = $5, counts = $6, points = $7
    WHERE id = $1 AND status = 'running'
"""
OTHER_WORKERS = """
    SELECT count(*) FROM workers WHERE run_id = $1 AND worker <> $2 AND expires_at > clock_timestamp()
"""
JOIN_WORKERS = """
    INSERT INTO workers VALUES ($1, $2, clock_timestamp() + $3::float8 * interval '1 second')
    ON CONFLICT (run_id, worker) DO UPDATE SET expires_at = excluded.expires_at
"""
LEAVE_WORKERS = "DELETE FROM workers WHERE run_id = $1 AND worker = $2"
RUN = "SELECT id, started_at, finished_at, status, settings FROM runs WHERE id = $1"
RUN_CLAIMS = "SELECT count(*) FROM run_claims WHERE run_id = $1"
RUN_STATUSES = "SELECT status, count(*) FROM results WHERE run_id = $1 GROUP BY status"
RUN_IDS = "SELECT id FROM runs ORDER BY seq"
LATEST_RUN_ID = "SELECT id FROM runs ORDER BY seq DESC LIMIT 1"
RUN_ID = "SELECT id FROM runs WHERE id = $1"

# Leases.
TAKE_HOSTS = """
    UPDATE hosts AS h SET owner = $2, token = h.token + 1,
        expires_at = clock_timestamp() + $4::float8 * interval '1 second'
    WHERE h.run_id = $1 AND h.host IN (
        SELECT r.host FROM hosts AS r
        WHERE r.run_id = $1 AND (r.owner IS NULL OR r.expires_at <= clock_timestamp())
          AND EXISTS (SELECT 1 FROM run_claims AS rc WHERE rc.run_id = r.run_id AND rc.host = r.host
                      AND NOT rc.done)
        ORDER BY r.next_allowed_at, r.host
        LIMIT $3
        FOR UPDATE SKIP LOCKED)
    RETURNING h.host, h.token
"""
LEASED_CLAIMS = """
    SELECT rc.host, rc.page_key, c.id, c.source_url, c.target_url, c.expected_anchor, c.expected_rel,
           c.match, c.tags, c.invalid_reason
    FROM unnest($2::text[]) AS h(host)
    CROSS JOIN LATERAL (
        SELECT DISTINCT page_key FROM run_claims
        WHERE run_id = $1 AND host = h.host AND NOT done ORDER BY page_key LIMIT $3) AS p
    JOIN run_claims AS rc ON rc.run_id = $1 AND rc.host = h.host AND rc.page_key = p.page_key AND NOT rc.done
    JOIN claims AS c ON c.id = rc.claim_id
    ORDER BY rc.host, rc.page_key, c.id
"""
"""The pending claims of leased hosts, `$3` pages a host at most, claims of a page together."""
RENEW = """
    WITH kept AS (
        UPDATE hosts SET expires_at = clock_timestamp() + $3::float8 * interval '1 second'
        WHERE run_id = $1 AND owner = $2 AND expires_at > clock_timestamp()
          AND (host, token) IN (SELECT * FROM unnest($4::text[], $5::bigint[]))
        RETURNING host),
    kept_gates AS (
        UPDATE gates SET expires_at = clock_timestamp() + $3::float8 * interval '1 second'
        WHERE run_id = $1 AND holder = ANY ($6::text[]) AND expires_at > clock_timestamp()),
    kept_robots AS (
        UPDATE robots SET expires_at = clock_timestamp() + $3::float8 * interval '1 second'
        WHERE run_id = $1 AND fetcher = $2 AND answer IS NULL AND expires_at > clock_timestamp()),
    kept_workers AS (
        UPDATE workers SET expires_at = clock_timestamp() + $3::float8 * interval '1 second'
        WHERE run_id = $1 AND worker = $2)
    SELECT host FROM kept
"""
"""Extend every lease of a worker still current: the hosts `$4` with their tokens `$5` (those not
returned are lost to it), the request places `$6` it holds (a place it does not know of, given
by a reply it never read, expires), its robots.txt claims and its own row."""
RELEASE_HOST = """
    UPDATE hosts SET owner = NULL, expires_at = '-infinity'
    WHERE run_id = $1 AND host = $2 AND owner = $3 AND token = $4
"""
RELEASE_GATE = """
    WITH gone AS (DELETE FROM gates WHERE run_id = $1 AND host = $2 AND holder = $3)
    UPDATE hosts SET next_allowed_at = greatest(
        next_allowed_at,
        clock_timestamp() + ($4::float8 - $5::float8) * interval '1 second',
        clock_timestamp() + $6::float8 * interval '1 second')
    WHERE run_id = $1 AND host = $2
"""
"""A request ended: its place is free; the host's next start is `$4` (interval) after this
request's bytes left, `$5` seconds ago, and no earlier than a Retry-After pause `$6` from now."""
TAKE_GATE = "SELECT crawler_take_gate($1, $2, $3, $4, $5, $6)"

# Robots.txt answers shared by the run's workers.
ROBOTS_ANSWER = """
    SELECT answer FROM robots
    WHERE run_id = $1 AND origin = $2 AND answer IS NOT NULL
      AND answered_at > clock_timestamp() - interval '24 hours'
"""
CLAIM_ROBOTS = """
    INSERT INTO robots AS r (run_id, origin, fetcher, expires_at)
    VALUES ($1, $2, $3, clock_timestamp() + $4::float8 * interval '1 second')
    ON CONFLICT (run_id, origin) DO UPDATE SET fetcher = excluded.fetcher,
        expires_at = excluded.expires_at, answer = NULL, answered_at = NULL
    WHERE (r.answer IS NULL AND r.expires_at <= clock_timestamp())
       OR r.answered_at <= clock_timestamp() - interval '24 hours'
    RETURNING fetcher
"""
"""The right to fetch an origin's robots.txt: a new row, an abandoned claim, or a stale answer."""
GIVE_UP_ROBOTS = """
    UPDATE robots SET expires_at = '-infinity' WHERE run_id = $1 AND origin = $2 AND fetcher = $3
      AND answer IS NULL
"""
STORE_ROBOTS = """
    UPDATE robots SET answer = $4, answered_at = clock_timestamp()
    WHERE run_id = $1 AND origin = $2 AND fetcher = $3
"""

# Results, and the monitoring fold they cause (`postgres_history.save_batch`, one transaction).
FENCE = """
    SELECT host FROM hosts
    WHERE run_id = $1 AND owner = $2 AND expires_at > clock_timestamp()
      AND (host, token) IN (SELECT * FROM unnest($3::text[], $4::bigint[]))
    FOR SHARE
"""
"""The hosts of run `$1` whose lease `$2` still holds with the token it was given: only their
results are stored. `FOR SHARE` until the transaction ends keeps a takeover (`TAKE_HOSTS`, which
skips locked rows) from committing before the results are. Results decided under no lease (a
library caller's own) are not fenced."""
LOCK_CLAIMS = "SELECT id FROM claims WHERE id = ANY ($1::text[]) ORDER BY id FOR NO KEY UPDATE"
"""The claims whose histories a transaction is about to read and change, locked in id order
(rows are locked in the order sorted). Reads of their states come in later statements, whose
snapshots see whatever the previous holder committed."""
DECIDED = """
    SELECT run_id, claim_id FROM results
    WHERE (run_id, claim_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""
"""Which (run, claim) pairs already have a result: a claim keeps its first result in a run."""
HISTORIES = "SELECT claim_id, history FROM claim_states WHERE claim_id = ANY ($1::text[])"
RUN_SETTINGS = "SELECT id, settings FROM runs WHERE id = ANY ($1::text[])"
SAVE = """
    WITH incoming AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::integer[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
            WITH ORDINALITY AS u(run_id, claim_id, status, reason, flags, tags, http_status, final_url,
                                 checked_at, state, referring_domain, data, n)),
    stored AS (
        INSERT INTO results (run_id, claim_id, status, reason, flags, tags, http_status, final_url,
                             checked_at, state, referring_domain, data)
        SELECT run_id, claim_id, status, reason, flags, tags, http_status, final_url, checked_at, state,
               referring_domain, data
        FROM incoming ORDER BY n
        ON CONFLICT (run_id, claim_id) DO NOTHING
        RETURNING seq, run_id, claim_id),
    done AS (
        UPDATE run_claims AS rc SET done = true FROM stored AS s
        WHERE rc.run_id = s.run_id AND rc.claim_id = s.claim_id),
    states AS (
        INSERT INTO claim_states (claim_id, state, history, run_id)
        SELECT * FROM unnest($13::text[], $14::text[], $15::text[], $16::text[])
        ON CONFLICT (claim_id) DO UPDATE SET
            state = excluded.state, history = excluded.history, run_id = excluded.run_id),
    caused AS (
        INSERT INTO events (result_seq, n, run_id, claim_id, event, data)
        SELECT s.seq, e.n, e.run_id, e.claim_id, e.event, e.data
        FROM unnest($17::text[], $18::text[], $19::integer[], $20::text[], $21::text[])
            AS e(run_id, claim_id, n, event, data)
        JOIN stored AS s ON s.run_id = e.run_id AND s.claim_id = e.claim_id)
    SELECT count(*) FROM stored
"""
"""A batch already fenced and folded, in one statement: its results (in the order given, so their
`seq` is the order decided), the claims marked done, the claims' states after them, and the
events they caused, keyed by the result's `seq`. Run under `LOCK_CLAIMS`, after `DECIDED`: every
result is new to its run, which the count returned confirms."""
RESTART_STATES = """
    UPDATE claim_states AS s SET state = u.state, history = u.history
    FROM unnest($1::text[], $2::text[], $3::text[]) AS u(claim_id, state, history)
    WHERE s.claim_id = u.claim_id
"""
"""An import that changed claims' URLs: their histories start again (the run of the last result stays)."""

TAG_COUNTS = """
    WITH counts AS (
        SELECT t.key AS key, t.value AS value, r.status AS status, count(*) AS n
        FROM results AS r, jsonb_each_text(r.tags::jsonb) AS t WHERE r.run_id = $1 GROUP BY 1, 2, 3),
    ranked AS (
        SELECT key, value, row_number() OVER (PARTITION BY key ORDER BY sum(n) DESC, value) AS rank
        FROM counts GROUP BY key, value)
    SELECT c.key, CASE WHEN rk.rank <= $2 THEN c.value END AS value, c.status, sum(c.n)::bigint
    FROM counts AS c JOIN ranked AS rk ON rk.key = c.key AND rk.value = c.value
    GROUP BY 1, 2, 3 ORDER BY 1, min(rk.rank), 3
"""
FLAG_COUNTS = """
    SELECT f.value, count(*) FROM results AS r, jsonb_array_elements_text(r.flags::jsonb) AS f
    WHERE r.run_id = $1 GROUP BY f.value ORDER BY 2 DESC, 1
"""
RESULTS_PAGE = """
    SELECT seq, data FROM results
    WHERE run_id = $1 AND (cardinality($2::text[]) = 0 OR status = ANY ($2)) AND seq > $3
    ORDER BY seq LIMIT $4
"""
EXPORT_PAGE = """
    SELECT c.seq, r.data, c.expected_anchor, c.expected_rel, c.match
    FROM claims AS c JOIN results AS r ON r.claim_id = c.id
    WHERE r.run_id = $1 AND (cardinality($2::text[]) = 0 OR r.status = ANY ($2)) AND c.seq > $3
    ORDER BY c.seq LIMIT $4
"""
"""A page of a run's results with their claims' fields, in the order the claims were first imported."""

# Monitoring reads. Events come in the order stored: by the result that caused them, then in turn.
RUN_EVENTS = """
    SELECT result_seq, n, data FROM events
    WHERE run_id = $1 AND (cardinality($2::text[]) = 0 OR event = ANY ($2)) AND (result_seq, n) > ($3, $4)
    ORDER BY result_seq, n LIMIT $5
"""
RUNS_AFTER = "SELECT id FROM runs WHERE seq > (SELECT seq FROM runs WHERE id = $1) ORDER BY seq"
CLAIM = "SELECT 1 FROM claims WHERE id = $1"
CLAIM_RESULTS = """
    SELECT r.data FROM results AS r JOIN runs AS ru ON ru.id = r.run_id
    WHERE r.claim_id = $1 ORDER BY ru.seq
"""
CLAIM_EVENTS = "SELECT data FROM events WHERE claim_id = $1 ORDER BY result_seq, n"
LATEST_RESULT = """
    SELECT r.data FROM results AS r JOIN runs AS ru ON ru.id = r.run_id
    WHERE r.claim_id = $1 ORDER BY ru.seq DESC LIMIT 1
"""
RUN_RESULT = "SELECT data FROM results WHERE run_id = $1 AND claim_id = $2"
STATE_COUNTS = "SELECT coalesce(state, 'new') AS state, count(*) FROM results WHERE run_id = $1 GROUP BY 1"
"""A result stored before states existed counts as `new`, as the report's figures read it."""
REPORT_ROWS = """
    SELECT r.seq, r.data, c.expected_anchor FROM results AS r LEFT JOIN claims AS c ON c.id = r.claim_id
    WHERE r.run_id = $1 AND r.seq > $2 ORDER BY r.seq LIMIT $3
"""
RUN_POINT = """
    SELECT
        (SELECT count(*) FROM results WHERE run_id = $1 AND state IN ('live', 'suspect')),
        (SELECT count(DISTINCT referring_domain) FROM results
         WHERE run_id = $1 AND state IN ('live', 'suspect')),
        (SELECT count(*) FROM events WHERE event = 'found' AND run_id = $1),
        (SELECT count(*) FROM events WHERE event = 'lost' AND run_id = $1),
        (SELECT count(*) FROM events WHERE event = 'recovered' AND run_id = $1)
"""
"""A run's point on the over-time series: live claims, their referring domains (of the sources the
results were checked on), found, lost and recovered events; kept in `runs.points` when it stops."""
RUN_POINTS = "SELECT id, started_at, status, points FROM runs ORDER BY seq"
SET_POINTS = "UPDATE runs SET points = $2 WHERE id = $1"
STOPPED_RUNS = "SELECT id FROM runs WHERE status <> 'running' ORDER BY seq"
ATTACH_IN_STATES = """
    WITH attached AS (
        INSERT INTO run_claims (run_id, claim_id, page_key, host)
        SELECT $1, c.id, c.page_key, c.host FROM claim_states AS s JOIN claims AS c ON c.id = s.claim_id
        WHERE s.state = ANY ($2::text[])
        ON CONFLICT DO NOTHING RETURNING host),
    new_hosts AS (
        INSERT INTO hosts (run_id, host) SELECT DISTINCT $1, host FROM attached ON CONFLICT DO NOTHING)
    SELECT count(*) FROM attached
"""
ATTACH_NEVER_FOLDED = """
    WITH attached AS (
        INSERT INTO run_claims (run_id, claim_id, page_key, host)
        SELECT $1, c.id, c.page_key, c.host FROM claims AS c
        WHERE NOT EXISTS (SELECT 1 FROM claim_states AS s WHERE s.claim_id = c.id)
        ON CONFLICT DO NOTHING RETURNING host),
    new_hosts AS (
        INSERT INTO hosts (run_id, host) SELECT DISTINCT $1, host FROM attached ON CONFLICT DO NOTHING)
    SELECT count(*) FROM attached
"""
"""Claims without a folded result are `new`: `verify --states new` takes them too."""

# Rebuilding the fold from the results alone (`postgres_history.refold`).
LOCK_RUNS = "SELECT id FROM runs ORDER BY seq FOR NO KEY UPDATE"
LOCK_ALL_CLAIMS = "LOCK TABLE claims IN EXCLUSIVE MODE"
"""A rebuild's locks: the runs' rows first, as an import takes its run's (so the two never wait for
each other in a cycle), then every claim, as a save or an import locks some: none of them changes
a history until the rebuild has committed. Readers, leases and request places go on."""
CLEAR_STATES = "DELETE FROM claim_states"
CLEAR_EVENTS = "DELETE FROM events"
RUN_ORDER = "SELECT id, settings FROM runs ORDER BY seq"
CLAIMS_RESULTS = """
    SELECT r.seq, r.claim_id, r.state, r.referring_domain, r.data, c.source_url, c.target_url,
           c.invalid_reason
    FROM results AS r JOIN runs AS ru ON ru.id = r.run_id LEFT JOIN claims AS c ON c.id = r.claim_id
    WHERE r.claim_id IN (SELECT DISTINCT claim_id FROM results WHERE claim_id > $1 ORDER BY claim_id LIMIT $2)
    ORDER BY r.claim_id, ru.seq
"""
"""Every result of the next `$2` claims after claim `$1` that have results, each claim's in run order."""
PUT_STATES = """
    INSERT INTO claim_states (claim_id, state, history, run_id)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
    ON CONFLICT (claim_id) DO UPDATE SET
        state = excluded.state, history = excluded.history, run_id = excluded.run_id
"""
ADD_EVENTS = """
    INSERT INTO events (result_seq, n, run_id, claim_id, event, data)
    SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::text[])
"""
RESTAMP = """
    UPDATE results AS r SET state = u.state, referring_domain = u.referring_domain, data = u.data
    FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[])
        AS u(run_id, seq, state, referring_domain, data)
    WHERE r.run_id = u.run_id AND r.seq = u.seq
"""
"""Results whose state (or referring domain) a rebuild found different: written again, `data` too."""
