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

Size limits (``limits``): a line longer than ``MAX_ROW_BYTES`` is never held (``lines``
passes over it) and is an ``INVALID`` row (``TOO_LONG``) with how it starts; so is a record
with a value longer than ``MAX_CELL_CHARS`` (Excel's most), or whose values come to more
than ``MAX_ROW_CHARS``. Such a row is one bad row among the others, as a ragged line is: the
rest of the file is read and sent. A batch is cut short of ``batch_rows`` when its long
lines come to ``MAX_BATCH_CHARS``, so that its memory stays bounded whatever the lines.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Generator
from itertools import chain
from pathlib import Path
from typing import cast

from bulkimport.reader import limits
from bulkimport.reader.encoding import display_name
from bulkimport.reader.format import FileFormat, InputKind, open_file
from bulkimport.reader.lines import LineSource, RecordTooLong, Unread, read_blocks
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
        marks = source.marks  # lines to look at closely (see LineSource), and the end mark
        rows: list[NewRow | None] = []  # None: a blank record
        append = rows.append
        blank = 0  # lines of blank records spanning several, beyond their first
        start = 0  # where the csv parser started, in lines from where reading started
        heavy_cap = limits.MAX_BATCH_CHARS  # of source.heavy, where the batch is cut

        def batch(next_line: int) -> Batch:
            nonlocal rows, append, blank, heavy_cap
            heavy_cap = source.heavy + limits.MAX_BATCH_CHARS
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
                        if after - before == 1 and (not marks or start + before not in marks):
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
                            if after - before > 1:
                                _check_lines(source, first, last, first_line, before)
                                if not _fits(cells, maker.width):
                                    detail = (
                                        f"the value it opens runs to line {base + after - 1} "
                                        f"and makes a record of {len(cells)} cells, the "
                                        f"header has {maker.width}"
                                    )
                                    raise _Broken(before, detail, _QUOTE)
                            row = None
                            if first in source.unread:
                                # A line too long to read: the parser had it as empty.
                                row = _unread(base + before, source.unread[first], maker.width)
                            elif after - before > 1 or first in source.long:
                                row = _too_long_row(base + before, cells, fmt.header)
                            if row is None and last - 1 == source.unterminated:
                                row = _incomplete(base + before, cells, maker.width)
                            if row is None and source.nul:
                                row = _with_nul(source, first, last, base + before, cells, fmt)
                            if row is None and source.foreign:
                                row = _foreign(source, first, last, base + before, cells, fmt)
                            if row is None:
                                undecodable = not source.bad.isdisjoint(range(first, last))
                                row = maker.make(base + before, cells, undecodable)
                            if row is None:
                                blank += after - before - 1
                            append(row)
                        source.record_start = before = after
                        if len(rows) >= batch_rows or source.heavy > heavy_cap:
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
                    if "field larger than field limit" in str(exc):
                        detail = (
                            f"a value of more than {csv.field_size_limit():,} characters, more "
                            f"than a cell holds ({limits.MAX_CELL_CHARS:,})"
                        )
                        raise _Broken(before, detail, InvalidReason.TOO_LONG) from None
                    raise _Broken(before, f"unreadable CSV: {exc}", InvalidReason.CSV) from None
            except _Broken as broken:
                line = start + broken.line
                append(_cut(source, fmt.delimiter, first_line + line, line, broken))
                start = line + 1
                if len(rows) >= batch_rows or source.heavy > heavy_cap:
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


def _check_lines(source: LineSource, first: int, last: int, offset: int, before: int) -> None:
    """Raise ``_Broken`` if a line after the first of a record spanning lines ``first`` to
    ``last`` (counted from where reading started, which is line ``offset`` of the file)
    was too long to read: the quote that opened the record swallowed it."""
    if source.unread:
        inside = next((line for line in range(first + 1, last) if line in source.unread), None)
        if inside is not None:
            detail = (
                f"the value it opens runs into line {offset + inside}, which is too long to be read"
            )
            raise _Broken(before, detail, _QUOTE)


def _unread(number: int, line: Unread, width: int) -> NewRow:
    """The invalid row of line ``number``, too long to be read."""
    message = (
        f"the line is {line.size:,} bytes long, more than a row may take "
        f"({limits.MAX_ROW_BYTES:,}); not read (it starts "
        f"{line.head[: limits.SHOWN_CHARS]!r}…)"
    )
    cells = ("",) * width + (f"(a line of {line.size:,} bytes, not read)",)
    return NewRow(number, RowState.INVALID, None, cells, InvalidReason.TOO_LONG, message)


def _too_long_row(number: int, cells: list[str], header: tuple[str, ...]) -> NewRow | None:
    """The invalid row of a record with a value longer than a cell holds, or whose values
    come to more than a row may hold; ``None`` for any other."""
    cell_limit = limits.MAX_CELL_CHARS
    index = next((i for i, cell in enumerate(cells) if len(cell) > cell_limit), None)
    if index is not None:
        name = f" ({limits.shown(header[index])})" if index < len(header) else ""
        message = (
            f"column {index + 1}{name} holds {len(cells[index]):,} characters, more than a "
            f"cell holds ({cell_limit:,})"
        )
        return NewRow(number, RowState.INVALID, None, tuple(cells), InvalidReason.TOO_LONG, message)
    size = sum(map(len, cells))
    if size <= limits.MAX_ROW_CHARS:
        return None
    message = f"its values hold {size:,} characters, more than a row may ({limits.MAX_ROW_CHARS:,})"
    # What shows them, and what was cut: never a value cut short that a report would send.
    shown = tuple(map(limits.clip, cells[: len(header)]))
    kept = (*shown, *("",) * (len(header) - len(shown)), f"({message})")
    return NewRow(number, RowState.INVALID, None, kept, InvalidReason.TOO_LONG, message)


def _incomplete(number: int, cells: list[str], width: int) -> NewRow | None:
    """The invalid row of the file's last record, on line ``number``, whose last line has no
    line end, if it has fewer cells than the header: a program writing the file paused
    inside it (``complete``). ``None`` for any other."""
    if len(cells) >= width or not any(map(str.strip, cells)):
        return None
    message = (
        f"incomplete line: the file ends inside it, with no line end and {len(cells)} of the "
        f"header's {width} cells: it was still being written; load the file again once it "
        "is complete"
    )
    reason = InvalidReason.INCOMPLETE_LINE
    return NewRow(number, RowState.INVALID, None, tuple(cells), reason, message)


def _with_nul(
    source: LineSource, first: int, last: int, number: int, cells: list[str], fmt: FileFormat
) -> NewRow | None:
    """The invalid row of the record on lines ``first`` to ``last`` (numbered from
    ``number``) if one of them holds a NUL byte, else ``None``: text never holds one, so the
    line is damaged (or a binary value was pasted into it); the rest of the file is read."""
    if source.nul.isdisjoint(range(first, last)):
        return None
    index = next((i for i, cell in enumerate(cells) if "\x00" in cell), None)
    where = ""
    if index is not None:
        name = f" ({limits.shown(fmt.header[index])})" if index < len(fmt.header) else ""
        where = f" in column {index + 1}{name}, {limits.shown(cells[index])}"
    message = f"a NUL byte{where}: the line is damaged; not sent"
    return NewRow(number, RowState.INVALID, None, tuple(cells), InvalidReason.NUL, message)


def _foreign(
    source: LineSource, first: int, last: int, number: int, cells: list[str], fmt: FileFormat
) -> NewRow | None:
    """The invalid row of the record on lines ``first`` to ``last`` (numbered from
    ``number``) if one of them is in another encoding than the file's, else ``None``.

    Both readings are named: one of them is right, and which one a person sees at once
    (张三 against 寮犱笁). A line of UTF-8 text in a legacy file keeps its UTF-8 reading as
    its cells, so that the failed-rows report (UTF-8) holds it as it was meant."""
    line = next((source.foreign[i] for i in range(first, last) if i in source.foreign), None)
    if line is None:
        return None
    own, other = display_name(fmt.encoding), display_name(line.codec)
    readings = f"reads as {other} {_clipped(line.other)}, as {own} {_clipped(line.own)}"
    if fmt.encoding == "utf-8":
        message = (
            f"undecodable bytes (not utf-8): {other} text in a UTF-8 file: {readings}; "
            "save the file in one encoding"
        )
        reason = InvalidReason.ENCODING
    else:
        message = (
            f"{other} text in a {own} file: {readings}; not sent, so that neither reading is "
            "stored: save the file in one encoding"
        )
        reason = InvalidReason.OTHER_ENCODING
    return NewRow(number, RowState.INVALID, None, tuple(cells), reason, message)


def _clipped(text: str) -> str:
    return limits.shown(text.rstrip("\r\n"))


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
