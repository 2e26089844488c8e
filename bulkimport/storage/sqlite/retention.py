"""The SQLite ``Retention``: pruning finished jobs, and giving their space back.

A pruned job's done rows are folded into the latest records first (``latest.py``), for the
targets that keep them (those of an incremental load), so that ``--skip-unchanged`` works
on after the rows are gone. Rows are deleted a chunk of ids at a time (small transactions,
a small write-ahead log); the pages they free are reused by the next rows read, so a
database pruned every night stays the size of the jobs it keeps. ``compact`` (VACUUM) gives
the free pages back to the file system.
"""

from __future__ import annotations

import contextlib
import os

from bulkimport.storage.sqlite.database import Database, full_is_disk_full
from bulkimport.storage.sqlite.jobs import SqliteJobs
from bulkimport.storage.sqlite.latest import CHUNK_IDS, LatestRecords, row_range
from bulkimport.storage.values import Forgotten, Job

# Finished before the cut, or superseded before it (supersede() moves updated_at).
_PRUNABLE = (
    "(state = 'finished' AND finished_at < :cut)"
    " OR (superseded_by IS NOT NULL AND updated_at < :cut)"
)


class SqliteRetention:
    """Forgets the finished jobs of one database."""

    def __init__(self, db: Database, jobs: SqliteJobs) -> None:
        self._db = db
        self._jobs = jobs

    async def prune(self, finished_before_s: float) -> list[Job]:
        """Drop the jobs finished (or superseded) before ``finished_before_s``, with their
        rows and counters, after folding their done rows into the latest records; return
        them as they were."""
        db = self._db
        async with db.lock:
            found = await db.conn.execute_fetchall(
                f"SELECT id FROM jobs WHERE {_PRUNABLE} ORDER BY id", {"cut": finished_before_s}
            )
        pruned: list[Job] = []
        latest = LatestRecords(db)
        for (job_id,) in found:
            job = await self._jobs.get(job_id)
            scope = await latest.known_scope(job.target_key)
            if scope is not None:
                await latest.fold_job(job_id, *scope)
            await self._drop(job_id)
            pruned.append(job)
        if pruned:
            async with db.lock:
                cursor = await db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                await cursor.close()
        return pruned

    async def _drop(self, job_id: int) -> None:
        db = self._db
        async with db.lock:
            low, high = await row_range(db, job_id)
        for chunk_low in range(low, high + 1, CHUNK_IDS):
            chunk_high = min(chunk_low + CHUNK_IDS - 1, high)
            async with db.lock, db.transaction():
                await db.conn.execute(
                    "DELETE FROM rows WHERE id BETWEEN ? AND ? AND job_id = ?",
                    (chunk_low, chunk_high, job_id),
                )
        async with db.lock:
            # Its rows are gone: with foreign keys on, deleting the job would walk the whole
            # rows table for its children (rows.job_id has no index of its own).
            await db.conn.execute("PRAGMA foreign_keys = OFF")
            try:
                async with db.transaction():
                    await db.conn.execute("DELETE FROM job_counts WHERE job_id = ?", (job_id,))
                    await db.conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
                    await db.conn.execute(
                        "INSERT INTO ids_used (name, last_id) VALUES ('jobs', ?) ON CONFLICT (name)"
                        " DO UPDATE SET last_id = max(last_id, excluded.last_id)",
                        (job_id,),
                    )
            finally:
                await db.conn.execute("PRAGMA foreign_keys = ON")

    async def forget(self, key: str) -> Forgotten:
        """Erase the rows that hold ``key`` whole (any field or cell) from every job, and its
        latest records. ``secure_delete`` overwrites what they held in the file, and the
        write-ahead log is emptied after, so that no copy is left on disk."""
        db = self._db
        # instr() in C finds the few candidates; the Python function checks each whole.
        where = (
            "(instr(record, :key) > 0 OR instr(cells, :key) > 0)"
            " AND bulkimport_holds(record, cells, :key)"
        )
        async with db.lock:
            await db.conn.execute("PRAGMA secure_delete = ON")
            try:
                async with db.transaction():
                    found = await db.conn.execute_fetchall(
                        f"SELECT job_id, state, count(*) FROM rows WHERE {where}"
                        " GROUP BY job_id, state",
                        {"key": key},
                    )
                    await db.conn.execute(f"DELETE FROM rows WHERE {where}", {"key": key})
                    for job_id, state, n in found:
                        await db.conn.execute(
                            "UPDATE job_counts SET n = n - ? WHERE job_id = ? AND state = ?",
                            (n, job_id, state),
                        )
                        await db.conn.execute(
                            "UPDATE jobs SET total_rows = max(0, total_rows - ?) WHERE id = ?",
                            (n, job_id),
                        )
                    cursor = await db.conn.execute(
                        "DELETE FROM latest_records WHERE customer = ?", (key,)
                    )
                    latest = max(cursor.rowcount, 0)
                    await cursor.close()
            finally:
                await db.conn.execute("PRAGMA secure_delete = OFF")
            cursor = await db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            await cursor.close()
        return Forgotten(
            rows=sum(n for _, _, n in found),
            latest_records=latest,
            jobs=tuple(sorted({job_id for job_id, _, _ in found})),
        )

    async def compact(self) -> int:
        """VACUUM the database and empty its write-ahead log; return the bytes given back."""
        db = self._db
        before = _size(db)
        async with db.lock:
            with full_is_disk_full(db.path):
                await db.conn.execute("VACUUM")
            cursor = await db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            await cursor.close()
        return max(0, before - _size(db))


def _size(db: Database) -> int:
    """The bytes of the database file and its write-ahead log."""
    total = 0
    for path in (db.path, db.path.with_name(db.path.name + "-wal")):
        with contextlib.suppress(OSError):
            total += os.stat(path).st_size
    return total
