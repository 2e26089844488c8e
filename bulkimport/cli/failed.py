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
from bulkimport.errors import ExitCode
from bulkimport.jobs.client import Client
from bulkimport.jobs.report import parse_states


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
) -> ExitCode:
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

    async def main() -> tuple[int, Path, int]:
        async with open_queue(db, read_only=True) as storage, Client(storage=storage) as client:
            job = (await client.status(job_id)).job
            path, count = await client.write_report(job, output, wanted)
            return job, path, count

    resolved, path, count = run_async(main())
    if as_json:
        click.echo(json.dumps({"job": resolved, "rows": count, "file": str(path)}))
    elif not quiet:
        click.echo(f"job {resolved}: {count:,} rows written to {path}")
    return ExitCode.OK


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
) -> ExitCode:
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
    return run_job_command(
        db=db,
        config_path=config_path,
        quiet=quiet,
        as_json=as_json,
        options=options,
        job_id=job_id,
        rejected=rejected,
    )
