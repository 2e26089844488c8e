"""How the SQLite storage keeps a row's original cells (for the failed-rows report).

Two forms, told apart by the first character:

- ``CELLS_MARK`` + the cells joined by ``CELLS_UNIT`` (a ~0.5 µs C join, and a third of the
  size of JSON for Chinese text), or JSON when a cell holds ``CELLS_UNIT`` itself (or there
  are no cells: ``()`` and ``("",)`` would join alike). JSON text starts with "[" and a
  joined one with the mark; the mark inside a cell is harmless, since only the unit splits.
  Rows stored as JSON by earlier versions still decode.
- ``CELLS_IN_RECORD`` (nothing) for a pending row whose encoded record holds every one of its
  cells: the job's format can give them back (``bulkimport.reader.records.cells_rebuilder``),
  so they are not stored twice. ``encode_cells`` never returns an empty text, so this form
  cannot be mistaken for stored cells.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from bulkimport.protocol import RECORD_SEPARATOR, decode_record
from bulkimport.reader import FileFormat, cells_rebuilder

CELLS_MARK = "\x1e"  # ASCII record separator
CELLS_UNIT = "\x1f"  # ASCII unit separator
CELLS_IN_RECORD = ""
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode_cells(cells: Sequence[str]) -> str:
    """The cells of a row as one text for the database; ``decode_cells`` gives them back."""
    joined = CELLS_UNIT.join(cells)
    if joined.count(CELLS_UNIT) == len(cells) - 1:
        return CELLS_MARK + joined
    return _encode_json(list(cells))


def decode_cells(text: str) -> tuple[str, ...]:
    """The cells that ``encode_cells`` stored (either form)."""
    if text.startswith(CELLS_MARK):
        return tuple(text[1:].split(CELLS_UNIT))
    return tuple(json.loads(text))


def holds_value(record: str | None, cells: str | None, value: str) -> bool:
    """Whether a row holds ``value`` whole: as a field's value in its ``record``, or as one of
    its stored ``cells`` (a SQL function: ``bulkimport_holds``)."""
    if record is not None and value in record:
        for part in record.split(RECORD_SEPARATOR):
            if part.partition("=")[2] == value:
                return True
    if cells and value in cells:
        try:
            return value in decode_cells(cells)
        except ValueError:
            return False
    return False


Rebuild = Callable[[str], tuple[str, ...]]


def rebuilder(fmt_json: str) -> Rebuild | None:
    """How to rebuild the cells stored as ``CELLS_IN_RECORD`` for a job of this format."""
    try:
        return cells_rebuilder(FileFormat.from_json(fmt_json))
    except (ValueError, TypeError, KeyError):
        return None


def record_width(fmt_json: str) -> int:
    """The number of cells of the rows of a job of this format that may be stored without
    them (the header's width), or 0 if none may."""
    if rebuilder(fmt_json) is None:
        return 0
    return len(FileFormat.from_json(fmt_json).fields)


def cells_of(text: str, record: str | None, rebuild: Rebuild | None) -> tuple[str, ...]:
    """A stored row's cells, from its ``cells`` column and its record."""
    if text == CELLS_IN_RECORD and record is not None:
        # Stored once, in the record. Without the job's format (never expected) the
        # record's values are the best that can be given back.
        return rebuild(record) if rebuild else tuple(v for _, v in decode_record(record))
    return decode_cells(text)
