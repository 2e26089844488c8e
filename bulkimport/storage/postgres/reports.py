"""The PostgreSQL ``RowReports``, and what each customer last received (``latest_records``).

Incremental loads work as in SQLite (``bulkimport/storage/sqlite/latest.py``): a job's done
(or unknown) rows are folded into the latest records of their target when needed, before a
lookup and before the job is pruned, each fold taking the rows settled since the last one;
the newest wins. Here the customer and the digest (md5) are computed by the server, and a
fold, a lookup with its skips and its counters, are one statement each.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection
from typing import Any

from bulkimport.rows import TargetRef
from bulkimport.states import RowState
from bulkimport.storage.postgres.database import Database
from bulkimport.storage.postgres.ingest import decode_cells
from bulkimport.storage.postgres.moves import counted_move
from bulkimport.storage.values import RowView, Unchanged

_VIEW_COLUMNS = "id, line, state, cells, record, attempts, last_code, last_message"
_PROBLEM = (
    "(state IN ('rejected', 'failed', 'invalid') OR (state = 'pending' AND last_code IS NOT NULL))"
)
_RESET = (
    counted_move(
        job="$1",
        prior="SELECT id, state FROM rows WHERE job_id = $1 AND state = ANY($2::text[])"
        " AND record IS NOT NULL FOR UPDATE",
        changes="state = 'pending', attempts = 0, next_attempt_at = NULL, updated_at = $3",
    )
    + " SELECT count(*) FROM moved"
)

# Folding job $2's rows settled since $4 into target $1's latest records, keyed by field $3:
# per customer, the job's newest row; a newer record replaces an older one.
_FOLD = (
    "INSERT INTO latest_records (target_id, customer, digest, done_at, job_id, unknowns)"
    " SELECT DISTINCT ON (customer) $1, customer, digest, updated_at, $2, unknowns FROM ("
    " SELECT bulkimport_customer(record, $3) AS customer, decode(md5(record), 'hex') AS digest,"
    " updated_at, id, CASE state WHEN 'unknown' THEN greatest(unknowns, 1) ELSE 0 END"
    " AS unknowns FROM rows WHERE job_id = $2 AND state IN ('done', 'unknown')"
    " AND updated_at > $4) AS settled"
    " WHERE customer IS NOT NULL ORDER BY customer, updated_at DESC, id DESC"
    " ON CONFLICT (target_id, customer) DO UPDATE SET digest = excluded.digest,"
    " done_at = excluded.done_at, job_id = excluded.job_id,"
    # A record loaded for sure, then maybe loaded again as it was: the server holds it.
    " unknowns = CASE WHEN excluded.digest = latest_records.digest"
    " AND latest_records.unknowns = 0 THEN 0 ELSE excluded.unknowns END"
    " WHERE excluded.done_at >= latest_records.done_at"
)
# Jobs of target $1 (but $2) whose done or unknown rows are not all folded in yet.
_UNFOLDED = (
    "SELECT DISTINCT jobs.id FROM jobs JOIN job_counts ON job_counts.job_id = jobs.id"
    " AND job_counts.state IN ('done', 'unknown')"
    " WHERE jobs.target_key = $1 AND jobs.id <> $2 AND job_counts.n > 0"
    " AND (jobs.folded_at IS NULL OR jobs.updated_at > jobs.folded_at) ORDER BY jobs.id"
)
# The pending rows of job $1 with their customer (by field $3) and digest, and the latest
# record of that customer at target $2 from another job.
_STAMPS = (
    "stamps AS (SELECT id, bulkimport_customer(record, $3) AS customer,"
    " decode(md5(record), 'hex') AS digest FROM rows WHERE job_id = $1 AND state = 'pending'),"
    " changing AS (SELECT customer FROM stamps WHERE customer IS NOT NULL GROUP BY customer"
    " HAVING count(DISTINCT digest) > 1),"
    " known AS (SELECT stamps.id, stamps.customer, latest.unknowns FROM stamps"
    " JOIN latest_records AS latest ON latest.target_id = $2"
    " AND latest.customer = stamps.customer AND latest.digest = stamps.digest"
    " WHERE latest.job_id <> $1)"
)
# Skipped: equal to their customer's latest record, loaded for sure, and no other pending
# row of the job for that customer differs (the file's last word is sent). Rows equal to a
# record another job may have loaded are sent with its unknown outcomes as their own.
_SKIP_UNCHANGED = (
    counted_move(
        job="$1",
        before=_STAMPS,
        prior="SELECT r.id, r.state FROM rows r JOIN known ON known.id = r.id"
        " WHERE r.state = 'pending' AND known.unknowns = 0"
        " AND known.customer NOT IN (SELECT customer FROM changing) FOR UPDATE OF r",
        changes="state = 'skipped', updated_at = $4",
    )
    + ", maybe AS (UPDATE rows r SET unknowns = known.unknowns FROM known"
    " WHERE r.id = known.id AND r.state = 'pending' AND known.unknowns > r.unknowns"
    " RETURNING r.id)"
    " SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM stamps WHERE customer IS NULL),"
    " (SELECT count(*) FROM maybe)"
)


def view_from_row(row: Any) -> RowView:
    return RowView(
        id=row[0],
        line=row[1],
        state=RowState(row[2]),
        cells=decode_cells(row[3]),
        record=row[4],
        attempts=row[5],
        last_code=row[6],
        last_message=row[7],
    )


class LatestRecords:
    """The latest record of each customer, per target, in one database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def scope(self, target_key: str, key_field: str) -> int:
        """The id under which ``target_key``'s customers are kept, keyed by ``key_field``;
        another key field than last time starts them over (its jobs are folded again)."""
        async with self._db.transaction() as conn:
            found = await conn.fetchrow(
                "INSERT INTO targets (target_key, key_field) VALUES ($1, $2)"
                " ON CONFLICT (target_key) DO UPDATE SET key_field = targets.key_field"
                " RETURNING id, key_field",
                target_key,
                key_field,
            )
            target_id, field = int(found[0]), found[1]
            if field != key_field:
                await conn.execute("DELETE FROM latest_records WHERE target_id = $1", target_id)
                await conn.execute(
                    "UPDATE targets SET key_field = $1 WHERE id = $2", key_field, target_id
                )
                await conn.execute(
                    "UPDATE jobs SET folded_at = NULL WHERE target_key = $1", target_key
                )
        return target_id

    async def known_scope(self, target_key: str) -> tuple[int, str] | None:
        """The id and key field of a target whose customers are kept, if any."""
        found = await self._db.fetch(
            "SELECT id, key_field FROM targets WHERE target_key = $1", target_key
        )
        return (int(found[0][0]), str(found[0][1])) if found else None

    async def fold_target(
        self, target_key: str, target_id: int, key_field: str, *, except_job: int
    ) -> None:
        """Fold the settled rows of the target's jobs (but ``except_job``) not folded yet."""
        for (job_id,) in await self._db.fetch(_UNFOLDED, target_key, except_job):
            await self.fold_job(job_id, target_id, key_field)

    async def fold_job(self, job_id: int, target_id: int, key_field: str) -> None:
        """Fold the job's rows settled since its last fold into the latest records."""
        async with self._db.transaction() as conn:
            since = await conn.fetchval(
                "SELECT folded_at FROM jobs WHERE id = $1 FOR UPDATE", job_id
            )
            folded_at = time.time()
            await conn.execute(
                _FOLD, target_id, job_id, key_field, since if since is not None else -1.0
            )
            await conn.execute("UPDATE jobs SET folded_at = $1 WHERE id = $2", folded_at, job_id)


class PostgresReports:
    """What the rows of one database's jobs add up to, and the rows that need a person."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def counts(self, job_id: int) -> dict[RowState, int]:
        """Rows of the job per state; every state is present, zeros included."""
        counts = dict.fromkeys(RowState, 0)
        for state, n in await self._db.fetch(
            "SELECT state, n FROM job_counts WHERE job_id = $1", job_id
        ):
            counts[RowState(state)] = n
        return counts

    async def last_errors(self, job_id: int, limit: int = 5) -> list[RowView]:
        """The most recent problem rows: rejected, failed, invalid, or pending after an error."""
        rows = await self._db.fetch(
            f"SELECT {_VIEW_COLUMNS} FROM rows WHERE job_id = $1 AND {_PROBLEM}"
            " ORDER BY updated_at DESC, id DESC LIMIT $2",
            job_id,
            limit,
        )
        return [view_from_row(row) for row in rows]

    async def iter_rows(
        self, job_id: int, states: Collection[RowState], batch: int = 1000
    ) -> AsyncIterator[RowView]:
        """Rows of the job in ``states``, in line order, ``batch`` at a time (by id: a job's
        rows are inserted in line order)."""
        wanted = [RowState(state).value for state in states]
        if not wanted:
            return
        after = 0
        while True:
            rows = await self._db.fetch(
                f"SELECT {_VIEW_COLUMNS} FROM rows WHERE job_id = $1 AND id > $2"
                " AND state = ANY($3::text[]) ORDER BY id LIMIT $4",
                job_id,
                after,
                wanted,
                batch,
            )
            for row in rows:
                yield view_from_row(row)
            if len(rows) < batch:
                return
            after = rows[-1][0]

    async def reset_rows(self, job_id: int, states: Collection[RowState]) -> int:
        """Rows in ``states`` that have a record back to pending, attempts reset."""
        wanted = [RowState(state).value for state in states]
        if not wanted:
            return 0
        return int(await self._db.fetchval(_RESET, job_id, wanted, time.time()))

    async def mark_unchanged_skipped(
        self, job_id: int, target: TargetRef, key_field: str
    ) -> Unchanged:
        """Skip the job's pending rows equal to the latest record their customer received
        from another job to ``target`` (see ``RowReports.mark_unchanged_skipped``)."""
        latest = LatestRecords(self._db)
        target_id = await latest.scope(target.key, key_field)
        await latest.fold_target(target.key, target_id, key_field, except_job=job_id)
        found = await self._db.fetch(_SKIP_UNCHANGED, job_id, target_id, key_field, time.time())
        skipped, keyless, maybe_loaded = found[0]
        return Unchanged(int(skipped), int(keyless), int(maybe_loaded))
