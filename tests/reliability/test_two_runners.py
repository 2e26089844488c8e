"""Two runners on two processes drain one job on PostgreSQL, one of them killed again and again.

Standing in for two hosts: the first runs ``bulkimport run FILE`` where the file is (it reads
and sends), the second ``bulkimport resume 1`` from another folder (it sends what the first
stores). Real processes, the real sandbox on loopback, a throwaway PostgreSQL cluster
(``tests/pg.py``); without one, these skip with the reason.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from bulkimport.sandbox import Faults, SandboxHandle
from bulkimport.states import RowState
from bulkimport.storage.postgres import PostgresStorage
from bulkimport.storage.postgres.leases import LEASE_S
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    bulkimport,
    customers,
    good_rows,
    spawn,
    target,
    write_csv,
    write_figures,
)
from tests.storage import conftest as storage_fixtures

pytestmark = [
    pytest.mark.slow,
    pytest.mark.posix_only("SIGKILL and its exit status (Windows' kill is TerminateProcess)"),
]

pg_cluster = storage_fixtures.pg_cluster
pg_url = storage_fixtures.pg_url

CONCURRENCY = 8
CLAIM_ROWS = 64  # what a runner claims at a time at this concurrency (send/dispatcher.py)
SEED = 20_261_206


def sandbox_requests(sandbox: SandboxHandle) -> int:
    """Import requests that reached the sandbox so far (it runs in this event loop)."""
    assert sandbox.sandbox is not None
    return len(sandbox.sandbox.stats.arrivals)


def server_writes(sandbox: SandboxHandle) -> dict[str, int]:
    """``{key: writes}`` of every customer the sandbox holds."""
    return dict(sandbox.store.db.execute("SELECT key, writes FROM customers").fetchall())


async def rows_by_state(url: str, job: int = 1) -> Counter[str]:
    conn = await asyncpg.connect(url)
    try:
        found = await conn.fetch(
            "SELECT state, count(*) FROM rows WHERE job_id = $1 GROUP BY state", job
        )
    finally:
        await conn.close()
    return Counter({state: n for state, n in found})


async def wait_until_sending(sandbox: SandboxHandle, proc: asyncio.subprocess.Process) -> None:
    before = sandbox_requests(sandbox)
    deadline = time.monotonic() + 60
    while sandbox_requests(sandbox) <= before:
        assert proc.returncode is None, "the runner ended before it sent anything"
        assert time.monotonic() < deadline, "the runner sent nothing"
        await asyncio.sleep(0.01)


async def held_by(url: str, pid: int) -> int:
    """Rows in flight for the runner that is process ``pid``."""
    conn = await asyncpg.connect(url)
    try:
        found: int = await conn.fetchval(
            "SELECT count(*) FROM rows r JOIN runners u ON r.runner_id = u.id"
            " WHERE u.pid = $1 AND u.ended_at IS NULL AND r.state = 'in_flight'",
            pid,
        )
    except asyncpg.UndefinedTableError:
        return 0  # the first runner is still creating the schema
    finally:
        await conn.close()
    return found


async def wait_until_holding(url: str, proc: asyncio.subprocess.Process) -> None:
    """Until the runner ``proc`` holds rows in flight: it claims and sends."""
    deadline = time.monotonic() + 60
    while not await held_by(url, proc.pid):
        assert proc.returncode is None, "the runner ended before it claimed anything"
        assert time.monotonic() < deadline, "the runner claimed nothing"
        await asyncio.sleep(0.02)


async def wait_until_attached(url: str, proc: asyncio.subprocess.Process) -> None:
    """Until the runner ``proc`` works on job 1 (it has opened it)."""
    deadline = time.monotonic() + 60
    conn = await asyncpg.connect(url)
    try:
        while not await conn.fetchval(
            "SELECT count(*) FROM runners WHERE pid = $1 AND job_id = 1", proc.pid
        ):
            assert proc.returncode is None, "the runner ended before it opened the job"
            assert time.monotonic() < deadline, "the runner never opened the job"
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def two_runners(
    sandbox: SandboxHandle, csv_file: Path, url: str, work: Path
) -> tuple[asyncio.subprocess.Process, asyncio.subprocess.Process]:
    """``run FILE`` (it reads and sends), then ``resume 1`` beside it, both holding rows."""
    common = ["--db", url, "--rate", "0", "--concurrency", str(CONCURRENCY), "--quiet"]
    first = await spawn(
        "run", str(csv_file), *target(sandbox), *common, cwd=work, stderr_path=work / "a.err"
    )
    await wait_until_holding(url, first)
    second = await spawn("resume", "1", *common, cwd=work, stderr_path=work / "b.err")
    await wait_until_holding(url, second)
    return first, second


async def test_two_runners_finish_one_job_and_each_row_reaches_the_server_once(
    tmp_path: Path, sandbox_factory: SandboxFactory, pg_url: str
) -> None:
    rows = 100_000
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.005))
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"
    host_a.mkdir()
    host_b.mkdir()
    csv_file = write_csv(host_a / "leads.csv", [HEADER, *good_rows(rows)])
    common = ["--db", pg_url, "--rate", "0", "--concurrency", str(CONCURRENCY), "--quiet"]
    started = time.monotonic()
    first = await spawn(
        "run", str(csv_file), *target(sandbox), *common,
        cwd=host_a, stderr_path=tmp_path / "a.err",
    )  # fmt: skip
    await wait_until_sending(sandbox, first)
    second = await spawn("resume", "1", *common, cwd=host_b, stderr_path=tmp_path / "b.err")

    # Watch them as `status` does: both live on the job, each with its rate.
    most_live, rates = 0, {}
    async with await PostgresStorage.open(pg_url, read_only=True) as storage:
        while first.returncode is None or second.returncode is None:
            live = await storage.jobs.runners(1)
            most_live = max(most_live, len(live))
            rates.update({r.pid: r.rate_per_s for r in live if r.rate_per_s})
            await asyncio.sleep(0.5)
            assert time.monotonic() - started < 900, "the runners did not finish"
        reader = await storage.db.fetchval("SELECT reader FROM jobs WHERE id = 1")
        readers = await storage.db.fetch("SELECT pid FROM runners WHERE id = $1", reader)
    elapsed_s = time.monotonic() - started
    assert (await first.wait(), await second.wait()) == (0, 0), (tmp_path / "a.err").read_text() + (
        tmp_path / "b.err"
    ).read_text()

    # The file was read once, on the host that has it; both sent.
    assert [pid for (pid,) in readers] == [first.pid]
    assert most_live == 2
    assert set(rates) == {first.pid, second.pid}

    status = await bulkimport("status", "--json", "--db", pg_url, cwd=tmp_path, password=None)
    summary = status.json()
    assert (summary["state"], summary["total"], summary["counts"]["done"]) == (
        "finished", rows, rows,
    )  # fmt: skip
    assert await rows_by_state(pg_url) == {"done": rows}

    # Every row exactly once at the server: one call each, none sent twice.
    assert sandbox_requests(sandbox) == rows
    held = await customers(sandbox)
    assert len(held) == rows
    assert all(c["writes"] == 1 for c in held)
    write_figures(
        "two_runners",
        {
            "rows": rows,
            "seconds": round(elapsed_s, 1),
            "rows_per_s": round(rows / elapsed_s, 1),
            "rates_seen_per_runner": {str(pid): round(r, 1) for pid, r in rates.items()},
            "server_requests": sandbox_requests(sandbox),
        },
    )


async def test_kill_9_one_of_two_runners_again_and_again_loses_nothing(
    tmp_path: Path, sandbox_factory: SandboxFactory, pg_url: str
) -> None:
    rows, kills = 100_000, 10
    # dupway=update: every call that reaches the sandbox is a write, so its ``writes``
    # counter shows each row sent twice.
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.005))
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"
    host_a.mkdir()
    host_b.mkdir()
    csv_file = write_csv(host_a / "leads.csv", [HEADER, *good_rows(rows)])
    common = [
        "--db", pg_url, "--rate", "0", "--concurrency", str(CONCURRENCY), "--quiet",
        "--dupway", "update",
    ]  # fmt: skip
    rng = random.Random(SEED)
    steady = await spawn(
        "run", str(csv_file), *target(sandbox), *common,
        cwd=host_a, stderr_path=tmp_path / "a.err",
    )  # fmt: skip
    await wait_until_sending(sandbox, steady)
    killed = 0
    held: list[int] = []  # rows in flight for the killed runner, just before each kill
    for _ in range(kills):
        if steady.returncode is not None:
            break
        other = await spawn("resume", "1", *common, cwd=host_b, stderr_path=tmp_path / "b.err")
        await wait_until_holding(pg_url, other)
        await asyncio.sleep(rng.uniform(0.0, 0.5))
        held.append(await held_by(pg_url, other.pid))
        other.send_signal(signal.SIGKILL)
        assert await other.wait() == -signal.SIGKILL, (tmp_path / "b.err").read_text()
        killed += 1
    # One more, left to finish beside the steady one.
    last = await spawn("resume", "1", *common, cwd=host_b, stderr_path=tmp_path / "b.err")
    ends = await asyncio.wait_for(asyncio.gather(steady.wait(), last.wait()), timeout=600)
    assert ends == [0, 0], (tmp_path / "a.err").read_text() + (tmp_path / "b.err").read_text()
    assert killed >= kills // 2, "the job finished before the kills"

    status = await bulkimport("status", "--json", "--db", pg_url, cwd=tmp_path, password=None)
    summary = status.json()
    assert (summary["state"], summary["total"]) == ("finished", rows)
    # Nothing lost: every row done, none left in flight; the job's counters (moved by the
    # statements that move rows) agree with the rows themselves.
    assert await rows_by_state(pg_url) == {"done": rows}
    assert {k: v for k, v in summary["counts"].items() if v} == {RowState.DONE.value: rows}

    # The server holds every record; a row written twice was one a killed runner had in
    # flight, taken back and counted as resent after an unknown outcome.
    writes = server_writes(sandbox)
    assert len(writes) == rows
    extra_writes = sum(n - 1 for n in writes.values())
    # Each kill left in flight what its runner held, plus at most one claim made after it
    # was counted.
    assert 0 < summary["resent_unknown"] <= sum(held) + killed * CLAIM_ROWS
    assert extra_writes <= summary["resent_unknown"]
    assert max(writes.values()) <= 1 + killed
    write_figures(
        "two_runners_crash_loop",
        {
            "rows": rows,
            "kills": killed,
            "rows_in_flight_for_the_killed_runner_per_kill": held,
            "resent_unknown_reported_by_the_job": summary["resent_unknown"],
            "server_requests": sandbox_requests(sandbox),
            "server_extra_writes": extra_writes,
            "server_rows_written_more_than_once": sum(1 for n in writes.values() if n > 1),
        },
    )


async def test_the_reader_killed_mid_file_another_runner_reads_the_rest(
    tmp_path: Path, sandbox_factory: SandboxFactory, pg_url: str
) -> None:
    rows = 100_000
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.005))
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(rows)])
    common = ["--db", pg_url, "--rate", "0", "--concurrency", str(CONCURRENCY), "--quiet"]
    reader = await spawn(
        "run", str(csv_file), *target(sandbox), *common,
        cwd=tmp_path, stderr_path=tmp_path / "a.err",
    )  # fmt: skip
    await wait_until_holding(pg_url, reader)
    follower = await spawn("resume", "1", *common, cwd=tmp_path, stderr_path=tmp_path / "b.err")
    # Killed as soon as the other runner works on the job, while the file is half read.
    await wait_until_attached(pg_url, follower)
    reader.send_signal(signal.SIGKILL)
    assert await reader.wait() == -signal.SIGKILL
    async with await PostgresStorage.open(pg_url, read_only=True) as storage:
        job = await storage.jobs.get(1)
    assert not job.read_done, "the file was read to its end before the reader was killed"

    # The follower takes reading over from the committed position and finishes the job.
    assert await asyncio.wait_for(follower.wait(), timeout=600) == 0, (
        tmp_path / "b.err"
    ).read_text()
    assert await rows_by_state(pg_url) == {"done": rows}
    conn = await asyncpg.connect(pg_url)
    try:
        lines = [line for (line,) in await conn.fetch("SELECT line FROM rows ORDER BY line")]
    finally:
        await conn.close()
    assert lines == list(range(2, rows + 2))  # each line of the file read once
    held = await customers(sandbox)
    assert len(held) == rows
    assert all(c["writes"] == 1 for c in held)


async def test_a_runner_that_hangs_loses_its_rows_when_its_lease_runs_out(
    tmp_path: Path, sandbox_factory: SandboxFactory, pg_url: str
) -> None:
    # SIGSTOP: the process holds its connection (and so its lock) but renews nothing.
    rows = 3000
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.005))
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(rows)])
    steady, hung = await two_runners(sandbox, csv_file, pg_url, tmp_path)
    hung.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    held = await held_by(pg_url, hung.pid)
    try:
        # The other runner sends the rest, then waits for the hung one's rows: taken back
        # once its lease has run out (30 s), sent, and the job finishes.
        assert await asyncio.wait_for(steady.wait(), timeout=180) == 0, (
            tmp_path / "a.err"
        ).read_text()
        waited_s = time.monotonic() - stopped_at
    finally:
        hung.send_signal(signal.SIGCONT)
    # Woken up, the hung runner records nothing for the rows taken back from it, and ends.
    assert await asyncio.wait_for(hung.wait(), timeout=120) == 0, (tmp_path / "b.err").read_text()
    assert waited_s >= LEASE_S - 1
    status = await bulkimport("status", "--json", "--db", pg_url, cwd=tmp_path, password=None)
    summary = status.json()
    assert summary["state"] == "finished"
    assert await rows_by_state(pg_url) == {"done": rows}
    assert 0 < held <= summary["resent_unknown"]
    writes = server_writes(sandbox)
    assert len(writes) == rows
    assert set(writes.values()) == {1}  # dupway=skip: a row sent again is not rewritten
    write_figures(
        "two_runners_hung",
        {
            "rows": rows,
            "held_by_the_hung_runner": held,
            "resent_unknown": summary["resent_unknown"],
            "seconds_until_the_other_finished": round(waited_s, 1),
            "server_requests": sandbox_requests(sandbox),
        },
    )
