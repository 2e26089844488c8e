"""Streaming the records of a workbook's sheet as batches of rows: the workbook's side of
``read_batches``, with the same ``Batch`` es, made by the same ``RecordMaker``.

Positions are sheet rows. A row's ``line`` is its row number in the sheet (as Excel shows
it, from 1); ``Batch.next_line`` is the row after the batch's last, where reading resumes
(``start_line``): the sheet reader skips the rows before it without parsing them, so
resuming is exact and costs the decompression of the rows before, not their parsing.
``Batch.end_offset`` says how far reading is through the file, in bytes of the file (the
share of the sheet's XML read, times the file's size): it drives a progress bar and plays
no part in resuming.

Every row after the header is accounted for, as every line of a CSV file is: a row that
holds a value is a ``NewRow`` (or, when its values are only spaces, a blank record), and the
rows the sheet leaves out because they hold nothing are counted in ``Batch.blank_lines``.
A row's cells are padded to the header's width with ``""`` (a sheet does not store the
empty cells at the end of a row); a value right of the header's last column makes the row
invalid, as an extra cell makes a CSV record invalid. Those values are counted, not padded
to: a value in column XFD makes one invalid row holding the header's cells and that value,
not 16,384 cells. A row past a size limit (``limits``: a cell longer than Excel allows, a
row whose XML or text is too long) is invalid too (``TOO_LONG``), its cells cut to what
shows them and one more saying what was not read, so that a failed-rows report read back
keeps it invalid until a person fixes it.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from bulkimport.reader import limits
from bulkimport.reader.format import FileFormat
from bulkimport.reader.records import RecordMaker
from bulkimport.reader.workbook import (
    RowFault,
    SheetInfo,
    SheetReader,
    column_letters,
    open_sheet,
)
from bulkimport.rows import NO_REPAIRS, Batch, NewRow
from bulkimport.states import InvalidReason, RowState

log = logging.getLogger("bulkimport")


@dataclass
class SheetFacts:
    """What reading a sheet found out about the workbook, for ``check`` to say: filled in by
    ``read_batches`` when it has read a sheet to its end (``sheet`` stays ``None`` for a
    CSV file).

    ``hidden_columns`` are ``(first, last)`` column numbers (from 1); ``merged_ranges``
    are as Excel writes them (``A1:C1``); formulas without a cached value read empty.
    """

    sheet: str | None = None  # the name of the sheet read
    sheets: tuple[SheetInfo, ...] = ()  # every sheet of the workbook, in tab order
    date1904: bool = False  # dates count from 1904 (old Mac Excel): read as Excel shows them
    hidden_rows: int = 0
    first_hidden_row: int | None = None
    hidden_columns: tuple[tuple[int, int], ...] = ()
    merged_ranges: tuple[str, ...] = ()  # the first limits.MERGED_RANGES_KEPT
    merged_count: int = 0
    formulas_without_value: int = 0
    first_formula_without_value: int | None = None


def read_sheet_batches(
    path: Path,
    fmt: FileFormat,
    *,
    start_row: int,
    batch_rows: int,
    facts: SheetFacts | None = None,
) -> Generator[Batch, None, None]:
    """The records of the sheet ``fmt.sheet`` of ``path`` from row ``start_row`` on, as
    batches of up to ``batch_rows`` rows (see the module's docstring).

    At the end of the sheet, ``facts`` learns what reading found out; without ``facts``,
    formulas without a value (which read empty) are logged as a warning instead."""
    maker = RecordMaker(fmt)
    make = maker.maker()
    width = maker.width
    # Cells a row lacks at its end, to pad it to the header's width: one tuple per count.
    padding = [("",) * missing for missing in range(width + 1)]
    with open_sheet(path, fmt.sheet) as sheet:
        total = _size(path)
        rows: list[NewRow | None] = []  # None: a blank record
        append = rows.append
        expected = start_row  # the row after the last one read
        blank = 0  # rows left out of the sheet: nothing in them
        faults = sheet.faults
        # Long rows cut a batch short of its rows, so that its memory stays bounded.
        heavy_cap = sheet.heavy + limits.MAX_BATCH_CHARS

        def batch() -> Batch:
            nonlocal rows, append, blank, heavy_cap
            heavy_cap = sheet.heavy + limits.MAX_BATCH_CHARS
            blanks = blank + maker.blank_records
            kept = [row for row in rows if row is not None] if blanks else cast(list[NewRow], rows)
            repairs = dict(maker.repaired) if maker.repaired else NO_REPAIRS
            offset = total * sheet.bytes_read // sheet.part_bytes if sheet.part_bytes else total
            done = Batch(kept, offset, expected, blanks, repairs)
            rows, blank, maker.blank_records = [], 0, 0
            maker.repaired.clear()
            append = rows.append
            return done

        for number, cells in sheet.iter_rows(start_row=start_row, width=width):
            blank += number - expected
            expected = number + 1
            if faults and number in faults:
                append(_faulty(number, cells, faults[number], width))
            elif len(cells) < width:
                append(make(number, cells + padding[width - len(cells)]))
            else:
                append(make(number, cells))
            if len(rows) >= batch_rows or sheet.heavy > heavy_cap:
                yield batch()
        if rows or blank or maker.blank_records:
            yield batch()
        if facts is not None:
            _learn(facts, sheet)  # the caller reports them
        elif sheet.formulas_without_value:
            log.warning(
                "%s: sheet %r: %d formula cell%s without a value (the first in row %s) read "
                "empty: the workbook was saved by a program that does not compute formulas; "
                "open it in Excel and save it",
                path,
                sheet.info.name,
                sheet.formulas_without_value,
                "s" if sheet.formulas_without_value > 1 else "",
                sheet.first_formula_without_value,
            )


def _faulty(number: int, cells: tuple[str, ...], fault: RowFault, width: int) -> NewRow:
    """The invalid row of sheet row ``number``, which ``fault`` says is not read as it is:
    ``cells`` are its first ``width`` cells, then the first values right of them."""
    if fault.too_long is not None:
        # What was read (cut to what shows it if it is too much to keep), and what was not,
        # right of the header (the report's _extra, which keeps the row invalid when a
        # report is read back: a value cut short is never sent).
        own = cells[:width]
        if sum(map(len, own)) > limits.MAX_ROW_CHARS:
            own = tuple(map(limits.clip, own))
        kept = own + ("",) * (width - len(own)) + (f"({fault.too_long})",)
        reason = InvalidReason.TOO_LONG
        return NewRow(number, RowState.INVALID, None, kept, reason, fault.too_long)
    value = cells[width].strip() if len(cells) > width else ""
    more = f" and {fault.extra - 1:,} more" if fault.extra > 1 else ""
    column, advice = _advice(fault.first_extra, width)
    message = f"a value in column {column} ({limits.shown(value)}){more}, {advice}"
    return NewRow(number, RowState.INVALID, None, cells, InvalidReason.CELLS, message)


@functools.lru_cache(maxsize=256)
def _advice(extra: int, width: int) -> tuple[str, str]:
    """The letters of column ``extra`` (from 0), right of a header ``width`` wide, and what
    to do about a value there (the same for every row with a value there)."""
    column = column_letters(extra + 1)
    if extra == width:
        drop = f"drop it with --map '#{extra + 1}='"
    else:  # every column between the header and it must be dropped too
        first = column_letters(width + 1)
        drop = f"drop columns {first} to {column} with --map '#{width + 1}=' ... '#{extra + 1}='"
    return column, (
        f"right of the header's last column ({column_letters(width)}): give that column a "
        f"name in the header, or {drop}"
    )


def _learn(facts: SheetFacts, sheet: SheetReader) -> None:
    facts.sheet = sheet.info.name
    facts.sheets = sheet.sheets
    facts.date1904 = sheet.date1904
    facts.hidden_rows = sheet.hidden_rows
    facts.first_hidden_row = sheet.first_hidden_row
    facts.hidden_columns = sheet.hidden_columns
    facts.merged_ranges = sheet.merged_ranges or ()
    facts.merged_count = sheet.merged_count
    facts.formulas_without_value = sheet.formulas_without_value
    facts.first_formula_without_value = sheet.first_formula_without_value


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
