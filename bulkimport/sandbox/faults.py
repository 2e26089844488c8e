"""Fault injection: what can go wrong between a client and the vendor's server, on demand.

Every fault is off by default. With a ``seed`` the sequence of decisions is reproducible: the
n-th request that passes the rate ceiling always gets the same fate.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Faults:
    """What the sandbox does wrong, and how often (rates are shares of requests, 0..1)."""

    latency_s: float = 0  # added to every answer
    jitter_s: float = 0  # plus a uniform random 0..jitter_s
    http500_rate: float = 0  # HTTP 500 with an HTML body
    backmsg85_rate: float = 0  # |Retuen|2|Retuen|BackMsg_85 (storage error)
    drop_rate: float = 0  # connection closed without an answer
    hang_rate: float = 0  # no answer until the server stops
    max_rps: float = 0  # requests per second above which HTTP 429 is answered; 0 = none
    retry_after_s: int = 1  # the Retry-After of a 429, whole seconds
    seed: int | None = None

    def __post_init__(self) -> None:
        rates = (self.http500_rate, self.backmsg85_rate, self.drop_rate, self.hang_rate)
        if any(r < 0 or r > 1 for r in rates) or sum(rates) > 1:
            raise ValueError("fault rates must be within 0..1 and add up to at most 1")
        if self.latency_s < 0 or self.jitter_s < 0 or self.max_rps < 0:
            raise ValueError("latency, jitter and max_rps cannot be negative")
        if self.retry_after_s < 0:
            raise ValueError("retry_after_s cannot be negative")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Faults:
        """Build from a JSON object (``POST /sandbox/faults``); unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class Fate(StrEnum):
    """What happens to one request."""

    ANSWER = "answer"  # processed and answered normally
    THROTTLE = "throttle"  # HTTP 429 + Retry-After
    HTTP500 = "http500"
    BACKMSG85 = "backmsg85"
    DROP = "drop"
    HANG = "hang"


class FaultPlan:
    """Decides each request's fate and delay from a ``Faults`` setting."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._random = random.Random(faults.seed)
        # Times of the requests let through in the last second (for the rps ceiling).
        self._window: deque[float] = deque()

    def delay_s(self) -> float:
        """The latency to add to this answer."""
        f = self.faults
        if f.jitter_s:
            return f.latency_s + self._random.uniform(0, f.jitter_s)
        return f.latency_s

    def throttled(self, now_s: float | None = None) -> bool:
        """True when this request is over the requests-per-second ceiling."""
        if not self.faults.max_rps:
            return False
        now = time.monotonic() if now_s is None else now_s
        window = self._window
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= self.faults.max_rps:
            return True
        window.append(now)
        return False

    def fate(self) -> Fate:
        """The fate of a request that passed the rate ceiling."""
        f = self.faults
        if not (f.http500_rate or f.backmsg85_rate or f.drop_rate or f.hang_rate):
            return Fate.ANSWER
        draw = self._random.random()
        for rate, fate in (
            (f.http500_rate, Fate.HTTP500),
            (f.backmsg85_rate, Fate.BACKMSG85),
            (f.drop_rate, Fate.DROP),
            (f.hang_rate, Fate.HANG),
        ):
            if draw < rate:
                return fate
            draw -= rate
        return Fate.ANSWER
