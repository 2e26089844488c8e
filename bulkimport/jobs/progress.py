"""How a job tells the world how far it is: a listener interface, and two listeners.

- ``ProgressListener``: what the pipeline calls while reading and sending;
- ``LoggedProgress``: a ``progress`` event in the ``bulkimport.progress`` logger every
  ``interval_s`` (the command line sends it to ``--log``; a library user's logging config
  decides);
- ``EventProgress``: the same facts as ``ProgressEvent`` values, for a library user's
  callback (``Client(on_progress=...)``). Never a terminal bar: that is the command line's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from bulkimport.jobs.events import event
from bulkimport.send import SendCounts
from bulkimport.states import RowState

log = logging.getLogger("bulkimport.progress")

LOG_INTERVAL_S = 10.0


class ProgressListener(Protocol):
    """Hears a job's progress: reading (bytes of the file) and sending (rows settled); one
    after the other, or both at once when ``run`` sends while it reads (the rows to send
    then grow with every ``reading`` call)."""

    def start_reading(self, job_id: int, total_bytes: int, offset: int) -> None: ...

    def reading(self, offset: int, total_bytes: int, rows: int) -> None: ...

    def end_reading(self, rows: int) -> None: ...

    def start_sending(self, job_id: int, counts: Mapping[RowState, int]) -> None: ...

    def sending(self, counts: SendCounts) -> None: ...

    def note(self, text: str) -> None:
        """What sending says about the server now ("server unreachable since 02:14, next
        try in 20 s", the pace); "" when there is nothing to say any more."""
        ...

    def end_sending(self) -> None: ...


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
    note: str = ""  # what sending says about the server now (an outage, the pace)


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


def _outcomes(counts: SendCounts) -> dict[str, int]:
    return {
        "done": counts.done,
        "duplicate": counts.duplicate,
        "rejected": counts.rejected,
        "failed": counts.failed,
        "retried": counts.retried,
        "unknown": counts.maybe_imported,
    }


class LoggedProgress:
    """A ``progress`` log event every ``interval_s`` while reading and sending."""

    def __init__(self, *, interval_s: float = LOG_INTERVAL_S) -> None:
        self._interval_s = interval_s
        self._last_log_s = {Phase.READING: 0.0, Phase.SENDING: 0.0}
        self._tally = Tally()
        self._note = ""  # the pace, or the outage, as the progress line shows it

    def start_reading(self, job_id: int, total_bytes: int, offset: int) -> None:
        self._tally.job_id = job_id
        self._last_log_s[Phase.READING] = time.monotonic()

    def reading(self, offset: int, total_bytes: int, rows: int) -> None:
        self._tally.grow(rows)
        if not self._due(Phase.READING):
            return
        job_id = self._tally.job_id
        # Rows given by a program have no size to reach: their count is the news.
        share = f"{100.0 * offset / total_bytes:.0f}% " if total_bytes else ""
        log.info(
            "job %d: reading %s(%s rows)",
            job_id,
            share,
            f"{rows:,}",
            extra=event(
                "progress",
                job=job_id,
                phase="reading",
                bytes=offset,
                total_bytes=total_bytes,
                rows=rows,
            ),
        )

    def end_reading(self, rows: int) -> None:
        log.debug("job %d: read %d rows", self._tally.job_id, rows)

    def start_sending(self, job_id: int, counts: Mapping[RowState, int]) -> None:
        self._tally.start_sending(job_id, counts)
        self._last_log_s[Phase.SENDING] = time.monotonic()

    def sending(self, counts: SendCounts) -> None:
        if not self._due(Phase.SENDING):
            return
        tally = self._tally
        settled = tally.settled(counts)
        rate = tally.rate_per_s(counts)
        left = tally.total - settled
        eta_s = left / rate if rate > 0 else None
        fields: dict[str, Any] = {
            "job": tally.job_id,
            "phase": "sending",
            "settled": settled,
            "total": tally.total,
            "rate_per_s": round(rate, 2),
            "eta_s": None if eta_s is None else round(eta_s, 1),
            "sent": counts.sent,
            **_outcomes(counts),
        }
        if self._note:
            fields["note"] = self._note
        log.info(
            "job %d: %s/%s rows, %.1f rows/s, ETA %s, rejected %d, failed %d, retried %d%s",
            tally.job_id,
            f"{settled:,}",
            f"{tally.total:,}",
            rate,
            "?" if eta_s is None else f"{eta_s:.0f}s",
            counts.rejected,
            counts.failed,
            counts.retried,
            f"; {self._note}" if self._note else "",
            extra=event("progress", **fields),
        )

    def note(self, text: str) -> None:
        # The watcher logs an outage's start and end itself; the progress lines between
        # carry the pace (--rate auto) and the outage, as the terminal's line does.
        self._note = text

    def end_sending(self) -> None:
        pass

    def _due(self, phase: Phase) -> bool:
        now = time.monotonic()
        if now - self._last_log_s[phase] >= self._interval_s:
            self._last_log_s[phase] = now
            return True
        return False


class EventProgress:
    """Turns the listener's calls into ``ProgressEvent`` values for ``callback``."""

    def __init__(self, callback: Callable[[ProgressEvent], None]) -> None:
        self._callback = callback
        self._tally = Tally()
        self._bytes = (0, 0)
        self._last = SendCounts()
        self._note = ""

    def start_reading(self, job_id: int, total_bytes: int, offset: int) -> None:
        self._tally.job_id = job_id
        self._bytes = (offset, total_bytes)
        self._callback(ProgressEvent(job_id, Phase.READING, offset, total_bytes))

    def reading(self, offset: int, total_bytes: int, rows: int) -> None:
        self._tally.grow(rows)
        self._bytes = (offset, total_bytes)
        self._callback(ProgressEvent(self._tally.job_id, Phase.READING, offset, total_bytes, rows))

    def end_reading(self, rows: int) -> None:
        offset, total = self._bytes
        self._callback(
            ProgressEvent(self._tally.job_id, Phase.READING, offset, total, rows, finished=True)
        )

    def start_sending(self, job_id: int, counts: Mapping[RowState, int]) -> None:
        self._tally.start_sending(job_id, counts)
        self._callback(self._sending(SendCounts()))

    def sending(self, counts: SendCounts) -> None:
        self._last = counts
        self._callback(self._sending(counts))

    def note(self, text: str) -> None:
        self._note = text
        self._callback(self._sending(self._last))

    def end_sending(self) -> None:
        self._callback(self._sending(self._last, finished=True))

    def _sending(self, counts: SendCounts, *, finished: bool = False) -> ProgressEvent:
        tally = self._tally
        return ProgressEvent(
            tally.job_id,
            Phase.SENDING,
            settled=tally.settled(counts),
            total=tally.total,
            sent=counts.sent,
            outcomes=_outcomes(counts),
            finished=finished,
            note=self._note,
        )


class AllOf:
    """Several listeners as one."""

    def __init__(self, listeners: Sequence[ProgressListener]) -> None:
        self._listeners = tuple(listeners)

    def start_reading(self, job_id: int, total_bytes: int, offset: int) -> None:
        for listener in self._listeners:
            listener.start_reading(job_id, total_bytes, offset)

    def reading(self, offset: int, total_bytes: int, rows: int) -> None:
        for listener in self._listeners:
            listener.reading(offset, total_bytes, rows)

    def end_reading(self, rows: int) -> None:
        for listener in self._listeners:
            listener.end_reading(rows)

    def start_sending(self, job_id: int, counts: Mapping[RowState, int]) -> None:
        for listener in self._listeners:
            listener.start_sending(job_id, counts)

    def sending(self, counts: SendCounts) -> None:
        for listener in self._listeners:
            listener.sending(counts)

    def note(self, text: str) -> None:
        for listener in self._listeners:
            listener.note(text)

    def end_sending(self) -> None:
        for listener in self._listeners:
            listener.end_sending()
