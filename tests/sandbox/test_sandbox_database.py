"""``--db``: the sandbox uses its own databases and refuses, untouched, any other file."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from sandbox_helpers import Client

from bulkimport.cli import cli
from bulkimport.errors import DatabaseError
from bulkimport.sandbox import SandboxConfig, serve_sandbox
from bulkimport.sandbox.store import SANDBOX_APPLICATION_ID
from bulkimport.storage.sqlite import SqliteStorage


def application_id(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[68:72], "big")


def snapshot(path: Path) -> tuple[bytes, int, list[str]]:
    """The file's bytes, its modification time and the files beside it."""
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(p.name for p in path.parent.iterdir())


def text_file(path: Path) -> None:
    path.write_text("phone1,name\n13800000000,Ann\n")


def other_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
        db.execute("INSERT INTO notes VALUES ('keep me')")
    db.close()


def other_application(path: Path) -> None:
    # Even with the sandbox's own tables: another program's file is not ours.
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA application_id = 1234")
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, tbl, key, writes)")
    db.close()


def empty_sqlite(path: Path) -> None:
    sqlite3.connect(path).execute("VACUUM").connection.close()
    assert path.stat().st_size > 0


FOREIGN: dict[str, tuple[Callable[[Path], None], str]] = {
    "text": (text_file, "not a SQLite file"),
    "other-sqlite": (other_sqlite, "a SQLite file with other tables: notes"),
    "other-application": (
        other_application,
        "a SQLite file of another application, application_id 0x4d2",
    ),
    "sqlite-without-tables": (empty_sqlite, "a SQLite file without tables"),
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_the_command_refuses_a_foreign_file_in_one_line_without_writing(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "notadb.db"
    make, reason = FOREIGN[kind]
    make(path)
    before = snapshot(path)
    result = CliRunner().invoke(cli, ["sandbox", "--port", "0", "--db", str(path)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: {path} is not a sandbox database ({reason}); the sandbox writes only to its"
        " own: give --db a new file"
    ]
    assert snapshot(path) == before


async def test_a_bulkimport_queue_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "bulkimport.db"
    queue = await SqliteStorage.open(path)
    await queue.close()
    before = snapshot(path)
    with pytest.raises(DatabaseError, match="is not a sandbox database"):
        async with serve_sandbox(SandboxConfig(port=0, db_path=path)):
            pass
    assert snapshot(path) == before


@pytest.mark.parametrize("exists", [False, True], ids=["new", "empty"])
async def test_a_new_or_empty_file_becomes_a_sandbox_database(tmp_path: Path, exists: bool) -> None:
    path = tmp_path / "sandbox.db"
    if exists:
        path.touch()
    async with serve_sandbox(SandboxConfig(port=0, db_path=path)) as handle:
        assert handle.db_path == path
    assert application_id(path) == SANDBOX_APPLICATION_ID == 0x42495342


async def test_a_sandbox_database_is_used_again(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.db"
    for expected in ("BackMsg_84", "BackMsg_81"):
        async with (
            serve_sandbox(SandboxConfig(port=0, db_path=path)) as handle,
            aiohttp.ClientSession() as session,
        ):
            assert await Client(session, handle).message("phone1=1") == expected


async def test_a_sandbox_database_from_before_the_id_is_recognised_by_its_tables(
    tmp_path: Path,
) -> None:
    path = tmp_path / "legacy.db"
    async with (
        serve_sandbox(SandboxConfig(port=0, db_path=path)) as handle,
        aiohttp.ClientSession() as session,
    ):
        assert await Client(session, handle).message("phone1=1") == "BackMsg_84"
    with sqlite3.connect(path) as db:  # as every sandbox database was made before the id
        db.execute("PRAGMA application_id = 0")
    db.close()
    assert application_id(path) == 0
    async with (
        serve_sandbox(SandboxConfig(port=0, db_path=path)) as handle,
        aiohttp.ClientSession() as session,
    ):
        assert await Client(session, handle).message("phone1=1") == "BackMsg_81"
    assert application_id(path) == SANDBOX_APPLICATION_ID


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["sandbox", "--port", str(port), "--db", str(tmp_path / "s.db")]
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")
    assert line.endswith("try --port 0")
