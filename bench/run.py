"""The performance benchmarks of bulkimport, in one command that prints a table.

    python bench/run.py --quick            # a smoke run, under a minute
    python bench/run.py                    # the full run: 1 M rows, 3 runs each (minutes)
    python bench/run.py --huge             # also 5 M rows in the growth table
    python bench/run.py --only read,send --runs 5
    python bench/run.py --only pg          # PostgreSQL beside SQLite (pg-read,pg-send,pg-runners)

Sections (``--only``): ``read`` (``bulkimport stage`` against ``sqlite3 .import``,
``sqlite-utils insert --csv`` and plain csv + executemany), ``send`` (``bulkimport resume``
with no rate limit against a bare aiohttp loop and a sequential ``requests`` loop, to the
minimal endpoint and to the sandbox), ``growth`` (time and peak RSS of ``stage`` for 100 k,
1 M and with ``--huge`` 5 M rows), ``resume`` (from ``resume`` of a 1 M-row job with 99 %
done to its first call, seen by the server), ``fatal`` (``run`` of the 1 M-row file with a
wrong password, a wrong campaign and a dead URL: the time until it stops, and the database
left behind) and ``rate`` (``--rate 500`` for 30 s: the achieved rate, the busiest 1-second
window seen by the server, and the client's CPU per 1,000 rows).

PostgreSQL sections (``--only pg`` for the three; a throwaway cluster, ``bench/pg_cluster.py``,
needs PostgreSQL's server binaries): ``pg-read`` (``bulkimport stage --db postgresql://…``
against ``psql \\copy`` of the same file into a plain table on the same cluster, and ``stage``
into SQLite in the same run), ``pg-send`` (``resume`` of ``--send-rows`` rows from
PostgreSQL and from SQLite against the bare aiohttp loop, to the minimal endpoint) and
``pg-runners`` (``resume JOB`` by one runner, then by two at once on the same job: their
speed, and whether the second was refused with ``RunnerBusy``, exit 75).

Every program measured runs as its own process (servers too); its wall time and peak RSS
come from ``os.wait4``. Within a run the programs compared run one after the other on the
same files, and each figure is the median over ``--runs`` runs; ratios are taken within each
run, then their median. Lead files are generated into ``bench/data/`` (gitignored) by
``bench/generate.py`` and reused; databases go in a temporary directory. ``--product DIR``
puts DIR first on the children's ``PYTHONPATH`` (to measure another checkout of the package,
e.g. a prototype of a fix). The results also go to ``bench/results/<date>.json``.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from generate import HEADER, data_file  # noqa: E402
from pg_cluster import Cluster  # noqa: E402
from pg_cluster import cluster as pg_cluster  # noqa: E402

PY = sys.executable
NEUTRAL_CWD = tempfile.gettempdir()
PASSWORD = "secret"
TARGET_OPTIONS = ["--org", "demo", "--user", "admin", "--campaign", "1"]
CONCURRENCY = 8
#: Baselines that take minutes: run in the first --slow-runs runs only.
SLOW = {"sqlite-utils insert --csv", "sequential requests"}
#: The PostgreSQL sections (``--only pg`` for all three): each starts a throwaway cluster.
PG_SECTIONS = ["pg-read", "pg-send", "pg-runners"]


# --- processes -------------------------------------------------------------------------------


@dataclass
class Measured:
    """One finished child process."""

    argv: list[str]
    seconds: float  # wall time, from just before the fork to the end of the wait
    rss_mb: float  # peak resident set size (ru_maxrss)
    cpu_s: float  # user + system
    returncode: int
    stdout: str
    stderr: str
    started_at: float  # time.time() just before the fork

    def json(self) -> Any:
        return json.loads(self.stdout.strip().splitlines()[-1])


def child_env(product: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env["BULKIMPORT_PASSWORD"] = PASSWORD
    env.pop("BULKIMPORT_DB", None)
    env.pop("BULKIMPORT_CONFIG", None)
    if product is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(product), env.get("PYTHONPATH")]))
    return env


def compile_product(env: dict[str, str]) -> str:
    """Compile the measured package to bytecode, as installing a wheel does; its directory.

    Where ``PYTHONDONTWRITEBYTECODE`` is set (some CI images set it) an editable checkout
    has no ``.pyc`` files, and every command would compile ~8,000 lines before its first
    call: ~0.25 s that an installed bulkimport never pays.
    """
    done = subprocess.run(
        [PY, "-c", "import bulkimport, compileall, os, sys;"
         " d = os.path.dirname(bulkimport.__file__); ok = compileall.compile_dir(d, quiet=1);"
         " print(d); sys.exit(0 if ok else 1)"],
        env=env, cwd=NEUTRAL_CWD, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def ended(
    argv: list[str], started_at: float, seconds: float, status: int, usage: Any, out: Any, err: Any
) -> Measured:
    """The figures of a process that ended with ``status`` (``os.wait4``'s), its output in
    the files ``out`` and ``err``."""
    out.seek(0)
    err.seek(0)
    return Measured(
        argv,
        seconds,
        usage.ru_maxrss / 1024,
        usage.ru_utime + usage.ru_stime,
        os.waitstatus_to_exitcode(status),
        out.read().decode("utf-8", "replace"),
        err.read().decode("utf-8", "replace"),
        started_at,
    )


def measure(argv: list[str], env: dict[str, str], *, check: bool = True) -> Measured:
    """Run ``argv`` to its end; wall time and peak RSS of that process alone."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started_at = time.time()
        started = time.perf_counter()
        # cwd: a directory without a `bulkimport` package, so that `python -m bulkimport`
        # imports the one on PYTHONPATH (--product) or installed, not ./bulkimport.
        proc = subprocess.Popen(
            argv, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL, cwd=NEUTRAL_CWD
        )
        _, status, usage = os.wait4(proc.pid, 0)
        result = ended(argv, started_at, time.perf_counter() - started, status, usage, out, err)
        proc.returncode = result.returncode
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited with {result.returncode}:\n{result.stderr[-2000:]}"
        )
    return result


def measure_together(argvs: list[list[str]], env: dict[str, str]) -> list[Measured]:
    """Start every ``argv`` at once and wait for all of them; each one's wall time (from its
    own start) and peak RSS. No check of exit codes: the caller reads them."""
    with contextlib.ExitStack() as files:
        started = []
        for argv in argvs:
            out = files.enter_context(tempfile.TemporaryFile())
            err = files.enter_context(tempfile.TemporaryFile())
            started_at, began = time.time(), time.perf_counter()
            proc = subprocess.Popen(
                argv, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL, cwd=NEUTRAL_CWD
            )
            started.append((argv, proc, out, err, started_at, began))
        results: list[Measured | None] = [None] * len(started)
        while None in results:  # each one reaped as it ends (within 5 ms), in any order
            for place, (argv, proc, out, err, started_at, began) in enumerate(started):
                if results[place] is not None:
                    continue
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if not pid:
                    continue
                seconds = time.perf_counter() - began
                result = ended(argv, started_at, seconds, status, usage, out, err)
                results[place] = result
                proc.returncode = result.returncode
            time.sleep(0.005)
    return [result for result in results if result is not None]


class Server:
    """A server in its own process, that prints its URL as the last word of its first line."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
            cwd=NEUTRAL_CWD,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{' '.join(argv)} did not start")
        self.url = line.strip().rsplit(" ", 1)[-1]
        self.base = self.url.rsplit("/", 1)[0]
        self.rss_mb = 0.0

    def arrivals(self) -> list[float]:
        with urllib.request.urlopen(f"{self.base}/bench/arrivals") as response:
            return list(json.load(response)["times"])

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.base}/bench/reset", method="POST"))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; its peak RSS is kept in ``rss_mb``."""
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while True:
            pid, _, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.rss_mb = usage.ru_maxrss / 1024
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                deadline = float("inf")
            time.sleep(0.02)
        self.proc.returncode = 0

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def minimal_endpoint(env: dict[str, str]) -> Server:
    return Server([PY, str(BENCH / "minimal_endpoint.py"), "--record"], env)


def sandbox(env: dict[str, str], db: Path) -> Server:
    return Server([PY, "-m", "bulkimport", "sandbox", "--port", "0", "--db", str(db)], env)


def bulkimport(*args: str) -> list[str]:
    return [PY, "-m", "bulkimport", *args]


def stage_argv(csv_path: Path, db: Path | str, url: str = "http://127.0.0.1:9/asterccinterfaces"):
    return bulkimport("stage", str(csv_path), "--quiet", "--db", str(db), "--url", url,
                      *TARGET_OPTIONS)  # fmt: skip


def resume_argv(
    db: Path | str, url: str, rate: float = 0, concurrency: int = CONCURRENCY
) -> list[str]:
    # GET, as the baselines send: the figures compare the same requests.
    return bulkimport(
        "resume", "--quiet", "--db", str(db), "--url", url, "--rate", str(rate),
        "--concurrency", str(concurrency), "--method", "get",
    )  # fmt: skip


def fresh_db(directory: Path, name: str) -> Path:
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{directory / name}{suffix}").unlink(missing_ok=True)
    return directory / name


def copy_db(source: Path, target: Path) -> Path:
    fresh_db(target.parent, target.name)
    shutil.copyfile(source, target)
    return target


def job_rows(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT state, n FROM job_counts WHERE n > 0").fetchall())


def dump_records(db: Path, path: Path) -> int:
    """The records of the staged job, in id order, one JSON string per line."""
    conn = sqlite3.connect(db)
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for (record,) in conn.execute(
            "SELECT record FROM rows WHERE record IS NOT NULL ORDER BY id"
        ):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    conn.close()
    return count


# --- statistics ------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(cell) for cell in cells])

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds < 10 else f"{seconds:.1f}"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- sections --------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.env = child_env(args.product)
        self.tables: list[Table] = []
        self.results: dict[str, Any] = {}
        self.targets: list[tuple[str, str, bool | None]] = []  # (target, measured, met)
        self.staged_1m: Path | None = None  # a staged db of --rows rows, kept for resume
        self._stack = contextlib.ExitStack()
        self._pg: Cluster | None = None
        self._pg_templates: set[str] = set()

    def run_many(self, label: str, make: Any) -> list[Any]:
        out = []
        for index in range(self.args.runs):
            say(f"  {label}: run {index + 1}/{self.args.runs}")
            out.append(make(index))
        return out

    # ---------------------------------------------------------------------------- read

    def read(self) -> None:
        rows = self.args.rows
        csv_path = data_file(rows)
        say(f"read: {rows:,} rows from {csv_path} ({csv_path.stat().st_size / 1e6:.0f} MB)")
        programs = {
            "sqlite3 .import": lambda db: [
                "sqlite3", str(db), ".mode csv", f".import {csv_path} leads"
            ],
            "python csv + executemany": lambda db: [
                PY, str(BENCH / "clients.py"), "csv-executemany", "--csv", str(csv_path),
                "--db", str(db),
            ],
            "bulkimport stage": lambda db: stage_argv(csv_path, db),
            "sqlite-utils insert --csv": lambda db: [
                str(Path(PY).with_name("sqlite-utils")), "insert", str(db), "leads",
                str(csv_path), "--csv",
            ],
        }  # fmt: skip
        if self.args.skip_sqlite_utils:
            del programs["sqlite-utils insert --csv"]
        per_run: dict[str, list[Measured]] = {name: [] for name in programs}
        sizes: dict[str, int] = {}

        def one(index: int) -> None:
            for name, argv in programs.items():
                if name in SLOW and index >= self.args.slow_runs:
                    continue
                db = fresh_db(self.work, f"read-{name.split()[0]}.db")
                result = measure(argv(db), self.env)
                per_run[name].append(result)
                sizes[name] = sum(
                    p.stat().st_size for p in self.work.glob(db.name + "*") if p.is_file()
                )
                say(f"    {name}: {result.seconds:.2f} s, {result.rss_mb:.0f} MB")
                if name == "bulkimport stage":
                    counts = job_rows(db)
                    if sum(counts.values()) != rows:
                        raise RuntimeError(f"stage stored {counts}, expected {rows} rows")
                    if index == self.args.runs - 1:
                        self.staged_1m = copy_db(db, self.work / "staged-big.db")

        self.run_many("read", one)
        base = per_run["sqlite3 .import"]
        table = Table(
            f"Reading {rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB CSV) into SQLite",
            ["program", "runs", "seconds", "rows/s", "× sqlite3 .import", "peak RSS MB", "db MB"],
        )
        summary = {}
        for name, results in per_run.items():
            seconds = median([r.seconds for r in results])
            ratio = median([r.seconds / b.seconds for r, b in zip(results, base, strict=False)])
            rss = median([r.rss_mb for r in results])
            table.add(
                name, len(results), fmt_s(seconds), f"{rows / seconds:,.0f}", f"{ratio:.2f}",
                f"{rss:.0f}",
                f"{sizes[name] / 1e6:.0f}",
            )  # fmt: skip
            summary[name] = {"seconds": seconds, "ratio": ratio, "rss_mb": rss,
                             "runs": [r.seconds for r in results]}  # fmt: skip
        ratio = summary["bulkimport stage"]["ratio"]
        self.targets.append(("reading ≤ 2× sqlite3 .import", f"{ratio:.2f}×", ratio <= 2.0))
        table.notes.append(
            "bulkimport stores more than the others: per row its state, line and encoded "
            "record, its original cells where the record cannot give them back (invalid rows, "
            "--set, dropped columns), with the partial pending index, in WAL mode."
        )
        self.results["read"] = summary
        self.results["growth_stage"] = {rows: summary["bulkimport stage"]}
        self.tables.append(table)

    # ---------------------------------------------------------------------------- send

    def _staged(self, rows: int, name: str) -> tuple[Path, Path]:
        """A staged db of ``rows`` rows and the file of its records, made once."""
        db = self.work / f"{name}.db"
        records = self.work / f"{name}.jsonl"
        if not db.exists():
            measure(stage_argv(data_file(rows), fresh_db(self.work, db.name)), self.env)
            dump_records(db, records)
        return db, records

    def send(self) -> None:
        self.results["send"] = {}
        for concurrency in self.args.concurrency:
            self._send_at(concurrency)

    def _send_at(self, concurrency: int) -> None:
        rows = self.args.send_rows
        template, records = self._staged(rows, f"send-{rows}")
        with open(records, encoding="utf-8") as handle:
            valid = sum(1 for _ in handle)
        say(f"send: {valid:,} rows, concurrency {concurrency}")
        clients = [PY, str(BENCH / "clients.py")]
        summary: dict[str, Any] = {}
        table = Table(
            f"Sending {valid:,} rows, no rate limit, concurrency {concurrency}, keep-alive, GET",
            ["server", "client", "runs", "seconds", "rows/s", "× bare aiohttp",
             "steady rows/s (server side)", "steady × bare aiohttp", "peak RSS MB", "CPU s"],
        )  # fmt: skip
        servers = ["minimal endpoint"] + ([] if self.args.skip_sandbox else ["sandbox"])
        for server_name in servers:
            per_run: dict[str, list[Measured]] = {}
            steady: dict[str, list[float]] = {}

            def one(
                index: int,
                server_name: str = server_name,
                per_run: dict[str, list[Measured]] = per_run,
                steady: dict[str, list[float]] = steady,
            ) -> None:
                names = ["bulkimport resume", "bare aiohttp loop"]
                if index < self.args.slow_runs and (
                    server_name == "minimal endpoint" or self.args.sandbox_requests
                ):
                    names.append("sequential requests")
                if index % 2:
                    names.reverse()  # alternate the order from run to run
                for name in names:
                    # A fresh server for each client: the sandbox sees every record as new.
                    if server_name == "minimal endpoint":
                        server = minimal_endpoint(self.env)
                    else:
                        server = sandbox(self.env, fresh_db(self.work, "sandbox.db"))
                    with server:
                        if name == "bulkimport resume":
                            db = copy_db(template, self.work / "send-run.db")
                            argv = resume_argv(db, server.url, concurrency=concurrency)
                        elif name == "bare aiohttp loop":
                            argv = [*clients, "aiohttp", "--url", server.url, "--records",
                                    str(records), "--concurrency", str(concurrency)]  # fmt: skip
                        else:
                            argv = [*clients, "requests", "--url", server.url,
                                    "--records", str(records)]  # fmt: skip
                        result = measure(argv, self.env)
                        per_run.setdefault(name, []).append(result)
                        if server_name == "minimal endpoint":
                            times = sorted(server.arrivals())
                            if len(times) != valid:
                                raise RuntimeError(f"{name}: {len(times)} calls for {valid} rows")
                            # The steady rate, first call to last, without start-up and exit.
                            steady.setdefault(name, []).append(
                                (len(times) - 1) / (times[-1] - times[0])
                            )
                        elif name == "bulkimport resume":
                            counts = job_rows(db)
                            if counts.get("done", 0) != valid:
                                raise RuntimeError(f"{name}: {counts} for {valid} rows")
                    say(f"    {server_name} / {name}: {result.seconds:.2f} s")

            self.run_many(f"send to {server_name}", one)
            base = per_run["bare aiohttp loop"]
            for name, results in per_run.items():
                seconds = median([r.seconds for r in results])
                ratio = median([b.seconds / r.seconds for r, b in zip(results, base, strict=False)])
                if name in steady:
                    rate = median(steady[name])
                    base_rates = steady["bare aiohttp loop"]
                    steady_ratio = median(
                        [r / b for r, b in zip(steady[name], base_rates, strict=False)]
                    )
                    steady_cells = [f"{rate:,.0f}", f"{steady_ratio:.2f}"]
                else:
                    rate = steady_ratio = float("nan")
                    steady_cells = ["", ""]
                table.add(
                    server_name, name, len(results), fmt_s(seconds), f"{valid / seconds:,.0f}",
                    f"{ratio:.2f}", *steady_cells, f"{median([r.rss_mb for r in results]):.0f}",
                    fmt_s(median([r.cpu_s for r in results])),
                )  # fmt: skip
                inner = [r.json()["seconds"] for r in results if name != "bulkimport resume"]
                summary[f"{server_name} / {name}"] = {
                    "seconds": seconds, "ratio": ratio, "rows_per_s": valid / seconds,
                    "runs": [r.seconds for r in results],
                    "inner_seconds": median(inner) if inner else None,
                    "steady_rows_per_s": rate, "steady_ratio": steady_ratio,
                }  # fmt: skip
            if server_name == "minimal endpoint":
                ours = summary["minimal endpoint / bulkimport resume"]
                ratio, steady_ratio = ours["ratio"], ours["steady_ratio"]
                self.targets.append(
                    (f"sending ≥ 1.0× bare aiohttp at concurrency {concurrency} "
                     "(minimal endpoint)",
                     f"{ratio:.2f}× whole process, {steady_ratio:.2f}× steady",
                     ratio >= 1.0)
                )  # fmt: skip
        table.notes.append(
            "Steady: (calls − 1) / (last arrival − first arrival) at the minimal endpoint. "
            "Times are whole processes (interpreter start, imports and, for bulkimport, opening "
            "the queue and recording every outcome); the baselines read their requests from a "
            "file before they start."
        )
        self.results["send"][concurrency] = summary
        self.tables.append(table)

    # -------------------------------------------------------------------------- growth

    def growth(self) -> None:
        sizes = [100_000, 1_000_000] + ([5_000_000] if self.args.huge else [])
        if self.args.quick:
            sizes = [20_000, self.args.rows]
        known = self.results.get("growth_stage", {})
        table = Table(
            "Growth: `bulkimport stage` by file size",
            ["rows", "runs", "seconds", "µs/row", "peak RSS MB"],
        )
        summary = {}
        for rows in sizes:
            if rows in known:
                seconds, rss, runs = known[rows]["seconds"], known[rows]["rss_mb"], self.args.runs
            else:
                csv_path = data_file(rows)
                runs = 1 if rows >= 5_000_000 else self.args.runs
                say(f"growth: {rows:,} rows, {runs} runs")
                results = [
                    measure(stage_argv(csv_path, fresh_db(self.work, "growth.db")), self.env)
                    for _ in range(runs)
                ]
                seconds = median([r.seconds for r in results])
                rss = median([r.rss_mb for r in results])
                fresh_db(self.work, "growth.db")
            per_row = f"{seconds / rows * 1e6:.1f}"
            table.add(f"{rows:,}", runs, fmt_s(seconds), per_row, f"{rss:.0f}")
            summary[rows] = {"seconds": seconds, "rss_mb": rss}
        rss_values = [v["rss_mb"] for v in summary.values()]
        biggest = max(summary)
        self.targets.append(
            (f"peak RSS < 100 MB at {biggest:,} rows, flat",
             " / ".join(f"{v:.0f}" for v in rss_values) + " MB",
             summary[biggest]["rss_mb"] < 100 and max(rss_values) - min(rss_values) < 20)
        )  # fmt: skip
        self.results["growth"] = summary
        self.tables.append(table)

    # -------------------------------------------------------------------------- resume

    def resume(self) -> None:
        rows = self.args.rows
        source = self.staged_1m
        if source is None or not source.exists():
            source = self.work / "staged-big.db"
            say(f"resume: staging {rows:,} rows")
            measure(stage_argv(data_file(rows), fresh_db(self.work, source.name)), self.env)
        template = self.work / "resume-template.db"
        copy_db(source, template)
        with sqlite3.connect(template) as conn:
            (first, total) = conn.execute("SELECT MIN(id), COUNT(*) FROM rows").fetchone()
            done = total - total // 100
            conn.execute(
                "UPDATE rows SET state = 'done', attempts = 1 WHERE id < ? AND state = 'pending'",
                (first + done,),
            )
            # Written behind the queue's back: its per-state counters are recounted too.
            conn.execute(
                "UPDATE job_counts SET n = (SELECT COUNT(*) FROM rows"
                " WHERE rows.job_id = job_counts.job_id AND rows.state = job_counts.state)"
            )
            conn.execute("UPDATE jobs SET state = 'interrupted', message = 'interrupted'")
        conn.close()
        remaining = job_rows(template).get("pending", 0)
        say(f"resume: {rows:,} rows, {remaining:,} pending")
        startup = []
        first_call = []
        totals = []
        rss = []
        with minimal_endpoint(self.env) as server:

            def one(index: int) -> None:
                db = copy_db(template, self.work / "resume-run.db")
                startup.append(measure(bulkimport("--help"), self.env).seconds)
                server.reset()
                result = measure(resume_argv(db, server.url), self.env)
                times = server.arrivals()
                if len(times) != remaining:
                    raise RuntimeError(f"resume sent {len(times)} calls for {remaining} rows")
                first_call.append(min(times) - result.started_at)
                totals.append(result.seconds)
                rss.append(result.rss_mb)
                say(f"    first call after {first_call[-1]:.2f} s")

            self.run_many("resume", one)
        table = Table(
            f"Resume: a {rows:,}-row job with 99 % done ({remaining:,} rows pending)",
            ["measure", "seconds"],
        )
        table.add("`resume` started → first call reaches the server", fmt_s(median(first_call)))
        table.add("`bulkimport --help` (interpreter + imports, the floor)", fmt_s(median(startup)))
        table.add(f"whole `resume` ({remaining:,} calls)", fmt_s(median(totals)))
        table.notes.append(f"peak RSS of that resume: {median(rss):.0f} MB")
        self.targets.append(
            ("resume sends within 1 s", f"{median(first_call):.2f} s", median(first_call) < 1.0)
        )
        self.results["resume"] = {
            "first_call_s": median(first_call), "startup_s": median(startup),
            "total_s": median(totals), "rss_mb": median(rss), "runs": first_call,
        }  # fmt: skip
        self.tables.append(table)

    # --------------------------------------------------------------------------- fatal

    def fatal(self) -> None:
        """``run`` of the big file where the job cannot go: how soon the user knows."""
        rows = self.args.rows
        csv_path = data_file(rows)
        size_mb = csv_path.stat().st_size / 1e6
        say(f"fatal: run of {rows:,} rows ({size_mb:.0f} MB) that the server refuses")
        cases = {
            "wrong password": (["--campaign", "1"], {"BULKIMPORT_PASSWORD": "wrong"}),
            "wrong campaign": (["--campaign", "999"], {}),
            "dead URL (nothing listens)": (["--campaign", "1"], {}),
        }
        table = Table(
            f"A job that cannot go: `run` of {rows:,} rows ({size_mb:.0f} MB), until it stops",
            ["case", "runs", "exit", "seconds to the stop", "rows read", "db MB"],
        )
        summary: dict[str, Any] = {}
        with sandbox(self.env, fresh_db(self.work, "fatal-sandbox.db")) as server:
            for case, (options, env_change) in cases.items():
                url = "http://127.0.0.1:9/asterccinterfaces" if "dead" in case else server.url
                results, read, sizes = [], [], []

                def one(
                    index: int,
                    case: str = case,
                    options: list[str] = options,
                    env_change: dict[str, str] = env_change,
                    url: str = url,
                    results: list[Measured] = results,
                    read: list[int] = read,
                    sizes: list[float] = sizes,
                ) -> None:
                    db = fresh_db(self.work, "fatal.db")
                    argv = bulkimport(
                        "run", str(csv_path), "--quiet", "--db", str(db), "--url", url,
                        "--org", "demo", "--user", "admin", *options,
                        "--concurrency", str(CONCURRENCY),
                    )  # fmt: skip
                    result = measure(argv, {**self.env, **env_change}, check=False)
                    if result.returncode != 3:
                        raise RuntimeError(f"{case}: exit {result.returncode}: {result.stderr}")
                    results.append(result)
                    with sqlite3.connect(db) as conn:
                        read.append(conn.execute("SELECT total_rows FROM jobs").fetchone()[0])
                    conn.close()
                    sizes.append(sum(p.stat().st_size for p in self.work.glob("fatal.db*")) / 1e6)
                    say(f"    {case}: exit 3 after {result.seconds:.2f} s, {read[-1]:,} rows read")

                self.run_many(f"fatal / {case}", one)
                seconds = median([r.seconds for r in results])
                table.add(
                    case, len(results), 3, fmt_s(seconds), f"{median(read):,.0f}",
                    f"{median(sizes):.1f}",
                )  # fmt: skip
                summary[case] = {
                    "seconds": seconds, "runs": [r.seconds for r in results],
                    "rows_read": median(read), "db_mb": median(sizes),
                }  # fmt: skip
        worst = max(v["seconds"] for v in summary.values())
        self.targets.append(
            (f"a refused job known within 2 s of a {rows:,}-row run", f"{worst:.2f} s (worst)",
             worst <= 2.0)
        )  # fmt: skip
        table.notes.append(
            "Whole processes, interpreter start included; sending starts with the first batch "
            "of 5,000 rows read, and reading stops with sending."
        )
        self.results["fatal"] = summary
        self.tables.append(table)

    # ---------------------------------------------------------------------------- rate

    def rate(self) -> None:
        rate, duration = self.args.rate, self.args.rate_seconds
        rows = int(rate * duration) + 1
        template, records = self._staged(rows, f"rate-{rows}")
        say(f"rate: --rate {rate:g} for {duration:g} s ({rows:,} rows)")
        achieved, sliding, aligned, overall, cpu, bare_cpu = [], [], [], [], [], []
        with minimal_endpoint(self.env) as server:

            def one(index: int) -> None:
                db = copy_db(template, self.work / "rate-run.db")
                server.reset()
                result = measure(resume_argv(db, server.url, rate), self.env)
                times = sorted(server.arrivals())
                # The client's CPU per 1,000 rows at a steady pace, start-up included.
                cpu.append(result.cpu_s / len(times) * 1000)
                # The loop a user would write, at the same pace, for the same calls.
                bare = measure(
                    [PY, str(BENCH / "clients.py"), "aiohttp", "--url", server.url,
                     "--records", str(records), "--concurrency", str(CONCURRENCY),
                     "--rate", str(rate)],
                    self.env,
                )  # fmt: skip
                bare_cpu.append(bare.cpu_s / len(times) * 1000)
                server.reset()
                span = times[-1] - times[0]
                achieved.append((len(times) - 1) / span)
                overall.append(len(times) / span)
                # The busiest window [t, t + 1 s) that starts at a call: a sliding window.
                sliding.append(
                    max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
                )
                seconds: dict[int, int] = {}
                for t in times:
                    seconds[int(t)] = seconds.get(int(t), 0) + 1
                aligned.append(max(seconds.values()))
                say(
                    f"    {achieved[-1]:.2f}/s, busiest window {sliding[-1]}, "
                    f"CPU {cpu[-1]:.3f} s per 1,000 rows (bare aiohttp {bare_cpu[-1]:.3f})"
                )

            self.run_many("rate", one)
        table = Table(
            f"Rate accuracy: `--rate {rate:g}` for {duration:g} s, seen by the server",
            ["measure", "value"],
        )
        error = median(achieved) / rate - 1
        table.add("achieved rate (calls − 1) / (last − first)", f"{median(achieved):.2f}/s")
        table.add("error against the setting", f"{error:+.2%}")
        table.add("busiest sliding 1-s window", median(sliding))
        table.add("busiest calendar second", median(aligned))
        table.add("busiest sliding window, worst run", max(sliding))
        table.add("client CPU (user + system) per 1,000 rows", f"{median(cpu):.3f} s")
        table.add("bare aiohttp loop at the same pace, per 1,000 rows", f"{median(bare_cpu):.3f} s")
        cpu_ratio = median([c / b for c, b in zip(cpu, bare_cpu, strict=True)])
        table.add("bulkimport CPU ÷ bare aiohttp CPU", f"{cpu_ratio:.2f}")
        startup = self.results.get("resume", {}).get("startup_s")
        table.notes.append(
            "CPU includes the interpreter's start and imports "
            f"({rows:,} rows in all); the CPU share of one core at this pace is "
            f"{median(cpu) * rate / 1000:.1%}."
            + (f" `bulkimport --help` takes {startup:.2f} s of wall time." if startup else "")
        )
        self.targets.append(
            (f"rate within 2 % of {rate:g}, no 1-s window over it (+1 burst)",
             f"{error:+.2%}, busiest window {max(sliding)}",
             abs(error) <= 0.02 and max(sliding) <= rate + 1)
        )  # fmt: skip
        self.results["rate"] = {
            "achieved": achieved, "sliding_max": sliding, "aligned_max": aligned,
            "cpu_s_per_1000_rows": cpu, "bare_cpu_s_per_1000_rows": bare_cpu,
        }  # fmt: skip
        self.targets.append(
            (f"CPU at --rate {rate:g}: close to a bare aiohttp loop's",
             f"{median(cpu):.3f} s per 1,000 rows, {cpu_ratio:.2f}× bare", cpu_ratio <= 1.3)
        )  # fmt: skip
        self.tables.append(table)

    # ---------------------------------------------------------------------- PostgreSQL

    def pg(self) -> Cluster:
        """The PostgreSQL sections' throwaway cluster: started at first use, stopped by
        ``close``."""
        if self._pg is None:
            say("postgres: starting a throwaway cluster (bench/pg_cluster.py)")
            self._pg = self._stack.enter_context(pg_cluster(fsync=self.args.pg_fsync == "on"))
            self.results["pg_settings"] = self._pg.settings()
        return self._pg

    def close(self) -> None:
        self._stack.close()

    def pg_counts(self, database: str) -> dict[str, int]:
        out = self.pg().psql(database, "SELECT state, n FROM job_counts WHERE n > 0")
        return {state: int(n) for state, n in (line.split("|") for line in out.splitlines())}

    def pg_staged(self, rows: int) -> tuple[str, int]:
        """A database holding a staged job of ``rows`` rows, made once, and the job's id:
        the template each sending run's database is copied from."""
        name = f"bench_staged_{rows}"
        if name not in self._pg_templates:
            pg = self.pg()
            pg.create_database(name)
            measure(stage_argv(data_file(rows), pg.url(name)), self.env)
            if self.pg_counts(name) != {"pending": rows}:
                raise RuntimeError(f"stage into {name}: {self.pg_counts(name)}, not {rows} rows")
            self._pg_templates.add(name)
        return name, int(self.pg().psql(name, "SELECT id FROM jobs"))

    def pg_fresh(self, name: str, template: str | None = None) -> str:
        """A fresh database (a copy of ``template``), and every dirty page written out: the
        program measured next does not pay for the last one's checkpoint."""
        pg = self.pg()
        pg.create_database(name, template=template)
        pg.checkpoint()
        return pg.url(name)

    def pg_read(self) -> None:
        rows = self.args.rows
        csv_path = data_file(rows)
        pg = self.pg()
        say(f"pg-read: {rows:,} rows from {csv_path} ({csv_path.stat().st_size / 1e6:.0f} MB)")
        load = [os.getloadavg()[0]]
        create = "CREATE TABLE leads (" + ", ".join(f'"{c}" text' for c in HEADER) + ")"
        copy_command = f"\\copy leads FROM '{csv_path}' WITH (FORMAT csv, HEADER true)"
        names = ["psql \\copy", "bulkimport stage, PostgreSQL", "bulkimport stage, SQLite"]
        per_run: dict[str, list[Measured]] = {name: [] for name in names}
        table_mb: dict[str, list[float]] = {name: [] for name in names}

        def one(index: int) -> None:
            for name in names if index % 2 == 0 else names[::-1]:
                if name == "psql \\copy":
                    self.pg_fresh("bench_copy")
                    pg.psql("bench_copy", create)
                    result = measure(pg.psql_argv("bench_copy", copy_command), self.env)
                    stored = int(pg.psql("bench_copy", "SELECT count(*) FROM leads"))
                    size = pg.psql("bench_copy", "SELECT pg_total_relation_size('leads')")
                elif name == "bulkimport stage, PostgreSQL":
                    result = measure(stage_argv(csv_path, self.pg_fresh("bench_stage")), self.env)
                    stored = sum(self.pg_counts("bench_stage").values())
                    size = pg.psql(
                        "bench_stage",
                        "SELECT pg_total_relation_size('rows') + pg_total_relation_size('jobs')",
                    )
                else:
                    db = fresh_db(self.work, "pg-read-sqlite.db")
                    result = measure(stage_argv(csv_path, db), self.env)
                    stored = sum(job_rows(db).values())
                    size = str(sum(p.stat().st_size for p in self.work.glob(db.name + "*")))
                if stored != rows:
                    raise RuntimeError(f"{name} stored {stored:,} rows, expected {rows:,}")
                per_run[name].append(result)
                table_mb[name].append(int(size) / 1e6)
                say(f"    {name}: {result.seconds:.2f} s, {result.rss_mb:.0f} MB")
            load.append(os.getloadavg()[0])

        self.run_many("pg-read", one)
        base = per_run["psql \\copy"]
        sqlite = per_run["bulkimport stage, SQLite"]
        table = Table(
            f"Reading {rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB CSV) into "
            "PostgreSQL, beside SQLite",
            ["program", "runs", "seconds", "rows/s", "× psql \\copy", "× stage into SQLite",
             "client peak RSS MB", "table MB"],
        )  # fmt: skip
        summary = {}
        for name, results in per_run.items():
            seconds = median([r.seconds for r in results])
            ratio = median([r.seconds / b.seconds for r, b in zip(results, base, strict=True)])
            to_sqlite = median(
                [r.seconds / b.seconds for r, b in zip(results, sqlite, strict=True)]
            )
            rss = median([r.rss_mb for r in results])
            table.add(
                name, len(results), fmt_s(seconds), f"{rows / seconds:,.0f}", f"{ratio:.2f}",
                f"{to_sqlite:.2f}", f"{rss:.0f}", f"{median(table_mb[name]):.0f}",
            )  # fmt: skip
            summary[name] = {"seconds": seconds, "ratio": ratio, "to_sqlite": to_sqlite,
                             "rss_mb": rss, "runs": [r.seconds for r in results]}  # fmt: skip
        ratio = summary["bulkimport stage, PostgreSQL"]["ratio"]
        self.targets.append(("reading into PostgreSQL ≤ 2× psql \\copy", f"{ratio:.2f}×",
                             ratio <= 2.0))  # fmt: skip
        table.notes += [
            f"`{copy_command}` into a table of the file's {len(HEADER)} columns as text, on the"
            " same cluster; bulkimport stores per row its job, line, state, record and cells"
            " (`bytea[]`), with four indexes. Both databases are new in each run (bulkimport's"
            " schema is made by its first open, inside its time); a `CHECKPOINT` before each"
            " program. Peak RSS is the client process's (psql, bulkimport), not the server's.",
            self.pg_settings_note(),
            "Load average (1 min) before and after each run: "
            + ", ".join(f"{value:.2f}" for value in load) + ".",
        ]  # fmt: skip
        self.results["pg_read"] = summary | {"load": load}
        self.tables.append(table)

    def pg_settings_note(self) -> str:
        settings = self.results.get("pg_settings", {})
        return "PostgreSQL " + settings.get("server_version", "?") + ", a throwaway cluster on "\
            "a Unix socket, default settings but " + ", ".join(
                f"{name} {settings[name]}" for name in ("fsync", "synchronous_commit",
                                                        "shared_buffers") if name in settings
            ) + " (shared_buffers in 8 kB pages)."  # fmt: skip

    def pg_send(self) -> None:
        rows = self.args.send_rows
        template, records = self._staged(rows, f"send-{rows}")
        with open(records, encoding="utf-8") as handle:
            valid = sum(1 for _ in handle)
        pg_template, _ = self.pg_staged(rows)
        clients = [PY, str(BENCH / "clients.py")]
        self.results["pg_send"] = {}
        names = ["bulkimport resume, PostgreSQL", "bulkimport resume, SQLite", "bare aiohttp loop"]
        for concurrency in self.args.concurrency:
            say(f"pg-send: {valid:,} rows, concurrency {concurrency}")
            load = [os.getloadavg()[0]]
            per_run: dict[str, list[Measured]] = {name: [] for name in names}
            steady: dict[str, list[float]] = {name: [] for name in names}

            def one(
                index: int,
                concurrency: int = concurrency,
                per_run: dict[str, list[Measured]] = per_run,
                steady: dict[str, list[float]] = steady,
                load: list[float] = load,
            ) -> None:
                for name in names if index % 2 == 0 else names[::-1]:
                    with minimal_endpoint(self.env) as server:
                        if name == "bulkimport resume, PostgreSQL":
                            url = self.pg_fresh("bench_send", pg_template)
                            argv = resume_argv(url, server.url, concurrency=concurrency)
                        elif name == "bulkimport resume, SQLite":
                            db = copy_db(template, self.work / "pg-send-sqlite.db")
                            argv = resume_argv(db, server.url, concurrency=concurrency)
                        else:
                            argv = [*clients, "aiohttp", "--url", server.url, "--records",
                                    str(records), "--concurrency", str(concurrency)]  # fmt: skip
                        result = measure(argv, self.env)
                        times = sorted(server.arrivals())
                    if len(times) != valid:
                        raise RuntimeError(f"{name}: {len(times)} calls for {valid} rows")
                    if name.endswith("PostgreSQL"):
                        counts = self.pg_counts("bench_send")
                    elif name.endswith("SQLite"):
                        counts = job_rows(db)
                    else:
                        counts = {"done": valid}
                    if counts.get("done", 0) != valid:
                        raise RuntimeError(f"{name}: {counts} for {valid} rows")
                    per_run[name].append(result)
                    steady[name].append((len(times) - 1) / (times[-1] - times[0]))
                    say(f"    {name}: {result.seconds:.2f} s, steady {steady[name][-1]:,.0f}/s")
                load.append(os.getloadavg()[0])

            self.run_many(f"pg-send at {concurrency}", one)
            table = Table(
                f"Sending {valid:,} rows from one runner, PostgreSQL beside SQLite: no rate "
                f"limit, concurrency {concurrency}, keep-alive GET, minimal endpoint",
                ["client", "runs", "seconds", "rows/s", "× bare aiohttp", "× SQLite",
                 "steady rows/s (server side)", "steady × SQLite", "peak RSS MB", "CPU s"],
            )  # fmt: skip
            bare = per_run["bare aiohttp loop"]
            sqlite = per_run["bulkimport resume, SQLite"]
            summary: dict[str, Any] = {}
            for name, results in per_run.items():
                seconds = median([r.seconds for r in results])
                to_bare = median(
                    [b.seconds / r.seconds for r, b in zip(results, bare, strict=True)]
                )
                to_sqlite = median(
                    [b.seconds / r.seconds for r, b in zip(results, sqlite, strict=True)]
                )
                sqlite_steady = steady["bulkimport resume, SQLite"]
                steady_to_sqlite = median(
                    [r / b for r, b in zip(steady[name], sqlite_steady, strict=True)]
                )
                table.add(
                    name, len(results), fmt_s(seconds), f"{valid / seconds:,.0f}",
                    f"{to_bare:.2f}", f"{to_sqlite:.2f}", f"{median(steady[name]):,.0f}",
                    f"{steady_to_sqlite:.2f}", f"{median([r.rss_mb for r in results]):.0f}",
                    fmt_s(median([r.cpu_s for r in results])),
                )  # fmt: skip
                summary[name] = {
                    "seconds": seconds, "to_bare": to_bare, "to_sqlite": to_sqlite,
                    "steady_rows_per_s": median(steady[name]),
                    "steady_to_sqlite": steady_to_sqlite, "runs": [r.seconds for r in results],
                }  # fmt: skip
            ours = summary["bulkimport resume, PostgreSQL"]
            self.targets.append(
                (f"sending from PostgreSQL ≥ 0.9× SQLite at concurrency {concurrency}",
                 f"{ours['to_sqlite']:.2f}× whole process, {ours['steady_to_sqlite']:.2f}× steady",
                 ours["to_sqlite"] >= 0.9)
            )  # fmt: skip
            table.notes += [
                "× bare aiohttp and × SQLite: rows/s over theirs, taken within each run. Each"
                " client sends to a minimal endpoint of its own; each bulkimport starts from a"
                " copy of the same staged job (PostgreSQL: `CREATE DATABASE … TEMPLATE`, then a"
                " `CHECKPOINT`). Steady: (calls − 1) / (last arrival − first arrival).",
                "Load average (1 min) before and after each run: "
                + ", ".join(f"{value:.2f}" for value in load) + ".",
            ]  # fmt: skip
            self.results["pg_send"][concurrency] = summary | {"load": load}
            self.tables.append(table)

    def pg_runners(self) -> None:
        rows = self.args.send_rows
        concurrency = self.args.concurrency[0]
        template, job_id = self.pg_staged(rows)
        say(f"pg-runners: {rows:,} rows of job {job_id}, one runner, then two at once")
        load = [os.getloadavg()[0]]
        wall: dict[int, list[float]] = {1: [], 2: []}
        steady: dict[int, list[float]] = {1: [], 2: []}
        calls: dict[int, list[int]] = {1: [], 2: []}
        exits: dict[int, list[str]] = {1: [], 2: []}
        refusals: list[str] = []

        def one(index: int) -> None:
            for runners in (1, 2) if index % 2 == 0 else (2, 1):
                with minimal_endpoint(self.env) as server:
                    url = self.pg_fresh("bench_runners", template)
                    # Not --quiet: a runner refused says why (under --quiet, exit 75 is silent).
                    command = [a for a in resume_argv(url, server.url, concurrency=concurrency)
                               if a != "--quiet"]  # fmt: skip
                    results = measure_together([[*command, str(job_id)]] * runners, self.env)
                    times = sorted(server.arrivals())
                seconds = max(r.started_at + r.seconds for r in results) - min(
                    r.started_at for r in results
                )
                for result in results:
                    if result.returncode == 75:
                        said = (result.stdout + result.stderr).strip().splitlines()
                        refusals.append(said[-1] if said else "(nothing said)")
                    elif result.returncode != 0:
                        raise RuntimeError(
                            f"resume exited with {result.returncode}:\n{result.stderr[-2000:]}"
                        )
                counts = self.pg_counts("bench_runners")
                if counts.get("done", 0) != rows:
                    raise RuntimeError(f"{runners} runner(s): {counts} for {rows} rows")
                wall[runners].append(seconds)
                steady[runners].append((len(times) - 1) / (times[-1] - times[0]))
                calls[runners].append(len(times))
                exits[runners].append("+".join(str(r.returncode) for r in results))
                say(f"    {runners} runner(s): {seconds:.2f} s, exits {exits[runners][-1]},"
                    f" {len(times):,} calls")  # fmt: skip
            load.append(os.getloadavg()[0])

        self.run_many("pg-runners", one)
        table = Table(
            f"Two runners on one job: `bulkimport resume {job_id} --db postgresql://…` once,"
            f" then twice at once; {rows:,} rows, concurrency {concurrency} each, minimal "
            "endpoint",
            ["runners", "runs", "seconds (first start → last end)", "rows/s", "× one runner",
             "steady rows/s (server side)", "steady × one runner", "calls seen", "exit codes"],
        )  # fmt: skip
        summary: dict[str, Any] = {}
        for runners in (1, 2):
            ratio = median([a / b for a, b in zip(wall[1], wall[runners], strict=True)])
            steady_ratio = median([b / a for a, b in zip(steady[1], steady[runners], strict=True)])
            table.add(
                runners, len(wall[runners]), fmt_s(median(wall[runners])),
                f"{rows / median(wall[runners]):,.0f}", f"{ratio:.2f}",
                f"{median(steady[runners]):,.0f}", f"{steady_ratio:.2f}",
                ", ".join(f"{n:,}" for n in sorted(set(calls[runners]))),
                ", ".join(sorted(set(exits[runners]))),
            )  # fmt: skip
            summary[str(runners)] = {"seconds": wall[runners], "steady": steady[runners],
                                     "calls": calls[runners], "exits": exits[runners],
                                     "ratio": ratio, "steady_ratio": steady_ratio}  # fmt: skip
        two = summary["2"]
        if refusals:
            table.notes.append(
                f"**One of the two runners was refused** in {len(refusals)} of "
                f"{len(wall[2])} runs (whichever came second to the lock): exit 75 "
                f"(`RunnerBusy`), saying “{refusals[0]}”. The runner lock on PostgreSQL is "
                "still one per database: the two-runner row is one runner's work, and the "
                "1.6× target is not measured."
            )
            self.targets.append(("two runners on one job ≥ 1.6× one (PostgreSQL)",
                                 "one runner refused (RunnerBusy, exit 75)", None))  # fmt: skip
        else:
            self.targets.append(
                ("two runners on one job ≥ 1.6× one (PostgreSQL)",
                 f"{two['ratio']:.2f}× whole, {two['steady_ratio']:.2f}× steady",
                 two["ratio"] >= 1.6)
            )  # fmt: skip
        if any(n > rows for n in calls[2]):
            table.notes.append(
                f"**Calls beyond the {rows:,} rows** with two runners: "
                f"{max(calls[2]) - rows:,} rows sent twice in the worst run."
            )
        table.notes += [
            "Both runners start together (two processes, one `Popen` after the other) on a copy"
            " of the same staged job; seconds run from the first start to the last end."
            " The server, the PostgreSQL cluster and the runners share this machine's cores:"
            " on 2 cores the machine, not the endpoint, bounds two runners.",
            "Load average (1 min) before and after each run: "
            + ", ".join(f"{value:.2f}" for value in load) + ".",
        ]  # fmt: skip
        self.results["pg_runners"] = summary | {"refusals": refusals, "load": load}
        self.tables.append(table)


def machine() -> dict[str, str]:
    model = "?"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    sqlite_version = subprocess.run(
        ["sqlite3", "--version"], capture_output=True, text=True
    ).stdout.split()[:1]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite3 CLI": " ".join(sqlite_version),
        "python sqlite": sqlite3.sqlite_version,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 run: < 1 minute")
    parser.add_argument("--only", default="read,send,growth,resume,fatal,rate")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--rows", type=int, help="rows of the read and resume files")
    parser.add_argument("--send-rows", type=int, help="rows of the send benchmark")
    parser.add_argument(
        "--concurrency", default="8,32", help="the send benchmark's concurrencies (default 8,32)"
    )
    parser.add_argument("--huge", action="store_true", help="add 5 M rows to the growth table")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--rate-seconds", type=float)
    parser.add_argument("--skip-sqlite-utils", action="store_true")
    parser.add_argument(
        "--slow-runs", type=int, default=1,
        help="runs of the slow baselines (sqlite-utils, sequential requests); default 1",
    )  # fmt: skip
    parser.add_argument("--skip-sandbox", action="store_true")
    parser.add_argument("--sandbox-requests", action="store_true",
                        help="also the sequential requests loop against the sandbox")  # fmt: skip
    parser.add_argument(
        "--pg-fsync", choices=["on", "off"], default="on",
        help="the PostgreSQL cluster's fsync (default on, as a real server)",
    )  # fmt: skip
    parser.add_argument("--product", type=Path, help="put DIR first on the children's PYTHONPATH")
    parser.add_argument("--workdir", type=Path, help="keep databases here (default: a temp dir)")
    parser.add_argument("--save", type=Path, help="where to write the JSON results")
    args = parser.parse_args()
    quick = args.quick
    args.runs = args.runs or (1 if quick else 3)
    args.rows = args.rows or (100_000 if quick else 1_000_000)
    args.send_rows = args.send_rows or (2_000 if quick else 50_000)
    args.rate_seconds = args.rate_seconds or (3.0 if quick else 30.0)
    if quick and not args.skip_sqlite_utils and args.rows > 100_000:
        args.skip_sqlite_utils = True
    args.concurrency = [int(n) for n in args.concurrency.split(",") if n.strip()]
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    if "pg" in sections:
        sections[sections.index("pg") : sections.index("pg") + 1] = PG_SECTIONS
    unknown = set(sections) - {"read", "send", "growth", "resume", "fatal", "rate", *PG_SECTIONS}
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if args.product is not None:
        args.product = args.product.resolve()

    info = machine()
    started = time.perf_counter()
    info["bytecode"] = compile_product(child_env(args.product))
    with tempfile.TemporaryDirectory(prefix="bulkimport-bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        bench = Bench(args, work)
        try:
            for section in ("read", "send", "growth", "resume", "fatal", "rate", *PG_SECTIONS):
                if section in sections:
                    getattr(bench, section.replace("-", "_"))()
        finally:
            bench.close()
    elapsed = time.perf_counter() - started

    print(f"## bulkimport benchmarks, {info['date']}\n")
    print(
        f"{info['cpus']} CPUs ({info['cpu']}), Python {info['python']}, sqlite3 CLI "
        f"{info['sqlite3 CLI']}, Python's SQLite {info['python sqlite']}; "
        f"median of {args.runs} run(s); {elapsed:.0f} s in all. Measured package, compiled"
        f" to bytecode first: {info['bytecode']}.\n"
    )
    print(f"    {' '.join([Path(sys.executable).name, *sys.argv])}\n")
    for table in bench.tables:
        print(table.markdown())
    if bench.targets:
        print("### Targets\n")
        print("| target | measured | met |\n|---|---|---|")
        for target, value, met in bench.targets:
            print(f"| {target} | {value} | {'n/a' if met is None else 'yes' if met else 'NO'} |")
    save = args.save or BENCH / "results" / time.strftime("%Y%m%d-%H%M%S.json")
    save.parent.mkdir(parents=True, exist_ok=True)
    save.write_text(
        json.dumps(
            {"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
             "results": bench.results,
             "targets": [{"target": t, "measured": v, "met": m} for t, v, m in bench.targets]},
            indent=1, default=str,
        )
    )  # fmt: skip
    say(f"results saved to {save}")


if __name__ == "__main__":
    main()
