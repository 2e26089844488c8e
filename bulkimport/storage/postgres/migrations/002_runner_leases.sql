-- Several runners on one job: leases, the job each runner sends, and who reads a job.
--
-- 1. runners.lease_until (the database server's clock, Unix seconds): a runner renews it
--    while it lives. Its rows in flight are taken back when its connection is gone (its
--    advisory lock, at once for a killed process) or when its lease ran out (a host that
--    hangs while holding its connection). One lease per runner covers every row it holds:
--    renewing is one statement whatever the number of rows.
-- 2. runners.job_id, rate_per_s: what each runner sends and how fast, for `status`.
-- 3. jobs.reader: the runner that reads the job's file (the host that has it); the others
--    send what it stores. Taken over when that runner is gone.

ALTER TABLE runners ADD COLUMN lease_until DOUBLE PRECISION;
ALTER TABLE runners ADD COLUMN job_id BIGINT;
ALTER TABLE runners ADD COLUMN rate_per_s DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN reader BIGINT;

-- The live runners of a job, for `status` and for recovery.
CREATE INDEX runners_live ON runners (job_id) WHERE ended_at IS NULL;
