"""What sending learns about the server, made known: kept with the job (for ``status`` in
another process), logged, and shown beside the progress.

The dispatcher tells a ``Watcher`` its rate and pace every few seconds and each thing it
learns (``WatchEvent``): the URL answered, an outage began, a probe failed, the server is
back, a call's outcome is unknown.
"""

from __future__ import annotations

import logging
import math
import time

from bulkimport.jobs.events import event
from bulkimport.jobs.progress import ProgressListener
from bulkimport.jobs.reasons import trouble_text
from bulkimport.protocol import Trouble
from bulkimport.send import Watch, WatchEvent
from bulkimport.send.pace import PaceState
from bulkimport.settings import Settings
from bulkimport.storage import Job, Storage

log = logging.getLogger("bulkimport")


def clock_text(unix_s: float) -> str:
    """``02:14:05``, local time."""
    return time.strftime("%H:%M:%S", time.localtime(unix_s))


def outage_text(
    since_s: float, next_try_s: float | None, *, now_s: float | None = None, who: str = "server"
) -> str:
    """``server unreachable since 02:14:05, next try in 20 s`` (``who``: ``proxy`` when it
    is the proxy that cannot be reached)."""
    text = f"{who} unreachable since {clock_text(since_s)}"
    if next_try_s is not None:
        wait_s = max(0.0, next_try_s - (time.time() if now_s is None else now_s))
        text += f", next try in {wait_s:.0f} s"
    return text


def window_wait_text(opens_at_s: float) -> str:
    """``outside the send window, sending at 20:00``."""
    return (
        f"outside the send window, sending at {time.strftime('%H:%M', time.localtime(opens_at_s))}"
    )


class Watcher:
    """Keeps, logs and shows what the dispatcher learns about the server for one job."""

    def __init__(
        self, storage: Storage, job: Job, settings: Settings, progress: ProgressListener
    ) -> None:
        self._storage = storage
        self._job = job
        self._settings = settings
        self._progress = progress
        self._since_s: float | None = None
        self._warned_unknown = False

    @property
    def outage_since_s(self) -> float | None:
        """Since when the server has not answered (Unix seconds), in an outage."""
        return self._since_s

    async def rate(self, rate_per_s: float, pace: PaceState) -> None:
        pace_per_s = None if math.isinf(pace.rate_per_s) else pace.rate_per_s
        await self._storage.jobs.record_send_rate(
            self._job.id, rate_per_s, pace_per_s=pace_per_s, latency_s=pace.latency_s
        )
        if self._settings.send.auto:
            self._progress.note(pace.describe())

    async def watch(self, watched: WatchEvent) -> None:
        job = self._job.id
        target = self._settings.target
        if watched.kind is Watch.REACHED:
            await self._storage.jobs.note_answer(target.url)
        elif watched.kind in (Watch.OUTAGE, Watch.PROBE_FAILED):
            if watched.kind is Watch.OUTAGE or self._since_s is None:
                self._since_s = watched.since_s or time.time()
            proxy = watched.outcome is not None and watched.outcome.trouble is Trouble.PROXY
            text = outage_text(
                self._since_s, watched.next_try_s, who="proxy" if proxy else "server"
            )
            what = trouble_text(watched.outcome) if watched.outcome is not None else ""
            await self._storage.jobs.record_outage(job, self._since_s, watched.next_try_s)
            self._progress.note(text)
            if watched.kind is Watch.OUTAGE:
                log.warning(
                    "job %d: %s (%s); sending paused, probing",
                    job,
                    text,
                    what,
                    extra=event("outage", job=job, since=self._since_s, trouble=what),
                )
        elif watched.kind is Watch.BACK:
            since = self._since_s
            self._since_s = None
            await self._storage.jobs.record_outage(job, None, None)
            self._progress.note("")
            log.warning(
                "job %d: the server answers again%s; sending resumes",
                job,
                f" (unreachable since {clock_text(since)})" if since else "",
                extra=event("back", job=job, since=since),
            )
        elif watched.kind is Watch.WINDOW_WAIT and watched.next_try_s is not None:
            text = window_wait_text(watched.next_try_s)
            await self._storage.jobs.record_window_wait(job, watched.next_try_s)
            self._progress.note(text)
            log.warning(
                "job %d: %s (--window %s)",
                job,
                text,
                self._settings.send.window,
                extra=event("window_wait", job=job, opens_at=watched.next_try_s),
            )
        elif watched.kind is Watch.WINDOW_OPEN:
            await self._storage.jobs.record_window_wait(job, None)
            self._progress.note("")
            log.info(
                "job %d: the send window %s is open; sending",
                job,
                self._settings.send.window,
                extra=event("window_open", job=job),
            )
        elif watched.kind is Watch.UNKNOWN and not self._warned_unknown and self._rewrites():
            self._warned_unknown = True
            log.warning(
                "job %d, line %s: no answer (%s), but the call may have been processed; "
                "it is sent again (at most 3 calls in all), and with %s each resend changes "
                "the customer again",
                job,
                watched.line,
                trouble_text(watched.outcome) if watched.outcome is not None else "",
                self._rewrites(),
                extra=event("unknown_outcome", job=job, line=watched.line),
            )

    def _rewrites(self) -> str:
        return ", ".join(self._settings.target.options.rewrites)
