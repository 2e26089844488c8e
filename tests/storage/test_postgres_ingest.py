"""Reading into PostgreSQL: the rows written in COPY's binary format by bulkimport read back
as they were given, whatever their cells hold, and batches read ahead keep their order, their
positions and a reader's error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bulkimport.errors import InputError
from bulkimport.rows import Batch, NewRow
from bulkimport.states import InvalidReason, RowState
from bulkimport.storage.postgres import PostgresStorage
from bulkimport.storage.values import Ingested
from tests.storage.conftest import FILE, TARGET


def pending(line: int, *cells: str) -> NewRow:
    return NewRow(
        line, RowState.PENDING, "||".join(f"c{i}={c}" for i, c in enumerate(cells)), cells
    )


async def test_rows_read_back_as_they_were_given(pg_url: str) -> None:
    rows = [
        pending(2, "王伟", "13800138000", "上海市浦东新区", "😀 memo, with a comma"),
        pending(3),  # no cells at all
        pending(4, "", "", ""),
        pending(5, "x" * 70_000, "y" * 4_095, "z" * 4_096),  # lengths past the size table
        pending(6, *(str(n) for n in range(300))),
        NewRow(
            7,
            RowState.INVALID,
            None,
            ("138\x00001", "\udcff\udcfe", "a\tb\nc\\d"),
            InvalidReason.NUL,
            "line 7: a NUL byte",
        ),
        NewRow(8, RowState.INVALID, None, ("only",), InvalidReason.CELLS, None),
        pending(2**40, "far"),
    ]
    async with await PostgresStorage.open(pg_url) as storage:
        job = await storage.jobs.create(FILE, TARGET, {}, "{}")
        assert await storage.reading.ingest(job.id, [Batch(rows, 900, 2**40 + 1)]) == len(rows)
        views = [v async for v in storage.reports.iter_rows(job.id, list(RowState))]
        counts = await storage.reports.counts(job.id)
        stored = await storage.jobs.get(job.id)
    given = [
        (r.line, r.state, r.cells, r.record, r.reason and r.reason.value, r.message) for r in rows
    ]
    read = [(v.line, v.state, v.cells, v.record, v.last_code, v.last_message) for v in views]
    assert read == given
    assert (counts[RowState.PENDING], counts[RowState.INVALID]) == (6, 2)
    assert (stored.read_offset, stored.read_line, stored.total_rows) == (900, 2**40 + 1, 8)


async def test_batches_read_ahead_are_stored_in_order_with_their_positions(
    pg_url: str,
) -> None:
    batches = [
        Batch(
            [pending(line, f"v{line}") for line in range(first, first + 3)], first * 10, first + 3
        )
        for first in range(2, 23, 3)
    ]
    heard: list[Ingested] = []
    async with await PostgresStorage.open(pg_url) as storage:
        job = await storage.jobs.create(FILE, TARGET, {}, "{}")
        assert await storage.reading.ingest(job.id, batches, on_batch=heard.append) == 21
        lines = [v.line async for v in storage.reports.iter_rows(job.id, [RowState.PENDING])]
    assert lines == list(range(2, 23))
    assert [(h.rows, h.end_offset, h.next_line) for h in heard] == [
        (3 * n, b.end_offset, b.next_line) for n, b in enumerate(batches, 1)
    ]


async def test_a_reader_error_leaves_the_batches_before_it_stored(pg_url: str) -> None:
    def batches() -> Iterator[Batch]:
        yield Batch([pending(2, "a"), pending(3, "b")], 30, 4)
        yield Batch([pending(4, "c")], 40, 5)
        raise InputError("leads.csv line 5: the file changed while it was read")

    async with await PostgresStorage.open(pg_url) as storage:
        job = await storage.jobs.create(FILE, TARGET, {}, "{}")
        with pytest.raises(InputError, match="line 5"):
            await storage.reading.ingest(job.id, batches())
        stored = await storage.jobs.get(job.id)
        lines = [v.line async for v in storage.reports.iter_rows(job.id, [RowState.PENDING])]
    assert (stored.read_offset, stored.read_line, stored.total_rows) == (40, 5, 3)
    assert lines == [2, 3, 4]
