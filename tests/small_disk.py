"""A small file system of its own for a test (a tmpfs mount): a full disk, for real.

Mounting needs root (CI runs as root); elsewhere the tests that need one are skipped, saying
why.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@contextlib.contextmanager
def small_disk(folder: Path, size_kb: int, *, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size_kb`` KiB mounted on ``folder`` (created) while inside."""
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a small file system needs root to mount")
    options = f"size={size_kb}k" + (",ro" if read_only else "")
    mounted = _mount("-t", "tmpfs", "-o", options, "tmpfs", str(folder))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def resize(folder: Path, size_kb: int) -> None:
    """Give the file system on ``folder`` another size (room freed, as a person would)."""
    done = _mount("-o", f"remount,size={size_kb}k", str(folder))
    assert done.returncode == 0, done.stderr


def fill(folder: Path, leave_bytes: int) -> Path:
    """A ballast file that leaves about ``leave_bytes`` free on ``folder``'s file system."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    ballast = folder / "ballast"
    with open(ballast, "wb") as handle:
        handle.write(b"\0" * max(0, free - leave_bytes))
    return ballast
