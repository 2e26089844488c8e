"""The values storage gives back: jobs, rows for reports, remote imports, ingest progress."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple, NewType

from bulkimport.reader.format import FileFormat
from bulkimport.rows import NO_REPAIRS, FileIdentity, TargetRef
from bulkimport.states import JobState, RemoteState, RepairKind, RowState, StopCause

#: Who claimed a row: one process that held ``Storage.runner()``.
RunnerId = NewType("RunnerId", int)


class RunnerView(NamedTuple):
    """A live runner of a job, for ``status``: where it runs and how fast it sends."""

    id: RunnerId
    host: str
    pid: int
    started_at: float
    rate_per_s: float | None  # rows settled per second, last measured (None: not yet)
    seen_at: float  # when it last said so, or renewed its lease


@dataclass(frozen=True)
class Job:
    """One import of one file to one target, as stored."""

    id: int
    state: JobState
    file: FileIdentity
    target: TargetRef
    settings: dict[str, Any]
    fmt_json: str
    read_offset: int  # byte offset in the file after the last committed batch
    read_line: int  # physical line number of the last committed batch
    total_rows: int
    resent_unknown: int  # rows sent again after a runner died with them in flight
    message: str | None  # why the job last stopped
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    send_rate_per_s: float | None = None  # rows settled per second, last measured
    send_rate_at: float | None = None  # when it was measured (Unix seconds)
    stop_cause: StopCause | None = None  # why it stopped before it finished
    outage_since: float | None = None  # while the server does not answer: since when
    next_try_at: float | None = None  # ...and when the next probe goes
    pace_per_s: float | None = None  # the pace sending holds (calls per second)
    latency_s: float | None = None  # the latency it sees (recent average)
    read_done: bool = False  # the file is read to its end: no row will be added
    window_opens_at: float | None = None  # waiting for the send window: when it opens
    blank_lines: int = 0  # lines read that are no record (empty, spaces, bare delimiters)
    #: Phone numbers repaired while reading, per kind (kinds with none left out).
    repairs: Mapping[RepairKind, int] = field(default_factory=dict)
    report_path: str | None = None  # the failed-rows report last written for it
    superseded_by: int | None = None  # a newer job of the same file finished in its place
    #: Runs in a row that ended "try later" (exit 75), and since when (the first one ended).
    try_later_runs: int = 0
    try_later_since: float | None = None
    unknown_report_path: str | None = None  # the list of its rows that may be on the server
    stop_facts: dict[str, Any] | None = None  # why it stopped, as facts (StopFacts.to_json)

    @property
    def is_open(self) -> bool:
        """Whether it may still be resumed: not finished, and not superseded."""
        return self.state.is_unfinished and self.superseded_by is None

    @property
    def last_seen_at(self) -> float:
        """When its runner last left a trace in it (Unix seconds): a batch read, a state
        changed, a sending rate kept."""
        return max(self.updated_at, self.send_rate_at or 0.0)

    @property
    def target_key(self) -> str:
        return self.target.key

    @cached_property
    def format(self) -> FileFormat:
        """How its file is read (what sniffing decided when the job was created)."""
        return FileFormat.from_json(self.fmt_json)


class RowView(NamedTuple):
    """One stored row, for reports."""

    id: int
    line: int
    state: RowState
    cells: tuple[str, ...]
    record: str | None
    attempts: int
    last_code: str | None
    last_message: str | None


@dataclass(frozen=True)
class RemoteImport:
    """One ``source=http|ftp`` import as recorded: what was asked, what the server said."""

    id: int
    created_at: float
    source: str  # "http" or "ftp"
    url: str  # the file's URL, credentials taken out
    target_key: str
    exetime: str
    delrow: str
    server_job_id: str | None  # set when the server accepted it
    state: RemoteState
    code: str | None
    message: str | None
    attempts: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "source": self.source,
            "url": self.url,
            "target": self.target_key,
            "exetime": self.exetime,
            "delrow": self.delrow,
            "server_job_id": self.server_job_id,
            "state": self.state.value,
            "code": self.code,
            "message": self.message,
            "attempts": self.attempts,
        }


@dataclass(frozen=True)
class Forgotten:
    """What erasing one customer removed: rows of jobs, the record kept for
    ``--skip-unchanged``, and the reports written anew without them."""

    rows: int
    latest_records: int
    jobs: tuple[int, ...]  # the jobs that had rows of the customer
    reports: int = 0  # reports rewritten (or removed: no row of the job needs a person now)


class Unchanged(NamedTuple):
    """What an incremental lookup found among a job's pending rows."""

    skipped: int  # equal to the latest record their customer received: now ``skipped``
    keyless: int  # without a value in the key field: they are sent
    #: Equal to a record another job may have loaded (its row ended ``unknown``): they are
    #: sent, with that job's unknown outcomes counted as theirs.
    maybe_loaded: int = 0


class Ingested(NamedTuple):
    """Progress of an ingest, after each committed batch."""

    rows: int  # rows stored by this ingest so far
    end_offset: int  # byte offset where reading resumes
    next_line: int  # line number where reading resumes
    blank_lines: int = 0  # blank lines counted by this ingest so far
    repairs: Mapping[RepairKind, int] = NO_REPAIRS  # values repaired by it so far, per kind


class Refunded(NamedTuple):
    """Rows whose attempt an outage cost was taken back (``SendQueue.uncount``), by what
    they were: the states a sender has counted them in change with them."""

    failed: int = 0  # ``failed`` by that attempt: pending again
    unknown: int = 0  # left ``unknown`` by it: pending again
    kept: int = 0  # pending, or settled since: their state stays

    @property
    def rows(self) -> int:
        """All the rows whose attempt was taken back."""
        return self.failed + self.unknown + self.kept


class ProbeTurn(NamedTuple):
    """A runner's turn to probe a server in an outage (``ServerBudget.probe_turn``): ``mine``
    when no other runner probed it within the interval; ``backs``, how many probes ever found
    it answering again (grown since the outage began: it is back)."""

    mine: bool
    backs: int


@dataclass(frozen=True)
class Grant:
    """Calls granted by a server's budget (``ServerBudget.reserve``): ``calls`` calls, the
    first ``first_in_s`` after the storage's clock read the time of the reservation (0 when
    the budget had room then), the next ones ``spacing_s`` apart."""

    calls: int
    first_in_s: float
    spacing_s: float

    @staticmethod
    def spacing_of(rate_per_s: float, calls: int) -> float:
        """The seconds between two of ``calls`` calls reserved at ``rate_per_s``;
        ``ValueError`` unless both are more than 0 (a budget is never asked for nothing)."""
        if rate_per_s <= 0 or calls <= 0:
            raise ValueError(f"a reservation needs a rate and calls ({rate_per_s}, {calls})")
        return 1.0 / rate_per_s

    def start_s(self, index: int, granted_at_s: float) -> float:
        """When call ``index`` (from 0) may start, on the clock that read ``granted_at_s``
        as the reservation's time."""
        return granted_at_s + self.first_in_s + index * self.spacing_s
