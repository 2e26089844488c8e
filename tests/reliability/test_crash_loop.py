"""Nothing lost, at least once with a bounded window: ``kill -9`` a real runner again and again.

One job of 30,000 rows against the sandbox; the runner is killed with SIGKILL at seeded random
moments, first while it reads the file and sends what it has read at the same time, then
while it only sends, and started again with the same command each time, until it finishes.
The sandbox answers with ``dupway=update``, so every call that reaches it is a write and its
``writes`` counter shows each row sent twice.
"""

from __future__ import annotations

import asyncio
import random
import signal
import statistics
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from bulkimport.sandbox import Faults, SandboxHandle
from bulkimport.send import RESULT_BATCH_ROWS
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    bulkimport,
    customers,
    good_rows,
    integrity,
    job_phase,
    query,
    spawn,
    stats,
    target,
    write_csv,
    write_figures,
)

pytestmark = pytest.mark.slow

ROWS = 30_000  # six ingest batches: several kills land while reading and sending
KILLS = 32
READING_KILLS = 6  # the first kills aim at reading and sending at once
CONCURRENCY = 8
SEED = 20_240_611
WAIT_LIMIT_S = 30.0


def arrived(sandbox: SandboxHandle) -> int:
    """Import requests that reached the sandbox so far (it runs in this event loop)."""
    assert sandbox.sandbox is not None
    return len(sandbox.sandbox.stats.arrivals)


def server_writes(sandbox: SandboxHandle) -> dict[str, int]:
    """``{key: writes}`` of every customer the sandbox holds (read in-process: fast)."""
    return dict(sandbox.store.db.execute("SELECT key, writes FROM customers").fetchall())


def sending_more_than(sandbox: SandboxHandle, requests: int) -> bool:
    return arrived(sandbox) > requests


def phone(line: int) -> str:
    """The key of the row on physical line ``line`` of the file (the header is line 1)."""
    return f"139{line - 2:08d}"


async def wait_for(condition: Callable[[], bool], proc: asyncio.subprocess.Process) -> bool:
    """Poll ``condition`` every 2 ms; False if the process ended first."""
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not condition():
        if proc.returncode is not None:
            return False
        assert time.monotonic() < deadline, "the runner neither progressed nor ended"
        await asyncio.sleep(0.002)
    return True


async def test_kill_9_at_random_moments_loses_nothing_and_resends_within_the_window(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.005))
    work = tmp_path / "job"
    work.mkdir()
    csv_file = write_csv(work / "leads.csv", [HEADER, *good_rows(ROWS)])
    db = work / "bulkimport.db"
    args = [
        "run", str(csv_file), *target(sandbox), "--dupway", "update", "--rate", "0",
        "--concurrency", str(CONCURRENCY), "--quiet",
    ]  # fmt: skip
    rng = random.Random(SEED)
    phases: list[str] = []
    # Per kill: rows this runner got to the server whose outcome it had not recorded (they
    # will be sent again), and rows it left in flight (the same plus those claimed, unsent).
    lost_per_kill: list[int] = []
    in_flight_per_kill: list[int] = []
    started = time.monotonic()

    writes: dict[str, int] = {}
    for kill in range(KILLS):
        errors = tmp_path / "runner.err"
        proc = await spawn(*args, cwd=work, stderr_path=errors)
        requests_before = arrived(sandbox)
        if kill < READING_KILLS and job_phase(db) in (None, "running+reading"):
            # Sending begins with the first batch read: within a few milliseconds of that,
            # both go on at once. How many batches a runner reads before its kill depends on
            # the machine's speed, and so does how many kills land while reading.
            reached = await wait_for(partial(sending_more_than, sandbox, requests_before), proc)
            await asyncio.sleep(rng.uniform(0.0, 0.005))
        else:
            # Wait until this runner sends, then let it send for a random while.
            reached = await wait_for(partial(sending_more_than, sandbox, requests_before), proc)
            await asyncio.sleep(rng.uniform(0.0, 0.4))
        assert reached, f"kill {kill}: the runner ended first: {errors.read_text()}"
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL, f"kill {kill}: the job finished first"
        phases.append(job_phase(db) or "starting")
        # Requests that reached the sandbox before the kill are still answered: wait for them.
        await asyncio.sleep(0.1)
        before, writes = writes, server_writes(sandbox)
        sent = {key for key, n in writes.items() if n > before.get(key, 0)}
        done = {phone(line) for (line,) in query(db, "SELECT line FROM rows WHERE state='done'")}
        assert done <= writes.keys(), "a row is recorded done that the server never received"
        lost_per_kill.append(len(sent - done))
        in_flight = query(db, "SELECT COUNT(*) FROM rows WHERE state = 'in_flight'")[0][0]
        in_flight_per_kill.append(in_flight)

    finished = await bulkimport(*args, "--json", cwd=work, timeout_s=300)
    elapsed_s = time.monotonic() - started
    assert finished.code == 0, finished.err
    summary = finished.json()

    # Nothing lost: every line of the file is exactly one row, in a terminal state.
    rows = query(db, "SELECT line, state FROM rows ORDER BY line")
    assert [line for line, _ in rows] == list(range(2, ROWS + 2))
    assert Counter(state for _, state in rows) == {"done": ROWS}
    assert summary["total"] == ROWS

    # The server holds every record once; writes above one are the rows sent twice.
    held_customers = await customers(sandbox)
    assert sorted(c["key"] for c in held_customers) == sorted(phone(n) for n in range(2, ROWS + 2))
    sample = {c["key"]: c["fields"] for c in held_customers}[phone(ROWS + 1)]
    assert sample["customername"] == f"Lead {ROWS - 1}"
    extra_writes = sum(c["writes"] - 1 for c in held_customers)
    rows_written_twice = sum(1 for c in held_customers if c["writes"] > 1)

    # At least once with a bounded window: per kill, at most the calls in flight plus one
    # commit batch of outcomes were sent and not recorded.
    bound = CONCURRENCY + RESULT_BATCH_ROWS
    assert max(lost_per_kill) <= bound, lost_per_kill
    # And those were the only rows sent twice: a row sent in n runs was lost by n - 1 kills.
    assert extra_writes == sum(lost_per_kill)
    assert integrity(db) == "ok"
    kills_by_phase = Counter(phases)
    # The first kill comes within milliseconds of the first stored batch, well before the other
    # five are read; later ones land while reading lasts, which a fast machine shortens.
    assert kills_by_phase["running+reading"] >= 1, phases
    assert kills_by_phase["running"] >= 20, phases
    sending_kills = [n for n, p in zip(lost_per_kill, phases, strict=True) if p == "running"]

    total_requests = (await stats(sandbox))["requests"]
    write_figures(
        "crash_loop",
        {
            "rows": ROWS,
            "concurrency": CONCURRENCY,
            "kills": KILLS,
            "kills_by_job_state_after_the_kill": dict(kills_by_phase),
            "resent_rows_per_kill_max": max(lost_per_kill),
            "resent_rows_per_kill_mean": round(statistics.mean(sending_kills), 1),
            "resent_rows_per_kill_bound": bound,
            "in_flight_rows_per_kill_max": max(in_flight_per_kill),
            "resent_unknown_reported_by_the_job": summary["resent_unknown"],
            "server_requests": total_requests,
            "server_extra_writes": extra_writes,
            "server_rows_written_more_than_once": rows_written_twice,
            "server_max_writes_of_a_row": max(c["writes"] for c in held_customers),
            "lost_rows": ROWS - len(held_customers),
            "integrity_check": integrity(db),
            "seconds": round(elapsed_s, 1),
        },
    )
