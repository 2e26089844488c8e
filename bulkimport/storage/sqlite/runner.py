"""One runner per database: an OS file lock beside it, and a ``runners`` row per holder.

The lock is an exclusive ``flock`` on ``<db>.lock`` holding the runner's pid. The OS drops it
when the process dies, even on ``kill -9``, so a stale lock file never blocks anyone, and
whether a runner is alive is a question the lock answers (``holder``), not a guess from
timestamps.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from bulkimport.errors import RunnerBusy
from bulkimport.storage.sqlite.database import Database
from bulkimport.storage.values import RunnerId


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


@contextlib.contextmanager
def _locked(path: Path, db_path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise RunnerBusy(
                f"another bulkimport is already working on {db_path} "
                f"(pid {holder}); wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield fd
        finally:
            # Empty the file before unlocking so that nobody reads a stale pid.
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.asynccontextmanager
async def hold_runner(db: Database) -> AsyncIterator[RunnerId]:
    """Hold the runner lock of ``db`` and register this process as a runner while inside.

    Raises ``RunnerBusy`` if another process holds it.
    """
    with _locked(lock_path(db.path), db.path):
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
            async with db.lock, db.transaction():
                await db.conn.execute(
                    "UPDATE runners SET ended_at = ?, seen_at = ? WHERE id = ?",
                    (time.time(), time.time(), runner_id),
                )
