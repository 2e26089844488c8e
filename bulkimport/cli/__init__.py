"""The ``bulkimport`` command line: thin click commands over the library (``Client``).

Each command resolves its settings, calls the library, prints, and returns its exit code;
errors from the library become one line on stderr and the documented exit code
(``base.BulkImportGroup``, the one exit path). Commands are imported when used.
"""

from __future__ import annotations

import click

from bulkimport import __version__
from bulkimport.cli.base import BulkImportGroup
from bulkimport.portable import printable_streams

COMMANDS = {
    "run": "bulkimport.cli.jobs:run",
    "stage": "bulkimport.cli.jobs:stage",
    "resume": "bulkimport.cli.jobs:resume",
    "status": "bulkimport.cli.jobs:status",
    "jobs": "bulkimport.cli.jobs:jobs",
    "check": "bulkimport.cli.check:check",
    "failed": "bulkimport.cli.failed:failed",
    "retry": "bulkimport.cli.failed:retry",
    "prune": "bulkimport.cli.prune:prune",
    "forget": "bulkimport.cli.forget:forget",
    "remote": "bulkimport.cli.remote:remote",
    "sandbox": "bulkimport.cli.sandbox:sandbox_command",
}


@click.group(
    cls=BulkImportGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="bulkimport")
def cli() -> None:
    """Load large CSV files of leads into a call-center campaign through the Import API.

    \b
    Try it against the built-in sandbox:
      BULKIMPORT_PASSWORD=secret bulkimport run samples/leads.csv \\
          --config samples/sandbox.toml --sandbox

    Exit codes: 0 all rows done; 1 some rows failed, were rejected or invalid (the report path
    is printed); 2 usage, configuration, an unreadable file, or a database that cannot be
    used (a full disk: resumable once there is room); 3 the server refused the job
    (resumable); 75 try later: another run holds the database (resumable); 130 interrupted
    (resumable).
    """


def main() -> None:
    """Console-script entry point."""
    printable_streams()
    cli(prog_name="bulkimport")
