"""bulkimport as a Windows user runs it, under the imitation of tests/windows_imitation.py.

No Windows machine is at hand: every command here runs in a child process in which ``fcntl``
cannot be imported, ``os.pread``/``os.pwrite`` and the loop's signal handlers are missing, a
file another program holds open cannot be replaced or removed, and standard output is cp1252.
The same items are checked in-process where that is the simpler proof (the stop signals, the
escaping of output). A few things are portable on every system and tested here for that
reason: a database in a folder named with ``#``, ``?`` or ``%``.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bulkimport import portable
from bulkimport.sandbox import Faults, SandboxHandle
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    ROOT,
    Done,
    customers,
    get_json,
    good_rows,
    kill_process,
    password_env,
    row_states,
    start_process,
    target,
    write_csv,
)

IMITATION = ROOT / "tests" / "windows_imitation.py"

# The imitation runs on Linux (it reads /proc and makes its locks of flock); on Windows itself
# the other tests run for real.
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the imitation runs on Linux")


async def start(*args: str, cwd: Path, **env: str) -> asyncio.subprocess.Process:
    """``bulkimport ARGS`` under the Windows imitation, its output piped."""
    return await start_process(
        sys.executable, str(IMITATION), *args,
        cwd=cwd, env=password_env("secret", **env), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def finish(proc: asyncio.subprocess.Process, timeout_s: float = 120) -> Done:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        await kill_process(proc)
        raise
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode("cp1252"), err.decode("cp1252"))


async def imitated(*args: str, cwd: Path, **env: str) -> Done:
    return await finish(await start(*args, cwd=cwd, **env))


@pytest.fixture
async def slow_sandbox(sandbox_factory: SandboxFactory) -> AsyncIterator[SandboxHandle]:
    yield await sandbox_factory(faults=Faults(latency_s=0.05))


async def _until_requests(sandbox: SandboxHandle, count: int) -> None:
    for _ in range(1200):
        if (await get_json(sandbox, "/sandbox/stats"))["requests"] >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the sandbox never saw {count} requests")


# --- the imitation is in force ------------------------------------------------------------


def test_the_imitation_takes_away_what_windows_lacks() -> None:
    probe = (
        "import runpy, sys; sys.argv = ['x', '--version'];"
        "import windows_imitation as w; w.install();"
        "import os, asyncio\n"
        "try:\n import fcntl\nexcept ImportError:\n print('no fcntl')\n"
        "print('pread' if hasattr(os, 'pread') else 'no pread')\n"
        "loop = asyncio.new_event_loop()\n"
        "try:\n loop.add_signal_handler(2, print)\n"
        "except NotImplementedError:\n print('no signal handlers')\n"
        "import sys; print(sys.stdout.encoding)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=IMITATION.parent, capture_output=True, text=True
    ).stdout.split()
    assert out == ["no", "fcntl", "no", "pread", "no", "signal", "handlers", "cp1252"]


# --- the README's sample job, Ctrl-C, a second runner -----------------------------------------


async def test_the_sample_job_runs(tmp_path: Path) -> None:
    db = tmp_path / "quickstart.db"
    samples = ROOT / "samples"
    done = await imitated(
        "run", str(samples / "leads.csv"), "--config", str(samples / "sandbox.toml"),
        "--sandbox", "--db", str(db), cwd=tmp_path,
    )  # fmt: skip
    assert done.code == 1, done.err
    assert "Traceback" not in done.err
    assert "job 1 finished: 300 rows (done 291, duplicate 3, rejected 3, invalid 3)" in done.out
    assert (tmp_path / "quickstart-job-1-failed.csv").is_file()
    status = await imitated("status", "--db", str(db), cwd=tmp_path)
    assert "Traceback" not in status.err
    assert "job 1: finished" in status.out


async def test_ctrl_c_stops_resumably_and_resume_finishes(
    tmp_path: Path, slow_sandbox: SandboxHandle
) -> None:
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(300)])
    proc = await start(
        "run", str(csv_file), *target(slow_sandbox), "--rate", "0", "--concurrency", "4",
        cwd=tmp_path,
    )  # fmt: skip
    await _until_requests(slow_sandbox, 30)
    proc.send_signal(signal.SIGINT)
    stopped = await finish(proc, 30)
    assert stopped.code == 130, stopped.err
    assert "Ctrl-C: stopping job 1: finishing the calls in flight" in stopped.err
    assert "Interrupted; resume with: bulkimport resume 1" in stopped.err
    states = set(row_states(tmp_path / "bulkimport.db").values())
    assert "in_flight" not in states
    assert "pending" in states

    resumed = await imitated("resume", "1", cwd=tmp_path)
    assert resumed.code == 0, resumed.err
    held = await customers(slow_sandbox)
    assert len(held) == 300
    assert all(c["writes"] == 1 for c in held)


@pytest.mark.slow
async def test_a_second_runner_is_refused_and_status_sees_the_first(
    tmp_path: Path, slow_sandbox: SandboxHandle
) -> None:
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(300)])
    first = await start(
        "run", str(csv_file), *target(slow_sandbox), "--rate", "0", "--concurrency", "2",
        cwd=tmp_path,
    )  # fmt: skip
    try:
        await _until_requests(slow_sandbox, 10)
        second = await imitated("resume", "1", cwd=tmp_path)
        assert second.code == 75, second.err
        assert f"already working on bulkimport.db (pid {first.pid})" in second.err
        status = await imitated("status", "--json", cwd=tmp_path)
        assert status.json()["runner_alive"] is True
    finally:
        first.kill()  # Task Scheduler's "End": the process is gone without a word
        await first.communicate()
    status = await imitated("status", "--json", cwd=tmp_path)
    assert status.json()["runner_alive"] is False
    assert status.json()["state"] == "interrupted"
    resumed = await imitated("resume", "1", cwd=tmp_path)
    assert resumed.code == 0, resumed.err
    assert len(await customers(slow_sandbox)) == 300


# --- a report that Excel holds open ---------------------------------------------------------


async def test_a_report_held_open_is_one_line_and_the_retry_still_succeeds(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(code_rates={"76": 0.2}, seed=3))
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(60)])
    first = await imitated("run", str(csv_file), *target(sandbox), "--rate", "0", cwd=tmp_path)
    assert first.code == 1, first.err
    report = tmp_path / "bulkimport-job-1-failed.csv"
    before = report.read_bytes()
    rejected = before.count(b"\n") - 1
    assert rejected > 0

    sandbox.set_faults(Faults())
    with report.open("rb"):  # Excel has it open
        # A report that must be written again cannot replace the one on screen.
        exported = await imitated("failed", "1", "-o", str(report), cwd=tmp_path)
        assert exported.code == 2
        assert exported.err.count("\n") == 1, exported.err
        assert f"cannot replace or remove the report {report}" in exported.err
        assert "Close it there" in exported.err

        # Every row is done after the retry: the old report no longer applies, and cannot be
        # removed while it is open. The retry succeeded all the same.
        retried = await imitated("retry", "1", "--rejected", cwd=tmp_path)
    assert retried.code == 0, retried.err
    assert "Traceback" not in retried.err
    held_lines = [line for line in retried.err.splitlines() if str(report) in line]
    assert len(held_lines) == 1, retried.err
    assert "open in another program, such as Excel? Close it there, and delete it" in held_lines[0]
    assert report.read_bytes() == before  # untouched, and not shown as the job's report
    status = await imitated("status", "1", "--json", cwd=tmp_path)
    assert status.json()["report"] is None
    assert status.json()["counts"]["done"] == 60


async def test_a_report_held_open_when_rows_still_need_a_person(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(code_rates={"76": 0.2}, seed=3))
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(60)])
    first = await imitated("run", str(csv_file), *target(sandbox), "--rate", "0", cwd=tmp_path)
    assert first.code == 1, first.err
    report = tmp_path / "bulkimport-job-1-failed.csv"
    with report.open("rb"):
        again = await imitated("retry", "1", "--rejected", "--rate", "0", cwd=tmp_path)
    assert again.code == 1, again.err  # rows are rejected again: exit 1, as without Excel
    assert "Traceback" not in again.err
    assert f"cannot replace or remove the report {report}" in again.err
    # The stale report is not offered as the place to fix the rows.
    assert "list them with: bulkimport failed 1 -o FILE" in again.err
    assert "fix them there" not in again.err


# --- output on a code page --------------------------------------------------------------------


async def test_check_output_redirected_on_a_code_page_escapes_what_it_cannot_show(
    tmp_path: Path,
) -> None:
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, "张三,13800000001,a@b.cn,上海"])
    done = await imitated("check", str(csv_file), cwd=tmp_path)
    assert done.code == 0, done.err
    assert "Traceback" not in done.err
    assert "name=\\u5f20\\u4e09" in done.out


def test_printable_streams_escape_instead_of_failing() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="cp1252", errors="strict")
    real = sys.stdout
    sys.stdout = stream
    try:
        portable.printable_streams()
        print("上海 café", file=sys.stdout)
        sys.stdout.flush()
    finally:
        sys.stdout = real
    assert raw.getvalue().decode("cp1252").strip() == "\\u4e0a\\u6d77 café"


def test_printable_streams_leave_utf8_alone() -> None:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    real = sys.stdout
    sys.stdout = stream
    try:
        portable.printable_streams()
    finally:
        sys.stdout = real
    assert stream.errors == "strict"


# --- stop signals without the loop's handlers ------------------------------------------------


async def test_stop_signals_arrive_through_signal_signal_where_the_loop_has_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()

    def missing(*args: object) -> None:
        raise NotImplementedError

    monkeypatch.setattr(loop, "add_signal_handler", missing)
    got: list[int] = []
    arrived = asyncio.Event()

    def callback(signum: int) -> None:
        got.append(signum)
        arrived.set()

    before = signal.getsignal(signal.SIGTERM)
    with portable.on_stop_signals(callback):
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(arrived.wait(), 5)
    assert got == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is before


# --- the runner lock's pieces, portable and not ---------------------------------------------


def test_reads_and_writes_at_an_offset_without_pread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "pread")
    monkeypatch.delattr(os, "pwrite")
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        portable.write_at(fd, b"12345\n", 0)
        portable.write_at(fd, b"9", 2)
        assert portable.read_at(fd, 32, 0) == b"12945\n"
    finally:
        os.close(fd)


# --- paths that are not URIs --------------------------------------------------------------


@pytest.mark.parametrize("folder", ["job #1", "what?", "50% off", "空 格"])
async def test_status_of_a_database_in_a_folder_with_uri_characters(
    tmp_path: Path, sandbox: SandboxHandle, folder: str
) -> None:
    where = tmp_path / folder
    where.mkdir()
    db = where / "q.db"
    csv_file = write_csv(where / "leads.csv", [HEADER, *good_rows(3)])
    done = await imitated("run", str(csv_file), *target(sandbox), "--db", str(db), cwd=where)
    assert done.code == 0, done.err
    status = await imitated("status", "--db", str(db), "--json", cwd=tmp_path)
    assert status.code == 0, status.err
    assert status.json()["counts"]["done"] == 3


async def test_ctrl_c_stops_the_sandbox_command(tmp_path: Path) -> None:
    proc = await start("sandbox", "--port", "0", cwd=tmp_path)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert line.startswith(b"sandbox ready at http://127.0.0.1:")
    proc.send_signal(signal.SIGINT)
    done = await finish(proc, 30)
    assert done.code == 0, done.err
    assert "sandbox stopped" in done.err
    assert "Traceback" not in done.err
