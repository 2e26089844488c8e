"""The failed-rows commands: export them (``failed``), send them again (``retry``)."""

from __future__ import annotations

import codecs
import io
import json
import sys
from pathlib import Path
from typing import Any

import click

from bulkimport.cli.base import (
    SEND_GROUPS,
    Where,
    common_options,
    db_from,
    open_queue,
    run_async,
    setting_options,
)
from bulkimport.cli.jobs import find_job, run_job_command
from bulkimport.errors import ExitCode
from bulkimport.jobs.client import Client
from bulkimport.jobs.report import parse_states
from bulkimport.jobs.summary import plural


@click.command()
@click.argument("job_id", type=int, required=False)
@click.option(
    "-o",
    "--output",
    metavar="FILE|-",
    help="Where to write the CSV, - for standard output [default: "
    "<database>-job-N-failed.csv next to the database].",
)
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="failed|rejected|invalid|unknown",
    help="Only rows in this state (repeatable, or comma-separated) [default: the first "
    "three; unknown, the rows that may be on the server, only when named].",
)
@common_options
def failed(
    job_id: int | None,
    output: str | None,
    states: tuple[str, ...],
    db: Path | str,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
) -> ExitCode:
    """Export the rows of a job (the latest by default) that need a person: failed,
    rejected or invalid (--state unknown: those that may be on the server, to check there).

    The CSV holds the file's own columns in their order, then _extra, _line, _state, _code
    and _message, in UTF-8 (with a BOM, for Excel) whatever the original encoding. A row
    with more cells than the header keeps the others in _extra; one with fewer says so
    there. Fix the rows in it and give it to run as is: the _ columns are dropped when it is
    read, and a row whose _extra is not empty stays invalid until a person empties it.

    \b
    Example:
      bulkimport failed 3 -o fix-me.csv --state rejected --state invalid
      # edit fix-me.csv, then:
      bulkimport run fix-me.csv --config nightly.toml
      bulkimport failed 3 -o - | less         # to standard output
    """
    wanted = parse_states(states)
    where = Where(db_from(db, config_path), config_path)
    to_stdout = output == "-"

    async def main() -> tuple[int, str, int]:
        async with open_queue(where.db, read_only=True) as storage:
            if job_id is not None:
                await find_job(storage, job_id, where)
            async with Client(storage=storage) as client:
                job = (await client.status(job_id)).job
                if to_stdout:
                    # The same bytes as a file: UTF-8 with a BOM, so that a redirection is
                    # recognised as a report when it is loaded again.
                    sys.stdout.flush()
                    binary = sys.stdout.buffer
                    binary.write(codecs.BOM_UTF8)
                    out = io.TextIOWrapper(binary, encoding="utf-8", newline="")
                    try:
                        count = await client.write_report_to(job, out, wanted)
                    finally:
                        out.flush()
                        out.detach()
                    return job, "-", count
                path, count = await client.write_report(job, output, wanted)
                return job, str(path), count

    resolved, path, count = run_async(main())
    if as_json and not to_stdout:
        click.echo(json.dumps({"job": resolved, "rows": count, "file": path}))
    elif not quiet:
        where_to = "standard output" if to_stdout else path
        click.echo(f"job {resolved}: {plural(count, 'row')} written to {where_to}", err=to_stdout)
    return ExitCode.OK


@click.command()
@click.argument("job_id", type=int)
@click.option(
    "--rejected",
    is_flag=True,
    help="Also send the rejected rows again (after the campaign's fields were fixed).",
)
@click.option(
    "--unknown",
    is_flag=True,
    help="Also send again the rows that may be on the server (unknown: no answer came); "
    "check the server first. Safe with --dupway skip: a duplicate answer then counts done.",
)
@common_options
@setting_options(*SEND_GROUPS)
def retry(
    job_id: int,
    rejected: bool,
    unknown: bool,
    db: Path | str,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
    **options: Any,
) -> ExitCode:
    """Put the failed rows of JOB_ID back to pending, with their attempts reset, and send
    them; with --rejected, the rejected rows too; with --unknown, those that may be on the
    server.

    Failed rows ran out of attempts on transient errors (server down, busy); rejected rows
    were refused by the server and only succeed once the campaign changed; unknown rows got
    no answer (timeouts) and may have been imported: check the server before sending them
    again. Invalid rows were
    never sendable: export them with failed, fix them, and run the fixed file. The job's
    stored settings are used; options given here override them.

    \b
    Example:
      bulkimport retry 3 --rate 5
      bulkimport retry 3 --rejected
      bulkimport retry 3 --unknown --dupway skip
    """
    return run_job_command(
        db=db,
        config_path=config_path,
        quiet=quiet,
        as_json=as_json,
        options=options,
        job_id=job_id,
        rejected=rejected,
        unknown=unknown,
    )
