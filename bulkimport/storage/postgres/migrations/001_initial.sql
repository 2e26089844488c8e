-- The PostgreSQL storage: the SQLite schema as it stands after its migration 016, in one
-- piece, with what PostgreSQL does better in place of SQLite's tricks.
--
-- Times are Unix seconds (double precision) and states the text values of
-- bulkimport.states, as in SQLite, so that both backends keep the same facts the same way.
--
-- What differs from SQLite, and why:
-- 1. Ids come from identity columns: a sequence never gives a number twice, even to a job
--    since pruned (SQLite keeps ids_used for that).
-- 2. A row's cells are an array of byte strings (UTF-8): PostgreSQL's text cannot hold a
--    NUL, and the cells of a line rejected for a NUL byte are kept as they were read. No
--    joined form, no cells rebuilt from the record: an array is what both of those imitate.
-- 3. No id ranges per job (first_row_id, last_row_id): rows_job walks a job's rows in id
--    order, which is line order (a job's rows are inserted in line order).
-- 4. Rows per state are counted by the statement that moves them, in a common table
--    expression of that same statement (bulkimport/storage/postgres/moves.py); the counters
--    of a job are inserted with it.
-- 5. A record's customer is found by bulkimport_customer() below and its digest is md5,
--    both in the server: folding and incremental lookups never bring rows to Python.
-- 6. Claims lock the rows they take (FOR UPDATE SKIP LOCKED), and rows name their runner:
--    several runners on one job need only a lease column beside runner_id.

CREATE TABLE jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state TEXT NOT NULL
        CHECK (state IN ('reading', 'ready', 'running', 'finished', 'stopped', 'interrupted')),
    file_path TEXT NOT NULL,
    file_size BIGINT NOT NULL,
    file_mtime_ns BIGINT NOT NULL,
    file_head_sha256 TEXT NOT NULL,
    target_key TEXT NOT NULL,
    target_url TEXT NOT NULL,
    target_org TEXT NOT NULL,
    target_campaign TEXT NOT NULL,
    -- Settings without the password (checked on the way in), and the reader's FileFormat.
    settings_json TEXT NOT NULL,
    format_json TEXT NOT NULL,
    -- Where reading stopped, and what it counted: committed together with each batch.
    read_offset BIGINT NOT NULL DEFAULT 0,
    read_line BIGINT NOT NULL DEFAULT 0,
    total_rows BIGINT NOT NULL DEFAULT 0,
    blank_lines BIGINT NOT NULL DEFAULT 0,
    repaired_decimal BIGINT NOT NULL DEFAULT 0,
    repaired_apostrophe BIGINT NOT NULL DEFAULT 0,
    repaired_text_formula BIGINT NOT NULL DEFAULT 0,
    repaired_control_padding BIGINT NOT NULL DEFAULT 0,
    read_done BOOLEAN NOT NULL DEFAULT false,
    resent_unknown BIGINT NOT NULL DEFAULT 0,
    message TEXT,
    stop_cause TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    send_rate_per_s DOUBLE PRECISION,
    send_rate_at DOUBLE PRECISION,
    outage_since DOUBLE PRECISION,
    next_try_at DOUBLE PRECISION,
    pace_per_s DOUBLE PRECISION,
    latency_s DOUBLE PRECISION,
    window_opens_at DOUBLE PRECISION,
    try_later_runs INTEGER NOT NULL DEFAULT 0,
    try_later_since DOUBLE PRECISION,
    report_path TEXT,
    unknown_report_path TEXT,
    -- Why it stopped, as facts (bulkimport.events.StopFacts as JSON text, read back as
    -- SQLite's is); `message` holds only what jobs stopped before facts were kept said.
    stop_facts TEXT,
    superseded_by BIGINT,
    folded_at DOUBLE PRECISION
);

CREATE INDEX jobs_file_target ON jobs (file_path, target_key);

CREATE TABLE job_counts (
    job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    n BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, state)
);

CREATE TABLE rows (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- No foreign key: its check is a lookup of the job per row inserted, which about
    -- doubles the server's work of storing a row. Rows are added only in the transaction
    -- that moves their job's reading position (so under its row lock), and deleted with it
    -- (retention.py).
    job_id BIGINT NOT NULL,
    line BIGINT NOT NULL,
    state TEXT NOT NULL,
    record TEXT,
    cells BYTEA[] NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    unknowns INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION,
    last_code TEXT,
    last_message TEXT,
    runner_id BIGINT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

-- A job's rows in line order (reports, folding, pruning, forgetting).
CREATE INDEX rows_job ON rows (job_id, id);

-- Claims walk the pending rows of a job in id order: done rows cost nothing here.
CREATE INDEX rows_pending ON rows (job_id, id) WHERE state = 'pending';

-- Recovery finds the few rows in flight, and whose they are.
CREATE INDEX rows_in_flight ON rows (job_id, runner_id) WHERE state = 'in_flight';

-- Problem rows, for the last errors (usually few).
CREATE INDEX rows_problem ON rows (job_id, updated_at)
    WHERE state IN ('rejected', 'failed', 'invalid') OR (state = 'pending' AND last_code IS NOT NULL);

-- One row per process that held the runner lock; claimed rows name it.
CREATE TABLE runners (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL,
    ended_at DOUBLE PRECISION
);

-- Remote imports (`bulkimport remote`): what was asked, what the server said; `url` holds
-- no credentials.
CREATE TABLE remote_imports (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('http', 'ftp')),
    url TEXT NOT NULL,
    target_key TEXT NOT NULL,
    exetime TEXT NOT NULL DEFAULT '',
    delrow TEXT NOT NULL DEFAULT '',
    server_job_id TEXT,
    state TEXT NOT NULL CHECK (state IN ('accepted', 'refused', 'failed')),
    code TEXT,
    message TEXT,
    attempts INTEGER NOT NULL DEFAULT 1
);

-- The Import URLs that ever gave a valid answer: an outage there, a mistake elsewhere.
CREATE TABLE endpoints (
    url TEXT PRIMARY KEY,
    first_answer_at DOUBLE PRECISION NOT NULL,
    last_answer_at DOUBLE PRECISION NOT NULL
);

-- Incremental loads (--skip-unchanged): per target, the key field its customers are kept by,
-- and per customer the digest of the latest record a job loaded (or may have: unknowns > 0).
CREATE TABLE targets (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_key TEXT NOT NULL UNIQUE,
    key_field TEXT NOT NULL
);

CREATE TABLE latest_records (
    target_id BIGINT NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    customer TEXT NOT NULL,
    digest BYTEA NOT NULL,
    done_at DOUBLE PRECISION NOT NULL,
    job_id BIGINT NOT NULL,
    unknowns INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (target_id, customer)
);

-- The value of `field` in a record `name=value||name=value...` (NULL when it has none or it
-- is empty): bulkimport.storage.sqlite.digests.customer_of, in SQL.
CREATE FUNCTION bulkimport_customer(record TEXT, field TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT nullif(split_part(substr(rest, length(field) + 2), '||', 1), '')
    FROM (SELECT CASE
        WHEN starts_with(record, field || '=') THEN record
        WHEN strpos(record, '||' || field || '=') > 0
            THEN substr(record, strpos(record, '||' || field || '=') + 2)
    END AS rest) AS found
$$;

-- Whether a record holds `value` whole as one of its fields' values (forget).
CREATE FUNCTION bulkimport_holds(record TEXT, value TEXT) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT record IS NOT NULL AND strpos(record, value) > 0 AND EXISTS (
        SELECT 1 FROM unnest(string_to_array(record, '||')) AS part
        WHERE strpos(part, '=') > 0 AND substr(part, strpos(part, '=') + 1) = value
    )
$$;
