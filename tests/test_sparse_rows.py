"""``Client.load_rows`` with rows as a CRM gives them: a key is left out when its value is
empty, so no row (the first least of all) has every key. Every value of every row reaches the
server, across batches and across a resume; a value with no text makes its row invalid, not the
job; a report has a column per key, and loads back."""

from __future__ import annotations

import csv
import datetime
import decimal
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkimport import (
    Client,
    ColumnsAdded,
    Event,
    JobState,
    ProgressEvent,
    ReadSettings,
    RenameUnused,
    RowState,
    SendSettings,
    Target,
)
from bulkimport.jobs import staging
from bulkimport.reader import UnsupportedValue, cell_text
from bulkimport.rows import REPORT_COLUMNS
from bulkimport.sandbox import SandboxHandle
from tests.helpers import bulkimport, customers, query, stats, target

FAST = SendSettings(rate_per_s=0, max_attempts=1)
#: Staged in batches of 500 (not 5,000): 10,000 rows are 20 batches, and keys first appear
#: in batches staged after sending started.
BATCH = 500
ROWS = 10_000
#: The column order the CRM's rows give, key by key as they first appear.
COLUMNS = ["customername", "phone1", "city", "email", "memo", "company", "priority"]


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "STAGE_BATCH_ROWS", BATCH)


def target_of(sandbox: SandboxHandle) -> Target:
    return Target(url=sandbox.url, org="demo", user="admin", password="secret", campaign="1")


def crm(count: int = ROWS, *, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Contacts as a CRM's API gives them: a key only when its value is not empty. The first
    has no email; ``company`` first appears at row 4,001, ``priority`` at row 7,777."""
    pick = random.Random(seed)
    for index in range(count):
        row: dict[str, Any] = {"customername": f"客户{index}", "phone1": 13900000000 + index}
        if pick.random() < 0.8:
            row["city"] = pick.choice(["深圳", "北京", "上海 "])
        if index and pick.random() < 0.6:
            row["email"] = f"c{index}@example.cn"
        if pick.random() < 0.1:
            row["memo"] = decimal.Decimal(index) / 4  # 0.25 steps: Decimal text, no exponent
        if index >= 4000 and pick.random() < 0.5:
            row["company"] = f"公司{index % 97}"
        if index == 7776 or (index > 7776 and pick.random() < 0.05):
            row["priority"] = 9
        yield row


def expected(rows: Iterator[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """What the server must hold: every value of every row, as text, trimmed."""
    return {
        str(row["phone1"]): {key: cell_text(value).strip() for key, value in row.items()}
        for row in rows
    }


async def held(sandbox: SandboxHandle) -> dict[str, dict[str, str]]:
    return {c["key"]: c["fields"] for c in await customers(sandbox)}


def job_columns(db: Path) -> list[str]:
    [(fmt,)] = query(db, "SELECT format_json FROM jobs")
    header: list[str] = json.loads(fmt)["header"]
    return header


@pytest.mark.slow
async def test_every_value_of_sparse_crm_rows_reaches_the_server(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    first = next(crm())
    assert "email" not in first  # the rows this is about
    async with Client(target_of(sandbox), db=tmp_path / "q.db", send=FAST) as client:
        summary = await client.load_rows(crm(), name="crm")
    assert summary.state is JobState.FINISHED
    assert summary.counts[RowState.DONE] == ROWS
    assert summary.counts[RowState.INVALID] == 0
    server = await held(sandbox)
    want = expected(crm())
    assert len(server) == ROWS
    for phone, fields in want.items():
        assert server[phone] == fields, phone
    # Every key a row had, and only those, as the server's own records say.
    assert sum(len(fields) for fields in server.values()) == sum(len(f) for f in want.values())
    assert job_columns(tmp_path / "q.db") == COLUMNS


class SourceFailed(Exception):
    pass


def failing_after(count: int) -> Iterator[dict[str, Any]]:
    """The CRM's feed, dropped after ``count`` rows (a timed-out page, a lost connection)."""
    yield from crm(count)
    raise SourceFailed("the CRM went away")


@pytest.mark.slow
async def test_a_resume_after_the_feed_failed_midway_gives_the_same(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # Dropped in the batch after the one that brought ``company``: that batch is staged (and
    # its column kept), the half batch after it is not.
    db = tmp_path / "q.db"
    async with Client(target_of(sandbox), db=db, send=FAST) as client:
        with pytest.raises(SourceFailed):
            await client.load_rows(failing_after(4750), name="crm")
        [broken] = await client.jobs()
        assert (broken.state, broken.total) == (JobState.INTERRUPTED, 4500)
        assert job_columns(db) == COLUMNS[:-1]
        again = await client.load_rows(crm(), name="crm")
    assert (again.job, again.state) == (broken.job, JobState.FINISHED)
    assert again.counts[RowState.DONE] == ROWS and again.total == ROWS
    assert job_columns(db) == COLUMNS  # as the run that was never interrupted has them
    assert await held(sandbox) == expected(crm())
    # Nothing staged, or sent, twice.
    assert (await stats(sandbox))["requests"] == ROWS


@pytest.mark.slow
async def test_a_resume_after_a_stop_midway_gives_the_same(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # Stopped (as Ctrl-C stops) once the batch that brings ``company`` is staged: the calls
    # in flight finish, then a new client loads the same rows under the same name.
    db = tmp_path / "q.db"
    stopping: list[Client] = []

    def stop_after_company(event: ProgressEvent) -> None:
        if event.phase == "reading" and event.rows >= 4500 and len(stopping) == 1:
            stopping.append(stopping[0])  # once: a second stop quits at once, as Ctrl-C does
            stopping[0].stop()

    first = Client(target_of(sandbox), db=db, send=FAST, on_progress=stop_after_company)
    stopping.append(first)
    async with first:
        stopped = await first.load_rows(crm(), name="crm")
    assert stopped.state is JobState.INTERRUPTED
    assert stopped.total < ROWS and "company" in job_columns(db)
    async with Client(target_of(sandbox), db=db, send=FAST) as client:
        again = await client.load_rows(crm(), name="crm")
    assert (again.job, again.state) == (stopped.job, JobState.FINISHED)
    assert again.counts[RowState.DONE] == ROWS
    assert job_columns(db) == COLUMNS
    assert await held(sandbox) == expected(crm())
    assert (await stats(sandbox))["requests"] == ROWS


async def test_a_report_has_a_column_per_key_and_loads_back_fixed(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    rows = [
        {"customername": "张三", "phone1": "13800000001"},
        {"customername": "李四", "phone1": "1.38E+10", "email": "ls@example.cn"},  # digits lost
        {"customername": "王五", "phone1": "13800000003", "city": "深圳"},
        {"customername": "赵六", "phone1": "1.38E+10", "city": "广州", "address": "某路1号"},
    ]
    async with Client(target_of(sandbox), db=tmp_path / "q.db", send=FAST) as client:
        summary = await client.load_rows(rows, name="crm")
        assert (summary.counts[RowState.DONE], summary.counts[RowState.INVALID]) == (2, 2)
        await client.write_report(summary.job, tmp_path / "fix.csv")
    with (tmp_path / "fix.csv").open(encoding="utf-8-sig", newline="") as handle:
        report = list(csv.reader(handle))
    assert report[0] == ["customername", "phone1", "email", "city", "address", *REPORT_COLUMNS]
    assert [line[:7] for line in report[1:]] == [
        ["李四", "1.38E+10", "ls@example.cn", "", "", "", "2"],
        ["赵六", "1.38E+10", "", "广州", "某路1号", "", "4"],
    ]
    # A person puts the numbers back, and the report is loaded as it is.
    report[1][1], report[2][1] = "13800000002", "13800000004"
    with (tmp_path / "fixed.csv").open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows(report)
    done = await bulkimport("run", str(tmp_path / "fixed.csv"), *target(sandbox), cwd=tmp_path)
    assert done.code == 0, done.err
    server = await held(sandbox)
    assert server["13800000002"] == {
        "customername": "李四", "phone1": "13800000002", "email": "ls@example.cn"
    }  # fmt: skip
    assert server["13800000004"] == {
        "customername": "赵六", "phone1": "13800000004", "city": "广州", "address": "某路1号"
    }  # fmt: skip


async def test_a_later_key_that_names_no_field_makes_only_its_rows_invalid(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # ``internal id`` is dropped (renamed to nothing) before any row has it; ``a=b`` cannot
    # be a field's name. The rows stored so far without their cells keep them: the report
    # and every row's cells read as staged.
    rows: list[dict[str, Any]] = [
        {"customername": f"客户{i}", "phone1": f"138000000{i:02d}"} for i in range(5)
    ]
    rows.append({"customername": "甲", "phone1": "13800000005", "internal id": 12})
    rows.append({"customername": "乙", "phone1": "13800000006", "a=b": "x"})
    rows.append({"customername": "丙", "phone1": "13800000007", "a=b": ""})
    read = ReadSettings(rename=(("internal id", None),))
    async with Client(target_of(sandbox), db=tmp_path / "q.db", send=FAST, read=read) as client:
        summary = await client.load_rows(rows, name="crm")
        assert (summary.counts[RowState.DONE], summary.counts[RowState.INVALID]) == (7, 1)
        done = [
            (view.line, view.cells)
            async for view in client.storage.reports.iter_rows(summary.job, [RowState.DONE])
        ]
        [bad] = [
            view async for view in client.storage.reports.iter_rows(summary.job, [RowState.INVALID])
        ]
    assert done[0] == (1, ("客户0", "13800000000", "", ""))
    assert done[5] == (6, ("甲", "13800000005", "12", ""))
    assert (bad.line, bad.cells, bad.last_code) == (7, ("乙", "13800000006", "", "x"), "cells")
    assert bad.last_message == (
        "key 'a=b' cannot be sent: field name 'a=b' contains '='; map it to a field with "
        "rename=(('a=b', FIELD),)"
    )
    server = await held(sandbox)
    assert server["13800000005"] == {"customername": "甲", "phone1": "13800000005"}
    assert "13800000006" not in server


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque>"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1, 2], "a list ([1, 2])"),
        ({"a": 1}, "a dict ({'a': 1})"),
        ({"vip"}, "a set ({'vip'})"),
        (("a", "b"), "a tuple (('a', 'b'))"),
        (Opaque(), "an object of type Opaque (<Opaque>)"),
    ],
)
def test_a_value_with_no_text_is_refused_saying_what_it_is(value: object, message: str) -> None:
    with pytest.raises(UnsupportedValue) as refused:
        cell_text(value)
    assert f"{refused.value.kind} ({refused.value.value})" == message


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (datetime.time(8, 15), "08:15:00"),
        (decimal.Decimal("NaN"), ""),
        (7, "7"),
    ],
)
def test_values_with_one_text_a_person_would_type(value: object, text: str) -> None:
    assert cell_text(value) == text


async def test_rows_with_values_that_have_no_text_are_invalid_and_the_rest_load(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    bad: dict[int, tuple[str, object]] = {
        3: ("tags", ["vip", "new"]),
        250: ("address", {"city": "深圳"}),
        600: ("tags", {"vip"}),
        777: ("customername", b"\xff\xfe"),
        900: ("owner", Opaque()),
    }

    def feed() -> Iterator[dict[str, Any]]:
        for index in range(1000):
            row: dict[str, Any] = {"customername": f"客户{index}", "phone1": 13900000000 + index}
            if index in bad:
                key, value = bad[index]
                row[key] = value
            yield row

    async with Client(target_of(sandbox), db=tmp_path / "q.db", send=FAST) as client:
        summary = await client.load_rows(feed(), name="crm")
        assert summary.state is JobState.FINISHED
        assert (summary.counts[RowState.DONE], summary.counts[RowState.INVALID]) == (995, 5)
        invalid = [
            (view.line, view.last_code, view.last_message)
            async for view in client.storage.reports.iter_rows(summary.job, [RowState.INVALID])
        ]
    no_text = "cannot be sent; give text, a number, a date or None"
    assert invalid == [
        (4, "value-type", f"key 'tags': a list (['vip', 'new']) {no_text}"),
        (251, "value-type", f"key 'address': a dict ({{'city': '深圳'}}) {no_text}"),
        (601, "value-type", f"key 'tags': a set ({{'vip'}}) {no_text}"),
        (778, "encoding", r"key 'customername': bytes that are not UTF-8 text (b'\xff\xfe') "
                          "cannot be sent"),
        (901, "value-type", f"key 'owner': an object of type Opaque (<Opaque>) {no_text}"),
    ]  # fmt: skip
    server = await held(sandbox)
    assert len(server) == 995 and "13900000003" not in server
    assert server["13900000004"] == {"customername": "客户4", "phone1": "13900000004"}


async def test_leading_rows_with_no_key_are_blank_and_the_first_with_one_names_columns(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # A contact whose every value is empty: its feed leaves every key out.
    rows = [{}, {}, {"customername": "张三", "phone1": "13800000001"}, {}, {"phone1": 138000002}]
    async with Client(target_of(sandbox), db=tmp_path / "q.db", send=FAST) as client:
        summary = await client.load_rows(rows, name="crm")
    assert (summary.state, summary.counts[RowState.DONE]) == (JobState.FINISHED, 2)
    assert summary.blank_lines == 3
    assert job_columns(tmp_path / "q.db") == ["customername", "phone1"]
    assert set(await held(sandbox)) == {"13800000001", "138000002"}


async def test_a_rename_of_a_key_no_row_had_is_told_once_the_rows_end(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # Up front it cannot be told from a key later rows bring; at the end, it is a typo.
    read = ReadSettings(rename=(("Emial", "email"), ("Mobile", "phone1")))
    rows = [{"customername": "张三", "phone1": "13800000001"}, {"customername": "李四",
             "Mobile": "13800000002"}]  # fmt: skip
    heard: list[Event] = []
    async with Client(
        target_of(sandbox), db=tmp_path / "q.db", send=FAST, read=read, on_event=heard.append
    ) as c:
        summary = await c.load_rows(rows, name="crm")
    assert summary.counts[RowState.INVALID] == 1  # Mobile is phone1, which phone1 is already
    added = [e.first_rows for e in heard if isinstance(e, ColumnsAdded)]
    assert added == [{"Mobile": 2}]
    assert [e.key for e in heard if isinstance(e, RenameUnused)] == ["Emial"]
