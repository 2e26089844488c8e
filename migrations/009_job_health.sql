-- What sending learns about the server, kept with the jobs and rows.
--
-- 1. rows.unknowns: attempts of the row whose outcome is unknown (a runner killed with it in
--    flight, a timeout or a proxy's 502/504 after the request left): the row is sent again,
--    a bounded number of times, and a duplicate answer then means this job imported it.
-- 2. jobs.stop_cause: why a job stopped before it finished (bulkimport.states.StopCause);
--    it decides the exit code and the advice. Jobs stopped before this version have none.
-- 3. jobs.outage_since, next_try_at: while the server does not answer, since when, and when
--    the next probe goes (status shows it); pace_per_s, latency_s: the pace sending holds
--    and the latency it sees (status shows them).
-- 4. endpoints: the Import URLs that ever gave a valid answer from this database. A URL
--    that never did and gives none now is a mistake (stop at once); one that did is an
--    outage (wait for it).

ALTER TABLE rows ADD COLUMN unknowns INTEGER NOT NULL DEFAULT 0;

ALTER TABLE jobs ADD COLUMN stop_cause TEXT;

ALTER TABLE jobs ADD COLUMN outage_since REAL;

ALTER TABLE jobs ADD COLUMN next_try_at REAL;

ALTER TABLE jobs ADD COLUMN pace_per_s REAL;

ALTER TABLE jobs ADD COLUMN latency_s REAL;

CREATE TABLE endpoints (
    url TEXT PRIMARY KEY,
    first_answer_at REAL NOT NULL,
    last_answer_at REAL NOT NULL
) WITHOUT ROWID;
