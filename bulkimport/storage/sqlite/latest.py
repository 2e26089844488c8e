"""What each customer last received: the ``latest_records`` table (migration 013).

For each target and customer (the value of the target's key field, e.g. ``phone1``): the
digest of the last record a job loaded (``done``), when, and by which job. Jobs' done rows
are *folded* in when it is needed, not on the sending path (which would pay for it on every
row, for every user): before an incremental lookup (for the target's other jobs) and before a
job is pruned. A job is folded again when it ran since (``jobs.updated_at``, moved by each run
at its start, is later than ``jobs.folded_at``); the fold takes only the rows done since, and
the newest ``done_at`` wins, so the order jobs are folded in does not matter.

Every method here runs under the database's lock, in transactions of at most ``CHUNK_IDS``
row ids, so that the write-ahead log stays small and a runner never waits long.
"""

from __future__ import annotations

import time
from typing import Any

from bulkimport.storage.sqlite.database import COUNT_MOVES, Database, count_params, moved

#: Row ids per transaction when folding, pruning or skipping.
CHUNK_IDS = 50_000

_FOLD = (
    "INSERT INTO latest_records (target_id, customer, digest, done_at, job_id, unknowns)"
    " SELECT :target, customer, bulkimport_digest(record), updated_at, :job, unknowns FROM ("
    " SELECT bulkimport_customer(record, :field) AS customer, record, updated_at,"
    " CASE state WHEN 'unknown' THEN max(unknowns, 1) ELSE 0 END AS unknowns FROM rows"
    " WHERE id BETWEEN :low AND :high AND job_id = :job AND state IN ('done', 'unknown')"
    " AND updated_at > :since)"
    " WHERE customer IS NOT NULL"
    " ON CONFLICT (target_id, customer) DO UPDATE SET digest = excluded.digest,"
    " done_at = excluded.done_at, job_id = excluded.job_id,"
    # A record loaded for sure, then maybe loaded again as it was: the server holds it.
    " unknowns = CASE WHEN excluded.digest = latest_records.digest"
    " AND latest_records.unknowns = 0 THEN 0 ELSE excluded.unknowns END"
    " WHERE excluded.done_at >= latest_records.done_at"
)
# Jobs of a target whose done (or unknown) rows are not all folded in yet.
_UNFOLDED = (
    "SELECT DISTINCT jobs.id FROM jobs JOIN job_counts ON job_counts.job_id = jobs.id"
    " AND job_counts.state IN ('done', 'unknown')"
    " WHERE jobs.target_key = ? AND jobs.id <> ? AND job_counts.n > 0"
    " AND (jobs.folded_at IS NULL OR jobs.updated_at > jobs.folded_at) ORDER BY jobs.id"
)
# The rows to skip: equal to their customer's latest record from another job, and no other
# row of the job for the same customer with other values (the file changes the customer after
# all, and its last word must reach the server). One pass, into a table of ids.
_UNCHANGED = (
    "INSERT INTO temp.skip_ids (id)"
    " SELECT stamp.id FROM temp.skip_stamps AS stamp JOIN latest_records AS latest"
    " ON latest.target_id = :target AND latest.customer = stamp.customer"
    " AND latest.digest = stamp.digest"
    " WHERE latest.job_id <> :job AND latest.unknowns = 0"
    " AND NOT EXISTS (SELECT 1 FROM temp.skip_stamps AS other"
    " WHERE other.customer = stamp.customer AND other.digest <> stamp.digest)"
)
_SKIP = (
    "UPDATE rows SET state = 'skipped', updated_at = ?"
    " WHERE state = 'pending' AND id IN (SELECT id FROM temp.skip_ids WHERE id > ? AND id <= ?)"
)
# Rows whose record an earlier job may have loaded (it ended unknown there): sent again, with
# the earlier unknown outcomes as their own, so that a duplicate answer counts done and the
# limit on unknown outcomes holds across jobs.
_MAYBE_LOADED = (
    "UPDATE rows SET unknowns = latest.unknowns"
    " FROM temp.skip_stamps AS stamp JOIN latest_records AS latest"
    " ON latest.target_id = :target AND latest.customer = stamp.customer"
    " AND latest.digest = stamp.digest"
    " WHERE rows.id = stamp.id AND rows.state = 'pending' AND latest.job_id <> :job"
    " AND latest.unknowns > rows.unknowns"
)
_SCRATCH = ("temp.skip_stamps", "temp.skip_ids")


async def row_range(db: Database, job_id: int) -> tuple[int, int]:
    """The ids between which the job's rows are; the caller holds the lock.

    A job read (in part) before the range was kept has none: its rows are found once, by a
    walk of the whole table, and the range is kept from then on.
    """
    found = await db.conn.execute_fetchall(
        "SELECT first_row_id, last_row_id FROM jobs WHERE id = ?", (job_id,)
    )
    for low, high in found:
        if low is not None and high is not None:
            return int(low), int(high)
    bounds = await db.conn.execute_fetchall(
        "SELECT min(id), max(id) FROM rows WHERE job_id = ?", (job_id,)
    )
    low, high = next(iter(bounds))
    if low is None:
        return 0, -1
    if not db.read_only:
        async with db.transaction():
            await db.conn.execute(
                "UPDATE jobs SET first_row_id = ?, last_row_id = ? WHERE id = ?",
                (low, high, job_id),
            )
    return int(low), int(high)


class LatestRecords:
    """The latest record of each customer, per target, in one database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def scope(self, target_key: str, key_field: str) -> int:
        """The id under which ``target_key``'s customers are kept, keyed by ``key_field``.

        Another key field than last time starts them over: the latest records of the target
        are dropped and its jobs folded again from the rows still kept.
        """
        db = self._db
        async with db.lock, db.transaction():
            found = await db.conn.execute_fetchall(
                "SELECT id, key_field FROM targets WHERE target_key = ?", (target_key,)
            )
            for target_id, field in found:
                if field != key_field:
                    await db.conn.execute(
                        "DELETE FROM latest_records WHERE target_id = ?", (target_id,)
                    )
                    await db.conn.execute(
                        "UPDATE targets SET key_field = ? WHERE id = ?", (key_field, target_id)
                    )
                    await db.conn.execute(
                        "UPDATE jobs SET folded_at = NULL WHERE target_key = ?", (target_key,)
                    )
                return int(target_id)
            cursor = await db.conn.execute(
                "INSERT INTO targets (target_key, key_field) VALUES (?, ?)",
                (target_key, key_field),
            )
            target_id = cursor.lastrowid
            await cursor.close()
        assert target_id is not None
        return target_id

    async def known_scope(self, target_key: str) -> tuple[int, str] | None:
        """The id and key field of a target whose customers are kept, if any."""
        async with self._db.lock:
            found = await self._db.conn.execute_fetchall(
                "SELECT id, key_field FROM targets WHERE target_key = ?", (target_key,)
            )
        return next(((int(i), str(f)) for i, f in found), None)

    async def fold_target(
        self, target_key: str, target_id: int, key_field: str, *, except_job: int
    ) -> int:
        """Fold the done rows of the target's jobs (but ``except_job``) not folded yet;
        return how many jobs were folded."""
        async with self._db.lock:
            jobs = list(await self._db.conn.execute_fetchall(_UNFOLDED, (target_key, except_job)))
        for (job_id,) in jobs:
            await self.fold_job(job_id, target_id, key_field)
        return len(jobs)

    async def fold_job(self, job_id: int, target_id: int, key_field: str) -> None:
        """Fold the job's rows done since its last fold into the latest records."""
        db = self._db
        async with db.lock:
            low, high = await row_range(db, job_id)
            found = await db.conn.execute_fetchall(
                "SELECT folded_at FROM jobs WHERE id = ?", (job_id,)
            )
        since = next((row[0] for row in found), None) or -1.0
        # Every row done before now is taken; a later run of the job moves its updated_at
        # past this mark first (the runner lock keeps anyone from sending meanwhile).
        folded_at = time.time()
        params: dict[str, Any] = {
            "target": target_id, "job": job_id, "field": key_field, "since": since,
        }  # fmt: skip
        for chunk_low in range(low, high + 1, CHUNK_IDS):
            chunk_high = min(chunk_low + CHUNK_IDS - 1, high)
            async with db.lock, db.transaction():
                await db.conn.execute(_FOLD, {**params, "low": chunk_low, "high": chunk_high})
        async with db.lock, db.transaction():
            await db.conn.execute("UPDATE jobs SET folded_at = ? WHERE id = ?", (folded_at, job_id))

    async def skip_unchanged(
        self, job_id: int, target_id: int, key_field: str
    ) -> tuple[int, int, int]:
        """Mark the job's pending rows equal to their customer's latest record (from another
        job) as skipped; return how many, how many pending rows have no customer, and how
        many are sent though another job may have loaded them (its row ended ``unknown``:
        they take its unknown outcomes).

        The rows' customers and digests are computed once into a scratch table, the rows to
        skip found in one pass, then skipped a chunk of ids per transaction."""
        db = self._db
        conn = db.conn
        async with db.lock:
            for table in _SCRATCH:
                await conn.execute(f"DROP TABLE IF EXISTS {table}")
            await conn.execute(
                "CREATE TEMP TABLE skip_stamps"
                " (id INTEGER PRIMARY KEY, customer TEXT, digest INTEGER)"
            )
            await conn.execute("CREATE TEMP TABLE skip_ids (id INTEGER PRIMARY KEY)")
        try:
            async with db.lock:
                await conn.execute(
                    "INSERT INTO temp.skip_stamps (id, customer, digest)"
                    " SELECT id, bulkimport_customer(record, ?), bulkimport_digest(record)"
                    " FROM rows INDEXED BY rows_pending WHERE job_id = ? AND state = 'pending'",
                    (key_field, job_id),
                )
                await conn.execute(
                    "CREATE INDEX temp.skip_stamps_customer ON skip_stamps (customer, digest)"
                )
                counted = await conn.execute_fetchall(
                    "SELECT count(*) FROM temp.skip_stamps WHERE customer IS NULL"
                )
                await conn.execute(_UNCHANGED, {"target": target_id, "job": job_id})
            async with db.lock, db.transaction():
                cursor = await conn.execute(_MAYBE_LOADED, {"target": target_id, "job": job_id})
                maybe_loaded = cursor.rowcount
                await cursor.close()
            keyless = int(next(iter(counted))[0])
            skipped = 0
            after = 0
            while True:
                async with db.lock, db.transaction():
                    bounds = await conn.execute_fetchall(
                        "SELECT max(id), count(*) FROM (SELECT id FROM temp.skip_ids"
                        " WHERE id > ? ORDER BY id LIMIT ?)",
                        (after, CHUNK_IDS),
                    )
                    last, seen = next(iter(bounds))
                    if not seen:
                        break
                    cursor = await conn.execute(_SKIP, (time.time(), after, last))
                    moved_rows = cursor.rowcount
                    await cursor.close()
                    await conn.executemany(
                        COUNT_MOVES, count_params(job_id, moved("pending", "skipped", moved_rows))
                    )
                skipped += moved_rows
                after = last
        finally:
            async with db.lock:
                for table in _SCRATCH:
                    await conn.execute(f"DROP TABLE IF EXISTS {table}")
        return skipped, keyless, maybe_loaded
