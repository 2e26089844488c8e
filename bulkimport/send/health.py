"""The job's view of the server: answering, down, never reached, or refusing every row.

Pure: no I/O, no clock; every input carries its time ``now_s`` (any monotonic clock), so the
decisions are tested on a virtual clock. The dispatcher tells ``JobHealth`` every outcome and
acts on what it decides:

    outcome ──▶ observe() ──▶ Decision(spare, stop, changed)
                 │
                 ├─ an answer in the Import protocol: the server is there (an outage ends);
                 │  a rejection goes into the error budget, a fatal code stops the job
                 ├─ throttled (429/503): the row is not at fault (its attempt is spared)
                 └─ any other trouble (refused, reset, timeout, 502/504, 5xx, not an answer):
                      a URL that never answered, → stop: NEVER_REACHED (a wrong --url)
                        with evidence of a wrong    (an answer to a call still in flight
                        one (see below)             lifts it: the job goes on)
                      many in a row, or silence, → OUTAGE: pause, probe one call at a time
                        or 503 pages for a second   (the troubles before it are taken back)
                      among answers              → the row's own bad luck (an attempt)

A URL is taken for a wrong one only on evidence (``WRONG_URL_EVIDENCE``): nothing listens
there (refused, an unknown host), no TLS or the wrong one, a page of another server, a 404,
a plain-http call to an HTTPS port. A server that is there but busy (a timeout, a 502, 503
or 504 while it works through a backlog, a reset) says nothing about the URL: that is an
outage, waited for like any other, so that a server busy at the first start is not taken
for a dead one.

An outage is probed every ``probe_first_s`` for its first ``probe_steady_s``, then at
doubling intervals; and the next outage is probed from ``probe_first_s`` again: a server
that stalls a few seconds now and then costs a pause about as long as each stall, not one
that grows to ``probe_max_s``.

A run whose calls came back as HTTP responses but never as an Import answer (a 405, a 404, a
page) may have met a server that does not take its HTTP method: before such a stop or outage
stands, the dispatcher asks the server once with the other method (``may_be_the_method``);
if that is answered, the job stops (``wrong_method``), naming the method, not the URL.

Whether a trouble is the row's or the server's is decided here, once, for every row: an
outage costs no row an attempt, however long it lasts (up to ``max_outage_s``, then the job
stops to be resumed later).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import StrEnum

from bulkimport.protocol import Outcome, OutcomeKind, Trouble
from bulkimport.settings import RejectBudget
from bulkimport.states import StopCause

#: Troubles that show a URL to be wrong, not a server busy: before any Import answer came
#: from it, these (``never_reached_after`` of them) stop the job as ``NEVER_REACHED``.
WRONG_URL_EVIDENCE = frozenset(
    {
        Trouble.REFUSED,  # nothing listens there, or the host is unknown
        Trouble.TLS,  # no TLS there, or another certificate
        Trouble.PROXY,  # the proxy is not reached
        Trouble.NOT_AN_ANSWER,  # a page of another server
        Trouble.CLIENT_ERROR,  # a 404, a 405...
        Trouble.HTTPS_PORT,  # http:// to an HTTPS port
    }
)


@dataclass(frozen=True)
class HealthSettings:
    """When troubles make an outage, a wrong URL, or a spent budget."""

    max_outage_s: float = 1800.0  # ``--max-outage``: then the job stops, resumable (exit 75)
    outage_after: int = 5  # troubles in a row, no answer between, make an outage...
    silence_s: float = 30.0  # ...and so does this long with calls made but no answer
    never_reached_after: int = 3  # a URL that never answered: evidence of a wrong one...
    never_reached_s: float = 10.0  # ...or this long after its first evidence
    maintenance_s: float = 1.0  # 503 pages only, this long (and ``outage_after`` of them)
    probe_first_s: float = 0.5  # the first probes of an outage, this far apart...
    probe_steady_s: float = 10.0  # ...for this long, then twice as long each time...
    probe_max_s: float = 30.0  # ...up to this
    # An outage begins probing from ``probe_first_s`` when the last one ended at least this
    # long ago (0: always; a server that stalls now and then costs each stall's length).
    probe_reset_s: float = 0.0
    budget: RejectBudget = field(default_factory=RejectBudget)


class Mode(StrEnum):
    """How the dispatcher sends."""

    SENDING = "sending"  # as fast as the pace allows
    OUTAGE = "outage"  # the server does not answer: one probe at a time, at growing intervals


@dataclass(frozen=True)
class Decision:
    """What one outcome means for the job.

    ``spare``: the row's attempt is not held against it (the server's trouble, not the row's);
    ``stop``: the job stops, for this cause; ``changed``: the mode changed (an outage began or
    ended): the dispatcher wakes its workers or holds them; ``confirmed``: the first probe
    found the server still down, so the troubles before the outage were not their rows'.
    """

    spare: bool = False
    stop: StopCause | None = None
    changed: bool = False
    confirmed: bool = False


@dataclass(frozen=True)
class HealthStop:
    """Why the job's health stopped it, as facts: the sentence is made at the edge.

    ``never_answered``: no Import answer ever came from this URL, in this run or before. A
    URL that only timed out or answered 5xx is not proven wrong (a server busy at its first
    start does that too): it is waited for as an outage, and stops as one (resumable) after
    ``--max-outage``; the facts say that it never answered, so that the message can name the
    URL and ask whether it is the right one.
    """

    cause: StopCause
    outcome: Outcome | None  # the outcome behind the stop: the last trouble of an outage
    never_answered: bool
    since_s: float | None = None  # an outage's: when its troubles began (the health's clock)


def could_be_the_method(outcome: Outcome) -> bool:
    """Whether ``outcome`` may come of an HTTP method the server does not take: an HTTP
    response that is no Import answer (a 405, a 404, a 500, a page), neither throttling nor
    a request too large."""
    return (
        not outcome.answered
        and outcome.status is not None
        and outcome.trouble not in (Trouble.THROTTLED, Trouble.TOO_LARGE, Trouble.HTTPS_PORT)
    )


class JobHealth:
    """Watches every outcome of one run; see the module's documentation."""

    def __init__(
        self,
        settings: HealthSettings | None = None,
        *,
        reached_before: bool,
        now_s: float,
    ) -> None:
        self.settings = settings or HealthSettings()
        self.reached = reached_before  # this URL gave an Import answer (ever, here)
        self.answered_now = False  # ...in this run
        self.mode = Mode.SENDING
        self.streak = 0  # troubles in a row, no answer between
        self.unavailable = 0  # 503s in a row, no answer between (maintenance pages)
        self.evidence = 0  # troubles that show a wrong URL, no answer between
        self.first_evidence_s: float | None = None
        self.last_answer_s = now_s  # when the latest answer came (or the run began)
        self.first_trouble_s: float | None = None  # of the current streak
        self.outage_since_s: float | None = None
        self.next_probe_s = math.inf
        self._probe_interval_s = self.settings.probe_first_s
        self._confirmed = False  # a probe of this outage found the server down
        self._outage_ended_s = -math.inf
        self.stop: StopCause | None = None
        self.stop_outcome: Outcome | None = None  # the outcome behind the stop
        self.last_trouble: Outcome | None = None
        self.rejections = 0  # in this run
        self.method_refused = False  # the server answers the other HTTP method, not this one
        self._window: deque[str | None] = deque(maxlen=self.settings.budget.window)

    # --- what the dispatcher asks -----------------------------------------------------

    def probe_due(self, now_s: float) -> bool:
        """In an outage, whether the next probe may go now."""
        return self.mode is Mode.OUTAGE and now_s >= self.next_probe_s

    def tick(self, now_s: float) -> StopCause | None:
        """Called while waiting: the outage may have lasted too long."""
        if (
            self.stop is None
            and self.mode is Mode.OUTAGE
            and self.outage_since_s is not None
            and now_s - self.outage_since_s >= self.settings.max_outage_s
        ):
            self._stop(StopCause.OUTAGE, self.last_trouble)
        return self.stop

    def stop_facts(self) -> HealthStop | None:
        """The facts of the stop the health decided, if any."""
        if self.stop is None:
            return None
        return HealthStop(
            cause=self.stop,
            outcome=self.stop_outcome,
            never_answered=not self.reached,
            since_s=self.outage_since_s if self.stop is StopCause.OUTAGE else None,
        )

    def budget_codes(self) -> list[tuple[str, int]]:
        """The rejection codes in the budget's window, most common first."""
        return Counter(code for code in self._window if code is not None).most_common()

    @property
    def budget_answers(self) -> int:
        """The answers in the budget's window (fewer than its size early in a run)."""
        return len(self._window)

    # --- what the dispatcher tells ----------------------------------------------------

    def observe(self, outcome: Outcome, now_s: float, sent_s: float | None = None) -> Decision:
        """What ``outcome`` (of a call sent at ``sent_s`` that ended at ``now_s``) means for
        the job. An answer to a call sent before the current run of troubles began says
        nothing about the server since: it does not end the run, nor the outage it made."""
        if self.method_refused and not outcome.answered:
            # The calls that were in flight met the same refusal: not their rows' fault.
            return Decision(spare=True, stop=self.stop)
        if outcome.answered and self.stop is StopCause.NEVER_REACHED and not self.method_refused:
            # A call in flight when the URL was taken for a wrong one is answered: it is the
            # right one after all (busy at first); the job goes on.
            self.stop = None
            self.stop_outcome = None
        if outcome.answered:
            self.evidence = 0
            self.first_evidence_s = None
            if (
                sent_s is not None
                and self.first_trouble_s is not None
                and sent_s < self.first_trouble_s
            ):
                self.reached = self.answered_now = True
                if outcome.kind is OutcomeKind.FATAL:
                    self._stop(StopCause.FATAL, outcome)
                else:
                    self._count(outcome)
                return Decision(stop=self.stop)
            return self._answer(outcome, now_s)
        return self._trouble(outcome, now_s)

    def observe_probe(self, outcome: Outcome, now_s: float) -> Decision:
        """What a probe of the server (a call that touches no data) found. Any answer in
        the Import protocol means the server is there: the outage ends, whatever it said.
        ``confirmed`` on the first probe that finds it still down: the troubles that led to
        the outage were the server's, not their rows'."""
        if outcome.answered:
            self.reached = self.answered_now = True
            self.last_answer_s = now_s
            self.evidence = 0
            self.first_evidence_s = None
            if self.stop is StopCause.NEVER_REACHED and not self.method_refused:
                self.stop = None
                self.stop_outcome = None
            self._back(now_s)
            return Decision(changed=True)
        self.last_trouble = outcome
        if not self.reached:
            self._evidence(outcome, now_s)  # a URL never answered may show itself wrong
        confirmed = not self._confirmed
        self._confirmed = True
        self._schedule_probe(now_s)
        return Decision(spare=True, stop=self.tick(now_s), confirmed=confirmed)

    def probed_elsewhere(self, now_s: float) -> Decision:
        """Another runner of the server had this turn to probe it (a budget shared by
        several: one probes, the others wait) and has not found it back: as a probe that
        found it down, without a call of this runner's."""
        confirmed = not self._confirmed
        self._confirmed = True
        self._schedule_probe(now_s)
        return Decision(spare=True, stop=self.tick(now_s), confirmed=confirmed)

    @property
    def probe_interval_s(self) -> float:
        """How long until the next probe after one now."""
        return self._probe_interval_s

    def _schedule_probe(self, now_s: float) -> None:
        """The next probe: ``probe_first_s`` apart while the outage is young (a stall of a
        few seconds is found over within half a second of its end), then at doubling intervals
        (a server down for long is not asked every second)."""
        self.next_probe_s = now_s + self._probe_interval_s
        since = self.outage_since_s if self.outage_since_s is not None else now_s
        if now_s - since >= self.settings.probe_steady_s:
            self._probe_interval_s = min(2 * self._probe_interval_s, self.settings.probe_max_s)

    def _back(self, now_s: float) -> None:
        """The server answers: sending again. The next outage is probed from the shortest
        interval again (``probe_reset_s`` after this one at the latest): a stall of a few
        seconds costs a pause of a few seconds, however many came before."""
        self.mode = Mode.SENDING
        if self.settings.probe_reset_s <= 0:
            self._probe_interval_s = self.settings.probe_first_s
        self.streak = 0
        self.unavailable = 0
        self.first_trouble_s = None
        self.outage_since_s = None
        self.next_probe_s = math.inf
        self._outage_ended_s = now_s

    def _answer(self, outcome: Outcome, now_s: float) -> Decision:
        changed = self.mode is Mode.OUTAGE
        self.reached = self.answered_now = True
        self.streak = 0
        self.unavailable = 0
        self.first_trouble_s = None
        self.last_answer_s = now_s
        if changed:
            self._back(now_s)
        elif now_s - self._outage_ended_s >= self.settings.probe_reset_s:
            self._probe_interval_s = self.settings.probe_first_s
        if outcome.kind is OutcomeKind.FATAL:
            self._stop(StopCause.FATAL, outcome)
        else:
            self._count(outcome)
        return Decision(spare=False, stop=self.stop, changed=changed)

    def _trouble(self, outcome: Outcome, now_s: float) -> Decision:
        trouble = outcome.trouble
        self.last_trouble = outcome
        if outcome.kind is OutcomeKind.FATAL:
            # A certificate, or a 401/403/404: wrong for every row, however long one waits.
            cause = StopCause.FATAL if self.reached else StopCause.NEVER_REACHED
            self._stop(cause, outcome)
            return Decision(spare=True, stop=self.stop)
        if trouble is Trouble.TOO_LARGE:
            # This request only (the row is too long for the front end): a rejection.
            self._count(outcome)
            return Decision(spare=False, stop=self.stop)
        if self.first_trouble_s is None:
            self.first_trouble_s = now_s
        if trouble is not Trouble.THROTTLED:
            self.streak += 1
        if outcome.status == 503:
            self.unavailable += 1
        if not self.reached and self._evidence(outcome, now_s):
            return Decision(spare=True, stop=self.stop)
        # A URL that never answered and shows no sign of a wrong one (timeouts, 502/503/504
        # while the server works through a backlog): a server busy, waited for as in an
        # outage; no row is at fault before the server answered at all.
        unproven = not self.reached
        if self.mode is Mode.OUTAGE:
            # A call that was in flight when the outage began: like the troubles that led to
            # it, held against its row until a probe confirms that the server is down.
            spare = self._confirmed or unproven or trouble is Trouble.THROTTLED
            return Decision(spare=spare, stop=self.tick(now_s))
        silent_s = now_s - self.last_answer_s
        # 503 pages and nothing else for a few seconds: a maintenance page, not a front
        # end's rate limit (that lets calls through between its refusals).
        maintenance = (
            self.unavailable >= self.settings.outage_after
            and now_s - self.first_trouble_s >= self.settings.maintenance_s
        )
        if (
            self.streak >= self.settings.outage_after
            or silent_s >= self.settings.silence_s
            or maintenance
        ):
            self.mode = Mode.OUTAGE
            self._confirmed = False
            self.outage_since_s = min(self.first_trouble_s, now_s)
            self._schedule_probe(now_s)
            # Held against its row like the others, until a probe confirms the outage.
            spare = trouble is Trouble.THROTTLED or unproven
            return Decision(spare=spare, stop=self.tick(now_s), changed=True)
        # Throttling is never the row's fault. Another trouble is held against the row until
        # an outage is clear; then the dispatcher takes back the attempts of the troubles
        # that led to it (they met the outage too).
        return Decision(spare=trouble is Trouble.THROTTLED or unproven)

    def _evidence(self, outcome: Outcome, now_s: float) -> bool:
        """Before any answer: whether ``outcome`` is evidence of a wrong URL (counted; the
        job stops once there is enough of it). A busy server's trouble is not."""
        if outcome.trouble not in WRONG_URL_EVIDENCE:
            return False
        self.evidence += 1
        if self.first_evidence_s is None:
            self.first_evidence_s = now_s
        if (
            self.evidence >= self.settings.never_reached_after
            or now_s - self.first_evidence_s >= self.settings.never_reached_s
        ):
            self._stop(StopCause.NEVER_REACHED, outcome)
        return True

    def may_be_the_method(self, outcome: Outcome) -> bool:
        """Whether ``outcome`` may say that the server does not take this run's HTTP method
        (a 405 or a 404 to POST from a server that reads GET only, a page in its place),
        rather than that the URL is wrong or the server down: no call of this run has been
        answered, and this one ``could_be_the_method``."""
        return not self.answered_now and could_be_the_method(outcome)

    def wrong_method(self, outcome: Outcome) -> Decision:
        """The server answered the other HTTP method where this one got ``outcome``: the job
        stops (``NEVER_REACHED``: this URL gives no Import answer to this method), whatever a
        fatal status or an outage decided before, and no row is at fault."""
        self.method_refused = True
        self.mode = Mode.SENDING
        self.outage_since_s = None
        self.next_probe_s = math.inf
        self.stop = StopCause.NEVER_REACHED
        self.stop_outcome = outcome
        return Decision(spare=True, stop=self.stop)

    def _count(self, outcome: Outcome) -> None:
        """Feed the error budget: a rejection, or an answer that is not one."""
        budget = self.settings.budget
        rejected = outcome.kind is OutcomeKind.REJECTED
        self._window.append(outcome.code if rejected else None)
        if not rejected:
            return
        self.rejections += 1
        if budget.count is not None and self.rejections >= budget.count:
            self._stop(StopCause.BUDGET, outcome)
        elif budget.share is not None:
            rejected_in_window = sum(1 for code in self._window if code is not None)
            if len(self._window) >= budget.window:
                if rejected_in_window / len(self._window) > budget.share:
                    self._stop(StopCause.BUDGET, outcome)
            elif rejected_in_window > budget.share * budget.window:
                # The first window is not full yet, but whatever the answers still to come
                # in it, its share is over already: stop now, not after the whole window
                # (with the calls in flight, a full window was more than 100 calls).
                self._stop(StopCause.BUDGET, outcome)

    def _stop(self, cause: StopCause, outcome: Outcome | None) -> None:
        if self.stop is None:
            self.stop = cause
            self.stop_outcome = outcome
