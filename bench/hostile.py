"""Hostile files, full size: the wall time and peak memory of ``check`` and ``stage`` on each.

    python bench/hostile.py [--dir DIR] [--keep] [--lifted] [--code PATH] [--only NAMES]

Makes (in ``--dir``, a temporary folder by default) the files of ``tests/hostile.py``: a
1 MB workbook holding 1 GB of spaces inside ``<sheetData>``, a 0.3 MB workbook with a
shared string of 300 MB, a workbook with a value in column XFD of each of 200,000 rows, a
CSV file with a line of 200 MB. Then runs ``bulkimport check`` and ``bulkimport stage``
(reading into a new queue database, as ``run`` does before sending) on each, every run in a
process of its own, and prints its wall time, its peak memory (the max RSS of the child,
``getrusage(RUSAGE_CHILDREN)`` in a process that has that one child), the size of the queue
database, and the first line of what it said.

``--lifted`` also reads the two workbooks the zip-bomb limit refuses with that limit lifted,
to show that what it guards against is read in time in proportion and flat memory anyway.
``--code PATH`` runs the commands from another checkout (its ``bulkimport`` package first on
the path), to compare with the reader as it was.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.hostile import (
    Measured,
    long_line_csv,
    long_string_workbook,
    measure,
    spaces_workbook,
    wide_workbook,
)

FILES: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "spaces": ("spaces.xlsx", spaces_workbook),
    "long-string": ("long-string.xlsx", long_string_workbook),
    "xfd": ("xfd.xlsx", wide_workbook),
    "long-line": ("long-line.csv", long_line_csv),
}
TARGET = (
    *("--url", "http://127.0.0.1:9/asterccinterfaces", "--org", "bench", "--user", "bench"),
    *("--campaign", "1"),
)
LIFT = (
    "import sys; from pathlib import Path; from bulkimport.reader import limits; "
    "limits.MAX_EXPANSION = 1 << 30; from bulkimport.check import check_file; "
    "r = check_file(Path(sys.argv[1])); print(f'{r.records} records, {r.invalid} invalid')"
)


def said(done: Measured) -> str:
    """The line that says how the command ended: its verdict, or the error."""
    lines = (done.stdout + "\n" + done.stderr).strip().splitlines()
    ends = ("nothing was sent", " ready: ", "Error: ", "records, ")
    text = next((line for line in lines if any(end in line for end in ends)), "")
    return text if len(text) <= 150 else text[:150] + "…"


def report(label: str, done: Measured, db: Path | None = None) -> None:
    size = f"db {db.stat().st_size / 1e6:7.1f} MB" if db is not None and db.exists() else " " * 13
    print(
        f"  {label:<14} {done.seconds:7.2f} s {done.max_rss_mb:7.0f} MB  {size}  "
        f"exit {done.returncode}  {said(done)}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, help="where to make the files (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the files made")
    parser.add_argument("--lifted", action="store_true", help="also read with the ratio lifted")
    parser.add_argument("--code", type=Path, help="a checkout whose bulkimport to run")
    parser.add_argument("--only", help="the files to use, by name, comma-separated")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(FILES)
    env = {"BULKIMPORT_PASSWORD": "bench"}
    if args.code is not None:
        env["PYTHONPATH"] = str(args.code.resolve())
    folder = args.dir or Path(tempfile.mkdtemp(prefix="bulkimport-hostile-"))
    folder.mkdir(parents=True, exist_ok=True)
    # Commands run from the folder: ``python -m`` puts the working directory first on the
    # path, where a checkout's own package would win over --code.
    os.chdir(folder)
    command = [sys.executable, "-m", "bulkimport"]
    for name in names:
        file_name, make = FILES[name]
        path = folder / file_name
        started = time.perf_counter()
        if not path.exists():
            make(path)
        print(
            f"{name}: {path.name}, {path.stat().st_size / 1e6:.1f} MB "
            f"(made in {time.perf_counter() - started:.1f} s)",
            flush=True,
        )
        report("check", measure([*command, "check", str(path)], env=env))
        db = folder / f"{name}.db"
        for stale in folder.glob(f"{name}.db*"):
            stale.unlink()
        done = measure([*command, "stage", str(path), *TARGET, "--db", str(db)], env=env)
        report("stage", done, db)
        if args.lifted and name in ("spaces", "long-string"):
            report("check, lifted", measure([sys.executable, "-c", LIFT, str(path)], env=env))
        for stale in folder.glob(f"{name}.db*"):
            stale.unlink()
    if not args.keep and args.dir is None:
        for path in folder.iterdir():
            path.unlink()
        os.rmdir(folder)


if __name__ == "__main__":
    main()
