"""``ResultWriter``: the outcomes of calls, recorded in storage a small batch at a time.

A batch holds ``RESULT_BATCH_ROWS`` outcomes at most, the batch being committed included:
a worker whose outcome fills it waits for the commit (``full``), which bounds the rows
sent but not recorded to the calls in flight plus one batch (what a kill can make us send
again). Half a batch is committed as soon as it is gathered, without a worker waiting
for it, while the other half gathers: on a database server, where a commit is a round
trip, the workers go on sending through it. A commit, once begun, is finished even when
its caller is cancelled; one that failed is raised by the next ``flush``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bulkimport.rows import RowResult
from bulkimport.storage import RunnerId, SendQueue

RESULT_BATCH_ROWS = 200  # outcomes per commit at most: bounds what a kill can make us re-send
#: Outcomes gathered that start a commit at once, nobody waiting for it: half a batch, so
#: that the other half gathers meanwhile and ``full`` stays clear.
EARLY_COMMIT_ROWS = RESULT_BATCH_ROWS // 2


class ResultWriter:
    """Keeps the outcomes of one job's calls until ``flush`` commits them; then tells
    ``on_commit`` which rows' results were committed. Only the rows still in flight for
    ``runner`` take them: one taken back from it meanwhile (its lease ran out) is another's."""

    def __init__(
        self,
        queue: SendQueue,
        job_id: int,
        on_commit: Callable[[list[RowResult]], Awaitable[None]],
        *,
        runner: RunnerId | None = None,
    ) -> None:
        self._queue = queue
        self._job_id = job_id
        self._runner = runner
        self._on_commit = on_commit
        self._results: list[RowResult] = []
        self._committing = 0  # outcomes in the batch being committed right now
        self._lock = asyncio.Lock()
        # The commits started by ``add``, one at a time; kept when it failed, for ``flush``.
        self._early: asyncio.Future[None] | None = None

    def add(self, result: RowResult) -> None:
        """Keep ``result`` for the next commit; half a batch gathered starts one."""
        self._results.append(result)
        if len(self._results) >= EARLY_COMMIT_ROWS and self._early is None:
            self._early = asyncio.ensure_future(self._commit_early())

    @property
    def full(self) -> bool:
        """Whether the outcomes not yet committed fill a batch: the caller flushes."""
        return len(self._results) + self._committing >= RESULT_BATCH_ROWS

    async def flush(self) -> None:
        """Commit the outcomes kept so far (one at a time: a flush waits for the last, and
        raises the error of a commit started by ``add`` that failed)."""
        early = self._early
        if early is not None:
            try:
                await asyncio.shield(early)
            finally:
                if early.done() and self._early is early:
                    self._early = None
        await self._commit()

    async def _commit_early(self) -> None:
        while len(self._results) >= EARLY_COMMIT_ROWS:
            await self._commit()
        self._early = None  # not reached after a failure: the next flush raises it

    async def _commit(self) -> None:
        async with self._lock:
            if not self._results:
                return
            batch, self._results = self._results, []
            self._committing = len(batch)
            try:
                await self._queue.record_results(self._job_id, batch, runner=self._runner)
            finally:
                self._committing = 0
            await self._on_commit(batch)
