"""``RefundLedger``: the attempts an outage may have cost, until they are taken back.

A trouble is held against its row (an attempt counted) until the job's health knows better:
troubles that turn out to have shown an outage (a probe found the server down) were the
server's, not their rows', and their attempts are taken back (``SendQueue.uncount``). One
rule decides when:

    an attempt is taken back once the outage is confirmed, its result is committed, and no
    later call of its row is on its way

since storage takes back a row's last recorded attempt, never one in flight. A row of the
streak sent again before the confirmation waits for that call's result to be committed;
an answer before the confirmation ends the streak (those troubles were the rows' own).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    streak: int = 0  # its attempts since the last answer that met a trouble, held for now
    owed: int = 0  # its attempts that met the confirmed outage: to be taken back
    sending: bool = False  # a call of it is on its way
    uncommitted: bool = False  # its latest result is not committed yet


class RefundLedger:
    """Rows of the current streak of troubles, and rows owed an attempt; see the module."""

    def __init__(self) -> None:
        # Empty but in an outage or a run of troubles: callers on the hot path look first.
        self.rows: dict[int, _Entry] = {}

    def sending(self, row_id: int) -> None:
        """A call of ``row_id`` is on its way."""
        entry = self.rows.get(row_id)
        if entry is not None:
            entry.sending = True

    def recorded(self, row_id: int, *, held: bool) -> None:
        """The result of a call of ``row_id`` awaits its commit; ``held``: a trouble counted
        against the row, which joins the streak."""
        entry = self.rows.get(row_id)
        if entry is None:
            if not held:
                return
            entry = self.rows[row_id] = _Entry()
        entry.sending = False
        entry.uncommitted = True
        entry.streak += held

    def answered(self) -> None:
        """An answer came after the troubles: they were their rows' own."""
        if not self.rows:
            return
        for row_id, entry in list(self.rows.items()):
            entry.streak = 0
            if not entry.owed:
                del self.rows[row_id]

    def confirm(self) -> list[int]:
        """The outage is confirmed: the streak's attempts are owed. Return the rows whose
        attempts can be taken back now, once per attempt (the others follow their
        commits)."""
        for entry in self.rows.values():
            entry.streak, entry.owed = 0, entry.owed + entry.streak
        return self._due()

    def committed(self, row_ids: Iterable[int]) -> list[int]:
        """Results of these rows are committed; return the rows whose attempts can be
        taken back now, once per attempt."""
        if not self.rows:
            return []
        rows = self.rows
        for row_id in row_ids:
            entry = rows.get(row_id)
            if entry is not None:
                entry.uncommitted = False
        return self._due()

    def _due(self) -> list[int]:
        """The owed attempts the rule lets go now; their rows owe nothing more."""
        due: list[int] = []
        for row_id, entry in list(self.rows.items()):
            if entry.owed and not entry.sending and not entry.uncommitted:
                due += [row_id] * entry.owed
                entry.owed = 0
                if not entry.streak:
                    del self.rows[row_id]
        return due
