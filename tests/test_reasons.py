"""The line of a job stopped before any Import answer: what came back, what to check, and
what its calls did (never "no row was sent" when calls were answered or may have been
processed)."""

from __future__ import annotations

from bulkimport.events import StopFacts
from bulkimport.jobs.stops import stop_facts
from bulkimport.messages import never_reached, outage_text, stop_text, untouched
from bulkimport.protocol import Outcome, Trouble, classify_http, classify_trouble
from bulkimport.send import SendCounts, SendEnd, SendResult
from bulkimport.settings import Settings, Target
from bulkimport.states import StopCause

URL = "http://cc.example.com:8443/asterccinterfaces"
TARGET = Target(url=URL, org="demo", user="admin", campaign="1")
HTTPS_PORT = classify_http(
    400,
    "<html><head><title>400 The plain HTTP request was sent to HTTPS port</title></head>"
    "<body><center>The plain HTTP request was sent to HTTPS port</center></body></html>",
)
PAGE = classify_http(200, "<html><title>Welcome to our site</title></html>")
REFUSED = classify_trouble(Trouble.REFUSED, "Connection refused")


def facts(
    outcome: Outcome, counts: SendCounts, cause: StopCause = StopCause.NEVER_REACHED
) -> StopFacts:
    result = SendResult(SendEnd.STOPPED, counts, 0, cause, outcome)
    return stop_facts(cause, result, Settings(target=TARGET), TARGET)


def stop_reason(cause: StopCause, result: SendResult, settings: Settings) -> str:
    """The line said for a stop, made from its facts after a round trip through JSON (as
    the job keeps them)."""
    kept = stop_facts(cause, result, settings, settings.target)
    return stop_text(StopFacts.from_json(kept.to_json()))


def test_nothing_answered_nor_maybe_processed_is_said_so() -> None:
    assert untouched(SendCounts(sent=3)) == "no row was sent or used an attempt"
    line = never_reached(REFUSED, facts(REFUSED, SendCounts(sent=3)))
    assert line.endswith("check --url (no row was sent or used an attempt)"), line


def test_calls_answered_or_maybe_processed_are_counted_never_denied() -> None:
    counts = SendCounts(sent=12, answered=1, unknown=4, pages=2)
    text = untouched(counts)
    assert "no row was sent" not in text
    assert text == (
        "1 call was answered; 4 may have been processed (no answer); "
        "2 got a page instead of an answer and may have been processed"
    )
    line = never_reached(PAGE, facts(PAGE, counts))
    assert "Welcome to our site" in line and line.endswith(f"check --url ({text})"), line


def test_plain_http_to_an_https_port_says_use_https() -> None:
    result = SendResult(SendEnd.STOPPED, SendCounts(sent=2), 0, StopCause.NEVER_REACHED, HTTPS_PORT)
    settings = Settings(target=TARGET)
    line = stop_reason(StopCause.NEVER_REACHED, result, settings)
    assert line.startswith(f"{URL} is an HTTPS port: HTTP 400 (")
    assert "use https:// (--url https://cc.example.com:8443/asterccinterfaces)" in line, line
    assert line.endswith("(no row was sent or used an attempt)")
    # The same for a URL that answered before (a port changed since): not "refused the job".
    fatal = SendResult(SendEnd.STOPPED, SendCounts(sent=2), 0, StopCause.FATAL, HTTPS_PORT)
    assert "use https://" in stop_reason(StopCause.FATAL, fatal, settings)


def test_the_next_probe_of_a_young_outage_is_said_in_words_not_as_zero_seconds() -> None:
    since = 1_700_000_000.0
    soon = outage_text(since, since + 10.4, now_s=since + 10.0)
    assert soon.endswith(", next try in under a second"), soon
    later = outage_text(since, since + 30.0, now_s=since + 10.0)
    assert later.endswith(", next try in 20 s"), later
    assert outage_text(since, None, now_s=since).startswith("server unreachable since ")
