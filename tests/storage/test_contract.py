"""The storage contract: what every implementation of ``bulkimport.storage.Storage`` keeps.

Written against the interface alone (no table, no SQL, no file), so that it runs unchanged
against any backend the ``backend`` fixture offers (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkimport.errors import ConfigError, DatabaseError, RunnerBusy
from bulkimport.reader import read_batches, sniff_format
from bulkimport.rows import Batch, NewRow, RowResult, TargetRef
from bulkimport.states import (
    InvalidReason,
    JobState,
    RemoteState,
    RepairKind,
    RowState,
    StopCause,
)
from bulkimport.storage import Ingested, Job, Refunded, RunnerId, Storage
from tests.helpers import HEADER, NEXT_RUNNER, RUNNER, good_rows, write_csv
from tests.storage.conftest import (
    FILE,
    OTHER_TARGET,
    TARGET,
    Backend,
    listed,
    pending,
    ready_job,
)


async def test_reopen_keeps_data(backend: Backend) -> None:
    async with await backend.open() as storage:
        job = await ready_job(storage, 3)
    async with await backend.open() as storage:
        assert (await storage.jobs.get(job.id)).total_rows == 3
        assert (await storage.reports.counts(job.id))[RowState.PENDING] == 3


async def test_create_find_latest_get(storage: Storage) -> None:
    job = await storage.jobs.create(FILE, TARGET, {"rate": 5, "org": "o"}, '{"encoding": "gbk"}')
    assert job.state is JobState.READING
    assert job.file == FILE
    assert job.settings == {"rate": 5, "org": "o"}
    assert job.fmt_json == '{"encoding": "gbk"}'
    assert (job.read_offset, job.read_line, job.total_rows, job.resent_unknown) == (0, 0, 0, 0)

    assert await storage.jobs.find_unfinished(FILE, TARGET) == job
    assert await storage.jobs.find_unfinished(FILE, OTHER_TARGET) is None
    assert await storage.jobs.find_unfinished(FILE._replace(size=1), TARGET) is None
    assert await storage.jobs.latest(unfinished=True) == job

    await storage.jobs.set_state(job.id, JobState.RUNNING)
    running = await storage.jobs.get(job.id)
    assert running.started_at is not None and running.finished_at is None
    await storage.jobs.set_state(job.id, JobState.FINISHED, "all done")
    finished = await storage.jobs.get(job.id)
    assert finished.finished_at is not None and finished.message == "all done"
    assert finished.started_at == running.started_at
    assert await storage.jobs.find_unfinished(FILE, TARGET) is None
    assert await storage.jobs.latest(unfinished=True) is None

    second = await storage.jobs.create(FILE, TARGET, {}, "{}")
    assert [j.id for j in await storage.jobs.list()] == [job.id, second.id]


async def test_the_facts_of_a_stop_are_kept_as_given_and_cleared_by_the_next_state(
    storage: Storage,
) -> None:
    job = await ready_job(storage, 2)
    assert job.stop_facts is None
    facts = {"cause": "outage", "outage_since": 1700000000.5, "setting": "max_outage_s",
             "budget_codes": [["BackMsg_76", 3]], "url": "http://cc.example/导入"}  # fmt: skip
    await storage.jobs.set_state(job.id, JobState.INTERRUPTED, cause=StopCause.OUTAGE, facts=facts)
    stopped = await storage.jobs.get(job.id)
    assert (stopped.stop_facts, stopped.stop_cause, stopped.message) == (
        facts,
        StopCause.OUTAGE,
        None,
    )
    await storage.jobs.set_state(job.id, JobState.RUNNING)
    assert (await storage.jobs.get(job.id)).stop_facts is None


async def test_runs_that_end_try_later_are_counted_until_one_ends_otherwise(
    storage: Storage,
) -> None:
    job = await ready_job(storage, 2)
    assert (job.try_later_runs, job.try_later_since) == (0, None)
    ends: list[float] = []
    for cause in (StopCause.WINDOW, StopCause.OUTAGE, StopCause.WINDOW):
        # Starting a run is no end: the count stands while it goes.
        await storage.jobs.set_state(job.id, JobState.RUNNING)
        assert (await storage.jobs.get(job.id)).try_later_runs == len(ends)
        ends.append(time.time())
        await storage.jobs.set_state(job.id, JobState.INTERRUPTED, "later", cause)
        assert (await storage.jobs.get(job.id)).try_later_runs == len(ends)
    counted = await storage.jobs.get(job.id)
    assert counted.try_later_runs == 3
    # Since the first of them ended, not the last.
    assert counted.try_later_since is not None
    assert ends[0] <= counted.try_later_since < ends[1] + 1e-3

    # A tomorrow's export of the same path to the same target goes on from it; another target
    # or another path starts at 0.
    later = FILE._replace(size=FILE.size + 1)
    carried = await storage.jobs.create(later, TARGET, {}, "{}")
    assert (carried.try_later_runs, carried.try_later_since) == (3, counted.try_later_since)
    elsewhere = await storage.jobs.create(later, OTHER_TARGET, {}, "{}")
    other_path = await storage.jobs.create(later._replace(path="/data/x.csv"), TARGET, {}, "{}")
    assert elsewhere.try_later_runs == other_path.try_later_runs == 0

    # Any other end sets it back: finished, stopped, interrupted by a signal or otherwise.
    for state, cause in (
        (JobState.FINISHED, None),
        (JobState.STOPPED, StopCause.FATAL),
        (JobState.INTERRUPTED, StopCause.SIGNAL),
        (JobState.INTERRUPTED, None),
    ):
        await storage.jobs.set_state(job.id, JobState.INTERRUPTED, "later", StopCause.OUTAGE)
        assert (await storage.jobs.get(job.id)).try_later_runs >= 1
        await storage.jobs.set_state(job.id, JobState.RUNNING)
        await storage.jobs.set_state(job.id, state, "ended", cause)
        reset = await storage.jobs.get(job.id)
        assert (reset.try_later_runs, reset.try_later_since) == (0, None), (state, cause)
    # The next "try later" starts a new count, since then.
    before = time.time()
    await storage.jobs.set_state(job.id, JobState.INTERRUPTED, "later", StopCause.WINDOW)
    again = await storage.jobs.get(job.id)
    assert again.try_later_runs == 1 and again.try_later_since is not None
    assert again.try_later_since >= before
    # Other jobs keep their own count.
    assert (await storage.jobs.get(carried.id)).try_later_runs == 3


async def test_get_missing_job(storage: Storage) -> None:
    message = f"no job 42 in {storage.location}; see bulkimport jobs"
    with pytest.raises(ConfigError, match=re.escape(message)):
        await storage.jobs.get(42)


async def test_the_name_of_the_password_variable_may_be_stored(storage: Storage) -> None:
    job = await storage.jobs.create(FILE, TARGET, {"password_env": "NIGHTLY_PASSWORD"}, "{}")
    assert job.settings == {"password_env": "NIGHTLY_PASSWORD"}


@pytest.mark.parametrize(
    "settings",
    [{"password": "s3cret"}, {"Password": "x"}, {"server": {"source_password": "p"}}],
)
async def test_settings_with_a_password_are_refused(
    storage: Storage, settings: dict[str, object]
) -> None:
    with pytest.raises(ConfigError, match="password is never written"):
        await storage.jobs.create(FILE, TARGET, settings, "{}")
    assert await storage.jobs.list() == []


async def test_empty_password_setting_is_accepted(storage: Storage) -> None:
    job = await storage.jobs.create(FILE, TARGET, {"password": "", "password_env": None}, "{}")
    assert job.settings == {"password": "", "password_env": None}


async def test_add_rows_stores_position_with_the_batch(storage: Storage) -> None:
    job = await storage.jobs.create(FILE, TARGET, {}, "{}")
    await storage.reading.add_rows(job.id, [pending(2), pending(3)], read_offset=40, read_line=3)
    invalid = NewRow(4, RowState.INVALID, None, ("bad",), InvalidReason.CELLS, "phone is empty")
    await storage.reading.add_rows(job.id, [invalid], read_offset=55, read_line=4)
    stored = await storage.jobs.get(job.id)
    assert (stored.read_offset, stored.read_line, stored.total_rows) == (40 + 15, 4, 3)
    counts = await storage.reports.counts(job.id)
    assert (counts[RowState.PENDING], counts[RowState.INVALID]) == (2, 1)
    [view] = [v async for v in storage.reports.iter_rows(job.id, [RowState.INVALID])]
    assert (view.line, view.record, view.last_message) == (4, None, "phone is empty")


def batches_of(lines: range, size: int) -> Iterator[Batch]:
    """Batches of pending rows for ``lines``, each ending where the next line starts."""
    for first in range(lines.start, lines.stop, size):
        chunk = range(first, min(first + size, lines.stop))
        yield Batch([pending(line) for line in chunk], 10 * chunk.stop, chunk.stop)


async def test_ingest_commits_each_batch_with_its_position(storage: Storage) -> None:
    job = await storage.jobs.create(FILE, TARGET, {}, "{}")
    seen: list[Ingested] = []
    loop_thread = threading.get_ident()
    threads: set[int] = set()

    def on_batch(progress: Ingested) -> None:
        threads.add(threading.get_ident())
        seen.append(progress)

    stored = await storage.reading.ingest(job.id, batches_of(range(2, 25), 10), on_batch=on_batch)
    assert stored == 23
    # Called on the event loop, once per committed batch, in order.
    assert threads == {loop_thread}
    assert seen == [Ingested(10, 120, 12), Ingested(20, 220, 22), Ingested(23, 250, 25)]
    stored_job = await storage.jobs.get(job.id)
    assert (stored_job.read_offset, stored_job.read_line, stored_job.total_rows) == (250, 25, 23)
    assert [v.line async for v in storage.reports.iter_rows(job.id, [RowState.PENDING])] == list(
        range(2, 25)
    )


async def test_blank_lines_and_repairs_are_kept_with_each_batch(backend: Backend) -> None:
    decimal, apostrophe = RepairKind.DECIMAL, RepairKind.APOSTROPHE
    async with await backend.open() as storage:
        job = await storage.jobs.create(FILE, TARGET, {}, "{}")
        assert (job.blank_lines, job.repairs) == (0, {})
        seen: list[Ingested] = []
        batches = [
            Batch([pending(2)], 30, 5, blank_lines=2, repairs={decimal: 1}),
            Batch([], 40, 7, blank_lines=2),  # only blank lines: counted all the same
            Batch([pending(7), pending(8)], 60, 9, repairs={decimal: 2, apostrophe: 1}),
        ]
        assert await storage.reading.ingest(job.id, batches, on_batch=seen.append) == 3
        assert seen == [
            Ingested(1, 30, 5, 2, {decimal: 1}),
            Ingested(1, 40, 7, 4, {decimal: 1}),
            Ingested(3, 60, 9, 4, {decimal: 3, apostrophe: 1}),
        ]
        read = await storage.jobs.get(job.id)
        assert (read.read_offset, read.read_line, read.total_rows) == (60, 9, 3)
    # Kept with the job: another process (a resume, `status`) reads them.
    async with await backend.open() as storage:
        stored = await storage.jobs.get(job.id)
        assert (stored.blank_lines, stored.repairs) == (4, {decimal: 3, apostrophe: 1})
        await storage.reading.add_rows(job.id, [pending(9)], read_offset=70, read_line=10)
        assert (await storage.jobs.get(job.id)).blank_lines == 4
        assert [j.blank_lines for j in await storage.jobs.list()] == [4]


async def test_ingest_stops_after_the_batch_in_hand_and_resumes(storage: Storage) -> None:
    job = await storage.jobs.create(FILE, TARGET, {}, "{}")
    stop = threading.Event()
    parsed: list[int] = []

    def batches() -> Iterator[Batch]:
        for batch in batches_of(range(2, 52), 10):
            parsed.append(batch.next_line)
            if len(parsed) == 2:
                stop.set()  # Ctrl-C while the second batch is being parsed
            yield batch

    read = batches()
    assert await storage.reading.ingest(job.id, read, stop=stop) == 20
    assert parsed == [12, 22]  # the third batch was never read
    # Closed by the ingest, once no thread of its own runs them: the reader's file with them.
    assert read.gi_frame is None
    interrupted = await storage.jobs.get(job.id)
    assert (interrupted.read_offset, interrupted.read_line, interrupted.total_rows) == (220, 22, 20)
    # Resuming at the committed position stores every line exactly once.
    rest = (b for b in batches_of(range(2, 52), 10) if b.next_line > interrupted.read_line)
    assert await storage.reading.ingest(job.id, rest) == 30
    lines = [row.line async for row in storage.reports.iter_rows(job.id, list(RowState))]
    assert lines == list(range(2, 52))
    assert (await storage.reports.counts(job.id))[RowState.PENDING] == 50


async def test_a_cancelled_ingest_ends_only_once_its_thread_has(storage: Storage) -> None:
    # A thread cannot be cancelled: the ingest sets its stop and waits for the thread (it
    # ends after the batch in hand), so that nothing runs the batches once it has ended and
    # its caller may close them (closed from another thread while one runs them, a
    # generator fails with "generator already executing").
    job = await storage.jobs.create(FILE, TARGET, {}, "{}")
    stop, inside, release = threading.Event(), threading.Event(), threading.Event()

    def slow_third() -> Iterator[Batch]:
        for batch in batches_of(range(2, 52), 10):
            if batch.next_line == 32:
                inside.set()
                release.wait()  # a slow batch: parsed until the test lets it go
            yield batch

    read = slow_third()
    task = asyncio.ensure_future(storage.reading.ingest(job.id, read, stop=stop))
    try:
        assert await asyncio.to_thread(inside.wait, 60)
        task.cancel()
        assert await asyncio.to_thread(stop.wait, 60)  # the cancel reached the ingest
        assert not task.done()  # its thread is still inside the third batch
    finally:
        release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert read.gi_frame is None  # closed, by the ingest
    # What was committed before the end is whole: every line once, up to the position.
    stopped = await storage.jobs.get(job.id)
    lines = [row.line async for row in storage.reports.iter_rows(job.id, list(RowState))]
    assert lines == list(range(2, stopped.read_line))
    assert stopped.total_rows == len(lines) and stopped.read_line <= 42


async def test_a_cancel_in_a_slow_batch_of_a_file_leaves_it_closed_and_resumable(
    storage: Storage, tmp_path: Path
) -> None:
    # As a run reads: a file written as users write it, read by the reader, a batch of it
    # slow (a slow disk); the cancel comes while the thread is inside it.
    path = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(50)])
    fmt = sniff_format(path)
    job = await storage.jobs.create(FILE, TARGET, {}, fmt.to_json())
    inside, release = threading.Event(), threading.Event()
    read = read_batches(path, fmt, batch_rows=10)

    def slow_third() -> Iterator[Batch]:
        with contextlib.closing(read):  # closed with this wrapper, as ``yield from`` would
            for number, batch in enumerate(read, 1):
                if number == 3:
                    inside.set()
                    release.wait()
                yield batch

    task = asyncio.ensure_future(storage.reading.ingest(job.id, slow_third()))
    try:
        assert await asyncio.to_thread(inside.wait, 60)
        task.cancel()
    finally:
        release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert read.gi_frame is None  # the reader's file closed, by the ingest
    stopped = await storage.jobs.get(job.id)
    rest = read_batches(
        path, fmt, start_offset=stopped.read_offset, start_line=stopped.read_line, batch_rows=10
    )
    assert await storage.reading.ingest(job.id, rest) == 50 - stopped.total_rows
    lines = [row.line async for row in storage.reports.iter_rows(job.id, list(RowState))]
    assert lines == list(range(2, 52))


async def test_ingest_counts_match_the_rows(storage: Storage) -> None:
    job = await storage.jobs.create(FILE, TARGET, {}, "{}")
    rows = [
        pending(line)
        if line % 3
        else NewRow(
            line, RowState.INVALID, None, ("",), InvalidReason.CELLS, "1 cell, the header has 2"
        )
        for line in range(2, 1002)
    ]
    batches = [
        Batch(rows[i : i + 97], i + 97, rows[min(i + 96, 999)].line + 1) for i in range(0, 1000, 97)
    ]
    assert await storage.reading.ingest(job.id, batches) == 1000
    assert await storage.reports.counts(job.id) == await listed(storage, job.id)


async def test_add_rows_needs_a_job_being_read(storage: Storage) -> None:
    job = await ready_job(storage, 1)
    with pytest.raises(DatabaseError, match="not being read"):
        await storage.reading.add_rows(job.id, [pending(9)], read_offset=1, read_line=9)
    with pytest.raises(DatabaseError, match="not being read"):
        await storage.reading.finish(job.id)
    assert (await storage.jobs.get(job.id)).state is JobState.READY


async def test_claim_in_line_order(storage: Storage) -> None:
    job = await ready_job(storage, 5)
    first = await storage.sending.claim_batch(job.id, 2, now_s=time.time(), runner=RUNNER)
    second = await storage.sending.claim_batch(job.id, 10, now_s=time.time(), runner=RUNNER)
    assert [r.line for r in first] == [2, 3]
    assert [r.line for r in second] == [4, 5, 6]
    assert first[0].record == "phone=2" and first[0].attempts == 0
    assert await storage.sending.claim_batch(job.id, 10, now_s=time.time(), runner=RUNNER) == []
    assert (await storage.reports.counts(job.id))[RowState.IN_FLIGHT] == 5


async def test_concurrent_claimers_never_share_a_row(storage: Storage, backend: Backend) -> None:
    job = await ready_job(storage, 600)
    async with await backend.open() as other:

        async def drain(claimer: Storage) -> list[int]:
            ids: list[int] = []
            while batch := await claimer.sending.claim_batch(
                job.id, 7, now_s=time.time(), runner=RUNNER
            ):
                ids.extend(row.id for row in batch)
            return ids

        results = await asyncio.gather(drain(storage), drain(other), drain(storage), drain(other))
    claimed = [row_id for ids in results for row_id in ids]
    assert len(claimed) == len(set(claimed)) == 600
    assert sum(1 for ids in results if ids) >= 2


async def test_retry_time_is_respected(storage: Storage) -> None:
    job = await ready_job(storage, 2)
    assert await storage.sending.next_attempt_at(job.id) == 0.0
    now = 1_000.0
    claimed = await storage.sending.claim_batch(job.id, 10, now_s=now, runner=RUNNER)
    assert await storage.sending.next_attempt_at(job.id) is None
    await storage.sending.record_results(
        job.id,
        [
            RowResult(claimed[0].id, RowState.PENDING, "503", "busy", next_attempt_at_s=now + 30),
            RowResult(claimed[1].id, RowState.PENDING, "503", "busy", next_attempt_at_s=now + 10),
        ],
    )
    assert await storage.sending.next_attempt_at(job.id) == now + 10
    assert await storage.sending.claim_batch(job.id, 10, now_s=now + 5, runner=RUNNER) == []
    due = await storage.sending.claim_batch(job.id, 10, now_s=now + 10, runner=RUNNER)
    assert [(r.line, r.attempts) for r in due] == [(3, 1)]
    assert [
        r.line for r in await storage.sending.claim_batch(job.id, 10, now_s=now + 31, runner=RUNNER)
    ] == [2]


async def test_record_results(storage: Storage) -> None:
    job = await ready_job(storage, 6)
    rows = await storage.sending.claim_batch(job.id, 5, now_s=time.time(), runner=RUNNER)
    results = [
        RowResult(rows[0].id, RowState.DONE, "0", "imported"),
        RowResult(rows[1].id, RowState.DUPLICATE, "5", "exists"),
        RowResult(rows[2].id, RowState.REJECTED, "7", "bad phone"),
        RowResult(rows[3].id, RowState.PENDING, "503", "busy", next_attempt_at_s=0.0),
        RowResult(rows[4].id, RowState.PENDING, "", "not sent", counted=False),
        RowResult(9_999, RowState.DONE, "0", "no such row"),
    ]
    assert await storage.sending.record_results(job.id, results) == 5
    # Recorded again (e.g. after a recovery): rows no longer in flight are left alone.
    assert (
        await storage.sending.record_results(
            job.id, [RowResult(rows[2].id, RowState.DONE, "0", "")]
        )
        == 0
    )

    views = {v.line: v async for v in storage.reports.iter_rows(job.id, list(RowState))}
    assert (views[2].state, views[2].attempts, views[2].last_code) == (RowState.DONE, 1, "0")
    assert views[3].state is RowState.DUPLICATE
    assert (views[4].state, views[4].last_message) == (RowState.REJECTED, "bad phone")
    assert (views[5].state, views[5].attempts, views[5].last_code) == (RowState.PENDING, 1, "503")
    assert (views[6].state, views[6].attempts) == (RowState.PENDING, 0)
    assert views[7].state is RowState.PENDING  # never claimed

    counts = await storage.reports.counts(job.id)
    assert counts[RowState.IN_FLIGHT] == 0 and counts[RowState.PENDING] == 3
    errors = await storage.reports.last_errors(job.id)
    assert {v.line for v in errors} == {4, 5, 6}


async def test_an_attempt_an_outage_cost_is_taken_back_whatever_the_row_became(
    storage: Storage,
) -> None:
    job = await ready_job(storage, 5)
    now = time.time()
    rows = await storage.sending.claim_batch(job.id, 5, now_s=now, runner=RUNNER)
    trouble = [
        RowResult(r.id, RowState.PENDING, "refused", "down", next_attempt_at_s=now) for r in rows
    ]
    await storage.sending.record_results(job.id, trouble[:4])
    await storage.sending.record_results(
        job.id, [RowResult(rows[4].id, RowState.FAILED, "refused", "down")]
    )
    again = await storage.sending.claim_batch(job.id, 3, now_s=now, runner=RUNNER)
    assert [r.attempts for r in again] == [1, 1, 1]
    await storage.sending.record_results(
        job.id,
        [
            RowResult(again[0].id, RowState.DONE, "BackMsg_84", "imported"),
            RowResult(again[1].id, RowState.REJECTED, "BackMsg_74", "bad field"),
        ],
    )
    # again[2] is in flight, rows[3] pending, rows[4] failed: the outage is known now.
    ids = [again[0].id, again[1].id, again[2].id, rows[3].id, rows[4].id]
    # rows[4] failed by it, pending again; rows[3] pending; two settled since.
    assert await storage.sending.uncount(job.id, ids, now_s=now + 5) == Refunded(1, 0, 3)
    views = {v.line: v async for v in storage.reports.iter_rows(job.id, list(RowState))}
    # Settled rows keep the attempt that settled them; the others are back to none.
    assert [(views[line].state, views[line].attempts) for line in range(2, 7)] == [
        (RowState.DONE, 1),
        (RowState.REJECTED, 1),
        (RowState.IN_FLIGHT, 1),
        (RowState.PENDING, 0),
        (RowState.PENDING, 0),
    ]
    # A settled row whose one attempt settled it has nothing to take back.
    assert (await storage.sending.uncount(job.id, [again[0].id], now_s=now + 5)).rows == 0


async def test_uncount_takes_back_one_attempt_of_a_row_that_failed_after_several(
    storage: Storage,
) -> None:
    # Sent twice (pending again after the first), failed by the second, which an outage
    # cost: one attempt back, the row pending with the first one still counted.
    job = await ready_job(storage, 1)
    now = time.time()
    for state in (RowState.PENDING, RowState.FAILED):
        [row] = await storage.sending.claim_batch(job.id, 1, now_s=now + 60, runner=RUNNER)
        await storage.sending.record_results(
            job.id, [RowResult(row.id, state, "timeout", "no answer", next_attempt_at_s=now)]
        )
    assert await storage.sending.uncount(job.id, [row.id], now_s=now) == Refunded(1, 0, 0)
    [view] = [v async for v in storage.reports.iter_rows(job.id, list(RowState))]
    assert (view.state, view.attempts) == (RowState.PENDING, 1)
    assert (await storage.reports.counts(job.id))[RowState.PENDING] == 1


async def test_record_results_ignores_other_jobs(storage: Storage) -> None:
    job = await ready_job(storage, 1)
    other = await ready_job(storage, 1)
    [row] = await storage.sending.claim_batch(job.id, 1, now_s=time.time(), runner=RUNNER)
    assert (
        await storage.sending.record_results(other.id, [RowResult(row.id, RowState.DONE, "0", "")])
        == 0
    )
    assert (await storage.reports.counts(job.id))[RowState.IN_FLIGHT] == 1


async def test_recover_in_flight(storage: Storage) -> None:
    job = await ready_job(storage, 4)
    rows = await storage.sending.claim_batch(job.id, 3, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(job.id, [RowResult(rows[0].id, RowState.DONE, "0", "")])
    assert await storage.sending.recover_in_flight(job.id, NEXT_RUNNER) == 2
    assert await storage.sending.recover_in_flight(job.id, NEXT_RUNNER) == 0
    assert (await storage.jobs.get(job.id)).resent_unknown == 2
    again = await storage.sending.claim_batch(job.id, 10, now_s=time.time(), runner=RUNNER)
    assert [(r.line, r.attempts) for r in again] == [(3, 0), (4, 0), (5, 0)]


async def test_release(storage: Storage) -> None:
    job = await ready_job(storage, 3)
    rows = await storage.sending.claim_batch(job.id, 3, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(job.id, [RowResult(rows[0].id, RowState.DONE, "0", "")])
    assert await storage.sending.release(job.id, [r.id for r in rows]) == 2
    assert [
        r.line
        for r in await storage.sending.claim_batch(job.id, 10, now_s=time.time(), runner=RUNNER)
    ] == [3, 4]
    assert (await storage.jobs.get(job.id)).resent_unknown == 0


async def test_cancelled_claim_gives_its_rows_back(storage: Storage) -> None:
    job = await ready_job(storage, 50)
    for _ in range(20):
        task = asyncio.ensure_future(
            storage.sending.claim_batch(job.id, 10, now_s=time.time(), runner=RUNNER)
        )
        await asyncio.sleep(0)  # let it send the claim, then cancel it mid-way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await storage.reports.counts(job.id))[RowState.IN_FLIGHT] == 0
    assert (
        len(await storage.sending.claim_batch(job.id, 100, now_s=time.time(), runner=RUNNER)) == 50
    )


async def test_cancelled_record_results_still_records(storage: Storage) -> None:
    job = await ready_job(storage, 20)
    rows = await storage.sending.claim_batch(job.id, 20, now_s=time.time(), runner=RUNNER)
    results = [RowResult(r.id, RowState.DONE, "0", "") for r in rows]
    task = asyncio.ensure_future(storage.sending.record_results(job.id, results))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await storage.reports.counts(job.id))[RowState.DONE] == 20
    # And the connection is usable: no transaction was left open.
    assert await storage.sending.claim_batch(job.id, 1, now_s=time.time(), runner=RUNNER) == []


async def test_record_results_refuses_in_flight(storage: Storage) -> None:
    job = await ready_job(storage, 1)
    [row] = await storage.sending.claim_batch(job.id, 1, now_s=time.time(), runner=RUNNER)
    with pytest.raises(ValueError, match="in_flight"):
        await storage.sending.record_results(
            job.id, [RowResult(row.id, RowState.IN_FLIGHT, "", "")]
        )


async def test_counts_every_state(storage: Storage) -> None:
    # An earlier job loaded "phone=9", so line 9 of this one is skipped as unchanged.
    earlier = await storage.jobs.create(FILE, TARGET, {}, "{}")
    await storage.reading.add_rows(earlier.id, [pending(9)], read_offset=1, read_line=9)
    await storage.reading.finish(earlier.id)
    [loaded] = await storage.sending.claim_batch(earlier.id, 1, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(
        earlier.id, [RowResult(loaded.id, RowState.DONE, "c", "m")]
    )
    job = await storage.jobs.create(FILE, TARGET, {}, "{}")
    assert await storage.reports.counts(job.id) == dict.fromkeys(RowState, 0)
    await storage.reading.add_rows(
        job.id,
        [
            *(pending(line) for line in range(2, 10)),
            NewRow(10, RowState.INVALID, None, ("",), InvalidReason.NO_VALUES, "x"),
        ],
        read_offset=1,
        read_line=10,
    )
    await storage.reading.finish(job.id)
    assert await storage.reports.mark_unchanged_skipped(job.id, TARGET, "phone") == (1, 0, 0)
    rows = await storage.sending.claim_batch(job.id, 6, now_s=time.time(), runner=RUNNER)
    outcomes = [
        RowState.DONE, RowState.DUPLICATE, RowState.REJECTED, RowState.FAILED, RowState.UNKNOWN,
    ]  # fmt: skip
    await storage.sending.record_results(
        job.id, [RowResult(r.id, state, "c", "m") for r, state in zip(rows, outcomes, strict=False)]
    )
    await storage.jobs.set_state(job.id, JobState.RUNNING)
    counts = await storage.reports.counts(job.id)
    assert counts == {
        RowState.PENDING: 1,
        RowState.IN_FLIGHT: 1,
        RowState.DONE: 1,
        RowState.DUPLICATE: 1,
        RowState.REJECTED: 1,
        RowState.FAILED: 1,
        RowState.INVALID: 1,
        RowState.SKIPPED: 1,
        RowState.UNKNOWN: 1,
    }
    # The counters agree with counting the rows themselves.
    assert counts == await listed(storage, job.id)


async def test_counters_follow_every_move(backend: Backend) -> None:
    # The storage counts the rows each statement moves (no trigger does it per row): after
    # every kind of move the counters must still equal a count of the rows.
    async with await backend.open() as storage:
        job = await ready_job(storage, 30)
        assert await storage.reports.counts(job.id) == await listed(storage, job.id)
        rows = await storage.sending.claim_batch(job.id, 12, now_s=time.time(), runner=RUNNER)
        assert await storage.reports.counts(job.id) == await listed(storage, job.id)
        results = [
            RowResult(rows[0].id, RowState.DONE, "c", "m"),
            RowResult(rows[1].id, RowState.DUPLICATE, "c", "m"),
            RowResult(rows[2].id, RowState.REJECTED, "c", "m"),
            RowResult(rows[3].id, RowState.FAILED, "c", "m"),
            RowResult(rows[4].id, RowState.PENDING, "c", "retry", time.time() - 1),
            RowResult(rows[5].id, RowState.PENDING, "c", "unsent", None, False),
            RowResult(rows[6].id, RowState.DONE, "c", "m"),
            RowResult(rows[9].id, RowState.UNKNOWN, "timeout", "m", unknown=True),
            RowResult(rows[10].id, RowState.UNKNOWN, "timeout", "m", unknown=True),
        ]
        # A result for a row that is not in flight (recorded twice) moves nothing.
        assert await storage.sending.record_results(job.id, results) == 9
        assert await storage.sending.record_results(job.id, results[:2]) == 0
        assert await storage.reports.counts(job.id) == await listed(storage, job.id)
        assert await storage.sending.release(job.id, [rows[7].id, rows[8].id, rows[0].id]) == 2
        assert await storage.reports.counts(job.id) == await listed(storage, job.id)
        assert await storage.reports.reset_rows(job.id, [RowState.FAILED, RowState.REJECTED]) == 2
        assert await storage.reports.counts(job.id) == await listed(storage, job.id)
        refunded = await storage.sending.uncount(job.id, [rows[10].id], now_s=time.time())
        assert refunded == Refunded(unknown=1)
        assert await storage.reports.counts(job.id) == await listed(storage, job.id)
        assert await storage.reports.reset_rows(job.id, [RowState.UNKNOWN]) == 1
        assert await storage.reports.counts(job.id) == await listed(storage, job.id)
    # A runner that died with rows in flight: the next one gives them back.
    async with await backend.open() as storage:
        assert await storage.sending.recover_in_flight(job.id, NEXT_RUNNER) == 1
        counts = await storage.reports.counts(job.id)
        assert counts == await listed(storage, job.id)
        assert (counts[RowState.IN_FLIGHT], counts[RowState.DONE]) == (0, 2)


async def test_a_row_that_may_be_on_the_server_is_counted_apart_and_sent_again_only_on_demand(
    storage: Storage,
) -> None:
    job = await ready_job(storage, 3)
    rows = await storage.sending.claim_batch(job.id, 3, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(
        job.id,
        [
            RowResult(rows[0].id, RowState.PENDING, "timeout", "no answer", 0.0, True, True),
            RowResult(rows[1].id, RowState.UNKNOWN, "timeout", "may be on the server", None,
                      True, True),
            RowResult(rows[2].id, RowState.FAILED, "HTTP 503", "busy"),
        ],
    )  # fmt: skip
    [again] = await storage.sending.claim_batch(job.id, 3, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(
        job.id, [RowResult(again.id, RowState.UNKNOWN, "504", "no answer", unknown=True)]
    )
    counts = await storage.reports.counts(job.id)
    assert (counts[RowState.UNKNOWN], counts[RowState.FAILED]) == (2, 1)
    assert counts == await listed(storage, job.id)
    # Not a row to fix: not among the errors; listed by its own state.
    assert [v.line for v in await storage.reports.last_errors(job.id)] == [4]
    unsure = [v async for v in storage.reports.iter_rows(job.id, [RowState.UNKNOWN])]
    assert [(v.line, v.last_code, v.attempts) for v in unsure] == [(2, "504", 2), (3, "timeout", 1)]
    # Sent again on demand: attempts start over, its unknown outcomes are kept (a duplicate
    # answer then is this job's record, and the limit on unknown outcomes still holds).
    assert await storage.reports.reset_rows(job.id, [RowState.UNKNOWN]) == 2
    resent = await storage.sending.claim_batch(job.id, 3, now_s=time.time(), runner=RUNNER)
    assert [(r.line, r.attempts, r.unknowns) for r in resent] == [(2, 0, 2), (3, 0, 1)]


async def test_iter_rows_order_and_cells_round_trip(storage: Storage) -> None:
    job = await storage.jobs.create(FILE, TARGET, {}, "{}")
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
    await storage.reading.add_rows(job.id, rows[:2], read_offset=1, read_line=3)
    await storage.reading.add_rows(job.id, rows[2:], read_offset=2, read_line=len(cells) + 2)
    views = [v async for v in storage.reports.iter_rows(job.id, [RowState.PENDING], batch=3)]
    assert [v.line for v in views] == list(range(2, len(cells) + 2))
    assert [v.cells for v in views] == cells
    assert [v async for v in storage.reports.iter_rows(job.id, [RowState.DONE])] == []


async def test_reset_rows(storage: Storage) -> None:
    job = await storage.jobs.create(FILE, TARGET, {}, "{}")
    bad = NewRow(5, RowState.INVALID, None, ("",), InvalidReason.CELLS, "1 cell, the header has 2")
    await storage.reading.add_rows(
        job.id, [pending(2), pending(3), pending(4), bad], read_offset=1, read_line=5
    )
    await storage.reading.finish(job.id)
    rows = await storage.sending.claim_batch(job.id, 3, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(
        job.id,
        [
            RowResult(rows[0].id, RowState.FAILED, "503", "busy"),
            RowResult(rows[1].id, RowState.REJECTED, "7", "bad"),
            RowResult(rows[2].id, RowState.DONE, "0", "ok"),
        ],
    )
    assert await storage.reports.reset_rows(job.id, [RowState.FAILED, RowState.INVALID]) == 1
    again = await storage.sending.claim_batch(job.id, 10, now_s=0.0, runner=RUNNER)
    assert [(r.line, r.attempts) for r in again] == [(2, 0)]
    assert (await storage.reports.counts(job.id))[RowState.INVALID] == 1


async def test_runner_lock_in_one_process(storage: Storage) -> None:
    async with storage.runner() as first:
        if storage.several_runners:
            async with storage.runner() as second:
                assert second != first
        else:
            with pytest.raises(RunnerBusy):
                async with storage.runner():
                    pass
        # Pruning, forgetting, compacting wait until no runner sends.
        with pytest.raises(RunnerBusy):
            async with storage.maintenance():
                pass
    async with storage.maintenance():
        with pytest.raises(RunnerBusy):
            async with storage.runner():
                pass
    async with storage.runner():
        pass


async def test_rows_held_by_other_runners_are_counted(storage: Storage) -> None:
    job = await ready_job(storage, 5)
    async with storage.runner() as runner:
        await storage.sending.claim_batch(job.id, 2, now_s=time.time(), runner=runner)
        assert await storage.sending.held_elsewhere(job.id, runner) == 0
        assert await storage.sending.held_elsewhere(job.id, RunnerId(runner + 1)) == 2


async def test_a_runner_says_which_job_it_sends_and_how_fast(storage: Storage) -> None:
    job = await ready_job(storage, 3)
    other = await ready_job(storage, 3)
    assert await storage.jobs.runners(job.id) == ()
    async with storage.runner() as runner:
        assert await storage.jobs.take_reading(job.id, runner)
        await storage.jobs.record_send_rate(job.id, 12.5, runner=runner)
        [seen] = await storage.jobs.runners(job.id)
        assert (seen.id, seen.rate_per_s, seen.pid) == (runner, 12.5, os.getpid())
        assert await storage.jobs.runners(other.id) == ()
        assert (await storage.jobs.get(job.id)).send_rate_per_s == 12.5
    assert await storage.jobs.runners(job.id) == ()


async def test_mark_unchanged_skipped(storage: Storage) -> None:
    earlier = await ready_job(storage, 5)
    rows = await storage.sending.claim_batch(earlier.id, 5, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(
        earlier.id,
        [RowResult(r.id, RowState.DONE, "0", "") for r in rows[:3]]
        + [RowResult(rows[3].id, RowState.REJECTED, "7", "")],
    )
    elsewhere = await ready_job(storage, 6, target=OTHER_TARGET)
    rows = await storage.sending.claim_batch(elsewhere.id, 6, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(
        elsewhere.id, [RowResult(r.id, RowState.DONE, "0", "") for r in rows]
    )

    # Tonight's file: lines 2..7, records phone=2..phone=7.
    tonight = await ready_job(storage, 6)
    assert await storage.reports.mark_unchanged_skipped(tonight.id, TARGET, "phone") == (3, 0, 0)
    counts = await storage.reports.counts(tonight.id)
    assert (counts[RowState.SKIPPED], counts[RowState.PENDING]) == (3, 3)
    sendable = await storage.sending.claim_batch(tonight.id, 10, now_s=time.time(), runner=RUNNER)
    assert [r.line for r in sendable] == [5, 6, 7]
    assert await storage.reports.mark_unchanged_skipped(tonight.id, TARGET, "phone") == (0, 0, 0)


async def test_a_row_that_may_be_on_the_server_is_not_loaded_but_sent_with_its_unknowns(
    storage: Storage,
) -> None:
    # Last night: phone=2 loaded; phone=3 and phone=4 got no answer to 3 calls (unknown).
    earlier = await ready_job(storage, 3)
    rows = await storage.sending.claim_batch(earlier.id, 3, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(
        earlier.id,
        [
            RowResult(rows[0].id, RowState.DONE, "BackMsg_84", ""),
            *(RowResult(r.id, RowState.PENDING, "504", "", 0.0, True, True) for r in rows[1:]),
        ],
    )
    for _ in range(1):
        again = await storage.sending.claim_batch(earlier.id, 3, now_s=time.time(), runner=RUNNER)
        await storage.sending.record_results(
            earlier.id,
            [RowResult(r.id, RowState.PENDING, "504", "", 0.0, True, True) for r in again],
        )
    last = await storage.sending.claim_batch(earlier.id, 3, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(
        earlier.id, [RowResult(r.id, RowState.UNKNOWN, "504", "", unknown=True) for r in last]
    )
    # Tonight: the same three records, and phone=4 changed (another record, another line).
    tonight = await storage.jobs.create(FILE, TARGET, {}, "{}")
    records = [(2, "phone=2"), (3, "phone=3"), (4, "phone=4|name=new")]
    await storage.reading.add_rows(
        tonight.id,
        [NewRow(line, RowState.PENDING, record, (str(line),)) for line, record in records],
        read_offset=1,
        read_line=4,
    )
    await storage.reading.finish(tonight.id)
    assert await storage.reports.mark_unchanged_skipped(tonight.id, TARGET, "phone") == (1, 0, 1)
    sent = await storage.sending.claim_batch(tonight.id, 10, now_s=time.time(), runner=RUNNER)
    # phone=3 may be on the server already: sent, its 3 unknown outcomes its own; phone=4
    # changed, so last night's unknown says nothing of tonight's record.
    assert [(r.line, r.unknowns) for r in sent] == [(3, 3), (4, 0)]
    await storage.sending.record_results(
        tonight.id, [RowResult(r.id, RowState.DONE, "BackMsg_84", "") for r in sent]
    )
    # Loaded for sure now: the next night skips both.
    later = await storage.jobs.create(FILE, TARGET, {}, "{}")
    await storage.reading.add_rows(
        later.id,
        [NewRow(line, RowState.PENDING, record, (str(line),)) for line, record in records],
        read_offset=1,
        read_line=4,
    )
    await storage.reading.finish(later.id)
    assert await storage.reports.mark_unchanged_skipped(later.id, TARGET, "phone") == (3, 0, 0)


async def test_only_done_rows_of_earlier_jobs_make_a_row_unchanged(storage: Storage) -> None:
    # A duplicate answer is not "loaded": with dupway=skip the server kept other data
    # (BackMsg_82), so tonight's record must be sent again.
    earlier = await ready_job(storage, 2)
    rows = await storage.sending.claim_batch(earlier.id, 2, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(
        earlier.id,
        [
            RowResult(rows[0].id, RowState.DONE, "BackMsg_84", ""),
            RowResult(rows[1].id, RowState.DUPLICATE, "BackMsg_82", ""),
        ],
    )
    # The same job: its own done rows never make its other rows unchanged.
    tonight = await storage.jobs.create(FILE, TARGET, {}, "{}")
    twice = [NewRow(line, RowState.PENDING, "phone=99", ("99",)) for line in (2, 3)]
    await storage.reading.add_rows(tonight.id, twice, read_offset=1, read_line=3)
    await storage.reading.finish(tonight.id)
    first = await storage.sending.claim_batch(tonight.id, 1, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(
        tonight.id, [RowResult(first[0].id, RowState.DONE, "0", "")]
    )
    assert await storage.reports.mark_unchanged_skipped(tonight.id, TARGET, "phone") == (0, 0, 0)
    later = await ready_job(storage, 4)
    assert await storage.reports.mark_unchanged_skipped(later.id, TARGET, "phone") == (1, 0, 0)
    views = {v.line: v.state async for v in storage.reports.iter_rows(later.id, list(RowState))}
    assert views == {
        2: RowState.SKIPPED, 3: RowState.PENDING, 4: RowState.PENDING, 5: RowState.PENDING,
    }  # fmt: skip


async def test_remote_imports_are_recorded_without_credentials(storage: Storage) -> None:
    fields: dict[str, Any] = {
        "source": "http", "target_key": TARGET.key, "exetime": "", "delrow": "1",
        "server_job_id": "12", "state": RemoteState.ACCEPTED, "code": "ok", "message": "12",
        "attempts": 1,
    }  # fmt: skip
    record = await storage.remote.add(url="https://files.example.com/a.csv", **fields)
    assert (record.id, record.server_job_id, record.state) == (1, "12", RemoteState.ACCEPTED)
    with pytest.raises(ConfigError):
        await storage.remote.add(url="https://u:pw@files.example.com/a.csv", **fields)
    assert [r.url for r in await storage.remote.list()] == ["https://files.example.com/a.csv"]


async def test_counters_follow_a_reset_of_any_states(storage: Storage) -> None:
    job = await ready_job(storage, 6)
    rows = await storage.sending.claim_batch(job.id, 4, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(job.id, [RowResult(rows[0].id, RowState.DONE, "0", "")])
    reset = await storage.reports.reset_rows(
        job.id, [RowState.PENDING, RowState.IN_FLIGHT, RowState.DONE]
    )
    assert reset == 6
    counts = await storage.reports.counts(job.id)
    assert counts[RowState.PENDING] == 6 and counts == await listed(storage, job.id)


async def test_a_batch_cannot_drop_cells_its_job_could_not_give_back(storage: Storage) -> None:
    # A job whose format cannot rebuild cells keeps them.
    job = await storage.jobs.create(FILE, TARGET, {}, "{}")
    rows = [NewRow(2, RowState.PENDING, "a=1||c=3", ("1", "", "3"))]
    await storage.reading.ingest(job.id, [Batch(rows, 10, 3)])
    [view] = [view async for view in storage.reports.iter_rows(job.id, [RowState.PENDING])]
    assert view.cells == ("1", "", "3")


async def test_each_runner_has_an_id_of_its_own(storage: Storage) -> None:
    async with storage.runner() as first:
        pass
    async with storage.runner() as second:
        pass
    assert first != second


async def test_recovery_never_takes_a_live_runners_rows(storage: Storage) -> None:
    job = await ready_job(storage, 4)
    async with storage.runner() as runner:
        mine = await storage.sending.claim_batch(job.id, 2, now_s=time.time(), runner=runner)
        # The runner's own claims are not "left behind by a dead runner".
        assert await storage.sending.recover_in_flight(job.id, runner) == 0
        assert (await storage.reports.counts(job.id))[RowState.IN_FLIGHT] == 2
    # It ended with its rows still in flight (as a killed runner does): the next runner
    # takes them back, counted as resent after an unknown outcome.
    async with storage.runner() as after:
        assert await storage.sending.recover_in_flight(job.id, after) == 2
        again = await storage.sending.claim_batch(job.id, 10, now_s=time.time(), runner=after)
    assert [row.id for row in again][:2] == [row.id for row in mine]
    assert (await storage.jobs.get(job.id)).resent_unknown == 2


# --- which jobs are open, and their reports ---------------------------------------------------


async def finished_job(storage: Storage, lines: int, target: TargetRef = TARGET) -> Job:
    """A job whose rows were all loaded (done)."""
    job = await ready_job(storage, lines, target)
    rows = await storage.sending.claim_batch(job.id, lines, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(
        job.id, [RowResult(row.id, RowState.DONE, "0", "") for row in rows]
    )
    await storage.jobs.set_state(job.id, JobState.FINISHED)
    return await storage.jobs.get(job.id)


async def test_a_finished_job_supersedes_the_older_open_jobs_it_replaces(
    storage: Storage,
) -> None:
    refused = await ready_job(storage, 2, OTHER_TARGET)  # say, --campaign 99: unknown
    await storage.jobs.set_state(refused.id, JobState.STOPPED, "refused", StopCause.FATAL)
    same = await ready_job(storage, 2)  # the same target, interrupted: --new ran after it
    await storage.jobs.set_state(same.id, JobState.INTERRUPTED, "interrupted", StopCause.SIGNAL)
    # Left alone: another target interrupted (not refused), and another file.
    elsewhere = await ready_job(storage, 2, OTHER_TARGET)
    await storage.jobs.set_state(elsewhere.id, JobState.INTERRUPTED, "", StopCause.SIGNAL)
    other_file = await storage.jobs.create(FILE._replace(size=99), TARGET, {}, "{}")
    assert await storage.jobs.supersede(other_file.id) == []  # not finished: replaces nothing

    loaded = await finished_job(storage, 2)
    replaced = await storage.jobs.supersede(loaded.id)
    assert [(job.id, job.superseded_by) for job in replaced] == [
        (refused.id, loaded.id),
        (same.id, loaded.id),
    ]
    assert (await storage.jobs.get(refused.id)).superseded_by == loaded.id
    assert not (await storage.jobs.get(refused.id)).is_open
    assert (await storage.jobs.get(elsewhere.id)).is_open
    # `resume` and `run` pass superseded jobs by.
    latest = await storage.jobs.latest(unfinished=True)
    assert latest is not None and latest.id == other_file.id
    assert await storage.jobs.find_unfinished(FILE, TARGET) is None
    found = await storage.jobs.find_unfinished(FILE, OTHER_TARGET)
    assert found is not None and found.id == elsewhere.id
    assert await storage.jobs.supersede(loaded.id) == []  # once


async def test_an_earlier_export_is_superseded_when_nothing_it_holds_would_be_lost(
    storage: Storage,
) -> None:
    async def export(mtime_ns: int, phones: list[str], *, done: bool) -> Job:
        file = FILE._replace(mtime_ns=mtime_ns, size=mtime_ns)
        job = await storage.jobs.create(file, TARGET, {}, "{}")
        rows = [customer_row(line, phone, "A") for line, phone in enumerate(phones, start=2)]
        await storage.reading.add_rows(job.id, rows, read_offset=1, read_line=len(rows) + 2)
        await storage.reading.finish(job.id)
        if done:
            claimed = await storage.sending.claim_batch(
                job.id, len(rows), now_s=time.time(), runner=RUNNER
            )
            await storage.sending.record_results(
                job.id, [RowResult(row.id, RowState.DONE, "0", "") for row in claimed]
            )
            await storage.jobs.set_state(job.id, JobState.FINISHED)
        else:
            # The window closed after the first row: the others wait.
            [first] = await storage.sending.claim_batch(job.id, 1, now_s=0.0, runner=RUNNER)
            await storage.sending.record_results(
                job.id, [RowResult(first.id, RowState.DONE, "0", "")]
            )
            await storage.jobs.set_state(job.id, JobState.INTERRUPTED, "closed", StopCause.SIGNAL)
        return await storage.jobs.get(job.id)

    monday = await export(1, ["1", "2", "3"], done=False)
    tuesday = await export(2, ["1", "2", "9"], done=False)  # customer 9 left the export after
    tonight = await export(3, ["1", "2", "3", "4"], done=True)
    assert await storage.jobs.supersede(tonight.id) == []  # which customer? it cannot tell
    replaced = await storage.jobs.supersede(tonight.id, "phone")
    assert [job.id for job in replaced] == [monday.id]
    assert (await storage.jobs.get(tuesday.id)).is_open


async def test_a_report_path_belongs_to_one_job(storage: Storage) -> None:
    first = await ready_job(storage, 1)
    second = await ready_job(storage, 1)
    assert (await storage.jobs.get(first.id)).report_path is None
    await storage.jobs.set_report(first.id, "/reports/latest.csv")
    await storage.jobs.set_report(second.id, "/reports/second.csv")
    assert (await storage.jobs.get(first.id)).report_path == "/reports/latest.csv"
    # The second job's report now written over the first one's file.
    await storage.jobs.set_report(second.id, "/reports/latest.csv")
    assert (await storage.jobs.get(first.id)).report_path is None
    assert (await storage.jobs.get(second.id)).report_path == "/reports/latest.csv"
    await storage.jobs.set_report(second.id, None)
    assert [job.report_path for job in await storage.jobs.list()] == [None, None]


async def test_the_list_of_rows_that_may_be_on_the_server_is_kept_apart(storage: Storage) -> None:
    first = await ready_job(storage, 1)
    second = await ready_job(storage, 1)
    await storage.jobs.set_report(first.id, "/reports/job-1-failed.csv")
    await storage.jobs.set_unknown_report(first.id, "/reports/job-1-unknown.csv")
    kept = await storage.jobs.get(first.id)
    assert (kept.report_path, kept.unknown_report_path) == (
        "/reports/job-1-failed.csv",
        "/reports/job-1-unknown.csv",
    )
    await storage.jobs.set_unknown_report(second.id, "/reports/job-1-unknown.csv")
    assert (await storage.jobs.get(first.id)).unknown_report_path is None
    assert (await storage.jobs.get(first.id)).report_path == "/reports/job-1-failed.csv"
    await storage.jobs.set_unknown_report(second.id, None)
    assert (await storage.jobs.get(second.id)).unknown_report_path is None


async def test_rows_of_jobs_read_in_turns_stay_with_their_job(storage: Storage) -> None:
    first = await storage.jobs.create(FILE, TARGET, {}, "{}")
    second = await storage.jobs.create(FILE, OTHER_TARGET, {}, "{}")
    for start in (2, 12, 22):
        for job in (first, second):
            rows = [pending(line) for line in range(start, start + 10)]
            await storage.reading.add_rows(job.id, rows, read_offset=start, read_line=start + 10)
    for job in (first, second):
        lines = [row.line async for row in storage.reports.iter_rows(job.id, list(RowState))]
        assert lines == list(range(2, 32))
        await storage.reading.finish(job.id)
        assert await storage.reports.reset_rows(job.id, [RowState.PENDING]) == 30
        assert await storage.reports.counts(job.id) == await listed(storage, job.id)


# --- the runner, asked from outside ---------------------------------------------------------------


async def test_runner_alive_says_whether_a_runner_holds_the_storage(
    storage: Storage, backend: Backend
) -> None:
    async with await backend.open() as other:
        assert not await other.runner_alive()
        async with storage.runner():
            assert await other.runner_alive()
            assert await storage.runner_alive()
        assert not await other.runner_alive()


# --- incremental loads: the latest record of each customer ---------------------------------------


def customer_row(line: int, phone: str, city: str) -> NewRow:
    return NewRow(line, RowState.PENDING, f"phone={phone}||city={city}", (phone, city))


async def night(
    storage: Storage,
    rows: list[NewRow],
    *,
    target: TargetRef = TARGET,
    send: bool = True,
) -> tuple[Job, tuple[int, int, int]]:
    """A job of ``rows``: unchanged rows skipped (by phone), then the rest loaded (done)."""
    job = await storage.jobs.create(FILE, target, {}, "{}")
    await storage.reading.add_rows(job.id, rows, read_offset=1, read_line=rows[-1].line + 1)
    await storage.reading.finish(job.id)
    found = await storage.reports.mark_unchanged_skipped(job.id, target, "phone")
    if send:
        claimed = await storage.sending.claim_batch(
            job.id, len(rows), now_s=time.time(), runner=RUNNER
        )
        await storage.sending.record_results(
            job.id, [RowResult(row.id, RowState.DONE, "0", "") for row in claimed]
        )
        await storage.jobs.set_state(job.id, JobState.FINISHED)
    return await storage.jobs.get(job.id), tuple(found)  # type: ignore[return-value]


async def skipped_lines(storage: Storage, job: Job) -> list[int]:
    return [row.line async for row in storage.reports.iter_rows(job.id, [RowState.SKIPPED])]


async def test_a_row_is_unchanged_only_if_it_equals_the_latest_record_of_its_customer(
    storage: Storage,
) -> None:
    a = [customer_row(line, f"1380000000{line}", "A") for line in range(2, 7)]
    await night(storage, a)
    # Night 2: the customers of lines 2 and 3 moved to B; the others are unchanged.
    b = [customer_row(r.line, r.cells[0], "B") if r.line in (2, 3) else r for r in a]
    second, found = await night(storage, b)
    assert found == (3, 0, 0)
    assert await skipped_lines(storage, second) == [4, 5, 6]
    # Night 3 loads A again: the server holds B for lines 2 and 3, so they are sent.
    third, found = await night(storage, a)
    assert found == (3, 0, 0)
    assert await skipped_lines(storage, third) == [4, 5, 6]
    # And night 4, the same as night 3: all unchanged now.
    _, found = await night(storage, a)
    assert found == (5, 0, 0)


async def test_the_latest_record_is_the_last_loaded_whichever_job_loaded_it(
    storage: Storage,
) -> None:
    # Job 1's row waits (failed, say); job 2 loads B; then job 1 is retried and loads A.
    slow, _ = await night(storage, [customer_row(2, "13800000001", "A")], send=False)
    await night(storage, [customer_row(2, "13800000001", "B")])
    [row] = await storage.sending.claim_batch(slow.id, 1, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(slow.id, [RowResult(row.id, RowState.DONE, "0", "")])
    await storage.jobs.set_state(slow.id, JobState.FINISHED)
    _, found = await night(storage, [customer_row(2, "13800000001", "A")], send=False)
    assert found == (1, 0, 0)
    _, found = await night(storage, [customer_row(2, "13800000001", "B")], send=False)
    assert found == (0, 0, 0)


async def test_rows_without_a_customer_and_customers_twice_in_a_file_are_sent(
    storage: Storage,
) -> None:
    first = [
        customer_row(2, "13800000001", "A"),
        customer_row(3, "13800000002", "A"),
        NewRow(4, RowState.PENDING, "city=A", ("", "A")),  # no phone: no customer
    ]
    await night(storage, first)
    tonight = [
        customer_row(2, "13800000001", "A"),
        customer_row(3, "13800000002", "A"),  # unchanged here...
        customer_row(4, "13800000002", "B"),  # ...but changed further down the file
        NewRow(5, RowState.PENDING, "city=A", ("", "A")),
    ]
    job, found = await night(storage, tonight, send=False)
    assert found == (1, 1, 0)
    assert await skipped_lines(storage, job) == [2]


async def test_other_targets_and_the_same_job_never_make_a_row_unchanged(
    storage: Storage,
) -> None:
    rows = [customer_row(2, "13800000001", "A")]
    await night(storage, rows, target=OTHER_TARGET)
    job, found = await night(storage, [*rows, customer_row(3, "13800000001", "A")], send=False)
    assert found == (0, 0, 0)
    # Its own rows sent since: still not "an earlier load" for the rows left.
    [row] = await storage.sending.claim_batch(job.id, 1, now_s=time.time(), runner=RUNNER)
    await storage.sending.record_results(job.id, [RowResult(row.id, RowState.DONE, "0", "")])
    assert tuple(await storage.reports.mark_unchanged_skipped(job.id, TARGET, "phone")) == (0, 0, 0)


async def test_another_key_field_starts_the_latest_records_over(storage: Storage) -> None:
    await night(storage, [customer_row(2, "13800000001", "A")])
    job, _ = await night(storage, [customer_row(2, "13800000001", "A")], send=False)
    assert await skipped_lines(storage, job) == [2]
    # Keyed by city from now on: the rows kept are folded again under the new key.
    later = await storage.jobs.create(FILE, TARGET, {}, "{}")
    await storage.reading.add_rows(
        later.id, [customer_row(2, "13800000001", "A")], read_offset=1, read_line=3
    )
    await storage.reading.finish(later.id)
    assert tuple(await storage.reports.mark_unchanged_skipped(later.id, TARGET, "city")) == (
        1,
        0,
        0,
    )


# --- retention ------------------------------------------------------------------------------------


async def test_prune_drops_finished_jobs_and_never_an_open_one(storage: Storage) -> None:
    old = await finished_job(storage, 3)
    await storage.jobs.set_report(old.id, "/reports/old.csv")
    waiting = await ready_job(storage, 2)
    await storage.jobs.set_state(waiting.id, JobState.INTERRUPTED, "Ctrl-C", StopCause.SIGNAL)
    stopped = await ready_job(storage, 2, OTHER_TARGET)  # too many rows rejected there
    await storage.jobs.set_state(stopped.id, JobState.STOPPED, "rejected", StopCause.BUDGET)
    replacing = await finished_job(storage, 2)
    await storage.jobs.supersede(replacing.id)  # the interrupted job, same file and target

    assert await storage.retention.prune(time.time() - 3600) == []
    pruned = await storage.retention.prune(time.time() + 1)
    assert [(job.id, job.report_path) for job in pruned] == [
        (old.id, "/reports/old.csv"),
        (waiting.id, None),
        (replacing.id, None),
    ]
    assert [job.id for job in await storage.jobs.list()] == [stopped.id]
    with pytest.raises(ConfigError):
        await storage.jobs.get(old.id)
    assert await storage.reports.counts(stopped.id) == await listed(storage, stopped.id)
    assert (await storage.reports.counts(stopped.id))[RowState.PENDING] == 2
    assert await storage.retention.compact() >= 0


async def test_what_customers_received_outlives_the_pruned_jobs(storage: Storage) -> None:
    a = [customer_row(line, f"1380000000{line}", "A") for line in range(2, 5)]
    await night(storage, a)
    b = [customer_row(2, a[0].cells[0], "B"), *a[1:]]
    await night(storage, b)
    assert len(await storage.retention.prune(time.time() + 1)) == 2
    assert await storage.jobs.list() == []
    # A pruned job's number is never given again.
    assert (await storage.jobs.create(FILE, TARGET, {}, "{}")).id == 3
    # Line 2's customer last received B: A is sent, the others are still unchanged.
    tonight, found = await night(storage, a, send=False)
    assert tonight.id == 4
    assert found == (2, 0, 0)
    assert await skipped_lines(storage, tonight) == [3, 4]


async def test_forget_erases_a_customers_rows_and_latest_record_from_every_job(
    storage: Storage,
) -> None:
    a = [customer_row(line, f"1380000000{line}", "A") for line in range(2, 6)]
    first, _ = await night(storage, a)
    second, _ = await night(storage, [customer_row(2, a[0].cells[0], "B"), *a[1:]])
    # Line 3's customer is folded into the latest records by the third night's lookup.
    third, _ = await night(storage, a, send=False)
    key = a[1].cells[0]

    forgotten = await storage.retention.forget(key)
    assert forgotten.rows == 3
    assert forgotten.jobs == (first.id, second.id, third.id)
    assert forgotten.latest_records == 1
    for job in (first, second, third):
        rows = [row async for row in storage.reports.iter_rows(job.id, list(RowState))]
        assert key not in [row.cells[0] for row in rows]
        assert len(rows) == 3
        assert await storage.reports.counts(job.id) == await listed(storage, job.id)
    # The customer is a stranger now: tonight's row of theirs is sent, not skipped (lines 4
    # and 5 are; line 2's customer last received B).
    tonight, found = await night(storage, a, send=False)
    assert found == (2, 0, 0)
    assert await skipped_lines(storage, tonight) == [4, 5]
    # A part of a value is not the value.
    assert (await storage.retention.forget(key[:-1])).rows == 0
