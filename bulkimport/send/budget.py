"""``SharedBudget``: the server's calls per second, shared by every runner of the database.

A worker passes it after its own pace's turn (``RateLimiter``) and before the call: the job's
``--rate`` stays its own ceiling, the server's ``--server-rate`` the ceiling of every job and
runner that sends to that server through the same database.

The budget is kept by the storage (``ServerBudget``) as the time of the server's next free
call. A runner reserves a few calls at a time, about ``RESERVE_AHEAD_S`` of its own pace, so
that it asks the database once per handful of calls, never once per call; runners asking at
once get blocks one after the other, which shares the server between them in turns. A runner
whose calls come slower than its pace lets times go unused: it then asks for fewer.

Why no 1-second window at the server holds more than ``rate + 1`` calls: the granted call
times of all runners are ``1/rate`` apart; a call starts no sooner than its time, and never
more than half a spacing after it (a call that late drops its time and takes the next one:
times are never used late). So the calls in a window ``[t, t + 1]`` have times in
``[t - 1/(2 rate), t + 1]``, a span holding at most ``floor(rate + 1/2) + 1`` times: ``rate + 1``
for a whole ``rate``. A grant's times are mapped onto this host's clock from the moment its
answer arrived (``granted_at``), the latest the database's "now" can have been: a call may
start a round trip to the database late, never early. Runners are late by different amounts
(each its own round trip to the database, its own busy event loop), and calls late by
different amounts bunch: so the times are spaced a little wider than ``1/rate``, enough that
the bound holds while the runners' lateness differs by up to ``LATENESS_S`` (for 50 calls a
second the budget grants 48.98; for a whole rate of 15 or fewer, ``1/rate`` leaves that much).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

from bulkimport.settings import SendSettings, server_key
from bulkimport.storage import ProbeTurn, ServerBudget

Clock = Callable[[], float]

#: How much of a runner's pace one reservation holds: a round trip to the database per
#: handful of calls, and turns short enough that runners share the server evenly.
RESERVE_AHEAD_S = 0.15
#: How much the lateness of the runners' calls may differ with the bound still held.
LATENESS_S = 0.03


def spacing_for(rate_per_s: float) -> float:
    """The time between two granted calls for a budget of ``rate_per_s``: ``1/rate`` at
    least, wider where that leaves less than ``LATENESS_S`` for calls late by different
    amounts. A window ``[t, t + 1]`` then holds calls whose times span ``1 + spacing/2 +
    LATENESS_S``, under ``floor(rate) + 1`` spacings: at most ``floor(rate) + 1`` times."""
    return max(1.0 / rate_per_s, (1.0 + LATENESS_S) / (math.floor(rate_per_s) + 0.45))


class SharedBudget:
    """The gate of one server's budget (``server``, a ``server_key``, at ``rate_per_s``),
    kept by ``store``; ``clock`` is this host's monotonic clock."""

    def __init__(
        self,
        store: ServerBudget,
        server: str,
        rate_per_s: float,
        *,
        clock: Clock = time.monotonic,
        ahead_s: float = RESERVE_AHEAD_S,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"a server's budget needs a rate ({rate_per_s})")
        self.server, self.rate_per_s = server, rate_per_s
        self._store, self._clock, self._ahead_s = store, clock, ahead_s
        self._spacing_s = spacing_for(rate_per_s)
        self._times: deque[float] = deque()  # granted call times not yet taken, in order
        self._reserving = asyncio.Lock()
        self._cancelled = False
        self._sleepers: set[asyncio.Future[None]] = set()
        self.reservations = 0  # how often the database was asked
        self.dropped = 0  # granted times let go: no call was ready in time for them
        self._calls = 0  # how many calls the last reservation asked for (0: none yet)
        self._dropped_before = 0  # ``dropped`` when it was made

    def cancel(self) -> None:
        """A stop: every call waiting here, and every later one, gets False at once."""
        self._cancelled = True
        for sleeper in self._sleepers:
            if not sleeper.done():
                sleeper.set_result(None)

    async def acquire(self, own_rate_per_s: float) -> bool:
        """Wait for a call time the budget grants this runner; True when it has come, False
        after ``cancel()``. ``own_rate_per_s`` is the job's own pace (0 or infinite: none):
        a slower job reserves fewer calls at a time, and lets fewer go unused."""
        while not self._cancelled:
            start = self._take()
            if start is None:
                async with self._reserving:
                    if not self._times and not self._cancelled:
                        await self._reserve(own_rate_per_s)
                continue
            now = self._clock()
            if start > now:
                await self._sleep(start - now)
                if self._cancelled:
                    return False
                if self._clock() > start + self._spacing_s / 2:
                    self.dropped += 1  # woken too late (a busy loop): never used late
                    continue
            return True
        return False

    async def probe_turn(self, interval_s: float) -> ProbeTurn:
        """In an outage: whether this runner probes the server now (no runner of the
        storage did within ``interval_s``), and how many probes found it back so far."""
        return await self._store.probe_turn(self.server, interval_s)

    async def note_back(self) -> None:
        """This runner's probe found the server answering again: the others see it."""
        await self._store.note_back(self.server)

    def _take(self) -> float | None:
        """The next granted time this call can still use; those already too late are let go."""
        times, latest = self._times, self._clock() - self._spacing_s / 2
        while times:
            start = times.popleft()
            if start >= latest:
                return start
            self.dropped += 1
        return None

    async def _reserve(self, own_rate_per_s: float) -> None:
        pace = own_rate_per_s if 0 < own_rate_per_s < math.inf else self.rate_per_s
        most = max(1, math.ceil(min(pace, self.rate_per_s) * self._ahead_s))
        # Times let go since the last reservation are lost to the other runners too: this
        # runner asked for more than its calls used (they come slower than its pace: a slow
        # server, few calls in flight). Ask for half as many then, one more while none is.
        if not self._calls:
            calls = most
        elif self.dropped > self._dropped_before:
            calls = max(1, self._calls // 2)
        else:
            calls = min(most, self._calls + 1)
        self._calls, self._dropped_before = calls, self.dropped
        grant = await self._store.reserve(self.server, 1.0 / self._spacing_s, calls)
        granted_at = self._clock()
        self.reservations += 1
        self._times.extend(grant.start_s(index, granted_at) for index in range(grant.calls))

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or until ``cancel()``: one future and one timer per wait, as
        the ``RateLimiter`` does."""
        loop = asyncio.get_running_loop()
        sleeper = loop.create_future()
        self._sleepers.add(sleeper)
        timer = loop.call_later(seconds, _wake, sleeper)
        try:
            await sleeper
        finally:
            timer.cancel()
            self._sleepers.discard(sleeper)


def shared_budget(store: ServerBudget, url: str, settings: SendSettings) -> SharedBudget | None:
    """The gate of the budget of the server at ``url`` (``settings.server_rate_per_s``), or
    None when it has none: then nothing is asked of the storage, ever."""
    if not settings.server_rate_per_s:
        return None
    return SharedBudget(store, server_key(url), settings.server_rate_per_s)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
