"""Every file bulkimport writes holds leads, and is its owner's alone, whatever the umask.

A real run under umask 022 (the usual one, under which files are created 0644): the database,
its -wal and -shm while it sends, the runner lock, the failed-rows report and the log are
checked with ``stat``.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkimport.sandbox import Faults
from tests.conftest import SandboxFactory
from tests.helpers import HEADER, bulkimport, get_json, good_rows, spawn, target, write_csv

pytestmark = pytest.mark.posix_only("POSIX permission bits")


@pytest.fixture
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def others_may_read(path: Path) -> bool:
    return bool(stat.S_IMODE(path.stat().st_mode) & 0o077)


@pytest.mark.usefixtures("usual_umask")
async def test_nothing_a_run_writes_is_readable_by_others(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.02, code_rates={"76": 0.1}, seed=2))
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(300)])
    db = tmp_path / "leads.db"
    log = tmp_path / "leads.log"
    args = ["run", str(csv_file), *target(sandbox), "--db", str(db), "--log", str(log)]
    proc = await spawn(*args, "--rate", "0", "--concurrency", "2", cwd=tmp_path, capture=True)
    try:
        for _ in range(1200):
            if (await get_json(sandbox, "/sandbox/stats"))["requests"] >= 20:
                break
            await asyncio.sleep(0.05)
        while_sending = [db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}.lock"), log]
        for path in while_sending:
            assert path.exists(), path
            assert not others_may_read(path), f"{path} is {oct(path.stat().st_mode)}"
    finally:
        _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 1, err.decode()
    report = tmp_path / "leads-job-1-failed.csv"
    for path in [db, Path(f"{db}.lock"), log, report]:
        assert path.exists(), path
        assert not others_may_read(path), f"{path} is {oct(path.stat().st_mode)}"
    exported = tmp_path / "exported.csv"
    done = await bulkimport("failed", "--db", str(db), "-o", str(exported), cwd=tmp_path)
    assert done.code == 0, done.err
    assert not others_may_read(exported)


@pytest.mark.usefixtures("usual_umask")
async def test_a_database_others_can_read_is_named_in_one_warning(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory()
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(3)])
    db = tmp_path / "leads.db"
    first = await bulkimport("run", str(csv_file), *target(sandbox), "--db", str(db), cwd=tmp_path)
    assert first.code == 0, first.err
    assert "can be read by other users" not in first.err
    db.chmod(0o644)  # made by an older version, or copied
    again = await bulkimport(
        "run", str(csv_file), *target(sandbox), "--db", str(db), "--new", cwd=tmp_path
    )
    assert again.code == 0, again.err
    warnings = [line for line in again.err.splitlines() if "can be read by other users" in line]
    assert warnings == [
        f"{db} can be read by other users of this machine, and it holds leads: "
        f"chmod 600 {db} (and its -wal and -shm)"
    ]


async def test_a_report_is_never_written_through_a_planted_link(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory()
    lines = [HEADER, *good_rows(3), "no phone,,x@y.z,Nowhere"]
    csv_file = write_csv(tmp_path / "leads.csv", lines)
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("not yours\n")
    (tmp_path / "bulkimport-job-1-failed.csv.partial").symlink_to(elsewhere)
    done = await bulkimport("run", str(csv_file), *target(sandbox), cwd=tmp_path)
    assert done.code in (1, 2), done.err
    assert "Traceback" not in done.err
    assert elsewhere.read_text() == "not yours\n"
