"""One runner per database; runners on different databases do not disturb each other."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bulkimport.sandbox import Faults
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
)


async def test_a_second_runner_on_the_same_database_is_refused_and_the_first_finishes(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.02))
    assert sandbox.sandbox is not None
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(300)])
    args = ["run", str(csv_file), *target(sandbox), "--rate", "0", "--concurrency", "2"]
    first = await spawn(*args, cwd=tmp_path, capture=True)
    for _ in range(3000):
        if sandbox.sandbox.stats.arrivals:
            break
        assert first.returncode is None
        await asyncio.sleep(0.01)
    # Slow answers while the others try, so that the first runner is still sending however
    # slowly they start (a fresh machine compiles every module at each start); fast again after.
    sandbox.sandbox.set_faults(Faults(latency_s=0.5))

    for second in (args, ["resume"], ["retry", "1"]):
        refused = await bulkimport(*second, cwd=tmp_path)
        assert refused.code == 75, refused.err
        lines = [line for line in refused.err.splitlines() if line.strip()]
        assert len(lines) == 1, refused.err
        assert "already working on" in lines[0] and f"pid {first.pid}" in lines[0]
        assert "Traceback" not in refused.err

    assert first.returncode is None, "the first runner ended before the second one tried"
    sandbox.sandbox.set_faults(Faults(latency_s=0.0))
    _, err = await asyncio.wait_for(first.communicate(), 60)
    assert first.returncode == 0, err.decode()
    held = await customers(sandbox)
    assert len(held) == 300
    assert {c["writes"] for c in held} == {1}
    assert query(tmp_path / "bulkimport.db", "SELECT COUNT(*) FROM jobs") == [(1,)]


async def test_two_runners_on_two_databases_share_a_server_without_interfering(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.005))
    runs = []
    for n, start in ((1, 0), (2, 10_000)):
        work = tmp_path / f"runner-{n}"
        work.mkdir()
        csv_file = write_csv(work / "leads.csv", [HEADER, *good_rows(1000, start=start)])
        args = ["run", str(csv_file), *target(sandbox), "--rate", "0", "--json"]
        runs.append((work, await spawn(*args, cwd=work, capture=True)))

    for work, proc in runs:
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        db = work / "bulkimport.db"
        rows = query(db, "SELECT line, state FROM rows ORDER BY line")
        assert rows == [(line, "done") for line in range(2, 1002)]
    # Both sent at the same time: each one's sending overlaps the other's.
    spans = [
        query(work / "bulkimport.db", "SELECT started_at, finished_at FROM jobs")[0]
        for work, _ in runs
    ]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans
    held = await customers(sandbox)
    expected = {f"139{i:08d}" for i in [*range(1000), *range(10_000, 11_000)]}
    assert {c["key"] for c in held} == expected
    assert {c["writes"] for c in held} == {1}
