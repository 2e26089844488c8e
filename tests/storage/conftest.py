"""The storage backends the contract suite runs against, and what its tests share.

A backend is anything that implements ``bulkimport.storage.Storage``: the ``backend``
fixture is parametrized over them (SQLite and PostgreSQL), and each test gets a fresh, empty
storage from it. ``backend.open()`` gives another handle on the same storage (another
connection, as another process would have).

PostgreSQL: one throwaway cluster per test session (per xdist worker, ``tests/pg.py``), a
database of its own per test. Where no PostgreSQL server binaries are found, the postgres
tests skip with the reason.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bulkimport.rows import FileIdentity, NewRow, TargetRef
from bulkimport.states import RowState
from bulkimport.storage import Job, Storage
from bulkimport.storage.sqlite import SqliteStorage
from tests import pg

FILE = FileIdentity("/data/leads.csv", 1234, 1_700_000_000_000_000_000, "ab" * 32)
TARGET = TargetRef("https://cc.example.com/asterccinterfaces", "org1", "7")
OTHER_TARGET = TargetRef("https://cc.example.com/asterccinterfaces", "org1", "8")


@dataclass(frozen=True)
class Backend:
    """One storage location of one backend, and how to open it."""

    name: str
    open: Callable[[], Awaitable[Storage]]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pg.Cluster]:
    """A PostgreSQL cluster for this test session (this worker); skips without one."""
    reason = pg.missing_reason()
    if reason is not None:
        pytest.skip(f"no PostgreSQL: {reason}")
    with pg.cluster() as cluster:
        yield cluster


_databases = itertools.count(1)


@pytest.fixture
async def pg_url(pg_cluster: pg.Cluster) -> AsyncIterator[str]:
    """The URL of a new, empty database on the session's cluster, dropped after the test."""
    import asyncpg

    name = f"t{os.getpid()}_{next(_databases)}"
    admin = await asyncpg.connect(pg_cluster.url())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    yield pg_cluster.url(name)
    admin = await asyncpg.connect(pg_cluster.url())
    try:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


# The PostgreSQL half of the contract runs with the slow tests (CI runs them all): the
# README's quick loop keeps to SQLite, and to its five minutes.
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        path = tmp_path / "queue.db"
        return Backend("sqlite", lambda: SqliteStorage.open(path))
    if request.param == "postgres":
        from bulkimport.storage.postgres import PostgresStorage

        url: str = request.getfixturevalue("pg_url")
        return Backend("postgres", lambda: PostgresStorage.open(url))
    raise AssertionError(request.param)


@pytest.fixture
async def storage(backend: Backend) -> AsyncIterator[Storage]:
    opened = await backend.open()
    try:
        yield opened
    finally:
        await opened.close()


def pending(line: int, *cells: str) -> NewRow:
    return NewRow(line, RowState.PENDING, f"phone={line}", cells or (str(line), "x"))


async def ready_job(storage: Storage, lines: int, target: TargetRef = TARGET) -> Job:
    """A job with rows 2..lines+1 read and ready to send."""
    job = await storage.jobs.create(FILE, target, {"rate": 5}, '{"delimiter": ","}')
    rows = [pending(line) for line in range(2, lines + 2)]
    await storage.reading.add_rows(job.id, rows, read_offset=100, read_line=lines + 1)
    await storage.reading.finish(job.id)
    return job


async def listed(storage: Storage, job_id: int) -> dict[RowState, int]:
    """Rows of the job per state, counted one by one as the storage lists them (every state
    present): what ``counts`` must always equal."""
    counts = dict.fromkeys(RowState, 0)
    async for row in storage.reports.iter_rows(job_id, list(RowState)):
        counts[row.state] += 1
    return counts
