"""What the rest of bulkimport needs from storage, as small interfaces, one per role.

    Storage ─┬─ jobs: JobStore          create, find and move jobs
             ├─ reading: IngestStore    add rows read from a file, with the reading position
             ├─ sending: SendQueue      claim rows, record outcomes, recover a dead runner's rows
             ├─ reports: RowReports     counts, problem rows, resetting rows, incremental loads
             ├─ retention: Retention    forget finished jobs, keep what customers last received
             ├─ remote: RemoteLog       the `source=http|ftp` imports made
             ├─ budget: ServerBudget    calls per second per server, shared by every runner
             ├─ runner()                prove that this process may send; claims name it
             ├─ maintenance()           hold it alone: no runner meanwhile
             └─ runner_alive()          whether any process holds runner() now

    DuplicateStore                      check's phone numbers of one file, kept out of memory
                                        (no job, no storage location: a private temporary one)

The dispatcher takes a ``SendQueue`` only, the report writer ``RowReports`` only. The SQLite
implementation (``bulkimport.storage.sqlite``) is one of these; the contract suite in
``tests/storage/`` is written against these interfaces alone, so that another backend
(PostgreSQL, for several hosts draining one job) runs it unchanged.

Guarantees every implementation keeps (and the contract suite checks):
- each write has committed when its method returns; a crash loses nothing returned;
- rows are added together with the reading position after them, and with the blank lines
  and repairs the reader counted among them (``Job.blank_lines``, ``Job.repairs``): never
  twice, never lost;
- a claim moves rows from ``pending`` to ``in_flight`` atomically and names its runner; a row
  is claimed by one runner at a time; outcomes are recorded only for rows still in flight;
- ``recover_in_flight`` takes back rows whose runner is dead, never a live runner's, and
  counts each as an attempt of unknown outcome (``ClaimedRow.unknowns``, the job's
  ``resent_unknown``), as does a result marked ``unknown``;
- the counts per state are exact after every method, whatever it moved;
- a row is unchanged (``mark_unchanged_skipped``) only if it equals the latest record its
  customer received from another job to the same target, and stays so after that job is
  pruned; an unfinished job is never pruned; a row that may be on the server (``unknown``)
  is never "received";
- ``runner_alive()`` never makes a runner that is starting fail;
- a server's budget grants evenly spaced call times, each once, to whoever asks first,
  however many runners (processes, hosts) ask at once.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, NamedTuple, Protocol

from bulkimport.rows import Batch, ClaimedRow, FileIdentity, NewRow, RowResult, TargetRef
from bulkimport.states import JobState, RemoteState, RowState, StopCause
from bulkimport.storage.values import (
    Forgotten,
    Grant,
    Ingested,
    Job,
    ProbeTurn,
    Refunded,
    RemoteImport,
    RowView,
    RunnerId,
    RunnerView,
    Unchanged,
)


class JobStore(Protocol):
    """Jobs: one file (or stream of rows) sent to one target."""

    async def create(
        self,
        file: FileIdentity,
        target: TargetRef,
        settings: Mapping[str, Any],
        fmt_json: str,
    ) -> Job:
        """A new job in state ``reading``. ``settings`` must not hold a password
        (``ConfigError``). Its ``try_later_runs`` and ``try_later_since`` are those of the
        latest job of the same file path and target (a later export goes on from them)."""
        ...

    async def get(self, job_id: int) -> Job:
        """The job ``job_id``; ``ConfigError`` if there is none."""
        ...

    async def find_unfinished(self, file: FileIdentity, target: TargetRef) -> Job | None:
        """The latest open job (``Job.is_open``: unfinished, not superseded) for the same
        file (path, size, mtime, head) and target."""
        ...

    async def latest(self, *, unfinished: bool = False) -> Job | None:
        """The most recently created job (only open ones, ``Job.is_open``, if
        ``unfinished``), if any."""
        ...

    async def supersede(self, job_id: int, key_field: str | None = None) -> list[Job]:
        """Mark the older open jobs that ``job_id`` (finished) replaces as superseded by it
        (``Job.superseded_by``) and return them: those for the same file (identity) and
        target, and those for the same file and another target whose target was refused
        (stopped by a fatal answer, or a URL that never answered). With ``key_field``, also
        those for an earlier export at the same path to the same target whose every row
        left to send (pending, in flight) is for a customer (the value of ``key_field``)
        this job loaded, found on the server or found unchanged: nothing they hold is lost.
        ``latest(unfinished=True)`` and ``find_unfinished`` pass them by; they may be
        pruned."""
        ...

    async def set_report(self, job_id: int, path: str | None) -> None:
        """Keep where the job's failed-rows report now is (None: it has none). Another job
        whose report was at the same path has none any more: the file is this job's now."""
        ...

    async def set_unknown_report(self, job_id: int, path: str | None) -> None:
        """Keep where the list of the job's rows that may be on the server (``unknown``) now
        is (None: it has none); as ``set_report``, a path belongs to one job."""
        ...

    async def list(self) -> list[Job]:
        """Every job, oldest first."""
        ...

    async def retarget(self, job_id: int, target: TargetRef) -> None:
        """The job goes to ``target`` from now on (stored: ``status`` shows it)."""
        ...

    async def set_state(
        self,
        job_id: int,
        state: JobState,
        message: str | None = None,
        cause: StopCause | None = None,
        *,
        facts: Mapping[str, Any] | None = None,
    ) -> None:
        """Move a job to ``state`` with ``message``, ``cause`` and ``facts`` (the stop's facts as
        JSON values) as why it stopped (None clears them, and the outage figures). A run that ends
        ``interrupted`` by a cause that ``is_try_later`` adds one to ``Job.try_later_runs``
        (``try_later_since``: now, if it was 0); ``finished``, ``stopped`` or ``interrupted``
        otherwise sets them back to 0 and None; the other states leave them."""
        ...

    async def record_send_rate(
        self,
        job_id: int,
        rate_per_s: float,
        *,
        pace_per_s: float | None = None,
        latency_s: float | None = None,
        runner: RunnerId | None = None,
    ) -> None:
        """Keep the runner's latest sending rate with the job (for ``status`` elsewhere),
        and the pace it holds and the latency it sees; with ``runner``, with the runner too
        (the job's rate is then that of its live runners together)."""
        ...

    async def attach_runner(self, job_id: int, runner: RunnerId) -> None:
        """``runner`` works on job ``job_id`` now (it reads or sends it)."""
        ...

    async def runners(self, job_id: int) -> tuple[RunnerView, ...]:
        """The live runners sending job ``job_id``, oldest first."""
        ...

    async def leave(self, job_id: int, runner: RunnerId) -> bool:
        """``runner`` stops sending job ``job_id`` before its end: whether other runners still
        send it, so that its state is theirs to set. Of runners that stop at once, the last
        to leave hears False."""
        ...

    async def take_reading(self, job_id: int, runner: RunnerId) -> bool:
        """Whether ``runner`` is to read the job's file into it: no live runner does (or
        ``runner`` does already). False: another runner reads it, on the host that has the
        file, and this one sends what it stores."""
        ...

    async def record_outage(
        self, job_id: int, since: float | None, next_try_at: float | None
    ) -> None:
        """The server has not answered since ``since``; the next probe is at
        ``next_try_at`` (None for both: it answers again)."""
        ...

    async def record_window_wait(self, job_id: int, opens_at: float | None) -> None:
        """The runner waits for the send window, which opens at ``opens_at``; None: it is
        open (any ``set_state`` clears it too)."""
        ...

    async def url_answered(self, url: str) -> bool:
        """Whether ``url`` ever gave a valid Import answer to a job of this storage."""
        ...

    async def note_answer(self, url: str) -> None:
        """``url`` gave a valid Import answer (now)."""
        ...


class IngestStore(Protocol):
    """Rows read from a file, stored with the position where reading resumes."""

    async def ingest(
        self,
        job_id: int,
        batches: Iterable[Batch],
        *,
        on_batch: Callable[[Ingested], None] | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Store ``batches`` into a job being read, each with its reading position, its
        ``blank_lines`` and its ``repairs`` (added to the job's) in one commit; return how
        many rows. ``on_batch`` hears of each commit (totals of this ingest so far). Setting
        ``stop`` ends it after the batch in hand. Batches read in a worker thread: it ends
        (returns, raises, or is cancelled) only once no thread of its own runs ``batches``,
        and leaves them closed (a generator's ``finally`` has run)."""
        ...

    async def add_rows(
        self, job_id: int, rows: Sequence[NewRow], *, read_offset: int, read_line: int
    ) -> None:
        """Store one batch of rows and the reading position after it (``ingest`` of one)."""
        ...

    async def widen(self, job_id: int, fmt_json: str) -> None:
        """The job (rows given by a program, being staged) has more columns: keep its format
        ``fmt_json``, the old columns first. The rows stored so far read as before, with the
        new columns empty."""
        ...

    async def finish(self, job_id: int) -> None:
        """The whole file is read (``Job.read_done``): a job only being read becomes
        ``ready``; one sent meanwhile keeps its state. No row is added to it after."""
        ...


class SendQueue(Protocol):
    """The rows of a job on their way to the server."""

    async def recover_in_flight(self, job_id: int, runner: RunnerId) -> int:
        """Give back (``pending``) the rows that dead runners left in flight, counted as
        "resent after an unknown outcome"; never a live runner's. Return how many."""
        ...

    async def held_elsewhere(self, job_id: int, runner: RunnerId) -> int:
        """How many rows of the job are in flight for runners other than ``runner`` (live
        ones, or dead ones whose rows ``recover_in_flight`` has yet to take back)."""
        ...

    async def claim_batch(
        self, job_id: int, limit: int, *, now_s: float, runner: RunnerId
    ) -> list[ClaimedRow]:
        """Up to ``limit`` pending rows due at ``now_s``, in line order, now in flight for
        ``runner``."""
        ...

    async def record_results(
        self, job_id: int, results: Sequence[RowResult], *, runner: RunnerId | None = None
    ) -> int:
        """Record outcomes of rows in flight (for ``runner``, if given: a row taken back
        from it meanwhile is another's); others are left alone. Return how many."""
        ...

    async def release(
        self, job_id: int, row_ids: Iterable[int], *, runner: RunnerId | None = None
    ) -> int:
        """Give back rows claimed but never sent, their attempts unchanged (only those still
        in flight for ``runner``, if given)."""
        ...

    async def uncount(self, job_id: int, row_ids: Iterable[int], *, now_s: float) -> Refunded:
        """An attempt of these rows met an outage, not a problem of theirs: it is not held
        against them (a row it made ``failed`` or ``unknown`` is pending again, due at
        ``now_s``; a row answered since, sent again before the outage was known, keeps the
        attempt that settled it). Rows in flight are left alone. Return how many rows, by
        what they were."""
        ...

    async def next_attempt_at(self, job_id: int) -> float | None:
        """When the earliest pending row is due (0.0: now); None when none is pending."""
        ...


class RowReports(Protocol):
    """What a job's rows add up to, and the rows that need a person."""

    async def counts(self, job_id: int) -> dict[RowState, int]:
        """Rows per state (every state present)."""
        ...

    async def last_errors(self, job_id: int, limit: int = 5) -> list[RowView]:
        """The latest rows with a problem (rejected, failed, invalid, pending after an
        error), newest first."""
        ...

    def iter_rows(
        self, job_id: int, states: Collection[RowState], batch: int = 1000
    ) -> AsyncIterator[RowView]:
        """The job's rows in ``states``, in line order."""
        ...

    async def reset_rows(self, job_id: int, states: Collection[RowState]) -> int:
        """Rows in ``states`` that have a record back to pending, attempts reset."""
        ...

    async def mark_unchanged_skipped(
        self, job_id: int, target: TargetRef, key_field: str
    ) -> Unchanged:
        """Pending rows equal to the latest record their customer received become
        ``skipped``.

        A row's customer is the value of its ``key_field`` (e.g. ``phone1``); the latest
        record a customer received is the one most recently loaded (``done``) to ``target``
        by another job, pruned or not. A row is skipped only if its record is that record,
        and no other pending row of the job for the same customer differs from it (the
        file's last word is sent). Rows without a value in ``key_field`` are never skipped.
        A record another job may have loaded (its row ended ``unknown``) is not loaded: a
        row equal to it is sent, with that row's unknown outcomes as its own
        (``ClaimedRow.unknowns``, ``Unchanged.maybe_loaded``).
        Another ``key_field`` for the same target than the last time starts the latest
        records over from the rows still kept: rows are then sent, never skipped wrongly.
        """
        ...


class Retention(Protocol):
    """Forgetting finished jobs, so that months of nightly loads keep the storage bounded."""

    async def prune(self, finished_before_s: float) -> list[Job]:
        """Drop the jobs finished (or superseded) before ``finished_before_s`` (Unix
        seconds), with their rows, and return them as they were. What their done rows
        loaded stays known to ``mark_unchanged_skipped``. Open jobs are never pruned."""
        ...

    async def compact(self) -> int:
        """Give the space freed by pruning back to the system; return how many bytes (0 if
        none, or if the storage cannot tell)."""
        ...

    async def forget(self, key: str) -> Forgotten:
        """Erase one customer: every row of every job that holds ``key`` as one of its
        values (a field of its record, or a cell of the line it came from), and the latest
        record kept for that customer; no copy may remain in the storage's files. ``key`` is
        not empty."""
        ...


class RemoteLog(Protocol):
    """The ``source=http|ftp`` imports asked of the server."""

    async def add(
        self,
        *,
        source: str,
        url: str,
        target_key: str,
        exetime: str,
        delrow: str,
        server_job_id: str | None,
        state: RemoteState,
        code: str | None,
        message: str | None,
        attempts: int,
    ) -> RemoteImport:
        """Record one remote import; ``url`` must hold no credentials (``ConfigError``)."""
        ...

    async def list(self) -> list[RemoteImport]:
        """Every remote import, oldest first."""
        ...


class ServerBudget(Protocol):
    """The calls per second each server takes, shared by every runner of this storage.

    A server's budget is one time kept in the storage: when its next call may start.
    Reserving ``count`` calls at ``rate_per_s`` moves it ``count / rate_per_s`` on (from now,
    if it lay in the past) in one statement, so that two runners asking at once get calls
    one after the other, never the same ones. The time is the storage's clock (the
    database server's, where runners run on several hosts), and a grant says how far after
    that clock's "now" its first call is: a host whose clock differs is not misled.
    """

    async def reserve(self, server: str, rate_per_s: float, count: int) -> Grant:
        """``count`` calls to ``server`` (its key: ``settings.server_key``) at
        ``rate_per_s`` (more than 0), the next ones its budget has free."""
        ...

    async def probe_turn(self, server: str, interval_s: float) -> ProbeTurn:
        """In an outage: whether this runner probes ``server`` now (no runner did in the
        last ``interval_s``: the turn is taken, the next one ``interval_s`` from now), and
        how many probes found it back so far."""
        ...

    async def note_back(self, server: str) -> None:
        """A probe found ``server`` answering again: the runners waiting see it."""
        ...


class Repeat(NamedTuple):
    """A value already seen on an earlier line: on ``line``, first on ``first``."""

    line: int
    value: str
    first: int


class DuplicateStore(Protocol):
    """The phone numbers of one file that ``check`` reads, each with its line, to find
    those repeated and those of an unusual length once the file is read. Kept out of
    memory (a file holds millions), for one check only, and used from one thread: the
    check reads synchronously."""

    def add(self, numbers: Sequence[tuple[int, str]]) -> None:
        """Keep ``(line, number)`` pairs, in line order, each line once."""
        ...

    def repeats(self, limit: int | None) -> tuple[int, list[Repeat]]:
        """How many lines hold a number an earlier line holds, and the first ``limit`` of
        them (``None``: every one) in line order. Called once, after the last ``add``."""
        ...

    def of_length(self, digits: int, limit: int | None) -> list[tuple[int, str]]:
        """The first ``limit`` ``(line, number)`` whose number is ``digits`` digits long and
        has no leading ``+``, in line order."""
        ...

    def close(self) -> None:
        """Forget every number (nothing is left behind on disk)."""
        ...


class Storage(Protocol):
    """One storage location: its roles, its runner lock, and closing it."""

    @property
    def location(self) -> str:
        """Where it is, for messages (a file path, a server)."""
        ...

    @property
    def jobs(self) -> JobStore: ...

    @property
    def reading(self) -> IngestStore: ...

    @property
    def sending(self) -> SendQueue: ...

    @property
    def reports(self) -> RowReports: ...

    @property
    def retention(self) -> Retention: ...

    @property
    def remote(self) -> RemoteLog: ...

    #: Whether several runners may send from it at once (on one job or several); if not,
    #: ``runner()`` is held by one process at a time.
    several_runners: bool

    @property
    def budget(self) -> ServerBudget: ...

    def runner(self) -> AbstractAsyncContextManager[RunnerId]:
        """Hold the right to send while inside; ``RunnerBusy`` if it cannot be had now
        (another runner holds it, where there is one at a time; or ``maintenance()``)."""
        ...

    def maintenance(self) -> AbstractAsyncContextManager[None]:
        """Hold the storage alone while inside (pruning, forgetting, compacting): no runner
        sends meanwhile; ``RunnerBusy`` while one does."""
        ...

    async def runner_alive(self) -> bool:
        """Whether a process (this one or another) holds ``runner()`` now: a job left
        ``running`` or ``reading`` with no runner was interrupted. Asking never makes a
        runner that is starting fail."""
        ...

    async def close(self) -> None: ...
