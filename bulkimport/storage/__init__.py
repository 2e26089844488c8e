"""Where jobs and rows are kept: the interfaces (``interface``), the values they give back
(``values``), the SQLite implementation (``sqlite``) and the PostgreSQL one (``postgres``),
and ``open_storage``, which opens either from what ``--db`` gives."""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path
from typing import TypeGuard

from bulkimport.storage.interface import (
    IngestStore,
    JobStore,
    RemoteLog,
    Retention,
    RowReports,
    SendQueue,
    ServerBudget,
    Storage,
)
from bulkimport.storage.values import (
    Forgotten,
    Grant,
    Ingested,
    Job,
    ProbeTurn,
    Refunded,
    RemoteImport,
    RowView,
    RunnerId,
    RunnerView,
    Unchanged,
)

__all__ = [
    "Forgotten",
    "Grant",
    "IngestStore",
    "Ingested",
    "Job",
    "JobStore",
    "ProbeTurn",
    "Refunded",
    "RemoteImport",
    "RemoteLog",
    "Retention",
    "RowReports",
    "RowView",
    "RunnerId",
    "RunnerView",
    "SendQueue",
    "ServerBudget",
    "Storage",
    "Unchanged",
    "database_name",
    "is_postgres_url",
    "open_storage",
    "url_password",
    "without_password",
]

_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: str | os.PathLike[str]) -> TypeGuard[str]:
    """Whether ``location`` (a ``--db`` value) names a PostgreSQL database, not a file."""
    return isinstance(location, str) and location.lower().startswith(_SCHEMES)


async def open_storage(
    db: str | os.PathLike[str], *, read_only: bool = False, create: bool = True
) -> Storage:
    """The storage ``db`` names: a PostgreSQL database for a ``postgresql://`` URL (the
    ``postgres`` extra, imported only then), else a SQLite file. ``read_only``: never
    create or migrate it; not ``create``: it must exist."""
    if is_postgres_url(db):
        from bulkimport.storage.postgres import open_url

        return await open_url(str(db), read_only=read_only, create=create)
    from bulkimport.storage.sqlite import SqliteStorage

    return await SqliteStorage.open(Path(db), read_only=read_only, create=create)


def url_password(url: str) -> str | None:
    """The password a PostgreSQL URL holds, in its user part (``u:secret@host``) or as a
    ``password=`` parameter (libpq takes both); None if it holds none or cannot be read."""
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.password is not None:
            return parts.password
        given = urllib.parse.parse_qs(parts.query, keep_blank_values=True).get("password")
    except ValueError:
        return None
    return given[0] if given else None


def without_password(url: str, *, mark: str | None = None) -> str:
    """A PostgreSQL URL with its password, wherever it is, taken out
    (``postgresql://u@host/db``): what may be shown, and still finds the database with
    ``PGPASSWORD`` or ``~/.pgpass``; ``mark`` (``***``) stands in its place instead."""
    try:
        parts = urllib.parse.urlsplit(url)
        in_user = parts.password is not None
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "a PostgreSQL URL that cannot be parsed"
    in_query = any(name == "password" for name, _ in query)
    if not in_user and not in_query:
        return url
    if in_user:
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        secret = f":{mark}" if mark is not None else ""
        parts = parts._replace(netloc=f"{user}{secret}@{host}" if user or secret else host)
    if in_query:
        kept = [
            (name, mark if name == "password" else value)
            for name, value in query
            if name != "password" or mark is not None
        ]
        parts = parts._replace(query=urllib.parse.urlencode(kept, safe="*"))
    return urllib.parse.urlunsplit(parts)


def database_name(url: str) -> str:
    """The database a PostgreSQL URL names (its path, else ``dbname=``, else the user, as
    libpq defaults), fit for a file name: ``leads`` for ``postgresql://u@host/leads``."""
    try:
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        name = (
            urllib.parse.unquote(parts.path.lstrip("/"))
            or next(iter(query.get("dbname", [])), "")
            or parts.username
            or "postgres"
        )
    except ValueError:
        name = "postgres"
    return re.sub(r"[^\w.-]", "_", name).lstrip(".") or "postgres"
