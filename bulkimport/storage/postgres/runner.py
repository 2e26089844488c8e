"""The runner lock of a PostgreSQL storage: advisory locks on a connection of its own.

``runner()`` opens a connection for as long as it is held and takes, without waiting, the
storage's runner lock (``LOCK_SPACE, RUNNER_LOCK``); refused, another process holds it
(``RunnerBusy``). It registers a ``runners`` row and takes that runner's own lock too
(``RUNNER_SPACE, id``), by which recovery knows its rows in flight are a live runner's. The
server drops both when the connection ends: a killed process (``kill -9``, a host gone once
its TCP connection times out) frees them, no stale lock blocks anyone. ``runner_alive`` reads
``pg_locks``, which takes no lock and so never makes a starting runner fail.
"""

from __future__ import annotations

import contextlib
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
from bulkimport.storage.values import RunnerId

_HELD = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    f" AND classid = {LOCK_SPACE}::oid AND objid = {RUNNER_LOCK}::oid AND objsubid = 2"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
)


async def runner_alive(db: Database) -> bool:
    """Whether a process holds the runner lock of this database now."""
    return bool(await db.fetchval(_HELD))


@contextlib.asynccontextmanager
async def hold_runner(db: Database) -> AsyncIterator[RunnerId]:
    """Hold the runner lock of ``db`` and register this process as a runner while inside;
    ``RunnerBusy`` if another process holds it."""
    try:
        conn = await asyncpg.connect(db.url)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseError(
            f"cannot open the database {db.location}: {scrub(str(exc), db.url)}"
        ) from None
    try:
        async with db.errors():
            if not await conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", LOCK_SPACE, RUNNER_LOCK
            ):
                raise RunnerBusy(
                    f"another bulkimport is already working on {db.location}; wait for it to finish"
                )
            now = time.time()
            runner_id = int(
                await conn.fetchval(
                    "INSERT INTO runners (pid, host, started_at, seen_at) VALUES ($1, $2, $3, $3)"
                    " RETURNING id",
                    os.getpid(),
                    socket.gethostname(),
                    now,
                )
            )
            await conn.execute("SELECT pg_advisory_lock($1, $2)", RUNNER_SPACE, runner_id)
        try:
            yield RunnerId(runner_id)
        finally:
            with contextlib.suppress(DatabaseError):
                async with db.errors():
                    await conn.execute(
                        "UPDATE runners SET ended_at = $1, seen_at = $1 WHERE id = $2",
                        time.time(),
                        runner_id,
                    )
    finally:
        await conn.close()
