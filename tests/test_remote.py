"""``bulkimport remote`` end to end: a real sandbox fetches files from a real file server.

The file server is on loopback: the ``sandbox`` here may fetch from there
(``allow_private_fetch``); a sandbox started without it refuses.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bulkimport.protocol import Source
from bulkimport.sandbox import SandboxConfig, SandboxHandle, serve_sandbox
from bulkimport.send.remote import split_credentials
from bulkimport.states import RemoteState
from tests.conftest import SandboxFactory
from tests.helpers import bulkimport, customers, get_json, target

FILE_PASSWORD = "file-Pw-91c2"
LEADS = "phone1,name,city\n13900000001,张三,北京\n13900000002,Li,Shanghai\n".encode()


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[SandboxHandle]:
    """A sandbox that may fetch from loopback, where the file server is."""
    config = SandboxConfig(port=0, db_path=tmp_path / "sandbox.db", allow_private_fetch=True)
    async with serve_sandbox(config) as handle:
        yield handle


@pytest.fixture
async def files() -> AsyncIterator[str]:
    """A file server: ``/leads.csv`` open, ``/private/leads.csv`` behind Basic auth."""
    expected = "Basic " + base64.b64encode(f"exporter:{FILE_PASSWORD}".encode()).decode()

    async def open_file(request: web.Request) -> web.Response:
        return web.Response(body=LEADS, content_type="text/csv")

    async def private_file(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != expected:
            raise web.HTTPUnauthorized()
        return web.Response(body=LEADS, content_type="text/csv")

    app = web.Application()
    app.router.add_get("/leads.csv", open_file)
    app.router.add_get("/private/leads.csv", private_file)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def sandbox_job(sandbox: SandboxHandle, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        jobs = await get_json(sandbox, "/sandbox/jobs")
        job: dict[str, Any] = next(j for j in jobs if str(j["id"]) == job_id)
        if job["state"] not in ("scheduled", "running") or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_remote_import_is_accepted_recorded_and_listed(
    tmp_path: Path, sandbox: SandboxHandle, files: str
) -> None:
    result = await bulkimport(
        "remote", f"{files}/leads.csv", *target(sandbox), "--delrow", "1", cwd=tmp_path
    )
    assert result.code == 0, result.err
    server_job = result.out.strip()
    assert server_job.isdigit()
    job = await sandbox_job(sandbox, server_job)
    assert (job["state"], job["lines"], job["delrow"]) == ("finished", 2, 1)
    assert {c["fields"]["customername"] for c in await customers(sandbox)} == {"张三", "Li"}

    scheduled = await bulkimport(
        "remote", f"{files}/leads.csv", *target(sandbox), "--exetime", "2099-01-01 00:00:00",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert scheduled.code == 0, scheduled.err
    later = scheduled.json()
    assert later["state"] == "accepted" and later["exetime"] == "2099-01-01 00:00:00"
    # Scheduled for 2099, as it is now (sandbox_job would wait its 10 s for it to run).
    jobs = {str(job["id"]): job for job in await get_json(sandbox, "/sandbox/jobs")}
    assert jobs[later["server_job_id"]]["state"] == "scheduled"

    listed = await bulkimport("jobs", "--json", cwd=tmp_path)
    remotes = listed.json()["remote_imports"]
    assert [(r["id"], r["server_job_id"], r["state"]) for r in remotes] == [
        (1, server_job, "accepted"), (2, later["server_job_id"], "accepted"),
    ]  # fmt: skip
    assert remotes[0]["url"] == f"{files}/leads.csv"
    assert remotes[0]["target"] == f"{sandbox.url}|demo|1"
    text = await bulkimport("jobs", cwd=tmp_path)
    assert f"{files}/leads.csv" in text.out and "accepted" in text.out


@pytest.mark.parametrize("how", ["option", "url"])
async def test_the_file_password_is_sent_but_never_kept(
    tmp_path: Path, sandbox: SandboxHandle, files: str, how: str
) -> None:
    url = f"{files}/private/leads.csv"
    if how == "option":
        args = [url, "--source-user", "exporter"]
        env = {"BULKIMPORT_SOURCE_PASSWORD": FILE_PASSWORD}
    else:
        args = [url.replace("http://", f"http://exporter:{FILE_PASSWORD}@")]
        env = {}
    denied = await bulkimport("remote", url, *target(sandbox), cwd=tmp_path)
    assert denied.code == 3, denied.err
    assert "could not fetch the file" in denied.err and "HTTP 401" in denied.err
    result = await bulkimport(
        "remote", *args, *target(sandbox), "--log", "remote.log", "--log-format", "json",
        "--json", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.json()["url"] == url
    assert (await sandbox_job(sandbox, result.json()["server_job_id"]))["state"] == "finished"
    assert FILE_PASSWORD not in result.out + result.err
    for entry in os.scandir(tmp_path):
        with open(entry.path, "rb") as handle:  # noqa: ASYNC230 - a small file, in a test
            assert FILE_PASSWORD.encode() not in handle.read(), entry.path


async def test_refused_and_unreachable_imports_are_recorded_with_their_exit_codes(
    tmp_path: Path, sandbox: SandboxHandle, files: str
) -> None:
    missing = await bulkimport("remote", f"{files}/nothing.csv", *target(sandbox), cwd=tmp_path)
    assert missing.code == 3
    assert missing.err.strip() == (
        "Error: the server refused the import: BackMsg_404 (the file was not found)"
    )
    nowhere = f"http://127.0.0.1:{free_port()}/asterccinterfaces"
    down = await bulkimport(
        "remote", f"{files}/leads.csv", "--url", nowhere, "--org", "demo", "--user", "admin",
        "--campaign", "1", "--max-attempts", "2", cwd=tmp_path,
    )  # fmt: skip
    assert down.code == 75, down.err
    assert "try later (exit 75): no answer from the server after 2 attempts" in down.err
    assert "Error" not in down.err
    quiet = await bulkimport(
        "remote", f"{files}/leads.csv", "--url", nowhere, "--org", "demo", "--user", "admin",
        "--campaign", "1", "--max-attempts", "1", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert (quiet.code, quiet.err) == (75, "")  # cron mails whatever is printed
    wrong_scheme = await bulkimport(
        "remote", f"{files}/leads.csv", *target(sandbox), "--source", "ftp", cwd=tmp_path
    )
    assert wrong_scheme.code == 2
    listed = (await bulkimport("jobs", "--json", cwd=tmp_path)).json()["remote_imports"]
    assert [(r["state"], r["code"], r["attempts"]) for r in listed] == [
        (RemoteState.REFUSED.value, "BackMsg_404", 1), (RemoteState.FAILED.value, "refused", 2),
        (RemoteState.FAILED.value, "refused", 1),
    ]  # fmt: skip


async def test_a_file_on_loopback_is_refused_unless_the_sandbox_allows_it(
    tmp_path: Path, sandbox_factory: SandboxFactory, files: str
) -> None:
    guarded = await sandbox_factory()
    assert not guarded.config.allow_private_fetch
    for url in (f"{files}/leads.csv", f"{files}/leads.csv".replace("127.0.0.1", "localhost")):
        refused = await bulkimport("remote", url, *target(guarded), cwd=tmp_path)
        assert refused.code == 3, refused.err
        assert "could not fetch the file" in refused.err
        assert "private address refused (--allow-private-fetch)" in refused.err
    listed = (await bulkimport("jobs", "--json", cwd=tmp_path)).json()["remote_imports"]
    refused_state = (RemoteState.REFUSED.value, "BackMsg_89")
    assert [(r["state"], r["code"]) for r in listed] == [refused_state, refused_state]
    assert await get_json(guarded, "/sandbox/jobs") == []
    assert await customers(guarded) == []


def test_split_credentials() -> None:
    assert split_credentials("ftp://u%40x:p%3Aw@files.example.com:2121/a/b.csv", Source.FTP) == (
        "ftp://files.example.com:2121/a/b.csv", "u@x", "p:w",
    )  # fmt: skip
    assert split_credentials("https://[::1]/x.csv?v=1#frag", Source.HTTP) == (
        "https://[::1]/x.csv?v=1", "", "",
    )  # fmt: skip
