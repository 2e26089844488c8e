"""The streaming reader: from a file to rows, with a reading position to resume from.

- ``format``: ``sniff_format``, from what the user said (``settings.ReadSettings``; also
  known here as ``ReaderOptions``) → ``FileFormat``
  (the kind of file; encoding and delimiter, or the sheet; header, mapping), stored with
  the job;
- ``header``: which record is the header (titles above it refused), the mapping of columns
  to fields (``--map``, ``--set``), for every kind of file;
- ``encoding``: which text encoding a file is in;
- ``lines``: the file's physical lines, a block at a time, with their byte sizes, and
  ``LineSource``, which hands them to the csv parser with a bound on a record's lines;
- ``phones``: which fields hold phone numbers, and what Excel does to them;
- ``values``: the rules on any value: Excel's text formula, control characters, totals
  rows, phone numbers far shorter than their column's usual length;
- ``learn``: ``sniff_format``, which also learns each phone field's usual length from the
  head of the file, before the first row is judged;
- ``records``: ``RecordMaker``, the one record encoder (cells → ``NewRow``): values trimmed,
  phone numbers repaired or refused, blank records counted;
- ``batches``: ``read_batches``, the stream of ``Batch`` es with their resume positions, in
  which every line is in a row or counted blank, and an unclosed quote costs its own line;
- ``sheets``: the same for a workbook's sheet (rows for lines), and ``SheetFacts``, what
  reading it found out (sheets, hidden rows and columns, merged ranges, formulas without a
  value);
- ``workbook``: the streaming .xlsx reader itself (standard library only);
- ``mappings``: rows given by a program (``Client.load_rows``), read as a file's records;
- ``complete``: ``wait_until_written``, so that a file still being written is not read
  until it settles (a last line without a line end is held back when it is short);
- ``limits``: the size limits on what a file can make the reader do (a cell, a row, the
  expansion of a workbook's part), in one place, and how long values are cut in messages.

CSV files and workbooks go through the same two calls, ``sniff_format`` and
``read_batches``: a caller never asks which kind a file is.

A file that cannot be read at all raises ``InputError`` with one line naming the file and
saying what to do next; a wrong option value raises ``ConfigError``.
"""

from bulkimport.reader import limits
from bulkimport.reader.batches import DEFAULT_BATCH_ROWS, file_size, read_batches
from bulkimport.reader.complete import wait_until_written
from bulkimport.reader.encoding import BOMS, normalize_encoding
from bulkimport.reader.format import (
    FileFormat,
    InputKind,
    ReaderOptions,
    head_controls,
    normalize_delimiter,
    refuse_stdin,
    sniff_delimiter,
)
from bulkimport.reader.header import map_key
from bulkimport.reader.learn import sniff_format
from bulkimport.reader.mappings import (
    MappingRows,
    UnsupportedValue,
    as_mapping,
    cell_text,
    rows_format,
    rows_identity,
)
from bulkimport.reader.records import RecordMaker, cells_rebuilder
from bulkimport.reader.sheets import SheetFacts
from bulkimport.settings import DEFAULT_MAX_RECORD_LINES

__all__ = [
    "BOMS",
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_MAX_RECORD_LINES",
    "FileFormat",
    "InputKind",
    "MappingRows",
    "ReaderOptions",
    "RecordMaker",
    "SheetFacts",
    "UnsupportedValue",
    "as_mapping",
    "cell_text",
    "cells_rebuilder",
    "file_size",
    "head_controls",
    "limits",
    "map_key",
    "normalize_delimiter",
    "normalize_encoding",
    "read_batches",
    "refuse_stdin",
    "rows_format",
    "rows_identity",
    "sniff_delimiter",
    "sniff_format",
    "wait_until_written",
]
