"""The public library API: what ``bulkimport`` exports, and the example of docs/library.md,
run as it is written against a real sandbox."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sys
from pathlib import Path

import pytest

import bulkimport
from bulkimport import Client, JobState, RowState, SendSettings, Target
from bulkimport.sandbox import SandboxHandle
from tests.helpers import ROOT, base_env, start_process, write_csv

LIBRARY_DOC = ROOT / "docs" / "library.md"


def test_everything_exported_is_importable() -> None:
    for name in bulkimport.__all__:
        assert getattr(bulkimport, name) is not None, name
    with pytest.raises(AttributeError):
        bulkimport.Queue  # noqa: B018


def example_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", LIBRARY_DOC.read_text(encoding="utf-8"), re.S)
    [example] = [block for block in blocks if "async def main" in block]
    return example


async def test_the_documented_example_loads_a_file_into_the_sandbox(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    write_csv(tmp_path / "leads.csv", ["name,phone1", "张三,13800000001", "李四,13800000002"])
    (tmp_path / "example.py").write_text(example_code(), encoding="utf-8")
    env = base_env(CC_URL=sandbox.url, CC_PASSWORD="secret")
    process = await start_process(
        sys.executable,
        "example.py",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert "job 1: reading done (2 rows)" in lines
    assert "job 1: sending done (2 rows)" in lines
    assert "job 1 finished: 2 done" in lines
    assert lines[-1] == "job 2 finished: 1 done"  # the rows from a program
    # The job is the command line's too: `status` reads it from the same database.
    status = await start_process(
        sys.executable, "-m", "bulkimport", "status", "--json", "--db", "leads.db",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    summary = json.loads((await status.communicate())[0])
    assert (summary["job"], summary["state"], summary["counts"]["done"]) == (2, "finished", 1)
    assert summary["file"] == "rows:crm-contacts"


async def test_a_wrong_password_stops_the_job_and_raise_for_state_says_so(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    write_csv(tmp_path / "leads.csv", ["name,phone1", "张三,13800000001"])
    target = Target(url=sandbox.url, org="demo", user="admin", password="wrong", campaign="1")
    async with Client(target, db=tmp_path / "q.db", send=SendSettings(rate_per_s=0)) as client:
        summary = await client.load_csv(tmp_path / "leads.csv")
        assert summary.state is JobState.STOPPED
        assert summary.counts[RowState.PENDING] == 1
        with pytest.raises(bulkimport.ServerRefused, match="BackMsg_63") as refused:
            summary.raise_for_state()
        assert refused.value.job == summary.job
        assert summary.exit_code == bulkimport.ExitCode.SERVER_REFUSED
        # Fixed, the same job resumes and finishes.
    fixed = Target(url=sandbox.url, org="demo", user="admin", password="secret", campaign="1")
    async with Client(fixed, db=tmp_path / "q.db") as client:
        resumed = await client.resume()
        assert (resumed.job, resumed.state) == (summary.job, JobState.FINISHED)
        assert resumed.raise_for_state() is resumed
        assert [s.job for s in await client.jobs()] == [summary.job]


def test_every_send_setting_is_documented() -> None:
    text = LIBRARY_DOC.read_text(encoding="utf-8")
    missing = [f.name for f in dataclasses.fields(SendSettings) if f"`{f.name}`" not in text]
    assert missing == []


async def test_a_program_replaces_the_network_with_a_scripted_transport(tmp_path: Path) -> None:
    # Only public names: a program's tests script the server as the project's own do.
    write_csv(tmp_path / "leads.csv", ["name,phone1", "a,13800000001", "b,13800000002"])

    def server(request: bulkimport.Request) -> bulkimport.Outcome:
        if "13800000002" in request.record:
            return bulkimport.ScriptedTransport.answer("|Retuen|2|Retuen|BackMsg_82")
        return bulkimport.ScriptedTransport.answer("|Retuen|1|Retuen|BackMsg_84")

    transport = bulkimport.ScriptedTransport(server)
    target = Target(url="http://cc.invalid", org="demo", user="admin", password="pw", campaign="1")
    async with Client(
        target, db=tmp_path / "q.db", send=SendSettings(rate_per_s=0), transport=transport
    ) as client:
        summary = await client.load_csv(tmp_path / "leads.csv")
    assert summary.state is JobState.FINISHED
    assert (summary.counts[RowState.DONE], summary.counts[RowState.DUPLICATE]) == (1, 1)
    assert [request.kind for request in transport.requests] == [bulkimport.RequestKind.SEND] * 2
    assert sorted(request.record for request in transport.requests) == [
        "name=a||phone1=13800000001",
        "name=b||phone1=13800000002",
    ]
