"""One PostgreSQL database holding bulkimport's tables: its URL, its connections, its schema.

Opened by URL (``postgresql://user@host/db``). The password, when the URL holds one, is
used to connect and nowhere else: ``masked`` takes it out of the URL before it is shown, and
every error of the driver is turned into a ``DatabaseError`` that names the masked URL, the
password scrubbed from its text too. (A password is better given by ``PGPASSWORD`` or a
``.pgpass`` file, which asyncpg reads as libpq does.)

Each method of the roles is one statement in autocommit, or one transaction, taken from a
small pool of connections: every write has committed when it returns. The schema comes from
the numbered files of ``bulkimport.storage.postgres.migrations``, applied in order under a
transaction-level advisory lock, so that two processes starting at once migrate once.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import re
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import asyncpg

from bulkimport.errors import DatabaseError, DiskFull
from bulkimport.storage import url_password, without_password

#: Advisory lock keys (two int4 keys: this one, then a number): "BIMP", as SQLite's header.
LOCK_SPACE = 0x42494D50
#: Under (LOCK_SPACE, MIGRATING): a process migrating the schema.
MIGRATING = 1
#: Under (LOCK_SPACE, RUNNER_LOCK): the process that holds ``Storage.runner()``.
RUNNER_LOCK = 0
#: Under (RUNNER_SPACE, runner id): each runner while it lives, so that its rows in flight
#: are never taken back while it does (several runners on one job, later).
RUNNER_SPACE = LOCK_SPACE + 1
POOL_SIZE = 4
_MIGRATION_NAME = re.compile(r"^(\d{3})_(\w+)\.sql$")


async def _kept(conn: asyncpg.Connection) -> None:
    """How a connection goes back to the pool: as it is. The pool's own reset is a second
    round trip after every statement (unlocking, closing cursors, ``RESET ALL``) for state
    that these connections never keep: session locks live on connections of their own
    (``runner.py``), and a transaction left open is rolled back by the pool anyway."""


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The PostgreSQL migrations shipped with the package, in version order."""
    found: list[Migration] = []
    package = "bulkimport.storage.postgres.migrations"
    for entry in importlib.resources.files(package).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort()
    return found


def masked(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for messages and logs)."""
    return without_password(url, mark="***")


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's message) with the URL's password taken out wherever it is."""
    password = url_password(url)
    text = text.replace(url, masked(url))
    if password:
        for form in {password, urllib.parse.unquote(password)}:
            text = text.replace(form, "***")
    return text


#: Every session of a runner, its pool's and its locks' alike. A host that hangs inside one
#: of its transactions (a batch's few statements) holds the job's row locks, and every other
#: runner of the job waits for them: the server ends such a session after a minute idle in
#: its transaction, as a lease runs out. A host that vanished (powered off, cut from the
#: network) holds its locks, and its session's, until the server sees its TCP connection is
#: dead, two hours by the systems' defaults: asked after 15 s of silence, 3 probes 5 s apart,
#: and data unacknowledged for 30 s, the server drops it within about half a minute.
#: (Ignored on a Unix socket: a local process's connection ends with it.)
SESSION_SETTINGS = {
    "idle_in_transaction_session_timeout": "60s",
    "tcp_keepalives_idle": "15",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "30000",
}


class Database:
    """The pool of connections to one PostgreSQL database."""

    def __init__(self, url: str, pool: asyncpg.Pool, *, read_only: bool) -> None:
        """Use ``Database.open``."""
        self.url = url
        self.location = masked(url)
        self.pool = pool
        self.read_only = read_only

    @classmethod
    async def open(cls, url: str, *, read_only: bool = False, create: bool = True) -> Database:
        """Connect to the database at ``url`` and bring its schema up to date (unless
        ``read_only``: then it must be up to date). Not ``create``: the schema must exist.
        ``DatabaseError`` (one line, the password masked) says why not."""
        where = masked(url)
        settings = dict(SESSION_SETTINGS)
        if read_only:
            # Read-only: the server refuses any write of this storage's connections.
            settings["default_transaction_read_only"] = "on"
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=POOL_SIZE, server_settings=settings, reset=_kept
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            raise DatabaseError(
                f"cannot open the database {where}: {scrub(str(exc), url)}"
            ) from None
        database = cls(url, pool, read_only=read_only)
        try:
            async with database.errors():
                await database._migrate(read_only=read_only, create=create)
        except BaseException:
            await pool.close()
            raise
        return database

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def errors(self) -> AsyncIterator[None]:
        """Turn the driver's errors met inside into ``DatabaseError``, password masked."""
        try:
            yield
        except asyncpg.DiskFullError:
            raise DiskFull(
                f"the disk of the database {self.location} is full; nothing committed is lost:"
                " free some space on the server, then resume the job"
            ) from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise DatabaseError(
                f"the database {self.location} failed: {scrub(str(exc), self.url)}"
            ) from None

    async def _migrate(self, *, read_only: bool, create: bool) -> None:
        migrations = load_migrations()
        known = {m.version for m in migrations}
        async with self.pool.acquire() as conn:
            exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
            applied: set[int] = set()
            if exists:
                applied = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            self._refuse_newer(applied, known)
            if read_only or not create:
                if not exists:
                    raise DatabaseError(
                        f"{self.location} holds no bulkimport storage; run or stage a file first"
                    )
                if read_only and known - applied:
                    raise DatabaseError(
                        f"{self.location} was written by an older bulkimport; run `bulkimport "
                        "resume` (or run, stage) on it once to bring it up to date"
                    )
            if read_only or known <= applied:
                return
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_SPACE, MIGRATING)
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                )
                # Read again under the lock: another process may have just migrated.
                applied = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                self._refuse_newer(applied, known)
                for migration in migrations:
                    if migration.version in applied:
                        continue
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at)"
                        " VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        time.time(),
                    )

    def _refuse_newer(self, applied: set[int], known: set[int]) -> None:
        newer = sorted(applied - known)
        if newer:
            raise DatabaseError(
                f"{self.location} was written by a newer bulkimport (schema version "
                f"{newer[-1]}, this one knows up to {max(known)}); upgrade bulkimport"
            )

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """The rows of one statement (autocommit)."""
        async with self.errors():
            return list(await self.pool.fetch(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.errors():
            return await self.pool.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement (autocommit); return how many rows it touched."""
        async with self.errors():
            status = await self.pool.execute(sql, *args)
        return affected(status)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection inside one transaction, committed on success."""
        async with self.errors(), self.pool.acquire() as conn, conn.transaction():
            yield conn


def affected(status: str) -> int:
    """How many rows a command touched, from its status (``UPDATE 3``)."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0
