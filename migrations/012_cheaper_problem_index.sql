-- The same rows_problem index, its condition written as equalities.
--
-- SQLite evaluates a partial index's WHERE for every row inserted and for the old and new
-- version of every row updated. `state IN ('rejected', 'failed', 'invalid')` builds the
-- list anew each time: about 2 us per row, a third of the cost of storing a row, paid again
-- on each claim and each outcome. The same condition as three equalities costs a fraction.
-- Queries use it by repeating the expression exactly (reports.py, _PROBLEM_WHERE).

DROP INDEX rows_problem;

CREATE INDEX rows_problem ON rows (job_id, updated_at)
    WHERE state = 'rejected' OR state = 'failed' OR state = 'invalid'
        OR (state = 'pending' AND last_code IS NOT NULL);
