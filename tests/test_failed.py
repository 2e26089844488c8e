"""``failed`` and ``retry`` end to end: real processes, a real sandbox, real files."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from bulkimport.cli import cli
from bulkimport.sandbox import Faults
from tests.conftest import SandboxFactory
from tests.helpers import bulkimport, customers, get_json, good_rows, target, write_csv

SEMI_HEADER = "name;phone1;email;city"


def read_report(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf"), "a report is UTF-8 with a BOM"
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


async def test_failed_then_fix_then_run_round_trip(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory()
    lines = [SEMI_HEADER]
    lines += [f"张{i};1390000{i:04d};z{i}@example.com;北京" for i in range(5)]
    lines += ["李四;;li@example.com;上海", "王五;;wang@example.com;广州"]  # rejected: 76
    lines += ["坏行;1"]  # invalid: 2 cells
    # The options a nightly profile would hold for this legacy export.
    read_options = ["--delimiter", ";", "--encoding", "gb18030", "--rate", "0"]
    source = write_csv(tmp_path / "leads.csv", lines, encoding="gb18030")
    first = await bulkimport(
        "run", str(source), *target(sandbox), *read_options, "--json", cwd=tmp_path
    )
    assert first.code == 1, first.err
    assert first.json()["counts"]["rejected"] == 2
    assert first.json()["counts"]["invalid"] == 1

    only_invalid = await bulkimport(
        "failed", "1", "-o", "invalid.csv", "--state", "invalid", cwd=tmp_path
    )
    assert only_invalid.code == 0, only_invalid.err
    assert [row[-4:-2] for row in read_report(tmp_path / "invalid.csv")[1:]] == [["9", "invalid"]]

    exported = await bulkimport("failed", "1", "-o", "fix.csv", cwd=tmp_path)
    assert exported.code == 0, exported.err
    assert "3 rows written" in exported.out
    rows = read_report(tmp_path / "fix.csv")
    assert rows[0] == ["name", "phone1", "email", "city", "_line", "_state", "_code", "_message"]
    assert [(r[0], r[4], r[5], r[6]) for r in rows[1:]] == [
        ("李四", "7", "rejected", "BackMsg_76"),
        ("王五", "8", "rejected", "BackMsg_76"),
        ("坏行", "9", "invalid", "cells"),
    ]

    # A person fixes the rows in the file, leaving the _ columns where they are.
    rows[1][1], rows[2][1] = "13700000001", "13700000002"
    rows[3][:4] = ["坏行", "13700000003", "", "深圳"]
    with open(tmp_path / "fix.csv", "w", encoding="utf-8-sig", newline="") as handle:  # noqa: ASYNC230
        csv.writer(handle).writerows(rows)

    # Fed back with the same options as the original file: the report is read as UTF-8 CSV.
    again = await bulkimport(
        "run", "fix.csv", *target(sandbox), *read_options, "--json", cwd=tmp_path
    )
    assert again.code == 0, again.err
    assert again.json()["job"] == 2
    assert again.json()["counts"]["done"] == 3
    held = {c["key"]: c for c in await customers(sandbox)}
    assert len(held) == 8
    assert held["13700000003"]["fields"] == {
        "customername": "坏行", "phone1": "13700000003", "city": "深圳",
    }  # fmt: skip
    assert held["13700000001"]["fields"]["customername"] == "李四"
    assert all(c["writes"] == 1 for c in held.values())


async def test_retry_sends_failed_rows_then_rejected_ones(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    # Some calls fail among answers (a server error for those rows, not an outage): with one
    # attempt each, those rows end failed.
    sandbox = await sandbox_factory(faults=Faults(http500_rate=0.3, seed=3))
    lines = ["name,phone1,email,city", *good_rows(10), "No phone,,np@example.com,X"]
    source = write_csv(tmp_path / "leads.csv", lines)
    first = await bulkimport(
        "run", str(source), *target(sandbox), "--rate", "0", "--concurrency", "1",
        "--max-attempts", "1", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert first.code == 1, first.err
    failed = first.json()["counts"]["failed"]
    assert failed >= 2, first.out

    sandbox.set_faults(Faults())
    retried = await bulkimport("retry", "1", "--json", cwd=tmp_path)
    assert retried.code == 1, retried.err
    counts = retried.json()["counts"]
    assert (counts["done"], counts["rejected"], counts["failed"]) == (10, 1, 0)
    assert f"{failed} failed rows back to pending" in retried.err
    held = await customers(sandbox)
    assert len(held) == 10 and all(c["writes"] == 1 for c in held)
    with sqlite3.connect(tmp_path / "bulkimport.db") as conn:
        # Attempts were reset: one attempt each since the retry (the others had one).
        assert {a for (a,) in conn.execute("SELECT attempts FROM rows")} == {1}

    before = (await get_json(sandbox, "/sandbox/stats"))["requests"]
    plain = await bulkimport("retry", "1", cwd=tmp_path)
    assert plain.code == 1
    assert (await get_json(sandbox, "/sandbox/stats"))["requests"] == before
    with_rejected = await bulkimport("retry", "1", "--rejected", cwd=tmp_path)
    assert with_rejected.code == 1, with_rejected.err
    assert (await get_json(sandbox, "/sandbox/stats"))["requests"] == before + 1


def test_failed_refuses_an_unknown_state(tmp_path: Path) -> None:
    db = tmp_path / "bulkimport.db"
    sqlite3.connect(db).close()
    result = CliRunner().invoke(cli, ["failed", "--db", str(db), "--state", "done"])
    assert result.exit_code == 2
    assert "choose among failed, invalid, rejected" in result.output
