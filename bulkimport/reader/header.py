"""The header of a file, whatever its kind: which record it is (titles above it are refused
with the ``--skip-rows`` that reads it), its column names, and the field each column is sent
as (``--map`` by name or by position, ``--set``).

Pure functions over records already read: a CSV file's first lines parsed, or a sheet's first
rows. ``unit`` names what a position counts in messages: ``line`` for a CSV file, ``row``
for a sheet.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from bulkimport.errors import ConfigError, InputError, RecordError
from bulkimport.protocol import encode_record
from bulkimport.reader.limits import listed, shown
from bulkimport.reader.values import INVISIBLE
from bulkimport.rows import REPORT_COLUMNS, revive

_INVISIBLE = re.compile(f"[{INVISIBLE}]")

#: Title lines above the header: at most this many, each filling at most this many cells ...
TITLE_MAX_LINES = 10
TITLE_MAX_CELLS = 2
#: ... compared with the median of the cells filled by this many records below it.
TITLE_LOOKAHEAD = 20

# `--map '#3=phone2'`: a column by its position, 1-based as a person counts.
_POSITION = re.compile(r"#(\d+)")


class HeadRecord(NamedTuple):
    """A record near the head of a file that fills at least one cell."""

    first: int  # its first line (or row), counted from 0 after the ones skipped
    end: int  # the line (or row) after it, counted the same way
    cells: Sequence[str]


def filled(cells: Sequence[str]) -> int:
    """How many cells hold something besides spaces."""
    return sum(1 for cell in cells if cell.strip())


def choose_header(
    path: Path, records: Sequence[HeadRecord], before: int, unit: str = "line"
) -> HeadRecord:
    """The header among ``records`` (the first records of the file that fill a cell, after
    ``before`` lines or rows): the first that is not a title.

    A title (``Customer list,,,,``, ``sep=;``, a report's name and date) fills at most
    ``TITLE_MAX_CELLS`` cells, at most half of what the records below it typically fill (the
    median of the next ``TITLE_LOOKAHEAD``). Titles are refused with the ``--skip-rows``
    that reads the header: taken for the header, a title makes the real header a record
    and every column a field no one asked for.
    """
    if not records:
        raise InputError(f"{path}: the file has no header (it is empty or only blank {unit}s)")
    titles = 0
    typical: list[int] = []
    while titles < min(TITLE_MAX_LINES, len(records) - 1):
        count = filled(records[titles].cells)
        below = records[titles + 1 : titles + 1 + TITLE_LOOKAHEAD]
        typical.append(statistics.median_low(filled(record.cells) for record in below))
        if count > TITLE_MAX_CELLS or 2 * count > typical[-1]:
            break
        titles += 1
    if not titles:
        return records[0]
    header = records[titles]
    count = filled(records[0].cells)
    first = before + records[0].first + 1
    last = before + records[titles - 1].end
    text = next(cell.strip() for cell in records[0].cells if cell.strip())
    quoted = shown(text, 40)
    where = (
        f"{unit} {first} ({quoted})" if first == last else f"{unit}s {first}-{last} ({quoted}...)"
    )
    cells = f"{count} cell{'s' if count > 1 else ''}"
    raise InputError(
        f"{path}: {where} {'looks like a title' if titles == 1 else 'look like titles'} "
        f"above the header ({cells} filled, where the records below fill {typical[0]}); "
        f"the header seems to be {unit} {before + header.first + 1}: "
        f"add --skip-rows {before + header.first}"
    )


def clean_header(names: Sequence[str]) -> tuple[str, ...]:
    """Column names without the characters that show as nothing (a BOM, a zero-width space:
    ``values.INVISIBLE``) or surrounding spaces; trailing empty names (the empty columns
    Excel leaves at the right) are not columns."""
    cleaned = [_INVISIBLE.sub("", name).strip() for name in names]
    while cleaned and not cleaned[-1]:
        cleaned.pop()
    if set(REPORT_COLUMNS[1:]) <= set(cleaned):
        # A failed-rows report: its names as they were before it marked the formula-like.
        cleaned = [revive(name) for name in cleaned]
    return tuple(cleaned)


def left_margin(header: Sequence[str], below: Sequence[HeadRecord]) -> int:
    """How many columns at the left of ``header`` are no columns of the table: no name, and
    nothing in them in the records ``below`` it (a table that starts in column B). They are
    dropped, as the empty columns at the right are; a column with values and no name is
    not, and ``map_fields`` asks for a name."""
    margin = 0
    while margin < len(header) and not header[margin]:
        if any(len(r.cells) > margin and r.cells[margin].strip() for r in below):
            break
        margin += 1
    return margin if margin < len(header) else 0


def map_fields(
    path: Path,
    header_line: int,
    header: tuple[str, ...],
    raw_width: int,
    rename: Mapping[str, str | None],
    unit: str = "line",
    *,
    margin: int = 0,
) -> tuple[tuple[str | None, ...], tuple[str, ...]]:
    """The field of each column (``None``: dropped), and the header, widened to the unnamed
    columns at the right that ``--map '#N=FIELD'`` names (up to ``raw_width`` columns).
    The first ``margin`` columns (``left_margin``) are dropped unless ``--map`` names
    them."""
    where = f"{path}: {unit} {header_line}"
    by_position: dict[int, str | None] = {}
    by_name: dict[str, str | None] = {}
    for column, name in rename.items():
        position = _POSITION.fullmatch(column)
        if position is None:
            by_name[column] = name
            continue
        index = int(position[1])
        if not 1 <= index <= raw_width:
            raise InputError(
                f"{path}: --map '{column}={name or ''}': the file has {raw_width} columns, "
                f"#1 to #{raw_width}"
            )
        by_position[index] = name
    if by_position:
        header = header + ("",) * (max(by_position) - len(header))
    if not header:
        raise InputError(f"{where}: the header has no column names; check --skip-rows")
    known = set(header)
    missing = [column for column in by_name if column not in known]
    if missing:
        raise InputError(
            f"{path}: --map names column {missing[0]!r}, which the file does not have; "
            f"its columns are: {listed(header)}"
        )
    fields: list[str | None] = []
    seen: dict[str, int] = {}
    for index, column in enumerate(header, start=1):
        if index in by_position:
            name = by_position[index] or None
        elif column in by_name:
            name = by_name[column] or None
        elif column in REPORT_COLUMNS or index <= margin:
            name = None
        else:
            name = column
        if name is None:
            fields.append(None)
            continue
        by_place = f"--map '#{index}=FIELD'"
        if not name:
            raise InputError(
                f"{where}: column {index} has no name; name it with {by_place} or drop it "
                f"with --map '#{index}=', or check --skip-rows if this {unit} is not the header"
            )
        try:
            encode_record([(name, "")])
        except RecordError as exc:
            raise InputError(f"{where}: column {index}: {exc}; rename it with {by_place}") from None
        if name in seen:
            raise InputError(
                f"{where}: field {shown(name)} comes from columns {seen[name]} and {index}; "
                f"rename one by its position with {by_place} (or drop it with --map '#{index}=')"
            )
        seen[name] = index
        fields.append(name)
    if not seen:
        raise InputError(f"{path}: every column is dropped; nothing would be sent")
    return tuple(fields), header


def map_key(header: Sequence[str], index: int) -> str:
    """How ``--map`` names column ``index`` (0-based) of ``header``: by its name when that
    is unambiguous, else by its position (``#3``)."""
    name = header[index]
    if name and "=" not in name and header.count(name) == 1 and not _POSITION.fullmatch(name):
        return name
    return f"#{index + 1}"


def check_constants(
    path: Path, fields: tuple[str | None, ...], constants: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """The ``--set`` constants, refused when one is malformed or names a field twice."""
    if not constants:
        return ()
    try:
        encode_record(constants)
    except RecordError as exc:
        raise ConfigError(f"--set: {exc}") from None
    names = [name for name, _ in constants]
    for name in names:
        if name in fields or names.count(name) > 1:
            raise InputError(
                f"{path}: field {name!r} is set with --set and also comes from "
                + ("another --set" if names.count(name) > 1 else "a column")
                + "; drop the column with --map or remove one --set"
            )
    return tuple((str(name), str(value)) for name, value in constants)
