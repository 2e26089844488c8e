"""Windows' missing pieces, imitated on Linux, for running bulkimport as a Windows user would.

There is no Windows machine here. What makes Windows different for bulkimport is a short
list, and each item is taken away or changed the way Windows has it, before bulkimport is
imported:

- ``fcntl`` cannot be imported; ``msvcrt`` can, with ``locking()`` behaving as Windows'
  does for one handle (exclusive, per open file, refused at once with ``LK_NBLCK``; made here
  from the real ``flock``, which is also per open file and dropped when the process dies).
- ``os.pread`` and ``os.pwrite`` do not exist.
- The event loop has no signal handlers: ``add_signal_handler`` raises
  ``NotImplementedError``, as Windows' loops do; ``signal.signal`` still works, as there.
- A file that any process holds open cannot be replaced, renamed over or removed
  (``PermissionError``, WinError 32), which is what Excel does to the file it shows.
- Standard output and standard error are in the ANSI code page, cp1252 (standard output
  strict), as when they are redirected to a file on a Western-European Windows.

What it does not imitate: drive letters and ``\\`` in paths, Windows' own event loop
(Proactor), CR LF line ends of text files, SIGBREAK, console Ctrl-C events, and the missing
``os.getuid``: those stay Linux's. What passes here is likely, not proven, to pass there.

Run a command under it: ``python tests/windows_imitation.py run leads.csv ...`` (as
``bulkimport run leads.csv ...``). Tests do it with ``BULKIMPORT_TEST_IMITATE_WINDOWS=1``
(tests/helpers.py).
"""

from __future__ import annotations

import asyncio
import errno
import os
import sys
import types
from typing import Any

SHARING_VIOLATION = 32  # Windows' ERROR_SHARING_VIOLATION


def _fake_msvcrt(real_flock: Any, lock_ex: int, lock_nb: int, lock_un: int) -> types.ModuleType:
    msvcrt = types.ModuleType("msvcrt")
    msvcrt.LK_UNLCK = 0  # type: ignore[attr-defined]
    msvcrt.LK_LOCK = 1  # type: ignore[attr-defined]
    msvcrt.LK_NBLCK = 2  # type: ignore[attr-defined]
    msvcrt.LK_RLCK = 3  # type: ignore[attr-defined]
    msvcrt.LK_NBRLCK = 4  # type: ignore[attr-defined]

    def locking(fd: int, mode: int, nbytes: int) -> None:
        if nbytes < 1:
            raise OSError(errno.EINVAL, "Invalid argument")
        if mode == 0:
            real_flock(fd, lock_un)
            return
        try:
            real_flock(fd, lock_ex | lock_nb)
        except BlockingIOError:
            # What Windows' CRT raises for a region another handle has locked.
            raise OSError(errno.EDEADLK, "Resource deadlock avoided") from None

    msvcrt.locking = locking  # type: ignore[attr-defined]
    return msvcrt


def _holders(path: str) -> list[int]:
    """The processes that have ``path`` open, from /proc."""
    try:
        wanted = os.stat(path)
    except OSError:
        return []
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                info = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if (info.st_dev, info.st_ino) == (wanted.st_dev, wanted.st_ino):
                found.append(int(pid))
                break
    return found


def _refuse_held(real: Any, paths: int) -> Any:
    """``real`` (os.replace, os.unlink…), refused with WinError 32 while another program
    holds one of its first ``paths`` arguments open."""

    def imitation(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("dir_fd") is None and kwargs.get("src_dir_fd") is None:
            for path in args[:paths]:
                text = os.fsdecode(path)
                if _holders(text):
                    raise PermissionError(
                        errno.EACCES,
                        "The process cannot access the file because it is being used by "
                        "another process",
                        text,
                        SHARING_VIOLATION,
                    )
        return real(*args, **kwargs)

    return imitation


def install() -> None:
    """Make this process look like Windows to bulkimport (see the module's docstring)."""
    import fcntl

    sys.modules["msvcrt"] = _fake_msvcrt(fcntl.flock, fcntl.LOCK_EX, fcntl.LOCK_NB, fcntl.LOCK_UN)
    sys.modules["fcntl"] = None  # type: ignore[assignment]  # `import fcntl` raises ImportError
    for name in ("pread", "pwrite"):
        if hasattr(os, name):
            delattr(os, name)

    def no_signal_handlers(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    loop_class: Any = asyncio.SelectorEventLoop
    loop_class.add_signal_handler = no_signal_handlers
    loop_class.remove_signal_handler = no_signal_handlers

    os.replace = _refuse_held(os.replace, 2)
    os.rename = _refuse_held(os.rename, 2)
    os.unlink = _refuse_held(os.unlink, 1)
    os.remove = _refuse_held(os.remove, 1)

    # Python's standard error escapes what it cannot show on every system; standard output
    # does not.
    sys.stdout.reconfigure(encoding="cp1252", errors="strict")  # type: ignore[union-attr]
    sys.stderr.reconfigure(encoding="cp1252", errors="backslashreplace")  # type: ignore[union-attr]


if __name__ == "__main__":
    install()
    from bulkimport.cli import main

    sys.argv[0] = "bulkimport"
    main()
