"""``failed`` and ``retry`` end to end: real processes, a real sandbox, real files."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkimport.cli import cli
from bulkimport.sandbox import Faults, SandboxHandle
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    bulkimport,
    customers,
    get_json,
    good_rows,
    spawn,
    target,
    write_csv,
)
from tests.small_disk import small_disk

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
    assert [row[-5:-2] for row in read_report(tmp_path / "invalid.csv")[1:]] == [
        ["(2 cells missing)", "9", "invalid"]
    ]

    exported = await bulkimport("failed", "1", "-o", "fix.csv", cwd=tmp_path)
    assert exported.code == 0, exported.err
    assert "3 rows written" in exported.out
    rows = read_report(tmp_path / "fix.csv")
    assert rows[0] == [
        "name", "phone1", "email", "city", "_extra", "_line", "_state", "_code", "_message",
    ]  # fmt: skip
    assert [(r[0], r[4], r[5], r[6], r[7]) for r in rows[1:]] == [
        ("李四", "", "7", "rejected", "BackMsg_76"),
        ("王五", "", "8", "rejected", "BackMsg_76"),
        ("坏行", "(2 cells missing)", "9", "invalid", "cells"),
    ]

    # A person fixes the rows in the file, leaving the _ columns where they are (and
    # emptying _extra once the row's cells are where they belong).
    rows[1][1], rows[2][1] = "13700000001", "13700000002"
    rows[3][:5] = ["坏行", "13700000003", "", "深圳", ""]
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
    # Some calls fail among answers (the storage error BackMsg_85, not an outage): with one
    # attempt each, those rows end failed.
    sandbox = await sandbox_factory(faults=Faults(backmsg85_rate=0.3, seed=3))
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
    assert "choose among failed, invalid, rejected, unknown" in result.output


# --- the report: aligned, named per database and job, written only where it can be -----------


async def test_cells_that_fit_no_column_keep_their_row_invalid_until_a_person_fixes_it(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    lines = [HEADER, *good_rows(3)]
    lines += ["Wide,13800000001,w@example.com,City,extra one,extra two"]  # 6 cells
    lines += ["Narrow,13800000002"]  # 2 cells
    source = write_csv(tmp_path / "leads.csv", lines)
    first = await bulkimport("run", str(source), *target(sandbox), "--json", cwd=tmp_path)
    assert first.code == 1, first.err
    report = Path(first.json()["report"])
    rows = read_report(report)
    assert rows[0] == [*HEADER.split(","), "_extra", "_line", "_state", "_code", "_message"]
    assert rows[1:] == [
        ["Wide", "13800000001", "w@example.com", "City", "extra one,extra two", "5", "invalid",
         "cells", "6 cells, the header has 4"],
        ["Narrow", "13800000002", "", "", "(2 cells missing)", "6", "invalid", "cells",
         "2 cells, the header has 4"],
    ]  # fmt: skip

    # Fed back unedited, neither row loads: their cells may be in the wrong columns.
    again = await bulkimport("run", str(report), *target(sandbox), "--json", cwd=tmp_path)
    assert again.code == 1, again.err
    assert again.json()["counts"] == {**again.json()["counts"], "invalid": 2, "done": 0}
    rows_again = read_report(Path(again.json()["report"]))
    assert [row[4] for row in rows_again[1:]] == ["extra one,extra two", "(2 cells missing)"]
    assert "put them in their columns, then empty _extra" in rows_again[1][8]

    # A person moves the cells where they belong and empties _extra: they load.
    rows[1][3:5] = ["City extra one extra two", ""]
    rows[2][2:5] = ["n@example.com", "Town", ""]
    with open(report, "w", encoding="utf-8-sig", newline="") as handle:  # noqa: ASYNC230
        csv.writer(handle).writerows(rows)
    fixed = await bulkimport("run", str(report), *target(sandbox), "--json", cwd=tmp_path)
    assert fixed.code == 0, fixed.err
    assert fixed.json()["counts"]["done"] == 2
    held = {c["key"]: c["fields"] for c in await customers(sandbox)}
    assert held["13800000002"]["city"] == "Town"


async def test_reports_are_named_per_database_and_job(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(2), "No phone,,x@y.z,C"])
    for name in ("north", "south"):
        result = await bulkimport(
            "run", str(source), *target(sandbox), "--db", f"{name}.db", "--new", "--json",
            cwd=tmp_path,
        )  # fmt: skip
        assert result.code == 1, result.err
        assert result.json()["report"] == str(tmp_path / f"{name}-job-1-failed.csv")
    assert len(read_report(tmp_path / "north-job-1-failed.csv")) == 2
    assert len(read_report(tmp_path / "south-job-1-failed.csv")) == 2
    # The report printed is the one status and jobs give.
    status = await bulkimport("status", "--db", "north.db", "--json", cwd=tmp_path)
    assert status.json()["report"] == str(tmp_path / "north-job-1-failed.csv")
    listed = await bulkimport("jobs", "--db", "south.db", "--json", cwd=tmp_path)
    assert [job["report"] for job in listed.json()["jobs"]] == [
        str(tmp_path / "south-job-1-failed.csv")
    ]


async def test_a_report_that_no_longer_applies_is_removed(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(backmsg85_rate=0.5, seed=3))
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(10)])
    first = await bulkimport(
        "run", str(source), *target(sandbox), "--rate", "0", "--max-attempts", "1",
        "--concurrency", "1", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert first.code == 1, first.err
    report = tmp_path / "bulkimport-job-1-failed.csv"
    assert first.json()["report"] == str(report)
    assert "or send the failed ones again: bulkimport retry 1" in first.err

    sandbox.set_faults(Faults())
    retried = await bulkimport("retry", "1", "--json", cwd=tmp_path)
    assert retried.code == 0, retried.err
    assert retried.json()["report"] is None
    assert not report.exists()
    status = await bulkimport("status", "--json", cwd=tmp_path)
    assert status.json()["report"] is None


@pytest.mark.posix_only("a small tmpfs mounted for the test")
async def test_an_unwritable_report_path_is_refused_before_anything_is_sent(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(3), "No phone,,x@y.z,C"])
    (tmp_path / "folder").mkdir()
    for where, why in (
        ("nodir/failed.csv", "directory nodir does not exist"),
        ("folder", "is a directory; give a file name"),
    ):
        result = await bulkimport(
            "run", str(source), *target(sandbox), "--report", where, cwd=tmp_path
        )
        assert result.code == 2, result.err
        assert result.err.splitlines() == [f"Error: --report {where}: {why}"]
    with small_disk(tmp_path / "mount", 64, read_only=True) as read_only:
        result = await bulkimport(
            "run", str(source), *target(sandbox), "--report", str(read_only / "f.csv"),
            cwd=tmp_path,
        )  # fmt: skip
        assert result.code == 2, result.err
        assert result.err.splitlines() == [
            f"Error: --report {read_only / 'f.csv'}: cannot write there (Read-only file system)"
        ]
    assert (await get_json(sandbox, "/sandbox/stats"))["requests"] == 0


async def test_failed_writes_where_it_is_told_or_says_why_not(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(2), "No phone,,x@y.z,C"])
    first = await bulkimport("run", str(source), *target(sandbox), "--db", "n.db", cwd=tmp_path)
    assert first.code == 1
    # The advice repeats the options that find the database again.
    assert (
        f"  fix them there, then load the file as it is: bulkimport run "
        f"{tmp_path / 'n-job-1-failed.csv'} --db n.db"
    ) in first.err.splitlines()

    nowhere = await bulkimport("failed", "1", "--db", "n.db", "-o", "nodir/x.csv", cwd=tmp_path)
    assert nowhere.code == 2
    assert nowhere.err.splitlines() == ["Error: -o nodir/x.csv: directory nodir does not exist"]
    unknown = await bulkimport("failed", "7", "--db", "n.db", cwd=tmp_path)
    assert unknown.err.splitlines() == ["Error: no job 7 in n.db; see bulkimport jobs --db n.db"]

    piped = await spawn("failed", "1", "--db", "n.db", "-o", "-", cwd=tmp_path, capture=True)
    out, err = await piped.communicate()
    assert piped.returncode == 0
    assert out == (tmp_path / "n-job-1-failed.csv").read_bytes()
    assert err.decode() == "job 1: 1 row written to standard output\n"
