"""Moving rows between states, counted in the same statement.

Every change of a row's state is one statement built by ``counted_move``: a ``prior`` query
locks the rows to move and says what state each is in; the update moves them; a last common
table expression adds what moved to the job's counters (``job_counts``). All three run in
one statement, one snapshot, one commit: the counters are exact after every method,
whoever else moves rows at the same time (a row locked by another claimer is skipped, or
waited for and then seen as it is now).
"""

from __future__ import annotations


def counted_move(
    *, job: str, prior: str, changes: str, returning: str = "", before: str = ""
) -> str:
    """The head of a statement that moves rows and counts them, ending with the table
    ``moved`` (``id``, ``from_state``, ``to_state`` and ``returning``'s columns) for the
    caller's last ``SELECT``.

    ``prior``: a ``SELECT id, state ... FOR UPDATE`` (it may ``SKIP LOCKED``) of the rows
    to move, with any other columns ``changes`` needs (``prior.<column>``); ``changes``:
    the ``SET`` list of the update of ``rows r``; ``job``: the parameter holding the job id;
    ``before``: common table expressions ``prior`` may use.
    """
    extra = f", {returning}" if returning else ""
    return (
        f"WITH {before + ', ' if before else ''}prior AS ({prior}),"
        f" moved AS (UPDATE rows r SET {changes} FROM prior WHERE r.id = prior.id"
        f" RETURNING r.id, prior.state AS from_state, r.state AS to_state{extra}),"
        " tally AS (SELECT state, sum(k) AS k FROM (SELECT from_state AS state, -1 AS k"
        " FROM moved UNION ALL SELECT to_state, 1 FROM moved) AS each_move GROUP BY state),"
        # The job's counters are locked in the order of their states, whatever the plan
        # (which statistics change): two moves at once never take them in opposite orders.
        " ordered AS (SELECT c.state FROM job_counts c JOIN tally ON c.state = tally.state"
        f" WHERE c.job_id = {job} AND tally.k <> 0 ORDER BY c.state FOR UPDATE OF c),"
        " counted AS (UPDATE job_counts c SET n = c.n + tally.k FROM tally, ordered"
        f" WHERE c.job_id = {job} AND c.state = tally.state AND c.state = ordered.state)"
    )
