"""What a send is given and gives back: the options of one run (``DispatchOptions``), who
hears about it (``Listeners``), reading beside it (``Feed``), what it tells as it goes
(``Watch``, ``WatchEvent``, ``SendCounts``) and how it ended (``SendResult``)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bulkimport.protocol import Outcome, OutcomeKind
from bulkimport.send.budget import SharedBudget
from bulkimport.send.health import HealthSettings
from bulkimport.send.limiter import Clock
from bulkimport.send.pace import PaceState
from bulkimport.settings import Method
from bulkimport.states import RowState, StopCause

STOP_GRACE_S = 5.0  # how long calls in flight may take to finish after a stop


class SendEnd(StrEnum):
    """How sending ended."""

    FINISHED = "finished"  # no pending row left (and reading done)
    STOPPED = "stopped"  # stopped before that: ``SendResult.cause`` says why


@dataclass
class SendCounts:
    """What happened while sending, for the progress display and the summary."""

    sent: int = 0  # calls made
    answered: int = 0  # calls answered in the Import protocol (whatever the answer said)
    done: int = 0
    duplicate: int = 0
    rejected: int = 0
    failed: int = 0
    retried: int = 0  # transient outcomes that will be tried again
    throttled: int = 0  # answers that asked us to wait (Retry-After)
    spared: int = 0  # troubles not held against the row (an outage, throttling)
    # Calls whose outcome is unknown (a timeout, a proxy's 502/504, a call cut off at a stop):
    # they may have been processed.
    unknown: int = 0
    # Calls answered with a 2xx page that is no Import answer: the server took them, and may
    # have processed them (a notice printed before the answer).
    pages: int = 0
    maybe_imported: int = 0  # rows that ended ``unknown``: they may be on the server

    def count(self, outcome: Outcome, state: RowState, *, spared: bool) -> None:
        """Count a call's ``outcome`` that left its row in ``state`` (``spared``: the
        attempt was not held against it)."""
        kind = outcome.kind
        if kind is OutcomeKind.TRANSIENT or (kind is OutcomeKind.FATAL and not outcome.answered):
            if spared:
                self.spared += 1
            if state is RowState.FAILED:
                self.failed += 1
            elif state is RowState.UNKNOWN:
                self.maybe_imported += 1
            elif kind is OutcomeKind.TRANSIENT:
                self.retried += 1
        elif state is RowState.DONE:
            self.done += 1
        elif state is RowState.DUPLICATE:
            self.duplicate += 1
        elif state is RowState.REJECTED:
            self.rejected += 1

    @property
    def settled(self) -> int:
        """Rows that reached a terminal state in this run."""
        return self.done + self.duplicate + self.rejected + self.failed + self.maybe_imported


@dataclass
class SendResult:
    """How a run of the dispatcher ended; ``outcome`` is the answer behind a stop, if any."""

    end: SendEnd
    counts: SendCounts
    recovered: int  # rows found in_flight at start: resent after an unknown outcome
    cause: StopCause | None = None
    outcome: Outcome | None = None
    budget_codes: list[tuple[str, int]] = field(default_factory=list)
    budget_answers: int = 0  # the answers those codes are among
    seconds: float = 0.0
    # A stop of a run that no Import answer came to: the HTTP method the server answered
    # instead (it does not take the run's).
    other_method: Method | None = None
    # No Import answer ever came from this URL, in this run or before (``JobHealth.reached``).
    never_answered: bool = False


class Watch(StrEnum):
    """What the dispatcher tells its watcher about the server, as it learns it."""

    REACHED = "reached"  # the first Import answer of this run
    OUTAGE = "outage"  # no answer across the board: paused, probing
    PROBE_FAILED = "probe-failed"  # a probe got no answer either
    BACK = "back"  # an answer again: sending resumes
    UNKNOWN = "unknown"  # a call may have been processed though no answer came
    WINDOW_WAIT = "window-wait"  # outside the send window: waiting until it opens
    WINDOW_OPEN = "window-open"  # the send window opened: sending begins


@dataclass(frozen=True)
class WatchEvent:
    """One thing learned; times are wall-clock Unix seconds."""

    kind: Watch
    outcome: Outcome | None = None
    line: int | None = None
    since_s: float | None = None  # OUTAGE: when answers stopped
    next_try_s: float | None = None  # OUTAGE, PROBE_FAILED: when the next probe goes;
    # WINDOW_WAIT: when the window opens


@dataclass
class Feed:
    """Reading going on beside sending: ``added`` is set after each committed batch, ``done``
    once reading ended; ``failed`` if it ended before the file's end (sending stops too,
    with ``StopCause.READING``: a job is never finished with rows left unread)."""

    added: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    failed: bool = False

    def end(self, *, failed: bool = False) -> None:
        self.failed = failed
        self.done.set()
        self.added.set()


@dataclass(frozen=True)
class DispatchOptions:
    """How one send runs, beyond the job's ``SendSettings``.

    ``reached_before``: the target's URL gave an Import answer before (a URL that never did
    and gives none now is a mistake, not an outage). ``max_unknown``: calls of one row whose
    outcome is unknown, at most (when each resend rewrites the customer). ``health``: when
    troubles make an outage (by default from the settings' ``--max-outage`` and error
    budget). ``grace_s``: how long calls in flight may take to finish after a stop. The
    clocks (monotonic and wall-clock Unix seconds) and the backoff's random numbers are
    given by tests. ``budget``: the server's budget, shared with the other runners of the
    storage (``--server-rate``; None: the job's own pace only, and no statement for it).
    """

    reached_before: bool = True
    max_unknown: int | None = None
    health: HealthSettings | None = None
    grace_s: float = STOP_GRACE_S
    clock: Clock = time.monotonic
    wall_clock: Clock = time.time
    rng: random.Random | None = None
    budget: SharedBudget | None = None


@dataclass(frozen=True)
class Listeners:
    """Who hears about a send: ``on_progress`` the counts about every tenth of a second;
    ``on_rate`` the rows settled per second and the pace every few seconds; ``on_watch``
    what is learned about the server."""

    on_progress: Callable[[SendCounts], None] | None = None
    on_rate: Callable[[float, PaceState], Awaitable[None]] | None = None
    on_watch: Callable[[WatchEvent], Awaitable[None]] | None = None
