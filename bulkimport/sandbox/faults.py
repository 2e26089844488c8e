"""Fault injection and capacity: what can go wrong between a client and the vendor's server.

Every fault is off by default. A request meets them in the order a real installation puts them
in its way:

0. ``https_only``: the port is nginx's TLS port, and a plain HTTP request gets its 400 page;
1. ``outage``: the balancer or nginx in front answers alone; no call reaches the server;
2. ``max_rps``: a requests-per-second ceiling answered with 429 (the stock server has none);
3. ``capacity``: the PHP side serves calls in arrival order, ``capacity`` per second, so a call
   first waits for the work admitted before it (``CapacityQueue``); a database lock
   (``lock_s``, every ``lock_every_s``) holds every call that arrives while it is held until
   it is released (``LockSchedule``);
4. the call's fate, drawn once: HTTP 500, an injected answer code, a dropped connection, a hang,
   the normal answer, or PHP dying after it saved the row (a 500, or its fatal error with 200);
   and what PHP prints before an answer (a BOM, a notice), drawn for each of them;
5. the answer is ready after the wait plus ``latency_s`` (and jitter). When that is longer than
   ``queue_timeout_s``, nginx answers 504 at ``queue_timeout_s`` instead, and a call whose fate
   is the normal answer is still processed when its time comes (PHP goes on after nginx gave up).

With a ``seed`` the fates are reproducible: the n-th request that passes the ceiling always
gets the same fate.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, NamedTuple

from bulkimport.protocol import CODES, OutcomeKind

# The codes the server answers with CODE 1 (success): an injected one is answered as such.
SUCCESS_CODES = frozenset(n for n, code in CODES.items() if code.verdict is OutcomeKind.DONE)
_CODE = re.compile(r"(?:BackMsg_)?(\d{1,4})", re.IGNORECASE)
# Rates that add up to 1 in decimal may exceed it by a rounding error in binary.
_RATE_SLACK = 1e-9
_SECONDS_AND_SHARES = (
    "latency_s",
    "jitter_s",
    "capacity",
    "queue_timeout_s",
    "http500_rate",
    "backmsg85_rate",
    "drop_rate",
    "hang_rate",
    "max_rps",
    "http500_after_rate",
    "fatal200_after_rate",
    "bom_rate",
    "notice_rate",
    "html_notice_rate",
    "lock_s",
    "lock_every_s",
)
# What PHP prints before the answer (the ``*_rate`` of ``Faults`` that draw them).
BOM = "\ufeff"
PHP_NOTICE = "\nNotice: Undefined index: agent in /var/www/html/asterccinterfaces.php on line 41\n"
PHP_HTML_NOTICE = (
    "<br />\n<b>Notice</b>:  Undefined index: agent in "
    "<b>/var/www/html/asterccinterfaces.php</b> on line <b>41</b><br />\n"
)


class Outage(StrEnum):
    """What answers instead of the server while it is down (``outage``)."""

    OFF = "off"  # no outage: the server answers
    DROP = "drop"  # each connection closed without an answer (a dead upstream behind a TCP proxy)
    BAD_GATEWAY = "502"  # nginx's "502 Bad Gateway" page: its upstream is down
    HTML200 = "html200"  # a maintenance page served with status 200, as some proxies do


def parse_code(value: object) -> int:
    """An answer code given as ``116``, ``"116"`` or ``"BackMsg_116"``; ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9999:
        return value
    match = _CODE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not an answer code: {value!r} (e.g. 116 or BackMsg_116)")
    return int(match.group(1))


def _code_rates(rates: Mapping[Any, Any]) -> dict[str, float]:
    if not isinstance(rates, Mapping):
        raise ValueError("code_rates must map answer codes to shares, e.g. {'116': 0.02}")
    normalised: dict[int, float] = {}
    for key, rate in rates.items():
        code = parse_code(key)
        if code in normalised:
            raise ValueError(f"code_rates names BackMsg_{code:02d} twice")
        normalised[code] = _number(f"code_rates[{key}]", rate)
    return {str(code): normalised[code] for code in sorted(normalised)}


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, not {value!r}")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class Faults:
    """What the sandbox does wrong, and how often (rates are shares of requests, 0..1)."""

    latency_s: float = 0  # the base latency of every answer
    jitter_s: float = 0  # plus a uniform random 0..jitter_s
    capacity: float = 0  # calls per second served at the base latency; 0 = unlimited
    queue_timeout_s: float = 10  # an answer later than this is nginx's 504 instead; 0 = never
    http500_rate: float = 0  # HTTP 500 with an HTML body
    backmsg85_rate: float = 0  # |Retuen|2|Retuen|BackMsg_85 (shorthand for code_rates 85)
    # Answer code (decimal text, "116") -> share of calls answered with it, not processed.
    code_rates: Mapping[str, float] = field(default_factory=dict, hash=False)
    drop_rate: float = 0  # connection closed without an answer
    hang_rate: float = 0  # no answer until the server stops
    max_rps: float = 0  # requests per second above which HTTP 429 is answered; 0 = none
    retry_after_s: int = 1  # the Retry-After of a 429, whole seconds
    outage: Outage = Outage.OFF  # while not "off", no call reaches the server
    # The call is processed (the row saved), then PHP dies: nginx's 500 page...
    http500_after_rate: float = 0
    # ...or, with display_errors on, PHP's fatal error as the body, with status 200.
    fatal200_after_rate: float = 0
    # Printed before an answer, each drawn for every answer: a UTF-8 BOM (an include saved
    # "with BOM"), a PHP notice as plain text, a PHP notice in PHP's HTML (html_errors on).
    bom_rate: float = 0
    notice_rate: float = 0
    html_notice_rate: float = 0
    # A database lock holds every call for lock_s seconds (then all are answered), every
    # lock_every_s seconds from when it is set; lock_every_s 0: once, from when it is set.
    lock_s: float = 0
    lock_every_s: float = 0
    # The port is nginx's HTTPS port: a plain HTTP request gets its 400 page, nothing else.
    https_only: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in _SECONDS_AND_SHARES:
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "outage", Outage(self.outage))
        object.__setattr__(self, "code_rates", _code_rates(self.code_rates))
        object.__setattr__(self, "https_only", bool(self.https_only))
        rates = (
            self.http500_rate,
            self.backmsg85_rate,
            self.drop_rate,
            self.hang_rate,
            self.http500_after_rate,
            self.fatal200_after_rate,
            *self.code_rates.values(),
        )
        if any(r < 0 or r > 1 for r in rates) or sum(rates) > 1 + _RATE_SLACK:
            raise ValueError("fault rates must be within 0..1 and add up to at most 1")
        if any(not 0 <= r <= 1 for r in (self.bom_rate, self.notice_rate, self.html_notice_rate)):
            raise ValueError("bom_rate, notice_rate and html_notice_rate must be within 0..1")
        if self.lock_s < 0 or self.lock_every_s < 0:
            raise ValueError("lock_s and lock_every_s cannot be negative")
        if self.lock_every_s and self.lock_s >= self.lock_every_s:
            raise ValueError(
                "lock_s (--lock) must be shorter than lock_every_s (--lock-every), else the"
                " lock never ends"
            )
        lengths = (self.latency_s, self.jitter_s, self.queue_timeout_s)
        if any(s < 0 for s in lengths) or self.capacity < 0 or self.max_rps < 0:
            raise ValueError(
                "latency, jitter, queue timeout, capacity and max_rps cannot be negative"
            )
        if self.retry_after_s < 0:
            raise ValueError("retry_after_s cannot be negative")

    @classmethod
    def from_json(cls, data: Mapping[str, Any], base: Faults | None = None) -> Faults:
        """Build from a JSON object (``POST /sandbox/faults``): the keys given replace those of
        ``base`` (default: no faults), the others keep its values. ValueError names an unknown
        key or a value of the wrong type."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name == "seed":
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise ValueError(f"seed must be an integer or null, not {value!r}")
                values[name] = value
            elif name == "retry_after_s":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"retry_after_s must be whole seconds, not {value!r}")
                values[name] = value
            elif name == "outage":
                if value not in tuple(Outage):
                    choices = ", ".join(o.value for o in Outage)
                    raise ValueError(f"outage must be one of {choices}, not {value!r}")
                values[name] = Outage(value)
            elif name == "code_rates":
                values[name] = value  # checked by __post_init__
            elif name == "https_only":
                if not isinstance(value, bool):
                    raise ValueError(f"https_only must be true or false, not {value!r}")
                values[name] = value
            else:
                values[name] = _number(name, value)
        current = (base or cls()).to_json()
        current.update(values)
        return cls(**current)

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON: the keys are the command-line options' names in snake case."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["code_rates"] = dict(self.code_rates)
        data["outage"] = self.outage.value
        return data


class Fate(StrEnum):
    """What happens to one request that passed the outage switch and the rate ceiling."""

    ANSWER = "answer"  # processed and answered normally
    HTTP500 = "http500"  # an HTML error page with status 500, nothing processed
    CODE = "code"  # an injected answer code (code_rates, backmsg85_rate), nothing processed
    DROP = "drop"  # the connection is closed without an answer
    HANG = "hang"  # never answered until the server stops
    HTTP500_AFTER = "http500-after"  # processed (the row saved), then a 500 page
    FATAL200_AFTER = "fatal200-after"  # processed, then PHP's fatal error with status 200


class Verdict(NamedTuple):
    """What the server does with one request, decided when it arrives."""

    fate: Fate
    code: int  # the answer code of Fate.CODE, else 0
    wait_s: float  # time in the capacity queue (and held by a lock) before it is served
    ready_s: float  # arrival to the server's answer: wait_s + latency (+ jitter)
    timed_out: bool  # ready_s > queue_timeout_s: nginx answers 504 at queue_timeout_s
    preamble: str = ""  # what PHP prints before the answer (BOM, notices), if it answers

    def answer_after_s(self, queue_timeout_s: float) -> float:
        """When the client gets an answer, counted from the arrival."""
        return queue_timeout_s if self.timed_out else self.ready_s


class CapacityQueue:
    """The server as one queue that serves ``rate_per_s`` calls per second, in arrival order.

    Each admitted call needs ``1/rate_per_s`` seconds of the server's work. A call arriving at
    ``now`` starts once the work admitted before it is done::

        start_k = max(now_k, free_at)    wait_k = start_k - now_k    free_at = start_k + 1/rate

    Below the rate a call waits (almost) nothing, so its answer comes after the base latency;
    above it the backlog grows with every call: at twice the rate the k-th call of a steady
    stream waits k/(2·rate) seconds, until nginx's timeout answers 504. ``now`` is any
    monotonic clock in seconds (a virtual one in tests); a call costs O(1).
    """

    def __init__(self, rate_per_s: float = 0) -> None:
        self.rate_per_s = rate_per_s
        self._free_at = float("-inf")  # when the work admitted so far is done

    def set_rate(self, rate_per_s: float) -> None:
        """Serve later calls at ``rate_per_s``; the work already queued stays queued (0: no
        limit from now on, and the backlog is forgotten)."""
        if not rate_per_s:
            self._free_at = float("-inf")
        self.rate_per_s = rate_per_s

    def admit(self, now: float) -> float:
        """Queue one call arriving at ``now``; return how long it waits before it is served."""
        if not self.rate_per_s:
            return 0.0
        start = max(now, self._free_at)
        self._free_at = start + 1.0 / self.rate_per_s
        return start - now

    def backlog_s(self, now: float) -> float:
        """Seconds of work queued at ``now``: the wait of a call arriving then."""
        return max(0.0, self._free_at - now)


class LockSchedule:
    """When a database lock holds the server: for ``lock_s`` seconds every ``every_s`` seconds
    from ``since`` (the first one ``every_s`` after it), or once from ``since`` when
    ``every_s`` is 0. A call arriving while it is held waits until it is released."""

    def __init__(self, lock_s: float, every_s: float, since: float) -> None:
        self.lock_s = lock_s
        self.every_s = every_s
        self.since = since

    def wait_s(self, now: float) -> float:
        """How long a call arriving at ``now`` is held (0 when no lock is held then)."""
        if not self.lock_s or now < self.since:
            return 0.0
        elapsed = now - self.since
        if not self.every_s:
            return max(0.0, self.lock_s - elapsed)
        if elapsed < self.every_s:
            return 0.0
        into = elapsed % self.every_s
        return self.lock_s - into if into < self.lock_s else 0.0


class RateCeiling:
    """At most ``max_rps`` calls let through in any sliding 1-second window."""

    def __init__(self) -> None:
        self._window: deque[float] = deque()  # times of the calls let through in the last second

    def throttled(self, now: float, max_rps: float) -> bool:
        """True when a call at ``now`` is over the ceiling (it is then not counted)."""
        if not max_rps:
            return False
        window = self._window
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= max_rps:
            return True
        window.append(now)
        return False


class FaultPlan:
    """Decides each request's fate and timing from a ``Faults`` setting.

    ``update`` changes the setting in place: the capacity backlog and the rate window carry
    over, and the random sequence too unless the seed changed.
    """

    def __init__(self, faults: Faults, *, now: float | None = None) -> None:
        self.faults = faults
        self._random = random.Random(faults.seed)
        self.capacity = CapacityQueue(faults.capacity)
        self.ceiling = RateCeiling()
        self._fates = _fate_table(faults)
        since = time.monotonic() if now is None else now
        self.lock = LockSchedule(faults.lock_s, faults.lock_every_s, since)

    def update(self, faults: Faults, *, now: float | None = None) -> None:
        """Use ``faults`` from ``now`` on (a changed lock setting counts from then)."""
        if faults.seed != self.faults.seed:
            self._random = random.Random(faults.seed)
        if faults.capacity != self.capacity.rate_per_s:
            self.capacity.set_rate(faults.capacity)
        if (faults.lock_s, faults.lock_every_s) != (self.faults.lock_s, self.faults.lock_every_s):
            since = time.monotonic() if now is None else now
            self.lock = LockSchedule(faults.lock_s, faults.lock_every_s, since)
        self.faults = faults
        self._fates = _fate_table(faults)

    def throttled(self, now: float) -> bool:
        """True when a request arriving at ``now`` is over the requests-per-second ceiling."""
        return self.ceiling.throttled(now, self.faults.max_rps)

    def decide(self, now: float) -> Verdict:
        """The verdict on a request that arrived at ``now`` and passed the ceiling."""
        f = self.faults
        wait_s = self.capacity.admit(now) + self.lock.wait_s(now)
        ready_s = wait_s + f.latency_s
        if f.jitter_s:
            ready_s += self._random.uniform(0, f.jitter_s)
        fate, code = Fate.ANSWER, 0
        if self._fates:
            draw = self._random.random()
            for rate, fate_if, code_if in self._fates:
                if draw < rate:
                    fate, code = fate_if, code_if
                    break
                draw -= rate
        timeout_s = f.queue_timeout_s
        timed_out = bool(timeout_s) and ready_s > timeout_s and fate is not Fate.HANG
        preamble = ""
        if fate in (Fate.ANSWER, Fate.CODE):
            # Drawn only when set, so that a seed gives the same fates as before.
            for rate, text in (
                (f.bom_rate, BOM),
                (f.notice_rate, PHP_NOTICE),
                (f.html_notice_rate, PHP_HTML_NOTICE),
            ):
                if rate and self._random.random() < rate:
                    preamble += text
        return Verdict(fate, code, wait_s, ready_s, timed_out, preamble)


def _fate_table(faults: Faults) -> tuple[tuple[float, Fate, int], ...]:
    # The order of the draws; kept stable so that a seed gives the same fates as before.
    table = [
        (faults.http500_rate, Fate.HTTP500, 0),
        (faults.backmsg85_rate, Fate.CODE, 85),
        *((rate, Fate.CODE, int(code)) for code, rate in faults.code_rates.items()),
        (faults.drop_rate, Fate.DROP, 0),
        (faults.hang_rate, Fate.HANG, 0),
        (faults.http500_after_rate, Fate.HTTP500_AFTER, 0),
        (faults.fatal200_after_rate, Fate.FATAL200_AFTER, 0),
    ]
    return tuple(entry for entry in table if entry[0])
