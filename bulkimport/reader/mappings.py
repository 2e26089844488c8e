"""Rows given by a program (``Client.load_rows``): mappings read as a file's records are.

The columns are every key of the rows, in the order they first appear: the first row's,
then each key a later row brings (``MappingRows.widen``), mapped to fields as a file's
columns are (``--map``, ``--set``). A program that leaves a key out when its value is empty
(most CRM feeds) loads every row with every value, and a failed-rows report has a column per
key. The same rows give the same columns in the same order, so a resume stages them alike.

Each value becomes the text a spreadsheet would show (``cell_text``); a value that has no
such text (a list, a dict, an object) makes its row invalid, naming the key. Every row goes
through the one record encoder, ``RecordMaker``: values trimmed, phone numbers repaired or
refused, a ``|`` refused, a row with no values counted blank. A row's number is its place
among the rows given (the first is row 1): it is the reading position staging resumes from,
and the ``_line`` of a report.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import hashlib
import math
import numbers
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from bulkimport.errors import InputError, RecordError
from bulkimport.protocol import encode_record
from bulkimport.reader.format import FileFormat, InputKind, phone_fields
from bulkimport.reader.header import check_constants, map_fields
from bulkimport.reader.limits import clip, shown
from bulkimport.reader.records import RecordMaker
from bulkimport.rows import REPORT_COLUMNS, Batch, FileIdentity, NewRow
from bulkimport.settings import ReadSettings
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


def rows_format(name: str, first: object, options: ReadSettings, *, number: int = 1) -> FileFormat:
    """The format of the rows called ``name`` as ``first`` (the first row with a key, row
    ``number``) starts it: its keys are the first columns, ``options`` map them as for a
    file (the encoding, delimiter and sheet options have no bearing). A ``rename`` of a key
    it lacks waits for a row that has it (``MappingRows.widen``)."""
    where = Path(f"rows {name!r}")
    mapping = as_mapping(first)
    if mapping is None:
        raise InputError(f"{where}: row {number}: {_not_a_mapping(first)}")
    first = mapping
    header = tuple(str(key).strip() for key in first)
    if not header:
        raise InputError(f"{where}: row {number} has no keys: the keys name the columns")
    rename = {
        column: field
        for column, field in options.renamed.items()
        if column in header or column.startswith("#")
    }
    fields, header = map_fields(where, number, header, len(header), rename, "row")
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


class UnsupportedValue(TypeError):
    """A value that has no text to send (a list, a dict, an object); ``kind`` names what it
    is (``a list``), ``value`` shows it, shortened."""

    def __init__(self, kind: str, value: str) -> None:
        super().__init__(f"{kind} ({value}) has no text to send")
        self.kind = kind
        self.value = value


#: Values with no text a person would type, by what they are called in a message.
_CONTAINERS: dict[type, str] = {list: "a list", tuple: "a tuple", dict: "a dict", set: "a set",
                                frozenset: "a set"}  # fmt: skip


def cell_text(value: object) -> str:
    """A value as the text it is sent as, as a workbook's cell would read: ``None`` and NaN
    (a missing value in pandas) are empty; a bool is ``TRUE``/``FALSE``; a whole float has
    no ``.0`` (a phone column with a gap is a float column in pandas: ``13800138000.0`` is
    ``13800138000``), a ``Decimal`` no exponent; dates are ISO 8601 (``2026-11-30
    08:15:00``); bytes are UTF-8 (``UnicodeDecodeError`` if they are not); a UUID is its
    usual form. Any other value (a list, a dict, a set, an object) raises
    ``UnsupportedValue``: its ``str()`` is no text a person would type."""
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
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return str.__str__(value)  # an enum of text, a subclass: the text itself
    if isinstance(value, decimal.Decimal):
        return "" if value.is_nan() else format(value, "f")
    if isinstance(value, datetime.datetime):
        # pandas' NaT is a datetime that is not equal to itself: missing, as NaN is.
        return "" if value != value else value.isoformat(sep=" ")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8")  # UnicodeDecodeError: the row is invalid
    if isinstance(value, numbers.Integral):  # numpy's integers
        return str(int(value))
    if isinstance(value, numbers.Real):  # numpy's other floats
        return cell_text(float(value))
    if isinstance(value, uuid.UUID):
        return str(value)
    kind = _CONTAINERS.get(type(value))
    if kind is None:
        for base, name in _CONTAINERS.items():
            if isinstance(value, base):
                kind = name
                break
        else:
            kind = f"an object of type {type(value).__name__}"
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide which key held it
        text = f"<{type(value).__name__}>"
    raise UnsupportedValue(kind, clip(text, 40))


class MappingRows:
    """Makes the ``Batch`` of consecutive mappings, for the rows of format ``fmt``, read
    with ``options`` (its ``rename`` maps keys that later rows bring; ``phone_field``)."""

    def __init__(self, fmt: FileFormat, options: ReadSettings | None = None) -> None:
        options = options or ReadSettings()
        self.options = options
        # Later keys are renamed by name only: a position means nothing among a dict's keys.
        self.rename = {
            column: field for column, field in options.renamed.items() if not column.startswith("#")
        }
        self.where = f"rows {fmt.sheet!r}"
        self._use(fmt)

    def _use(self, fmt: FileFormat) -> None:
        self.format = fmt
        self.header = fmt.header
        self.known = frozenset(fmt.header)
        self.maker = RecordMaker(fmt)
        self.make = self.maker.maker()
        # The columns whose values cannot be sent, with why (a key a later row brought
        # that names no possible field); dropped columns (``rename`` to nothing) are not.
        self.refused: dict[int, str] = {}
        for index, (column, field) in enumerate(zip(fmt.header, fmt.fields, strict=True)):
            if field is None and not self._dropped(column):
                others = [name for at, name in enumerate(fmt.fields) if at != index]
                self.refused[index] = self._field_of(column, others)[1] or "it is not sent"

    def _dropped(self, column: str) -> bool:
        return column in REPORT_COLUMNS or (column in self.rename and not self.rename[column])

    def _field_of(self, column: str, taken: Sequence[str | None]) -> tuple[str | None, str | None]:
        """The field a column a later row brought is sent as, or ``None`` with why not
        (``None`` for both: dropped)."""
        if self._dropped(column):
            return None, None
        name = self.rename.get(column) or column
        how = f"; map it to a field with rename=(({column!r}, FIELD),)"
        if not name:
            return None, "a key with no name"
        try:
            encode_record([(name, "")])
        except RecordError as exc:
            return None, f"{exc}{how}"
        if name in taken:
            return None, f"field {shown(name)} already comes from another key{how}"
        if any(name == constant for constant, _ in self.format.constants):
            return None, f"field {shown(name)} is also set with --set{how}"
        return name, None

    def unused_renames(self) -> list[str]:
        """The keys ``rename`` names that no row had (so far): a misspelt key, most likely."""
        return [column for column in self.rename if column not in self.known]

    def mappings(self, first_number: int, items: Sequence[object]) -> list[Mapping[object, object]]:
        """``items`` as mappings; ``InputError`` naming the row for one that is not."""
        found: list[Mapping[object, object]] = []
        for number, given in enumerate(items, start=first_number):
            item = given if isinstance(given, Mapping) else as_mapping(given)
            if item is None:
                raise InputError(f"{self.where}: row {number}: {_not_a_mapping(given)}")
            found.append(item)
        return found

    def new_columns(self, items: Sequence[Mapping[object, object]]) -> dict[str, int]:
        """The keys of ``items`` that are not columns yet, in the order they first appear,
        each with the place of the item it first appears in (0 for the first)."""
        known = self.known
        added: dict[str, int] = {}
        for place, item in enumerate(items):
            if len(item) == len(known) and all(key in known for key in item):
                continue  # (most rows: their keys are the columns)
            for key in item:
                name = str(key).strip()
                if name not in known and name not in added:
                    added[name] = place
        return added

    def widen(self, columns: Sequence[str]) -> FileFormat:
        """The format with ``columns`` added at the right, each mapped to its field (or, for
        one that names no possible field, to none: a row with a value there is invalid);
        rows are made with it from now on."""
        fmt = self.format
        fields = list(fmt.fields)
        for column in columns:
            fields.append(self._field_of(column, fields)[0])
        wider = dataclasses.replace(
            fmt,
            header=fmt.header + tuple(columns),
            fields=tuple(fields),
            phone_fields=phone_fields(tuple(fields), self.options),
        )
        self._use(wider)
        return wider

    def batch(self, first_number: int, items: Sequence[object]) -> Batch:
        """The rows of ``items``, the first of which is row ``first_number``; raises
        ``InputError`` (naming the row) for an item that is not a mapping. Keys that are no
        column (``new_columns``, ``widen`` first) are taken for empty values."""
        maker = self.maker
        maker.blank_records = 0
        maker.repaired = Counter()
        rows: list[NewRow] = []
        for number, item in enumerate(self.mappings(first_number, items), start=first_number):
            row = self._row(number, item)
            if row is not None:
                rows.append(row)
        end = first_number + len(items) - 1
        return Batch(rows, end, end + 1, maker.blank_records, dict(maker.repaired))

    def _row(self, number: int, item: Mapping[object, object]) -> NewRow | None:
        """The row of one mapping (``None``: blank). Most rows have every column's key: their
        values are taken by name; any other goes the general way."""
        header = self.header
        if len(item) == len(header) and not self.refused:
            try:
                values = [item[name] for name in header]
            except KeyError:
                pass
            else:
                try:
                    cells = list(map(cell_text, values))
                except (UnsupportedValue, UnicodeDecodeError):
                    pass
                else:
                    return self.make(number, cells)
        return self._general(number, item)

    def _general(self, number: int, item: Mapping[object, object]) -> NewRow | None:
        """A row whose keys are not exactly the columns (a missing key is an empty value), or
        with a value that has no text (invalid, naming the key)."""
        values = {str(key).strip(): value for key, value in item.items()}
        cells: list[str] = []
        problem: tuple[InvalidReason, str] | None = None
        for name in self.header:
            try:
                cells.append(cell_text(values.get(name)))
            except UnsupportedValue as exc:
                cells.append("")
                problem = problem or (
                    InvalidReason.VALUE_TYPE,
                    f"key {shown(name)}: {exc.kind} ({exc.value}) cannot be sent; give text, "
                    "a number, a date or None",
                )
            except UnicodeDecodeError:
                cells.append("")
                problem = problem or (
                    InvalidReason.ENCODING,
                    f"key {shown(name)}: bytes that are not UTF-8 text "
                    f"({clip(repr(values[name]), 40)}) cannot be sent",
                )
        if problem is None:
            for index, why in self.refused.items():
                if cells[index].strip():
                    problem = (
                        InvalidReason.CELLS,
                        f"key {shown(self.header[index])} cannot be sent: {why}",
                    )
                    break
        if problem is not None:
            return NewRow(number, RowState.INVALID, None, tuple(cells), *problem)
        return self.make(number, cells)


def _not_a_mapping(item: object) -> str:
    return f"a mapping of column to value is expected, not {type(item).__name__}"
