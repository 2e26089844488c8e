"""Reading a file into a job (pipeline.read_job): stopped and resumed, nothing lost or twice."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bulkimport.events import Event, ReadProgress, Step
from bulkimport.jobs.pipeline import StopSignal, read_job
from bulkimport.reader import ReaderOptions, sniff_format
from bulkimport.rows import FileIdentity
from bulkimport.states import Allow, JobState, RowState
from bulkimport.storage.sqlite import SqliteStorage
from tests.helpers import job_target

ROWS = 12_000  # a bit more than two ingest batches of 5,000


class StopAfterFirstBatch:
    """Presses Ctrl-C as soon as the first batch is committed."""

    def __init__(self, stop: StopSignal) -> None:
        self.stop = stop

    def __call__(self, event: Event) -> None:
        committed = isinstance(event, ReadProgress) and event.step is Step.GOING
        if committed and not self.stop.requested:
            self.stop.request()


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    async with await SqliteStorage.open(tmp_path / "queue.db") as opened:
        yield opened


def leads(tmp_path: Path) -> Path:
    path = tmp_path / "leads.csv"
    lines = ["phone,name,memo"]
    lines += [f'138{n:08d},张{n},"a,""b""\n\x1f{n}"' for n in range(ROWS)]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


async def test_stop_while_reading_then_resume(queue: SqliteStorage, tmp_path: Path) -> None:
    path = leads(tmp_path)
    # Values with a unit separator (a storage separator elsewhere): allowed, to be stored.
    fmt = sniff_format(path, ReaderOptions(allow=(Allow.CONTROL_CHARACTERS,)))
    job = await queue.jobs.create(FileIdentity.of(path), job_target(), {}, fmt.to_json())

    stop = StopSignal()
    stopped = await read_job(queue, job, stop, emit=StopAfterFirstBatch(stop))
    assert stopped.state is JobState.INTERRUPTED
    # The batch being parsed when the stop came was committed too, and no more.
    assert 0 < stopped.total_rows < ROWS
    assert stopped.total_rows % 5000 == 0

    resumed = await read_job(queue, stopped, StopSignal())
    assert resumed.state is JobState.READY
    assert resumed.total_rows == ROWS
    assert (await queue.reports.counts(job.id))[RowState.PENDING] == ROWS
    conn = sqlite3.connect(queue.path)
    try:
        lines = [line for (line,) in conn.execute("SELECT line FROM rows ORDER BY id")]
    finally:
        conn.close()
    # Every line once, in order (each record spans two physical lines).
    assert lines == list(range(2, 2 * ROWS + 2, 2))
    views = [v async for v in queue.reports.iter_rows(job.id, [RowState.PENDING], batch=4000)]
    assert views[7].cells == ("13800000007", "张7", 'a,"b"\n\x1f7')
