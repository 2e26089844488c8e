"""``Client``: bulkimport as a library, with every guarantee of the command line.

    async with Client(target, db="leads.db") as client:
        summary = await client.load_csv("leads.csv")
        summary.raise_for_state()

One client holds one storage (a queue database, opened on entry) and one target. It reads
and sends through the same steps as the command line, which is built on it: the same job
resumes from either. Progress reaches the caller as ``ProgressEvent`` values
(``on_progress``), never a terminal bar; messages for a person go to ``say``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Collection
from pathlib import Path
from types import TracebackType
from typing import Self

from bulkimport.check import CheckOptions, CheckReport, check_file
from bulkimport.errors import ConfigError
from bulkimport.jobs.pipeline import (
    StopSignal,
    TransportFactory,
    http_transport,
    reader_options,
    run_pipeline,
)
from bulkimport.jobs.progress import (
    AllOf,
    EventProgress,
    LoggedProgress,
    ProgressEvent,
    ProgressListener,
)
from bulkimport.jobs.report import PROBLEM_STATES, default_report_path, write_report
from bulkimport.jobs.summary import JobSummary, summarize
from bulkimport.settings import ReadSettings, SendSettings, Settings, Target
from bulkimport.states import RowState
from bulkimport.storage import RemoteImport, Storage
from bulkimport.storage.sqlite import SqliteStorage

DEFAULT_DB = "bulkimport.db"


class Client:
    """Loads files into one target through one queue database.

    ``target`` is where rows go, its password in memory only. ``db`` is the queue database
    (created if needed); ``storage`` another ``Storage`` instead. ``settings`` gives every
    other setting (``Settings``: how to send, read, report); ``send`` and ``read`` replace
    those parts of it. ``transport`` replaces HTTP (tests, recordings). ``on_progress``
    hears ``ProgressEvent`` values while reading and sending; ``say`` one-line messages.
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
        on_progress: Callable[[ProgressEvent], None] | None = None,
        progress: ProgressListener | None = None,
        say: Callable[[str], None] | None = None,
        handle_signals: bool = False,
    ) -> None:
        settings = settings or Settings()
        if target is not None:
            settings = dataclasses.replace(settings, target=target)
        if send is not None:
            settings = dataclasses.replace(settings, send=send)
        if read is not None:
            settings = dataclasses.replace(settings, read=read)
        self.settings = settings
        self._db = Path(db)
        self._storage = storage
        self._own_storage = storage is None
        self._transport = transport
        listeners: list[ProgressListener] = [progress or LoggedProgress()]
        if on_progress is not None:
            listeners.append(EventProgress(on_progress))
        self._progress: ProgressListener = listeners[0] if len(listeners) == 1 else AllOf(listeners)
        self._say = say or (lambda text: None)
        self._stop = StopSignal(signals=handle_signals)

    # --- opening ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._storage is None:
            self._storage = await SqliteStorage.open(self._db)
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

    def stop(self) -> None:
        """Ask the job in progress to stop cleanly (as Ctrl-C does): the calls in flight
        finish, everything stays resumable, the call returns an ``interrupted`` summary."""
        self._stop.request()

    # --- jobs ------------------------------------------------------------------------------

    async def load_csv(self, path: str | os.PathLike[str], *, new: bool = False) -> JobSummary:
        """Read the file into a job and send it; the same file and target again resumes
        its unfinished job (``new`` starts afresh). Returns the job's summary: check
        ``state``, or call ``raise_for_state()``."""
        return await self._run(path=Path(path), new=new)

    async def stage_csv(self, path: str | os.PathLike[str], *, new: bool = False) -> JobSummary:
        """Read the file into a job and stop (state ``ready``); send it with ``resume``."""
        return await self._run(path=Path(path), new=new, send=False)

    async def resume(self, job: int | None = None) -> JobSummary:
        """Go on with a job (the latest unfinished one by default): reading, then sending."""
        found = await (
            self.storage.jobs.get(job)
            if job is not None
            else self.storage.jobs.latest(unfinished=True)
        )
        if found is None:
            raise ConfigError(f"no unfinished job in {self.storage.location}")
        return await self._run(job_id=found.id)

    async def retry(self, job: int, *, rejected: bool = False) -> JobSummary:
        """Put the job's failed rows (and rejected ones, with ``rejected``) back to pending,
        attempts reset, and send them."""
        states = {RowState.FAILED, RowState.REJECTED} if rejected else {RowState.FAILED}
        return await self._run(job_id=job, retry_states=frozenset(states))

    async def _run(
        self,
        *,
        path: Path | None = None,
        job_id: int | None = None,
        new: bool = False,
        send: bool = True,
        retry_states: Collection[RowState] = (),
    ) -> JobSummary:
        if send:
            self.settings.require_target()
        return await run_pipeline(
            self.storage,
            settings=self.settings,
            transport=self._transport,
            path=path,
            job_id=job_id,
            new=new,
            send=send,
            retry_states=retry_states,
            progress=self._progress,
            say=self._say,
            stop=self._stop,
        )

    # --- looking ---------------------------------------------------------------------------

    async def status(self, job: int | None = None) -> JobSummary:
        """The summary of a job (the latest by default)."""
        if job is None:
            latest = await self.storage.jobs.latest()
            if latest is None:
                raise ConfigError(f"no job in {self.storage.location}")
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
        """Write the job's rows in ``states`` as a CSV that can be fixed and loaded again;
        return where and how many rows."""
        found = await self.storage.jobs.get(job)
        target = (
            Path(path)
            if path is not None
            else default_report_path(Path(self.storage.location), job)
        )
        return target, await write_report(self.storage.reports, found, target, states)


def check_csv(
    path: str | os.PathLike[str],
    read: ReadSettings | None = None,
    options: CheckOptions | None = None,
) -> CheckReport:
    """Read a file as ``load_csv`` would and report every problem with its line number;
    sends nothing (``bulkimport check``)."""
    settings = Settings(read=read or ReadSettings())
    return check_file(Path(path), reader_options(settings), options)
