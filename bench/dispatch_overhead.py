"""The dispatcher's own cost per row: claiming, pace, health, policy and recording outcomes
in a real queue file, against a transport that answers at once (no network, no server).

    python bench/dispatch_overhead.py                  # 50,000 rows at concurrency 8 and 32
    python bench/dispatch_overhead.py --rows 200000 --concurrency 64

What is left of a send's CPU beyond this is aiohttp's and the event loop's, which a bare
aiohttp loop pays too. CPU time (user + system) of this process, so a busy machine
disturbs it less than wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

from bulkimport.protocol import Outcome, classify_answer, format_answer, parse_answer
from bulkimport.rows import FileIdentity, NewRow, TargetRef
from bulkimport.send import Dispatcher
from bulkimport.settings import SendSettings
from bulkimport.states import RowState
from bulkimport.storage import RunnerId
from bulkimport.storage.sqlite import SqliteStorage

_ANSWER = parse_answer(format_answer(True, "BackMsg_84"))
assert _ANSWER is not None
DONE = classify_answer(_ANSWER)


class Instant:
    """Answers every call at once (after one turn of the event loop, as a socket would)."""

    async def send(self, record: str) -> Outcome:
        await asyncio.sleep(0)
        return DONE

    async def probe(self) -> Outcome:
        return DONE


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(directory: Path, rows: int, concurrency: int) -> tuple[float, float]:
    """Seconds of wall time and of CPU per row for one send of ``rows`` rows."""
    async with await SqliteStorage.open(directory / f"c{concurrency}.db") as queue:
        target = TargetRef("http://bench.invalid/asterccinterfaces", "demo", "1")
        job = await queue.jobs.create(FileIdentity("/bench.csv", 1, 1, "ab" * 32), target, {}, "{}")
        new = [
            NewRow(
                line,
                RowState.PENDING,
                f"name=Lead {line}||phone1=138{line:08d}||email=lead{line}@example.com",
                (),
            )
            for line in range(2, rows + 2)
        ]
        for start in range(0, rows, 5000):
            batch = new[start : start + 5000]
            await queue.reading.add_rows(
                job.id, batch, read_offset=start + len(batch), read_line=batch[-1].line + 1
            )
        await queue.reading.finish(job.id)
        settings = SendSettings(rate_per_s=0, concurrency=concurrency)
        dispatcher = Dispatcher(queue.sending, job.id, Instant(), settings, runner=RunnerId(1))
        cpu_before, started = cpu_s(), time.perf_counter()
        result = await dispatcher.run()
        wall, cpu = time.perf_counter() - started, cpu_s() - cpu_before
        if result.counts.done != rows:
            raise RuntimeError(f"{result.counts.done} rows done of {rows}")
        return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--concurrency", default="8,32")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("| concurrency | rows | best CPU µs/row | best wall µs/row |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bulkimport-dispatch-") as tmp:
        for concurrency in (int(n) for n in args.concurrency.split(",")):
            runs = [
                asyncio.run(measure(Path(tmp), args.rows, concurrency)) for _ in range(args.runs)
            ]
            for name in Path(tmp).iterdir():
                name.unlink()
            wall = min(w for w, _ in runs) / args.rows * 1e6
            cpu = min(c for _, c in runs) / args.rows * 1e6
            print(f"| {concurrency} | {args.rows:,} | {cpu:.1f} | {wall:.1f} |")


if __name__ == "__main__":
    main()
