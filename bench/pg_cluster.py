"""A throwaway PostgreSQL cluster for the benchmarks, and ``psql`` against it.

    with cluster() as running:
        url = running.url("bench")      # postgresql://postgres@/bench?host=/tmp/...
        running.create_database("bench")
        running.psql("bench", "SELECT 1")

``initdb`` in a temporary folder, a server listening on a Unix socket in that folder only (no
TCP port), stopped and removed at the end: the same start-up as the tests' cluster, kept
apart from ``tests/`` so that a benchmark imports nothing of the test suite. The server
binaries are found on PATH, then in Debian's ``/usr/lib/postgresql/<n>/bin``; as root (which
``initdb`` refuses) the cluster belongs to the ``postgres`` user and runs through
``runuser``, and the benchmark, still root, connects over the socket with trust
authentication.

Unlike the tests' cluster, ``fsync`` stays on unless ``fsync=False`` is asked for: every
program measured on it (bulkimport, ``psql \\copy``) pays for durability as on a real server.
The server's settings are otherwise PostgreSQL's defaults; ``server_settings()`` lists those
that bear on loading (for the record of a run).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: The settings a run's record names: what decides the cost of a load.
RECORDED_SETTINGS = (
    "server_version", "fsync", "synchronous_commit", "wal_level", "shared_buffers",
    "max_wal_size", "checkpoint_timeout",
)  # fmt: skip


def server_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, if any."""
    candidates = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).parent)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    candidates += [Path(p) for p in versions]
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _as_owner(owner: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", owner, "--", *argv] if owner else argv


@dataclass(frozen=True)
class Cluster:
    """A running throwaway cluster: its socket folder, data folder and superuser."""

    socket_dir: Path
    data_dir: Path
    user: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database`` on it (the socket folder as the host, as libpq spells it)."""
        return f"postgresql://{self.user}@/{database}?host={self.socket_dir}"

    def psql_argv(self, database: str, command: str) -> list[str]:
        """``psql -c COMMAND`` on ``database``: quiet, stopping at the first error."""
        return [
            "psql", "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir),
            "-U", self.user, "-d", database, "-c", command,
        ]  # fmt: skip

    def psql(self, database: str, command: str) -> str:
        """Run ``command`` and return what it printed (unaligned, tuples only)."""
        argv = self.psql_argv(database, command)
        argv[1:1] = ["--no-align", "--tuples-only"]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()

    def create_database(self, database: str, template: str | None = None) -> None:
        """A fresh ``database`` (dropped first if it exists): empty, or a copy of
        ``template`` (a file-level copy, fast; nobody may be connected to ``template``)."""
        self.psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        copy = f' TEMPLATE "{template}"' if template else ""
        self.psql("postgres", f'CREATE DATABASE "{database}"{copy}')

    def checkpoint(self) -> None:
        """Write every dirty page out now: the next program measured does not pay for the
        last one's checkpoint."""
        self.psql("postgres", "CHECKPOINT")

    def settings(self) -> dict[str, str]:
        names = ", ".join(f"'{name}'" for name in RECORDED_SETTINGS)
        out = self.psql(
            "postgres", f"SELECT name, setting FROM pg_settings WHERE name IN ({names})"
        )
        return dict(line.split("|", 1) for line in out.splitlines() if "|" in line)


@contextlib.contextmanager
def cluster(*, fsync: bool = True) -> Iterator[Cluster]:
    """Start a cluster in a temporary folder; stop and remove it on the way out."""
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl, postgres) here")
    owner = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="bulkimport-bench-pg-"))
    data = base / "data"
    try:
        data.mkdir(mode=0o700)
        if owner:
            entry = pwd.getpwnam(owner)
            for path in (base, data):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            _as_owner(
                owner,
                [str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                 "-E", "UTF8", "--locale", "C"],
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
        options = f"-k {base} -c listen_addresses='' -c max_connections=60"
        if not fsync:
            options += " -F"
        subprocess.run(
            _as_owner(
                owner,
                [str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-w",
                 "-l", str(base / "server.log"), "start"],
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
        try:
            yield Cluster(base, data)
        finally:
            subprocess.run(
                _as_owner(owner, [str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                check=False,
                capture_output=True,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
