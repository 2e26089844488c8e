"""``--rate auto`` against fixed paces, end to end: a real sandbox with a capacity model, the
real ``bulkimport run``, each as its own process.

    python bench/pace_bench.py                     # the table in docs/performance.md (~8 min)
    python bench/pace_bench.py --quick             # 20-second runs
    python bench/pace_bench.py --only capacity     # or: limit (the nginx limit_req part)

``capacity``: ``bulkimport sandbox --capacity 300 --latency 0.02 --queue-timeout 1`` (one
FIFO queue serving 300 calls/s, 20 ms base latency, nginx's 504 after 1 s in it, the call still
processed), a new one for each policy; ``bulkimport run`` with ``--rate auto``, ``--rate 50``,
``--rate 300`` and ``--rate 0 --concurrency 32`` for ``--seconds`` (then SIGTERM: the job
stops cleanly); at half of it the capacity halves (``POST /sandbox/faults {"capacity": 150}``).
Measured at the server (``/sandbox/arrivals``: each call's arrival, status and latency):
calls answered per second and their share of the capacity, the share of 5xx answers, p50 and
p95 of the latency (arrival to answer: the queue's wait plus the base latency), before the
change (after a warm-up of a sixth of the run) and after it; and the seconds after the change
until the error share of every later 1-second window is under 1 %, and until the p95 of every
later 1-second window is under 3x the base latency.

``limit``: the same sandbox (capacity 300, no change) behind a real nginx with ``limit_req``
50 r/s and no burst (nginx's 503, no ``Retry-After``; ``tests/frontends/nginx.py`` writes the
config), measured from nginx's access log.

The targets (PRODUCT.md): auto at least 85 % of the capacity, at most 1 % error answers, p95
at most 3x the base latency, and back under 1 % errors within 10 s of a halving.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PY = sys.executable
BASE_S = 0.020
CAPACITY = 300.0
HALVED = 150.0
LIMIT_RPS = 50
POLICIES: dict[str, list[str]] = {
    "auto": ["--rate", "auto"],
    "rate 50": ["--rate", "50"],
    "rate 300": ["--rate", "300"],
    "rate 0 (32 in flight)": ["--rate", "0", "--concurrency", "32"],
}
TARGET = ["--org", "demo", "--user", "admin", "--campaign", "1"]


@dataclass
class Call:
    """One call as the server (or nginx) saw it."""

    at_s: float  # arrival, seconds from the start of sending
    status: int
    latency_s: float | None


@dataclass
class Figures:
    scenario: str
    policy: str
    per_s: float  # good answers per second, before any change
    share: float  # of what the server lets through
    errors: float  # 5xx answers among all
    p50_ms: float
    p95_ms: float
    per_s_after: float | None = None
    share_after: float | None = None
    errors_after: float | None = None
    p95_ms_after: float | None = None
    errors_back_s: float | None = None  # None: never
    latency_back_s: float | None = None
    calls: int = 0
    notes: dict[str, Any] = field(default_factory=dict)


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def window(calls: list[Call], start_s: float, end_s: float, allowed: float) -> dict[str, float]:
    inside = [c for c in calls if start_s <= c.at_s < end_s]
    good = [c for c in inside if c.status == 200]
    errors = [c for c in inside if c.status >= 500]
    latencies = [c.latency_s for c in inside if c.latency_s is not None]
    span = end_s - start_s
    return {
        "per_s": len(good) / span,
        "share": len(good) / span / allowed,
        "errors": len(errors) / len(inside) if inside else 0.0,
        "p50_ms": quantile(latencies, 0.5) * 1000,
        "p95_ms": quantile(latencies, 0.95) * 1000,
    }


def settle_after(calls: list[Call], change_s: float, end_s: float) -> tuple[float | None, float]:
    """Seconds after ``change_s`` until every later 1-second window has under 1 % errors
    (None: the last one still has more), and the same for its p95 under 3x the base."""
    last_bad_errors: float | None = None
    last_bad_latency: float | None = None
    t = change_s
    while t + 1.0 <= end_s:
        inside = [c for c in calls if t <= c.at_s < t + 1.0]
        if inside:
            errors = sum(1 for c in inside if c.status >= 500) / len(inside)
            if errors >= 0.01:
                last_bad_errors = t + 1.0
            latencies = [c.latency_s for c in inside if c.latency_s is not None]
            if latencies and quantile(latencies, 0.95) > 3 * BASE_S:
                last_bad_latency = t + 1.0
        t += 0.5
    errors_back = 0.0 if last_bad_errors is None else last_bad_errors - change_s
    latency_back = 0.0 if last_bad_latency is None else last_bad_latency - change_s
    if last_bad_errors is not None and last_bad_errors >= end_s - 1.0:
        return None, latency_back
    return errors_back, latency_back


# --- processes ---------------------------------------------------------------------------


def start_sandbox(folder: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [PY, "-m", "bulkimport", "sandbox", "--port", "0", "--db", str(folder / "sandbox.db"),
         *options],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=folder,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"(http://\S+)/asterccinterfaces", line)
    if found is None:
        proc.kill()
        raise RuntimeError(f"the sandbox did not start: {line!r}")
    return proc, found.group(1)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def http(method: str, url: str, data: dict[str, Any] | None = None) -> Any:
    body = None if data is None else json.dumps(data).encode()
    # The sandbox takes changes as JSON only.
    headers = {} if body is None else {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def lead_file(folder: Path, rows: int) -> Path:
    path = folder / "leads.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("name,phone1,email,city\n")
        for i in range(rows):
            out.write(f"Lead {i},139{i:08d},lead{i}@example.com,City {i % 7}\n")
    return path


def run_client(
    folder: Path,
    csv_file: Path,
    url: str,
    policy: list[str],
    seconds: float,
    change: tuple[float, str, dict[str, Any]] | None = None,
) -> tuple[float, str]:
    """``bulkimport run`` for ``seconds`` from its first call (then SIGTERM); ``change``:
    at that many seconds, POST that JSON to that URL. Returns the wall time sending began."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULKIMPORT_")}
    env["BULKIMPORT_PASSWORD"] = "secret"
    db = folder / "queue.db"
    # Read the file first (stage), so that the run measures sending only.
    subprocess.run(
        [PY, "-m", "bulkimport", "stage", str(csv_file), "--url", url, *TARGET, "--db", str(db),
         "--quiet"],
        env=env, check=True, cwd=folder, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    started = time.time()
    proc = subprocess.Popen(
        [PY, "-m", "bulkimport", "resume", "--db", str(db), *policy, "--quiet",
         "--log", str(folder / "job.log")],
        env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    changed = change is None
    while time.time() - started < seconds:
        if not changed and change is not None and time.time() - started >= change[0]:
            http("POST", change[1], change[2])
            changed = True
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop(proc)
    err = proc.stderr.read() if proc.stderr is not None else ""
    return started, err


# --- the scenarios -----------------------------------------------------------------------


def capacity_run(policy: str, seconds: float, rows: int) -> Figures:
    with tempfile.TemporaryDirectory(prefix="pace-bench-") as tmp:
        folder = Path(tmp)
        csv_file = lead_file(folder, rows)
        sandbox, base = start_sandbox(
            folder, "--capacity", str(CAPACITY), "--latency", str(BASE_S), "--queue-timeout", "1"
        )
        try:
            change_s = seconds / 2
            started, err = run_client(
                folder, csv_file, base + "/asterccinterfaces", POLICIES[policy], seconds,
                (change_s, base + "/sandbox/faults", {"capacity": HALVED}),
            )  # fmt: skip
            arrivals = http("GET", base + "/sandbox/arrivals")
        finally:
            stop(sandbox)
    calls = [Call(a[0] - started, a[1], a[3]) for a in arrivals]
    first = min((c.at_s for c in calls), default=0.0)
    calls = [Call(c.at_s - first, c.status, c.latency_s) for c in calls]
    change_s -= first
    end_s = max((c.at_s for c in calls), default=0.0)
    warmup_s = seconds / 6
    before = window(calls, warmup_s, change_s, CAPACITY)
    after = window(calls, change_s + seconds / 6, end_s, HALVED)
    errors_back, latency_back = settle_after(calls, change_s, end_s)
    return Figures(
        "capacity 300/s, base 20 ms, halved mid-run", policy,
        before["per_s"], before["share"], before["errors"], before["p50_ms"], before["p95_ms"],
        after["per_s"], after["share"], after["errors"], after["p95_ms"],
        errors_back, latency_back, len(calls), {"stderr_tail": err[-300:]},
    )  # fmt: skip


def limit_run(policy: str, seconds: float, rows: int) -> Figures:
    from tests.frontends.nginx import NginxFront, RateLimit, serve_nginx

    with tempfile.TemporaryDirectory(prefix="pace-bench-") as tmp:
        folder = Path(tmp)
        csv_file = lead_file(folder, rows)
        sandbox, base = start_sandbox(
            folder, "--capacity", str(CAPACITY), "--latency", str(BASE_S), "--queue-timeout", "1"
        )
        front = NginxFront(rate_limit=RateLimit(LIMIT_RPS))

        async def with_nginx() -> tuple[float, list[Any]]:
            async with serve_nginx(base, folder / "nginx", front) as nginx:
                started, _err = await asyncio.to_thread(
                    run_client, folder, csv_file, nginx.url, POLICIES[policy], seconds
                )
                await asyncio.sleep(0.5)
                return started, nginx.access_log()

        try:
            started, log = asyncio.run(with_nginx())
        finally:
            stop(sandbox)
    calls = [
        Call(e.time_s - e.request_time_s - started, e.status, e.request_time_s)
        for e in log
        if e.uri.startswith("/asterccinterfaces")
    ]
    first = min((c.at_s for c in calls), default=0.0)
    calls = [Call(c.at_s - first, c.status, c.latency_s) for c in calls]
    end_s = max((c.at_s for c in calls), default=0.0)
    steady = window(calls, seconds / 6, end_s, LIMIT_RPS)
    return Figures(
        f"capacity 300/s behind nginx limit_req {LIMIT_RPS} r/s (503, no Retry-After)", policy,
        steady["per_s"], steady["share"], steady["errors"], steady["p50_ms"], steady["p95_ms"],
        calls=len(calls),
    )  # fmt: skip


# --- the table ---------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.0f} ({value / (BASE_S * 1000):.1f}×)"


def _s(value: float | None, changed: bool) -> str:
    if not changed:
        return "—"
    return "never" if value is None else f"{value:.1f}"


def table(results: list[Figures]) -> str:
    lines = [
        "| server | policy | calls/s | share | 5xx | p50 ms | p95 ms (× base) "
        "| after halving: calls/s | share | 5xx | p95 ms | 5xx < 1 % after (s) "
        "| p95 ≤ 3× after (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in results:
        changed = f.per_s_after is not None
        after = (
            f"{f.per_s_after:.0f} | {_pct(f.share_after)} | {_pct(f.errors_after)} | "
            f"{_ms(f.p95_ms_after)}"
            if changed
            else "— | — | — | —"
        )
        lines.append(
            f"| {f.scenario} | {f.policy} | {f.per_s:.0f} | {_pct(f.share)} | {_pct(f.errors)} "
            f"| {f.p50_ms:.0f} | {_ms(f.p95_ms)} | {after} | {_s(f.errors_back_s, changed)} "
            f"| {_s(f.latency_back_s, changed)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each run")
    parser.add_argument("--quick", action="store_true", help="20-second runs")
    parser.add_argument("--only", default="capacity,limit", help="capacity, limit")
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    seconds = 20.0 if args.quick else args.seconds
    parts = set(args.only.split(","))
    policies = [p.strip() for p in args.policies.split(",")]
    rows = int(CAPACITY * seconds * 1.3) + 1000
    results: list[Figures] = []
    runs = [
        (part, policy) for part in ("capacity", "limit") if part in parts for policy in policies
    ]
    for part, policy in runs:
        print(f"{part}: {policy} ...", file=sys.stderr, flush=True)
        if part == "capacity":
            results.append(capacity_run(policy, seconds, rows))
        else:
            results.append(limit_run(policy, seconds * 2 / 3, rows))
        print(table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    print(
        f"{datetime.date.today()}, {platform.python_version()}, {os.cpu_count()} cores, "
        f"{seconds:.0f}-s runs (limit_req: {seconds * 2 / 3:.0f} s)"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
