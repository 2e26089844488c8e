"""The ``bulkimport`` command line: thin click commands over ``pipeline`` and ``queue``.

Each command resolves its settings, opens the queue and calls one implementation; errors
from the library become one line on stderr and the documented exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from bulkimport import __version__
from bulkimport.errors import BulkImportError, ConfigError, ExitCode
from bulkimport.pipeline import JobSummary, run_pipeline, summarize
from bulkimport.progress import Progress
from bulkimport.queue import Queue
from bulkimport.sandbox.cli import sandbox_command
from bulkimport.settings import SPECS, Settings, load_profile, read_password, resolve
from bulkimport.states import JobState, RowState

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

log = logging.getLogger("bulkimport")

DEFAULT_DB = "bulkimport.db"


class BulkImportGroup(click.Group):
    """Turns a ``BulkImportError`` into one line and its exit code; never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BulkImportError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(int(exc.exit_code))


@click.group(cls=BulkImportGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bulkimport")
def cli() -> None:
    """Load large CSV files of leads into a call-center campaign through the Import API.

    \b
    Try it against the built-in sandbox:
      BULKIMPORT_PASSWORD=secret bulkimport run samples/leads.csv \\
          --config samples/sandbox.toml --sandbox

    Exit codes: 0 all rows done; 1 some rows failed, were rejected or invalid (the report path
    is printed); 2 usage, configuration or unreadable file; 3 the server refused the job
    (resumable); 75 another run holds the database; 130 interrupted (resumable).
    """


cli.add_command(sandbox_command)


# --- shared options --------------------------------------------------------------------------


def common_options(func: F) -> F:
    """``--db``, ``--config``, ``--quiet``, ``--json``: on every job command."""
    decorators = [
        click.option(
            "--db",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="BULKIMPORT_DB",
            default=DEFAULT_DB,
            show_default=True,
            help="Queue database (env BULKIMPORT_DB).",
        ),
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="BULKIMPORT_CONFIG",
            help="TOML profile with any of the settings below (env BULKIMPORT_CONFIG).",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress, only errors."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def setting_options(*groups: str) -> Callable[[F], F]:
    """One option per setting of ``settings.SPECS`` in ``groups`` (all values default to
    "not given", so the environment and the profile can fill them)."""

    def decorate(func: F) -> F:
        for spec in reversed([s for s in SPECS if s.group in groups]):
            help_text = spec.help
            if spec.default not in (None, "", (), False):
                help_text += f" [default: {spec.default}]"
            if not spec.multiple:
                help_text += f" (env {spec.env})"
            if spec.flag:
                option = click.option(
                    spec.option, spec.name, is_flag=True, default=None, help=help_text
                )
            elif spec.multiple:
                option = click.option(
                    spec.option, spec.name, multiple=True, metavar=spec.metavar, help=help_text
                )
            else:
                metavar = spec.metavar or ("|".join(spec.choices) if spec.choices else "TEXT")
                option = click.option(
                    spec.option, spec.name, default=None, metavar=metavar, help=help_text
                )
            func = option(func)
        return func

    return decorate


SEND_GROUPS = ("target", "send", "read", "output")


# --- plumbing --------------------------------------------------------------------------------


def _configure_logging(quiet: bool, log_path: str | None) -> None:
    logger = logging.getLogger("bulkimport")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    if log_path:
        try:
            file_handler = logging.FileHandler(log_path, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--log {log_path}: cannot write ({exc.strerror})") from None
        file_handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
        )
        logger.addHandler(file_handler)
    logger.propagate = False


def _settings(
    options: dict[str, Any],
    config_path: Path | None,
    *,
    stored: dict[str, Any] | None = None,
    need_target: bool = True,
) -> Settings:
    profile = (
        load_profile(config_path, warn=lambda text: click.echo(text, err=True))
        if config_path
        else {}
    )
    return resolve(options, os.environ, profile, stored, need_target=need_target)


def _db_from(db: Path, config_path: Path | None) -> Path:
    """``--db`` as given, or the profile's ``db`` when the option was left at its default."""
    if config_path is not None and str(db) == DEFAULT_DB and "BULKIMPORT_DB" not in os.environ:
        profile = load_profile(config_path)
        if "db" in profile:
            return Path(str(profile["db"]))
    return db


def _password(settings: Settings) -> str:
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    prompt = (lambda text: click.prompt(text, hide_input=True, err=True)) if interactive else None
    return read_password(settings, os.environ, prompt=prompt)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))


@contextlib.asynccontextmanager
async def _queue(db: Path) -> AsyncIterator[Queue]:
    queue = await Queue.open(db)
    try:
        yield queue
    finally:
        await queue.close()


def _finish(summary: JobSummary, *, as_json: bool, quiet: bool) -> None:
    """Print the summary and exit with the code its state calls for."""
    if as_json:
        click.echo(json.dumps(summary.to_json(), ensure_ascii=False))
    elif not quiet:
        click.echo(_summary_line(summary))
    job = summary.job
    state = summary.state
    if state is JobState.STOPPED:
        click.echo(f"Error: {summary.message}; fix it, then: bulkimport resume {job}", err=True)
        sys.exit(int(ExitCode.SERVER_REFUSED))
    if state is JobState.INTERRUPTED:
        click.echo(f"Interrupted; resume with: bulkimport resume {job}", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    if state is JobState.FINISHED and summary.problems:
        click.echo(f"{summary.problems} rows need attention: {summary.report}", err=True)
        sys.exit(int(ExitCode.ROWS_FAILED))


def _summary_line(summary: JobSummary) -> str:
    counts = ", ".join(f"{state.value} {n:,}" for state, n in summary.counts.items() if n)
    line = f"job {summary.job} {summary.state.value}: {summary.total:,} rows ({counts or 'none'})"
    if summary.resent_unknown:
        line += f"; {summary.resent_unknown} resent after an unknown outcome"
    return line


# --- commands --------------------------------------------------------------------------------


def _job_command(
    *,
    db: Path,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
    options: dict[str, Any],
    path: Path | None = None,
    job_id: int | None = None,
    new: bool = False,
    send: bool = True,
    sandbox: bool = False,
) -> None:
    db = _db_from(db, config_path)

    def say(text: str) -> None:
        if not quiet:
            click.echo(text, err=True)

    async def main() -> JobSummary:
        async with _queue(db) as queue:
            stored = None
            resolved_id = job_id
            if path is None:
                job = await (
                    queue.get_job(job_id) if job_id is not None else queue.latest_unfinished_job()
                )
                if job is None:
                    raise ConfigError(f"no unfinished job in {db}; see bulkimport jobs")
                stored, resolved_id = job.settings, job.id
                if job.state is JobState.FINISHED:
                    say(f"job {job.id} is already finished")
                    return await summarize(queue, job.id)
            async with _maybe_sandbox(sandbox, options) as sandbox_options:
                settings = _settings(sandbox_options, config_path, stored=stored)
                _configure_logging(quiet, settings.log)
                password = _password(settings) if send else None
                bars = not quiet and not as_json and sys.stderr.isatty()
                return await run_pipeline(
                    queue,
                    settings=settings,
                    password=password,
                    path=path,
                    job_id=resolved_id,
                    new=new,
                    send=send,
                    progress=Progress(bars=bars),
                    say=say,
                    report_path=Path(settings.report) if settings.report else None,
                )

    summary = _run(main())
    _finish(summary, as_json=as_json, quiet=quiet)


@contextlib.asynccontextmanager
async def _maybe_sandbox(enabled: bool, options: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """With ``--sandbox``: a sandbox on a free port for the length of the job, as the URL."""
    if not enabled:
        yield options
        return
    from bulkimport.sandbox import SandboxConfig, serve_sandbox

    async with serve_sandbox(SandboxConfig(port=0)) as server:
        click.echo(f"sandbox listening on {server.url}", err=True)
        yield {**options, "url": server.url}


@cli.command()
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
    db: Path,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
    new: bool,
    sandbox: bool,
    **options: Any,
) -> None:
    """Read CSV_FILE into a job and send every row.

    Running the same command again resumes the unfinished job for the same file and target.

    \b
    Example:
      export BULKIMPORT_PASSWORD=...   # never an option
      bulkimport run leads.csv --url https://cc.example.com/asterccinterfaces \\
          --org acme --user admin --campaign 12 --rate 50 --map Mobile=phone1
    """
    _job_command(
        db=db,
        config_path=config_path,
        quiet=quiet,
        as_json=as_json,
        options=options,
        path=csv_file,
        new=new,
        sandbox=sandbox,
    )


@cli.command()
@click.argument("csv_file", type=click.Path(path_type=Path))
@common_options
@click.option(
    "--new", is_flag=True, help="Start a new job even if one for this file is unfinished."
)
@setting_options(*SEND_GROUPS)
def stage(
    csv_file: Path,
    db: Path,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
    new: bool,
    **options: Any,
) -> None:
    """Read CSV_FILE into a new job and stop (state ready); send it later with resume.

    \b
    Example:
      bulkimport stage leads.csv --config nightly.toml      # by day
      bulkimport resume --config nightly.toml               # by night
    """
    _job_command(
        db=db,
        config_path=config_path,
        quiet=quiet,
        as_json=as_json,
        options=options,
        path=csv_file,
        new=new,
        send=False,
    )


@cli.command()
@click.argument("job_id", type=int, required=False)
@common_options
@setting_options(*SEND_GROUPS)
def resume(
    job_id: int | None,
    db: Path,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Continue an interrupted, stopped or staged job (the latest unfinished one by default).

    The job's stored settings are used; options given here override them (a fixed --org,
    another --rate). Rows found in flight are sent again and counted as such.

    \b
    Example:
      bulkimport resume 3 --rate 10
    """
    _job_command(
        db=db,
        config_path=config_path,
        quiet=quiet,
        as_json=as_json,
        options=options,
        job_id=job_id,
    )


@cli.command()
@click.argument("job_id", type=int, required=False)
@common_options
def status(
    job_id: int | None, db: Path, config_path: Path | None, quiet: bool, as_json: bool
) -> None:
    """Counts per state, progress and the last errors of a job (the latest by default).

    \b
    Example:
      bulkimport status 3 --json
    """
    db = _db_from(db, config_path)
    if not db.exists():
        raise ConfigError(f"{db}: no such database; run or stage a file first")

    async def main() -> JobSummary:
        async with _queue(db) as queue:
            if job_id is None:
                jobs = await queue.list_jobs()
                if not jobs:
                    raise ConfigError(f"no job in {db}")
                return await summarize(queue, max(jobs, key=lambda j: j.id).id)
            return await summarize(queue, job_id)

    summary = _run(main())
    if as_json:
        click.echo(json.dumps(summary.to_json(), ensure_ascii=False))
        return
    click.echo(f"job {summary.job}: {summary.state.value}")
    click.echo(f"  file    {summary.file}")
    url, org, campaign = summary.target.rsplit("|", 2)
    click.echo(f"  target  {url} (org {org}, campaign {campaign})")
    terminal = sum(n for s, n in summary.counts.items() if s.is_terminal)
    share = 100.0 * terminal / summary.total if summary.total else 100.0
    click.echo(f"  rows    {summary.total:,} ({share:.1f}% settled)")
    for state in RowState:
        click.echo(f"    {state.value:<10} {summary.counts.get(state, 0):>12,}")
    if summary.resent_unknown:
        click.echo(f"  resent after an unknown outcome: {summary.resent_unknown:,}")
    if summary.message:
        click.echo(f"  last stop: {summary.message}")
    if summary.last_errors:
        click.echo("  last errors:")
        for error in summary.last_errors:
            code, detail = error["code"] or "", error["message"] or ""
            click.echo(f"    line {error['line']}: {error['state']} {code} {detail}".rstrip())


@cli.command()
@common_options
def jobs(db: Path, config_path: Path | None, quiet: bool, as_json: bool) -> None:
    """List the jobs in the database.

    \b
    Example:
      bulkimport jobs --db nightly.db
    """
    db = _db_from(db, config_path)
    if not db.exists():
        raise ConfigError(f"{db}: no such database; run or stage a file first")

    async def main() -> list[JobSummary]:
        async with _queue(db) as queue:
            return [await summarize(queue, job.id) for job in await queue.list_jobs()]

    summaries = _run(main())
    if as_json:
        click.echo(json.dumps([s.to_json() for s in summaries], ensure_ascii=False))
        return
    if not summaries:
        click.echo(f"no jobs in {db}")
        return
    click.echo(f"{'job':>5}  {'state':<11} {'rows':>10} {'done':>10} {'problems':>9}  file")
    for s in summaries:
        done = s.counts.get(RowState.DONE, 0) + s.counts.get(RowState.DUPLICATE, 0)
        click.echo(
            f"{s.job:>5}  {s.state.value:<11} {s.total:>10,} {done:>10,} {s.problems:>9,}  {s.file}"
        )


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="bulkimport")
