-- Whether a job's file is read to its end, as a fact of its own.
--
-- Sending may start while the file is still being read (the first batch committed is
-- enough), so the job's state (running, stopped, interrupted) no longer tells whether rows
-- may still be added: read_done does. Rows are added only to a job not yet read to its end.

ALTER TABLE jobs ADD COLUMN read_done INTEGER NOT NULL DEFAULT 0;

-- Before this version, a job was read to its end once it left `reading`, except one
-- interrupted while reading (it had never run).
UPDATE jobs SET read_done = 1
WHERE state <> 'reading' AND NOT (state = 'interrupted' AND started_at IS NULL);
