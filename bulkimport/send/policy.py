"""What an answer means for the row that was sent: its next state, as a pure function of the
outcome, the row's attempts so far, whether the job-level view spared it, and the retry
settings. No I/O, no clock of its own.

    DONE, REJECTED   → that terminal state
    DUPLICATE        → duplicate; but done when an earlier attempt's outcome is unknown: the
                       server holds the record because this job put it there (or an
                       earlier job whose row of the same record ended unknown)
    FATAL            → pending again, the attempt not counted: the job's settings are wrong,
                       not the row (the dispatcher stops the job)
    TRANSIENT        → pending again at now + backoff, or FAILED once the row used its
                       attempts (UNKNOWN if any of its calls may have been processed).
                       ``spare`` (an outage, throttling: the server's trouble, not the
                       row's): the attempt is not counted and the row never fails for it
    maybe processed  → (a timeout, a dropped connection, a proxy's 502/504) the outcome is
                       unknown: counted as such, and sent again; when a resend would change
                       the customer again (``--dupway update``...), ``max_unknown`` such
                       calls at most, then UNKNOWN: it may be on the server

A call that may have been processed is an unknown outcome; a definite answer (done, a
duplicate, a rejection) wins over it. A row whose calls ran out with an unknown outcome among
them ends ``unknown``, never ``failed``: nothing after that call says it was not imported.
But a page (or another trouble that shows a wrong URL) from a URL that never gave an Import
answer is no unknown outcome: another server sent it, which imported nothing, and the mark
would make a later duplicate answer count as this job's import (``maybe_processed``).

The backoff (``RetryPolicy``, a setting) is exponential with full jitter.
"""

from __future__ import annotations

import random

from bulkimport.protocol import Outcome, OutcomeKind
from bulkimport.rows import ClaimedRow, RowResult
from bulkimport.send.health import WRONG_URL_EVIDENCE
from bulkimport.settings import RetryPolicy
from bulkimport.states import RowState

#: Calls of one row whose outcome is unknown, at most, when each resend rewrites the customer.
MAX_UNKNOWN = 3

_TERMINAL = {
    OutcomeKind.DONE: RowState.DONE,
    OutcomeKind.DUPLICATE: RowState.DUPLICATE,
    OutcomeKind.REJECTED: RowState.REJECTED,
}


def maybe_processed(outcome: Outcome, *, reached: bool) -> bool:
    """Whether the call that ended with ``outcome`` may have been processed, its outcome
    unknown; ``reached``: its URL has given an Import answer (in this run or before). A
    URL that never did and shows itself wrong (a page of another server) processed
    nothing."""
    if not outcome.maybe_processed:
        return False
    return reached or outcome.trouble not in WRONG_URL_EVIDENCE


def row_result(
    row: ClaimedRow,
    outcome: Outcome,
    retry: RetryPolicy,
    *,
    now_s: float,
    rng: random.Random,
    spare: bool = False,
    max_unknown: int | None = None,
    reached: bool = True,
) -> RowResult:
    """The result to record for ``row`` after an attempt that ended with ``outcome``.

    ``now_s`` is wall-clock Unix seconds (a retry's due time is stored and survives a
    restart); ``reached``: the URL has given an Import answer (see ``maybe_processed``).
    """
    kind = outcome.kind
    if kind is OutcomeKind.DUPLICATE and row.unknowns:
        return RowResult(
            row.id,
            RowState.DONE,
            outcome.code,
            "imported by an earlier attempt, whose answer was lost; "
            f"the server now says: {outcome.message}",
        )
    state = _TERMINAL.get(kind)
    if state is not None:
        return RowResult(row.id, state, outcome.code, outcome.message)
    if kind is OutcomeKind.FATAL:
        return RowResult(row.id, RowState.PENDING, outcome.code, outcome.message, None, False)
    unknown = maybe_processed(outcome, reached=reached)
    unknowns = row.unknowns + unknown
    attempts = row.attempts + 1
    if spare:
        # Due again at once (in an outage the dispatcher holds sending; throttling slows the
        # pace of every call), but a row that may be on the server already waits its
        # backoff, so that probes take fresh rows.
        delay = retry.backoff_s(attempts, rng) if unknown else 0.0
        if outcome.retry_after_s is not None:
            delay = max(delay, outcome.retry_after_s)
        return RowResult(
            row.id, RowState.PENDING, outcome.code, outcome.message, now_s + delay, False, unknown
        )
    if unknown and max_unknown is not None and unknowns >= max_unknown:
        message = (
            f"no answer to {unknowns} calls ({outcome.message}): it may be on the server; "
            "check the server before sending it again"
        )
        return RowResult(row.id, RowState.UNKNOWN, outcome.code, message, unknown=True)
    if attempts >= retry.max_attempts:
        if not unknowns:
            return RowResult(row.id, RowState.FAILED, outcome.code, outcome.message)
        # A call may have imported it, and no answer since said otherwise: a call that was
        # not processed (a 503, a BackMsg_85) tells nothing of an earlier one that may have
        # been.
        message = (
            f"{outcome.message}; {unknowns} of its {attempts} calls got no answer and may "
            "have imported it: check the server before sending it again"
        )
        return RowResult(row.id, RowState.UNKNOWN, outcome.code, message, unknown=unknown)
    delay = retry.backoff_s(attempts, rng)
    if outcome.retry_after_s is not None:
        delay = max(delay, outcome.retry_after_s)
    return RowResult(
        row.id, RowState.PENDING, outcome.code, outcome.message, now_s + delay, True, unknown
    )
