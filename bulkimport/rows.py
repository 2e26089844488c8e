"""Plain values that pass between the reader, the queue and the dispatcher."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from bulkimport.protocol import decode_record
from bulkimport.states import RowState

HEAD_BYTES = 64 * 1024


class NewRow(NamedTuple):
    """One physical record of the input file, ready to be stored.

    ``state`` is ``PENDING`` (``record`` holds the encoded context) or ``INVALID`` (``record``
    is ``None`` and ``reason`` says why). ``cells`` are the original cells, in file order, so
    that a report can give the row back as it was.
    """

    line: int
    state: RowState
    record: str | None
    cells: tuple[str, ...]
    reason: str | None = None


class Batch(NamedTuple):
    """Consecutive rows, with where the next record starts (byte offset and line number).

    ``record_width``: the pending rows with this many cells hold every cell in their record
    (the reader says so when the format loses nothing; see ``cells_rebuilder``), and the queue
    stores their record alone. 0 when no row may be stored that way.
    """

    rows: list[NewRow]
    end_offset: int
    next_line: int
    record_width: int = 0


# How the cells of a row are stored: MARK + the cells joined by UNIT (a ~0.5 µs C join, and
# a third of the size of JSON for Chinese text), or JSON when a cell holds UNIT itself (or
# there are no cells: ``()`` and ``("",)`` would join alike). JSON text starts with "[" and
# a joined one with MARK, so the first character tells them apart; MARK inside a cell is
# harmless, since only UNIT splits. Rows stored as JSON before this format still decode.
CELLS_MARK = "\x1e"  # ASCII record separator
CELLS_UNIT = "\x1f"  # ASCII unit separator
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode_cells(cells: Sequence[str]) -> str:
    """The cells of a row as one text for the database; ``decode_cells`` gives them back."""
    joined = CELLS_UNIT.join(cells)
    if joined.count(CELLS_UNIT) == len(cells) - 1:
        return CELLS_MARK + joined
    return _encode_json(list(cells))


# The cells stored for a row whose record holds them all (Batch.record_width): nothing. The
# record is stored anyway, and cells_rebuilder gives the cells back from it; encode_cells
# never returns an empty text, so this one cannot be mistaken for stored cells.
CELLS_IN_RECORD = ""


def cells_rebuilder(
    fields: Sequence[str | None], constants: Sequence[object]
) -> Callable[[str], tuple[str, ...]] | None:
    """How to get a pending row's cells back from its record, for a format that loses
    nothing on the way: every column sent under a name of its own (one without ``|``), no
    constants added, so each cell is in the record (an empty one by its absence). ``None``
    for any other format."""
    if constants or not fields:
        return None
    names = [name for name in fields if name is not None and "|" not in name]
    if len(names) != len(fields) or len(set(names)) != len(names):
        return None

    def rebuild(record: str) -> tuple[str, ...]:
        values = dict(decode_record(record))
        return tuple(values.get(name, "") for name in names)

    return rebuild


def decode_cells(text: str) -> tuple[str, ...]:
    """The cells that ``encode_cells`` stored (either form)."""
    if text.startswith(CELLS_MARK):
        return tuple(text[1:].split(CELLS_UNIT))
    return tuple(json.loads(text))


class ClaimedRow(NamedTuple):
    """A row claimed for sending (now ``in_flight``); ``attempts`` counts earlier attempts."""

    id: int
    line: int
    record: str
    attempts: int


class RowResult(NamedTuple):
    """The outcome of one attempt, to be recorded.

    ``state`` is terminal, or ``PENDING`` for a retry at ``next_attempt_at_s`` (Unix seconds).
    ``counted`` is False when the row was never sent (released at shutdown): its attempts
    stay as they were.
    """

    row_id: int
    state: RowState
    code: str
    message: str
    next_attempt_at_s: float | None = None
    counted: bool = True


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
