"""The PostgreSQL ``IngestStore``: rows in by COPY, committed with the reading position.

Each batch is one transaction: the job's reading position (and the blank lines and repairs
counted with the batch) moves, the rows go in by ``COPY`` (the binary protocol, asyncpg's
fastest path: bench/storage_pg.py), and the counters follow, or none of it happens. Parsing
the next batch (the reader's work, which blocks) runs in a worker thread, one batch at a
time: the event loop stays free, and a cancelled ingest stops after the batch in hand.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from bulkimport.errors import DatabaseError
from bulkimport.rows import Batch, NewRow
from bulkimport.states import RepairKind
from bulkimport.storage.columns import REPAIR_COLUMNS
from bulkimport.storage.postgres.database import Database
from bulkimport.storage.values import Ingested

_ADVANCE_READING = (
    "UPDATE jobs SET read_offset = $1, read_line = $2, total_rows = total_rows + $3,"
    " blank_lines = blank_lines + $4, "
    + ", ".join(
        f"{column} = {column} + ${n}" for n, column in enumerate(REPAIR_COLUMNS.values(), 5)
    )
    + f", updated_at = ${5 + len(REPAIR_COLUMNS)}"
    + f" WHERE id = ${6 + len(REPAIR_COLUMNS)} AND NOT read_done"
)
_COPY_COLUMNS = (
    "job_id", "line", "state", "record", "cells", "last_code", "last_message", "created_at",
    "updated_at",
)  # fmt: skip
_COUNT_ADDED = (
    "UPDATE job_counts c SET n = c.n + added.n"
    " FROM unnest($2::text[], $3::bigint[]) AS added (state, n)"
    " WHERE c.job_id = $1 AND c.state = added.state"
)


def encode_cells(cells: Sequence[str]) -> list[bytes]:
    """A row's cells as stored: UTF-8 byte strings, NUL bytes and all."""
    return [cell.encode("utf-8", "surrogatepass") for cell in cells]


def decode_cells(stored: Sequence[bytes]) -> tuple[str, ...]:
    return tuple(cell.decode("utf-8", "surrogatepass") for cell in stored)


def _copy_records(job_id: int, rows: Sequence[NewRow], now: float) -> list[tuple[Any, ...]]:
    return [
        (
            job_id,
            row.line,
            row.state.value,
            row.record,
            encode_cells(row.cells),
            None if row.reason is None else row.reason.value,
            row.message,
            now,
            now,
        )
        for row in rows
    ]


class PostgresIngest:
    """Adds rows to the jobs of one database while they are read."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_rows(
        self, job_id: int, rows: Sequence[NewRow], *, read_offset: int, read_line: int
    ) -> None:
        """Store one batch of rows and the reading position after it, in one transaction."""
        await self.ingest(job_id, [Batch(list(rows), read_offset, read_line)])

    async def ingest(
        self,
        job_id: int,
        batches: Iterable[Batch],
        *,
        on_batch: Callable[[Ingested], None] | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Store ``batches`` into the job, each in one transaction with its reading position;
        return how many rows. ``on_batch`` hears of each commit (on the event loop);
        ``stop`` (set too if this is cancelled) ends it after the batch in hand."""
        stop = stop or threading.Event()
        source: Iterator[Batch] = iter(batches)
        stored = blank = 0
        repairs: Counter[RepairKind] = Counter()
        try:
            while True:
                batch = await asyncio.to_thread(next, source, None)
                if batch is None:
                    break
                await self._store(job_id, batch)
                stored += len(batch.rows)
                blank += batch.blank_lines
                repairs.update(batch.repairs)
                if on_batch is not None:
                    on_batch(
                        Ingested(stored, batch.end_offset, batch.next_line, blank, dict(+repairs))
                    )
                if stop.is_set():
                    break
        finally:
            stop.set()
        return stored

    async def _store(self, job_id: int, batch: Batch) -> None:
        rows = batch.rows
        now = time.time()
        repaired = [batch.repairs.get(kind, 0) for kind in REPAIR_COLUMNS]
        async with self._db.transaction() as conn:
            status = await conn.execute(
                _ADVANCE_READING,
                batch.end_offset,
                batch.next_line,
                len(rows),
                batch.blank_lines,
                *repaired,
                now,
                job_id,
            )
            if status != "UPDATE 1":
                raise DatabaseError(f"job {job_id} is not being read; cannot add rows to it")
            if not rows:
                return
            await conn.copy_records_to_table(
                "rows", records=_copy_records(job_id, rows, now), columns=_COPY_COLUMNS
            )
            added = Counter(row.state.value for row in rows)
            await conn.execute(_COUNT_ADDED, job_id, list(added), list(added.values()))

    async def widen(self, job_id: int, fmt_json: str) -> None:
        """Keep the job's wider format (its rows keep their cells: they read as before)."""
        touched = await self._db.execute(
            "UPDATE jobs SET format_json = $1, updated_at = $2 WHERE id = $3 AND NOT read_done",
            fmt_json,
            time.time(),
            job_id,
        )
        if touched != 1:
            raise DatabaseError(f"job {job_id} is not being read; cannot add columns to it")

    async def finish(self, job_id: int) -> None:
        """The whole file is read: a job only being read is ``ready``, one being sent keeps
        its state."""
        touched = await self._db.execute(
            "UPDATE jobs SET read_done = true, updated_at = $1,"
            " state = CASE WHEN state = 'reading' THEN 'ready' ELSE state END"
            " WHERE id = $2 AND NOT read_done",
            time.time(),
            job_id,
        )
        if touched != 1:
            raise DatabaseError(f"job {job_id} is not being read; cannot finish reading it")
