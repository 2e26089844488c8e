"""Send a job's pending rows: a pool of workers over one transport, watched as a whole.

    claim (feeder) ──▶ buffer ──▶ workers ──pace──▶ transport ──▶ health ──▶ policy
                                     ▲                                │          │
                                     └──── probe (one call, outage) ◀─┘  writer ◀┘

- The feeder claims due rows a batch at a time (``in_flight`` in storage before they are
  sent) and keeps the buffer short, so a kill leaves few claimed rows behind.
- Workers wait for a slot (``pace.concurrency_limit`` calls in flight) and their turn at the
  ``RateLimiter`` (``pace.interval_s`` apart, and a ``Retry-After`` pauses every worker). The
  pace is fixed (``--rate N``: ``FixedPace``, slowed by back-pressure) or found as it goes
  (``--rate auto``: ``PaceController``).
- Every outcome goes to ``JobHealth`` first: it decides whether the trouble is the row's or
  the server's (an outage, throttling: the attempt is spared), whether the job stops (a fatal
  answer, a URL that never answered, a spent error budget, an outage past ``--max-outage``),
  and whether an outage began or ended. In an outage the workers hold no rows and wait; the
  probe sends one row at growing intervals until an answer comes.
- Then the pure ``policy.row_result`` turns the outcome into the row's next state, and one
  writer records results in small batches. A worker whose result would overflow a batch
  waits for the commit, which bounds the rows sent but not recorded.
- With a send window (``--window``), nothing is claimed before it opens (the run waits,
  saying until when), and when it closes the run stops (``StopCause.WINDOW``).
- A stop (any cause, or ``stop()``) ends claiming at once; calls in flight get ``grace_s``
  to finish and their outcomes are recorded; rows not sent go back to ``pending``. A call
  still unanswered after the grace time goes back to ``pending`` as an attempt whose outcome
  is unknown (it may have reached the server).
- While reading goes on beside sending (``feed``), running out of rows is not the end:
  sending waits for the next committed batch until reading is done.
- An unexpected error in a worker (a bug in a transport) stops the run the same way, then
  ``run()`` raises it: no row is left ``in_flight`` and none is lost.
- A run that got HTTP responses but no Import answer at all (a 405 to POST from a server
  that reads GET only) asks the server once with the other method before its stop (or an
  outage) stands; answered, the run stops naming it (``SendResult.other_method``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bulkimport.protocol import Outcome, OutcomeKind, Trouble, mask_secrets
from bulkimport.rows import ClaimedRow, RowResult
from bulkimport.send.health import HealthSettings, JobHealth, Mode
from bulkimport.send.limiter import Clock, RateLimiter
from bulkimport.send.pace import (
    FixedPace,
    Pace,
    PaceController,
    PaceSettings,
    PaceState,
    Signal,
    signal_of,
)
from bulkimport.send.policy import maybe_processed, row_result
from bulkimport.send.transport import Transport
from bulkimport.settings import Method, SendSettings
from bulkimport.states import RowState, StopCause
from bulkimport.storage import RunnerId, SendQueue

log = logging.getLogger("bulkimport")

RESULT_BATCH_ROWS = 200  # outcomes per commit at most: bounds what a kill can make us re-send
RESULT_FLUSH_S = 0.1  # and at least this often
RATE_EVERY_S = 5.0  # how often the sending rate is stored with the job (for `status`)
IDLE_POLL_S = 0.5  # how often to look again when nothing is due yet
STOP_GRACE_S = 5.0  # how long calls in flight may take to finish after a stop
UNKNOWN_CODE = "unknown outcome"  # a call cut off after the grace time: maybe it arrived


class SendEnd(StrEnum):
    """How sending ended."""

    FINISHED = "finished"  # no pending row left (and reading done)
    STOPPED = "stopped"  # stopped before that: ``SendResult.cause`` says why


@dataclass
class SendCounts:
    """What happened while sending, for the progress display and the summary."""

    sent: int = 0  # calls made
    answered: int = 0  # calls answered in the Import protocol (whatever the answer said)
    done: int = 0
    duplicate: int = 0
    rejected: int = 0
    failed: int = 0
    retried: int = 0  # transient outcomes that will be tried again
    throttled: int = 0  # answers that asked us to wait (Retry-After)
    spared: int = 0  # troubles not held against the row (an outage, throttling)
    # Calls whose outcome is unknown (a timeout, a proxy's 502/504, a call cut off at a stop):
    # they may have been processed.
    unknown: int = 0
    # Calls answered with a 2xx page that is no Import answer: the server took them, and may
    # have processed them (a notice printed before the answer).
    pages: int = 0
    maybe_imported: int = 0  # rows that ended ``unknown``: they may be on the server

    @property
    def settled(self) -> int:
        """Rows that reached a terminal state in this run."""
        return self.done + self.duplicate + self.rejected + self.failed + self.maybe_imported


@dataclass
class SendResult:
    """How a run of the dispatcher ended; ``outcome`` is the answer behind a stop, if any."""

    end: SendEnd
    counts: SendCounts
    recovered: int  # rows found in_flight at start: resent after an unknown outcome
    cause: StopCause | None = None
    outcome: Outcome | None = None
    budget_codes: list[tuple[str, int]] = field(default_factory=list)
    budget_answers: int = 0  # the answers those codes are among
    seconds: float = 0.0
    # A stop of a run that no Import answer came to: the HTTP method the server answered
    # instead (it does not take the run's).
    other_method: Method | None = None


class Watch(StrEnum):
    """What the dispatcher tells its watcher about the server, as it learns it."""

    REACHED = "reached"  # the first Import answer of this run
    OUTAGE = "outage"  # no answer across the board: paused, probing
    PROBE_FAILED = "probe-failed"  # a probe got no answer either
    BACK = "back"  # an answer again: sending resumes
    UNKNOWN = "unknown"  # a call may have been processed though no answer came
    WINDOW_WAIT = "window-wait"  # outside the send window: waiting until it opens
    WINDOW_OPEN = "window-open"  # the send window opened: sending begins


@dataclass(frozen=True)
class WatchEvent:
    """One thing learned; times are wall-clock Unix seconds."""

    kind: Watch
    outcome: Outcome | None = None
    line: int | None = None
    since_s: float | None = None  # OUTAGE: when answers stopped
    next_try_s: float | None = None  # OUTAGE, PROBE_FAILED: when the next probe goes;
    # WINDOW_WAIT: when the window opens


@dataclass
class Feed:
    """Reading going on beside sending: ``added`` is set after each committed batch, ``done``
    once reading ended; ``failed`` if it ended before the file's end (sending stops too,
    with ``StopCause.READING``: a job is never finished with rows left unread)."""

    added: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    failed: bool = False

    def end(self, *, failed: bool = False) -> None:
        self.failed = failed
        self.done.set()
        self.added.set()


def make_pace(settings: SendSettings, *, now_s: float) -> Pace:
    """The pace for ``settings``: found as it goes (auto), or the rate chosen."""
    if settings.auto:
        cap = settings.max_rate_per_s or math.inf
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
    # Rows claimed for the workers; a None tells a worker waiting for one that the run ends.
    buffer: asyncio.Queue[ClaimedRow | None] = field(default_factory=lambda: asyncio.Queue())
    low: asyncio.Event = field(default_factory=asyncio.Event)  # the buffer wants more rows
    results: list[RowResult] = field(default_factory=list)
    # Rows claimed and not yet resolved (in results); counted from the claim, because a row
    # on its way from the buffer to a worker is in neither.
    unresolved: int = 0
    committing: int = 0  # outcomes in the batch being committed right now
    error: BaseException | None = None  # a worker's unexpected error, raised by run()
    sending: asyncio.Event = field(default_factory=asyncio.Event)  # set unless in an outage
    # Workers waiting for a slot, first come first served: a freed slot wakes one of them,
    # not all (with --rate auto most of the pool waits under a small cap).
    slot_waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    in_flight: int = 0  # calls sent and not answered (slots taken)
    probing: bool = False


class Dispatcher:
    """Sends the pending rows of one job until none is left, a stop, or ``stop()``.

    ``queue`` is the storage's sending side; ``runner`` the runner this process holds (its
    claims name it). ``reached_before``: the target's URL gave an Import answer before (a URL
    that never did and gives none now is a mistake, not an outage). ``max_unknown``: calls of
    one row whose outcome is unknown, at most (when each resend rewrites the customer).
    ``on_progress`` hears the counts about every ``RESULT_FLUSH_S``; ``on_rate`` the rows
    settled per second and the pace every ``RATE_EVERY_S``; ``on_watch`` what is learned
    about the server.
    """

    def __init__(
        self,
        queue: SendQueue,
        job_id: int,
        transport: Transport,
        settings: SendSettings,
        *,
        runner: RunnerId,
        reached_before: bool = True,
        max_unknown: int | None = None,
        health: HealthSettings | None = None,
        feed: Feed | None = None,
        on_progress: Callable[[SendCounts], None] | None = None,
        on_rate: Callable[[float, PaceState], Awaitable[None]] | None = None,
        on_watch: Callable[[WatchEvent], Awaitable[None]] | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        rng: random.Random | None = None,
        grace_s: float = STOP_GRACE_S,
    ) -> None:
        self._queue = queue
        self._job_id = job_id
        self._runner = runner
        self._transport = transport
        self._settings = settings
        self._feed_state = feed
        self._on_progress = on_progress
        self._on_rate = on_rate
        self._on_watch = on_watch
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng or random.Random()
        self._grace_s = grace_s
        self._retry = settings.retry
        self._window = settings.window
        self._window_closes_s = math.inf  # no call starts from then on (--window)
        self._max_unknown = max_unknown
        self._pool = settings.pool
        now = clock()
        self.pace: Pace = make_pace(settings, now_s=now)
        self._limiter = RateLimiter(self.pace.rate_per_s, clock=clock)
        self.health = JobHealth(
            health
            or HealthSettings(max_outage_s=settings.max_outage_s, budget=settings.max_rejects),
            reached_before=reached_before,
            now_s=now,
        )
        self._reached_told = False
        self._preamble_told = False  # what the server prints before its answers: said once
        self._method_asked = False  # the server was asked about the other HTTP method
        self._other_method: Method | None = None  # ...and answered it
        # Rows whose last call met a trouble held against them, since the last answer: if an
        # outage turns out to have begun, those attempts are taken back.
        self._streak_rows: list[int] = []
        # Rows whose call is on its way now; those of the streak that were sent again before
        # the outage was confirmed get their refund when that call's result is recorded.
        self._sending_rows: set[int] = set()
        self._refund_later: set[int] = set()
        self._refund_after_flush: list[int] = []
        self._run = _Run()
        self._run.sending.set()
        self.counts = SendCounts()
        self._flush_lock = asyncio.Lock()
        self._watch_tasks: set[asyncio.Task[None]] = set()
        # A URL taken for a wrong one while calls were still in flight: sending is held
        # until they end; an answer among them lifts the stop.
        self._doubting: asyncio.Task[None] | None = None

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
        self._wake_slot_waiters(len(run.slot_waiters))
        self._limiter.cancel()
        for _ in range(self._pool):
            run.buffer.put_nowait(None)  # those waiting for a row: one None each

    # --- the run ------------------------------------------------------------------------------

    async def run(self) -> SendResult:
        started = self._clock()
        recovered = await self._queue.recover_in_flight(self._job_id, self._runner)
        run = self._run
        # Claims of several rounds of calls: fewer transactions per row; the rows claimed but
        # not sent are given back at a stop (and counted as "maybe sent" after a kill).
        claim_size = max(4 * min(self._pool, 32), 64)
        feeder = asyncio.create_task(self._feed(claim_size), name="bulkimport-feeder")
        writer = asyncio.create_task(self._write_periodically(), name="bulkimport-writer")
        prober = asyncio.create_task(self._probe(), name="bulkimport-probe")
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
            _done, late = await asyncio.wait([prober, *workers], timeout=self._grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(prober, *workers, return_exceptions=True)
        finally:
            for task in (feeder, prober, *workers):
                task.cancel()
            await asyncio.gather(feeder, prober, *workers, return_exceptions=True)
            writer.cancel()
            doubting = [self._doubting] if self._doubting is not None else []
            for task in doubting:
                task.cancel()
            await asyncio.gather(writer, *doubting, return_exceptions=True)
            # The last writes must happen even if we are being cancelled.
            await asyncio.shield(self._finish())
        if run.error is not None:
            raise run.error
        if (
            run.cause in (StopCause.NEVER_REACHED, StopCause.FATAL)
            and run.outcome is not None
            and self._doubts_method(run.outcome)
        ):
            # Stopped on a 405, a 404...: is it the URL, or the method? Asked once the calls
            # in flight are done, so that a slow answer is not cut off by the grace time.
            self._other_method = await self._ask_other_method()
            if self._other_method is not None:
                self.health.wrong_method(run.outcome)
                run.cause = StopCause.NEVER_REACHED
        finished = run.cause is None and await self._queue.next_attempt_at(self._job_id) is None
        return SendResult(
            end=SendEnd.FINISHED if finished else SendEnd.STOPPED,
            counts=self.counts,
            recovered=recovered,
            cause=None if finished else (run.cause or StopCause.SIGNAL),
            outcome=run.outcome,
            budget_codes=self.health.budget_codes(),
            budget_answers=self.health.budget_answers,
            seconds=self._clock() - started,
            other_method=self._other_method,
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
            self._stop(StopCause.SIGNAL)

    async def _finish(self) -> None:
        await self._flush()
        await self._release_buffer()
        if self._watch_tasks:
            await asyncio.gather(*self._watch_tasks, return_exceptions=True)

    async def _release_buffer(self) -> None:
        unsent = []
        while not self._run.buffer.empty():
            row = self._run.buffer.get_nowait()
            if row is not None:
                unsent.append(row.id)
        if unsent:
            self._run.unresolved -= len(unsent)
            await self._queue.release(self._job_id, unsent)

    # --- claiming -----------------------------------------------------------------------------

    async def _feed(self, claim_size: int) -> None:
        """Keep the buffer filled with due rows; set ``stop`` when nothing is left."""
        run = self._run
        feed = self._feed_state
        if not await self._wait_for_window():
            return
        while not run.stop.is_set():
            if feed is not None and feed.failed:
                self._stop(StopCause.READING)
                return
            if self._wall() >= self._window_closes_s:
                self._stop(StopCause.WINDOW)  # it closed: the calls in flight finish
                return
            if not run.sending.is_set():
                # An outage: the probe claims its own rows.
                await self._wait_for(run.sending, IDLE_POLL_S)
                continue
            if run.buffer.qsize() >= self._pool:
                # A worker that takes the buffer below one round of calls wakes us up.
                run.low.clear()
                await self._wait_for(run.low, 0.1)
                continue
            rows = await self._queue.claim_batch(
                self._job_id, claim_size, now_s=self._wall(), runner=self._runner
            )
            if run.stop.is_set() or not run.sending.is_set():
                if rows:
                    await self._queue.release(self._job_id, [row.id for row in rows])
                continue
            if rows:
                run.unresolved += len(rows)
                for row in rows:
                    run.buffer.put_nowait(row)
                continue
            # Nothing due now: finished, or waiting for retries, rows in flight, or reading.
            if run.unresolved == 0:
                await self._flush()
                # Seen before asking for due rows: a batch committed meanwhile is not missed.
                read = feed is None or feed.done.is_set()
                if feed is not None:
                    feed.added.clear()
                next_at = await self._queue.next_attempt_at(self._job_id)
                if next_at is None:
                    if read:
                        if feed is not None and feed.failed:
                            self._stop(StopCause.READING)
                            return
                        self._end()
                        return
                    assert feed is not None
                    await self._wait_for(feed.added, IDLE_POLL_S)
                    continue
                wait_s = min(max(next_at - self._wall(), 0.01), IDLE_POLL_S)
            else:
                wait_s = 0.02
            await self._wait_for(run.stop, wait_s)

    async def _wait_for_window(self) -> bool:
        """Outside the send window, wait until it opens (saying until when); False if the
        run stops meanwhile. Rows are claimed only once it is open."""
        window = self._window
        if window is None:
            return True
        if not window.is_open(self._wall()):
            self._tell(WatchEvent(Watch.WINDOW_WAIT, next_try_s=window.opens_at(self._wall())))
            while not window.is_open(self._wall()):
                if self._run.stop.is_set():
                    return False
                # Looked at every second at most: the wall clock may jump (sleep, NTP).
                wait_s = min(max(window.opens_at(self._wall()) - self._wall(), 0.01), 1.0)
                await self._wait_for(self._run.stop, wait_s)
            self._tell(WatchEvent(Watch.WINDOW_OPEN))
        self._window_closes_s = window.closes_at(self._wall())
        return not self._run.stop.is_set()

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

    # --- sending ------------------------------------------------------------------------------

    async def _work(self) -> None:
        run = self._run
        while True:
            if not run.sending.is_set():
                await self._wait_for(run.sending, IDLE_POLL_S)
                continue
            row = await self._next_row()
            if row is None:
                return
            if not run.sending.is_set():
                run.buffer.put_nowait(row)  # an outage began meanwhile: the row waits
                continue
            if not await self._take_slot():
                run.buffer.put_nowait(row)
                return
            try:
                turn = await self._limiter.acquire()
            except BaseException:
                self._free_slot()
                run.buffer.put_nowait(row)  # not sent: released by _finish
                raise
            if not turn or self._wall() >= self._window_closes_s:
                if turn:
                    self._stop(StopCause.WINDOW)
                self._free_slot()
                run.buffer.put_nowait(row)
                return
            await self._send(row)

    async def _take_slot(self) -> bool:
        """Wait until fewer calls than the pace allows are in flight; False on a stop."""
        run = self._run
        while run.in_flight >= self.pace.concurrency_limit:
            if run.stop.is_set():
                return False
            waiter = asyncio.get_running_loop().create_future()
            run.slot_waiters.append(waiter)
            try:
                await asyncio.wait_for(asyncio.shield(waiter), IDLE_POLL_S)
            except TimeoutError:
                pass
            finally:
                if not waiter.done():
                    waiter.cancel()
                with contextlib.suppress(ValueError):
                    run.slot_waiters.remove(waiter)
        if run.stop.is_set():
            return False
        run.in_flight += 1
        return True

    def _free_slot(self) -> None:
        self._run.in_flight -= 1
        self._wake_slot_waiters(1)

    def _wake_slot_waiters(self, count: int) -> None:
        """Wake ``count`` workers waiting for a slot (those still waiting, oldest first)."""
        waiters = self._run.slot_waiters
        while count > 0 and waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    async def _send(self, row: ClaimedRow) -> None:
        """Send one row (a slot taken, its turn come) and record what came of it."""
        started = self._clock()
        self.pace.on_sent(started)
        self.counts.sent += 1
        self._sending_rows.add(row.id)
        try:
            outcome = await self._transport.send(row.record)
        except BaseException:
            self._sending_rows.discard(row.id)
            # Cut off after the grace time, or a bug in the transport: the call may have
            # reached the server. The row is sent again, and its attempt counts.
            self.pace.on_answer(self._clock(), self._clock() - started, Signal.IGNORE)
            self.counts.unknown += 1
            self._free_slot()
            self._resolve(
                RowResult(
                    row.id,
                    RowState.PENDING,
                    UNKNOWN_CODE,
                    "no answer before the send stopped; it may have reached the server",
                    unknown=True,
                )
            )
            raise
        self._sending_rows.discard(row.id)
        self._free_slot()
        await self._record(row, outcome, started)

    async def _next_row(self) -> ClaimedRow | None:
        """The next row of the buffer, or None once ``stop`` is set."""
        run = self._run
        if run.stop.is_set():
            return None
        if run.buffer.qsize() <= self._pool:
            run.low.set()
        # No row waiting: Queue.get waits; a stop puts a None in for each worker. (A cancel
        # takes no row: Queue.get only removes one when it returns.)
        row = await run.buffer.get()
        if row is None:
            return None
        if run.stop.is_set():
            run.buffer.put_nowait(row)  # released, unsent, by _finish
            return None
        return row

    # --- an outage: one probe at a time -------------------------------------------------------

    async def _probe(self) -> None:
        """In an outage, ask the server whether it is there (a call that touches no data) at
        the health's intervals, until it answers, or stop the job when the outage lasts past
        ``--max-outage``."""
        run, health = self._run, self.health
        while not run.stop.is_set():
            if health.mode is not Mode.OUTAGE:
                await self._wait_for(run.stop, IDLE_POLL_S)
                continue
            now = self._clock()
            cause = health.tick(now)
            if cause is not None:
                self._stop(cause, health.stop_outcome)
                return
            if not health.probe_due(now):
                wait_s = min(IDLE_POLL_S, max(health.next_probe_s - now, 0.01))
                await self._wait_for(run.stop, wait_s)
                continue
            self.counts.sent += 1
            outcome = await self._transport.probe()
            decision = health.observe_probe(outcome, self._clock())
            if decision.confirmed:
                # The server is down indeed: the troubles that showed it were not their rows'.
                await self._refund_streak()
            if decision.stop is not None:
                self._stop(decision.stop, health.stop_outcome)
            elif decision.changed:
                self._streak_rows.clear()
                await self._mode_changed(outcome, None)
            else:
                self._tell(
                    WatchEvent(
                        Watch.PROBE_FAILED,
                        outcome,
                        next_try_s=self._wall() + max(health.next_probe_s - self._clock(), 0.0),
                    )
                )

    async def _refund_streak(self) -> None:
        """Take back the attempts of the troubles that led here: they were not their rows'."""
        refund, self._streak_rows = self._streak_rows, []
        # A row of the streak that was sent again meanwhile is in flight: its last recorded
        # attempt can only be taken back once this call is recorded.
        self._refund_later.update(r for r in refund if r in self._sending_rows)
        if refund:
            await self._flush()
            await self._uncount(refund)

    # --- the other HTTP method ----------------------------------------------------------------

    def _doubts_method(self, outcome: Outcome) -> bool:
        """Whether to ask the server about the other method now (once a run)."""
        if self._method_asked or not self.health.may_be_the_method(outcome):
            return False
        self._method_asked = True
        return True

    async def _ask_other_method(self) -> Method | None:
        # A transport of a program's own may have only send(): it has no methods to try.
        ask = getattr(self._transport, "other_method", None)
        if ask is None:
            return None
        self.counts.sent += 1
        method: Method | None = await ask()
        return method

    # --- outcomes -----------------------------------------------------------------------------

    def _resolve(self, result: RowResult) -> None:
        self._run.results.append(result)
        self._run.unresolved -= 1

    async def _record(self, row: ClaimedRow, outcome: Outcome, started: float) -> None:
        run = self._run
        counts = self.counts
        now = self._clock()
        if self.pace.on_answer(now, now - started, signal_of(outcome)):
            self._limiter.set_rate(self.pace.rate_per_s)
            self._wake_slot_waiters(self.pace.concurrency_limit - run.in_flight)
        unknown = maybe_processed(outcome, reached=self.health.reached)
        decision = self.health.observe(outcome, now, started)
        page = (
            outcome.trouble is Trouble.NOT_AN_ANSWER
            and outcome.status is not None
            and 200 <= outcome.status < 300
        )
        if outcome.answered:
            counts.answered += 1
        elif page:
            counts.pages += 1
        if decision.changed and self.health.mode is Mode.OUTAGE and self._doubts_method(outcome):
            # No Import answer in this run, and an outage would begin (a URL that answered
            # before, in this database): a server that does not take this method would be
            # waited for until --max-outage. Ask it with the other method first, the
            # workers held.
            run.sending.clear()
            method = await self._ask_other_method()
            if method is not None:
                self._other_method = method
                decision = self.health.wrong_method(outcome)
                await self._refund_streak()
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
        if self.health.streak == 0 and self.health.mode is Mode.SENDING:
            self._streak_rows.clear()  # an answer from after the troubles: they were the rows'

        if decision.changed:
            await self._mode_changed(outcome, row)
        if decision.stop is not None:
            self._stop_or_doubt(decision.stop)
        if unknown:
            if not page:  # counted as a page: the server took the call and printed something
                counts.unknown += 1
            self._tell(WatchEvent(Watch.UNKNOWN, outcome, row.line))
        result = row_result(
            row,
            outcome,
            self._retry,
            spare=decision.spare,
            now_s=self._wall(),
            rng=self._rng,
            max_unknown=self._max_unknown,
            reached=self.health.reached,
        )
        kind = outcome.kind
        if row.id in self._refund_later:
            # Whatever this call's result: the streak's attempt was the outage's.
            self._refund_later.discard(row.id)
            self._refund_after_flush.append(row.id)
        if kind is OutcomeKind.TRANSIENT and result.counted:
            self._streak_rows.append(row.id)
        if kind is OutcomeKind.TRANSIENT or (kind is OutcomeKind.FATAL and not outcome.answered):
            if decision.spare:
                counts.spared += 1
            if result.state is RowState.FAILED:
                counts.failed += 1
            elif result.state is RowState.UNKNOWN:
                counts.maybe_imported += 1
            elif kind is OutcomeKind.TRANSIENT:
                counts.retried += 1
        elif result.state is RowState.DONE:
            counts.done += 1
        elif result.state is RowState.DUPLICATE:
            counts.duplicate += 1
        elif result.state is RowState.REJECTED:
            counts.rejected += 1
        self._resolve(result)
        # Outcomes not yet committed, including a batch being committed, stay under one
        # batch: this worker sends nothing more until they are, which bounds what a kill
        # can make us send again to the calls in flight plus one batch.
        if len(run.results) + run.committing >= RESULT_BATCH_ROWS:
            # Shielded: a cancel must not lose outcomes already taken off the list.
            await asyncio.shield(self._flush())

    def _stop_or_doubt(self, cause: StopCause) -> None:
        """Stop for ``cause``; but a URL taken for a wrong one while other calls are still in
        flight is only doubted: sending is held until they end (``grace_s`` at most), and an
        answer among them lifts the stop (a server busy at first, not a wrong URL)."""
        run = self._run
        if cause is not StopCause.NEVER_REACHED or self.health.method_refused:
            self._stop(cause, self.health.stop_outcome)
        elif self._doubting is None and not run.stop.is_set():
            if run.in_flight == 0:
                self._stop(cause, self.health.stop_outcome)
                return
            run.sending.clear()
            self._doubting = asyncio.ensure_future(self._settle_doubt())

    async def _settle_doubt(self) -> None:
        run, health = self._run, self.health
        deadline = self._clock() + self._grace_s
        while (
            run.in_flight > 0
            and health.stop is StopCause.NEVER_REACHED
            and self._clock() < deadline
            and not run.stop.is_set()
        ):
            await self._wait_for(run.stop, 0.02)
        self._doubting = None
        if health.stop is not None:
            self._stop(health.stop, health.stop_outcome)
        elif health.mode is Mode.SENDING:
            run.sending.set()

    async def _mode_changed(self, outcome: Outcome, row: ClaimedRow | None) -> None:
        run, health = self._run, self.health
        line = row.line if row is not None else None
        if health.mode is Mode.OUTAGE:
            run.sending.clear()
            # The rows waiting in the buffer go back: a long outage should not keep them
            # claimed (a kill would count them as maybe sent).
            await self._release_buffer()
            since = health.outage_since_s if health.outage_since_s is not None else self._clock()
            self._tell(
                WatchEvent(
                    Watch.OUTAGE,
                    outcome,
                    line,
                    since_s=self._wall() - (self._clock() - since),
                    next_try_s=self._wall() + max(health.next_probe_s - self._clock(), 0.0),
                )
            )
        else:
            run.sending.set()
            self.pace.resume(self._clock())
            self._limiter.set_rate(self.pace.rate_per_s)
            self._tell(WatchEvent(Watch.BACK, outcome, line))

    def _tell(self, event: WatchEvent) -> None:
        if self._on_watch is None:
            return
        task = asyncio.ensure_future(self._on_watch(event))
        self._watch_tasks.add(task)
        task.add_done_callback(self._watch_tasks.discard)

    # --- writing ------------------------------------------------------------------------------

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
                    await self._on_rate(rate, self.pace.state())
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
            if self._refund_after_flush:
                # Only rows whose result this batch recorded (one may be on its way to it).
                recorded = {result.row_id for result in batch}
                refund = [r for r in self._refund_after_flush if r in recorded]
                self._refund_after_flush = [
                    r for r in self._refund_after_flush if r not in recorded
                ]
                if refund:
                    await self._uncount(refund)

    async def _uncount(self, row_ids: list[int]) -> None:
        """Take back the attempt an outage cost these rows; a row it had made ``failed`` or
        ``unknown`` is pending again, and no longer counted so."""
        refunded = await self._queue.uncount(self._job_id, row_ids, now_s=self._wall())
        self.counts.spared += refunded.rows
        self.counts.failed -= refunded.failed
        self.counts.maybe_imported -= refunded.unknown
