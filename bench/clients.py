"""The baselines that ``bench/run.py`` compares bulkimport with, each run as its own process.

    python bench/clients.py aiohttp  --url URL --records FILE [--concurrency 8] [--method get]
    python bench/clients.py requests --url URL --records FILE [--method get]
    python bench/clients.py csv-executemany --csv FILE --db DB

- ``aiohttp``: a bare loop, no queue, no database: ``--concurrency`` tasks share one
  keep-alive ``ClientSession`` and send every record of ``FILE`` (one JSON string per line)
  once, URL-encoded in the loop exactly as bulkimport does it (``bulkimport.protocol.
  encode_params``, sent without requoting), and read each answer. The best a Python client
  with aiohttp can do on this machine.
- ``requests``: the same requests, one after the other, over one keep-alive
  ``requests.Session``: what a simple script does.
- ``csv-executemany``: plain ``csv.reader`` + ``executemany`` into a table of text columns,
  5,000 rows per transaction: what reading costs in Python without anything else.

Each prints one JSON object on stdout: ``{"rows": n, "seconds": s, ...}`` (``seconds`` is the
time of the work alone, without the interpreter start; ``bench/run.py`` also measures the
whole process from outside).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

#: The target every benchmark sends to: the sandbox's default account, campaign 1. The
#: minimal endpoint checks none of it; the requests are the same for every client.
TARGET = {"org": "demo", "user": "admin", "password": "secret", "campaign": "1"}


def load_records(records_path: Path) -> list[str]:
    with open(records_path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def encoder() -> Callable[[str], str]:
    """The URL-encoding of one record's call, exactly as bulkimport does it."""
    from bulkimport.protocol import ImportParams, encode_params

    return encode_params(ImportParams(**TARGET))


async def aiohttp_loop(
    url: str, records: list[str], concurrency: int, method: str, rate: float = 0.0
) -> Counter[str]:
    import aiohttp
    from yarl import URL

    answers: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    encode = encoder()
    base = str(URL(url))
    async with aiohttp.ClientSession(connector=connector) as session:
        items = iter(enumerate(records))
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def worker() -> None:
            for index, record in items:
                if rate:  # the n-th call starts n/rate seconds after the first
                    delay = start + index / rate - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                query = encode(record)  # in the loop, as bulkimport does
                if method == "get":
                    # Sent as encoded (no requoting by yarl), as bulkimport sends it.
                    request = session.get(URL(f"{base}?{query}", encoded=True),
                                          allow_redirects=False)  # fmt: skip
                else:
                    request = session.post(
                        url, data=query.encode("ascii"), headers=headers, allow_redirects=False
                    )
                async with request as response:
                    body = await response.text(errors="replace")
                    answers[body[-10:] if response.status == 200 else str(response.status)] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answers


def requests_loop(url: str, records: list[str], method: str) -> Counter[str]:
    import requests

    answers: Counter[str] = Counter()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    encode = encoder()
    with requests.Session() as session:
        for record in records:
            query = encode(record)
            if method == "get":
                response = session.get(f"{url}?{query}", allow_redirects=False)
            else:
                response = session.post(url, data=query, headers=headers, allow_redirects=False)
            body = response.text
            answers[body[-10:] if response.status_code == 200 else str(response.status_code)] += 1
    return answers


def csv_executemany(csv_path: Path, db_path: Path, batch: int = 5000) -> int:
    conn = sqlite3.connect(db_path, isolation_level=None)
    count = 0
    with open(csv_path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        columns = ", ".join(f'"{name}" TEXT' for name in header)
        conn.execute(f"CREATE TABLE leads ({columns})")
        sql = f"INSERT INTO leads VALUES ({', '.join('?' * len(header))})"
        while True:
            chunk = [row for _, row in zip(range(batch), reader, strict=False)]
            if not chunk:
                break
            conn.execute("BEGIN")
            conn.executemany(sql, chunk)
            conn.execute("COMMIT")
            count += len(chunk)
    conn.close()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="client", required=True)
    for name in ("aiohttp", "requests"):
        p = sub.add_parser(name)
        p.add_argument("--url", required=True)
        p.add_argument("--records", type=Path, required=True)
        p.add_argument("--method", choices=("get", "post"), default="get")
        if name == "aiohttp":
            p.add_argument("--concurrency", type=int, default=8)
            p.add_argument("--rate", type=float, default=0.0, help="calls per second (0: no limit)")
    p = sub.add_parser("csv-executemany")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--db", type=Path, required=True)
    args = parser.parse_args()

    if args.client == "csv-executemany":
        started = time.perf_counter()
        rows = csv_executemany(args.csv, args.db)
        print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))
        return
    records = load_records(args.records)
    started = time.perf_counter()
    if args.client == "aiohttp":
        answers = asyncio.run(
            aiohttp_loop(args.url, records, args.concurrency, args.method, args.rate)
        )
    else:
        answers = requests_loop(args.url, records, args.method)
    elapsed = time.perf_counter() - started
    print(json.dumps({"rows": len(records), "seconds": elapsed, "answers": dict(answers)}))
    if sum(answers.values()) != len(records):
        sys.exit(1)


if __name__ == "__main__":
    main()
