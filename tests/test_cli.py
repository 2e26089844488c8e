"""The command line end to end: real processes, a real sandbox on loopback, real SQLite files.

The sandbox runs in the test's event loop; each ``bulkimport`` command runs as a child
process, as a user or cron would run it, so signals and exit codes are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkimport.cli import cli
from bulkimport.protocol import secret_forms
from bulkimport.sandbox import Faults, SandboxHandle
from bulkimport.storage.sqlite import SqliteStorage
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    base_env,
    bulkimport,
    command,
    customers,
    get_json,
    good_rows,
    job_state,
    row_states,
    spawn,
    start_process,
    target,
    write_csv,
)

# --- a whole job ------------------------------------------------------------------------------


async def test_full_run_reaches_every_state_and_accounts_for_every_line(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(backmsg85_rate=0.2, seed=7))
    lines = [HEADER, *good_rows(40)]
    lines += [f"Again {i},139{i:08d},,X" for i in range(10)]  # duplicates of earlier rows
    lines += [f"No phone {i},,np{i}@example.com,X" for i in range(10)]  # rejected: 76
    lines += ["ragged,1", "also||bad,13700000000,,X", '"unclosed,1,,X']  # invalid locally (3)
    lines += good_rows(5, start=100)
    csv_file = write_csv(tmp_path / "leads.csv", lines)
    result = await bulkimport(
        "run", str(csv_file), *target(sandbox), "--rate", "0", "--max-attempts", "1",
        "--concurrency", "1", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 1, result.err
    summary = result.json()
    counts = summary["counts"]
    assert set(counts) == {
        "pending", "in_flight", "done", "duplicate", "rejected", "failed", "invalid", "skipped",
        "unknown",
    }  # fmt: skip
    data_lines = len(lines) - 1
    assert summary["total"] == data_lines == sum(counts.values())
    for state in ("done", "duplicate", "rejected", "failed", "invalid"):
        assert counts[state] > 0, (state, counts)
    assert counts["invalid"] == 3
    assert counts["pending"] == counts["in_flight"] == 0
    # Every line is one row, in one state.
    states = row_states(tmp_path / "bulkimport.db")
    assert sorted(states) == list(range(2, len(lines) + 1))
    # What the server holds is exactly the rows recorded done, each written once.
    held = await customers(sandbox)
    assert len(held) == counts["done"]
    assert all(c["writes"] == 1 for c in held)
    # The report lists the problem rows, and the path is printed.
    report = tmp_path / f"bulkimport-job-{summary['job']}-failed.csv"
    assert str(report) in result.err
    assert summary["report"] == str(report)
    text = report.read_text(encoding="utf-8-sig").splitlines()
    assert text[0] == HEADER + ",_extra,_line,_state,_code,_message"
    assert len(text) - 1 == counts["rejected"] + counts["failed"] + counts["invalid"]


async def test_second_run_of_the_same_command_resumes_a_stopped_job(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(30)])
    args = ["run", str(csv_file), *target(sandbox), "--rate", "0"]
    refused = await bulkimport(*args, cwd=tmp_path, password="wrong")
    assert refused.code == 3, refused.err
    assert "resume" in refused.err
    assert set(row_states(tmp_path / "bulkimport.db").values()) == {"pending"}
    again = await bulkimport(*args, cwd=tmp_path)
    assert again.code == 0, again.err
    assert "resuming job 1" in again.err
    held = await customers(sandbox)
    assert len(held) == 30
    assert all(c["writes"] == 1 for c in held)
    forced = await bulkimport(*args, "--new", "--json", cwd=tmp_path)
    assert forced.code == 0
    assert forced.json()["job"] == 2
    assert forced.json()["counts"]["duplicate"] == 30


async def test_fatal_credentials_stop_within_one_round_of_calls(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(500)])
    result = await bulkimport(
        "run", str(csv_file), *target(sandbox), "--rate", "0", "--concurrency", "4",
        cwd=tmp_path, password="not-the-password",
    )  # fmt: skip
    assert result.code == 3
    error_lines = [line for line in result.err.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1
    assert "password" in error_lines[0]
    assert "not-the-password" not in result.err + result.out
    stats = await get_json(sandbox, "/sandbox/stats")
    assert 1 <= stats["requests"] <= 4 + 1
    assert set(row_states(tmp_path / "bulkimport.db").values()) == {"pending"}


@pytest.mark.posix_only("SIGKILL and its exit status (Windows' kill is TerminateProcess)")
async def test_kill_mid_send_then_resume_loses_nothing_and_resends_little(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.01))
    rows = 1500
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(rows)])
    env = base_env(BULKIMPORT_PASSWORD="secret")
    proc = await start_process(
        *command(), "run", str(csv_file), *target(sandbox),
        "--rate", "0", "--concurrency", "8", "--quiet",
        cwd=tmp_path, env=env, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(600):
        await asyncio.sleep(0.05)
        if (await get_json(sandbox, "/sandbox/stats"))["requests"] >= 300:
            break
    proc.send_signal(signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL
    sent_before_kill = (await get_json(sandbox, "/sandbox/stats"))["requests"]
    assert sent_before_kill < rows, "the job finished before it could be killed"

    resumed = await bulkimport("resume", "--json", cwd=tmp_path)
    assert resumed.code == 0, resumed.err
    summary = resumed.json()
    counts = summary["counts"]
    assert summary["total"] == rows
    assert counts["done"] + counts["duplicate"] == rows
    # Resent rows are the ones whose outcome the kill left unknown: at most the calls in
    # flight plus one commit batch of outcomes, and the server answered them "duplicate".
    resent = summary["resent_unknown"]
    assert counts["duplicate"] <= resent <= 8 + 200
    held = await customers(sandbox)
    assert len(held) == rows
    assert all(c["writes"] == 1 for c in held)
    with sqlite3.connect(tmp_path / "bulkimport.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.posix_only("a signal sent to another process (Windows has console events instead)")
async def test_sigterm_stops_cleanly_with_exit_130_and_resumes(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.05))
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(400)])
    proc = await start_process(
        *command(), "run", str(csv_file), *target(sandbox),
        "--rate", "0", "--concurrency", "4",
        cwd=tmp_path, env=base_env(BULKIMPORT_PASSWORD="secret"),
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    for _ in range(600):
        await asyncio.sleep(0.05)
        if (await get_json(sandbox, "/sandbox/stats"))["requests"] >= 40:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode()
    assert "resume with: bulkimport resume 1" in err.decode()
    states = set(row_states(tmp_path / "bulkimport.db").values())
    assert "in_flight" not in states
    assert "pending" in states
    sandbox.set_faults(Faults())  # slow answers were for the stop; the rest goes at once
    resumed = await bulkimport("resume", "1", cwd=tmp_path)
    assert resumed.code == 0, resumed.err
    held = await customers(sandbox)
    assert len(held) == 400
    assert all(c["writes"] == 1 for c in held)


async def test_stage_then_resume_sends_later(tmp_path: Path, sandbox: SandboxHandle) -> None:
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(20)])
    staged = await bulkimport("stage", str(csv_file), *target(sandbox), "--json", cwd=tmp_path)
    assert staged.code == 0, staged.err
    assert staged.json()["state"] == "ready"
    assert staged.json()["counts"]["pending"] == 20
    assert (await get_json(sandbox, "/sandbox/stats"))["requests"] == 0
    sent = await bulkimport("resume", "--json", cwd=tmp_path)
    assert sent.code == 0, sent.err
    assert sent.json()["counts"]["done"] == 20
    status = await bulkimport("status", "--json", cwd=tmp_path)
    assert status.json()["state"] == "finished"


@pytest.mark.parametrize(
    ("encoding", "name"), [("gb18030", "张伟"), ("utf-8-sig", "Zoë Ünal"), ("utf-16", "李娜")]
)
async def test_legacy_encodings_and_bom_arrive_intact(
    tmp_path: Path, sandbox: SandboxHandle, encoding: str, name: str
) -> None:
    rows = [f"{name}{i},1380000{i:04d},,北京市朝阳区" for i in range(30)]
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *rows], encoding=encoding)
    result = await bulkimport("run", str(csv_file), *target(sandbox), "--rate", "0", cwd=tmp_path)
    assert result.code == 0, result.err
    held = {c["key"]: c["fields"] for c in await customers(sandbox)}
    assert held["13800000007"]["customername"] == f"{name}7"
    assert held["13800000007"]["city"] == "北京市朝阳区"


async def test_values_cannot_inject_parameters(tmp_path: Path, sandbox: SandboxHandle) -> None:
    csv_file = write_csv(
        tmp_path / "leads.csv",
        [HEADER, 'Eve,13811112222,x@y.z,"a&password=x&EVENT=Other%41+b=c"'],
    )
    result = await bulkimport(
        "run", str(csv_file), *target(sandbox), "--method", "post", cwd=tmp_path
    )
    assert result.code == 0, result.err
    (held,) = await customers(sandbox)
    assert held["fields"]["city"] == "a&password=x&EVENT=Other%41+b=c"


@pytest.mark.parametrize("log_format", ["plain", "json"])
async def test_password_never_reaches_database_or_output(
    tmp_path: Path, sandbox: SandboxHandle, log_format: str
) -> None:
    password = "Pa55-unique-7f3e"
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(10)])
    result = await bulkimport(
        "run", str(csv_file), *target(sandbox), "--log", str(tmp_path / "job.log"),
        "--log-format", log_format, "--pwdtype", "md5",
        cwd=tmp_path, password=password,
    )  # fmt: skip
    assert result.code == 3
    log_text = (tmp_path / "job.log").read_text(encoding="utf-8")
    assert "start" in log_text and "stopped" in log_text
    assert password not in result.out + result.err
    written = [path for path in os.scandir(tmp_path) if path.is_file()]
    assert {"bulkimport.db", "job.log"} <= {entry.name for entry in written}
    for entry in written:
        with open(entry.path, "rb") as handle:  # noqa: ASYNC230 - a small file, in a test
            data = handle.read()
        for secret in secret_forms(password):
            assert secret.encode() not in data, (entry.path, secret)


# --- errors and refusals ----------------------------------------------------------------------


async def test_missing_password_without_a_terminal_is_a_clear_error(tmp_path: Path) -> None:
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(2)])
    result = await bulkimport(
        "run", str(csv_file), "--url", "http://127.0.0.1:9/", "--org", "o", "--user", "u",
        "--campaign", "1", cwd=tmp_path, password=None,
    )  # fmt: skip
    assert result.code == 2
    assert "BULKIMPORT_PASSWORD" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("what", ["missing", "directory", "empty", "binary"])
async def test_unreadable_files_are_one_line_and_exit_2(tmp_path: Path, what: str) -> None:
    path = tmp_path / "input.csv"
    if what == "directory":
        path.mkdir()
    elif what == "empty":
        path.write_bytes(b"")
    elif what == "binary":
        path.write_bytes(bytes(range(256)) * 64)
    result = await bulkimport(
        "run", str(path), "--url", "http://127.0.0.1:9/", "--org", "o", "--user", "u",
        "--campaign", "1", cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    error_lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(error_lines) == 1
    assert str(path) in error_lines[0] or path.name in error_lines[0]


async def test_a_second_runner_on_the_same_database_is_refused(tmp_path: Path) -> None:
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(2)])
    queue = await SqliteStorage.open(tmp_path / "bulkimport.db")
    try:
        async with queue.runner():
            result = await bulkimport(
                "run", str(csv_file), "--url", "http://127.0.0.1:9/", "--org", "o",
                "--user", "u", "--campaign", "1", cwd=tmp_path,
            )  # fmt: skip
    finally:
        await queue.close()
    assert result.code == 75
    assert "already working on" in result.err


def test_profile_with_a_password_is_refused(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text('password = "x"\n')
    (tmp_path / "a.csv").write_text(HEADER + "\n")
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "a.csv"), "--config", str(profile)])
    assert result.exit_code == 2
    assert "must not hold the password" in result.output


def test_unknown_profile_key_is_named(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text("ratee = 5\n")
    (tmp_path / "a.csv").write_text(HEADER + "\n")
    result = CliRunner().invoke(cli, ["stage", str(tmp_path / "a.csv"), "--config", str(profile)])
    assert result.exit_code == 2
    assert "unknown setting 'ratee'" in result.output


def test_every_command_has_help_with_an_example() -> None:
    runner = CliRunner()
    for name, each in cli.commands.items():
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert each.help, name
        assert "Example" in result.output or "example" in result.output, name


def test_status_of_a_missing_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["status", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 2
    assert "no such database" in result.output


@pytest.mark.parametrize("command", [["resume"], ["resume", "3"], ["retry", "3"]])
def test_resume_and_retry_never_create_a_database(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "typo.db"
    result = CliRunner().invoke(cli, [*command, "--db", str(db)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: {db}: no such database; run or stage a file first"
    ]
    assert list(tmp_path.iterdir()) == []


# --- what the terminal says -----------------------------------------------------------------------


async def test_the_summary_is_said_once_with_what_reading_found(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    lines = [HEADER, "Ann,13800000001.0,,X", "", " , , , ", "Bob,'13800000002,,Y"]
    lines += ["Cy,13800000003.0,,Z", ""]
    source = write_csv(tmp_path / "leads.csv", lines)
    result = await bulkimport("run", str(source), *target(sandbox), cwd=tmp_path)
    assert result.code == 0, result.err
    assert result.out == (
        "job 1 finished: 3 rows (done 3); 3 blank lines skipped; 3 phone numbers repaired "
        "(2 .0 removed, 1 leading ' removed)\n"
    )
    assert "finished" not in result.err
    status = await bulkimport("status", cwd=tmp_path)
    assert (
        "  read    3 blank lines skipped; 3 phone numbers repaired (2 .0 removed, 1 leading ' "
        "removed)"
    ) in status.out.splitlines()
    summary = (await bulkimport("status", "--json", cwd=tmp_path)).json()
    assert (summary["blank_lines"], summary["repairs"]) == (
        3,
        {"decimal": 2, "apostrophe": 1, "text-formula": 0, "control-padding": 0},
    )

    one = write_csv(tmp_path / "one.csv", ["phone1", "13800000009.0"])
    single = await bulkimport("run", str(one), *target(sandbox), cwd=tmp_path)
    assert single.code == 0, single.err
    assert f"job 2: {one} (utf-8, delimiter ',', 1 column)" in single.err.splitlines()
    assert single.out == ("job 2 finished: 1 row (done 1); 1 phone number repaired (.0 removed)\n")


async def test_jobs_and_status_count_done_rows_alike(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(4)])
    assert (await bulkimport("run", str(source), *target(sandbox), cwd=tmp_path)).code == 0
    again = await bulkimport("run", str(source), *target(sandbox), "--new", cwd=tmp_path)
    assert again.code == 0
    listed = (await bulkimport("jobs", cwd=tmp_path)).out.splitlines()
    assert listed[0].split()[:6] == ["job", "state", "rows", "done", "duplicate", "problems"]
    assert listed[2].split()[:6] == ["2", "finished", "4", "0", "4", "0"]
    status = (await bulkimport("status", "2", cwd=tmp_path)).out
    assert "    done                  0" in status and "    duplicate             4" in status


@pytest.mark.posix_only("a signal sent to another process (Windows has console events instead)")
async def test_ctrl_c_while_reading_says_what_it_keeps(tmp_path: Path) -> None:
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(300_000)])
    proc = await spawn(
        "stage", str(csv_file), "--url", "http://127.0.0.1:9/", "--org", "o", "--user", "u",
        "--campaign", "1", cwd=tmp_path, capture=True,
    )  # fmt: skip
    for _ in range(600):
        await asyncio.sleep(0.02)
        if job_state(tmp_path / "bulkimport.db") == "reading":
            break
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode()
    text = err.decode()
    assert (
        "Ctrl-C: stopping job 1: keeping the rows read so far (reading resumes after them) "
        "(another one quits at once)"
    ) in text
    assert "calls in flight" not in text
    assert "Interrupted; resume with: bulkimport resume 1" in text


@pytest.mark.posix_only("a signal sent to another process (Windows has console events instead)")
def has_open(pid: int, path: Path) -> bool | None:
    """Whether process ``pid`` has ``path`` open; None without /proc to look in."""
    fds = Path(f"/proc/{pid}/fd")
    if not fds.is_dir():
        return None
    target = str(path.resolve())
    with contextlib.suppress(OSError):  # a descriptor closed while looking
        return any(os.readlink(fd) == target for fd in fds.iterdir())
    return False


async def reading(proc: asyncio.subprocess.Process, path: Path) -> None:
    """Return once ``proc`` has ``path`` open: past its start-up (a Ctrl-C during the imports
    is Python's, not the command's), at work on the file. Without /proc to look in: a second."""
    for _ in range(3000):
        found = has_open(proc.pid, path)
        if found is None:
            await asyncio.sleep(1.0)
            return
        if found:
            return
        assert proc.returncode is None, "the command ended before it read the file"
        await asyncio.sleep(0.01)
    raise AssertionError(f"the command did not open {path} in 30 s")


async def test_ctrl_c_in_check_exits_130(tmp_path: Path) -> None:
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(400_000)])
    proc = await spawn("check", str(csv_file), cwd=tmp_path, capture=True)
    await reading(proc, csv_file)
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130
    assert "Aborted" not in err.decode()
    assert err.decode().strip() == "Interrupted"


async def test_status_names_a_rows_code_once(tmp_path: Path, sandbox: SandboxHandle) -> None:
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(2), "No phone,,x@y.z,C"])
    assert (await bulkimport("run", str(source), *target(sandbox), cwd=tmp_path)).code == 1
    status = (await bulkimport("status", cwd=tmp_path)).out.splitlines()
    [line] = [line for line in status if line.strip().startswith("line 4:")]
    assert line.strip() == "line 4: rejected BackMsg_76 phone1"


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (("--rate", "fast"), "--rate (command line): 'fast' is not a number; give calls per"),
        (("--concurrency", "x"), "--concurrency (command line): 'x' is not a whole number"),
        (("--max-attempts", "2.5"), "--max-attempts (command line): '2.5' is not a whole number"),
    ],
)
async def test_a_wrong_option_value_is_named_and_makes_no_database(
    tmp_path: Path, option: tuple[str, str], said: str
) -> None:
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(2)])
    done = await bulkimport(
        "run", str(csv_file), "--url", "http://127.0.0.1:9/x", "--org", "o", "--user", "u",
        "--campaign", "1", *option, cwd=tmp_path,
    )  # fmt: skip
    assert done.code == 2
    assert done.err.startswith(f"Error: {said}"), done.err
    assert sorted(os.listdir(tmp_path)) == ["leads.csv"]
