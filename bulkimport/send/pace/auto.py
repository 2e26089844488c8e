"""The pace of ``--rate auto``: as fast as the server takes calls without slowing down.

Pure: no I/O, no clock, no asyncio. Every input carries its time ``now_s`` (seconds on any
monotonic clock), so the decisions are tested on a virtual clock and simulated in
``bench/pace_sim.py``. ``docs/pace.md`` explains the design and its measurements.

    dispatcher ── on_sent(now_s) ─────────────────────────▶ PaceController
               ── on_answer(now_s, latency_s, signal) ────▶     │
               ◀── interval_s (1 / rate_per_s), concurrency_limit ┘

Two outputs, both cheap to read before each call:

- ``rate_per_s`` (and ``interval_s``): the pace, the control variable. Calls are spaced
  ``interval_s`` apart, never in bursts: a server of fixed capacity (calls/s) queues any burst.
- ``concurrency_limit``: a cap on calls in flight, about twice the calls that the pace keeps in
  flight at the base latency (Little's law). It bounds the queue a wrong pace can build to
  about one base latency of work, and stops sending at once when answers stop coming.

How it decides (Vector's ARC and TCP Vegas/BBR, for a server that also serves people):

- Rounds: a round gathers the answers to the calls sent since it began, so its evidence is
  about the current pace; it ends after ``round_answers`` of them and ``round_min_s``.
- Base latency: a low quantile of the rounds' median latencies over ``base_window_s``; it
  forgets a server that got slower for good after that window, or at once when slowing down
  did not bring the latency down (``REBASE``).
- Queueing: a round whose median is above ``base * (1 + queue_margin)`` (two in a row, or one
  twice as far above), or ``severe_answers`` answers in a row above ``base * severe_factor``.
  A median and a run of answers, never one answer: one slow call changes nothing.
- Increase: doubling per round at the start (capacity may be 5 or 3,000 calls/s); later fast
  up to ``recover_to`` of the ceiling (the answer rate where trouble began), then slowly to it
  (``cruise_per_s``); after ``probe_after_s`` there, past it, faster the longer no trouble
  comes. Only while the latency stays near its base and the pace was really used.
- Decrease: multiplicative from the answer rate measured when trouble came (in a queue, the
  server's capacity), by ``latency_decrease`` for queueing and ``overload_decrease`` for
  back-pressure; at most once per round trip, since only the calls sent after a decrease
  can show whether it was enough. After a latency decrease the limit drains the queue first;
  after back-pressure the pace stays under the ceiling for ``refused_hold_s``: a probe past a
  front end's limit costs errors, and a ``Retry-After`` pause for every call.
- After an outage (or a pause): from ``resume_factor`` of the pace of the last round that
  showed no queue, doubling per round back to it (latency watched as in any round: a queue
  ends the climb), so that a stall of a few seconds costs a few seconds, not a slow climb.
  The back-pressure that led to the outage (a stall's 502s or timeouts) is taken back: its
  cuts, and the ceiling and the hold they set. A stall that ends is no lasting overload.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from bulkimport.send.pace.base import (
    DELIVERED_ANSWERS,
    DELIVERED_WINDOW_S,
    PaceBase,
    PaceReason,
    PaceState,
    Signal,
    median_of,
)

USED_SHARE = 0.9  # a round that sent fewer calls than this share of the pace did not use it


@dataclass(frozen=True)
class PaceSettings:
    """What the caller decides: where to start and the bounds."""

    initial_rate_per_s: float = 4.0  # capacity may be as low as 5 calls/s
    min_rate_per_s: float = 1.0  # the pace never goes below this
    max_rate_per_s: float = math.inf  # ``--max-rate``
    max_concurrency: int = 256  # calls in flight at most: the dispatcher's pool


@dataclass(frozen=True)
class PaceTuning:
    """The controller's constants; the defaults are those measured in ``docs/pace.md``."""

    round_answers: int = 16  # answers per round, at least...
    round_min_s: float = 0.05  # ...and at least this long
    round_max_s: float = 1.0  # a round at a slow pace ends at its first answer after this
    base_window_s: float = 30.0  # the base latency forgets rounds older than this
    base_quantile: float = 0.1  # of the rounds' medians in the window: robust to noise
    grow_margin: float = 0.4  # increase only while the median <= base * (1 + this)
    queue_margin: float = 1.0  # a median > base * (1 + this) means a queue
    margin_floor_s: float = 0.0005  # margins are never smaller: a real clock's jitter
    severe_factor: float = 3.0  # answers above base * this...
    severe_answers: int = 4  # ...this many in a row: a queue, without waiting for the round
    startup_gain: float = 2.0  # per round, until the first slowdown
    recover_gain: float = 1.25  # per round, up to recover_to * ceiling
    recover_to: float = 0.9
    cruise_per_s: float = 0.02  # growth per second near the ceiling...
    probe_after_s: float = 5.0  # at the ceiling this long before probing past it...
    probe_double_s: float = 1.0  # ...in steps doubling every this many seconds
    latency_decrease: float = 0.85  # on queueing
    drain_max_s: float = 2.0  # latency is not judged again for at most this long after it
    overload_decrease: float = 0.5  # on back-pressure
    refused_cruise: float = 0.95  # after back-pressure, climb to this share of the ceiling...
    refused_hold_s: float = 30.0  # ...and stay there this long before probing past it
    concurrency_gain: float = 2.0  # limit = pace * base latency * this + 1
    resume_after_s: float = 5.0  # a pause longer than this (and 4 intervals) restarts...
    resume_factor: float = 0.5  # ...at this share of the pace
    rebase_cuts: int = 3  # latency decreases in a row after which...
    rebase_relief: float = 0.3  # ...an excess latency that shrank less than this is not ours


@dataclass
class _BeforeTrouble:
    """The pace's view when a run of back-pressure began (its first decrease)."""

    at_s: float
    rate_per_s: float
    ceiling_per_s: float | None
    startup: bool
    refused: bool
    decreased_at_s: float
    answered: int = 0  # answers to the calls sent since


class PaceController(PaceBase):
    """Finds and follows the pace a server takes without queueing.

    The dispatcher calls ``on_sent`` when a call leaves and ``on_answer`` exactly once for
    each call sent, when its outcome is known (``Signal.IGNORE`` for a call cut off by our
    own stop). Before each call it waits until fewer than ``concurrency_limit`` calls are in
    flight and ``interval_s`` has passed since the previous call started.
    """

    def __init__(
        self,
        settings: PaceSettings | None = None,
        tuning: PaceTuning | None = None,
        *,
        now_s: float = 0.0,
    ) -> None:
        self.settings = settings = settings or PaceSettings()
        self.tuning = tuning or PaceTuning()
        if not 0 < settings.min_rate_per_s <= settings.max_rate_per_s:
            raise ValueError("need 0 < min_rate_per_s <= max_rate_per_s")
        if settings.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        super().__init__(
            rate_per_s=self._bounded(settings.initial_rate_per_s), concurrency_limit=1, now_s=now_s
        )
        self._calm_rate: float | None = None  # the pace of the last round without a queue
        # What the pace knew when the back-pressure of now began: given back by ``resume``
        # if it was an outage (a stall is no overload), dropped after a round of answers.
        self._before_trouble: _BeforeTrouble | None = None
        self._resume_to: float | None = None  # after an outage: doubling back to this pace
        self._startup = True  # until the first slowdown
        self._ceiling: float | None = None
        self._top_since: float | None = None  # when the pace reached the ceiling
        self._base: float | None = None
        self._base_rounds: deque[tuple[float, float]] = deque()  # (end, median latency)
        self._last_sent: float | None = None
        # A decrease applies to calls sent after it: answers to earlier ones are not held
        # against the new pace.
        self._cut_at = -math.inf
        # After a latency decrease, calls sent before the queue had time to drain still
        # wait behind it: their latency says nothing about the new pace.
        self._latency_from = -math.inf
        self._overload_hold_s = 0.0
        self._answered_since_cut = False  # an answer to a call sent after the last decrease
        self._draining = False  # a latency decrease: the limit drains the queue first
        self._queued_rounds = 0
        self._severe_run = 0
        self._episode_excess: float | None = None  # excess latency at the first cut in a row
        self._episode_cuts = 0
        self._episode_ceiling: float | None = None  # the ceiling before the first of them
        self._decreased_at = -math.inf
        self._refused = False  # the last decrease was for back-pressure, not latency
        self._round_start = now_s
        self._round_sent = 0
        self._round_latencies: list[float] = []
        # The answer rate counts the answers since ``_answers_from``: a pause, or our own
        # limit draining a queue, hold answers back and are left out.
        self._answers_from = now_s
        self._start_round(now_s)

    # --- what the dispatcher reads ----------------------------------------------------------

    def state(self) -> PaceState:
        """The current pace and what it is based on."""
        return self._state(base_latency_s=self._base, ceiling_per_s=self._ceiling)

    # --- what the dispatcher tells ----------------------------------------------------------

    def on_sent(self, now_s: float) -> None:
        """A call left now."""
        tuning = self.tuning
        if self._last_sent is not None:
            gap_s = now_s - self._last_sent
            idle = self._stats.in_flight == 0
            if idle and gap_s > max(tuning.resume_after_s, 4 * self.interval_s):
                # After a pause the server may have changed (a restart, the agents' day):
                # start again below the pace it last took, and climb back quickly toward it.
                self.resume(now_s)
            elif gap_s > max(tuning.round_max_s, 4 * self.interval_s):
                # A pause (Retry-After, nothing due): not a slower server.
                self._start_round(now_s)
                self._answers_from = now_s
        self._last_sent = now_s
        self._stats.sent()
        self._round_sent += 1

    def resume(self, now_s: float) -> None:
        """After an outage: the server may have changed (a restart); start below the pace it
        last took without a queue (the troubles that showed the outage cut the pace, and
        say nothing of the server once it is back), and double back to it round by round,
        as long as the latency stays at its base.

        The back-pressure that led to the outage (502s, timeouts of a stall) was the outage,
        not an overload: its cuts are taken back, and so are the ceiling and the hold it set;
        the climb starts from the pace it had when the troubles began."""
        rate = self._rate
        before, self._before_trouble = self._before_trouble, None
        if before is not None:
            rate = before.rate_per_s
            self._ceiling = before.ceiling_per_s
            self._startup = before.startup
            self._refused = before.refused
            self._decreased_at = before.decreased_at_s
        target = max(rate, self._calm_rate or 0.0)
        if self._ceiling is not None:
            self._ceiling = max(self._ceiling, target)
        self._resume_to = target
        self._change(now_s, target * self.tuning.resume_factor, PaceReason.RESUME)
        self._cut_at = now_s

    def on_answer(self, now_s: float, latency_s: float, signal: Signal) -> bool:
        """The call sent ``latency_s`` ago came back with ``signal``; True if the pace or the
        limit changed."""
        self._stats.ended()
        if signal is Signal.IGNORE:
            return False
        rate, limit = self._rate, self._limit
        sent_s = now_s - latency_s
        if signal is Signal.OVERLOAD or signal is Signal.THROTTLE:
            self._severe_run = 0
            # A front end remembers a burst for a while (limit_req's bucket drains at its
            # rate): the calls sent just after a decrease may still be refused. Only a call
            # that had the new pace for a few intervals says that it is still too fast.
            if sent_s >= self._cut_at + self._overload_hold_s:
                if self._before_trouble is None:
                    self._before_trouble = _BeforeTrouble(
                        at_s=now_s,
                        rate_per_s=max(self._rate, self._resume_to or 0.0),
                        ceiling_per_s=self._ceiling,
                        startup=self._startup,
                        refused=self._refused,
                        decreased_at_s=self._decreased_at,
                    )
                self._decrease(now_s, self.tuning.overload_decrease, PaceReason.OVERLOAD)
        else:
            before = self._before_trouble
            if before is not None and sent_s >= before.at_s:
                # A round of answers to calls sent since the back-pressure began: an overload
                # the server works through, not an outage. (One answer is not: the first
                # answer after a stall ends the outage.)
                before.answered += 1
                if before.answered >= self.tuning.round_answers:
                    self._before_trouble = None
            self._on_latency(now_s, latency_s, sent_s >= self._latency_from)
        return rate != self._rate or limit != self._limit

    # --- inside -----------------------------------------------------------------------------

    def _on_latency(self, now_s: float, latency_s: float, fresh: bool) -> None:
        tuning = self.tuning
        self._stats.answered(now_s, latency_s)
        if now_s - latency_s >= self._cut_at:
            self._answered_since_cut = True
        if not fresh:
            return
        base = self._base
        if base is not None and latency_s > base * tuning.severe_factor + tuning.margin_floor_s:
            self._severe_run += 1
            if self._severe_run >= tuning.severe_answers:
                # Answers in a row far above the base: a FIFO queue, no need for a round.
                self._latency_decrease(now_s, latency_s)
                return
        else:
            self._severe_run = 0
        if now_s - latency_s < self._round_start:
            return  # sent before this round began: about an older pace
        self._round_latencies.append(latency_s)
        elapsed = now_s - self._round_start
        count = len(self._round_latencies)
        if (count >= tuning.round_answers and elapsed >= tuning.round_min_s) or (
            elapsed >= tuning.round_max_s
        ):
            self._end_round(now_s)

    def _end_round(self, now_s: float) -> None:
        tuning = self.tuning
        ordered = sorted(self._round_latencies)
        median = median_of(ordered)
        self._learn_base(now_s, median)
        base = self._base
        assert base is not None
        queue_margin = max(base * tuning.queue_margin, tuning.margin_floor_s)
        excess = median - base
        # The pace was used: calls went out at it. One that the limit (slow answers, a full
        # pool) or the work to do (few rows due) did not let through is not earned. Climbing
        # back after an outage, the pace was earned before it: the first calls, slow to go
        # out again (the rows released in the outage are claimed again), do not hold it.
        elapsed_s = now_s - self._round_start
        used = (
            self._resume_to is not None
            or self._round_sent + 1 >= USED_SHARE * self._rate * elapsed_s
        )
        if excess > queue_margin:
            self._queued_rounds += 1
            if self._queued_rounds >= 2 or excess > 2 * queue_margin:
                self._latency_decrease(now_s, median)
                return
        else:
            self._queued_rounds = 0
            self._episode_excess = None
            if self._resume_to is None and self._reason is not PaceReason.RESUME:
                self._calm_rate = self._rate
            elif self._reason is not PaceReason.RESUME:
                # Climbing back: a round without a queue on the way says no less.
                self._calm_rate = max(self._calm_rate or 0.0, self._rate)
            # Near the ceiling, only a latency at its base allows more; far below it (or at
            # the start) only a queue stops the climb: noise must not hold the ramp back.
            calm = excess <= max(base * tuning.grow_margin, tuning.margin_floor_s)
            if used and (calm or self._climbing):
                self._increase(now_s)
                return
        self._start_round(now_s)

    def _learn_base(self, now_s: float, median: float) -> None:
        """Base latency: a low quantile of the rounds' medians over the window."""
        rounds = self._base_rounds
        rounds.append((now_s, median))
        while rounds[0][0] < now_s - self.tuning.base_window_s:
            rounds.popleft()
        ordered = sorted(latency for _, latency in rounds)
        self._base = ordered[int(self.tuning.base_quantile * (len(ordered) - 1))]

    @property
    def _climbing(self) -> bool:
        """Ramping up at the start, or recovering far below the ceiling."""
        ceiling = self._ceiling
        return self._startup or ceiling is None or self._rate < self.tuning.recover_to * ceiling

    def _increase(self, now_s: float) -> None:
        tuning = self.tuning
        rate, ceiling = self._rate, self._ceiling
        elapsed = now_s - self._round_start
        if self._resume_to is not None:
            if rate < self._resume_to:
                # Back from an outage: double per round to the pace it had without a queue.
                target = min(rate * tuning.startup_gain, self._resume_to)
                self._change(now_s, target, PaceReason.RECOVER)
                return
            self._resume_to = None
        if self._startup or ceiling is None:
            self._change(now_s, rate * tuning.startup_gain, PaceReason.RAMP)
            return
        if rate < tuning.recover_to * ceiling:
            # Far below (after an outage): as fast as at the start; closer: more gently.
            gain = tuning.startup_gain if rate < 0.5 * ceiling else tuning.recover_gain
            target = min(rate * gain, tuning.recover_to * ceiling)
            self._change(now_s, target, PaceReason.RECOVER)
            return
        growth = tuning.cruise_per_s
        top = ceiling
        if self._refused and now_s - self._decreased_at < tuning.refused_hold_s:
            # The server refused calls at the ceiling: every probe past it costs errors (and
            # a Retry-After pause): stay just under it for a while.
            top = tuning.refused_cruise * ceiling
        if rate < top:
            self._top_since = None
            self._change(now_s, min(rate * (1.0 + growth * elapsed), top), PaceReason.PROBE)
            return
        if top < ceiling:
            self._start_round(now_s)
            return
        if self._top_since is None:
            self._top_since = now_s
        dwell_s = now_s - self._top_since - tuning.probe_after_s
        if dwell_s < 0:
            # At the ceiling: what the server took last time, without a queue. Stay a while
            # before probing past it, as CUBIC's plateau: each probe may queue a little.
            self._start_round(now_s)
            return
        # No trouble at the ceiling: it may have moved (the agents went home). Probe past it
        # in steps that grow the longer no trouble comes.
        growth *= 2.0 ** (dwell_s / tuning.probe_double_s)
        target = rate * min(1.0 + growth * elapsed, tuning.recover_gain)
        self._change(now_s, target, PaceReason.PROBE)

    def _latency_decrease(self, now_s: float, latency_s: float) -> None:
        assert self._base is not None
        excess = latency_s - self._base
        if self._episode_excess is None:
            self._episode_excess, self._episode_cuts = excess, 0
            self._episode_ceiling = max(self._ceiling or 0.0, self._rate)
        elif (
            self._episode_cuts >= self.tuning.rebase_cuts
            and excess > (1.0 - self.tuning.rebase_relief) * self._episode_excess
        ):
            # We slowed down a lot and the latency did not follow: not a queue of ours but a
            # slower server (or busier agents). Take it as the new base, and the ceiling from
            # before these decreases: the pace climbs back to it quickly.
            self._base = latency_s
            self._base_rounds.clear()
            self._base_rounds.append((now_s, latency_s))
            self._episode_excess = None
            self._ceiling = self._episode_ceiling
            self._queued_rounds = 0
            self._severe_run = 0
            self._reason, self._changed_at = PaceReason.REBASE, now_s
            self._start_round(now_s)
            return
        self._episode_cuts += 1
        # Drain what queued before the next calls join it: until the next round ends, the
        # limit leaves no room for a queue (as BBR drains before it cruises). The queue of
        # ``excess`` seconds shrinks by ``1 - latency_decrease`` seconds per second.
        self._decrease(now_s, self.tuning.latency_decrease, PaceReason.LATENCY)
        self._draining = True
        self._set_limit()
        drain_s = max(0.0, excess) / (1.0 - self.tuning.latency_decrease)
        self._latency_from = now_s + min(drain_s, self.tuning.drain_max_s)

    def _decrease(self, now_s: float, factor: float, reason: PaceReason) -> None:
        self._resume_to = None
        delivered = self._delivered_per_s(now_s)
        answered = self._answered_since_cut
        measured = self._rate
        if self._reason is PaceReason.RAMP:
            # Doubling overshot: the capacity is between the pace of the round before (no
            # queue) and this one. The answers of the last second came mostly at the pace
            # before, so they say little more: take the middle (geometric) of the two. Taking
            # the lower one held a server of 300 calls/s at 230-260 for 20 s, and one behind
            # limit_req at 50 r/s at 30 (measured in bench/pace_bench.py).
            measured = max(delivered or 0.0, self._rate / math.sqrt(self.tuning.startup_gain))
        elif delivered is not None and not self._draining:
            # Fewer answers than calls: in a queue (or behind a front end's limit) the answer
            # rate is the server's capacity. (While draining, our limit holds them back.)
            measured = min(self._rate, delivered)
        if answered or self._ceiling is None:
            # No answer at all since the last decrease (an outage) says nothing about the
            # capacity: the old ceiling stays.
            self._ceiling = measured
        self._startup = False
        self._top_since = None
        self._decreased_at = now_s
        # Refused while other calls were answered: a limit, not an outage.
        self._refused = reason is PaceReason.OVERLOAD and answered
        self._queued_rounds = 0
        self._severe_run = 0
        self._cut_at = self._latency_from = now_s
        self._answered_since_cut = False
        self._change(now_s, measured * factor, reason)
        self._overload_hold_s = max(self.tuning.round_min_s, 2.0 * self.interval_s)

    def _delivered_per_s(self, now_s: float) -> float | None:
        """Answers per second over the last second, if there were enough to tell."""
        times = self._stats.times
        start_s = max(now_s - DELIVERED_WINDOW_S, self._answers_from)
        while times and times[0] < start_s:
            times.popleft()
        if len(times) >= 2 and (len(times) == times.maxlen or times[0] > start_s):
            # From one answer's gap before the first: a window that began before the answers
            # (after a pause, a drain) would count time when none could come.
            start_s = times[0] - (times[-1] - times[0]) / (len(times) - 1)
        window_s = now_s - start_s
        if window_s < self.tuning.round_min_s or len(times) < DELIVERED_ANSWERS:
            return None
        return len(times) / window_s

    def _change(self, now_s: float, rate_per_s: float, reason: PaceReason) -> None:
        rate = self._bounded(rate_per_s)
        if rate >= self.settings.max_rate_per_s and reason in (
            PaceReason.RAMP,
            PaceReason.RECOVER,
            PaceReason.PROBE,
        ):
            reason = PaceReason.MAX_RATE
        if rate != self._rate or reason is not self._reason:
            self._changed_at = now_s
        self._rate, self._reason = rate, reason
        self._start_round(now_s)

    def _bounded(self, rate_per_s: float) -> float:
        settings = self.settings
        return min(max(rate_per_s, settings.min_rate_per_s), settings.max_rate_per_s)

    def _set_limit(self) -> None:
        # Little's law: at the base latency the pace keeps rate * base calls in flight; twice
        # that (and one) leaves room for noise but bounds the queue to about one base latency.
        base = self._base if self._base is not None else 0.0
        gain = 1.0 if self._draining else self.tuning.concurrency_gain
        wanted = math.ceil(self._rate * base * gain) + 1
        self._limit = max(1, min(self.settings.max_concurrency, wanted))

    def _start_round(self, now_s: float) -> None:
        if self._draining:
            # Drained: our own limit held the answers back, their rate is not the server's.
            self._draining = False
            self._answers_from = now_s
        self._round_start = now_s
        self._round_sent = 0
        self._round_latencies = []
        self._set_limit()
