"""The errors bulkimport raises, and the exit code each one maps to.

    BulkImportError            any error the tool reports in one line (exit 2)
    ├── ConfigError            a setting is missing or wrong (exit 2)
    ├── InputError             the CSV file cannot be read at all (exit 2)
    ├── RecordError            one record cannot be encoded (the row becomes `invalid`)
    ├── DatabaseError          the queue database cannot be used (exit 2)
    │   └── RunnerBusy         another runner holds the database (exit 75, try later)
    ├── ServerRefused          the server gave a fatal answer; the job stopped (exit 3)
    └── Interrupted            Ctrl-C or SIGTERM; the job can be resumed (exit 130)

The command line turns each into one line on stderr and its exit code; library users
catch ``BulkImportError``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the command line (see README "Exit codes")."""

    OK = 0  # every row done, duplicate or skipped
    ROWS_FAILED = 1  # finished, but some rows failed, were rejected or invalid
    USAGE = 2  # usage or configuration error, unreadable file
    SERVER_REFUSED = 3  # a fatal answer stopped the job; resumable
    RUNNER_BUSY = 75  # another runner holds the database (EX_TEMPFAIL: try later)
    INTERRUPTED = 130  # Ctrl-C / SIGTERM; resumable


class BulkImportError(Exception):
    """Base class: a problem the tool reports in one line."""

    exit_code: ExitCode = ExitCode.USAGE


class ConfigError(BulkImportError):
    """A setting is missing, malformed or contradictory."""


class InputError(BulkImportError):
    """The input file cannot be read at all (missing, a directory, binary, empty, no header)."""


class RecordError(BulkImportError):
    """One record cannot be turned into an Import `context` (the reason is the message)."""


class DatabaseError(BulkImportError):
    """The queue database cannot be opened, migrated or used."""


class RunnerBusy(DatabaseError):
    """Another process is already reading into or sending from this database."""

    exit_code = ExitCode.RUNNER_BUSY


class ServerRefused(BulkImportError):
    """The server answered with a fatal code (credentials, org, campaign): the job stopped."""

    exit_code = ExitCode.SERVER_REFUSED


class Interrupted(BulkImportError):
    """The job was interrupted by a signal; it can be resumed."""

    exit_code = ExitCode.INTERRUPTED
