"""Office networks: a proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY, ``--proxy``) and a private
certificate authority (``--ca-file``, ``--system-trust``), end to end on loopback.

The proxy of these tests (tests/proxy.py) resolves ``import.callcenter.test`` to 127.0.0.1
itself: a job that loads its rows into a server of that name went through the proxy, since
nothing else can resolve it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import socket
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from bulkimport.errors import ConfigError
from bulkimport.messages import certificate_advice
from bulkimport.protocol import ImportParams, Outcome, OutcomeKind, Trouble
from bulkimport.sandbox import Faults, SandboxHandle, default_schema
from bulkimport.sandbox.app import Sandbox, build_app
from bulkimport.sandbox.store import Store
from bulkimport.send import transport as transport_module
from bulkimport.send.transport import (
    CERT_NAME,
    CERT_UNTRUSTED,
    HttpTransport,
    Route,
    bypasses_proxy,
    open_session,
    route_for,
)
from bulkimport.settings import DIRECT, SendSettings, resolve
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    Done,
    bulkimport,
    customers,
    good_rows,
    query,
    write_csv,
)
from tests.proxy import ForwardProxy

NAME = "import.callcenter.test"  # only the test proxy resolves it
USER = "office-user"
PASSWORD = "px-S3cret@4e1a"  # its @ is written %40 in a URL
NOT_SET = {name: "" for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")}
NOT_SET |= {"NO_PROXY": "", "no_proxy": ""}


def env(**variables: str) -> dict[str, str]:
    """The variables of a command: no proxy but those given, whatever this machine has."""
    return {**NOT_SET, **variables}


def credential_forms() -> list[bytes]:
    """Every form of the proxy's credentials that must not be found anywhere."""
    encoded = urllib.parse.quote(PASSWORD, safe="")
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return [form.encode() for form in (PASSWORD, encoded, basic, USER)]


def assert_no_credentials(where: str, data: bytes) -> None:
    for form in credential_forms():
        assert form not in data, f"{form!r} in {where}"


def files_in(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if path.is_file()]


def named_target(port: int, *, scheme: str = "http") -> list[str]:
    url = f"{scheme}://{NAME}:{port}/asterccinterfaces"
    return ["--url", url, "--org", "demo", "--user", "admin", "--campaign", "1"]


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the route: pure ---------------------------------------------------------------------------

HTTPS_URL = "https://cc.example.com/asterccinterfaces"
HTTP_URL = "http://cc.example.com/asterccinterfaces"
P = "http://p:1"


@pytest.mark.parametrize(
    ("url", "proxy", "variables", "expected"),
    [
        (HTTPS_URL, None, {}, (None, "")),
        (HTTPS_URL, None, {"HTTPS_PROXY": "http://p:3128"}, ("http://p:3128", "HTTPS_PROXY")),
        (HTTP_URL, None, {"HTTPS_PROXY": "http://p:3128"}, (None, "")),
        (HTTP_URL, None, {"HTTP_PROXY": "p:3128"}, ("http://p:3128", "HTTP_PROXY")),
        # The lower-case variable first, as curl and urllib read them.
        (
            HTTPS_URL,
            None,
            {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"},
            ("http://lower:2", "https_proxy"),
        ),
        # --proxy wins over the variables; "direct" too.
        (HTTPS_URL, "http://q:1", {"HTTPS_PROXY": "http://p:3128"}, ("http://q:1", "--proxy")),
        (HTTPS_URL, DIRECT, {"HTTPS_PROXY": "http://p:3128"}, (None, "--proxy direct")),
        # NO_PROXY: for the variables' proxy and for --proxy alike.
        (HTTPS_URL, None, {"HTTPS_PROXY": "p:1", "NO_PROXY": "example.com"}, (None, "NO_PROXY")),
        (HTTPS_URL, "http://q:1", {"no_proxy": ".example.com"}, (None, "no_proxy")),
        (HTTPS_URL, None, {"HTTPS_PROXY": "p:1", "NO_PROXY": "*"}, (None, "NO_PROXY")),
        (HTTPS_URL, None, {"HTTPS_PROXY": "p:1", "NO_PROXY": "other.com"}, (P, "HTTPS_PROXY")),
        (HTTPS_URL, None, {"HTTPS_PROXY": "p:1", "NO_PROXY": "ample.com"}, (P, "HTTPS_PROXY")),
        # This machine is never reached through a proxy (it would reach its own loopback).
        ("http://127.0.0.1:8765/asterccinterfaces", "q:1", {}, (None, "loopback")),
        ("https://localhost/asterccinterfaces", None, {"HTTPS_PROXY": "p:1"}, (None, "loopback")),
        ("http://[::1]:8765/asterccinterfaces", None, {"HTTP_PROXY": "p:1"}, (None, "loopback")),
        ("http://127.4.5.6/asterccinterfaces", None, {"HTTP_PROXY": "p:1"}, (None, "loopback")),
    ],
)  # fmt: skip
def test_the_route_of_the_calls(
    url: str, proxy: str | None, variables: dict[str, str], expected: tuple[str | None, str]
) -> None:
    route = route_for(url, proxy, variables)
    assert (route.proxy, route.origin) == expected


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypass"),
    [
        ("cc.example.com", 443, "example.com", True),
        ("cc.example.com", 443, ".example.com", True),
        ("cc.example.com", 443, "*.example.com", True),
        ("example.com", 443, ".example.com", True),
        ("cc.example.com", 443, "EXAMPLE.COM ,other", True),
        ("badexample.com", 443, "example.com", False),
        ("cc.example.com", 443, "cc.example.com:443", True),
        ("cc.example.com", 8443, "cc.example.com:443", False),
        ("10.1.2.3", 443, "10.0.0.0/8", True),
        ("10.1.2.3", 443, "192.168.0.0/16,10.1.2.3", True),
        ("11.1.2.3", 443, "10.0.0.0/8", False),
        ("cc.example.com", 443, "", False),
        ("cc.example.com", 443, "*", True),
    ],
)
def test_no_proxy_lists(host: str, port: int, no_proxy: str, bypass: bool) -> None:
    assert bypasses_proxy(host, port, no_proxy) is bypass


def test_a_malformed_proxy_variable_is_named_with_its_password_masked() -> None:
    with pytest.raises(ConfigError) as raised:
        route_for(HTTPS_URL, None, {"HTTPS_PROXY": f"socks5://{USER}:secret@p:1080"})
    message = str(raised.value)
    assert message.startswith("HTTPS_PROXY: ") and "socks5://***@p:1080" in message
    assert "secret" not in message and USER not in message


def test_a_route_shows_its_proxy_without_the_credentials() -> None:
    encoded = urllib.parse.quote(PASSWORD, safe="")
    route = route_for(HTTPS_URL, f"http://{USER}:{encoded}@proxy.office:3128", {})
    assert str(route) == "the proxy http://***@proxy.office:3128 (--proxy)"
    assert USER not in repr(route) and encoded not in repr(route)
    # What a message could hold is masked: the password as written, decoded, and the header.
    assert {PASSWORD, encoded, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()} <= set(
        route.secrets
    )


# --- the advice for a certificate that was refused: pure -------------------------------------


def refused(code: str = CERT_UNTRUSTED) -> Outcome:
    return Outcome(
        OutcomeKind.FATAL, code, "the server's certificate was refused: x", trouble=Trouble.TLS
    )


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_the_certificate_advice_names_the_ways_to_trust_first_and_insecure_last(
    platform: str,
) -> None:
    advice = certificate_advice(refused(), SendSettings(), platform=platform)
    assert advice is not None
    ca_file, system, insecure = (
        advice.index(o) for o in ("--ca-file", "--system-trust", "--insecure")
    )
    assert ca_file < system < insecure
    assert advice.rstrip().endswith("--insecure (no verification at all)")
    assert ("Install Certificates.command" in advice) is (platform == "darwin")
    assert "proxy" in advice


def test_the_certificate_advice_follows_what_was_tried() -> None:
    tried = SendSettings(ca_file="/etc/office-ca.pem", system_trust=True)
    advice = certificate_advice(refused(), tried, platform="darwin")
    assert advice is not None
    assert "--ca-file /etc/office-ca.pem holds the CA" in advice
    assert "does not trust it either (--system-trust)" in advice
    assert "Install Certificates.command" not in advice
    name = certificate_advice(refused(CERT_NAME), SendSettings(), platform="linux")
    assert name is not None and "host name" in name and "--ca-file" not in name
    other = Outcome(OutcomeKind.TRANSIENT, "tls", "wrong version number", trouble=Trouble.TLS)
    assert certificate_advice(other, SendSettings()) is None


# --- fixtures: an HTTPS sandbox under a private CA, the proxy -----------------------------------


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(tmp_path: Path, authority: trustme.CA) -> Path:
    path = tmp_path / "office-ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return path


@dataclass(frozen=True)
class HttpsSandbox:
    sandbox: Sandbox
    port: int

    @property
    def arrivals(self) -> int:
        return len(self.sandbox.stats.arrivals)


@pytest.fixture
async def https_sandbox(tmp_path: Path, authority: trustme.CA) -> AsyncIterator[HttpsSandbox]:
    """A sandbox over HTTPS, its certificate (for 127.0.0.1 and import.callcenter.test) from a
    private authority."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost", NAME).configure_cert(context)
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


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    async with ForwardProxy({NAME: "127.0.0.1"}) as running:
        yield running


@pytest.fixture
async def locked_proxy() -> AsyncIterator[ForwardProxy]:
    """The proxy, wanting a user and password."""
    async with ForwardProxy({NAME: "127.0.0.1"}, credentials=(USER, PASSWORD)) as running:
        yield running


def leads(tmp_path: Path, n: int = 30) -> Path:
    return write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(n)])


def error_line(done: Done) -> str:
    assert "Traceback" not in done.err, done.err
    (line,) = done.error_lines()
    return line


# --- a job through the proxy ------------------------------------------------------------------


async def test_a_job_through_https_proxy_loads_every_row_into_a_server_only_the_proxy_knows(
    tmp_path: Path, https_sandbox: HttpsSandbox, proxy: ForwardProxy, ca_file: Path
) -> None:
    csv_file = leads(tmp_path)
    done = await bulkimport(
        "run", str(csv_file), *named_target(https_sandbox.port, scheme="https"),
        "--ca-file", str(ca_file), "--rate", "0",
        cwd=tmp_path, env=env(HTTPS_PROXY=proxy.url),
    )  # fmt: skip
    assert done.code == 0, done.err
    assert https_sandbox.arrivals == 30
    assert ("CONNECT", f"{NAME}:{https_sandbox.port}") in proxy.requests
    assert {method for method, _ in proxy.requests} == {"CONNECT"}
    assert f"sending through the proxy {proxy.url} (HTTPS_PROXY)" in done.err


async def test_a_job_through_http_proxy_goes_in_absolute_form(
    tmp_path: Path, sandbox: SandboxHandle, proxy: ForwardProxy
) -> None:
    csv_file = leads(tmp_path)
    done = await bulkimport(
        "run", str(csv_file), *named_target(sandbox.port), "--rate", "0",
        cwd=tmp_path, env=env(http_proxy=proxy.url),
    )  # fmt: skip
    assert done.code == 0, done.err
    assert len(await customers(sandbox)) == 30
    # POST (the default): the request line is the endpoint alone, the call is in the body.
    endpoint = f"http://{NAME}:{sandbox.port}/asterccinterfaces"
    assert len(proxy.requests) >= 30
    assert set(proxy.requests) == {("POST", endpoint)}


async def test_the_proxy_option_wins_over_the_variables_and_its_credentials_are_never_shown(
    tmp_path: Path, https_sandbox: HttpsSandbox, locked_proxy: ForwardProxy, ca_file: Path
) -> None:
    csv_file = leads(tmp_path)
    dead = f"http://127.0.0.1:{free_port()}"  # the variables name a proxy that is not there
    log = tmp_path / "job.log"
    args = [
        "run", str(csv_file), *named_target(https_sandbox.port, scheme="https"),
        "--ca-file", str(ca_file), "--rate", "0", "--log", str(log), "--log-format", "json",
        "--proxy", locked_proxy.url_with(USER, PASSWORD),
    ]  # fmt: skip
    done = await bulkimport(*args, cwd=tmp_path, env=env(HTTPS_PROXY=dead, HTTP_PROXY=dead))
    assert done.code == 0, done.err
    assert https_sandbox.arrivals == 30
    assert (
        f"sending through the proxy http://***@127.0.0.1:{locked_proxy.port} (--proxy)" in done.err
    )
    # The same through BULKIMPORT_PROXY, for `status` and `jobs` to show afterwards.
    again = await bulkimport(
        *args[:-2], "--new", cwd=tmp_path,
        env=env(HTTPS_PROXY=dead, BULKIMPORT_PROXY=locked_proxy.url_with(USER, PASSWORD)),
    )  # fmt: skip
    assert again.code == 0, again.err
    assert https_sandbox.arrivals == 60
    status = await bulkimport("status", "--json", cwd=tmp_path, password=None)
    jobs = await bulkimport("jobs", "--json", cwd=tmp_path, password=None)
    for output in (done, again, status, jobs):
        assert_no_credentials("the output", (output.out + output.err).encode())
    written = files_in(tmp_path)
    assert {"bulkimport.db", "job.log"} <= {path.name for path in written}
    for path in written:
        assert_no_credentials(str(path), path.read_bytes())
    for (settings,) in query(tmp_path / "bulkimport.db", "SELECT settings_json FROM jobs"):
        assert "proxy" not in json.loads(settings)


async def test_wrong_proxy_credentials_stop_the_job_in_one_line_that_names_the_proxy(
    tmp_path: Path, sandbox: SandboxHandle, locked_proxy: ForwardProxy
) -> None:
    for scheme_target, proxy_url in (
        (named_target(sandbox.port), locked_proxy.url_with(USER, "wrong-" + PASSWORD)),
        (named_target(sandbox.port, scheme="https"), locked_proxy.url),
    ):
        done = await bulkimport(
            "run", str(leads(tmp_path)), *scheme_target, "--proxy", proxy_url, "--new",
            cwd=tmp_path, env=env(),
        )  # fmt: skip
        assert done.code == 3, done.err
        line = error_line(done)
        assert f"the proxy http://***@127.0.0.1:{locked_proxy.port} (--proxy)" in line or (
            f"the proxy {locked_proxy.url} (--proxy)" in line
        ), line
        assert "407" in line and "user and password" in line, line
        assert "--url" not in line, line  # not taken for a wrong server
        assert_no_credentials("the output", (done.out + done.err).encode())
    assert await customers(sandbox) == []


async def test_a_proxy_that_is_not_there_is_named_not_taken_for_the_server(
    tmp_path: Path, https_sandbox: HttpsSandbox
) -> None:
    port = free_port()
    done = await bulkimport(
        "run", str(leads(tmp_path)), *named_target(https_sandbox.port, scheme="https"),
        "--proxy", f"http://{USER}:{urllib.parse.quote(PASSWORD, safe='')}@127.0.0.1:{port}",
        cwd=tmp_path, env=env(),
    )  # fmt: skip
    assert done.code == 3, done.err
    line = error_line(done)
    assert f"cannot connect to the proxy http://***@127.0.0.1:{port} (--proxy)" in line, line
    assert "is the proxy running" in line and "no row was sent" in line, line
    assert_no_credentials("the output", (done.out + done.err).encode())
    assert https_sandbox.arrivals == 0


async def test_a_proxy_gone_after_the_server_answered_is_an_outage_of_the_proxy(
    tmp_path: Path, https_sandbox: HttpsSandbox, proxy: ForwardProxy, ca_file: Path
) -> None:
    args = [
        "run", str(leads(tmp_path, 5)), *named_target(https_sandbox.port, scheme="https"),
        "--ca-file", str(ca_file), "--max-outage", "2s", "--new",
    ]  # fmt: skip
    reached = await bulkimport(*args, "--proxy", proxy.url, cwd=tmp_path, env=env())
    assert reached.code == 0, reached.err
    # The server answered through it before: a proxy that stops answering is waited for,
    # like a server in an outage, and named as what is down.
    dead = f"http://{USER}:x-{PASSWORD}@127.0.0.1:{free_port()}"
    gone = await bulkimport(*args, "--proxy", dead, cwd=tmp_path, env=env())
    assert gone.code == 75, gone.err
    assert "proxy unreachable since" in gone.err
    assert "Traceback" not in gone.err and gone.error_lines() == [], gone.err
    (line,) = gone.try_later_lines()
    assert line.startswith("try later (exit 75): the proxy did not answer since"), line
    assert "cannot connect to the proxy http://***@127.0.0.1:" in line, line
    assert_no_credentials("the output", (gone.out + gone.err).encode())


async def test_the_sandbox_on_this_machine_is_reached_directly_whatever_the_variables_say(
    tmp_path: Path, proxy: ForwardProxy
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    done = await bulkimport(
        "run", str(leads(tmp_path, 10)), "--sandbox", "--org", "demo", "--user", "admin",
        "--campaign", "1", "--rate", "0",
        cwd=tmp_path, env=env(HTTPS_PROXY=dead, HTTP_PROXY=proxy.url, ALL_PROXY=dead),
    )  # fmt: skip
    assert done.code == 0, done.err
    assert proxy.requests == []
    assert "sending through" not in done.err


async def test_no_proxy_sends_directly(
    sandbox: SandboxHandle, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sandbox is on loopback, reached directly anyway: made to look remote here, so that
    # NO_PROXY alone decides.
    monkeypatch.setattr(transport_module, "is_loopback", lambda host: False)
    params = ImportParams(org="demo", user="admin", password="secret", campaign="1")
    settings = SendSettings()

    async def call(variables: dict[str, str], record: str) -> tuple[Route, Outcome]:
        async with open_session(1) as session:
            sender = HttpTransport(session, sandbox.url, params, settings, env=variables)
            return sender.route, await sender.send(record)

    listed = {"HTTP_PROXY": proxy.url, "NO_PROXY": "localhost,127.0.0.1"}
    route, outcome = await call(listed, "name=A||phone1=13900000001")
    assert (route.proxy, route.origin, outcome.kind) == (None, "NO_PROXY", OutcomeKind.DONE)
    assert proxy.requests == []
    route, outcome = await call({"HTTP_PROXY": proxy.url}, "name=B||phone1=13900000002")
    assert (route.origin, outcome.kind) == ("HTTP_PROXY", OutcomeKind.DONE)
    assert len(proxy.requests) == 1 and proxy.requests[0][1].startswith(sandbox.url)
    assert len(await customers(sandbox)) == 2


@pytest.fixture
async def files() -> AsyncIterator[str]:
    """A file server on loopback for remote imports (the sandbox fetches from it)."""

    async def leads_file(request: web.Request) -> web.Response:
        return web.Response(body=b"phone1,name\n13900000001,A\n", content_type="text/csv")

    app = web.Application()
    app.router.add_get("/leads.csv", leads_file)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_a_remote_import_goes_through_the_proxy_too(
    tmp_path: Path, sandbox_factory: SandboxFactory, locked_proxy: ForwardProxy, files: str
) -> None:
    # The file is served on this machine: the sandbox must be let to fetch from it.
    sandbox = await sandbox_factory(allow_private_fetch=True)
    done = await bulkimport(
        "remote", f"{files}/leads.csv", *named_target(sandbox.port),
        cwd=tmp_path, env=env(HTTP_PROXY=locked_proxy.url_with(USER, PASSWORD)),
    )  # fmt: skip
    assert done.code == 0, done.err
    assert done.out.strip().isdigit()
    assert [m for m, _ in locked_proxy.requests] == ["POST"]
    assert_no_credentials("the output", (done.out + done.err).encode())
    assert_no_credentials("the database", (tmp_path / "bulkimport.db").read_bytes())
    unreachable = await bulkimport(
        "remote", f"{files}/leads.csv", *named_target(sandbox.port), "--max-attempts", "1",
        "--proxy", f"http://127.0.0.1:{free_port()}", cwd=tmp_path, env=env(),
    )  # fmt: skip
    assert unreachable.code == 75, unreachable.err
    assert unreachable.error_lines() == []  # not a failure: said as "try later"
    (line,) = unreachable.try_later_lines()
    assert "cannot connect to the proxy" in line


# --- a private certificate authority -------------------------------------------------------------


async def test_a_private_ca_given_with_ca_file_is_trusted_without_insecure(
    tmp_path: Path, https_sandbox: HttpsSandbox, ca_file: Path
) -> None:
    args = ["run", str(leads(tmp_path, 10)), "--url",
            f"https://127.0.0.1:{https_sandbox.port}/asterccinterfaces",
            "--org", "demo", "--user", "admin", "--campaign", "1", "--rate", "0"]  # fmt: skip

    refused_run = await bulkimport(*args, cwd=tmp_path, env=env())
    assert refused_run.code == 3, refused_run.err
    line = error_line(refused_run)
    assert "certificate" in line, line
    positions = [line.index(option) for option in ("--ca-file", "--system-trust", "--insecure")]
    assert positions == sorted(positions), line
    assert https_sandbox.arrivals == 0

    trusted = await bulkimport(*args, "--ca-file", str(ca_file), "--new", cwd=tmp_path, env=env())
    assert trusted.code == 0, trusted.err
    assert https_sandbox.arrivals == 10
    # The job keeps it (as an absolute path): resuming from elsewhere verifies the same way.
    (stored,) = query(tmp_path / "bulkimport.db", "SELECT settings_json FROM jobs WHERE id = 2")
    assert json.loads(stored[0])["ca_file"] == str(ca_file)  # tmp_path is absolute already


async def test_system_trust_verifies_with_the_systems_store(
    tmp_path: Path, https_sandbox: HttpsSandbox, ca_file: Path
) -> None:
    args = ["run", str(leads(tmp_path, 5)), "--url",
            f"https://127.0.0.1:{https_sandbox.port}/asterccinterfaces",
            "--org", "demo", "--user", "admin", "--campaign", "1", "--system-trust"]  # fmt: skip
    # On Linux the system's store is OpenSSL's (SSL_CERT_FILE): the private CA put there.
    trusted = await bulkimport(*args, cwd=tmp_path, env=env(SSL_CERT_FILE=str(ca_file)))
    assert trusted.code == 0, trusted.err
    assert https_sandbox.arrivals == 5
    refused_run = await bulkimport(*args, "--new", cwd=tmp_path, env=env())
    assert refused_run.code == 3, refused_run.err
    line = error_line(refused_run)
    assert "does not trust it either (--system-trust)" in line and "--ca-file" in line, line


async def test_a_certificate_for_another_name_is_told_apart(
    tmp_path: Path, https_sandbox: HttpsSandbox, ca_file: Path
) -> None:
    # The certificate is for import.callcenter.test; the proxy also knows this other name.
    async with ForwardProxy({"other.callcenter.test": "127.0.0.1"}) as other:
        done = await bulkimport(
            "run", str(leads(tmp_path, 3)),
            "--url", f"https://other.callcenter.test:{https_sandbox.port}/asterccinterfaces",
            "--org", "demo", "--user", "admin", "--campaign", "1", "--ca-file", str(ca_file),
            cwd=tmp_path, env=env(HTTPS_PROXY=other.url),
        )  # fmt: skip
    assert done.code == 3, done.err
    line = error_line(done)
    assert "check the host name in the URL" in line and "--system-trust" not in line, line
    assert line.index("host name") < line.index("--insecure"), line
    assert https_sandbox.arrivals == 0


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "no such file"), (b"not a certificate\n", "no CA certificate in it")],
)
async def test_a_ca_file_that_cannot_be_used_is_a_settings_error(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "office-ca.pem"
    if content is not None:
        path.write_bytes(content)
    done = await bulkimport(
        "run", str(leads(tmp_path, 3)), "--url", "https://cc.example.com/asterccinterfaces",
        "--org", "o", "--user", "u", "--campaign", "1", "--ca-file", str(path),
        cwd=tmp_path, env=env(),
    )  # fmt: skip
    assert done.code == 2, done.err
    line = error_line(done)
    assert line.startswith("Error: --ca-file (command line): ") and reason in line, line
    assert not (tmp_path / "bulkimport.db").exists()  # said before any database is made


def test_settings_for_the_transport_are_typed(tmp_path: Path, ca_file: Path) -> None:
    settings = resolve(
        {"proxy": "proxy.office:3128", "ca_file": str(ca_file), "system_trust": True}, {}, {},
        need_target=False,
    )  # fmt: skip
    assert settings.send.proxy == "http://proxy.office:3128"
    assert settings.send.ca_file == str(ca_file.resolve())
    assert settings.send.system_trust is True
    assert dataclasses.replace(settings.send, proxy=None) != settings.send
