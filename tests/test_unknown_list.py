"""Rows that may be on the server (``unknown``): counted apart, listed beside the failed-rows
report and never in it, and that list kept as the report is (rewritten by ``forget``, removed
by ``prune`` and once no row is unknown any more).

A real queue database and real files; the rows' outcomes are recorded through the storage's
own sending interface, as the dispatcher records them. (Runs against the sandbox, where a
proxy's timeout makes rows unknown: tests/reliability/test_unknown_rows.py.)
"""

from __future__ import annotations

import asyncio
import csv
import time
from pathlib import Path

from click.testing import CliRunner

from bulkimport import Client, Target
from bulkimport.cli import cli
from bulkimport.cli.base import Where, attention_lines
from bulkimport.errors import ExitCode
from bulkimport.jobs.report import place_report
from bulkimport.jobs.summary import summarize
from bulkimport.rows import RowResult
from bulkimport.states import JobState, RowState
from bulkimport.storage.sqlite import SqliteStorage
from tests.helpers import HEADER, RUNNER, good_rows, write_csv

TARGET = Target(
    url="http://127.0.0.1:9/asterccinterfaces", org="demo", user="admin", campaign="1",
    password="secret",
)  # fmt: skip


async def job_with(tmp_path: Path, outcomes: list[RowState]) -> tuple[Path, int]:
    """A job of ``len(outcomes)`` rows read from a file, each row's last call ending in its
    outcome (an ``unknown`` one after calls with no answer), the job finished."""
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(len(outcomes))])
    db = tmp_path / "leads.db"
    async with Client(TARGET, db=db) as client:
        job = (await client.stage_csv(source)).job
    async with await SqliteStorage.open(db) as storage:
        rows = await storage.sending.claim_batch(job, 100, now_s=time.time(), runner=RUNNER)
        await storage.sending.record_results(
            job,
            [
                RowResult(
                    row.id,
                    state,
                    "HTTP 504",
                    f"line {row.line}: {state.value}",
                    unknown=state is RowState.UNKNOWN,
                )
                for row, state in zip(rows, outcomes, strict=True)
            ],
        )
        await storage.jobs.set_state(job, JobState.FINISHED)
    return db, job


def listed(path: str | None) -> list[tuple[str, str, str]]:
    """``(phone1, _state, _message)`` of each row of a report or list."""
    assert path is not None
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return [(r["phone1"], r["_state"], r["_message"]) for r in csv.DictReader(handle)]


async def test_unknown_rows_are_listed_beside_the_report_and_end_the_job_with_exit_1(
    tmp_path: Path,
) -> None:
    outcomes = [RowState.DONE, RowState.UNKNOWN, RowState.FAILED, RowState.UNKNOWN]
    db, job = await job_with(tmp_path, outcomes)
    async with await SqliteStorage.open(db) as storage:
        report = await place_report(storage, await storage.jobs.get(job), None)
        summary = await summarize(storage, job)
    assert report == summary.report == str(tmp_path / "leads-job-1-failed.csv")
    assert summary.unknown_report == str(tmp_path / "leads-job-1-unknown.csv")
    assert listed(summary.report) == [("13900000002", "failed", "line 4: failed")]
    assert listed(summary.unknown_report) == [
        ("13900000001", "unknown", "line 3: unknown"),
        ("13900000003", "unknown", "line 5: unknown"),
    ]
    assert (summary.problems, summary.maybe_on_server) == (1, 2)
    head = attention_lines(summary, Where(db, None))[0]
    assert head == f"1 row needs attention (1 failed): {summary.report}"
    assert summary.to_json()["counts"]["unknown"] == summary.to_json()["maybe_on_server"] == 2
    assert summary.exit_code is ExitCode.ROWS_FAILED


async def test_a_job_whose_only_unsettled_rows_may_be_on_the_server_is_not_a_silent_success(
    tmp_path: Path,
) -> None:
    db, job = await job_with(tmp_path, [RowState.DONE, RowState.UNKNOWN])
    async with await SqliteStorage.open(db) as storage:
        assert await place_report(storage, await storage.jobs.get(job), None) is None
        summary = await summarize(storage, job)
    assert summary.report is None and summary.problems == 0
    assert summary.exit_code is ExitCode.ROWS_FAILED
    lines = attention_lines(summary, Where(db, None))
    assert lines == [
        "1 row may be on the server (unknown: no answer came): check the server before "
        f"sending them again: {tmp_path / 'leads-job-1-unknown.csv'}",
        f"  send them again (safe with --dupway skip): bulkimport retry 1 --unknown --db {db}",
    ]


async def test_the_list_follows_the_rows_forget_and_prune(tmp_path: Path) -> None:
    outcomes = [RowState.UNKNOWN, RowState.UNKNOWN, RowState.DONE]
    db, job = await job_with(tmp_path, outcomes)
    async with await SqliteStorage.open(db) as storage:
        await place_report(storage, await storage.jobs.get(job), None)
    unknown_list = tmp_path / "leads-job-1-unknown.csv"
    async with Client(TARGET, db=db) as client:
        forgotten = await client.forget("13900000000")
        assert forgotten.reports == 1
        assert [phone for phone, _, _ in listed(str(unknown_list))] == ["13900000001"]
        assert "13900000000" not in unknown_list.read_text(encoding="utf-8-sig")
        # Sent again and settled: the list no longer applies.
        assert await client.storage.reports.reset_rows(job, [RowState.UNKNOWN]) == 1
        [row] = await client.storage.sending.claim_batch(job, 10, now_s=time.time(), runner=RUNNER)
        await client.storage.sending.record_results(
            job, [RowResult(row.id, RowState.DONE, "BackMsg_81", "imported earlier")]
        )
        await place_report(client.storage, await client.storage.jobs.get(job), None)
        assert not unknown_list.exists()
        assert (await client.status(job)).unknown_report is None


async def test_prune_removes_the_list_with_its_job(tmp_path: Path) -> None:
    db, job = await job_with(tmp_path, [RowState.UNKNOWN])
    async with await SqliteStorage.open(db) as storage:
        await place_report(storage, await storage.jobs.get(job), None)
    unknown_list = tmp_path / "leads-job-1-unknown.csv"
    assert unknown_list.exists()
    async with Client(TARGET, db=db) as client:
        assert [j.id for j in await client.prune(-60.0)] == [job]
    assert not unknown_list.exists()


async def test_failed_exports_them_on_demand_never_over_the_report_of_rows_to_fix(
    tmp_path: Path,
) -> None:
    db, job = await job_with(tmp_path, [RowState.UNKNOWN, RowState.FAILED])
    async with await SqliteStorage.open(db) as storage:
        await place_report(storage, await storage.jobs.get(job), None)
    report = tmp_path / "leads-job-1-failed.csv"
    before = report.read_bytes()
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["failed", "1", "--db", str(db), "--state", "unknown"]
    )
    assert result.exit_code == 0, result.output
    written = tmp_path / "leads-job-1-unknown.csv"
    assert result.output == f"job 1: 1 row written to {written}\n"
    assert [state for _, state, _ in listed(str(written))] == ["unknown"]
    assert report.read_bytes() == before
    # Without --state: the rows to fix, as ever.
    plain = await asyncio.to_thread(CliRunner().invoke, cli, ["failed", "1", "--db", str(db)])
    assert plain.output == f"job 1: 1 row written to {report}\n"
    assert [state for _, state, _ in listed(str(report))] == ["failed"]
