"""The server goes away in the middle of a job and comes back (a minute later in real life,
two seconds here): rows retry and finish; or, past their attempt limit, they end ``failed``
and ``bulkimport retry`` finishes them.
"""

from __future__ import annotations

import asyncio
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


async def test_rows_retry_through_an_outage_and_finish(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.005))
    work = tmp_path / "job"
    work.mkdir()
    csv_file = write_csv(work / "leads.csv", [HEADER, *good_rows(ROWS)])
    proc = await spawn(
        "run", str(csv_file), *target(sandbox), "--rate", "100", "--max-attempts", "10",
        "--json", cwd=work, capture=True,
    )  # fmt: skip
    communicate = asyncio.create_task(proc.communicate())
    await stop_after(sandbox, ROWS // 3, proc)
    down_at = time.monotonic()
    await asyncio.sleep(OUTAGE_S)
    await sandbox.start()
    _, err = await asyncio.wait_for(communicate, 120)
    finished_after_s = time.monotonic() - down_at

    assert proc.returncode == 0, err.decode()
    rows = attempts_by_line(work / "bulkimport.db")
    assert list(rows) == list(range(2, ROWS + 2))
    states = Counter(state for state, _, _ in rows.values())
    # A call answered while the server went down may have been imported and then sent
    # again: the server answers it as a duplicate, never imports it twice.
    assert states["done"] + states["duplicate"] == ROWS, states
    held = await customers(sandbox)
    assert len(held) == ROWS
    assert {c["writes"] for c in held} == {1}
    retried = [attempts for _, attempts, _ in rows.values() if attempts > 1]
    assert retried, "no row felt the outage"
    assert max(attempts for _, attempts, _ in rows.values()) <= 10
    write_figures(
        "outage_retry",
        {
            "rows": ROWS,
            "outage_s": OUTAGE_S,
            "rows_retried": len(retried),
            "max_attempts_used": max(retried),
            "row_states": dict(states),
            "finished_s_after_the_outage_began": round(finished_after_s, 1),
        },
    )


async def test_rows_past_their_attempt_limit_end_failed_and_retry_finishes_them(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.005))
    work = tmp_path / "job"
    work.mkdir()
    csv_file = write_csv(work / "leads.csv", [HEADER, *good_rows(ROWS)])
    proc = await spawn(
        "run", str(csv_file), *target(sandbox), "--rate", "200", "--max-attempts", "2",
        "--json", cwd=work, capture=True,
    )  # fmt: skip
    communicate = asyncio.create_task(proc.communicate())
    await stop_after(sandbox, ROWS // 3, proc)
    # The server stays down until the job has given up on the rest.
    _, err = await asyncio.wait_for(communicate, 120)
    assert proc.returncode == 1, err.decode()
    db = work / "bulkimport.db"
    before = attempts_by_line(db)
    failed = {line for line, (state, _, _) in before.items() if state == "failed"}
    assert failed
    assert {before[line][1] for line in failed} == {2}
    assert {before[line][2] for line in failed} <= {"refused", "dropped", "timeout"}
    assert {state for state, _, _ in before.values()} <= {"done", "duplicate", "failed"}
    report = work / "job-1-failed.csv"
    assert str(report) in err.decode()
    assert len(report.read_text(encoding="utf-8-sig").splitlines()) == len(failed) + 1

    await sandbox.start()
    retried = await bulkimport("retry", "1", "--json", cwd=work)
    assert retried.code == 0, retried.err
    after = attempts_by_line(db)
    assert list(after) == list(range(2, ROWS + 2))
    states = Counter(state for state, _, _ in after.values())
    assert states["done"] + states["duplicate"] == ROWS, states
    # Rows done before the outage were not touched by the retry.
    assert all(after[line] == row for line, row in before.items() if row[0] != "failed")
    held = await customers(sandbox)
    assert len(held) == ROWS
    assert {c["writes"] for c in held} == {1}
    write_figures(
        "outage_failed_then_retry",
        {
            "rows": ROWS,
            "failed_after_the_outage": len(failed),
            "row_states_after_retry": dict(states),
            "summary_after_retry": retried.json()["counts"],
        },
    )
