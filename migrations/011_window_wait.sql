-- A runner outside its send window (--window) waits for it to open: when, kept with the job
-- so that `status` in another process can say "outside the send window, sending at 20:00".
-- NULL when the job is not waiting for its window.

ALTER TABLE jobs ADD COLUMN window_opens_at REAL;
