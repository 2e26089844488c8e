-- Jobs, rows and per-state counters of the queue.
--
-- Times are Unix seconds (REAL). States are the text values of bulkimport.states.

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    state TEXT NOT NULL
        CHECK (state IN ('reading', 'ready', 'running', 'finished', 'stopped', 'interrupted')),
    file_path TEXT NOT NULL,
    file_size INTEGER NOT NULL,
    file_mtime_ns INTEGER NOT NULL,
    file_head_sha256 TEXT NOT NULL,
    -- Server URL + org + campaign: rows loaded to the same target can be skipped later.
    target_key TEXT NOT NULL,
    -- Settings without the password (checked on the way in), and the reader's FileFormat.
    settings_json TEXT NOT NULL,
    format_json TEXT NOT NULL,
    -- Where reading stopped: committed together with each batch of rows.
    read_offset INTEGER NOT NULL DEFAULT 0,
    read_line INTEGER NOT NULL DEFAULT 0,
    total_rows INTEGER NOT NULL DEFAULT 0,
    -- Rows found in_flight after a runner died: maybe sent, sent again.
    resent_unknown INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);

CREATE INDEX jobs_file_target ON jobs (file_path, target_key);

CREATE TABLE rows (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    line INTEGER NOT NULL,
    state TEXT NOT NULL,
    record TEXT,
    cells TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    last_code TEXT,
    last_message TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    -- A line is stored once per job, whatever happens between batches.
    UNIQUE (job_id, line)
);

-- Rows are inserted in line order, so id order is line order within a job: claiming walks
-- this small index (pending rows only) in id order and filters on next_attempt_at without
-- touching the table; done rows cost nothing here.
CREATE INDEX rows_pending ON rows (job_id, id, next_attempt_at) WHERE state = 'pending';

-- Recovery and release find the few in-flight rows directly.
CREATE INDEX rows_in_flight ON rows (job_id, id) WHERE state = 'in_flight';

-- Problem rows, for the last errors and the failed-rows report (usually few).
CREATE INDEX rows_problem ON rows (job_id, updated_at)
    WHERE state IN ('rejected', 'failed', 'invalid') OR (state = 'pending' AND last_code IS NOT NULL);

-- Incremental loads: "was this exact record already loaded (done) to this target?".
CREATE INDEX rows_done_record ON rows (record) WHERE state = 'done';

-- Rows per state of each job: status and the progress bar read eight rows instead of counting
-- millions. State changes are counted by the triggers below; inserts are counted per batch by
-- the code that inserts (Queue.add_rows), since a per-row insert trigger slows ingest by ~20%.
CREATE TABLE job_counts (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    n INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, state)
) WITHOUT ROWID;

CREATE TRIGGER jobs_counts_init AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_counts (job_id, state, n)
    VALUES
        (NEW.id, 'pending', 0), (NEW.id, 'in_flight', 0), (NEW.id, 'done', 0),
        (NEW.id, 'duplicate', 0), (NEW.id, 'rejected', 0), (NEW.id, 'failed', 0),
        (NEW.id, 'invalid', 0), (NEW.id, 'skipped', 0);
END;

CREATE TRIGGER rows_count_update AFTER UPDATE OF state ON rows
WHEN OLD.state <> NEW.state
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE job_id = OLD.job_id AND state = OLD.state;
    UPDATE job_counts SET n = n + 1 WHERE job_id = NEW.job_id AND state = NEW.state;
END;

CREATE TRIGGER rows_count_delete AFTER DELETE ON rows
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE job_id = OLD.job_id AND state = OLD.state;
END;
