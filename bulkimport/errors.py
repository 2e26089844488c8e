"""The errors bulkimport raises, and the exit code each one maps to.

    BulkImportError            any error the tool reports in one line (exit 2)
    ├── ConfigError            a setting is missing or wrong (exit 2)
    ├── InputError             the input file cannot be read at all (exit 2)
    ├── RecordError            one record cannot be encoded (the row becomes `invalid`)
    ├── DatabaseError          the queue database cannot be used (exit 2)
    │   └── DiskFull           no room left on its disk; the job stays resumable
    ├── TryLater               temporary: nothing is wrong with the job (exit 75, resumable)
    │   ├── RunnerBusy         another runner holds the database
    │   └── ServerUnavailable  the server did not answer for longer than --max-outage
    ├── ServerRefused          the server refused the job; it stopped (exit 3, resumable)
    └── Interrupted            Ctrl-C or SIGTERM; the job can be resumed (exit 130)

The command line turns each into one line on stderr and its exit code; library users
catch ``BulkImportError``. An error about one job names it (``job``).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the command line (see README "Exit codes")."""

    OK = 0  # every row done, duplicate or skipped
    # finished, but some rows failed, were rejected or invalid, or may be on the server
    ROWS_FAILED = 1
    USAGE = 2  # usage or configuration error, unreadable file
    SERVER_REFUSED = 3  # the server refused the job; resumable
    TRY_LATER = 75  # EX_TEMPFAIL: another runner, an outage, the send window; resumable
    INTERRUPTED = 130  # Ctrl-C / SIGTERM; resumable


class BulkImportError(Exception):
    """Base class: a problem the tool reports in one line."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, job: int | None = None) -> None:
        super().__init__(message)
        self.job = job


class ConfigError(BulkImportError):
    """A setting is missing, malformed or contradictory."""


class InputError(BulkImportError):
    """The input file cannot be read at all (missing, a directory, binary, empty, no header)."""


class RecordError(BulkImportError):
    """One record cannot be turned into an Import `context` (the reason is the message)."""


class DatabaseError(BulkImportError):
    """The queue database cannot be opened, migrated or used."""


class DiskFull(DatabaseError):
    """The disk holding the queue database (or the report) is full: nothing committed is
    lost, and the job resumes once there is room again."""


class TryLater(BulkImportError):
    """Nothing is wrong with the job, but it cannot go on now; the same command later will."""

    exit_code = ExitCode.TRY_LATER


class RunnerBusy(TryLater):
    """Another process is already reading into or sending from this database."""


class ServerUnavailable(TryLater):
    """The server did not answer for longer than ``--max-outage``: the job waits for a later
    run (nothing was held against its rows)."""


class WindowClosed(TryLater):
    """The send window (``--window``) closed: the job goes on in the next one."""


class ServerRefused(BulkImportError):
    """The server refused the job (a fatal answer, a URL that never answered, a spent error
    budget): it stopped, and resumes once the setting is fixed."""

    exit_code = ExitCode.SERVER_REFUSED


class Interrupted(BulkImportError):
    """The job was interrupted by a signal; it can be resumed."""

    exit_code = ExitCode.INTERRUPTED
