"""Helpers for tests that run ``bulkimport`` as a child process against a sandbox.

The sandbox runs in the test's event loop; each command runs as a real process, as a user
or cron would run it, so signals, exit codes and files on disk are the real ones. Every process
a test starts goes through ``start_process``: in a process group of its own, and killed with
that group when the test ends without having waited for it (a timeout, a failed assertion), so
that no process outlives its test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import sqlite3
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bulkimport.protocol import ImportParams
from bulkimport.rows import FileIdentity, NewRow, TargetRef
from bulkimport.sandbox import SandboxHandle
from bulkimport.settings import Method, SendSettings
from bulkimport.states import InvalidReason, RowState
from bulkimport.storage import RunnerId
from bulkimport.storage.sqlite import SqliteStorage

ROOT = Path(__file__).resolve().parents[1]
HEADER = "name,phone1,email,city"


@dataclass
class Done:
    """How a finished command ended."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("Error:")]

    def try_later_lines(self) -> list[str]:
        """What a "try later" (exit 75) said: not an error."""
        return [line for line in self.err.splitlines() if line.startswith("try later (exit 75):")]


def base_env(**extra: str) -> dict[str, str]:
    """The test's environment without any ``BULKIMPORT_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULKIMPORT_")}
    env.update(extra)
    return env


def password_env(password: str | None, **extra: str) -> dict[str, str]:
    """``base_env`` with ``password`` in ``BULKIMPORT_PASSWORD``; ``extra`` wins over both."""
    env = base_env()
    if password is not None:
        env["BULKIMPORT_PASSWORD"] = password
    env.update(extra)
    return env


async def spawn(
    *args: str,
    cwd: Path,
    password: str | None = "secret",
    env: dict[str, str] | None = None,
    capture: bool = False,
    stderr_path: Path | None = None,
) -> asyncio.subprocess.Process:
    """Start ``python -m bulkimport ARGS`` with ``password`` in ``BULKIMPORT_PASSWORD`` and
    the variables of ``env`` added: output piped with ``capture``, else discarded (standard
    error goes to ``stderr_path`` when given)."""
    out: Any = asyncio.subprocess.PIPE if capture else asyncio.subprocess.DEVNULL
    err: Any = out
    if stderr_path is not None:
        err = stderr_path.open("ab")
    try:
        return await _exec(args, cwd, password_env(password, **(env or {})), out, err)
    finally:
        if stderr_path is not None:
            err.close()


#: Set to 1, every command a test starts runs under tests/windows_imitation.py (.ci/run's
#: Windows pass). The variable is the tests' own: commands never see it (``base_env``).
IMITATE_WINDOWS = os.environ.get("BULKIMPORT_TEST_IMITATE_WINDOWS") == "1"


def command() -> list[str]:
    """How a test starts ``bulkimport``: ``python -m bulkimport``, or under the Windows
    imitation when ``BULKIMPORT_TEST_IMITATE_WINDOWS=1``."""
    if IMITATE_WINDOWS:
        return [sys.executable, str(ROOT / "tests" / "windows_imitation.py")]
    return [sys.executable, "-m", "bulkimport"]


async def _exec(
    args: Sequence[str], cwd: Path, env: dict[str, str], out: Any, err: Any
) -> asyncio.subprocess.Process:
    return await start_process(
        *command(),
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=out,
        stderr=err,
    )


async def bulkimport(
    *args: str,
    cwd: Path,
    password: str | None = "secret",
    env: dict[str, str] | None = None,
    timeout_s: float = 120,
) -> Done:
    """Run ``bulkimport ARGS`` to its end and return its exit code and output; a command
    still running after ``timeout_s`` is killed and fails the test."""
    proc = await spawn(*args, cwd=cwd, password=password, env=env, capture=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        raise AssertionError(
            f"`bulkimport {' '.join(args)}` was still running after {timeout_s:g} s: killed"
        ) from None
    finally:
        await kill_process(proc)  # when it has not ended: a timeout, a cancelled test
    assert proc.returncode is not None
    return Done(proc.returncode, decode_output(out), decode_output(err))


def decode_output(data: bytes) -> str:
    """A command's output as text. Under the Windows imitation it is cp1252 with what cp1252
    cannot show escaped (``\\u2192``): the escapes are read back, so that a test asserts the
    same text on both (it is the escaping that keeps the command alive that is tested, in
    tests/test_windows.py)."""
    if not IMITATE_WINDOWS:
        return data.decode(errors="replace")
    text = data.decode("cp1252", errors="replace")
    return re.sub(
        r"\\(?:u([0-9a-f]{4})|U([0-9a-f]{8})|x([0-9a-f]{2}))",
        lambda m: chr(int(m.group(1) or m.group(2) or m.group(3), 16)),
        text,
    )


# --- processes that end with their test ---------------------------------------------------------

#: The processes started by the running test and not known to have ended.
_started: list[asyncio.subprocess.Process] = []


async def start_process(program: str, *args: str, **options: Any) -> asyncio.subprocess.Process:
    """``asyncio.create_subprocess_exec`` for a test: the process leads a process group of its
    own (what it starts is killed with it), and is killed at the end of the test if it is
    still running then (``kill_leftover_processes``, from an autouse fixture in conftest.py)."""
    if os.name == "posix":
        options.setdefault("start_new_session", True)
    proc = await asyncio.create_subprocess_exec(program, *args, **options)
    _started[:] = [started for started in _started if started.returncode is None]
    _started.append(proc)
    return proc


async def kill_process(proc: asyncio.subprocess.Process) -> None:
    """``kill -9`` a process from ``start_process`` with its process group, and wait for it;
    nothing if it has ended."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.name == "posix" and os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        await proc.wait()


async def kill_leftover_processes() -> None:
    """Kill every process the test started and left running."""
    leftovers = [proc for proc in _started if proc.returncode is None]
    _started.clear()
    for proc in leftovers:
        await kill_process(proc)


def target(sandbox: SandboxHandle, *more: str, campaign: str = "1") -> list[str]:
    """The options that send to ``sandbox`` as its default account."""
    return ["--url", sandbox.url, "--org", "demo", "--user", "admin", "--campaign", campaign, *more]


def write_csv(path: Path, lines: Sequence[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def good_rows(n: int, start: int = 0) -> list[str]:
    """``n`` valid lead rows with distinct phone numbers (the sandbox's duplicate key)."""
    return [
        f"Lead {i},139{i:08d},lead{i}@example.com,City {i % 7}" for i in range(start, start + n)
    ]


async def kill_mid_send(sandbox: SandboxHandle, *args: str, cwd: Path, after: int) -> int:
    """Start ``bulkimport ARGS --quiet``, ``kill -9`` it once ``sandbox`` has had ``after``
    Import calls, and return how many it had when the process was gone."""
    proc = await start_process(
        *command(), *args, "--quiet",
        cwd=cwd, env=base_env(BULKIMPORT_PASSWORD="secret"), stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(600):
        await asyncio.sleep(0.05)
        if (await stats(sandbox))["requests"] >= after:
            break
    proc.send_signal(signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL
    requests: int = (await stats(sandbox))["requests"]
    return requests


async def get_json(sandbox: SandboxHandle, path: str) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sandbox.base_url}{path}") as response,
    ):
        assert response.status == 200
        return await response.json()


async def customers(sandbox: SandboxHandle, model_id: str = "1") -> list[dict[str, Any]]:
    path = f"/sandbox/customers?model_id={model_id}"
    result: list[dict[str, Any]] = await get_json(sandbox, path)
    return result


async def stats(sandbox: SandboxHandle) -> dict[str, Any]:
    result: dict[str, Any] = await get_json(sandbox, "/sandbox/stats")
    return result


async def arrivals(sandbox: SandboxHandle) -> list[tuple[float, int, str]]:
    """``(wall_time_s, http_status, code)`` of each Import request, in arrival order."""
    log = await get_json(sandbox, "/sandbox/arrivals")
    return [(float(t), int(s), str(c)) for t, s, c, *_ in log]


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one read-only query on a queue database that another process may be writing."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def row_states(db: Path) -> dict[int, str]:
    """``{line: state}`` of every row in the database."""
    return dict(query(db, "SELECT line, state FROM rows ORDER BY line"))


def state_counts(db: Path) -> dict[str, int]:
    return dict(query(db, "SELECT state, COUNT(*) FROM rows GROUP BY state"))


def job_state(db: Path) -> str | None:
    """The state of the latest job, or None if there is no database or no job yet."""
    if not db.exists():
        return None
    try:
        rows = query(db, "SELECT state FROM jobs ORDER BY id DESC LIMIT 1")
    except sqlite3.OperationalError:  # created but not migrated yet: no job
        return None
    return str(rows[0][0]) if rows else None


def job_phase(db: Path) -> str | None:
    """What the latest job was doing: its state, ``+reading`` while its file is not read to
    the end beside (``running+reading``: a ``run`` reads and sends at once)."""
    if not db.exists():
        return None
    try:
        rows = query(db, "SELECT state, read_done FROM jobs ORDER BY id DESC LIMIT 1")
    except sqlite3.OperationalError:  # created but not migrated yet: no job
        return None
    if not rows:
        return None
    state, read_done = rows[0]
    return str(state) if read_done or state == "reading" else f"{state}+reading"


def integrity(db: Path) -> str:
    return str(query(db, "PRAGMA integrity_check")[0][0])


def max_in_window(times_s: Iterable[float], window_s: float = 1.0) -> int:
    """The most events that fall in any window ``(t - window_s, t]``."""
    ordered = sorted(times_s)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def write_figures(name: str, figures: dict[str, Any]) -> None:
    """Print the figures of a reliability run (``pytest -s`` shows them) and, when
    ``BULKIMPORT_FIGURES_DIR`` is set, write them there as ``NAME.json`` for the docs."""
    text = json.dumps(figures, indent=2, sort_keys=True)
    print(f"\n== {name}\n{text}")
    folder = os.environ.get("BULKIMPORT_FIGURES_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.json").write_text(text + "\n", encoding="utf-8")


# --- storage ------------------------------------------------------------------------------------

#: The runner that claims rows in tests that claim directly, and the one that comes after it
#: (a restart): its recovery takes back what RUNNER left in flight.
RUNNER = RunnerId(1)
NEXT_RUNNER = RunnerId(2)
_runner_ids = itertools.count(1000)


def a_runner() -> RunnerId:
    """A runner id of its own, for each dispatcher a test starts (as each process has)."""
    return RunnerId(next(_runner_ids))


def job_target(name: str = "t") -> TargetRef:
    """A target for jobs made directly in storage."""
    return TargetRef(f"http://{name}.example/asterccinterfaces", "demo", "1")


def soffice() -> str:
    """LibreOffice's command, or the test is skipped saying why it is not there (``.ci/run``
    installs it; where it could not, it says why in ``BULKIMPORT_LIBREOFFICE_INSTALL_ERROR``)."""
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found is None:
        reason = os.environ.get(
            "BULKIMPORT_LIBREOFFICE_INSTALL_ERROR",
            "LibreOffice is not installed; .ci/run installs Debian's libreoffice-calc-nogui",
        )
        pytest.skip(reason)
    return found


# --- jobs made directly in a queue, for a Dispatcher to send ----------------------------------

#: The sandbox's default account, as the dispatcher's tests send as it.
PARAMS = ImportParams(org="demo", user="admin", password="secret", campaign="1")
FILE = FileIdentity("/data/leads.csv", 1, 1, "ab" * 32)


def phone(n: int) -> str:
    return f"138{n:08d}"


def record(n: int, **more: str) -> str:
    fields = {"name": f"Lead {n}", "phone1": phone(n), **more}
    return "||".join(f"{name}={value}" for name, value in fields.items())


def send_settings(**overrides: Any) -> SendSettings:
    base: dict[str, Any] = {
        "rate_per_s": 0.0,
        "concurrency": 8,
        "max_attempts": 5,
        "timeout_s": 5.0,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
    }
    if "method" in overrides:
        overrides["method"] = Method(overrides["method"])
    return SendSettings(**{**base, **overrides})


async def make_job(queue: SqliteStorage, records: Sequence[str | None]) -> int:
    """A ready job with one row per record (``None``: an invalid row)."""
    job = await queue.jobs.create(FILE, job_target(), {}, "{}")
    rows = [
        NewRow(line, RowState.PENDING, rec, (rec,))
        if rec is not None
        else NewRow(line, RowState.INVALID, None, ("",), InvalidReason.NO_VALUES, "no values")
        for line, rec in enumerate(records, start=2)
    ]
    await queue.reading.add_rows(job.id, rows, read_offset=100, read_line=len(rows) + 2)
    await queue.reading.finish(job.id)
    return job.id
