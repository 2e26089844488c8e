"""One job from start to end: find or create it, read the file into it, send it, sum it up.

The command line builds the settings and calls these; library users may too. Every step
is resumable: reading continues from the committed byte offset, sending from the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from bulkimport.check.predict import key_fix
from bulkimport.errors import ConfigError, InputError
from bulkimport.jobs.customers import require_customer_field
from bulkimport.jobs.events import event
from bulkimport.jobs.progress import LoggedProgress, ProgressListener
from bulkimport.jobs.reasons import stop_reason
from bulkimport.jobs.report import is_report, place_report
from bulkimport.jobs.staging import RowsInput, end_reading, open_rows_job, stage_rows
from bulkimport.jobs.summary import JobSummary, plural, resuming_line, summarize
from bulkimport.jobs.watcher import Watcher
from bulkimport.portable import on_stop_signals
from bulkimport.protocol import CODES, Fix
from bulkimport.reader import (
    FileFormat,
    InputKind,
    ReaderOptions,
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
    SendEnd,
    SendResult,
    Transport,
    exposure_warnings,
    open_session,
)
from bulkimport.send.policy import MAX_UNKNOWN
from bulkimport.settings import SendSettings, Settings, shown_target
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
    target = settings.require_target()
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


def reader_options(settings: Settings) -> ReaderOptions:
    read = settings.read
    return ReaderOptions(
        encoding=read.encoding,
        delimiter=read.delimiter,
        skip_rows=read.skip_rows,
        rename=dict(read.rename),
        constants=read.constants,
        keep_empty=read.keep_empty,
        keep_spaces=read.keep_spaces,
        max_record_lines=read.max_record_lines,
        phone_field=read.phone_field,
        repair=read.repair,
        sheet=read.sheet,
        allow=read.allow,
    )


def identify(path: Path) -> FileIdentity:
    """The file's identity, or an ``InputError`` saying why it cannot be read."""
    refuse_stdin(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a CSV file")
    try:
        return FileIdentity.of(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None


class StopSignal:
    """A request to stop a job cleanly: finish the calls in flight, keep everything
    resumable. With ``signals``, Ctrl-C and SIGTERM make the request while ``watch()`` is
    active (the command line); a second one is a hard interrupt. ``job`` and ``sending``
    (calls may be in flight) are set by the pipeline, for the message."""

    def __init__(self, *, signals: bool = False) -> None:
        self.requested = False
        self.job: int | None = None
        self.sending = False
        self._signals = signals
        self._callbacks: list[Callable[[], None]] = []

    def on_stop(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def request(self, signum: int | None = None) -> None:
        """Stop (``signum``: the signal that asked, None for ``Client.stop()``)."""
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if signum is None:
            name = "a stop request"
        else:
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        doing = (
            "finishing the calls in flight"
            if self.sending
            else "keeping the rows read so far (reading resumes after them)"
        )
        again = " (another one quits at once)" if signum is not None else ""
        log.warning(
            "%s: stopping%s: %s%s",
            name,
            f" job {self.job}" if self.job is not None else "",
            doing,
            again,
            extra=event("stop", reason="signal", signal=name, job=self.job),
        )
        for callback in self._callbacks:
            callback()

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        if not self._signals:
            yield
            return
        with on_stop_signals(self.request):
            yield


async def open_job(
    storage: Storage,
    path: Path,
    settings: Settings,
    *,
    new: bool,
    say: Callable[[str], None],
) -> Job:
    """The unfinished job for this file and target, or a new one (``new`` forces one)."""
    target = settings.require_target()
    await asyncio.to_thread(wait_until_written, path)  # a file still being written
    identity = identify(path)
    if not new:
        job = await storage.jobs.find_unfinished(identity, target.ref)
        if job is not None:
            say(f"{await resuming_line(storage, job)}; --new starts afresh")
            return job
    options = reader_options(settings)
    if await asyncio.to_thread(is_report, path):
        # A failed-rows report is always UTF-8, comma-separated, with no title lines, whatever
        # the profile says about the original file; its mapping still applies.
        options = dataclasses.replace(options, encoding=None, delimiter=None, skip_rows=0)
        say(f"{path} is a failed-rows report: reading it as UTF-8 CSV, its _ columns dropped")
    fmt = await asyncio.to_thread(sniff_format, path, options)
    stored = settings.stored()
    job = await storage.jobs.create(identity, target.ref, stored, fmt.to_json())
    say(f"job {job.id}: {path} ({fmt.describe()}, {plural(len(fmt.header), 'column')})")
    return job


async def read_job(
    storage: Storage,
    job: Job,
    progress: ProgressListener,
    stop: StopSignal,
    *,
    feed: Feed | None = None,
    halt: threading.Event | None = None,
    rows: RowsInput | None = None,
) -> Job:
    """Read the job's file into its queue from where reading stopped, to its end (or, for
    rows given by a program, stage ``rows``: ``stage_rows``).

    Alone (``stage``, or before sending), the job is ``ready`` at the end; a stop request
    (Ctrl-C) ends reading after the batch in hand is committed, the job is then
    ``interrupted`` and a later ``read_job`` continues at the committed offset.

    Beside sending (``feed``), the job's state is sending's to keep: reading tells ``feed``
    of each committed batch and of its end, and ``halt`` (sending stopped) ends it early.
    """
    if job.read_done:
        return job
    if feed is None and job.state is JobState.INTERRUPTED and job.started_at is None:
        # Interrupted before it ever ran, so while only reading: back to reading.
        await storage.jobs.set_state(job.id, JobState.READING)
        job = await storage.jobs.get(job.id)
    # A stop request reaches the reading thread through this event.
    halt = halt or threading.Event()
    stop.on_stop(halt.set)
    if stop.requested:
        halt.set()
    if job.format.kind is InputKind.ROWS:
        return await stage_rows(storage, job, rows, progress, halt, feed=feed)
    path = Path(job.file.path)
    if identify(path) != job.file:
        raise InputError(
            f"{path}: the file changed since job {job.id} started reading it; "
            "start a new job with --new"
        )
    fmt = FileFormat.from_json(job.fmt_json)
    batches = read_batches(
        path,
        fmt,
        start_offset=job.read_offset or None,
        start_line=job.read_line or None,
        batch_rows=INGEST_BATCH_ROWS,
    )
    stored = job.total_rows

    def on_batch(done: Ingested) -> None:
        nonlocal stored
        stored = job.total_rows + done.rows
        progress.reading(done.end_offset, job.file.size, stored)
        if feed is not None:
            feed.added.set()

    # Parsing and storing run in one worker thread (Storage.reading.ingest); the loop only
    # hears of each commit.
    whole = False

    def to_the_end() -> Iterator[Batch]:
        nonlocal whole
        yield from batches
        whole = True

    progress.start_reading(job.id, job.file.size, job.read_offset)
    try:
        # closing(): a stop leaves the generator unfinished; its file is closed at once.
        with contextlib.closing(batches):
            await storage.reading.ingest(job.id, to_the_end(), on_batch=on_batch, stop=halt)
    finally:
        progress.end_reading(stored)
    return await end_reading(storage, job, whole=whole, alone=feed is None)


async def send_job(
    storage: Storage,
    job: Job,
    settings: Settings,
    progress: ProgressListener,
    stop: StopSignal,
    *,
    runner: RunnerId,
    transport: TransportFactory,
    feed: Feed | None = None,
) -> SendResult:
    """Send the job's pending rows and record how it ended (job state, cause and reason)."""
    target = settings.require_target()
    await storage.jobs.set_state(job.id, JobState.RUNNING)
    stop.sending = True
    progress.start_sending(job.id, await storage.reports.counts(job.id))
    watcher = Watcher(storage, job, settings, progress)
    try:
        async with transport(settings) as sender:
            dispatcher = Dispatcher(
                storage.sending,
                job.id,
                sender,
                settings.send,
                runner=runner,
                options=DispatchOptions(
                    reached_before=await storage.jobs.url_answered(target.url),
                    max_unknown=MAX_UNKNOWN if target.options.rewrites else None,
                ),
                listeners=Listeners(progress.sending, watcher.rate, watcher.watch),
                feed=feed,
            )
            stop.on_stop(dispatcher.stop)
            if stop.requested:
                dispatcher.stop()
            result = await dispatcher.run()
            progress.sending(dispatcher.counts)
    finally:
        progress.end_sending()
    await _record_end(storage, job, settings, result, watcher.outage_since_s)
    return result


async def _read_and_send(
    storage: Storage,
    job: Job,
    settings: Settings,
    progress: ProgressListener,
    stop: StopSignal,
    *,
    runner: RunnerId,
    transport: TransportFactory,
    rows: RowsInput | None = None,
) -> SendResult:
    """Read the rest of the file while sending what is read: sending starts with the first
    committed batch and the job finishes only once reading is done and no row is left.

    A stop of sending (a fatal answer, an outage, Ctrl-C) ends reading after its batch in
    hand; a failure of reading stops sending (``StopCause.READING``) and is raised once the
    calls in flight are recorded. Either way both resume from where they were.
    """
    feed = Feed()
    halt = threading.Event()
    await storage.jobs.set_state(job.id, JobState.RUNNING)
    reading = asyncio.create_task(
        read_job(storage, job, progress, stop, feed=feed, halt=halt, rows=rows),
        name="bulkimport-reader",
    )

    def read_ended(task: asyncio.Task[Job]) -> None:
        feed.end(
            failed=task.cancelled() or task.exception() is not None or not task.result().read_done
        )

    reading.add_done_callback(read_ended)
    try:
        result = await send_job(
            storage, job, settings, progress, stop, runner=runner, transport=transport, feed=feed
        )
    finally:
        halt.set()  # sending ended (or failed): reading stops after the batch in hand
        await asyncio.wait([reading])
    error = None if reading.cancelled() else reading.exception()
    if error is not None:
        reason = f"reading stopped: {error}; sending stopped with it"
        await storage.jobs.set_state(job.id, JobState.INTERRUPTED, reason, StopCause.READING)
        raise error
    return result


async def _reset_rows(
    storage: Storage, job: Job, states: Collection[RowState], say: Callable[[str], None]
) -> None:
    """``retry``: rows of the job in ``states`` go back to pending, attempts reset."""
    reset = await storage.reports.reset_rows(job.id, states)
    names = " and ".join(sorted(state.value for state in states))
    say(f"job {job.id}: {reset:,} {names} rows back to pending")
    log.info(
        "job %d: %d rows to retry",
        job.id,
        reset,
        extra=event("retry", file_only=True, job=job.id, rows=reset),
    )


async def _record_end(
    storage: Storage,
    job: Job,
    settings: Settings,
    result: SendResult,
    outage_since_s: float | None,
) -> None:
    """The job's state after sending: finished, or stopped/interrupted with its cause and the
    one line that says why (the command line prints it; the log keeps it)."""
    cause = result.cause
    if result.end is SendEnd.FINISHED or cause is None:
        await storage.jobs.set_state(job.id, JobState.FINISHED)
        return
    reason = stop_reason(cause, result, settings, since_s=outage_since_s)
    if cause is StopCause.BUDGET:
        reason += mapping_hint(job, result)
    state = (
        JobState.INTERRUPTED
        if cause in (StopCause.SIGNAL, StopCause.OUTAGE, StopCause.READING, StopCause.WINDOW)
        else JobState.STOPPED
    )
    await storage.jobs.set_state(job.id, state, reason, cause)
    outcome = result.outcome
    # The command line prints the reason itself: the terminal needs it once. A signal or a
    # "try later" (exit 75) is no error.
    log.log(
        logging.WARNING if cause is StopCause.SIGNAL or cause.is_try_later else logging.ERROR,
        "job %d %s: %s",
        job.id,
        state.value,
        reason,
        extra=event(
            "stop",
            file_only=True,
            job=job.id,
            state=state.value,
            cause=cause.value,
            code=outcome.code if outcome is not None else None,
            reason=reason,
            # What the calls of this run did: answered, or maybe processed without an answer.
            answered=result.counts.answered,
            maybe_processed=result.counts.unknown + result.counts.pages,
        ),
    )


def mapping_hint(job: Job, result: SendResult) -> str:
    """For rows refused for their fields: the ``--map`` options that the names files commonly
    give the vendor's fields suggest for this file's columns (``check.fieldnames``); only
    said, never applied."""
    outcome = result.outcome
    code = CODES.get(outcome.backmsg) if outcome is not None and outcome.backmsg else None
    if code is None or code.fix is not Fix.FIELDS or job.format.kind is InputKind.ROWS:
        return ""
    options = key_fix(job.format)
    if not options:
        return ""
    return (
        f"; its columns may be the campaign's fields under other names: {' '.join(options)} "
        "(bulkimport check shows what each column is sent as)"
    )


async def run_pipeline(
    storage: Storage,
    *,
    settings: Settings,
    transport: TransportFactory = http_transport,
    path: Path | None = None,
    rows: RowsInput | None = None,
    job_id: int | None = None,
    new: bool = False,
    send: bool = True,
    retry_states: Collection[RowState] = (),
    progress: ProgressListener | None = None,
    say: Callable[[str], None] = lambda text: None,
    stop: StopSignal | None = None,
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
    progress = progress or LoggedProgress()
    stop = stop or StopSignal()
    started = time.monotonic()
    report_path = Path(settings.output.report) if settings.output.report else None
    with stop.watch():
        async with storage.runner() as runner:
            if path is not None:
                job = await open_job(storage, path, settings, new=new, say=say)
            elif rows is not None:
                options = reader_options(settings)
                job = await open_rows_job(storage, rows, settings, options, new=new, say=say)
            else:
                assert job_id is not None
                job = await storage.jobs.get(job_id)
                if send and settings.target.url and settings.target.ref != job.target:
                    # resume --url (or --org, --campaign): the job goes there from now on.
                    await storage.jobs.retarget(job.id, settings.target.ref)
                    job = await storage.jobs.get(job.id)
            if job.format.kind is InputKind.ROWS and not job.read_done and rows is None:
                # Before anything is sent: only the program that gives them can stage the rest.
                raise ConfigError(
                    f"job {job.id} is rows {job.format.sheet!r} given by a program, "
                    f"{plural(job.read_offset, 'row')} of them staged so far: load the same "
                    "rows under the same name (Client.load_rows) to go on"
                )
            stop.job = job.id
            _log_start(job, settings, send=send)
            if send and retry_states:
                await _reset_rows(storage, job, retry_states, say)
            if send and not job.read_done and not settings.skip_unchanged:
                # Send while reading: a wrong password or URL is known from the first batch.
                # (--skip-unchanged compares the whole file first.)
                await _read_and_send(
                    storage, job, settings, progress, stop, runner=runner, transport=transport,
                    rows=rows,
                )  # fmt: skip
            else:
                job = await read_job(storage, job, progress, stop, rows=rows)
                if not send or stop.requested:
                    return _finish_log(await summarize(storage, job.id), started)
                if settings.skip_unchanged:
                    await _skip_unchanged(storage, job, settings, say)
                await send_job(
                    storage, job, settings, progress, stop, runner=runner, transport=transport
                )
            report = await place_report(storage, await storage.jobs.get(job.id), report_path)
            return _finish_log(await summarize(storage, job.id, report=report), started)


def _log_start(job: Job, settings: Settings, *, send: bool) -> None:
    # Settings.stored() never holds the password; only the name of its variable.
    target = shown_target(job.target).key
    log.info(
        "job %d start: %s to %s",
        job.id,
        job.file.path,
        target,
        extra=event(
            "start",
            file_only=True,
            job=job.id,
            state=job.state.value,
            file=job.file.path,
            target=target,
            send=send,
            settings=settings.stored(),
        ),
    )


async def _skip_unchanged(
    storage: Storage, job: Job, settings: Settings, say: Callable[[str], None]
) -> None:
    """Mark the rows equal to the latest record their customer received as skipped.

    The customer is the value of ``--customer-key``, else of ``--phone-field``, else of the
    file's first phone-like field. Idempotent: on a resume it finds nothing new to skip
    among the rows still pending.
    """
    target = settings.require_target()
    key = require_customer_field(settings, job.format)
    unchanged = await storage.reports.mark_unchanged_skipped(job.id, target.ref, key)
    skipped, keyless = unchanged.skipped, unchanged.keyless
    pending = (await storage.reports.counts(job.id))[RowState.PENDING]
    text = (
        f"job {job.id}: {plural(skipped, 'row')} skipped (unchanged since the last record "
        f"loaded for the same {key}), {pending:,} to send"
    )
    if keyless:
        text += f" ({keyless:,} without a {key}: always sent)"
    if unchanged.maybe_loaded:
        text += (
            f"; {plural(unchanged.maybe_loaded, 'row')} sent again that an earlier job may "
            "have loaded (unknown there)"
        )
    say(text)
    log.info(
        "job %d: %d unchanged rows skipped",
        job.id,
        skipped,
        extra=event(
            "skip_unchanged", file_only=True, job=job.id, skipped=skipped, pending=pending,
            key=key, keyless=keyless, maybe_loaded=unchanged.maybe_loaded,
        ),
    )  # fmt: skip


def _finish_log(summary: JobSummary, started: float) -> JobSummary:
    seconds = time.monotonic() - started
    counts = ", ".join(f"{s.value} {n}" for s, n in summary.counts.items() if n)
    # The command line prints the summary its own way: the terminal needs it once.
    log.info(
        "job %d %s in %.1fs: %s",
        summary.job,
        summary.state.value,
        seconds,
        counts or "no rows",
        extra=event(
            "summary",
            file_only=True,
            job=summary.job,
            state=summary.state.value,
            seconds=round(seconds, 3),
            total=summary.total,
            counts={state.value: n for state, n in summary.counts.items()},
            resent_unknown=summary.resent_unknown,
            reason=summary.message,
            report=summary.report,
            blank_lines=summary.blank_lines,
            repairs={kind.value: n for kind, n in summary.repairs.items()},
        ),
    )
    return summary
