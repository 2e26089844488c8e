"""``Client``: bulkimport as a library, with every guarantee of the command line.

    async with Client(target, db="leads.db") as client:
        summary = await client.load_csv("leads.csv")
        summary.raise_for_state()

        summary = await client.load_rows(crm.changed_contacts(), name="crm-contacts")

One client holds one storage (a queue database, opened on entry) and one target. It reads
and sends through the same steps as the command line, which is built on it: the same job
resumes from either. What a job does and learns reaches the caller as typed events
(``on_event``: ``bulkimport.events``, never a sentence to parse); ``on_progress`` is the
older, narrower callback that hears only how far reading and sending are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path
from types import TracebackType
from typing import Self, TextIO

from bulkimport import messages
from bulkimport.check import CheckOptions, CheckReport, check_file
from bulkimport.errors import BulkImportError, ConfigError, DiskFull
from bulkimport.events import (
    Emit,
    Event,
    Forgot,
    JobStopped,
    Opened,
    Pruned,
    Replaced,
    StopFacts,
    Superseded,
)
from bulkimport.jobs.customers import customer_field
from bulkimport.jobs.pipeline import (
    StopSignal,
    TransportFactory,
    http_transport,
    reader_options,
    run_pipeline,
)
from bulkimport.jobs.progress import EventProgress, ProgressEvent
from bulkimport.jobs.report import (
    PROBLEM_STATES,
    UNKNOWN_STATES,
    check_report_path,
    default_report_path,
    discard_report,
    place_report,
    place_unknown_report,
    unknown_report_path,
    write_report,
    write_rows,
)
from bulkimport.jobs.staging import RowsInput, RowSource
from bulkimport.jobs.summary import JobSummary, resumed, summarize
from bulkimport.rows import FileIdentity
from bulkimport.settings import ReadSettings, SendSettings, Settings, Target, shown_target
from bulkimport.states import JobState, RowState, StopCause
from bulkimport.storage import Forgotten, Job, RemoteImport, Storage, is_postgres_url, open_storage

DEFAULT_DB = "bulkimport.db"


class Client:
    """Loads files into one target through one queue database.

    ``target`` is where rows go, its password in memory only. ``db`` is the queue database
    (created if needed): a SQLite file, or ``postgresql://user@host/dbname`` (the
    ``postgres`` extra; the password from ``PGPASSWORD`` or ``~/.pgpass``); ``storage``
    another ``Storage`` instead. ``settings`` gives every other setting (``Settings``: how
    to send, read, report); ``send`` and ``read`` replace those parts of it. ``transport``
    replaces HTTP (tests, recordings). ``on_event`` hears every typed event of a job
    (``bulkimport.events``: opened, progress, an outage, a wait for the send window, the
    stop with its facts...); ``on_progress``, the older callback, ``ProgressEvent`` values
    while reading and sending.

    The target is checked once, here: a client without a complete one can look at jobs
    (``status``, ``jobs``, reports) but not load or send.
    """

    def __init__(
        self,
        target: Target | None = None,
        *,
        db: str | os.PathLike[str] = DEFAULT_DB,
        storage: Storage | None = None,
        settings: Settings | None = None,
        send: SendSettings | None = None,
        read: ReadSettings | None = None,
        transport: TransportFactory = http_transport,
        on_event: Emit | None = None,
        on_progress: Callable[[ProgressEvent], None] | None = None,
    ) -> None:
        settings = settings or Settings()
        if target is not None:
            settings = dataclasses.replace(settings, target=target)
        if send is not None:
            settings = dataclasses.replace(settings, send=send)
        if read is not None:
            settings = dataclasses.replace(settings, read=read)
        self.settings = settings
        self._db: str | Path = db if is_postgres_url(db) else Path(db)
        self._storage = storage
        self._own_storage = storage is None
        self._transport = transport
        self._target: Target | None = None
        self._no_target: ConfigError | None = None
        try:
            self._target = settings.require_target()
        except ConfigError as missing:
            self._no_target = missing
        self._listeners: list[Emit] = []
        if on_event is not None:
            self._listeners.append(on_event)
        if on_progress is not None:
            self._listeners.append(EventProgress(on_progress))
        self._stop = StopSignal(self._emit)

    def _emit(self, event: Event) -> None:
        for listener in self._listeners:
            listener(event)

    @property
    def target(self) -> Target:
        """Where rows go (``ConfigError`` naming what it lacks, if incomplete)."""
        if self._target is None:
            assert self._no_target is not None
            raise self._no_target
        return self._target

    # --- opening ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._storage is None:
            self._storage = await open_storage(self._db)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._own_storage and self._storage is not None:
            await self._storage.close()
            self._storage = None

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            raise ConfigError("the client is not open; use `async with Client(...)`")
        return self._storage

    def stop(self, signal: str | None = None) -> None:
        """Ask the job in progress to stop cleanly (as Ctrl-C does): the calls in flight
        finish, everything stays resumable, the call returns an ``interrupted`` summary.
        ``signal``: the name of the signal that asked, for the ``StopRequested`` event. A
        second request raises ``KeyboardInterrupt`` (the command line's second Ctrl-C)."""
        self._stop.request(signal)

    # --- jobs ------------------------------------------------------------------------------

    async def load_csv(self, path: str | os.PathLike[str], *, new: bool = False) -> JobSummary:
        """Read the file into a job and send it; the same file and target again resumes
        its unfinished job (``new`` starts afresh). Returns the job's summary: check
        ``state``, or call ``raise_for_state()``."""
        return await self._run(path=Path(path), new=new)

    async def load_rows(self, rows: RowSource, *, name: str, new: bool = False) -> JobSummary:
        """Stage ``rows`` (an iterable or an async iterable of mappings: column to value)
        into a job durably, a batch at a time, and send them as ``load_csv`` sends a file's,
        sending starting with the first batch staged. The columns are every key of every
        row, in the order they first appear (a row without a key has that value empty),
        mapped as a file's are.

        ``name`` is what the rows are known by, as a file by its path: the same name and
        target again resume the unfinished job; give the same rows again, and the rows it
        has staged are passed over. ``new`` starts afresh. Values are sent as text:
        ``None`` and NaN are empty, ``13800138000.0`` is ``13800138000``, dates are ISO
        8601; a value with no text (a list, a dict, an object) makes its row invalid,
        naming the key. A plain iterable is pulled on the event loop's thread; pass an
        async one to read from a network without holding sending up."""
        return await self._run(rows=RowsInput(rows, name), new=new)

    async def stage_csv(self, path: str | os.PathLike[str], *, new: bool = False) -> JobSummary:
        """Read the file into a job and stop (state ``ready``); send it with ``resume``."""
        return await self._run(path=Path(path), new=new, send=False)

    async def resume(self, job: int | None = None) -> JobSummary:
        """Go on with a job (the latest unfinished one by default, superseded ones passed
        by): reading, then sending. ``on_event`` hears which job, why that one, and how many
        rows are left (``JobResumed``: and how many were in flight when its runner
        stopped)."""
        found = await (
            self.storage.jobs.get(job)
            if job is not None
            else self.storage.jobs.latest(unfinished=True)
        )
        if found is None:
            raise ConfigError(messages.no_job(self.storage.location, unfinished=True))
        if found.is_open and not await self._sent_elsewhere(found.id):
            self._emit(await resumed(self.storage, found, Opened.RESUMED, chosen=job is None))
        return await self._run(job_id=found.id)

    async def _sent_elsewhere(self, job: int) -> bool:
        """Whether a live runner sends job ``job`` now (then this one goes on beside it,
        where several may: nothing was interrupted)."""
        if self.storage.several_runners:
            return bool(await self.storage.jobs.runners(job))
        return await self.storage.runner_alive()

    async def retry(self, job: int, *, rejected: bool = False, unknown: bool = False) -> JobSummary:
        """Put the job's failed rows (and rejected ones, with ``rejected``; those that may be
        on the server, with ``unknown``) back to pending, attempts reset, and send them.

        An ``unknown`` row keeps its unknown outcomes: a duplicate answer then counts done
        (the record is this job's), and when each call rewrites the customer (``--dupway
        update``) the limit on unknown outcomes still holds. Check the server first: with
        ``--dupway skip`` a resend is safe."""
        states = {RowState.FAILED}
        if rejected:
            states.add(RowState.REJECTED)
        if unknown:
            states.add(RowState.UNKNOWN)
        return await self._run(job_id=job, retry_states=frozenset(states))

    async def _run(
        self,
        *,
        path: Path | None = None,
        rows: RowsInput | None = None,
        job_id: int | None = None,
        new: bool = False,
        send: bool = True,
        retry_states: Collection[RowState] = (),
    ) -> JobSummary:
        target = self.target if send or path is not None or rows is not None else None
        report = self.settings.output.report
        if report:
            # Before the first call, not after the last one: a report that cannot be
            # written is a setting to fix, not a surprise at the end of the night.
            check_report_path(Path(report))
        if self.settings.output.prune_after_s is not None and not retry_states:
            # (Not before a retry: the finished job it is about to send again could go.)
            await self.prune(self.settings.output.prune_after_s)
        try:
            summary = await run_pipeline(
                self.storage,
                settings=self.settings,
                target=target or self.settings.target,
                transport=self._transport,
                path=path,
                rows=rows,
                job_id=job_id,
                new=new,
                send=send,
                retry_states=retry_states,
                stop=self._stop,
                emit=self._emit,
            )
        except DiskFull as exc:
            identity = rows.identity if rows is not None else None
            raise await self._left_resumable(exc, path, job_id, identity) from exc
        if summary.state is JobState.FINISHED:
            await self._supersede(summary.job)
        return summary

    async def _supersede(self, job_id: int) -> None:
        """The older open jobs this finished one replaces no longer wait for a resume."""
        job = await self.storage.jobs.get(job_id)
        key = customer_field(self.settings, job.format)
        for old in await self.storage.jobs.supersede(job_id, key):
            other = ""
            if old.file != job.file:
                why = Replaced.EARLIER_EXPORT
            elif old.target != job.target:
                why, other = Replaced.OTHER_TARGET, shown_target(old.target).describe()
            else:
                why = Replaced.SAME
            self._emit(Superseded(old.id, job_id, old.state, why, other))

    async def _left_resumable(
        self,
        exc: DiskFull,
        path: Path | None,
        job_id: int | None,
        identity: FileIdentity | None = None,
    ) -> DiskFull:
        """A full disk stopped the job: mark it interrupted, saying why, if there is room
        for that (a runner that is gone shows as interrupted anyway); the error to raise,
        naming the job."""
        job: Job | None = None
        with contextlib.suppress(BulkImportError, OSError):
            if job_id is not None:
                job = await self.storage.jobs.get(job_id)
            elif path is not None or identity is not None:
                identity = identity or FileIdentity.of(path)  # type: ignore[arg-type]
                job = await self.storage.jobs.find_unfinished(identity, self.target.ref)
        if job is None or job.state is JobState.FINISHED:
            return DiskFull(str(exc), job=exc.job)
        facts = StopFacts(StopCause.DISK_FULL, at=time.time(), error=str(exc))
        with contextlib.suppress(BulkImportError):
            await self.storage.jobs.set_state(
                job.id, JobState.INTERRUPTED, cause=facts.cause, facts=facts.to_json()
            )
        self._emit(JobStopped(job.id, JobState.INTERRUPTED, facts))
        return DiskFull(str(exc), job=job.id)

    # --- keeping the database bounded ------------------------------------------------------

    async def prune(self, older_than_s: float) -> list[Job]:
        """Drop the jobs finished (or superseded) more than ``older_than_s`` seconds ago,
        with their rows and their failed-rows reports; what their rows loaded is still known
        to ``skip_unchanged``. Unfinished jobs are never pruned. Returns the jobs pruned."""
        cut = time.time() - older_than_s
        async with self.storage.maintenance():
            pruned = await self.storage.retention.prune(cut)
        reports = sum(
            1
            for job in pruned
            for report in (job.report_path, job.unknown_report_path)
            if report and discard_report(report, job.id, "its job is pruned")
        )
        if pruned:
            self._emit(Pruned(tuple(job.id for job in pruned), cut, reports))
        return pruned

    async def forget(self, key: str) -> Forgotten:
        """Erase one customer (an erasure request): every row of every job in the storage
        that holds ``key`` whole as one of its values (usually the phone number), and the
        record kept of it for ``skip_unchanged``; the jobs' failed-rows reports are written
        anew without those rows. ``ConfigError`` for an empty key."""
        if not key.strip():
            raise ConfigError("give the value that identifies the customer (a phone number)")
        async with self.storage.maintenance():
            forgotten = await self.storage.retention.forget(key)
            reports = 0
            for job_id in forgotten.jobs:
                job = await self.storage.jobs.get(job_id)
                if job.report_path is not None:
                    await place_report(self.storage, job, Path(job.report_path))
                    reports += 1
                elif job.unknown_report_path is not None:
                    await place_unknown_report(self.storage, job, Path(job.unknown_report_path))
                    reports += 1
        self._emit(Forgot(forgotten.rows, tuple(forgotten.jobs), forgotten.latest_records, reports))
        return dataclasses.replace(forgotten, reports=reports)

    async def compact(self) -> int:
        """Give the space freed by pruning back to the file system (``VACUUM``); return how
        many bytes."""
        async with self.storage.maintenance():
            return await self.storage.retention.compact()

    # --- looking ---------------------------------------------------------------------------

    async def status(self, job: int | None = None) -> JobSummary:
        """The summary of a job (the latest by default)."""
        if job is None:
            latest = await self.storage.jobs.latest()
            if latest is None:
                raise ConfigError(messages.no_job(self.storage.location, unfinished=False))
            job = latest.id
        return await summarize(self.storage, job)

    async def jobs(self) -> list[JobSummary]:
        """Every job's summary, oldest first."""
        return [await summarize(self.storage, job.id) for job in await self.storage.jobs.list()]

    async def remote_imports(self) -> list[RemoteImport]:
        """The remote imports recorded in this database, oldest first."""
        return await self.storage.remote.list()

    async def write_report(
        self,
        job: int,
        path: str | os.PathLike[str] | None = None,
        states: Collection[RowState] = PROBLEM_STATES,
    ) -> tuple[Path, int]:
        """Write the job's rows in ``states`` as a CSV that can be fixed and loaded again
        (by default ``<database>-job-N-failed.csv`` next to the database, ``-unknown.csv``
        for the rows that may be on the server alone); return where and how many rows.
        ``ConfigError`` in one line when it cannot be written there."""
        found = await self.storage.jobs.get(job)
        target = Path(path) if path is not None else default_report_path(self.storage.location, job)
        if path is None and set(states) <= UNKNOWN_STATES:
            # The rows that may be on the server have a list of their own: never written
            # over the report of the rows to fix.
            target = unknown_report_path(target)
        check_report_path(target, "-o" if path is not None else "the report")
        return target, await write_report(self.storage.reports, found, target, states)

    async def write_report_to(
        self, job: int, out: TextIO, states: Collection[RowState] = PROBLEM_STATES
    ) -> int:
        """The same report, written to a text stream (the caller chooses its encoding:
        a report file is UTF-8 with a BOM); return how many rows."""
        found = await self.storage.jobs.get(job)
        return await write_rows(self.storage.reports, found, out, states)


def check_csv(
    path: str | os.PathLike[str],
    read: ReadSettings | None = None,
    options: CheckOptions | None = None,
) -> CheckReport:
    """Read a file as ``load_csv`` would and report every problem with its line number;
    sends nothing (``bulkimport check``)."""
    settings = Settings(read=read or ReadSettings())
    return check_file(Path(path), reader_options(settings), options)
