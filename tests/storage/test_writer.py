"""The ``ResultWriter`` over each backend: half a batch commits with nobody waiting for it,
the batch being committed still counts towards the bound, and a commit that failed with
nobody waiting is raised by the next ``flush``."""

from __future__ import annotations

import asyncio
import time

import pytest

from bulkimport.rows import ClaimedRow, RowResult
from bulkimport.send.writer import EARLY_COMMIT_ROWS, RESULT_BATCH_ROWS, ResultWriter
from bulkimport.states import RowState
from bulkimport.storage import Storage
from tests.helpers import RUNNER
from tests.storage.conftest import ready_job


def done(row: ClaimedRow) -> RowResult:
    return RowResult(row.id, RowState.DONE, "0", "")


class Commits:
    """What the writer told ``on_commit``, and an event for each commit."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.seen = asyncio.Event()

    async def __call__(self, batch: list[RowResult]) -> None:
        self.batches.append([result.row_id for result in batch])
        self.seen.set()


async def claimed(storage: Storage, rows: int) -> tuple[int, list[ClaimedRow]]:
    job = await ready_job(storage, rows)
    taken = await storage.sending.claim_batch(job.id, rows, now_s=time.time(), runner=RUNNER)
    assert len(taken) == rows
    return job.id, taken


async def test_half_a_batch_is_committed_with_nobody_waiting(storage: Storage) -> None:
    job_id, rows = await claimed(storage, EARLY_COMMIT_ROWS + 3)
    commits = Commits()
    writer = ResultWriter(storage.sending, job_id, commits, runner=RUNNER)
    for row in rows[:EARLY_COMMIT_ROWS]:
        writer.add(done(row))
    assert not writer.full
    # No flush is called: the commit started by the last ``add`` ends on its own.
    await asyncio.wait_for(commits.seen.wait(), timeout=30)
    assert commits.batches == [[row.id for row in rows[:EARLY_COMMIT_ROWS]]]
    assert (await storage.reports.counts(job_id))[RowState.DONE] == EARLY_COMMIT_ROWS

    for row in rows[EARLY_COMMIT_ROWS:]:
        writer.add(done(row))
    await writer.flush()
    assert [len(batch) for batch in commits.batches] == [EARLY_COMMIT_ROWS, 3]
    counts = await storage.reports.counts(job_id)
    assert (counts[RowState.DONE], counts[RowState.IN_FLIGHT]) == (EARLY_COMMIT_ROWS + 3, 0)


async def test_the_outcomes_kept_and_committing_never_exceed_a_batch(storage: Storage) -> None:
    job_id, rows = await claimed(storage, RESULT_BATCH_ROWS + 1)
    writer = ResultWriter(storage.sending, job_id, Commits(), runner=RUNNER)
    # Added without giving the loop a turn: the early commit has not begun, yet the writer
    # is full at a batch, as a worker sees it before it sends again.
    for row in rows[: RESULT_BATCH_ROWS - 1]:
        writer.add(done(row))
        assert not writer.full
    writer.add(done(rows[RESULT_BATCH_ROWS - 1]))
    assert writer.full
    # The worker that saw it full waits for the commit; then the writer is empty again.
    await writer.flush()
    assert not writer.full
    writer.add(done(rows[-1]))
    await writer.flush()
    assert (await storage.reports.counts(job_id))[RowState.DONE] == RESULT_BATCH_ROWS + 1


async def test_a_commit_that_failed_with_nobody_waiting_is_raised_by_the_next_flush(
    storage: Storage,
) -> None:
    job_id, rows = await claimed(storage, EARLY_COMMIT_ROWS + 1)
    commits = Commits()
    writer = ResultWriter(storage.sending, job_id, commits, runner=RUNNER)
    # An outcome no storage takes (it would leave its row in flight) fails the whole commit.
    writer.add(RowResult(rows[0].id, RowState.IN_FLIGHT, "", ""))
    for row in rows[1:EARLY_COMMIT_ROWS]:
        writer.add(done(row))
    with pytest.raises(ValueError, match="in_flight"):
        await writer.flush()
    assert commits.batches == []
    # Raised once: the writer goes on with the outcomes that come next.
    writer.add(done(rows[-1]))
    await writer.flush()
    assert commits.batches == [[rows[-1].id]]
    assert (await storage.reports.counts(job_id))[RowState.DONE] == 1
