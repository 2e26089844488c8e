"""Every sentence a job's facts are told in: the one place a message may name an option.

The library emits typed events (``bulkimport.events``) and keeps why a job stopped as
``StopFacts``; the command line turns them into words here, and so does
``JobSummary.message``. Each line is built from typed facts only (a stop's cause, an
``Outcome``'s code number, HTTP status and trouble, the code table's ``Fix``), never from a
message parsed back. The server's URL is shown through ``mask_url``, as every URL put in a
message.
"""

from __future__ import annotations

import sys
import time
import urllib.parse
from collections.abc import Iterable, Mapping

from bulkimport.events import (
    ColumnsAdded,
    Event,
    Forgot,
    JobOpened,
    JobResumed,
    JobStopped,
    Opened,
    OutageBegan,
    PaceChanged,
    ProbeFailed,
    Pruned,
    RenameUnused,
    Replaced,
    RowsReset,
    RunEnded,
    RunStarted,
    ServerBack,
    SkippedUnchanged,
    StopFacts,
    StopRequested,
    Superseded,
    UnknownOutcome,
    WindowOpen,
    WindowWait,
)
from bulkimport.protocol import (
    CODES,
    ENDPOINT_PATH,
    Fix,
    Outcome,
    OutcomeKind,
    Trouble,
    describe_code,
)
from bulkimport.send import SendCounts
from bulkimport.send.pace import PaceState
from bulkimport.send.transport import CERT_EXPIRED, CERT_NAME
from bulkimport.settings import Method, SendSettings, mask_url, server_key
from bulkimport.states import JobState, RepairKind, StopCause
from bulkimport.window import SendWindow

# --- small pieces ---------------------------------------------------------------------------


#: What to check when the proxy cannot be reached.
PROXY_ADVICE = (
    "is the proxy running, and its address right? (--proxy, or HTTPS_PROXY and HTTP_PROXY; "
    "NO_PROXY lists the hosts reached directly)"
)


def certificate_advice(
    outcome: Outcome, settings: SendSettings, *, platform: str = sys.platform
) -> str | None:
    """What to do about a certificate that was refused (None for any other outcome): the
    ways to trust it first, ``--insecure`` last."""
    if outcome.trouble is not Trouble.TLS or outcome.kind is not OutcomeKind.FATAL:
        return None
    last = "only as a last resort, --insecure (no verification at all)"
    if outcome.code == CERT_NAME:
        return f"check the host name in the URL (the certificate names others); {last}"
    if outcome.code == CERT_EXPIRED:
        return f"the server's administrator must renew its certificate; {last}"
    steps = [
        f"check that --ca-file {settings.ca_file} holds the CA that signed it"
        if settings.ca_file
        else "if your company's own CA signed it, give that CA with --ca-file PATH (PEM)"
    ]
    if settings.system_trust:
        steps.append("the operating system does not trust it either (--system-trust)")
    else:
        steps.append(
            "behind a proxy that inspects TLS, give the proxy's CA with --ca-file, or use "
            "--system-trust where IT installed it in the system"
        )
        if platform == "darwin":
            steps.append(
                "with python.org's Python, run its Install Certificates.command "
                "(in /Applications/Python 3.x) once"
            )
    steps.append(last)
    return "; ".join(steps)


def plural(count: int, word: str) -> str:
    """``1 row``, ``2 rows``, ``1,204 blank lines``."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


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
        # Probes of a young outage come every half second: "0 s" would read as stuck.
        text += ", next try in under a second" if wait_s < 1 else f", next try in {wait_s:.0f} s"
    return text


def window_wait_text(opens_at_s: float) -> str:
    """``outside the send window, sending at 20:00``."""
    return (
        f"outside the send window, sending at {time.strftime('%H:%M', time.localtime(opens_at_s))}"
    )


def budget_text(rate_per_s: float, url: str) -> str:
    """``50 calls/s for https://cc.example:443/import, shared by every job of this database
    (--server-rate)``: the server's budget a job sends under."""
    try:
        server = server_key(url)
    except ValueError:
        server = mask_url(url)
    return (
        f"{rate_per_s:,g} calls/s for {server}, shared by every job of this database "
        "(--server-rate)"
    )


def trouble_text(outcome: Outcome) -> str:
    """What came back instead of an Import answer, in a few words."""
    trouble, message = outcome.trouble, outcome.message
    if trouble is Trouble.PROXY:
        return message  # it names the proxy
    if trouble is Trouble.REFUSED:
        return f"no connection: {message}"
    if trouble is Trouble.TLS:
        return f"TLS failed: {message}"
    if trouble is Trouble.TIMEOUT:
        return "no answer in time"
    if trouble is Trouble.DROPPED:
        return f"the connection broke: {message}"
    if trouble is Trouble.NOT_AN_ANSWER:
        return f"a page that is not an Import answer ({message})"
    if outcome.status is not None:
        return f"HTTP {outcome.status} ({message})" if message else f"HTTP {outcome.status}"
    return message or outcome.code


# --- why a job stopped ----------------------------------------------------------------------


def fix_hint(fix: Fix | None, facts: StopFacts) -> str:
    """Which setting to check for ``fix``, with the value that was used ("" if none)."""
    who = f"--usertype {facts.usertype} --user {facts.user}"
    if fix is Fix.ORG:
        return f"--org {facts.org}"
    if fix is Fix.LOGIN:
        return who
    if fix is Fix.PASSWORD:
        return f"the password in {facts.password_env} (--pwdtype {facts.pwdtype}) for {who}"
    if fix is Fix.CAMPAIGN:
        return f"--campaign {facts.campaign}"
    if fix is Fix.PARAMETERS:
        return "that no required setting is empty (--org, --user, --campaign, the password)"
    if fix is Fix.LICENCE:
        return "the server's licence with its administrator; nothing to change here"
    if fix is Fix.FIELDS:
        return "the file's header and --map against the campaign's fields"
    return ""


def refusal(outcome: Outcome, facts: StopFacts) -> str:
    """One line naming what the server refused, and the setting to look at."""
    if outcome.backmsg is not None:
        hint = fix_hint(outcome.fix, facts)
        return f"the server refused the job: {describe_code(outcome.backmsg)}" + (
            f"; check {hint}" if hint else ""
        )
    if outcome.status is not None and outcome.trouble is Trouble.CLIENT_ERROR:
        return (
            f"the server refused the job: HTTP {outcome.status} ({outcome.message}); "
            f"check --url {facts.url} and the login"
        )
    return f"the server refused the job: {outcome.message or outcome.code}"


def untouched(counts: SendCounts | StopFacts | None) -> str:
    """What the calls of a job stopped before any Import answer did to the rows: nothing, or
    how many were answered or may have been processed (then the job's rows say which)."""
    answered = counts.answered if counts is not None else 0
    unknown = counts.unknown if counts is not None else 0
    pages = counts.pages if counts is not None else 0
    if not answered and not unknown and not pages:
        return "no row was sent or used an attempt"
    parts = []
    if answered:
        parts.append(f"{answered:,} {'call was' if answered == 1 else 'calls were'} answered")
    if unknown:
        parts.append(f"{unknown:,} may have been processed (no answer)")
    if pages:
        parts.append(f"{pages:,} got a page instead of an answer and may have been processed")
    return "; ".join(parts)


def https_port(outcome: Outcome, facts: StopFacts) -> str:
    """A plain-http call to a port that speaks HTTPS: the URL's scheme is wrong."""
    url = mask_url(facts.url)
    parts = urllib.parse.urlsplit(url)
    fixed = urllib.parse.urlunsplit(("https", *parts[1:]))
    return (
        f"{url} is an HTTPS port: {trouble_text(outcome)}; use https:// (--url {fixed}) "
        f"({untouched(facts)})"
    )


def never_reached(outcome: Outcome, facts: StopFacts) -> str:
    """Why a URL that never gave an Import answer is probably wrong, and what to check."""
    url = mask_url(facts.url)
    parts = urllib.parse.urlsplit(url)
    path_hint = f"is the path {ENDPOINT_PATH}?" if parts.path != ENDPOINT_PATH else ""
    trouble = outcome.trouble
    if trouble is Trouble.HTTPS_PORT:
        return https_port(outcome, facts)
    if trouble is Trouble.REFUSED:
        advice = f"is the server at {parts.netloc} running, and the host and port right?"
    elif trouble is Trouble.TLS:
        advice = (
            "is it https:// to a plain http port (or the other way round)?"
            if parts.scheme == "https"
            else "check the scheme"
        )
    elif trouble is Trouble.TIMEOUT:
        advice = "is the host right, and reachable from here (a firewall)?"
    elif trouble is Trouble.NOT_AN_ANSWER or (
        outcome.status is not None and trouble in (Trouble.CLIENT_ERROR, Trouble.GATEWAY)
    ):
        advice = path_hint or "is it the call center's server?"
        if trouble is Trouble.GATEWAY:
            advice = "a proxy answers, but not the server behind it"
    else:
        advice = path_hint
    return (
        f"{url} never gave an Import answer: {trouble_text(outcome)}"
        + (f"; {advice}" if advice else "")
        + f"; check --url ({untouched(facts)})"
    )


def wrong_method(outcome: Outcome, url: str, used: Method, answered: Method) -> str:
    """Why a server that answers ``answered`` but gave no Import answer to ``used`` (the job's
    HTTP method) stopped the job, and the option that sends its way."""
    head = (
        f"{mask_url(url)} gives no Import answer to {used.value.upper()} "
        f"({trouble_text(outcome)}), but answers {answered.value.upper()}"
    )
    if answered is Method.GET:
        return (
            f"{head}: give --method get to send that way (the password, or its MD5, then goes "
            "into every request line, and so into the access logs of the server and of any "
            "proxy)"
        )
    return f"{head}: give --method post"


def network_refusal(outcome: Outcome, facts: StopFacts) -> str | None:
    """The line for a job stopped by the way to the server rather than by the server: a
    certificate that is not trusted (what to trust, ``--insecure`` last), or the proxy
    (not reached, or refusing); None for any other outcome."""
    reached = facts.cause is StopCause.FATAL  # the URL answered before
    untouched_text = "" if reached else f" ({untouched(facts)})"
    trust = SendSettings(ca_file=facts.ca_file, system_trust=facts.system_trust)
    advice = certificate_advice(outcome, trust)
    url = mask_url(facts.url)
    if advice is not None:
        return f"{url}: {outcome.message}; {advice}{untouched_text}"
    if outcome.trouble is not Trouble.PROXY:
        return None
    if outcome.kind is OutcomeKind.FATAL:
        return f"{outcome.message}{untouched_text}"
    return f"{url} was not reached: {outcome.message}; {PROXY_ADVICE}{untouched_text}"


def budget_reason(facts: StopFacts) -> str:
    """Why the rejections look systematic, with the most common code and its fix."""
    budget = facts.max_rejects
    rejected = sum(n for _, n in facts.budget_codes)
    text = f"the server rejected {rejected} of the last {facts.budget_answers} rows"
    if facts.max_rejects_count:
        text = f"the server rejected {facts.rejected} rows (--max-rejects {budget})"
    outcome = facts.outcome
    if outcome is not None and outcome.backmsg is not None:
        code = CODES.get(outcome.backmsg)
        text += f", {describe_code(outcome.backmsg)}"
        if code is not None and code.fix is Fix.FIELDS:
            text += (
                ": check the file's header and --map against the campaign's fields, then run "
                "it again with --new"
            )
        elif code is None and outcome.message and outcome.message != outcome.code:
            text += f" ({outcome.message})"
    elif outcome is not None:
        text += f", {outcome.code} ({outcome.message})"
    return text + f"; the rows not sent stay pending (--max-rejects {budget}; 0 never stops)"


def mapping_hint(key_map: tuple[str, ...]) -> str:
    """For rows refused for their fields: the ``--map`` options that the names files
    commonly give the vendor's fields suggest for this file's columns; only said."""
    if not key_map:
        return ""
    return (
        f"; its columns may be the campaign's fields under other names: {' '.join(key_map)} "
        "(bulkimport check shows what each column is sent as)"
    )


def outage_reason(facts: StopFacts) -> str:
    """Why the job stopped waiting for the server."""
    outcome = facts.outcome
    what = trouble_text(outcome) if outcome is not None else "no answer"
    since = f" since {clock_text(facts.outage_since)}" if facts.outage_since else ""
    who = "the proxy" if facts.trouble is Trouble.PROXY else "the server"
    waited = f"stopped after --max-outage {_duration(facts.max_outage_s or 0.0)}"
    if facts.never_answered and facts.trouble is not Trouble.PROXY:
        # Timeouts and 5xx alone do not prove a URL wrong (a server busy at its first start
        # gives them too), but a person should look.
        return (
            f"{facts.url} never gave an Import answer{since} ({what}): {waited}; is the URL "
            "right? the job resumes with the same command, or with resume --url"
        )
    return f"{who} did not answer{since} ({what}): {waited}; the job resumes with the same command"


def window_reason(window: SendWindow, now_s: float) -> str:
    """Why a job stopped when its send window closed, and when it goes on."""
    return _window_closed(str(window), window.opens_at(now_s))


def _window_closed(window: str, opens_at_s: float) -> str:
    opens = time.strftime("%H:%M", time.localtime(opens_at_s))
    return (
        f"the send window {window} closed; the job resumes with the same command, "
        f"sending from {opens}"
    )


def stop_text(facts: StopFacts) -> str:
    """The one line that says why a job stopped, and what to do about it."""
    cause = facts.cause
    outcome = facts.outcome
    if cause is StopCause.READING:
        return f"reading stopped: {facts.error}; sending stopped with it"
    if cause is StopCause.DISK_FULL:
        return f"stopped: {facts.error}"
    if facts.other_method is not None and outcome is not None and facts.method is not None:
        # No row was at fault: the calls that met it were spared.
        return (
            wrong_method(outcome, facts.url, facts.method, facts.other_method)
            + " (no row was sent or used an attempt)"
        )
    if cause in (StopCause.FATAL, StopCause.NEVER_REACHED) and outcome is not None:
        line = network_refusal(outcome, facts)
        if line is not None:
            return line
        if outcome.trouble is Trouble.HTTPS_PORT:
            return https_port(outcome, facts)
    if cause is StopCause.FATAL and outcome is not None:
        return refusal(outcome, facts)
    if cause is StopCause.NEVER_REACHED and outcome is not None:
        return never_reached(outcome, facts)
    if cause is StopCause.BUDGET:
        return budget_reason(facts) + mapping_hint(facts.key_map)
    if cause is StopCause.OUTAGE:
        return outage_reason(facts)
    if cause is StopCause.WINDOW and facts.window is not None:
        return _window_closed(facts.window, facts.window_opens_at or facts.at)
    if cause is StopCause.SIGNAL and facts.reading:
        return "interrupted while reading"
    return "interrupted"


def reading_notes(blank_lines: int, repairs: Mapping[RepairKind, int]) -> list[str]:
    """What reading found besides rows: ``3 blank lines skipped``, ``30 phone numbers
    repaired (.0 removed)``."""
    notes = []
    if blank_lines:
        notes.append(f"{plural(blank_lines, 'blank line')} skipped")
    repaired = sum(repairs.values())
    if repaired:
        kinds = [kind for kind in RepairKind if repairs.get(kind)]
        if len(kinds) == 1:
            how = kinds[0].removed
        else:
            how = ", ".join(f"{repairs[kind]:,} {kind.removed}" for kind in kinds)
        what = "phone number" if all(kind.phone for kind in kinds) else "value"
        notes.append(f"{plural(repaired, what)} repaired ({how})")
    return notes


def no_runner_text(state: JobState, last_seen_at: float) -> str:
    """Why a job stored ``running`` (or ``reading``) shows interrupted."""
    doing = "reading" if state is JobState.READING else "sending"
    return (
        f"no runner: the process {doing} it ended without a word (killed?); last seen "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(last_seen_at))}"
    )


# --- errors a job raises --------------------------------------------------------------------


def no_such_file(path: object) -> str:
    return f"{path}: no such file"


def is_a_directory(path: object) -> str:
    return f"{path}: is a directory, not a CSV file"


def unreadable(path: object, reason: str | None) -> str:
    return f"{path}: cannot be read ({reason})"


def file_changed(path: object, job: int) -> str:
    """A file whose job started reading it is another file now."""
    return (
        f"{path}: the file changed since job {job} started reading it; start a new job with --new"
    )


def rows_not_staged(job: int, name: str | None, staged: int) -> str:
    """``resume`` of a job of rows a program has not staged in full."""
    return (
        f"job {job} is rows {name!r} given by a program, {plural(staged, 'row')} of them staged "
        "so far: load the same rows under the same name (Client.load_rows) to go on"
    )


def rows_from_a_program(job: int) -> str:
    return f"job {job}: its rows are given by a program: Client.load_rows"


def not_rows(kind: str) -> str:
    return f"load_rows takes an iterable or an async iterable of mappings, not {kind}"


def no_keys(name: str, *, any_rows: bool) -> str:
    what = "no row has a key" if any_rows else "no rows were given"
    return f"rows {name!r}: {what}; the keys of the rows name the columns"


def fewer_rows(name: str, given: int, staged: int, job: int) -> str:
    """Rows given again to go on staging, fewer than were staged."""
    return (
        f"rows {name!r}: {plural(given, 'row')} given, fewer than the {staged:,} job {job} has "
        "staged; give the same rows again (or start afresh with new=True)"
    )


def no_job(location: str, *, unfinished: bool) -> str:
    return f"no {'unfinished ' if unfinished else ''}job in {location}"


def unknown_state(name: str, allowed: Iterable[str]) -> str:
    return f"--state {name!r}: choose among {', '.join(sorted(allowed))}"


def report_refused(option: str, path: object, problem: str) -> str:
    """A report that cannot be written where ``option`` says."""
    return f"{option} {path}: {problem}"


def report_is_a_directory() -> str:
    return "is a directory; give a file name"


def report_folder_missing(folder: object) -> str:
    return f"directory {folder} does not exist"


def report_cannot_write(reason: str | None) -> str:
    return f"cannot write there ({reason})"


def report_held(path: object, reason: str) -> str:
    """A report another program holds open (Excel locks the file it shows) or read-only."""
    return (
        f"cannot replace or remove the report {path} ({reason}): is it open in another "
        "program, such as Excel? Close it there"
    )


def report_unwritten(path: object, reason: str | None, *, disk_full: bool = False) -> str:
    text = f"cannot write the report {path} ({reason})"
    return f"{text}: the disk is full" if disk_full else text


def report_moved(what: str, target: object) -> str:
    """Why a job's earlier report is discarded."""
    return f"the job's {what} is now {target}"


def cells_missing(count: int) -> str:
    """A report row's note for a line shorter than the header."""
    return f"({count} cell{'s' if count != 1 else ''} missing)"


# --- what a job says as it goes -------------------------------------------------------------


def resuming_text(resumed: JobResumed) -> str:
    """``resuming job 3 (interrupted): 1,204 pending, 8 in flight at the crash to resend``."""
    state = resumed.state.value
    message = stop_text(resumed.stop) if resumed.stop is not None else resumed.message
    if resumed.state in (JobState.RUNNING, JobState.READING):
        why = f"{state} when its runner stopped without a word"
    elif message and message.startswith(state):
        why = message
    else:
        why = state + (f": {message}" if message else "")
    chosen = "the latest unfinished job, " if resumed.chosen else ""
    head = f"resuming job {resumed.job} ({chosen}{why})"
    if resumed.reading:
        text = (
            f"{head}: reading goes on at line {resumed.read_line:,} "
            f"({plural(resumed.rows_read, 'row')} read so far)"
        )
    else:
        text = f"{head}: {resumed.pending:,} pending"
        if resumed.in_flight:
            text += f", {resumed.in_flight:,} in flight at the crash to resend"
    if resumed.opened is Opened.FOUND:
        text += (
            "; new=True starts afresh" if resumed.rows_name is not None else "; --new starts afresh"
        )
    return text


def said(event: Event) -> str | None:
    """What the command line says of ``event`` to a person (stderr, not under ``--quiet``);
    None: nothing (the log, the bars or the summary show it)."""
    if isinstance(event, JobOpened):
        if event.rows_name is not None:
            return f"job {event.job}: rows {event.rows_name!r} ({plural(event.columns, 'column')})"
        text = (
            f"job {event.job}: {event.file} ({event.format.describe()}, "
            f"{plural(event.columns, 'column')})"
        )
        if event.failed_rows_report:
            text = (
                f"{event.file} is a failed-rows report: reading it as UTF-8 CSV, its _ columns "
                f"dropped\n{text}"
            )
        return text
    if isinstance(event, JobResumed):
        return resuming_text(event)
    if isinstance(event, RowsReset):
        names = " and ".join(sorted(state.value for state in event.states))
        return f"job {event.job}: {event.rows:,} {names} rows back to pending"
    if isinstance(event, SkippedUnchanged):
        text = (
            f"job {event.job}: {plural(event.skipped, 'row')} skipped (unchanged since the last "
            f"record loaded for the same {event.key}), {event.pending:,} to send"
        )
        if event.keyless:
            text += f" ({event.keyless:,} without a {event.key}: always sent)"
        if event.maybe_loaded:
            text += (
                f"; {plural(event.maybe_loaded, 'row')} sent again that an earlier job may "
                "have loaded (unknown there)"
            )
        return text
    if isinstance(event, Superseded):
        if event.why is Replaced.EARLIER_EXPORT:
            what = (
                f"an earlier export of the same file; every row it had left is for a "
                f"customer job {event.by} loaded"
            )
        elif event.why is Replaced.OTHER_TARGET:
            what = f"the same file to {event.other_target}"
        else:
            what = "the same file and target"
        return (
            f"job {event.job} ({event.state.value}, {what}) is superseded by job {event.by}: "
            "resume no longer picks it"
        )
    if isinstance(event, Pruned):
        return pruned_text(event)
    return None


def pruned_text(event: Pruned) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(event.before))
    ids = ", ".join(str(job) for job in event.jobs)
    text = f"pruned {plural(len(event.jobs), 'job')} finished before {when} ({ids})"
    if event.reports:
        text += f" and {plural(event.reports, 'report')}"
    return text


def pace_text(pace: PaceState) -> str:
    """``pace 120/s (latency 35 ms, base 20 ms; ...)``: the pace of ``--rate auto`` now."""
    text = f"pace {_rate_text(pace.rate_per_s)}/s"
    if pace.latency_s is None or pace.base_latency_s is None:
        return text
    latency, base = _ms_text(pace.latency_s), _ms_text(pace.base_latency_s)
    return f"{text} (latency {latency}, base {base}; {pace.reason.value})"


def _rate_text(rate_per_s: float) -> str:
    return f"{rate_per_s:.0f}" if rate_per_s >= 10 else f"{rate_per_s:.1f}"


def _ms_text(seconds: float) -> str:
    ms = seconds * 1000.0
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def note(event: Event) -> str | None:
    """What the progress line shows beside the counts after ``event`` ("" clears it; None:
    no change)."""
    if isinstance(event, OutageBegan | ProbeFailed):
        return outage_text(event.since, event.next_try_at, who="proxy" if event.proxy else "server")
    if isinstance(event, ServerBack | WindowOpen):
        return ""
    if isinstance(event, WindowWait):
        return window_wait_text(event.opens_at)
    if isinstance(event, PaceChanged):
        return pace_text(event.pace)
    return None


def logged(event: Event) -> str | None:
    """The log line of ``event`` (None: not logged)."""
    if isinstance(event, OutageBegan):
        what = trouble_text(event.outcome) if event.outcome is not None else ""
        text = outage_text(event.since, event.next_try_at, who="proxy" if event.proxy else "server")
        return f"job {event.job}: {text} ({what}); sending paused, probing"
    if isinstance(event, ServerBack):
        since = f" (unreachable since {clock_text(event.since)})" if event.since else ""
        return f"job {event.job}: the server answers again{since}; sending resumes"
    if isinstance(event, WindowWait):
        return f"job {event.job}: {window_wait_text(event.opens_at)} (--window {event.window})"
    if isinstance(event, WindowOpen):
        return f"job {event.job}: the send window {event.window} is open; sending"
    if isinstance(event, UnknownOutcome):
        what = trouble_text(event.outcome) if event.outcome is not None else ""
        return (
            f"job {event.job}, line {event.line}: no answer ({what}), but the call may have "
            "been processed; it is sent again (at most 3 calls in all), and with "
            f"{', '.join(event.rewrites)} each resend changes the customer again"
        )
    if isinstance(event, StopRequested):
        name = event.signal or "a stop request"
        doing = (
            "finishing the calls in flight"
            if event.sending
            else "keeping the rows read so far (reading resumes after them)"
        )
        again = " (another one quits at once)" if event.signal is not None else ""
        job = f" job {event.job}" if event.job is not None else ""
        return f"{name}: stopping{job}: {doing}{again}"
    if isinstance(event, JobStopped):
        return f"job {event.job} {event.state.value}: {stop_text(event.facts)}"
    if isinstance(event, RowsReset):
        return f"job {event.job}: {event.rows} rows to retry"
    if isinstance(event, SkippedUnchanged):
        return f"job {event.job}: {event.skipped} unchanged rows skipped"
    if isinstance(event, Superseded):
        return f"job {event.job} superseded by job {event.by}"
    if isinstance(event, Pruned):
        return pruned_text(event)
    if isinstance(event, Forgot):
        return (
            f"forgot a customer: {plural(event.rows, 'row')} from jobs "
            f"{', '.join(map(str, event.jobs)) or 'none'}, "
            f"{plural(event.latest_records, 'latest record')}"
        )
    if isinstance(event, ColumnsAdded):
        first = event.first_rows
        return (
            f"job {event.job}: {plural(len(first), 'new column')} from row "
            f"{min(first.values())} on: "
            + ", ".join(f"{key} (row {row})" for key, row in first.items())
        )
    if isinstance(event, RenameUnused):
        return f"job {event.job}: rename names key {event.key!r}, which no row had"
    if isinstance(event, RunStarted):
        return f"job {event.job} start: {event.file} to {event.target}"
    if isinstance(event, RunEnded):
        counts = ", ".join(f"{s.value} {n}" for s, n in event.counts.items() if n)
        return f"job {event.job} {event.state.value} in {event.seconds:.1f}s: {counts or 'no rows'}"
    return None


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole and whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole and whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"
