"""The job commands: run, stage, resume, status, jobs."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from bulkimport.cli.base import (
    SEND_GROUPS,
    Where,
    common_options,
    configure_logging,
    db_from,
    finish,
    load_settings,
    open_queue,
    password_for,
    run_async,
    setting_options,
    show_bars,
    try_later_runs_text,
)
from bulkimport.cli.joblog import log_event
from bulkimport.cli.progress import all_of, progress_for
from bulkimport.cli.remote import shown_remote
from bulkimport.errors import ConfigError, DiskFull, ExitCode
from bulkimport.events import Event
from bulkimport.jobs.client import Client
from bulkimport.jobs.summary import JobSummary, RowError, summarize
from bulkimport.messages import budget_text, outage_text, said, window_wait_text
from bulkimport.portable import on_stop_signals
from bulkimport.settings import mask_url
from bulkimport.states import JobState, RowState
from bulkimport.storage import Job, RemoteImport, RunnerView, Storage


async def find_job(storage: Storage, job_id: int | None, where: Where) -> Job:
    """Job ``job_id`` (the latest open one if None), or a ``ConfigError`` whose advice
    repeats the options that locate the database."""
    if job_id is None:
        job = await storage.jobs.latest(unfinished=True)
        if job is None:
            raise ConfigError(
                f"no unfinished job in {storage.location}; see {where.command('jobs')}"
            )
        return job
    try:
        return await storage.jobs.get(job_id)
    except ConfigError:
        raise ConfigError(
            f"no job {job_id} in {storage.location}; see {where.command('jobs')}"
        ) from None


def run_job_command(
    *,
    db: Path | str,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
    options: dict[str, Any],
    path: Path | None = None,
    job_id: int | None = None,
    new: bool = False,
    send: bool = True,
    sandbox: bool = False,
    rejected: bool | None = None,
    unknown: bool = False,
) -> ExitCode:
    """``run``, ``stage``, ``resume`` and ``retry``: settings, then one ``Client`` call.

    ``rejected`` and ``unknown`` are ``retry``'s: None (False) for the other commands."""
    where = Where(db_from(db, config_path), config_path)

    def say(text: str) -> None:
        if not quiet:
            click.echo(text, err=True)

    def tell(event: Event) -> None:
        """What a person is told of an event (the log and the bars have theirs)."""
        text = said(event)
        if text is not None:
            say(text)

    async def main() -> JobSummary | _NothingToDo:
        # A wrong option is said before a database is made for the file's job.
        early = load_settings(options, config_path) if path is not None and not sandbox else None
        # resume and retry need a database that exists: a wrong --db is an error, not a new
        # empty database.
        async with open_queue(where.db, create=path is not None) as storage:
            stored = None
            if path is None:
                nothing_open = job_id is None and rejected is None
                if nothing_open and await storage.jobs.latest(unfinished=True) is None:
                    return _NothingToDo(
                        f"nothing to resume: no unfinished job in {storage.location}"
                    )
                job = await find_job(storage, job_id, where)
                stored = job.settings
                if job.state is JobState.FINISHED and rejected is None:
                    return _NothingToDo(
                        f"nothing to resume: job {job.id} is already finished",
                        await summarize(storage, job.id),
                    )
                if job.superseded_by is not None:
                    say(
                        f"job {job.id} was superseded by job {job.superseded_by}; going on as asked"
                    )
            async with _maybe_sandbox(sandbox, options, say) as sandbox_options:
                settings = (
                    early
                    if early is not None
                    else load_settings(sandbox_options, config_path, stored=stored)
                )
                bars = show_bars(quiet, as_json)
                configure_logging(quiet, settings, bars=bars)
                if send:
                    # Complete: load_settings checked it (and the Client checks it once more).
                    password = password_for(settings)
                    settings = replace(settings, target=settings.target.with_password(password))
                progress = progress_for(bars=bars, interval_s=settings.output.log_interval_s)
                client = Client(
                    settings=settings,
                    storage=storage,
                    on_event=all_of([tell, log_event, progress]),
                )

                def stop(signum: int) -> None:
                    # Ctrl-C or SIGTERM: a clean stop; a second one quits at once.
                    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
                    client.stop(name)

                async with client, _signals(stop):
                    if path is not None:
                        if send:
                            return await client.load_csv(path, new=new)
                        return await client.stage_csv(path, new=new)
                    if rejected is not None:
                        assert job_id is not None
                        return await client.retry(job_id, rejected=rejected, unknown=unknown)
                    # The job as named (None: the client says which it chose, and why).
                    return await client.resume(job_id)

    try:
        summary = run_async(main())
    except DiskFull as exc:
        if exc.job is None:
            raise
        # `stage` goes on staging with the same command; the others with resume.
        again = where.command("resume", exc.job) if send else "the same command again"
        raise DiskFull(f"{exc}: {again}", job=exc.job) from None
    if isinstance(summary, _NothingToDo):
        # Not an error: cron's `resume` of a job that finished last night has nothing to do.
        if as_json:
            shown = summary.summary.to_json() if summary.summary is not None else {"job": None}
            click.echo(json.dumps({**shown, "nothing_to_do": summary.line}, ensure_ascii=False))
        elif not quiet:
            click.echo(summary.line)
        return ExitCode.OK
    return finish(summary, as_json=as_json, quiet=quiet, where=where)


@contextlib.asynccontextmanager
async def _signals(stop: Callable[[int], None]) -> AsyncIterator[None]:
    with on_stop_signals(stop):
        yield


@dataclass(frozen=True)
class _NothingToDo:
    """``resume`` found nothing to send: the line that says so, and the finished job named."""

    line: str
    summary: JobSummary | None = None


@contextlib.asynccontextmanager
async def _maybe_sandbox(
    enabled: bool, options: dict[str, Any], say: Callable[[str], None]
) -> AsyncIterator[dict[str, Any]]:
    """With ``--sandbox``: a sandbox on a free port for the length of the job, as the URL."""
    if not enabled:
        yield options
        return
    from bulkimport.sandbox import SandboxConfig, serve_sandbox

    async with serve_sandbox(SandboxConfig(port=0)) as server:
        say(f"sandbox listening on {server.url}")
        yield {**options, "url": server.url}


@click.command()
@click.argument("csv_file", type=click.Path(path_type=Path))
@common_options
@click.option(
    "--new", is_flag=True, help="Start a new job even if one for this file is unfinished."
)
@click.option(
    "--sandbox",
    is_flag=True,
    help="Send to a built-in sandbox started for this run (a rehearsal; --url is ignored).",
)
@setting_options(*SEND_GROUPS)
def run(
    csv_file: Path,
    db: Path | str,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
    new: bool,
    sandbox: bool,
    **options: Any,
) -> ExitCode:
    """Read CSV_FILE into a job and send every row.

    Running the same command again resumes the unfinished job for the same file and target.

    \b
    Example:
      read -rs BULKIMPORT_PASSWORD && export BULKIMPORT_PASSWORD   # never an option
      bulkimport run leads.csv --url https://cc.example.com/asterccinterfaces \\
          --org acme --user admin --campaign 12 --rate 50 --map Mobile=phone1
    """
    return run_job_command(
        db=db,
        config_path=config_path,
        quiet=quiet,
        as_json=as_json,
        options=options,
        path=csv_file,
        new=new,
        sandbox=sandbox,
    )


@click.command()
@click.argument("csv_file", type=click.Path(path_type=Path))
@common_options
@click.option(
    "--new", is_flag=True, help="Start a new job even if one for this file is unfinished."
)
@setting_options(*SEND_GROUPS)
def stage(
    csv_file: Path,
    db: Path | str,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
    new: bool,
    **options: Any,
) -> ExitCode:
    """Read CSV_FILE into a new job and stop (state ready); send it later with resume.

    \b
    Example:
      bulkimport stage leads.csv --config nightly.toml      # by day
      bulkimport resume --config nightly.toml               # by night
    """
    return run_job_command(
        db=db,
        config_path=config_path,
        quiet=quiet,
        as_json=as_json,
        options=options,
        path=csv_file,
        new=new,
        send=False,
    )


@click.command()
@click.argument("job_id", type=int, required=False)
@common_options
@setting_options(*SEND_GROUPS)
def resume(
    job_id: int | None,
    db: Path | str,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
    **options: Any,
) -> ExitCode:
    """Continue an interrupted, stopped or staged job (the latest unfinished one by default).

    The job's stored settings are used; options given here override them (a fixed --org,
    another --rate). Rows found in flight are sent again and counted as such. With nothing
    to resume (no unfinished job, or JOB finished) it says so and exits 0.

    \b
    Example:
      bulkimport resume 3 --rate 10
    """
    return run_job_command(
        db=db,
        config_path=config_path,
        quiet=quiet,
        as_json=as_json,
        options=options,
        job_id=job_id,
    )


@click.command()
@click.argument("job_id", type=int, required=False)
@common_options
def status(
    job_id: int | None, db: Path | str, config_path: Path | None, quiet: bool, as_json: bool
) -> ExitCode:
    """Counts per state, progress and the last errors of a job (the latest by default).

    A job left running (or reading) by a process that is gone (kill -9, a reboot) shows as
    interrupted, with when its runner was last seen: resume it.

    \b
    Example:
      bulkimport status 3 --json
    """
    where = Where(db_from(db, config_path), config_path)

    async def main() -> JobSummary:
        async with open_queue(where.db, read_only=True) as storage:
            if job_id is not None:
                await find_job(storage, job_id, where)
            async with Client(storage=storage) as client:
                return await client.status(job_id)

    summary = run_async(main())
    if as_json:
        click.echo(json.dumps(summary.to_json(), ensure_ascii=False))
        return ExitCode.OK
    state = summary.state.value
    if summary.runner_alive is False:
        state += " (no runner)"
    click.echo(f"job {summary.job}: {state}")
    click.echo(f"  file    {summary.file}")
    click.echo(f"  target  {summary.target.describe()}")
    terminal = sum(n for s, n in summary.counts.items() if s.is_terminal)
    share = 100.0 * terminal / summary.total if summary.total else 100.0
    click.echo(f"  rows    {summary.total:,} ({share:.1f}% settled)")
    notes = summary.reading_notes()
    if notes:
        click.echo(f"  read    {'; '.join(notes)}")
    if summary.rate_per_s is not None and summary.eta_s is not None:
        click.echo(f"  rate    {summary.rate_per_s:,.1f} rows/s, ETA {_duration(summary.eta_s)}")
    for runner in summary.runners if len(summary.runners) > 1 else ():
        click.echo(f"  runner  {_runner_text(runner)}")
    if summary.pace_per_s is not None:
        latency = (
            f", latency {summary.latency_s * 1000:.0f} ms" if summary.latency_s is not None else ""
        )
        click.echo(f"  pace    {summary.pace_per_s:,.1f} calls/s{latency}")
    if summary.server_rate_per_s is not None:
        click.echo(f"  budget  {budget_text(summary.server_rate_per_s, summary.target.url)}")
    if summary.outage_since is not None:
        click.echo(f"  server  {outage_text(summary.outage_since, summary.next_try_at)}")
    if summary.window_opens_at is not None:
        click.echo(f"  window  {window_wait_text(summary.window_opens_at)}")
    if summary.try_later_runs:
        runs = try_later_runs_text(summary.try_later_runs, summary.try_later_since)
        click.echo(f"  later   {runs} (exit 75)")
    for row_state in RowState:
        click.echo(f"    {row_state.value:<10} {summary.counts.get(row_state, 0):>12,}")
    if summary.resent_unknown:
        click.echo(f"  resent after an unknown outcome: {summary.resent_unknown:,}")
    if summary.report:
        click.echo(f"  report  {summary.report}")
    if summary.maybe_on_server:
        where_listed = summary.unknown_report or where.command(
            "failed", summary.job, "--state", "unknown", "-o", "FILE"
        )
        click.echo(
            f"  may be on the server: {summary.maybe_on_server:,} (unknown); check the server "
            f"before sending them again: {where_listed}"
        )
    if summary.superseded_by is not None:
        click.echo(
            f"  superseded by job {summary.superseded_by} (the same file, loaded since): "
            "resume passes it by"
        )
    if summary.message:
        click.echo(f"  last stop: {summary.message}")
    if summary.runner_alive is False:
        click.echo(f"  resume it: {where.command('resume', summary.job)}")
    if summary.last_errors:
        click.echo("  last errors:")
        for error in summary.last_errors:
            click.echo(f"    line {error.line}: {error.state} {_error_text(error)}".rstrip())
    return ExitCode.OK


def _runner_text(runner: RunnerView) -> str:
    """``loader-2 pid 4121: 212.4 rows/s`` (one of the runners sending a job)."""
    rate = "starting" if runner.rate_per_s is None else f"{runner.rate_per_s:,.1f} rows/s"
    return f"{runner.host} pid {runner.pid}: {rate}"


def _error_text(error: RowError) -> str:
    """A row's code and message, the code once (``BackMsg_76 phone1``, not ``BackMsg_76
    BackMsg_76 phone1``)."""
    code, detail = error.code or "", error.message or ""
    if not code or detail == code or detail.startswith(f"{code} "):
        return detail or code
    return f"{code} {detail}".strip()


@click.command()
@common_options
def jobs(db: Path | str, config_path: Path | None, quiet: bool, as_json: bool) -> ExitCode:
    """List the jobs (file and target, rows, state) and the remote imports recorded in the
    database.

    "done" counts the rows the server loaded, "duplicate" those it already held (as status
    does), "unknown" those that may be on the server (no answer came: check there). --json
    prints {"jobs": [...], "remote_imports": [...]}: each job as status --json shows it,
    each remote import with its server job id, state, code and message.

    \b
    Example:
      bulkimport jobs --db nightly.db
    """
    db = db_from(db, config_path)

    async def main() -> tuple[list[JobSummary], list[RemoteImport], str]:
        async with open_queue(db, read_only=True) as storage, Client(storage=storage) as client:
            return await client.jobs(), await client.remote_imports(), storage.location

    summaries, remotes, location = run_async(main())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "jobs": [s.to_json() for s in summaries],
                    "remote_imports": [shown_remote(r) for r in remotes],
                },
                ensure_ascii=False,
            )
        )
        return ExitCode.OK
    if not summaries and not remotes:
        click.echo(f"no jobs in {location}")
        return ExitCode.OK
    if summaries:
        click.echo(
            f"{'job':>5}  {'state':<11} {'rows':>10} {'done':>10} {'duplicate':>9} "
            f"{'problems':>9} {'unknown':>8}  file → target"
        )
    for s in summaries:
        counts = s.counts
        line = (
            f"{s.job:>5}  {s.state.value:<11} {s.total:>10,} {counts.get(RowState.DONE, 0):>10,} "
            f"{counts.get(RowState.DUPLICATE, 0):>9,} {s.problems:>9,} {s.maybe_on_server:>8,}  "
            f"{s.file} → {s.target.describe()}"
        )
        if len(s.runners) > 1:
            line += f"  [{len(s.runners)} runners]"
        if s.runner_alive is False and s.last_seen_at is not None:
            seen = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.last_seen_at))
            line += f"  [no runner; last seen {seen}]"
        if s.superseded_by is not None:
            line += f"  [superseded by {s.superseded_by}]"
        if s.try_later_runs:
            line += f"  [{try_later_runs_text(s.try_later_runs, s.try_later_since)}]"
        click.echo(line)
    if remotes:
        if summaries:
            click.echo("")
        click.echo(f"{'remote':>6}  {'state':<9} {'server job':>10}  {'when':<19}  url")
        for r in remotes:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at))
            server_job = r.server_job_id or (r.code or "-")
            url = mask_url(r.url)
            click.echo(f"{r.id:>6}  {r.state.value:<9} {server_job:>10}  {when:<19}  {url}")
    return ExitCode.OK


def _duration(seconds: float) -> str:
    """``1h 02m``, ``3m 05s``, ``12s``."""
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
