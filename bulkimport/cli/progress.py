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
    """A reading bar (bytes), then a sending bar (rows)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._tally = Tally()
        self._note = ""

    def start_reading(self, job_id: int, total_bytes: int, offset: int) -> None:
        self._bar = tqdm(
            total=total_bytes,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"job {job_id} reading",
            leave=False,
            dynamic_ncols=True,
        )

    def reading(self, offset: int, total_bytes: int, rows: int) -> None:
        if self._bar is not None:
            self._bar.update(offset - self._bar.n)
            self._bar.set_postfix_str(f"{rows:,} rows", refresh=False)

    def end_reading(self, rows: int) -> None:
        self._close()

    def start_sending(self, job_id: int, counts: Mapping[RowState, int]) -> None:
        self._tally.start_sending(job_id, counts)
        self._bar = tqdm(
            total=self._tally.total,
            initial=self._tally.base_terminal,
            unit="row",
            desc=f"job {job_id} sending",
            dynamic_ncols=True,
            smoothing=0.1,
        )

    def sending(self, counts: SendCounts) -> None:
        if self._bar is not None:
            self._bar.update(self._tally.settled(counts) - self._bar.n)
            text = f"rejected {counts.rejected} failed {counts.failed} retried {counts.retried}"
            if self._note:
                text += f"; {self._note}"
            self._bar.set_postfix_str(text, refresh=False)

    def note(self, text: str) -> None:
        self._note = text

    def end_sending(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def progress_for(*, bars: bool, interval_s: float) -> ProgressListener:
    """Log lines every ``interval_s``, and bars when a person watches."""
    logged = LoggedProgress(interval_s=interval_s)
    return AllOf([logged, Bars()]) if bars else logged
