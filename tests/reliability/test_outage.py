"""The server goes away in the middle of a job and comes back (a minute later in real life,
two seconds here): sending pauses, probes, and goes on, and no row pays an attempt for it;
or it stays away longer than ``--max-outage``: the job stops (exit 75), every unsent row
pending, and ``bulkimport resume`` finishes it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from bulkimport.sandbox import Faults, SandboxHandle
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    bulkimport,
    customers,
    good_rows,
    query,
    spawn,
    target,
    write_csv,
    write_figures,
)

pytestmark = pytest.mark.slow

ROWS = 500
OUTAGE_S = 2.0


async def stop_after(sandbox: SandboxHandle, calls: int, proc: asyncio.subprocess.Process) -> None:
    """Stop the sandbox once ``calls`` requests reached it (the job must still be running)."""
    assert sandbox.sandbox is not None
    stats = sandbox.sandbox.stats
    for _ in range(30_000):  # a minute at most
        if len(stats.arrivals) >= calls:
            break
        assert proc.returncode is None, "the job ended before the outage"
        await asyncio.sleep(0.002)
    assert proc.returncode is None, "the job ended before the outage"
    await sandbox.stop()


def attempts_by_line(db: Path) -> dict[int, tuple[str, int, str | None]]:
    rows = query(db, "SELECT line, state, attempts, last_code FROM rows ORDER BY line")
    return {line: (state, attempts, code) for line, state, attempts, code in rows}


async def test_an_outage_costs_no_attempt_and_the_job_finishes(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.005))
    work = tmp_path / "job"
    work.mkdir()
    csv_file = write_csv(work / "leads.csv", [HEADER, *good_rows(ROWS)])
    # Two attempts only: before, an outage longer than two tries made rows fail.
    proc = await spawn(
        "run", str(csv_file), *target(sandbox), "--rate", "100", "--max-attempts", "2",
        "--json", cwd=work, capture=True,
    )  # fmt: skip
    communicate = asyncio.create_task(proc.communicate())
    await stop_after(sandbox, ROWS // 3, proc)
    down_at = time.monotonic()
    await asyncio.sleep(OUTAGE_S)
    assert sandbox.sandbox is None
    await sandbox.start()
    _, err = await asyncio.wait_for(communicate, 120)
    finished_after_s = time.monotonic() - down_at

    assert proc.returncode == 0, err.decode()
    assert "server unreachable since" in err.decode()
    assert "the server answers again" in err.decode()
    rows = attempts_by_line(work / "bulkimport.db")
    assert list(rows) == list(range(2, ROWS + 2))
    states = Counter(state for state, _, _ in rows.values())
    # A call answered while the server went down may have been imported and then sent
    # again: the server answers it as a duplicate, which counts as done (this job's import).
    assert states == {"done": ROWS}, states
    held = await customers(sandbox)
    assert len(held) == ROWS
    assert {c["writes"] for c in held} == {1}
    # The outage cost no row an attempt.
    assert {attempts for _, attempts, _ in rows.values()} == {1}
    write_figures(
        "outage",
        {
            "rows": ROWS,
            "outage_s": OUTAGE_S,
            "row_states": dict(states),
            "finished_s_after_the_outage_began": round(finished_after_s, 1),
        },
    )


async def test_an_outage_past_max_outage_stops_resumable_and_resume_finishes(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.005))
    work = tmp_path / "job"
    work.mkdir()
    csv_file = write_csv(work / "leads.csv", [HEADER, *good_rows(ROWS)])
    proc = await spawn(
        "run", str(csv_file), *target(sandbox), "--rate", "200", "--max-attempts", "2",
        "--max-outage", "3s", "--json", cwd=work, capture=True,
    )  # fmt: skip
    communicate = asyncio.create_task(proc.communicate())
    await stop_after(sandbox, ROWS // 3, proc)
    # The server stays down longer than the job waits for it.
    out, err = await asyncio.wait_for(communicate, 120)
    said = err.decode().splitlines()
    assert proc.returncode == 75, err.decode()
    assert not [line for line in said if line.startswith("Error:")], said  # not a failure
    lines = [line for line in said if line.startswith("try later (exit 75): ")]
    assert len(lines) == 1 and "--max-outage 3s" in lines[0], said
    assert "bulkimport resume 1" in lines[0]
    summary = json.loads(out)
    assert (summary["state"], summary["stop_cause"]) == ("interrupted", "outage")
    db = work / "bulkimport.db"
    before = attempts_by_line(db)
    assert {state for state, _, _ in before.values()} <= {"done", "pending"}
    assert {attempts for state, attempts, _ in before.values() if state == "pending"} == {0}

    await sandbox.start()
    resumed = await bulkimport("resume", "--json", cwd=work)
    assert resumed.code == 0, resumed.err
    after = attempts_by_line(db)
    states = Counter(state for state, _, _ in after.values())
    assert states == {"done": ROWS}, states
    # Rows done before the outage were not touched by the resume.
    assert all(after[line] == row for line, row in before.items() if row[0] == "done")
    held = await customers(sandbox)
    assert len(held) == ROWS
    assert {c["writes"] for c in held} == {1}
    write_figures(
        "outage_past_max",
        {"rows": ROWS, "pending_at_the_stop": sum(1 for r in before.values() if r[0] == "pending")},
    )
