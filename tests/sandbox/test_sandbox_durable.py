"""The sandbox keeps its word: a row answered "imported" is in its database, even when the
sandbox is killed (``kill -9``) a moment later, as on the real server, which commits before
it answers."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import (
    HEADER,
    command,
    good_rows,
    kill_process,
    row_states,
    spawn,
    start_process,
    write_csv,
)

ROWS = 5_000  # far more than are sent before the kill
KILL_AFTER = 600  # calls answered before the sandbox is killed


async def _requests(session: aiohttp.ClientSession, base_url: str) -> int:
    async with session.get(f"{base_url}/sandbox/stats") as response:
        return int((await response.json())["requests"])


@pytest.mark.posix_only("kill -9 of a process group")
async def test_every_row_recorded_done_is_in_the_database_of_a_sandbox_killed_mid_job(
    tmp_path: Path,
) -> None:
    sandbox_db = tmp_path / "sandbox.db"
    server = await start_process(
        *command(),
        "sandbox",
        "--port",
        "0",
        "--db",
        str(sandbox_db),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert server.stdout is not None
    ready = (await asyncio.wait_for(server.stdout.readline(), 30)).decode().strip()
    assert ready.startswith("sandbox ready at "), ready
    url = ready.rsplit(" ", 1)[1]
    base_url = url.rsplit("/", 1)[0]

    work = tmp_path / "job"
    work.mkdir()
    lines = good_rows(ROWS)
    csv_file = write_csv(work / "leads.csv", [HEADER, *lines])
    phones = {n + 2: row.split(",")[1] for n, row in enumerate(lines)}  # line 1: the header
    args = ["run", str(csv_file), "--url", url, "--org", "demo", "--user", "admin"]
    args += ["--campaign", "1", "--rate", "0", "--concurrency", "16", "--quiet"]
    client = await spawn(*args, cwd=work)
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if await _requests(session, base_url) >= KILL_AFTER or client.returncode is not None:
                break
            await asyncio.sleep(0.05)
    assert client.returncode is None, "the job ended before the sandbox was killed"
    await kill_process(server)  # SIGKILL, mid-job: calls in flight, answers just sent
    # The client records what it was answered, then stops on a signal as a user stops it.
    await asyncio.sleep(0.5)
    client.send_signal(signal.SIGTERM)
    await asyncio.wait_for(client.wait(), 60)

    done = {line for line, state in row_states(work / "bulkimport.db").items() if state == "done"}
    assert len(done) >= KILL_AFTER // 2
    with sqlite3.connect(sandbox_db) as check:
        stored = {key for (key,) in check.execute("SELECT key FROM customers")}
    missing = sorted(line for line in done if phones[line] not in stored)
    assert not missing, f"{len(missing)} rows recorded done are not in the sandbox: {missing[:5]}"
