"""Streaming the records of a file as batches of rows, each with where reading resumes.

``read_batches(path, fmt)`` yields ``Batch`` es that end on a record boundary and carry the
byte offset just after their last record and the line number of the next one, so that
``read_batches(path, fmt, start_offset=..., start_line=...)`` continues exactly there (after
a crash, in another process). ``end_offset`` also drives a progress bar.

Every physical record after the header becomes exactly one row, ``PENDING`` with its encoded
``record`` or ``INVALID`` with its reason; nothing is dropped. Line numbers are 1-based
physical lines of the file.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Generator
from itertools import chain
from pathlib import Path

from bulkimport.reader.format import FileFormat, open_file
from bulkimport.reader.lines import Position, read_blocks, tracked
from bulkimport.reader.records import RecordMaker
from bulkimport.rows import Batch, NewRow
from bulkimport.states import InvalidReason, RowState

DEFAULT_BATCH_ROWS = 5000


def read_batches(
    path: Path,
    fmt: FileFormat,
    *,
    start_offset: int | None = None,
    start_line: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Generator[Batch, None, None]:
    """Stream the records of ``path`` after its header as batches of ``NewRow``.

    Starts at ``fmt.data_offset`` / ``fmt.data_line``, or where an earlier batch ended
    (``start_offset=batch.end_offset, start_line=batch.next_line``). Each batch holds up to
    ``batch_rows`` rows; memory stays flat whatever the size of the file. Raises
    ``InputError`` if the file cannot be opened or read.
    """
    offset = fmt.data_offset if start_offset is None else start_offset
    first_line = fmt.data_line if start_line is None else start_line
    make = RecordMaker(fmt).maker()
    with open_file(path) as handle:
        position = Position(offset)
        lines = chain.from_iterable(
            tracked(read_blocks(handle, fmt.encoding, offset, path), position)
        )
        reader = csv.reader(lines, delimiter=fmt.delimiter, strict=False)
        bad = position.bad  # lines that did not decode, usually none
        rows: list[NewRow] = []
        append = rows.append
        before = 0  # lines consumed before the current record
        while True:
            try:
                for cells in reader:
                    after = reader.line_num
                    if bad and not bad.isdisjoint(range(before, after)):
                        append(make(first_line + before, tuple(cells), True))
                    else:
                        append(make(first_line + before, tuple(cells), False))
                    before = after
                    if len(rows) >= batch_rows:
                        yield Batch(rows, position.offset_after(before), first_line + before)
                        rows = []
                        append = rows.append
            except csv.Error as exc:
                # The parser gave up on this record (a field over the size limit, usually an
                # unclosed quote); the lines it consumed become one invalid row.
                append(
                    NewRow(
                        first_line + before,
                        RowState.INVALID,
                        None,
                        (),
                        InvalidReason.CSV,
                        f"unreadable CSV: {exc}",
                    )
                )
                before = reader.line_num
                continue
            break
        if rows:
            yield Batch(rows, position.offset_after(before), first_line + before)


def file_size(path: Path) -> int:
    """The size of ``path`` in bytes, the total of a byte progress bar (0 if unknown)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
