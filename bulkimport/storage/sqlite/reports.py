"""The SQLite ``RowReports``: counts, problem rows, resets and incremental loads."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Collection
from typing import Any

from bulkimport.rows import TargetRef
from bulkimport.states import RowState
from bulkimport.storage.sqlite.cells import Rebuild, cells_of, rebuilder
from bulkimport.storage.sqlite.database import (
    COUNT_MOVES,
    Database,
    count_params,
    moved,
    placeholders,
)
from bulkimport.storage.values import RowView

_ROW_VIEW_COLUMNS = "id, line, state, cells, record, attempts, last_code, last_message"
# The same expression as the rows_problem partial index, so that SQLite can use it.
_PROBLEM_WHERE = (
    "(state = 'rejected' OR state = 'failed' OR state = 'invalid'"
    " OR (state = 'pending' AND last_code IS NOT NULL))"
)
# Built by the first incremental load of a database (mark_unchanged_skipped), then kept.
_DONE_RECORD_INDEX = (
    "CREATE INDEX IF NOT EXISTS rows_done_record ON rows (record) WHERE state = 'done'"
)


def _view_from_row(row: sqlite3.Row | tuple[Any, ...], rebuild: Rebuild | None) -> RowView:
    return RowView(
        id=row[0],
        line=row[1],
        state=RowState(row[2]),
        cells=cells_of(row[3], row[4], rebuild),
        record=row[4],
        attempts=row[5],
        last_code=row[6],
        last_message=row[7],
    )


class SqliteReports:
    """What the rows of one database's jobs add up to, and the rows that need a person."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def counts(self, job_id: int) -> dict[RowState, int]:
        """Rows of the job per state; every state is present, zeros included."""
        async with self._db.lock:
            rows = await self._db.conn.execute_fetchall(
                "SELECT state, n FROM job_counts WHERE job_id = ?", (job_id,)
            )
        counts = dict.fromkeys(RowState, 0)
        for state, n in rows:
            counts[RowState(state)] = n
        return counts

    async def last_errors(self, job_id: int, limit: int = 5) -> list[RowView]:
        """The most recent problem rows: rejected, failed, invalid, or pending after an error."""
        async with self._db.lock:
            rows = await self._db.conn.execute_fetchall(
                f"SELECT {_ROW_VIEW_COLUMNS} FROM rows"
                f" WHERE job_id = ? AND {_PROBLEM_WHERE}"
                " ORDER BY updated_at DESC, id DESC LIMIT ?",
                (job_id, limit),
            )
            rebuild = await self._cells_rebuilder(job_id) if rows else None
        return [_view_from_row(row, rebuild) for row in rows]

    async def _cells_rebuilder(self, job_id: int) -> Rebuild | None:
        """For the job's rows stored without their cells; the caller holds the lock."""
        found = await self._db.conn.execute_fetchall(
            "SELECT format_json FROM jobs WHERE id = ?", (job_id,)
        )
        return next((rebuilder(fmt_json) for (fmt_json,) in found), None)

    async def iter_rows(
        self, job_id: int, states: Collection[RowState], batch: int = 1000
    ) -> AsyncIterator[RowView]:
        """Rows of the job in the given states, in line order, fetched ``batch`` at a time."""
        wanted = [RowState(state).value for state in states]
        if not wanted:
            return
        # Rows are inserted in line order, so id order is line order within a job, and the
        # table is walked along its primary key.
        after_id = 0
        sql = (
            f"SELECT {_ROW_VIEW_COLUMNS} FROM rows"
            f" WHERE id > ? AND job_id = ? AND state IN ({placeholders(len(wanted))})"
            " ORDER BY id LIMIT ?"
        )
        async with self._db.lock:
            rebuild = await self._cells_rebuilder(job_id)
        while True:
            async with self._db.lock:
                rows = await self._db.conn.execute_fetchall(sql, (after_id, job_id, *wanted, batch))
            views = [_view_from_row(row, rebuild) for row in rows]
            for view in views:
                yield view
            if len(views) < batch:
                return
            after_id = views[-1].id

    async def reset_rows(self, job_id: int, states: Collection[RowState]) -> int:
        """Put rows in ``states`` back to pending (attempts 0, due now); return how many.

        Rows without a record (``invalid``: never sendable) are left as they are.
        """
        wanted = [RowState(state).value for state in states]
        if not wanted:
            return 0
        now = time.time()
        moves: Counter[str] = Counter()
        reset = 0
        async with self._db.lock, self._db.transaction():
            # One statement per state, so that each row count says how many rows it moved.
            for state in dict.fromkeys(wanted):
                cursor = await self._db.conn.execute(
                    "UPDATE rows SET state = 'pending', attempts = 0, next_attempt_at = NULL,"
                    " updated_at = ? WHERE job_id = ? AND state = ? AND record IS NOT NULL",
                    (now, job_id, state),
                )
                moves[state] -= cursor.rowcount
                moves["pending"] += cursor.rowcount
                reset += cursor.rowcount
                await cursor.close()
            await self._db.conn.executemany(COUNT_MOVES, count_params(job_id, moves))
        return reset

    async def mark_unchanged_skipped(
        self, job_id: int, target: TargetRef, batch: int = 20_000
    ) -> int:
        """Skip pending rows whose exact record was loaded (``done``) by an earlier job to
        the same target; return how many were skipped.

        Works through the job in batches of ``batch`` rows so that a runner never waits
        long on the write lock.
        """
        async with self._db.lock, self._db.transaction():
            # Built once, by the first incremental load (see 005_lighter_sending.sql).
            await self._db.conn.execute(_DONE_RECORD_INDEX)
        total = 0
        after_id = 0
        while True:
            now = time.time()
            async with self._db.lock, self._db.transaction():
                bounds = await self._db.conn.execute_fetchall(
                    "SELECT MAX(id), COUNT(*) FROM (SELECT id FROM rows INDEXED BY rows_pending"
                    " WHERE job_id = ? AND state = 'pending' AND id > ? ORDER BY id LIMIT ?)",
                    (job_id, after_id, batch),
                )
                last_id, seen = next(iter(bounds))
                if not seen:
                    return total
                cursor = await self._db.conn.execute(
                    "UPDATE rows SET state = 'skipped', updated_at = ?"
                    " WHERE job_id = ? AND state = 'pending' AND id > ? AND id <= ?"
                    " AND EXISTS (SELECT 1 FROM rows AS earlier"
                    " INDEXED BY rows_done_record JOIN jobs ON jobs.id = earlier.job_id"
                    " WHERE earlier.record = rows.record AND earlier.state = 'done'"
                    " AND jobs.target_key = ? AND jobs.id < ?)",
                    (now, job_id, after_id, last_id, target.key, job_id),
                )
                skipped = cursor.rowcount
                await cursor.close()
                await self._db.conn.executemany(
                    COUNT_MOVES, count_params(job_id, moved("pending", "skipped", skipped))
                )
                total += skipped
            after_id = last_id
