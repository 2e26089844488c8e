"""Send a job's pending rows: a pool of workers over one transport, watched as a whole.

    claim (feeder) ──▶ buffer ──▶ workers ──pace──▶ transport ──▶ health ──▶ policy
                                     ▲                                │          │
                                     └──── probe (one call, outage) ◀─┘  writer ◀┘

- The ``Feeder`` claims due rows a batch at a time and hands each claim over to the
  workers whole; it waits for a send window to open, and for reading beside sending.
- Workers wait for a slot (``Slots``: ``pace.concurrency_limit`` calls in flight) and their
  turn at the ``RateLimiter`` (``pace.interval_s`` apart, and a ``Retry-After`` pauses every
  worker). The pace is fixed (``--rate N``: ``FixedPace``, slowed by back-pressure) or found
  as it goes (``--rate auto``: ``PaceController``). With ``--server-rate`` they then pass
  the server's ``SharedBudget``, shared with every runner of the storage.
- Every outcome goes to ``JobHealth`` first: is the trouble the row's or the server's (an
  outage, throttling: the attempt is spared), does the job stop (a fatal answer, a URL that
  never answered, a spent error budget, an outage past ``--max-outage``), did an outage
  begin or end; ``ServerWatch`` acts on it (probes, refunds, a doubted URL, the method).
- Then the pure ``policy.row_result`` turns the outcome into the row's next state, and the
  ``ResultWriter`` records results in small batches. A worker whose result would overflow a
  batch waits for the commit, which bounds the rows sent but not recorded.
- A stop (any cause, or ``stop()``) ends claiming at once; calls in flight get ``grace_s``
  to finish and their outcomes are recorded; rows not sent go back to ``pending``. A call
  still unanswered after the grace time goes back to ``pending`` as an attempt whose outcome
  is unknown (it may have reached the server).
- An unexpected error in a worker (a bug in a transport) stops the run the same way, then
  ``run()`` raises it: no row is left ``in_flight`` and none is lost.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from dataclasses import dataclass, field

from bulkimport.errors import BulkImportError
from bulkimport.protocol import Outcome, OutcomeKind, Trouble, mask_secrets
from bulkimport.rows import ClaimedRow, RowResult
from bulkimport.send.feeder import IDLE_POLL_S, Feeder, wait_for
from bulkimport.send.health import HealthSettings, JobHealth, Mode
from bulkimport.send.limiter import RateLimiter
from bulkimport.send.outage import RunControl, ServerWatch
from bulkimport.send.pace import FixedPace, Pace, PaceController, PaceSettings, Signal, signal_of
from bulkimport.send.policy import maybe_processed, row_result
from bulkimport.send.slots import Slots
from bulkimport.send.transport import Transport
from bulkimport.send.values import (
    DispatchOptions,
    Feed,
    Listeners,
    SendCounts,
    SendEnd,
    SendResult,
    Watch,
    WatchEvent,
)
from bulkimport.send.writer import ResultWriter
from bulkimport.settings import SendSettings
from bulkimport.states import RowState, StopCause
from bulkimport.storage import RunnerId, SendQueue

log = logging.getLogger("bulkimport")

RESULT_FLUSH_S = 0.1  # outcomes are committed at least this often
RATE_EVERY_S = 5.0  # how often the sending rate is stored with the job (for `status`)
UNKNOWN_CODE = "unknown outcome"  # a call cut off after the grace time: maybe it arrived
_CUT_OFF = "no answer before the send stopped; it may have reached the server"


def make_pace(settings: SendSettings, *, now_s: float) -> Pace:
    """The pace for ``settings``: found as it goes (auto), or the rate chosen."""
    if settings.auto:
        # The server's budget, when it has one, is a ceiling of the pace found too.
        cap = min(settings.max_rate_per_s or math.inf, settings.server_rate_per_s or math.inf)
        return PaceController(
            PaceSettings(
                initial_rate_per_s=min(4.0, cap),
                min_rate_per_s=min(1.0, cap),
                max_rate_per_s=cap,
                max_concurrency=settings.pool,
            ),
            now_s=now_s,
        )
    return FixedPace(settings.rate_per_s or 0.0, settings.pool, now_s=now_s)


@dataclass
class _Run:
    """State shared by the tasks of one send."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    cause: StopCause | None = None
    outcome: Outcome | None = None
    error: BaseException | None = None  # a worker's unexpected error, raised by run()
    sending: asyncio.Event = field(default_factory=asyncio.Event)  # set unless in an outage


class Dispatcher:
    """Sends the pending rows of one job until none is left, a stop, or ``stop()``.

    ``queue`` is the storage's sending side; ``runner`` the runner this process holds (its
    claims name it); ``options`` how the run goes beyond the ``settings``; ``listeners``
    who hears about it; ``feed`` reading going on beside it.
    """

    def __init__(
        self,
        queue: SendQueue,
        job_id: int,
        transport: Transport,
        settings: SendSettings,
        *,
        runner: RunnerId,
        options: DispatchOptions | None = None,
        listeners: Listeners | None = None,
        feed: Feed | None = None,
    ) -> None:
        options = options or DispatchOptions()
        self._queue, self._job_id, self._runner = queue, job_id, runner
        self._transport, self._settings, self._options = transport, settings, options
        self._listeners = listeners or Listeners()
        self._clock, self._wall = options.clock, options.wall_clock
        self._rng = options.rng or random.Random()
        self._pool = settings.pool
        now = self._clock()
        self.pace: Pace = make_pace(settings, now_s=now)
        self._limiter = RateLimiter(self.pace.rate_per_s, clock=self._clock)
        self._budget = options.budget  # the server's, shared: passed after the pace's turn
        health = HealthSettings(max_outage_s=settings.max_outage_s, budget=settings.max_rejects)
        health = options.health or health
        self.health = JobHealth(health, reached_before=options.reached_before, now_s=now)
        self._reached_told = False
        self._preamble_told = False  # what the server prints before its answers: said once
        run = self._run = _Run()
        run.sending.set()
        self.counts = SendCounts()
        self._watch_tasks: set[asyncio.Task[None]] = set()
        # Read at each wait: the pace may be replaced before the run (a benchmark's).
        self._slots = Slots(lambda: self.pace.concurrency_limit, run.stop)
        self._writer = ResultWriter(
            queue, job_id, lambda batch: self._server.committed(batch), runner=runner
        )
        self._feeder = Feeder(
            queue, job_id, runner, pool=self._pool, stop=run.stop, sending=run.sending,
            wall_clock=self._wall, flush=self._writer.flush, tell=self._tell,
            window=settings.window, feed=feed,
        )  # fmt: skip
        control = RunControl(
            run.stop, run.sending, self._stop, lambda: self._slots.in_flight,
            self._feeder.release, self._writer.flush, self._resume, self._tell,
        )  # fmt: skip
        self._server = ServerWatch(
            self.health, transport, queue, job_id, self.counts, control,
            clock=self._clock, wall_clock=self._wall, grace_s=options.grace_s,
            shared=self._budget,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop claiming; let calls in flight finish (signal handlers call this)."""
        self._stop(StopCause.SIGNAL)

    def _stop(self, cause: StopCause, outcome: Outcome | None = None) -> None:
        run = self._run
        if run.cause is None:
            run.cause, run.outcome = cause, outcome
        self._end()

    def _end(self) -> None:
        """No more claims; wake every worker, wherever it waits, to end."""
        run = self._run
        if run.stop.is_set():
            return
        run.stop.set()
        run.sending.set()  # the workers held by an outage
        self._feeder.wake()  # those waiting for a row
        self._slots.wake_all()
        self._limiter.cancel()
        if self._budget is not None:
            self._budget.cancel()

    def _resume(self) -> None:
        self.pace.resume(self._clock())
        self._limiter.set_rate(self.pace.rate_per_s)

    # --- the run ------------------------------------------------------------------------------

    async def run(self) -> SendResult:
        """Send until no row is left or a stop; raise a worker's unexpected error."""
        started = self._clock()
        recovered = await self._queue.recover_in_flight(self._job_id, self._runner)
        run = self._run
        # Claims of several rounds of calls: fewer transactions per row; the rows claimed but
        # not sent are given back at a stop (and counted as "maybe sent" after a kill).
        claim_size = max(4 * min(self._pool, 32), 64)
        feeder = asyncio.create_task(self._feed(claim_size), name="bulkimport-feeder")
        writer = asyncio.create_task(self._write_periodically(), name="bulkimport-writer")
        prober = asyncio.create_task(self._server.probe(), name="bulkimport-probe")
        workers = [
            asyncio.create_task(self._work(), name=f"bulkimport-worker-{n}")
            for n in range(self._pool)
        ]
        for task in (writer, prober, *workers):
            task.add_done_callback(self._on_task_done)
        try:
            await feeder
            await run.stop.wait()
            # Let calls in flight finish; cancel what is still waiting after the grace time.
            _done, late = await asyncio.wait([prober, *workers], timeout=self._options.grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(prober, *workers, return_exceptions=True)
        finally:
            for task in (feeder, prober, *workers):
                task.cancel()
            await asyncio.gather(feeder, prober, *workers, return_exceptions=True)
            doubting = [] if self._server.doubting is None else [self._server.doubting]
            for task in (writer, *doubting):
                task.cancel()
            await asyncio.gather(writer, *doubting, return_exceptions=True)
            # The last writes must happen even if we are being cancelled.
            await asyncio.shield(self._finish())
        if run.error is not None:
            raise run.error
        if await self._server.ask_after_stop(run.cause, run.outcome):
            run.cause = StopCause.NEVER_REACHED
        finished = run.cause is None and await self._queue.next_attempt_at(self._job_id) is None
        return SendResult(
            end=SendEnd.FINISHED if finished else SendEnd.STOPPED,
            counts=self.counts,
            recovered=recovered + self._feeder.recovered,
            cause=None if finished else (run.cause or StopCause.SIGNAL),
            outcome=run.outcome,
            budget_codes=self.health.budget_codes(),
            budget_answers=self.health.budget_answers,
            seconds=self._clock() - started,
            other_method=self._server.other_method,
            never_answered=not self.health.reached,
        )

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            # An unexpected error may quote the request; keep any password value out of the log.
            # One of the tool's own (a full disk, a damaged database) is raised when the run
            # ends and said once there: not twice on a terminal.
            level = logging.DEBUG if isinstance(error, BulkImportError) else logging.ERROR
            what = mask_secrets(repr(error), ())
            log.log(level, "%s failed: %s; stopping", task.get_name(), what)
            if self._run.error is None:
                self._run.error = error
            self._stop(StopCause.SIGNAL)

    async def _feed(self, claim_size: int) -> None:
        """Claim rows until none is left (the end), or a stop."""
        cause = await self._feeder.run(claim_size)
        if cause is not None:
            self._stop(cause)
        else:
            self._end()

    async def _finish(self) -> None:
        await self._writer.flush()
        await self._feeder.release()
        if self._watch_tasks:
            await asyncio.gather(*self._watch_tasks, return_exceptions=True)

    # --- sending ------------------------------------------------------------------------------

    async def _work(self) -> None:
        run, slots, feeder = self._run, self._slots, self._feeder
        while True:
            if not run.sending.is_set():
                await wait_for(run.sending, run.stop, IDLE_POLL_S)
                continue
            row = feeder.take() or await feeder.next_row()
            if row is None:
                return
            if not run.sending.is_set():
                # An outage began meanwhile: the row waits, given back to storage as the
                # buffer was when the outage began (a kill would count it as maybe sent).
                feeder.put_back(row)
                await feeder.release()
                continue
            if not (slots.take_now() or await slots.take()):
                feeder.put_back(row)  # not sent: released by _finish
                return
            try:
                turn = await self._limiter.acquire()
                if turn and self._budget is not None:
                    turn = await self._budget.acquire(self.pace.rate_per_s)
            except BaseException:
                slots.free()
                feeder.put_back(row)
                raise
            if not turn or self._wall() >= feeder.window_closes_s:
                if turn:
                    self._stop(StopCause.WINDOW)
                slots.free()
                feeder.put_back(row)
                return
            if not run.sending.is_set():
                # An outage began while this worker waited for its slot or its turn: the
                # call would go to a server known to be down. The row waits, given back.
                slots.free()
                feeder.put_back(row)
                await feeder.release()
                continue
            await self._send(row)

    async def _send(self, row: ClaimedRow) -> None:
        """Send one row (a slot taken, its turn come) and record what came of it."""
        started = self._clock()
        self.pace.on_sent(started)
        self.counts.sent += 1
        refunds = self._server.refunds
        if refunds.rows:
            refunds.sending(row.id)
        try:
            outcome = await self._transport.send(row.record)
        except BaseException:
            # Cut off after the grace time, or a bug in the transport: the call may have
            # reached the server. The row is sent again, and its attempt counts.
            self.pace.on_answer(self._clock(), self._clock() - started, Signal.IGNORE)
            self.counts.unknown += 1
            self._slots.free()
            self._server.refunds.recorded(row.id, held=False)
            self._resolve(RowResult(row.id, RowState.PENDING, UNKNOWN_CODE, _CUT_OFF, unknown=True))
            raise
        self._slots.free()
        await self._record(row, outcome, started)

    # --- outcomes -----------------------------------------------------------------------------

    def _resolve(self, result: RowResult) -> None:
        self._writer.add(result)
        self._feeder.resolved()

    async def _record(self, row: ClaimedRow, outcome: Outcome, started: float) -> None:
        counts, health = self.counts, self.health
        now = self._clock()
        if self.pace.on_answer(now, now - started, signal_of(outcome)):
            self._limiter.set_rate(self.pace.rate_per_s)
            self._slots.wake(self.pace.concurrency_limit - self._slots.in_flight)
        unknown = outcome.trouble is not None and maybe_processed(outcome, reached=health.reached)
        page = (
            outcome.trouble is Trouble.NOT_AN_ANSWER
            and outcome.status is not None
            and 200 <= outcome.status < 300
        )
        if outcome.answered:
            counts.answered += 1
        elif page:
            counts.pages += 1
        decision = health.observe(outcome, now, started)
        if decision.changed and health.mode is Mode.OUTAGE:
            decision = await self._server.outage_begins(outcome, decision)
        if outcome.preamble and not self._preamble_told:
            self._preamble_told = True
            log.info("the server prints this with its answers, read through: %s", outcome.preamble)
        if outcome.answered and not self._reached_told:
            self._reached_told = True
            self._tell(WatchEvent(Watch.REACHED))
        if outcome.trouble is Trouble.THROTTLED:
            # A front end that limits the rate may count strictly (limit_req without a
            # burst refuses a call that follows the last one too soon): a late call no
            # longer lets the next one catch up.
            self._limiter.keep_spacing()
        if outcome.retry_after_s is not None:
            self._limiter.pause(outcome.retry_after_s)
            counts.throttled += 1
        refunds = self._server.refunds
        if refunds.rows:
            self._server.after_outcome()
        if decision.changed:
            await self._server.changed(outcome, row.line)
        if decision.stop is not None:
            self._server.stop_or_doubt(decision.stop)
        if unknown:
            if not page:  # counted as a page: the server took the call and printed something
                counts.unknown += 1
            self._tell(WatchEvent(Watch.UNKNOWN, outcome, row.line))
        result = row_result(
            row,
            outcome,
            self._settings.retry,
            spare=decision.spare,
            now_s=self._wall(),
            rng=self._rng,
            max_unknown=self._options.max_unknown,
            reached=health.reached,
        )
        held = outcome.kind is OutcomeKind.TRANSIENT and result.counted
        if held or refunds.rows:
            refunds.recorded(row.id, held=held)
        counts.count(outcome, result.state, spared=decision.spare)
        self._resolve(result)
        # Outcomes not yet committed, including a batch being committed, stay under one
        # batch: this worker sends nothing more until they are, which bounds what a kill
        # can make us send again to the calls in flight plus one batch.
        if self._writer.full:
            # Shielded: a cancel must not lose outcomes already taken off the list.
            await asyncio.shield(self._writer.flush())

    def _tell(self, event: WatchEvent) -> None:
        if self._listeners.on_watch is None:
            return
        task = asyncio.ensure_future(self._listeners.on_watch(event))
        self._watch_tasks.add(task)
        task.add_done_callback(self._watch_tasks.discard)

    # --- progress -----------------------------------------------------------------------------

    async def _write_periodically(self) -> None:
        """Commit outcomes every ``RESULT_FLUSH_S``; tell the progress, and the rate."""
        on_progress, on_rate = self._listeners.on_progress, self._listeners.on_rate
        rate_from_s, rate_from_settled = self._clock(), 0
        while True:
            await asyncio.sleep(RESULT_FLUSH_S)
            await self._writer.flush()
            if on_progress is not None:
                on_progress(self.counts)
            now = self._clock()
            if now - rate_from_s >= RATE_EVERY_S:
                settled = self.counts.settled
                rate = (settled - rate_from_settled) / (now - rate_from_s)
                if on_rate is not None:
                    await on_rate(rate, self.pace.state())
                rate_from_s, rate_from_settled = now, settled
