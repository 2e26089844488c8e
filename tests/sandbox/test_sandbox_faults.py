"""Fault injection: each fault, seeded, seen over real HTTP and counted by the server."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from sandbox_helpers import Client, params

from bulkimport.protocol import parse_answer
from bulkimport.sandbox import Faults, SandboxHandle

Factory = Callable[..., Awaitable[SandboxHandle]]


async def outcomes(client: Client, count: int) -> list[str]:
    """Send ``count`` new records; name what happened to each.

    POST, because aiohttp's client silently resends an idempotent GET once when the server
    drops a keep-alive connection, which would hide drops.
    """
    seen = []
    for index in range(count):
        try:
            status, body = await client.send(params(f"phone1=1{index:010d}"), method="POST")
        except aiohttp.ClientError:
            seen.append("dropped")
            continue
        answer = parse_answer(body)
        seen.append(answer.message if status == 200 and answer else f"HTTP {status}")
    return seen


async def start_client(factory: Factory, session: aiohttp.ClientSession, faults: Faults) -> Client:
    return Client(session, await factory(faults=faults))


async def test_no_faults_by_default(client: Client) -> None:
    assert set(await outcomes(client, 20)) == {"BackMsg_84"}


@pytest.mark.serial  # how long each answer takes, at most
async def test_latency_and_jitter(sandbox_factory: Factory, session: aiohttp.ClientSession) -> None:
    client = await start_client(
        sandbox_factory, session, Faults(latency_s=0.1, jitter_s=0.05, seed=3)
    )
    for index in range(3):
        started = time.monotonic()
        assert await client.message(f"phone1={index}") == "BackMsg_84"
        assert 0.1 <= time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("faults", "name"),
    [
        (Faults(http500_rate=0.3, seed=1), "HTTP 500"),
        (Faults(backmsg85_rate=0.3, seed=1), "BackMsg_85"),
        (Faults(drop_rate=0.3, seed=1), "dropped"),
    ],
)
async def test_a_share_of_faulty_answers_is_reproducible(
    sandbox_factory: Factory, faults: Faults, name: str
) -> None:
    async with aiohttp.ClientSession() as session:
        first_client = await start_client(sandbox_factory, session, faults)
        first = await outcomes(first_client, 60)
        second = await outcomes(await start_client(sandbox_factory, session, faults), 60)
        stats = await first_client.get_json("/sandbox/stats")
    assert first == second  # same seed, same fates
    counts = Counter(first)
    assert set(counts) == {name, "BackMsg_84"}
    assert 8 <= counts[name] <= 30
    assert stats["requests"] == 60
    assert stats["by_code"]["BackMsg_84"] == counts["BackMsg_84"]


async def test_faulty_requests_write_nothing(
    sandbox_factory: Factory, session: aiohttp.ClientSession
) -> None:
    client = await start_client(
        sandbox_factory, session, Faults(http500_rate=0.2, backmsg85_rate=0.2, seed=5)
    )
    seen = await outcomes(client, 50)
    customers = await client.customers()
    assert len(customers) == seen.count("BackMsg_84")
    assert {c["writes"] for c in customers} == {1}
    stats = await client.get_json("/sandbox/stats")
    assert stats["by_status"].get("500", 0) == seen.count("HTTP 500")
    assert stats["by_code"].get("BackMsg_85", 0) == seen.count("BackMsg_85")


async def test_an_http_500_is_an_html_page(
    sandbox_factory: Factory, session: aiohttp.ClientSession
) -> None:
    client = await start_client(sandbox_factory, session, Faults(http500_rate=1))
    status, body = await client.send(params("phone1=1"))
    assert status == 500
    assert parse_answer(body) is None


@pytest.mark.serial  # how long a stop takes, at most
async def test_hung_requests_outlast_the_client_and_end_when_the_server_stops(
    sandbox_factory: Factory,
) -> None:
    handle = await sandbox_factory(faults=Faults(hang_rate=1))
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(TimeoutError):
            await Client(session, handle).send(params("phone1=1"))
        # One still in flight when the server stops: it ends, the stop is quick.
        pending = asyncio.ensure_future(Client(session, handle).send(params("phone1=2")))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await handle.stop()
        assert time.monotonic() - started < 1.5
        with pytest.raises((aiohttp.ClientError, TimeoutError)):
            await pending
    await handle.start()
    async with aiohttp.ClientSession() as session:
        handle.set_faults(Faults())
        assert await Client(session, handle).message("phone1=3") == "BackMsg_84"
        assert await Client(session, handle).customers() != []


async def test_a_requests_per_second_ceiling_answers_429_with_retry_after(
    sandbox_factory: Factory, session: aiohttp.ClientSession
) -> None:
    client = await start_client(sandbox_factory, session, Faults(max_rps=5, retry_after_s=2))
    results = []
    for index in range(12):
        async with session.get(client.sandbox.url, params=params(f"phone1={index}")) as response:
            results.append((response.status, response.headers.get("Retry-After")))
    assert results[:5] == [(200, None)] * 5
    assert set(results[5:]) == {(429, "2")}
    arrivals = await client.get_json("/sandbox/arrivals")
    assert [a[1] for a in arrivals] == [s for s, _ in results]
    assert [a[2] for a in arrivals[:5]] == ["BackMsg_84"] * 5
    assert all(isinstance(a[0], float) for a in arrivals)
    await asyncio.sleep(1.05)  # the window has passed
    assert await client.message("phone1=99") == "BackMsg_84"


@pytest.mark.parametrize(
    ("code", "body"),
    [
        ("116", "|Retuen|2|Retuen|BackMsg_116"),  # licence: fatal
        ("BackMsg_38", "|Retuen|2|Retuen|BackMsg_38"),
        ("74", "|Retuen|2|Retuen|BackMsg_74"),  # rejected row
        ("113", "|Retuen|2|Retuen|BackMsg_113"),  # transient
        ("5", "|Retuen|2|Retuen|BackMsg_05"),
        ("84", "|Retuen|1|Retuen|BackMsg_84"),  # a success code is answered as one
        ("69", "|Retuen|1|Retuen|BackMsg_69"),
    ],
)
async def test_an_answer_code_for_every_call_is_answered_and_nothing_is_imported(
    sandbox_factory: Factory, session: aiohttp.ClientSession, code: str, body: str
) -> None:
    client = await start_client(sandbox_factory, session, Faults(code_rates={code: 1}))
    for method in ("GET", "POST"):
        assert await client.send(params(f"phone1=1{method}"), method=method) == (200, body)
    assert await client.customers() == []
    counted = body.rsplit("|", 1)[1]
    assert (await client.get_json("/sandbox/stats"))["by_code"] == {counted: 2}
    assert [a[4] for a in await client.get_json("/sandbox/arrivals")] == [False, False]


async def test_answer_codes_for_a_share_of_calls_are_reproducible(sandbox_factory: Factory) -> None:
    faults = Faults(code_rates={"74": 0.2, "BackMsg_113": 0.2}, backmsg85_rate=0.1, seed=4)
    assert faults.code_rates == {"74": 0.2, "113": 0.2}
    async with aiohttp.ClientSession() as session:
        first_client = await start_client(sandbox_factory, session, faults)
        first = await outcomes(first_client, 100)
        second = await outcomes(await start_client(sandbox_factory, session, faults), 100)
        customers = await first_client.customers()
    assert first == second
    counts = Counter(first)
    assert set(counts) == {"BackMsg_74", "BackMsg_113", "BackMsg_85", "BackMsg_84"}
    assert 8 <= counts["BackMsg_74"] <= 35 and 8 <= counts["BackMsg_113"] <= 35
    assert 2 <= counts["BackMsg_85"] <= 20
    assert len(customers) == counts["BackMsg_84"]


@pytest.mark.parametrize(
    ("mode", "seen"), [("drop", "dropped"), ("502", "HTTP 502"), ("html200", "HTTP 200")]
)
async def test_an_outage_answers_in_front_of_the_server_until_switched_off(
    sandbox_factory: Factory, session: aiohttp.ClientSession, mode: str, seen: str
) -> None:
    client = await start_client(sandbox_factory, session, Faults(outage=mode, max_rps=1))
    # max_rps=1: a call that got past the outage would be answered 429 the second time.
    assert await outcomes(client, 3) == [seen] * 3
    # Inspection and control go on during the outage; nothing reached the store.
    assert await client.customers() == []
    stats = await client.get_json("/sandbox/stats")
    assert stats["by_code"] == {f"outage {mode}": 3}
    await client.post_json("/sandbox/faults", {"outage": "off"})
    assert await client.message("phone1=1") == "BackMsg_84"


async def test_the_outage_pages_are_nginx_s_502_and_a_maintenance_page(
    sandbox: SandboxHandle, client: Client
) -> None:
    sandbox.update_faults(outage="502")
    async with client.session.post(sandbox.url, data=params("phone1=1")) as response:
        body = await response.text()
        assert response.status == 502
        assert response.headers["Server"] == "nginx"
        assert response.content_type == "text/html"
    assert "<title>502 Bad Gateway</title>" in body
    assert "<hr><center>nginx</center>" in body
    sandbox.update_faults(outage="html200")
    async with client.session.post(sandbox.url, data=params("phone1=1")) as response:
        body = await response.text()
        assert (response.status, response.content_type) == (200, "text/html")
    assert body.startswith("<!DOCTYPE html>")
    assert parse_answer(body) is None


@pytest.mark.parametrize(
    "settings",
    [
        {"http500_rate": 0.6, "drop_rate": 0.6},
        {"code_rates": {"116": 0.6}, "backmsg85_rate": 0.6},
        {"code_rates": {"116": 1.5}},
        {"code_rates": {"Retuen": 0.1}},
        {"code_rates": {"116": 0.1, "BackMsg_116": 0.1}},
        {"latency_s": -1},
        {"capacity": -1},
        {"queue_timeout_s": -1},
        {"outage": "down"},
        {"capacity": float("nan")},
        {"latency_s": float("inf")},
    ],
)
def test_fault_settings_are_checked(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Faults(**settings)  # type: ignore[arg-type]


def test_rates_may_add_up_to_exactly_one() -> None:
    faults = Faults(code_rates={"74": 0.33, "85": 0.56, "116": 0.11})
    assert sum(faults.code_rates.values()) > 1  # by a rounding error
