"""A full disk, for real (a small tmpfs holds the queue database): while reading and while
sending, the command says so in one line and exits 2, the job stays resumable, and once there
is room again the same command finishes it, every line loaded once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bulkimport.sandbox import Faults
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    bulkimport,
    customers,
    good_rows,
    query,
    stats,
    target,
    write_csv,
)
from tests.small_disk import fill, resize, small_disk


def one_error_line(err: str) -> str:
    """The only line of standard error, which must be an error."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: "), err
    return lines[0]


@pytest.mark.posix_only("a small tmpfs mounted for the test")
async def test_a_disk_full_while_reading(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(40_000)])
    stage = [
        "stage", str(source), "--url", "http://127.0.0.1:9/", "--org", "o", "--user", "u",
        "--campaign", "1", "--quiet",
    ]  # fmt: skip
    with small_disk(tmp_path / "disk", 2048) as disk:
        db = disk / "queue.db"
        full = await bulkimport(*stage, "--db", str(db), cwd=tmp_path)
        assert full.code == 2, full.err
        assert one_error_line(full.err) == (
            f"Error: the disk holding {db} is full; nothing committed is lost: free some "
            "space, then resume the job: the same command again"
        )
        summary = (await bulkimport("status", "--db", str(db), "--json", cwd=tmp_path)).json()
        assert summary["state"] == "interrupted"
        assert summary["message"].startswith("stopped: the disk holding")
        read = summary["total"]
        assert 0 < read < 40_000

        resize(disk, 64 * 1024)
        done = await bulkimport(*stage, "--db", str(db), "--json", cwd=tmp_path)
        assert done.code == 0, done.err
        assert done.json()["counts"]["pending"] == 40_000
        lines = query(db, "SELECT count(*), count(DISTINCT line), min(line), max(line) FROM rows")
        assert lines == [(40_000, 40_000, 2, 40_001)]


@pytest.mark.slow
@pytest.mark.posix_only("a small tmpfs mounted for the test")
async def test_a_disk_full_while_sending(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.002))
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(3000)])
    with small_disk(tmp_path / "disk", 16 * 1024) as disk:
        db = disk / "queue.db"
        staged = await bulkimport(
            "stage", str(source), *target(sandbox), "--db", str(db), cwd=tmp_path
        )
        assert staged.code == 0, staged.err
        query(db, "PRAGMA wal_checkpoint(TRUNCATE)")
        ballast = fill(disk, 96 * 1024)

        full = await bulkimport("resume", "--db", str(db), "--rate", "0", "--quiet", cwd=tmp_path)
        assert full.code == 2, full.err
        assert one_error_line(full.err) == (
            f"Error: the disk holding {db} is full; nothing committed is lost: free some "
            f"space, then resume the job: bulkimport resume 1 --db {db}"
        )
        sent = (await stats(sandbox))["requests"]
        assert 0 < sent < 3000  # it stopped in the middle of sending
        summary = (await bulkimport("status", "--db", str(db), "--json", cwd=tmp_path)).json()
        assert summary["state"] == "interrupted"

        os.unlink(ballast)
        done = await bulkimport("resume", "--db", str(db), "--rate", "0", "--json", cwd=tmp_path)
        assert done.code == 0, done.err
        counts = done.json()["counts"]
        assert counts["done"] + counts["duplicate"] == 3000
    held = await customers(sandbox)
    assert len(held) == 3000 and all(c["writes"] == 1 for c in held)
