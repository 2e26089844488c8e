"""Measure the ways to stream the rows of a large .xlsx sheet, each in a process of its own.

    python bench/xlsx_candidates.py                       # 100,000 and 1,048,575 rows
    python bench/xlsx_candidates.py --rows 100000 --candidates bulkimport openpyxl
    pip install python-calamine openpyxl fastexcel xlsx2csv   # the other candidates

For every workbook size (made by ``generate_xlsx.py``, cached in ``bench/data/``) and every
candidate, two runs in fresh processes:

- ``read``: every row of the first sheet, each cell turned into text, timed from the
  opening of the file; the peak RSS of the process (``os.wait4``); the RSS when the first
  row arrives and when the last one has (whether memory is flat while rows stream); the
  time to the first row (a reader that loads the whole sheet first shows it here);
- ``resume``: the first row at 90 % of the sheet, the cheapest way the candidate has
  (``start_row`` / ``min_row`` / ``skip_rows`` / skipping rows as they come): the cost of
  resuming an interrupted read near its end.

Candidates: ``bulkimport`` (``bulkimport.reader.workbook``: zipfile + patterns +
ElementTree, the standard library alone), ``bulkimport-batches`` (the reader as a job uses
it: ``sniff_format``, then ``read_batches``, each row's record made), ``calamine``
(python-calamine: Rust, the whole sheet in memory, ``iter_rows`` over it), ``openpyxl``
(``read_only=True, data_only=True``), ``fastexcel`` (calamine and Arrow: the sheet loaded as
Arrow columns; turning them into Python rows needs pyarrow, so only the load is timed: a
lower bound), ``xlsx2csv`` (expat callbacks, writing CSV). One not installed is passed over.
A table is printed; every run is also appended as a JSON line to
``bench/results/xlsx_candidates.jsonl``.

What it gave on the project's 2-core machine (shared with other work; bulkimport the median
of three runs), with the versions named; "resume" is the time to the first row at 90 %.
bulkimport as the reader was first written (docs/performance.md has it as it is now: 51,000
and 55,000 rows/s, 56 and 91 MiB):

    candidate            rows       rows/s  first row  peak RSS  resume
    bulkimport           100,001    43,669    0.26 s    49 MiB    0.36 s
                         1,048,576  43,654    1.68 s    85 MiB    2.74 s
    python-calamine      100,001    71,429    0.89 s   133 MiB    0.95 s
    0.9.1                1,048,576  65,210   10.72 s  1145 MiB   13.31 s
    openpyxl 3.1.5       100,001    13,812    1.42 s    69 MiB    6.15 s
                         1,048,576  11,385   14.62 s   332 MiB   73.22 s
    fastexcel 0.21.0     100,001   175,440*   0.56 s   137 MiB    0.83 s
    (* the load alone)   1,048,576 124,682*   8.20 s  1148 MiB    7.97 s
    xlsx2csv 0.8.6       100,001    12,970        -     42 MiB        -
                         1,048,576  13,371        -    171 MiB        -

The targets: memory flat and under 150 MB for 1,048,576 rows, at least 50,000 rows/s.
calamine and fastexcel load the whole sheet; openpyxl and xlsx2csv stream but keep the
shared strings as Python strings and read 11,000-13,000 rows/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from generate_xlsx import data_file  # noqa: E402

CANDIDATES = ("bulkimport", "bulkimport-batches", "calamine", "openpyxl", "fastexcel", "xlsx2csv")
DISTRIBUTIONS = {
    "bulkimport": "bulkimport",
    "bulkimport-batches": "bulkimport",
    "calamine": "python-calamine",
    "openpyxl": "openpyxl",
    "fastexcel": "fastexcel",
    "xlsx2csv": "xlsx2csv",
}
MODULES = {
    "bulkimport": "bulkimport.reader.workbook",
    "bulkimport-batches": "bulkimport.reader",
    "calamine": "python_calamine",
    "openpyxl": "openpyxl",
    "fastexcel": "fastexcel",
    "xlsx2csv": "xlsx2csv",
}
RESUME_AT = 0.9
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """The resident set size of this process now, in MiB (as ``ru_maxrss / 1024``)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * _PAGE / 2**20


def text(value: Any) -> str:
    """A cell value as text, by the rules of ``bulkimport.reader.workbook`` as far as a library's
    Python values allow (no number formats): the same work for every candidate."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


# --- the candidates: each yields rows of text from ``start_row`` (1-based) on ----------------


def rows_bulkimport(path: Path, start_row: int) -> Iterator[tuple[str, ...]]:
    from bulkimport.reader.workbook import open_sheet

    with open_sheet(path, 1) as sheet:
        for _, cells in sheet.iter_rows(start_row=start_row):
            yield cells


def rows_bulkimport_batches(path: Path, start_row: int) -> Iterator[tuple[str, ...]]:
    """The reader as a job uses it: ``sniff_format``, then ``read_batches`` through the
    record encoder (each row's record made, its cells padded), resuming at a sheet row."""
    from bulkimport.reader import read_batches, sniff_format

    fmt = sniff_format(path)
    if start_row <= fmt.data_line:
        yield fmt.header  # the header row, as the other candidates give it
    start = max(start_row, fmt.data_line)
    for batch in read_batches(path, fmt, start_line=start, batch_rows=5000):
        for row in batch.rows:
            yield row.cells


def rows_calamine(path: Path, start_row: int) -> Iterator[tuple[str, ...]]:
    from python_calamine import CalamineWorkbook

    with CalamineWorkbook.from_path(path) as book:
        sheet = book.get_sheet_by_index(0)
        for row in itertools.islice(sheet.iter_rows(), start_row - 1, None):
            yield tuple(map(text, row))


def rows_openpyxl(path: Path, start_row: int) -> Iterator[tuple[str, ...]]:
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        for row in sheet.iter_rows(min_row=start_row, values_only=True):
            yield tuple(map(text, row))
    finally:
        book.close()


def rows_fastexcel(path: Path, start_row: int) -> Iterator[tuple[str, ...]]:
    import fastexcel

    sheet = fastexcel.read_excel(path).load_sheet(0, header_row=None, skip_rows=start_row - 1)
    # Python rows would need pyarrow: report the load alone, as many (empty) rows as it has.
    yield from itertools.repeat((), sheet.height)


class _CountingFile:
    """A text file that only counts the lines written to it."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, data: str) -> int:
        self.lines += data.count("\n")
        return len(data)


def rows_xlsx2csv(path: Path, start_row: int) -> Iterator[tuple[str, ...]]:
    from xlsx2csv import Xlsx2csv  # type: ignore[import-untyped]

    if start_row > 1:
        raise SystemExit("xlsx2csv cannot start at a row")
    out = _CountingFile()
    Xlsx2csv(str(path), outputencoding="utf-8", dateformat="%Y-%m-%d").convert(out, sheetid=1)
    yield from itertools.repeat((), out.lines)


READERS: dict[str, Callable[[Path, int], Iterable[tuple[str, ...]]]] = {
    "bulkimport": rows_bulkimport,
    "bulkimport-batches": rows_bulkimport_batches,
    "calamine": rows_calamine,
    "openpyxl": rows_openpyxl,
    "fastexcel": rows_fastexcel,
    "xlsx2csv": rows_xlsx2csv,
}


def worker(name: str, path: Path, start_row: int, expected: int) -> None:
    """Run one candidate and print what it did as JSON (the parent adds the peak RSS)."""
    started = time.perf_counter()
    rows = 0
    first_s = rss_first = None
    checkpoints = {int(expected * share) for share in (0.25, 0.5, 0.75)}
    samples = []
    for _ in READERS[name](path, start_row):
        rows += 1
        if first_s is None:
            first_s, rss_first = time.perf_counter() - started, rss_mb()
        if rows in checkpoints:
            samples.append(round(rss_mb(), 1))
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": round(seconds, 2),
                "first_row_s": round(first_s or seconds, 2),
                "rss_first_mb": round(rss_first or 0, 1),
                "rss_samples_mb": samples,
                "rss_end_mb": round(rss_mb(), 1),
                "maxrss_self_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                ),
            }
        )
    )


def run(name: str, path: Path, data_rows: int, mode: str) -> dict[str, Any]:
    """One candidate in a process of its own; what it printed, and its peak RSS."""
    total = data_rows + 1  # the header
    start_row = int(total * RESUME_AT) if mode == "resume" else 1
    expected = total - start_row + 1
    command = [
        sys.executable,
        __file__,
        "--worker",
        name,
        str(path),
        str(start_row),
        str(expected),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read().decode(), process.stderr.read().decode()
    result: dict[str, Any] = {
        "candidate": name,
        "version": version(name),
        "rows_in_sheet": total,
        "mode": mode,
        "start_row": start_row,
        "wall_s": round(wall, 2),
        # CPU time of the process (user + system): steadier than wall time on a machine
        # shared with other work.
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "exit": os.waitstatus_to_exitcode(status),
    }
    if result["exit"] == 0 and out.strip():
        result.update(json.loads(out.strip().splitlines()[-1]))
        result["rows_per_s"] = round(result["rows"] / result["seconds"]) if result["rows"] else 0
    else:
        result["error"] = (err.strip().splitlines() or ["?"])[-1][:200]
    return result


def generated(count: int) -> Path:
    """The workbook of ``count`` rows, generated in a process of its own when missing: the
    peak RSS of a child counts its parent's at the time it was started (Linux keeps the
    high-water mark across fork and exec), and generating a million rows takes 300 MB."""
    path = data_file(count, generate_missing=False)
    if not path.exists():
        script = HERE / "generate_xlsx.py"
        subprocess.run([sys.executable, str(script), "--rows", str(count)], check=True)
    return path


def version(name: str) -> str:
    try:
        return importlib.metadata.version(DISTRIBUTIONS[name])
    except importlib.metadata.PackageNotFoundError:
        return "-"


def installed(name: str) -> bool:
    try:
        __import__(MODULES[name])
    except ImportError:
        return False
    return True


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| candidate | version | rows | mode | rows/s | rows per CPU s | first row s | total s "
        "| RSS at first row → end MiB | peak RSS MiB |",
        "|---|---|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(
                f"| {r['candidate']} | {r['version']} | {r['rows_in_sheet']:,} | {r['mode']} "
                f"| failed: {r['error']} | | | | | {r['peak_rss_mb']} |"
            )
            continue
        lines.append(
            f"| {r['candidate']} | {r['version']} | {r['rows_in_sheet']:,} | {r['mode']} "
            f"| {r['rows_per_s']:,} | {round(r['rows'] / r['cpu_s']):,} | {r['first_row_s']} "
            f"| {r['seconds']} "
            f"| {r['rss_first_mb']} → {r['rss_end_mb']} | {r['peak_rss_mb']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_048_575])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--modes", nargs="+", default=["read", "resume"])
    parser.add_argument("--worker", nargs=4, metavar=("NAME", "PATH", "START", "EXPECTED"))
    args = parser.parse_args()
    if args.worker:
        name, path, start, expected = args.worker
        worker(name, Path(path), int(start), int(expected))
        return
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    results = []
    for count in args.rows:
        path = generated(count)
        for name in args.candidates:
            if not installed(name):
                print(f"{name}: not installed, passed over", file=sys.stderr)
                continue
            for mode in args.modes:
                if mode == "resume" and name == "xlsx2csv":
                    continue
                result = run(name, path, count, mode)
                result["file_mb"] = round(path.stat().st_size / 1e6, 1)
                print(json.dumps(result), file=sys.stderr)
                with open(results_dir / "xlsx_candidates.jsonl", "a") as handle:
                    handle.write(json.dumps(result) + "\n")
                results.append(result)
    print(table(results))


if __name__ == "__main__":
    main()
