"""The PostgreSQL ``IngestStore``: rows in by COPY, committed with the reading position.

Each batch is one transaction: the job's reading position (and the blank lines and repairs
counted with the batch) moves, the rows go in by ``COPY`` in the binary format, and the
counters follow, or none of it happens. A worker thread parses each batch (the reader's
work, which blocks) and writes its rows in COPY's binary format itself, while the event loop
stores the batch before it: the server stores one batch while Python reads the next. (Left
to the driver, the binary encoding of each row's ``bytea[]`` cells cost more than the
server's work: bench/run.py's ``pg-read``.) One batch is read ahead at most. A stop ends it
after the batch in hand (the one being read when the stop came); a batch read ahead and not
stored (a cancel, an error) is read again from the position committed before it.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

from bulkimport.errors import DatabaseError
from bulkimport.rows import Batch, NewRow
from bulkimport.states import InvalidReason, RepairKind, RowState
from bulkimport.storage.columns import REPAIR_COLUMNS
from bulkimport.storage.postgres.database import Database
from bulkimport.storage.threads import close_batches, outlast
from bulkimport.storage.values import Ingested

_ADVANCE_READING = (
    "UPDATE jobs SET read_offset = $1, read_line = $2, total_rows = total_rows + $3,"
    " blank_lines = blank_lines + $4, "
    + ", ".join(
        f"{column} = {column} + ${n}" for n, column in enumerate(REPAIR_COLUMNS.values(), 5)
    )
    + f", updated_at = ${5 + len(REPAIR_COLUMNS)}"
    + f" WHERE id = ${6 + len(REPAIR_COLUMNS)} AND NOT read_done"
    # From where this reader left it: another runner that took reading over (this one's
    # lease ran out) has moved it, and this one stops rather than store a batch twice.
    + f" AND read_offset = ${7 + len(REPAIR_COLUMNS)}"
)
_COPY_COLUMNS = (
    "job_id", "line", "state", "record", "cells", "last_code", "last_message", "created_at",
    "updated_at",
)  # fmt: skip
# The job's counters are locked in the order of their states, as every move of rows locks
# them (``moves.counted_move``): a batch stored while other runners send never takes them in
# an order opposite to theirs.
_COUNT_ADDED = (
    "WITH added AS (SELECT * FROM unnest($2::text[], $3::bigint[]) AS a (state, n)),"
    " ordered AS (SELECT c.state FROM job_counts c JOIN added ON c.state = added.state"
    " WHERE c.job_id = $1 ORDER BY c.state FOR UPDATE OF c)"
    " UPDATE job_counts c SET n = c.n + added.n FROM added, ordered"
    " WHERE c.job_id = $1 AND c.state = added.state AND c.state = ordered.state"
)


def encode_cells(cells: Sequence[str]) -> list[bytes]:
    """A row's cells as stored: UTF-8 byte strings, NUL bytes and all."""
    return [cell.encode("utf-8", "surrogatepass") for cell in cells]


def decode_cells(stored: Sequence[bytes]) -> tuple[str, ...]:
    return tuple(cell.decode("utf-8", "surrogatepass") for cell in stored)


# COPY's binary format (PostgreSQL's documentation, "COPY", "Binary Format"): a signature,
# flags and an empty header extension; per row its number of fields, then each field as its
# size in bytes (-1: NULL) and its value in the type's binary form; -1 at the end.
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
_SIZE = struct.Struct(">i").pack
_NULL = _SIZE(-1)
_SIZES = tuple(_SIZE(n) for n in range(4096))
#: A row's first fields: their number, then job_id and line (int8, 8 bytes each).
_ROW_HEAD = struct.Struct(">hiqiq").pack
#: created_at and updated_at (float8, 8 bytes each), the same for every row of a batch.
_STAMPS = struct.Struct(">idid").pack
#: A one-dimensional array field: its size, then dimensions, has-NULLs, element type
#: (bytea), length, lower bound; its elements follow, each as a field.
_ARRAY_HEAD = struct.Struct(">iiiiii").pack
_BYTEA = 17
_EMPTY_ARRAY = struct.pack(">iiii", 12, 0, 0, _BYTEA)


def _field(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode("utf-8")
    return _SIZE(len(data)) + data


_STATE_FIELDS = {state: _field(state.value) for state in RowState}
_REASON_FIELDS = {reason: _field(reason.value) for reason in InvalidReason}


def copy_data(job_id: int, rows: Sequence[NewRow], now: float) -> bytearray:
    """``rows`` of the job as ``COPY rows (<_COPY_COLUMNS>) FROM STDIN (FORMAT binary)``
    reads them: cells as ``bytea[]`` (``encode_cells``), text as UTF-8, ``now`` as both
    times. Written into one buffer as it goes: no object per field outlives its row."""
    sizes = _SIZES
    out = bytearray(_SIGNATURE)
    add = out.extend
    fields = len(_COPY_COLUMNS)
    stamps = _STAMPS(8, now, 8, now)
    for row in rows:
        add(_ROW_HEAD(fields, 8, job_id, 8, row.line))
        add(_STATE_FIELDS[row.state])
        add(_field(row.record))
        cells = encode_cells(row.cells)
        if cells:
            size = 20 + 4 * len(cells) + sum(map(len, cells))
            add(_ARRAY_HEAD(size, 1, 0, _BYTEA, len(cells), 1))
            for cell in cells:
                add(sizes[len(cell)] if len(cell) < 4096 else _SIZE(len(cell)))
                add(cell)
        else:
            add(_EMPTY_ARRAY)
        add(_NULL if row.reason is None else _REASON_FIELDS[row.reason])
        add(_field(row.message))
        add(stamps)
    add(_TRAILER)
    return out


class _Prepared(NamedTuple):
    """A batch read, as storing it needs it, made in the worker thread: its rows as COPY
    data only (their objects weigh five times as much, and two batches are in hand)."""

    batch: Batch  # without its rows
    rows: int
    copy: bytearray  # its rows as COPY data (empty: no rows)
    added: dict[str, int]  # its rows per state
    now: float


def _prepare(job_id: int, source: Iterator[Batch]) -> _Prepared | None:
    """The next batch of ``source`` made ready to store; None at the end."""
    batch = next(source, None)
    if batch is None:
        return None
    now = time.time()
    rows = batch.rows
    added = Counter(row.state.value for row in rows)
    copy = copy_data(job_id, rows, now) if rows else bytearray()
    return _Prepared(batch._replace(rows=[]), len(rows), copy, dict(added), now)


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
        ``stop`` (set too if this is cancelled) ends it after the batch in hand. It ends
        only once no thread reads ``batches`` any more, and closes them."""
        stop = stop or threading.Event()
        source: Iterator[Batch] = iter(batches)
        stored = blank = 0
        repairs: Counter[RepairKind] = Counter()
        ahead: asyncio.Task[_Prepared | None] | None = None

        def read_ahead() -> asyncio.Task[_Prepared | None]:
            return asyncio.ensure_future(asyncio.to_thread(_prepare, job_id, source))

        try:
            position = await self._db.fetchval("SELECT read_offset FROM jobs WHERE id = $1", job_id)
            ahead = read_ahead()
            while ahead is not None:
                # Shielded: a cancel does not leave the thread inside the reader unawaited.
                prepared = await asyncio.shield(ahead)
                ahead = None
                if prepared is None:
                    break
                if not stop.is_set():
                    # The next batch is read while this one is stored. After a stop, none
                    # is; one read before it is the batch in hand, stored before the end.
                    ahead = read_ahead()
                await self._store(job_id, prepared, position)
                batch = prepared.batch
                position = batch.end_offset
                stored += prepared.rows
                blank += batch.blank_lines
                repairs.update(batch.repairs)
                if on_batch is not None:
                    on_batch(
                        Ingested(stored, batch.end_offset, batch.next_line, blank, dict(+repairs))
                    )
        finally:
            stop.set()
            if ahead is not None:
                # Read ahead and not stored (a cancel, an error): its thread runs ``source``
                # until it is done, however often this is cancelled meanwhile; an error of
                # the batch not stored is not this one's.
                await outlast(ahead)
            # No thread runs it now (a thread's last reference to it may still go later:
            # closed, its finalizer has nothing left to do).
            close_batches(source)
        return stored

    async def _store(self, job_id: int, prepared: _Prepared, position: int | None) -> None:
        batch = prepared.batch
        repaired = [batch.repairs.get(kind, 0) for kind in REPAIR_COLUMNS]
        async with self._db.transaction() as conn:
            status = await conn.execute(
                _ADVANCE_READING,
                batch.end_offset,
                batch.next_line,
                prepared.rows,
                batch.blank_lines,
                *repaired,
                prepared.now,
                job_id,
                position,
            )
            if status != "UPDATE 1":
                raise DatabaseError(
                    f"job {job_id} is not being read from where this reader left it (read to"
                    " its end, or by another runner now); cannot add rows to it"
                )
            if not prepared.rows:
                return
            # A memoryview: asyncpg takes bytes for a path.
            await conn.copy_to_table(
                "rows", source=memoryview(prepared.copy), columns=_COPY_COLUMNS, format="binary"
            )
            added = prepared.added
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
