"""Months of nightly loads into one database, pruned: does it stay flat?

    python bench/prune.py --rows 1000000 --nights 30 --keep 7 --changed 0.05
    python bench/prune.py --rows 100000 --nights 12 --keep 0     # never pruned: the growth

Each simulated night loads the same lead file (``bench/generate.py``: phone1 unique per row,
the customer key) of which ``--changed`` of the rows differ from the night before (their
memo says which night changed them last), with ``--skip-unchanged`` as a nightly profile
does: the night's file is read into a job (the real reader and ingest), the rows equal to the
latest record of their customer are skipped (the real lookup, which first folds in the rows
loaded since), the others are "sent" (claimed and recorded done, as a dispatcher would with
a server that answers at once: no HTTP, which is not what is measured), and the job
finishes. Before each night, the jobs finished more than ``--keep`` nights before are pruned,
as ``prune = "7d"`` in the profile does (nights are simulated: a job's "day" is its night).

Printed per night: seconds to read, to skip (the lookup), to send and to prune, the rows
skipped and sent, the jobs kept, and the size of the database file and of its write-ahead log
after the night. Results also go to ``bench/results/prune-<rows>-keep<keep>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from array import array
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from generate import HEADER, rows  # noqa: E402

from bulkimport.reader import ReaderOptions, read_batches, sniff_format  # noqa: E402
from bulkimport.rows import FileIdentity, RowResult, TargetRef  # noqa: E402
from bulkimport.states import JobState, RowState  # noqa: E402
from bulkimport.storage.sqlite import SqliteStorage  # noqa: E402

TARGET = TargetRef("https://cc.example.com/asterccinterfaces", "acme", "12")
KEY = "phone1"
MEMO = HEADER.index("memo")
SEND_BATCH = 5000


def write_night(path: Path, count: int, changed_on: array[int]) -> None:
    """The night's export: the base rows, each row's memo saying when it last changed (in
    three digits: a row's size does not grow with the number of nights)."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for index, row in enumerate(rows(count)):
            night = changed_on[index]
            if night:
                row = (*row[:MEMO], f"changed on night {night:03d}")
            writer.writerow(row)


def size_mb(path: Path) -> float:
    return path.stat().st_size / 1e6 if path.exists() else 0.0


async def one_night(storage: SqliteStorage, csv_path: Path) -> dict[str, float]:
    """Read, skip, send and finish one night's job; seconds per step and rows."""
    options = ReaderOptions(phone_field=KEY)
    started = time.perf_counter()
    fmt = sniff_format(csv_path, options)
    job = await storage.jobs.create(FileIdentity.of(csv_path), TARGET, {}, fmt.to_json())
    await storage.reading.ingest(job.id, read_batches(csv_path, fmt))
    await storage.reading.finish(job.id)
    read_s = time.perf_counter() - started

    started = time.perf_counter()
    skipped, _ = await storage.reports.mark_unchanged_skipped(job.id, TARGET, KEY)
    skip_s = time.perf_counter() - started

    started = time.perf_counter()
    sent = 0
    async with storage.runner() as runner:
        await storage.jobs.set_state(job.id, JobState.RUNNING)
        while claimed := await storage.sending.claim_batch(
            job.id, SEND_BATCH, now_s=time.time(), runner=runner
        ):
            await storage.sending.record_results(
                job.id, [RowResult(row.id, RowState.DONE, "BackMsg_84", "") for row in claimed]
            )
            sent += len(claimed)
        await storage.jobs.set_state(job.id, JobState.FINISHED)
    send_s = time.perf_counter() - started
    return {"read_s": read_s, "skip_s": skip_s, "send_s": send_s, "skipped": skipped, "sent": sent}


async def run(args: argparse.Namespace, folder: Path) -> list[dict[str, float]]:
    db = folder / "nightly.db"
    csv_path = folder / "leads.csv"
    rng = random.Random(args.seed)
    changed_on = array("H", bytes(2 * args.rows))
    finished: list[float] = []
    results: list[dict[str, float]] = []
    print(
        f"{'night':>5} {'read s':>7} {'skip s':>7} {'send s':>7} {'prune s':>8} "
        f"{'skipped':>9} {'sent':>9} {'jobs kept':>9} {'db MB':>8} {'wal MB':>7}",
        flush=True,
    )
    for night in range(1, args.nights + 1):
        if night > 1:
            for index in rng.sample(range(args.rows), int(args.rows * args.changed)):
                changed_on[index] = night
        write_night(csv_path, args.rows, changed_on)
        async with await SqliteStorage.open(db) as storage:
            started = time.perf_counter()
            if args.keep and night > args.keep:
                # Jobs finished before the night `keep` nights ago: "older than keep days".
                async with storage.runner():
                    await storage.retention.prune(finished[night - 1 - args.keep])
            prune_s = time.perf_counter() - started
            figures = await one_night(storage, csv_path)
            finished.append((await storage.jobs.get(night)).finished_at or time.time())
            kept = len(await storage.jobs.list())
        wal_mb = size_mb(db.with_name(db.name + "-wal"))
        figures.update(night=night, prune_s=prune_s, jobs=kept, db_mb=size_mb(db), wal_mb=wal_mb)
        with sqlite3.connect(db) as conn:
            figures["customers"] = conn.execute("SELECT count(*) FROM latest_records").fetchone()[0]
        results.append(figures)
        print(
            f"{night:>5} {figures['read_s']:>7.1f} {figures['skip_s']:>7.2f} "
            f"{figures['send_s']:>7.1f} {prune_s:>8.2f} {int(figures['skipped']):>9,} "
            f"{int(figures['sent']):>9,} {kept:>9} {figures['db_mb']:>8.0f} {wal_mb:>7.0f}",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--keep", type=int, default=7, help="nights kept; 0: never prune")
    parser.add_argument("--changed", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, help="where the database goes [a temporary one]")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(run(args, args.dir))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            results = asyncio.run(run(args, Path(tmp)))
    out = BENCH / "results" / f"prune-{args.rows}-keep{args.keep}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args) | {"dir": str(args.dir)}, "nights": results},
                              indent=2) + "\n")  # fmt: skip
    print(f"{time.perf_counter() - started:.0f} s in all; figures in {out}", file=sys.stderr)
    os.sync()


if __name__ == "__main__":
    main()
