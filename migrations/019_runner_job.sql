-- What each runner sends and how fast, for `status` (as on PostgreSQL, where several
-- runners may send one job; here the runner lock still admits one at a time).

ALTER TABLE runners ADD COLUMN job_id INTEGER;

ALTER TABLE runners ADD COLUMN rate_per_s REAL;
