"""The SQLite storage: one file holds the jobs and the state of every row.

``SqliteStorage.open(path)`` checks, creates or migrates the file and gives the roles of
``bulkimport.storage.Storage``, each in a module of its own over one ``Database``:
``jobs.py``, ``ingest.py``, ``sending.py``, ``reports.py``, ``retention.py``, ``remote.py``,
``budget.py`` (the servers' shared budgets), and the runner lock in ``runner.py``. Every
SQLite trick lives in this package: WAL and its checkpoints, the loop connection of the
sending path, counts kept per statement, cells kept inside the record (``cells.py``), the
latest record of each customer as a digest folded in from the rows when needed
(``latest.py``, ``digests.py``), the header mark that keeps bulkimport out of other files.
``duplicates.py`` is ``check``'s ``DuplicateStore``, in a temporary file of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
from typing import Self

from bulkimport.storage.interface import Storage
from bulkimport.storage.sqlite.budget import SqliteServerBudget
from bulkimport.storage.sqlite.database import Database
from bulkimport.storage.sqlite.duplicates import SqliteDuplicates
from bulkimport.storage.sqlite.ingest import SqliteIngest
from bulkimport.storage.sqlite.jobs import SqliteJobs
from bulkimport.storage.sqlite.remote import SqliteRemoteLog
from bulkimport.storage.sqlite.reports import SqliteReports
from bulkimport.storage.sqlite.retention import SqliteRetention
from bulkimport.storage.sqlite.runner import hold_runner, runner_alive
from bulkimport.storage.sqlite.sending import SqliteSending
from bulkimport.storage.values import RunnerId

__all__ = ["SqliteDuplicates", "SqliteStorage"]


class SqliteStorage:
    """A queue database. Open with ``await SqliteStorage.open(path)`` (or ``async with``).

    Its roles may be used from several tasks: they are serialised by one lock. Several
    processes may open the same file (readers such as ``status``), but only the holder of
    ``runner()`` sends.
    """

    #: One runner at a time: the OS lock beside the file.
    several_runners = False

    def __init__(self, db: Database) -> None:
        """Use ``SqliteStorage.open``."""
        self.db = db
        self.path = db.path
        self.jobs = SqliteJobs(db)
        self.reading = SqliteIngest(db)
        self.sending = SqliteSending(db)
        self.reports = SqliteReports(db)
        self.retention = SqliteRetention(db, self.jobs)
        self.remote = SqliteRemoteLog(db)
        self.budget = SqliteServerBudget(db)

    @classmethod
    async def open(
        cls, path: Path | str, *, read_only: bool = False, create: bool = True
    ) -> SqliteStorage:
        """Open (or create) the database at ``path`` and bring its schema up to date;
        ``read_only``: never create, migrate or write it; not ``create``: open it only if it
        exists. ``DatabaseError`` says why not."""
        return cls(await Database.open(path, read_only=read_only, create=create))

    @property
    def location(self) -> str:
        return str(self.path)

    def runner(self) -> AbstractAsyncContextManager[RunnerId]:
        """Hold the right to send from this database; ``RunnerBusy`` if another has it."""
        return hold_runner(self.db)

    @contextlib.asynccontextmanager
    async def maintenance(self) -> AsyncIterator[None]:
        """Hold this database alone: the runner lock, as a runner does."""
        async with hold_runner(self.db):
            yield

    async def runner_alive(self) -> bool:
        """Whether a process holds ``runner()`` of this database now (a probe of the lock
        that a starting runner waits out)."""
        return runner_alive(self.path)

    async def close(self) -> None:
        """Close the connections (committed data is already on disk)."""
        await self.db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _conforms(storage: SqliteStorage) -> Storage:
    """For the type checker: ``SqliteStorage`` implements the ``Storage`` interface."""
    return storage
