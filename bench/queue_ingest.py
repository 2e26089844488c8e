"""Queue benchmark: ingest N rows, then time claim, counts and incremental skipping.

    python bench/queue_ingest.py [--rows 1000000] [--batch 5000] [--db PATH]

Prints rows/s for the ingest and milliseconds for the other operations, with a GROUP BY
over the rows table for comparison with the per-state counters.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bulkimport.rows import FileIdentity, NewRow, RowResult, TargetRef
from bulkimport.states import JobState, RowState
from bulkimport.storage import RunnerId
from bulkimport.storage.sqlite import SqliteStorage

RUNNER = RunnerId(1)
TARGET = TargetRef("http://bench.example/asterccinterfaces", "demo", "1")


def make_rows(count: int, start_line: int = 2) -> Iterator[NewRow]:
    """Rows of about 120 bytes of cells, like a typical lead export."""
    for i in range(count):
        phone = f"138{i:08d}"
        cells = (phone, f"Customer {i}", "Shanghai", "2024-01-01", f"note {i % 97}", "VIP")
        record = f"phone={phone}||name=Customer {i}||city=Shanghai||level=VIP"
        yield NewRow(start_line + i, RowState.PENDING, record, cells)


async def ingest(queue: SqliteStorage, job_id: int, rows: list[NewRow], batch: int) -> float:
    started = time.perf_counter()
    for offset in range(0, len(rows), batch):
        chunk = rows[offset : offset + batch]
        await queue.reading.add_rows(
            job_id, chunk, read_offset=offset * 120, read_line=chunk[-1].line
        )
    await queue.reading.finish(job_id)
    return time.perf_counter() - started


async def mark_all_done(queue: SqliteStorage, job_id: int) -> None:
    while claimed := await queue.sending.claim_batch(
        job_id, 5000, now_s=time.time(), runner=RUNNER
    ):
        await queue.sending.record_results(
            job_id, [RowResult(row.id, RowState.DONE, "0", "ok") for row in claimed]
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--db", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.db"
        rows = list(make_rows(args.rows))
        file = FileIdentity("/bench/leads.csv", args.rows * 120, 0, "0" * 64)
        async with await SqliteStorage.open(path) as queue:
            job = await queue.jobs.create(file, TARGET, {}, "{}")
            elapsed = await ingest(queue, job.id, rows, args.batch)
            print(
                f"ingest: {args.rows:,} rows in {elapsed:.2f} s = {args.rows / elapsed:,.0f} rows/s"
            )

            started = time.perf_counter()
            await mark_all_done(queue, job.id)
            elapsed = time.perf_counter() - started
            print(f"claim + record done, batches of 5000: {args.rows / elapsed:,.0f} rows/s")

            # A second job over the same file: half of its rows pend behind a million done.
            job2 = await queue.jobs.create(file._replace(mtime_ns=1), TARGET, {}, "{}")
            await ingest(queue, job2.id, rows, args.batch)
            await queue.jobs.set_state(job2.id, JobState.RUNNING)

            started = time.perf_counter()
            for _ in range(100):
                claimed = await queue.sending.claim_batch(
                    job2.id, 100, now_s=time.time(), runner=RUNNER
                )
                await queue.sending.release(job2.id, [row.id for row in claimed])
            per_claim = (time.perf_counter() - started) / 100
            print(
                f"claim 100 + release, {args.rows:,} done rows in the table: "
                f"{per_claim * 1000:.2f} ms"
            )

            started = time.perf_counter()
            for _ in range(100):
                await queue.reports.counts(job2.id)
            print(f"counts (counters table): {(time.perf_counter() - started) * 10:.3f} ms")

            started = time.perf_counter()
            await queue.sending.next_attempt_at(job2.id)
            print(
                f"next_attempt_at over {args.rows:,} pending: "
                f"{(time.perf_counter() - started) * 1000:.1f} ms"
            )

            started = time.perf_counter()
            skipped, _ = await queue.reports.mark_unchanged_skipped(job2.id, TARGET, "phone")
            elapsed = time.perf_counter() - started
            print(f"mark_unchanged_skipped: {skipped:,} rows in {elapsed:.2f} s")

        with sqlite3.connect(path) as conn:
            started = time.perf_counter()
            conn.execute(
                "SELECT state, COUNT(*) FROM rows WHERE job_id = ? GROUP BY state", (job.id,)
            ).fetchall()
            elapsed = time.perf_counter() - started
            print(
                f"for comparison, GROUP BY state over {args.rows:,} rows: {elapsed * 1000:.0f} ms"
            )
        conn.close()
        print(f"database size: {path.stat().st_size / 1e6:.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
