"""``bulkimport remote``: one ``source=http|ftp`` import, recorded in the database."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import click

from bulkimport.cli.base import (
    common_options,
    configure_logging,
    db_from,
    load_settings,
    open_queue,
    password_for,
    run_async,
    setting_options,
    try_later_line,
)
from bulkimport.errors import ExitCode
from bulkimport.jobs.events import event
from bulkimport.jobs.pipeline import log_exposure, log_route
from bulkimport.messages import PROXY_ADVICE, certificate_advice, wrong_method
from bulkimport.protocol import Outcome, Trouble, describe_code
from bulkimport.send import open_session
from bulkimport.send.remote import (
    SOURCE_PASSWORD_ENV,
    RemoteRequest,
    RemoteResult,
    split_credentials,
    submit_remote,
)
from bulkimport.settings import Settings, mask_url
from bulkimport.states import RemoteState
from bulkimport.storage import RemoteImport

log = logging.getLogger("bulkimport")

#: Settings that mean nothing for one call the server runs itself.
NOT_FOR_REMOTE = ("rate", "concurrency", "skip_unchanged", "report", "log_interval", "server_rate")


@click.command("remote")
@click.argument("file_url", metavar="URL")
@common_options
@setting_options("target", "send", "remote", "output", exclude=NOT_FOR_REMOTE)
def remote(
    file_url: str,
    db: Path | str,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
    **options: Any,
) -> ExitCode:
    """Ask the server to fetch the CSV file at URL and import it (source=http or ftp).

    Prints the server's import job id and records the import in the database (bulkimport jobs
    lists it). The file's password comes from BULKIMPORT_SOURCE_PASSWORD (or the URL, which is
    stored and shown without it); it is never stored. Transient errors are retried up to
    --max-attempts. Exit codes: 0 accepted; 3 refused (credentials, campaign, a file the
    server cannot fetch or read, a server that answers GET only: --method get); 75 no valid
    answer after every attempt (try again later).

    \b
    Example:
      read -rs BULKIMPORT_PASSWORD && read -rs BULKIMPORT_SOURCE_PASSWORD
      export BULKIMPORT_PASSWORD BULKIMPORT_SOURCE_PASSWORD
      bulkimport remote https://files.example.com/leads.csv --config nightly.toml \\
          --source-user export --delrow 1 --exetime "2025-01-31 02:00:00"
    """
    db = db_from(db, config_path)
    settings = load_settings(options, config_path)
    configure_logging(quiet, settings)
    clean_url, url_user, url_password = split_credentials(file_url, settings.remote.source)
    request = RemoteRequest(
        url=clean_url,
        source=settings.remote.source,
        source_user=settings.remote.source_user or url_user,
        source_password=os.environ.get(SOURCE_PASSWORD_ENV) or url_password,
        exetime=settings.remote.exetime,
        delrow=settings.remote.delrow,
    )
    password = password_for(settings)
    record, result = run_async(_submit(db, settings, password, request))
    outcome = result.outcome
    if as_json:
        click.echo(json.dumps(shown_remote(record), ensure_ascii=False))
    elif record.state is RemoteState.ACCEPTED:
        click.echo(record.server_job_id or "")
    if record.state is RemoteState.ACCEPTED:
        if not quiet and not as_json:
            when = f"at {request.exetime}" if request.exetime else "now"
            click.echo(
                f"remote import {record.id}: server job {record.server_job_id} ({when})",
                err=True,
            )
        return ExitCode.OK
    reason = _reason(outcome)
    if result.other_method is not None:
        line = wrong_method(outcome, settings.target.url, settings.send.method, result.other_method)
        click.echo(f"Error: {line}", err=True)
        return ExitCode.SERVER_REFUSED
    advice = certificate_advice(outcome, settings.send)
    if advice is not None:
        click.echo(f"Error: {mask_url(settings.target.url)}: {outcome.message}; {advice}", err=True)
        return ExitCode.SERVER_REFUSED
    if record.state is RemoteState.REFUSED:
        if outcome.trouble is Trouble.PROXY:
            click.echo(f"Error: {outcome.message}", err=True)
        else:
            click.echo(f"Error: the server refused the import: {reason}", err=True)
        return ExitCode.SERVER_REFUSED
    # Not a failure (exit 75): said as "try later", and under --quiet not at all, since
    # cron mails whatever is printed; the exit code and `jobs` say it.
    if outcome.trouble is Trouble.PROXY:
        what = f"{outcome.message} ({record.attempts} attempts); {PROXY_ADVICE}"
    else:
        what = f"no answer from the server after {record.attempts} attempts ({reason})"
    if not quiet:
        click.echo(try_later_line(what), err=True)
    return ExitCode.TRY_LATER


async def _submit(
    db: Path | str, settings: Settings, password: str, request: RemoteRequest
) -> tuple[RemoteImport, RemoteResult]:
    target = settings.target  # complete: load_settings checked it
    send = settings.send
    # Opened first: a database that cannot be used is an error before anything is asked.
    async with open_queue(db) as queue:
        # The file's URL has no credentials left (split_credentials); shown masked anyway,
        # as every URL is.
        shown_url, shown_target = mask_url(request.url), mask_url(target.key)
        log.info(
            "remote import of %s to %s",
            shown_url,
            shown_target,
            extra=event(
                "start",
                file_only=True,
                url=shown_url,
                target=shown_target,
                settings=settings.stored(),
            ),
        )
        log_exposure(target.url, send)
        async with open_session(1) as session:
            result = await submit_remote(
                session,
                target.url,
                target.with_password(password).import_params(),
                request,
                send,
                on_retry=_log_retry,
                on_route=log_route,
            )
        outcome = result.outcome
        record = await queue.remote.add(
            source=request.source.value,
            url=request.url,
            target_key=target.key,
            exetime=request.exetime,
            delrow=str(request.delrow),
            server_job_id=result.server_job_id,
            state=result.state,
            code=outcome.code,
            message=outcome.message,
            attempts=result.attempts,
        )
    log.info(
        "remote import %d %s: %s",
        record.id,
        record.state.value,
        record.server_job_id or outcome.message or outcome.code,
        extra=event("summary", file_only=True, **shown_remote(record)),
    )
    return record, result


def shown_remote(record: RemoteImport) -> dict[str, Any]:
    """A remote import as shown and logged: its URLs through ``mask_url``."""
    shown = record.to_json()
    shown["url"] = mask_url(record.url)
    shown["target"] = mask_url(record.target_key)
    return shown


def _log_retry(attempt: int, outcome: Outcome, delay_s: float) -> None:
    log.warning(
        "attempt %d: %s; trying again in %.1fs",
        attempt,
        outcome.message or outcome.code,
        delay_s,
        extra=event("retry", attempt=attempt, code=outcome.code, delay_s=delay_s),
    )


def _reason(outcome: Outcome) -> str:
    if outcome.backmsg is not None:
        described = describe_code(outcome.backmsg)
        extra = outcome.message.removeprefix(outcome.code).strip(" ,")
        return f"{described}{': ' + extra if extra else ''}"
    return f"{outcome.code}: {outcome.message}" if outcome.message else outcome.code
