"""The SQLite storage's own ways: the file, its schema, its connections, its locks, the cells
kept in the record. What every backend keeps is in ``test_contract.py``."""

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

import pytest

from bulkimport.errors import DatabaseError, DiskFull, RunnerBusy
from bulkimport.reader import ReaderOptions, read_batches, sniff_format
from bulkimport.rows import Batch, NewRow, RowResult
from bulkimport.states import JobState, RepairKind, RowState
from bulkimport.storage import Job
from bulkimport.storage.columns import REPAIR_COLUMNS
from bulkimport.storage.sqlite import SqliteStorage
from bulkimport.storage.sqlite.cells import CELLS_IN_RECORD
from bulkimport.storage.sqlite.database import load_migrations
from bulkimport.storage.sqlite.digests import customer_of, digest_of
from tests.helpers import RUNNER, start_process
from tests.small_disk import small_disk
from tests.storage.conftest import FILE, TARGET, listed, pending, ready_job


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


@pytest.fixture
async def queue(db_path: Path) -> AsyncIterator[SqliteStorage]:
    async with await SqliteStorage.open(db_path) as opened:
        yield opened


def table(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_migrations_applied_once_and_recorded(db_path: Path) -> None:
    async with await SqliteStorage.open(db_path):
        pass
    async with await SqliteStorage.open(db_path):
        pass
    recorded = table(db_path, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert recorded == [(m.version, m.name) for m in load_migrations()]
    assert recorded[0] == (1, "initial")
    assert table(db_path, "PRAGMA journal_mode") == [("wal",)]


async def test_newer_schema_is_refused(db_path: Path) -> None:
    async with await SqliteStorage.open(db_path):
        pass
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    conn.close()
    with pytest.raises(DatabaseError, match=r"newer bulkimport \(schema version 999"):
        await SqliteStorage.open(db_path)


async def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("phone,name\n" * 200)
    with pytest.raises(DatabaseError, match=r"leads\.csv is not a bulkimport database"):
        await SqliteStorage.open(path)
    assert path.read_text() == "phone,name\n" * 200


async def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="does not exist"):
        await SqliteStorage.open(tmp_path / "nowhere" / "queue.db")


async def test_failed_batch_keeps_neither_rows_nor_position(queue: SqliteStorage) -> None:
    job = await queue.jobs.create(FILE, TARGET, {}, "{}")
    await queue.reading.add_rows(job.id, [pending(2)], read_offset=10, read_line=2)
    # The second row of the batch cannot be stored: the first one and the position that
    # would have moved past both are rolled back with it.
    broken = NewRow(4, RowState.PENDING, object(), ("4",))  # type: ignore[arg-type]
    with pytest.raises(sqlite3.Error):
        await queue.reading.add_rows(job.id, [pending(3), broken], read_offset=30, read_line=4)
    with pytest.raises(sqlite3.Error):
        repaired = {RepairKind.DECIMAL: 1}
        await queue.reading.ingest(job.id, [Batch([broken], 40, 9, 3, repaired)])
    stored = await queue.jobs.get(job.id)
    assert (stored.read_offset, stored.read_line, stored.total_rows) == (10, 2, 1)
    assert (stored.blank_lines, stored.repairs) == (0, {})
    assert (await queue.reports.counts(job.id))[RowState.PENDING] == 1
    assert [v.line async for v in queue.reports.iter_rows(job.id, [RowState.PENDING])] == [2]


def test_every_repair_kind_is_counted_in_a_column_of_its_own() -> None:
    assert set(REPAIR_COLUMNS) == set(RepairKind)
    assert len(set(REPAIR_COLUMNS.values())) == len(REPAIR_COLUMNS)


def counted(path: Path, job_id: int) -> dict[RowState, int]:
    """Rows of the job per state, counted row by row (every state present)."""
    sql = f"SELECT state, COUNT(*) FROM rows WHERE job_id = {job_id:d} GROUP BY state"
    grouped = table(path, sql)
    return {**dict.fromkeys(RowState, 0), **{RowState(str(state)): n for state, n in grouped}}


HOLDER = textwrap.dedent(
    """
    import asyncio, sys, time
    from bulkimport.storage.sqlite import SqliteStorage

    async def main():
        async with await SqliteStorage.open(sys.argv[1]) as queue, queue.runner():
            print("locked", flush=True)
            await asyncio.sleep(60)

    asyncio.run(main())
    """
)


@pytest.mark.posix_only("SIGKILL and its exit status (Windows' kill is TerminateProcess)")
async def test_runner_lock_across_processes_and_kill(queue: SqliteStorage, db_path: Path) -> None:
    holder = await start_process(
        sys.executable, "-c", HOLDER, str(db_path), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 15) == b"locked\n"
        with pytest.raises(RunnerBusy) as refused:
            async with queue.runner():
                pass
        assert str(refused.value) == (
            f"another bulkimport is already working on {db_path} (pid {holder.pid}); "
            "wait for it to finish"
        )
        holder.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(holder.wait(), 15) == -signal.SIGKILL
        async with queue.runner():
            lock_file = db_path.with_name("queue.db.lock")
            assert lock_file.read_text().strip() == str(os.getpid())
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


PROBER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bulkimport.storage.sqlite.runner import runner_alive

    path, until = Path(sys.argv[1]), time.monotonic() + float(sys.argv[2])
    asked = 0
    print("asking", flush=True)
    while time.monotonic() < until:
        runner_alive(path)
        asked += 1
    print(asked)
    """
)


@pytest.mark.serial  # counts what two processes do in 1.5 s
async def test_asking_whether_a_runner_is_alive_never_makes_one_fail(
    queue: SqliteStorage, db_path: Path
) -> None:
    # `status` in a loop in another process, while runners start and stop: each question
    # holds a shared lock for an instant, and a runner starting then must wait it out
    # (without waiting, about one start in ten failed here).
    async with queue.runner():
        pass
    prober = await start_process(
        sys.executable, "-c", PROBER, str(db_path), "2.0", stdout=asyncio.subprocess.PIPE
    )
    assert prober.stdout is not None
    assert await asyncio.wait_for(prober.stdout.readline(), 15) == b"asking\n"
    started = 0
    until = time.monotonic() + 1.5
    while time.monotonic() < until:
        async with queue.runner():
            started += 1
    asked = int(await asyncio.wait_for(prober.stdout.readline(), 15))
    await prober.wait()
    assert started > 100 and asked > 1000


@pytest.mark.posix_only("SIGKILL and its exit status (Windows' kill is TerminateProcess)")
async def test_runner_alive_across_processes_never_creates_the_lock_file(
    queue: SqliteStorage, db_path: Path
) -> None:
    lock_file = db_path.with_name("queue.db.lock")
    assert not lock_file.exists()
    assert not await queue.runner_alive()
    assert not lock_file.exists()
    holder = await start_process(
        sys.executable, "-c", HOLDER, str(db_path), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 15) == b"locked\n"
        assert await queue.runner_alive()
        holder.send_signal(signal.SIGKILL)
        await asyncio.wait_for(holder.wait(), 15)
        assert not await queue.runner_alive()
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


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

    async with await SqliteStorage.open(db_path) as queue:
        views = [v async for v in queue.reports.iter_rows(1, [RowState.PENDING])]
        assert [(v.id, v.line, v.cells) for v in views] == [
            (1, 2, ("2", "张三")),
            (2, 3, ("3", "a\x1fb")),
        ]
        [claimed] = await queue.sending.claim_batch(1, 1, now_s=0.0, runner=RUNNER)
        assert claimed.line == 2
        # The counters came through the rebuild, and still count.
        counts = await queue.reports.counts(1)
        assert (counts[RowState.PENDING], counts[RowState.IN_FLIGHT]) == (1, 1)
    indexes = {
        name for (name,) in table(db_path, "SELECT name FROM sqlite_master WHERE tbl_name = 'rows'")
    }
    # (Migration 5 then dropped the per-row counting trigger and the done-record index, and
    # migration 10 the trigger that counted deleted rows: pruning drops their counters.)
    assert indexes == {"rows", "rows_pending", "rows_in_flight", "rows_problem"}
    assert table(db_path, "PRAGMA foreign_key_check") == []


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


async def test_a_locked_database_is_waited_for_off_the_event_loop(queue: SqliteStorage) -> None:
    # Sending runs SQLite on the event loop's thread; when another connection holds the write
    # lock (a `stage` in another process, say), the call must wait for it, in a thread, and
    # the event loop must go on meanwhile.
    job = await ready_job(queue, 5)
    async with write_lock_held(queue.path):
        claim = asyncio.ensure_future(
            queue.sending.claim_batch(job.id, 3, now_s=time.time(), runner=RUNNER)
        )
        ticks = 0
        for _ in range(20):  # the loop runs while the claim waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not claim.done() and ticks == 20
    rows = await claim
    assert [r.line for r in rows] == [2, 3, 4]
    results = [RowResult(r.id, RowState.DONE, "0", "") for r in rows]
    assert await queue.sending.record_results(job.id, results) == 3
    assert await queue.reports.counts(job.id) == counted(queue.path, job.id)


def file_bytes(path: Path) -> int:
    return path.stat().st_size


async def test_sending_checkpoints_the_wal_in_the_background(db_path: Path) -> None:
    # The sending path's connection never checkpoints by itself (that would stall the event
    # loop); the queue starts passive checkpoints on its other connection instead, so the
    # write-ahead log is reused instead of growing with every row sent.
    async with await SqliteStorage.open(db_path) as queue:
        job = await queue.jobs.create(FILE, TARGET, {}, "{}")
        record = "name=" + "x" * 400  # a row fills a tenth of a page, as real leads do
        rows = [NewRow(line, RowState.PENDING, record, ("x",)) for line in range(2, 20_002)]
        await queue.reading.add_rows(job.id, rows, read_offset=1, read_line=20_001)
        await queue.reading.finish(job.id)
        table(db_path, "PRAGMA wal_checkpoint(TRUNCATE)")  # an empty log to start from
        wal = Path(f"{db_path}-wal")
        sizes = []
        while rows := await queue.sending.claim_batch(
            job.id, 200, now_s=time.time(), runner=RUNNER
        ):
            await queue.sending.record_results(
                job.id, [RowResult(r.id, RowState.DONE, "0", "") for r in rows]
            )
            await asyncio.sleep(0)  # let a background checkpoint run
            sizes.append(file_bytes(wal))
        assert (await queue.reports.counts(job.id))[RowState.DONE] == 20_000
    # 40,000 row updates: a log that kept every frame grows to ~24 MB; started over after
    # each checkpoint it stays under 1 MB.
    assert max(sizes) < 8 * 1024 * 1024, max(sizes)


LEADS = (
    "name,phone,note\n"
    '张三,13800000001,"quoted, with comma"\n'
    "李四,13800000002,\n"  # an empty cell: absent from the record
    ",13800000003,a=b|c\n"  # '=' and a single '|' inside a value
    "王五,13800000004,x,extra\n"  # a cell past the header: invalid
    "赵六,13800000005,y,\n"  # an empty cell past the header: sent, cells kept whole
    ",,\n"  # a blank line: no row
    ",,dropped\n"  # values only in a dropped column: invalid, with --map note=
)


def csv_records(path: Path) -> list[tuple[str, ...]]:
    """The records after the header, as the csv module reads them, blank ones left out."""
    with open(path, encoding="utf-8", newline="") as handle:
        return [tuple(row) for row in csv.reader(handle) if any(row)][1:]


async def stored(queue: SqliteStorage, path: Path, options: ReaderOptions) -> tuple[Job, list[str]]:
    fmt = sniff_format(path, options)
    job = await queue.jobs.create(FILE, TARGET, {}, fmt.to_json())
    await queue.reading.ingest(job.id, read_batches(path, fmt))
    await queue.reading.finish(job.id)
    texts = [str(text) for (text,) in table(queue.path, "SELECT cells FROM rows ORDER BY id")]
    return job, texts


async def test_cells_held_by_the_record_are_stored_once_and_given_back(
    queue: SqliteStorage, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(LEADS, encoding="utf-8")
    job, texts = await stored(queue, path, ReaderOptions())
    # Pending rows of the header's width: the record alone. The others keep their cells.
    assert [text == CELLS_IN_RECORD for text in texts] == [True, True, True, False, False, True]

    views = [view async for view in queue.reports.iter_rows(job.id, list(RowState))]
    expected = csv_records(path)
    assert [view.cells for view in views] == expected
    assert [view.state for view in views] == [RowState.PENDING] * 3 + [
        RowState.INVALID,
        RowState.PENDING,
        RowState.PENDING,
    ]
    # A report of a rejected row gives its cells back too.
    rows = await queue.sending.claim_batch(job.id, 1, now_s=time.time(), runner=RUNNER)
    await queue.sending.record_results(
        job.id, [RowResult(rows[0].id, RowState.REJECTED, "7", "bad")]
    )
    [rejected, *_] = await queue.reports.last_errors(job.id, limit=10)
    assert rejected.cells == expected[0]


@pytest.mark.parametrize(
    "options",
    [
        ReaderOptions(constants=(("source", "web"),)),  # the record holds more than the cells
        ReaderOptions(rename=(("note", None),)),  # ...or less
    ],
    ids=["constant", "dropped column"],
)
async def test_cells_are_stored_whole_when_the_record_cannot_give_them_back(
    queue: SqliteStorage, tmp_path: Path, options: ReaderOptions
) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(LEADS, encoding="utf-8")
    job, texts = await stored(queue, path, options)
    assert CELLS_IN_RECORD not in texts
    views = [view async for view in queue.reports.iter_rows(job.id, list(RowState))]
    assert [view.cells for view in views] == csv_records(path)


async def test_closing_waits_for_a_call_still_waiting_for_the_lock(db_path: Path) -> None:
    # A stop can close the queue while an outcome is still waiting, in a thread, for another
    # connection's write lock: the close must wait for it, not pull the connection away.
    queue = await SqliteStorage.open(db_path)
    job = await ready_job(queue, 3)
    rows = await queue.sending.claim_batch(job.id, 3, now_s=time.time(), runner=RUNNER)
    async with write_lock_held(db_path):
        results = [RowResult(r.id, RowState.DONE, "0", "") for r in rows]
        record = asyncio.ensure_future(queue.sending.record_results(job.id, results))
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
    async with await SqliteStorage.open(db_path) as reopened:
        counts = await reopened.reports.counts(job.id)
    assert counts[RowState.DONE] == 3 and counts == counted(db_path, job.id)


async def test_closing_after_a_cancelled_checkpoint_closes_everything(db_path: Path) -> None:
    queue = await SqliteStorage.open(db_path)
    checkpoint = asyncio.ensure_future(asyncio.sleep(10))
    queue.db._checkpoint = checkpoint
    checkpoint.cancel()
    await queue.close()
    assert queue.db.loop_conn is None
    with pytest.raises(ValueError, match="closed"):
        await queue.reports.counts(1)


# --- migration 013: latest records, row ranges, opening without creating -----------------------


async def test_opening_without_create_leaves_a_missing_database_missing(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(DatabaseError, match="no such database; run or stage a file first"):
        await SqliteStorage.open(path, create=False)
    assert not os.listdir(tmp_path)


def test_a_records_customer_and_digest() -> None:
    record = "name=张三||phone1=13800138000||phone=1||city=上海"
    assert customer_of(record, "phone1") == "13800138000"
    assert customer_of(record, "phone") == "1"
    assert customer_of(record, "name") == "张三"
    assert customer_of(record, "city") == "上海"
    assert customer_of(record, "hone1") is None
    assert customer_of("phone1=||city=x", "phone1") is None
    assert customer_of(None, "phone1") is None
    assert digest_of(record) == digest_of(str(record))
    assert digest_of(record) != digest_of(record.replace("上海", "北京"))
    assert -(2**63) <= (digest_of(record) or 0) < 2**63


async def test_a_job_read_before_its_rows_range_was_kept(
    queue: SqliteStorage, db_path: Path
) -> None:
    job = await queue.jobs.create(FILE, TARGET, {}, "{}")
    await queue.reading.add_rows(job.id, [pending(2), pending(3)], read_offset=1, read_line=4)
    other = await ready_job(queue, 2)
    with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("UPDATE jobs SET first_row_id = NULL, last_row_id = NULL")
    # Reading goes on after the upgrade: the range stays unknown, and the rows are found.
    await queue.reading.add_rows(job.id, [pending(4)], read_offset=2, read_line=5)
    await queue.reading.finish(job.id)
    assert [v.line async for v in queue.reports.iter_rows(job.id, list(RowState))] == [2, 3, 4]
    assert [v.line async for v in queue.reports.iter_rows(other.id, list(RowState))] == [2, 3]
    ranges = table(db_path, "SELECT first_row_id, last_row_id FROM jobs ORDER BY id")
    assert ranges == [(1, 5), (3, 4)]  # found once, then kept
    await queue.jobs.set_state(job.id, JobState.FINISHED)
    assert [j.id for j in await queue.retention.prune(time.time() + 1)] == [job.id]
    assert table(db_path, "SELECT job_id, count(*) FROM rows GROUP BY job_id") == [(other.id, 2)]


@pytest.mark.posix_only("a small tmpfs mounted for the test")
async def test_a_full_disk_while_reading_keeps_what_was_committed(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", 512) as disk:
        async with await SqliteStorage.open(disk / "queue.db") as queue:
            job = await queue.jobs.create(FILE, TARGET, {}, "{}")

            def batches() -> Iterator[Batch]:
                line = 2
                while True:
                    rows = [pending(n, "x" * 200, str(n)) for n in range(line, line + 200)]
                    line += 200
                    yield Batch(rows, line * 10, line)

            with pytest.raises(DiskFull, match="is full; nothing committed is lost"):
                await queue.reading.ingest(job.id, batches())
            stored = await queue.jobs.get(job.id)
            assert stored.total_rows > 0 and stored.read_line == stored.total_rows + 2
            assert await queue.reports.counts(job.id) == await listed(queue, job.id)
            with pytest.raises(DiskFull):
                await queue.reading.add_rows(
                    job.id, [pending(9, "y" * 5000)] * 100, read_offset=1, read_line=2
                )
            assert (await queue.jobs.get(job.id)).total_rows == stored.total_rows


# --- migration 014: rows that may be on the server ----------------------------------------------


async def test_jobs_stored_before_migration_14_count_their_unknown_rows(db_path: Path) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT"
                 " NOT NULL, applied_at REAL NOT NULL)")  # fmt: skip
    for migration in load_migrations():
        if migration.version < 14:
            conn.executescript(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, 0)",
                (migration.version, migration.name),
            )
    conn.execute(
        "INSERT INTO jobs (state, file_path, file_size, file_mtime_ns, file_head_sha256,"
        " target_key, settings_json, format_json, created_at, updated_at)"
        " VALUES ('running', 'x', 0, 0, '', 't', '{}', '{}', 0, 0)"
    )
    conn.execute(
        "INSERT INTO rows (job_id, line, state, record, cells, created_at, updated_at)"
        " VALUES (1, 2, 'pending', 'phone=2', '[\"2\"]', 0, 0)"
    )
    conn.execute("UPDATE job_counts SET n = 1 WHERE job_id = 1 AND state = 'pending'")
    conn.close()

    async with await SqliteStorage.open(db_path) as queue:
        [row] = await queue.sending.claim_batch(1, 1, now_s=0.0, runner=RUNNER)
        await queue.sending.record_results(
            1, [RowResult(row.id, RowState.UNKNOWN, "timeout", "no answer", unknown=True)]
        )
        counts = await queue.reports.counts(1)
        assert (counts[RowState.UNKNOWN], counts[RowState.PENDING]) == (1, 0)
        assert counts == await listed(queue, 1)
        newer = await ready_job(queue, 2)
        assert (await queue.reports.counts(newer.id))[RowState.UNKNOWN] == 0
