"""One runner per database: an OS file lock beside it, and a ``runners`` row per holder.

The lock is an exclusive OS lock on ``<db>.lock`` (``flock``, or ``msvcrt.locking`` on
Windows: ``bulkimport.portable``), the file holding the runner's pid. The OS drops it when the
process dies, even on ``kill -9`` or Task Scheduler's "End", so a stale lock file never blocks
anyone, and whether a runner is alive is a question the lock answers (``runner_alive``), not a
guess from timestamps.

``runner_alive`` asks by trying a *shared* lock without waiting (an exclusive one for an
instant on Windows, which has no shared locks): refused, someone holds the exclusive one.
Granted, it holds it for the microseconds between two system calls, and a runner starting
just then would find the lock taken: so a runner tries again for ``ACQUIRE_PATIENCE_S`` before
it believes another one holds it. Asking opens the lock file read-only and never creates it
(``status`` creates nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bulkimport.errors import DatabaseError, RunnerBusy
from bulkimport.portable import BINARY, NOFOLLOW, read_at, try_lock, unlock, write_at
from bulkimport.storage.sqlite.database import Database, disk_full, is_full
from bulkimport.storage.values import RunnerId

#: How long a starting runner tries again when the lock is taken: far longer than a probe
#: holds it, short enough to refuse a second runner at once.
ACQUIRE_PATIENCE_S = 0.5
_RETRY_EVERY_S = 0.005


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


def runner_alive(db_path: Path) -> bool:
    """Whether a process holds the runner lock of the database at ``db_path`` now."""
    try:
        fd = os.open(lock_path(db_path), os.O_RDONLY | BINARY)
    except OSError:
        return False  # no lock file: no runner ever held it here
    try:
        if not try_lock(fd, shared=True):
            return True
        unlock(fd)
        return False
    finally:
        os.close(fd)


async def _acquire(fd: int) -> bool:
    """Take the exclusive lock, trying again for ``ACQUIRE_PATIENCE_S`` (a probe may hold a
    shared lock for an instant); False if another runner holds it."""
    deadline = time.monotonic() + ACQUIRE_PATIENCE_S
    while True:
        if try_lock(fd):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_RETRY_EVERY_S)


@contextlib.asynccontextmanager
async def _locked(path: Path, db_path: Path) -> AsyncIterator[int]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | BINARY | NOFOLLOW, 0o600)
    except OSError as exc:
        if is_full(exc):
            raise disk_full(db_path) from None
        raise DatabaseError(f"cannot open the lock file {path} ({exc.strerror})") from None
    try:
        if not await _acquire(fd):
            holder = read_at(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise RunnerBusy(
                f"another bulkimport is already working on {db_path} "
                f"(pid {holder}); wait for it to finish"
            )
        try:
            try:
                os.ftruncate(fd, 0)
                write_at(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise disk_full(db_path) from None
                raise
            yield fd
        finally:
            # Empty the file before unlocking so that nobody reads a stale pid.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            unlock(fd)
    finally:
        os.close(fd)


@contextlib.asynccontextmanager
async def hold_runner(db: Database) -> AsyncIterator[RunnerId]:
    """Hold the runner lock of ``db`` and register this process as a runner while inside.

    Raises ``RunnerBusy`` if another process holds it.
    """
    async with _locked(lock_path(db.path), db.path):
        now = time.time()
        async with db.lock, db.transaction():
            cursor = await db.conn.execute(
                "INSERT INTO runners (pid, host, started_at, seen_at) VALUES (?, ?, ?, ?)",
                (os.getpid(), socket.gethostname(), now, now),
            )
            runner_id = cursor.lastrowid
            await cursor.close()
        assert runner_id is not None
        try:
            yield RunnerId(runner_id)
        finally:
            # Best effort: on a full disk the job's own error says so; the row is history.
            with contextlib.suppress(DatabaseError):
                async with db.lock, db.transaction():
                    await db.conn.execute(
                        "UPDATE runners SET ended_at = ?, seen_at = ? WHERE id = ?",
                        (time.time(), time.time(), runner_id),
                    )
