"""The ``forget`` command: erase one customer from the database (an erasure request)."""

from __future__ import annotations

import json
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
from bulkimport.errors import ExitCode
from bulkimport.jobs.client import Client
from bulkimport.jobs.summary import plural
from bulkimport.storage import Forgotten


@click.command()
@click.option(
    "--key",
    required=True,
    metavar="VALUE",
    help="The value that identifies the customer, usually the phone number.",
)
@common_options
def forget(
    key: str,
    db: Path | str,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
) -> ExitCode:
    """Erase one customer: every row that holds VALUE whole as one of its values (a field
    or a cell), in every job of the database, and what was kept of the customer for
    --skip-unchanged. The jobs' failed-rows reports are written anew without those rows.
    What is erased is overwritten in the database file, not only unlinked.

    What the server holds is the server's: erase it there too. Copies of the original
    file, and a --log file (which names lines, not values), are yours to mind.

    \b
    Example:
      bulkimport forget --key 13800138000 --config nightly.toml
    """
    where = Where(db_from(db, config_path), config_path)
    settings = load_settings({}, config_path, need_target=False)
    configure_logging(quiet, settings)

    async def main() -> tuple[Forgotten, str]:
        async with (
            open_queue(where.db, create=False) as storage,
            Client(storage=storage, on_event=log_event) as client,
        ):
            return await client.forget(key), storage.location

    forgotten, location = run_async(main())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "rows": forgotten.rows,
                    "jobs": list(forgotten.jobs),
                    "latest_records": forgotten.latest_records,
                    "reports": forgotten.reports,
                }
            )
        )
    elif not quiet:
        if not forgotten.rows and not forgotten.latest_records:
            click.echo(f"nothing in {location} holds that value")
        else:
            jobs = ", ".join(map(str, forgotten.jobs))
            text = f"forgot {plural(forgotten.rows, 'row')}"
            if forgotten.jobs:
                text += f" (job{'s' if len(forgotten.jobs) != 1 else ''} {jobs})"
            if forgotten.latest_records:
                text += f" and {plural(forgotten.latest_records, 'latest record')}"
            if forgotten.reports:
                text += f"; {plural(forgotten.reports, 'report')} written anew"
            click.echo(text)
    return ExitCode.OK
