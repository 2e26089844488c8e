"""What both paces share: the signal of an answer, the reason and state shown, the
statistics of the answers, and ``Pace``, the interface the dispatcher paces its calls with.

Pure: no I/O, no clock; every input carries its time ``now_s``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bulkimport.protocol import Outcome, Trouble

RECENT_ANSWERS = 256  # latencies kept for the p95 of the status line
LATENCY_EWMA_WEIGHT = 0.05  # weight of one answer in the latency shown
DELIVERED_WINDOW_S = 1.0  # the answer rate is measured over this long...
DELIVERED_ANSWERS = 8  # ...from at least this many answers
DELIVERED_KEPT = 8192  # answer times kept at most (a shorter window above 8,192 calls/s)
USED_SHARE = 0.9  # a round that sent fewer calls than this share of the pace did not use it


class Signal(StrEnum):
    """What one call's answer says about the server's load."""

    # The server processed the call, and its latency counts: any valid Import answer, done,
    # duplicate, rejected or fatal, and the application's own transient codes (BackMsg_85,
    # BackMsg_100): the server did the work and answered in its protocol.
    ANSWER = "answer"
    # Back-pressure: HTTP 408/500/502/504, a timeout, a refused or reset connection, a body
    # that is not an answer (a proxy's error page).
    OVERLOAD = "overload"
    # Asked to slow down in so many words: HTTP 429 or 503 (with or without Retry-After).
    # Back-pressure for the adaptive pace; the only kind a fixed pace gives way to.
    THROTTLE = "throttle"
    # Says nothing about the load: a call cut off by our own stop, an answer of the front end
    # that refuses the request itself (401/403/404, 413/414/431), a TLS failure.
    IGNORE = "ignore"


# How each trouble weighs on the pace: back-pressure, or nothing about the load at all (the
# front end refuses the request itself, however loaded the server is).
_OVERLOAD = frozenset(
    {
        Trouble.GATEWAY,
        Trouble.SERVER_ERROR,
        Trouble.TIMEOUT,
        Trouble.DROPPED,
        Trouble.REFUSED,
        Trouble.NOT_AN_ANSWER,
    }
)


def signal_of(outcome: Outcome) -> Signal:
    """The signal of a classified outcome: any answer in the Import protocol (whatever it
    says, ``BackMsg_85`` included) is an answer; a trouble is back-pressure, or says nothing
    about the load (TLS, a 4xx, a request too large)."""
    if outcome.trouble is None:
        return Signal.ANSWER
    if outcome.trouble is Trouble.THROTTLED:
        return Signal.THROTTLE
    return Signal.OVERLOAD if outcome.trouble in _OVERLOAD else Signal.IGNORE


class PaceReason(StrEnum):
    """Why the pace last changed (for the status line)."""

    START = "start"  # nothing learned yet: the initial pace
    RAMP = "ramp"  # doubling each round while the latency stays at its base
    RECOVER = "recover"  # climbing back quickly toward the ceiling after a slowdown
    PROBE = "probe"  # near or past the ceiling, in small and then growing steps
    LATENCY = "latency"  # the latency rose above its base: the server queues our calls
    OVERLOAD = "overload"  # the server pushed back (429/503/502/504, timeouts, refusals)
    REBASE = "rebase"  # slowing down did not bring the latency down: a new base latency
    RESUME = "resume"  # sending again after a pause: half the pace until answers come
    MAX_RATE = "max rate"  # held at the configured maximum


@dataclass(frozen=True)
class PaceState:
    """A snapshot of the pace, for progress and status lines (``messages.pace_text``)."""

    rate_per_s: float
    concurrency_limit: int
    in_flight: int
    base_latency_s: float | None  # the unloaded latency as learned; None before any answer
    latency_s: float | None  # recent latency (moving average)
    latency_p95_s: float | None  # p95 of the last answers
    ceiling_per_s: float | None  # the answer rate where the last slowdown began
    reason: PaceReason
    changed_at_s: float


def median_of(ordered: list[float]) -> float:
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def p95_of(samples: Iterable[float]) -> float | None:
    """The 95th percentile of ``samples`` (nearest rank), ``None`` if there are none."""
    ordered = sorted(samples)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


class AnswerStats:
    """What a pace keeps of the answers: the calls in flight, the latency (a moving average,
    the p95 and the median of the last ones) and when the last answers came (the answer
    rate, which each pace measures its own way)."""

    def __init__(self) -> None:
        self.in_flight = 0  # calls sent and not yet answered
        self.latency_s: float | None = None  # moving average of the answers' latency
        self.recent: deque[float] = deque(maxlen=RECENT_ANSWERS)  # the last latencies
        self.times: deque[float] = deque(maxlen=DELIVERED_KEPT)  # when the last answers came

    def sent(self) -> None:
        """A call left."""
        self.in_flight += 1

    def ended(self) -> None:
        """A call came back, whatever it brought."""
        self.in_flight = max(0, self.in_flight - 1)

    def answered(self, now_s: float, latency_s: float) -> None:
        """An answer (``Signal.ANSWER``) came now, ``latency_s`` after its call left."""
        self.times.append(now_s)
        self.recent.append(latency_s)
        if self.latency_s is None:
            self.latency_s = latency_s
        else:
            self.latency_s += LATENCY_EWMA_WEIGHT * (latency_s - self.latency_s)

    def median_latency(self) -> float | None:
        """The median of the last latencies: a few slow answers do not move it."""
        return median_of(sorted(self.recent)) if self.recent else None

    def state(
        self,
        *,
        rate_per_s: float,
        concurrency_limit: int,
        base_latency_s: float | None,
        ceiling_per_s: float | None,
        reason: PaceReason,
        changed_at_s: float,
    ) -> PaceState:
        """A pace's state with these statistics."""
        return PaceState(
            rate_per_s=rate_per_s,
            concurrency_limit=concurrency_limit,
            in_flight=self.in_flight,
            base_latency_s=base_latency_s,
            latency_s=self.latency_s,
            latency_p95_s=p95_of(self.recent),
            ceiling_per_s=ceiling_per_s,
            reason=reason,
            changed_at_s=changed_at_s,
        )


class PaceBase:
    """What both paces keep alike and how they show it: the pace, the limit on calls in
    flight, the answers' statistics, and why and when the pace last changed."""

    def __init__(self, *, rate_per_s: float, concurrency_limit: int, now_s: float) -> None:
        self._rate = rate_per_s
        self._limit = concurrency_limit
        self._stats = AnswerStats()
        self._reason = PaceReason.START
        self._changed_at = now_s

    @property
    def rate_per_s(self) -> float:
        """The pace: calls per second (infinite: no limit)."""
        return self._rate

    @property
    def interval_s(self) -> float:
        """Seconds between the starts of two calls."""
        return 0.0 if math.isinf(self._rate) else 1.0 / self._rate

    @property
    def concurrency_limit(self) -> int:
        """Calls in flight at most."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """Calls sent and not yet answered."""
        return self._stats.in_flight

    def _state(self, *, base_latency_s: float | None, ceiling_per_s: float | None) -> PaceState:
        return self._stats.state(
            rate_per_s=self._rate,
            concurrency_limit=self._limit,
            base_latency_s=base_latency_s,
            ceiling_per_s=ceiling_per_s,
            reason=self._reason,
            changed_at_s=self._changed_at,
        )


class Pace(Protocol):
    """What the dispatcher paces its calls with: ``PaceController`` (``--rate auto``) or
    ``FixedPace`` (``--rate N``).

    The dispatcher calls ``on_sent`` when a call leaves and ``on_answer`` exactly once for
    each call sent (``Signal.IGNORE`` for a call cut off by our own stop), and ``resume``
    when an outage ends. Before each call it waits until fewer than ``concurrency_limit``
    calls are in flight and ``interval_s`` has passed since the previous call started.
    """

    @property
    def rate_per_s(self) -> float:
        """The pace: calls per second (infinite: no limit)."""
        ...

    @property
    def interval_s(self) -> float:
        """Seconds between the starts of two calls."""
        ...

    @property
    def concurrency_limit(self) -> int:
        """Calls in flight at most."""
        ...

    @property
    def in_flight(self) -> int:
        """Calls sent and not yet answered."""
        ...

    def state(self) -> PaceState:
        """The current pace and what it is based on."""
        ...

    def on_sent(self, now_s: float) -> None:
        """A call left now."""
        ...

    def on_answer(self, now_s: float, latency_s: float, signal: Signal) -> bool:
        """The call sent ``latency_s`` ago came back with ``signal``; True if the pace or
        the limit changed."""
        ...

    def resume(self, now_s: float) -> None:
        """An outage ended: sending again."""
        ...
