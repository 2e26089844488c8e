"""How far a job is, for the command line: tqdm bars on stderr for a person, and a
``progress`` line in the ``bulkimport.progress`` logger every few seconds for ``--log``.

Both are made from the job's typed events (``ReadProgress``, ``SendProgress``); what
sending learns about the server (an outage, the pace) shows beside the counts, in the words
of ``bulkimport.messages.note``. Bars are only shown when stderr is a terminal and not
``--quiet``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from bulkimport.events import Emit, Event, ReadProgress, SendProgress, Step
from bulkimport.jobs.events import event as log_fields
from bulkimport.jobs.progress import Phase, Tally, outcomes
from bulkimport.messages import note

log = logging.getLogger("bulkimport.progress")

LOG_INTERVAL_S = 10.0


class Bars:
    """A reading bar (bytes) and a sending bar (rows): one after the other, or one above the
    other while ``run`` sends what it reads (the sending bar's total grows meanwhile)."""

    def __init__(self) -> None:
        self._read_bar: Any = None
        self._send_bar: Any = None
        self._tally = Tally()
        self._note = ""

    def __call__(self, event: Event) -> None:
        text = note(event)
        if text is not None:
            self._note = text
        if isinstance(event, ReadProgress):
            self._reading(event)
        elif isinstance(event, SendProgress):
            self._sending(event)

    def _reading(self, event: ReadProgress) -> None:
        if event.step is Step.START:
            self._read_bar = tqdm(
                total=event.total_bytes,
                initial=event.bytes_read,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"job {event.job} reading",
                leave=False,
                dynamic_ncols=True,
                position=0,
            )
            return
        if event.step is Step.END:
            if self._read_bar is not None:
                self._read_bar.close()
                self._read_bar = None
            return
        self._tally.grow(event.rows)
        if self._read_bar is not None:
            self._read_bar.update(event.bytes_read - self._read_bar.n)
            self._read_bar.set_postfix_str(f"{event.rows:,} rows", refresh=False)
        if self._send_bar is not None and self._send_bar.total != self._tally.total:
            self._send_bar.total = self._tally.total
            self._send_bar.refresh()

    def _sending(self, event: SendProgress) -> None:
        if event.step is Step.START:
            self._tally.start_sending(event.job, event.before)
            self._send_bar = tqdm(
                total=self._tally.total,
                initial=self._tally.base_terminal,
                unit="row",
                desc=f"job {event.job} sending",
                dynamic_ncols=True,
                smoothing=0.1,
                position=1 if self._read_bar is not None else 0,
            )
            return
        bar = self._send_bar
        if event.step is Step.END:
            if bar is not None:
                bar.close()
                self._send_bar = None
            return
        if bar is not None:
            counts = event.counts
            bar.update(self._tally.settled(counts) - bar.n)
            text = f"rejected {counts.rejected} failed {counts.failed} retried {counts.retried}"
            if self._note:
                text += f"; {self._note}"
            bar.set_postfix_str(text, refresh=False)


class LoggedProgress:
    """A ``progress`` log event every ``interval_s`` while reading and sending."""

    def __init__(self, *, interval_s: float = LOG_INTERVAL_S) -> None:
        self._interval_s = interval_s
        self._last_log_s = {Phase.READING: 0.0, Phase.SENDING: 0.0}
        self._tally = Tally()
        self._note = ""  # the pace, or the outage, as the progress line shows it

    def __call__(self, event: Event) -> None:
        text = note(event)
        if text is not None:
            self._note = text
        if isinstance(event, ReadProgress):
            if event.step is Step.START:
                self._tally.job_id = event.job
                self._last_log_s[Phase.READING] = time.monotonic()
            elif event.step is Step.GOING:
                self._reading(event)
        elif isinstance(event, SendProgress):
            if event.step is Step.START:
                self._tally.start_sending(event.job, event.before)
                self._last_log_s[Phase.SENDING] = time.monotonic()
            elif event.step is Step.GOING:
                self._sending(event)

    def _reading(self, event: ReadProgress) -> None:
        self._tally.grow(event.rows)
        if not self._due(Phase.READING):
            return
        offset, total_bytes, rows = event.bytes_read, event.total_bytes, event.rows
        # Rows given by a program have no size to reach: their count is the news.
        share = f"{100.0 * offset / total_bytes:.0f}% " if total_bytes else ""
        log.info(
            "job %d: reading %s(%s rows)",
            event.job,
            share,
            f"{rows:,}",
            extra=log_fields(
                "progress",
                job=event.job,
                phase="reading",
                bytes=offset,
                total_bytes=total_bytes,
                rows=rows,
            ),
        )

    def _sending(self, event: SendProgress) -> None:
        if not self._due(Phase.SENDING):
            return
        tally, counts = self._tally, event.counts
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
            **outcomes(counts),
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
            extra=log_fields("progress", **fields),
        )

    def _due(self, phase: Phase) -> bool:
        now = time.monotonic()
        if now - self._last_log_s[phase] >= self._interval_s:
            self._last_log_s[phase] = now
            return True
        return False


def all_of(listeners: Sequence[Emit]) -> Emit:
    """Several listeners as one."""

    def emit(event: Event) -> None:
        for listener in listeners:
            listener(event)

    return emit


def progress_for(*, bars: bool, interval_s: float) -> Emit:
    """Log lines every ``interval_s``, and bars when a person watches."""
    logged = LoggedProgress(interval_s=interval_s)
    return all_of([logged, Bars()]) if bars else logged
