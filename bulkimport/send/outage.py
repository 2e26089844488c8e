"""``ServerWatch``: what a run does about the server, as ``JobHealth`` judges it.

- In an outage the workers hold no rows and wait; one probe at a time asks the server
  whether it is there, at the health's intervals, until it answers (sending resumes) or the
  outage lasts past ``--max-outage`` (the run stops). With a budget shared by several
  runners (``--server-rate``), they take turns: one probes, the others wait, and go on once
  one of them finds the server back.
- Once a probe confirms the outage, the attempts of the troubles that showed it are taken
  back (``RefundLedger`` says when), and the counts follow.
- A URL taken for a wrong one while other calls are still in flight is only doubted:
  sending is held until they end (the grace time at most), and an answer among them lifts
  the stop (a server busy at first, not a wrong URL).
- A run that got HTTP responses but no Import answer at all (a 405 to POST from a server
  that reads GET only) asks the server once with the other method before its stop (or an
  outage) stands; answered, the run stops naming it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bulkimport.protocol import Outcome
from bulkimport.rows import RowResult
from bulkimport.send.budget import SharedBudget
from bulkimport.send.feeder import IDLE_POLL_S, wait_for
from bulkimport.send.health import Decision, JobHealth, Mode
from bulkimport.send.limiter import Clock
from bulkimport.send.refunds import RefundLedger
from bulkimport.send.transport import Transport
from bulkimport.send.values import SendCounts, Watch, WatchEvent
from bulkimport.settings import Method
from bulkimport.states import StopCause
from bulkimport.storage import SendQueue


@dataclass(frozen=True)
class RunControl:
    """What a ``ServerWatch`` may do to the run it watches."""

    stop: asyncio.Event  # set once the run stops
    sending: asyncio.Event  # set unless sending is held (an outage, a doubt)
    halt: Callable[[StopCause, Outcome | None], None]  # stop the run, for this cause
    in_flight: Callable[[], int]  # calls on their way now
    release: Callable[[], Awaitable[None]]  # give back the rows claimed, unsent
    flush: Callable[[], Awaitable[None]]  # commit the outcomes not committed yet
    resume: Callable[[], None]  # the server is back: the pace starts again
    tell: Callable[[WatchEvent], None]  # tell the watcher


class ServerWatch:
    """Acts on ``health``'s judgement for one run of one job; see the module."""

    def __init__(
        self,
        health: JobHealth,
        transport: Transport,
        queue: SendQueue,
        job_id: int,
        counts: SendCounts,
        run: RunControl,
        *,
        clock: Clock,
        wall_clock: Clock,
        grace_s: float,
        shared: SharedBudget | None = None,
    ) -> None:
        self.health = health
        # A budget shared with other runners of the server: in an outage they take turns
        # to probe it, and a runner whose turn it is not waits.
        self._shared = shared
        self._backs: int | None = None  # probes that found the server back, at this outage
        self._transport, self._queue, self._job_id = transport, queue, job_id
        self._counts, self._run = counts, run
        self._clock, self._wall, self._grace_s = clock, wall_clock, grace_s
        self.refunds = RefundLedger()
        self._method_asked = False  # the server was asked about the other HTTP method
        self.other_method: Method | None = None  # ...and answered it
        self.doubting: asyncio.Task[None] | None = None

    # --- an outcome -----------------------------------------------------------------------

    async def outage_begins(self, outcome: Outcome, decision: Decision) -> Decision:
        """``decision`` began an outage: before any Import answer came, first ask about the
        other method, the workers held (a server that does not take this one would be
        waited for until --max-outage). Return the decision that stands."""
        if not self._doubts_method(outcome):
            return decision
        self._run.sending.clear()
        method = await self._ask_other_method()
        if method is None:
            return decision
        self.other_method = method
        decision = self.health.wrong_method(outcome)
        await self.refund_streak()
        return decision

    def after_outcome(self) -> None:
        """An outcome was observed: if it leaves no trouble in a row (an answer came after
        the troubles), they were their rows' own."""
        if self.health.streak == 0 and self.health.mode is Mode.SENDING:
            self.refunds.answered()

    def stop_or_doubt(self, cause: StopCause) -> None:
        """Stop for ``cause``; but doubt a URL taken for a wrong one while calls are in
        flight (see the module)."""
        run = self._run
        if cause is not StopCause.NEVER_REACHED or self.health.method_refused:
            run.halt(cause, self.health.stop_outcome)
        elif self.doubting is None and not run.stop.is_set():
            if run.in_flight() == 0:
                run.halt(cause, self.health.stop_outcome)
                return
            run.sending.clear()
            self.doubting = asyncio.ensure_future(self._settle_doubt())

    # --- an outage: one probe at a time ---------------------------------------------------

    async def probe(self) -> None:
        """In an outage, ask the server whether it is there (a call that touches no data) at
        the health's intervals, until it answers, or stop the job when the outage lasts past
        ``--max-outage``."""
        run, health = self._run, self.health
        while not run.stop.is_set():
            if health.mode is not Mode.OUTAGE:
                await wait_for(run.stop, run.stop, IDLE_POLL_S)
                continue
            now = self._clock()
            cause = health.tick(now)
            if cause is not None:
                run.halt(cause, health.stop_outcome)
                return
            if not health.probe_due(now):
                wait_s = min(IDLE_POLL_S, max(health.next_probe_s - now, 0.01))
                await wait_for(run.stop, run.stop, wait_s)
                continue
            if self._shared is not None and not await self._my_turn():
                decision = health.probed_elsewhere(self._clock())
                if decision.confirmed:
                    await self.refund_streak()
                if decision.stop is not None:
                    run.halt(decision.stop, health.stop_outcome)
                continue
            self._counts.sent += 1
            outcome = await self._transport.probe()
            decision = health.observe_probe(outcome, self._clock())
            if decision.confirmed:
                # The server is down indeed: the troubles that showed it were not their rows'.
                await self.refund_streak()
            if decision.stop is not None:
                run.halt(decision.stop, health.stop_outcome)
            elif decision.changed:
                self.refunds.answered()
                await self.changed(outcome, None)
            else:
                run.tell(WatchEvent(Watch.PROBE_FAILED, outcome, next_try_s=self._next_try_s()))

    async def _my_turn(self) -> bool:
        """With a budget shared by several runners: whether this one probes now (its turn,
        or another one found the server back since this outage began: confirm it)."""
        assert self._shared is not None
        turn = await self._shared.probe_turn(self.health.probe_interval_s)
        if self._backs is None:
            self._backs = turn.backs
        return turn.mine or turn.backs > self._backs

    def _next_try_s(self) -> float:
        return self._wall() + max(self.health.next_probe_s - self._clock(), 0.0)

    async def changed(self, outcome: Outcome, line: int | None) -> None:
        """The mode changed on ``outcome`` (of the row on ``line``; None: a probe's): an
        outage began (sending held, the buffer given back) or ended (sending resumes)."""
        run, health = self._run, self.health
        if health.mode is Mode.OUTAGE:
            self._backs = None  # read at this outage's first turn
            run.sending.clear()
            # The rows waiting in the buffer go back: a long outage should not keep them
            # claimed (a kill would count them as maybe sent).
            await run.release()
            since = health.outage_since_s if health.outage_since_s is not None else self._clock()
            since_s = self._wall() - (self._clock() - since)
            run.tell(WatchEvent(Watch.OUTAGE, outcome, line, since_s, self._next_try_s()))
        else:
            run.sending.set()
            run.resume()
            run.tell(WatchEvent(Watch.BACK, outcome, line))
            if self._shared is not None:
                # However this runner found it back (its probe, or an answer to a call):
                # the runners waiting go on, and the next outage is probed at once.
                await self._shared.note_back()

    # --- the attempts an outage cost --------------------------------------------------------

    async def refund_streak(self) -> None:
        """Take back the attempts of the troubles that led here: they were not their rows'."""
        now = self.refunds.confirm()
        await self._run.flush()  # and the others', as their results are committed
        await self._uncount(now)

    async def committed(self, batch: list[RowResult]) -> None:
        """These results are committed: take back the attempts now due."""
        await self._uncount(self.refunds.committed(result.row_id for result in batch))

    async def _uncount(self, row_ids: list[int]) -> None:
        """A row an outage's attempt had made ``failed`` or ``unknown`` is pending again,
        and no longer counted so."""
        if not row_ids:
            return
        refunded = await self._queue.uncount(self._job_id, row_ids, now_s=self._wall())
        self._counts.spared += refunded.rows
        self._counts.failed -= refunded.failed
        self._counts.maybe_imported -= refunded.unknown

    # --- a wrong URL, or the other HTTP method ----------------------------------------------

    async def _settle_doubt(self) -> None:
        run, health = self._run, self.health
        deadline = self._clock() + self._grace_s
        while (
            run.in_flight() > 0
            and health.stop is StopCause.NEVER_REACHED
            and self._clock() < deadline
            and not run.stop.is_set()
        ):
            await wait_for(run.stop, run.stop, 0.02)
        self.doubting = None
        if health.stop is not None:
            run.halt(health.stop, health.stop_outcome)
        elif health.mode is Mode.SENDING:
            run.sending.set()

    async def ask_after_stop(self, cause: StopCause | None, outcome: Outcome | None) -> bool:
        """Stopped on a 405, a 404...: is it the URL, or the method? Asked once the calls in
        flight are done, so that a slow answer is not cut off by the grace time. True when
        the server answers the other method (the run stopped for it)."""
        if cause not in (StopCause.NEVER_REACHED, StopCause.FATAL) or outcome is None:
            return False
        if not self._doubts_method(outcome):
            return False
        self.other_method = await self._ask_other_method()
        if self.other_method is None:
            return False
        self.health.wrong_method(outcome)
        return True

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
        self._counts.sent += 1
        method: Method | None = await ask()
        return method
