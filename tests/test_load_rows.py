"""``Client.load_rows``: rows from a program (a CRM sync, a warehouse query), staged durably
and sent with the guarantees of a file, against a real sandbox and a real queue database."""

from __future__ import annotations

import asyncio
import csv
import datetime
import decimal
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkimport import (
    Client,
    ConfigError,
    Event,
    InputError,
    JobOpened,
    JobState,
    ProgressEvent,
    ReadSettings,
    RowState,
    SendSettings,
    Target,
)
from bulkimport.jobs import staging
from bulkimport.reader import cell_text
from bulkimport.rows import REPORT_COLUMNS
from bulkimport.sandbox import SandboxHandle
from tests.helpers import arrivals, customers, query, stats

FAST = SendSettings(rate_per_s=0, max_attempts=1)
#: Rows are staged in batches of ``STAGE_BATCH_ROWS`` (5,000); here in batches of 500, so that
#: the tests of what happens across batches send a tenth of the rows.
BATCH = 500


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "STAGE_BATCH_ROWS", BATCH)


def target_of(sandbox: SandboxHandle, password: str = "secret") -> Target:
    return Target(url=sandbox.url, org="demo", user="admin", password=password, campaign="1")


async def held(sandbox: SandboxHandle) -> dict[str, dict[str, str]]:
    return {c["key"]: c["fields"] for c in await customers(sandbox)}


def contacts(count: int, start: int = 0) -> Iterator[dict[str, Any]]:
    for index in range(start, start + count):
        yield {"customername": f"客户{index}", "phone1": 13900000000 + index, "city": "深圳"}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (math.nan, ""),
        (13800138000.0, "13800138000"),  # pandas: an int column with a gap is float
        (0.5, "0.5"),
        (13800138000, "13800138000"),
        (decimal.Decimal("1.38E+10"), "13800000000"),
        (datetime.datetime(2026, 11, 30, 8, 15), "2026-11-30 08:15:00"),
        (datetime.date(2026, 11, 30), "2026-11-30"),
        ("深圳 ", "深圳 "),  # trimmed later, with every other value, unless keep_spaces
        ("北京".encode(), "北京"),
        (True, "TRUE"),  # as a workbook reads it
        (False, "FALSE"),
    ],
)
def test_a_value_is_sent_as_the_text_a_person_would_type(value: object, text: str) -> None:
    assert cell_text(value) == text


async def test_rows_from_a_list_of_dicts_reach_the_server_as_given(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    rows = [
        {"name": "张三", "Mobile": 13800000001.0, "city": " 北京 ", "note": None},
        {"name": "Émile", "Mobile": "13800000002", "city": "Paris", "note": math.nan},
        {"name": "王五", "Mobile": 13800000003},  # fewer keys: the others are empty
        {"name": "", "Mobile": None, "city": ""},  # nothing in it: blank, not a row
        {"name": "赵六", "Mobile": "13800000004", "email": "zl@example.cn"},  # a key row 1 lacked
        {"name": "钱七", "Mobile": "1.38E+10"},  # digits lost, as Excel loses them
        {"name": "孙八", "Mobile": "13800000008"},
    ]
    heard: list[Event] = []
    read = ReadSettings(rename=(("Mobile", "phone1"), ("name", "customername")))
    async with Client(
        target_of(sandbox), db=tmp_path / "q.db", send=FAST, read=read, on_event=heard.append
    ) as client:
        summary = await client.load_rows(rows, name="crm-contacts")
        assert summary.state is JobState.FINISHED
        assert summary.counts[RowState.DONE] == 5
        assert summary.counts[RowState.INVALID] == 1
        assert summary.blank_lines == 1
        report_rows = await client.write_report(summary.job, tmp_path / "fix.csv")
    assert report_rows[1] == 1
    with (tmp_path / "fix.csv").open(encoding="utf-8-sig") as handle:
        report = list(csv.reader(handle))
    # The key row 5 brought is a column of its own, empty in the rows before and after it.
    assert report[0] == ["name", "Mobile", "city", "note", "email", *REPORT_COLUMNS]
    assert report[1][:-2] == ["钱七", "1.38E+10", "", "", "", "", "6", "invalid"]
    assert report[1][-2] == "phone-digits-lost"
    opened = heard[0]
    assert isinstance(opened, JobOpened)
    assert (opened.job, opened.rows_name, opened.columns) == (1, "crm-contacts", 4)
    server = await held(sandbox)
    assert server == {
        "13800000001": {"customername": "张三", "phone1": "13800000001", "city": "北京"},
        "13800000002": {"customername": "Émile", "phone1": "13800000002", "city": "Paris"},
        "13800000003": {"customername": "王五", "phone1": "13800000003"},
        "13800000004": {"customername": "赵六", "phone1": "13800000004", "email": "zl@example.cn"},
        "13800000008": {"customername": "孙八", "phone1": "13800000008"},
    }
    [(file, fmt)] = query(tmp_path / "q.db", "SELECT file_path, format_json FROM jobs")
    assert file == "rows:crm-contacts" and '"kind": "rows"' in fmt


async def test_an_async_source_is_staged_in_batches_while_its_rows_are_sent(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    events: list[ProgressEvent] = []
    ended_s = 0.0

    async def changed() -> AsyncIterator[dict[str, Any]]:
        nonlocal ended_s
        for index, row in enumerate(contacts(2 * BATCH + 200)):
            if index % BATCH == 0:
                await asyncio.sleep(0.5)  # a page of a remote query
            yield row
        ended_s = time.time()

    async with Client(
        target_of(sandbox), db=tmp_path / "q.db", send=FAST, on_progress=events.append
    ) as client:
        summary = await client.load_rows(changed(), name="warehouse")
    assert (summary.state, summary.counts[RowState.DONE]) == (JobState.FINISHED, 2 * BATCH + 200)
    staged = [e.rows for e in events if e.phase == "reading" and not e.finished and e.rows]
    assert staged == [BATCH, 2 * BATCH, 2 * BATCH + 200]  # one commit per batch, each durable
    # Sending did not wait for the end of the rows: the server heard from it before.
    assert min(arrived for arrived, _, _ in await arrivals(sandbox)) < ended_s
    assert len(await customers(sandbox)) == 2 * BATCH + 200


class SourceFailed(Exception):
    pass


def breaks_after(count: int) -> Iterator[dict[str, Any]]:
    """A source that fails after ``count`` rows (a dropped connection, a query timed out)."""
    yield from contacts(count)
    raise SourceFailed("the source went away")


async def test_a_source_that_fails_leaves_a_job_the_same_name_resumes_without_sending_twice(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    async with Client(target_of(sandbox), db=tmp_path / "q.db", send=FAST) as client:
        with pytest.raises(SourceFailed):
            await client.load_rows(breaks_after(BATCH + BATCH // 2), name="crm")
        [first] = await client.jobs()
        assert first.state is JobState.INTERRUPTED
        assert first.total == BATCH  # the batch that was whole; the half one after it was not
        # The command line (or a library resume) cannot go on staging: only the program can.
        with pytest.raises(ConfigError, match="load the same rows under the same name"):
            await client.resume(first.job)
        pulled = 0

        def counted() -> Iterator[dict[str, Any]]:
            nonlocal pulled
            for row in contacts(BATCH + 400):
                pulled += 1
                yield row

        again = await client.load_rows(counted(), name="crm")
    assert (again.job, again.state) == (first.job, JobState.FINISHED)
    assert again.counts[RowState.DONE] == BATCH + 400 and again.total == BATCH + 400
    assert pulled == BATCH + 400
    assert len(await customers(sandbox)) == BATCH + 400
    # Each row reached the server once: nothing was staged, or sent, twice.
    assert (await stats(sandbox))["requests"] == BATCH + 400


async def test_fewer_rows_on_resume_than_were_staged_is_an_error_naming_both(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    async with Client(target_of(sandbox), db=tmp_path / "q.db", send=FAST) as client:
        with pytest.raises(SourceFailed):
            await client.load_rows(breaks_after(BATCH + 100), name="crm")
        with pytest.raises(InputError, match=f"3 rows given, fewer than the {BATCH} job 1 has"):
            await client.load_rows(contacts(3), name="crm")
        done = await client.load_rows(contacts(BATCH + 100), name="crm")
    assert (done.job, done.state, done.counts[RowState.DONE]) == (
        1,
        JobState.FINISHED,
        BATCH + 100,
    )


async def test_a_job_stopped_by_a_fatal_answer_resumes_under_its_name(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    async with Client(target_of(sandbox, "wrong"), db=tmp_path / "q.db", send=FAST) as client:
        stopped = await client.load_rows(contacts(BATCH + 100), name="crm")
    assert stopped.state is JobState.STOPPED and stopped.counts[RowState.DONE] == 0
    async with Client(target_of(sandbox), db=tmp_path / "q.db", send=FAST) as client:
        done = await client.load_rows(contacts(BATCH + 100), name="crm")
    assert (done.job, done.state, done.counts[RowState.DONE]) == (
        stopped.job,
        JobState.FINISHED,
        BATCH + 100,
    )
    assert len(await customers(sandbox)) == BATCH + 100


async def test_rows_of_a_database_cursor_load_as_they_come(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # sqlite3.Row is no Mapping, but has keys() and is indexed by them, as many drivers'
    # rows are; the cursor belongs to this thread, and keeps working (pulled on the loop's).
    crm = sqlite3.connect(tmp_path / "crm.db")
    crm.row_factory = sqlite3.Row
    crm.execute("CREATE TABLE contacts (customername TEXT, phone1 INTEGER, city TEXT)")
    crm.executemany(
        "INSERT INTO contacts VALUES (?, ?, ?)",
        [(f"客户{i}", 13700000000 + i, "广州") for i in range(BATCH + 200)],
    )
    try:
        async with Client(target_of(sandbox), db=tmp_path / "q.db", send=FAST) as client:
            cursor = crm.execute("SELECT * FROM contacts ORDER BY rowid")
            summary = await client.load_rows(cursor, name="crm")
    finally:
        crm.close()
    assert (summary.state, summary.counts[RowState.DONE]) == (JobState.FINISHED, BATCH + 200)
    server = await held(sandbox)
    assert server["13700000699"] == {
        "customername": "客户699",
        "phone1": "13700000699",
        "city": "广州",
    }


async def test_a_finished_name_loaded_again_is_a_new_job(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    async with Client(target_of(sandbox), db=tmp_path / "q.db", send=FAST) as client:
        first = await client.load_rows(contacts(3), name="nightly")
        second = await client.load_rows(contacts(3, start=3), name="nightly")
        other = await client.load_rows(contacts(2, start=6), name="other")
    assert [first.job, second.job, other.job] == [1, 2, 3]
    assert all(s.state is JobState.FINISHED for s in (first, second, other))
    assert len(await customers(sandbox)) == 8


@pytest.mark.parametrize(
    ("rows", "error", "match"),
    [
        ([], InputError, "no rows were given"),
        ([{}, {}], InputError, "no row has a key; the keys of the rows name the columns"),
        ([("a", "b")], InputError, "row 1: a mapping of column to value is expected, not tuple"),
        ([{"name": "a", "phone1": "1"}, "oops"], InputError, "row 2: a mapping .* not str"),
        ("name,phone1", ConfigError, "an iterable or an async iterable of mappings, not str"),
        ([{"a=b": "1"}], InputError, "row 1: column 1: field name 'a=b' contains '='"),
    ],
)
async def test_rows_that_cannot_be_loaded_get_one_line_naming_the_row(
    tmp_path: Path, sandbox: SandboxHandle, rows: Any, error: type[Exception], match: str
) -> None:
    async with Client(target_of(sandbox), db=tmp_path / "q.db", send=FAST) as client:
        with pytest.raises(error, match=match):
            await client.load_rows(rows, name="bad")
    assert (await stats(sandbox))["requests"] == 0


async def test_a_value_that_cannot_be_text_makes_its_row_invalid_not_the_job(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    rows = [
        {"customername": "张三", "phone1": "13800000001"},
        {"customername": b"\xff\xfe", "phone1": "13800000002"},  # not UTF-8
        {"customername": "李四", "phone1": b"13800000003"},
    ]
    async with Client(target_of(sandbox), db=tmp_path / "q.db", send=FAST) as client:
        summary = await client.load_rows(rows, name="blobs")
        assert (summary.counts[RowState.DONE], summary.counts[RowState.INVALID]) == (2, 1)
        [bad] = [v async for v in client.storage.reports.iter_rows(summary.job, [RowState.INVALID])]
    assert (bad.line, bad.last_code) == (2, "encoding")
    assert bad.last_message == (
        r"key 'customername': bytes that are not UTF-8 text (b'\xff\xfe') cannot be sent"
    )
    assert set(await held(sandbox)) == {"13800000001", "13800000003"}


async def test_a_name_is_required(tmp_path: Path, sandbox: SandboxHandle) -> None:
    async with Client(target_of(sandbox), db=tmp_path / "q.db", send=FAST) as client:
        with pytest.raises(InputError, match="needs a name"):
            await client.load_rows(contacts(1), name=" ")
