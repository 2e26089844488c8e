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


@contextlib.asynccontextmanager
async def _lock_connection(db: Database) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, for locks that live as long as it does."""
    try:
        conn = await asyncpg.connect(db.url)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseError(
            f"cannot open the database {db.location}: {scrub(str(exc), db.url)}"
        ) from None
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
    async with _lock_connection(db) as conn:
        async with db.errors():
            if not await conn.fetchval(
                "SELECT pg_try_advisory_lock_shared($1, $2)", LOCK_SPACE, RUNNER_LOCK
            ):
                raise RunnerBusy(
                    f"bulkimport prune, forget or compact is working on {db.location};"
                    " wait for it to finish"
                )
            now = time.time()
            runner_id = int(
                await conn.fetchval(
                    "INSERT INTO runners (pid, host, started_at, seen_at, lease_until)"
                    f" VALUES ($1, $2, $3, $3, {SERVER_NOW} + $4) RETURNING id",
                    os.getpid(),
                    socket.gethostname(),
                    now,
                    lease_s,
                )
            )
            await conn.execute("SELECT pg_advisory_lock($1, $2)", RUNNER_SPACE, runner_id)
        renewing = asyncio.create_task(
            _renew(db, conn, runner_id, lease_s), name="bulkimport-lease"
        )
        try:
            yield RunnerId(runner_id)
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            with contextlib.suppress(DatabaseError):
                async with db.errors():
                    await conn.execute(
                        "UPDATE runners SET ended_at = $1, seen_at = $1, lease_until = NULL"
                        " WHERE id = $2",
                        time.time(),
                        runner_id,
                    )


async def _renew(db: Database, conn: asyncpg.Connection, runner_id: int, lease_s: float) -> None:
    """Renew the runner's lease every third of it, until cancelled. A renewal that fails
    (the database unreachable for a while) is tried again at the next one; a lease that ran
    out meanwhile was the others' to act on (its rows may have been taken back: outcomes of
    rows no longer this runner's are not recorded)."""
    while True:
        await asyncio.sleep(lease_s / 3)
        try:
            async with db.errors():
                late = await conn.fetchval(
                    "WITH before AS (SELECT lease_until FROM runners WHERE id = $1)"
                    f" UPDATE runners SET lease_until = {SERVER_NOW} + $2, seen_at = $3"
                    f" WHERE id = $1 RETURNING (SELECT lease_until FROM before) < {SERVER_NOW}",
                    runner_id,
                    lease_s,
                    time.time(),
                )
        except DatabaseError as exc:
            log.warning("could not renew the runner's lease: %s", exc)
            continue
        if late:
            log.warning("the runner's lease had run out; rows it held may be sent by another")
