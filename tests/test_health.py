"""The job-level view of the server, decision by decision, on a virtual clock."""

from __future__ import annotations

import pytest

from bulkimport.protocol import Outcome, Trouble, classify_http, classify_trouble, format_answer
from bulkimport.send.health import Decision, HealthSettings, HealthStop, JobHealth, Mode
from bulkimport.settings import RejectBudget
from bulkimport.states import StopCause

DONE = classify_http(200, format_answer(True, "BackMsg_84"))
REJECTED_74 = classify_http(200, format_answer(False, "BackMsg_74 fax"))
UNKNOWN_CODE = classify_http(200, format_answer(False, "BackMsg_999 odd"))
FATAL_116 = classify_http(200, format_answer(False, "BackMsg_116"))
REFUSED = classify_trouble(Trouble.REFUSED, "cannot connect")
TIMEOUT = classify_trouble(Trouble.TIMEOUT, "no answer in time")
GATEWAY = classify_http(504, "<title>504 Gateway Time-out</title>")
THROTTLED = classify_http(503, "<title>503 Service Temporarily Unavailable</title>")
HTML = classify_http(200, "<html><title>Welcome to nginx!</title></html>")
NOT_FOUND = classify_http(404, "<title>404 Not Found</title>")
TOO_LONG = classify_http(414, "<title>414 Request-URI Too Large</title>")


def health(reached: bool = True, **settings: object) -> JobHealth:
    return JobHealth(HealthSettings(**settings), reached_before=reached, now_s=0.0)  # type: ignore[arg-type]


def feed(
    watch: JobHealth, outcomes: list[Outcome], *, start_s: float = 0.0, step_s: float = 0.1
) -> list[Decision]:
    return [watch.observe(o, start_s + i * step_s) for i, o in enumerate(outcomes)]


# --- a URL that never answered --------------------------------------------------------------


HTTPS_PORT = classify_http(
    400,
    "<html><head><title>400 The plain HTTP request was sent to HTTPS port</title></head>"
    "<body><center><h1>400 Bad Request</h1></center>"
    "<center>The plain HTTP request was sent to HTTPS port</center></body></html>",
)
TLS = classify_trouble(Trouble.TLS, "wrong version number")
BAD_GATEWAY = classify_http(502, "<title>502 Bad Gateway</title>")
SERVER_ERROR = classify_http(500, "<title>500 Internal Server Error</title>")
DROPPED = classify_trouble(Trouble.DROPPED, "reset by peer")


@pytest.mark.parametrize("trouble", [REFUSED, TLS, HTML])
def test_a_url_that_never_answered_stops_after_three_signs_of_a_wrong_one_sparing_every_row(
    trouble: Outcome,
) -> None:
    watch = health(reached=False)
    decisions = feed(watch, [trouble] * 3)
    assert [d.stop for d in decisions] == [None, None, StopCause.NEVER_REACHED]
    assert all(d.spare for d in decisions)
    assert watch.stop_outcome is trouble


@pytest.mark.parametrize(
    "trouble", [TIMEOUT, GATEWAY, BAD_GATEWAY, THROTTLED, SERVER_ERROR, DROPPED]
)
def test_a_server_busy_at_the_first_start_is_an_outage_never_a_wrong_url(
    trouble: Outcome,
) -> None:
    # A backup holding a lock, php-fpm's backlog full: the URL is right, the server busy.
    watch = health(reached=False, max_outage_s=60.0)
    decisions = feed(watch, [trouble] * 50, step_s=0.1)
    assert watch.stop is None and watch.mode is Mode.OUTAGE
    assert all(d.spare for d in decisions)  # no row is at fault before any answer
    assert not any(watch.observe_probe(trouble, 6.0 + n).stop for n in range(10))
    # However long it lasts: an outage past --max-outage (resumable), never exit 3.
    assert watch.tick(61.0) is StopCause.OUTAGE


def test_a_server_busy_at_the_first_start_goes_on_when_it_answers() -> None:
    watch = health(reached=False)
    feed(watch, [BAD_GATEWAY] * 5)
    assert watch.mode is Mode.OUTAGE
    assert watch.observe_probe(DONE, 2.0).changed
    assert watch.reached and watch.mode is Mode.SENDING and watch.stop is None


def test_timeouts_and_throttling_between_signs_of_a_wrong_url_do_not_add_to_them() -> None:
    watch = health(reached=False, never_reached_s=10.0)
    assert watch.observe(TIMEOUT, 1.0).stop is None
    assert watch.observe(THROTTLED, 5.0).stop is None
    assert watch.observe(REFUSED, 5.5).stop is None
    assert watch.observe(THROTTLED, 11.0).stop is None
    assert watch.observe(REFUSED, 12.0).stop is None
    # Evidence within its time: the third sign, or the first one's time passed.
    assert watch.observe(REFUSED, 15.6).stop is StopCause.NEVER_REACHED


def test_an_answer_to_a_call_in_flight_lifts_a_never_reached_stop() -> None:
    watch = health(reached=False)
    decisions = feed(watch, [HTML] * 3)
    assert decisions[-1].stop is StopCause.NEVER_REACHED
    late = watch.observe(DONE, 1.0, sent_s=0.0)  # sent before the pages came back
    assert late.stop is None and watch.stop is None and watch.reached
    # The URL is the right one: later troubles are those of a server that answered.
    assert feed(watch, [HTML] * 3, start_s=2.0)[-1].stop is None


def test_an_answer_does_not_lift_a_stop_for_the_other_method_or_a_fatal_code() -> None:
    watch = health(reached=False)
    feed(watch, [HTML] * 3)
    watch.wrong_method(HTML)
    watch.observe(DONE, 1.0)
    assert watch.stop is StopCause.NEVER_REACHED
    fatal = health(reached=True)
    fatal.observe(FATAL_116, 0.0)
    fatal.observe(DONE, 0.1)
    assert fatal.stop is StopCause.FATAL


def test_signs_of_a_wrong_url_count_from_the_last_answer_only() -> None:
    watch = health(reached=False)
    feed(watch, [REFUSED, REFUSED])
    assert watch.observe_probe(DONE, 1.0).changed or watch.reached
    assert feed(watch, [REFUSED] * 3, start_s=2.0)[-1].stop is None  # reached: an outage


def test_plain_http_to_an_https_port_is_a_wrong_url_never_a_rejected_row() -> None:
    assert HTTPS_PORT.trouble is Trouble.HTTPS_PORT and HTTPS_PORT.kind.value == "fatal"
    watch = health(reached=False)
    decision = watch.observe(HTTPS_PORT, 0.0)
    assert decision.stop is StopCause.NEVER_REACHED and decision.spare
    assert not watch.may_be_the_method(HTTPS_PORT)
    assert watch.budget_answers == 0 and watch.rejections == 0
    # Any other 400 refuses that one request (too long, malformed): the row is rejected.
    assert classify_http(400, "<title>400 Bad Request</title>").trouble is Trouble.TOO_LARGE


def test_a_404_on_a_url_that_never_answered_is_a_wrong_url_at_once() -> None:
    watch = health(reached=False)
    assert watch.observe(NOT_FOUND, 0.0).stop is StopCause.NEVER_REACHED
    reached = health(reached=True)
    assert reached.observe(NOT_FOUND, 0.0).stop is StopCause.FATAL


def test_one_answer_makes_the_url_reached_and_troubles_then_an_outage() -> None:
    watch = health(reached=False)
    feed(watch, [REFUSED, DONE])
    assert watch.reached and watch.stop is None
    decisions = feed(watch, [REFUSED] * 5, start_s=1.0)
    assert watch.stop is None and watch.mode is Mode.OUTAGE
    assert decisions[-1].changed


# --- outages ----------------------------------------------------------------------------------


def test_troubles_among_answers_are_the_rows_and_an_outage_spares_them() -> None:
    watch = health()
    decisions = feed(watch, [DONE, TIMEOUT, DONE, REFUSED, REFUSED, REFUSED, REFUSED])
    # Held against their rows until the outage is clear (the dispatcher then takes the
    # attempts of the streak back); from the outage on, spared.
    assert [d.spare for d in decisions] == [False] * 6 + [False]
    assert watch.mode is Mode.SENDING
    outage = watch.observe(REFUSED, 1.0)
    assert outage.changed and not outage.spare and watch.mode is Mode.OUTAGE
    assert not watch.observe(REFUSED, 2.0).spare  # until a probe confirms the outage
    assert watch.observe_probe(REFUSED, 2.5).confirmed
    assert watch.observe(REFUSED, 3.0).spare


def test_troubles_a_first_probe_finds_answered_stay_the_rows() -> None:
    # Rows that make the server drop their connection look like an outage for a moment; a
    # probe answered at once says the server is there: their attempts count, so that such
    # rows end failed instead of being sent for ever.
    watch = health(probe_first_s=1.0)
    feed(watch, [DONE])
    decisions = feed(watch, [REFUSED] * 5, start_s=1.0)
    assert watch.mode is Mode.OUTAGE and not any(d.spare for d in decisions)
    back = watch.observe_probe(classify_http(200, format_answer(False, "BackMsg_71")), 2.5)
    assert back == Decision(changed=True) and not back.confirmed
    assert watch.mode is Mode.SENDING


def test_an_outage_probes_at_growing_intervals_and_ends_with_an_answer() -> None:
    watch = health(probe_first_s=1.0, probe_max_s=4.0, probe_steady_s=0.0)
    feed(watch, [DONE], start_s=0.0)
    feed(watch, [REFUSED] * 5, start_s=10.0, step_s=0.01)
    assert watch.mode is Mode.OUTAGE and watch.outage_since_s == 10.0
    assert not watch.probe_due(10.5) and watch.probe_due(11.05)
    # A call that was in flight when the outage began is held against its row until a
    # probe confirms the outage (then the dispatcher takes it back), and spared after.
    assert watch.observe(REFUSED, 10.5) == Decision(spare=False)
    probes, confirmed = [], []
    now = 11.05
    for _ in range(4):
        decision = watch.observe_probe(REFUSED, now)
        assert decision.spare and not decision.changed
        confirmed.append(decision.confirmed)
        probes.append(round(watch.next_probe_s - now, 3))
        now = watch.next_probe_s
    assert probes == [2.0, 4.0, 4.0, 4.0]  # doubling, capped
    assert confirmed == [True, False, False, False]  # the first failed probe confirms it
    assert watch.observe(REFUSED, now) == Decision(spare=True)
    # Any answer to a probe, whatever it says (an empty record: BackMsg_71), ends it.
    back = watch.observe_probe(classify_http(200, format_answer(False, "BackMsg_71")), now)
    assert back.changed and watch.mode is Mode.SENDING and watch.outage_since_s is None


def test_silence_with_calls_made_is_an_outage_too() -> None:
    # 429/503 for every call, however slowly sent: the server is not there for us.
    watch = health(silence_s=30.0)
    watch.observe(DONE, 0.0)
    assert not watch.observe(THROTTLED, 20.0).changed
    decision = watch.observe(THROTTLED, 31.0)
    assert decision.changed and decision.spare and watch.mode is Mode.OUTAGE  # throttled


def test_an_outage_longer_than_the_maximum_stops_the_job() -> None:
    watch = health(max_outage_s=60.0)
    watch.observe(DONE, 0.0)
    feed(watch, [GATEWAY] * 5, start_s=100.0, step_s=0.0)
    assert watch.observe_probe(GATEWAY, 101.0).stop is None
    assert watch.tick(150.0) is None
    assert watch.tick(160.0) is StopCause.OUTAGE
    assert watch.stop_outcome is GATEWAY


def test_each_outage_is_probed_every_second_at_first_so_a_stall_costs_its_length() -> None:
    # A server that stalls 2-5 s now and then: each stall is an outage probed every second
    # for its first 10 s, and the next outage starts from a second again. (Kept until 30 s
    # of answers, a stall every few seconds cost 30-second pauses: 9 rows/s against 80.)
    watch = health(probe_first_s=1.0, probe_steady_s=10.0, probe_max_s=30.0)
    now = 0.0
    pauses = []
    for stall_s in [3.0, 2.0, 5.0, 4.0, 2.5, 3.5]:
        watch.observe(DONE, now)
        began = now + 1
        feed(watch, [BAD_GATEWAY] * 5, start_s=began, step_s=0.0)
        assert watch.mode is Mode.OUTAGE
        while True:
            at = watch.next_probe_s
            if watch.observe_probe(DONE if at >= began + stall_s else BAD_GATEWAY, at).changed:
                break
        pauses.append(watch.last_answer_s - began)
        now = watch.last_answer_s + 2
    # The stall rounded up to the next whole second: never the 30 s cap.
    assert pauses == [3.0, 2.0, 5.0, 4.0, 3.0, 4.0]


def test_a_long_outage_is_probed_at_doubling_intervals_after_its_first_seconds() -> None:
    watch = health(probe_first_s=1.0, probe_steady_s=10.0, probe_max_s=30.0)
    watch.observe(DONE, 0.0)
    feed(watch, [REFUSED] * 5, start_s=1.0, step_s=0.0)
    probes = []
    while watch.next_probe_s < 200:
        probes.append(watch.next_probe_s)
        watch.observe_probe(REFUSED, watch.next_probe_s)
    gaps = [round(b - a, 3) for a, b in zip([1.0, *probes], probes, strict=False)]
    assert gaps[:11] == [1.0] * 11  # every second for its first 10 s
    assert gaps[11:16] == [2.0, 4.0, 8.0, 16.0, 30.0]  # then doubling, capped


def test_the_old_rule_kept_the_probe_interval_until_answers_for_a_while() -> None:
    # probe_reset_s: an outage within that long of the last one goes on from its interval.
    watch = health(probe_first_s=1.0, probe_max_s=30.0, probe_reset_s=30.0, probe_steady_s=0.0)
    now = 0.0
    intervals = []
    for _ in range(4):
        watch.observe(DONE, now)
        feed(watch, [REFUSED] * 5, start_s=now + 1, step_s=0.0)
        intervals.append(watch.next_probe_s - (now + 1))
        now = watch.next_probe_s
        assert watch.observe_probe(DONE, now).changed  # back, briefly
    assert intervals == [1.0, 2.0, 4.0, 8.0]
    watch.observe(DONE, now + 31)
    feed(watch, [REFUSED] * 5, start_s=now + 32, step_s=0.0)
    assert watch.next_probe_s - (now + 32) == 1.0


def test_503_pages_and_nothing_else_for_a_second_are_an_outage() -> None:
    # A maintenance page: declared after a second of pages only, not after 3 s of them nor
    # the 30 s of silence, and dated from its first page (--max-outage counts from there).
    watch = health(max_outage_s=15.0)
    watch.observe(DONE, 0.0)
    decisions = feed(watch, [THROTTLED] * 40, start_s=10.0, step_s=0.1)
    changed = [10.0 + i * 0.1 for i, d in enumerate(decisions) if d.changed]
    assert changed and changed[0] == pytest.approx(11.0)
    assert all(d.spare for d in decisions) and watch.mode is Mode.OUTAGE
    assert watch.outage_since_s == 10.0
    assert watch.tick(24.9) is None and watch.tick(25.0) is StopCause.OUTAGE


def test_a_rate_limit_answering_503_between_answers_is_no_outage() -> None:
    # nginx's limit_req answers 503 too: calls get through between its refusals.
    watch = health()
    outcomes = ([THROTTLED] * 4 + [DONE]) * 40
    decisions = feed(watch, outcomes, step_s=0.1)
    assert watch.mode is Mode.SENDING and not any(d.changed for d in decisions)
    # Nor a few 503s in a row after a long Retry-After pause.
    watch.observe(DONE, 30.0)
    assert not any(d.changed for d in feed(watch, [THROTTLED] * 4, start_s=40.0, step_s=0.0))


def test_throttling_is_never_the_rows_fault_and_no_outage_while_answers_come() -> None:
    watch = health()
    decisions = feed(watch, [DONE, THROTTLED, THROTTLED, DONE, THROTTLED] * 10)
    assert all(
        d.spare
        for d, o in zip(decisions, [DONE, THROTTLED, THROTTLED, DONE, THROTTLED] * 10, strict=True)
        if o is THROTTLED
    )
    assert watch.mode is Mode.SENDING and watch.stop is None


# --- the error budget -----------------------------------------------------------------------


def test_all_rejections_stop_the_job_as_soon_as_half_of_a_hundred_answers_are() -> None:
    # More than half of the first 100 answers rejected is known at the 51st: stopping then
    # keeps the calls made, with those in flight, under 100.
    watch = health()
    decisions = feed(watch, [REJECTED_74] * 51)
    stops = [i for i, d in enumerate(decisions) if d.stop is not None]
    assert stops == [50] and watch.stop is StopCause.BUDGET
    assert watch.budget_codes() == [("BackMsg_74", 51)]
    assert watch.budget_answers == 51


def test_the_first_window_stops_early_only_when_its_share_is_decided() -> None:
    watch = health()
    feed(watch, [DONE] * 49 + [REJECTED_74] * 50)  # 50 of 99: not over half of 100 yet
    assert watch.stop is None
    feed(watch, [REJECTED_74])  # 51 of 100
    assert watch.stop is StopCause.BUDGET


def test_some_rejections_among_answers_are_rows_not_a_system() -> None:
    watch = health()
    feed(watch, ([REJECTED_74] * 4 + [DONE] * 6) * 50)  # 40 %, under half
    assert watch.stop is None and watch.rejections == 200


def test_unknown_failure_codes_count_toward_the_budget() -> None:
    watch = health(budget=RejectBudget(count=10, share=None))
    feed(watch, [UNKNOWN_CODE] * 9 + [DONE] * 100)
    assert watch.stop is None
    feed(watch, [UNKNOWN_CODE])
    assert watch.stop is StopCause.BUDGET


def test_requests_too_large_for_the_front_end_count_toward_the_budget() -> None:
    watch = health(budget=RejectBudget(count=3, share=None))
    decisions = feed(watch, [TOO_LONG] * 3)
    assert not any(d.spare for d in decisions)
    assert watch.stop is StopCause.BUDGET


def test_no_budget() -> None:
    watch = health(budget=RejectBudget.parse("0"))
    feed(watch, [REJECTED_74] * 1000)
    assert watch.stop is None


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("100", RejectBudget(count=100, share=None)),
        ("20%", RejectBudget(count=None, share=0.2)),
        ("50 %", RejectBudget(count=None, share=0.5)),
        ("0", RejectBudget(count=None, share=None)),
        ("0%", RejectBudget(count=None, share=None)),
    ],
)
def test_budget_parsing(text: str, budget: RejectBudget) -> None:
    assert RejectBudget.parse(text) == budget


@pytest.mark.parametrize("text", ["lots", "150%", "2.5", "-1"])
def test_bad_budgets(text: str) -> None:
    with pytest.raises(ValueError):
        RejectBudget.parse(text)


# --- fatal answers ----------------------------------------------------------------------------


def test_a_fatal_code_stops_the_job_at_once() -> None:
    watch = health()
    decision = watch.observe(FATAL_116, 0.0)
    assert decision.stop is StopCause.FATAL and not decision.spare
    assert watch.stop_outcome is FATAL_116
    # The first cause stays.
    watch.observe(REJECTED_74, 0.1)
    assert watch.stop is StopCause.FATAL


def test_an_answer_to_a_call_sent_before_the_troubles_does_not_end_them() -> None:
    # The server went down with calls in flight: some of those are still answered after the
    # first trouble came back. They say nothing about the server since.
    watch = health(outage_after=3)
    watch.observe(DONE, 0.0, sent_s=0.0)
    watch.observe(REFUSED, 1.0, sent_s=0.9)
    watch.observe(DONE, 1.1, sent_s=0.8)  # sent before the trouble
    assert watch.streak == 1
    watch.observe(REFUSED, 1.2, sent_s=1.0)
    assert watch.observe(REFUSED, 1.3, sent_s=1.1).changed
    assert watch.mode is Mode.OUTAGE
    fresh = health(outage_after=3)
    fresh.observe(REFUSED, 1.0, sent_s=0.9)
    fresh.observe(DONE, 1.1, sent_s=1.05)  # sent after: the server answers
    assert fresh.streak == 0


def test_an_answer_to_a_call_sent_before_the_troubles_does_not_end_an_outage_either() -> None:
    # A server that stops lets its calls in flight finish: one may be answered after the
    # outage began. Ending it then cleared the troubles that showed it, so their rows kept
    # the attempt the outage cost them (6 rows of 1,000 behind nginx's maintenance page).
    watch = health(outage_after=3)
    watch.observe(DONE, 0.0, sent_s=0.0)
    for i in range(3):
        decision = watch.observe(REFUSED, 1.0 + i / 10, sent_s=0.9 + i / 10)
    assert decision.changed and watch.mode is Mode.OUTAGE
    late = watch.observe(DONE, 1.5, sent_s=0.5)  # sent before the first trouble
    assert not late.changed and watch.mode is Mode.OUTAGE
    assert watch.observe(DONE, 2.0, sent_s=1.9).changed  # sent since: the server is back
    assert watch.mode is Mode.SENDING


# --- a server that does not take the run's HTTP method ------------------------------------------

NOT_ALLOWED = classify_http(405, "<title>405 Not Allowed</title>")


@pytest.mark.parametrize("outcome", [NOT_ALLOWED, NOT_FOUND, HTML, GATEWAY])
def test_a_response_that_is_no_answer_before_any_answer_may_be_the_method(
    outcome: Outcome,
) -> None:
    watch = health(reached=True)
    assert watch.may_be_the_method(outcome)
    feed(watch, [DONE])
    assert not watch.may_be_the_method(outcome)  # the method was answered in this run


@pytest.mark.parametrize("outcome", [REFUSED, TIMEOUT, THROTTLED, TOO_LONG, DONE, FATAL_116])
def test_no_response_throttling_a_request_too_long_or_an_answer_is_not_the_method(
    outcome: Outcome,
) -> None:
    assert not health(reached=False).may_be_the_method(outcome)


def test_the_other_method_answered_stops_the_job_whatever_was_decided_before() -> None:
    # A 405 on a URL that answered before is fatal (the login?), pages an outage: once the
    # other method is answered, both are a stop for the method, no row at fault.
    fatal = health(reached=True)
    assert fatal.observe(NOT_ALLOWED, 0.0).stop is StopCause.FATAL
    decision = fatal.wrong_method(NOT_ALLOWED)
    assert (decision.stop, decision.spare) == (StopCause.NEVER_REACHED, True)
    assert fatal.stop is StopCause.NEVER_REACHED and fatal.stop_outcome is NOT_ALLOWED

    outage = health(reached=True)
    decisions = feed(outage, [HTML] * 5)
    assert decisions[-1].changed and outage.mode is Mode.OUTAGE
    decision = outage.wrong_method(HTML)
    assert (decision.stop, decision.spare, decision.changed) == (
        StopCause.NEVER_REACHED,
        True,
        False,
    )
    assert outage.mode is Mode.SENDING and not outage.probe_due(100.0)


def test_probes_of_a_url_never_answered_that_find_nothing_listening_stop_it() -> None:
    # 502s first (a proxy whose upstream is busy, or not there), then the probes find no
    # server at all: evidence of a wrong URL, counted across the probes that keep going.
    watch = health(reached=False)
    feed(watch, [BAD_GATEWAY] * 5)
    assert watch.mode is Mode.OUTAGE and watch.stop is None
    now = watch.next_probe_s
    for _ in range(2):
        decision = watch.observe_probe(REFUSED, now)
        assert decision.stop is None and watch.next_probe_s > now
        now = watch.next_probe_s
    assert watch.observe_probe(REFUSED, now).stop is StopCause.NEVER_REACHED


SERVER_ERROR = classify_http(500, "<title>500 Internal Server Error</title>")


@pytest.mark.parametrize("trouble", [TIMEOUT, SERVER_ERROR])
def test_a_url_that_only_times_out_or_fails_waits_as_an_outage_and_says_it_never_answered(
    trouble: Outcome,
) -> None:
    # A timeout or a 500 is no proof of a wrong URL: waited for --max-outage (exit 75), and
    # the stop's facts say that no Import answer came from it at all.
    watch = health(reached=False, max_outage_s=60.0)
    decisions = feed(watch, [trouble] * 5, step_s=1.0)
    assert decisions[-1].changed and watch.mode is Mode.OUTAGE and watch.stop is None
    assert watch.stop_facts() is None
    now = 4.0
    while watch.tick(now) is None:
        now = watch.next_probe_s
        watch.observe_probe(trouble, now)
    assert now == pytest.approx(60.0, abs=30.0)
    assert watch.stop_facts() == HealthStop(StopCause.OUTAGE, trouble, True, 0.0)


def test_an_outage_of_a_url_that_answered_before_says_so() -> None:
    watch = health(reached=True, max_outage_s=60.0)
    feed(watch, [TIMEOUT] * 5, start_s=10.0, step_s=1.0)
    assert watch.tick(70.0) is StopCause.OUTAGE
    assert watch.stop_facts() == HealthStop(StopCause.OUTAGE, TIMEOUT, False, 10.0)


def test_the_facts_of_a_wrong_url_and_of_a_fatal_answer() -> None:
    wrong = health(reached=False)
    feed(wrong, [REFUSED] * 3)
    assert wrong.stop_facts() == HealthStop(StopCause.NEVER_REACHED, REFUSED, True)
    budget = health(budget=RejectBudget(count=1))
    budget.observe(UNKNOWN_CODE, 1.0)
    facts = budget.stop_facts()
    assert facts is not None and facts.cause is StopCause.BUDGET and not facts.never_answered
