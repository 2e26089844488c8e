"""The one line that says why a job stopped, and what to do about it.

Built from typed facts only (the stop's cause, an ``Outcome``'s code number, HTTP status and
trouble, the code table's ``Fix``), never from a message parsed back. The server's URL is
shown through ``mask_url``, as every URL put in a message.
"""

from __future__ import annotations

import time
import urllib.parse

from bulkimport.protocol import (
    CODES,
    ENDPOINT_PATH,
    Fix,
    Outcome,
    OutcomeKind,
    Trouble,
    describe_code,
)
from bulkimport.send import PROXY_ADVICE, SendCounts, SendResult, certificate_advice
from bulkimport.settings import Method, Settings, Target, mask_url
from bulkimport.states import StopCause
from bulkimport.window import SendWindow


def fix_hint(fix: Fix | None, target: Target, password_env: str) -> str:
    """Which setting to check for ``fix``, with the value that was used ("" if none)."""
    who = f"--usertype {target.usertype.value} --user {target.user}"
    if fix is Fix.ORG:
        return f"--org {target.org}"
    if fix is Fix.LOGIN:
        return who
    if fix is Fix.PASSWORD:
        return f"the password in {password_env} (--pwdtype {target.pwdtype.value}) for {who}"
    if fix is Fix.CAMPAIGN:
        return f"--campaign {target.campaign}"
    if fix is Fix.PARAMETERS:
        return "that no required setting is empty (--org, --user, --campaign, the password)"
    if fix is Fix.LICENCE:
        return "the server's licence with its administrator; nothing to change here"
    if fix is Fix.FIELDS:
        return "the file's header and --map against the campaign's fields"
    return ""


def refusal(outcome: Outcome, target: Target, password_env: str) -> str:
    """One line naming what the server refused, and the setting to look at."""
    if outcome.backmsg is not None:
        hint = fix_hint(outcome.fix, target, password_env)
        return f"the server refused the job: {describe_code(outcome.backmsg)}" + (
            f"; check {hint}" if hint else ""
        )
    if outcome.status is not None and outcome.trouble is Trouble.CLIENT_ERROR:
        return (
            f"the server refused the job: HTTP {outcome.status} ({outcome.message}); "
            f"check --url {mask_url(target.url)} and the login"
        )
    return f"the server refused the job: {outcome.message or outcome.code}"


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


def untouched(counts: SendCounts | None) -> str:
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


def https_port(outcome: Outcome, target: Target, counts: SendCounts | None = None) -> str:
    """A plain-http call to a port that speaks HTTPS: the URL's scheme is wrong."""
    url = mask_url(target.url)
    parts = urllib.parse.urlsplit(url)
    fixed = urllib.parse.urlunsplit(("https", *parts[1:]))
    return (
        f"{url} is an HTTPS port: {trouble_text(outcome)}; use https:// (--url {fixed}) "
        f"({untouched(counts)})"
    )


def never_reached(outcome: Outcome, target: Target, counts: SendCounts | None = None) -> str:
    """Why a URL that never gave an Import answer is probably wrong, and what to check."""
    url = mask_url(target.url)
    parts = urllib.parse.urlsplit(url)
    path_hint = f"is the path {ENDPOINT_PATH}?" if parts.path != ENDPOINT_PATH else ""
    trouble = outcome.trouble
    if trouble is Trouble.HTTPS_PORT:
        return https_port(outcome, target, counts)
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
        + f"; check --url ({untouched(counts)})"
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


def network_refusal(
    outcome: Outcome, settings: Settings, *, reached: bool, counts: SendCounts | None = None
) -> str | None:
    """The line for a job stopped by the way to the server rather than by the server: a
    certificate that is not trusted (what to trust, ``--insecure`` last), or the proxy
    (not reached, or refusing); None for any other outcome. ``reached``: the URL answered
    before."""
    untouched_text = "" if reached else f" ({untouched(counts)})"
    advice = certificate_advice(outcome, settings.send)
    url = mask_url(settings.target.url)
    if advice is not None:
        return f"{url}: {outcome.message}; {advice}{untouched_text}"
    if outcome.trouble is not Trouble.PROXY:
        return None
    if outcome.kind is OutcomeKind.FATAL:
        return f"{outcome.message}{untouched_text}"
    return f"{url} was not reached: {outcome.message}; {PROXY_ADVICE}{untouched_text}"


def budget_reason(result: SendResult, settings: Settings) -> str:
    """Why the rejections look systematic, with the most common code and its fix."""
    codes = result.budget_codes
    budget = settings.send.max_rejects
    rejected = sum(n for _, n in codes)
    answers = result.budget_answers or budget.window
    text = f"the server rejected {rejected} of the last {answers} rows"
    if budget.count is not None:
        text = f"the server rejected {result.counts.rejected} rows (--max-rejects {budget})"
    outcome = result.outcome
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


def outage_reason(result: SendResult, settings: Settings, since_s: float | None) -> str:
    """Why the job stopped waiting for the server."""
    limit_s = settings.send.max_outage_s
    outcome = result.outcome
    what = trouble_text(outcome) if outcome is not None else "no answer"
    since = f" since {time.strftime('%H:%M:%S', time.localtime(since_s))}" if since_s else ""
    who = "the proxy" if outcome is not None and outcome.trouble is Trouble.PROXY else "the server"
    return (
        f"{who} did not answer{since} ({what}): stopped after --max-outage "
        f"{_duration(limit_s)}; the job resumes with the same command"
    )


def stop_reason(
    cause: StopCause, result: SendResult, settings: Settings, *, since_s: float | None = None
) -> str:
    """The one line for a job stopped by ``cause``."""
    target = settings.target
    outcome = result.outcome
    if result.other_method is not None and outcome is not None:
        # No row was at fault: the calls that met it were spared.
        return (
            wrong_method(outcome, target.url, settings.send.method, result.other_method)
            + " (no row was sent or used an attempt)"
        )
    if cause in (StopCause.FATAL, StopCause.NEVER_REACHED) and outcome is not None:
        line = network_refusal(
            outcome, settings, reached=cause is StopCause.FATAL, counts=result.counts
        )
        if line is not None:
            return line
        if outcome.trouble is Trouble.HTTPS_PORT:
            return https_port(outcome, target, result.counts)
    if cause is StopCause.FATAL and outcome is not None:
        return refusal(outcome, target, settings.password_env)
    if cause is StopCause.NEVER_REACHED and outcome is not None:
        return never_reached(outcome, target, result.counts)
    if cause is StopCause.BUDGET:
        return budget_reason(result, settings)
    if cause is StopCause.OUTAGE:
        return outage_reason(result, settings, since_s)
    if cause is StopCause.WINDOW and settings.send.window is not None:
        return window_reason(settings.send.window, time.time())
    return "interrupted"


def window_reason(window: SendWindow, now_s: float) -> str:
    """Why a job stopped when its send window closed, and when it goes on."""
    opens = time.strftime("%H:%M", time.localtime(window.opens_at(now_s)))
    return (
        f"the send window {window} closed; the job resumes with the same command, "
        f"sending from {opens}"
    )


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole and whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole and whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"
