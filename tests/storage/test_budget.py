"""The ``ServerBudget`` contract: evenly spaced calls per server, each granted once, however
many runners ask at once. Run against every backend (``conftest.backend``).

A grant's times are relative to the storage's clock at the reservation, which a test cannot
read: each check allows for the time the reservations took, measured around them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bulkimport.storage import Storage
from bulkimport.storage.sqlite import SqliteStorage
from tests.storage.conftest import Backend

SERVER = "https://cc.example.com:443/asterccinterfaces"
OTHER_SERVER = "https://cc2.example.com:443/asterccinterfaces"


async def test_an_idle_budget_grants_calls_at_once_spaced_by_the_rate(storage: Storage) -> None:
    grant = await storage.budget.reserve(SERVER, 50.0, 5)
    assert grant.calls == 5
    assert grant.first_in_s == 0.0
    assert grant.spacing_s == pytest.approx(1 / 50)
    assert grant.start_s(3, 100.0) == pytest.approx(100.0 + 3 / 50)


async def test_the_next_reservation_starts_where_the_last_one_ended(storage: Storage) -> None:
    started = time.monotonic()
    await storage.budget.reserve(SERVER, 10.0, 5)  # half a second of the budget
    second = await storage.budget.reserve(SERVER, 10.0, 5)
    took_s = time.monotonic() - started
    assert 0.5 - took_s <= second.first_in_s <= 0.5
    third = await storage.budget.reserve(SERVER, 10.0, 1)
    took_s = time.monotonic() - started
    assert 1.0 - took_s <= third.first_in_s <= 1.0


async def test_each_server_has_a_budget_of_its_own(storage: Storage) -> None:
    await storage.budget.reserve(SERVER, 1.0, 10)
    assert (await storage.budget.reserve(OTHER_SERVER, 1.0, 1)).first_in_s == 0.0
    assert (await storage.budget.reserve(SERVER, 1.0, 1)).first_in_s > 9.0


async def test_time_not_used_is_not_saved_up_for_a_burst(storage: Storage) -> None:
    await storage.budget.reserve(SERVER, 1000.0, 10)  # ten milliseconds
    await asyncio.sleep(0.05)
    assert (await storage.budget.reserve(SERVER, 1000.0, 10)).first_in_s == 0.0


async def test_runners_asking_at_once_share_the_calls_without_overlap(backend: Backend) -> None:
    # Two handles on one storage (two processes, or two hosts), ten reservations each at
    # once, of one call every ten seconds: the calls granted are 0, 10, ..., 190 s away, each
    # once, whoever asked.
    first, second = await backend.open(), await backend.open()
    try:
        started = time.monotonic()
        asks = [handle.budget.reserve(SERVER, 0.1, 1) for handle in (first, second) * 10]
        grants = await asyncio.gather(*asks)
        took_s = time.monotonic() - started
    finally:
        await first.close()
        await second.close()
    starts = sorted(grant.first_in_s for grant in grants)
    for index, start in enumerate(starts):
        assert 10.0 * index - took_s <= start <= 10.0 * index


async def test_a_budget_is_kept_by_the_storage_not_by_a_handle(backend: Backend) -> None:
    async with await backend.open() as storage:
        await storage.budget.reserve(SERVER, 1.0, 30)
    async with await backend.open() as storage:
        assert (await storage.budget.reserve(SERVER, 1.0, 1)).first_in_s > 29.0


@pytest.mark.parametrize(("rate", "count"), [(0.0, 1), (-1.0, 1), (10.0, 0)])
async def test_a_reservation_needs_a_rate_and_a_count(
    storage: Storage, rate: float, count: int
) -> None:
    with pytest.raises(ValueError):
        await storage.budget.reserve(SERVER, rate, count)


async def test_runners_take_turns_to_probe_a_server_in_an_outage(backend: Backend) -> None:
    first, second = await backend.open(), await backend.open()
    try:
        # The first to ask probes; the other waits until the interval has passed.
        assert await first.budget.probe_turn(SERVER, 0.3) == (True, 0)
        assert await second.budget.probe_turn(SERVER, 0.3) == (False, 0)
        assert await first.budget.probe_turn(SERVER, 0.3) == (False, 0)
        await asyncio.sleep(0.35)
        assert await second.budget.probe_turn(SERVER, 0.3) == (True, 0)
        # Its probe found the server back: the one waiting sees it, and the next outage's
        # first probe may go at once.
        await second.budget.note_back(SERVER)
        assert await first.budget.probe_turn(SERVER, 0.3) == (True, 1)
        assert await first.budget.probe_turn("http://other:80/", 0.3) == (True, 0)
    finally:
        await first.close()
        await second.close()


class _SetBack:
    """A wall clock that can be set back, as NTP or a restored virtual machine does."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def time(self) -> float:
        return time.time() - self.offset_s


async def test_a_clock_set_back_neither_stalls_the_budget_nor_bunches_its_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite reads this host's clock (PostgreSQL the database server's, which a test cannot
    # set back): an hour back between two reservations must not make the next call wait an
    # hour, and the calls already granted keep their spacing.
    from bulkimport.storage.sqlite import budget as sqlite_budget

    clock = _SetBack()
    monkeypatch.setattr(sqlite_budget, "time", clock)
    async with await SqliteStorage.open(tmp_path / "budget.db") as storage:
        await storage.budget.reserve(SERVER, 10.0, 5)  # half a second of the budget
        clock.offset_s = 3600.0
        after = await storage.budget.reserve(SERVER, 10.0, 5)
        # How long the clock stood still cannot be known: it counts as no time at all, so the
        # next calls come after the first five, never among them.
        assert after.first_in_s == pytest.approx(0.5, abs=1e-6)
        # A probe's turn taken before the clock went back does not hold for an hour either.
        assert (await storage.budget.probe_turn(SERVER, 1.0)).mine
        clock.offset_s = 7200.0
        assert (await storage.budget.probe_turn(SERVER, 1.0)).mine
