"""Row, job and remote-import states, as stored in the queue database (the values are the
stored text)."""

from __future__ import annotations

from enum import StrEnum


class RowState(StrEnum):
    """Where one line of the input file stands."""

    PENDING = "pending"  # waiting to be sent (or to be sent again after a transient error)
    IN_FLIGHT = "in_flight"  # claimed by a worker; its outcome is not recorded yet
    DONE = "done"  # the server imported or updated it
    DUPLICATE = "duplicate"  # the server kept its existing record (terminal, not an error)
    REJECTED = "rejected"  # the server refused this row (bad field, missing required field)
    FAILED = "failed"  # transient errors until the attempt limit ran out
    INVALID = "invalid"  # never sent: it failed local validation
    SKIPPED = "skipped"  # unchanged since an earlier job to the same target
    # A call of it may have been processed though no answer came (a timeout, a dropped
    # connection, a proxy's 504) and no answer settled it before its calls ran out: it may be
    # on the server. Terminal, not a row to fix: check the server before sending it again
    # (``retry --unknown``).
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        return self not in (RowState.PENDING, RowState.IN_FLIGHT)

    @property
    def is_problem(self) -> bool:
        """Rows that make a job end with exit code 1 and go into the failed-rows report."""
        return self in (RowState.REJECTED, RowState.FAILED, RowState.INVALID)


class JobState(StrEnum):
    """Where a job stands."""

    READING = "reading"  # the file is being read into the queue (resumable)
    READY = "ready"  # read completely; nothing sent yet (or staged)
    RUNNING = "running"  # a runner is sending (or died while sending)
    FINISHED = "finished"  # every row is in a terminal state
    STOPPED = "stopped"  # a fatal answer stopped it; resumable once the setting is fixed
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM; resumable

    @property
    def is_unfinished(self) -> bool:
        return self is not JobState.FINISHED


class RemoteState(StrEnum):
    """How a remote import ended, as stored."""

    ACCEPTED = "accepted"  # the server took it and answered its import job id
    REFUSED = "refused"  # the server refused it (credentials, file, settings): fix and rerun
    FAILED = "failed"  # no valid answer until the attempts ran out (server down): rerun later


class InvalidReason(StrEnum):
    """Why the reader made no record of a line: the row is ``invalid`` and never sent. The
    value is stored as the row's code and names the group ``check`` reports it in.

    Blank lines (nothing, spaces, or bare delimiters: Excel's empty rows) are no reason: they
    are not records, and are counted instead (``Batch.blank_lines``)."""

    CELLS = "cells"  # more or fewer cells than the header has
    NO_VALUES = "no-values"  # values only in dropped columns: every field that is sent is empty
    PIPE = "pipe"  # a '|' the record format cannot carry (it has no escaping)
    ENCODING = "encoding"  # bytes that do not decode in the file's encoding
    CSV = "csv"  # the CSV parser gave up on the line (a value over its size limit)
    UNCLOSED_QUOTE = "unclosed-quote"  # a quote opened on the line never closes properly
    PHONE_DIGITS_LOST = "phone-digits-lost"  # a phone number in scientific notation (1.38E+10)
    PHONE_UNREPAIRED = "phone-unrepaired"  # Excel's .0 or ' on a phone number, and --no-repair
    TOO_LONG = "too-long"  # a value, line or row past the reader's size limits (reader.limits)
    OTHER_ENCODING = "other-encoding"  # UTF-8 text in a legacy file (GB18030, Big5, cp1252...)
    INCOMPLETE_LINE = "incomplete-line"  # the file's last line, short and with no line end
    NUL = "nul"  # a NUL byte in the line: damaged text (a binary file is refused whole)
    UNREPAIRED = "unrepaired"  # Excel's text formula (="0138...") in a value, and --no-repair
    CONTROL = "control-characters"  # a control character in a value (\x1b[31m, \x07, NUL)
    PHONE_SHORT = "phone-short"  # a phone number far shorter than its column's usual length
    PHONE_LONG = "phone-long"  # a phone number far longer than its column's usual length
    TOTALS_ROW = "totals-row"  # a totals row under the data (合计, Total) with a number
    NOT_A_PHONE = "not-a-phone"  # a phone field holding no phone number: n/a, 无, two numbers
    VALUE_TYPE = "value-type"  # a program's value with no text to send (a list, a dict)


class RepairKind(StrEnum):
    """A mechanical artefact that the reader takes out of a value before sending it (unless
    ``--no-repair``): Excel's marks on a phone number, its text formula on any value, control
    characters around a value; repairs are counted per kind with the job."""

    DECIMAL = "decimal"  # a trailing .0: Excel stored the number as a number
    APOSTROPHE = "apostrophe"  # a leading ': Excel's mark for "this is text"
    TEXT_FORMULA = "text-formula"  # ="0138...": a CRM's way to keep Excel from eating zeros
    CONTROL_PADDING = "control-padding"  # a trailing \r, a form feed around the value

    @property
    def removed(self) -> str:
        """What the repair takes out, for a person: ``.0 removed``."""
        return {
            RepairKind.DECIMAL: ".0 removed",
            RepairKind.APOSTROPHE: "leading ' removed",
            RepairKind.TEXT_FORMULA: 'Excel\'s ="..." removed',
            RepairKind.CONTROL_PADDING: "control characters around it removed",
        }[self]

    @property
    def phone(self) -> bool:
        """Whether the kind is met on phone numbers only."""
        return self in (RepairKind.DECIMAL, RepairKind.APOSTROPHE)


class Allow(StrEnum):
    """What ``--allow`` lets through for a campaign that really wants it: values the reader
    otherwise makes ``invalid`` (the value is the option's word)."""

    SHORT_PHONES = "short-phones"  # phone numbers far shorter than their column's usual
    LONG_PHONES = "long-phones"  # phone numbers far longer than their column's usual
    CONTROL_CHARACTERS = "control-characters"  # control characters inside a value
    TOTALS_ROWS = "totals-rows"  # rows that look like a totals row under the data
    NOT_PHONES = "not-phones"  # phone fields holding no phone number (n/a, 无, letters)


class StopCause(StrEnum):
    """Why a job stopped before it finished; it decides the exit code and the advice."""

    @property
    def is_try_later(self) -> bool:
        """Nothing is wrong with the job: the same command later goes on (exit 75)."""
        return self in (StopCause.OUTAGE, StopCause.WINDOW)

    SIGNAL = "signal"  # Ctrl-C or SIGTERM (interrupted, exit 130)
    FATAL = "fatal"  # the server refused the job's settings (stopped, exit 3)
    NEVER_REACHED = "never-reached"  # the URL never gave an Import answer (stopped, exit 3)
    BUDGET = "budget"  # too many rows rejected: something systematic (stopped, exit 3)
    OUTAGE = "outage"  # the server was unreachable for longer than --max-outage (exit 75)
    READING = "reading"  # reading the file failed midway while sending (interrupted)
    WINDOW = "window"  # the send window (--window) closed (interrupted, exit 75)
    DISK_FULL = "disk-full"  # no room left on the queue's disk (interrupted)
