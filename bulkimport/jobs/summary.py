"""What a job holds now: ``JobSummary``, the value every command and library call gives back.

A summary knows the exit code its state calls for (``exit_code``) and can raise the error
for a job that did not finish (``raise_for_state``), as an HTTP client raises for a status.

It tells the truth about a job left ``running`` (or ``reading``) by a process that is gone
(``kill -9``, a power cut): the runner lock says whether anyone holds it, and a job nobody
runs is shown ``interrupted``, with when its runner was last seen.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bulkimport.errors import (
    ExitCode,
    Interrupted,
    ServerRefused,
    ServerUnavailable,
    WindowClosed,
)
from bulkimport.events import JobResumed, Opened, StopFacts
from bulkimport.messages import no_runner_text, plural, reading_notes, stop_text
from bulkimport.reader import InputKind
from bulkimport.rows import TargetRef
from bulkimport.settings import shown_target
from bulkimport.states import JobState, RepairKind, RowState, StopCause
from bulkimport.storage import Job, RunnerView, Storage

__all__ = ["JobSummary", "RowError", "current_rate", "plural", "resumed", "summarize"]

#: How long after its runner last said how fast it goes a running job's rate is believed.
RATE_FRESH_S = 15.0


@dataclass(frozen=True)
class RowError:
    """One of a job's last rows that did not load: its line, state, and the server's code
    and message (or why it is invalid)."""

    line: int
    state: str
    code: str | None
    message: str | None


@dataclass(frozen=True)
class JobSummary:
    """A job's state, its rows per state and how it last stopped.

    ``counts`` is keyed by ``RowState`` (a ``str``: ``counts["done"]`` works too).
    ``report`` is the failed-rows report written for it, if any. ``target`` is as shown: its
    URL through ``mask_url``. ``stop`` holds why it last stopped, as facts; ``message`` is
    the line made from them (or, for a job stopped by an older version, the line it kept).
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
    last_errors: list[RowError] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0
    rate_per_s: float | None = None  # while running: rows settled per second, lately
    stop_cause: StopCause | None = None  # why it stopped before it finished
    outage_since: float | None = None  # while running: the server has not answered since
    next_try_at: float | None = None  # ...and the next probe goes then (Unix seconds)
    window_opens_at: float | None = None  # while running: outside the send window until then
    pace_per_s: float | None = None  # while running: the pace sending holds
    latency_s: float | None = None  # ...and the latency it sees
    blank_lines: int = 0  # lines of the file that were no record: counted, not rows
    repairs: Mapping[RepairKind, int] = field(default_factory=dict)  # phone numbers, per kind
    #: For a job stored ``running`` or ``reading``: whether a runner holds it (None: no
    #: runner to ask about). False: it was interrupted and shows so (``state``).
    runner_alive: bool | None = None
    last_seen_at: float | None = None  # ...and, with no runner, when its runner was last seen
    stored_state: JobState | None = None  # the state as stored, when ``state`` differs
    superseded_by: int | None = None  # a newer job of the same file finished in its place
    #: Runs in a row that ended "try later" (exit 75), and since when (the first one ended).
    try_later_runs: int = 0
    try_later_since: float | None = None
    #: The list of its rows that may be on the server (``unknown``), if any: beside
    #: ``report``, never in it.
    unknown_report: str | None = None
    stop: StopFacts | None = None
    #: While it runs: the live runners sending it (several on a PostgreSQL database), each
    #: with its host, process and rate; ``rate_per_s`` is theirs together.
    runners: tuple[RunnerView, ...] = ()
    #: The budget of its server shared by every runner of the storage (``--server-rate``),
    #: in calls per second; None: it has none.
    server_rate_per_s: float | None = None

    @property
    def problems(self) -> int:
        """Rows that need a person: rejected, failed or invalid."""
        return sum(n for state, n in self.counts.items() if state.is_problem)

    @property
    def maybe_on_server(self) -> int:
        """Rows that may be on the server (``unknown``): to be checked there, not fixed."""
        return self.counts.get(RowState.UNKNOWN, 0)

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
            if self.stop_cause is not None and self.stop_cause.is_try_later:
                return ExitCode.TRY_LATER
            return ExitCode.INTERRUPTED
        # Rows that may be on the server are not loaded for sure: a nightly run that leaves
        # some must not end as if every row were (a person checks them on the server).
        if self.state is JobState.FINISHED and (self.problems or self.maybe_on_server):
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
            "maybe_on_server": self.maybe_on_server,
            "unknown_report": self.unknown_report,
            "last_errors": [asdict(error) for error in self.last_errors],
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
            "blank_lines": self.blank_lines,
            "repairs": {kind.value: self.repairs.get(kind, 0) for kind in RepairKind},
            "runner_alive": self.runner_alive,
            "last_seen_at": self.last_seen_at,
            "stored_state": (self.stored_state or self.state).value,
            "superseded_by": self.superseded_by,
            "try_later_runs": self.try_later_runs,
            "try_later_since": self.try_later_since,
            "runners": [
                {
                    "id": runner.id,
                    "host": runner.host,
                    "pid": runner.pid,
                    "started_at": runner.started_at,
                    "rate_per_s": runner.rate_per_s,
                }
                for runner in self.runners
            ],
            "server_rate_per_s": self.server_rate_per_s,
        }

    def reading_notes(self) -> list[str]:
        """What reading found besides rows: ``3 blank lines skipped``, ``30 phone numbers
        repaired (.0 removed)``."""
        return reading_notes(self.blank_lines, self.repairs)


async def summarize(storage: Storage, job_id: int, *, report: str | None = None) -> JobSummary:
    """The summary of ``job_id`` as storage holds it now (``report``: the report's path, if
    not the one kept with the job)."""
    job = await storage.jobs.get(job_id)
    alive = None
    runners: tuple[RunnerView, ...] = ()
    if job.state in (JobState.RUNNING, JobState.READING):
        runners = await storage.jobs.runners(job_id)
        # Several runners share a database: this job's own say whether it goes on.
        alive = bool(runners) if storage.several_runners else await storage.runner_alive()
    state, cause = job.state, job.stop_cause
    stop = StopFacts.from_json(job.stop_facts) if job.stop_facts is not None else None
    message = stop_text(stop) if stop is not None else job.message
    if alive is False:
        state = JobState.INTERRUPTED
        message = no_runner_text(job.state, job.last_seen_at)
        cause = stop = None
    # The report kept with the job, shown while the file is there (a person may move it).
    kept = job.report_path
    if report is None and kept is not None and await asyncio.to_thread(os.path.exists, kept):
        report = kept
    unknown_report = job.unknown_report_path
    if unknown_report is not None and not await asyncio.to_thread(os.path.exists, unknown_report):
        unknown_report = None
    counts = await storage.reports.counts(job_id)
    errors = [
        RowError(row.line, row.state.value, row.last_code, row.last_message)
        for row in await storage.reports.last_errors(job_id)
    ]
    running = state is JobState.RUNNING
    rate = current_rate(job) if running else None
    return JobSummary(
        job=job.id,
        state=state,
        file=job.file.path,
        target=shown_target(job.target),
        total=sum(counts.values()),
        counts=counts,
        resent_unknown=job.resent_unknown,
        message=message,
        report=report,
        last_errors=errors,
        created_at=job.created_at,
        updated_at=job.updated_at,
        rate_per_s=rate,
        stop_cause=cause,
        outage_since=job.outage_since if running else None,
        next_try_at=job.next_try_at if running else None,
        window_opens_at=job.window_opens_at if running else None,
        pace_per_s=job.pace_per_s if rate is not None else None,
        latency_s=job.latency_s if rate is not None else None,
        blank_lines=job.blank_lines,
        repairs=dict(job.repairs),
        runner_alive=alive,
        last_seen_at=job.last_seen_at if alive is False else None,
        stored_state=job.state if state is not job.state else None,
        superseded_by=job.superseded_by,
        try_later_runs=job.try_later_runs,
        try_later_since=job.try_later_since,
        unknown_report=unknown_report,
        stop=stop,
        runners=runners if alive else (),
        server_rate_per_s=float(job.settings.get("server_rate") or 0) or None,
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


async def resumed(
    storage: Storage,
    job: Job,
    opened: Opened = Opened.RESUMED,
    *,
    chosen: bool = False,
) -> JobResumed:
    """Where ``job`` stands as it goes on (``chosen``: it was not named, but the latest
    unfinished one). Rows in flight when the job is resumed were claimed by a runner that is
    gone: they may have reached the server, and are sent again."""
    # A job interrupted before it ever ran was interrupted while reading (see JobRun.read).
    reading = job.state is JobState.READING or (
        job.state is JobState.INTERRUPTED and job.started_at is None
    )
    counts = await storage.reports.counts(job.id) if not reading else {}
    return JobResumed(
        job.id,
        job.state,
        opened,
        chosen=chosen,
        rows_name=job.format.sheet if job.format.kind is InputKind.ROWS else None,
        reading=reading,
        read_line=job.read_line,
        rows_read=job.total_rows,
        pending=counts.get(RowState.PENDING, 0),
        in_flight=counts.get(RowState.IN_FLIGHT, 0),
        stop=StopFacts.from_json(job.stop_facts) if job.stop_facts is not None else None,
        message=job.message,
    )
