"""What the reader learns from the head of a file before it judges the first row: each phone
field's usual number of digits (``values.usual_length``).

A streaming reader cannot know a column's usual length when it meets the column's first
value, and a verdict must not depend on where reading started: so the usual length is
learned once, from the first ``values.USUAL_SAMPLE`` records, when the format is sniffed,
and kept in the ``FileFormat``, which a job stores. ``check`` and ``run`` sniff the same way
(they learn the same), and a resumed job reads with the format it stored (it judges as the
first run did).

A failed-rows report loaded back learns from its own rows, but for those it lists as far
from the usual length: a report of such rows alone, unedited, has no usual length to be
judged by (their original file's is not in it).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from contextlib import closing
from pathlib import Path

from bulkimport.reader import format as file_format
from bulkimport.reader.batches import read_batches
from bulkimport.reader.format import FileFormat, InputKind
from bulkimport.reader.values import USUAL_SAMPLE, usual_length
from bulkimport.rows import REPORT_COLUMNS
from bulkimport.settings import ReadSettings
from bulkimport.states import InvalidReason, RowState

CODE_COLUMN = REPORT_COLUMNS[3]
_LENGTH_CODES = frozenset({InvalidReason.PHONE_SHORT.value, InvalidReason.PHONE_LONG.value})


def sniff_format(path: Path, options: ReadSettings | None = None) -> FileFormat:
    """``format.sniff_format``, and the usual length of each phone field (``learn``)."""
    return learn(path, file_format.sniff_format(path, options))


def learn(path: Path, fmt: FileFormat) -> FileFormat:
    """``fmt`` with the usual number of digits of each of its phone fields, learned from the
    numbers of digits only (repaired as they are sent) in its first ``USUAL_SAMPLE``
    records; a field without a usual length (too few numbers, no length common enough) is
    left out, and its numbers are not judged by length."""
    columns = [
        (index, name)
        for index, name in enumerate(fmt.fields)
        if name is not None and name in fmt.phone_fields
    ]
    if not columns or fmt.kind is InputKind.ROWS:
        return fmt
    lengths: dict[str, Counter[int]] = {name: Counter() for _, name in columns}
    # A failed-rows report read back: its rows refused for their length do not teach it.
    code = fmt.header.index(CODE_COLUMN) if CODE_COLUMN in fmt.header else None
    blank = dataclasses.replace(fmt, usual_lengths=())
    with closing(read_batches(path, blank, batch_rows=USUAL_SAMPLE)) as batches:
        first = next(batches, None)
    for row in first.rows if first is not None else ():
        if row.state is not RowState.PENDING:
            continue
        if code is not None and row.cells[code] in _LENGTH_CODES:
            continue
        for index, name in columns:
            value = row.cells[index]
            if value.isdigit() and value.isascii():
                lengths[name][len(value)] += 1
    usual = []
    for _, name in columns:
        length = usual_length(lengths[name])
        if length is not None:
            usual.append((name, length))
    return dataclasses.replace(fmt, usual_lengths=tuple(usual))
