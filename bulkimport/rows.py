"""Plain values that pass between the reader, the storage and the dispatcher."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from bulkimport.states import InvalidReason, RepairKind, RowState

HEAD_BYTES = 64 * 1024
#: The columns a failed-rows report adds after the file's own: the reader drops them, so a
#: fixed report is read back as is. ``_extra`` holds the cells of a row that fit no column
#: (or says how many were missing): a row whose ``_extra`` is not empty stays invalid.
REPORT_COLUMNS = ("_extra", "_line", "_state", "_code", "_message")

#: What makes a spreadsheet take a cell for a formula or a command (OWASP's CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: The mark a report puts before such a cell; reading a report back takes it off again.
INERT_MARK = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]+)?")


def inert(cell: str) -> str:
    """``cell`` as a report writes it: a leading ``'`` before a value a spreadsheet would run
    as a formula (``=HYPERLINK(…)``, ``@SUM(…)``, ``-2+3``), and before one that starts with
    the mark itself, so that reading it back (``revive``, which the reader applies to every
    cell of a report) gives exactly the value. A plain number (``-2``, ``+8613800138000``)
    stays as it is: a spreadsheet shows it, runs nothing."""
    if cell.startswith(INERT_MARK) or (
        cell.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(cell)
    ):
        return INERT_MARK + cell
    return cell


def revive(cell: str) -> str:
    """The value ``inert`` wrote as ``cell``."""
    if cell.startswith(INERT_MARK) and (
        cell[1:].startswith(INERT_MARK) or cell[1:].startswith(FORMULA_STARTS)
    ):
        return cell[1:]
    return cell


class Repair(NamedTuple):
    """A value the reader repaired before sending it: the field, what was taken out, and the
    value as it was in the file."""

    field: str
    kind: RepairKind
    original: str


#: No repairs (the default of ``Batch.repairs``).
NO_REPAIRS: Mapping[RepairKind, int] = MappingProxyType({})


class NewRow(NamedTuple):
    """One record of the input file, ready to be stored.

    ``state`` is ``PENDING`` (``record`` holds the encoded context) or ``INVALID`` (``record``
    is ``None``; ``reason`` says why, ``message`` says it to a person, in one line). ``cells``
    are the record's cells in file order, as they are sent (values trimmed unless
    ``--keep-spaces``, phone numbers repaired), so that a report can give the row back;
    ``repairs`` says what was repaired in a pending row.
    """

    line: int
    state: RowState
    record: str | None
    cells: tuple[str, ...]
    reason: InvalidReason | None = None
    message: str | None = None
    repairs: tuple[Repair, ...] = ()


class Batch(NamedTuple):
    """Consecutive rows, with where the next record starts (byte offset and line number).

    ``blank_lines``: the lines among them that are not records (empty, spaces, or bare
    delimiters); with the rows, they account for every line up to ``next_line``.
    ``repairs``: how many values of the rows were repaired, per kind (kinds with none left
    out).
    """

    rows: list[NewRow]
    end_offset: int
    next_line: int
    blank_lines: int = 0
    repairs: Mapping[RepairKind, int] = NO_REPAIRS


class ClaimedRow(NamedTuple):
    """A row claimed for sending (now ``in_flight``); ``attempts`` counts earlier attempts,
    ``unknowns`` those whose outcome is unknown (the row may be on the server already)."""

    id: int
    line: int
    record: str
    attempts: int
    unknowns: int = 0


class RowResult(NamedTuple):
    """The outcome of one attempt, to be recorded.

    ``state`` is terminal, or ``PENDING`` for a retry at ``next_attempt_at_s`` (Unix seconds).
    ``counted`` is False when the attempt is not held against the row (never sent, or the
    server's fault, not the row's): its attempts stay as they were. ``unknown``: the call
    may have been processed though no answer came (counted with the job's unknown outcomes).
    """

    row_id: int
    state: RowState
    code: str
    message: str
    next_attempt_at_s: float | None = None
    counted: bool = True
    unknown: bool = False


class TargetRef(NamedTuple):
    """Where a job's rows go: the server's Import URL, the organisation and the campaign.
    Rows loaded to the same target count as loaded for ``--skip-unchanged``."""

    url: str
    org: str
    campaign: str

    @property
    def key(self) -> str:
        """The three as one text, to compare and to store as an index key."""
        return f"{self.url}|{self.org}|{self.campaign}"

    def describe(self) -> str:
        """``URL (org O, campaign C)`` for messages."""
        return f"{self.url} (org {self.org}, campaign {self.campaign})"


class FileIdentity(NamedTuple):
    """What makes "the same file": its absolute path, size, mtime and the hash of its head."""

    path: str
    size: int
    mtime_ns: int
    head_sha256: str

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        """Identify ``path`` (raises ``OSError`` if it cannot be read)."""
        resolved = path.resolve()
        stat = os.stat(resolved)
        with open(resolved, "rb") as handle:
            head = handle.read(HEAD_BYTES)
        return cls(str(resolved), stat.st_size, stat.st_mtime_ns, hashlib.sha256(head).hexdigest())
