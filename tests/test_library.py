"""The public library API: what ``bulkimport`` exports, and the example of docs/library.md,
run as it is written against a real sandbox."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import re
import sys
import time
from pathlib import Path

import pytest

import bulkimport
from bulkimport import Client, JobState, RowState, SendSettings, SendWindow, Target
from bulkimport.sandbox import Faults, SandboxHandle
from bulkimport.sandbox.faults import Outage
from tests.helpers import HEADER, ROOT, base_env, good_rows, start_process, write_csv

LIBRARY_DOC = ROOT / "docs" / "library.md"


def target_of(sandbox: SandboxHandle) -> Target:
    return Target(url=sandbox.url, org="demo", user="admin", password="secret", campaign="1")


def test_everything_exported_is_importable() -> None:
    for name in bulkimport.__all__:
        assert getattr(bulkimport, name) is not None, name
    with pytest.raises(AttributeError):
        bulkimport.Queue  # noqa: B018


def example_code(marker: str = "async def main") -> str:
    """The one block of docs/library.md that holds ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", LIBRARY_DOC.read_text(encoding="utf-8"), re.S)
    [example] = [block for block in blocks if marker in block]
    return example


async def run_example(code: str, cwd: Path, sandbox: SandboxHandle, password: str) -> list[str]:
    """Run a documented example as a program against ``sandbox``: the lines it prints."""
    (cwd / "example.py").write_text(code, encoding="utf-8")
    env = base_env(CC_URL=sandbox.url, CC_PASSWORD=password)
    process = await start_process(
        sys.executable, "example.py", cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode().splitlines()


async def test_the_documented_example_loads_a_file_into_the_sandbox(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    write_csv(tmp_path / "leads.csv", ["name,phone1", "张三,13800000001", "李四,13800000002"])
    lines = await run_example(example_code(), tmp_path, sandbox, "secret")
    assert "job 1: reading done (2 rows)" in lines
    assert "job 1: sending done (2 rows)" in lines
    assert "job 1 finished: 2 done" in lines
    assert lines[-1] == "job 2 finished: 1 done"  # the rows from a program
    # The job is the command line's too: `status` reads it from the same database.
    status = await start_process(
        sys.executable, "-m", "bulkimport", "status", "--json", "--db", "leads.db",
        cwd=tmp_path, env=base_env(), stdout=asyncio.subprocess.PIPE,
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


async def test_an_outage_and_the_stop_it_causes_come_as_typed_events(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # The server answers the first calls, then goes down (the sandbox's fault switch, as a
    # restart behind nginx looks): the program learns it from events, never from text.
    write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(300)])
    heard: list[bulkimport.Event] = []

    def hear(event: bulkimport.Event) -> None:
        heard.append(event)
        if isinstance(event, bulkimport.SendProgress) and event.counts.done:
            sandbox.set_faults(Faults(outage=Outage.BAD_GATEWAY))

    send = SendSettings(rate_per_s=100, max_outage_s=1.0)
    async with Client(target_of(sandbox), db=tmp_path / "q.db", send=send, on_event=hear) as c:
        summary = await c.load_csv(tmp_path / "leads.csv")
    began = [e for e in heard if isinstance(e, bulkimport.OutageBegan)]
    assert len(began) == 1 and began[0].job == summary.job
    assert began[0].outcome is not None and began[0].outcome.status == 502
    assert not began[0].proxy
    [stopped] = [e for e in heard if isinstance(e, bulkimport.JobStopped)]
    facts = stopped.facts
    assert (stopped.state, facts.cause) == (JobState.INTERRUPTED, bulkimport.StopCause.OUTAGE)
    assert (facts.outage_since, facts.setting, facts.status) == (
        began[0].since,
        "max_outage_s",
        502,
    )
    assert facts.answered > 0
    # The summary carries the same facts, and its message is made from them.
    assert summary.stop == facts
    assert summary.exit_code is bulkimport.ExitCode.TRY_LATER
    assert summary.message is not None and "--max-outage 1s" in summary.message


async def test_a_wait_for_the_send_window_comes_as_a_typed_event(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # A window that opens in five minutes, whatever the hour: closed now.
    opens = datetime.datetime.now() + datetime.timedelta(minutes=5)
    closes = opens + datetime.timedelta(minutes=1)
    window = SendWindow.parse(f"{opens:%H:%M}-{closes:%H:%M}")
    write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(5)])
    heard: list[bulkimport.Event] = []
    clients: list[Client] = []

    def stop_when_waiting(event: bulkimport.Event) -> None:
        heard.append(event)
        if isinstance(event, bulkimport.WindowWait):
            clients[0].stop()

    send = SendSettings(rate_per_s=0, window=window)
    client = Client(target_of(sandbox), db=tmp_path / "q.db", send=send, on_event=stop_when_waiting)
    clients.append(client)
    async with client:
        summary = await client.load_csv(tmp_path / "leads.csv")
    [wait] = [e for e in heard if isinstance(e, bulkimport.WindowWait)]
    assert (wait.job, wait.window) == (summary.job, str(window))
    assert time.time() < wait.opens_at < time.time() + 6 * 60
    assert f"{datetime.datetime.fromtimestamp(wait.opens_at):%H:%M}" == f"{opens:%H:%M}"
    [requested] = [e for e in heard if isinstance(e, bulkimport.StopRequested)]
    assert (requested.job, requested.signal) == (summary.job, None)
    [stopped] = [e for e in heard if isinstance(e, bulkimport.JobStopped)]
    assert stopped.facts.cause is bulkimport.StopCause.SIGNAL
    assert (summary.state, summary.counts[RowState.PENDING]) == (JobState.INTERRUPTED, 5)


async def test_the_documented_events_example_tells_a_stop_from_its_facts(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    write_csv(tmp_path / "leads.csv", ["name,phone1", "张三,13800000001"])
    lines = await run_example(example_code("on_event=on_event"), tmp_path, sandbox, "wrong")
    assert lines[0] == "job 1 stopped: fatal BackMsg_63 (fix: password)"
    assert lines[1].startswith("job 1 stopped: the server refused the job: BackMsg_63")
    assert "check the password in" in lines[1]


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


async def test_a_stop_while_only_staging_comes_as_a_typed_event(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # Stopped after its first batch is stored: the job is interrupted while reading, and the
    # program hears it as it hears any other stop.
    write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(30_000)])
    heard: list[bulkimport.Event] = []
    clients: list[Client] = []

    def stop_after_a_batch(event: bulkimport.Event) -> None:
        heard.append(event)
        # Once: a second request is a hard interrupt, as a second Ctrl-C.
        if isinstance(event, bulkimport.ReadProgress) and event.rows and len(clients) == 1:
            clients.append(clients[0])
            clients[0].stop()

    client = Client(target_of(sandbox), db=tmp_path / "q.db", on_event=stop_after_a_batch)
    clients.append(client)
    async with client:
        summary = await client.stage_csv(tmp_path / "leads.csv")
    assert summary.state is JobState.INTERRUPTED
    [stopped] = [e for e in heard if isinstance(e, bulkimport.JobStopped)]
    assert (stopped.job, stopped.state) == (summary.job, JobState.INTERRUPTED)
    assert stopped.facts.cause is bulkimport.StopCause.SIGNAL and stopped.facts.reading
    assert summary.stop == stopped.facts
