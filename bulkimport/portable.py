"""What differs between POSIX systems and Windows, in one place, decided by what the running
Python offers (never by the platform's name), so that every command starts on both.

- **File locks**: ``fcntl.flock`` where there is ``fcntl``; ``msvcrt.locking`` on one byte far
  past the data where there is not (Windows locks are mandatory, so the locked byte is not one
  anybody reads). Either way the lock belongs to the open file, and the OS drops it when the
  process dies, ``kill -9`` and Task Scheduler's "End" included.
- **Stop signals**: the event loop's own handlers where it has them; ``signal.signal`` where it
  has not (Windows' loops raise ``NotImplementedError``), the handler handing over to the loop.
  SIGBREAK (Ctrl-Break) stops too where it exists.
- **Reads and writes at an offset**: ``os.pread``/``os.pwrite`` are POSIX only; a seek and a
  read or write do the same on a file descriptor nobody else uses at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

try:
    import fcntl as _fcntl
except ImportError:  # Windows
    _fcntl = None  # type: ignore[assignment]

#: Where the byte of a Windows lock is: far past anything a lock file holds.
_MSVCRT_LOCK_OFFSET = 1 << 30


def try_lock(fd: int, *, shared: bool = False) -> bool:
    """Lock the open file ``fd`` without waiting; False if another holder has it.

    ``shared`` asks for a lock that only an exclusive one refuses, where the platform has
    such locks; Windows has not, and there a shared request is an exclusive one held for an
    instant (callers that ask shared only probe, and unlock at once).
    """
    if _fcntl is not None:
        try:
            _fcntl.flock(fd, (_fcntl.LOCK_SH if shared else _fcntl.LOCK_EX) | _fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt

    os.lseek(fd, _MSVCRT_LOCK_OFFSET, os.SEEK_SET)
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def unlock(fd: int) -> None:
    """Release the lock ``try_lock`` took on ``fd``."""
    if _fcntl is not None:
        _fcntl.flock(fd, _fcntl.LOCK_UN)
        return
    import msvcrt

    os.lseek(fd, _MSVCRT_LOCK_OFFSET, os.SEEK_SET)
    msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def read_at(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes of ``fd`` from ``offset``."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def write_at(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` to ``fd`` at ``offset``."""
    view = memoryview(data)
    while view:
        if hasattr(os, "pwrite"):
            written = os.pwrite(fd, view, offset)
        else:
            os.lseek(fd, offset, os.SEEK_SET)
            written = os.write(fd, view)
        view = view[written:]
        offset += written


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that ask a command to stop here: Ctrl-C, ``kill`` (SIGTERM) and, on
    Windows, Ctrl-Break."""
    names = ("SIGINT", "SIGTERM", "SIGBREAK")
    return tuple(getattr(signal, name) for name in names if hasattr(signal, name))


@contextlib.contextmanager
def on_stop_signals(callback: Callable[[int], None]) -> Iterator[None]:
    """While inside, call ``callback(signum)`` on the running loop when a stop signal comes.

    Only the main thread can take signals: elsewhere this does nothing. What the callback
    raises (a second Ctrl-C's ``KeyboardInterrupt``) leaves the loop as it would from the
    loop's own handlers.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    signals = stop_signals()
    try:
        for signum in signals:
            loop.add_signal_handler(signum, callback, signum)
    except NotImplementedError:
        pass  # Windows' loops: the handlers below
    else:
        try:
            yield
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback, signum)

    previous: dict[signal.Signals, Any] = {}
    try:
        for signum in signals:
            previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def printable_streams() -> None:
    """Make stdout and stderr escape what their encoding cannot show (``\\u5f20``) instead of
    failing: output redirected to a file on a Windows code page (cp1252, cp936) is in that
    code page, and one Chinese name must not end a command in a ``UnicodeEncodeError``."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None or getattr(stream, "errors", None) != "strict":
            continue
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
        if encoding in ("utf-8", "utf8"):
            continue
        with contextlib.suppress(ValueError, OSError):
            reconfigure(errors="backslashreplace")


#: Where the platform has it, ``O_NOFOLLOW``: a file of ours is never opened through a symbolic
#: link someone else planted under its name.
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: Windows would write line ends as CR LF without it.
BINARY = getattr(os, "O_BINARY", 0)


def create_private(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty and readable by its owner only (0600 where there are permission
    bits), unless something is there already; whether it was created. Every file that holds
    leads is made so before anything is written to it, so that no moment exists when others
    can read it (SQLite gives its ``-wal`` and ``-shm`` the mode of their database).

    On Windows a new file takes the access rules of its folder: keep the database in a folder
    of the user's own (``%LOCALAPPDATA%``) or one whose rules admit only those who may see it.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | BINARY, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def keep_private(fd: int) -> None:
    """Make the open file ``fd`` its owner's alone (0600) where files have permission bits:
    one opened with ``O_CREAT`` keeps the mode it was first made with."""
    if permission_bits_mean_privacy() and hasattr(os, "fchmod"):
        os.fchmod(fd, 0o600)


def permission_bits_mean_privacy() -> bool:
    """Whether a file's permission bits say who may read it: on POSIX systems. Windows
    has none (access is its ACLs' business, and ``os.stat`` shows every file as readable
    by all), so a warning drawn from them would fire on every run there."""
    return os.name == "posix"


def readable_by_others(path: str | os.PathLike[str]) -> bool:
    """Whether the permission bits of ``path`` let others than its owner read it; False where
    permission bits do not say who may read (Windows) or the file is gone."""
    if not permission_bits_mean_privacy():
        return False
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return bool(mode & 0o044)
