"""Streaming the records of a file as batches of rows, each with where reading resumes.

``read_batches(path, fmt)`` yields ``Batch`` es that end on a record boundary and carry the
byte offset just after their last record and the line number of the next one, so that
``read_batches(path, fmt, start_offset=..., start_line=...)`` continues exactly there (after
a crash, in another process). ``end_offset`` also drives a progress bar.

Every physical line after the header is accounted for: it is in exactly one row, ``PENDING``
with its encoded ``record`` or ``INVALID`` with its reason, or it is a blank line (empty,
spaces, or bare delimiters), counted in ``Batch.blank_lines`` and made no row. Line numbers
are 1-based physical lines of the file.

A record may span lines only through a quoted value, and a quote that never closes must cost
its own line, not the rest of the file. So a record spanning lines is cut back to its first
line, made ``INVALID`` (``UNCLOSED_QUOTE``), and reading starts again at the next line when:
it runs past ``fmt.max_record_lines`` lines; the csv parser gives up on it (a value past its
size limit); the file ends inside it; or it does not have the header's number of cells (the
quote swallowed lines of another shape). Each verdict depends on the record alone, never on
where a batch or a block ended, so resuming reads exactly what a single pass reads.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Generator
from itertools import chain
from pathlib import Path
from typing import cast

from bulkimport.reader.format import FileFormat, InputKind, open_file
from bulkimport.reader.lines import LineSource, RecordTooLong, read_blocks
from bulkimport.reader.records import RecordMaker
from bulkimport.reader.sheets import SheetFacts, read_sheet_batches
from bulkimport.rows import NO_REPAIRS, Batch, NewRow
from bulkimport.states import InvalidReason, RowState

DEFAULT_BATCH_ROWS = 5000


class _Broken(Exception):
    """A record to cut back to its first line (``line``, counted from where the parser
    started), for the reason ``detail``."""

    def __init__(self, line: int, detail: str, reason: InvalidReason) -> None:
        super().__init__(detail)
        self.line = line
        self.detail = detail
        self.reason = reason


def read_batches(
    path: Path,
    fmt: FileFormat,
    *,
    start_offset: int | None = None,
    start_line: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    facts: SheetFacts | None = None,
) -> Generator[Batch, None, None]:
    """Stream the records of ``path`` after its header as batches of ``NewRow``.

    Starts at ``fmt.data_offset`` / ``fmt.data_line``, or where an earlier batch ended
    (``start_offset=batch.end_offset, start_line=batch.next_line``). Each batch holds up to
    ``batch_rows`` rows; memory stays flat whatever the size of the file. Raises
    ``InputError`` if the file cannot be opened or read.

    A workbook's sheet (``fmt.kind``) is read by ``sheets.read_sheet_batches``: lines are
    sheet rows, reading resumes at ``start_line`` alone, and ``facts`` (if given) learns
    what ``check`` says about the workbook once the sheet is read to its end.
    """
    if fmt.kind is InputKind.XLSX:
        yield from read_sheet_batches(
            path,
            fmt,
            start_row=fmt.data_line if start_line is None else start_line,
            batch_rows=batch_rows,
            facts=facts,
        )
        return
    offset = fmt.data_offset if start_offset is None else start_offset
    first_line = fmt.data_line if start_line is None else start_line
    maker = RecordMaker(fmt)
    make = maker.maker()
    max_lines = fmt.max_record_lines
    with open_file(path) as handle:
        source = LineSource(read_blocks(handle, fmt.encoding, offset, path), offset, max_lines)
        marks = source.marks  # lines that did not decode, and the end mark
        rows: list[NewRow | None] = []  # None: a blank record
        append = rows.append
        blank = 0  # lines of blank records spanning several, beyond their first
        start = 0  # where the csv parser started, in lines from where reading started

        def batch(next_line: int) -> Batch:
            nonlocal rows, append, blank
            lines = blank + maker.blank_records
            # Blank records are None among the rows: filtered once per batch, if any.
            kept = [row for row in rows if row is not None] if lines else cast(list[NewRow], rows)
            repairs = dict(maker.repaired) if maker.repaired else NO_REPAIRS
            done = Batch(
                kept, source.offset_after(next_line), first_line + next_line, lines, repairs
            )
            rows, blank, maker.blank_records = [], 0, 0
            maker.repaired.clear()
            append = rows.append
            return done

        while True:
            reader = csv.reader(
                chain.from_iterable(source.lines(start)), delimiter=fmt.delimiter, strict=False
            )
            base = first_line + start
            before = 0  # the first line of the record being parsed, counted from start
            try:
                try:
                    for cells in reader:
                        after = reader.line_num
                        if after - before == 1 and not marks:
                            append(make(base + before, cells))
                        else:
                            first, last = start + before, start + after
                            if source.end is not None and last > source.end:
                                if first == source.end:
                                    break  # the end mark: every line is read
                                lines = source.end - first
                                raise _Broken(before, _open_at_end(lines, max_lines), _QUOTE)
                            if after - before > max_lines:
                                raise _Broken(before, _too_long(max_lines), _QUOTE)
                            if after - before > 1 and not _fits(cells, maker.width):
                                detail = (
                                    f"the value it opens runs to line {base + after - 1} and "
                                    f"makes a record of {len(cells)} cells, the header has "
                                    f"{maker.width}"
                                )
                                raise _Broken(before, detail, _QUOTE)
                            undecodable = not marks.isdisjoint(range(first, last))
                            row = maker.make(base + before, cells, undecodable)
                            if row is None:
                                blank += after - before - 1
                            append(row)
                        source.record_start = before = after
                        if len(rows) >= batch_rows:
                            yield batch(start + before)
                except RecordTooLong:
                    raise _Broken(before, _too_long(max_lines), _QUOTE) from None
                except csv.Error as exc:
                    lines = reader.line_num - before
                    if lines > max_lines:
                        raise _Broken(before, _too_long(max_lines), _QUOTE) from None
                    if lines > 1:
                        detail = f"the quoted value runs past {csv.field_size_limit():,} characters"
                        raise _Broken(before, detail, _QUOTE) from None
                    raise _Broken(before, f"unreadable CSV: {exc}", InvalidReason.CSV) from None
            except _Broken as broken:
                line = start + broken.line
                append(_cut(source, fmt.delimiter, first_line + line, line, broken))
                start = line + 1
                if len(rows) >= batch_rows:
                    yield batch(start)
                continue
            if rows or blank or maker.blank_records:
                yield batch(start + before)
            return


_QUOTE = InvalidReason.UNCLOSED_QUOTE


def _too_long(max_lines: int) -> str:
    return f"the quoted value is still open after more than {max_lines} lines (--max-record-lines)"


def _open_at_end(lines: int, max_lines: int) -> str:
    if lines > max_lines:
        return _too_long(max_lines)
    return "the quoted value is still open at the end of the file"


def _fits(cells: list[str], width: int) -> bool:
    """The header's number of cells, or more with nothing in those beyond it."""
    count = len(cells)
    return count == width or (count > width and not any(map(str.strip, cells[width:])))


def _cut(source: LineSource, delimiter: str, number: int, line: int, broken: _Broken) -> NewRow:
    """The invalid row of a record cut back to its first line (``line``, numbered
    ``number``): its cells are that line's alone, for the report."""
    try:
        cells = tuple(next(csv.reader([source.line(line)], delimiter=delimiter), []))
    except csv.Error:
        cells = ()
    if broken.reason is InvalidReason.UNCLOSED_QUOTE:
        message = f"unclosed quote on line {number}: {broken.detail}"
    else:
        message = broken.detail
    return NewRow(number, RowState.INVALID, None, cells, broken.reason, message)


def file_size(path: Path) -> int:
    """The size of ``path`` in bytes, the total of a byte progress bar (0 if unknown)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
