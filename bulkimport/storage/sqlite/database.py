"""One SQLite queue file: recognising it, its schema, its connections and its transactions.

Each write is one ``BEGIN IMMEDIATE`` transaction that has committed when the method returns;
with WAL and ``synchronous=NORMAL`` a killed process (even ``kill -9``) loses nothing
committed. The schema comes from the numbered ``.sql`` files of ``bulkimport.migrations``,
applied in order and recorded in ``schema_migrations``.

A bulkimport database says so in its header (``PRAGMA application_id``): any other file is
refused before a byte of it is written, and a database opened for reading only (or without
``create``) is neither created nor migrated.

A full disk (SQLITE_FULL, ENOSPC) becomes ``DiskFull`` wherever it is met: a write that could
not commit left nothing done, so the job resumes once there is room again.

Three connections, each for a reason:
- ``conn`` (aiosqlite, its own thread): jobs, reports, migrations, checkpoints;
- ``loop_conn`` (sqlite3, on the event loop's thread): the sending path, a millisecond or two
  of SQLite per batch of rows, where a thread hop would cost more than the work (handing the
  GIL back and forth with the event loop doubled the CPU time of sending;
  docs/performance.md). It never waits for a lock on the loop: "database is locked" makes
  ``on_loop`` run the same work again in a worker thread that waits;
- a connection per ingest, in the ingest's own worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.resources
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import NamedTuple, TypeVar

import aiosqlite

from bulkimport.errors import DatabaseError, DiskFull
from bulkimport.portable import create_private
from bulkimport.storage.sqlite.digests import SQL_FUNCTIONS

log = logging.getLogger("bulkimport")

T = TypeVar("T")

#: The header mark of a bulkimport database ("BIMP"), set by migration 007.
APPLICATION_ID = 0x42494D50
BUSY_TIMEOUT_MS = 10_000
# Rows written by the event loop's connection between two background WAL checkpoints: about
# the 1,000 pages at which SQLite would checkpoint by itself.
CHECKPOINT_EVERY_ROWS = 1_000
# Every connection to the queue, the ingest's included. NORMAL is durable in WAL mode against
# a process crash; only a power loss can roll back the last transactions, never corrupt the
# file. (WAL itself is a property of the file, set once when it is created.)
CONNECTION_PRAGMAS = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_MIGRATION_NAME = re.compile(r"^(\d{3})_(\w+)\.sql$")

# Rows per state are counted by the code that moves them, once per statement, in the same
# transaction (see migrations/001_initial.sql and 005_lighter_sending.sql).
COUNT_MOVES = "UPDATE job_counts SET n = n + ? WHERE job_id = ? AND state = ?"


def count_params(job_id: int, moves: Mapping[str, int]) -> list[tuple[int, int, str]]:
    """The ``COUNT_MOVES`` parameters that apply ``moves`` (state → rows gained, negative
    when lost) to the job's counters, in the transaction that moved the rows."""
    return [(n, job_id, state) for state, n in moves.items() if n]


def moved(source: str, target: str, rows: int) -> dict[str, int]:
    """``rows`` rows moved from state ``source`` to state ``target``."""
    return {source: -rows, target: rows}


def placeholders(n: int) -> str:
    return ",".join("?" * n)


class Migration(NamedTuple):
    """One numbered schema change: ``NNN_name.sql``."""

    version: int
    name: str
    sql: str


def read_only_uri(path: Path) -> str:
    """The URI that opens ``path`` read-only: escaped, so that a folder named ``#1``, ``50%``
    or ``what?`` is the folder and not the URI's fragment or query."""
    return Path(path).absolute().as_uri() + "?mode=ro"


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


class FileKind(Enum):
    """What a ``--db`` path holds, told from its header without writing to it."""

    MISSING = "missing"  # no file, or an empty one: a database may be created there
    OURS = "ours"  # a bulkimport database (its application id)
    FOREIGN = "foreign"  # a SQLite database of something else, or not SQLite at all


def inspect_file(path: Path) -> FileKind:
    """Whether ``path`` is a bulkimport database, from its first 100 bytes (the SQLite
    header) and, for a database written before the header mark, its tables."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except FileNotFoundError:
        return FileKind.MISSING
    except OSError as exc:
        raise DatabaseError(f"cannot read {path} ({exc.strerror or exc})") from None
    if not header:
        return FileKind.MISSING
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        return FileKind.FOREIGN
    application_id = int.from_bytes(header[68:72], "big")
    if application_id == APPLICATION_ID:
        return FileKind.OURS
    if application_id != 0:
        return FileKind.FOREIGN
    # Written before the mark (schema version 6 or older), or by something else.
    try:
        with contextlib.closing(sqlite3.connect(read_only_uri(path), uri=True)) as conn:
            tables = {
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
    except sqlite3.Error:
        return FileKind.FOREIGN
    return FileKind.OURS if {"schema_migrations", "jobs", "rows"} <= tables else FileKind.FOREIGN


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """True when ``exc`` says that another connection holds a lock (SQLITE_BUSY/LOCKED)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def is_full(exc: BaseException) -> bool:
    """True when ``exc`` says that the disk (or the user's quota) is full."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(path: Path) -> DiskFull:
    """The error for a write to the queue at ``path`` that found no room."""
    return DiskFull(
        f"the disk holding {path} is full; nothing committed is lost: free some space, "
        "then resume the job"
    )


@contextlib.contextmanager
def full_is_disk_full(path: Path) -> Iterator[None]:
    """Turn a full disk met inside into ``DiskFull`` (other errors pass)."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        if is_full(exc):
            raise disk_full(path) from exc
        raise


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE`` transaction on a plain ``sqlite3`` connection in autocommit
    mode, committed on success, rolled back otherwise."""
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


def connect(path: Path) -> sqlite3.Connection:
    """A plain connection with the queue's pragmas and functions (for a worker thread)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        for pragma in CONNECTION_PRAGMAS:
            conn.execute(pragma)
        for name, arguments, function in SQL_FUNCTIONS:
            conn.create_function(name, arguments, function, deterministic=True)
    except BaseException:
        conn.close()
        raise
    return conn


class Database:
    """The connections to one queue file, and the lock that serialises their use."""

    def __init__(self, path: Path, conn: aiosqlite.Connection, *, read_only: bool) -> None:
        """Use ``Database.open``: it checks, connects, configures and migrates."""
        self.path = path
        self.conn = conn
        self.read_only = read_only
        self.lock = asyncio.Lock()
        self.loop_conn: sqlite3.Connection | None = None
        self._written_since_checkpoint = 0
        self._checkpoint: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, path: Path | str, *, read_only: bool = False, create: bool = True
    ) -> Database:
        """Open the queue database at ``path``, creating it (unless ``read_only``, or not
        ``create``) and bringing its schema up to date (unless ``read_only``).

        ``DatabaseError`` (one line) for a directory, a missing folder, a file that is not a
        bulkimport database (left untouched), a database of a newer bulkimport; for a
        missing database when ``read_only`` or not ``create``, and for one that needs
        migrating when ``read_only``. ``DiskFull`` when there is no room to create or
        migrate it.
        """
        path = Path(path)
        if path.is_dir():
            raise DatabaseError(f"{path} is a directory; give --db a file name")
        kind = inspect_file(path)
        if kind is FileKind.FOREIGN:
            raise DatabaseError(
                f"{path} is not a bulkimport database; it was left untouched: "
                "give --db another file"
            )
        if kind is FileKind.MISSING:
            if read_only or not create:
                raise DatabaseError(f"{path}: no such database; run or stage a file first")
            if not path.parent.is_dir():
                raise DatabaseError(
                    f"cannot create the database {path}: directory {path.parent} does not exist"
                )
            try:
                # Leads are personal data: the file is the owner's alone before SQLite writes
                # a byte to it, and its -wal and -shm take its mode.
                create_private(path)
            except OSError as exc:
                if is_full(exc):
                    raise disk_full(path) from None
                raise DatabaseError(f"cannot create the database {path} ({exc.strerror})") from None
        target: str | Path = read_only_uri(path) if read_only else path
        try:
            conn = await aiosqlite.connect(target, isolation_level=None, uri=read_only)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open the database {path}: {exc}") from exc
        database = cls(path, conn, read_only=read_only)
        try:
            await database._configure()
            if read_only:
                await database._check_schema()
            else:
                await database._migrate()
                database.loop_conn = database._connect_loop_conn()
        except sqlite3.DatabaseError as exc:
            await conn.close()
            if is_full(exc):
                raise disk_full(path) from exc
            raise DatabaseError(
                f"{path} is not a usable bulkimport database ({exc}); "
                "give --db another file, or move this one away"
            ) from exc
        except BaseException:
            await conn.close()
            raise
        return database

    async def close(self) -> None:
        """Close the connections (committed data is already on disk)."""
        try:
            if self._checkpoint is not None and not self._checkpoint.done():
                await asyncio.wait({self._checkpoint})
            # A call of the sending path may still be waiting for the write lock in a thread,
            # with this connection; it holds the lock until the thread is done.
            async with self.lock:
                if self.loop_conn is not None:
                    self.loop_conn.close()
                    self.loop_conn = None
        finally:
            await self.conn.close()

    async def _configure(self) -> None:
        for pragma in CONNECTION_PRAGMAS:
            await self.conn.execute(pragma)
        for name, arguments, function in SQL_FUNCTIONS:
            await self.conn.create_function(name, arguments, function, deterministic=True)
        if self.read_only:
            return
        # journal_mode is the first statement to read the file: a damaged file fails here.
        cursor = await self.conn.execute("PRAGMA journal_mode = WAL")
        mode = await cursor.fetchone()
        await cursor.close()
        if mode is None or str(mode[0]).lower() != "wal":
            raise DatabaseError(
                f"cannot use write-ahead logging for {self.path} (journal mode {mode}); "
                "put the database on a local disk"
            )

    def _connect_loop_conn(self) -> sqlite3.Connection:
        """The connection of the sending path: no waiting for locks (``on_loop`` waits in a
        thread instead) and no automatic checkpoints (``written`` starts them off the loop).
        """
        conn = connect(self.path)
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            conn.close()
            raise
        return conn

    async def _applied_versions(self) -> set[int]:
        rows = await self.conn.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        )
        if not rows:
            return set()
        return {
            row[0]
            for row in await self.conn.execute_fetchall("SELECT version FROM schema_migrations")
        }

    async def _check_schema(self) -> None:
        """For a database opened read-only: its schema is the one this version knows."""
        known = {m.version for m in load_migrations()}
        applied = await self._applied_versions()
        self._refuse_newer(applied, known)
        if known - applied:
            raise DatabaseError(
                f"{self.path} was written by an older bulkimport; run `bulkimport resume` "
                "(or run, stage) on it once to bring it up to date"
            )

    def _refuse_newer(self, applied: set[int], known: set[int]) -> None:
        newer = sorted(applied - known)
        if newer:
            raise DatabaseError(
                f"{self.path} was written by a newer bulkimport (schema version "
                f"{newer[-1]}, this one knows up to {max(known)}); "
                "upgrade bulkimport or use another --db"
            )

    async def _migrate(self) -> None:
        migrations = load_migrations()
        known = {m.version for m in migrations}
        await self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        for migration in migrations:
            async with self.transaction():
                # Read inside the write transaction: another process may have just migrated.
                applied = await self._applied_versions()
                self._refuse_newer(applied, known)
                if migration.version in applied:
                    continue
                for statement in _split_statements(migration.sql):
                    await self.conn.execute(statement)
                await self.conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction on ``conn``, committed on success, rolled back
        otherwise.

        IMMEDIATE takes the write lock up front, so a transaction that reads then writes
        never fails half-way with SQLITE_BUSY; other writers wait up to the busy timeout.
        A full disk, inside or at the commit, rolls it back and raises ``DiskFull``.
        """
        try:
            await self.conn.execute("BEGIN IMMEDIATE")
            yield
            await self.conn.execute("COMMIT")
        except BaseException as exc:
            # Also when cancelled while waiting for BEGIN: the database thread runs it anyway,
            # maybe after this point, so the ROLLBACK is always sent (the thread runs requests
            # in order) and "no transaction is active" means BEGIN had failed. Left open, the
            # transaction would make every later BEGIN of this connection fail. (A failed
            # COMMIT leaves it open too.)
            with contextlib.suppress(sqlite3.OperationalError):
                await self.conn.execute("ROLLBACK")
            if is_full(exc):
                raise disk_full(self.path) from exc
            raise

    async def on_loop(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the sending path's connection; the caller holds ``lock``.

        ``work`` is one statement in autocommit mode or one ``immediate`` transaction, so a
        "database is locked" leaves nothing done: it is then run again in a worker thread
        that waits for the lock (up to the busy timeout) while the event loop goes on.
        """
        conn = self.loop_conn
        if conn is None:
            raise DatabaseError(f"the queue {self.path} is closed or read-only")
        with full_is_disk_full(self.path):
            return await self._on_loop(conn, work)

    async def _on_loop(
        self, conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]
    ) -> T:
        try:
            return work(conn)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
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

    def written(self, rows: int) -> None:
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
        # Under the lock, so no write of ours starts meanwhile: the checkpoint copies the
        # whole log, and the next write starts the log over from its beginning. (Beside a
        # stream of writes a checkpoint never catches up, and the log would grow by every
        # row sent.) HTTP calls go on meanwhile; only claims and records wait.
        async with self.lock:
            try:
                cursor = await self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                await cursor.close()
            except sqlite3.Error as exc:  # the next one catches up; the data is in the log
                log.debug("checkpoint of %s failed: %s", self.path, exc)
