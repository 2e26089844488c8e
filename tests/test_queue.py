"""The SQLite queue, on real database files."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import signal
import sqlite3
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkimport.errors import ConfigError, DatabaseError, RunnerBusy
from bulkimport.reader import ReaderOptions, read_batches, sniff_format
from bulkimport.rows import Batch, FileIdentity, NewRow, RowResult
from bulkimport.states import InvalidReason, JobState, RemoteState, RowState
from bulkimport.storage.sqlite import Ingested, Job, Queue
from bulkimport.storage.sqlite.cells import CELLS_IN_RECORD
from bulkimport.storage.sqlite.store import load_migrations

FILE = FileIdentity("/data/leads.csv", 1234, 1_700_000_000_000_000_000, "ab" * 32)
TARGET = "https://cc.example.com|org1|campaign7"


def pending(line: int, *cells: str) -> NewRow:
    return NewRow(line, RowState.PENDING, f"phone={line}", cells or (str(line), "x"))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


@pytest.fixture
async def queue(db_path: Path) -> AsyncIterator[Queue]:
    async with await Queue.open(db_path) as opened:
        yield opened


async def ready_job(queue: Queue, lines: int, target: str = TARGET) -> Job:
    """A job with rows 2..lines+1 read and ready to send."""
    job = await queue.create_job(FILE, target, {"rate": 5}, '{"delimiter": ","}')
    rows = [pending(line) for line in range(2, lines + 2)]
    await queue.add_rows(job.id, rows, read_offset=100, read_line=lines + 1)
    await queue.finish_reading(job.id)
    return job


def table(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# --------------------------------------------------------------------------- opening


async def test_migrations_applied_once_and_recorded(db_path: Path) -> None:
    async with await Queue.open(db_path):
        pass
    async with await Queue.open(db_path):
        pass
    recorded = table(db_path, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert recorded == [(m.version, m.name) for m in load_migrations()]
    assert recorded[0] == (1, "initial")
    assert table(db_path, "PRAGMA journal_mode") == [("wal",)]


async def test_reopen_keeps_data(db_path: Path) -> None:
    async with await Queue.open(db_path) as queue:
        job = await ready_job(queue, 3)
    async with await Queue.open(db_path) as queue:
        assert (await queue.get_job(job.id)).total_rows == 3
        assert (await queue.counts(job.id))[RowState.PENDING] == 3


async def test_newer_schema_is_refused(db_path: Path) -> None:
    async with await Queue.open(db_path):
        pass
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    conn.close()
    with pytest.raises(DatabaseError, match=r"newer bulkimport \(schema version 999"):
        await Queue.open(db_path)


async def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("phone,name\n" * 200)
    with pytest.raises(DatabaseError, match=r"leads\.csv is not a usable bulkimport database"):
        await Queue.open(path)


async def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="does not exist"):
        await Queue.open(tmp_path / "nowhere" / "queue.db")


# ------------------------------------------------------------------------------ jobs


async def test_create_find_latest_get(queue: Queue) -> None:
    job = await queue.create_job(FILE, TARGET, {"rate": 5, "org": "o"}, '{"encoding": "gbk"}')
    assert job.state is JobState.READING
    assert job.file == FILE
    assert job.settings == {"rate": 5, "org": "o"}
    assert job.fmt_json == '{"encoding": "gbk"}'
    assert (job.read_offset, job.read_line, job.total_rows, job.resent_unknown) == (0, 0, 0, 0)

    assert await queue.find_unfinished_job(FILE, TARGET) == job
    assert await queue.find_unfinished_job(FILE, "other target") is None
    assert await queue.find_unfinished_job(FILE._replace(size=1), TARGET) is None
    assert await queue.latest_unfinished_job() == job

    await queue.set_job_state(job.id, JobState.RUNNING)
    running = await queue.get_job(job.id)
    assert running.started_at is not None and running.finished_at is None
    await queue.set_job_state(job.id, JobState.FINISHED, "all done")
    finished = await queue.get_job(job.id)
    assert finished.finished_at is not None and finished.message == "all done"
    assert finished.started_at == running.started_at
    assert await queue.find_unfinished_job(FILE, TARGET) is None
    assert await queue.latest_unfinished_job() is None

    second = await queue.create_job(FILE, TARGET, {}, "{}")
    assert [j.id for j in await queue.list_jobs()] == [job.id, second.id]


async def test_get_missing_job(queue: Queue, db_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"no job 42 in {db_path}; see bulkimport jobs"):
        await queue.get_job(42)


async def test_the_name_of_the_password_variable_may_be_stored(queue: Queue) -> None:
    job = await queue.create_job(FILE, "t", {"password_env": "NIGHTLY_PASSWORD"}, "{}")
    assert job.settings == {"password_env": "NIGHTLY_PASSWORD"}


@pytest.mark.parametrize(
    "settings",
    [{"password": "s3cret"}, {"Password": "x"}, {"server": {"source_password": "p"}}],
)
async def test_settings_with_a_password_are_refused(
    queue: Queue, settings: dict[str, object]
) -> None:
    with pytest.raises(ConfigError, match="password is never written"):
        await queue.create_job(FILE, TARGET, settings, "{}")
    assert await queue.list_jobs() == []


async def test_empty_password_setting_is_accepted(queue: Queue) -> None:
    job = await queue.create_job(FILE, TARGET, {"password": "", "password_env": None}, "{}")
    assert job.settings == {"password": "", "password_env": None}


# ---------------------------------------------------------------------------- ingest


async def test_add_rows_stores_position_with_the_batch(queue: Queue) -> None:
    job = await queue.create_job(FILE, TARGET, {}, "{}")
    await queue.add_rows(job.id, [pending(2), pending(3)], read_offset=40, read_line=3)
    invalid = NewRow(4, RowState.INVALID, None, ("bad",), InvalidReason.CELLS, "phone is empty")
    await queue.add_rows(job.id, [invalid], read_offset=55, read_line=4)
    stored = await queue.get_job(job.id)
    assert (stored.read_offset, stored.read_line, stored.total_rows) == (40 + 15, 4, 3)
    counts = await queue.counts(job.id)
    assert (counts[RowState.PENDING], counts[RowState.INVALID]) == (2, 1)
    [view] = [v async for v in queue.iter_rows(job.id, [RowState.INVALID])]
    assert (view.line, view.record, view.last_message) == (4, None, "phone is empty")


async def test_failed_batch_keeps_neither_rows_nor_position(queue: Queue) -> None:
    job = await queue.create_job(FILE, TARGET, {}, "{}")
    await queue.add_rows(job.id, [pending(2)], read_offset=10, read_line=2)
    # The second row of the batch cannot be stored: the first one and the position that
    # would have moved past both are rolled back with it.
    broken = NewRow(4, RowState.PENDING, object(), ("4",))  # type: ignore[arg-type]
    with pytest.raises(sqlite3.Error):
        await queue.add_rows(job.id, [pending(3), broken], read_offset=30, read_line=4)
    stored = await queue.get_job(job.id)
    assert (stored.read_offset, stored.read_line, stored.total_rows) == (10, 2, 1)
    assert (await queue.counts(job.id))[RowState.PENDING] == 1
    assert [v.line async for v in queue.iter_rows(job.id, [RowState.PENDING])] == [2]


def batches_of(lines: range, size: int) -> Iterator[Batch]:
    """Batches of pending rows for ``lines``, each ending where the next line starts."""
    for first in range(lines.start, lines.stop, size):
        chunk = range(first, min(first + size, lines.stop))
        yield Batch([pending(line) for line in chunk], 10 * chunk.stop, chunk.stop)


async def test_ingest_commits_each_batch_with_its_position(queue: Queue) -> None:
    job = await queue.create_job(FILE, TARGET, {}, "{}")
    seen: list[Ingested] = []
    loop_thread = threading.get_ident()
    threads: set[int] = set()

    def on_batch(progress: Ingested) -> None:
        threads.add(threading.get_ident())
        seen.append(progress)

    stored = await queue.ingest(job.id, batches_of(range(2, 25), 10), on_batch=on_batch)
    assert stored == 23
    # Called on the event loop, once per committed batch, in order.
    assert threads == {loop_thread}
    assert seen == [Ingested(10, 120, 12), Ingested(20, 220, 22), Ingested(23, 250, 25)]
    stored_job = await queue.get_job(job.id)
    assert (stored_job.read_offset, stored_job.read_line, stored_job.total_rows) == (250, 25, 23)
    assert [v.line async for v in queue.iter_rows(job.id, [RowState.PENDING])] == list(range(2, 25))


async def test_ingest_stops_after_the_batch_in_hand_and_resumes(queue: Queue) -> None:
    job = await queue.create_job(FILE, TARGET, {}, "{}")
    stop = threading.Event()
    parsed: list[int] = []

    def batches() -> Iterator[Batch]:
        for batch in batches_of(range(2, 52), 10):
            parsed.append(batch.next_line)
            if len(parsed) == 2:
                stop.set()  # Ctrl-C while the second batch is being parsed
            yield batch

    assert await queue.ingest(job.id, batches(), stop=stop) == 20
    assert parsed == [12, 22]  # the third batch was never read
    interrupted = await queue.get_job(job.id)
    assert (interrupted.read_offset, interrupted.read_line, interrupted.total_rows) == (220, 22, 20)
    # Resuming at the committed position stores every line exactly once.
    rest = (b for b in batches_of(range(2, 52), 10) if b.next_line > interrupted.read_line)
    assert await queue.ingest(job.id, rest) == 30
    lines = table(queue.path, f"SELECT line FROM rows WHERE job_id = {job.id} ORDER BY id")
    assert [line for (line,) in lines] == list(range(2, 52))
    assert (await queue.counts(job.id))[RowState.PENDING] == 50


async def test_ingest_cancelled_stops_its_thread(queue: Queue) -> None:
    job = await queue.create_job(FILE, TARGET, {}, "{}")
    started = threading.Event()

    def endless() -> Iterator[Batch]:
        line = 2
        while True:
            started.set()
            time.sleep(0.01)
            yield Batch([pending(line)], line, line + 1)
            line += 1

    task = asyncio.ensure_future(queue.ingest(job.id, endless()))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The thread ends after its batch: the count stops moving.
    await asyncio.sleep(0.2)
    settled = (await queue.get_job(job.id)).total_rows
    await asyncio.sleep(0.2)
    assert (await queue.get_job(job.id)).total_rows == settled


async def test_ingest_counts_match_the_rows(queue: Queue) -> None:
    job = await queue.create_job(FILE, TARGET, {}, "{}")
    rows = [
        pending(line) if line % 3 else NewRow(line, RowState.INVALID, None, ("",), "empty")
        for line in range(2, 1002)
    ]
    batches = [
        Batch(rows[i : i + 97], i + 97, rows[min(i + 96, 999)].line + 1) for i in range(0, 1000, 97)
    ]
    assert await queue.ingest(job.id, batches) == 1000
    grouped = table(queue.path, "SELECT state, COUNT(*) FROM rows GROUP BY state")
    counts = await queue.counts(job.id)
    assert {RowState(str(state)): n for state, n in grouped} == {
        state: n for state, n in counts.items() if n
    }


async def test_add_rows_needs_a_job_being_read(queue: Queue) -> None:
    job = await ready_job(queue, 1)
    with pytest.raises(DatabaseError, match="not being read"):
        await queue.add_rows(job.id, [pending(9)], read_offset=1, read_line=9)
    with pytest.raises(DatabaseError, match="not being read"):
        await queue.finish_reading(job.id)
    assert (await queue.get_job(job.id)).state is JobState.READY


# --------------------------------------------------------------------------- sending


async def test_claim_in_line_order(queue: Queue) -> None:
    job = await ready_job(queue, 5)
    first = await queue.claim_batch(job.id, 2, now_s=time.time())
    second = await queue.claim_batch(job.id, 10, now_s=time.time())
    assert [r.line for r in first] == [2, 3]
    assert [r.line for r in second] == [4, 5, 6]
    assert first[0].record == "phone=2" and first[0].attempts == 0
    assert await queue.claim_batch(job.id, 10, now_s=time.time()) == []
    assert (await queue.counts(job.id))[RowState.IN_FLIGHT] == 5


async def test_concurrent_claimers_never_share_a_row(queue: Queue, db_path: Path) -> None:
    job = await ready_job(queue, 600)
    async with await Queue.open(db_path) as other:

        async def drain(claimer: Queue) -> list[int]:
            ids: list[int] = []
            while batch := await claimer.claim_batch(job.id, 7, now_s=time.time()):
                ids.extend(row.id for row in batch)
            return ids

        results = await asyncio.gather(drain(queue), drain(other), drain(queue), drain(other))
    claimed = [row_id for ids in results for row_id in ids]
    assert len(claimed) == len(set(claimed)) == 600
    assert sum(1 for ids in results if ids) >= 2


async def test_retry_time_is_respected(queue: Queue) -> None:
    job = await ready_job(queue, 2)
    assert await queue.next_attempt_at(job.id) == 0.0
    now = 1_000.0
    claimed = await queue.claim_batch(job.id, 10, now_s=now)
    assert await queue.next_attempt_at(job.id) is None
    await queue.record_results(
        job.id,
        [
            RowResult(claimed[0].id, RowState.PENDING, "503", "busy", next_attempt_at_s=now + 30),
            RowResult(claimed[1].id, RowState.PENDING, "503", "busy", next_attempt_at_s=now + 10),
        ],
    )
    assert await queue.next_attempt_at(job.id) == now + 10
    assert await queue.claim_batch(job.id, 10, now_s=now + 5) == []
    due = await queue.claim_batch(job.id, 10, now_s=now + 10)
    assert [(r.line, r.attempts) for r in due] == [(3, 1)]
    assert [r.line for r in await queue.claim_batch(job.id, 10, now_s=now + 31)] == [2]


async def test_record_results(queue: Queue) -> None:
    job = await ready_job(queue, 6)
    rows = await queue.claim_batch(job.id, 5, now_s=time.time())
    results = [
        RowResult(rows[0].id, RowState.DONE, "0", "imported"),
        RowResult(rows[1].id, RowState.DUPLICATE, "5", "exists"),
        RowResult(rows[2].id, RowState.REJECTED, "7", "bad phone"),
        RowResult(rows[3].id, RowState.PENDING, "503", "busy", next_attempt_at_s=0.0),
        RowResult(rows[4].id, RowState.PENDING, "", "not sent", counted=False),
        RowResult(9_999, RowState.DONE, "0", "no such row"),
    ]
    assert await queue.record_results(job.id, results) == 5
    # Recorded again (e.g. after a recovery): rows no longer in flight are left alone.
    assert await queue.record_results(job.id, [RowResult(rows[2].id, RowState.DONE, "0", "")]) == 0

    views = {v.line: v async for v in queue.iter_rows(job.id, list(RowState))}
    assert (views[2].state, views[2].attempts, views[2].last_code) == (RowState.DONE, 1, "0")
    assert views[3].state is RowState.DUPLICATE
    assert (views[4].state, views[4].last_message) == (RowState.REJECTED, "bad phone")
    assert (views[5].state, views[5].attempts, views[5].last_code) == (RowState.PENDING, 1, "503")
    assert (views[6].state, views[6].attempts) == (RowState.PENDING, 0)
    assert views[7].state is RowState.PENDING  # never claimed

    counts = await queue.counts(job.id)
    assert counts[RowState.IN_FLIGHT] == 0 and counts[RowState.PENDING] == 3
    errors = await queue.last_errors(job.id)
    assert {v.line for v in errors} == {4, 5, 6}


async def test_record_results_ignores_other_jobs(queue: Queue) -> None:
    job = await ready_job(queue, 1)
    other = await ready_job(queue, 1)
    [row] = await queue.claim_batch(job.id, 1, now_s=time.time())
    assert await queue.record_results(other.id, [RowResult(row.id, RowState.DONE, "0", "")]) == 0
    assert (await queue.counts(job.id))[RowState.IN_FLIGHT] == 1


async def test_recover_in_flight(queue: Queue) -> None:
    job = await ready_job(queue, 4)
    rows = await queue.claim_batch(job.id, 3, now_s=time.time())
    await queue.record_results(job.id, [RowResult(rows[0].id, RowState.DONE, "0", "")])
    assert await queue.recover_in_flight(job.id) == 2
    assert await queue.recover_in_flight(job.id) == 0
    assert (await queue.get_job(job.id)).resent_unknown == 2
    again = await queue.claim_batch(job.id, 10, now_s=time.time())
    assert [(r.line, r.attempts) for r in again] == [(3, 0), (4, 0), (5, 0)]


async def test_release(queue: Queue) -> None:
    job = await ready_job(queue, 3)
    rows = await queue.claim_batch(job.id, 3, now_s=time.time())
    await queue.record_results(job.id, [RowResult(rows[0].id, RowState.DONE, "0", "")])
    assert await queue.release(job.id, [r.id for r in rows]) == 2
    assert [r.line for r in await queue.claim_batch(job.id, 10, now_s=time.time())] == [3, 4]
    assert (await queue.get_job(job.id)).resent_unknown == 0


async def test_cancelled_claim_gives_its_rows_back(queue: Queue) -> None:
    job = await ready_job(queue, 50)
    for _ in range(20):
        task = asyncio.ensure_future(queue.claim_batch(job.id, 10, now_s=time.time()))
        await asyncio.sleep(0)  # let it send the claim, then cancel it mid-way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await queue.counts(job.id))[RowState.IN_FLIGHT] == 0
    assert len(await queue.claim_batch(job.id, 100, now_s=time.time())) == 50


async def test_cancelled_record_results_still_records(queue: Queue) -> None:
    job = await ready_job(queue, 20)
    rows = await queue.claim_batch(job.id, 20, now_s=time.time())
    results = [RowResult(r.id, RowState.DONE, "0", "") for r in rows]
    task = asyncio.ensure_future(queue.record_results(job.id, results))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await queue.counts(job.id))[RowState.DONE] == 20
    # And the connection is usable: no transaction was left open.
    assert await queue.claim_batch(job.id, 1, now_s=time.time()) == []


async def test_record_results_refuses_in_flight(queue: Queue) -> None:
    job = await ready_job(queue, 1)
    [row] = await queue.claim_batch(job.id, 1, now_s=time.time())
    with pytest.raises(ValueError, match="in_flight"):
        await queue.record_results(job.id, [RowResult(row.id, RowState.IN_FLIGHT, "", "")])


# ------------------------------------------------------------------------- reporting


async def test_counts_every_state(queue: Queue) -> None:
    # An earlier job loaded "phone=9", so line 9 of this one is skipped as unchanged.
    earlier = await queue.create_job(FILE, TARGET, {}, "{}")
    await queue.add_rows(earlier.id, [pending(9)], read_offset=1, read_line=9)
    await queue.finish_reading(earlier.id)
    [loaded] = await queue.claim_batch(earlier.id, 1, now_s=time.time())
    await queue.record_results(earlier.id, [RowResult(loaded.id, RowState.DONE, "c", "m")])
    job = await queue.create_job(FILE, TARGET, {}, "{}")
    assert await queue.counts(job.id) == dict.fromkeys(RowState, 0)
    await queue.add_rows(
        job.id,
        [*(pending(line) for line in range(2, 10)), NewRow(10, RowState.INVALID, None, ("",), "x")],
        read_offset=1,
        read_line=10,
    )
    await queue.finish_reading(job.id)
    assert await queue.mark_unchanged_skipped(job.id, TARGET) == 1
    rows = await queue.claim_batch(job.id, 6, now_s=time.time())
    outcomes = [RowState.DONE, RowState.DUPLICATE, RowState.REJECTED, RowState.FAILED]
    await queue.record_results(
        job.id, [RowResult(r.id, state, "c", "m") for r, state in zip(rows, outcomes, strict=False)]
    )
    await queue.set_job_state(job.id, JobState.RUNNING)
    counts = await queue.counts(job.id)
    assert counts == {
        RowState.PENDING: 1,
        RowState.IN_FLIGHT: 2,
        RowState.DONE: 1,
        RowState.DUPLICATE: 1,
        RowState.REJECTED: 1,
        RowState.FAILED: 1,
        RowState.INVALID: 1,
        RowState.SKIPPED: 1,
    }
    # The counters agree with counting the rows themselves.
    assert counts == counted(queue.path, job.id)


def counted(path: Path, job_id: int) -> dict[RowState, int]:
    """Rows of the job per state, counted row by row (every state present)."""
    sql = f"SELECT state, COUNT(*) FROM rows WHERE job_id = {job_id:d} GROUP BY state"
    grouped = table(path, sql)
    return {**dict.fromkeys(RowState, 0), **{RowState(str(state)): n for state, n in grouped}}


async def test_counters_follow_every_move(db_path: Path) -> None:
    # The queue counts the rows each statement moves (no trigger does it per row): after
    # every kind of move the counters must still equal a count of the rows.
    async with await Queue.open(db_path) as queue:
        job = await ready_job(queue, 30)
        assert await queue.counts(job.id) == counted(db_path, job.id)
        rows = await queue.claim_batch(job.id, 12, now_s=time.time())
        assert await queue.counts(job.id) == counted(db_path, job.id)
        results = [
            RowResult(rows[0].id, RowState.DONE, "c", "m"),
            RowResult(rows[1].id, RowState.DUPLICATE, "c", "m"),
            RowResult(rows[2].id, RowState.REJECTED, "c", "m"),
            RowResult(rows[3].id, RowState.FAILED, "c", "m"),
            RowResult(rows[4].id, RowState.PENDING, "c", "retry", time.time() - 1),
            RowResult(rows[5].id, RowState.PENDING, "c", "unsent", None, False),
            RowResult(rows[6].id, RowState.DONE, "c", "m"),
        ]
        # A result for a row that is not in flight (recorded twice) moves nothing.
        assert await queue.record_results(job.id, results) == 7
        assert await queue.record_results(job.id, results[:2]) == 0
        assert await queue.counts(job.id) == counted(db_path, job.id)
        assert await queue.release(job.id, [rows[7].id, rows[8].id, rows[0].id]) == 2
        assert await queue.counts(job.id) == counted(db_path, job.id)
        assert await queue.reset_rows(job.id, [RowState.FAILED, RowState.REJECTED]) == 2
        assert await queue.counts(job.id) == counted(db_path, job.id)
    # A runner that died with rows in flight: the next one gives them back.
    async with await Queue.open(db_path) as queue:
        assert await queue.recover_in_flight(job.id) == 3
        counts = await queue.counts(job.id)
        assert counts == counted(db_path, job.id)
        assert (counts[RowState.IN_FLIGHT], counts[RowState.DONE]) == (0, 2)


async def test_iter_rows_order_and_cells_round_trip(queue: Queue) -> None:
    job = await queue.create_job(FILE, TARGET, {}, "{}")
    cells = [
        ("13800000000", "张三", "上海市浦东新区"),
        ('say "hi"', "a,b", "it's"),
        ("", "", ""),
        ("tab\there", "new\nline", "back\\slash"),
        ("unit\x1fsep", "\x1erecord", '["json"]'),
        ("\x1e", "", "\x1f"),
        ("only",),
        (),
        ("",),
        ('"', "\r\n", "全角，逗号"),
    ]
    rows = [NewRow(i + 2, RowState.PENDING, f"r={i}", c) for i, c in enumerate(cells)]
    await queue.add_rows(job.id, rows[:2], read_offset=1, read_line=3)
    await queue.add_rows(job.id, rows[2:], read_offset=2, read_line=len(cells) + 2)
    views = [v async for v in queue.iter_rows(job.id, [RowState.PENDING], batch=3)]
    assert [v.line for v in views] == list(range(2, len(cells) + 2))
    assert [v.cells for v in views] == cells
    assert [v async for v in queue.iter_rows(job.id, [RowState.DONE])] == []


async def test_reset_rows(queue: Queue) -> None:
    job = await queue.create_job(FILE, TARGET, {}, "{}")
    bad = NewRow(5, RowState.INVALID, None, ("",), "empty")
    await queue.add_rows(
        job.id, [pending(2), pending(3), pending(4), bad], read_offset=1, read_line=5
    )
    await queue.finish_reading(job.id)
    rows = await queue.claim_batch(job.id, 3, now_s=time.time())
    await queue.record_results(
        job.id,
        [
            RowResult(rows[0].id, RowState.FAILED, "503", "busy"),
            RowResult(rows[1].id, RowState.REJECTED, "7", "bad"),
            RowResult(rows[2].id, RowState.DONE, "0", "ok"),
        ],
    )
    assert await queue.reset_rows(job.id, [RowState.FAILED, RowState.INVALID]) == 1
    again = await queue.claim_batch(job.id, 10, now_s=0.0)
    assert [(r.line, r.attempts) for r in again] == [(2, 0)]
    assert (await queue.counts(job.id))[RowState.INVALID] == 1


# ------------------------------------------------------------------------ runner lock

HOLDER = textwrap.dedent(
    """
    import asyncio, sys, time
    from bulkimport.storage.sqlite import Queue

    async def main():
        async with await Queue.open(sys.argv[1]) as queue, queue.runner_lock():
            print("locked", flush=True)
            await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def test_runner_lock_in_one_process(queue: Queue) -> None:
    async with queue.runner_lock():
        with pytest.raises(RunnerBusy):
            async with queue.runner_lock():
                pass
    async with queue.runner_lock():
        pass


async def test_runner_lock_across_processes_and_kill(queue: Queue, db_path: Path) -> None:
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(db_path), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 15) == b"locked\n"
        with pytest.raises(RunnerBusy) as refused:
            async with queue.runner_lock():
                pass
        assert str(refused.value) == (
            f"another bulkimport is already sending from {db_path} (pid {holder.pid}); "
            "wait for it to finish"
        )
        holder.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(holder.wait(), 15) == -signal.SIGKILL
        async with queue.runner_lock():
            lock_file = db_path.with_name("queue.db.lock")
            assert lock_file.read_text().strip() == str(os.getpid())
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


# -------------------------------------------------------------------- incremental loads


async def test_mark_unchanged_skipped(queue: Queue) -> None:
    earlier = await ready_job(queue, 5)
    rows = await queue.claim_batch(earlier.id, 5, now_s=time.time())
    await queue.record_results(
        earlier.id,
        [RowResult(r.id, RowState.DONE, "0", "") for r in rows[:3]]
        + [RowResult(rows[3].id, RowState.REJECTED, "7", "")],
    )
    elsewhere = await ready_job(queue, 6, target="another campaign")
    rows = await queue.claim_batch(elsewhere.id, 6, now_s=time.time())
    await queue.record_results(
        elsewhere.id, [RowResult(r.id, RowState.DONE, "0", "") for r in rows]
    )

    # Tonight's file: lines 2..7, records phone=2..phone=7.
    tonight = await ready_job(queue, 6)
    index = "SELECT name FROM sqlite_master WHERE name = 'rows_done_record'"
    assert table(queue.path, index) == []  # only incremental loads pay for it
    assert await queue.mark_unchanged_skipped(tonight.id, TARGET, batch=2) == 3
    assert table(queue.path, index) == [("rows_done_record",)]
    counts = await queue.counts(tonight.id)
    assert (counts[RowState.SKIPPED], counts[RowState.PENDING]) == (3, 3)
    sendable = await queue.claim_batch(tonight.id, 10, now_s=time.time())
    assert [r.line for r in sendable] == [5, 6, 7]
    assert await queue.mark_unchanged_skipped(tonight.id, TARGET) == 0


async def test_only_done_rows_of_earlier_jobs_make_a_row_unchanged(queue: Queue) -> None:
    # A duplicate answer is not "loaded": with dupway=skip the server kept other data
    # (BackMsg_82), so tonight's record must be sent again.
    earlier = await ready_job(queue, 2)
    rows = await queue.claim_batch(earlier.id, 2, now_s=time.time())
    await queue.record_results(
        earlier.id,
        [
            RowResult(rows[0].id, RowState.DONE, "BackMsg_84", ""),
            RowResult(rows[1].id, RowState.DUPLICATE, "BackMsg_82", ""),
        ],
    )
    # The same job: its own done rows never make its other rows unchanged.
    tonight = await queue.create_job(FILE, TARGET, {}, "{}")
    twice = [NewRow(line, RowState.PENDING, "phone=99", ("99",)) for line in (2, 3)]
    await queue.add_rows(tonight.id, twice, read_offset=1, read_line=3)
    await queue.finish_reading(tonight.id)
    first = await queue.claim_batch(tonight.id, 1, now_s=time.time())
    await queue.record_results(tonight.id, [RowResult(first[0].id, RowState.DONE, "0", "")])
    assert await queue.mark_unchanged_skipped(tonight.id, TARGET) == 0
    later = await ready_job(queue, 4)
    assert await queue.mark_unchanged_skipped(later.id, TARGET) == 1
    views = {v.line: v.state async for v in queue.iter_rows(later.id, list(RowState))}
    assert views == {
        2: RowState.SKIPPED, 3: RowState.PENDING, 4: RowState.PENDING, 5: RowState.PENDING,
    }  # fmt: skip


async def test_remote_imports_are_recorded_without_credentials(queue: Queue) -> None:
    fields: dict[str, Any] = {
        "source": "http", "target_key": TARGET, "exetime": "", "delrow": "1",
        "server_job_id": "12", "state": RemoteState.ACCEPTED, "code": "ok", "message": "12",
        "attempts": 1,
    }  # fmt: skip
    record = await queue.add_remote_import(url="https://files.example.com/a.csv", **fields)
    assert (record.id, record.server_job_id, record.state) == (1, "12", RemoteState.ACCEPTED)
    with pytest.raises(ConfigError):
        await queue.add_remote_import(url="https://u:pw@files.example.com/a.csv", **fields)
    assert [r.url for r in await queue.list_remote_imports()] == ["https://files.example.com/a.csv"]


# ------------------------------------------------------------------------- migrations


async def test_rows_of_an_earlier_schema_survive_migration_4(db_path: Path) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT"
                 " NOT NULL, applied_at REAL NOT NULL)")  # fmt: skip
    for migration in load_migrations():
        if migration.version < 4:
            conn.executescript(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, 0)",
                (migration.version, migration.name),
            )
    conn.execute(
        "INSERT INTO jobs (state, file_path, file_size, file_mtime_ns, file_head_sha256,"
        " target_key, settings_json, format_json, created_at, updated_at)"
        " VALUES ('ready', 'x', 0, 0, '', 't', '{}', '{}', 0, 0)"
    )
    conn.executemany(
        "INSERT INTO rows (job_id, line, state, record, cells, created_at, updated_at)"
        " VALUES (1, ?, 'pending', ?, ?, 0, 0)",
        [(2, "phone=2", '["2","张三"]'), (3, "phone=3", '["3","a\\u001fb"]')],
    )
    conn.execute("UPDATE job_counts SET n = 2 WHERE job_id = 1 AND state = 'pending'")
    conn.close()

    async with await Queue.open(db_path) as queue:
        views = [v async for v in queue.iter_rows(1, [RowState.PENDING])]
        assert [(v.id, v.line, v.cells) for v in views] == [
            (1, 2, ("2", "张三")),
            (2, 3, ("3", "a\x1fb")),
        ]
        [claimed] = await queue.claim_batch(1, 1, now_s=0.0)
        assert claimed.line == 2
        # The counters came through the rebuild, and still count.
        counts = await queue.counts(1)
        assert (counts[RowState.PENDING], counts[RowState.IN_FLIGHT]) == (1, 1)
    indexes = {
        name for (name,) in table(db_path, "SELECT name FROM sqlite_master WHERE tbl_name = 'rows'")
    }
    # (Migration 5 then dropped the per-row counting trigger and the done-record index.)
    assert indexes == {
        "rows", "rows_pending", "rows_in_flight", "rows_problem", "rows_count_delete",
    }  # fmt: skip
    assert table(db_path, "PRAGMA foreign_key_check") == []


# ------------------------------------------------------------- the sending path's connection


@contextlib.asynccontextmanager
async def write_lock_held(path: Path) -> AsyncIterator[None]:
    """Another connection (in a thread of its own) holds the write lock while inside."""
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(10)
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 10)
        yield
    finally:
        release.set()
        await asyncio.to_thread(holder.join)


async def test_a_locked_database_is_waited_for_off_the_event_loop(queue: Queue) -> None:
    # Sending runs SQLite on the event loop's thread; when another connection holds the write
    # lock (a `stage` in another process, say), the call must wait for it, in a thread, and
    # the event loop must go on meanwhile.
    job = await ready_job(queue, 5)
    async with write_lock_held(queue.path):
        claim = asyncio.ensure_future(queue.claim_batch(job.id, 3, now_s=time.time()))
        ticks = 0
        for _ in range(20):  # the loop runs while the claim waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not claim.done() and ticks == 20
    rows = await claim
    assert [r.line for r in rows] == [2, 3, 4]
    results = [RowResult(r.id, RowState.DONE, "0", "") for r in rows]
    assert await queue.record_results(job.id, results) == 3
    assert await queue.counts(job.id) == counted(queue.path, job.id)


def file_bytes(path: Path) -> int:
    return path.stat().st_size


async def test_sending_checkpoints_the_wal_in_the_background(db_path: Path) -> None:
    # The sending path's connection never checkpoints by itself (that would stall the event
    # loop); the queue starts passive checkpoints on its other connection instead, so the
    # write-ahead log is reused instead of growing with every row sent.
    async with await Queue.open(db_path) as queue:
        job = await queue.create_job(FILE, TARGET, {}, "{}")
        record = "name=" + "x" * 400  # a row fills a tenth of a page, as real leads do
        rows = [NewRow(line, RowState.PENDING, record, ("x",)) for line in range(2, 20_002)]
        await queue.add_rows(job.id, rows, read_offset=1, read_line=20_001)
        await queue.finish_reading(job.id)
        table(db_path, "PRAGMA wal_checkpoint(TRUNCATE)")  # an empty log to start from
        wal = Path(f"{db_path}-wal")
        sizes = []
        while rows := await queue.claim_batch(job.id, 200, now_s=time.time()):
            await queue.record_results(
                job.id, [RowResult(r.id, RowState.DONE, "0", "") for r in rows]
            )
            await asyncio.sleep(0)  # let a background checkpoint run
            sizes.append(file_bytes(wal))
        assert (await queue.counts(job.id))[RowState.DONE] == 20_000
    # 40,000 row updates: a log that kept every frame grows to ~24 MB; started over after
    # each checkpoint it stays under 1 MB.
    assert max(sizes) < 8 * 1024 * 1024, max(sizes)


# ----------------------------------------------------------------- cells stored once


LEADS = (
    "name,phone,note\n"
    '张三,13800000001,"quoted, with comma"\n'
    "李四,13800000002,\n"  # an empty cell: absent from the record
    ",13800000003,a=b|c\n"  # '=' and a single '|' inside a value
    "王五,13800000004,x,extra\n"  # a cell past the header: invalid
    "赵六,13800000005,y,\n"  # an empty cell past the header: sent, cells kept whole
    ",,\n"  # no values: invalid
)


def csv_records(path: Path) -> list[tuple[str, ...]]:
    """The records after the header, as the csv module reads them."""
    with open(path, encoding="utf-8", newline="") as handle:
        return [tuple(row) for row in csv.reader(handle)][1:]


async def stored(queue: Queue, path: Path, options: ReaderOptions) -> tuple[Job, list[str]]:
    fmt = sniff_format(path, options)
    job = await queue.create_job(FILE, TARGET, {}, fmt.to_json())
    await queue.ingest(job.id, read_batches(path, fmt))
    await queue.finish_reading(job.id)
    texts = [str(text) for (text,) in table(queue.path, "SELECT cells FROM rows ORDER BY id")]
    return job, texts


async def test_cells_held_by_the_record_are_stored_once_and_given_back(
    queue: Queue, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(LEADS, encoding="utf-8")
    job, texts = await stored(queue, path, ReaderOptions())
    # Pending rows of the header's width: the record alone. The others keep their cells.
    assert [text == CELLS_IN_RECORD for text in texts] == [True, True, True, False, False, False]

    views = [view async for view in queue.iter_rows(job.id, list(RowState))]
    expected = csv_records(path)
    assert [view.cells for view in views] == expected
    assert [view.state for view in views] == [RowState.PENDING] * 3 + [
        RowState.INVALID,
        RowState.PENDING,
        RowState.INVALID,
    ]
    # A report of a rejected row gives its cells back too.
    rows = await queue.claim_batch(job.id, 1, now_s=time.time())
    await queue.record_results(job.id, [RowResult(rows[0].id, RowState.REJECTED, "7", "bad")])
    [rejected, *_] = await queue.last_errors(job.id, limit=10)
    assert rejected.cells == expected[0]


@pytest.mark.parametrize(
    "options",
    [
        ReaderOptions(constants=(("source", "web"),)),  # the record holds more than the cells
        ReaderOptions(rename={"note": None}),  # ...or less
    ],
    ids=["constant", "dropped column"],
)
async def test_cells_are_stored_whole_when_the_record_cannot_give_them_back(
    queue: Queue, tmp_path: Path, options: ReaderOptions
) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(LEADS, encoding="utf-8")
    job, texts = await stored(queue, path, options)
    assert CELLS_IN_RECORD not in texts
    views = [view async for view in queue.iter_rows(job.id, list(RowState))]
    assert [view.cells for view in views] == csv_records(path)


async def test_closing_waits_for_a_call_still_waiting_for_the_lock(db_path: Path) -> None:
    # A stop can close the queue while an outcome is still waiting, in a thread, for another
    # connection's write lock: the close must wait for it, not pull the connection away.
    queue = await Queue.open(db_path)
    job = await ready_job(queue, 3)
    rows = await queue.claim_batch(job.id, 3, now_s=time.time())
    async with write_lock_held(db_path):
        results = [RowResult(r.id, RowState.DONE, "0", "") for r in rows]
        record = asyncio.ensure_future(queue.record_results(job.id, results))
        await asyncio.sleep(0.05)
        record.cancel()  # twice, as a second Ctrl-C would
        await asyncio.sleep(0.05)
        record.cancel()
        closing = asyncio.ensure_future(queue.close())
        await asyncio.sleep(0.1)
        assert not closing.done()
    await closing
    with pytest.raises(asyncio.CancelledError):
        await record
    # The outcomes were taken off the caller's hands: recorded, and counted.
    async with await Queue.open(db_path) as reopened:
        counts = await reopened.counts(job.id)
    assert counts[RowState.DONE] == 3 and counts == counted(db_path, job.id)


async def test_closing_after_a_cancelled_checkpoint_closes_everything(db_path: Path) -> None:
    queue = await Queue.open(db_path)
    checkpoint = asyncio.ensure_future(asyncio.sleep(10))
    queue._checkpoint = checkpoint
    checkpoint.cancel()
    await queue.close()
    assert queue._loop_conn is None
    with pytest.raises(ValueError, match="closed"):
        await queue.counts(1)


async def test_counters_follow_a_reset_of_any_states(queue: Queue) -> None:
    job = await ready_job(queue, 6)
    rows = await queue.claim_batch(job.id, 4, now_s=time.time())
    await queue.record_results(job.id, [RowResult(rows[0].id, RowState.DONE, "0", "")])
    reset = await queue.reset_rows(job.id, [RowState.PENDING, RowState.IN_FLIGHT, RowState.DONE])
    assert reset == 6
    counts = await queue.counts(job.id)
    assert counts[RowState.PENDING] == 6 and counts == counted(queue.path, job.id)


async def test_a_batch_cannot_drop_cells_its_job_could_not_give_back(queue: Queue) -> None:
    # A job whose format cannot rebuild cells keeps them.
    job = await queue.create_job(FILE, TARGET, {}, "{}")
    rows = [NewRow(2, RowState.PENDING, "a=1||c=3", ("1", "", "3"))]
    await queue.ingest(job.id, [Batch(rows, 10, 3)])
    [view] = [view async for view in queue.iter_rows(job.id, [RowState.PENDING])]
    assert view.cells == ("1", "", "3")
