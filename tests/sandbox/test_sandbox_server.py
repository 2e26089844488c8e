"""Running the sandbox: schema files, restarts, persistence, the command line."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from sandbox_helpers import Client

from bulkimport.cli import cli
from bulkimport.cli import sandbox as sandbox_cli
from bulkimport.errors import ConfigError
from bulkimport.sandbox import (
    Faults,
    SandboxConfig,
    SandboxHandle,
    default_schema,
    load_schema,
    serve_sandbox,
)
from tests.helpers import start_process

SAMPLE = Path(__file__).parents[2] / "samples" / "sandbox-schema.toml"
Factory = Callable[..., Awaitable[SandboxHandle]]


def test_the_default_schema() -> None:
    schema = default_schema()
    assert schema.org == "demo"
    assert [c.id for c in schema.campaigns] == ["1", "2"]
    campaign = schema.campaigns[0]
    assert campaign.field_names == (
        "customername",
        "phone1",
        "phone2",
        "email",
        "company",
        "city",
        "address",
        "priority",
        "dialtime",
        "memo",
    )
    assert campaign.resolve("name") == "customername"
    assert campaign.key_field == "phone1"


def test_the_sample_schema_loads() -> None:
    schema = load_schema(SAMPLE)
    assert [c.id for c in schema.campaigns] == ["1", "2", "3"]
    assert schema.campaigns[0].fields == default_schema().campaigns[0].fields
    assert schema.campaigns[2].resolve("邮箱") == "email"
    assert len(schema.customers) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("org = 'x'", "no campaign"),
        ("org = 'x'\n[[campaigns]]\nname = 'a'", "'id' is missing"),
        ("[[campaigns]]\nid = '1'", "'org' is missing"),
        ("org = 'x'\n[[campaigns]]\nid = '1'\nkey_field = 'fax'", "key_field"),
        ("org = ", "not valid TOML"),
    ],
)
def test_schema_errors_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "schema.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_schema(path)


async def test_seed_customers_from_the_sample(
    sandbox_factory: Factory, session: aiohttp.ClientSession
) -> None:
    client = Client(session, await sandbox_factory(schema=load_schema(SAMPLE)))
    [called] = await client.customers("1")
    assert (called["status"], called["agent"]) == ("success", "1001")
    answer = await client.message(
        "phone1=13800000000||name=Already called",
        phone_field="phone1",
        dupdiallist="ignoreSuccess",
    )
    assert answer == "BackMsg_81"
    answer = await client.message(
        "phone1=13800000099", model_id="1", changepackage="unassignToCurrent"
    )
    assert answer == "BackMsg_81"
    assert len(await client.customers("1")) == 2
    assert await client.message("姓名=王五||邮箱=w@example.cn", model_id="3") == "BackMsg_84"


async def test_a_restart_keeps_port_database_and_counters(
    sandbox: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    client = Client(session, sandbox)
    url = sandbox.url
    assert await client.message("phone1=1") == "BackMsg_84"
    await sandbox.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.message("phone1=2")
    await sandbox.start()
    assert sandbox.url == url
    assert await client.message("phone1=1") == "BackMsg_81"
    assert len(await client.customers()) == 1
    assert (await client.get_json("/sandbox/stats"))["requests"] == 2


async def test_the_database_holds_everything_after_a_stop(tmp_path: Path) -> None:
    db = tmp_path / "kept.db"
    async with (
        serve_sandbox(SandboxConfig(port=0, db_path=db)) as handle,
        aiohttp.ClientSession() as session,
    ):
        client = Client(session, handle)
        for index in range(30):
            await client.message(f"phone1={index}||memo=第{index}行", phone_field="phone1")
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT count(*) FROM customers").fetchone() == (30,)
        assert check.execute("SELECT count(*) FROM diallist").fetchone() == (30,)


async def test_a_temporary_database_is_removed() -> None:
    async with serve_sandbox(SandboxConfig(port=0)) as handle:
        path = handle.db_path
        assert path.exists()
    assert not path.exists()


def test_the_command_has_help_with_an_example() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--help"])
    assert result.exit_code == 0
    for option in ("--max-rps", "--capacity", "--queue-timeout", "--answer-code", "--outage"):
        assert option in result.output
    assert "Example" in result.output
    assert "--answer-code 116:1" in result.output


def test_the_options_make_the_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[SandboxConfig] = []

    async def serve(config: SandboxConfig) -> None:
        served.append(config)

    monkeypatch.setattr(sandbox_cli, "_serve", serve)
    args = [
        "sandbox", "--port", "0", "--latency", "0.05", "--capacity", "100",
        "--queue-timeout", "3", "--answer-code", "116:0.02", "--answer-code", "BackMsg_74:0.1",
        "--backmsg85-rate", "0.05", "--max-rps", "500", "--outage", "502", "--seed", "4",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    [config] = served
    assert config.faults == Faults(
        latency_s=0.05,
        capacity=100,
        queue_timeout_s=3,
        code_rates={"116": 0.02, "74": 0.1},
        backmsg85_rate=0.05,
        max_rps=500,
        outage="502",
        seed=4,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--http500-rate", "0.7", "--drop-rate", "0.7"], "add up to at most 1"),
        (["--answer-code", "116"], "--answer-code 116: give CODE:RATE"),
        (["--answer-code", "licence:1"], "--answer-code licence:1: give CODE:RATE"),
        (["--answer-code", "116:1.5"], "--answer-code 116:1.5: give CODE:RATE"),
        (["--answer-code", "116:0.1", "--answer-code", "BackMsg_116:0.1"], "BackMsg_116 twice"),
        (["--answer-code", "74:0.6", "--backmsg85-rate", "0.6"], "add up to at most 1"),
    ],
)
def test_the_command_refuses_impossible_faults_in_one_line(args: list[str], says: str) -> None:
    result = CliRunner().invoke(cli, ["sandbox", *args])
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith("Error: ")
    assert says in line


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--lock", "5", "--lock-every", "5"], "lock_s (--lock) must be shorter"),
        (["--http500-after-rate", "0.7", "--drop-rate", "0.7"], "add up to at most 1"),
        (["--bom-rate", "2"], "'--bom-rate': 2.0 is not in the range"),
    ],
)
def test_bad_php_fault_options_are_one_line(options: list[str], says: str) -> None:
    result = CliRunner().invoke(cli, ["sandbox", *options])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and says in errors[0]


def test_a_bad_schema_file_is_one_line(tmp_path: Path) -> None:
    schema = tmp_path / "schema.toml"
    schema.write_text("org = 'x'")
    result = CliRunner().invoke(cli, ["sandbox", "--schema", str(schema)])
    assert result.exit_code == 2
    assert result.output.splitlines() == ["Error: the schema defines no campaign ([[campaigns]])"]


@pytest.mark.posix_only("a signal sent to another process (Windows has console events instead)")
async def test_the_command_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    code = "from bulkimport.cli import main; main()"
    process = await start_process(
        sys.executable,
        "-c",
        code,
        "sandbox",
        "--port",
        "0",
        "--db",
        str(db),
        "--seed",
        "1",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        assert line.startswith("sandbox ready at http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        async with aiohttp.ClientSession() as session:
            handle = _Remote(url)
            client = Client(session, handle)  # type: ignore[arg-type]
            assert await client.message("phone1=1") == "BackMsg_84"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT count(*) FROM customers").fetchone() == (1,)


class _Remote:
    """Just enough of a handle to point a ``Client`` at another process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.base_url = url.rsplit("/", 1)[0]
