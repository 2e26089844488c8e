"""Erasing one customer: ``bulkimport forget --key VALUE`` and ``Client.forget``.

Real runs fill a real database (rows of two jobs, a report, the latest records of an
incremental load); after ``forget`` the value is nowhere in the database's files, the report
is written anew without it, and every other row is as it was.
"""

from __future__ import annotations

import csv
from pathlib import Path

from bulkimport import Client
from bulkimport.sandbox import SandboxHandle
from bulkimport.storage.sqlite import SqliteStorage
from tests.helpers import HEADER, bulkimport, good_rows, query, state_counts, target, write_csv

PHONE = "13912345678"


def leads(tmp_path: Path) -> Path:
    rows = good_rows(20)
    return write_csv(
        tmp_path / "leads.csv",
        [
            HEADER,
            *rows[:10],
            f"Wang Fang,{PHONE},wang@example.cn,Hangzhou",
            *rows[10:],
            # The same person on a line too long to load: an invalid row, in the report.
            f"Wang Fang,{PHONE},wang@example.cn,Hangzhou,a cell too many",
        ],
    )


def files_of(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file())


async def test_forget_erases_a_customer_from_every_job_the_report_and_the_latest_records(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    source = leads(tmp_path)
    db = tmp_path / "leads.db"
    first = await bulkimport("run", str(source), *target(sandbox), "--db", str(db), cwd=tmp_path)
    assert first.code == 1, first.err  # the invalid line
    again = await bulkimport(
        "run", str(source), *target(sandbox), "--db", str(db), "--new",
        "--skip-unchanged", "--phone-field", "phone1", cwd=tmp_path,
    )  # fmt: skip
    assert again.code == 1, again.err
    assert query(db, "SELECT count(*) FROM latest_records WHERE customer = ?", PHONE) == [(1,)]
    report = tmp_path / "leads-job-2-failed.csv"
    assert PHONE in report.read_text(encoding="utf-8-sig")
    assert PHONE.encode() in files_of(db)
    before = state_counts(db)

    done = await bulkimport("forget", "--key", PHONE, "--db", str(db), cwd=tmp_path)
    assert done.code == 0, done.err
    assert done.out.strip() == (
        "forgot 4 rows (jobs 1, 2) and 1 latest record; 2 reports written anew"
    )
    assert PHONE.encode() not in files_of(db)
    assert query(db, "SELECT count(*) FROM latest_records WHERE customer = ?", PHONE) == [(0,)]
    # Job 2's report had only that person's line: no row of the job needs a person now.
    assert not report.exists()
    first_report = tmp_path / "leads-job-1-failed.csv"
    assert not first_report.exists()
    after = state_counts(db)
    assert after["done"] == before["done"] - 1
    assert after.get("invalid", 0) == before["invalid"] - 2
    assert after.get("skipped", 0) == before.get("skipped", 0) - 1
    # The counts status shows agree with the rows left.
    status = (await bulkimport("status", "1", "--db", str(db), "--json", cwd=tmp_path)).json()
    assert status["total"] == 20
    assert status["counts"]["done"] == 20

    nothing = await bulkimport("forget", "--key", PHONE, "--db", str(db), cwd=tmp_path)
    assert nothing.code == 0
    assert nothing.out.strip() == f"nothing in {db} holds that value"


async def test_forget_keeps_a_report_of_the_others(tmp_path: Path, sandbox: SandboxHandle) -> None:
    lines = [
        HEADER,
        *good_rows(5),
        f"Wang Fang,{PHONE},wang@example.cn,Hangzhou,one too many",
        "Li Lei,13700000000,li@example.cn,Wuhan,one too many",
    ]
    source = write_csv(tmp_path / "leads.csv", lines)
    done = await bulkimport("run", str(source), *target(sandbox), cwd=tmp_path)
    assert done.code == 1
    report = tmp_path / "bulkimport-job-1-failed.csv"
    forgotten = await bulkimport("forget", "--key", PHONE, "--json", cwd=tmp_path)
    assert forgotten.json() == {"rows": 1, "jobs": [1], "latest_records": 0, "reports": 1}
    with report.open(encoding="utf-8-sig", newline="") as handle:
        kept = list(csv.DictReader(handle))
    assert [row["phone1"] for row in kept] == ["13700000000"]


async def test_an_empty_key_is_refused_and_a_part_of_a_value_is_not_a_match(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    source = leads(tmp_path)
    done = await bulkimport("run", str(source), *target(sandbox), cwd=tmp_path)
    assert done.code == 1
    empty = await bulkimport("forget", "--key", " ", cwd=tmp_path)
    assert empty.code == 2
    assert empty.error_lines() == [
        "Error: give the value that identifies the customer (a phone number)"
    ]
    async with (
        await SqliteStorage.open(tmp_path / "bulkimport.db") as storage,
        Client(storage=storage) as client,
    ):
        partial = await client.forget(PHONE[:-1])
    assert partial.rows == 0
    assert PHONE.encode() in files_of(tmp_path / "bulkimport.db")
