"""``--rate N``: the pace the user chose, slowed down by throttling only.

Pure: no I/O, no clock; tested on a virtual clock (``tests/test_pace.py``).
"""

from __future__ import annotations

import math

from bulkimport.send.pace.base import (
    DELIVERED_ANSWERS,
    DELIVERED_WINDOW_S,
    PaceBase,
    PaceReason,
    PaceState,
    Signal,
)


class FixedPace(PaceBase):
    """``--rate N`` (``0``: no limit): the pace the user chose, slowed down by throttling.

    A throttling server (HTTP 429/503, with or without ``Retry-After``) must slow the whole
    pool, not only pause it: a pool that bursts again after each pause got 21 calls/s through
    a front end that allows 50, and an unlimited pool that kept its pace got one call a
    second through one that also sends ``Retry-After: 1`` (every burst earned a pause).

    - A throttled answer to a call sent after the last cut (and ``hold_s`` after it) cuts the
      pace to ``cut`` (0.85) of the rate the server let through (the answers of the last
      second, since the last pause); when the pace had held for that whole second, that rate
      is the ``ceiling``. With too few
      answers to measure, the pace halves (an unlimited one starts from the answers of the
      last second).
    - Throttled at a settled pace that still gets most of the ceiling through (a strict
      limit refusing one call that came too soon after another), the ceiling and the pace
      step down by 5 % only.
    - Without throttling, the pace climbs back each ``hold_s``: by a quarter up to ``settle``
      (0.95) of the ceiling (doubling until a throttled answer measured anything, then by a
      tenth while no ceiling is known: the pace before the step that was throttled is the
      ceiling), stays there ``settle_s``, then probes past it in steps that double each
      ``hold_s`` (the limit may have been raised), up to the chosen rate.
    - Any other trouble (a slow or failing server) leaves a chosen rate alone: the job's
      health judges those (an outage).
    - After an outage: from ``resume_share`` of the pace of the last answer before it (the
      503s of a maintenance page that cut it were no rate limit), doubling every
      ``resume_step_s`` back to it while the latency stays near what it was then (slow
      answers hold the pace where it is, for ``resume_watch_s`` at most: then a chosen
      rate is taken back as before, throttling only slowing it).

    The same interface as ``PaceController``; the limit on calls in flight is
    ``--concurrency``. Pure: tested on a virtual clock.
    """

    def __init__(
        self,
        rate_per_s: float,
        concurrency: int,
        *,
        now_s: float = 0.0,
        min_rate_per_s: float = 1.0,
        hold_s: float = 1.0,
        cut: float = 0.85,
        settle: float = 0.95,
        settle_s: float = 20.0,
        resume_share: float = 0.25,
        resume_step_s: float = 0.25,
        resume_watch_s: float = 10.0,
    ) -> None:
        self.ceiling_per_s = rate_per_s if rate_per_s > 0 else math.inf
        super().__init__(rate_per_s=self.ceiling_per_s, concurrency_limit=concurrency, now_s=now_s)
        self._min = min(min_rate_per_s, self.ceiling_per_s)
        self._hold_s = hold_s
        self._cut = cut
        self._settle = settle
        self._settle_s = settle_s
        self._jitter_share = 0.75  # throttled with at least this share of the ceiling let
        self._jitter_cut = 0.95  # through: the ceiling and the pace only step down this much
        self._throttle_ceiling: float | None = None  # the rate let through when throttled
        self._throttled_once = False  # a throttled answer came with the answer rate measured
        self._before_grow = 0.0  # the pace before the last step up...
        self._grown_at: float | None = None  # ...taken then
        self._cut_at = -math.inf  # throttling of calls sent before this says nothing new
        self._settled_at: float | None = None  # when the pace reached the settle share
        self._probe_step = 0.05
        self._last_sent: float | None = None
        self._measure_from = now_s  # answers before a pause are left out of the rate
        self._resume_share = resume_share
        self._resume_step_s = resume_step_s
        self._resume_watch_s = resume_watch_s
        self._resumed_at = -math.inf
        # At the last answer outside a recovery: the pace and the throttling ceiling.
        self._good: tuple[float, float | None] | None = None
        self._recover_to: float | None = None  # after an outage: doubling back to this...
        self._recover_latency: float | None = None  # ...while answers take about this long

    def state(self) -> PaceState:
        """The rate and the throttling ceiling (no base latency: nothing is learned)."""
        return self._state(base_latency_s=None, ceiling_per_s=self._throttle_ceiling)

    def on_sent(self, now_s: float) -> None:
        self._stats.sent()
        if self._last_sent is not None and now_s - self._last_sent > max(0.25, 4 * self.interval_s):
            # A pause (Retry-After, nothing due): the answer rate is measured from here on.
            self._measure_from = now_s
        self._last_sent = now_s

    def resume(self, now_s: float) -> None:
        """After an outage: ``resume_share`` of the pace before it, doubling back to it."""
        target = self.ceiling_per_s
        if self._good is not None:
            target, self._throttle_ceiling = self._good
        # The median of the last answers: a few slow ones of a stall do not move it.
        self._recover_latency = self._stats.median_latency()
        if math.isinf(target):
            start = (self._answer_rate(now_s) or 40.0) * self._resume_share
        else:
            start = target * self._resume_share
        self._recover_to = target
        self._resumed_at = now_s
        self._settled_at = None
        self._change(now_s, max(self._min, min(start, target)), PaceReason.RESUME)
        self._cut_at = now_s

    def on_answer(self, now_s: float, latency_s: float, signal: Signal) -> bool:
        self._stats.ended()
        if signal is Signal.IGNORE or signal is Signal.OVERLOAD:
            # A chosen rate gives way to throttling only: a slow or failing server is the
            # job's health's to judge (an outage), not a reason to send more slowly.
            return False
        if signal is Signal.THROTTLE:
            self._recover_to = None
            return self._throttled(now_s, now_s - latency_s)
        self._stats.answered(now_s, latency_s)
        if self._recover_to is not None:
            return self._recover(now_s, latency_s)
        self._good = (self._rate, self._throttle_ceiling)
        # Grown only after a while of sending without throttling: a pause is not that.
        held_since = max(self._changed_at, self._measure_from)
        if self._rate < self.ceiling_per_s and now_s - held_since >= self._hold_s:
            return self._grow(now_s)
        return False

    def _throttled(self, now_s: float, sent_s: float) -> bool:
        if sent_s < self._cut_at or now_s - self._cut_at < self._hold_s:
            # Sent at the pace already cut: says nothing about the new one. And a limit that
            # counts calls over a sliding second refuses for up to that second after a burst,
            # whatever the pace since: one cut per ``hold_s`` at most.
            return False
        answered = self._answer_rate(now_s)
        ceiling: float | None = None
        if self._grown_at is not None and now_s - self._grown_at < self._hold_s:
            # Throttled right after a step up: the pace before it held, this one is too much.
            ceiling = max(self._before_grow, answered or 0.0)
        elif answered is not None:
            previous = self._throttle_ceiling
            if previous is not None and answered >= self._jitter_share * previous:
                # At a pace the server took for a while: the timing of one call (a strict
                # limit refuses a call that follows another too soon), or a limit a little
                # lower. A small step down, not a cut: each cut costs more than the 503.
                self._throttle_ceiling = previous * self._jitter_cut
                self._cut_at = now_s
                self._settled_at = None
                rate = self._jitter_cut * min(self._rate, self._settle * previous)
                return self._change(now_s, max(self._min, rate), PaceReason.OVERLOAD)
            ceiling = answered  # the pace held: what came back is what is let through
        if ceiling is not None and (self._throttled_once or self._throttle_ceiling is not None):
            # Judged from a step of a quarter at most (not from doubling): the ceiling.
            self._throttle_ceiling = min(ceiling, self._rate)
        if ceiling is not None:
            self._throttled_once = True
            rate = self._cut * min(self._rate, ceiling)
        elif math.isinf(self._rate):
            window_from = now_s - DELIVERED_WINDOW_S
            rate = float(sum(1 for t in self._stats.times if t > window_from))
        else:
            rate = self._rate * 0.5
        self._cut_at = now_s
        self._settled_at = None
        self._grown_at = None
        self._probe_step = 0.05
        return self._change(now_s, max(self._min, rate), PaceReason.OVERLOAD)

    def _recover(self, now_s: float, latency_s: float) -> bool:
        """Back from an outage: double every ``resume_step_s`` to the pace before it, while
        the latency stays near what it was then (twice it, and 5 ms)."""
        target = self._recover_to
        assert target is not None
        before = self._recover_latency
        if before is not None and latency_s > 2.0 * before + 0.005:
            # The server takes longer than it did: not yet the pace it had; hold here.
            if now_s - self._resumed_at >= self._resume_watch_s:
                self._recover_to = None  # for too long: the chosen rate wins, as before
            elif self._reason is not PaceReason.LATENCY:
                self._reason, self._changed_at = PaceReason.LATENCY, now_s
            return False
        if now_s - max(self._changed_at, self._measure_from) < self._resume_step_s:
            return False
        rate = min(self._rate * 2.0, target)
        if math.isinf(target):
            answered = self._answer_rate(now_s)
            if answered is not None and rate > 4 * answered:
                rate = math.inf  # well above what comes back: no limit
        if rate >= target:
            self._recover_to = None
        return self._change(now_s, rate, PaceReason.RECOVER)

    def _grow(self, now_s: float) -> bool:
        ceiling = self._throttle_ceiling
        if ceiling is None:
            # Doubling until a throttled answer measured anything; then by a tenth, until a
            # step is throttled: the pace before it is the ceiling, a tenth below at most.
            grown = self._rate * (1.1 if self._throttled_once else 2.0)
        elif self._rate < self._settle * ceiling * 0.999:
            grown = min(self._rate * 1.25, self._settle * ceiling)
            reason = PaceReason.RECOVER
        else:
            if self._settled_at is None:
                self._settled_at = now_s
            if now_s - self._settled_at < self._settle_s:
                return False
            grown = self._rate * (1.0 + self._probe_step)
            self._probe_step *= 2
            reason = PaceReason.PROBE
        if ceiling is None:
            reason = PaceReason.RECOVER
            answered = self._answer_rate(now_s) if math.isinf(self.ceiling_per_s) else None
            if answered is not None and grown > 4 * answered:
                # No chosen rate: once the pace is well above what comes back, it is no limit.
                grown = math.inf
        elif math.isinf(self.ceiling_per_s) and grown > 4 * ceiling:
            grown = math.inf
        self._before_grow, self._grown_at = self._rate, now_s
        return self._change(now_s, min(self.ceiling_per_s, grown), reason)

    def _answer_rate(self, now_s: float) -> float | None:
        """Answers a second over the last second (since the last pause), if enough came."""
        times = self._stats.times
        while times and times[0] < now_s - DELIVERED_WINDOW_S:
            times.popleft()
        start = max(now_s - DELIVERED_WINDOW_S, self._measure_from)
        span = now_s - start
        count = sum(1 for t in times if t >= start)
        if count < DELIVERED_ANSWERS or span < 0.25:
            return None
        return count / span

    def _change(self, now_s: float, rate: float, reason: PaceReason) -> bool:
        changed = rate != self._rate
        self._rate = rate
        self._reason = reason
        self._changed_at = now_s
        return changed
