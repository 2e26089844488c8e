"""``--rate auto`` against simulated servers of known capacity, on a virtual clock.

    python bench/pace_sim.py             # the table of docs/pace.md (about a minute)
    python bench/pace_sim.py --quick     # 20-second runs
    python bench/pace_sim.py --only limit,halved --trace 1.0

A discrete-event simulation, deterministic for a seed:

- The server: one FIFO queue. Each call needs ``1/capacity`` seconds of the server's work
  (times a gamma-distributed factor of mean 1 when ``work_jitter`` is set); its answer comes
  ``base latency`` (times a lognormal factor of median 1 with ``latency_jitter``) plus its wait
  in the queue after it was sent. A call that waits longer than ``queue_timeout_s`` gets a 504
  at that time, and is still processed (as behind nginx: PHP goes on). The capacity can
  change once during the run (``capacity_change``: the agents' day starts).
- Optionally a front end like nginx ``limit_req`` with ``nodelay``: a leaky bucket of
  ``limit_rps`` with ``limit_burst``; a call over it gets a 503 (without ``Retry-After``, or
  with it if ``limit_retry_after_s`` is set) after ``base latency / 4``, and never reaches
  the server.
- The dispatcher: calls start ``1/rate`` apart (no credit saved while it waits, as
  ``RateLimiter``) while fewer than the limit are in flight; a ``Retry-After`` pauses every
  start. Rows never run out: what the dispatcher offers is what the policy allows.
- Policies: ``PaceController`` (``auto``), Vector's ARC as its controller decides
  (``ArcPolicy``: a concurrency limit and no pacing), or a fixed rate and concurrency.

Measured over the run after ``warmup_s``: good answers per second as a share of the capacity
(of the ``limit_req`` rate when lower), the share of error answers (503/504), the p50 and p95
latency of all answers; after a capacity change, the seconds until the error share over a
sliding 1-second window stays under 1 %, until the p95 over a sliding second is back under 3x
the base latency, and the share of the new capacity from 10 s after the change.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bulkimport.send.pace import PaceController, PaceSettings, Signal

ERROR_BUDGET = 0.01  # error answers over a sliding second: the product's target
LATENCY_BOUND = 3.0  # p95 at most this many base latencies: the product's target
SLIDE_S = 0.1  # the sliding windows move by this much


@dataclass(frozen=True)
class Server:
    """A server of known capacity; see the module docstring."""

    capacity_per_s: float
    base_latency_s: float
    queue_timeout_s: float = 1.0
    latency_jitter: float = 0.0  # sigma of the lognormal factor on the base latency
    work_jitter: float = 0.0  # coefficient of variation of each call's work
    limit_rps: float | None = None  # nginx limit_req in front
    limit_burst: int = 5
    limit_retry_after_s: float | None = None
    capacity_change: tuple[float, float] | None = None  # (at_s, new capacity_per_s)
    base_change: tuple[float, float] | None = None  # (at_s, new base_latency_s)

    def capacity_at(self, t_s: float) -> float:
        if self.capacity_change is not None and t_s >= self.capacity_change[0]:
            return self.capacity_change[1]
        return self.capacity_per_s

    def base_at(self, t_s: float) -> float:
        if self.base_change is not None and t_s >= self.base_change[0]:
            return self.base_change[1]
        return self.base_latency_s

    def effective_at(self, t_s: float) -> float:
        """What a client can get through: the capacity, or the front end's limit if lower."""
        capacity = self.capacity_at(t_s)
        return capacity if self.limit_rps is None else min(capacity, self.limit_rps)


class Policy(Protocol):
    """What the dispatcher applies: a ``PaceController`` or a fixed setting."""

    @property
    def rate_per_s(self) -> float: ...

    @property
    def concurrency_limit(self) -> int: ...

    def on_sent(self, now_s: float) -> None: ...

    def on_answer(self, now_s: float, latency_s: float, signal: Signal) -> bool: ...


@dataclass
class FixedPolicy:
    """``--rate N --concurrency C``; ``rate_per_s = inf`` for no rate limit."""

    rate_per_s: float
    concurrency_limit: int

    def on_sent(self, now_s: float) -> None:
        pass

    def on_answer(self, now_s: float, latency_s: float, signal: Signal) -> bool:
        return False


@dataclass
class ArcPolicy:
    """Vector's Adaptive Request Concurrency, as ``controller.rs`` decides (see docs/pace.md):
    a concurrency limit, no pacing; once per mean round trip, +1 if the limit was reached with
    no back-pressure and the round's mean latency was at most the EWMA, else x0.9 if there was
    back-pressure or the mean passed the EWMA by 2.5 deviations."""

    concurrency_limit: int = 1
    max_limit: int = 200
    decrease_ratio: float = 0.9
    ewma_alpha: float = 0.4
    deviation_scale: float = 2.5
    rate_per_s: float = math.inf
    in_flight: int = 0
    past: tuple[float, float] | None = None  # EWMA mean and variance of the rounds' means
    next_update_s: float = 0.0
    rtt_sum_s: float = 0.0
    rtt_count: int = 0
    back_pressure: bool = False
    reached_limit: bool = False

    def on_sent(self, now_s: float) -> None:
        self.in_flight += 1
        if self.in_flight >= self.concurrency_limit:
            self.reached_limit = True

    def on_answer(self, now_s: float, latency_s: float, signal: Signal) -> bool:
        self.in_flight -= 1
        self.back_pressure |= signal in (Signal.OVERLOAD, Signal.THROTTLE)
        if signal is Signal.ANSWER:
            self.rtt_sum_s += latency_s
            self.rtt_count += 1
        current = self.rtt_sum_s / self.rtt_count if self.rtt_count else None
        if self.past is None:
            if current is not None:
                self.past, self.next_update_s = (current, 0.0), now_s + current
            return False
        if now_s < self.next_update_s:
            return False
        mean, variance = self.past
        limit = self.concurrency_limit
        threshold = math.sqrt(variance) * self.deviation_scale
        if (
            limit < self.max_limit
            and self.reached_limit
            and not self.back_pressure
            and current is not None
            and current <= mean
        ):
            self.concurrency_limit += 1
        elif limit > 1 and (self.back_pressure or (current or 0.0) >= mean + threshold):
            self.concurrency_limit = max(1, int(limit * self.decrease_ratio))
        if current is not None:
            difference = current - mean
            increment = self.ewma_alpha * difference
            variance = (1 - self.ewma_alpha) * (variance + difference * increment)
            mean += increment
            self.past = (mean, variance)
        self.next_update_s = now_s + mean
        self.rtt_sum_s, self.rtt_count = 0.0, 0
        self.back_pressure = self.reached_limit = False
        return self.concurrency_limit != limit


@dataclass(frozen=True)
class Answer:
    sent_s: float
    answered_s: float
    error: bool  # 503 or 504
    retry_after_s: float | None = None
    throttled: bool = False  # a front end's 503 (limit_req), not the server's 504

    @property
    def latency_s(self) -> float:
        return self.answered_s - self.sent_s


@dataclass
class Run:
    """What one simulation produced."""

    server: Server
    duration_s: float
    answers: list[Answer] = field(default_factory=list)
    trace: list[tuple[float, float, int, str]] = field(default_factory=list)  # t, pace, limit, why


_ANSWER, _WAKE = 0, 1


def simulate(
    server: Server,
    policy: Policy,
    *,
    duration_s: float,
    seed: int = 1,
    trace_every_s: float = 0.0,
) -> Run:
    """Drive ``policy`` against ``server`` for ``duration_s`` of virtual time."""
    rng = random.Random(seed)
    run = Run(server, duration_s)
    events: list[tuple[float, int, int, Answer | None]] = []
    sequence = 0
    in_flight = 0
    next_start_s = 0.0
    paused_until_s = 0.0
    wake_at: float | None = None
    free_at_s = 0.0  # when the server's queue is empty
    bucket_s, bucket_excess = 0.0, 0.0  # the front end's leaky bucket
    work_shape = 1.0 / server.work_jitter**2 if server.work_jitter > 0 else 0.0
    next_trace_s = 0.0

    def push(at_s: float, kind: int, answer: Answer | None) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(events, (at_s, sequence, kind, answer))

    def serve(now_s: float) -> Answer:
        """The answer to a call sent now."""
        nonlocal free_at_s, bucket_s, bucket_excess
        if server.limit_rps is not None:
            excess = max(0.0, bucket_excess - server.limit_rps * (now_s - bucket_s)) + 1.0
            if excess > server.limit_burst + 1.0:
                answered_s = now_s + server.base_latency_s / 4
                return Answer(now_s, answered_s, True, server.limit_retry_after_s, True)
            bucket_excess, bucket_s = excess, now_s
        start_s = max(now_s, free_at_s)
        work = 1.0 if not work_shape else rng.gammavariate(work_shape, 1.0 / work_shape)
        free_at_s = start_s + work / server.capacity_at(start_s)
        wait_s = start_s - now_s
        if wait_s > server.queue_timeout_s:
            return Answer(now_s, now_s + server.queue_timeout_s, True)
        base_s = server.base_at(now_s)
        if server.latency_jitter:
            base_s *= math.exp(server.latency_jitter * rng.gauss(0.0, 1.0))
        return Answer(now_s, now_s + base_s + wait_s, False)

    def try_start(now_s: float) -> None:
        nonlocal in_flight, next_start_s, wake_at
        while now_s < duration_s and in_flight < policy.concurrency_limit:
            start_s = max(now_s, next_start_s, paused_until_s)
            if start_s > now_s:
                if wake_at is None or start_s < wake_at:
                    wake_at = start_s
                    push(start_s, _WAKE, None)
                return
            in_flight += 1
            policy.on_sent(now_s)
            rate = policy.rate_per_s
            next_start_s = now_s + (1.0 / rate if math.isfinite(rate) and rate > 0 else 0.0)
            answer = serve(now_s)
            push(answer.answered_s, _ANSWER, answer)

    try_start(0.0)
    while events:
        now_s, _, kind, answer = heapq.heappop(events)
        if trace_every_s and now_s >= next_trace_s:
            reason = policy.state().reason.value if isinstance(policy, PaceController) else ""
            run.trace.append((now_s, policy.rate_per_s, policy.concurrency_limit, reason))
            next_trace_s = now_s + trace_every_s
        if kind == _WAKE:
            if now_s != wake_at:
                continue  # an earlier wake-up was scheduled after this one
            wake_at = None
        else:
            assert answer is not None
            in_flight -= 1
            run.answers.append(answer)
            if answer.throttled:
                signal = Signal.THROTTLE
            else:
                signal = Signal.OVERLOAD if answer.error else Signal.ANSWER
            if answer.retry_after_s is not None:
                paused_until_s = max(paused_until_s, now_s + answer.retry_after_s)
            policy.on_answer(now_s, answer.latency_s, signal)
        try_start(now_s)
    return run


# --- measuring ---------------------------------------------------------------------------


def _quantile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class Report:
    """The figures of one run (shares are fractions)."""

    share: float  # good answers per second / what the server lets through
    errors: float  # error answers / answers
    p50_s: float
    p95_s: float
    p95_ratio: float  # p95 of latency / base latency
    errors_back_s: float | None = None  # after the capacity change; None: never
    latency_back_s: float | None = None
    share_after: float | None = None  # of the new capacity, from 10 s after the change


def measure(run: Run, *, warmup_s: float) -> Report:
    """The report of ``run``, after ``warmup_s``."""
    server = run.server
    window = [a for a in run.answers if warmup_s <= a.answered_s <= run.duration_s]
    good = sum(not a.error for a in window)
    latencies = sorted(a.latency_s for a in window)
    # Against the base latency when the call was sent: it may change during the run.
    ratios = sorted(a.latency_s / server.base_at(a.sent_s) for a in window)
    report = Report(
        share=good / _integral(server, warmup_s, run.duration_s),
        errors=(len(window) - good) / max(1, len(window)),
        p50_s=_quantile(latencies, 0.5),
        p95_s=_quantile(latencies, 0.95),
        p95_ratio=_quantile(ratios, 0.95),
    )
    if server.capacity_change is None:
        return report
    change_s = server.capacity_change[0]
    errors_back, latency_back = _recovery(run, change_s)
    after_s = change_s + 10.0
    after = [a for a in run.answers if after_s <= a.answered_s <= run.duration_s]
    share_after = None
    if after_s < run.duration_s:
        share_after = sum(not a.error for a in after) / _integral(server, after_s, run.duration_s)
    return Report(
        share=report.share,
        errors=report.errors,
        p50_s=report.p50_s,
        p95_s=report.p95_s,
        p95_ratio=report.p95_ratio,
        errors_back_s=errors_back,
        latency_back_s=latency_back,
        share_after=share_after,
    )


def _integral(server: Server, from_s: float, to_s: float) -> float:
    """Calls the server lets through between two times."""
    steps = 1000
    width = (to_s - from_s) / steps
    return sum(server.effective_at(from_s + (i + 0.5) * width) for i in range(steps)) * width


def _recovery(run: Run, change_s: float) -> tuple[float | None, float | None]:
    """Seconds after ``change_s`` until the error share over a sliding second stays under
    the budget, and until the p95 over a sliding second is back under the bound (the first
    time: a noisy server's probes may pass it again for a moment). None: not by the end."""
    answers = sorted(run.answers, key=lambda a: a.answered_s)
    times = [a.answered_s for a in answers]
    last_bad_errors = change_s
    latency_bad, latency_back = False, None
    end_s = change_s + 1.0
    lo = hi = 0
    while end_s <= run.duration_s + 1e-9:
        while hi < len(times) and times[hi] <= end_s:
            hi += 1
        while lo < hi and times[lo] < end_s - 1.0:
            lo += 1
        second = answers[lo:hi]
        if second:
            if sum(a.error for a in second) / len(second) >= ERROR_BUDGET:
                last_bad_errors = end_s
            ratios = sorted(a.latency_s / run.server.base_at(a.sent_s) for a in second)
            if _quantile(ratios, 0.95) > LATENCY_BOUND:
                latency_bad = True
            elif latency_back is None:
                latency_back = end_s - change_s if latency_bad else 0.0
        end_s += SLIDE_S
    errors_back = None if last_bad_errors >= run.duration_s - 1.0 else last_bad_errors - change_s
    return errors_back, latency_back


# --- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str  # for --only
    name: str
    server: Server
    policies: tuple[str, ...] = ("auto",)


def auto_policy() -> PaceController:
    return PaceController(PaceSettings(max_concurrency=256))


POLICIES: dict[str, Callable[[], Policy]] = {
    "auto": auto_policy,
    "ARC": ArcPolicy,
    "rate 50": lambda: FixedPolicy(50, 32),
    "rate 300": lambda: FixedPolicy(300, 32),
    "rate 300, 256 in flight": lambda: FixedPolicy(300, 256),
    "unlimited": lambda: FixedPolicy(math.inf, 32),
}
FIXED = ("rate 50", "rate 300", "unlimited")


def scenarios(duration_s: float) -> list[Scenario]:
    half = duration_s / 2
    return [
        Scenario("base", "300/s, base 20 ms", Server(300, 0.020), ("auto", "ARC", *FIXED)),
        Scenario(
            "halved",
            f"300/s then 150/s at {half:.0f} s",
            Server(300, 0.020, capacity_change=(half, 150)),
            ("auto", "ARC", *FIXED, "rate 300, 256 in flight"),
        ),
        Scenario(
            "slower",
            f"300/s, base 20 ms then 40 ms at {half:.0f} s",
            Server(300, 0.020, base_change=(half, 0.040)),
        ),
        Scenario("c10", "10/s, base 20 ms", Server(10, 0.020), ("auto", "ARC")),
        Scenario("c50", "50/s, base 20 ms", Server(50, 0.020)),
        Scenario("c1000", "1,000/s, base 20 ms", Server(1000, 0.020)),
        Scenario("c3000", "3,000/s, base 20 ms", Server(3000, 0.020)),
        Scenario("b2", "300/s, base 2 ms", Server(300, 0.002), ("auto", "ARC")),
        Scenario("b200", "300/s, base 200 ms", Server(300, 0.200)),
        Scenario(
            "limit",
            "300/s behind limit_req 50 r/s burst 5 (503)",
            Server(300, 0.020, limit_rps=50),
            ("auto", "ARC", "rate 50", "rate 300"),
        ),
        Scenario(
            "limit-ra",
            "300/s behind limit_req 50 r/s burst 5 (503, Retry-After 1 s)",
            Server(300, 0.020, limit_rps=50, limit_retry_after_s=1.0),
            ("auto", "ARC", "rate 50", "rate 300"),
        ),
        Scenario(
            "jitter",
            "300/s, base 20 ms, noisy (latency sigma 0.3, work cv 0.5)",
            Server(300, 0.020, latency_jitter=0.3, work_jitter=0.5),
            ("auto", "ARC", "rate 300"),
        ),
        Scenario(
            "jitter-halved",
            f"noisy, 300/s then 150/s at {half:.0f} s",
            Server(300, 0.020, latency_jitter=0.3, work_jitter=0.5, capacity_change=(half, 150)),
        ),
    ]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _ms(seconds: float) -> str:
    ms = 1000 * seconds
    return f"{ms:.0f}" if ms >= 10 else f"{ms:.1f}"


def _secs(value: float | None, changed: bool) -> str:
    if not changed:
        return "—"
    return "never" if value is None else f"{value:.1f}"


def worst(reports: Sequence[Report]) -> Report:
    """The worst of each figure over several runs (None, never recovered, is the worst)."""

    def latest(values: list[float | None]) -> float | None:
        return None if None in values else max(v for v in values if v is not None)

    afters = [r.share_after for r in reports if r.share_after is not None]
    return Report(
        share=min(r.share for r in reports),
        errors=max(r.errors for r in reports),
        p50_s=max(r.p50_s for r in reports),
        p95_s=max(r.p95_s for r in reports),
        p95_ratio=max(r.p95_ratio for r in reports),
        errors_back_s=latest([r.errors_back_s for r in reports]),
        latency_back_s=latest([r.latency_back_s for r in reports]),
        share_after=min(afters) if afters else None,
    )


def table(
    chosen: Sequence[Scenario], *, duration_s: float, warmup_s: float, seeds: Sequence[int]
) -> list[str]:
    lines = [
        "| server | policy | share of capacity | error answers | p50 ms | p95 ms (× base) "
        "| errors < 1 % after (s) | p95 ≤ 3× again after (s) | share after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario in chosen:
        for name in scenario.policies:
            reports = [
                measure(
                    simulate(scenario.server, POLICIES[name](), duration_s=duration_s, seed=seed),
                    warmup_s=warmup_s,
                )
                for seed in seeds
            ]
            report = worst(reports)
            changed = scenario.server.capacity_change is not None
            lines.append(
                f"| {scenario.name} | {name} | {_pct(report.share)} | {_pct(report.errors)} "
                f"| {_ms(report.p50_s)} | {_ms(report.p95_s)} ({report.p95_ratio:.1f}×) "
                f"| {_secs(report.errors_back_s, changed)} "
                f"| {_secs(report.latency_back_s, changed)} | {_pct(report.share_after)} |"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20-second runs")
    parser.add_argument("--duration", type=float, help="seconds of virtual time per run")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds left out")
    parser.add_argument("--seed", type=int, default=1, help="the first seed")
    parser.add_argument(
        "--seeds", type=int, default=1, help="runs per row, one seed each: the worst is shown"
    )
    parser.add_argument("--only", help="scenario keys, comma-separated")
    parser.add_argument("--trace", type=float, default=0.0, help="print the pace every N s")
    args = parser.parse_args(argv)
    duration_s = args.duration or (20.0 if args.quick else 60.0)
    chosen = scenarios(duration_s)
    if args.only:
        keys = set(args.only.split(","))
        chosen = [s for s in chosen if s.key in keys]
    started = time.perf_counter()
    if args.trace:
        for scenario in chosen:
            run = simulate(
                scenario.server,
                auto_policy(),
                duration_s=duration_s,
                seed=args.seed,
                trace_every_s=args.trace,
            )
            print(f"# {scenario.name}")
            for t_s, rate, limit, reason in run.trace:
                print(f"{t_s:8.2f} s  pace {rate:8.1f}/s  limit {limit:4d}  {reason}")
        return 0
    seeds = range(args.seed, args.seed + args.seeds)
    for line in table(chosen, duration_s=duration_s, warmup_s=args.warmup, seeds=seeds):
        print(line)
    runs = f"seed {args.seed}" if args.seeds == 1 else f"the worst of seeds {seeds[0]}–{seeds[-1]}"
    print(
        f"\n{duration_s:.0f} s of virtual time per run, measured after {args.warmup:.0f} s, "
        f"{runs}; {time.perf_counter() - started:.1f} s of real time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
