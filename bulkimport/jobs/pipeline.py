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
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bulkimport.errors import ConfigError, InputError
from bulkimport.jobs.events import event
from bulkimport.jobs.progress import LoggedProgress, ProgressListener
from bulkimport.jobs.report import default_report_path, is_report, write_report
from bulkimport.protocol import describe_code
from bulkimport.reader import FileFormat, ReaderOptions, read_batches, sniff_format
from bulkimport.rows import FileIdentity
from bulkimport.send import (
    RATE_EVERY_S,
    Dispatcher,
    HttpTransport,
    SendEnd,
    SendResult,
    open_session,
)
from bulkimport.settings import Settings, Target
from bulkimport.states import JobState, RowState
from bulkimport.storage import Ingested, Job, RunnerId, Storage

log = logging.getLogger("bulkimport")

INGEST_BATCH_ROWS = 5000


@dataclass(frozen=True)
class JobSummary:
    """What a job holds now: the object that ``status --json`` and ``run --json`` print."""

    job: int
    state: JobState
    file: str
    target: str
    total: int
    counts: dict[RowState, int]
    resent_unknown: int
    message: str | None
    report: str | None = None
    last_errors: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0
    rate_per_s: float | None = None  # while running: rows settled per second, lately

    @property
    def problems(self) -> int:
        return sum(n for state, n in self.counts.items() if state.is_problem)

    @property
    def eta_s(self) -> float | None:
        """Seconds until every row is settled at the current rate (``None``: not sending)."""
        if not self.rate_per_s:
            return None
        unsettled = sum(n for state, n in self.counts.items() if not state.is_terminal)
        return unsettled / self.rate_per_s

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "state": self.state.value,
            "file": self.file,
            "target": self.target,
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
        }


async def summarize(storage: Storage, job_id: int, *, report: str | None = None) -> JobSummary:
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
        target=job.target_key,
        total=sum(counts.values()),
        counts=counts,
        resent_unknown=job.resent_unknown,
        message=job.message,
        report=report,
        last_errors=errors,
        created_at=job.created_at,
        updated_at=job.updated_at,
        rate_per_s=_current_rate(job),
    )


def _current_rate(job: Job) -> float | None:
    """The runner's last measured rate, if the job is running and the figure is fresh (a
    stale one means the runner died: no rate, no ETA)."""
    if job.state is not JobState.RUNNING or job.send_rate_at is None:
        return None
    if time.time() - job.send_rate_at > 3 * RATE_EVERY_S:
        return None
    return job.send_rate_per_s


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
    """Ctrl-C / SIGTERM while a job runs: the first asks for a clean stop, the second is
    a hard interrupt. Installed on the running loop only inside ``watch()``."""

    def __init__(self) -> None:
        self.requested = False
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
        if threading.current_thread() is not threading.main_thread():
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
    target = _target(settings)
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
    stored = {k: v for k, v in settings.values.items() if k != "password"}
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


def _target(settings: Settings) -> Target:
    if settings.target is None:
        raise ConfigError("the target is not set (--url, --org, --user, --campaign)")
    return settings.target


async def send_job(
    storage: Storage,
    job: Job,
    settings: Settings,
    password: str,
    progress: ProgressListener,
    stop: StopSignal,
    *,
    runner: RunnerId,
    session: aiohttp.ClientSession | None = None,
) -> SendResult:
    """Send the job's pending rows and record how it ended (job state and message)."""
    target = _target(settings)
    params = target.import_params(password)
    await storage.jobs.set_state(job.id, JobState.RUNNING)
    progress.start_sending(job.id, await storage.reports.counts(job.id))
    own_session = session is None
    if session is None:
        session = open_session(settings.send.concurrency)
    try:
        transport = HttpTransport(session, target.url, params, settings.send)

        async def on_rate(rate_per_s: float) -> None:
            await storage.jobs.record_send_rate(job.id, rate_per_s)

        dispatcher = Dispatcher(
            storage.sending,
            job.id,
            transport,
            settings.send,
            runner=runner,
            on_progress=progress.sending,
            on_rate=on_rate,
        )
        stop.on_stop(dispatcher.stop)
        if stop.requested:
            dispatcher.stop()
        result = await dispatcher.run()
        progress.sending(dispatcher.counts)
    finally:
        progress.end_sending()
        if own_session:
            await session.close()
    if result.end is SendEnd.FATAL and result.fatal is not None:
        fatal = result.fatal
        reason = fatal_reason(fatal.code, fatal.message, target, settings.password_env)
        await storage.jobs.set_state(job.id, JobState.STOPPED, reason)
        # The command line prints the reason itself: the terminal needs it once.
        log.error(
            "job %d stopped: %s",
            job.id,
            reason,
            extra=event(
                "stop", file_only=True, job=job.id, state="stopped", code=fatal.code, reason=reason
            ),
        )
    elif result.end is SendEnd.STOPPED:
        await storage.jobs.set_state(job.id, JobState.INTERRUPTED, "interrupted")
        log.warning(
            "job %d interrupted",
            job.id,
            extra=event("stop", file_only=True, job=job.id, state="interrupted", reason="signal"),
        )
    else:
        await storage.jobs.set_state(job.id, JobState.FINISHED)
    return result


def fatal_reason(code: str, message: str, target: Target, password_env: str) -> str:
    """One line naming what the server refused, and the setting to look at."""
    if code.startswith("BackMsg_"):
        number = int(code.removeprefix("BackMsg_"))
        hint = _setting_hint(number, target, password_env)
        return f"the server refused the job: {describe_code(number)}" + (
            f"; check {hint}" if hint else ""
        )
    if code.startswith("HTTP "):
        return f"the server refused the job: {code} (check --url {target.url} and the credentials)"
    return f"the server refused the job: {message or code}"


def _setting_hint(code: int, target: Target, password_env: str) -> str:
    """Which setting a fatal code points at, with the value that was used."""
    who = f"--usertype {target.usertype.value} --user {target.user}"
    if code == 2:
        return f"--org {target.org}"
    if code in (3, 5, 7, 12, 55, 15):
        return who
    if code in (6, 9, 63):
        return f"the password in {password_env} (--pwdtype {target.pwdtype.value}) for {who}"
    if code in (67, 70, 73):
        return f"--campaign {target.campaign}"
    if code == 1:
        return "that no required setting is empty"
    return ""


async def run_pipeline(
    storage: Storage,
    *,
    settings: Settings,
    password: str | None,
    path: Path | None = None,
    job_id: int | None = None,
    new: bool = False,
    send: bool = True,
    retry_states: Collection[RowState] = (),
    progress: ProgressListener | None = None,
    say: Callable[[str], None] = lambda text: None,
    report_path: Path | None = None,
) -> JobSummary:
    """Create or find the job, read it, send it (unless ``send`` is false), write the report.

    ``retry_states`` (``retry``): rows of the job in these states go back to pending, with
    their attempts reset, before sending. With ``settings.skip_unchanged``, rows already
    loaded by an earlier job to the same target are marked skipped before sending.

    The summary's job state says how it ended: ``finished``, ``stopped`` (a fatal answer),
    ``interrupted`` (a signal) or ``ready`` (staged); all but ``finished`` are resumable.
    """
    progress = progress or LoggedProgress()
    stop = StopSignal()
    started = time.monotonic()
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
            if password is None:
                raise ConfigError("no password")
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
            await send_job(storage, job, settings, password, progress, stop, runner=runner)
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
    # `values` never holds the password (see settings.resolve); only where to find it.
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
            settings=dict(settings.values),
        ),
    )


async def _skip_unchanged(
    storage: Storage, job: Job, settings: Settings, say: Callable[[str], None]
) -> None:
    """Mark the rows an earlier job already loaded to this target as skipped.

    Idempotent: on a resume it finds nothing new to skip among the rows still pending.
    """
    target = _target(settings)
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
