"""Reading a sheet of an Excel workbook (.xlsx, .xlsm) as rows of text, streamed.

Saving a workbook as CSV damages phone numbers (``1.38E+10``, lost leading zeros, the wrong
code page), so workbooks are read directly, with the standard library alone:

- ``is_workbook(path)`` tells a workbook by its content, whatever its name: a zip holding
  ``xl/workbook.xml`` (xlsx/xlsm) or ``xl/workbook.bin`` (xlsb); an OLE2 file (xls, or an
  xlsx encrypted with a password); a zip whose ``mimetype`` is OpenDocument's (ods).
- ``list_sheets(path)`` names the sheets, with their number, visibility and recorded size.
- ``open_sheet(path, sheet)`` picks one; its ``iter_rows(start_row=...)`` yields
  ``(row_number, cells)``, ``row_number`` being the row as Excel numbers it (1-based).

Only xlsx and xlsm are read; the other kinds raise ``InputError`` saying to save the file
as .xlsx. Every problem with the file (damaged, truncated, encrypted, no such sheet) is an
``InputError`` of one line that names the file.

What a row holds: each cell as **the text a person sees in the sheet**:

- numbers: whole numbers in full (``13800138000``, never ``1.38E+10`` nor ``13800138000.0``);
  others as the shortest text that gives the number back, cut to the 15 significant digits
  Excel shows (a cached ``0.30000000000000004`` reads ``0.3``), never with an exponent.
  Of the number format, only what changes the digits a person reads is applied: dates and
  times (below), percentages (``0.25`` with ``0.0%`` reads ``25.0%``) and formats of zeros
  alone that pad a number to a width (``7551234567`` with ``00000000000`` reads
  ``07551234567``, the way phone numbers are often kept in Excel). Decoration is not: no
  thousands separators, currency symbols or fixed decimals (``1234.5`` with ``¥#,##0.00``
  reads ``1234.5``), which would only have to be taken off again before sending;
- text exactly as typed (leading zeros stay, no ``'`` added);
- dates ``YYYY-MM-DD``, date-times ``YYYY-MM-DD HH:MM:SS``, times ``HH:MM:SS``, chosen by
  the cell's number format (whatever its pattern: ``yyyy"年"m"月"d"日"`` also reads
  ``2024-03-05``), with ``.mmm`` only when there are milliseconds (Excel keeps no finer
  time); elapsed-time formats (``[h]:mm:ss``) give the hours in full (``36:00:00``);
  the 1900 and 1904 date systems are both read;
- booleans ``TRUE`` / ``FALSE``; error values as their text (``#N/A``, ``#DIV/0!``);
- formulas by the value cached in the file. A formula with no cached value (written by a
  program that does not compute formulas) reads as an empty cell, and is counted in
  ``SheetReader.formulas_without_value`` so that the caller can warn.

What the rows are:

- Rows with no value at all are not yielded (Excel leaves most of them out of the file
  anyway, and a sheet can be a million rows long for one stray cell); row numbers stay
  exact, so a gap in them is the count of blank rows.
- A row's cells run from column A to its last cell holding a value: cells missing
  in the middle are ``""``; nothing follows the last value (the caller pads or trims to
  the header's width). Given the header's width (``iter_rows(width=...)``), a row stops
  there: values right of it are counted in ``faults``, never padded to.
- Hidden rows and columns are read like the others; the reader counts them
  (``hidden_rows``, ``hidden_columns``) so that ``check`` can say they are there.
- A merged range holds its value in its top-left cell only; the others read ``""``.
  The ranges are listed at the end of the sheet's part, so ``merged_ranges`` is known once
  ``iter_rows`` has read the whole sheet (``None`` before).

Memory and speed: the sheet is decompressed and parsed a block at a time (about 1 MiB of
XML), so memory does not grow with the rows. The shared-string table (every distinct text of
the workbook) is held in memory packed as UTF-8 with an offset array, about 25 bytes per
distinct text, its first 65,536 texts also decoded (about 6 MB). Rows are parsed with
precompiled patterns for the cell markup that spreadsheet programs write; a block holding
any other markup (CDATA, comments, attributes in single quotes, extension elements in
cells...) is parsed with ElementTree instead, which reads any well-formed XML, more slowly.
``start_row`` skips the rows before it by scanning the decompressed bytes for row numbers,
without parsing them: resuming near the end of a million-row sheet costs its decompression
(a second or two), not its parsing.

Hostile files are bounded (``reader.limits``): a part that would expand like a zip bomb
refuses the file before it is read; no more than a row's limit is ever carried from one
block to the next (a row past it, or a shared string past it, is passed over unread,
whitespace between rows dropped), so a gigabyte of spaces costs its decompression and flat
memory; a cell longer than Excel allows, or a row too long, is yielded with its fault in
``SheetReader.faults``; the parts read whole (workbook, relationships, styles, a sheet's
head) are scanned without building a tree, their counts bounded.

On ``bench/xlsx_candidates.py``'s sheet of 1,048,576 rows of 15 typed columns (1.78 M
distinct texts), on a 2-core machine: about 55,000 rows/s, a peak RSS of 91 MiB (of which
the shared strings take about 50 MB), the first row after 0.8 s (the shared strings are read
on opening), a resume at row 943,718 in 1.9 s (docs/performance.md has the figures). Why no
library: python-calamine holds the whole sheet (1.1 GiB for that sheet), openpyxl's
read-only mode reads 11,000 rows/s and holds the shared strings as Python strings (330 MiB);
the benchmark's docstring has the figures.

The modules: ``package`` (what kind of file, the zip, the sheets), ``strings`` (the
shared-string table), ``numbers`` (number formats, dates), ``sheet`` (``SheetReader``), and
``markup`` (what they share: XML text, errors, scanning a part).
"""

from bulkimport.reader.workbook.numbers import FormatKind, format_kind, number_text
from bulkimport.reader.workbook.package import (
    NOT_READ,
    SheetInfo,
    WorkbookKind,
    is_workbook,
    list_sheets,
)
from bulkimport.reader.workbook.sheet import (
    MAX_COLUMNS,
    MAX_ROWS,
    RowFault,
    SheetReader,
    column_index,
    column_letters,
    open_sheet,
)

__all__ = [
    "MAX_COLUMNS",
    "MAX_ROWS",
    "NOT_READ",
    "FormatKind",
    "RowFault",
    "SheetInfo",
    "SheetReader",
    "WorkbookKind",
    "column_index",
    "column_letters",
    "format_kind",
    "is_workbook",
    "list_sheets",
    "number_text",
    "open_sheet",
]
