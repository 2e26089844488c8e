"""Remote imports refuse loopback, link-local and private addresses unless the sandbox runs
with ``allow_private_fetch``.

Only loopback is reachable here, and no test may send anything elsewhere: the end-to-end tests
use loopback addresses only, and those that need an "allowed" address make 127.0.0.1 count as
one (every other address keeps the real rule). The checks of other addresses are unit tests
that never connect.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from sandbox_helpers import Client, params

from bulkimport.protocol import Source, parse_answer
from bulkimport.sandbox import SandboxHandle, addresses, remote
from bulkimport.sandbox.addresses import (
    REFUSED_REASON,
    GuardedResolver,
    PrivateAddressError,
    guarded_socket,
    is_refused,
    resolve_checked,
)
from bulkimport.sandbox.remote import FetchError
from tests.conftest import SandboxFactory

REFUSED = f"BackMsg_89 {REFUSED_REASON}"
LEADS = b"phone1,name\n13900000001,Ann\n13900000002,Bob\n"


@pytest.fixture
async def files() -> AsyncIterator[str]:
    """A file server on 127.0.0.1: ``/leads.csv``, and ``/to?url=U``, a redirect to U."""

    async def leads(request: web.Request) -> web.Response:
        return web.Response(body=LEADS, content_type="text/csv")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    app = web.Application()
    app.router.add_get("/leads.csv", leads)
    app.router.add_get("/to/{name}", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def remote_import(client: Client, url: str, **kw: str) -> tuple[bool, str]:
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


def only_loopback_one_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make 127.0.0.1 count as a public address; every other address keeps the real rule."""
    real = addresses.is_refused
    monkeypatch.setattr(addresses, "is_refused", lambda a: a != "127.0.0.1" and real(a))


class FakeResolver(AbstractResolver):
    """Resolves the names it is given, to the addresses it is given."""

    names: ClassVar[dict[str, list[str]]] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.names:
            raise OSError(f"unknown host {host}")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for address in self.names[host]
        ]

    async def close(self) -> None:
        pass


def fake_names(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> None:
    monkeypatch.setattr(FakeResolver, "names", names)
    monkeypatch.setattr(addresses, "DefaultResolver", FakeResolver)


# --- end to end, through the Import endpoint ------------------------------------------------


async def test_a_file_on_loopback_is_refused_and_the_answer_says_why(
    client: Client, sandbox: SandboxHandle, files: str
) -> None:
    assert not sandbox.config.allow_private_fetch
    port = files.rsplit(":", 1)[1]
    for url in (
        f"{files}/leads.csv",
        f"http://localhost:{port}/leads.csv",  # a name that resolves to loopback
        f"http://[::1]:{port}/leads.csv",
        f"http://[::ffff:127.0.0.1]:{port}/leads.csv",
        f"http://0.0.0.0:{port}/leads.csv",
        f"ftp://127.0.0.1:{port}/leads.csv",
        f"ftp://localhost:{port}/leads.csv",
    ):
        source = "ftp" if url.startswith("ftp") else "http"
        assert await remote_import(client, url, source=source) == (False, REFUSED), url
    assert await client.get_json("/sandbox/jobs") == []
    assert await client.customers() == []


async def test_a_scheduled_job_records_the_refusal(client: Client, files: str) -> None:
    when = datetime.fromtimestamp(time.time() + 1).strftime("%Y-%m-%d %H:%M:%S")
    success, job_id = await remote_import(client, f"{files}/leads.csv", exetime=when)
    assert success
    job = await wait_job(client, job_id)
    assert (job["state"], job["error"]) == ("failed", REFUSED)
    assert await client.customers() == []


async def test_the_same_file_is_fetched_when_the_sandbox_allows_it(
    sandbox_factory: SandboxFactory, files: str, session: Any
) -> None:
    client = Client(session, await sandbox_factory(allow_private_fetch=True))
    success, job_id = await remote_import(client, f"{files}/leads.csv", delrow="1")
    assert success
    assert (await wait_job(client, job_id))["state"] == "finished"
    assert len(await client.customers()) == 2


async def test_a_redirect_to_a_refused_address_is_not_followed(
    client: Client, files: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    only_loopback_one_allowed(monkeypatch)
    fake_names(monkeypatch, {"files.test": ["127.0.0.1"], "inside.test": ["127.0.0.2"]})
    port = files.rsplit(":", 1)[1]
    # Allowed, redirected to an allowed address: fetched.
    success, job_id = await remote_import(client, f"{files}/to/a.csv?url={files}/leads.csv")
    assert success, job_id
    assert (await wait_job(client, job_id))["state"] == "finished"
    success, job_id = await remote_import(client, f"http://files.test:{port}/leads.csv")
    assert success, job_id
    # Redirected to an IP literal, or to a name, that is refused: not followed.
    for target in (f"http://127.0.0.2:{port}/leads.csv", f"http://inside.test:{port}/leads.csv"):
        answer = await remote_import(client, f"{files}/to/b.csv?url={target}")
        assert answer == (False, REFUSED), target
        answer = await remote_import(client, f"http://files.test:{port}/to/c.csv?url={target}")
        assert answer == (False, REFUSED), target


async def test_a_name_with_any_refused_address_is_refused(
    client: Client, files: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    only_loopback_one_allowed(monkeypatch)
    fake_names(monkeypatch, {"mixed.test": ["127.0.0.1", "127.0.0.2"]})
    port = files.rsplit(":", 1)[1]
    assert await remote_import(client, f"http://mixed.test:{port}/leads.csv") == (False, REFUSED)


# --- the checks, without connecting ---------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3",  # loopback
        "169.254.169.254", "fe80::1", "fe80::1%eth0",  # link-local (cloud metadata among them)
        "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.0.1", "fc00::1", "fd12::1",
        "100.64.0.1", "192.0.2.1", "198.18.0.1", "fec0::1",  # shared, documentation, site-local
        "0.0.0.0", "::", "255.255.255.255", "224.0.0.1", "ff02::1", "240.0.0.1", "::7f00:1",
        "not an address",
    ],
)  # fmt: skip
def test_non_global_addresses_are_refused(address: str) -> None:
    assert is_refused(address)


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "172.32.0.1", "2606:4700:4700::1111"]
)
def test_global_addresses_are_allowed(address: str) -> None:
    assert not is_refused(address)


async def test_the_resolver_refuses_a_name_if_any_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = {
        "public.test": ["93.184.215.14", "2606:4700:4700::1111"],
        "mixed.test": ["93.184.215.14", "10.0.0.5"],
        "metadata.test": ["169.254.169.254"],
    }
    monkeypatch.setattr(FakeResolver, "names", names)
    resolver = GuardedResolver(FakeResolver())
    found = await resolver.resolve("public.test", 80)
    assert [r["host"] for r in found] == ["93.184.215.14", "2606:4700:4700::1111"]
    for name in ("mixed.test", "metadata.test"):
        with pytest.raises(PrivateAddressError, match="allow-private-fetch"):
            await resolver.resolve(name, 80)


def test_the_address_connected_to_is_checked() -> None:
    # The socket of each connection attempt is made only for an allowed address; nothing is
    # connected here.
    v4, v6 = socket.AF_INET, socket.AF_INET6
    for family, address in [(v4, ("127.0.0.1", 80)), (v6, ("fe80::1", 80, 0, 2))]:
        with pytest.raises(PrivateAddressError):
            guarded_socket((family, socket.SOCK_STREAM, 6, "", address))
    sock = guarded_socket((v4, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 80)))
    sock.close()


def test_an_ftp_host_is_resolved_and_checked_first(monkeypatch: pytest.MonkeyPatch) -> None:
    names = {"files.test": ["93.184.215.14"], "mixed.test": ["93.184.215.14", "192.168.1.2"]}
    opened: list[str] = []

    def getaddrinfo(host: str, port: int, *args: object, **kw: object) -> list[Any]:
        if host not in names:
            raise socket.gaierror("unknown")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in names[host]]

    def urlopen(url: str, timeout: float) -> Any:
        opened.append(url)
        raise OSError("not connecting in a test")

    monkeypatch.setattr(addresses.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(remote.urllib.request, "urlopen", urlopen)
    assert resolve_checked("files.test", 21) == ["93.184.215.14"]
    with pytest.raises(PrivateAddressError):
        resolve_checked("mixed.test", 21)
    for url, says in [
        ("ftp://mixed.test/a.csv", REFUSED),
        ("ftp://unknown.test/a.csv", "BackMsg_89 URLError"),
        ("ftp://files.test:2121/a.csv", "BackMsg_89 OSError"),
    ]:
        with pytest.raises(FetchError) as refused:
            remote._fetch_ftp_blocking(url, "u", "p@ss")
        assert refused.value.result.message == says
    # The connection goes to the address that was checked, not to a second lookup.
    assert opened == ["ftp://u:p%40ss@93.184.215.14:2121/a.csv"]


async def test_an_ip_literal_is_refused_before_any_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_socket(addr_info: Any) -> socket.socket:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(addresses, "guarded_socket", no_socket)
    for url in ("http://10.0.0.1/a.csv", "http://[fe80::1]/a.csv", "https://169.254.169.254/a.csv"):
        with pytest.raises(FetchError) as refused:
            await remote.fetch(Source.HTTP, url, "", "")
        assert refused.value.result.message == REFUSED
