"""Changing the faults of a running sandbox: ``/sandbox/faults`` and the handle's methods."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sandbox_helpers import Client, params

from bulkimport.sandbox import Faults, SandboxHandle

DEFAULTS = {
    "latency_s": 0,
    "jitter_s": 0,
    "capacity": 0,
    "queue_timeout_s": 10,
    "http500_rate": 0,
    "backmsg85_rate": 0,
    "code_rates": {},
    "drop_rate": 0,
    "hang_rate": 0,
    "max_rps": 0,
    "retry_after_s": 1,
    "outage": "off",
    "http500_after_rate": 0,
    "fatal200_after_rate": 0,
    "bom_rate": 0,
    "notice_rate": 0,
    "html_notice_rate": 0,
    "lock_s": 0,
    "lock_every_s": 0,
    "https_only": False,
    "seed": None,
}


async def post_faults(client: Client, body: Any) -> tuple[int, str]:
    url = client.sandbox.base_url + "/sandbox/faults"
    async with client.session.post(url, json=body) as response:
        return response.status, await response.text()


async def test_the_faults_are_shown_under_the_options_names(client: Client) -> None:
    assert await client.get_json("/sandbox/faults") == DEFAULTS


async def test_a_post_changes_the_settings_it_names_and_keeps_the_others(client: Client) -> None:
    changed = await client.post_json("/sandbox/faults", {"capacity": 50, "latency_s": 0.01})
    assert changed == {**DEFAULTS, "capacity": 50, "latency_s": 0.01}
    changed = await client.post_json(
        "/sandbox/faults", {"outage": "502", "code_rates": {"BackMsg_116": 0.5}}
    )
    expected = {
        **DEFAULTS,
        "capacity": 50,
        "latency_s": 0.01,
        "outage": "502",
        "code_rates": {"116": 0.5},
    }
    assert changed == expected
    assert await client.get_json("/sandbox/faults") == expected
    assert (await client.send(params("phone1=1"), method="POST"))[0] == 502
    await client.post_json("/sandbox/faults", {"outage": "off", "capacity": 0})
    assert await client.get_json("/sandbox/faults") == {**expected, "outage": "off", "capacity": 0}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"capacity": 10, "nonsense": 1}, "unknown fault settings: nonsense"),
        ({"capacity": "lots"}, "capacity must be a number"),
        ({"latency_s": True}, "latency_s must be a number"),
        ({"drop_rate": 2}, "add up to at most 1"),
        ({"http500_rate": 0.6, "code_rates": {"74": 0.6}}, "add up to at most 1"),
        ({"code_rates": {"x": 0.1}}, "not an answer code"),
        ({"code_rates": [116]}, "code_rates must map"),
        ({"outage": "down"}, "outage must be one of off, drop, 502, html200"),
        ({"retry_after_s": 1.5}, "whole seconds"),
        ({"seed": "x"}, "seed must be an integer"),
        ({"capacity": -1}, "cannot be negative"),
        ({"https_only": 1}, "https_only must be true or false"),
        ({"bom_rate": 1.5}, "bom_rate, notice_rate and html_notice_rate must be within 0..1"),
        ({"lock_s": 5, "lock_every_s": 5}, "lock_s (--lock) must be shorter than lock_every_s"),
        ({"lock_s": -1}, "lock_s and lock_every_s cannot be negative"),
        ({"http500_after_rate": 0.6, "drop_rate": 0.6}, "add up to at most 1"),
        ([1], "JSON object"),
    ],
)
async def test_a_bad_change_is_refused_and_changes_nothing(
    client: Client, body: Any, says: str
) -> None:
    await client.post_json("/sandbox/faults", {"latency_s": 0.01})
    status, text = await post_faults(client, body)
    assert status == 400
    assert says in text
    assert await client.get_json("/sandbox/faults") == {**DEFAULTS, "latency_s": 0.01}


async def test_a_json_request_whose_body_is_not_json_is_refused(client: Client) -> None:
    url = client.sandbox.base_url + "/sandbox/faults"
    headers = {"Content-Type": "application/json"}
    async with client.session.post(url, data="outage=502", headers=headers) as response:
        assert response.status == 400
        assert "JSON object" in await response.text()


async def test_a_json_body_sent_form_encoded_as_plain_curl_d_is_refused(client: Client) -> None:
    url = client.sandbox.base_url + "/sandbox/faults"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with client.session.post(url, data='{"capacity": 7}', headers=headers) as response:
        assert response.status == 415
    assert (await client.get_json("/sandbox/faults"))["capacity"] == 0


async def test_delete_turns_every_fault_off(client: Client, sandbox: SandboxHandle) -> None:
    sandbox.set_faults(Faults(outage="drop", capacity=3, code_rates={"116": 1}))
    url = sandbox.base_url + "/sandbox/faults"
    async with client.session.delete(url, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 200
        assert await response.json() == DEFAULTS
    assert await client.message("phone1=1") == "BackMsg_84"


async def test_a_change_keeps_the_capacity_backlog_and_the_rate_window(client: Client) -> None:
    # One call a second, and nginx gives up after 0.1 s: three calls leave about 3 s queued.
    await client.post_json("/sandbox/faults", {"capacity": 1, "queue_timeout_s": 0.1, "max_rps": 3})
    statuses = await asyncio.gather(
        *(client.send(params(f"phone1={k}"), method="POST") for k in range(3))
    )
    assert sorted(status for status, _ in statuses)[-1] == 504
    backlog_s = (await client.get_json("/sandbox/stats"))["backlog_s"]
    assert backlog_s > 1.5
    await client.post_json("/sandbox/faults", {"latency_s": 0.01, "capacity": 2})
    assert (await client.get_json("/sandbox/stats"))["backlog_s"] > 1.0
    # The rate window still holds the three calls of this second.
    assert (await client.send(params("phone1=9"), method="POST"))[0] == 429
    await client.post_json("/sandbox/faults", {"capacity": 0, "max_rps": 0})
    assert (await client.get_json("/sandbox/stats"))["backlog_s"] == 0


async def test_the_handle_changes_faults_in_process_and_they_survive_a_restart(
    client: Client, sandbox: SandboxHandle
) -> None:
    assert sandbox.update_faults(capacity=5, outage="html200") == Faults(
        capacity=5, outage="html200"
    )
    assert (await client.get_json("/sandbox/faults"))["outage"] == "html200"
    await client.post_json("/sandbox/faults", {"outage": "502"})
    assert sandbox.faults == Faults(capacity=5, outage="502")
    await sandbox.stop()
    await sandbox.start()
    assert (await client.get_json("/sandbox/faults"))["outage"] == "502"
    sandbox.set_faults(Faults())
    assert await client.message("phone1=1") == "BackMsg_84"
