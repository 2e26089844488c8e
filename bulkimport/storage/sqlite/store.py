"""The durable queue: one SQLite file holds the jobs and the state of every row.

``Queue`` is the only way in. Each write is one ``BEGIN IMMEDIATE`` transaction that has
committed when the method returns; with WAL and ``synchronous=NORMAL`` a killed process
(even ``kill -9``) loses nothing committed. The schema comes from the numbered ``.sql``
files of ``bulkimport.migrations``, applied in order and recorded in ``schema_migrations``.

Life of a row: ``ingest`` / ``add_rows`` (pending or invalid) → ``claim_batch`` (in_flight) →
``record_results`` (terminal, or pending again with a time for the retry). ``release`` gives
back rows claimed but never sent; ``recover_in_flight`` gives back the rows a dead runner
left in flight and counts them as "resent after an unknown outcome".

Sending is the hot path: ``claim_batch``, ``record_results``, ``release`` and
``next_attempt_at`` run on a second connection, on the event loop's own thread. Each is a
millisecond or two of SQLite for a batch of rows, and a worker thread would cost more than
that: handing the GIL back and forth with the event loop on every call doubled the CPU time
of sending (docs/performance.md). When another connection holds the write lock, the call
waits for it in a worker thread instead, so the event loop never blocks on a lock; and WAL
checkpoints (which write and sync the database file) run in the background, off the loop.

Incremental loads: ``mark_unchanged_skipped``. Remote imports (``bulkimport remote``) have no
rows; ``add_remote_import`` keeps what was asked and answered, ``list_remote_imports`` lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.resources
import json
import logging
import os
import re
import sqlite3
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self, TypeVar

import aiosqlite

from bulkimport.errors import ConfigError, DatabaseError, RunnerBusy
from bulkimport.protocol import decode_record
from bulkimport.reader import FileFormat, cells_rebuilder
from bulkimport.rows import Batch, ClaimedRow, FileIdentity, NewRow, RowResult
from bulkimport.states import JobState, RemoteState, RowState
from bulkimport.storage.sqlite.cells import CELLS_IN_RECORD, decode_cells, encode_cells

log = logging.getLogger("bulkimport")

__all__ = ["Ingested", "Job", "Migration", "Queue", "RemoteImport", "RowView", "load_migrations"]

BUSY_TIMEOUT_MS = 10_000
# Rows written by the event loop's connection between two background WAL checkpoints: about
# the 1,000 pages at which SQLite would checkpoint by itself.
CHECKPOINT_EVERY_ROWS = 1_000
# Every connection to the queue, the ingest's included. NORMAL is durable in WAL mode against
# a process crash; only a power loss can roll back the last transactions, never corrupt the
# file. (WAL itself is a property of the file, set once by Queue.open.)
_CONNECTION_PRAGMAS = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
)

T = TypeVar("T")

_MIGRATION_NAME = re.compile(r"^(\d{3})_(\w+)\.sql$")

_JOB_COLUMNS = (
    "id, state, file_path, file_size, file_mtime_ns, file_head_sha256, target_key,"
    " settings_json, format_json, read_offset, read_line, total_rows, resent_unknown,"
    " message, created_at, updated_at, started_at, finished_at, send_rate_per_s, send_rate_at"
)
_ROW_VIEW_COLUMNS = "id, line, state, cells, record, attempts, last_code, last_message"
_REMOTE_COLUMNS = (
    "id, created_at, source, url, target_key, exetime, delrow, server_job_id, state, code,"
    " message, attempts"
)

# Storing one batch of rows: the reading position moves with the rows, in one transaction.
_ADVANCE_READING = (
    "UPDATE jobs SET read_offset = ?, read_line = ?, total_rows = total_rows + ?,"
    " updated_at = ? WHERE id = ? AND state = 'reading'"
)
_INSERT_ROWS = (
    "INSERT INTO rows (job_id, line, state, record, cells, last_code, last_message,"
    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Rows per state are counted by the code that moves them, once per statement, in the same
# transaction (see migrations/001_initial.sql and 005_lighter_sending.sql).
_COUNT_INSERTS = "UPDATE job_counts SET n = n + ? WHERE job_id = ? AND state = ?"
# Built by the first incremental load of a database (mark_unchanged_skipped), then kept.
_DONE_RECORD_INDEX = (
    "CREATE INDEX IF NOT EXISTS rows_done_record ON rows (record) WHERE state = 'done'"
)

# Claiming: the rows are chosen and marked in one statement (in the transaction that also
# counts them), so no other claimer can take them in between. The outer `state = 'pending'`
# is redundant with the subquery; it states the guarantee where the update happens.
_CLAIM = (
    "UPDATE rows SET state = 'in_flight', updated_at = ?"
    " WHERE state = 'pending' AND id IN (SELECT id FROM rows INDEXED BY rows_pending"
    " WHERE job_id = ? AND state = 'pending'"
    " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
    " ORDER BY id LIMIT ?)"
    " RETURNING id, line, record, attempts"
)
_RECORD = (
    "UPDATE rows SET state = ?, next_attempt_at = ?, attempts = attempts + ?,"
    " last_code = ?, last_message = ?, updated_at = ?"
    " WHERE id = ? AND job_id = ? AND state = 'in_flight'"
)

# The same expression as the rows_problem partial index, so that SQLite can use it.
_PROBLEM_WHERE = (
    "(state IN ('rejected', 'failed', 'invalid') OR (state = 'pending' AND last_code IS NOT NULL))"
)


@dataclass(frozen=True)
class Job:
    """One import of one file to one target, as stored."""

    id: int
    state: JobState
    file: FileIdentity
    target_key: str
    settings: dict[str, Any]
    fmt_json: str
    read_offset: int  # byte offset in the file after the last committed batch
    read_line: int  # physical line number of the last committed batch
    total_rows: int
    resent_unknown: int  # rows sent again after a runner died with them in flight
    message: str | None  # why the job last stopped
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    send_rate_per_s: float | None = None  # rows settled per second, last measured
    send_rate_at: float | None = None  # when it was measured (Unix seconds)


class RowView(NamedTuple):
    """One stored row, for reports."""

    id: int
    line: int
    state: RowState
    cells: tuple[str, ...]
    record: str | None
    attempts: int
    last_code: str | None
    last_message: str | None


@dataclass(frozen=True)
class RemoteImport:
    """One ``source=http|ftp`` import as recorded: what was asked, what the server said."""

    id: int
    created_at: float
    source: str  # "http" or "ftp"
    url: str  # the file's URL, credentials taken out
    target_key: str
    exetime: str
    delrow: str
    server_job_id: str | None  # set when the server accepted it
    state: RemoteState
    code: str | None
    message: str | None
    attempts: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "source": self.source,
            "url": self.url,
            "target": self.target_key,
            "exetime": self.exetime,
            "delrow": self.delrow,
            "server_job_id": self.server_job_id,
            "state": self.state.value,
            "code": self.code,
            "message": self.message,
            "attempts": self.attempts,
        }


class Ingested(NamedTuple):
    """Progress of ``Queue.ingest``, after each committed batch."""

    rows: int  # rows stored by this ingest so far
    end_offset: int  # byte offset where reading resumes
    next_line: int  # line number where reading resumes


class Migration(NamedTuple):
    """One numbered schema change: ``NNN_name.sql``."""

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The migrations shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in importlib.resources.files("bulkimport.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise DatabaseError(f"two migrations share a version number: {versions}")
    return found


def _split_statements(script: str) -> list[str]:
    """Split a script into statements (trigger bodies included) to run inside a transaction.

    ``executescript`` would commit first, so a migration could not be all-or-nothing.
    """
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if _strip_comments(statement):
                statements.append(statement)
    if _strip_comments(buffer):
        raise DatabaseError(f"incomplete SQL statement at the end of a migration: {buffer!r}")
    return statements


def _strip_comments(sql: str) -> str:
    return "\n".join(
        line for line in sql.splitlines() if line.strip() and not line.strip().startswith("--")
    ).strip()


def _check_no_password(settings: Mapping[str, Any], where: str = "settings") -> None:
    """Refuse settings that still carry a password: it must never reach the database."""
    for key, value in settings.items():
        name = str(key).lower()
        # `password_env` names the variable that holds the password: not a secret itself.
        if "password" in name and not name.endswith("_env") and value not in (None, ""):
            raise ConfigError(
                f"refusing to store {where}[{key!r}]: a password is never written to the database"
            )
        if isinstance(value, Mapping):
            _check_no_password(value, f"{where}[{key!r}]")


def _job_from_row(row: sqlite3.Row | tuple[Any, ...]) -> Job:
    return Job(
        id=row[0],
        state=JobState(row[1]),
        file=FileIdentity(row[2], row[3], row[4], row[5]),
        target_key=row[6],
        settings=json.loads(row[7]),
        fmt_json=row[8],
        read_offset=row[9],
        read_line=row[10],
        total_rows=row[11],
        resent_unknown=row[12],
        message=row[13],
        created_at=row[14],
        updated_at=row[15],
        started_at=row[16],
        finished_at=row[17],
        send_rate_per_s=row[18],
        send_rate_at=row[19],
    )


Rebuild = Callable[[str], tuple[str, ...]]


def _rebuilder(fmt_json: str) -> Rebuild | None:
    """How to rebuild the cells stored as ``CELLS_IN_RECORD`` for a job of this format."""
    try:
        return cells_rebuilder(FileFormat.from_json(fmt_json))
    except (ValueError, TypeError, KeyError):
        return None


def _record_width(fmt_json: str) -> int:
    """The width of the rows of a job of this format that may be stored without their cells
    (the number of fields), or 0 if none may."""
    if _rebuilder(fmt_json) is None:
        return 0
    return len(FileFormat.from_json(fmt_json).fields)


def _view_from_row(row: sqlite3.Row | tuple[Any, ...], rebuild: Rebuild | None) -> RowView:
    text, record = row[3], row[4]
    if text == CELLS_IN_RECORD and record is not None:
        # Stored once, in the record (cells.py). Without the job's format (never
        # expected) the record's values are the best that can be given back.
        cells = rebuild(record) if rebuild else tuple(v for _, v in decode_record(record))
    else:
        cells = decode_cells(text)
    return RowView(
        id=row[0],
        line=row[1],
        state=RowState(row[2]),
        cells=cells,
        record=row[4],
        attempts=row[5],
        last_code=row[6],
        last_message=row[7],
    )


def _remote_from_row(row: sqlite3.Row | tuple[Any, ...]) -> RemoteImport:
    return RemoteImport(
        id=row[0],
        created_at=row[1],
        source=row[2],
        url=row[3],
        target_key=row[4],
        exetime=row[5],
        delrow=row[6],
        server_job_id=row[7],
        state=RemoteState(row[8]),
        code=row[9],
        message=row[10],
        attempts=row[11],
    )


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """True when ``exc`` says that another connection holds a lock (SQLITE_BUSY/LOCKED)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """``Queue._transaction`` for a plain ``sqlite3`` connection in autocommit mode."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # A failed COMMIT (SQLITE_BUSY) leaves the transaction open: end it, so that the
        # whole of it can be tried again.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _count_params(job_id: int, moves: Mapping[str, int]) -> list[tuple[int, int, str]]:
    """The ``_COUNT_INSERTS`` parameters that apply ``moves`` (state → rows gained, negative
    when lost) to the job's counters, in the transaction that moved the rows."""
    return [(n, job_id, state) for state, n in moves.items() if n]


def _moved(source: str, target: str, rows: int) -> dict[str, int]:
    """``rows`` rows moved from state ``source`` to state ``target``."""
    return {source: -rows, target: rows}


def _stored_cells(width: int, cells: tuple[str, ...], state: RowState) -> str:
    """The cells column of a row: nothing when it is pending with ``width`` cells, so that its
    record holds them all (a third less to write for most files), else the cells."""
    if state is RowState.PENDING and len(cells) == width:
        return CELLS_IN_RECORD
    return encode_cells(cells)


def _store_batch(
    conn: sqlite3.Connection, job_id: int, batch: Batch, width: int, now: float
) -> None:
    """Insert the batch's rows, count them, and move the job's reading position past them.

    ``width``: pending rows with this many cells are stored without them (their record holds
    them all, see ``cells.py``); 0 when the job's format cannot give them back.

    The caller holds the transaction: rows and position are committed together or not at
    all, which is what makes a line stored exactly once across interruptions.
    """
    rows = batch.rows
    touched = conn.execute(
        _ADVANCE_READING, (batch.end_offset, batch.next_line, len(rows), now, job_id)
    ).rowcount
    if touched != 1:
        raise DatabaseError(f"job {job_id} is not being read; cannot add rows to it")
    if not rows:
        return
    # Columns, then parameter tuples, built by zip in C: no Python code per row but the
    # cells' encoding. States are StrEnums, which sqlite3 binds as their text.
    lines, states, records, cells, reasons, messages = zip(*rows, strict=True)
    if width:
        stored = map(partial(_stored_cells, width), cells, states)
    else:
        stored = map(encode_cells, cells)
    conn.executemany(
        _INSERT_ROWS,
        zip(
            repeat(job_id),
            lines,
            states,
            records,
            stored,
            reasons,
            messages,
            repeat(now),
            repeat(now),
        ),
    )
    conn.executemany(_COUNT_INSERTS, [(n, job_id, state) for state, n in Counter(states).items()])


class Queue:
    """The queue database. Open with ``await Queue.open(path)`` (or ``async with``).

    One ``Queue`` holds one connection; its methods may be called from several tasks, since
    they are serialised by a lock. ``ingest`` (and ``add_rows``) write through a connection
    of their own, in a worker thread, and wait for SQLite's write lock like any process.
    Several processes may open the same file (readers such as ``status``), but only the
    holder of ``runner_lock()`` should send.
    """

    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        """Use ``Queue.open``: it connects, configures and migrates."""
        self.path = path
        self._conn = conn
        self._lock = asyncio.Lock()
        # The sending path's connection, used on the event loop's thread (see the module's
        # documentation); opened by Queue.open once the schema is up to date.
        self._loop_conn: sqlite3.Connection | None = None
        self._written_since_checkpoint = 0
        self._checkpoint: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- opening and closing

    @classmethod
    async def open(cls, path: Path | str) -> Queue:
        """Open (or create) the database at ``path`` and bring its schema up to date.

        Raises ``DatabaseError`` if the directory does not exist, the file is not a SQLite
        database, or it was written by a newer bulkimport.
        """
        path = Path(path)
        if path.is_dir():
            raise DatabaseError(f"{path} is a directory; give --db a file name")
        if not path.parent.is_dir():
            raise DatabaseError(
                f"cannot create the database {path}: directory {path.parent} does not exist"
            )
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open the database {path}: {exc}") from exc
        queue = cls(path, conn)
        try:
            await queue._configure()
            await queue._migrate()
            queue._loop_conn = queue._connect_loop_conn()
        except sqlite3.DatabaseError as exc:
            await conn.close()
            raise DatabaseError(
                f"{path} is not a usable bulkimport database ({exc}); "
                "give --db another file, or move this one away"
            ) from exc
        except BaseException:
            await conn.close()
            raise
        return queue

    async def close(self) -> None:
        """Close the connections (committed data is already on disk)."""
        try:
            if self._checkpoint is not None and not self._checkpoint.done():
                await asyncio.wait({self._checkpoint})
            # A call of the sending path may still be waiting for the write lock in a thread,
            # with this connection; it holds the queue's lock until the thread is done.
            async with self._lock:
                if self._loop_conn is not None:
                    self._loop_conn.close()
                    self._loop_conn = None
        finally:
            await self._conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _configure(self) -> None:
        for pragma in _CONNECTION_PRAGMAS:
            await self._conn.execute(pragma)
        # journal_mode is the first statement to read the file: a non-database fails here.
        cursor = await self._conn.execute("PRAGMA journal_mode = WAL")
        mode = await cursor.fetchone()
        await cursor.close()
        if mode is None or str(mode[0]).lower() != "wal":
            raise DatabaseError(
                f"cannot use write-ahead logging for {self.path} (journal mode {mode}); "
                "put the database on a local disk"
            )

    def _connect_loop_conn(self) -> sqlite3.Connection:
        """The connection of the sending path: no waiting for locks (``_on_loop`` waits in a
        thread instead) and no automatic checkpoints (``_written`` starts them off the loop).
        """
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            for pragma in _CONNECTION_PRAGMAS:
                conn.execute(pragma)
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            conn.close()
            raise
        return conn

    async def _on_loop(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the sending path's connection; the caller holds ``self._lock``.

        ``work`` is one statement in autocommit mode or one ``_immediate`` transaction, so a
        "database is locked" leaves nothing done: it is then run again in a worker thread
        that waits for the lock (up to the busy timeout) while the event loop goes on.
        """
        conn = self._loop_conn
        if conn is None:
            raise DatabaseError(f"the queue {self.path} is closed")
        try:
            return work(conn)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise

        def patiently() -> T:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            try:
                return work(conn)
            finally:
                conn.execute("PRAGMA busy_timeout = 0")

        waiting = asyncio.ensure_future(asyncio.to_thread(patiently))
        try:
            return await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # The thread goes on with the connection: keep the caller's lock until it ends,
            # however often this task is cancelled meanwhile (a second Ctrl-C, a shutdown).
            while not waiting.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({waiting})
            if not waiting.cancelled():
                waiting.exception()  # seen: its outcome goes with the cancellation
            raise

    def _written(self, rows: int) -> None:
        """Count rows written by the sending path; every thousand or so, start a WAL
        checkpoint in the other connection's thread. Copying pages into the database file
        and syncing it would otherwise stall the event loop (the sending path's connection
        does not checkpoint by itself)."""
        self._written_since_checkpoint += rows
        if self._written_since_checkpoint < CHECKPOINT_EVERY_ROWS:
            return
        if self._checkpoint is not None and not self._checkpoint.done():
            return
        self._written_since_checkpoint = 0
        self._checkpoint = asyncio.ensure_future(self._run_checkpoint())

    async def _run_checkpoint(self) -> None:
        # Under the queue's lock, so no write of ours starts meanwhile: the checkpoint copies
        # the whole log, and the next write starts the log over from its beginning. (Beside
        # a stream of writes a checkpoint never catches up, and the log would grow by every
        # row sent.) HTTP calls go on meanwhile; only claims and records wait.
        async with self._lock:
            try:
                cursor = await self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                await cursor.close()
            except sqlite3.Error as exc:  # the next one catches up; the data is in the log
                log.debug("checkpoint of %s failed: %s", self.path, exc)

    async def _migrate(self) -> None:
        migrations = load_migrations()
        known = {m.version for m in migrations}
        await self._conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        for migration in migrations:
            async with self._transaction():
                # Read inside the write transaction: another process may have just migrated.
                applied = {
                    row[0]
                    for row in await self._conn.execute_fetchall(
                        "SELECT version FROM schema_migrations"
                    )
                }
                newer = sorted(applied - known)
                if newer:
                    raise DatabaseError(
                        f"{self.path} was written by a newer bulkimport (schema version "
                        f"{newer[-1]}, this one knows up to {max(known)}); "
                        "upgrade bulkimport or use another --db"
                    )
                if migration.version in applied:
                    continue
                for statement in _split_statements(migration.sql):
                    await self._conn.execute(statement)
                await self._conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction, committed on success, rolled back otherwise.

        IMMEDIATE takes the write lock up front, so a transaction that reads then writes
        never fails half-way with SQLITE_BUSY; other writers wait up to the busy timeout.
        """
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
            yield
        except BaseException:
            # Also when cancelled while waiting for BEGIN: the database thread runs it anyway,
            # maybe after this point, so the ROLLBACK is always sent (the thread runs requests
            # in order) and "no transaction is active" means BEGIN had failed. Left open, the
            # transaction would make every later BEGIN of this connection fail.
            with contextlib.suppress(sqlite3.OperationalError):
                await self._conn.execute("ROLLBACK")
            raise
        await self._conn.execute("COMMIT")

    # ------------------------------------------------------------------------ runner lock

    @contextlib.asynccontextmanager
    async def runner_lock(self) -> AsyncIterator[None]:
        """Prove that this process is the only runner for this database while inside.

        Takes an exclusive, non-blocking ``flock`` on ``<db>.lock`` and writes the pid in it.
        The OS drops the lock when the process dies, even on ``kill -9``, so a stale lock
        file never blocks anyone. Raises ``RunnerBusy`` if another holder exists.
        """
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                raise RunnerBusy(
                    f"another bulkimport is already sending from {self.path} "
                    f"(pid {holder}); wait for it to finish"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            try:
                yield
            finally:
                # Empty the file before unlocking so that nobody reads a stale pid.
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------------------ jobs

    async def create_job(
        self,
        file: FileIdentity,
        target_key: str,
        settings: Mapping[str, Any],
        fmt_json: str,
    ) -> Job:
        """Create a job in state ``reading`` for ``file`` sent to ``target_key``.

        ``settings`` must not carry a password (``ConfigError`` if a key containing
        "password" has a non-empty value).
        """
        _check_no_password(settings)
        settings_json = json.dumps(dict(settings), ensure_ascii=False, sort_keys=True)
        now = time.time()
        async with self._lock, self._transaction():
            cursor = await self._conn.execute(
                "INSERT INTO jobs (state, file_path, file_size, file_mtime_ns, file_head_sha256,"
                " target_key, settings_json, format_json, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    JobState.READING.value,
                    file.path,
                    file.size,
                    file.mtime_ns,
                    file.head_sha256,
                    target_key,
                    settings_json,
                    fmt_json,
                    now,
                    now,
                ),
            )
            job_id = cursor.lastrowid
            await cursor.close()
            assert job_id is not None
            return await self._get_job(job_id)

    async def find_unfinished_job(self, file: FileIdentity, target_key: str) -> Job | None:
        """The latest unfinished job for the same file (path, size, mtime, head) and target."""
        async with self._lock:
            rows = await self._conn.execute_fetchall(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE file_path = ? AND target_key = ?"
                " AND file_size = ? AND file_mtime_ns = ? AND file_head_sha256 = ?"
                " AND state <> ? ORDER BY id DESC LIMIT 1",
                (
                    file.path,
                    target_key,
                    file.size,
                    file.mtime_ns,
                    file.head_sha256,
                    JobState.FINISHED.value,
                ),
            )
        return _job_from_row(next(iter(rows))) if rows else None

    async def latest_unfinished_job(self) -> Job | None:
        """The most recently created job that is not finished, if any."""
        async with self._lock:
            rows = await self._conn.execute_fetchall(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state <> ? ORDER BY id DESC LIMIT 1",
                (JobState.FINISHED.value,),
            )
        return _job_from_row(next(iter(rows))) if rows else None

    async def get_job(self, job_id: int) -> Job:
        """The job ``job_id``; ``ConfigError`` if there is none."""
        async with self._lock:
            return await self._get_job(job_id)

    async def _get_job(self, job_id: int) -> Job:
        rows = await self._conn.execute_fetchall(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
        )
        if not rows:
            raise ConfigError(f"no job {job_id} in {self.path}; see bulkimport jobs")
        return _job_from_row(next(iter(rows)))

    async def list_jobs(self) -> list[Job]:
        """Every job, oldest first."""
        async with self._lock:
            rows = await self._conn.execute_fetchall(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY id")
        return [_job_from_row(row) for row in rows]

    async def set_job_state(self, job_id: int, state: JobState, message: str | None = None) -> None:
        """Move a job to ``state`` and keep ``message`` as the reason (None clears it).

        ``started_at`` is set the first time the job runs; ``finished_at`` when it finishes
        (and cleared if it runs again, e.g. for ``retry``).
        """
        now = time.time()
        async with self._lock, self._transaction():
            cursor = await self._conn.execute(
                "UPDATE jobs SET state = ?, message = ?, updated_at = ?,"
                " started_at = CASE WHEN ? AND started_at IS NULL THEN ? ELSE started_at END,"
                " finished_at = CASE WHEN ? THEN ? ELSE NULL END"
                " WHERE id = ?",
                (
                    state.value,
                    message,
                    now,
                    state is JobState.RUNNING,
                    now,
                    state is JobState.FINISHED,
                    now,
                    job_id,
                ),
            )
            touched = cursor.rowcount
            await cursor.close()
            if touched != 1:
                raise ConfigError(f"no job {job_id} in {self.path}; see bulkimport jobs")

    async def record_send_rate(self, job_id: int, rate_per_s: float) -> None:
        """Keep the runner's latest sending rate with the job (for ``status`` and its ETA)."""
        async with self._lock, self._transaction():
            await self._conn.execute(
                "UPDATE jobs SET send_rate_per_s = ?, send_rate_at = ? WHERE id = ?",
                (rate_per_s, time.time(), job_id),
            )

    # ---------------------------------------------------------------------------- ingest

    async def add_rows(
        self, job_id: int, rows: Sequence[NewRow], *, read_offset: int, read_line: int
    ) -> None:
        """Store one batch of rows and the reading position after it, in one transaction.

        A crash before the commit loses the batch and the position together (reading
        starts again before it); after, both are kept: nothing lost, nothing twice.
        The job must be ``reading``. (``ingest`` does the same for a stream of batches.)
        """
        await self.ingest(job_id, [Batch(list(rows), read_offset, read_line)])

    async def ingest(
        self,
        job_id: int,
        batches: Iterable[Batch],
        *,
        on_batch: Callable[[Ingested], None] | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Store ``batches`` (e.g. ``reader.read_batches``) into the job; return how many rows.

        Each batch is one transaction, rows and reading position together, as in
        ``add_rows``. The whole loop (pulling the next batch from the iterator, so parsing
        it too, and storing it) runs in one worker thread with its own connection: no
        round trip to the event loop or the aiosqlite thread per batch. ``on_batch`` is
        called on the event loop after each commit. Setting ``stop`` ends the ingest after
        the batch being parsed or stored is committed; it is set too if this coroutine is
        cancelled, since a thread cannot be. The job must be ``reading``.
        """
        loop = asyncio.get_running_loop()
        stop = stop or threading.Event()

        def committed(progress: Ingested) -> None:
            if on_batch is not None:
                loop.call_soon_threadsafe(on_batch, progress)

        try:
            return await asyncio.to_thread(self._ingest, job_id, iter(batches), committed, stop)
        finally:
            # Normally a no-op (the thread has ended); after a cancellation (a second
            # Ctrl-C) it lets the thread end after one more batch instead of the whole file.
            stop.set()

    def _ingest(
        self,
        job_id: int,
        batches: Iterator[Batch],
        committed: Callable[[Ingested], None],
        stop: threading.Event,
    ) -> int:
        """The body of ``ingest``, in its worker thread."""
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            for pragma in _CONNECTION_PRAGMAS:
                conn.execute(pragma)
            # Rows are stored without their cells only if the job's own format can give
            # them back.
            found = conn.execute("SELECT format_json FROM jobs WHERE id = ?", (job_id,)).fetchone()
            width = _record_width(found[0]) if found else 0
            stored = 0
            for batch in batches:
                with _immediate(conn):
                    _store_batch(conn, job_id, batch, width, time.time())
                stored += len(batch.rows)
                committed(Ingested(stored, batch.end_offset, batch.next_line))
                if stop.is_set():
                    break
            return stored
        finally:
            conn.close()

    async def finish_reading(self, job_id: int) -> None:
        """Mark the whole file as read: ``reading`` → ``ready``."""
        now = time.time()
        async with self._lock, self._transaction():
            cursor = await self._conn.execute(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ? AND state = ?",
                (JobState.READY.value, now, job_id, JobState.READING.value),
            )
            touched = cursor.rowcount
            await cursor.close()
            if touched != 1:
                raise DatabaseError(f"job {job_id} is not being read; cannot finish reading it")

    # --------------------------------------------------------------------------- sending

    async def recover_in_flight(self, job_id: int) -> int:
        """Give back the rows a dead runner left in flight; return how many.

        They may have reached the server, so they are counted in ``resent_unknown``;
        their attempts stay as they were. Call it under ``runner_lock()`` before sending.
        """
        now = time.time()
        async with self._lock, self._transaction():
            cursor = await self._conn.execute(
                "UPDATE rows SET state = 'pending', updated_at = ?"
                " WHERE job_id = ? AND state = 'in_flight'",
                (now, job_id),
            )
            recovered = cursor.rowcount
            await cursor.close()
            if recovered:
                await self._conn.executemany(
                    _COUNT_INSERTS, _count_params(job_id, _moved("in_flight", "pending", recovered))
                )
                await self._conn.execute(
                    "UPDATE jobs SET resent_unknown = resent_unknown + ?, updated_at = ?"
                    " WHERE id = ?",
                    (recovered, now, job_id),
                )
        return recovered

    async def claim_batch(self, job_id: int, limit: int, *, now_s: float) -> list[ClaimedRow]:
        """Claim up to ``limit`` pending rows that are due at ``now_s``, in line order.

        They become ``in_flight`` in the same statement that selects them, so no other
        claimer can take them in between, and only rows still ``pending`` are returned.
        A claimer cancelled meanwhile gives the rows back (``pending``) before it ends.
        """
        if limit <= 0:
            return []
        claim = asyncio.ensure_future(self._claim(job_id, limit, now_s))
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            # The claim goes on in the database thread whatever happens here, and nobody
            # would send its rows: left in flight they would count as resent after an
            # unknown outcome at the next start. Give them back instead.
            rows = await claim
            await self.release(job_id, [row.id for row in rows])
            raise

    async def _claim(self, job_id: int, limit: int, now_s: float) -> list[ClaimedRow]:
        def claim(conn: sqlite3.Connection) -> list[Any]:
            with _immediate(conn):
                rows = conn.execute(_CLAIM, (now_s, job_id, now_s, limit)).fetchall()
                moved = _moved("pending", "in_flight", len(rows))
                conn.executemany(_COUNT_INSERTS, _count_params(job_id, moved))
            return rows

        async with self._lock:
            claimed = await self._on_loop(claim)
            self._written(len(claimed))
        # RETURNING gives no order: id order is line order.
        return sorted(map(ClaimedRow._make, claimed))

    async def next_attempt_at(self, job_id: int) -> float | None:
        """When the earliest pending row is due (0.0 if one is due now); None if none pend."""

        def earliest(conn: sqlite3.Connection) -> tuple[Any, ...]:
            return tuple(
                conn.execute(
                    "SELECT MIN(COALESCE(next_attempt_at, 0.0)), COUNT(*) FROM rows"
                    " INDEXED BY rows_pending WHERE job_id = ? AND state = 'pending'",
                    (job_id,),
                ).fetchone()
            )

        async with self._lock:
            first, count = await self._on_loop(earliest)
        return float(first) if count else None

    async def record_results(self, job_id: int, results: Sequence[RowResult]) -> int:
        """Record the outcome of a batch of attempts, in one transaction; return how many.

        Each result makes its row terminal, or ``pending`` again at ``next_attempt_at_s``.
        ``attempts`` grows by one when the result is ``counted``. Rows that are not
        ``in_flight`` in this job (already recorded, recovered, released) are left alone.
        """
        if not results:
            return 0
        now = time.time()
        params: list[tuple[Any, ...]] = []
        for result in results:
            state = result.state
            if state is RowState.IN_FLIGHT:
                raise ValueError(f"row {result.row_id}: a result cannot leave it in_flight")
            retry_at = result.next_attempt_at_s if state is RowState.PENDING else None
            params.append(
                (
                    state,  # a StrEnum: bound as its text, grouped by it in _record
                    retry_at,
                    1 if result.counted else 0,
                    result.code,
                    result.message,
                    now,
                    result.row_id,
                    job_id,
                )
            )
        write = asyncio.ensure_future(self._record(job_id, params))
        try:
            return await asyncio.shield(write)
        except asyncio.CancelledError:
            # The caller has taken these outcomes off its hands: a cancellation (a stop, a
            # shutdown) must not lose them between BEGIN and COMMIT. Finish, then go.
            await write
            raise

    async def _record(self, job_id: int, params: list[tuple[Any, ...]]) -> int:
        by_state: dict[str, list[tuple[Any, ...]]] = {}
        for row in params:
            by_state.setdefault(row[0], []).append(row)

        def record(conn: sqlite3.Connection) -> int:
            # One statement per target state (usually one in all), so that its row count
            # says exactly how many rows moved there.
            moves: Counter[str] = Counter()
            with _immediate(conn):
                for state, rows in by_state.items():
                    moved = conn.executemany(_RECORD, rows).rowcount
                    moves["in_flight"] -= moved
                    moves[state] += moved
                conn.executemany(_COUNT_INSERTS, _count_params(job_id, moves))
            return -moves["in_flight"]

        async with self._lock:
            recorded = await self._on_loop(record)
            self._written(recorded)
        return recorded

    async def release(self, job_id: int, row_ids: Iterable[int]) -> int:
        """Give back rows claimed but never sent (``in_flight`` → ``pending``); return how many.

        Their attempts stay as they were.
        """
        now = time.time()
        params = [(now, row_id, job_id) for row_id in row_ids]
        if not params:
            return 0

        def release(conn: sqlite3.Connection) -> int:
            with _immediate(conn):
                released = conn.executemany(
                    "UPDATE rows SET state = 'pending', updated_at = ?"
                    " WHERE id = ? AND job_id = ? AND state = 'in_flight'",
                    params,
                ).rowcount
                moved = _moved("in_flight", "pending", released)
                conn.executemany(_COUNT_INSERTS, _count_params(job_id, moved))
            return released

        async with self._lock:
            released = await self._on_loop(release)
            self._written(released)
        return released

    # ------------------------------------------------------------------------- reporting

    async def counts(self, job_id: int) -> dict[RowState, int]:
        """Rows of the job per state; every state is present, zeros included."""
        async with self._lock:
            rows = await self._conn.execute_fetchall(
                "SELECT state, n FROM job_counts WHERE job_id = ?", (job_id,)
            )
        counts = dict.fromkeys(RowState, 0)
        for state, n in rows:
            counts[RowState(state)] = n
        return counts

    async def last_errors(self, job_id: int, limit: int = 5) -> list[RowView]:
        """The most recent problem rows: rejected, failed, invalid, or pending after an error."""
        async with self._lock:
            rows = await self._conn.execute_fetchall(
                f"SELECT {_ROW_VIEW_COLUMNS} FROM rows"
                f" WHERE job_id = ? AND {_PROBLEM_WHERE}"
                " ORDER BY updated_at DESC, id DESC LIMIT ?",
                (job_id, limit),
            )
            rebuild = await self._cells_rebuilder(job_id) if rows else None
        return [_view_from_row(row, rebuild) for row in rows]

    async def _cells_rebuilder(self, job_id: int) -> Rebuild | None:
        """For the job's rows stored without their cells; the caller holds the lock."""
        found = await self._conn.execute_fetchall(
            "SELECT format_json FROM jobs WHERE id = ?", (job_id,)
        )
        return next((_rebuilder(fmt_json) for (fmt_json,) in found), None)

    async def iter_rows(
        self, job_id: int, states: Collection[RowState], batch: int = 1000
    ) -> AsyncIterator[RowView]:
        """Rows of the job in the given states, in line order, fetched ``batch`` at a time."""
        wanted = [RowState(state).value for state in states]
        if not wanted:
            return
        # Rows are inserted in line order, so id order is line order within a job, and the
        # table is walked along its primary key.
        after_id = 0
        sql = (
            f"SELECT {_ROW_VIEW_COLUMNS} FROM rows"
            f" WHERE id > ? AND job_id = ? AND state IN ({_placeholders(len(wanted))})"
            " ORDER BY id LIMIT ?"
        )
        async with self._lock:
            rebuild = await self._cells_rebuilder(job_id)
        while True:
            async with self._lock:
                rows = await self._conn.execute_fetchall(sql, (after_id, job_id, *wanted, batch))
            views = [_view_from_row(row, rebuild) for row in rows]
            for view in views:
                yield view
            if len(views) < batch:
                return
            after_id = views[-1].id

    async def reset_rows(self, job_id: int, states: Collection[RowState]) -> int:
        """Put rows in ``states`` back to pending (attempts 0, due now); return how many.

        Rows without a record (``invalid``: never sendable) are left as they are.
        """
        wanted = [RowState(state).value for state in states]
        if not wanted:
            return 0
        now = time.time()
        moves: Counter[str] = Counter()
        reset = 0
        async with self._lock, self._transaction():
            # One statement per state, so that each row count says how many rows it moved.
            for state in dict.fromkeys(wanted):
                cursor = await self._conn.execute(
                    "UPDATE rows SET state = 'pending', attempts = 0, next_attempt_at = NULL,"
                    " updated_at = ? WHERE job_id = ? AND state = ? AND record IS NOT NULL",
                    (now, job_id, state),
                )
                moves[state] -= cursor.rowcount
                moves["pending"] += cursor.rowcount
                reset += cursor.rowcount
                await cursor.close()
            await self._conn.executemany(_COUNT_INSERTS, _count_params(job_id, moves))
        return reset

    # ------------------------------------------------------------------ incremental loads

    async def mark_unchanged_skipped(
        self, job_id: int, target_key: str, batch: int = 20_000
    ) -> int:
        """Skip pending rows whose exact record was loaded (``done``) by an earlier job to
        the same target; return how many were skipped.

        Works through the job in batches of ``batch`` rows so that a runner never waits
        long on the write lock.
        """
        async with self._lock, self._transaction():
            # Built once, by the first incremental load (see 005_lighter_sending.sql).
            await self._conn.execute(_DONE_RECORD_INDEX)
        total = 0
        after_id = 0
        while True:
            now = time.time()
            async with self._lock, self._transaction():
                bounds = await self._conn.execute_fetchall(
                    "SELECT MAX(id), COUNT(*) FROM (SELECT id FROM rows INDEXED BY rows_pending"
                    " WHERE job_id = ? AND state = 'pending' AND id > ? ORDER BY id LIMIT ?)",
                    (job_id, after_id, batch),
                )
                last_id, seen = next(iter(bounds))
                if not seen:
                    return total
                cursor = await self._conn.execute(
                    "UPDATE rows SET state = 'skipped', updated_at = ?"
                    " WHERE job_id = ? AND state = 'pending' AND id > ? AND id <= ?"
                    " AND EXISTS (SELECT 1 FROM rows AS earlier"
                    " INDEXED BY rows_done_record JOIN jobs ON jobs.id = earlier.job_id"
                    " WHERE earlier.record = rows.record AND earlier.state = 'done'"
                    " AND jobs.target_key = ? AND jobs.id < ?)",
                    (now, job_id, after_id, last_id, target_key, job_id),
                )
                skipped = cursor.rowcount
                await cursor.close()
                await self._conn.executemany(
                    _COUNT_INSERTS, _count_params(job_id, _moved("pending", "skipped", skipped))
                )
                total += skipped
            after_id = last_id

    # -------------------------------------------------------------------- remote imports

    async def add_remote_import(
        self,
        *,
        source: str,
        url: str,
        target_key: str,
        exetime: str,
        delrow: str,
        server_job_id: str | None,
        state: RemoteState,
        code: str | None,
        message: str | None,
        attempts: int,
    ) -> RemoteImport:
        """Record one remote import; ``url`` must hold no credentials (``ConfigError``)."""
        parts = urllib.parse.urlsplit(url)
        if parts.username is not None or parts.password is not None:
            raise ConfigError("refusing to store a URL that holds credentials")
        async with self._lock, self._transaction():
            cursor = await self._conn.execute(
                "INSERT INTO remote_imports (created_at, source, url, target_key, exetime,"
                " delrow, server_job_id, state, code, message, attempts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    source,
                    url,
                    target_key,
                    exetime,
                    delrow,
                    server_job_id,
                    state.value,
                    code,
                    message,
                    attempts,
                ),
            )
            remote_id = cursor.lastrowid
            await cursor.close()
            rows = await self._conn.execute_fetchall(
                f"SELECT {_REMOTE_COLUMNS} FROM remote_imports WHERE id = ?", (remote_id,)
            )
        return _remote_from_row(next(iter(rows)))

    async def list_remote_imports(self) -> list[RemoteImport]:
        """Every remote import, oldest first."""
        async with self._lock:
            rows = await self._conn.execute_fetchall(
                f"SELECT {_REMOTE_COLUMNS} FROM remote_imports ORDER BY id"
            )
        return [_remote_from_row(row) for row in rows]
