"""The PostgreSQL storage: several hosts on one database, the first step of scale-out.

``await open_url("postgresql://user@host/db")`` (or ``PostgresStorage.open``) connects,
creates or migrates bulkimport's tables (``migrations/``) and gives the roles of
``bulkimport.storage.Storage``, each in a module of its own over one ``Database``:
``jobs.py``, ``ingest.py`` (COPY), ``sending.py`` (claims with ``FOR UPDATE SKIP LOCKED``,
outcomes in arrays), ``reports.py`` (with the latest records of incremental loads),
``retention.py``, ``remote.py``, ``budget.py`` (the servers' shared budgets, on the
server's clock), and the runner lock as advisory locks in ``runner.py``.
Rows move between states in one statement with their counters (``moves.py``).

Needs the ``postgres`` extra (``pip install 'bulkimport[postgres]'``: asyncpg). The password
of the database never reaches a message: see ``database.masked``.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Self

from bulkimport.errors import DatabaseError

try:
    import asyncpg  # noqa: F401
except ImportError as missing:  # pragma: no cover - the extra is installed for the tests
    raise DatabaseError(
        "a postgresql:// database needs the PostgreSQL driver: pip install 'bulkimport[postgres]'"
    ) from missing

from bulkimport.storage import is_postgres_url
from bulkimport.storage.interface import Storage
from bulkimport.storage.postgres.budget import PostgresServerBudget
from bulkimport.storage.postgres.database import Database, masked
from bulkimport.storage.postgres.ingest import PostgresIngest
from bulkimport.storage.postgres.jobs import PostgresJobs
from bulkimport.storage.postgres.leases import LEASE_S
from bulkimport.storage.postgres.remote import PostgresRemoteLog
from bulkimport.storage.postgres.reports import PostgresReports
from bulkimport.storage.postgres.retention import PostgresRetention
from bulkimport.storage.postgres.runner import hold_maintenance, hold_runner, runner_alive
from bulkimport.storage.postgres.sending import PostgresSending
from bulkimport.storage.values import RunnerId

__all__ = ["PostgresStorage", "is_postgres_url", "masked", "open_url"]


async def open_url(
    url: str, *, read_only: bool = False, create: bool = True, lease_s: float = LEASE_S
) -> PostgresStorage:
    """The storage in the PostgreSQL database at ``url`` (``postgresql://user@host/db``);
    see ``PostgresStorage.open``."""
    return await PostgresStorage.open(url, read_only=read_only, create=create, lease_s=lease_s)


class PostgresStorage:
    """A PostgreSQL database holding bulkimport's jobs and rows. Open with
    ``await PostgresStorage.open(url)`` (or ``async with``). Its roles may be used from
    several tasks and several processes at once, and several runners may send from it at
    once (``runner()``), each leasing what it claims for ``lease_s`` at a time."""

    several_runners = True

    def __init__(self, db: Database, *, lease_s: float = LEASE_S) -> None:
        """Use ``PostgresStorage.open``."""
        self.db = db
        self.lease_s = lease_s
        self.jobs = PostgresJobs(db)
        self.reading = PostgresIngest(db)
        self.sending = PostgresSending(db)
        self.reports = PostgresReports(db)
        self.retention = PostgresRetention(db)
        self.remote = PostgresRemoteLog(db)
        self.budget = PostgresServerBudget(db)

    @classmethod
    async def open(
        cls, url: str, *, read_only: bool = False, create: bool = True, lease_s: float = LEASE_S
    ) -> PostgresStorage:
        """Connect to ``url`` and bring the schema up to date; ``read_only``: never create
        or migrate it; not ``create``: it must exist. ``DatabaseError`` says why not."""
        db = await Database.open(url, read_only=read_only, create=create)
        return cls(db, lease_s=lease_s)

    @property
    def location(self) -> str:
        """The URL, its password masked."""
        return self.db.location

    def runner(self) -> AbstractAsyncContextManager[RunnerId]:
        """Send from this database, beside any other runners; ``RunnerBusy`` while
        ``maintenance()`` holds it."""
        return hold_runner(self.db, lease_s=self.lease_s)

    def maintenance(self) -> AbstractAsyncContextManager[None]:
        """Hold this database alone; ``RunnerBusy`` while a runner sends."""
        return hold_maintenance(self.db)

    async def runner_alive(self) -> bool:
        """Whether a process holds ``runner()`` of this database now."""
        return await runner_alive(self.db)

    async def close(self) -> None:
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


def _conforms(storage: PostgresStorage) -> Storage:
    """For the type checker: ``PostgresStorage`` implements the ``Storage`` interface."""
    return storage
