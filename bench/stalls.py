"""Throughput against a server that stalls 2-5 s now and then: rows/s between stalls and
over the whole run, with the rules of before (each outage probed every second for its first
10 s; rate auto doubling back from the pace the stall's cuts left) and of now (probed every
half second; rate auto doubling back from the pace it had when the stall began), in one run.

    python bench/stalls.py                       # --rate 80, 60 s per variant
    python bench/stalls.py --rate auto --capacity 80 --seconds 60
    python bench/stalls.py --rate auto --capacity 80 --stalls off --only now   # no stall
    python bench/stalls.py --rate auto --capacity 80 --only now --trace 0.5    # the pace
    python bench/stalls.py --rate auto --capacity 80 --kind lock   # a lock held, not a 502

The sandbox runs in this process; a driver switches its outage (nginx's 502 while php-fpm
is held), or with ``--kind lock`` a database lock that holds every call, on for 2-5 s after
every 4-8 s of service, on the same seeded schedule for both variants. Each variant sends
from its own queue file through the real dispatcher, HTTP transport and health for
``--seconds``, then stops. "Between stalls" counts the rows the sandbox imported while it
was up, over the time it was up; "over the run" all of them over the whole run. The ratio
of the two is what the stalls cost beyond their own length.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp

from bulkimport.protocol import ImportParams
from bulkimport.rows import FileIdentity, NewRow, TargetRef
from bulkimport.sandbox import Faults, SandboxConfig, serve_sandbox
from bulkimport.send import Dispatcher, DispatchOptions
from bulkimport.send.health import HealthSettings
from bulkimport.send.pace import PaceController, PaceSettings
from bulkimport.send.transport import HttpTransport
from bulkimport.settings import SendSettings
from bulkimport.states import RowState
from bulkimport.storage import RunnerId
from bulkimport.storage.sqlite import SqliteStorage


class PaceControllerBefore(PaceController):
    """Rate auto as it resumed before: doubling back, but from the pace the stall's cuts
    left (a round closed by the answer that ended the outage counted as calm)."""

    def resume(self, now_s: float) -> None:
        self._before_trouble = None
        super().resume(now_s)


@dataclass
class Figures:
    variant: str
    seconds: float
    up_s: float
    stalls: int
    imported: int
    imported_up: int

    @property
    def between_stalls(self) -> float:
        return self.imported_up / self.up_s if self.up_s else 0.0

    @property
    def overall(self) -> float:
        return self.imported / self.seconds


def schedule(seed: int, seconds: float) -> list[tuple[float, float]]:
    """(start, length) of each stall, seconds from the run's start."""
    rng = random.Random(seed)
    stalls: list[tuple[float, float]] = []
    now = 0.0
    while True:
        now += rng.uniform(4.0, 8.0)
        length = rng.uniform(2.0, 5.0)
        if now >= seconds:
            return stalls
        stalls.append((now, length))
        now += length


def stalls_of(args: argparse.Namespace) -> list[tuple[float, float]]:
    """The stalls of this run: none with ``--stalls off``."""
    return schedule(args.seed, args.seconds) if args.stalls == "on" else []


async def run_variant(
    name: str, before: bool, args: argparse.Namespace, directory: Path
) -> Figures:
    faults = Faults(latency_s=0.005, capacity=args.capacity)
    config = SandboxConfig(port=0, db_path=directory / f"sandbox-{name}.db", faults=faults)
    async with (
        serve_sandbox(config) as sandbox,
        await SqliteStorage.open(directory / f"{name}.db") as queue,
    ):
        target = TargetRef(sandbox.url, "demo", "1")
        job = await queue.jobs.create(
            FileIdentity(f"/{name}.csv", 1, 1, "ab" * 32), target, {}, "{}"
        )
        rows = int(args.seconds * 400) + 1000
        new = [
            NewRow(line, RowState.PENDING, f"name=Lead {line}||phone1=138{line:08d}", ())
            for line in range(2, rows + 2)
        ]
        for start in range(0, rows, 5000):
            batch = new[start : start + 5000]
            await queue.reading.add_rows(
                job.id, batch, read_offset=start + len(batch), read_line=batch[-1].line + 1
            )
        await queue.reading.finish(job.id)
        auto = args.rate == "auto"
        settings = SendSettings(rate_per_s=None if auto else float(args.rate))
        health = HealthSettings(max_outage_s=settings.max_outage_s)
        if before:
            # An outage probed every second, a maintenance page one after 3 s.
            health = replace(health, probe_first_s=1.0, maintenance_s=3.0)
        params = ImportParams(org="demo", user="admin", password="secret", campaign="1")
        async with aiohttp.ClientSession() as session:
            transport = HttpTransport(session, sandbox.url, params, settings)
            options = DispatchOptions(health=health)
            dispatcher = Dispatcher(
                queue.sending, job.id, transport, settings, runner=RunnerId(1), options=options
            )
            if before and auto:
                dispatcher.pace = PaceControllerBefore(
                    PaceSettings(initial_rate_per_s=4.0, max_concurrency=settings.pool),
                    now_s=time.monotonic(),
                )
            stalls = stalls_of(args)
            up_windows: list[tuple[float, float]] = []

            async def drive() -> None:
                began = time.time()
                up_from = began
                for start, length in stalls:
                    await asyncio.sleep(max(0.0, began + start - time.time()))
                    up_windows.append((up_from, time.time()))
                    if args.kind == "lock":
                        sandbox.update_faults(lock_s=length, lock_every_s=0)
                    else:
                        sandbox.update_faults(outage="502")
                    await asyncio.sleep(length)
                    if args.kind == "lock":
                        sandbox.update_faults(lock_s=0)
                    else:
                        sandbox.update_faults(outage="off")
                    up_from = time.time()
                await asyncio.sleep(max(0.0, began + args.seconds - time.time()))
                up_windows.append((up_from, time.time()))
                dispatcher.stop()

            async def trace() -> None:
                began = time.time()
                while True:
                    await asyncio.sleep(args.trace)
                    state = dispatcher.pace.state()
                    mode = dispatcher.health.mode.value
                    print(f"  {time.time() - began:5.1f} s {mode:7} {state.describe()}", flush=True)

            started = time.time()
            driver = asyncio.create_task(drive())
            tracer = asyncio.create_task(trace()) if args.trace else None
            await dispatcher.run()
            ended = time.time()
            for task in (driver, tracer):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        assert sandbox.sandbox is not None
        imported = [a[0] for a in sandbox.sandbox.stats.arrivals if a[4]]
        up = sum(end - start for start, end in up_windows)
        imported_up = sum(1 for t in imported if any(s <= t < e for s, e in up_windows))
        return Figures(name, ended - started, up, len(stalls), len(imported), imported_up)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", default="80", help="calls/s, or auto")
    parser.add_argument("--capacity", type=float, default=0, help="the sandbox's calls/s")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--kind", choices=("502", "lock"), default="502", help="a 502 page, or a lock held"
    )
    parser.add_argument("--stalls", choices=("on", "off"), default="on", help="off: no stall")
    parser.add_argument("--only", choices=("before", "now"), help="run one variant")
    parser.add_argument("--trace", type=float, default=0.0, help="print the pace every N s")
    args = parser.parse_args()
    stalled = sum(length for _, length in stalls_of(args))
    print(
        f"--rate {args.rate}, {args.seconds:.0f} s per variant, "
        f"{len(stalls_of(args))} stalls of 2-5 s ({stalled:.0f} s in all)\n"
    )
    print(f"    python bench/stalls.py {' '.join(sys.argv[1:])}\n")
    print("| rules | rows/s between stalls | rows/s over the run | ratio (up share) | rows |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bulkimport-stalls-") as tmp:
        for name, before in (("before", True), ("now", False)):
            if args.only not in (None, name):
                continue
            figures = await run_variant(name, before, args, Path(tmp))
            ratio = figures.overall / figures.between_stalls if figures.between_stalls else 0
            share = figures.up_s / figures.seconds
            print(
                f"| {name} | {figures.between_stalls:.1f} | {figures.overall:.1f} "
                f"| {ratio:.2f} ({share:.2f}) | {figures.imported:,} |",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
