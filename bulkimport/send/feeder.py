"""``Feeder``: due rows claimed from storage and handed to the workers, a claim at a time.

The feeder claims due rows a batch at a time (``in_flight`` in storage before they are
sent) and keeps the buffer short, so a kill leaves few claimed rows behind; the whole claim
goes into the buffer at once, and workers take a row each. With a send window, nothing is
claimed before it opens (the run waits, saying until when), and when it closes the run
stops. While reading goes on beside sending (``Feed``), running out of rows is not the
end: sending waits for the next committed batch until reading is done. Nor is it while other
runners (several on one job) hold rows in flight: the feeder waits until they are settled,
and takes back those of a runner that died meanwhile.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable

from bulkimport.rows import ClaimedRow
from bulkimport.send.limiter import Clock
from bulkimport.send.values import Feed, Watch, WatchEvent
from bulkimport.states import StopCause
from bulkimport.storage import RunnerId, SendQueue
from bulkimport.window import SendWindow

IDLE_POLL_S = 0.5  # how often to look again when nothing is due yet
#: How often, while sending, to look for rows of other runners that died (a third of a lease).
LOOK_FOR_THE_DEAD_EVERY_S = 10.0


async def wait_for(event: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set, ``stop`` is set, or ``seconds`` have passed."""
    if stop.is_set() or event.is_set():
        return
    waiters = [asyncio.ensure_future(event.wait())]
    if event is not stop:
        waiters.append(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class Feeder:
    """Claims the due rows of one job for ``pool`` workers until none is left or ``stop``;
    claims nothing while ``sending`` is clear (an outage: the probe needs no rows)."""

    def __init__(
        self,
        queue: SendQueue,
        job_id: int,
        runner: RunnerId,
        *,
        pool: int,
        stop: asyncio.Event,
        sending: asyncio.Event,
        wall_clock: Clock,
        flush: Callable[[], Awaitable[None]],
        tell: Callable[[WatchEvent], None],
        window: SendWindow | None = None,
        feed: Feed | None = None,
    ) -> None:
        self._queue, self._job_id, self._runner = queue, job_id, runner
        self._pool = pool
        self._stop, self._sending = stop, sending
        self._wall = wall_clock
        self._flush, self._tell = flush, tell
        self._window, self._feed = window, feed
        self.window_closes_s = math.inf  # no call starts from then on (--window)
        self._buffer: deque[ClaimedRow] = deque()
        self._filled = asyncio.Event()  # wakes the workers waiting for a row (and at a stop)
        self._low = asyncio.Event()  # the buffer wants more rows
        self._ahead = pool  # rows left in the buffer when the next claim starts
        self._taken: deque[int] = deque(maxlen=8)  # rows taken while each claim was on its way
        # Rows claimed and not yet resolved (given to the writer); counted from the claim,
        # because a row on its way from the buffer to a worker is in neither.
        self.unresolved = 0
        # Rows a dead runner left in flight, taken back while this one sends.
        self.recovered = 0
        self._next_look_s = wall_clock() + LOOK_FOR_THE_DEAD_EVERY_S

    # --- what the workers ask -----------------------------------------------------------------

    def take(self) -> ClaimedRow | None:
        """The next row of the buffer if there is one (and no stop): no wait."""
        buffer = self._buffer
        if not buffer or self._stop.is_set():
            return None
        if len(buffer) <= self._ahead:
            self._low.set()
        return buffer.popleft()

    async def next_row(self) -> ClaimedRow | None:
        """The next row of the buffer, or None once ``stop`` is set."""
        buffer = self._buffer
        while not buffer:
            if self._stop.is_set():
                return None
            self._low.set()
            self._filled.clear()
            await self._filled.wait()  # a cancel here takes no row
        if self._stop.is_set():
            return None  # left in the buffer: released, unsent, by release()
        if len(buffer) <= self._ahead:
            self._low.set()
        return buffer.popleft()

    def put_back(self, row: ClaimedRow) -> None:
        """A row taken but not sent (an outage, a stop): first in line again."""
        self._buffer.appendleft(row)
        self._filled.set()

    def resolved(self) -> None:
        """A claimed row's result went to the writer."""
        self.unresolved -= 1

    def wake(self) -> None:
        """At a stop: the workers waiting for a row end."""
        self._filled.set()

    async def release(self) -> None:
        """Give back the rows of the buffer, unsent (an outage, the end)."""
        unsent = [row.id for row in self._buffer]
        self._buffer.clear()
        if unsent:
            self.unresolved -= len(unsent)
            await self._queue.release(self._job_id, unsent, runner=self._runner)

    # --- claiming -----------------------------------------------------------------------------

    async def run(self, claim_size: int) -> StopCause | None:
        """Keep the buffer filled with due rows until ``stop``, or the cause to stop for
        (reading failed, the window closed), or None once no row is left to send."""
        stop, sending, feed = self._stop, self._sending, self._feed
        if not await self._wait_for_window():
            return None
        while not stop.is_set():
            if feed is not None and feed.failed:
                return StopCause.READING
            if self._wall() >= self.window_closes_s:
                return StopCause.WINDOW  # it closed: the calls in flight finish
            if not sending.is_set():
                await wait_for(sending, stop, IDLE_POLL_S)
                continue
            if len(self._buffer) >= self._ahead:
                # A worker that takes the buffer below what lasts a claim wakes us up.
                self._low.clear()
                await wait_for(self._low, stop, 0.1)
                continue
            if self._wall() >= self._next_look_s:
                # A runner that died while this one sends: its rows come back now, not at
                # the end (several runners on one job).
                self._next_look_s = self._wall() + LOOK_FOR_THE_DEAD_EVERY_S
                await self._others_hold_rows()
            before = len(self._buffer)
            rows = await self._queue.claim_batch(
                self._job_id, claim_size, now_s=self._wall(), runner=self._runner
            )
            # What the workers took while each claim was on its way: the next claim starts
            # while twice the most of the last few is left, so that they do not wait for it,
            # even behind a slow round trip (a claim is a round trip to a database server,
            # which may share the cores; on SQLite, a moment: one round of calls is left).
            self._taken.append(before - len(self._buffer))
            self._ahead = min(max(self._pool, 2 * max(self._taken)), claim_size)
            if stop.is_set() or not sending.is_set():
                if rows:
                    await self._queue.release(
                        self._job_id, [row.id for row in rows], runner=self._runner
                    )
                continue
            if rows:
                self.unresolved += len(rows)
                self._buffer.extend(rows)
                self._filled.set()
                continue
            # Nothing due now: finished, or waiting for retries, rows in flight, or reading.
            if self.unresolved == 0:
                await self._flush()
                # Seen before asking for due rows: a batch committed meanwhile is not missed.
                read = feed is None or feed.done.is_set()
                if feed is not None:
                    feed.added.clear()
                next_at = await self._queue.next_attempt_at(self._job_id)
                if next_at is None:
                    if not read:
                        assert feed is not None
                        await wait_for(feed.added, stop, IDLE_POLL_S)
                        continue
                    if feed is not None and feed.failed:
                        return StopCause.READING
                    if not await self._others_hold_rows():
                        return None
                    wait_s = IDLE_POLL_S
                else:
                    wait_s = min(max(next_at - self._wall(), 0.01), IDLE_POLL_S)
            else:
                wait_s = 0.02
            await wait_for(stop, stop, wait_s)
        return None

    async def _others_hold_rows(self) -> bool:
        """Whether other runners (several send one job) still hold rows of it in flight: the
        job is not done until they are settled, and one of those runners may die. Its rows
        are taken back here once it is gone (its lock dropped, its lease run out)."""
        queue, job_id, runner = self._queue, self._job_id, self._runner
        if not await queue.held_elsewhere(job_id, runner):
            # None in flight elsewhere now; one may have become pending again since the
            # due rows were looked at (another runner's retry): then it is not the end.
            return await queue.next_attempt_at(job_id) is not None
        self.recovered += await queue.recover_in_flight(job_id, runner)
        return True

    async def _wait_for_window(self) -> bool:
        """Outside the send window, wait until it opens (saying until when); False if the
        run stops meanwhile. Rows are claimed only once it is open."""
        window, wall = self._window, self._wall
        if window is None:
            return True
        if not window.is_open(wall()):
            self._tell(WatchEvent(Watch.WINDOW_WAIT, next_try_s=window.opens_at(wall())))
            while not window.is_open(wall()):
                if self._stop.is_set():
                    return False
                # Looked at every second at most: the wall clock may jump (sleep, NTP).
                wait_s = min(max(window.opens_at(wall()) - wall(), 0.01), 1.0)
                await wait_for(self._stop, self._stop, wait_s)
            self._tell(WatchEvent(Watch.WINDOW_OPEN))
        self.window_closes_s = window.closes_at(wall())
        return not self._stop.is_set()
