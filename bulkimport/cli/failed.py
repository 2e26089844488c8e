"""The failed-rows commands: export them (``failed``), send them again (``retry``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bulkimport.cli.base import (
    SEND_GROUPS,
    common_options,
    db_from,
    open_queue,
    run_async,
    setting_options,
)
from bulkimport.cli.jobs import run_job_command
from bulkimport.errors import ConfigError
from bulkimport.jobs.report import default_report_path, parse_states, write_report
from bulkimport.states import RowState


@click.command()
@click.argument("job_id", type=int, required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the CSV [default: job-N-failed.csv next to the database].",
)
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="failed|rejected|invalid",
    help="Only rows in this state (repeatable, or comma-separated) [default: all three].",
)
@common_options
def failed(
    job_id: int | None,
    output: Path | None,
    states: tuple[str, ...],
    db: Path,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Export the rows of a job (the latest by default) that need a person: failed,
    rejected or invalid.

    The CSV holds the file's own columns in their order, then _line, _state, _code and
    _message, in UTF-8 whatever the original encoding. Fix the rows in it and give it to run
    as is: the four _ columns are dropped when it is read.

    \b
    Example:
      bulkimport failed 3 -o fix-me.csv --state rejected --state invalid
      # edit fix-me.csv, then:
      bulkimport run fix-me.csv --config nightly.toml
    """
    wanted = parse_states(states)
    db = db_from(db, config_path)
    if not db.exists():
        raise ConfigError(f"{db}: no such database; run or stage a file first")

    async def main() -> tuple[int, Path, int]:
        async with open_queue(db) as queue:
            resolved = job_id
            if resolved is None:
                jobs = await queue.jobs.list()
                if not jobs:
                    raise ConfigError(f"no job in {db}")
                resolved = jobs[-1].id
            path = output or default_report_path(db, resolved)
            job = await queue.jobs.get(resolved)
            return resolved, path, await write_report(queue.reports, job, path, wanted)

    resolved, path, count = run_async(main())
    if as_json:
        click.echo(json.dumps({"job": resolved, "rows": count, "file": str(path)}))
    elif not quiet:
        click.echo(f"job {resolved}: {count:,} rows written to {path}")


@click.command()
@click.argument("job_id", type=int)
@click.option(
    "--rejected",
    is_flag=True,
    help="Also send the rejected rows again (after the campaign's fields were fixed).",
)
@common_options
@setting_options(*SEND_GROUPS)
def retry(
    job_id: int,
    rejected: bool,
    db: Path,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Put the failed rows of JOB_ID back to pending, with their attempts reset, and send
    them; with --rejected, the rejected rows too.

    Failed rows ran out of attempts on transient errors (server down, timeouts); rejected rows
    were refused by the server and only succeed once the campaign changed. Invalid rows were
    never sendable: export them with failed, fix them, and run the fixed file. The job's
    stored settings are used; options given here override them.

    \b
    Example:
      bulkimport retry 3 --rate 5
      bulkimport retry 3 --rejected
    """
    states = {RowState.FAILED, RowState.REJECTED} if rejected else {RowState.FAILED}
    run_job_command(
        db=db,
        config_path=config_path,
        quiet=quiet,
        as_json=as_json,
        options=options,
        job_id=job_id,
        retry_states=frozenset(states),
    )
