"""The PostgreSQL ``Retention``: pruning finished jobs, forgetting a customer, VACUUM.

A pruned job's settled rows are folded into the latest records first (for the targets that
keep them), then the job goes with its rows and counters, in one transaction. Job ids
come from a sequence: a pruned job's number is never given again.

Forgetting a customer deletes their rows and latest record, then VACUUMs the two tables so
that the space is marked free. PostgreSQL gives no ``secure_delete``: until that space is
reused, and in the write-ahead log until it is recycled, the bytes may remain on the
server's disk (docs/scale-out.md says so).
"""

from __future__ import annotations

from bulkimport.storage.columns import JOB_COLUMNS, job_from_row
from bulkimport.storage.postgres.database import Database
from bulkimport.storage.postgres.reports import LatestRecords
from bulkimport.storage.values import Forgotten, Job

# Finished before the cut, or superseded before it (supersede() moves updated_at).
_PRUNABLE = (
    "(state = 'finished' AND finished_at < $1) OR (superseded_by IS NOT NULL AND updated_at < $1)"
)
_WHERE_HELD = "(bulkimport_holds(record, $1) OR convert_to($1, 'UTF8') = ANY(cells))"
_SIZE = (
    "SELECT sum(pg_total_relation_size(t)) FROM"
    " unnest('{rows,jobs,job_counts,latest_records}'::regclass[]) AS t"
)


class PostgresRetention:
    """Forgets the finished jobs, and customers, of one database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def prune(self, finished_before_s: float) -> list[Job]:
        """Drop the jobs finished (or superseded) before ``finished_before_s``, with their
        rows, after folding their done rows into the latest records; return them."""
        found = await self._db.fetch(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE {_PRUNABLE} ORDER BY id", finished_before_s
        )
        latest = LatestRecords(self._db)
        pruned: list[Job] = []
        for row in found:
            job = job_from_row(row)
            scope = await latest.known_scope(job.target_key)
            if scope is not None:
                await latest.fold_job(job.id, *scope)
            async with self._db.transaction() as conn:
                await conn.execute("DELETE FROM rows WHERE job_id = $1", job.id)
                await conn.execute("DELETE FROM jobs WHERE id = $1", job.id)
            pruned.append(job)
        return pruned

    async def compact(self) -> int:
        """VACUUM the tables that pruning empties; return the bytes given back (0 if none:
        plain VACUUM mostly keeps the space for the next rows)."""
        before = int(await self._db.fetchval(_SIZE))
        await self._db.execute("VACUUM rows, jobs, job_counts, latest_records")
        return max(0, before - int(await self._db.fetchval(_SIZE)))

    async def forget(self, key: str) -> Forgotten:
        """Erase the rows that hold ``key`` whole (a field's value or a cell) from every
        job, and the customer's latest records."""
        async with self._db.transaction() as conn:
            found = await conn.fetch(
                f"WITH gone AS (DELETE FROM rows WHERE {_WHERE_HELD} RETURNING job_id, state),"
                " tally AS (SELECT job_id, state, count(*) AS n FROM gone GROUP BY job_id, state),"
                " counted AS (UPDATE job_counts c SET n = c.n - tally.n FROM tally"
                " WHERE c.job_id = tally.job_id AND c.state = tally.state),"
                " totals AS (UPDATE jobs SET total_rows = greatest(0, total_rows - t.n) FROM"
                " (SELECT job_id, sum(n) AS n FROM tally GROUP BY job_id) AS t WHERE id = t.job_id)"
                " SELECT job_id, n FROM tally",
                key,
            )
            latest = await conn.execute("DELETE FROM latest_records WHERE customer = $1", key)
        await self._db.execute("VACUUM rows, latest_records")
        return Forgotten(
            rows=sum(int(n) for _, n in found),
            latest_records=int(latest.rpartition(" ")[2]),
            jobs=tuple(sorted({int(job_id) for job_id, _ in found})),
        )
