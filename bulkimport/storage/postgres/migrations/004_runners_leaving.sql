-- runners.leaving: the runner has stopped sending its job (Ctrl-C, a file it cannot read)
-- and is on its way out. The job's state is set by the runners that still send it; of
-- runners that stop at once, the last to leave sets it (`JobStore.leave`), so a job that
-- every runner left is never left shown as running.

ALTER TABLE runners ADD COLUMN leaving BOOLEAN NOT NULL DEFAULT false;
