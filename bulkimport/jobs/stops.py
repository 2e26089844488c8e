"""Why a job stopped, as facts (``StopFacts``), gathered once where it stops: from the
dispatcher's result, the settings it ran with and the job."""

from __future__ import annotations

import time

from bulkimport.check.predict import key_fix
from bulkimport.events import StopFacts
from bulkimport.protocol import CODES, Fix
from bulkimport.reader import InputKind
from bulkimport.send import SendResult
from bulkimport.settings import Settings, Target, mask_url
from bulkimport.states import StopCause
from bulkimport.storage import Job


def stop_facts(
    cause: StopCause,
    result: SendResult,
    settings: Settings,
    target: Target,
    job: Job | None = None,
    *,
    since_s: float | None = None,
    now_s: float | None = None,
) -> StopFacts:
    """The facts of a send that stopped by ``cause`` (``since_s``: the outage's start)."""
    now = time.time() if now_s is None else now_s
    send = settings.send
    outcome = result.outcome
    budget = send.max_rejects
    window = send.window
    return StopFacts(
        cause=cause,
        at=now,
        kind=outcome.kind if outcome is not None else None,
        code=outcome.code if outcome is not None else None,
        backmsg=outcome.backmsg if outcome is not None else None,
        status=outcome.status if outcome is not None else None,
        trouble=outcome.trouble if outcome is not None else None,
        meaning=outcome.message if outcome is not None else "",
        fix=outcome.fix if outcome is not None else None,
        setting=_setting(cause, result),
        url=mask_url(target.url),
        org=target.org,
        user=target.user,
        usertype=target.usertype.value,
        pwdtype=target.pwdtype.value,
        campaign=target.campaign,
        password_env=settings.password_env,
        method=send.method,
        other_method=result.other_method,
        ca_file=send.ca_file,
        system_trust=send.system_trust,
        answered=result.counts.answered,
        unknown=result.counts.unknown,
        pages=result.counts.pages,
        rejected=result.counts.rejected,
        max_rejects=str(budget),
        max_rejects_count=budget.count is not None,
        budget_codes=tuple(result.budget_codes),
        budget_answers=result.budget_answers or budget.window,
        key_map=_key_map(job, result) if cause is StopCause.BUDGET else (),
        max_outage_s=send.max_outage_s if cause is StopCause.OUTAGE else None,
        outage_since=since_s if cause is StopCause.OUTAGE else None,
        never_answered=result.never_answered and cause is StopCause.OUTAGE,
        window=str(window) if window is not None else None,
        window_opens_at=window.opens_at(now) if window is not None else None,
    )


def _setting(cause: StopCause, result: SendResult) -> str | None:
    """The setting to fix, by its library name (``Target``, ``SendSettings`` fields)."""
    outcome = result.outcome
    if result.other_method is not None:
        return "method"
    if cause is StopCause.NEVER_REACHED:
        return "url"
    if cause is StopCause.OUTAGE:
        return "max_outage_s"
    if cause is StopCause.WINDOW:
        return "window"
    if cause is StopCause.BUDGET:
        return "max_rejects"
    fix = outcome.fix if outcome is not None else None
    return (
        {
            Fix.ORG: "org",
            Fix.LOGIN: "user",
            Fix.PASSWORD: "password",
            Fix.CAMPAIGN: "campaign",
            Fix.FIELDS: "rename",
        }.get(fix)
        if fix is not None
        else None
    )


def _key_map(job: Job | None, result: SendResult) -> tuple[str, ...]:
    """For rows refused for their fields: the ``rename`` options that the names files
    commonly give the vendor's fields suggest for this file's columns (``check.fieldnames``);
    only said, never applied."""
    outcome = result.outcome
    code = CODES.get(outcome.backmsg) if outcome is not None and outcome.backmsg else None
    if job is None or code is None or code.fix is not Fix.FIELDS:
        return ()
    if job.format.kind is InputKind.ROWS:
        return ()
    return tuple(key_fix(job.format))
