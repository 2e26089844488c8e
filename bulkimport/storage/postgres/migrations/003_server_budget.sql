-- One budget per server (--server-rate): when the next call to each server may start,
-- shared by every host that sends through this database. A reservation of N calls moves
-- next_at on by N / rate in one statement (bulkimport/storage/postgres/budget.py), on the
-- server's clock (clock_timestamp()): the hosts' clocks may differ, the database's is one.
-- `server` is the target URL's key (scheme, host, port, path: settings.server_key), never
-- a credential. Times are Unix seconds, as everywhere else.

--
-- In an outage the runners of a server take turns to probe it: probe_at is when the next
-- probe may go (whoever takes the turn moves it on), and backs counts the probes that found
-- the server answering again, so that a runner waiting sees it is back.

CREATE TABLE server_budgets (
    server TEXT PRIMARY KEY,
    next_at DOUBLE PRECISION NOT NULL,
    probe_at DOUBLE PRECISION,
    backs BIGINT NOT NULL DEFAULT 0
);
