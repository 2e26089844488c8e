"""The SQLite ``RemoteLog``: the ``remote_imports`` table."""

from __future__ import annotations

import time

from bulkimport.states import RemoteState
from bulkimport.storage.columns import REMOTE_COLUMNS as _REMOTE_COLUMNS
from bulkimport.storage.columns import check_no_credentials
from bulkimport.storage.columns import remote_from_row as _remote_from_row
from bulkimport.storage.sqlite.database import Database
from bulkimport.storage.values import RemoteImport


class SqliteRemoteLog:
    """The remote imports recorded in one database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
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
        check_no_credentials(url)
        async with self._db.lock, self._db.transaction():
            cursor = await self._db.conn.execute(
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
            rows = await self._db.conn.execute_fetchall(
                f"SELECT {_REMOTE_COLUMNS} FROM remote_imports WHERE id = ?", (remote_id,)
            )
        return _remote_from_row(next(iter(rows)))

    async def list(self) -> list[RemoteImport]:
        """Every remote import, oldest first."""
        async with self._db.lock:
            rows = await self._db.conn.execute_fetchall(
                f"SELECT {_REMOTE_COLUMNS} FROM remote_imports ORDER BY id"
            )
        return [_remote_from_row(row) for row in rows]
