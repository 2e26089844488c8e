-- How many runs of a job in a row ended "try later" (exit 75: the send window closed, an
-- outage lasted longer than --max-outage), and since when (the end of the first of them), so
-- that a cron wrapper can tell one night of 75 from a week of them (`status --json`). Any other
-- end of a run (finished, stopped, interrupted otherwise) sets it back to 0 and NULL. A new job
-- of a later export at the same path to the same target goes on from the count of the latest
-- job of that path and target: tomorrow's file carries on what tonight's could not finish.

ALTER TABLE jobs ADD COLUMN try_later_runs INTEGER NOT NULL DEFAULT 0;

ALTER TABLE jobs ADD COLUMN try_later_since REAL;
