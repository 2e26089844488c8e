"""The limits on what one file can make the reader do, in one place.

The reader streams: whatever a file holds, it is read in memory that does not grow with it
and in time in proportion to it. A damaged or hostile file (a line that never ends, a
shared string of 300 MB, a cell in column XFD of every row, a zip part that expands a
thousand times) could otherwise hold it for minutes and gigabytes. Past a limit:

- a **row** is ``invalid`` (``InvalidReason.TOO_LONG``, or ``CELLS`` for values right of the
  header), with its line or row number and what was too large: the other rows are read and
  sent, as for any other bad row, and the failed-rows report lists it;
- a **file** is refused in one line naming it and the part or row, when the damage is in
  what every row depends on (a part that expands like a zip bomb, the header, a sheet's
  head, its styles), where no row could be read right.

Each limit is far above what real data comes to, so that no real file meets one. Tests and
the benchmark lower or lift them by setting these module attributes: the reader reads them
when it starts reading, never at import.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The most characters a cell holds: Excel's own limit, so no workbook cell is longer, and a
#: CSV value longer than that is not a lead's (call-center fields are mostly 255 characters).
#: A longer value makes its row invalid.
MAX_CELL_CHARS = 32_767

#: The most bytes a row may take in the file: a CSV line (its line break included), a sheet
#: row's XML, a shared string's XML. A row of leads is a few hundred bytes; a longer one is
#: invalid, and is never held whole: its bytes are counted and passed over.
MAX_ROW_BYTES = 1 << 20

#: The most characters a row's cells may hold together, once read: a sheet row's cells can
#: name the same long shared string many times, so its text can outgrow its XML, and a CSV
#: record can span lines through a quoted value.
MAX_ROW_CHARS = 1 << 20

#: The most a workbook's part may expand over its compressed size. Real sheets expand 5
#: (typed leads) to 25 times (every cell the same), deflate at most about 1,030 (a run of
#: one byte): more than this is a zip bomb, and the file is refused before it is read.
MAX_EXPANSION = 100

#: A part that expands to less than this is not held to ``MAX_EXPANSION``: reading it costs
#: a fraction of a second, and small parts of repeated markup expand more than large ones.
EXPANSION_FLOOR = 64 << 20

#: The most any part may expand to, whatever its ratio: a full sheet of 1,048,576 rows of 15
#: typed columns is about 600 MB of XML. A larger part is refused before it is read.
MAX_PART_BYTES = 4 << 30

#: The most bytes a sheet's part may hold before its rows (its dimension, columns, views),
#: which is read whole: a few KB in a real sheet, about 1 MB with 16,384 column widths.
MAX_HEAD_BYTES = 4 << 20

#: The most sheets a workbook may have (each one's head is read to list them), and the most
#: cell formats (styles) it may define: Excel makes at most 64,000.
MAX_SHEETS = 4_096
MAX_STYLES = 1 << 17

#: The characters of long rows (rows of more than a few thousand) a batch of rows may hold
#: before it is cut short of its number of rows: bounds a batch's memory when rows are long.
MAX_BATCH_CHARS = 32 << 20

#: Values right of the header's last column kept with the invalid row they make (for the
#: report's ``_extra``); the others are counted, never padded nor stored.
EXTRA_CELLS_KEPT = 8

#: Merged ranges a sheet lists (all are counted).
MERGED_RANGES_KEPT = 1_000

#: Characters of a value shown in a message, a sample or a report's annotation.
SHOWN_CHARS = 60

#: Bytes of a line or row that is not read kept to show how it starts.
HEAD_KEPT_BYTES = 4 * SHOWN_CHARS


def clip(text: str, limit: int | None = None) -> str:
    """``text``, or its first ``limit`` characters (``SHOWN_CHARS``) and how long it is:
    ``abc… (300,000,000 characters)``."""
    limit = SHOWN_CHARS if limit is None else limit
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def shown(text: str, limit: int | None = None) -> str:
    """``text`` quoted for a one-line message, cut as ``clip`` cuts it:
    ``'abc'… (300,000,000 characters)``."""
    limit = SHOWN_CHARS if limit is None else limit
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"


def listed(names: Sequence[str], limit: int = 20) -> str:
    """``names`` joined for a message (``a, b, c``), each cut as ``clip`` cuts it, the first
    ``limit`` of them: ``a, b, ... (16,384 in all)``."""
    shown_names = ", ".join(clip(name) for name in names[:limit])
    return shown_names if len(names) <= limit else f"{shown_names}, ... ({len(names):,} in all)"
