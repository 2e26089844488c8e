"""What a job does and learns, as typed events: the library's only voice.

A ``Client(on_event=...)`` callback receives each of these frozen values as it happens; the
command line turns the same values into its bars, its ``--log`` lines (plain or JSON, the
fields taken from the event) and its messages (``bulkimport.messages``). No event holds a
sentence to parse: an outage is ``OutageBegan`` with its start, a wait for the send window
``WindowWait`` with when it opens, a stop ``JobStopped`` with its ``StopFacts``.

Times are wall-clock Unix seconds; every event names its job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bulkimport.protocol import Fix, Outcome, OutcomeKind, Trouble
from bulkimport.reader import FileFormat
from bulkimport.send import SendCounts
from bulkimport.send.pace import PaceState
from bulkimport.settings import Method
from bulkimport.states import JobState, RowState, StopCause


class Step(StrEnum):
    """Where a phase (reading, sending) is."""

    START = "start"  # the phase begins (a bar appears)
    GOING = "going"  # a batch committed, results recorded
    END = "end"  # the phase ended, however it did


class Opened(StrEnum):
    """How a job came to run."""

    NEW = "new"  # created for the file (or the rows) given
    FOUND = "found"  # the unfinished job of the same file (rows) and target, found again
    RESUMED = "resumed"  # named (or chosen as the latest unfinished one) to go on


class Replaced(StrEnum):
    """Why a finished job supersedes an older open one."""

    SAME = "same"  # the same file and target
    OTHER_TARGET = "other-target"  # the same file, refused at another target
    EARLIER_EXPORT = "earlier-export"  # an earlier export of the same path, its rows loaded


@dataclass(frozen=True)
class JobOpened:
    """A new job was made for a file (``rows_name`` None) or for rows given by a program."""

    job: int
    file: str
    format: FileFormat
    columns: int
    rows_name: str | None = None
    failed_rows_report: bool = False  # the file is a failed-rows report, read as UTF-8 CSV


@dataclass(frozen=True)
class JobResumed:
    """An unfinished job goes on: how it was found, where it stood, what is left."""

    job: int
    state: JobState
    opened: Opened
    chosen: bool = False  # not named: the latest unfinished job
    rows_name: str | None = None  # a job of rows given by a program
    reading: bool = False  # it goes on reading (else sending)
    read_line: int = 0
    rows_read: int = 0
    pending: int = 0
    in_flight: int = 0  # claimed by a runner that is gone: sent again
    stop: StopFacts | None = None  # how it last stopped
    message: str | None = None  # ...for a job stopped before stops were kept as facts


@dataclass(frozen=True)
class RunStarted:
    """A run of the job begins (``settings``: as stored, never a secret)."""

    job: int
    state: JobState
    file: str
    target: str
    send: bool
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class ReadProgress:
    """Reading (or staging rows): ``bytes_read`` of ``total_bytes`` (rows given by a
    program: rows taken, of 0), ``rows`` stored so far."""

    job: int
    step: Step
    bytes_read: int
    total_bytes: int
    rows: int


@dataclass(frozen=True)
class SendProgress:
    """Sending: this run's ``counts``; at ``START``, ``before`` holds the job's rows per
    state as sending began."""

    job: int
    step: Step
    counts: SendCounts
    before: Mapping[RowState, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ColumnsAdded:
    """Rows given by a program brought keys that are columns from now on (key: first row)."""

    job: int
    first_rows: Mapping[str, int]


@dataclass(frozen=True)
class RenameUnused:
    """A rename names a key no row had."""

    job: int
    key: str


@dataclass(frozen=True)
class RowsReset:
    """``retry``: rows in ``states`` went back to pending, their attempts reset."""

    job: int
    rows: int
    states: frozenset[RowState]


@dataclass(frozen=True)
class SkippedUnchanged:
    """Rows equal to the latest record loaded for their customer were skipped."""

    job: int
    skipped: int
    pending: int
    key: str
    keyless: int
    maybe_loaded: int


@dataclass(frozen=True)
class Superseded:
    """The older open job ``job`` is replaced by the finished job ``by``."""

    job: int
    by: int
    state: JobState
    why: Replaced
    other_target: str = ""  # OTHER_TARGET: where the old job went, as shown


@dataclass(frozen=True)
class Pruned:
    """Jobs finished before ``before`` were dropped, with ``reports`` of their reports."""

    jobs: tuple[int, ...]
    before: float
    reports: int


@dataclass(frozen=True)
class Forgot:
    """A customer was erased: ``rows`` of ``jobs``, their ``latest_records``, and
    ``reports`` written anew without them."""

    rows: int
    jobs: tuple[int, ...]
    latest_records: int
    reports: int


@dataclass(frozen=True)
class OutageBegan:
    """No answer across the board since ``since``: sending paused, probing."""

    job: int
    since: float
    next_try_at: float | None
    proxy: bool  # the proxy is what cannot be reached
    outcome: Outcome | None = None


@dataclass(frozen=True)
class ProbeFailed:
    """A probe in an outage got no answer either; the next goes at ``next_try_at``."""

    job: int
    since: float
    next_try_at: float | None
    proxy: bool


@dataclass(frozen=True)
class ServerBack:
    """The server answers again after an outage that began at ``since``."""

    job: int
    since: float | None
    after_s: float | None  # how long it did not answer


@dataclass(frozen=True)
class WindowWait:
    """Outside the send window: waiting until ``opens_at``."""

    job: int
    opens_at: float
    window: str


@dataclass(frozen=True)
class WindowOpen:
    """The send window opened: sending begins."""

    job: int
    window: str


@dataclass(frozen=True)
class PaceChanged:
    """The pace sending holds (``--rate auto``) changed."""

    job: int
    pace: PaceState


@dataclass(frozen=True)
class UnknownOutcome:
    """A call of line ``line`` got no answer but may have been processed, and each resend
    rewrites the customer (``rewrites``: the options that make it so). Once per run."""

    job: int
    line: int | None
    outcome: Outcome | None
    rewrites: tuple[str, ...]


@dataclass(frozen=True)
class StopRequested:
    """A stop was asked for (``signal``: its name, None for ``Client.stop()``)."""

    job: int | None
    sending: bool  # calls may be in flight: they finish first
    signal: str | None = None


@dataclass(frozen=True)
class StopFacts:
    """Why a job stopped before it finished, as facts: kept with the job, carried by its
    ``JobSummary`` (whose ``message`` is made from them), never a sentence.

    ``setting`` names the setting to fix by its library name (``Target.org``,
    ``SendSettings.max_outage_s``: ``"org"``, ``"max_outage_s"``); the rest are what the
    line that says why needs, none of them a secret (the URL is masked, the password only
    named by its variable).
    """

    cause: StopCause
    at: float = 0.0  # when it stopped
    # The answer behind the stop, if any.
    kind: OutcomeKind | None = None
    code: str | None = None  # short and stable: BackMsg_63, HTTP 503, timeout
    backmsg: int | None = None  # the vendor's code number
    status: int | None = None  # the HTTP status
    trouble: Trouble | None = None  # why there was no Import answer
    meaning: str = ""  # the answer's one line
    fix: Fix | None = None  # where the code table says to look
    setting: str | None = None
    # Where the calls went, and how.
    url: str = ""  # masked
    org: str = ""
    user: str = ""
    usertype: str = ""
    pwdtype: str = ""
    campaign: str = ""
    password_env: str = ""
    method: Method | None = None
    other_method: Method | None = None  # the method the server answers instead
    ca_file: str | None = None
    system_trust: bool = False
    # What the calls of this run did.
    answered: int = 0
    unknown: int = 0
    pages: int = 0
    rejected: int = 0
    # A stop for systematic rejections.
    max_rejects: str = ""
    max_rejects_count: bool = False  # a count of rejections, not a share
    budget_codes: tuple[tuple[str, int], ...] = ()
    budget_answers: int = 0
    key_map: tuple[str, ...] = ()  # --map options the names of the columns suggest
    # A stop for an outage, or the send window.
    max_outage_s: float | None = None
    outage_since: float | None = None
    window: str | None = None
    window_opens_at: float | None = None
    # No Import answer ever came from this URL: an outage may be a wrong one.
    never_answered: bool = False
    # Reading failed beside sending, the disk filled: the error, as raised.
    error: str | None = None
    reading: bool = False  # stopped while only reading (no call was being made)

    @property
    def maybe_processed(self) -> int:
        """Calls of this run that got no answer, or a page, and may have been processed."""
        return self.unknown + self.pages

    @property
    def outcome(self) -> Outcome | None:
        """The answer behind the stop, as classified."""
        if self.kind is None or self.code is None:
            return None
        return Outcome(
            self.kind,
            self.code,
            self.meaning,
            backmsg=self.backmsg,
            status=self.status,
            trouble=self.trouble,
        )

    def to_json(self) -> dict[str, Any]:
        """Plain values, for the job's ``stop_facts`` column."""
        return {
            name: value
            for name, value in dataclasses.asdict(self).items()
            if value not in (None, "", 0, False, ()) or name == "cause"
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StopFacts:
        """The facts kept with a job (fields a later version does not know are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        enums: dict[str, Callable[[Any], Any]] = {
            "cause": StopCause,
            "kind": OutcomeKind,
            "trouble": Trouble,
            "fix": Fix,
            "method": Method,
            "other_method": Method,
        }
        for name, make in enums.items():
            if values.get(name) is not None:
                values[name] = make(values[name])
        values["budget_codes"] = tuple(
            (str(code), int(n)) for code, n in values.get("budget_codes", ())
        )
        values["key_map"] = tuple(values.get("key_map", ()))
        return cls(**values)


@dataclass(frozen=True)
class JobStopped:
    """The job stopped before it finished (``state``: stopped or interrupted)."""

    job: int
    state: JobState
    facts: StopFacts


@dataclass(frozen=True)
class RunEnded:
    """A run of the job ended, in ``seconds``: its state and its rows per state."""

    job: int
    state: JobState
    seconds: float
    total: int
    counts: Mapping[RowState, int]
    resent_unknown: int
    message: str | None
    report: str | None
    blank_lines: int
    repairs: Mapping[str, int]


Event = (
    JobOpened
    | JobResumed
    | RunStarted
    | ReadProgress
    | SendProgress
    | ColumnsAdded
    | RenameUnused
    | RowsReset
    | SkippedUnchanged
    | Superseded
    | Pruned
    | Forgot
    | OutageBegan
    | ProbeFailed
    | ServerBack
    | WindowWait
    | WindowOpen
    | PaceChanged
    | UnknownOutcome
    | StopRequested
    | JobStopped
    | RunEnded
)

#: What hears a job's events.
Emit = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The ``Emit`` of a caller that listens to nothing."""
