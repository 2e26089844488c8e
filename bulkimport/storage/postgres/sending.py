"""The PostgreSQL ``SendQueue``: claims, outcomes and recovery, a batch per statement.

Each method is one statement, whatever the number of rows: a claim locks the rows it takes
with ``FOR UPDATE SKIP LOCKED`` (several claimers, in one process or on several hosts, never
wait for each other nor share a row); outcomes travel as arrays and are joined with
``unnest``. Counters move in the same statement (``moves.py``).

Recovery leaves alone the rows of a runner that still lives: each runner holds an advisory
lock of its own while it lives (``runner.py``), which the server drops when its connection
goes, and renews a lease (``leases.py``), which a hung host stops renewing. Outcomes are
recorded only for rows still in flight for the runner that sent them: a row taken back from
a runner whose lease ran out is another's now.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence

from bulkimport.rows import ClaimedRow, RowResult
from bulkimport.states import RowState
from bulkimport.storage.postgres.database import Database
from bulkimport.storage.postgres.leases import LIVE_RUNNERS, SERVER_NOW
from bulkimport.storage.postgres.moves import counted_move
from bulkimport.storage.values import Refunded, RunnerId

_CLAIM = (
    counted_move(
        job="$1",
        # The job as a range, in the order: (job_id, id) is an order only ``rows_pending``
        # (and ``rows_job``) give, so the plan walks the pending rows in order and stops at
        # the limit; with ``job_id = $1`` and ``ORDER BY id`` it went through the primary
        # key, past every row done, or sorted a bitmap of every pending row, each claim.
        prior="SELECT id, state FROM rows WHERE job_id >= $1 AND job_id <= $1"
        " AND state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= $2)"
        # A runner that ended, or whose lease ran out, claims nothing until it renews it.
        f" AND NOT EXISTS (SELECT 1 FROM runners WHERE id = $4 AND (ended_at IS NOT NULL"
        f" OR lease_until <= {SERVER_NOW}))"
        " ORDER BY job_id, id LIMIT $3 FOR UPDATE SKIP LOCKED",
        changes="state = 'in_flight', runner_id = $4, updated_at = $5",
        returning="r.line, r.record, r.attempts, r.unknowns",
    )
    + " SELECT id, line, record, attempts, unknowns FROM moved ORDER BY id"
)

# A table never analyzed (rows just copied in) has no statistics, and the planner, taking
# it for a few rows, sorts a bitmap of all the pending ones for each claim: analyzed once,
# before the first claim. (ANALYZE samples a bounded number of rows, whatever the size.)
_ANALYZE_IF_NEVER = (
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = current_schema()"
    " AND tablename = 'rows' AND attname = 'state') THEN ANALYZE rows; END IF; END $$"
)

_RECORD = counted_move(
    job="$1",
    prior="SELECT r.id, r.state, i.new_state, i.retry_at, i.counted, i.maybe, i.code,"
    " i.message FROM rows r JOIN unnest($2::bigint[], $3::text[], $4::float8[], $5::int[],"
    " $6::int[], $7::text[], $8::text[])"
    " AS i (id, new_state, retry_at, counted, maybe, code, message) ON r.id = i.id"
    " WHERE r.job_id = $1 AND r.state = 'in_flight'"
    " AND ($10::bigint IS NULL OR r.runner_id = $10) FOR UPDATE OF r",
    changes="state = prior.new_state, next_attempt_at = prior.retry_at,"
    " attempts = r.attempts + prior.counted, unknowns = r.unknowns + prior.maybe,"
    " last_code = prior.code, last_message = prior.message, updated_at = $9, runner_id = NULL",
    returning="prior.maybe",
) + (
    # Unknown outcomes are counted with the job, as after a crash.
    ", unsure AS (UPDATE jobs SET resent_unknown = resent_unknown + n FROM"
    " (SELECT count(*) AS n FROM moved WHERE maybe = 1) AS u WHERE id = $1 AND n > 0)"
    " SELECT count(*) FROM moved"
)

# A refund of the last attempt: a row it made failed or unknown is pending again (due at
# $3); a pending one keeps its state; one settled since keeps the attempt that settled it.
_UNCOUNT = (
    counted_move(
        job="$1",
        prior="SELECT id, state FROM rows WHERE job_id = $1 AND id = ANY($2::bigint[])"
        " AND ((state IN ('failed', 'unknown', 'pending') AND attempts > 0)"
        " OR (state IN ('done', 'duplicate', 'rejected') AND attempts > 1)) FOR UPDATE",
        changes="attempts = r.attempts - 1, updated_at = $4,"
        " state = CASE WHEN prior.state IN ('failed', 'unknown') THEN 'pending' ELSE r.state END,"
        " next_attempt_at = CASE WHEN prior.state IN ('failed', 'unknown') THEN $3"
        " ELSE r.next_attempt_at END",
    )
    + " SELECT count(*) FILTER (WHERE from_state = 'failed'),"
    " count(*) FILTER (WHERE from_state = 'unknown'),"
    " count(*) FILTER (WHERE from_state NOT IN ('failed', 'unknown')) FROM moved"
)

_RELEASE = (
    counted_move(
        job="$1",
        prior="SELECT id, state FROM rows WHERE job_id = $1 AND id = ANY($2::bigint[])"
        " AND state = 'in_flight' AND ($4::bigint IS NULL OR runner_id = $4) FOR UPDATE",
        changes="state = 'pending', updated_at = $3, runner_id = NULL",
    )
    + " SELECT count(*) FROM moved"
)

_RECOVER = counted_move(
    job="$1",
    prior="SELECT id, state FROM rows WHERE job_id = $1 AND state = 'in_flight'"
    " AND runner_id IS DISTINCT FROM $2"
    f" AND (runner_id IS NULL OR runner_id NOT IN ({LIVE_RUNNERS})) FOR UPDATE SKIP LOCKED",
    changes="state = 'pending', unknowns = r.unknowns + 1, updated_at = $3, runner_id = NULL",
) + (
    ", job AS (UPDATE jobs SET resent_unknown = resent_unknown + n, updated_at = $3"
    " FROM (SELECT count(*) AS n FROM moved) AS m WHERE id = $1 AND n > 0)"
    " SELECT count(*) FROM moved"
)


class PostgresSending:
    """The sending side of the rows of one database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._analyzed = False

    async def recover_in_flight(self, job_id: int, runner: RunnerId) -> int:
        """Give back the rows that runners no longer alive left in flight (their lock gone
        or their lease run out), counted as resent after an unknown outcome; never the rows
        of ``runner`` or of a live one."""
        return int(await self._db.fetchval(_RECOVER, job_id, runner, time.time()))

    async def held_elsewhere(self, job_id: int, runner: RunnerId) -> int:
        """How many rows of the job are in flight for runners other than ``runner``."""
        return int(
            await self._db.fetchval(
                "SELECT count(*) FROM rows WHERE job_id = $1 AND state = 'in_flight'"
                " AND runner_id IS DISTINCT FROM $2",
                job_id,
                runner,
            )
        )

    async def claim_batch(
        self, job_id: int, limit: int, *, now_s: float, runner: RunnerId
    ) -> list[ClaimedRow]:
        """Up to ``limit`` pending rows due at ``now_s``, in line order, now in flight for
        ``runner``. A claimer cancelled meanwhile gives its rows back before it ends."""
        if limit <= 0:
            return []
        if not self._analyzed:
            await self._db.execute(_ANALYZE_IF_NEVER)
            self._analyzed = True
        claim = asyncio.ensure_future(
            self._db.fetch(_CLAIM, job_id, now_s, limit, runner, time.time())
        )
        try:
            rows = await asyncio.shield(claim)
        except asyncio.CancelledError:
            # The statement may commit whatever happens here, and nobody would send its rows:
            # give them back.
            taken = await claim
            await self.release(job_id, [row[0] for row in taken], runner=runner)
            raise
        return [ClaimedRow(*row) for row in rows]

    async def record_results(
        self, job_id: int, results: Sequence[RowResult], *, runner: RunnerId | None = None
    ) -> int:
        """Record the outcomes of rows in flight (for ``runner``, if given), in one
        statement; return how many (rows no longer in flight in this job, or in flight for
        another runner, are left alone)."""
        if not results:
            return 0
        for result in results:
            if result.state is RowState.IN_FLIGHT:
                raise ValueError(f"row {result.row_id}: a result cannot leave it in_flight")
        pending = RowState.PENDING
        arrays = (
            [r.row_id for r in results],
            [r.state.value for r in results],
            [r.next_attempt_at_s if r.state is pending else None for r in results],
            [int(r.counted) for r in results],
            [int(r.unknown) for r in results],
            [r.code for r in results],
            [r.message for r in results],
        )
        write = asyncio.ensure_future(
            self._db.fetchval(_RECORD, job_id, *arrays, time.time(), runner)
        )
        try:
            return int(await asyncio.shield(write))
        except asyncio.CancelledError:
            # The caller has handed these outcomes over: a cancellation must not lose them.
            await write
            raise

    async def uncount(self, job_id: int, row_ids: Iterable[int], *, now_s: float) -> Refunded:
        """Take back the attempt an outage cost each row (rows in flight are left alone),
        once per row; return how many rows, by what they were."""
        ids = list(row_ids)
        if not ids:
            return Refunded()
        [found] = await self._db.fetch(_UNCOUNT, job_id, ids, now_s, time.time())
        return Refunded(int(found[0]), int(found[1]), int(found[2]))

    async def release(
        self, job_id: int, row_ids: Iterable[int], *, runner: RunnerId | None = None
    ) -> int:
        """Give back rows claimed but never sent, their attempts unchanged (only those
        still in flight for ``runner``, if given: one taken back from it is another's)."""
        ids = list(row_ids)
        if not ids:
            return 0
        return int(await self._db.fetchval(_RELEASE, job_id, ids, time.time(), runner))

    async def next_attempt_at(self, job_id: int) -> float | None:
        """When the earliest pending row is due (0.0: now); None when none is pending."""
        found = await self._db.fetch(
            "SELECT min(coalesce(next_attempt_at, 0.0)), count(*) FROM rows"
            " WHERE job_id = $1 AND state = 'pending'",
            job_id,
        )
        first, count = found[0]
        return float(first) if count else None
