"""The ``check`` command: a dry run over a CSV file that sends nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from bulkimport.campaign import load_schema
from bulkimport.check import (
    DEFAULT_EXAMPLE_LIMIT,
    DEFAULT_MAX_LENGTH,
    TEXT_EXAMPLES,
    CheckOptions,
    GetLimit,
    check_file,
    render_text,
    select_campaign,
)
from bulkimport.cli.base import (
    SEND_GROUPS,
    common_options,
    configure_logging,
    load_settings,
    setting_options,
    show_bars,
)
from bulkimport.errors import ExitCode
from bulkimport.jobs.pipeline import reader_options
from bulkimport.reader import file_size


@click.command()
@click.argument("csv_file", type=click.Path(path_type=Path))
@common_options
@click.option(
    "--schema",
    "schema_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A campaign schema (the sandbox's format): also report fields the campaign does not "
    "have and required fields that are missing. --campaign chooses the campaign.",
)
@click.option(
    "--max-length",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_LENGTH,
    show_default=True,
    help="Report values longer than this many characters.",
)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help=f"List every problem (default: 10 per group, {DEFAULT_EXAMPLE_LIMIT} with --json).",
)
@setting_options(*SEND_GROUPS)
def check(
    csv_file: Path,
    db: Path | str,
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
    schema_path: Path | None,
    max_length: int,
    show_all: bool,
    **options: Any,
) -> ExitCode:
    """Read CSV_FILE as run would, and report every problem with its line number.

    Shows the detected encoding and delimiter, the columns and the fields they map to, three
    encoded records, then the problems in groups: invalid lines, numbers Excel has mangled,
    empty phone numbers, phone numbers repeated in the file, values that are too long and,
    with --schema, fields the campaign does not have. What would make run refuse every
    record is a problem too, with its fix: no column mapped to the phone field (and where one
    is), no column named as a field of the vendor's campaign (and the --map that names them),
    records too long for a GET (--method get, --max-get-bytes). Nothing is sent and no
    password is needed; it takes the same options as run, so the same command line can check
    first.

    Exit codes: 0 no problems, 1 problems found, 2 the file cannot be read.

    \b
    Example:
      bulkimport check leads.csv --map Mobile=phone1 --map Notes=
      bulkimport check leads.csv --schema campaign.toml --campaign 12 --json
    """
    settings = load_settings(options, config_path, need_target=False)
    configure_logging(quiet, settings)
    campaign = None
    if schema_path is not None:
        campaign = select_campaign(load_schema(schema_path), settings.target.campaign or None)
    check_options = CheckOptions(
        phone_field=settings.target.options.phone_field,
        campaign=campaign,
        max_length=max_length,
        example_limit=None if show_all else DEFAULT_EXAMPLE_LIMIT,
        get_limit=GetLimit.of(settings),
    )
    bar: Any = None
    if show_bars(quiet, as_json):
        bar = tqdm(
            total=file_size(csv_file),
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc="checking",
            leave=False,
            dynamic_ncols=True,
        )

    def progress(offset: int) -> None:
        bar.update(offset - bar.n)

    try:
        report = check_file(
            csv_file,
            reader_options(settings),
            check_options,
            on_progress=progress if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        click.echo(render_text(report, examples=None if show_all else TEXT_EXAMPLES, quiet=quiet))
    return ExitCode.OK if report.clean else ExitCode.ROWS_FAILED
