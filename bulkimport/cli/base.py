"""What every command shares: option decorators, settings, logging, the queue, the summary."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from bulkimport.cli.joblog import ConsoleFilter, formatter_for
from bulkimport.errors import BulkImportError, ConfigError, ExitCode, Interrupted, TryLater
from bulkimport.jobs.events import event
from bulkimport.jobs.summary import JobSummary, plural
from bulkimport.portable import create_private, readable_by_others
from bulkimport.settings import SPECS, Settings, load_profile, read_password, resolve
from bulkimport.states import RowState
from bulkimport.storage import Storage, is_postgres_url, open_storage, without_password

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

DEFAULT_DB = "bulkimport.db"


class BulkImportGroup(click.Group):
    """The one exit path of the command line.

    A command returns its ``ExitCode`` (or nothing, for 0); a ``BulkImportError`` becomes
    one line on stderr and its exit code, never a traceback. Subcommands are imported when
    used (``commands`` maps a name to ``module:attribute``), so that ``bulkimport run`` does
    not load the sandbox's web server.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = self._lazy.get(cmd_name)
        if where is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = where.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            code = super().invoke(ctx)
        except KeyboardInterrupt:
            # Ctrl-C outside a job (check, a prompt): interrupted, not "problems found".
            click.echo("\nInterrupted", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))
        except BulkImportError as exc:
            if not isinstance(exc, TryLater):
                click.echo(f"Error: {exc}", err=True)
            elif not ctx.meta.get(QUIET_KEY):
                # Not a failure: the same command later goes on (exit 75). Under --quiet
                # nothing, since cron mails whatever is printed; the exit code and the
                # --log file say it.
                click.echo(try_later_line(str(exc)), err=True)
            # Also in the --log file, if one is open: cron's only record of why it ended.
            logger = logging.getLogger("bulkimport")
            if logger.handlers:
                logger.error(
                    "%s", exc, extra=event("error", file_only=True, exit_code=int(exc.exit_code))
                )
            ctx.exit(int(exc.exit_code))
        if code:
            ctx.exit(int(code))
        return code


#: ``ctx.meta`` key (shared by every nested context) holding whether ``--quiet`` was given.
QUIET_KEY = "bulkimport.quiet"


def _remember_quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    ctx.meta[QUIET_KEY] = value
    return value


def try_later_line(what: str) -> str:
    """How a "try later" (exit 75) is said: what happened, not as an error."""
    return f"try later (exit 75): {what}"


def try_later_runs_text(runs: int, since: float | None) -> str:
    """``ended "try later" 4 runs in a row, since 2026-12-01 06:00`` (the first one's end)."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(since)) if since is not None else None
    if runs == 1:
        return 'the last run ended "try later"' + (f", at {when}" if when else "")
    return f'ended "try later" {runs} runs in a row' + (f", since {when}" if when else "")


@dataclass(frozen=True)
class Where:
    """What locates a job for a later command: the database and the profile as given."""

    db: Path | str  # a SQLite file, or a PostgreSQL URL (``is_postgres_url``)
    config_path: Path | None

    def command(self, name: str, *args: object) -> str:
        """``bulkimport NAME ARGS`` with the options that find the same database again (a
        URL without its password: ``PGPASSWORD`` or ``~/.pgpass`` gives it)."""
        words = ["bulkimport", name, *(shlex.quote(str(arg)) for arg in args)]
        if self.config_path is not None:
            words += ["--config", shlex.quote(str(self.config_path))]
        if str(self.db) != DEFAULT_DB or "BULKIMPORT_DB" in os.environ:
            words += ["--db", shlex.quote(shown_db(self.db))]
        return " ".join(words)


def shown_db(db: Path | str) -> str:
    """``--db`` as it may be shown: a URL without its password."""
    return without_password(db) if isinstance(db, str) else str(db)


def _db_option(_ctx: click.Context, _param: click.Parameter, value: str) -> Path | str:
    """``--db`` (or ``BULKIMPORT_DB``): a PostgreSQL URL stays text (``Path`` would make
    its ``//`` one ``/``), anything else is a file."""
    return value if is_postgres_url(value) else Path(value)


# --- shared options --------------------------------------------------------------------------


def common_options(func: F) -> F:
    """``--db``, ``--config``, ``--quiet``, ``--json``: on every job command."""
    decorators = [
        click.option(
            "--db",
            envvar="BULKIMPORT_DB",
            default=DEFAULT_DB,
            show_default=True,
            callback=_db_option,
            metavar="FILE|URL",
            help="Queue database: a file, or postgresql://user@host/dbname (env BULKIMPORT_DB).",
        ),
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="BULKIMPORT_CONFIG",
            help="TOML profile with any of the settings below (env BULKIMPORT_CONFIG).",
        ),
        click.option(
            "--quiet",
            "-q",
            is_flag=True,
            callback=_remember_quiet,
            help='No progress, only errors ("try later", exit 75, says nothing).',
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def setting_options(*groups: str, exclude: Collection[str] = ()) -> Callable[[F], F]:
    """One option per setting of ``settings.SPECS`` in ``groups``, but those named in
    ``exclude`` (all values default to "not given", so the environment and the profile can
    fill them)."""

    def decorate(func: F) -> F:
        wanted = [s for s in SPECS if s.group in groups and s.name not in exclude]
        for spec in reversed(wanted):
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


def configure_logging(quiet: bool, settings: Settings | None = None, *, bars: bool = False) -> None:
    """Messages to stderr (warnings only when quiet); with ``--log``, every event to the file
    in ``--log-format``. ``bars``: a progress bar shows progress, so its lines stay off stderr."""
    logger = logging.getLogger("bulkimport")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    console.addFilter(ConsoleFilter(bars=bars, quiet=quiet))
    logger.addHandler(console)
    log_path = settings.output.log if settings is not None else None
    if settings is not None and log_path:
        try:
            create_private(log_path)  # the log names files, rows and servers: the owner's alone
            file_handler: logging.Handler = QuietFileHandler(log_path, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--log {log_path}: cannot write ({exc.strerror})") from None
        file_handler.setFormatter(formatter_for(settings.output.log_format))
        logger.addHandler(file_handler)
    logger.propagate = False


class QuietFileHandler(logging.FileHandler):
    """The ``--log`` file. A record it cannot write (a full disk) costs one warning on
    stderr, once, not a traceback per record: the job goes on, and its own error says what
    stopped it."""

    _warned = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self._warned:
            self._warned = True
            error = sys.exc_info()[1]
            reason = getattr(error, "strerror", None) or error
            sys.stderr.write(f"warning: cannot write to the log {self.baseFilename} ({reason})\n")


def load_settings(
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


def db_from(db: Path | str, config_path: Path | None) -> Path | str:
    """``--db`` as given, or the profile's ``db`` when the option was left at its default.
    A URL holding a password is warned of, once: the password belongs in ``PGPASSWORD`` or
    ``~/.pgpass``, where no process list, shell history or profile shows it."""
    if config_path is not None and str(db) == DEFAULT_DB and "BULKIMPORT_DB" not in os.environ:
        profile = load_profile(config_path)
        if "db" in profile:
            given = str(profile["db"])
            db = given if is_postgres_url(given) else Path(given)
    if isinstance(db, str) and without_password(db) != db:
        click.echo(
            f"warning: the --db URL holds a password; give it with PGPASSWORD or ~/.pgpass "
            f"instead: --db {shlex.quote(without_password(db))}",
            err=True,
        )
    return db


def show_bars(quiet: bool, as_json: bool) -> bool:
    """Progress bars only for a person watching a terminal."""
    return not quiet and not as_json and sys.stderr.isatty()


def password_for(settings: Settings) -> str:
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    prompt = (lambda text: click.prompt(text, hide_input=True, err=True)) if interactive else None
    return read_password(settings, os.environ, prompt=prompt)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """The command line's only ``asyncio.run``; a second Ctrl-C ends it as ``Interrupted``."""
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        raise Interrupted("interrupted") from None


@contextlib.asynccontextmanager
async def open_queue(
    db: Path | str, *, read_only: bool = False, create: bool = True
) -> AsyncIterator[Storage]:
    """The queue database, a file or a PostgreSQL URL; ``read_only`` (status, jobs, failed)
    or not ``create`` (resume, retry: a wrong path is an error, not a new empty database)."""
    storage = await open_storage(db, read_only=read_only, create=create)
    if not read_only and isinstance(db, Path) and readable_by_others(db):
        click.echo(
            f"{db} can be read by other users of this machine, and it holds leads: "
            f"chmod 600 {db} (and its -wal and -shm)",
            err=True,
        )
    try:
        yield storage
    finally:
        await storage.close()


def finish(summary: JobSummary, *, as_json: bool, quiet: bool, where: Where) -> ExitCode:
    """Print the summary, say what to do next (with the options that locate the job), and
    give the exit code its state calls for."""
    if as_json:
        click.echo(json.dumps(summary.to_json(), ensure_ascii=False))
    elif not quiet:
        click.echo(summary_line(summary))
    code = summary.exit_code
    resume = where.command("resume", summary.job)
    if code is ExitCode.SERVER_REFUSED:
        click.echo(f"Error: {summary.message}; fix it, then: {resume}", err=True)
    elif code is ExitCode.TRY_LATER and not quiet:
        # Not an error, and nothing at all under --quiet: cron mails whatever is printed,
        # and a window that closes is every night's news; the exit code, the --log file and
        # status (how many runs in a row) tell it.
        line = try_later_line(f"{summary.message}: {resume}")
        if summary.try_later_runs > 1:
            line += f" ({try_later_runs_text(summary.try_later_runs, summary.try_later_since)})"
        click.echo(line, err=True)
    elif code is ExitCode.INTERRUPTED:
        click.echo(f"Interrupted; resume with: {resume}", err=True)
    elif code is ExitCode.ROWS_FAILED:
        for line in attention_lines(summary, where):
            click.echo(line, err=True)
    return code


def attention_lines(summary: JobSummary, where: Where) -> list[str]:
    """Where the rows that need a person are, and the commands that deal with them: the
    rows to fix, then those that may be on the server (to check there, not to fix)."""
    lines = _problem_lines(summary, where) if summary.problems else []
    unsure = summary.maybe_on_server
    if unsure:
        head = (
            f"{plural(unsure, 'row')} may be on the server (unknown: no answer came): check "
            "the server before sending them again"
        )
        if summary.unknown_report is not None:
            lines.append(f"{head}: {summary.unknown_report}")
        else:
            listing = where.command("failed", summary.job, "--state", "unknown", "-o", "FILE")
            lines.append(f"{head}; list them with: {listing}")
        lines.append(
            "  send them again (safe with --dupway skip): "
            f"{where.command('retry', summary.job, '--unknown')}"
        )
    return lines


def _problem_lines(summary: JobSummary, where: Where) -> list[str]:
    problems = [
        f"{summary.counts[state]:,} {state.value}"
        for state in RowState
        if state.is_problem and summary.counts.get(state)
    ]
    needs = "needs" if summary.problems == 1 else "need"
    head = f"{plural(summary.problems, 'row')} {needs} attention ({', '.join(problems)})"
    if summary.report is None:
        return [f"{head}; list them with: {where.command('failed', summary.job, '-o', 'FILE')}"]
    lines = [
        f"{head}: {summary.report}",
        f"  fix them there, then load the file as it is: {where.command('run', summary.report)}",
    ]
    if summary.counts.get(RowState.FAILED):
        lines.append(f"  or send the failed ones again: {where.command('retry', summary.job)}")
    return lines


def summary_line(summary: JobSummary) -> str:
    """``job 3 finished: 1,204 rows (done 1,200, invalid 4); 3 blank lines skipped``."""
    counts = ", ".join(f"{state.value} {n:,}" for state, n in summary.counts.items() if n)
    line = (
        f"job {summary.job} {summary.state.value}: "
        f"{plural(summary.total, 'row')} ({counts or 'none'})"
    )
    if summary.resent_unknown:
        line += f"; {summary.resent_unknown:,} resent after an unknown outcome"
    for note in summary.reading_notes():
        line += f"; {note}"
    return line
