"""Progress while reading and sending: tqdm bars at a terminal, periodic log lines elsewhere.

The bars write to stderr and only when a person is watching (stderr is a terminal and not
``--quiet``). Whatever the bars do, a ``progress`` event is logged every ``interval_s`` to the
``bulkimport.progress`` logger, which the command line sends to the ``--log`` file, and to
stderr when no bar shows it (unless quiet).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from tqdm import tqdm

from bulkimport.jobs.events import event
from bulkimport.send import SendCounts
from bulkimport.states import RowState

log = logging.getLogger("bulkimport.progress")

LOG_INTERVAL_S = 10.0


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


class Progress:
    """Shows the progress of one job (reading, then sending)."""

    def __init__(self, *, bars: bool, interval_s: float = LOG_INTERVAL_S) -> None:
        self._bars = bars
        self._interval_s = interval_s
        self._bar: Any = None
        self._last_log_s = 0.0
        self._started_s = 0.0
        self._base_terminal = 0
        self._total = 0
        self._job_id = 0

    # --- reading

    def start_reading(self, job_id: int, total_bytes: int, offset: int) -> None:
        self._job_id = job_id
        self._started_s = self._last_log_s = time.monotonic()
        if self._bars:
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
        if self._due():
            share = 100.0 * offset / total_bytes if total_bytes else 100.0
            log.info(
                "job %d: reading %.0f%% (%s rows)",
                self._job_id,
                share,
                f"{rows:,}",
                extra=event(
                    "progress",
                    job=self._job_id,
                    phase="reading",
                    bytes=offset,
                    total_bytes=total_bytes,
                    rows=rows,
                ),
            )

    def end_reading(self, rows: int) -> None:
        self._close()
        log.debug("job %d: read %d rows", self._job_id, rows)

    # --- sending

    def start_sending(self, job_id: int, counts: Mapping[RowState, int]) -> None:
        self._job_id = job_id
        self._total = sum(counts.values())
        self._base_terminal = sum(n for state, n in counts.items() if state.is_terminal)
        self._started_s = self._last_log_s = time.monotonic()
        if self._bars:
            self._bar = tqdm(
                total=self._total,
                initial=self._base_terminal,
                unit="row",
                desc=f"job {job_id} sending",
                dynamic_ncols=True,
                smoothing=0.1,
            )

    def sending(self, counts: SendCounts) -> None:
        finished = counts.settled
        if self._bar is not None:
            self._bar.update(self._base_terminal + finished - self._bar.n)
            self._bar.set_postfix_str(
                f"rejected {counts.rejected} failed {counts.failed} retried {counts.retried}",
                refresh=False,
            )
        if self._due():
            elapsed = time.monotonic() - self._started_s
            rate = _rate(finished, elapsed)
            left = self._total - self._base_terminal - finished
            eta_s = left / rate if rate > 0 else None
            log.info(
                "job %d: %s/%s rows, %.1f rows/s, ETA %s, rejected %d, failed %d, retried %d",
                self._job_id,
                f"{self._base_terminal + finished:,}",
                f"{self._total:,}",
                rate,
                "?" if eta_s is None else f"{eta_s:.0f}s",
                counts.rejected,
                counts.failed,
                counts.retried,
                extra=event(
                    "progress",
                    job=self._job_id,
                    phase="sending",
                    settled=self._base_terminal + finished,
                    total=self._total,
                    rate_per_s=round(rate, 2),
                    eta_s=None if eta_s is None else round(eta_s, 1),
                    sent=counts.sent,
                    done=counts.done,
                    duplicate=counts.duplicate,
                    rejected=counts.rejected,
                    failed=counts.failed,
                    retried=counts.retried,
                ),
            )

    def end_sending(self) -> None:
        self._close()

    # ---

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self._last_log_s >= self._interval_s:
            self._last_log_s = now
            return True
        return False

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
