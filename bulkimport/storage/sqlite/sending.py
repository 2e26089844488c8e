"""The SQLite ``SendQueue``: claiming rows, recording outcomes, recovering a dead runner's rows.

The hot path of sending: every statement here runs on the database's loop connection (see
``database.py``) and is guarded by state, so that a row moves only from where it is expected
to be, and counted in the same transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from bulkimport.rows import ClaimedRow, RowResult
from bulkimport.states import RowState
from bulkimport.storage.sqlite.database import (
    COUNT_MOVES,
    Database,
    count_params,
    immediate,
    moved,
    placeholders,
)
from bulkimport.storage.values import Refunded, RunnerId

# Claiming: the rows are chosen and marked in one statement (in the transaction that also
# counts them), so no other claimer can take them in between. The outer `state = 'pending'`
# is redundant with the subquery; it states the guarantee where the update happens.
_CLAIM = (
    "UPDATE rows SET state = 'in_flight', runner_id = ?, updated_at = ?"
    " WHERE state = 'pending' AND id IN (SELECT id FROM rows INDEXED BY rows_pending"
    " WHERE job_id = ? AND state = 'pending'"
    " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
    " ORDER BY id LIMIT ?)"
    " RETURNING id, line, record, attempts, unknowns"
)
_RECORD = (
    "UPDATE rows SET state = ?, next_attempt_at = ?, attempts = attempts + ?,"
    " unknowns = unknowns + ?, last_code = ?, last_message = ?, updated_at = ?,"
    " runner_id = NULL WHERE id = ? AND job_id = ? AND state = 'in_flight'"
)
# A refund of the last attempt: only rows whose last outcome was recorded (pending again, or
# failed or left unknown by it: their calls ran out), never one in flight or settled
# otherwise. One statement per state, so that each row count says what moved.
_UNCOUNT_FAILED = (
    "UPDATE rows SET attempts = attempts - 1, state = 'pending', next_attempt_at = ?,"
    " updated_at = ? WHERE id = ? AND job_id = ? AND state = ? AND attempts > 0"
)
_RAN_OUT = (RowState.FAILED, RowState.UNKNOWN)
_UNCOUNT_PENDING = (
    "UPDATE rows SET attempts = attempts - 1, updated_at = ?"
    " WHERE id = ? AND job_id = ? AND state = 'pending' AND attempts > 0"
)
# A row settled since (its call sent again before the outage was known, and answered): the
# outage's attempt is taken back, the one that settled it stays.
_UNCOUNT_SETTLED = (
    "UPDATE rows SET attempts = attempts - 1, updated_at = ?"
    " WHERE id = ? AND job_id = ? AND state IN ('done', 'duplicate', 'rejected')"
    " AND attempts > 1"
)
_RELEASE = (
    "UPDATE rows SET state = 'pending', updated_at = ?, runner_id = NULL"
    " WHERE id = ? AND job_id = ? AND state = 'in_flight'"
)
# Rows in flight for a runner other than the caller. With SQLite the caller holds the
# runner lock, so every other runner is gone (a backend with several live runners would
# also leave out the rows of those still alive).
_RECOVER = (
    "UPDATE rows SET state = 'pending', unknowns = unknowns + 1, updated_at = ?,"
    " runner_id = NULL"
    " WHERE job_id = ? AND state = 'in_flight' AND (runner_id IS NULL OR runner_id <> ?)"
)


class SqliteSending:
    """The sending side of the rows of one database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def recover_in_flight(self, job_id: int, runner: RunnerId) -> int:
        """Give back the rows dead runners left in flight; return how many.

        They may have reached the server, so they are counted in ``resent_unknown``;
        their attempts stay as they were. Rows ``runner`` (the caller) claimed are its own
        and stay in flight.
        """
        now = time.time()
        db = self._db
        async with db.lock, db.transaction():
            cursor = await db.conn.execute(_RECOVER, (now, job_id, runner))
            recovered = cursor.rowcount
            await cursor.close()
            if recovered:
                await db.conn.executemany(
                    COUNT_MOVES, count_params(job_id, moved("in_flight", "pending", recovered))
                )
                await db.conn.execute(
                    "UPDATE jobs SET resent_unknown = resent_unknown + ?, updated_at = ?"
                    " WHERE id = ?",
                    (recovered, now, job_id),
                )
        return recovered

    async def held_elsewhere(self, job_id: int, runner: RunnerId) -> int:
        """How many rows of the job are in flight for runners other than ``runner``."""
        db = self._db
        async with db.lock:
            cursor = await db.conn.execute(
                "SELECT count(*) FROM rows WHERE job_id = ? AND state = 'in_flight'"
                " AND runner_id IS NOT ?",
                (job_id, runner),
            )
            [found] = await cursor.fetchall()
            await cursor.close()
        return int(found[0])

    async def claim_batch(
        self, job_id: int, limit: int, *, now_s: float, runner: RunnerId
    ) -> list[ClaimedRow]:
        """Claim up to ``limit`` pending rows that are due at ``now_s``, in line order.

        They become ``in_flight`` for ``runner`` in the same statement that selects them, so
        no other claimer can take them in between, and only rows still ``pending`` are
        returned. A claimer cancelled meanwhile gives the rows back before it ends.
        """
        if limit <= 0:
            return []
        claim = asyncio.ensure_future(self._claim(job_id, limit, now_s, runner))
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            # The claim goes on in the database thread whatever happens here, and nobody
            # would send its rows: left in flight they would count as resent after an
            # unknown outcome at the next start. Give them back instead.
            rows = await claim
            await self.release(job_id, [row.id for row in rows])
            raise

    async def _claim(
        self, job_id: int, limit: int, now_s: float, runner: RunnerId
    ) -> list[ClaimedRow]:
        def claim(conn: sqlite3.Connection) -> list[Any]:
            with immediate(conn):
                rows = conn.execute(_CLAIM, (runner, now_s, job_id, now_s, limit)).fetchall()
                conn.executemany(
                    COUNT_MOVES, count_params(job_id, moved("pending", "in_flight", len(rows)))
                )
            return rows

        db = self._db
        async with db.lock:
            claimed = await db.on_loop(claim)
            db.written(len(claimed))
        # RETURNING gives no order: id order is line order.
        return sorted(map(ClaimedRow._make, claimed))

    async def next_attempt_at(self, job_id: int) -> float | None:
        """When the earliest pending row is due (0.0 if one is due now); None if none pend."""

        def earliest(conn: sqlite3.Connection) -> tuple[Any, ...]:
            return tuple(
                conn.execute(
                    "SELECT MIN(COALESCE(next_attempt_at, 0.0)), COUNT(*) FROM rows"
                    " INDEXED BY rows_pending WHERE job_id = ? AND state = 'pending'",
                    (job_id,),
                ).fetchone()
            )

        async with self._db.lock:
            first, count = await self._db.on_loop(earliest)
        return float(first) if count else None

    async def record_results(
        self, job_id: int, results: Sequence[RowResult], *, runner: RunnerId | None = None
    ) -> int:
        """Record the outcome of a batch of attempts, in one transaction; return how many.

        Each result makes its row terminal, or ``pending`` again at ``next_attempt_at_s``.
        ``attempts`` grows by one when the result is ``counted``. Rows that are not
        ``in_flight`` in this job (already recorded, recovered, released) are left alone.
        (``runner`` changes nothing here: the runner lock admits one runner at a time, and
        its rows in flight are its own.)
        """
        if not results:
            return 0
        now = time.time()
        params: list[tuple[Any, ...]] = []
        for result in results:
            state = result.state
            if state is RowState.IN_FLIGHT:
                raise ValueError(f"row {result.row_id}: a result cannot leave it in_flight")
            retry_at = result.next_attempt_at_s if state is RowState.PENDING else None
            params.append(
                (
                    state,  # a StrEnum: bound as its text, grouped by it in _record
                    retry_at,
                    1 if result.counted else 0,
                    1 if result.unknown else 0,
                    result.code,
                    result.message,
                    now,
                    result.row_id,
                    job_id,
                )
            )
        write = asyncio.ensure_future(self._record(job_id, params))
        try:
            return await asyncio.shield(write)
        except asyncio.CancelledError:
            # The caller has taken these outcomes off its hands: a cancellation (a stop, a
            # shutdown) must not lose them between BEGIN and COMMIT. Finish, then go.
            await write
            raise

    async def _record(self, job_id: int, params: list[tuple[Any, ...]]) -> int:
        by_state: dict[str, list[tuple[Any, ...]]] = {}
        for row in params:
            by_state.setdefault(row[0], []).append(row)

        # Unknown outcomes are counted with the job, as after a crash. (A row recorded
        # twice is counted once: only rows still in flight are recorded.)
        unknown_ids = [row[7] for row in params if row[3]]

        def record(conn: sqlite3.Connection) -> int:
            # One statement per target state (usually one in all), so that its row count
            # says exactly how many rows moved there.
            moves: Counter[str] = Counter()
            with immediate(conn):
                unknown = 0
                if unknown_ids:
                    unknown = conn.execute(
                        "SELECT COUNT(*) FROM rows WHERE job_id = ? AND state = 'in_flight'"
                        f" AND id IN ({placeholders(len(unknown_ids))})",
                        (job_id, *unknown_ids),
                    ).fetchone()[0]
                for state, rows in by_state.items():
                    count = conn.executemany(_RECORD, rows).rowcount
                    moves["in_flight"] -= count
                    moves[state] += count
                conn.executemany(COUNT_MOVES, count_params(job_id, moves))
                if unknown:
                    conn.execute(
                        "UPDATE jobs SET resent_unknown = resent_unknown + ? WHERE id = ?",
                        (unknown, job_id),
                    )
            return -moves["in_flight"]

        db = self._db
        async with db.lock:
            recorded = await db.on_loop(record)
            db.written(recorded)
        return recorded

    async def uncount(self, job_id: int, row_ids: Iterable[int], *, now_s: float) -> Refunded:
        """Take back the attempt of rows that an outage cost: a row it made ``failed`` (or
        ``unknown``) is pending again at ``now_s``; a row settled since keeps the attempt
        that settled it. Return how many rows, by what they were."""
        ids = list(row_ids)
        if not ids:
            return Refunded()
        now = time.time()

        def uncount(conn: sqlite3.Connection) -> Refunded:
            with immediate(conn):
                # Rows pending or settled first, then those whose calls ran out: a row
                # made pending again here is not taken for one that was pending already.
                kept = conn.executemany(
                    _UNCOUNT_PENDING, [(now, row_id, job_id) for row_id in ids]
                ).rowcount
                kept += conn.executemany(
                    _UNCOUNT_SETTLED, [(now, row_id, job_id) for row_id in ids]
                ).rowcount
                moves: Counter[str] = Counter()
                for state in _RAN_OUT:
                    count = conn.executemany(
                        _UNCOUNT_FAILED, [(now_s, now, row_id, job_id, state) for row_id in ids]
                    ).rowcount
                    moves[state] -= count
                    moves["pending"] += count
                conn.executemany(COUNT_MOVES, count_params(job_id, moves))
            return Refunded(-moves[RowState.FAILED], -moves[RowState.UNKNOWN], kept)

        db = self._db
        async with db.lock:
            refunded = await db.on_loop(uncount)
            db.written(refunded.rows)
        return refunded

    async def release(
        self, job_id: int, row_ids: Iterable[int], *, runner: RunnerId | None = None
    ) -> int:
        """Give back rows claimed but never sent (``in_flight`` → ``pending``); return how many.

        Their attempts stay as they were. (``runner`` changes nothing here: one runner at a
        time, and its rows in flight are its own.)
        """
        now = time.time()
        params = [(now, row_id, job_id) for row_id in row_ids]
        if not params:
            return 0

        def release(conn: sqlite3.Connection) -> int:
            with immediate(conn):
                released = conn.executemany(_RELEASE, params).rowcount
                conn.executemany(
                    COUNT_MOVES, count_params(job_id, moved("in_flight", "pending", released))
                )
            return released

        db = self._db
        async with db.lock:
            released = await db.on_loop(release)
            db.written(released)
        return released
