-- One budget per server (--server-rate): when the next call to each server may start,
-- shared by every host that sends through this database. A reservation of N calls moves
-- next_at on by N / rate in one statement (bulkimport/storage/postgres/budget.py), on the
-- server's clock (clock_timestamp()): the hosts' clocks may differ, the database's is one.
-- `server` is the target URL's key (scheme, host, port, path: settings.server_key), never
-- a credential. Times are Unix seconds, as everywhere else.

CREATE TABLE server_budgets (
    server TEXT PRIMARY KEY,
    next_at DOUBLE PRECISION NOT NULL
);
