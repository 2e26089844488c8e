"""Workbooks end to end: ``bulkimport`` run as a real process on generated workbooks, against
the sandbox, checked at the server: every phone number and every Chinese name as the sheet
shows it, a kill while reading resumed with every row once, a workbook renamed ``.csv``, and
the failed-rows report of a workbook job read back by ``run``."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import signal
import time
from pathlib import Path
from typing import Any

import openpyxl  # type: ignore[import-untyped]
import pytest

from bench.generate import rows as generated_leads
from bench.generate_xlsx import generate
from bulkimport.sandbox import SandboxHandle
from tests.helpers import (
    bulkimport,
    customers,
    job_state,
    query,
    spawn,
    state_counts,
    target,
)

# The generated sheet's columns, as the sandbox's campaign 1 names them; the others dropped.
MAPPING = (
    *("--map", "mobile=phone1", "--map", "landline=phone2", "--map", "last_call=dialtime"),
    *("--map", "score=", "--map", "signup=", "--map", "best_time=", "--map", "vip="),
    *("--map", "total="),
)


def expected_customers(path: Path) -> dict[str, dict[str, str]]:
    """What the server must hold for the generated workbook at ``path``, read with openpyxl
    (another reader): ``{phone1: fields}``, each value as the sheet shows it."""
    book = openpyxl.load_workbook(path, read_only=True)
    rows = book["Leads"].iter_rows(min_row=2, values_only=True)
    found: dict[str, dict[str, str]] = {}
    for name, mobile, landline, email, company, city, address, priority, *rest in rows:
        last_call, memo = rest[2], rest[6]
        assert isinstance(mobile, int) and isinstance(last_call, dt.datetime)
        fields = {
            "customername": name,
            "phone1": str(mobile),
            "phone2": landline,
            "email": email,
            "company": company,
            "city": city,
            "address": address,
            "priority": str(priority),
            "dialtime": last_call.strftime("%Y-%m-%d %H:%M:%S"),
            "memo": memo,
        }
        found[str(mobile)] = {key: value for key, value in fields.items() if value}
    book.close()
    return found


async def held(sandbox: SandboxHandle) -> dict[str, dict[str, Any]]:
    return {customer["key"]: customer for customer in await customers(sandbox)}


@pytest.mark.slow
async def test_a_workbook_loads_with_every_phone_number_and_chinese_name_intact(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    path = generate(tmp_path / "leads.xlsx", 3000, seed=3)
    checked = await bulkimport("check", str(path), *MAPPING, "--json", cwd=tmp_path)
    report = checked.json()
    assert (report["kind"], report["records"], report["invalid"]) == ("xlsx", 3000, 0)
    assert report["sheet"]["hidden_rows"] == 3 and report["sheet"]["hidden_columns"] == ["O"]
    result = await bulkimport(
        "run", str(path), *target(sandbox), *MAPPING, "--rate", "0", "--json", cwd=tmp_path
    )
    assert result.code == 0, result.err
    assert result.json()["counts"]["done"] == 3000
    expected = expected_customers(path)
    server = await held(sandbox)
    assert server.keys() == expected.keys()
    assert {key: customer["fields"] for key, customer in server.items()} == expected
    assert all(customer["writes"] == 1 for customer in server.values())
    names = [fields["customername"] for fields in expected.values()]
    assert sum(1 for name in names if "\u4e00" <= name[0] <= "\u9fff") > 1000  # Chinese ones
    landlines = [fields["phone2"] for fields in expected.values() if "phone2" in fields]
    assert len(landlines) > 1000 and all(number.startswith("0") for number in landlines)
    # Rows are sheet rows: the database's lines are the rows of the sheet, each once.
    lines = [line for (line,) in query(tmp_path / "bulkimport.db", "SELECT line FROM rows")]
    assert sorted(lines) == list(range(2, 3002))


@pytest.mark.slow
async def test_two_hundred_thousand_leads(tmp_path: Path, sandbox: SandboxHandle) -> None:
    """The issue's acceptance run: 200,000 leads from a workbook into the sandbox."""
    path = generate(tmp_path / "leads.xlsx", 200_000, seed=4)
    started = time.monotonic()
    result = await bulkimport(
        "run", str(path), *target(sandbox), *MAPPING, "--rate", "0", "--concurrency", "16",
        "--quiet", "--json", cwd=tmp_path, timeout_s=1200,
    )  # fmt: skip
    elapsed_s = time.monotonic() - started
    assert result.code == 0, result.err
    assert result.json()["counts"]["done"] == 200_000
    server = await held(sandbox)
    assert len(server) == 200_000
    # The generator's own leads (the landline and the times come from another sequence).
    for name, phone1, _, email, company, city, address, priority, memo in generated_leads(
        200_000, 4
    ):
        fields = server[phone1]["fields"]
        assert (fields["customername"], fields["phone1"], fields["priority"]) == (
            name,
            phone1,
            priority,
        )
        assert (fields.get("email", ""), fields.get("company", "")) == (email, company)
        assert (fields["city"], fields["address"], fields.get("memo", "")) == (city, address, memo)
    print(f"\n200,000 workbook rows loaded in {elapsed_s:.1f} s")


@pytest.mark.slow  # 40,000 rows: long enough a read to be killed in the middle, then sent
@pytest.mark.posix_only("SIGKILL and its exit status (Windows' kill is TerminateProcess)")
async def test_a_kill_while_reading_a_workbook_resumes_with_every_row_once(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    rows = 40_000
    path = generate(tmp_path / "leads.xlsx", rows, seed=5)
    db = tmp_path / "bulkimport.db"
    args = ["stage", str(path), *target(sandbox), *MAPPING, "--quiet"]
    errors = tmp_path / "runner.err"
    proc = await spawn(*args, cwd=tmp_path, stderr_path=errors)
    deadline = time.monotonic() + 60
    read = 0
    # Kill it once a batch or two is committed and reading goes on.
    while read < 5000:
        assert proc.returncode is None, errors.read_text()
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
        if job_state(db) == "reading":
            read = query(db, "SELECT COUNT(*) FROM rows")[0][0]
    proc.send_signal(signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL
    assert job_state(db) == "reading", "the job finished reading before the kill"
    assert 0 < query(db, "SELECT COUNT(*) FROM rows")[0][0] < rows

    resumed = await bulkimport(*args, "--json", cwd=tmp_path)
    assert resumed.code == 0, resumed.err
    assert resumed.json()["job"] == 1  # the same job, read on from where it was killed
    lines = [line for (line,) in query(db, "SELECT line FROM rows ORDER BY id")]
    assert lines == list(range(2, rows + 2))  # every sheet row once, in order
    sent = await bulkimport("resume", "--rate", "0", "--json", cwd=tmp_path)
    assert sent.code == 0, sent.err
    assert state_counts(db) == {"done": rows}
    server = await held(sandbox)
    assert len(server) == rows and all(c["writes"] == 1 for c in server.values())


async def test_a_workbook_renamed_csv_is_loaded_as_a_workbook(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "导出"
    sheet.append(["name", "phone1", "phone2", "city"])
    sheet.append(["王芳", 13800138000, "07551234567", "深圳"])
    sheet.append(["Émile Zola", 8613900139000, None, "Paris"])
    book.save(tmp_path / "leads.csv")
    result = await bulkimport(
        "run", str(tmp_path / "leads.csv"), *target(sandbox), "--rate", "0", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.json()["counts"]["done"] == 2
    server = {key: customer["fields"] for key, customer in (await held(sandbox)).items()}
    assert server == {
        "13800138000": {
            "customername": "王芳",
            "phone1": "13800138000",
            "phone2": "07551234567",
            "city": "深圳",
        },
        "8613900139000": {"customername": "Émile Zola", "phone1": "8613900139000", "city": "Paris"},
    }


async def test_the_failed_rows_of_a_workbook_job_are_a_csv_that_run_reads_back(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["name", "phone1", "city"])
    sheet.append(["张三", 13800000001, "北京"])
    sheet.append(["李四", "1.38E+10", "上海"])  # digits lost: invalid, never sent
    sheet.append(["王五", None, "广州"])  # no phone: the server rejects it
    sheet.append(["赵六", 13800000004, "深圳"])
    book.save(tmp_path / "leads.xlsx")
    first = await bulkimport(
        "run", str(tmp_path / "leads.xlsx"), *target(sandbox), "--rate", "0",
        "--max-attempts", "1", "--report", str(tmp_path / "fix-me.csv"), "--json", cwd=tmp_path,
    )  # fmt: skip
    assert first.code == 1, first.err
    counts = first.json()["counts"]
    assert (counts["done"], counts["invalid"], counts["rejected"]) == (2, 1, 1)
    raw = (tmp_path / "fix-me.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM, as for a CSV job
    report = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert report[0] == ["name", "phone1", "city", "_extra", "_line", "_state", "_code", "_message"]
    assert [row[:6] for row in report[1:]] == [
        ["李四", "1.38E+10", "上海", "", "3", "invalid"],
        ["王五", "", "广州", "", "4", "rejected"],
    ]
    # Fixed in a spreadsheet (here, by hand) and fed back as is.
    fixed = raw.decode("utf-8-sig").replace("1.38E+10", "13800000002")
    fixed = fixed.replace("王五,,", "王五,13800000003,")
    (tmp_path / "fix-me.csv").write_text(fixed, encoding="utf-8-sig")
    again = await bulkimport(
        "run", str(tmp_path / "fix-me.csv"), *target(sandbox), "--rate", "0", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert again.code == 0, again.err
    assert "failed-rows report" in again.err
    server = {key: c["fields"]["customername"] for key, c in (await held(sandbox)).items()}
    assert server == {
        "13800000001": "张三",
        "13800000002": "李四",
        "13800000003": "王五",
        "13800000004": "赵六",
    }
