"""The at-least-once window, measured exactly: at any moment, the rows sent whose outcome is not
committed yet (what a kill would make us send again) are at most ``concurrency`` plus one
commit batch, however long a commit takes.

The crash loop measures this window through real kills, at random moments; here the dispatcher
runs in-process against a transport that answers at once and a queue whose commits are slow
(a busy disk), so that every send can be checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from pathlib import Path

from bulkimport.protocol import Outcome, OutcomeKind
from bulkimport.rows import ClaimedRow, FileIdentity, NewRow, RowResult
from bulkimport.send import RESULT_BATCH_ROWS, Dispatcher, Request, ScriptedTransport, SendEnd
from bulkimport.settings import SendSettings
from bulkimport.states import RowState
from bulkimport.storage import RunnerId, SendQueue
from bulkimport.storage.sqlite import SqliteStorage
from tests.helpers import a_runner, job_target

ROWS = 3000
CONCURRENCY = 8
COMMIT_S = 0.05  # a slow disk


class SlowCommits:
    """A storage's sending side whose outcome commits take ``COMMIT_S``; counts the rows
    committed."""

    def __init__(self, inner: SendQueue) -> None:
        self.inner = inner
        self.committed = 0

    async def record_results(
        self, job_id: int, results: Sequence[RowResult], *, runner: RunnerId | None = None
    ) -> int:
        await asyncio.sleep(COMMIT_S)
        recorded = await self.inner.record_results(job_id, results, runner=runner)
        self.committed += recorded
        return recorded

    async def recover_in_flight(self, job_id: int, runner: RunnerId) -> int:
        return await self.inner.recover_in_flight(job_id, runner)

    async def held_elsewhere(self, job_id: int, runner: RunnerId) -> int:
        return await self.inner.held_elsewhere(job_id, runner)

    async def claim_batch(
        self, job_id: int, limit: int, *, now_s: float, runner: RunnerId
    ) -> list[ClaimedRow]:
        return await self.inner.claim_batch(job_id, limit, now_s=now_s, runner=runner)

    async def release(
        self, job_id: int, row_ids: Iterable[int], *, runner: RunnerId | None = None
    ) -> int:
        return await self.inner.release(job_id, row_ids, runner=runner)

    async def next_attempt_at(self, job_id: int) -> float | None:
        return await self.inner.next_attempt_at(job_id)


class Instant:
    """A server that answers every call "imported" at once; keeps the largest window seen
    at a send."""

    def __init__(self, queue: SlowCommits) -> None:
        self.queue = queue
        self.sent = 0
        self.widest = 0

    def __call__(self, request: Request) -> Outcome:
        self.sent += 1
        self.widest = max(self.widest, self.sent - self.queue.committed)
        return Outcome(OutcomeKind.DONE, "BackMsg_84", "BackMsg_84")


async def test_rows_sent_but_not_recorded_never_exceed_concurrency_plus_one_batch(
    tmp_path: Path,
) -> None:
    queue = await SqliteStorage.open(tmp_path / "queue.db")
    slow = SlowCommits(queue.sending)
    try:
        job = await queue.jobs.create(
            FileIdentity("/leads.csv", 1, 1, "0" * 64), job_target(), {}, "{}"
        )
        rows = [NewRow(n, RowState.PENDING, f"phone1={n}", (str(n),)) for n in range(2, ROWS + 2)]
        await queue.reading.add_rows(job.id, rows, read_offset=1, read_line=ROWS + 2)
        await queue.reading.finish(job.id)
        server = Instant(slow)
        settings = SendSettings(rate_per_s=0, concurrency=CONCURRENCY)
        async with asyncio.timeout(60):
            transport = ScriptedTransport(server)
            result = await Dispatcher(slow, job.id, transport, settings, runner=a_runner()).run()
        assert result.end is SendEnd.FINISHED
        assert (await queue.reports.counts(job.id))[RowState.DONE] == ROWS == server.sent
    finally:
        await queue.close()
    assert server.widest <= CONCURRENCY + RESULT_BATCH_ROWS
