"""What makes a runner live on PostgreSQL, as SQL: its lock held and its lease running.

A runner holds an advisory lock of its own id while its connection lives (``runner.py``):
the server drops it at once for a killed process, and after TCP keepalive for a host gone.
A host that hangs keeps its connection, and so its lock: the lease bounds that. Each runner
renews ``runners.lease_until`` every third of ``LEASE_S``, by the database server's clock
(hosts' clocks differ); a runner whose lease ran out is taken for dead, its rows in flight
taken back, counted as unknown outcomes, as after a crash. One lease per runner covers all
the rows it holds, so renewing it is one statement whatever their number.
"""

from __future__ import annotations

from bulkimport.storage.postgres.database import RUNNER_SPACE

#: How long a runner that stops renewing keeps its rows (a hung host, a paused process).
LEASE_S = 30.0

#: The database server's clock, in Unix seconds.
SERVER_NOW = "extract(epoch FROM clock_timestamp())::float8"

#: The ids of the runners whose advisory lock is held now in this database.
LOCKED_RUNNERS = (
    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted"
    f" AND classid = {RUNNER_SPACE}::oid AND objsubid = 2"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)

#: The ids of the live runners: their lock held and their lease running.
LIVE_RUNNERS = (
    f"SELECT id FROM runners WHERE ended_at IS NULL AND lease_until > {SERVER_NOW}"
    f" AND id IN ({LOCKED_RUNNERS})"
)
