"""The pace controller of ``--rate auto``, on a virtual clock.

Unit tests drive ``PaceController`` with a ``Driver``: calls start at the controller's pace
within its limit, and each answer comes back after a latency the test chooses, on a clock that
only moves from event to event. The last tests run ``bench/pace_sim.py``'s server (one FIFO
queue of known capacity) at a small scale and hold the controller to the product's targets.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from bench.pace_sim import FixedPolicy, Report, Server, auto_policy, measure, simulate
from bulkimport.messages import pace_text
from bulkimport.protocol import Outcome, Trouble, classify_http, classify_trouble
from bulkimport.send.pace import (
    AnswerStats,
    FixedPace,
    Pace,
    PaceController,
    PaceReason,
    PaceSettings,
    PaceState,
    PaceTuning,
    Signal,
    signal_of,
)

BASE_S = 0.020


def constant(latency_s: float) -> Callable[[float], float]:
    return lambda _sent_s: latency_s


def at_base(_sent_s: float) -> float:
    return BASE_S


def answered(_sent_s: float) -> Signal:
    return Signal.ANSWER


@dataclass
class Driver:
    """Sends at the controller's pace, within its limit; answers after ``latency(sent_s)``."""

    controller: PaceController
    now_s: float = 0.0
    next_start_s: float = 0.0
    sent: int = 0
    pending: list[tuple[float, int, float, Signal]] = field(default_factory=list)
    states: list[tuple[float, PaceState]] = field(default_factory=list)  # after each change

    def run(
        self,
        until_s: float,
        latency: Callable[[float], float] = at_base,
        signal: Callable[[float], Signal] = answered,
        *,
        sending: bool = True,
    ) -> None:
        controller = self.controller
        while True:
            answer_at = self.pending[0][0] if self.pending else math.inf
            start_at = math.inf
            if sending and controller.in_flight < controller.concurrency_limit:
                start_at = max(self.now_s, self.next_start_s)
            at = min(answer_at, start_at)
            if at > until_s:
                self.now_s = until_s
                return
            self.now_s = at
            if answer_at <= start_at:
                _, _, sent_s, answer = heapq.heappop(self.pending)
                if controller.on_answer(at, at - sent_s, answer):
                    self.states.append((at, controller.state()))
            else:
                controller.on_sent(at)
                self.sent += 1
                heapq.heappush(self.pending, (at + latency(at), self.sent, at, signal(at)))
                self.next_start_s = at + controller.interval_s

    def answer_now(self, latency_s: float, signal: Signal) -> bool:
        """One more call, sent ``latency_s`` ago, answered now (outside the pace)."""
        self.controller.on_sent(self.now_s - latency_s)
        return self.controller.on_answer(self.now_s, latency_s, signal)

    def reasons(self) -> list[PaceReason]:
        return [state.reason for _, state in self.states]


def warmed(rate_cap_per_s: float = 200.0) -> Driver:
    """A controller that found its pace: ``max_rate`` caps it, latency stays at the base."""
    controller = PaceController(PaceSettings(max_rate_per_s=rate_cap_per_s))
    driver = Driver(controller)
    driver.run(20.0)
    assert controller.rate_per_s == pytest.approx(rate_cap_per_s)
    return driver


# --- signals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "signal"),
    [
        (classify_http(200, "|Retuen|1|Retuen|BackMsg_84"), Signal.ANSWER),
        (classify_http(200, "|Retuen|2|Retuen|BackMsg_81"), Signal.ANSWER),
        (classify_http(200, "|Retuen|2|Retuen|BackMsg_76 phone1"), Signal.ANSWER),
        (classify_http(200, "|Retuen|2|Retuen|BackMsg_07"), Signal.ANSWER),
        (classify_http(200, "|Retuen|2|Retuen|BackMsg_85"), Signal.ANSWER),  # it answered
        (classify_http(429, "slow down"), Signal.THROTTLE),
        (classify_http(503, "<title>503</title>"), Signal.THROTTLE),
        (classify_http(502, "<title>502 Bad Gateway</title>"), Signal.OVERLOAD),
        (classify_http(504, "<title>504 Gateway Time-out</title>"), Signal.OVERLOAD),
        (classify_trouble(Trouble.TIMEOUT, "no answer in time"), Signal.OVERLOAD),
        (classify_trouble(Trouble.REFUSED, "cannot connect"), Signal.OVERLOAD),
        (classify_trouble(Trouble.DROPPED, "connection lost"), Signal.OVERLOAD),
        (classify_http(200, "<html><title>Maintenance</title></html>"), Signal.OVERLOAD),
        (classify_http(401, "Unauthorized"), Signal.IGNORE),
        (classify_trouble(Trouble.TLS, "wrong version number"), Signal.IGNORE),
        (classify_http(414, "<title>414 Request-URI Too Large</title>"), Signal.IGNORE),
    ],
)
def test_each_outcome_has_a_signal(outcome: Outcome, signal: Signal) -> None:
    assert signal_of(outcome) is signal


def test_an_ignored_answer_only_ends_its_call() -> None:
    driver = warmed()
    controller = driver.controller
    before = controller.state()
    in_flight = controller.in_flight
    controller.on_sent(driver.now_s)
    assert not controller.on_answer(driver.now_s + 30.0, 30.0, Signal.IGNORE)
    assert controller.in_flight == in_flight
    assert controller.state() == before


# --- decisions -------------------------------------------------------------------------------


def test_ramps_up_from_a_cold_start() -> None:
    controller = PaceController()
    assert controller.rate_per_s == PaceSettings().initial_rate_per_s
    assert controller.concurrency_limit == 1
    assert controller.state().reason is PaceReason.START
    driver = Driver(controller)
    driver.run(5.0)  # a server that never slows down
    # From 4/s to thousands in a few seconds: rounds are short once calls are many. The
    # pool of 256 calls carries 256 / 20 ms: one doubling past that is not used, and stops.
    assert 2000 <= controller.rate_per_s <= 2 * 256 / BASE_S
    assert set(driver.reasons()) == {PaceReason.RAMP}
    rates = [state.rate_per_s for _, state in driver.states]
    assert all(b == 2 * a for a, b in itertools.pairwise(rates))
    state = controller.state()
    assert state.base_latency_s == pytest.approx(BASE_S)
    # Little's law: the pace keeps rate * base calls in flight; the limit leaves twice that.
    wanted = math.ceil(controller.rate_per_s * BASE_S * 2) + 1
    assert controller.concurrency_limit == min(wanted, PaceSettings().max_concurrency)


def test_a_ramp_that_overshoots_takes_the_middle_of_its_last_step_as_the_ceiling() -> None:
    # Doubling from 32/s to 64/s met a limit: it is between the two. The answers of the last
    # second came mostly at 32/s; the middle of the step (45/s) is the better guess.
    controller = PaceController()
    driver = Driver(controller)
    while controller.rate_per_s < 64:
        driver.run(driver.now_s + 0.01)
    driver.run(driver.now_s + 0.05)
    assert driver.answer_now(0.002, Signal.THROTTLE)
    state = controller.state()
    assert state.ceiling_per_s == pytest.approx(64 / math.sqrt(2))
    assert state.rate_per_s == pytest.approx(64 / math.sqrt(2) * PaceTuning().overload_decrease)


def test_the_pace_stops_where_the_pool_is_full() -> None:
    # 8 calls in flight at 20 ms carry 400 calls/s at most: a faster pace is not used, and
    # so not earned.
    controller = PaceController(PaceSettings(max_concurrency=8))
    driver = Driver(controller)
    driver.run(20.0)
    assert controller.concurrency_limit == 8
    assert controller.rate_per_s <= 2 * 8 / BASE_S
    assert driver.sent <= 20 * 8 / BASE_S


def test_holds_near_capacity() -> None:
    server = Server(capacity_per_s=200, base_latency_s=BASE_S)
    controller = auto_policy()
    run = simulate(server, controller, duration_s=60.0, trace_every_s=0.5)
    late = [rate for t_s, rate, _, _ in run.trace if t_s >= 20.0]
    assert min(late) >= 0.8 * 200
    assert max(late) <= 1.1 * 200
    assert sum(late) / len(late) >= 0.9 * 200


def test_backs_off_on_rising_latency_before_any_error() -> None:
    driver = warmed()
    controller = driver.controller
    paced = controller.rate_per_s

    def rising(sent_s: float) -> float:
        # The agents' morning: the server gets busier and answers 10 ms slower each second.
        return BASE_S + 0.010 * max(0.0, sent_s - 21.0)

    driver.run(30.0, rising)
    cuts = [(t_s, state) for t_s, state in driver.states if state.reason is PaceReason.LATENCY]
    assert cuts, "never slowed down"
    first_s, first = cuts[0]
    # From the rate of answers over the last second, which may lag the pace by a call.
    assert first.rate_per_s == pytest.approx(PaceTuning().latency_decrease * paced, rel=0.01)
    # Slowed down as the latency passed twice its base: before the 3x of the target, and
    # long before the server fails.
    assert rising(first_s) < 2.5 * BASE_S
    # And again while it keeps rising, a round trip apart: never on the answers of calls
    # sent before the last decrease.
    assert len(cuts) >= PaceTuning().rebase_cuts
    assert all(b - a >= rising(a) for (a, _), (b, _) in itertools.pairwise(cuts))
    assert controller.rate_per_s < paced


def test_backs_off_multiplicatively_on_back_pressure() -> None:
    driver = warmed()
    controller = driver.controller
    paced = controller.rate_per_s
    assert driver.answer_now(BASE_S, Signal.OVERLOAD)
    # From the pace, or the answer rate if lower (it may lag the pace by a call).
    halved = PaceTuning().overload_decrease * paced
    assert controller.rate_per_s == pytest.approx(halved, rel=0.01)
    halved = controller.rate_per_s
    state = controller.state()
    assert state.reason is PaceReason.OVERLOAD
    assert state.ceiling_per_s == pytest.approx(paced, rel=0.01)
    # Calls sent before the decrease were too fast already: their 503s change nothing...
    assert not driver.answer_now(0.5, Signal.OVERLOAD)
    assert not driver.answer_now(BASE_S, Signal.OVERLOAD)  # ...nor those right after it
    driver.run(driver.now_s + 0.1)  # calls at the new pace
    assert controller.rate_per_s == pytest.approx(halved)
    assert driver.answer_now(BASE_S, Signal.OVERLOAD)  # one of them refused: slower again
    assert controller.rate_per_s == pytest.approx(PaceTuning().overload_decrease * halved)


def test_back_pressure_at_a_fixed_limit_is_not_probed_again_soon() -> None:
    # A front end refuses calls above 150/s: after the first 503, the pace climbs back to
    # just under it and stays there, instead of costing a 503 every few seconds.
    driver = warmed()
    controller = driver.controller
    driver.run(driver.now_s + 0.5)
    assert driver.answer_now(BASE_S, Signal.OVERLOAD)
    controller.state()
    ceiling = controller.state().ceiling_per_s
    assert ceiling is not None
    driver.run(driver.now_s + 25.0)
    assert controller.rate_per_s == pytest.approx(PaceTuning().refused_cruise * ceiling)


def test_one_slow_answer_changes_nothing() -> None:
    driver = warmed()
    controller = driver.controller
    paced = controller.rate_per_s
    assert not driver.answer_now(100 * BASE_S, Signal.ANSWER)
    driver.run(driver.now_s + 1.0)
    assert controller.rate_per_s == paced
    assert PaceReason.LATENCY not in driver.reasons()


def test_a_few_slow_answers_in_a_row_are_a_queue() -> None:
    driver = warmed()
    controller = driver.controller
    paced = controller.rate_per_s
    for _ in range(PaceTuning().severe_answers - 1):
        assert not driver.answer_now(5 * BASE_S, Signal.ANSWER)
    assert driver.answer_now(5 * BASE_S, Signal.ANSWER)
    assert controller.state().reason is PaceReason.LATENCY
    assert controller.rate_per_s < paced


def test_forgets_a_stale_base_latency() -> None:
    # The server got slower for good (a new version, a bigger database): its latency does
    # not come down however slowly we send. The base follows within seconds, and the pace
    # climbs back instead of sinking to the floor.
    driver = warmed()
    controller = driver.controller
    paced = controller.rate_per_s
    driver.run(40.0, constant(2.5 * BASE_S))
    assert PaceReason.REBASE in driver.reasons()
    state = controller.state()
    assert state.base_latency_s == pytest.approx(2.5 * BASE_S)
    assert controller.rate_per_s == pytest.approx(paced)
    assert min(state.rate_per_s for t_s, state in driver.states if t_s > 20.0) >= 0.4 * paced


def test_the_base_window_forgets_without_a_queue_too() -> None:
    # A latency below the queue margin, for longer than the window: the base follows.
    driver = warmed()
    tuning = driver.controller.tuning
    driver.run(20.0 + tuning.base_window_s + 2.0, constant(1.4 * BASE_S))
    base = driver.controller.state().base_latency_s
    assert base == pytest.approx(1.4 * BASE_S)


def test_respects_max_rate() -> None:
    controller = PaceController(PaceSettings(max_rate_per_s=50.0))
    driver = Driver(controller)
    driver.run(20.0)
    assert max(state.rate_per_s for _, state in driver.states) == 50.0
    assert controller.rate_per_s == 50.0
    assert controller.state().reason is PaceReason.MAX_RATE
    # 20 s at 50/s at most, from 4/s: nothing beyond the cap ever went out.
    assert driver.sent <= 20 * 50


def test_never_below_the_floor() -> None:
    driver = warmed()
    controller = driver.controller
    # An outage: every call is refused at once, for a minute.
    driver.run(80.0, constant(0.001), lambda _sent_s: Signal.OVERLOAD)
    assert controller.rate_per_s == PaceSettings().min_rate_per_s
    assert controller.concurrency_limit >= 1
    assert min(state.rate_per_s for _, state in driver.states) >= 1.0
    # The capacity learned before the outage is kept: answers never said it changed.
    assert controller.state().ceiling_per_s == pytest.approx(200.0, rel=0.01)


def test_recovers_after_an_outage() -> None:
    driver = warmed()
    controller = driver.controller
    driver.run(30.0, constant(0.001), lambda _sent_s: Signal.OVERLOAD)
    assert controller.rate_per_s < 10
    driver.run(40.0)  # the server is back: 10 s later, so is the pace
    assert controller.rate_per_s >= 0.9 * 200.0


def test_recovers_after_a_pause() -> None:
    driver = warmed()
    controller = driver.controller
    paced = controller.rate_per_s
    driver.run(120.0, sending=False)  # nothing sent for 100 s: a closed --window
    controller.on_sent(driver.now_s)
    state = controller.state()
    assert state.reason is PaceReason.RESUME
    assert state.rate_per_s == pytest.approx(PaceTuning().resume_factor * paced)
    assert controller.in_flight == 1
    controller.on_answer(driver.now_s + BASE_S, BASE_S, Signal.ANSWER)
    driver.now_s += BASE_S
    driver.next_start_s = driver.now_s
    driver.run(driver.now_s + 3.0)
    assert controller.rate_per_s == pytest.approx(paced)


def test_a_short_pause_is_not_counted_as_a_slow_server() -> None:
    # A Retry-After pause of 2 s, then a 503: the pause is not in the answer rate that
    # measures the capacity.
    driver = warmed()
    controller = driver.controller
    driver.run(22.0, sending=False)
    driver.next_start_s = driver.now_s
    driver.run(22.3)
    assert driver.answer_now(BASE_S, Signal.OVERLOAD)
    assert controller.state().ceiling_per_s == pytest.approx(200.0, rel=0.01)


def test_status_line() -> None:
    driver = warmed()
    state = driver.controller.state()
    assert pace_text(state) == "pace 200/s (latency 20 ms, base 20 ms; max rate)"
    assert state.latency_p95_s == pytest.approx(BASE_S)
    assert pace_text(PaceController().state()) == "pace 4.0/s"


@pytest.mark.parametrize(
    "settings",
    [
        PaceSettings(min_rate_per_s=0.0),
        PaceSettings(min_rate_per_s=5.0, max_rate_per_s=2.0),
        PaceSettings(max_concurrency=0),
    ],
)
def test_refuses_impossible_settings(settings: PaceSettings) -> None:
    with pytest.raises(ValueError):
        PaceController(settings)


# --- the product's targets, simulated ----------------------------------------------------------


@pytest.mark.parametrize("capacity_per_s", [10, 300, 3000])
def test_targets_across_capacities(capacity_per_s: int) -> None:
    server = Server(capacity_per_s=capacity_per_s, base_latency_s=BASE_S)
    report = measure(simulate(server, auto_policy(), duration_s=60.0), warmup_s=10.0)
    assert report.share >= 0.90  # target: 85 %
    assert report.errors == 0.0  # target: 1 %
    assert report.p95_ratio <= 2.9  # target: 3x


def test_targets_after_the_capacity_halves() -> None:
    server = Server(300, BASE_S, latency_jitter=0.1, capacity_change=(20.0, 150))
    report = measure(simulate(server, auto_policy(), duration_s=40.0, seed=7), warmup_s=10.0)
    assert report.errors_back_s is not None and report.errors_back_s <= 5.0  # target: 10 s
    assert report.latency_back_s is not None and report.latency_back_s <= 5.0
    assert report.errors <= 0.005
    # A fixed pace that was right before the change never recovers.
    fixed = FixedPolicy(300, 256)
    report = measure(simulate(server, fixed, duration_s=40.0, seed=7), warmup_s=10.0)
    assert report.errors_back_s is None


def test_targets_behind_limit_req() -> None:
    server = Server(300, BASE_S, limit_rps=50)
    report = measure(simulate(server, auto_policy(), duration_s=60.0), warmup_s=10.0)
    assert report.share >= 0.90
    assert report.errors <= 0.005


def test_targets_on_a_noisy_server() -> None:
    server = Server(300, BASE_S, latency_jitter=0.3, work_jitter=0.5)
    report = measure(simulate(server, auto_policy(), duration_s=60.0, seed=1), warmup_s=10.0)
    assert report.share >= 0.85
    assert report.p95_ratio <= 2.5


# --- a fixed pace (--rate N) that meets throttling ----------------------------------------------


def fixed_behind_limit_req(rate_per_s: float, retry_after_s: float | None) -> Report:
    """``--rate N`` (0: none) at 16 in flight behind nginx's ``limit_req`` of 50 r/s with no
    burst (the strictest: a call less than 20 ms after the last one let through is refused)."""
    server = Server(300, 0.002, limit_rps=50, limit_burst=0, limit_retry_after_s=retry_after_s)
    pace = FixedPace(rate_per_s, 16)
    return measure(simulate(server, pace, duration_s=60.0), warmup_s=10.0)


@pytest.mark.parametrize("rate_per_s", [0.0, 100.0, 300.0])
@pytest.mark.parametrize("retry_after_s", [None, 1.0])
def test_a_fixed_pace_behind_limit_req_settles_near_the_limit(
    rate_per_s: float, retry_after_s: float | None
) -> None:
    # Before: a pool that only paused got 21 of 50 through, an unlimited one with
    # Retry-After 1 s got 1 a second (each burst after a pause earned the next pause).
    report = fixed_behind_limit_req(rate_per_s, retry_after_s)
    assert report.share >= 0.75, report
    assert report.errors <= 0.005, report  # a few 503s a minute, not one per call


def test_a_fixed_pace_below_the_limit_is_never_slowed() -> None:
    server = Server(300, 0.002, limit_rps=50, limit_burst=0)
    pace = FixedPace(30.0, 16)
    run = simulate(server, pace, duration_s=20.0)
    assert not any(answer.throttled for answer in run.answers)
    assert pace.rate_per_s == 30.0
    assert pace.state().reason is PaceReason.START


def test_a_fixed_pace_gives_way_to_throttling_only() -> None:
    pace = FixedPace(100.0, 8)
    for n in range(50):
        pace.on_sent(n * 0.01)
        assert not pace.on_answer(n * 0.01 + 0.005, 0.005, Signal.OVERLOAD)
    assert pace.rate_per_s == 100.0


def test_throttling_of_calls_sent_before_a_cut_cuts_once() -> None:
    pace = FixedPace(100.0, 8)
    now = 0.0
    for _ in range(100):  # a second of answers at 100/s
        pace.on_sent(now)
        pace.on_answer(now + 0.002, 0.002, Signal.ANSWER)
        now += 0.01
    for _ in range(8):  # the calls in flight are all throttled
        pace.on_sent(now)
    assert pace.on_answer(now + 0.002, 0.002, Signal.THROTTLE)
    cut = pace.rate_per_s
    assert cut == pytest.approx(85.0, rel=0.02)  # 0.85 of what was let through
    for _ in range(7):
        assert not pace.on_answer(now + 0.003, 0.003, Signal.THROTTLE)
    assert pace.rate_per_s == cut


def test_after_throttling_the_pace_climbs_back_to_the_chosen_rate() -> None:
    # The limit was lifted: the pace settles below where it was throttled, then probes past
    # it in growing steps, up to the chosen rate.
    pace = FixedPace(200.0, 8)
    now = 0.0
    while now < 1.0:
        pace.on_sent(now)
        pace.on_answer(now + 0.002, 0.002, Signal.ANSWER)
        now += pace.interval_s
    pace.on_sent(now)
    pace.on_answer(now + 0.002, 0.002, Signal.THROTTLE)
    assert pace.rate_per_s < 200.0
    while now < 60.0:
        pace.on_sent(now)
        pace.on_answer(now + 0.002, 0.002, Signal.ANSWER)
        now += pace.interval_s
    assert pace.rate_per_s == 200.0


def test_an_unlimited_pace_throttled_at_once_starts_from_what_came_through() -> None:
    pace = FixedPace(0.0, 16)
    assert math.isinf(pace.rate_per_s)
    for _ in range(16):
        pace.on_sent(0.0)
    pace.on_answer(0.002, 0.002, Signal.ANSWER)
    assert pace.on_answer(0.003, 0.003, Signal.THROTTLE)
    assert pace.rate_per_s == 1.0  # one came through: a finite pace, doubling from there


def test_a_sliding_window_limit_that_refuses_for_a_second_after_a_burst_cuts_once() -> None:
    # A limit that counts the calls of the last second (an API gateway, the sandbox's
    # --max-rps) refuses every call for up to a second after a burst filled it, whatever the
    # pace since: that second is one cut, not a halving per refused call.
    pace = FixedPace(0.0, 16)
    now = 0.0
    for _ in range(50):  # the burst that fills the window
        pace.on_sent(now)
        pace.on_answer(now + 0.003, 0.003, Signal.ANSWER)
        now += 0.001
    assert pace.on_answer(now, 0.003, Signal.THROTTLE)
    cut = pace.rate_per_s
    assert cut == 50.0  # the answers it got in that second
    while now < 0.99:
        now += pace.interval_s
        pace.on_sent(now)
        pace.on_answer(now + 0.003, 0.003, Signal.THROTTLE)
    assert pace.rate_per_s == cut


# --- after an outage: back to the pace it had, within seconds --------------------------------


def fixed_answers(pace: FixedPace, now: float, until: float, latency_s: float = 0.005) -> float:
    """Calls at the pace, each answered after ``latency_s``; the time at the end."""
    while now < until:
        pace.on_sent(now)
        pace.on_answer(now + latency_s, latency_s, Signal.ANSWER)
        now += max(pace.interval_s, 0.001)  # no limit: a call a millisecond
    return now


def test_a_fixed_pace_is_back_at_its_rate_within_a_second_after_a_maintenance_page() -> None:
    # 503 pages for 30 s cut the pace (throttling) before the outage was clear; once the
    # server answers, the pace doubles back to where it was, not +10 % a second from 1/s
    # (that took ~45 s from 1 call/s to 50/s).
    pace = FixedPace(50.0, 8)
    now = fixed_answers(pace, 0.0, 5.0)
    for _ in range(30):  # a page a second, every one throttled
        pace.on_sent(now)
        pace.on_answer(now + 0.002, 0.002, Signal.THROTTLE)
        now += 1.0
    assert pace.rate_per_s <= 5.0
    pace.resume(now)
    assert pace.state().reason is PaceReason.RESUME
    assert pace.rate_per_s == pytest.approx(12.5)  # a quarter of it
    now = fixed_answers(pace, now, now + 1.0)
    assert pace.rate_per_s == 50.0
    assert pace.state().reason is PaceReason.RECOVER


def test_a_fixed_pace_recovers_only_while_the_latency_stays_as_it_was() -> None:
    pace = FixedPace(80.0, 8)
    now = fixed_answers(pace, 0.0, 5.0, latency_s=0.005)
    pace.resume(now)
    start = pace.rate_per_s
    now = fixed_answers(pace, now, now + 3.0, latency_s=0.2)  # the server is slower now
    assert pace.rate_per_s == start and pace.state().reason is PaceReason.LATENCY
    fixed_answers(pace, now, now + 1.0, latency_s=0.005)  # as fast as before: on it goes
    assert pace.rate_per_s == 80.0
    # Slow for longer than resume_watch_s: the chosen rate is taken back all the same (it
    # only gives way to throttling, as before the outage).
    pace.resume(now + 1.0)
    fixed_answers(pace, now + 1.0, now + 15.0, latency_s=0.2)
    assert pace.rate_per_s == 80.0


def test_an_unlimited_pace_doubles_back_to_no_limit_after_an_outage() -> None:
    pace = FixedPace(0.0, 16)
    now = 0.0
    for _ in range(200):
        pace.on_sent(now)
        pace.on_answer(now + 0.002, 0.002, Signal.ANSWER)
        now += 0.005
    pace.resume(now)
    assert not math.isinf(pace.rate_per_s)
    fixed_answers(pace, now, now + 2.0, latency_s=0.002)
    assert math.isinf(pace.rate_per_s)


def test_rate_auto_doubles_back_to_its_pace_after_an_outage() -> None:
    # A stall: calls time out (back-pressure) for 4 s, then the health's probe is answered
    # and sending resumes: the pace is back within a few seconds, not after a slow climb.
    driver = warmed()
    controller = driver.controller
    driver.run(24.0, constant(0.001), lambda _sent_s: Signal.OVERLOAD)
    assert controller.rate_per_s < 50
    controller.resume(driver.now_s)
    assert controller.state().reason is PaceReason.RESUME
    assert controller.rate_per_s == pytest.approx(PaceTuning().resume_factor * 200.0)
    driver.run(26.0)
    assert controller.rate_per_s == pytest.approx(200.0)


def test_rate_auto_stops_climbing_back_when_the_latency_says_a_queue() -> None:
    driver = warmed()
    controller = driver.controller
    controller.resume(driver.now_s)
    driver.run(driver.now_s + 5.0, constant(0.2))  # ten times the base: a queue
    assert controller.rate_per_s < PaceTuning().resume_factor * 200.0


def overloaded(_sent_s: float) -> Signal:
    return Signal.OVERLOAD


def test_rate_auto_takes_back_the_cuts_of_a_stall() -> None:
    # A stall: 502s for 4 s cut the pace to its floor, and a call sent meanwhile is the first
    # answered (the outage ends with it). The cuts were the stall, not an overload: the pace
    # resumes from half the pace before it, with the same ceiling, and is back within 2 s.
    driver = warmed()
    controller = driver.controller
    before = controller.state()
    driver.run(24.0, constant(0.001), overloaded)
    assert controller.rate_per_s < 10
    driver.run(24.01, constant(0.001))  # the calls left at the cut pace go on
    driver.answer_now(BASE_S, Signal.ANSWER)
    controller.resume(driver.now_s)
    assert controller.rate_per_s == pytest.approx(PaceTuning().resume_factor * 200.0)
    assert controller.state().ceiling_per_s == before.ceiling_per_s
    driver.next_start_s = driver.now_s
    driver.run(driver.now_s + 2.0)
    assert controller.rate_per_s == pytest.approx(200.0)


def test_rate_auto_climbs_back_while_the_calls_are_slow_to_go_out_again() -> None:
    # After an outage the dispatcher claims its rows again: its first calls go out at a
    # fifth of the pace. The pace before the outage was earned: the climb goes on.
    driver = warmed()
    controller = driver.controller
    driver.run(24.0, constant(0.001), overloaded)
    controller.resume(driver.now_s)
    resumed = controller.rate_per_s
    for _ in range(PaceTuning().round_answers + 1):
        driver.now_s += 5 / resumed
        driver.answer_now(BASE_S, Signal.ANSWER)
    assert controller.rate_per_s == pytest.approx(2 * resumed)


def test_back_pressure_answered_through_is_an_overload_even_if_an_outage_follows() -> None:
    driver = warmed()
    controller = driver.controller
    assert driver.answer_now(BASE_S, Signal.OVERLOAD)
    cut = controller.rate_per_s
    assert cut < 150
    driver.run(driver.now_s + 1.0)  # answered at the new pace: the server took the cut
    paced = controller.rate_per_s
    assert paced < 0.96 * 200.0  # under the ceiling: back-pressure holds it there
    driver.run(driver.now_s + 4.0, constant(0.001), overloaded)  # then a stall
    controller.resume(driver.now_s)
    # The stall's cuts are taken back, not the overload's before it.
    assert controller.rate_per_s == pytest.approx(PaceTuning().resume_factor * paced)


def test_both_paces_keep_their_answers_in_the_same_statistics() -> None:
    paces: list[Pace] = [PaceController(), FixedPace(50.0, 8)]
    for pace in paces:
        for i in range(20):
            pace.on_sent(i * 0.1)
            pace.on_answer(i * 0.1 + 0.01 * (i + 1), 0.01 * (i + 1), Signal.ANSWER)
        pace.on_sent(3.0)
        state = pace.state()
        assert state.in_flight == pace.in_flight == 1
        assert state.latency_p95_s == pytest.approx(0.19)  # the 19th of 20, nearest rank
        assert state.latency_s is not None and 0.01 < state.latency_s < 0.2


def test_answer_statistics() -> None:
    stats = AnswerStats()
    stats.ended()  # a call cut off before it counted: never below zero
    assert stats.in_flight == 0 and stats.median_latency() is None
    for latency_s in (0.03, 0.01, 0.5, 0.02):
        stats.sent()
        stats.answered(1.0, latency_s)
        stats.ended()
    assert stats.in_flight == 0
    assert stats.median_latency() == pytest.approx(0.025)  # one slow answer does not move it
    # A moving average that one answer moves by a twentieth of its distance.
    assert stats.latency_s == pytest.approx(0.0509, abs=1e-4)
