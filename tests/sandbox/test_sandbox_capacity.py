"""The capacity model: on a virtual clock, then a real server's queue, 504s and late imports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import aiohttp
import pytest
from sandbox_helpers import Client, params

from bulkimport.protocol import parse_answer
from bulkimport.sandbox import Faults, SandboxHandle
from bulkimport.sandbox.faults import CapacityQueue, Fate, FaultPlan

Factory = Callable[..., Awaitable[SandboxHandle]]


def steady(rate_per_s: float, seconds: float) -> list[float]:
    """Arrival times of a steady stream of calls."""
    return [k / rate_per_s for k in range(round(rate_per_s * seconds))]


# --- the model, on a virtual clock ------------------------------------------------------------


@pytest.mark.parametrize("load", [0.1, 0.5, 1.0])
def test_up_to_capacity_a_steady_stream_does_not_wait(load: float) -> None:
    queue = CapacityQueue(100)
    waits = [queue.admit(t) for t in steady(100 * load, 10)]
    assert max(waits) == pytest.approx(0, abs=1e-9)


def test_at_twice_the_capacity_every_call_waits_longer_than_the_one_before() -> None:
    queue = CapacityQueue(100)
    waits = [queue.admit(t) for t in steady(200, 10)]
    # The k-th call waits k·(1/100 - 1/200) s: the backlog grows by half a call per call.
    assert waits == pytest.approx([k * 0.005 for k in range(2000)], abs=1e-9)
    # 2000 calls are 20 s of work; at t = 10 s half of it is still queued.
    assert queue.backlog_s(10.0) == pytest.approx(10.0)
    assert queue.backlog_s(25.0) == 0


def test_a_burst_is_served_one_call_after_another() -> None:
    queue = CapacityQueue(10)
    assert [queue.admit(5.0) for _ in range(5)] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    assert queue.admit(5.45) == pytest.approx(0.05)
    assert queue.admit(7.0) == 0  # the backlog was worked off


def test_no_capacity_means_no_queue() -> None:
    queue = CapacityQueue(0)
    assert {queue.admit(1.0) for _ in range(1000)} == {0.0}
    assert queue.backlog_s(1.0) == 0


def test_a_new_rate_applies_to_later_calls_and_keeps_the_queued_work() -> None:
    queue = CapacityQueue(10)
    for _ in range(20):
        queue.admit(0.0)
    assert queue.backlog_s(0.0) == pytest.approx(2.0)
    queue.set_rate(5)
    assert queue.backlog_s(0.0) == pytest.approx(2.0)
    assert queue.admit(0.0) == pytest.approx(2.0)
    assert queue.backlog_s(0.0) == pytest.approx(2.2)
    queue.set_rate(0)
    assert queue.backlog_s(0.0) == 0


@pytest.mark.parametrize(("load", "first_timeout"), [(0.5, None), (1.0, None), (2.0, 1998)])
def test_latency_stays_at_the_base_up_to_capacity_and_times_out_beyond(
    load: float, first_timeout: int | None
) -> None:
    faults = Faults(capacity=100, latency_s=0.0125, queue_timeout_s=10)
    plan = FaultPlan(faults)
    verdicts = [plan.decide(t) for t in steady(100 * load, 20)]
    timed_out = [k for k, v in enumerate(verdicts) if v.timed_out]
    if first_timeout is None:
        assert timed_out == []
        assert max(v.ready_s for v in verdicts) == pytest.approx(0.0125)
        return
    # ready_k = 0.0125 + 0.005·k passes 10 s at k = 1998 (about 10 s into the run); every
    # later call waits longer still.
    assert timed_out == list(range(first_timeout, len(verdicts)))
    assert verdicts[first_timeout - 1].ready_s < 10 < verdicts[first_timeout].ready_s
    assert verdicts[-1].ready_s == pytest.approx(0.0125 + 0.005 * 3999)
    assert {v.answer_after_s(10) for v in verdicts[first_timeout:]} == {10}
    assert {v.fate for v in verdicts} == {Fate.ANSWER}


def test_no_queue_timeout_means_no_504() -> None:
    plan = FaultPlan(Faults(capacity=1, queue_timeout_s=0))
    assert not any(plan.decide(0.0).timed_out for _ in range(100))


def test_the_base_latency_alone_can_exceed_the_timeout() -> None:
    # As fastcgi_read_timeout does with a slow PHP: no capacity limit needed.
    plan = FaultPlan(Faults(latency_s=2, queue_timeout_s=1))
    assert plan.decide(0.0).timed_out


def test_a_change_keeps_the_random_sequence_unless_the_seed_changes() -> None:
    faults = Faults(http500_rate=0.5, seed=9)
    reference = FaultPlan(faults)
    expected = [reference.decide(float(k)).fate for k in range(20)]
    plan = FaultPlan(faults)
    seen = [plan.decide(float(k)).fate for k in range(10)]
    plan.update(replace(faults, latency_s=0.2, jitter_s=0))
    seen += [plan.decide(float(k)).fate for k in range(10, 20)]
    assert seen == expected
    assert len(set(seen)) == 2

    plan.update(replace(faults, seed=10))
    fresh = FaultPlan(replace(faults, seed=10))
    assert [plan.decide(0.0).fate for _ in range(20)] == [fresh.decide(0.0).fate for _ in range(20)]


def test_a_change_keeps_the_capacity_backlog_and_the_rate_window() -> None:
    faults = Faults(capacity=10, max_rps=3)
    plan = FaultPlan(faults)
    assert [plan.throttled(0.0) for _ in range(4)] == [False, False, False, True]
    for _ in range(20):
        plan.decide(0.0)
    plan.update(replace(faults, latency_s=0.2, outage="502", max_rps=4))
    assert not plan.throttled(0.5)  # the window holds 3 calls: one more fits under 4
    assert plan.throttled(0.5)
    assert plan.capacity.backlog_s(0.0) == pytest.approx(2.0)
    plan.update(replace(faults, capacity=5))
    assert plan.capacity.backlog_s(0.0) == pytest.approx(2.0)  # queued work stays queued
    assert plan.decide(0.0).wait_s == pytest.approx(2.0)
    plan.update(replace(faults, capacity=0))
    assert plan.capacity.backlog_s(0.0) == 0


# --- a real server ----------------------------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_calls_beyond_capacity_queue_and_are_answered_later(
    sandbox_factory: Factory, session: aiohttp.ClientSession
) -> None:
    client = Client(session, await sandbox_factory(faults=Faults(capacity=20)))
    started = time.monotonic()
    answers = await asyncio.gather(
        *(client.message(f"phone1={k}", method="POST") for k in range(20))
    )
    elapsed_s = time.monotonic() - started
    assert answers == ["BackMsg_84"] * 20
    # 20 calls are 1 s of the server's work: the k-th to arrive starts k/20 s after the first
    # at the earliest, however the calls are spread.
    assert elapsed_s >= 0.95 - 1e-3
    arrivals = await client.get_json("/sandbox/arrivals")
    assert len(arrivals) == 20
    first_s = min(a[0] for a in arrivals)
    assert max(a[0] + a[3] for a in arrivals) - first_s >= 0.9
    assert all(a[4] is True for a in arrivals)
    # The last call was answered as its 1/20 s of work began: at most that much is left.
    assert 0 <= (await client.get_json("/sandbox/stats"))["backlog_s"] <= 0.05


async def test_below_capacity_answers_come_after_the_base_latency(
    sandbox_factory: Factory, session: aiohttp.ClientSession
) -> None:
    client = Client(session, await sandbox_factory(faults=Faults(capacity=50, latency_s=0.05)))
    for k in range(5):  # one at a time: at most 20 calls/s, below the capacity
        assert await client.message(f"phone1={k}") == "BackMsg_84"
    latencies = [a[3] for a in await client.get_json("/sandbox/arrivals")]
    assert len(latencies) == 5
    assert all(0.05 <= latency < 0.5 for latency in latencies)


async def test_a_call_that_would_wait_too_long_gets_nginx_s_504_and_is_imported_later(
    sandbox_factory: Factory, session: aiohttp.ClientSession
) -> None:
    handle = await sandbox_factory(faults=Faults(capacity=5, queue_timeout_s=0.3))
    client = Client(session, handle)
    # 8 calls at once: the k-th to arrive waits about k/5 s, past 0.3 s from the third on.
    answers = await asyncio.gather(
        *(client.send(params(f"phone1={k}"), method="POST") for k in range(8))
    )
    timed_out = [k for k, (status, _) in enumerate(answers) if status == 504]
    answered = [k for k, (status, _) in enumerate(answers) if status == 200]
    assert timed_out and answered
    assert sorted(timed_out + answered) == list(range(8))
    for k in timed_out:
        assert "<title>504 Gateway Time-out</title>" in answers[k][1]
        assert parse_answer(answers[k][1]) is None

    async def all_imported() -> bool:
        return len(await client.customers()) == 8

    await eventually(all_imported)  # the server goes on with what nginx gave up on
    assert {c["writes"] for c in await client.customers()} == {1}
    stats = await client.get_json("/sandbox/stats")
    assert stats["by_status"] == {"200": len(answered), "504": len(timed_out)}
    assert stats["processed_after_504"] == {"BackMsg_84": len(timed_out)}
    arrivals = await client.get_json("/sandbox/arrivals")
    late = [a for a in arrivals if a[1] == 504]
    assert len(late) == len(timed_out)
    assert all(a[2] == "HTTP 504" and a[3] >= 0.3 and a[4] is True for a in late)
    # The client that saw a 504 does not know; sending again finds the customer imported.
    assert await client.message(f"phone1={timed_out[0]}") == "BackMsg_81"


async def test_a_stop_imports_at_once_the_calls_nginx_gave_up_on(
    sandbox_factory: Factory, session: aiohttp.ClientSession
) -> None:
    handle = await sandbox_factory(faults=Faults(capacity=1, queue_timeout_s=0.2))
    client = Client(session, handle)
    answers = await asyncio.gather(
        *(client.send(params(f"phone1={k}"), method="POST") for k in range(4))
    )
    assert [status for status, _ in answers].count(504) >= 1
    await handle.stop()  # seconds of queued work left: done now, before the database closes
    await handle.start()
    assert len(await client.customers()) == 4


async def test_arrivals_tell_each_call_s_latency_and_whether_it_was_processed(
    sandbox_factory: Factory, session: aiohttp.ClientSession
) -> None:
    faults = Faults(latency_s=0.02, code_rates={"116": 0.5}, seed=3)
    client = Client(session, await sandbox_factory(faults=faults))
    seen = [await client.message(f"phone1={k}") for k in range(10)]
    assert set(seen) == {"BackMsg_84", "BackMsg_116"}
    arrivals = await client.get_json("/sandbox/arrivals")
    assert [a[2] for a in arrivals] == seen
    assert [a[4] for a in arrivals] == [code == "BackMsg_84" for code in seen]
    assert all(len(a) == 5 and a[1] == 200 and a[3] >= 0.02 for a in arrivals)
