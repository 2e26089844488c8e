"""The runner lock of a PostgreSQL storage: advisory locks on a connection of its own.

Several runners share a database, on one job or on several, from one host or many:
``runner()`` opens a connection for as long as it is held and takes, without waiting, the
storage's runner lock (``LOCK_SPACE, RUNNER_LOCK``) *shared*; ``maintenance()`` (``prune``,
``forget``, ``compact``) takes it exclusive, so it runs while no runner does, and no runner
starts while it does (``RunnerBusy``: try later).

A runner registers a ``runners`` row and takes that runner's own lock too (``RUNNER_SPACE,
id``), and renews its lease while it lives (``leases.py``): recovery takes back the rows in
flight of a runner whose lock is gone or whose lease ran out, never a live one's. The server
drops the locks when the connection ends: a killed process (``kill -9``, a host gone once its
TCP connection times out) frees them, no stale lock blocks anyone. ``runner_alive`` reads
``pg_locks``, which takes no lock and so never makes a starting runner fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator

import asyncpg

from bulkimport.errors import DatabaseError, RunnerBusy
from bulkimport.storage.postgres.database import (
    LOCK_SPACE,
    RUNNER_LOCK,
    RUNNER_SPACE,
    SESSION_SETTINGS,
    Database,
    scrub,
)
from bulkimport.storage.postgres.leases import LEASE_S, SERVER_NOW
from bulkimport.storage.values import RunnerId

log = logging.getLogger("bulkimport")

_HELD = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    f" AND classid = {LOCK_SPACE}::oid AND objid = {RUNNER_LOCK}::oid AND objsubid = 2"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
)


async def runner_alive(db: Database) -> bool:
    """Whether a process holds the runner lock of this database now."""
    return bool(await db.fetchval(_HELD))


async def _connect(db: Database) -> asyncpg.Connection:
    """A connection of its own, for locks that live as long as it does."""
    try:
        return await asyncpg.connect(db.url, server_settings=SESSION_SETTINGS)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseError(
            f"cannot open the database {db.location}: {scrub(str(exc), db.url)}"
        ) from None


@contextlib.asynccontextmanager
async def _lock_connection(db: Database) -> AsyncIterator[asyncpg.Connection]:
    conn = await _connect(db)
    try:
        yield conn
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def hold_maintenance(db: Database) -> AsyncIterator[None]:
    """Hold the runner lock of ``db`` alone (no runner sends meanwhile, none starts);
    ``RunnerBusy`` while a runner holds it."""
    async with _lock_connection(db) as conn:
        async with db.errors():
            if not await conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", LOCK_SPACE, RUNNER_LOCK
            ):
                raise RunnerBusy(
                    f"a bulkimport is sending from {db.location}; wait for it to finish"
                )
        yield


@contextlib.asynccontextmanager
async def hold_runner(db: Database, *, lease_s: float = LEASE_S) -> AsyncIterator[RunnerId]:
    """Register this process as a runner of ``db`` while inside, beside any others, its
    lease renewed every third of ``lease_s``; ``RunnerBusy`` while ``prune``, ``forget`` or
    ``compact`` holds the database alone."""
    lease = _Lease(db, lease_s)
    lease.conn = conn = await _connect(db)
    try:
        async with db.errors():
            await _take_shared(db, conn)
            now = time.time()
            lease.runner_id = int(
                await conn.fetchval(
                    "INSERT INTO runners (pid, host, started_at, seen_at, lease_until)"
                    f" VALUES ($1, $2, $3, $3, {SERVER_NOW} + $4) RETURNING id",
                    os.getpid(),
                    socket.gethostname(),
                    now,
                    lease_s,
                )
            )
            await conn.execute("SELECT pg_advisory_lock($1, $2)", RUNNER_SPACE, lease.runner_id)
        renewing = asyncio.create_task(lease.renew(), name="bulkimport-lease")
        try:
            yield RunnerId(lease.runner_id)
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            await lease.end()
    finally:
        await lease.close()


async def _take_shared(db: Database, conn: asyncpg.Connection) -> None:
    if not await conn.fetchval(
        "SELECT pg_try_advisory_lock_shared($1, $2)", LOCK_SPACE, RUNNER_LOCK
    ):
        raise RunnerBusy(
            f"bulkimport prune, forget or compact is working on {db.location};"
            " wait for it to finish"
        )


class _Lease:
    """A runner's lease, renewed on its own connection until the runner ends.

    A renewal that fails (the database unreachable for a while, its connection gone) is
    tried again a second later, on a new connection if the old one is gone (the runner's
    locks taken again on it), each attempt bounded by a third of the lease: a lease runs out
    only when the database cannot be reached for most of it. A lease that ran out meanwhile
    was the others' to act on: the rows it covered may have been taken back, and outcomes,
    releases and claims of this runner then touch no row that is not its own.
    """

    def __init__(self, db: Database, lease_s: float) -> None:
        self.db, self.lease_s = db, lease_s
        self.runner_id = 0
        self.conn: asyncpg.Connection | None = None

    async def renew(self) -> None:
        wait_s = self.lease_s / 3
        while True:
            await asyncio.sleep(wait_s)
            try:
                late = await asyncio.wait_for(self._renew_once(), timeout=self.lease_s / 3)
            except (TimeoutError, DatabaseError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    OSError) as exc:  # fmt: skip
                log.warning("could not renew the runner's lease: %s", scrub(str(exc), self.db.url))
                await self._drop_connection()
                wait_s = min(1.0, self.lease_s / 3)
                continue
            wait_s = self.lease_s / 3
            if late:
                log.warning("the runner's lease had run out; rows it held may be sent by another")

    async def _renew_once(self) -> bool:
        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncpg.connect(self.db.url, server_settings=SESSION_SETTINGS)
            await _take_shared(self.db, self.conn)
            await self.conn.execute("SELECT pg_advisory_lock($1, $2)", RUNNER_SPACE, self.runner_id)
        late = await self.conn.fetchval(
            "WITH before AS (SELECT lease_until FROM runners WHERE id = $1)"
            f" UPDATE runners SET lease_until = {SERVER_NOW} + $2, seen_at = $3"
            f" WHERE id = $1 RETURNING (SELECT lease_until FROM before) < {SERVER_NOW}",
            self.runner_id,
            self.lease_s,
            time.time(),
        )
        return bool(late)

    async def _drop_connection(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def end(self) -> None:
        """The runner ends: its row says so (best effort); ``close`` lets its locks go."""
        conn = self.conn
        if conn is None or conn.is_closed():
            return
        with contextlib.suppress(DatabaseError):
            async with self.db.errors():
                await conn.execute(
                    "UPDATE runners SET ended_at = $1, seen_at = $1, lease_until = NULL"
                    " WHERE id = $2",
                    time.time(),
                    self.runner_id,
                )

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and not conn.is_closed():
            await conn.close()
