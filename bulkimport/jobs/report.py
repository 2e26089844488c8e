"""The failed-rows report: the rows that need a person, as a CSV that can be run again.

Columns: the file's own header, in its order, then ``_extra``, ``_line``, ``_state``,
``_code`` and ``_message``. The reader drops those columns, so a fixed report is fed to
``run`` as is. A row that had more cells than the header keeps them in ``_extra`` (as a line
of CSV), not under the report's own columns; one that had fewer says so there
(``(2 cells missing)``) and its cells are not shifted. Read back, a row whose ``_extra`` is
not empty is invalid again: a row that was invalid for its cells stays invalid until a
person puts its cells in their columns and empties ``_extra``. Rows given by a program have
a column per key; a row staged before a later row brought a key has it empty, as it was.

Written as UTF-8 with a BOM, which Excel needs to show non-ASCII text, and which the reader
strips; whatever the original file's encoding and delimiter were, a report is UTF-8 and
comma-separated, and ``is_report`` recognises one so that a profile written for the original
file (``encoding``, ``delimiter``, ``skip_rows``) does not misread it.

A job's report is named after its database and the job (``nightly-job-3-failed.csv`` next to
``nightly.db``), so two databases in one folder never write over each other's; the path is
kept with the job (``status`` shows it), and a later run of the job that leaves no row
needing a person removes it (``place_report``).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import io
import logging
import os
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import NamedTuple, TextIO

from bulkimport import messages
from bulkimport.errors import ConfigError, DiskFull
from bulkimport.jobs.events import event
from bulkimport.portable import BINARY, NOFOLLOW, keep_private
from bulkimport.reader import InputKind
from bulkimport.rows import FORMULA_STARTS, INERT_MARK, REPORT_COLUMNS, inert
from bulkimport.states import RowState
from bulkimport.storage import Job, RowReports, Storage, database_name, is_postgres_url

log = logging.getLogger("bulkimport")

PROBLEM_STATES = frozenset(state for state in RowState if state.is_problem)
#: The rows that may be on the server: listed apart, never among the rows to fix.
UNKNOWN_STATES = frozenset({RowState.UNKNOWN})
#: The column of cells that fit no column of the header.
EXTRA_COLUMN = REPORT_COLUMNS[0]
#: The columns every report ends with (reports written before ``_extra`` too).
_ANNOTATIONS = REPORT_COLUMNS[1:]
_HEAD_BYTES = 64 * 1024


def parse_states(items: Iterable[str]) -> frozenset[RowState]:
    """``["failed,rejected", "invalid"]`` → those states; ``ConfigError`` for any other.

    Empty: every problem state. ``unknown`` (rows that may be on the server) only when named.
    """
    names = [name.strip().lower() for item in items for name in item.split(",") if name.strip()]
    if not names:
        return PROBLEM_STATES
    allowed = {state.value: state for state in PROBLEM_STATES | UNKNOWN_STATES}
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ConfigError(messages.unknown_state(unknown[0], allowed))
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
    return tuple(header[-len(_ANNOTATIONS) :]) == _ANNOTATIONS


def default_report_path(location: str | os.PathLike[str], job_id: int) -> Path:
    """``<database>-job-N-failed.csv`` next to the database (``nightly-job-3-failed.csv``
    for ``nightly.db``): one name per database and job. A PostgreSQL database has no
    folder: its reports go to the current one, named after the database
    (``leads-job-3-failed.csv`` for ``postgresql://u@host/leads``)."""
    if is_postgres_url(location):
        return Path.cwd() / f"{database_name(str(location))}-job-{job_id}-failed.csv"
    db = Path(location).resolve()
    return db.parent / f"{db.stem}-job-{job_id}-failed.csv"


def unknown_report_path(report: Path) -> Path:
    """Where the list of a job's rows that may be on the server goes: beside its failed-rows
    report, ``-unknown`` in place of ``-failed`` (``nightly-job-3-unknown.csv``)."""
    stem = report.stem.removesuffix("-failed")
    return report.with_name(f"{stem}-unknown{report.suffix or '.csv'}")


def check_report_path(path: Path, option: str = "--report") -> None:
    """Make sure a report can be written at ``path`` before anything is sent: a
    ``ConfigError`` in one line (naming ``option``) if its folder is missing, it is a
    folder, or it cannot be written (permissions, a read-only file system)."""
    if path.is_dir():
        raise ConfigError(messages.report_refused(option, path, messages.report_is_a_directory()))
    folder = path.parent
    if not folder.is_dir():
        problem = messages.report_folder_missing(folder)
        raise ConfigError(messages.report_refused(option, path, problem))
    # The report is written beside its final name, then renamed: try exactly that.
    probe = _partial(path)
    try:
        os.close(_open_partial(probe, truncate=False))
    except OSError as exc:
        problem = messages.report_cannot_write(exc.strerror)
        raise ConfigError(messages.report_refused(option, path, problem)) from None
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _open_partial(path: Path, *, truncate: bool = True) -> int:
    """Open the ``.partial`` file a report is written to: the owner's alone (it lists leads),
    and never through a symbolic link planted under its name."""
    flags = os.O_WRONLY | os.O_CREAT | NOFOLLOW | BINARY | (os.O_TRUNC if truncate else 0)
    fd = os.open(path, flags, 0o600)
    keep_private(fd)  # a .partial left by an older run keeps its mode otherwise
    return fd


def remove_report(path: str | Path) -> bool:
    """Remove the report at ``path`` if it still is one (never another file); whether it
    was removed. ``ReportHeld`` when another program has it open (Windows refuses then)."""
    target = Path(path)
    if not is_report(target):
        return False
    try:
        target.unlink()
    except FileNotFoundError:
        pass
    except PermissionError as exc:
        raise ReportHeld(target, exc.strerror or "permission denied") from None
    return True


class ReportHeld(OSError):
    """A report that could not be replaced or removed: another program holds it open (Excel
    on Windows locks the file it shows), or it was made read-only."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(messages.report_held(path, reason))
        self.path = path


def _report_layout(job: Job) -> tuple[list[int], int | None, int]:
    """Which of the job's columns a report keeps (a report read back has report columns of
    its own: they are written afresh), where an older ``_extra`` is, and the header's
    width."""
    header = job.format.header
    kept = [index for index, name in enumerate(header) if name not in REPORT_COLUMNS]
    old_extra = header.index(EXTRA_COLUMN) if EXTRA_COLUMN in header else None
    return kept, old_extra, len(header)


def _extra_text(
    cells: tuple[str, ...], width: int, old_extra: int | None, *, short_fits: bool = False
) -> str:
    """What ``_extra`` holds for a row: the cells beyond the header as a line of CSV, or how
    many were missing (unless ``short_fits``: rows given by a program, whose columns grow),
    or what an earlier report's ``_extra`` held; "" when the row fits."""
    if old_extra is not None and old_extra < len(cells) and cells[old_extra].strip():
        return cells[old_extra]
    if len(cells) > width and any(cell.strip() for cell in cells[width:]):
        line = io.StringIO()
        csv.writer(line, lineterminator="").writerow(cells[width:])
        return line.getvalue()
    if len(cells) < width and not short_fits:
        missing = width - len(cells)
        return messages.cells_missing(missing)
    return ""


def _no_formula(text: str) -> str:
    return INERT_MARK + text if text.startswith(FORMULA_STARTS) else text


async def write_rows(
    reports: RowReports,
    job: Job,
    out: TextIO,
    states: Collection[RowState] = PROBLEM_STATES,
) -> int:
    """Write the report of the job's rows in ``states`` to ``out`` (a text stream, which
    the caller encodes: UTF-8 with a BOM for a file); return how many rows."""
    kept, old_extra, width = _report_layout(job)
    header = job.format.header
    short_fits = job.format.kind is InputKind.ROWS
    writer = csv.writer(out)
    writer.writerow([*(inert(header[index]) for index in kept), *REPORT_COLUMNS])
    count = 0
    async for row in reports.iter_rows(job.id, states):
        cells = row.cells
        own = [inert(cells[index]) if index < len(cells) else "" for index in kept]
        writer.writerow(
            [
                *own,
                inert(_extra_text(cells, width, old_extra, short_fits=short_fits)),
                row.line,
                row.state.value,
                row.last_code or "",
                # The server's words: never a formula, whatever it answered (not read back:
                # no mark of its own to double).
                _no_formula(row.last_message or ""),
            ]
        )
        count += 1
    return count


async def write_report(
    reports: RowReports,
    job: Job,
    path: Path,
    states: Collection[RowState] = PROBLEM_STATES,
) -> int:
    """Write the rows of the job in ``states`` to ``path`` (atomically); return how many.

    ``ConfigError`` when the file cannot be written, ``DiskFull`` when its disk is full:
    in one line, the rows are still in the database (``bulkimport failed`` writes them).
    """
    partial = _partial(path)
    try:
        # Plain writes: a report is written once, after sending, when nothing else runs.
        fd = _open_partial(partial)
        with open(fd, "w", encoding="utf-8-sig", newline="") as handle:  # noqa: ASYNC230
            count = await write_rows(reports, job, handle, states)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.replace(partial, path)
        except PermissionError as exc:
            # The report was written; only its old self is in the way.
            raise ReportHeld(path, exc.strerror or "permission denied") from None
    except ReportHeld as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise ConfigError(str(exc), job=job.id) from None
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            full = messages.report_unwritten(path, exc.strerror, disk_full=True)
            raise DiskFull(full, job=job.id) from None
        raise ConfigError(messages.report_unwritten(path, exc.strerror), job=job.id) from None
    return count


async def place_report(storage: Storage, job: Job, path: Path | None) -> str | None:
    """After a run of ``job``: write its report (at ``path``, or its default name) if rows
    need a person, and keep where; if none do any more, remove the report an earlier run
    left. A report the job had at another path is removed either way: it no longer
    applies. Return the report's path, or None. The rows that may be on the server are
    listed apart, beside it (``place_unknown_report``).

    A report that cannot be written or removed (a full disk, another program holding it) is
    one warning: the job's outcome stands, and its rows are still in the database."""
    target = (path or default_report_path(storage.location, job.id)).absolute()
    await place_unknown_report(storage, job, unknown_report_path(target))
    return await _place(storage, job, target, _FAILED)


async def place_unknown_report(storage: Storage, job: Job, path: Path) -> str | None:
    """The same for the job's ``unknown`` rows (they may be on the server: check there
    before sending them again), at ``path`` (absolute); return where, or None."""
    return await _place(storage, job, path, _UNKNOWN)


class _Kind(NamedTuple):
    """One kind of report: the rows it lists, and where the job keeps its path."""

    states: frozenset[RowState]
    what: str

    def kept(self, job: Job) -> str | None:
        return job.report_path if self is _FAILED else job.unknown_report_path

    async def keep(self, storage: Storage, job: Job, path: str | None) -> None:
        if self is _FAILED:
            await storage.jobs.set_report(job.id, path)
        else:
            await storage.jobs.set_unknown_report(job.id, path)


_FAILED = _Kind(PROBLEM_STATES, "report")
_UNKNOWN = _Kind(UNKNOWN_STATES, "list of rows that may be on the server")


async def _place(storage: Storage, job: Job, target: Path, kind: _Kind) -> str | None:
    counts = await storage.reports.counts(job.id)
    earlier = kind.kept(job)
    if not any(counts[state] for state in kind.states):
        if earlier is not None:
            discard_report(earlier, job.id, "every row is settled")
            await kind.keep(storage, job, None)
        return None
    try:
        await write_report(storage.reports, job, target, kind.states)
    except (ConfigError, DiskFull) as exc:
        # The job is done; its rows are in the database, and `bulkimport failed` writes them
        # once the cause is gone (the summary says so, with the job's options).
        log.warning("job %d: %s", job.id, exc, extra=event("report", job=job.id, error=str(exc)))
        if earlier is not None:
            # Whatever is at the old path lists the rows as they were: never show it as the
            # job's report again.
            await kind.keep(storage, job, None)
        return None
    if earlier is not None and Path(earlier) != target:
        discard_report(earlier, job.id, messages.report_moved(kind.what, target))
    await kind.keep(storage, job, str(target))
    return str(target)


def discard_report(report: str, job_id: int, why: str) -> bool:
    """Remove a report that no longer applies (``why``); whether it was removed. One warning
    if another program holds it: nothing else depends on it being gone."""
    try:
        return remove_report(report)
    except ReportHeld as exc:
        log.warning(
            "job %d: %s, and delete it: it no longer applies (%s)",
            job_id,
            exc,
            why,
            extra=event("report", job=job_id, error=str(exc)),
        )
        return False
