"""``Slots``: calls in flight, at most a limit that changes while workers wait.

A semaphore whose size is the pace's ``concurrency_limit``, read at each wait, since the
pace raises and lowers it as answers come. A freed slot wakes one waiting worker, not all
(with ``--rate auto`` most of the pool waits under a small limit); a raised limit wakes as
many as it allows (``wake``); a stop wakes them all (``wake_all``), and ``take`` says False.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

LOOK_AGAIN_S = 0.5  # a waiter looks at the limit and the stop at least this often


class Slots:
    """Calls in flight (``in_flight``), at most ``limit()`` when one is taken."""

    def __init__(self, limit: Callable[[], int], stopped: asyncio.Event) -> None:
        self._limit = limit
        self._stopped = stopped
        self.in_flight = 0
        # First come first served: a freed slot wakes the oldest waiter.
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take_now(self) -> bool:
        """Take a slot if one is free (and no stop): no wait."""
        if self.in_flight >= self._limit() or self._stopped.is_set():
            return False
        self.in_flight += 1
        return True

    async def take(self) -> bool:
        """Wait until fewer calls than the limit are in flight, and take a slot; False on a
        stop (no slot taken)."""
        while self.in_flight >= self._limit():
            if self._stopped.is_set():
                return False
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(asyncio.shield(waiter), LOOK_AGAIN_S)
            except TimeoutError:
                pass
            finally:
                if not waiter.done():
                    waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        if self._stopped.is_set():
            return False
        self.in_flight += 1
        return True

    def free(self) -> None:
        """A call ended: its slot goes to the oldest waiter."""
        self.in_flight -= 1
        self.wake(1)

    def wake(self, count: int) -> None:
        """Wake ``count`` waiters (those still waiting, oldest first): the limit rose."""
        waiters = self._waiters
        while count > 0 and waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    def wake_all(self) -> None:
        """Wake every waiter (at a stop)."""
        self.wake(len(self._waiters))
