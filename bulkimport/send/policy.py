"""What an answer means for the row that was sent: its next state, as a pure function of the
outcome, the row's attempts so far and the retry settings. No I/O, no clock of its own.

    DONE, DUPLICATE, REJECTED  → that terminal state
    FATAL                      → pending again, the attempt not counted: the job's settings
                                 are wrong, not the row (the dispatcher stops the job)
    TRANSIENT                  → pending again at now + backoff, or FAILED once the row has
                                 used its attempts

The backoff (``RetryPolicy``, a setting) is exponential with full jitter.
"""

from __future__ import annotations

import random

from bulkimport.protocol import Outcome, OutcomeKind
from bulkimport.rows import ClaimedRow, RowResult
from bulkimport.settings import RetryPolicy
from bulkimport.states import RowState

_TERMINAL = {
    OutcomeKind.DONE: RowState.DONE,
    OutcomeKind.DUPLICATE: RowState.DUPLICATE,
    OutcomeKind.REJECTED: RowState.REJECTED,
}


def row_result(
    row: ClaimedRow, outcome: Outcome, retry: RetryPolicy, *, now_s: float, rng: random.Random
) -> RowResult:
    """The result to record for ``row`` after an attempt that ended with ``outcome``.

    ``now_s`` is wall-clock Unix seconds (a retry's due time is stored and survives a
    restart).
    """
    kind = outcome.kind
    state = _TERMINAL.get(kind)
    if state is not None:
        return RowResult(row.id, state, outcome.code, outcome.message)
    if kind is OutcomeKind.FATAL:
        return RowResult(row.id, RowState.PENDING, outcome.code, outcome.message, None, False)
    attempts = row.attempts + 1
    if attempts >= retry.max_attempts:
        return RowResult(row.id, RowState.FAILED, outcome.code, outcome.message)
    delay = retry.backoff_s(attempts, rng)
    if outcome.retry_after_s is not None:
        delay = max(delay, outcome.retry_after_s)
    return RowResult(row.id, RowState.PENDING, outcome.code, outcome.message, now_s + delay)
