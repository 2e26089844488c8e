"""``source=http`` and ``source=ftp``: the sandbox fetches a CSV file served by the test.

The files are served on loopback, so the sandbox here runs with ``allow_private_fetch``
(``test_sandbox_private_fetch.py``: what it refuses without it).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sandbox_helpers import Client, params

from bulkimport.protocol import parse_answer
from bulkimport.sandbox import SandboxConfig, SandboxHandle, serve_sandbox

LEADS = (
    "phone1,name,city,memo\n"
    "13900000001,张三,北京,a=b&c\n"
    "13900000002,Li,Shanghai,\n"
    ",No phone,Nowhere,\n"
    "13900000001,张三,北京,a=b&c\n"
).encode()
BY_POSITION = b"Alice,13700000001\nBob,13700000002\n"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[SandboxHandle]:
    """A sandbox that may fetch from loopback, where the test serves its files."""
    config = SandboxConfig(port=0, db_path=tmp_path / "sandbox.db", allow_private_fetch=True)
    async with serve_sandbox(config) as handle:
        yield handle


@pytest.fixture
async def files() -> AsyncIterator[str]:
    """A tiny file server: its base URL."""

    async def csv_file(request: web.Request) -> web.Response:
        if request.match_info["name"] == "leads.csv":
            return web.Response(body=LEADS, content_type="text/csv")
        if request.match_info["name"] == "plain.csv":
            return web.Response(body=BY_POSITION, content_type="text/csv")
        if request.match_info["name"] == "binary.csv":
            return web.Response(body=b"\x00\x01\x02", content_type="application/octet-stream")
        if request.match_info["name"] == "page.csv":
            return web.Response(text="<html>login</html>", content_type="text/html")
        if request.match_info["name"] == "secret.csv":
            if request.headers.get("Authorization") != "Basic dTpw":  # u:p
                raise web.HTTPUnauthorized()
            return web.Response(body=BY_POSITION, content_type="text/csv")
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/{name}", csv_file)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def remote(client: Client, url: str, **kw: str) -> tuple[bool, str]:
    status, body = await client.send(params(url, source=kw.pop("source", "http"), **kw))
    answer = parse_answer(body)
    assert status == 200 and answer is not None, body
    return answer.success, answer.message


async def wait_job(client: Client, job_id: str, timeout_s: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = await client.get_json("/sandbox/jobs")
        job: dict[str, Any] = next(j for j in jobs if str(j["id"]) == job_id)
        if job["state"] not in ("scheduled", "running"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


async def test_an_http_import_with_a_header_line(client: Client, files: str) -> None:
    success, job_id = await remote(client, f"{files}/leads.csv", delrow="1", phone_field="phone1")
    assert success and job_id.isdigit()
    job = await wait_job(client, job_id)
    assert job["state"] == "finished"
    assert job["lines"] == 4
    assert job["codes"] == {"BackMsg_83": 2, "BackMsg_76": 1, "BackMsg_81": 1}
    customers = await client.customers()
    assert [c["fields"] for c in customers] == [
        {"phone1": "13900000001", "customername": "张三", "city": "北京", "memo": "a=b&c"},
        {"phone1": "13900000002", "customername": "Li", "city": "Shanghai", "memo": ""},
    ]
    assert len(await client.get_json("/sandbox/diallist", model_id="1")) == 2


async def test_columns_follow_the_field_order_without_a_header(client: Client, files: str) -> None:
    success, job_id = await remote(client, f"{files}/plain.csv", delrow="")
    assert success
    assert (await wait_job(client, job_id))["codes"] == {"BackMsg_84": 2}
    assert [c["fields"]["customername"] for c in await client.customers()] == ["Alice", "Bob"]


async def test_source_credentials_are_sent(client: Client, files: str) -> None:
    assert await remote(client, f"{files}/secret.csv") == (False, "BackMsg_89 HTTP 401")
    success, job_id = await remote(client, f"{files}/secret.csv", source_user="u", source_pwd="p")
    assert success
    assert (await wait_job(client, job_id))["state"] == "finished"


async def test_remote_failures(client: Client, files: str) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    assert await remote(client, f"http://127.0.0.1:{port}/x.csv") == (
        False,
        "BackMsg_89 ClientConnectorError",
    )
    assert await remote(client, f"{files}/missing.csv") == (False, "BackMsg_404")
    assert await remote(client, f"{files}/leads.xlsx") == (False, "BackMsg_86")
    assert await remote(client, f"{files}/binary.csv") == (False, "BackMsg_86")
    assert await remote(client, f"{files}/page.csv") == (False, "BackMsg_86")
    assert await remote(client, "") == (False, "BackMsg_71")
    assert await remote(client, f"{files}/leads.csv", exetime="tomorrow") == (
        False,
        "BackMsg_87 exetime",
    )
    assert await remote(client, f"ftp://127.0.0.1:{port}/x.csv", source="ftp") == (
        False,
        "BackMsg_89 URLError",
    )
    assert await client.get_json("/sandbox/jobs") == []


async def test_exetime_schedules_the_import(client: Client, files: str) -> None:
    when = datetime.fromtimestamp(time.time() + 1.2).strftime("%Y-%m-%d %H:%M:%S")
    success, job_id = await remote(client, f"{files}/leads.csv", delrow="1", exetime=when)
    assert success
    [job] = await client.get_json("/sandbox/jobs")
    assert job["state"] == "scheduled"
    assert await client.customers() == []
    job = await wait_job(client, job_id)
    assert job["state"] == "finished"
    assert len(await client.customers()) == 2


async def test_a_scheduled_job_that_cannot_fetch_fails_later(client: Client) -> None:
    when = datetime.fromtimestamp(time.time() + 1).strftime("%Y-%m-%d %H:%M:%S")
    success, job_id = await remote(client, "http://127.0.0.1:1/late.csv", exetime=when)
    assert success
    job = await wait_job(client, job_id)
    assert job["state"] == "failed"
    assert job["error"].startswith("BackMsg_89")


async def test_exetime_zero_means_now(client: Client, files: str) -> None:
    success, job_id = await remote(client, f"{files}/plain.csv", exetime="0000-00-00 00:00:00")
    assert success
    assert (await wait_job(client, job_id))["state"] == "finished"
