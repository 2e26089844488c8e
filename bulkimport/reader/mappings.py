"""Rows given by a program (``Client.load_rows``): mappings read as a file's records are.

The first mapping's keys are the header, in their order, mapped to fields as a file's
columns are (``--map``, ``--set``). Each value becomes the text a spreadsheet would show
(``cell_text``) and every row goes through the one record encoder, ``RecordMaker``: values
trimmed, phone numbers repaired or refused, a ``|`` refused, a row with no values counted
blank. A row's number is its place among the rows given (the first is row 1): it is the
reading position staging resumes from, and the ``_line`` of a report.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from bulkimport.errors import InputError
from bulkimport.reader.format import FileFormat, InputKind, ReaderOptions, phone_fields
from bulkimport.reader.header import check_constants, map_fields
from bulkimport.reader.limits import listed, shown
from bulkimport.reader.records import RecordMaker
from bulkimport.rows import Batch, FileIdentity, NewRow
from bulkimport.states import InvalidReason, RowState

#: What a job of rows is known by in place of a file's path (a real path is absolute).
ROWS_PREFIX = "rows:"


def rows_identity(name: str) -> FileIdentity:
    """The identity of the rows called ``name``: the same name is the same input."""
    check_name(name)
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    return FileIdentity(f"{ROWS_PREFIX}{name}", 0, 0, digest)


def check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InputError("load_rows needs a name (the same name again resumes its job)")
    if any(not char.isprintable() for char in name):
        raise InputError(f"the name of rows must be printable, not {name!r}")


def as_mapping(item: object) -> Mapping[object, object] | None:
    """``item`` as a mapping: a ``Mapping``, or a row that has ``keys()`` and is indexed by
    them (``sqlite3.Row``, many database drivers' rows); ``None`` for anything else."""
    if isinstance(item, Mapping):
        return item
    keys = getattr(item, "keys", None)
    if callable(keys) and hasattr(item, "__getitem__"):
        try:
            return {key: item[key] for key in keys()}
        except (KeyError, IndexError, TypeError):
            return None
    return None


def rows_format(name: str, first: object, options: ReaderOptions) -> FileFormat:
    """The format of the rows called ``name`` whose first row is ``first``: its keys are
    the columns, ``options`` map them as for a file (the encoding, delimiter and sheet
    options have no bearing)."""
    where = Path(f"rows {name!r}")
    mapping = as_mapping(first)
    if mapping is None:
        raise InputError(f"{where}: row 1: {_not_a_mapping(first)}")
    first = mapping
    header = tuple(str(key).strip() for key in first)
    if not header:
        raise InputError(f"{where}: row 1 has no keys: the first row names the columns")
    fields, header = map_fields(where, 1, header, len(header), options.rename, "row")
    return FileFormat(
        encoding="utf-8",
        encoding_confidence=1.0,
        delimiter=",",
        header=header,
        fields=fields,
        constants=check_constants(where, fields, options.constants),
        keep_empty=options.keep_empty,
        data_offset=0,
        data_line=1,
        keep_spaces=options.keep_spaces,
        phone_fields=phone_fields(fields, options),
        repair=options.repair,
        allow=options.allow,
        kind=InputKind.ROWS,
        sheet=name,
    )


def cell_text(value: object) -> str:
    """A value as the text it is sent as, as a workbook's cell would read: ``None`` and NaN
    (a missing value in pandas) are empty; a bool is ``TRUE``/``FALSE``; a whole float has
    no ``.0`` (a phone column with a gap is a float column in pandas: ``13800138000.0`` is
    ``13800138000``), a ``Decimal`` no exponent; dates are ISO 8601 (``2026-11-30
    08:15:00``); bytes are UTF-8."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"  # as a workbook's cell reads
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return "" if value.is_nan() else format(value, "f")
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8")  # UnicodeDecodeError: the row is invalid
    return str(value)


class MappingRows:
    """Makes the ``Batch`` of consecutive mappings, for the rows of format ``fmt``."""

    def __init__(self, fmt: FileFormat) -> None:
        self.header = fmt.header
        self.known = frozenset(fmt.header)
        self.maker = RecordMaker(fmt)
        self.make = self.maker.maker()
        self.where = f"rows {fmt.sheet!r}"

    def batch(self, first_number: int, items: Sequence[object]) -> Batch:
        """The rows of ``items``, the first of which is row ``first_number``; raises
        ``InputError`` (naming the row) for an item that is not a mapping."""
        maker = self.maker
        maker.blank_records = 0
        maker.repaired = Counter()
        rows: list[NewRow] = []
        for number, given in enumerate(items, start=first_number):
            item = given if isinstance(given, Mapping) else as_mapping(given)
            if item is None:
                raise InputError(f"{self.where}: row {number}: {_not_a_mapping(given)}")
            try:
                row = self._row(number, item)
            except (UnicodeDecodeError, ValueError) as exc:
                row = self._refused(number, item, f"a value cannot be sent as text ({exc})")
            if row is not None:
                rows.append(row)
        end = first_number + len(items) - 1
        return Batch(rows, end, end + 1, maker.blank_records, dict(maker.repaired))

    def _row(self, number: int, item: Mapping[object, object]) -> NewRow | None:
        """The row of one mapping (``None``: blank). Most rows have the first row's keys
        exactly: their values are taken by name; any other goes the general way."""
        header = self.header
        if len(item) == len(header):
            try:
                values = [item[name] for name in header]
            except KeyError:
                pass
            else:
                return self.make(number, list(map(cell_text, values)))
        return self._general(number, item)

    def _general(self, number: int, item: Mapping[object, object]) -> NewRow | None:
        """A row whose keys are not exactly the header's: missing keys are empty cells, keys
        the first row did not have make it invalid (their values kept for the report)."""
        values = {str(key).strip(): value for key, value in item.items()}
        unknown = [key for key in values if key not in self.known]
        cells = [cell_text(values.get(name)) for name in self.header]
        if unknown:
            names = ", ".join(shown(key) for key in unknown[:20])
            return NewRow(
                number,
                RowState.INVALID,
                None,
                tuple(cells + [cell_text(values[key]) for key in unknown]),
                InvalidReason.CELLS,
                f"{names} not among the columns of row 1 ({listed(self.header)}); "
                "every row has the first row's keys (or fewer)",
            )
        return self.make(number, cells)

    def _refused(self, number: int, item: Mapping[object, object], why: str) -> NewRow:
        cells = tuple(str(item.get(name, "")) for name in self.header)
        return NewRow(number, RowState.INVALID, None, cells, InvalidReason.ENCODING, why)


def _not_a_mapping(item: object) -> str:
    return f"a mapping of column to value is expected, not {type(item).__name__}"
