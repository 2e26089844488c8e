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

from bulkimport.errors import InputError
from bulkimport.jobs.events import event
from bulkimport.jobs.progress import LoggedProgress, ProgressListener
from bulkimport.jobs.reasons import stop_reason
from bulkimport.jobs.report import default_report_path, is_report, write_report
from bulkimport.jobs.summary import JobSummary, summarize
from bulkimport.jobs.watcher import Watcher
from bulkimport.reader import FileFormat, ReaderOptions, read_batches, sniff_format
from bulkimport.rows import FileIdentity
from bulkimport.send import (
    Dispatcher,
    Feed,
    HttpTransport,
    SendEnd,
    SendResult,
    Transport,
    open_session,
)
from bulkimport.send.policy import MAX_UNKNOWN
from bulkimport.settings import Settings
from bulkimport.states import JobState, RowState, StopCause
from bulkimport.storage import Ingested, Job, RunnerId, Storage

log = logging.getLogger("bulkimport")

#: Opens the transport a job is sent through, for its settings (the target and how to send).
TransportFactory = Callable[[Settings], AbstractAsyncContextManager[Transport]]


@contextlib.asynccontextmanager
async def http_transport(settings: Settings) -> AsyncIterator[Transport]:
    """The real one: HTTP to the target's URL, ``concurrency`` keep-alive connections."""
    target = settings.require_target()
    async with open_session(settings.send.pool) as session:
        yield HttpTransport(session, target.url, target.import_params(), settings.send)


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
    )


def identify(path: Path) -> FileIdentity:
    """The file's identity, or an ``InputError`` saying why it cannot be read."""
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
    active (the command line); a second one is a hard interrupt."""

    def __init__(self, *, signals: bool = False) -> None:
        self.requested = False
        self._signals = signals
        self._callbacks: list[Callable[[], None]] = []

    def on_stop(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def request(self) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning(
            "stopping: finishing the calls in flight (Ctrl-C again to quit at once)",
            extra=event("stop", reason="signal"),
        )
        for callback in self._callbacks:
            callback()

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        if not self._signals or threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, self.request)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)


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
    identity = identify(path)
    if not new:
        job = await storage.jobs.find_unfinished(identity, target.ref)
        if job is not None:
            say(f"resuming job {job.id} ({job.state.value}) for {path}; --new starts afresh")
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
    say(
        f"job {job.id}: {path} ({fmt.encoding}, delimiter {fmt.delimiter!r}, "
        f"{len(fmt.header)} columns)"
    )
    return job


async def read_job(storage: Storage, job: Job, progress: ProgressListener, stop: StopSignal) -> Job:
    """Read the job's file into its queue from where reading stopped; ``READY`` at the end.

    A stop request (Ctrl-C) ends reading after the batch in hand is committed; the job is
    then ``interrupted`` and a later ``read_job`` continues at the committed offset.
    """
    if job.state is JobState.INTERRUPTED and job.started_at is None:
        # Interrupted before it ever ran, so while reading (send_job marks a job running
        # before anything else): back to reading, the only state rows can be added in.
        await storage.jobs.set_state(job.id, JobState.READING)
        job = await storage.jobs.get(job.id)
    if job.state is not JobState.READING:
        return job
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
    rows = job.total_rows

    def on_batch(done: Ingested) -> None:
        nonlocal rows
        rows = job.total_rows + done.rows
        progress.reading(done.end_offset, job.file.size, rows)

    # Parsing and storing run in one worker thread (Queue.ingest); the loop only hears of
    # each commit, and a stop request reaches the thread through this event.
    halt = threading.Event()
    stop.on_stop(halt.set)
    if stop.requested:
        halt.set()
    progress.start_reading(job.id, job.file.size, job.read_offset)
    try:
        # closing(): a stop leaves the generator unfinished; its file is closed at once.
        with contextlib.closing(batches):
            await storage.reading.ingest(job.id, batches, on_batch=on_batch, stop=halt)
    finally:
        progress.end_reading(rows)
    if stop.requested:
        await storage.jobs.set_state(job.id, JobState.INTERRUPTED, "interrupted while reading")
        return await storage.jobs.get(job.id)
    await storage.reading.finish(job.id)
    return await storage.jobs.get(job.id)


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
                reached_before=await storage.jobs.url_answered(target.url),
                max_unknown=MAX_UNKNOWN if target.options.rewrites else None,
                feed=feed,
                on_progress=progress.sending,
                on_rate=watcher.rate,
                on_watch=watcher.watch,
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
    state = (
        JobState.INTERRUPTED if cause in (StopCause.SIGNAL, StopCause.OUTAGE) else JobState.STOPPED
    )
    await storage.jobs.set_state(job.id, state, reason, cause)
    outcome = result.outcome
    # The command line prints the reason itself: the terminal needs it once.
    log.log(
        logging.WARNING if cause is StopCause.SIGNAL else logging.ERROR,
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
        ),
    )


async def run_pipeline(
    storage: Storage,
    *,
    settings: Settings,
    transport: TransportFactory = http_transport,
    path: Path | None = None,
    job_id: int | None = None,
    new: bool = False,
    send: bool = True,
    retry_states: Collection[RowState] = (),
    progress: ProgressListener | None = None,
    say: Callable[[str], None] = lambda text: None,
    stop: StopSignal | None = None,
) -> JobSummary:
    """Create or find the job, read it, send it (unless ``send`` is false), write the report.

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
            else:
                assert job_id is not None
                job = await storage.jobs.get(job_id)
            _log_start(job, settings, send=send)
            job = await read_job(storage, job, progress, stop)
            if not send or stop.requested:
                return _finish_log(await summarize(storage, job.id), started)
            if retry_states:
                reset = await storage.reports.reset_rows(job.id, retry_states)
                names = " and ".join(sorted(state.value for state in retry_states))
                say(f"job {job.id}: {reset:,} {names} rows back to pending")
                log.info(
                    "job %d: %d rows to retry",
                    job.id,
                    reset,
                    extra=event("retry", file_only=True, job=job.id, rows=reset),
                )
            if settings.skip_unchanged:
                await _skip_unchanged(storage, job, settings, say)
            await send_job(
                storage, job, settings, progress, stop, runner=runner, transport=transport
            )
            report = None
            counts = await storage.reports.counts(job.id)
            if any(n for state, n in counts.items() if state.is_problem):
                target_path = (
                    report_path or default_report_path(Path(storage.location), job.id)
                ).absolute()
                await write_report(storage.reports, job, target_path)
                report = str(target_path)
            return _finish_log(await summarize(storage, job.id, report=report), started)


def _log_start(job: Job, settings: Settings, *, send: bool) -> None:
    # Settings.stored() never holds the password; only the name of its variable.
    log.info(
        "job %d start: %s to %s",
        job.id,
        job.file.path,
        job.target_key,
        extra=event(
            "start",
            file_only=True,
            job=job.id,
            state=job.state.value,
            file=job.file.path,
            target=job.target_key,
            send=send,
            settings=settings.stored(),
        ),
    )


async def _skip_unchanged(
    storage: Storage, job: Job, settings: Settings, say: Callable[[str], None]
) -> None:
    """Mark the rows an earlier job already loaded to this target as skipped.

    Idempotent: on a resume it finds nothing new to skip among the rows still pending.
    """
    target = settings.require_target()
    skipped = await storage.reports.mark_unchanged_skipped(job.id, target.ref)
    pending = (await storage.reports.counts(job.id))[RowState.PENDING]
    say(
        f"job {job.id}: {skipped:,} rows skipped (unchanged since an earlier job), "
        f"{pending:,} to send"
    )
    log.info(
        "job %d: %d unchanged rows skipped",
        job.id,
        skipped,
        extra=event("skip_unchanged", file_only=True, job=job.id, skipped=skipped, pending=pending),
    )


def _finish_log(summary: JobSummary, started: float) -> JobSummary:
    seconds = time.monotonic() - started
    counts = ", ".join(f"{s.value} {n}" for s, n in summary.counts.items() if n)
    log.info(
        "job %d %s in %.1fs: %s",
        summary.job,
        summary.state.value,
        seconds,
        counts or "no rows",
        extra=event(
            "summary",
            job=summary.job,
            state=summary.state.value,
            seconds=round(seconds, 3),
            total=summary.total,
            counts={state.value: n for state, n in summary.counts.items()},
            resent_unknown=summary.resent_unknown,
            reason=summary.message,
            report=summary.report,
        ),
    )
    return summary
