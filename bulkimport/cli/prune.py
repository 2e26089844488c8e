"""The ``prune`` command: keep a nightly database bounded."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from bulkimport.cli.base import (
    Where,
    common_options,
    configure_logging,
    db_from,
    load_settings,
    open_queue,
    run_async,
)
from bulkimport.cli.joblog import log_event
from bulkimport.errors import ConfigError, ExitCode
from bulkimport.jobs.client import Client
from bulkimport.settings import parse_duration
from bulkimport.storage import Job


@click.command()
@click.option(
    "--older-than",
    "older_than",
    metavar="DURATION",
    help="Drop the jobs finished longer ago than this: 30d, 12h, 90m [default: the "
    "profile's prune].",
)
@click.option(
    "--no-compact",
    is_flag=True,
    help="Leave the freed space inside the database, where the next loads reuse it, "
    "instead of giving it back to the file system (which rewrites the database).",
)
@common_options
def prune(
    older_than: str | None,
    no_compact: bool,
    db: Path | str,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
) -> ExitCode:
    """Drop the finished jobs older than DURATION, with their rows and their failed-rows
    reports, and give the space back.

    Unfinished jobs (reading, ready, running, stopped, interrupted) are never pruned, but
    for those a newer job of the same file has superseded. What each customer last received
    is kept, in a few bytes each, so --skip-unchanged goes on working after the rows that
    loaded it are gone. A profile's prune key does the same before every run: a nightly
    database then stays the size of the nights it keeps.

    \b
    Example:
      bulkimport prune --older-than 30d --config nightly.toml
    """
    where = Where(db_from(db, config_path), config_path)
    settings = load_settings({}, config_path, need_target=False)
    configure_logging(quiet, settings)
    if older_than is not None:
        try:
            older_than_s = parse_duration(older_than)
        except ValueError as exc:
            raise ConfigError(f"--older-than: {exc}") from None
    elif settings.output.prune_after_s is not None:
        older_than_s = settings.output.prune_after_s
    else:
        raise ConfigError('give --older-than DURATION (e.g. 30d), or prune = "30d" in the profile')

    async def main() -> tuple[list[Job], int, str]:
        async with (
            open_queue(where.db, create=False) as storage,
            Client(storage=storage, on_event=log_event) as client,
        ):
            pruned = await client.prune(older_than_s)
            freed = await client.compact() if pruned and not no_compact else 0
            return pruned, freed, storage.location

    pruned, freed, location = run_async(main())
    cut = time.strftime("%Y-%m-%d %H:%M", time.localtime(time.time() - older_than_s))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "pruned": [job.id for job in pruned],
                    "finished_before": cut,
                    "bytes_freed": freed,
                }
            )
        )
    elif not quiet:
        if not pruned:
            click.echo(f"no job finished before {cut} in {location}: nothing to prune")
        else:
            ids = ", ".join(str(job.id) for job in pruned)
            jobs = f"{len(pruned)} job{'s' if len(pruned) != 1 else ''}"
            text = f"pruned {jobs} finished before {cut} ({ids})"
            if not no_compact:
                text += f"; {freed / 1e6:,.1f} MB given back"
            click.echo(text)
    return ExitCode.OK
