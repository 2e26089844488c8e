"""A throwaway PostgreSQL cluster for the tests and the benches: ``initdb`` in a temporary
folder, a server listening on a Unix socket in that folder only (no TCP port), stopped and
removed at the end.

The server binaries are found on PATH, then in Debian's ``/usr/lib/postgresql/<n>/bin``.
``initdb`` refuses to run as root: as root, the cluster belongs to the ``postgres`` user
(Debian's package makes it) and is run through ``runuser``; the tests, still root, connect
over the socket with trust authentication. ``fsync`` is off: a test cluster is thrown away,
never recovered.
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

#: Why there is no cluster here (None: there can be one). Printed by the tests that skip.
INSTALL_ERROR_VARIABLE = "BULKIMPORT_POSTGRES_INSTALL_ERROR"


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


def missing_reason() -> str | None:
    """Why no cluster can be started here, or None."""
    if server_binaries() is None:
        reason = os.environ.get(INSTALL_ERROR_VARIABLE)
        return reason or "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on this machine"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return (
                "running as root, and no postgres user to run the server as (initdb refuses root)"
            )
    return None


@dataclass(frozen=True)
class Cluster:
    """A running throwaway cluster: its socket folder and superuser."""

    socket_dir: Path
    user: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database`` on it (the socket folder as the host, as libpq spells it)."""
        return f"postgresql://{self.user}@/{database}?host={self.socket_dir}"


def _as_owner(owner: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", owner, "--", *argv] if owner else argv


@contextlib.contextmanager
def cluster(*, tcp_port: int | None = None) -> Iterator[Cluster]:
    """Start a cluster in a temporary folder; stop and remove it on the way out. With
    ``tcp_port`` it listens on that port of 127.0.0.1 too, as a remote server does."""
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError(missing_reason())
    owner = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="bulkimport-pg-"))
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
                 "--no-sync", "-E", "UTF8", "--locale", "C"],
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
        listen = "127.0.0.1" if tcp_port else ""
        options = f"-k {base} -c listen_addresses='{listen}' -F -c max_connections=60"
        if tcp_port:
            options += f" -p {tcp_port}"
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
            yield Cluster(base)
        finally:
            subprocess.run(
                _as_owner(owner, [str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                check=False,
                capture_output=True,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
