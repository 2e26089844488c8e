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


async def test_faults_change_while_running_in_process_and_over_http(
    client: Client, sandbox: SandboxHandle
) -> None:
    sandbox.set_faults(Faults(backmsg85_rate=1))
    assert await client.message("phone1=1") == "BackMsg_85"
    assert await client.post_json("/sandbox/faults", {"http500_rate": 1.0, "seed": 2}) == {
        **Faults().to_json(),
        "http500_rate": 1.0,
        "seed": 2,
    }
    assert (await client.send(params("phone1=1")))[0] == 500
    await client.post_json("/sandbox/faults", {})
    assert await client.message("phone1=1") == "BackMsg_84"
    url = client.sandbox.base_url + "/sandbox/faults"
    for bad in ({"drop_rate": 2}, {"nonsense": 1}, [1]):
        async with client.session.post(url, json=bad) as response:
            assert response.status == 400


def test_fault_rates_are_checked() -> None:
    with pytest.raises(ValueError):
        Faults(http500_rate=0.6, drop_rate=0.6)
    with pytest.raises(ValueError):
        Faults(latency_s=-1)
