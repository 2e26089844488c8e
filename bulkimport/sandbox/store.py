"""The sandbox's state in SQLite: customers, the dial list and remote import jobs.

The store is used from the event loop's thread with the standard ``sqlite3`` module: each
query takes microseconds, far less than a thread hop would cost, and the sandbox must answer
thousands of calls per second. Like the real server, it answers "imported" only once the row
is committed: a call that wrote awaits ``durable()``, which commits once for every write made
in the same turn of the event loop (a group commit: the concurrent calls share one commit,
then all their answers go). Writes no answer waits for (a remote import's lines) are committed
within ``COMMIT_INTERVAL_S``, and everything on ``close()``. WAL with ``synchronous=NORMAL``
keeps each commit cheap: a committed write survives the sandbox's crash (``kill -9``), not the
machine's power loss.

A sandbox database carries ``PRAGMA application_id = 0x42495342`` ("BISB"). ``open()`` uses an
existing file only if it has that id, is a sandbox database from before the id (recognised by
its tables), or is empty; anything else (a queue database, another program's SQLite file, a
text file) is refused with a ``DatabaseError`` before a byte is written to it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulkimport.errors import DatabaseError

COMMIT_INTERVAL_S = 0.05
#: The SQLite ``application_id`` of a sandbox database: "BISB" in ASCII.
SANDBOX_APPLICATION_ID = 0x42495342
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LEGACY_TABLES = frozenset({"customers", "diallist", "jobs", "meta"})

_DDL = """
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY,
    tbl TEXT NOT NULL,            -- 'main' (shared by packages) or 'campaign:N'
    key TEXT NOT NULL,            -- the value of the campaign's key field
    package TEXT NOT NULL,        -- campaign id, or '' for no package
    fields TEXT NOT NULL,         -- JSON object: field name -> value, as sent
    status TEXT NOT NULL DEFAULT '',
    agent TEXT NOT NULL DEFAULT '',
    writes INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (tbl, key)
);
CREATE INDEX IF NOT EXISTS customers_package ON customers (package);
CREATE TABLE IF NOT EXISTS diallist (
    id INTEGER PRIMARY KEY,
    campaign TEXT NOT NULL,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    phone TEXT NOT NULL,
    priority TEXT NOT NULL,
    dialtime TEXT NOT NULL,
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS diallist_campaign ON diallist (campaign);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    campaign TEXT NOT NULL,
    source TEXT NOT NULL,
    url TEXT NOT NULL,
    run_at REAL NOT NULL,
    delrow INTEGER NOT NULL,
    params TEXT NOT NULL,         -- JSON: the duplicate settings to import each line with
    state TEXT NOT NULL,
    lines INTEGER NOT NULL DEFAULT 0,
    codes TEXT NOT NULL DEFAULT '{}',
    error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def check_sandbox_file(path: Path) -> bool:
    """Whether ``path`` already carries the sandbox's application id; ``DatabaseError`` when it
    is not a sandbox database at all. Only reads: the header, then (for a SQLite file without
    an id) its table names through an immutable read-only connection."""

    def refuse(reason: str) -> DatabaseError:
        return DatabaseError(
            f"{path} is not a sandbox database ({reason}); the sandbox writes only to its own:"
            " give --db a new file"
        )

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise refuse(f"cannot read it: {exc.strerror}") from exc
    if path.is_dir():
        raise refuse("it is a directory")
    if size == 0:
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size:
            raise refuse("it is empty but has a write-ahead log beside it")
        return False
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
    except OSError as exc:
        raise refuse(f"cannot read it: {exc.strerror}") from exc
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise refuse("not a SQLite file")
    application_id = int.from_bytes(header[68:72], "big")
    if application_id == SANDBOX_APPLICATION_ID:
        return True
    if application_id:
        raise refuse(f"a SQLite file of another application, application_id {application_id:#x}")
    tables, columns = _read_layout(path, refuse)
    if tables == _LEGACY_TABLES and {"tbl", "key", "writes"} <= columns:
        return False  # a sandbox database from before the id: it gets the id when opened
    if not tables:
        raise refuse("a SQLite file without tables")
    raise refuse(f"a SQLite file with other tables: {', '.join(sorted(tables))}")


def _read_layout(
    path: Path, refuse: Callable[[str], DatabaseError]
) -> tuple[frozenset[str], frozenset[str]]:
    # immutable=1: no locks, no journal, no -wal or -shm file created; mode=ro: no write.
    uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
    try:
        db = sqlite3.connect(uri, uri=True)
        try:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = frozenset(str(name) for (name,) in rows)
            info = db.execute("PRAGMA table_info(customers)").fetchall()
            columns = frozenset(str(row[1]) for row in info)
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise refuse(f"SQLite cannot read it: {exc}") from exc
    return tables, columns


@dataclass(frozen=True)
class Customer:
    """One customer row as stored."""

    id: int
    table: str
    key: str
    package: str
    fields: dict[str, str]
    status: str
    agent: str
    writes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "table": self.table,
            "key": self.key,
            "package": self.package,
            "status": self.status,
            "agent": self.agent,
            "writes": self.writes,
            "fields": self.fields,
        }


_CUSTOMER_COLUMNS = "id, tbl, key, package, fields, status, agent, writes"


def _customer(row: tuple[Any, ...]) -> Customer:
    return Customer(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], row[7])


class Store:
    """Customers, dial list and jobs of one sandbox database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._commit_handle: asyncio.TimerHandle | None = None
        # The group commit the calls of this turn wait for; None when none is due.
        self._group: asyncio.Future[None] | None = None
        self._dirty = False  # written since the last commit

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the sandbox store is not open")
        return self._db

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def open(self) -> bool:
        """Open (and create) the database; True when it was created just now.

        ``DatabaseError`` when the file is not a sandbox database (nothing is written to it)
        or cannot be used."""
        stamped = check_sandbox_file(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseError(f"cannot open the sandbox database {self.path}: {exc}") from exc
        try:
            if not stamped:
                # Before WAL, so that the id is in the main file's header from the start.
                db.execute(f"PRAGMA application_id = {SANDBOX_APPLICATION_ID}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_DDL)
            created = db.execute("SELECT 1 FROM meta WHERE name = 'created_at'").fetchone() is None
            if created:
                db.execute("INSERT INTO meta VALUES ('created_at', ?)", (str(time.time()),))
            db.commit()
        except sqlite3.Error as exc:
            db.close()
            raise DatabaseError(f"cannot use the sandbox database {self.path}: {exc}") from exc
        self._db = db
        return created

    def close(self) -> None:
        """Commit what is pending and close."""
        if self._commit_handle is not None:
            self._commit_handle.cancel()
            self._commit_handle = None
        if self._db is not None:
            self._db.commit()
            self._db.close()
            self._db = None
        self._dirty = False
        if self._group is not None:
            # Calls still waiting (a stop within a turn): what they wrote is committed above.
            self._group.set_result(None)
            self._group = None

    def _written(self) -> None:
        self._dirty = True
        # Writes no answer waits for: one commit per interval however many happened in it.
        if self._commit_handle is None:
            loop = asyncio.get_running_loop()
            self._commit_handle = loop.call_later(COMMIT_INTERVAL_S, self.commit)

    async def durable(self) -> None:
        """Return once every write made so far is committed (at once if none is pending).

        The commit runs after the callbacks already due in this turn of the event loop, so
        the calls that wrote meanwhile share it; a failed commit raises in each of them."""
        if not self._dirty:
            return
        if self._group is None:
            loop = asyncio.get_running_loop()
            self._group = loop.create_future()
            loop.call_soon(self._commit_group)
        await asyncio.shield(self._group)

    def _commit_group(self) -> None:
        group, self._group = self._group, None
        try:
            self.commit()
        except sqlite3.Error as exc:
            if group is not None:
                group.set_exception(exc)
                group.exception()  # retrieved here: a call may have gone before it failed
            return
        if group is not None:
            group.set_result(None)

    def commit(self) -> None:
        if self._commit_handle is not None:
            self._commit_handle.cancel()
            self._commit_handle = None
        self._dirty = False
        if self._db is not None:
            self._db.commit()

    # --- customers ---------------------------------------------------------------------------

    def find_customer(self, table: str, key: str) -> Customer | None:
        row = self.db.execute(
            f"SELECT {_CUSTOMER_COLUMNS} FROM customers WHERE tbl = ? AND key = ?", (table, key)
        ).fetchone()
        return None if row is None else _customer(row)

    def insert_customer(
        self,
        table: str,
        key: str,
        package: str,
        fields: Mapping[str, str],
        *,
        status: str = "",
        agent: str = "",
    ) -> int:
        now = time.time()
        cursor = self.db.execute(
            "INSERT INTO customers (tbl, key, package, fields, status, agent, writes,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
            (
                table,
                key,
                package,
                json.dumps(dict(fields), ensure_ascii=False),
                status,
                agent,
                now,
                now,
            ),
        )
        self._written()
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def update_customer(self, customer: Customer) -> None:
        """Store ``customer``'s fields, package, status and agent; count one more write."""
        self.db.execute(
            "UPDATE customers SET package = ?, fields = ?, status = ?, agent = ?,"
            " writes = writes + 1, updated_at = ? WHERE id = ?",
            (
                customer.package,
                json.dumps(customer.fields, ensure_ascii=False),
                customer.status,
                customer.agent,
                time.time(),
                customer.id,
            ),
        )
        self._written()

    def set_customer(
        self,
        table: str,
        key: str,
        *,
        status: str | None = None,
        agent: str | None = None,
        package: str | None = None,
    ) -> bool:
        """Change what a call center would change (not an import: no write counted)."""
        changes = {"status": status, "agent": agent, "package": package}
        sets = [(f"{name} = ?", value) for name, value in changes.items() if value is not None]
        if not sets:
            return self.find_customer(table, key) is not None
        cursor = self.db.execute(
            f"UPDATE customers SET {', '.join(s for s, _ in sets)} WHERE tbl = ? AND key = ?",
            (*(v for _, v in sets), table, key),
        )
        self._written()
        return cursor.rowcount > 0

    def customers(self, package: str | None = None) -> list[Customer]:
        if package is None:
            rows = self.db.execute(f"SELECT {_CUSTOMER_COLUMNS} FROM customers ORDER BY id")
        else:
            rows = self.db.execute(
                f"SELECT {_CUSTOMER_COLUMNS} FROM customers WHERE package = ? ORDER BY id",
                (package,),
            )
        return [_customer(row) for row in rows]

    # --- dial list ---------------------------------------------------------------------------

    def add_to_diallist(
        self, campaign: str, customer_id: int, phone: str, priority: str, dialtime: str
    ) -> None:
        self.db.execute(
            "INSERT INTO diallist (campaign, customer_id, phone, priority, dialtime, added_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (campaign, customer_id, phone, priority, dialtime, time.time()),
        )
        self._written()

    def diallist(self, campaign: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, campaign, customer_id, phone, priority, dialtime, added_at FROM diallist"
        rows = (
            self.db.execute(sql + " ORDER BY id")
            if campaign is None
            else self.db.execute(sql + " WHERE campaign = ? ORDER BY id", (campaign,))
        )
        names = ("id", "model_id", "customer_id", "phone", "priority", "dialtime", "added_at")
        return [dict(zip(names, row, strict=True)) for row in rows]

    # --- remote import jobs ------------------------------------------------------------------

    def create_job(
        self,
        campaign: str,
        source: str,
        url: str,
        run_at: float,
        delrow: int,
        params: Mapping[str, str],
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO jobs (campaign, source, url, run_at, delrow, params, state, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'scheduled', ?)",
            (campaign, source, url, run_at, delrow, json.dumps(dict(params)), time.time()),
        )
        self.commit()  # the job id was given to the client: keep it
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def update_job(
        self,
        job_id: int,
        state: str,
        *,
        lines: int | None = None,
        codes: Mapping[str, int] | None = None,
        error: str | None = None,
        finished: bool = False,
    ) -> None:
        self.db.execute(
            "UPDATE jobs SET state = ?, lines = coalesce(?, lines), codes = coalesce(?, codes),"
            " error = coalesce(?, error), finished_at = CASE WHEN ? THEN ? ELSE finished_at END"
            " WHERE id = ?",
            (
                state,
                lines,
                None if codes is None else json.dumps(dict(codes)),
                error,
                finished,
                time.time(),
                job_id,
            ),
        )
        self._written()

    def jobs(self, states: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        names = (
            "id",
            "campaign",
            "source",
            "url",
            "run_at",
            "delrow",
            "params",
            "state",
            "lines",
            "codes",
            "error",
            "created_at",
            "finished_at",
        )
        rows = self.db.execute(f"SELECT {', '.join(names)} FROM jobs ORDER BY id")
        jobs = []
        for row in rows:
            job = dict(zip(names, row, strict=True))
            job["params"] = json.loads(job["params"])
            job["codes"] = json.loads(job["codes"])
            job["model_id"] = job.pop("campaign")
            if states is None or job["state"] in states:
                jobs.append(job)
        return jobs
