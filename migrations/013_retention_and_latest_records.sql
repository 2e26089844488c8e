-- Months of nightly loads in a bounded database: finished jobs can be pruned, and what each
-- customer last received is kept apart from the rows, compactly, for --skip-unchanged.
--
-- 1. latest_records: per target (server URL + org + campaign) and customer (the value of its
--    key field, e.g. phone1), a digest of the last record a job loaded (`done`) and when. A
--    row is unchanged only if it equals the latest record of its customer, not any record
--    loaded before (night 1 A, night 2 B, night 3 A: A is sent again). Jobs' done rows are
--    folded in before a lookup and before their job is pruned (jobs.folded_at), so the
--    rows themselves can go. 8 bytes of digest instead of the record.
-- 2. targets: the key field each target's latest records are keyed by; another key field
--    starts them over (rows are then sent once more, never skipped wrongly).
-- 3. jobs.first_row_id, last_row_id: the id range of a job's rows (rows are inserted in
--    order, a batch at a time), so that folding, pruning and reports walk one job's rows and
--    not the whole table. NULL for jobs read before this version: the whole table.
-- 4. jobs.report_path: the failed-rows report last written for the job, for status and so
--    that a report that no longer applies can be removed.
-- 5. jobs.superseded_by: a newer job of the same file that finished in its place (same
--    target, or another one after this job's target was refused): `resume` no longer picks
--    it, and it may be pruned.
-- 6. ids_used: the highest id pruned, per table, so that a job id is never given twice (the
--    jobs table has no AUTOINCREMENT, and a pruned job's number may be in a log or a report
--    name, and in latest_records).
-- 7. The rows_done_record index (the text of every done record, built by the first
--    incremental load) is no longer used: latest_records replaces it.
-- 8. rows_count_delete counted each deleted row; rows are deleted only by pruning, which
--    removes their job's counters with them (every statement that moves rows counts them).

CREATE TABLE targets (
    id INTEGER PRIMARY KEY,
    target_key TEXT NOT NULL UNIQUE,
    key_field TEXT NOT NULL
);

CREATE TABLE latest_records (
    target_id INTEGER NOT NULL,
    customer TEXT NOT NULL,
    digest INTEGER NOT NULL,
    done_at REAL NOT NULL,
    job_id INTEGER NOT NULL,
    PRIMARY KEY (target_id, customer)
) WITHOUT ROWID;

CREATE TABLE ids_used (
    name TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
) WITHOUT ROWID;

ALTER TABLE jobs ADD COLUMN first_row_id INTEGER;

ALTER TABLE jobs ADD COLUMN last_row_id INTEGER;

ALTER TABLE jobs ADD COLUMN folded_at REAL;

ALTER TABLE jobs ADD COLUMN report_path TEXT;

ALTER TABLE jobs ADD COLUMN superseded_by INTEGER;

DROP INDEX IF EXISTS rows_done_record;

DROP TRIGGER IF EXISTS rows_count_delete;
