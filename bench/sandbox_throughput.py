"""How many Import calls per second one sandbox process answers, with faults off.

The sandbox runs in its own process (as ``bulkimport sandbox`` would); this process sends
``--calls`` new records with ``--concurrency`` workers over one aiohttp session and prints
calls/s. Usage::

    python bench/sandbox_throughput.py --calls 5000 --concurrency 32 [--method POST]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from bulkimport.protocol import ImportParams, parse_answer


def cpu_s(pid: int) -> float | None:
    """CPU seconds used by a process so far (Linux only; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SERVE = "from bulkimport.cli import main; main()"


async def send_all(url: str, calls: int, concurrency: int, method: str) -> Counter[str]:
    target = ImportParams(org="demo", user="admin", password="secret", campaign="1")
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(calls):
        queue.put_nowait(index)
    codes: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                pairs = target.request_params(f"name=Lead {index}||phone1=1{index:010d}")
                request = (
                    session.get(url, params=pairs)
                    if method == "GET"
                    else session.post(url, data=pairs)
                )
                async with request as response:
                    answer = parse_answer(await response.text())
                    codes[answer.message if answer else f"HTTP {response.status}"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return codes


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--method", choices=("GET", "POST"), default="GET")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = await asyncio.create_subprocess_exec(
            *(
                sys.executable,
                "-c",
                SERVE,
                "sandbox",
                "--port",
                "0",
                "--db",
                str(Path(tmp) / "bench.db"),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert server.stdout is not None
            url = (await server.stdout.readline()).decode().strip().rsplit(" ", 1)[1]
            await send_all(url, 200, args.concurrency, args.method)  # warm up
            cpu_before = cpu_s(server.pid)
            started = time.perf_counter()
            codes = await send_all(url, args.calls, args.concurrency, args.method)
            elapsed = time.perf_counter() - started
            cpu_after = cpu_s(server.pid)
        finally:
            server.terminate()
            await server.wait()
    print(
        f"{args.calls} {args.method} calls, concurrency {args.concurrency}: "
        f"{args.calls / elapsed:,.0f} calls/s ({elapsed:.2f} s); answers {dict(codes)}"
    )
    if cpu_before is not None and cpu_after is not None:
        busy = (cpu_after - cpu_before) / elapsed
        # The client shares the machine: what the server could take alone is the rate
        # divided by the share of a core it used.
        print(
            f"sandbox process CPU: {busy:.0%} of one core, "
            f"so about {args.calls / elapsed / max(busy, 0.01):,.0f} calls/s at 100%"
        )


if __name__ == "__main__":
    asyncio.run(main())
