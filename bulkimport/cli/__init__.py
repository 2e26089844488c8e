"""The ``bulkimport`` command line: thin click commands over ``pipeline`` and ``queue``.

Each command resolves its settings, opens the queue and calls one implementation; errors
from the library become one line on stderr and the documented exit code.
"""

from __future__ import annotations

import click

from bulkimport import __version__
from bulkimport.cli.base import BulkImportGroup
from bulkimport.cli.check import check
from bulkimport.cli.failed import failed, retry
from bulkimport.cli.jobs import jobs, resume, run, stage, status
from bulkimport.cli.remote import remote
from bulkimport.sandbox.cli import sandbox_command


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


for command in (run, stage, resume, check, status, jobs, failed, retry, remote, sandbox_command):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="bulkimport")
