"""Send a job's pending rows: a pool of workers over one transport.

    claim (feeder) ──▶ buffer ──▶ workers ──rate limit──▶ transport ──▶ policy
                                                                          │
                                writer (one commit per batch) ◀── results

- The feeder claims due rows a batch at a time (``in_flight`` in storage before they are
  sent) and keeps the buffer short, so a kill leaves few claimed rows behind.
- Workers share one ``RateLimiter``: calls are spaced ``1/rate`` apart, so no 1-second window
  holds more than ``rate + 1`` calls, and a ``Retry-After`` pauses every worker.
- Each outcome becomes a row result by the pure ``policy.row_result``; results go to one
  writer that records them in small batches. A worker whose result would overflow a batch
  waits for the commit, which bounds the rows sent but not recorded.
- A fatal answer, or ``stop()``, ends claiming at once; calls in flight get ``grace_s`` to
  finish and their outcomes are recorded; the rows not sent go back to ``pending``. A call
  still unanswered after the grace time goes back to ``pending`` as an attempt whose outcome
  is unknown (it may have reached the server).
- An unexpected error in a worker (a bug in a transport) stops the run the same way, then
  ``run()`` raises it: no row is left ``in_flight`` and none is lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bulkimport.protocol import Outcome, OutcomeKind, mask_secrets
from bulkimport.rows import ClaimedRow, RowResult
from bulkimport.send.limiter import Clock, RateLimiter
from bulkimport.send.policy import row_result
from bulkimport.send.transport import Transport
from bulkimport.settings import SendSettings
from bulkimport.states import RowState
from bulkimport.storage import RunnerId, SendQueue

log = logging.getLogger("bulkimport")

RESULT_BATCH_ROWS = 200  # outcomes per commit at most: bounds what a kill can make us re-send
RESULT_FLUSH_S = 0.1  # and at least this often
RATE_EVERY_S = 5.0  # how often the sending rate is stored with the job (for `status`)
IDLE_POLL_S = 0.5  # how often to look again when nothing is due yet
STOP_GRACE_S = 5.0  # how long calls in flight may take to finish after a stop
UNKNOWN_CODE = "unknown outcome"  # a call cut off after the grace time: maybe it arrived


class SendEnd(StrEnum):
    """Why sending ended."""

    FINISHED = "finished"  # no pending row left
    FATAL = "fatal"  # the server refused the job's settings
    STOPPED = "stopped"  # stop() was called (signal)


@dataclass
class SendCounts:
    """What happened while sending, for the progress display and the summary."""

    sent: int = 0  # calls made
    done: int = 0
    duplicate: int = 0
    rejected: int = 0
    failed: int = 0
    retried: int = 0  # transient outcomes that will be tried again
    throttled: int = 0  # answers that asked us to wait (Retry-After)

    @property
    def settled(self) -> int:
        """Rows that reached a terminal state in this run."""
        return self.done + self.duplicate + self.rejected + self.failed


@dataclass
class SendResult:
    end: SendEnd
    counts: SendCounts
    recovered: int  # rows found in_flight at start: resent after an unknown outcome
    fatal: Outcome | None = None
    seconds: float = 0.0


@dataclass
class _Run:
    """State shared by the tasks of one send."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    fatal: Outcome | None = None
    buffer: asyncio.Queue[ClaimedRow] = field(default_factory=lambda: asyncio.Queue())
    low: asyncio.Event = field(default_factory=asyncio.Event)  # the buffer wants more rows
    results: list[RowResult] = field(default_factory=list)
    # Rows claimed and not yet resolved (in results); counted from the claim, because a row
    # on its way from the buffer to a worker is in neither.
    unresolved: int = 0
    committing: int = 0  # outcomes in the batch being committed right now
    error: BaseException | None = None  # a worker's unexpected error, raised by run()


class Dispatcher:
    """Sends the pending rows of one job until none is left, a fatal answer, or ``stop()``.

    ``queue`` is the storage's sending side; ``runner`` the runner this process holds (its
    claims name it). ``on_progress`` hears the counts about every ``RESULT_FLUSH_S``;
    ``on_rate`` the rows settled per second every ``RATE_EVERY_S``.
    """

    def __init__(
        self,
        queue: SendQueue,
        job_id: int,
        transport: Transport,
        settings: SendSettings,
        *,
        runner: RunnerId,
        on_progress: Callable[[SendCounts], None] | None = None,
        on_rate: Callable[[float], Awaitable[None]] | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        rng: random.Random | None = None,
        grace_s: float = STOP_GRACE_S,
    ) -> None:
        self._queue = queue
        self._job_id = job_id
        self._runner = runner
        self._on_rate = on_rate
        self._transport = transport
        self._settings = settings
        self._on_progress = on_progress
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng or random.Random()
        self._grace_s = grace_s
        self._limiter = RateLimiter(settings.rate_per_s, clock=clock)
        self._retry = settings.retry
        self._run = _Run()
        self.counts = SendCounts()
        self._flush_lock = asyncio.Lock()

    def stop(self) -> None:
        """Stop claiming; let calls in flight finish (signal handlers call this)."""
        self._run.stop.set()

    async def run(self) -> SendResult:
        started = self._clock()
        recovered = await self._queue.recover_in_flight(self._job_id, self._runner)
        run = self._run
        # Claims of several rounds of calls: fewer transactions per row; the rows claimed but
        # not sent are given back at a stop (and counted as "maybe sent" after a kill).
        claim_size = max(4 * self._settings.concurrency, 64)
        feeder = asyncio.create_task(self._feed(claim_size), name="bulkimport-feeder")
        writer = asyncio.create_task(self._write_periodically(), name="bulkimport-writer")
        workers = [
            asyncio.create_task(self._work(), name=f"bulkimport-worker-{n}")
            for n in range(self._settings.concurrency)
        ]
        for task in (writer, *workers):
            task.add_done_callback(self._on_task_done)
        try:
            await feeder
            await run.stop.wait()
            # Let calls in flight finish; cancel what is still waiting after the grace time.
            _done, late = await asyncio.wait(workers, timeout=self._grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        finally:
            for task in (feeder, *workers):
                task.cancel()
            await asyncio.gather(feeder, *workers, return_exceptions=True)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            # The last writes must happen even if we are being cancelled.
            await asyncio.shield(self._finish())
        if run.error is not None:
            raise run.error
        if run.fatal is not None:
            end = SendEnd.FATAL
        elif await self._queue.next_attempt_at(self._job_id) is None:
            end = SendEnd.FINISHED
        else:
            end = SendEnd.STOPPED
        return SendResult(
            end=end,
            counts=self.counts,
            recovered=recovered,
            fatal=run.fatal,
            seconds=self._clock() - started,
        )

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            # An unexpected error may quote the request; keep any password value out of the log.
            log.error("%s failed: %s; stopping", task.get_name(), mask_secrets(repr(error), ()))
            if self._run.error is None:
                self._run.error = error
            self._run.stop.set()

    async def _finish(self) -> None:
        await self._flush()
        unsent = []
        while not self._run.buffer.empty():
            unsent.append(self._run.buffer.get_nowait().id)
        if unsent:
            await self._queue.release(self._job_id, unsent)

    async def _feed(self, claim_size: int) -> None:
        """Keep the buffer filled with due rows; set ``stop`` when nothing is left."""
        run = self._run
        while not run.stop.is_set():
            if run.buffer.qsize() >= self._settings.concurrency:
                # A worker that takes the buffer below one round of calls wakes us up.
                run.low.clear()
                await self._wait_for(run.low, 0.1)
                continue
            rows = await self._queue.claim_batch(
                self._job_id, claim_size, now_s=self._wall(), runner=self._runner
            )
            if run.stop.is_set():
                if rows:
                    await self._queue.release(self._job_id, [row.id for row in rows])
                return
            if rows:
                run.unresolved += len(rows)
                for row in rows:
                    run.buffer.put_nowait(row)
                continue
            # Nothing due now: finished, or waiting for retries or for rows in flight.
            if run.unresolved == 0:
                await self._flush()
                next_at = await self._queue.next_attempt_at(self._job_id)
                if next_at is None:
                    run.stop.set()
                    return
                wait_s = min(max(next_at - self._wall(), 0.01), IDLE_POLL_S)
            else:
                wait_s = 0.02
            await self._sleep_or_stop(wait_s)

    async def _sleep_or_stop(self, seconds: float) -> None:
        await self._wait_for(self._run.stop, seconds)

    async def _wait_for(self, event: asyncio.Event, seconds: float) -> None:
        """Wait until ``event`` is set, ``stop`` is set, or ``seconds`` have passed."""
        if self._run.stop.is_set() or event.is_set():
            return
        waiters = [asyncio.ensure_future(event.wait())]
        if event is not self._run.stop:
            waiters.append(asyncio.ensure_future(self._run.stop.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _work(self) -> None:
        run = self._run
        while True:
            row = await self._next_row()
            if row is None:
                return
            try:
                turn = await self._limiter.acquire(run.stop)
            except BaseException:
                run.buffer.put_nowait(row)  # not sent: released by _finish
                raise
            if not turn:
                run.buffer.put_nowait(row)
                return
            self.counts.sent += 1
            try:
                outcome = await self._transport.send(row.record)
            except BaseException:
                # Cut off after the grace time, or a bug in the transport: the call may have
                # reached the server. The row is sent again, and its attempt counts.
                self._resolve(
                    RowResult(
                        row.id,
                        RowState.PENDING,
                        UNKNOWN_CODE,
                        "no answer before the send stopped; it may have reached the server",
                    )
                )
                raise
            await self._record(row, outcome)

    async def _next_row(self) -> ClaimedRow | None:
        """The next row of the buffer, or None once ``stop`` is set."""
        run = self._run
        if run.stop.is_set():
            return None
        if run.buffer.qsize() <= self._settings.concurrency:
            run.low.set()
        try:
            return run.buffer.get_nowait()
        except asyncio.QueueEmpty:
            pass
        get = asyncio.ensure_future(run.buffer.get())
        stop = asyncio.ensure_future(run.stop.wait())
        try:
            await asyncio.wait((get, stop), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            stop.cancel()
            if get.done():
                run.buffer.put_nowait(get.result())
            else:
                get.cancel()  # takes no row: Queue.get only removes one when it returns
            raise
        stop.cancel()
        if not get.done():
            get.cancel()
            return None
        row = get.result()
        if run.stop.is_set():
            run.buffer.put_nowait(row)  # released, unsent, by _finish
            return None
        return row

    def _resolve(self, result: RowResult) -> None:
        self._run.results.append(result)
        self._run.unresolved -= 1

    async def _record(self, row: ClaimedRow, outcome: Outcome) -> None:
        run = self._run
        counts = self.counts
        kind = outcome.kind
        result = row_result(row, outcome, self._retry, now_s=self._wall(), rng=self._rng)
        if kind is OutcomeKind.FATAL:
            if run.fatal is None:
                run.fatal = outcome
                log.debug("fatal answer %s on line %d", outcome.code, row.line)
            run.stop.set()
        elif kind is OutcomeKind.TRANSIENT:
            if outcome.retry_after_s is not None:
                self._limiter.pause(outcome.retry_after_s)
                counts.throttled += 1
            if result.state is RowState.FAILED:
                counts.failed += 1
            else:
                counts.retried += 1
        elif kind is OutcomeKind.DONE:
            counts.done += 1
        elif kind is OutcomeKind.DUPLICATE:
            counts.duplicate += 1
        else:
            counts.rejected += 1
        self._resolve(result)
        # Outcomes not yet committed, including a batch being committed, stay under one
        # batch: this worker sends nothing more until they are, which bounds what a kill
        # can make us send again to the calls in flight plus one batch.
        if len(run.results) + run.committing >= RESULT_BATCH_ROWS:
            # Shielded: a cancel must not lose outcomes already taken off the list.
            await asyncio.shield(self._flush())

    async def _write_periodically(self) -> None:
        rate_from_s, rate_from_settled = self._clock(), 0
        while True:
            await asyncio.sleep(RESULT_FLUSH_S)
            await self._flush()
            if self._on_progress is not None:
                self._on_progress(self.counts)
            now = self._clock()
            if now - rate_from_s >= RATE_EVERY_S:
                settled = self.counts.settled
                rate = (settled - rate_from_settled) / (now - rate_from_s)
                if self._on_rate is not None:
                    await self._on_rate(rate)
                rate_from_s, rate_from_settled = now, settled

    async def _flush(self) -> None:
        async with self._flush_lock:
            if not self._run.results:
                return
            batch, self._run.results = self._run.results, []
            self._run.committing = len(batch)
            try:
                await self._queue.record_results(self._job_id, batch)
            finally:
                self._run.committing = 0
