-- The sending rate measured by the runner, so that `status` in another process can show
-- rate and ETA: rows settled per second over the last interval, and when it was measured.
ALTER TABLE jobs ADD COLUMN send_rate_per_s REAL;
ALTER TABLE jobs ADD COLUMN send_rate_at REAL;
