"""``run`` sends while it reads: the first call goes with the first batch committed, a job
stop ends reading too, a reading failure ends sending, and both resume from where they were.

A real queue file and real CSV files; the transport answers in the vendor's protocol
without a network, so that thousands of rows are sent in a moment.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bulkimport import Client, JobState, RowState, SendSettings, Target
from bulkimport.jobs import pipeline
from bulkimport.protocol import Outcome, classify_answer, format_answer, parse_answer
from bulkimport.rows import Batch
from bulkimport.send import Request, ScriptedTransport
from bulkimport.states import StopCause
from tests.helpers import query

ROWS = 30_000  # six ingest batches of 5,000

DONE = format_answer(True, "BackMsg_01")
WRONG_PASSWORD = format_answer(False, "BackMsg_63")


def answer(body: str) -> Outcome:
    parsed = parse_answer(body)
    assert parsed is not None
    return classify_answer(parsed)


@dataclass
class Answering:
    """A server that answers every call with ``body``; remembers how far reading was at the
    first call."""

    body: str
    db: Path
    records: list[str] = field(default_factory=list)
    at_first_call: tuple[int, int] | None = None  # (read_done, total_rows) of the job

    def __call__(self, request: Request) -> Outcome:
        if self.at_first_call is None:
            [(read_done, total)] = query(self.db, "SELECT read_done, total_rows FROM jobs")
            self.at_first_call = (read_done, total)
        self.records.append(request.record)
        return answer(self.body)


def leads(tmp_path: Path, rows: int = ROWS) -> Path:
    path = tmp_path / "leads.csv"
    lines = ["phone1,name"] + [f"138{n:08d},Lead {n}" for n in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def client(tmp_path: Path, server: Answering) -> Client:
    target = Target(url="http://cc.invalid", org="demo", user="admin", password="pw", campaign="1")
    return Client(
        target,
        db=tmp_path / "q.db",
        transport=ScriptedTransport(server),
        send=SendSettings(rate_per_s=0, concurrency=8),
    )


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each batch of 5,000 rows takes 0.1 s more to read, as from a slow disk: the file is
    still being read a good while after the first batch, whatever the machine's speed."""
    real = pipeline.read_batches

    def slow(*args: object, **kwargs: object) -> Iterator[Batch]:
        for batch in real(*args, **kwargs):  # type: ignore[arg-type]
            time.sleep(0.1)
            yield batch

    monkeypatch.setattr(pipeline, "read_batches", slow)


def lines_stored(db: Path) -> list[int]:
    return [line for (line,) in query(db, "SELECT line FROM rows ORDER BY line")]


@pytest.mark.usefixtures("slow_disk")
async def test_the_first_call_goes_before_reading_ends_and_the_job_finishes_after_both(
    tmp_path: Path,
) -> None:
    db = tmp_path / "q.db"
    transport = Answering(DONE, db)
    async with client(tmp_path, transport) as loader:
        summary = await loader.load_csv(leads(tmp_path))
    assert summary.state is JobState.FINISHED
    assert transport.at_first_call is not None
    read_done, read_so_far = transport.at_first_call
    assert (read_done, read_so_far < ROWS) == (0, True), transport.at_first_call
    assert summary.counts[RowState.DONE] == summary.total == ROWS
    # Every line read once and sent once.
    assert lines_stored(db) == list(range(2, ROWS + 2))
    assert len(transport.records) == ROWS
    assert len(set(transport.records)) == ROWS
    assert query(db, "SELECT state, read_done FROM jobs") == [("finished", 1)]


@pytest.mark.slow
async def test_a_wrong_password_stops_reading_too_and_the_job_resumes_both(
    tmp_path: Path, slow_disk: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "q.db"
    path = leads(tmp_path)
    refused = Answering(WRONG_PASSWORD, db)
    async with client(tmp_path, refused) as loader:
        stopped = await loader.load_csv(path)
    assert (stopped.state, stopped.stop_cause) == (JobState.STOPPED, StopCause.FATAL)
    assert stopped.message is not None and "BackMsg_63" in stopped.message
    # Reading stopped with sending: the file is not read to its end, nothing was lost.
    [(read_done, total)] = query(db, "SELECT read_done, total_rows FROM jobs")
    assert (read_done, total < ROWS) == (0, True)
    assert stopped.counts[RowState.PENDING] == stopped.total == total
    # The server refused the job, not rows: a handful of calls, not thousands.
    assert len(refused.records) <= 8

    monkeypatch.undo()  # the disk is fast again: the rest is read at full speed
    fixed = Answering(DONE, db)
    async with client(tmp_path, fixed) as loader:
        resumed = await loader.load_csv(path)
    assert (resumed.job, resumed.state) == (stopped.job, JobState.FINISHED)
    assert resumed.counts[RowState.DONE] == ROWS
    assert lines_stored(db) == list(range(2, ROWS + 2))
    assert Counter(fixed.records).most_common(1)[0][1] == 1
    assert len(fixed.records) == ROWS


async def test_a_reading_failure_stops_sending_and_both_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "q.db"
    path = leads(tmp_path)
    real = pipeline.read_batches

    def failing(*args: object, **kwargs: object) -> Iterator[Batch]:
        for n, batch in enumerate(real(*args, **kwargs)):  # type: ignore[arg-type]
            if n == 2:
                raise OSError(5, "Input/output error")
            yield batch

    monkeypatch.setattr(pipeline, "read_batches", failing)
    transport = Answering(DONE, db)
    async with client(tmp_path, transport) as loader:
        with pytest.raises(OSError, match="Input/output error"):
            await loader.load_csv(path)
        # Kept as facts (no sentence stored), told in words when shown.
        shown = await loader.status()
    [(state, cause, message, read_done, total)] = query(
        db, "SELECT state, stop_cause, message, read_done, total_rows FROM jobs"
    )
    assert (state, cause, message) == ("interrupted", "reading", None)
    assert (read_done, total) == (0, 10_000)
    assert shown.stop is not None and shown.stop.error is not None
    assert "Input/output error" in shown.stop.error
    assert shown.message is not None and "Input/output error" in shown.message
    # What was read and sent is recorded; nothing is left in flight.
    [(in_flight,)] = query(db, "SELECT COUNT(*) FROM rows WHERE state = 'in_flight'")
    assert in_flight == 0

    monkeypatch.setattr(pipeline, "read_batches", real)
    async with client(tmp_path, transport) as loader:
        resumed = await loader.load_csv(path)
    assert resumed.state is JobState.FINISHED
    assert resumed.counts[RowState.DONE] == ROWS
    assert lines_stored(db) == list(range(2, ROWS + 2))
    assert len(transport.records) == len(set(transport.records)) == ROWS


async def test_stage_still_only_reads_and_run_then_only_sends(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    transport = Answering(DONE, db)
    async with client(tmp_path, transport) as loader:
        staged = await loader.stage_csv(leads(tmp_path))
        assert (staged.state, staged.total, transport.records) == (JobState.READY, ROWS, [])
        sent = await loader.resume(staged.job)
    assert sent.state is JobState.FINISHED
    assert transport.at_first_call == (1, ROWS)
