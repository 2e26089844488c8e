"""The SQLite ``IngestStore``: rows read from a file, committed with the reading position."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import repeat

from bulkimport.errors import DatabaseError
from bulkimport.rows import Batch, NewRow
from bulkimport.states import JobState, RepairKind, RowState
from bulkimport.storage.columns import REPAIR_COLUMNS
from bulkimport.storage.sqlite.cells import (
    CELLS_IN_RECORD,
    encode_cells,
    rebuilder,
    record_width,
)
from bulkimport.storage.sqlite.database import (
    COUNT_MOVES,
    Database,
    connect,
    full_is_disk_full,
    immediate,
)
from bulkimport.storage.sqlite.latest import row_range
from bulkimport.storage.threads import close_batches, outlast
from bulkimport.storage.values import Ingested

# Storing one batch of rows: the reading position, the blank lines and the repairs move with
# the rows, in one transaction.
_ADVANCE_READING = (
    "UPDATE jobs SET read_offset = ?, read_line = ?, total_rows = total_rows + ?,"
    " blank_lines = blank_lines + ?, "
    + ", ".join(f"{column} = {column} + ?" for column in REPAIR_COLUMNS.values())
    + ", updated_at = ? WHERE id = ? AND read_done = 0"
)
_INSERT_ROWS = (
    "INSERT INTO rows (job_id, line, state, record, cells, last_code, last_message,"
    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The id range of the job's rows (migration 013): a batch's rows get consecutive ids, the
# last one last_insert_rowid(). A job that had rows before the range was kept (its first
# batch is not this one) keeps none: its rows are found by a walk when needed.
_EXTEND_RANGE = (
    "UPDATE jobs SET"
    " first_row_id = CASE WHEN first_row_id IS NULL AND total_rows = :n THEN :first"
    " ELSE first_row_id END,"
    " last_row_id = CASE WHEN first_row_id IS NULL AND total_rows <> :n THEN NULL"
    " ELSE :last END"
    " WHERE id = :job"
)


def _stored_cells(width: int, cells: tuple[str, ...], state: RowState) -> str:
    """The cells column of a row: nothing when it is pending with ``width`` cells, so that its
    record holds them all (a third less to write for most files), else the cells."""
    if state is RowState.PENDING and len(cells) == width:
        return CELLS_IN_RECORD
    return encode_cells(cells)


def store_batch(
    conn: sqlite3.Connection, job_id: int, batch: Batch, width: int, now: float
) -> None:
    """Insert the batch's rows, count them (and the blank lines and repairs among them), and
    move the job's reading position past them.

    ``width``: pending rows with this many cells are stored without them (their record holds
    them all, see ``cells.py``); 0 when the job's format cannot give them back.

    The caller holds the transaction: rows and position are committed together or not at
    all, which is what makes a line stored exactly once across interruptions.
    """
    rows = batch.rows
    repaired = [batch.repairs.get(kind, 0) for kind in REPAIR_COLUMNS]
    touched = conn.execute(
        _ADVANCE_READING,
        (batch.end_offset, batch.next_line, len(rows), batch.blank_lines, *repaired, now, job_id),
    ).rowcount
    if touched != 1:
        raise DatabaseError(f"job {job_id} is not being read; cannot add rows to it")
    if not rows:
        return
    # Columns, then parameter tuples, built by zip in C: no Python code per row but the
    # cells' encoding. States are StrEnums, which sqlite3 binds as their text.
    lines, states, records, cells, reasons, messages, _ = zip(*rows, strict=True)
    if width:
        stored = list(map(partial(_stored_cells, width), cells, states))
    else:
        stored = list(map(encode_cells, cells))
    count = len(rows)
    if (
        stored.count(CELLS_IN_RECORD) == count
        and states.count(RowState.PENDING) == count
        and reasons.count(None) == count
        and messages.count(None) == count
    ):
        # Every row pending, its cells in its record (most batches of most files): only the
        # line and the record vary. Binding a value costs more than storing it.
        conn.executemany(_lean_insert(job_id, now), zip(lines, records, strict=True))
    else:
        conn.executemany(
            _INSERT_ROWS,
            zip(
                repeat(job_id),
                lines,
                states,
                records,
                stored,
                reasons,
                messages,
                repeat(now),
                repeat(now),
            ),
        )
    conn.executemany(COUNT_MOVES, [(n, job_id, state) for state, n in Counter(states).items()])
    (last_id,) = conn.execute("SELECT last_insert_rowid()").fetchone()
    conn.execute(
        _EXTEND_RANGE,
        {"n": len(rows), "first": last_id - len(rows) + 1, "last": last_id, "job": job_id},
    )


def _lean_insert(job_id: int, now: float) -> str:
    """The insert of pending rows whose cells are in their record: the job and the time
    are written into the statement (an int and a float's repr: nothing to quote)."""
    return (
        "INSERT INTO rows (job_id, line, state, record, cells, created_at, updated_at)"
        f" VALUES ({int(job_id)}, ?, 'pending', ?, '{CELLS_IN_RECORD}', {float(now)!r},"
        f" {float(now)!r})"
    )


class SqliteIngest:
    """Adds rows to the jobs of one database while they are read."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_rows(
        self, job_id: int, rows: Sequence[NewRow], *, read_offset: int, read_line: int
    ) -> None:
        """Store one batch of rows and the reading position after it, in one transaction.

        A crash before the commit loses the batch and the position together (reading
        starts again before it); after, both are kept: nothing lost, nothing twice.
        The job must not be read to its end yet. (``ingest`` does the same for a stream of batches.)
        """
        await self.ingest(job_id, [Batch(list(rows), read_offset, read_line)])

    async def ingest(
        self,
        job_id: int,
        batches: Iterable[Batch],
        *,
        on_batch: Callable[[Ingested], None] | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Store ``batches`` (e.g. ``reader.read_batches``) into the job; return how many rows.

        Each batch is one transaction, rows and reading position together, as in
        ``add_rows``. The whole loop (pulling the next batch from the iterator, so parsing
        it too, and storing it) runs in one worker thread with its own connection: no
        round trip to the event loop or the aiosqlite thread per batch. ``on_batch`` is
        called on the event loop after each commit. Setting ``stop`` ends the ingest after
        the batch being parsed or stored is committed; it is set too if this coroutine is
        cancelled, since a thread cannot be, and the coroutine ends only once the thread
        has. The thread closes ``batches`` when it is done with them. The job must not be
        read to its end yet.
        """
        loop = asyncio.get_running_loop()
        stop = stop or threading.Event()

        def committed(progress: Ingested) -> None:
            if on_batch is not None:
                loop.call_soon_threadsafe(on_batch, progress)

        work = asyncio.ensure_future(
            asyncio.to_thread(self._ingest, job_id, iter(batches), committed, stop)
        )
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            # The thread ends after one more batch instead of the whole file. Until it has,
            # it runs the caller's batches: this ends only then, however often cancelled.
            stop.set()
            await outlast(work)
            raise
        finally:
            stop.set()  # the thread has ended: for the caller, reading is over

    def _ingest(
        self,
        job_id: int,
        batches: Iterator[Batch],
        committed: Callable[[Ingested], None],
        stop: threading.Event,
    ) -> int:
        """The body of ``ingest``, in its worker thread; ``batches`` are closed here, by the
        thread that ran them, whatever ends it."""
        try:
            with full_is_disk_full(self._db.path):
                return self._ingest_batches(job_id, batches, committed, stop)
        finally:
            close_batches(batches)

    def _ingest_batches(
        self,
        job_id: int,
        batches: Iterator[Batch],
        committed: Callable[[Ingested], None],
        stop: threading.Event,
    ) -> int:
        conn = connect(self._db.path)
        try:
            # Rows are stored without their cells only if the job's own format can give
            # them back.
            found = conn.execute("SELECT format_json FROM jobs WHERE id = ?", (job_id,)).fetchone()
            width = record_width(found[0]) if found else 0
            stored = blank = 0
            repairs: Counter[RepairKind] = Counter()
            for batch in batches:
                with immediate(conn):
                    store_batch(conn, job_id, batch, width, time.time())
                stored += len(batch.rows)
                blank += batch.blank_lines
                repairs.update(batch.repairs)
                progress = Ingested(
                    stored, batch.end_offset, batch.next_line, blank, dict(+repairs)
                )
                committed(progress)
                if stop.is_set():
                    break
            return stored
        finally:
            conn.close()

    async def widen(self, job_id: int, fmt_json: str) -> None:
        """Keep the job's wider format. Rows stored without their cells (their record holds
        them) are given them now if the wider format can no longer rebuild them (a new
        column is not sent): once per job at most, in the same transaction."""
        db = self._db
        async with db.lock:
            # (Outside the transaction: it may keep the range, in one of its own.)
            low, high = await row_range(db, job_id)
        async with db.lock, db.transaction():
            found = await db.conn.execute_fetchall(
                "SELECT format_json FROM jobs WHERE id = ? AND read_done = 0", (job_id,)
            )
            if not found:
                raise DatabaseError(f"job {job_id} is not being read; cannot add columns to it")
            rebuild = next(rebuilder(fmt) for (fmt,) in found)
            if rebuild is not None and rebuilder(fmt_json) is None:
                kept = await db.conn.execute_fetchall(
                    "SELECT id, record FROM rows WHERE id >= ? AND id <= ? AND job_id = ?"
                    " AND cells = ? AND record IS NOT NULL",
                    (low, high, job_id, CELLS_IN_RECORD),
                )
                await db.conn.executemany(
                    "UPDATE rows SET cells = ? WHERE id = ?",
                    [(encode_cells(rebuild(record)), row_id) for row_id, record in kept],
                )
            await db.conn.execute(
                "UPDATE jobs SET format_json = ?, updated_at = ? WHERE id = ?",
                (fmt_json, time.time(), job_id),
            )

    async def finish(self, job_id: int) -> None:
        """Mark the whole file as read (``read_done``); a job only being read is ``ready``,
        one that is sent at the same time stays as it is."""
        now = time.time()
        db = self._db
        async with db.lock, db.transaction():
            cursor = await db.conn.execute(
                "UPDATE jobs SET read_done = 1, updated_at = ?,"
                " state = CASE WHEN state = ? THEN ? ELSE state END"
                " WHERE id = ? AND read_done = 0",
                (now, JobState.READING.value, JobState.READY.value, job_id),
            )
            touched = cursor.rowcount
            await cursor.close()
            if touched != 1:
                raise DatabaseError(f"job {job_id} is not being read; cannot finish reading it")
