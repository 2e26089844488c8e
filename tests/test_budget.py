"""The server's budget shared by runners (``--server-rate``): ``SharedBudget`` over a real
storage, two dispatchers on one database in one process (each as a runner of its own, as two
processes or two hosts would be), and the pace found by ``--rate auto`` kept under it.

The command line and two processes at once: tests/test_budget_cli.py.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bulkimport.protocol import Outcome, Trouble, classify_trouble
from bulkimport.send import Dispatcher, DispatchOptions, SendEnd, SendResult, SharedBudget
from bulkimport.send.budget import shared_budget, spacing_for
from bulkimport.send.dispatcher import make_pace
from bulkimport.send.health import HealthSettings
from bulkimport.send.scripted import Request, RequestKind, ScriptedTransport
from bulkimport.settings import SendSettings, server_key
from bulkimport.storage import Storage
from bulkimport.storage.sqlite import SqliteStorage
from tests.helpers import (
    a_runner,
    make_job,
    max_in_window,
    record,
    send_settings,
    write_figures,
)
from tests.storage import conftest as storage_fixtures
from tests.test_dispatch import ANSWERED_DONE
from tests.test_pace import Driver

backend = storage_fixtures.backend
pg_cluster = storage_fixtures.pg_cluster
pg_url = storage_fixtures.pg_url

SERVER = server_key("http://cc.example/asterccinterfaces")
RUN_LIMIT_S = 60.0


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    async with await SqliteStorage.open(tmp_path / "queue.db") as opened:
        yield opened


# --- the gate alone -------------------------------------------------------------------------


def test_no_server_rate_no_gate() -> None:
    class Untouchable:
        async def reserve(self, server: str, rate_per_s: float, count: int) -> None:
            raise AssertionError("a job without --server-rate asked the storage")

    store = Untouchable()
    assert shared_budget(store, "http://cc.example", send_settings()) is None
    gate = shared_budget(store, "HTTP://CC.example/", send_settings(server_rate_per_s=5.0))
    assert gate is not None
    assert (gate.server, gate.rate_per_s) == ("http://cc.example:80/asterccinterfaces", 5.0)


async def test_a_granted_time_is_never_used_late(storage: SqliteStorage) -> None:
    # This host's clock, as the gate reads it: it stands still unless the test moves it.
    now = [1000.0]
    gate = SharedBudget(storage.budget, SERVER, 100.0, clock=lambda: now[0], ahead_s=0.15)
    assert await gate.acquire(0.0)  # an idle budget: at once, and 14 more times held
    assert (gate.reservations, gate.dropped) == (1, 0)
    now[0] += 1.0  # the loop was busy for a second: every time held is too late now
    async with asyncio.timeout(5):
        assert await gate.acquire(0.0)
    assert (gate.reservations, gate.dropped) == (2, 14)


async def test_a_job_slower_than_the_budget_reserves_what_it_uses(storage: SqliteStorage) -> None:
    gate = SharedBudget(storage.budget, SERVER, 100.0)
    assert await gate.acquire(5.0)  # its own --rate 5: one call per reservation
    other = await storage.budget.reserve(SERVER, 100.0, 1)
    # The budget gave the job one call's time (10 ms and its margin), not 150 ms.
    assert other.first_in_s <= spacing_for(100.0) < 0.011


async def test_a_runner_slower_than_its_pace_reserves_fewer_calls(
    storage: SqliteStorage,
) -> None:
    # Its pace says 100 calls a second, but its calls come ten times slower (a slow server,
    # few calls in flight): what it reserves and lets go is lost to the other runners.
    now = [1000.0]
    gate = SharedBudget(storage.budget, SERVER, 100.0, clock=lambda: now[0], ahead_s=0.15)
    for _ in range(20):
        now[0] += 0.1
        async with asyncio.timeout(5):
            assert await gate.acquire(100.0)
    # 15 calls per reservation would have let 14 go each time: 266 in all.
    assert gate.dropped < 60
    assert gate.reservations >= 10


async def test_a_stop_ends_the_wait_for_a_granted_time(storage: SqliteStorage) -> None:
    await storage.budget.reserve(SERVER, 1.0, 60)  # another runner holds the next minute
    gate = SharedBudget(storage.budget, SERVER, 1.0)
    waiting = asyncio.ensure_future(gate.acquire(0.0))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    gate.cancel()
    async with asyncio.timeout(5):
        assert await waiting is False
    assert await gate.acquire(0.0) is False


# --- two runners on one database ------------------------------------------------------------


@dataclass
class Calls:
    """When each call of each job started (this host's monotonic clock)."""

    started: dict[str, list[float]] = field(default_factory=dict)

    def transport(self, job: str) -> ScriptedTransport:
        starts = self.started.setdefault(job, [])

        async def server(request: Request) -> Outcome:
            starts.append(time.monotonic())
            await asyncio.sleep(0.005)
            return ANSWERED_DONE

        return ScriptedTransport(server)


async def send_job(
    storage: Storage,
    transport: ScriptedTransport,
    settings: SendSettings,
    gates: list[SharedBudget],
) -> SendResult:
    job_id = await make_job(storage, [record(i) for i in range(ROWS)])
    gate = SharedBudget(storage.budget, SERVER, settings.server_rate_per_s)
    gates.append(gate)
    return await Dispatcher(
        storage.sending,
        job_id,
        transport,
        settings,
        runner=a_runner(),
        options=DispatchOptions(budget=gate),
    ).run()


ROWS = 120


async def send_both(
    backend: storage_fixtures.Backend,
    first_transport: ScriptedTransport,
    second_transport: ScriptedTransport,
    settings: SendSettings,
    gates: list[SharedBudget] | None = None,
) -> list[SendResult]:
    """Two jobs sent at once by two runners, each with a storage handle of its own on one
    database (as two processes or two hosts would be); their gates go to ``gates``."""
    gates = [] if gates is None else gates
    first, second = await backend.open(), await backend.open()
    try:
        async with asyncio.timeout(RUN_LIMIT_S):
            return list(
                await asyncio.gather(
                    send_job(first, first_transport, settings, gates),
                    send_job(second, second_transport, settings, gates),
                )
            )
    finally:
        await first.close()
        await second.close()


def shares_while_both_send(started: dict[str, list[float]]) -> dict[str, float]:
    """Each job's share of the calls made while both were sending."""
    both_from = max(min(times) for times in started.values())
    both_until = min(max(times) for times in started.values())
    during = {
        job: sum(both_from <= t <= both_until for t in times) for job, times in started.items()
    }
    total = sum(during.values())
    return {job: n / total for job, n in during.items()}


@pytest.mark.serial  # the calls of two runners, to the millisecond
async def test_two_runners_on_one_database_share_the_server_s_budget(
    backend: storage_fixtures.Backend,
) -> None:
    # Each job may send 50 calls a second on its own; the server takes 50 in all.
    settings = send_settings(rate_per_s=50.0, concurrency=8, server_rate_per_s=50.0)
    calls = Calls()
    gates: list[SharedBudget] = []
    results = await send_both(backend, calls.transport("a"), calls.transport("b"), settings, gates)
    assert [result.end for result in results] == [SendEnd.FINISHED] * 2
    assert [len(times) for times in calls.started.values()] == [ROWS, ROWS]
    everything = [t for times in calls.started.values() for t in times]
    assert max_in_window(everything) <= 51
    # Each job, on its own, would have sent at 50 a second: the budget is what held them.
    assert all(max_in_window(times) >= 20 for times in calls.started.values())
    shares = shares_while_both_send(calls.started)
    overall = (len(everything) - 1) / (max(everything) - min(everything))
    write_figures(
        f"server_budget_two_runners_{backend.name}",
        {
            "max_calls_in_1s": max_in_window(everything),
            "calls_per_s": round(overall, 1),
            "shares_while_both_send": {job: round(share, 3) for job, share in shares.items()},
            "reservations": [gate.reservations for gate in gates],
            "times_let_go": [gate.dropped for gate in gates],
        },
    )
    assert all(0.4 <= share <= 0.6 for share in shares.values()), shares
    # The budget is not wasted: the two together had most of it.
    assert overall >= 0.8 * 50


def test_the_pace_found_stays_under_the_server_s_budget() -> None:
    settings = SendSettings(rate_per_s=None, max_rate_per_s=80.0, server_rate_per_s=30.0)
    pace = make_pace(settings, now_s=0.0)
    driver = Driver(pace)
    driver.run(20.0)  # a server that answers every call at once: auto climbs to its cap
    assert max(state.rate_per_s for _, state in driver.states) == 30.0
    assert driver.sent <= 20 * 30
    # Without a budget, the pace's own cap.
    driver = Driver(make_pace(SendSettings(rate_per_s=None, max_rate_per_s=80.0), now_s=0.0))
    driver.run(20.0)
    assert max(state.rate_per_s for _, state in driver.states) == 80.0


# --- an outage seen by one runner holds for all ----------------------------------------------


@dataclass
class DownFor:
    """A server that answers, is down (connections refused) from ``down_at`` for ``down_s``
    seconds, then answers again; keeps when each job's probes came."""

    down_s: float
    down_at: float = math.inf
    probes: dict[str, list[float]] = field(default_factory=dict)

    def transport(self, job: str) -> ScriptedTransport:
        probes = self.probes.setdefault(job, [])

        async def server(request: Request) -> Outcome:
            now = time.monotonic()
            if self.down_at == math.inf:
                self.down_at = now + 0.3  # after a few calls of both
            if request.kind is RequestKind.PROBE:
                probes.append(now)
            await asyncio.sleep(0.005)
            if self.down_at <= now < self.down_at + self.down_s:
                return classify_trouble(Trouble.REFUSED, "cannot connect")
            return ANSWERED_DONE

        return ScriptedTransport(server)


async def test_in_an_outage_one_runner_probes_and_the_others_wait(
    backend: storage_fixtures.Backend,
) -> None:
    # Probes are taken in turns the storage keeps: counted by the turn, not by timing, so
    # a loaded machine changes none of it.
    settings = send_settings(rate_per_s=0.0, concurrency=4, server_rate_per_s=200.0)
    server = DownFor(down_s=3.0)
    results = await send_both(backend, server.transport("a"), server.transport("b"), settings)
    assert [result.end for result in results] == [SendEnd.FINISHED] * 2
    assert all(result.counts.sent >= ROWS for result in results)
    probes = sorted(t for times in server.probes.values() for t in times)
    during = [t for t in probes if server.down_at <= t < server.down_at + server.down_s]
    # Probed every half second while down, by one runner at a time: two runners probing
    # each on its own would have made about twice as many.
    interval_s = HealthSettings().probe_first_s
    assert during, "the outage was never probed"
    assert len(during) <= server.down_s / interval_s + 1, server.probes
    gaps = [later - earlier for earlier, later in itertools.pairwise(during)]
    assert min(gaps) >= 0.8 * interval_s, gaps
    # Both saw the server back: after it, at most one probe each confirmed it.
    after = [t for t in probes if t >= server.down_at + server.down_s]
    assert len(after) <= 2, server.probes
    write_figures(
        "server_budget_outage_probes",
        {
            "down_s": server.down_s,
            "probes_while_down": len(during),
            "probes_by_job": {job: len(times) for job, times in server.probes.items()},
        },
    )
