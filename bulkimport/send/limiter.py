"""``RateLimiter``: calls spaced ``1/rate`` apart, with a shared pause for ``Retry-After``."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

Clock = Callable[[], float]


class RateLimiter:
    """Spaces calls ``1/rate_per_s`` apart, with a shared pause for ``Retry-After``.

    A waiter that wakes up late (a busy event loop) keeps its slot's place in the schedule, up
    to ``tolerance_s``, so that lateness does not add up into a slower rate; the next call may
    then follow it a little sooner than ``1/rate_per_s``. The tolerance is small enough that no
    1-second window ever holds more than ``rate_per_s + 1`` calls.

    ``rate_per_s = 0`` disables the spacing but not the pause. Waiters are served in order.

    ``keep_spacing()`` gives up that tolerance for good: no call then starts sooner than
    ``1/rate_per_s`` after the one before it, as a front end's strict rate limit (nginx's
    ``limit_req`` without a burst refuses a call 19 ms after the last at 50 r/s) wants.
    """

    def __init__(self, rate_per_s: float, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._interval_s = 0.0
        self.tolerance_s = 0.0
        self._next_s = 0.0
        self._paused_until_s = 0.0
        self._strict = False
        self._lock = asyncio.Lock()
        self._cancelled = False
        self._sleeper: asyncio.Future[None] | None = None  # the one waiter holding the lock
        self.set_rate(rate_per_s)

    @property
    def rate_per_s(self) -> float:
        return 1.0 / self._interval_s if self._interval_s else 0.0

    def set_rate(self, rate_per_s: float) -> None:
        """Space the next calls ``1/rate_per_s`` apart (0 or infinite: no spacing). The next
        slot moves with the interval, measured from the last call's start."""
        interval_s = 1.0 / rate_per_s if 0 < rate_per_s < math.inf else 0.0
        if self._next_s:
            self._next_s += interval_s - self._interval_s
        self._interval_s = interval_s
        # Starts are >= slot, slots >= previous start - tolerance + interval, so a closed
        # 1-second window holds at most floor(rate * (1 + tolerance)) + 1 calls: with
        # rate * tolerance < 1 - frac(rate), that is floor(rate) + 1.
        fraction = math.modf(rate_per_s)[0] if interval_s else 0.0
        self.tolerance_s = 0.0 if self._strict else interval_s * (1.0 - fraction) / 2

    def keep_spacing(self) -> None:
        """From now on, never start a call sooner than the interval after the last one (a
        late call no longer keeps its place in the schedule)."""
        self._strict = True
        self.tolerance_s = 0.0

    def pause(self, seconds: float) -> None:
        """No call may start in the next ``seconds``."""
        self._paused_until_s = max(self._paused_until_s, self._clock() + seconds)

    @property
    def paused_until_s(self) -> float:
        return self._paused_until_s

    def cancel(self) -> None:
        """A stop: the call waiting for its turn, and every later one, gets False at once
        (a stop must not wait for the end of a long ``Retry-After`` pause)."""
        self._cancelled = True
        if self._sleeper is not None and not self._sleeper.done():
            self._sleeper.set_result(None)

    async def acquire(self) -> bool:
        """Wait for this call's turn; True when it is taken, False after ``cancel()``."""
        if self._cancelled:
            return False
        # No spacing and nobody waiting: only a pause can hold this call.
        if (
            not self._interval_s
            and not self._lock.locked()
            and self._paused_until_s <= self._clock()
        ):
            return True
        async with self._lock:
            woke_for = None  # the start this call slept until, if it had to wait
            while True:
                if self._cancelled:
                    return False
                now = self._clock()
                start = max(now, self._next_s, self._paused_until_s)
                if start <= now:
                    break
                woke_for = start
                await self._sleep(start - now)
            late_s = 0.0 if woke_for is None else min(now - woke_for, self.tolerance_s)
            self._next_s = now - late_s + self._interval_s
            return True

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or until ``cancel()``: one future and one timer, which is all
        a wait per call can afford at hundreds of calls per second (``asyncio.wait_for``
        on an event costs a task and several futures more)."""
        loop = asyncio.get_running_loop()
        self._sleeper = sleeper = loop.create_future()
        timer = loop.call_later(seconds, _wake, sleeper)
        try:
            await sleeper
        finally:
            timer.cancel()
            self._sleeper = None


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
