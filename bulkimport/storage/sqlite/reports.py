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
    placeholders,
)
from bulkimport.storage.sqlite.latest import LatestRecords, row_range
from bulkimport.storage.values import RowView, Unchanged

_ROW_VIEW_COLUMNS = "id, line, state, cells, record, attempts, last_code, last_message"
# The same expression as the rows_problem partial index, so that SQLite can use it.
_PROBLEM_WHERE = (
    "(state = 'rejected' OR state = 'failed' OR state = 'invalid'"
    " OR (state = 'pending' AND last_code IS NOT NULL))"
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
        # job's range of the table is walked along its primary key.
        sql = (
            f"SELECT {_ROW_VIEW_COLUMNS} FROM rows"
            f" WHERE id > ? AND id <= ? AND job_id = ? AND state IN ({placeholders(len(wanted))})"
            " ORDER BY id LIMIT ?"
        )
        async with self._db.lock:
            rebuild = await self._cells_rebuilder(job_id)
            low, high = await row_range(self._db, job_id)
        after_id = low - 1
        while True:
            async with self._db.lock:
                rows = await self._db.conn.execute_fetchall(
                    sql, (after_id, high, job_id, *wanted, batch)
                )
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
        async with self._db.lock:
            low, high = await row_range(self._db, job_id)
        async with self._db.lock, self._db.transaction():
            # One statement per state, so that each row count says how many rows it moved.
            for state in dict.fromkeys(wanted):
                cursor = await self._db.conn.execute(
                    "UPDATE rows SET state = 'pending', attempts = 0, next_attempt_at = NULL,"
                    " updated_at = ? WHERE id BETWEEN ? AND ? AND job_id = ? AND state = ?"
                    " AND record IS NOT NULL",
                    (now, low, high, job_id, state),
                )
                moves[state] -= cursor.rowcount
                moves["pending"] += cursor.rowcount
                reset += cursor.rowcount
                await cursor.close()
            await self._db.conn.executemany(COUNT_MOVES, count_params(job_id, moves))
        return reset

    async def mark_unchanged_skipped(
        self, job_id: int, target: TargetRef, key_field: str
    ) -> Unchanged:
        """Skip the job's pending rows equal to the latest record their customer (the value
        of ``key_field``) received from another job to ``target``; return how many, and how
        many pending rows have no customer (they are sent).

        The target's jobs' done rows are folded into the latest records first (see
        ``latest.py``): only those done since their last fold are read.
        """
        latest = LatestRecords(self._db)
        target_id = await latest.scope(target.key, key_field)
        await latest.fold_target(target.key, target_id, key_field, except_job=job_id)
        return Unchanged(*await latest.skip_unchanged(job_id, target_id, key_field))
