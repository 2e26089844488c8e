"""``RefundLedger``: an attempt an outage cost is taken back once the outage is confirmed,
its result committed, and no later call of its row on its way (pure)."""

from __future__ import annotations

from bulkimport.send.refunds import RefundLedger


def test_troubles_before_an_answer_were_the_rows_own() -> None:
    ledger = RefundLedger()
    ledger.recorded(1, held=True)
    ledger.recorded(2, held=True)
    ledger.answered()
    assert ledger.confirm() == []
    assert ledger.committed([1, 2]) == []


def test_the_streak_is_taken_back_once_committed_once_per_attempt() -> None:
    ledger = RefundLedger()
    ledger.recorded(1, held=True)
    ledger.recorded(2, held=True)
    ledger.recorded(2, held=True)  # sent again, and met the outage again
    ledger.recorded(3, held=False)  # a trouble not held against it: nothing to take back
    ledger.committed([1])
    # Row 2's results are not committed yet: it follows its commit.
    assert ledger.confirm() == [1]
    assert ledger.committed([2, 3]) == [2, 2]
    assert ledger.committed([1, 2]) == []


def test_a_row_sent_again_before_the_confirmation_waits_for_that_call() -> None:
    ledger = RefundLedger()
    ledger.recorded(1, held=True)
    ledger.committed([1])
    ledger.sending(1)  # sent again before a probe confirmed the outage
    assert ledger.confirm() == []
    assert ledger.committed([1]) == []  # an old commit: the call is still on its way
    ledger.recorded(1, held=False)  # answered since: the outage's attempt is still owed
    ledger.answered()
    assert ledger.committed([1]) == [1]
    assert ledger.committed([1]) == []
