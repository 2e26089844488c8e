"""``policy.row_result``: an outcome and a row's history make its next state (pure)."""

from __future__ import annotations

import random

import pytest

from bulkimport.protocol import Outcome, Trouble, classify_http, classify_trouble
from bulkimport.rows import ClaimedRow, RowResult
from bulkimport.send.policy import MAX_UNKNOWN, maybe_processed, row_result
from bulkimport.settings import RetryPolicy
from bulkimport.states import RowState

RETRY = RetryPolicy(max_attempts=5)
GATEWAY_TIMEOUT = classify_http(504, "<html><title>504 Gateway Time-out</title></html>")
DUPLICATE = classify_http(200, "|Retuen|2|Retuen|BackMsg_81")
DONE = classify_http(200, "|Retuen|1|Retuen|BackMsg_84")
THROTTLED = classify_http(503, "<title>503 Service Temporarily Unavailable</title>")


def result(
    row: ClaimedRow, outcome: Outcome, *, spare: bool = False, max_unknown: int | None = None
) -> RowResult:
    return row_result(
        row, outcome, RETRY, now_s=1000.0, rng=random.Random(1), spare=spare,
        max_unknown=max_unknown,
    )  # fmt: skip


def test_a_504_is_an_unknown_outcome_sent_again() -> None:
    row = ClaimedRow(1, 2, "name=a", attempts=0)
    after = result(row, GATEWAY_TIMEOUT)
    assert (after.state, after.counted, after.unknown) == (RowState.PENDING, True, True)
    assert after.message == "504 Gateway Time-out"  # the page's title, never the page


def test_a_duplicate_after_an_unknown_outcome_is_done() -> None:
    row = ClaimedRow(1, 2, "name=a", attempts=1, unknowns=1)
    after = result(row, DUPLICATE)
    assert after.state is RowState.DONE
    assert "earlier attempt" in after.message
    assert result(ClaimedRow(1, 2, "name=a", attempts=1), DUPLICATE).state is RowState.DUPLICATE


def test_resends_that_rewrite_the_customer_are_bounded() -> None:
    row = ClaimedRow(1, 2, "name=a", attempts=2, unknowns=MAX_UNKNOWN - 1)
    after = result(row, classify_trouble(Trouble.TIMEOUT, "no answer in time"), max_unknown=3)
    assert (after.state, after.unknown) == (RowState.UNKNOWN, True)
    assert "may be on the server" in after.message


def test_a_row_that_runs_out_of_attempts_after_unknown_outcomes_may_be_on_the_server() -> None:
    # An answered failure says this call stored nothing; it says nothing of the two that may
    # have been processed.
    row = ClaimedRow(1, 2, "name=a", attempts=4, unknowns=2)
    storage_error = classify_http(200, "|Retuen|2|Retuen|BackMsg_85")  # answered: not unknown
    after = result(row, storage_error)
    assert after.state is RowState.UNKNOWN
    assert "2 of its 5 calls got no answer and may have imported it" in after.message
    plain = result(ClaimedRow(1, 2, "name=a", attempts=4), storage_error)
    assert plain.state is RowState.FAILED and "imported" not in plain.message


@pytest.mark.parametrize(
    "outcome",
    [
        classify_http(500, "<title>500 Internal Server Error</title>"),
        classify_http(200, "<br />\n<b>Fatal error</b>:  Allowed memory size exhausted"),
    ],
)
def test_a_500_or_a_page_after_php_may_have_saved_the_row_is_an_unknown_outcome(
    outcome: Outcome,
) -> None:
    row = ClaimedRow(1, 2, "name=a", attempts=4, unknowns=1)
    after = result(row, outcome)
    assert after.unknown and after.state is RowState.UNKNOWN
    assert "2 of its 5 calls got no answer and may have imported it" in after.message


def _calls(outcomes: list[Outcome], *, max_unknown: int | None = None) -> list[RowResult]:
    """The results of one row sent once per outcome, its history kept between calls as the
    queue keeps it (attempts counted, unknown outcomes counted), until a terminal state."""
    row = ClaimedRow(1, 2, "name=a", attempts=0)
    results = []
    for outcome in outcomes:
        after = result(row, outcome, max_unknown=max_unknown)
        results.append(after)
        if after.state is not RowState.PENDING:
            break
        row = row._replace(
            attempts=row.attempts + after.counted, unknowns=row.unknowns + after.unknown
        )
    return results


TIMEOUT = classify_trouble(Trouble.TIMEOUT, "no answer in time")
DROPPED = classify_trouble(Trouble.DROPPED, "connection closed")
# Answered: the server says it did not store the row (a 500 may have come after it did).
STORAGE_ERROR = classify_http(200, "|Retuen|2|Retuen|BackMsg_85")
REJECTED = classify_http(200, "|Retuen|2|Retuen|BackMsg_76 phone1")


def test_every_call_unanswered_ends_unknown_whatever_the_limit() -> None:
    for max_unknown in (None, MAX_UNKNOWN):
        ends = _calls(
            [GATEWAY_TIMEOUT, TIMEOUT, DROPPED, GATEWAY_TIMEOUT, TIMEOUT], max_unknown=max_unknown
        )
        assert ends[-1].state is RowState.UNKNOWN
        assert len(ends) == (RETRY.max_attempts if max_unknown is None else MAX_UNKNOWN)
        assert all(end.unknown for end in ends)


def test_one_unknown_call_among_failures_ends_unknown_and_none_ends_failed() -> None:
    mixed = [STORAGE_ERROR, TIMEOUT, STORAGE_ERROR, STORAGE_ERROR, STORAGE_ERROR]
    assert _calls(mixed)[-1].state is RowState.UNKNOWN
    assert _calls([STORAGE_ERROR] * 5)[-1].state is RowState.FAILED


def test_a_definite_answer_wins_over_earlier_unknown_outcomes() -> None:
    assert _calls([TIMEOUT, TIMEOUT, DONE])[-1].state is RowState.DONE
    assert _calls([TIMEOUT, DUPLICATE])[-1].state is RowState.DONE
    assert _calls([GATEWAY_TIMEOUT, REJECTED])[-1].state is RowState.REJECTED
    assert _calls([DUPLICATE])[-1].state is RowState.DUPLICATE


def test_a_row_sent_again_keeps_its_unknown_outcomes_bounded() -> None:
    # ``retry --unknown`` resets the attempts and keeps the unknown outcomes: a duplicate
    # answer is this job's record; with --dupway update, one more unanswered call is the last.
    again = ClaimedRow(1, 2, "name=a", attempts=0, unknowns=MAX_UNKNOWN)
    assert result(again, DUPLICATE).state is RowState.DONE
    assert result(again, TIMEOUT, max_unknown=MAX_UNKNOWN).state is RowState.UNKNOWN
    assert result(again, TIMEOUT).state is RowState.PENDING  # --dupway skip: safe to resend


def test_throttling_and_outages_spare_the_attempt() -> None:
    row = ClaimedRow(1, 2, "name=a", attempts=4)
    after = result(row, THROTTLED, spare=True)
    assert (after.state, after.counted) == (RowState.PENDING, False)
    assert result(row, DONE).state is RowState.DONE


@pytest.mark.parametrize(
    ("outcome", "reached", "unknown"),
    [
        # A page from a URL that never answered: another server's, which imported nothing.
        (classify_http(200, "<html><title>Welcome to nginx!</title></html>"), False, False),
        (classify_http(200, "<html><title>Welcome to nginx!</title></html>"), True, True),
        # A 500 or a timeout says nothing of the URL: the server may be the right one, busy.
        (classify_http(500, "<title>500 Internal Server Error</title>"), False, True),
        (classify_trouble(Trouble.TIMEOUT, "no answer in time"), False, True),
        (classify_trouble(Trouble.REFUSED, "cannot connect"), True, False),
    ],
)
def test_a_page_from_a_url_never_reached_is_no_unknown_outcome(
    outcome: Outcome, reached: bool, unknown: bool
) -> None:
    assert maybe_processed(outcome, reached=reached) is unknown
    after = row_result(
        ClaimedRow(1, 2, "name=a", attempts=0), outcome, RETRY, now_s=1000.0,
        rng=random.Random(1), reached=reached,
    )  # fmt: skip
    assert (after.state, after.unknown) == (RowState.PENDING, unknown)
