"""What keeps a running sandbox safe: JSON-only control requests, and a warning when it
listens beyond loopback."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from click.testing import CliRunner
from sandbox_helpers import Client

from bulkimport.cli import cli
from bulkimport.cli import sandbox as sandbox_cli
from bulkimport.sandbox import Faults, SandboxConfig, SandboxHandle, addresses
from bulkimport.sandbox.addresses import listens_beyond_loopback

CONTROL = [
    ("POST", "/sandbox/faults"),
    ("DELETE", "/sandbox/faults"),
    ("POST", "/sandbox/reset-stats"),
    ("POST", "/sandbox/customers/status"),
    ("PUT", "/sandbox/faults"),
    ("POST", "/sandbox/anything-else"),
]
# What a web page can send to another site without the browser asking first.
SIMPLE_BODIES: list[dict[str, Any]] = [
    {"data": {"outage": "502"}},  # a form
    {"data": '{"outage": "502"}', "headers": {"Content-Type": "text/plain"}},
    {"data": '{"outage": "502"}', "headers": {"Content-Type": "multipart/form-data; b=x"}},
    {},  # no body, no type
]


# --- control requests are JSON only ---------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), CONTROL)
@pytest.mark.parametrize("body", SIMPLE_BODIES)
async def test_a_control_request_that_is_not_json_is_refused_with_415(
    client: Client, sandbox: SandboxHandle, method: str, path: str, body: dict[str, Any]
) -> None:
    sandbox.set_faults(Faults(capacity=5))
    await client.message("phone1=1")
    before = await client.get_json("/sandbox/stats")
    url = sandbox.base_url + path
    async with client.session.request(method, url, **body) as response:
        assert response.status == 415
        text = await response.text()
    assert text == f"{method} {path} takes Content-Type: application/json only"
    assert sandbox.faults == Faults(capacity=5)
    assert (await client.get_json("/sandbox/stats"))["requests"] == before["requests"] == 1


async def test_every_control_endpoint_takes_json(client: Client, sandbox: SandboxHandle) -> None:
    await client.message("phone1=13800000001")
    json_type = {"Content-Type": "application/json; charset=utf-8"}
    changed = await client.post_json("/sandbox/faults", {"capacity": 5})
    assert changed["capacity"] == 5
    url = sandbox.base_url + "/sandbox/faults"
    async with client.session.delete(url, headers=json_type) as response:
        assert response.status == 200
    assert sandbox.faults == Faults()
    customer = await client.post_json(
        "/sandbox/customers/status", {"model_id": "1", "key": "13800000001", "status": "x"}
    )
    assert customer["status"] == "x"
    assert (await client.post_json("/sandbox/reset-stats", {}))["requests"] == 0


async def test_reading_and_importing_need_no_json(client: Client, sandbox: SandboxHandle) -> None:
    # GET and HEAD change nothing; the Import endpoint takes forms, as the vendor's does.
    assert await client.message("phone1=1", method="POST") == "BackMsg_84"
    assert await client.message("phone1=2") == "BackMsg_84"
    for path in ("/sandbox/faults", "/sandbox/stats", "/sandbox/customers"):
        async with client.session.head(sandbox.base_url + path) as response:
            assert response.status == 200
        assert await client.get_json(path) is not None


# --- the warning when listening beyond loopback ---------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.1.1", "::1", "localhost", "LocalHost", "::ffff:127.0.0.1"]
)
def test_loopback_hosts_stay_on_this_machine(host: str) -> None:
    assert not listens_beyond_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "10.0.0.1", "fe80::1"])
def test_other_hosts_listen_beyond_loopback(host: str) -> None:
    assert listens_beyond_loopback(host)


def test_a_host_name_is_judged_by_its_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    names = {"box.lan": ["127.0.0.1", "192.168.1.20"], "me.lan": ["127.0.0.1", "::1"]}

    def getaddrinfo(host: str, port: object, *args: object, **kw: object) -> list[Any]:
        if host not in names:
            raise socket.gaierror("unknown")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in names[host]]

    monkeypatch.setattr(addresses.socket, "getaddrinfo", getaddrinfo)
    assert listens_beyond_loopback("box.lan")
    assert not listens_beyond_loopback("me.lan")
    assert not listens_beyond_loopback("nowhere.lan")  # cannot be listened on either


def _run_command(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[Any, list[SandboxConfig]]:
    served: list[SandboxConfig] = []

    async def serve(config: SandboxConfig) -> None:
        served.append(config)

    monkeypatch.setattr(sandbox_cli, "_serve", serve)
    result = CliRunner().invoke(cli, ["sandbox", "--port", "0", *args])
    assert result.exit_code == 0, result.output
    return result, served


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20"])
def test_the_command_warns_in_one_line_when_it_listens_beyond_loopback(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    result, [config] = _run_command(monkeypatch, "--host", host)
    assert config.host == host
    assert result.stderr.splitlines() == [
        f"Warning: --host {host} is not a loopback address: anyone who can reach this machine "
        "can read the leads the sandbox holds and change its faults"
    ]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_the_command_is_silent_on_loopback(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    result, _ = _run_command(monkeypatch, "--host", host)
    assert result.stderr == ""


def test_the_command_refuses_private_fetches_unless_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, [config] = _run_command(monkeypatch)
    assert config.allow_private_fetch is False
    assert SandboxConfig().allow_private_fetch is False
    _, [allowed] = _run_command(monkeypatch, "--allow-private-fetch")
    assert allowed.allow_private_fetch is True
