"""One job from start to end: find or create it, read the file into it, send it, sum it up.

``JobRun`` is one run of one job, its steps as methods; ``run_pipeline`` puts them in
order for the ``Client``. Every step is resumable: reading continues from the committed
byte offset, sending from the queue. What a run does and learns is emitted as typed events
(``bulkimport.events``); a stop is kept with the job as ``StopFacts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from bulkimport import messages
from bulkimport.errors import ConfigError, InputError
from bulkimport.events import (
    Emit,
    JobOpened,
    JobStopped,
    Opened,
    ReadProgress,
    RowsReset,
    RunEnded,
    RunStarted,
    SendProgress,
    SkippedUnchanged,
    Step,
    StopFacts,
    StopRequested,
    ignore,
)
from bulkimport.jobs.customers import require_customer_field
from bulkimport.jobs.events import event
from bulkimport.jobs.report import is_report, place_report
from bulkimport.jobs.staging import RowsInput, end_reading, open_rows_job, stage_rows
from bulkimport.jobs.stops import stop_facts
from bulkimport.jobs.summary import JobSummary, resumed, summarize
from bulkimport.jobs.watcher import Watcher
from bulkimport.reader import (
    FileFormat,
    InputKind,
    read_batches,
    refuse_stdin,
    sniff_format,
    wait_until_written,
)
from bulkimport.rows import Batch, FileIdentity
from bulkimport.send import (
    Dispatcher,
    DispatchOptions,
    Feed,
    HttpTransport,
    Listeners,
    Route,
    SendCounts,
    SendEnd,
    SendResult,
    Transport,
    exposure_warnings,
    open_session,
)
from bulkimport.send.budget import shared_budget
from bulkimport.send.policy import MAX_UNKNOWN
from bulkimport.settings import ReadSettings, SendSettings, Settings, Target, shown_target
from bulkimport.states import JobState, RowState, StopCause
from bulkimport.storage import Ingested, Job, RunnerId, Storage

log = logging.getLogger("bulkimport")

#: Opens the transport a job is sent through, for its settings (the target and how to send).
TransportFactory = Callable[[Settings], AbstractAsyncContextManager[Transport]]


@contextlib.asynccontextmanager
async def http_transport(settings: Settings) -> AsyncIterator[Transport]:
    """The real one: HTTP to the target's URL, ``concurrency`` keep-alive connections,
    directly or through the proxy the settings or the environment give (said in the log),
    with a warning for each way of sending that exposes the password (``log_exposure``)."""
    target = settings.target  # complete: the Client checked it
    async with open_session(settings.send.pool) as session:
        sender = HttpTransport(session, target.url, target.import_params(), settings.send)
        log_route(sender.route)
        log_exposure(target.url, settings.send)
        yield sender


def log_exposure(url: str, send: SendSettings) -> None:
    """Warn, on every run, of what exposes the password: ``--method get`` to a server that is
    not this machine (the request lines of every access log), ``--insecure``."""
    for warning in exposure_warnings(url, send):
        log.warning("%s", warning, extra=event("warning", text=warning))


def log_route(route: Route) -> None:
    """Say which proxy the calls go through (its password masked); nothing when direct."""
    if route.proxy is not None:
        log.info(
            "sending through %s",
            route,
            extra=event("route", proxy=route.shown, origin=route.origin),
        )


INGEST_BATCH_ROWS = 5000
#: How often a runner that does not read the job (another one does) looks for its rows.
FOLLOW_EVERY_S = 0.5


def reader_options(settings: Settings) -> ReadSettings:
    """How the file is read: the read settings, as the reader takes them."""
    return settings.read


def identify(path: Path) -> FileIdentity:
    """The file's identity, or an ``InputError`` saying why it cannot be read."""
    refuse_stdin(path)
    if not path.exists():
        raise InputError(messages.no_such_file(path))
    if path.is_dir():
        raise InputError(messages.is_a_directory(path))
    try:
        return FileIdentity.of(path)
    except OSError as exc:
        raise InputError(messages.unreadable(path, exc.strerror)) from None


class StopSignal:
    """A request to stop a job cleanly: finish the calls in flight, keep everything
    resumable (``Client.stop()``; the command line asks on Ctrl-C and SIGTERM). A second
    request is a hard interrupt. ``job`` and ``sending`` (calls may be in flight) are set by
    the pipeline, for the ``StopRequested`` event."""

    def __init__(self, emit: Emit = ignore) -> None:
        self.requested = False
        self.job: int | None = None
        self.sending = False
        self._emit = emit
        self._callbacks: list[Callable[[], None]] = []

    def on_stop(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def request(self, signal: str | None = None) -> None:
        """Stop (``signal``: the name of the signal that asked, None for ``Client.stop()``)."""
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._emit(StopRequested(self.job, self.sending, signal))
        for callback in self._callbacks:
            callback()


class JobRun:
    """One run of one job: the storage it is kept in, the job, where it goes and how, the
    runner this process holds, the transport, the stop it heeds, and what hears its events.

    The steps are methods: open the job (``open_file``, ``open_rows``, ``open_named``),
    ``read`` it, ``send`` it, ``read_and_send`` (sending starts with the first batch read),
    ``reset`` rows for a retry, ``skip_unchanged``, ``finish``. ``run_pipeline`` puts them
    in order; each is resumable on its own.
    """

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        target: Target,
        *,
        runner: RunnerId | None = None,
        transport: TransportFactory = http_transport,
        stop: StopSignal | None = None,
        emit: Emit = ignore,
        job: Job | None = None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.target = target
        self.runner = runner
        self.transport = transport
        self.stop = stop or StopSignal(emit)
        self.emit = emit
        self._job = job

    @property
    def job(self) -> Job:
        if self._job is None:
            raise ConfigError("no job opened yet")
        return self._job

    # --- opening ---------------------------------------------------------------------------

    async def open_file(self, path: Path, *, new: bool) -> Job:
        """The unfinished job for this file and target, or a new one (``new`` forces one)."""
        storage = self.storage
        await asyncio.to_thread(wait_until_written, path)  # a file still being written
        identity = identify(path)
        if not new:
            job = await storage.jobs.find_unfinished(identity, self.target.ref)
            if job is not None:
                self.emit(await resumed(storage, job, Opened.FOUND))
                return await self._opened(job)
        options = reader_options(self.settings)
        report = await asyncio.to_thread(is_report, path)
        if report:
            # A failed-rows report is always UTF-8, comma-separated, with no title lines,
            # whatever the profile says about the original file; its mapping still applies.
            options = dataclasses.replace(options, encoding=None, delimiter=None, skip_rows=0)
        fmt = await asyncio.to_thread(sniff_format, path, options)
        job = await storage.jobs.create(
            identity, self.target.ref, self.settings.stored(), fmt.to_json()
        )
        self.emit(JobOpened(job.id, str(path), fmt, len(fmt.header), failed_rows_report=report))
        return await self._opened(job)

    async def open_rows(self, rows: RowsInput, *, new: bool) -> Job:
        """The unfinished job of these rows (by name) for the target, or a new one."""
        options = reader_options(self.settings)
        job = await open_rows_job(
            self.storage, rows, self.settings, self.target, options, new=new, emit=self.emit
        )
        return await self._opened(job)

    async def open_named(self, job_id: int, *, send: bool) -> Job:
        """Job ``job_id``; sent to this run's target from now on if that changed (``resume
        --url``, ``--org``, ``--campaign``)."""
        storage = self.storage
        job = await storage.jobs.get(job_id)
        if send and self.target.url and self.target.ref != job.target:
            await storage.jobs.retarget(job.id, self.target.ref)
            job = await storage.jobs.get(job.id)
        return await self._opened(job)

    async def _opened(self, job: Job) -> Job:
        self._job = job
        self.stop.job = job.id
        if self.runner is not None:
            await self.storage.jobs.attach_runner(job.id, self.runner)
        return job

    # --- reading ---------------------------------------------------------------------------

    async def read(
        self,
        *,
        feed: Feed | None = None,
        halt: threading.Event | None = None,
        rows: RowsInput | None = None,
    ) -> Job:
        """Read the job's file into its queue from where reading stopped, to its end (or, for
        rows given by a program, stage ``rows``: ``stage_rows``).

        Alone (``stage``, or before sending), the job is ``ready`` at the end; a stop request
        (Ctrl-C) ends reading after the batch in hand is committed, the job is then
        ``interrupted`` and a later ``read`` continues at the committed offset.

        Beside sending (``feed``), the job's state is sending's to keep: reading tells
        ``feed`` of each committed batch and of its end, and ``halt`` (sending stopped) ends
        it early.
        """
        storage, job, emit = self.storage, self.job, self.emit
        if job.read_done:
            return job
        if feed is None and job.state is JobState.INTERRUPTED and job.started_at is None:
            # Interrupted before it ever ran, so while only reading: back to reading.
            await storage.jobs.set_state(job.id, JobState.READING)
            job = self._job = await storage.jobs.get(job.id)
        # A stop request reaches the reading thread through this event.
        halt = halt or threading.Event()
        self.stop.on_stop(halt.set)
        if self.stop.requested:
            halt.set()
        if self.runner is not None and self.storage.several_runners:
            job = await self._follow(feed, halt)
            if job.read_done or halt.is_set():
                return job
        if job.format.kind is InputKind.ROWS:
            job = await stage_rows(storage, job, rows, emit, halt, feed=feed)
            self._job = job
            return job
        path = Path(job.file.path)
        if identify(path) != job.file:
            raise InputError(messages.file_changed(path, job.id))
        fmt = FileFormat.from_json(job.fmt_json)
        batches = read_batches(
            path,
            fmt,
            start_offset=job.read_offset or None,
            start_line=job.read_line or None,
            batch_rows=INGEST_BATCH_ROWS,
        )
        stored = job.total_rows
        offset = job.read_offset
        size = job.file.size

        def on_batch(done: Ingested) -> None:
            nonlocal stored, offset
            stored = job.total_rows + done.rows
            offset = done.end_offset
            emit(ReadProgress(job.id, Step.GOING, offset, size, stored))
            if feed is not None:
                feed.added.set()

        # Parsing and storing run in a worker thread (Storage.reading.ingest); the loop
        # only hears of each commit. The ingest ends only once no thread runs the batches,
        # and closes them: a generator closed from the loop while a thread runs it (or is
        # finalized there) fails with "generator already executing".
        whole = False

        def to_the_end() -> Iterator[Batch]:
            nonlocal whole
            yield from batches
            whole = True

        emit(ReadProgress(job.id, Step.START, offset, size, 0))
        try:
            # closing(): should the ingest fail before its thread starts, the file is
            # closed all the same.
            with contextlib.closing(batches):
                await storage.reading.ingest(job.id, to_the_end(), on_batch=on_batch, stop=halt)
        finally:
            emit(ReadProgress(job.id, Step.END, offset, size, stored))
        self._job = await end_reading(storage, job, emit, whole=whole, alone=feed is None)
        return self._job

    async def _follow(self, feed: Feed | None, halt: threading.Event) -> Job:
        """While another runner reads the job's file (several send one job, and the file is
        on its host), follow what it stores until it is read to the end or this runner
        reads the rest: the other one is gone (``take_reading``). The job as it stands."""
        storage, job_id = self.storage, self.job.id
        assert self.runner is not None
        while not await storage.jobs.take_reading(job_id, self.runner):
            job = self._job = await storage.jobs.get(job_id)
            if job.read_done or halt.is_set():
                return job
            if feed is not None:
                feed.added.set()  # the other runner's batches: claim them
            await asyncio.sleep(FOLLOW_EVERY_S)
        # Where reading stands now: another runner may have read part of the file.
        self._job = await storage.jobs.get(job_id)
        return self._job

    # --- sending ---------------------------------------------------------------------------

    async def send(self, *, feed: Feed | None = None) -> SendResult:
        """Send the job's pending rows and record how it ended (job state and stop facts)."""
        storage, job, emit, target = self.storage, self.job, self.emit, self.target
        assert self.runner is not None, "sending needs the runner lock"
        await storage.jobs.set_state(job.id, JobState.RUNNING)
        self.stop.sending = True
        counts = SendCounts()
        emit(SendProgress(job.id, Step.START, counts, await storage.reports.counts(job.id)))

        def on_progress(now: SendCounts) -> None:
            nonlocal counts
            counts = now
            emit(SendProgress(job.id, Step.GOING, now))

        watcher = Watcher(storage, job, self.settings, target, emit, runner=self.runner)
        try:
            async with self.transport(self.settings) as sender:
                dispatcher = Dispatcher(
                    storage.sending,
                    job.id,
                    sender,
                    self.settings.send,
                    runner=self.runner,
                    options=DispatchOptions(
                        reached_before=await storage.jobs.url_answered(target.url),
                        max_unknown=MAX_UNKNOWN if target.options.rewrites else None,
                        budget=shared_budget(storage.budget, target.url, self.settings.send),
                    ),
                    listeners=Listeners(on_progress, watcher.rate, watcher.watch),
                    feed=feed,
                )
                self.stop.on_stop(dispatcher.stop)
                if self.stop.requested:
                    dispatcher.stop()
                result = await dispatcher.run()
                on_progress(dispatcher.counts)
        finally:
            emit(SendProgress(job.id, Step.END, counts))
        await self._record_end(result, watcher.outage_since_s)
        return result

    async def read_and_send(self, rows: RowsInput | None = None) -> SendResult:
        """Read the rest of the file while sending what is read: sending starts with the
        first committed batch and the job finishes only once reading is done and no row is
        left.

        A stop of sending (a fatal answer, an outage, Ctrl-C) ends reading after its batch
        in hand; a failure of reading stops sending (``StopCause.READING``) and is raised
        once the calls in flight are recorded. Either way both resume from where they were.
        """
        storage, job = self.storage, self.job
        feed = Feed()
        halt = threading.Event()
        await storage.jobs.set_state(job.id, JobState.RUNNING)
        reading = asyncio.create_task(
            self.read(feed=feed, halt=halt, rows=rows), name="bulkimport-reader"
        )

        def read_ended(task: asyncio.Task[Job]) -> None:
            feed.end(
                failed=task.cancelled()
                or task.exception() is not None
                or not task.result().read_done
            )

        reading.add_done_callback(read_ended)
        try:
            result = await self.send(feed=feed)
        finally:
            halt.set()  # sending ended (or failed): reading stops after the batch in hand
            await asyncio.wait([reading])
        error = None if reading.cancelled() else reading.exception()
        if error is not None:
            facts = StopFacts(StopCause.READING, at=time.time(), error=str(error))
            await self._stopped(JobState.INTERRUPTED, facts)
            raise error
        return result

    async def reset(self, states: Collection[RowState]) -> None:
        """``retry``: rows of the job in ``states`` go back to pending, attempts reset."""
        job = self.job
        reset = await self.storage.reports.reset_rows(job.id, states)
        self.emit(RowsReset(job.id, reset, frozenset(states)))

    async def skip_unchanged(self) -> None:
        """Mark the rows equal to the latest record their customer received as skipped.

        The customer is the value of ``--customer-key``, else of ``--phone-field``, else of
        the file's first phone-like field. Idempotent: on a resume it finds nothing new to
        skip among the rows still pending.
        """
        storage, job = self.storage, self.job
        key = require_customer_field(self.settings, job.format)
        unchanged = await storage.reports.mark_unchanged_skipped(job.id, self.target.ref, key)
        pending = (await storage.reports.counts(job.id))[RowState.PENDING]
        self.emit(
            SkippedUnchanged(
                job.id,
                unchanged.skipped,
                pending,
                key,
                unchanged.keyless,
                unchanged.maybe_loaded,
            )
        )

    async def _record_end(self, result: SendResult, outage_since_s: float | None) -> None:
        """The job's state after sending: finished, or stopped/interrupted with the facts of
        why."""
        cause = result.cause
        if result.end is SendEnd.FINISHED or cause is None:
            await self.storage.jobs.set_state(self.job.id, JobState.FINISHED)
            return
        facts = stop_facts(
            cause, result, self.settings, self.target, self.job, since_s=outage_since_s
        )
        state = (
            JobState.INTERRUPTED
            if cause in (StopCause.SIGNAL, StopCause.OUTAGE, StopCause.READING, StopCause.WINDOW)
            else JobState.STOPPED
        )
        if await self._left_to_others(cause):
            self.emit(JobStopped(self.job.id, state, facts))
            return
        await self._stopped(state, facts)

    async def _left_to_others(self, cause: StopCause) -> bool:
        """Whether the job's state is not this runner's to set (several send one job): it
        was asked to stop, or cannot read the file here, and others still send; or another
        runner finished the job meanwhile."""
        storage = self.storage
        if not storage.several_runners:
            return False
        if (await storage.jobs.get(self.job.id)).state is JobState.FINISHED:
            return True
        if cause not in (StopCause.SIGNAL, StopCause.READING):
            return False
        assert self.runner is not None
        return await storage.jobs.leave(self.job.id, self.runner)

    async def _stopped(self, state: JobState, facts: StopFacts) -> None:
        await self.storage.jobs.set_state(
            self.job.id, state, cause=facts.cause, facts=facts.to_json()
        )
        self.emit(JobStopped(self.job.id, state, facts))

    # --- the end ---------------------------------------------------------------------------

    def started(self, *, send: bool) -> None:
        """Say that a run of the job begins (its settings as stored: never the password)."""
        job = self.job
        self.emit(
            RunStarted(
                job.id,
                job.state,
                job.file.path,
                shown_target(job.target).key,
                send,
                self.settings.stored(),
            )
        )

    async def finish(
        self, started_s: float, *, report: bool = True, report_path: Path | None = None
    ) -> JobSummary:
        """The job's summary, its failed-rows report written first (``report``: at
        ``report_path``, or where the job keeps it)."""
        storage = self.storage
        placed = None
        if report:
            placed = await place_report(storage, await storage.jobs.get(self.job.id), report_path)
        summary = await summarize(storage, self.job.id, report=placed)
        self.emit(
            RunEnded(
                summary.job,
                summary.state,
                round(time.monotonic() - started_s, 3),
                summary.total,
                summary.counts,
                summary.resent_unknown,
                summary.message,
                summary.report,
                summary.blank_lines,
                {kind.value: n for kind, n in summary.repairs.items()},
            )
        )
        return summary


async def read_job(storage: Storage, job: Job, stop: StopSignal, *, emit: Emit = ignore) -> Job:
    """Read ``job``'s file into its queue alone (``JobRun.read``)."""
    settings = Settings()
    return await JobRun(storage, settings, settings.target, stop=stop, emit=emit, job=job).read()


async def run_pipeline(
    storage: Storage,
    *,
    settings: Settings,
    target: Target,
    transport: TransportFactory = http_transport,
    path: Path | None = None,
    rows: RowsInput | None = None,
    job_id: int | None = None,
    new: bool = False,
    send: bool = True,
    retry_states: Collection[RowState] = (),
    stop: StopSignal | None = None,
    emit: Emit = ignore,
) -> JobSummary:
    """Create or find the job, read it, send it (unless ``send`` is false), write the report.

    The job is that of the file at ``path``, of the ``rows`` given by a program, or the job
    ``job_id`` (which, if its rows are not all staged, needs ``rows`` too).

    ``retry_states`` (``retry``): rows of the job in these states go back to pending, with
    their attempts reset, before sending. With ``settings.skip_unchanged``, rows already
    loaded by an earlier job to the same target are marked skipped before sending.

    The summary's job state says how it ended: ``finished``, ``stopped`` (a fatal answer),
    ``interrupted`` (a signal) or ``ready`` (staged); all but ``finished`` are resumable.
    """
    started = time.monotonic()
    report_path = Path(settings.output.report) if settings.output.report else None
    async with storage.runner() as runner:
        run = JobRun(
            storage, settings, target, runner=runner, transport=transport, stop=stop, emit=emit
        )
        if path is not None:
            job = await run.open_file(path, new=new)
        elif rows is not None:
            job = await run.open_rows(rows, new=new)
        else:
            assert job_id is not None
            job = await run.open_named(job_id, send=send)
        if job.format.kind is InputKind.ROWS and not job.read_done and rows is None:
            # Before anything is sent: only the program that gives them can stage the rest.
            raise ConfigError(messages.rows_not_staged(job.id, job.format.sheet, job.read_offset))
        run.started(send=send)
        if send and retry_states:
            await run.reset(retry_states)
        if send and not job.read_done and not settings.skip_unchanged:
            # Send while reading: a wrong password or URL is known from the first batch.
            # (--skip-unchanged compares the whole file first.)
            await run.read_and_send(rows)
        else:
            await run.read(rows=rows)
            if not send or run.stop.requested:
                return await run.finish(started, report=False)
            if settings.skip_unchanged:
                await run.skip_unchanged()
            await run.send()
        return await run.finish(started, report_path=report_path)
