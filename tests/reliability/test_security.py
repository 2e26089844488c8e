"""Secrets and trust: the password (and its MD5) never lands in a file the tool wrote or in its
output, whatever way a run ends; CSV values cannot inject parameters; a profile others can read
is warned about; TLS certificates are verified unless ``--insecure``."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from bulkimport.protocol import md5_hex
from bulkimport.sandbox import Account, Faults, SandboxHandle, default_schema
from bulkimport.sandbox.app import Sandbox, build_app
from bulkimport.sandbox.store import Store
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    Done,
    bulkimport,
    customers,
    good_rows,
    password_env,
    query,
    spawn,
    stats,
    target,
    write_csv,
)

PASSWORD = "Pa55-unique-7f3e"
WRONG = "Wr0ng-unique-c41d"


def secret_forms() -> list[bytes]:
    return [
        form.encode()
        for password in (PASSWORD, WRONG)
        for form in (password, md5_hex(password), md5_hex(password).upper())
    ]


def assert_no_secret(where: str, data: bytes) -> None:
    for secret in secret_forms():
        assert secret not in data, f"{secret!r} in {where}"


@pytest.mark.posix_only("SIGKILL and its exit status (Windows' kill is TerminateProcess)")
async def test_the_password_and_its_md5_are_in_no_file_and_no_output_however_the_run_ends(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    schema = dataclasses.replace(default_schema(), accounts=(Account("admin", PASSWORD),))
    sandbox = await sandbox_factory(schema=schema, faults=Faults(latency_s=0.01))
    work = tmp_path / "work"
    work.mkdir()
    good = write_csv(work / "good.csv", [HEADER, *good_rows(1200)])
    mixed = write_csv(
        work / "mixed.csv",
        [HEADER, *good_rows(20, start=5000), "No phone,,x@y.z,X", "ragged,1", "a||b,1380,,X"],
    )
    outputs: list[Done] = []

    def run(db: str, csv: Path, *more: str) -> list[str]:
        return ["run", str(csv), *target(sandbox), "--db", db, "--log", "job.log", *more]

    # Succeeds (the MD5 is what is sent).
    outputs.append(
        await bulkimport(
            *run("ok.db", good, "--pwdtype", "md5", "--rate", "0"), cwd=work, password=PASSWORD
        )
    )
    assert outputs[-1].code == 0, outputs[-1].err
    # Fails: rows rejected, invalid, and failed on dropped connections; a report is written.
    sandbox.set_faults(Faults(drop_rate=0.5, seed=3))
    outputs.append(
        await bulkimport(
            *run("failed.db", mixed, "--max-attempts", "1", "--log-format", "json"),
            cwd=work,
            password=PASSWORD,
        )
    )
    assert outputs[-1].code == 1, outputs[-1].err
    sandbox.set_faults(Faults(latency_s=0.01))
    # Crashes: kill -9 while sending, which leaves the write-ahead log behind.
    before = (await stats(sandbox))["requests"]
    proc = await spawn(*run("crashed.db", good, "--rate", "0"), cwd=work, password=PASSWORD)
    for _ in range(3000):
        if (await stats(sandbox))["requests"] >= before + 300:
            break
        await asyncio.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL
    assert (work / "crashed.db-wal").exists()
    # Stops: the server refuses the (wrong) password.
    outputs.append(await bulkimport(*run("stopped.db", good), cwd=work, password=WRONG))
    assert outputs[-1].code == 3, outputs[-1].err
    # What a person looks at afterwards.
    for db in ("ok.db", "failed.db", "stopped.db"):
        outputs.append(await bulkimport("status", "--db", db, "--json", cwd=work, password=None))
    outputs.append(
        await bulkimport("failed", "--db", "failed.db", "-o", "export.csv", cwd=work, password=None)
    )
    assert (work / "export.csv").exists()

    written = [path for path in work.rglob("*") if path.is_file() and path.suffix != ".csv"]
    written += [work / "export.csv", *work.glob("*-job-*-failed.csv")]
    names = {path.name for path in written}
    assert {"ok.db", "failed.db", "crashed.db", "crashed.db-wal", "stopped.db", "job.log"} <= names
    assert "failed-job-1-failed.csv" in names, names
    for path in written:
        assert_no_secret(str(path), path.read_bytes())
    for done in outputs:
        assert_no_secret("the output", (done.out + done.err).encode())


@pytest.mark.parametrize("method", ["get", "post"])
async def test_a_value_holding_parameters_arrives_as_that_fields_value(
    tmp_path: Path, sandbox: SandboxHandle, method: str
) -> None:
    value = "a&password=x&EVENT=Other&model_id=2%26+b=c"
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, f'Eve,13811112222,x@y.z,"{value}"'])
    result = await bulkimport(
        "run", str(csv_file), *target(sandbox), "--method", method, cwd=tmp_path
    )
    assert result.code == 0, result.err
    (held,) = await customers(sandbox)
    assert held["fields"]["city"] == value
    assert held["package"] == "1"


# --- profiles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "names_password_variable", "warned"),
    [
        (0o644, True, True),
        (0o640, True, True),
        (0o604, True, True),
        (0o600, True, False),
        # The current rule: a profile that does not say where the password is is not secret.
        (0o644, False, False),
    ],
)
@pytest.mark.posix_only("POSIX permission bits")
async def test_a_profile_others_can_read_is_warned_about_when_it_names_the_password_variable(
    tmp_path: Path, mode: int, names_password_variable: bool, warned: bool
) -> None:
    profile = tmp_path / "nightly.toml"
    lines = ['url = "http://127.0.0.1:9/"', 'org = "o"', 'user = "u"', 'campaign = "1"']
    if names_password_variable:
        lines.append('password_env = "NIGHTLY_PASSWORD"')
    profile.write_text("\n".join(lines) + "\n")
    profile.chmod(mode)
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(2)])
    result = await bulkimport("stage", str(csv_file), "--config", str(profile), cwd=tmp_path)
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if "can be read by other users" in line]
    assert len(warnings) == (1 if warned else 0), result.err
    if warned:
        assert f"chmod 600 {profile}" in warnings[0]


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@dataclass(frozen=True)
class HttpsSandbox:
    sandbox: Sandbox
    port: int


@pytest.fixture
async def https_sandbox(tmp_path: Path, authority: trustme.CA) -> AsyncIterator[HttpsSandbox]:
    """A sandbox served over HTTPS with a certificate from a private authority."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    store = Store(tmp_path / "https-sandbox.db")
    store.open()
    sandbox = Sandbox(default_schema(), store, Faults())
    runner = web.AppRunner(build_app(sandbox), access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield HttpsSandbox(sandbox, runner.addresses[0][1])
    finally:
        await runner.cleanup()
        store.close()


def https_target(port: int) -> list[str]:
    url = f"https://127.0.0.1:{port}/asterccinterfaces"
    return ["--url", url, "--org", "demo", "--user", "admin", "--campaign", "1"]


async def test_tls_certificates_are_verified_unless_insecure(
    tmp_path: Path, https_sandbox: HttpsSandbox, authority: trustme.CA
) -> None:
    arrivals = https_sandbox.sandbox.stats.arrivals
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(10)])
    args = ["run", str(csv_file), *https_target(https_sandbox.port), "--rate", "0"]

    refused = await bulkimport(*args, cwd=tmp_path)
    assert refused.code == 3, refused.err
    (line,) = refused.error_lines()
    assert "certificate" in line and "--insecure" in line
    assert len(arrivals) == 0
    assert set(query(tmp_path / "bulkimport.db", "SELECT DISTINCT state FROM rows")) == {
        ("pending",)
    }

    # The same server, its authority trusted: verification is on, and it passes.
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    trusted = await bulkimport(
        *args, cwd=tmp_path, env=password_env("secret", SSL_CERT_FILE=str(ca_file))
    )
    assert trusted.code == 0, trusted.err
    assert len(arrivals) == 10

    # Not trusted, but --insecure: sent anyway.
    insecure = await bulkimport(*args, "--insecure", "--new", cwd=tmp_path)
    assert insecure.code == 0, insecure.err
    assert len(arrivals) == 20
