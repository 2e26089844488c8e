-- Rows that may be on the server: the row state `unknown` (bulkimport.states.RowState).
--
-- A row whose calls ran out with an unknown outcome among them (a timeout, a dropped
-- connection, a proxy's 504: the server may have imported it) ends `unknown`, not `failed`.
--
-- 1. Rows per state are counted in job_counts, one counter per job and state, created with
--    the job: new jobs get the new counter from the trigger, jobs already stored get it here
--    (no row of theirs is in the new state yet). No index: unknown rows are found by walking
--    a job's id range (reports.iter_rows), as the other terminal states are.
-- 2. jobs.unknown_report_path: where the list of a job's unknown rows was last written.

DROP TRIGGER jobs_counts_init;

CREATE TRIGGER jobs_counts_init AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_counts (job_id, state, n)
    VALUES
        (NEW.id, 'pending', 0), (NEW.id, 'in_flight', 0), (NEW.id, 'done', 0),
        (NEW.id, 'duplicate', 0), (NEW.id, 'rejected', 0), (NEW.id, 'failed', 0),
        (NEW.id, 'invalid', 0), (NEW.id, 'skipped', 0), (NEW.id, 'unknown', 0);
END;

INSERT OR IGNORE INTO job_counts (job_id, state, n) SELECT id, 'unknown', 0 FROM jobs;

-- (Beside the failed-rows report, which lists only rows to fix: for status, and so that a
-- list that no longer applies can be removed.)
ALTER TABLE jobs ADD COLUMN unknown_report_path TEXT;

-- 3. latest_records.unknowns: the customer's latest record is one a job may have loaded (its
--    row ended `unknown`, after this many unknown outcomes; 0: it was loaded, `done`). Such a
--    record does not make a row unchanged for --skip-unchanged: the row is sent again, with
--    those unknown outcomes as its own (a duplicate answer then counts done, and the limit on
--    unknown outcomes holds from one night to the next).
ALTER TABLE latest_records ADD COLUMN unknowns INTEGER NOT NULL DEFAULT 0;
