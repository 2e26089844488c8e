"""The PostgreSQL ``RemoteLog``: the ``remote_imports`` table."""

from __future__ import annotations

import time

from bulkimport.states import RemoteState
from bulkimport.storage.columns import REMOTE_COLUMNS as _REMOTE_COLUMNS
from bulkimport.storage.columns import check_no_credentials, remote_from_row
from bulkimport.storage.postgres.database import Database
from bulkimport.storage.values import RemoteImport

# The same columns as SQLite's, read the same way.
_COLUMNS = _REMOTE_COLUMNS


class PostgresRemoteLog:
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
        rows = await self._db.fetch(
            "INSERT INTO remote_imports (created_at, source, url, target_key, exetime, delrow,"
            " server_job_id, state, code, message, attempts)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {_COLUMNS}",
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
        )
        return remote_from_row(rows[0])

    async def list(self) -> list[RemoteImport]:
        """Every remote import, oldest first."""
        rows = await self._db.fetch(f"SELECT {_COLUMNS} FROM remote_imports ORDER BY id")
        return [remote_from_row(row) for row in rows]
