"""``ResultWriter``: the outcomes of calls, recorded in storage a small batch at a time.

A batch holds ``RESULT_BATCH_ROWS`` outcomes at most, the batch being committed included:
a worker whose outcome fills it waits for the commit (``full``), which bounds the rows
sent but not recorded to the calls in flight plus one batch (what a kill can make us send
again). A commit, once begun, is finished even when its caller is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bulkimport.rows import RowResult
from bulkimport.storage import RunnerId, SendQueue

RESULT_BATCH_ROWS = 200  # outcomes per commit at most: bounds what a kill can make us re-send


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

    def add(self, result: RowResult) -> None:
        """Keep ``result`` for the next commit."""
        self._results.append(result)

    @property
    def full(self) -> bool:
        """Whether the outcomes not yet committed fill a batch: the caller flushes."""
        return len(self._results) + self._committing >= RESULT_BATCH_ROWS

    async def flush(self) -> None:
        """Commit the outcomes kept so far (one at a time: a flush waits for the last)."""
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
