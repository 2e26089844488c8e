"""The failed-rows report: the rows that need a person, as a CSV that can be run again.

Columns: the file's own header, in its order, then ``_line``, ``_state``, ``_code`` and
``_message``. The reader drops those four columns, so a fixed report is fed to ``run`` as is.
Written as UTF-8 with a BOM, which Excel needs to show non-ASCII text, and which the reader
strips; whatever the original file's encoding and delimiter were, a report is UTF-8 and
comma-separated, and ``is_report`` recognises one so that a profile written for the original
file (``encoding``, ``delimiter``, ``skip_rows``) does not misread it.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Collection, Iterable
from pathlib import Path

from bulkimport.errors import ConfigError
from bulkimport.states import RowState
from bulkimport.storage import Job, RowReports

REPORT_COLUMNS = ("_line", "_state", "_code", "_message")
PROBLEM_STATES = frozenset(state for state in RowState if state.is_problem)
_HEAD_BYTES = 64 * 1024


def parse_states(items: Iterable[str]) -> frozenset[RowState]:
    """``["failed,rejected", "invalid"]`` → those states; ``ConfigError`` for any other.

    Empty: every problem state.
    """
    names = [name.strip().lower() for item in items for name in item.split(",") if name.strip()]
    if not names:
        return PROBLEM_STATES
    allowed = {state.value: state for state in PROBLEM_STATES}
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ConfigError(f"--state {unknown[0]!r}: choose among {', '.join(sorted(allowed))}")
    return frozenset(allowed[name] for name in names)


def is_report(path: Path) -> bool:
    """Whether ``path`` is a failed-rows report: UTF-8 with a BOM, the report columns last."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError:
        return False
    if not head.startswith(codecs.BOM_UTF8):
        return False
    first_line = head[len(codecs.BOM_UTF8) :].split(b"\n", 1)[0]
    try:
        header = next(csv.reader(io.StringIO(first_line.decode("utf-8").rstrip("\r"))), [])
    except (UnicodeDecodeError, csv.Error):
        return False
    return tuple(header[-len(REPORT_COLUMNS) :]) == REPORT_COLUMNS


def default_report_path(db_path: Path, job_id: int) -> Path:
    """``job-N-failed.csv`` next to the database."""
    return db_path.resolve().parent / f"job-{job_id}-failed.csv"


async def write_report(
    reports: RowReports,
    job: Job,
    path: Path,
    states: Collection[RowState] = PROBLEM_STATES,
) -> int:
    """Write the rows of ``job_id`` in ``states`` to ``path`` (atomically); return how many."""
    header = list(job.format.header)
    width = len(header)
    partial = path.with_name(path.name + ".partial")
    count = 0
    # Plain writes: a report is written once, after sending, when nothing else runs.
    with open(partial, "w", encoding="utf-8-sig", newline="") as handle:  # noqa: ASYNC230
        writer = csv.writer(handle)
        writer.writerow([*header, *REPORT_COLUMNS])
        async for row in reports.iter_rows(job.id, states):
            cells = list(row.cells)
            if len(cells) < width:
                cells.extend([""] * (width - len(cells)))
            writer.writerow(
                [*cells, row.line, row.state.value, row.last_code or "", row.last_message or ""]
            )
            count += 1
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return count
