"""PostgreSQL storage figures, on a throwaway local cluster (bench/pg_cluster.py).

    python bench/storage_pg.py drivers   # asyncpg vs psycopg 3 (async) on the queue's work
    python bench/storage_pg.py ingest    # 100k rows read into each backend

``drivers``: the three things the queue asks of a driver all day, on a table shaped like
``rows``: 50k rows in by COPY, claim 500 (``FOR UPDATE SKIP LOCKED``, one statement), record
500 outcomes in one round trip (arrays, ``unnest``). The median of several runs.

``ingest``: ``IngestStore.ingest`` of 100k pending rows in batches of 5,000 into the SQLite
storage (a file in a temporary folder) and into the PostgreSQL one (COPY), the same rows.
Both servers run on this machine: the PostgreSQL figure has no network in it, and its cluster
runs with fsync off, which the SQLite file does not: read it as the cost of the work, not of
durability. (``bench/run.py --only pg-read`` measures the whole command, with fsync on.)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pg_cluster import cluster

ROWS = 50_000
CLAIM = 500
RUNS = 7

_TABLE = """
DROP TABLE IF EXISTS bench_rows;
CREATE TABLE bench_rows (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id BIGINT NOT NULL, line BIGINT NOT NULL, state TEXT NOT NULL, record TEXT,
    cells BYTEA[] NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION, last_code TEXT, last_message TEXT,
    runner_id BIGINT, updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX bench_pending ON bench_rows (job_id, id) WHERE state = 'pending';
"""
_COLUMNS = ("job_id", "line", "state", "record", "cells", "updated_at")
_CLAIM = (
    "WITH picked AS (SELECT id FROM bench_rows WHERE job_id = 1 AND state = 'pending'"
    " ORDER BY id LIMIT {limit} FOR UPDATE SKIP LOCKED)"
    " UPDATE bench_rows r SET state = 'in_flight', runner_id = 1 FROM picked"
    " WHERE r.id = picked.id RETURNING r.id, r.line, r.record, r.attempts"
)
_RECORD = (
    "UPDATE bench_rows r SET state = i.state, attempts = r.attempts + 1, last_code = i.code,"
    " last_message = i.message, runner_id = NULL"
    " FROM unnest({ids}::bigint[], {states}::text[], {codes}::text[], {messages}::text[])"
    " AS i(id, state, code, message) WHERE r.id = i.id AND r.state = 'in_flight'"
)


def _rows(now: float) -> list[tuple[Any, ...]]:
    return [
        (1, line, "pending", f"phone=138{line:08d}||name=n{line}||city=Shanghai",
         [f"138{line:08d}".encode(), f"n{line}".encode(), b"Shanghai"], now)
        for line in range(2, ROWS + 2)
    ]  # fmt: skip


async def _asyncpg_run(conn: Any) -> tuple[float, float, float]:
    await conn.execute(_TABLE)
    rows = _rows(time.time())
    started = time.perf_counter()
    await conn.copy_records_to_table("bench_rows", records=rows, columns=_COLUMNS)
    copied = time.perf_counter()
    claimed = await conn.fetch(_CLAIM.format(limit=CLAIM))
    claimed_at = time.perf_counter()
    ids = [row[0] for row in claimed]
    sql = _RECORD.format(ids="$1", states="$2", codes="$3", messages="$4")
    await conn.execute(sql, ids, ["done"] * len(ids), ["0"] * len(ids), ["ok"] * len(ids))
    return copied - started, claimed_at - copied, time.perf_counter() - claimed_at


async def bench_asyncpg(url: str) -> list[tuple[float, float, float]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [await _asyncpg_run(conn) for _ in range(RUNS)]
    finally:
        await conn.close()


async def _psycopg_run(conn: Any) -> tuple[float, float, float]:
    await conn.execute(_TABLE)
    rows = _rows(time.time())
    started = time.perf_counter()
    async with conn.cursor() as cur:
        statement = f"COPY bench_rows ({', '.join(_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        async with cur.copy(statement) as copy:
            copy.set_types(["int8", "int8", "text", "text", "bytea[]", "float8"])
            for row in rows:
                await copy.write_row(row)
    copied = time.perf_counter()
    cur = await conn.execute(_CLAIM.format(limit=CLAIM), prepare=True)
    claimed = await cur.fetchall()
    claimed_at = time.perf_counter()
    ids = [row[0] for row in claimed]
    sql = _RECORD.format(ids="%s", states="%s", codes="%s", messages="%s")
    await conn.execute(sql, (ids, ["done"] * len(ids), ["0"] * len(ids), ["ok"] * len(ids)))
    return copied - started, claimed_at - copied, time.perf_counter() - claimed_at


async def bench_psycopg(url: str) -> list[tuple[float, float, float]]:
    import psycopg

    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        return [await _psycopg_run(conn) for _ in range(RUNS)]
    finally:
        await conn.close()


async def drivers(url: str) -> None:
    print(f"median of {RUNS} runs; {ROWS} rows by COPY, claim {CLAIM}, record {CLAIM} outcomes")
    for name, bench in (("asyncpg", bench_asyncpg), ("psycopg 3", bench_psycopg)):
        copy, claim, record = (statistics.median(t) for t in zip(*await bench(url), strict=True))
        print(
            f"{name:10} copy {copy * 1000:7.1f} ms ({ROWS / copy:,.0f} rows/s)"
            f"  claim {claim * 1000:6.2f} ms  record {record * 1000:6.2f} ms"
        )


async def ingest(url: str) -> None:
    from bulkimport.rows import Batch, FileIdentity, NewRow, TargetRef
    from bulkimport.states import RowState
    from bulkimport.storage import Storage
    from bulkimport.storage.postgres import PostgresStorage
    from bulkimport.storage.sqlite import SqliteStorage

    total, size = 100_000, 5_000
    file = FileIdentity("/data/leads.csv", 1, 1, "ab" * 32)
    target = TargetRef("https://cc.example.com/asterccinterfaces", "org1", "7")

    def batches() -> list[Batch]:
        out = []
        for first in range(2, total + 2, size):
            rows = [
                NewRow(line, RowState.PENDING, f"phone=138{line:08d}||name=n{line}||city=SH",
                       (f"138{line:08d}", f"n{line}", "SH"))
                for line in range(first, first + size)
            ]  # fmt: skip
            out.append(Batch(rows, first * 40, first + size))
        return out

    async def one(storage: Storage) -> float:
        job = await storage.jobs.create(file, target, {}, "{}")
        prepared = batches()
        started = time.perf_counter()
        stored = await storage.reading.ingest(job.id, prepared)
        elapsed = time.perf_counter() - started
        assert stored == total
        return elapsed

    with tempfile.TemporaryDirectory() as folder:
        sqlite = await SqliteStorage.open(Path(folder) / "queue.db")
        try:
            sqlite_s = await one(sqlite)
        finally:
            await sqlite.close()
    postgres = await PostgresStorage.open(url)
    try:
        postgres_s = await one(postgres)
    finally:
        await postgres.close()
    print(f"{total} rows, batches of {size}:")
    print(f"sqlite    {sqlite_s:6.2f} s ({total / sqlite_s:,.0f} rows/s)")
    print(f"postgres  {postgres_s:6.2f} s ({total / postgres_s:,.0f} rows/s, COPY)")


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "drivers"
    with cluster(fsync=False) as running:
        url = running.url()
        asyncio.run(drivers(url) if what == "drivers" else ingest(url))


if __name__ == "__main__":
    main()
