"""How far a job is, for a library user's ``on_progress`` callback: ``ProgressEvent``.

The pipeline emits ``ReadProgress`` and ``SendProgress`` (``bulkimport.events``) with the
other typed events; ``EventProgress`` turns those two into ``ProgressEvent`` values, the
older and narrower view that ``Client(on_progress=...)`` gives. ``Tally`` is the
arithmetic every listener needs (the command line's bars and log lines too).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from bulkimport.events import Event, ReadProgress, SendProgress, Step
from bulkimport.send import SendCounts
from bulkimport.states import RowState


class Phase(StrEnum):
    READING = "reading"
    SENDING = "sending"


@dataclass(frozen=True)
class ProgressEvent:
    """How far a job is, at one moment.

    Reading: ``bytes_read`` of ``total_bytes``, ``rows`` stored so far (rows given by a
    program: ``bytes_read`` counts the rows taken, ``total_bytes`` is 0, their end
    unknown). Sending: ``settled``
    of ``total`` rows are in a final state, ``sent`` calls made by this run, and the run's
    counts of outcomes (``done``, ``duplicate``, ``rejected``, ``failed``, ``retried``,
    ``unknown``: rows that may be on the server).
    ``finished`` is true on the last event of a phase.
    """

    job: int
    phase: Phase
    bytes_read: int = 0
    total_bytes: int = 0
    rows: int = 0
    settled: int = 0
    total: int = 0
    sent: int = 0
    outcomes: Mapping[str, int] | None = None
    finished: bool = False
    #: Always "": what sending learns about the server (an outage, the pace) comes as its
    #: own typed event to ``Client(on_event=...)`` (``OutageBegan``, ``PaceChanged``).
    note: str = ""


class Tally:
    """The arithmetic every listener needs: where a job started, and how far it is."""

    def __init__(self) -> None:
        self.job_id = 0
        self.total = 0
        self.base_terminal = 0
        self.started_s = time.monotonic()

    def start_sending(self, job_id: int, counts: Mapping[RowState, int]) -> None:
        self.job_id = job_id
        self.total = sum(counts.values())
        self.base_terminal = sum(n for state, n in counts.items() if state.is_terminal)
        self.started_s = time.monotonic()

    def grow(self, rows: int) -> None:
        """Reading beside sending: the job has ``rows`` rows now."""
        self.total = max(self.total, rows)

    def settled(self, counts: SendCounts) -> int:
        return self.base_terminal + counts.settled

    def rate_per_s(self, counts: SendCounts) -> float:
        elapsed = time.monotonic() - self.started_s
        return counts.settled / elapsed if elapsed > 0 else 0.0


def outcomes(counts: SendCounts) -> dict[str, int]:
    """The run's counts of outcomes, by the names ``ProgressEvent.outcomes`` uses."""
    return {
        "done": counts.done,
        "duplicate": counts.duplicate,
        "rejected": counts.rejected,
        "failed": counts.failed,
        "retried": counts.retried,
        "unknown": counts.maybe_imported,
    }


class EventProgress:
    """Turns ``ReadProgress`` and ``SendProgress`` events into ``ProgressEvent`` values for
    ``callback``; other events pass by."""

    def __init__(self, callback: Callable[[ProgressEvent], None]) -> None:
        self._callback = callback
        self._tally = Tally()

    def __call__(self, event: Event) -> None:
        if isinstance(event, ReadProgress):
            self._tally.job_id = event.job
            if event.step is not Step.START:
                self._tally.grow(event.rows)
            rows = 0 if event.step is Step.START else event.rows
            self._callback(
                ProgressEvent(
                    event.job,
                    Phase.READING,
                    event.bytes_read,
                    event.total_bytes,
                    rows,
                    finished=event.step is Step.END,
                )
            )
        elif isinstance(event, SendProgress):
            if event.step is Step.START:
                self._tally.start_sending(event.job, event.before)
            tally = self._tally
            self._callback(
                ProgressEvent(
                    tally.job_id,
                    Phase.SENDING,
                    settled=tally.settled(event.counts),
                    total=tally.total,
                    sent=event.counts.sent,
                    outcomes=outcomes(event.counts),
                    finished=event.step is Step.END,
                )
            )
