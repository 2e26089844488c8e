"""`status` while a job is sending: the runner's measured rate, and the ETA derived from it;
and a job whose runner is gone, shown as interrupted."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bulkimport.jobs.pipeline import summarize
from bulkimport.sandbox import Faults
from bulkimport.send import Dispatcher, HttpTransport, Listeners, open_session
from bulkimport.send import dispatcher as dispatch
from bulkimport.send.pace import PaceState
from bulkimport.states import JobState, RowState
from bulkimport.storage.sqlite import SqliteStorage
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    PARAMS,
    a_runner,
    bulkimport,
    customers,
    good_rows,
    job_state,
    make_job,
    query,
    record,
    send_settings,
    spawn,
    stats,
    target,
    write_csv,
)


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    async with await SqliteStorage.open(tmp_path / "queue.db") as opened:
        yield opened


async def test_a_running_job_shows_its_rate_and_eta(queue: SqliteStorage) -> None:
    job_id = await make_job(queue, [record(i) for i in range(100)])
    async with queue.runner():
        await queue.jobs.set_state(job_id, JobState.RUNNING)
        await queue.jobs.record_send_rate(job_id, 20.0)
        summary = await summarize(queue, job_id)
    assert summary.runner_alive is True
    assert summary.rate_per_s == 20.0
    assert summary.eta_s == pytest.approx(100 / 20.0)
    assert summary.to_json()["eta_s"] == pytest.approx(5.0)


async def test_no_rate_once_the_job_is_not_running(queue: SqliteStorage) -> None:
    job_id = await make_job(queue, [record(i) for i in range(10)])
    await queue.jobs.set_state(job_id, JobState.RUNNING)
    await queue.jobs.record_send_rate(job_id, 20.0)
    await queue.jobs.set_state(job_id, JobState.INTERRUPTED)
    summary = await summarize(queue, job_id)
    assert summary.rate_per_s is None
    assert summary.eta_s is None


async def test_a_stale_rate_is_not_shown(
    queue: SqliteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A runner killed while sending leaves the job `running` with an old figure.
    job_id = await make_job(queue, [record(i) for i in range(10)])
    async with queue.runner():
        await queue.jobs.set_state(job_id, JobState.RUNNING)
        await queue.jobs.record_send_rate(job_id, 20.0)
        later = time.time() + 3 * dispatch.RATE_EVERY_S + 1
        monkeypatch.setattr("bulkimport.jobs.pipeline.time.time", lambda: later)
        assert (await summarize(queue, job_id)).rate_per_s is None


async def test_the_dispatcher_reports_its_rate_while_sending(
    queue: SqliteStorage, sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "RATE_EVERY_S", 0.2)
    handle = await sandbox_factory(faults=Faults(latency_s=0.01))
    job_id = await make_job(queue, [record(i) for i in range(150)])
    settings = send_settings(rate_per_s=200.0, concurrency=4)
    async with open_session(4) as session:
        transport = HttpTransport(session, handle.url, PARAMS, settings)

        async def on_rate(rate_per_s: float, pace: PaceState) -> None:
            await queue.jobs.record_send_rate(job_id, rate_per_s, pace_per_s=pace.rate_per_s)

        await Dispatcher(
            queue.sending,
            job_id,
            transport,
            settings,
            runner=a_runner(),
            listeners=Listeners(on_rate=on_rate),
        ).run()
    job = await queue.jobs.get(job_id)
    assert job.send_rate_per_s is not None
    # 150 rows at most 200/s: measured over a 0.2 s window, it cannot exceed the limit much.
    assert 10.0 < job.send_rate_per_s <= 200.0 * 1.2
    assert (await queue.reports.counts(job_id))[RowState.DONE] == 150


# --- a job whose runner is gone -------------------------------------------------------------------


async def kill_when(proc: asyncio.subprocess.Process, ready: Callable[[], Awaitable[bool]]) -> None:
    """``kill -9`` the process once ``ready()`` says so."""
    for _ in range(1200):
        await asyncio.sleep(0.02)
        if await ready():
            break
    proc.send_signal(signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.posix_only("SIGKILL and its exit status (Windows' kill is TerminateProcess)")
async def test_a_runner_killed_while_sending_leaves_a_job_shown_interrupted(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.05))
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(400)])
    proc = await spawn(
        "run", str(csv_file), *target(sandbox), "--rate", "0", "--concurrency", "4",
        "--db", "nightly.db", cwd=tmp_path,
    )  # fmt: skip

    async def sending() -> bool:
        return bool((await stats(sandbox))["requests"] >= 40)

    await kill_when(proc, sending)
    assert job_state(tmp_path / "nightly.db") == "running"  # as the dead process left it

    status = await bulkimport("status", "--db", "nightly.db", cwd=tmp_path)
    assert status.code == 0, status.err
    assert status.out.startswith("job 1: interrupted (no runner)\n")
    assert "rate" not in status.out and "ETA" not in status.out
    assert "last stop: no runner: the process sending it ended without a word" in status.out
    assert "resume it: bulkimport resume 1 --db nightly.db" in status.out
    as_json = (await bulkimport("status", "--db", "nightly.db", "--json", cwd=tmp_path)).json()
    assert (as_json["state"], as_json["stored_state"]) == ("interrupted", "running")
    assert as_json["runner_alive"] is False and as_json["rate_per_s"] is None
    assert time.time() - 60 < as_json["last_seen_at"] <= time.time()
    listed = await bulkimport("jobs", "--db", "nightly.db", cwd=tmp_path)
    [line] = [line for line in listed.out.splitlines() if line.lstrip().startswith("1 ")]
    assert " interrupted " in line and "[no runner; last seen " in line

    in_flight = dict(query(tmp_path / "nightly.db", "SELECT state, n FROM job_counts"))["in_flight"]
    sandbox.set_faults(Faults())  # slow answers were for the kill; the rest goes at once
    resumed = await bulkimport("resume", "--db", "nightly.db", cwd=tmp_path)
    assert resumed.code == 0, resumed.err
    pending = 400 - int(status.out.split("done")[1].split()[0]) - in_flight
    expected = (
        f"resuming job 1 (the latest unfinished job, running when its runner stopped without "
        f"a word): {pending:,} pending, {in_flight} in flight at the crash to resend"
    )
    assert expected in resumed.err.splitlines()
    held = await customers(sandbox)
    assert len(held) == 400 and all(c["writes"] == 1 for c in held)


@pytest.mark.slow
@pytest.mark.posix_only("SIGKILL and its exit status (Windows' kill is TerminateProcess)")
async def test_a_runner_killed_while_reading_leaves_a_job_shown_interrupted(
    tmp_path: Path,
) -> None:
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(300_000)])
    proc = await spawn(
        "stage", str(csv_file), "--url", "http://127.0.0.1:9/", "--org", "o", "--user", "u",
        "--campaign", "1", cwd=tmp_path,
    )  # fmt: skip
    db = tmp_path / "bulkimport.db"

    async def reading() -> bool:
        if job_state(db) != "reading":
            return False
        return bool(query(db, "SELECT total_rows FROM jobs")[0][0] > 0)

    await kill_when(proc, reading)
    assert job_state(db) == "reading"
    summary = (await bulkimport("status", "--json", cwd=tmp_path)).json()
    assert (summary["state"], summary["runner_alive"]) == ("interrupted", False)
    assert "the process reading it ended" in summary["message"]
    read = summary["total"]
    resumed = await bulkimport(
        "stage", str(csv_file), "--url", "http://127.0.0.1:9/", "--org", "o", "--user", "u",
        "--campaign", "1", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert resumed.code == 0, resumed.err
    assert (
        f"resuming job 1 (reading when its runner stopped without a word): reading goes on "
        f"at line {read + 2:,} ({read:,} rows read so far); --new starts afresh"
    ) in resumed.err
    assert resumed.json()["counts"]["pending"] == 300_000


async def test_a_job_with_a_live_runner_shows_it_is_running(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.05))
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(300)])
    proc = await spawn(
        "run", str(csv_file), *target(sandbox), "--rate", "0", "--concurrency", "2", cwd=tmp_path
    )
    try:
        for _ in range(600):
            await asyncio.sleep(0.02)
            if (await stats(sandbox))["requests"] >= 10:
                break
        summary = (await bulkimport("status", "--json", cwd=tmp_path)).json()
        assert (summary["state"], summary["runner_alive"]) == ("running", True)
        sandbox.set_faults(Faults())  # seen running: the rest goes at once
    finally:
        assert await proc.wait() == 0
