"""What sending learns about the server, made known: kept with the job (for ``status`` in
another process) and emitted as typed events (``bulkimport.events``).

The dispatcher tells a ``Watcher`` its rate and pace every few seconds and each thing it
learns (``WatchEvent``): the URL answered, an outage began, a probe failed, the server is
back, a call's outcome is unknown, the send window.
"""

from __future__ import annotations

import math
import time

from bulkimport.events import (
    Emit,
    OutageBegan,
    PaceChanged,
    ProbeFailed,
    ServerBack,
    UnknownOutcome,
    WindowOpen,
    WindowWait,
)
from bulkimport.protocol import Trouble
from bulkimport.send import Watch, WatchEvent
from bulkimport.send.pace import PaceState
from bulkimport.settings import Settings, Target
from bulkimport.storage import Job, RunnerId, Storage


class Watcher:
    """Keeps and emits what the dispatcher learns about the server for one job."""

    def __init__(
        self,
        storage: Storage,
        job: Job,
        settings: Settings,
        target: Target,
        emit: Emit,
        *,
        runner: RunnerId | None = None,
    ) -> None:
        self._storage = storage
        self._runner = runner
        self._job = job
        self._settings = settings
        self._target = target
        self._emit = emit
        self._since_s: float | None = None
        self._warned_unknown = False
        self._pace: PaceState | None = None

    @property
    def outage_since_s(self) -> float | None:
        """Since when the server has not answered (Unix seconds), in an outage."""
        return self._since_s

    async def rate(self, rate_per_s: float, pace: PaceState) -> None:
        pace_per_s = None if math.isinf(pace.rate_per_s) else pace.rate_per_s
        await self._storage.jobs.record_send_rate(
            self._job.id,
            rate_per_s,
            pace_per_s=pace_per_s,
            latency_s=pace.latency_s,
            runner=self._runner,
        )
        if self._settings.send.auto and pace != self._pace:
            self._pace = pace
            self._emit(PaceChanged(self._job.id, pace))

    async def watch(self, watched: WatchEvent) -> None:
        job = self._job.id
        window = str(self._settings.send.window)
        if watched.kind is Watch.REACHED:
            await self._storage.jobs.note_answer(self._target.url)
        elif watched.kind in (Watch.OUTAGE, Watch.PROBE_FAILED):
            if watched.kind is Watch.OUTAGE or self._since_s is None:
                self._since_s = watched.since_s or time.time()
            proxy = watched.outcome is not None and watched.outcome.trouble is Trouble.PROXY
            await self._storage.jobs.record_outage(job, self._since_s, watched.next_try_s)
            if watched.kind is Watch.OUTAGE:
                self._emit(
                    OutageBegan(job, self._since_s, watched.next_try_s, proxy, watched.outcome)
                )
            else:
                self._emit(ProbeFailed(job, self._since_s, watched.next_try_s, proxy))
        elif watched.kind is Watch.BACK:
            since = self._since_s
            self._since_s = None
            await self._storage.jobs.record_outage(job, None, None)
            self._emit(ServerBack(job, since, None if since is None else time.time() - since))
        elif watched.kind is Watch.WINDOW_WAIT and watched.next_try_s is not None:
            await self._storage.jobs.record_window_wait(job, watched.next_try_s)
            self._emit(WindowWait(job, watched.next_try_s, window))
        elif watched.kind is Watch.WINDOW_OPEN:
            await self._storage.jobs.record_window_wait(job, None)
            self._emit(WindowOpen(job, window))
        elif watched.kind is Watch.UNKNOWN and not self._warned_unknown:
            rewrites = tuple(self._target.options.rewrites)
            if rewrites:
                self._warned_unknown = True
                self._emit(UnknownOutcome(job, watched.line, watched.outcome, rewrites))
