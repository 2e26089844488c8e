"""Secrets and trust: the password (and its MD5) never lands in a file the tool wrote or in its
output, whatever way a run ends, nor in a request line unless ``--method get`` was asked for
(said on every run); a server that takes GET only is named as such; a URL's user and password
are never shown; CSV values cannot inject parameters; a profile others can read is warned
about; TLS certificates are verified unless ``--insecure`` (said on every run, never kept
with a job); the documented recipes put the password on no command line."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import signal
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from bulkimport.protocol import ENDPOINT_PATH, md5_hex
from bulkimport.sandbox import Account, Faults, SandboxHandle, default_schema
from bulkimport.sandbox.app import Sandbox, build_app
from bulkimport.sandbox.store import Store
from bulkimport.send import GET_WARNING, INSECURE_WARNING
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    ROOT,
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
from tests.proxy import ForwardProxy

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


@pytest.mark.slow
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

    # Not trusted, but --insecure: sent anyway, and said.
    insecure = await bulkimport(*args, "--insecure", "--new", cwd=tmp_path)
    assert insecure.code == 0, insecure.err
    assert len(arrivals) == 20
    assert INSECURE_WARNING in insecure.err.splitlines()


# --- the password out of request lines: POST by default -----------------------------------------

NAME = "import.callcenter.test"  # only the test proxy resolves it: calls to it go through it
NO_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY")


def through_proxy(proxy: ForwardProxy) -> dict[str, str]:
    """The variables of a command that sends through ``proxy``, whatever this machine has."""
    return {**{name: "" for name in NO_PROXY_VARIABLES}, "http_proxy": proxy.url}


def named_target(port: int) -> list[str]:
    url = f"http://{NAME}:{port}/asterccinterfaces"
    return ["--url", url, "--org", "demo", "--user", "admin", "--campaign", "1"]


def files_of(folder: Path) -> list[Path]:
    """The files the tool wrote in ``folder`` (not the test's own CSV files and profiles)."""
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and path.suffix not in (".csv", ".toml")
    ]


async def test_post_by_default_keeps_the_password_out_of_every_request_line(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    schema = dataclasses.replace(default_schema(), accounts=(Account("admin", PASSWORD),))
    sandbox = await sandbox_factory(schema=schema)
    endpoint = f"http://{NAME}:{sandbox.port}/asterccinterfaces"
    tonight = write_csv(tmp_path / "tonight.csv", [HEADER, *good_rows(20)])
    later = write_csv(tmp_path / "later.csv", [HEADER, *good_rows(20, start=100)])
    outputs: list[Done] = []
    async with ForwardProxy({NAME: "127.0.0.1"}) as proxy:
        env = through_proxy(proxy)
        # The default: every call a POST, its request line the endpoint alone, no warning.
        posted = await bulkimport(
            "run", str(tonight), *named_target(sandbox.port), "--pwdtype", "md5",
            "--log", "job.log", "--rate", "0", cwd=tmp_path, password=PASSWORD, env=env,
        )  # fmt: skip
        outputs.append(posted)
        assert posted.code == 0, posted.err
        assert len(proxy.requests) == 20 and set(proxy.requests) == {("POST", endpoint)}
        assert "warning" not in posted.err
        assert_no_secret("the request lines", repr(proxy.requests).encode())

        # GET, asked for: the MD5 goes into every request line (it logs in as the password
        # does), and every run that sends says so, even --quiet; staging sends nothing.
        proxy.requests.clear()
        staged = await bulkimport(
            "stage", str(later), *named_target(sandbox.port), "--method", "get",
            "--pwdtype", "md5", cwd=tmp_path, password=PASSWORD, env=env,
        )  # fmt: skip
        assert staged.code == 0, staged.err
        assert "warning" not in staged.err
        resumed = await bulkimport(
            "resume", "--quiet", "--log", "job.log", cwd=tmp_path, password=PASSWORD, env=env
        )
        outputs += [staged, resumed]
        assert resumed.code == 0, resumed.err
        assert [line for line in resumed.err.splitlines() if "warning" in line] == [GET_WARNING]
        assert len(proxy.requests) == 20
        assert all(method == "GET" for method, _ in proxy.requests)
        assert all(f"password={md5_hex(PASSWORD)}&" in target for _, target in proxy.requests)
    log = (tmp_path / "job.log").read_text(encoding="utf-8")
    assert log.count(GET_WARNING) == 1, log
    assert len(await customers(sandbox)) == 40
    # The password and its MD5 are in no file the tool wrote, and in none of its output.
    written = files_of(tmp_path)
    assert {"bulkimport.db", "job.log"} <= {path.name for path in written}
    for path in written:
        assert_no_secret(str(path), path.read_bytes())
    for done in outputs:
        assert_no_secret("the output", (done.out + done.err).encode())


async def test_get_to_this_machine_gives_no_warning(tmp_path: Path, sandbox: SandboxHandle) -> None:
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(5)])
    done = await bulkimport("run", str(csv_file), *target(sandbox), "--method", "get", cwd=tmp_path)
    assert done.code == 0, done.err
    assert "warning" not in done.err and "--method get" not in done.err


# --- a server that answers GET only ------------------------------------------------------------

MAINTENANCE = (
    "<!DOCTYPE html><html><head><title>Welcome to the call center</title></head>"
    "<body><h1>Welcome</h1></body></html>"
)


@dataclass
class GetOnly:
    """The sandbox behind a front that takes GET only (some installations of the vendor's
    server): a POST to the endpoint gets ``refusal``, a 405, a 404 or a page with 200."""

    sandbox: Sandbox
    port: int
    seen: list[str]  # the request line of every call to the endpoint

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/asterccinterfaces"


@contextlib.asynccontextmanager
async def serve_get_only(folder: Path, refusal: str) -> AsyncIterator[GetOnly]:
    store = Store(folder / "get-only-sandbox.db")
    store.open()
    sandbox = Sandbox(default_schema(), store, Faults())
    seen: list[str] = []

    @web.middleware
    async def get_only(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path != ENDPOINT_PATH:
            return await handler(request)
        seen.append(f"{request.method} {request.path_qs}")
        if request.method != "POST":
            return await handler(request)
        if refusal == "405":
            page = "<html><head><title>405 Not Allowed</title></head></html>"
            return web.Response(status=405, text=page, content_type="text/html")
        if refusal == "404":
            page = "<html><head><title>404 Not Found</title></head></html>"
            return web.Response(status=404, text=page, content_type="text/html")
        return web.Response(text=MAINTENANCE, content_type="text/html")

    app = build_app(sandbox)
    app.middlewares.append(get_only)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield GetOnly(sandbox, runner.addresses[0][1], seen)
    finally:
        await runner.cleanup()
        store.close()


def attempts_by_state(db: Path, job: int) -> dict[tuple[str, int], int]:
    rows = query(
        db, "SELECT state, attempts, COUNT(*) FROM rows WHERE job_id = ? GROUP BY 1, 2", job
    )
    return {(state, attempts): n for state, attempts, n in rows}


def gets(server: GetOnly) -> list[str]:
    return [line for line in server.seen if line.startswith("GET ")]


@pytest.mark.slow
@pytest.mark.parametrize("refusal", ["405", "404", "page"])
async def test_a_server_that_answers_get_only_stops_the_job_at_once_naming_method_get(
    tmp_path: Path, refusal: str
) -> None:
    rows = 30
    tonight = write_csv(tmp_path / "tonight.csv", [HEADER, *good_rows(rows)])
    tomorrow = write_csv(tmp_path / "tomorrow.csv", [HEADER, *good_rows(rows, start=1000)])
    db = tmp_path / "bulkimport.db"
    async with serve_get_only(tmp_path, refusal) as server:
        options = ["--url", server.url, "--org", "demo", "--user", "admin", "--campaign", "1"]

        started = time.monotonic()
        stopped = await bulkimport("run", str(tonight), *options, cwd=tmp_path)
        seconds = time.monotonic() - started
        assert stopped.code == 3, stopped.err
        (line,) = stopped.error_lines()
        assert f"{server.url} gives no Import answer to POST" in line, line
        assert "but answers GET: give --method get" in line and "access logs" in line, line
        assert "no row was sent or used an attempt" in line and "<" not in line, line
        assert "check --url" not in line, line
        assert seconds < 15, seconds
        assert attempts_by_state(db, 1) == {("pending", 0): rows}
        # One GET asked, with an empty record and an empty password: nothing imported, and
        # no password in its request line.
        (asked,) = gets(server)
        assert "&password=&" in asked and "secret" not in asked
        assert len(server.sandbox.stats.arrivals) == 1
        assert server.sandbox.store.customers("1") == []

        # Not switched by itself: the job goes on by GET when told so (to this machine: no
        # warning), and loads every row.
        resumed = await bulkimport("resume", "--method", "get", "--rate", "0", cwd=tmp_path)
        assert resumed.code == 0, resumed.err
        assert "warning" not in resumed.err
        assert attempts_by_state(db, 1) == {("done", 1): rows}

        # The URL has answered (GET) in this database: a new job sent by POST is still told
        # apart at once, not taken for a refusal of the login or waited for as an outage.
        server.seen.clear()
        started = time.monotonic()
        again = await bulkimport(
            "run", str(tomorrow), *options, "--max-outage", "10m", cwd=tmp_path
        )
        seconds = time.monotonic() - started
        assert again.code == 3, again.err
        (line,) = again.error_lines()
        assert "gives no Import answer to POST" in line and "--method get" in line, line
        assert seconds < 15, seconds
        assert attempts_by_state(db, 2) == {("pending", 0): rows}
        assert len(gets(server)) == 1

        # A URL that answers neither method is a wrong URL, as before.
        wrong = server.url.replace("/asterccinterfaces", "/interfaces/import.php")
        lost = await bulkimport(
            "run", str(tonight), "--new", *options[2:], "--url", wrong, cwd=tmp_path
        )
        assert lost.code == 3, lost.err
        (line,) = lost.error_lines()
        assert "never gave an Import answer" in line and "--method" not in line, line


async def test_a_remote_import_to_a_server_that_answers_get_only_names_method_get(
    tmp_path: Path,
) -> None:
    async with serve_get_only(tmp_path, "405") as server:
        done = await bulkimport(
            "remote", "https://files.example.com/leads.csv", "--url", server.url,
            "--org", "demo", "--user", "admin", "--campaign", "1", cwd=tmp_path,
        )  # fmt: skip
        assert done.code == 3, done.err
        (line,) = done.error_lines()
        assert "gives no Import answer to POST (HTTP 405" in line, line
        assert "but answers GET: give --method get" in line, line
        assert [line.split(" ", 1)[0] for line in server.seen] == ["POST", "GET"]
        assert "&password=&" in server.seen[1]


# --- a URL's user and password are never shown ------------------------------------------------

URL_USER = "url-admin-7c"
URL_PASSWORD = "Ur1-S3cret-9b2"


def assert_no_url_credentials(where: str, data: bytes) -> None:
    for secret in (URL_USER, URL_PASSWORD, urllib.parse.quote(URL_PASSWORD, safe="")):
        assert secret.encode() not in data, f"{secret!r} in {where}"


@pytest.mark.slow
async def test_a_url_with_a_user_and_password_is_shown_masked_everywhere(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    login = f"{URL_USER}:{URL_PASSWORD}"
    with_login = sandbox.url.replace("http://", f"http://{login}@")
    masked = sandbox.url.replace("http://", "http://***@")
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(10)])
    profile = tmp_path / "nightly.toml"
    profile.write_text(f'url = "{with_login}"\norg = "demo"\nuser = "admin"\ncampaign = "1"\n')
    outputs: list[Done] = []

    # A mistyped --url (option, variable, profile, wrong scheme): refused, shown masked.
    target_rest = ["--org", "demo", "--user", "admin", "--campaign", "1"]
    for args, env, source in (
        (["--url", with_login, *target_rest], {}, "command line"),
        (target_rest, {"BULKIMPORT_URL": with_login}, "BULKIMPORT_URL"),
        (["--config", str(profile)], {}, "profile"),
        (["--url", with_login.replace("http", "htp", 1), *target_rest], {}, "command line"),
    ):
        refused = await bulkimport(
            "run", str(csv_file), *args, "--log", "job.log", cwd=tmp_path, env=env
        )
        outputs.append(refused)
        assert refused.code == 2, refused.err
        (line,) = refused.error_lines()
        assert line.startswith(f"Error: --url ({source}): '"), line
        assert "://***@127.0.0.1:" in line, line

    # A remote import's URL: its login goes to the server as source_user/source_pwd, and is
    # shown, logged and stored without it.
    remote = await bulkimport(
        "remote", f"http://{login}@127.0.0.1:9/leads.csv", *target(sandbox), "--json",
        "--log", "job.log", "--max-attempts", "1", cwd=tmp_path,
    )  # fmt: skip
    outputs.append(remote)
    assert remote.code in (0, 3, 75), remote.err
    assert remote.json()["url"] == "http://127.0.0.1:9/leads.csv"
    # One whose password holds a "/" (what follows it reads as the host): masked whole.
    slashed = await bulkimport(
        "remote", f"http://{URL_USER}:Ur1/{URL_PASSWORD}@files.example/leads.csv",
        *target(sandbox), cwd=tmp_path,
    )  # fmt: skip
    outputs.append(slashed)
    assert slashed.code == 2, slashed.err
    (line,) = slashed.error_lines()
    assert "'http://***@files.example/leads.csv'" in line, line
    assert "Ur1" not in line, line

    # A job, and what a person looks at afterwards.
    ran = await bulkimport("run", str(csv_file), *target(sandbox), "--log", "job.log", cwd=tmp_path)
    assert ran.code == 0, ran.err
    outputs.append(ran)
    for command in (["status"], ["status", "--json"], ["jobs"], ["jobs", "--json"]):
        outputs.append(await bulkimport(*command, cwd=tmp_path, password=None))
        assert outputs[-1].code == 0, outputs[-1].err
    assert masked not in "".join(done.out for done in outputs[-4:])  # no login to mask there
    assert "leads.csv" in outputs[-1].out and "127.0.0.1:9" in outputs[-1].out

    for done in outputs:
        assert_no_url_credentials("the output", (done.out + done.err).encode())
    written = files_of(tmp_path)
    assert {"bulkimport.db", "job.log"} <= {path.name for path in written}
    for path in written:
        assert_no_url_credentials(str(path), path.read_bytes())


# --- --insecure: said on every run, never kept with the job -----------------------------------


@pytest.mark.posix_only("a signal sent to another process (Windows has console events instead)")
async def test_insecure_is_said_on_every_run_and_a_resume_without_it_verifies_again(
    tmp_path: Path, https_sandbox: HttpsSandbox, authority: trustme.CA
) -> None:
    arrivals = https_sandbox.sandbox.stats.arrivals
    https_sandbox.sandbox.set_faults(Faults(latency_s=0.05))
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(300)])
    proc = await spawn(
        "run", str(csv_file), *https_target(https_sandbox.port), "--insecure", "--rate", "0",
        "--concurrency", "4", "--log", "job.log", cwd=tmp_path, capture=True,
    )  # fmt: skip
    for _ in range(600):
        if len(arrivals) >= 20:
            break
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode()
    assert [line for line in err.decode().splitlines() if "warning" in line] == [INSECURE_WARNING]
    db = tmp_path / "bulkimport.db"
    (stored,) = query(db, "SELECT settings_json FROM jobs")
    assert "insecure" not in json.loads(stored[0])
    https_sandbox.sandbox.set_faults(Faults())
    sent = len(arrivals)

    # Resumed without --insecure: the certificate is verified again, and refused.
    verified = await bulkimport("resume", cwd=tmp_path)
    assert verified.code == 3, verified.err
    (line,) = verified.error_lines()
    assert "certificate" in line, line
    assert line.index("--ca-file") < line.index("--insecure"), line
    assert "warning" not in verified.err
    assert len(arrivals) == sent

    # Trusting its authority (the first thing the message names) finishes the job.
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    trusted = await bulkimport("resume", "--ca-file", str(ca_file), cwd=tmp_path)
    assert trusted.code == 0, trusted.err
    assert "warning" not in trusted.err
    assert set(query(db, "SELECT DISTINCT state FROM rows")) == {("done",)}
    log = (tmp_path / "job.log").read_text(encoding="utf-8")
    assert log.count(INSECURE_WARNING) == 1


# --- the documented recipes put the password on no command line -----------------------------

#: A crontab entry: five schedule fields, then the command.
CRONTAB_LINE = re.compile(r"(?<![\w.:-])((?:[\d*/,-]+[ \t]+){5})([^`\n]+)")
#: A password put in a variable: ``X_PASSWORD=value`` (shell) or ``$env:X_PASSWORD = value``.
PASSWORD_ASSIGNMENT = re.compile(r"PASSWORD\s*=\s*(\S+)")


def documents() -> dict[str, str]:
    paths = [ROOT / "README.md", ROOT / "samples" / "nightly.toml", *(ROOT / "docs").glob("*.md")]
    return {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in paths}


def test_no_documented_crontab_line_or_command_holds_the_password() -> None:
    crontab_lines = []
    for name, text in documents().items():
        for schedule, command in CRONTAB_LINE.findall(text):
            if "*" not in schedule:
                continue  # five numbers in a row that are not a schedule
            crontab_lines.append((name, command))
            # cron logs the command lines it runs (Debian: to syslog): no password there.
            assert "PASSWORD" not in command and "password" not in command, (name, command)
        for line in text.splitlines():
            for value in PASSWORD_ASSIGNMENT.findall(line):
                # Read from a file only its owner can read, at run time; or the sandbox's
                # own demo password.
                assert value.startswith(('"$(cat', "Get-Content")) or value in (
                    "secret",
                    '"secret"',
                ), (name, line)
    assert ("README.md", "/usr/local/bin/nightly-leads") in [
        (name, command.strip()) for name, command in crontab_lines
    ]
    readme = documents()["README.md"]
    assert 'export BULKIMPORT_CC_PASSWORD="$(cat /etc/bulkimport/cc-password)"' in readme
    # The README says what the MD5 is worth.
    assert "replays exactly like the password" in readme
