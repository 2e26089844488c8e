-- Rows without the UNIQUE (job_id, line) index.
--
-- That index was a third B-tree to update on every insert (about 1.2 s of 1 M rows) and
-- guaranteed nothing the ingest does not already: each batch of rows is committed together
-- with the byte offset and line where reading resumes (Queue.ingest), so a line is stored
-- once however often reading is interrupted. Reports walk a job's rows in id order, which
-- is line order (rows are inserted in line order).
--
-- SQLite cannot drop a table constraint: the table is rebuilt, and its indexes and triggers
-- made again as in 001_initial.sql. Stored cells keep their JSON form; new rows may use the
-- joined form (bulkimport.rows.encode_cells), and both decode.

CREATE TABLE rows_new (
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
    updated_at REAL NOT NULL
);

INSERT INTO rows_new (id, job_id, line, state, record, cells, attempts, next_attempt_at,
    last_code, last_message, created_at, updated_at)
SELECT id, job_id, line, state, record, cells, attempts, next_attempt_at,
    last_code, last_message, created_at, updated_at
FROM rows ORDER BY id;

-- Dropping the table drops its indexes and triggers too; the counters in job_counts stay.
DROP TABLE rows;

ALTER TABLE rows_new RENAME TO rows;

CREATE INDEX rows_pending ON rows (job_id, id, next_attempt_at) WHERE state = 'pending';

CREATE INDEX rows_in_flight ON rows (job_id, id) WHERE state = 'in_flight';

CREATE INDEX rows_problem ON rows (job_id, updated_at)
    WHERE state IN ('rejected', 'failed', 'invalid') OR (state = 'pending' AND last_code IS NOT NULL);

CREATE INDEX rows_done_record ON rows (record) WHERE state = 'done';

-- State changes stay counted per row by SQLite itself, whoever writes them; inserts are
-- counted per batch by the ingest (see 001_initial.sql).
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
