"""What a job holds now: ``JobSummary``, the value every command and library call gives back.

A summary knows the exit code its state calls for (``exit_code``) and can raise the error
for a job that did not finish (``raise_for_state``), as an HTTP client raises for a status.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bulkimport.errors import (
    ExitCode,
    Interrupted,
    ServerRefused,
    ServerUnavailable,
    WindowClosed,
)
from bulkimport.rows import TargetRef
from bulkimport.states import JobState, RowState, StopCause
from bulkimport.storage import Job, Storage

#: How long after its runner last said how fast it goes a running job's rate is believed.
RATE_FRESH_S = 15.0


@dataclass(frozen=True)
class JobSummary:
    """A job's state, its rows per state and how it last stopped.

    ``counts`` is keyed by ``RowState`` (a ``str``: ``counts["done"]`` works too).
    ``report`` is the failed-rows report written for it, if any.
    """

    job: int
    state: JobState
    file: str
    target: TargetRef
    total: int
    counts: dict[RowState, int]
    resent_unknown: int
    message: str | None
    report: str | None = None
    last_errors: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0
    rate_per_s: float | None = None  # while running: rows settled per second, lately
    stop_cause: StopCause | None = None  # why it stopped before it finished
    outage_since: float | None = None  # while running: the server has not answered since
    next_try_at: float | None = None  # ...and the next probe goes then (Unix seconds)
    window_opens_at: float | None = None  # while running: outside the send window until then
    pace_per_s: float | None = None  # while running: the pace sending holds
    latency_s: float | None = None  # ...and the latency it sees

    @property
    def problems(self) -> int:
        """Rows that need a person: rejected, failed or invalid."""
        return sum(n for state, n in self.counts.items() if state.is_problem)

    @property
    def eta_s(self) -> float | None:
        """Seconds until every row is settled at the current rate (``None``: not sending)."""
        if not self.rate_per_s:
            return None
        unsettled = sum(n for state, n in self.counts.items() if not state.is_terminal)
        return unsettled / self.rate_per_s

    @property
    def exit_code(self) -> ExitCode:
        """The command line's exit code for a job in this state (README, "Exit codes")."""
        if self.state is JobState.STOPPED:
            return ExitCode.SERVER_REFUSED
        if self.state is JobState.INTERRUPTED:
            if self.stop_cause in (StopCause.OUTAGE, StopCause.WINDOW):
                return ExitCode.TRY_LATER
            return ExitCode.INTERRUPTED
        if self.state is JobState.FINISHED and self.problems:
            return ExitCode.ROWS_FAILED
        return ExitCode.OK

    def raise_for_state(self) -> JobSummary:
        """``ServerRefused`` for a job the server stopped, ``ServerUnavailable`` for one that
        waited longer than ``--max-outage``, ``WindowClosed`` for one whose send window
        closed, ``Interrupted`` for one stopped by a signal (all
        resumable); the summary itself otherwise."""
        if self.state is JobState.STOPPED:
            raise ServerRefused(self.message or "the server refused the job", job=self.job)
        if self.state is JobState.INTERRUPTED:
            if self.stop_cause is StopCause.OUTAGE:
                raise ServerUnavailable(self.message or "the server did not answer", job=self.job)
            if self.stop_cause is StopCause.WINDOW:
                raise WindowClosed(self.message or "the send window closed", job=self.job)
            raise Interrupted(self.message or "interrupted", job=self.job)
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "state": self.state.value,
            "file": self.file,
            "target": self.target.key,
            "url": self.target.url,
            "org": self.target.org,
            "campaign": self.target.campaign,
            "total": self.total,
            "counts": {state.value: self.counts.get(state, 0) for state in RowState},
            "resent_unknown": self.resent_unknown,
            "message": self.message,
            "report": self.report,
            "last_errors": self.last_errors,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "rate_per_s": self.rate_per_s,
            "eta_s": self.eta_s,
            "stop_cause": self.stop_cause.value if self.stop_cause is not None else None,
            "outage_since": self.outage_since,
            "next_try_at": self.next_try_at,
            "window_opens_at": self.window_opens_at,
            "pace_per_s": self.pace_per_s,
            "latency_s": self.latency_s,
        }


async def summarize(storage: Storage, job_id: int, *, report: str | None = None) -> JobSummary:
    """The summary of ``job_id`` as storage holds it now."""
    job = await storage.jobs.get(job_id)
    counts = await storage.reports.counts(job_id)
    errors = [
        {
            "line": row.line,
            "state": row.state.value,
            "code": row.last_code,
            "message": row.last_message,
        }
        for row in await storage.reports.last_errors(job_id)
    ]
    return JobSummary(
        job=job.id,
        state=job.state,
        file=job.file.path,
        target=job.target,
        total=sum(counts.values()),
        counts=counts,
        resent_unknown=job.resent_unknown,
        message=job.message,
        report=report,
        last_errors=errors,
        created_at=job.created_at,
        updated_at=job.updated_at,
        rate_per_s=current_rate(job),
        stop_cause=job.stop_cause,
        outage_since=job.outage_since if job.state is JobState.RUNNING else None,
        next_try_at=job.next_try_at if job.state is JobState.RUNNING else None,
        window_opens_at=job.window_opens_at if job.state is JobState.RUNNING else None,
        pace_per_s=job.pace_per_s if current_rate(job) is not None else None,
        latency_s=job.latency_s if current_rate(job) is not None else None,
    )


def current_rate(job: Job, *, now_s: float | None = None) -> float | None:
    """The runner's last measured rate, if the job is running and the figure is fresh (a
    stale one means the runner died: no rate, no ETA)."""
    if job.state is not JobState.RUNNING or job.send_rate_at is None:
        return None
    now = time.time() if now_s is None else now_s
    if now - job.send_rate_at > RATE_FRESH_S:
        return None
    return job.send_rate_per_s
