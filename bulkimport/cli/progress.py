"""Progress bars for a person at a terminal (tqdm on stderr): the command line's listener.

Only shown when stderr is a terminal and not ``--quiet``; the periodic log lines of
``bulkimport.jobs.progress.LoggedProgress`` go on beside them (to ``--log``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tqdm import tqdm

from bulkimport.jobs.progress import AllOf, LoggedProgress, ProgressListener, Tally
from bulkimport.send import SendCounts
from bulkimport.states import RowState


class Bars:
    """A reading bar (bytes) and a sending bar (rows): one after the other, or one above the
    other while ``run`` sends what it reads (the sending bar's total grows meanwhile)."""

    def __init__(self) -> None:
        self._read_bar: Any = None
        self._send_bar: Any = None
        self._tally = Tally()
        self._note = ""

    def start_reading(self, job_id: int, total_bytes: int, offset: int) -> None:
        self._read_bar = tqdm(
            total=total_bytes,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"job {job_id} reading",
            leave=False,
            dynamic_ncols=True,
            position=0,
        )

    def reading(self, offset: int, total_bytes: int, rows: int) -> None:
        self._tally.grow(rows)
        if self._read_bar is not None:
            self._read_bar.update(offset - self._read_bar.n)
            self._read_bar.set_postfix_str(f"{rows:,} rows", refresh=False)
        if self._send_bar is not None and self._send_bar.total != self._tally.total:
            self._send_bar.total = self._tally.total
            self._send_bar.refresh()

    def end_reading(self, rows: int) -> None:
        if self._read_bar is not None:
            self._read_bar.close()
            self._read_bar = None

    def start_sending(self, job_id: int, counts: Mapping[RowState, int]) -> None:
        self._tally.start_sending(job_id, counts)
        self._send_bar = tqdm(
            total=self._tally.total,
            initial=self._tally.base_terminal,
            unit="row",
            desc=f"job {job_id} sending",
            dynamic_ncols=True,
            smoothing=0.1,
            position=1 if self._read_bar is not None else 0,
        )

    def sending(self, counts: SendCounts) -> None:
        bar = self._send_bar
        if bar is not None:
            bar.update(self._tally.settled(counts) - bar.n)
            text = f"rejected {counts.rejected} failed {counts.failed} retried {counts.retried}"
            if self._note:
                text += f"; {self._note}"
            bar.set_postfix_str(text, refresh=False)

    def note(self, text: str) -> None:
        self._note = text

    def end_sending(self) -> None:
        if self._send_bar is not None:
            self._send_bar.close()
            self._send_bar = None


def progress_for(*, bars: bool, interval_s: float) -> ProgressListener:
    """Log lines every ``interval_s``, and bars when a person watches."""
    logged = LoggedProgress(interval_s=interval_s)
    return AllOf([logged, Bars()]) if bars else logged
