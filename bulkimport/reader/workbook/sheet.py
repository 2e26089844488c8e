"""One sheet of a workbook, streamed: ``SheetReader.iter_rows`` yields the rows that hold a
value, each cell as the text a person sees.

The sheet's XML is read a block at a time; what is carried from one block to the next is
the row being read, at most ``limits.MAX_ROW_BYTES``. A row that runs past that is passed
over to the next one without being held, and whitespace between rows is dropped, so reading
is linear in the part's size and memory is flat whatever it holds. Rows that break a limit
are still yielded (so that their number is accounted for), with what is wrong in
``SheetReader.faults``.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Final, NamedTuple
from xml.etree import ElementTree

from bulkimport.errors import InputError
from bulkimport.reader import limits
from bulkimport.reader.workbook.markup import (
    BLOCK_BYTES,
    element_text,
    local_name,
    reading,
    spaces_then,
    unescape_ooxml,
    xml_text,
)
from bulkimport.reader.workbook.numbers import (
    Dates,
    FormatKind,
    general_text,
    iso_date_text,
    number_renderers,
)
from bulkimport.reader.workbook.package import Package, SheetHead, SheetInfo, choose_sheet
from bulkimport.reader.workbook.strings import LONG_TEXT, SharedStrings

#: Excel's limits.
MAX_ROWS: Final = 1_048_576
MAX_COLUMNS: Final = 16_384


def open_sheet(path: str | os.PathLike[str], sheet: str | int | None = None) -> SheetReader:
    """Open one sheet of the workbook at ``path`` for reading.

    ``sheet`` is ``None`` for the first visible sheet of cells; a name (exactly as on its
    tab, or differing only in case as Excel allows); or a number counting the tabs from 1,
    hidden ones included, given as an ``int`` or as digits (``"2"``). A name made of
    digits is looked for as a name first. Raises ``InputError`` naming the file and its
    sheets when there is no such sheet, and for a file that cannot be read.
    """
    package = Package(Path(path))
    try:
        sheets = package.sheets()
        return SheetReader(package, choose_sheet(package.path, sheets, sheet), sheets)
    except BaseException:
        package.close()
        raise


def column_letters(number: int) -> str:
    """The letters of column ``number``: ``A`` for 1, ``XFD`` for 16384."""
    letters = ""
    while number > 0:
        number, remainder = divmod(number - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def column_index(letters: str) -> int:
    """The index (from 0) of the column named ``letters``; ``ValueError`` past XFD."""
    index = -1
    for char in letters.upper():
        index = (index + 1) * 26 + ord(char) - 65
    if not 0 <= index < MAX_COLUMNS:
        raise ValueError(f"no column {letters!r}")
    return index


# The facts a block of rows adds up, to be undone if the block must be parsed again.
_Counts = tuple[int, int | None, int, int | None, int]
Row = tuple[int, tuple[str, ...]]
_ROW_NUMBER = re.compile(rb'\sr="([0-9]+)"')


def _row_number(tag: str, default: int) -> int:
    """The number in a row's start tag (its ``r``), or ``default`` if it has none."""
    start = tag.find(' r="') + 4
    return int(tag[start : tag.index('"', start)]) if start > 3 else default


def _holds_markup(block: bytes, mark: int) -> bool:
    """Whether ``block`` holds ``<`` followed by the byte ``mark``. Looked for by the mark,
    which is rare, not by ``<``, which starts every tag: ``b"<!" in block`` takes a
    millisecond per MiB of cells, about 5 % of reading them."""
    at = block.find(mark, 1)
    while at >= 0:
        if block[at - 1] == 0x3C:
            return True
        at = block.find(mark, at + 1)
    return False


class _Damaged(Exception):
    """A block of rows is not well-formed: the rows before the damaged one, its number,
    and what is wrong."""

    def __init__(self, rows: list[tuple[int, tuple[str, ...]]], row: int, reason: str) -> None:
        super().__init__(reason)
        self.rows, self.row, self.reason = rows, row, reason


_HIDDEN = re.compile(r'\shidden="(?:1|true)"')


class RowFault(NamedTuple):
    """Why a row of the sheet is not read as it is (``SheetReader.faults``).

    ``too_long`` says, for a person, what is past a size limit (``column B holds a text of
    300,000,000 bytes, more than a cell holds (32,767 characters)``): the row is to be
    invalid, its cells are those read (a value not read is ``""``, a row whose XML was not
    read has none). ``extra`` counts the values right of the ``width`` given to
    ``iter_rows``, ``first_extra`` is the column (from 0) of the first: the cells yielded
    are the row's first ``width`` (padded), then the first ``limits.EXTRA_CELLS_KEPT`` of
    those values, never the empty cells between.
    """

    too_long: str | None
    extra: int = 0
    first_extra: int = -1


class _Odd:
    """What is odd about the row being parsed: a long value (``LONG_TEXT``, looked at
    closely once the row is read), values right of the width, a cell past its limit. Made
    only for such a row: the others cost nothing more."""

    __slots__ = ("extra", "first_extra", "kept", "too_long")

    def __init__(self) -> None:
        self.too_long: str | None = None
        self.extra = 0
        self.first_extra = -1
        self.kept: list[str] = []


def _too_long_cell(column: int, what: str) -> str:
    return (
        f"column {column_letters(column + 1)} holds {what}, more than a cell holds "
        f"({limits.MAX_CELL_CHARS:,} characters)"
    )


class SheetReader:
    """One sheet of an open workbook; ``iter_rows`` streams its rows.

    What the reader learns about the sheet (so that ``check`` can mention it):

    - ``info``: the sheet's name, number, visibility and recorded dimension; ``sheets``:
      every sheet of the workbook, in tab order;
    - ``date1904``: the workbook counts dates from 1904 (old Mac Excel), not 1900;
    - ``hidden_columns``: ``(first, last)`` column numbers (from 1) of hidden columns,
      known on opening (``column_letters`` names them);
    - ``hidden_rows``, ``first_hidden_row``: the hidden rows ``iter_rows`` has met;
    - ``formulas_without_value``, ``first_formula_without_value``: the formulas
      ``iter_rows`` has met that have no cached value (the file was written by a program
      that does not compute formulas: those cells read empty), and the row of the first;
    - ``merged_ranges``: the merged ranges (``"A1:C1"``), ``None`` until ``iter_rows`` has
      read the whole sheet;
    - ``bytes_read`` of the ``part_bytes`` of the sheet's XML (decompressed): how far
      ``iter_rows`` is, for a progress bar;
    - ``faults``: the rows just yielded (those of the block being read) that cannot be read
      as they are, by number (``RowFault``): read it before taking the next row;
    - ``heavy``: the characters of the long rows yielded so far (rows of more than a few
      thousand), for a caller to cut its batches short of their rows when rows are long.

    Use it as a context manager, or ``close()`` it.
    """

    def __init__(self, package: Package, info: SheetInfo, sheets: Sequence[SheetInfo] = ()) -> None:
        self.path = package.path
        self.info = info
        self.sheets = tuple(sheets) or (info,)
        self._package = package
        self._part = package.sheet_part(info)
        with reading(self.path):
            self.date1904 = package.date1904
            with package.open(self._part) as stream:
                self._head = SheetHead.read(stream)
            self._renderers, self._kinds = number_renderers(package, Dates(self.date1904))
            self._strings = SharedStrings.read(package, package.strings_part)
        self.hidden_columns = self._head.hidden_columns
        self.hidden_rows = 0
        self.first_hidden_row: int | None = None
        self.formulas_without_value = 0
        self.first_formula_without_value: int | None = None
        self.merged_ranges: tuple[str, ...] | None = None
        self.merged_count = 0
        self.part_bytes = package.size(self._part)
        self.bytes_read = 0
        self.faults: dict[int, RowFault] = {}
        self.heavy = 0
        self._width: int | None = None
        prefix = self._head.prefix
        p = re.escape(prefix)
        # The cells and rows of a block, in one pass: a cell (its column letters, style,
        # type, formula element, value and inline string, its attributes in the order every
        # spreadsheet program writes them: r, s, t, then others such as cm or vm), or a
        # row's start tag without its brackets (group 7). Any other cell start tag (a cell
        # written otherwise) matches the last alternative alone, with no column letters:
        # _rows_by_pattern then gives up on the block, and _rows() sends it to ElementTree.
        # Cells first, and their common "<" taken out: 5 % quicker than rows first.
        self._token_pattern = re.compile(
            # Possessive quantifiers (*+, ?+): nothing to try again on a failed match, and
            # a quarter faster than plain ones.
            rf'<(?:{p}c r="([A-Za-z]*+)[0-9]*+"(?: s="([0-9]*+)")?+(?: t="(\w*+)")?+'
            r'(?:\s++[\w:.-]++="[^"]*+")*+\s*+'
            rf"(?:/>|>(<{p}f\b[^>]*?(?:/>|>[^<]*+</{p}f>))?+"
            rf"(?:<{p}v>([^<]*+)</{p}v>)?+"
            rf"(<{p}is>.*?</{p}is>)?+</{p}c>)"
            rf"|({p}row\b[^>]*+)>"
            rf"|{p}c\b)",
            re.S,
        )
        self._inline_pattern = re.compile(rf"<{p}is><{p}t(?:\s[^>]*)?>([^<]*)</{p}t></{p}is>")
        self._row_tag = f"<{prefix}row"
        self._row_tag_bytes = self._row_tag.encode()
        self._end_tag = f"</{prefix}sheetData>".encode()
        self._row_close = f"</{prefix}row>".encode()
        self._merge_pattern = re.compile(rf'<{p}mergeCell\s+ref="([^"]*)"'.encode())
        # Column letters → index from 0; negative (-1 - index) right of the width, which
        # sends such a cell down the path of cells out of place at no cost to the others.
        self._columns: dict[str, int] = {}

    def close(self) -> None:
        """Close the workbook file."""
        self._package.close()

    def __enter__(self) -> SheetReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def iter_rows(
        self, start_row: int = 1, *, width: int | None = None, rows: int = 0
    ) -> Iterator[Row]:
        """``(row_number, cells)`` for each row from ``start_row`` on that holds a value.

        ``row_number`` is the row as Excel numbers it (from 1); ``cells`` the text of
        each cell from column A to the row's last value. Rows before ``start_row`` are
        skipped without being parsed. Raises ``InputError`` if the sheet turns out to be
        damaged, naming the last row read.

        With ``width`` (the header's), a row's cells stop at that column: values right of
        it are counted in ``faults`` (and the first few kept after the row's cells), never
        padded, so that a value in column XFD costs one cell, not 16,384. Without it, a
        caller that wants only the first rows says how many (``rows``): no more are parsed,
        so that rows padded to column XFD cost a few of them, not a block's worth.
        """
        self.hidden_rows = 0
        self.first_hidden_row = None
        self.formulas_without_value = 0
        self.first_formula_without_value = None
        self.merged_ranges = None
        self.merged_count = 0
        self.bytes_read = 0
        self.faults.clear()
        self.heavy = 0
        if width != self._width:
            self._width = width
            self._columns = {}
        last = 0
        try:
            with self._package.open(self._part) as stream:
                head = SheetHead.read(stream)
                if head.empty:
                    self._read_tail(head.rest, stream)
                    return
                next_row = 1  # the number of the next row, if it gives none
                for block, skipped in self._blocks(stream, head.rest):
                    if skipped is not None:
                        tag, size = skipped
                        number = _row_number(tag.decode("utf-8", "replace"), next_row)
                        next_row = number + 1
                        if number >= start_row:
                            self.faults.clear()
                            self.faults[number] = RowFault(
                                f"its XML runs to {size:,} bytes, more than a row may take "
                                f"({limits.MAX_ROW_BYTES:,}); not read"
                            )
                            last = number
                            yield number, ()
                        continue
                    if next_row < start_row and self._before(block, next_row, start_row):
                        next_row = self._next_row_after(block, next_row)
                    elif block:
                        # Rows before start_row in this block do not count in ``rows``.
                        limit = rows + max(start_row - next_row, 0) if rows else 0
                        try:
                            found, next_row = self._rows(block, next_row, limit)
                        except _Damaged as damage:
                            yield from (row for row in damage.rows if row[0] >= start_row)
                            raise InputError(
                                f"{self.path}: sheet {limits.shown(self.info.name)} is "
                                f"damaged at row {damage.row} ({damage.reason}); open the "
                                "workbook in Excel and save it again"
                            ) from None
                        if found and found[0][0] >= start_row:
                            yield from found
                        else:
                            yield from (row for row in found if row[0] >= start_row)
                        if found:
                            last = found[-1][0]
                        if limit and len(found) >= limit:
                            return  # as many as the caller wants
        except InputError:
            raise
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read the file ({exc.strerror or exc})") from None
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            ElementTree.ParseError,
            UnicodeDecodeError,
            ValueError,
            IndexError,
        ) as exc:
            after = f"after row {last}" if last else "before its first row"
            raise InputError(
                f"{self.path}: sheet {limits.shown(self.info.name)} is damaged {after} "
                f"({exc}); open the workbook in Excel and save it again"
            ) from None

    def _blocks(
        self, stream: IO[bytes], carry: bytes
    ) -> Iterator[tuple[bytes, tuple[bytes, int] | None]]:
        """The rows of the sheet's part as blocks of whole ``<row>`` elements, from
        ``carry`` (what was read past ``<sheetData>``) and ``stream``; then what follows
        them is read (``_read_tail``).

        A block is ``(rows, None)``; a row whose XML runs past ``limits.MAX_ROW_BYTES`` is
        passed over unread and given as ``(b"", (its start tag, its size in bytes))``.
        What is carried between blocks never exceeds the limit (and a block twice it), so
        nothing is copied twice over: whitespace between rows is dropped as it comes."""
        row_tag, end_tag, limit = self._row_tag_bytes, self._end_tag, limits.MAX_ROW_BYTES
        while True:
            data = stream.read(BLOCK_BYTES)
            self.bytes_read = stream.tell()
            buffer = carry + data if carry else data
            end = buffer.find(end_tag)
            if end >= 0:
                yield from self._runs(buffer[:end])
                self._read_tail(buffer[end:], stream)
                return
            if not data:
                raise ValueError("the sheet ends before its last row")
            cut = buffer.rfind(row_tag)
            if cut > 0:
                yield from self._runs(buffer[:cut])
                carry = buffer[cut:]
            elif len(buffer) <= limit:
                carry = buffer  # one row runs on into the next block
            else:
                carry, skipped = self._overflow(buffer, stream)
                if skipped is not None:
                    yield b"", skipped

    def _runs(self, block: bytes) -> Iterator[tuple[bytes, tuple[bytes, int] | None]]:
        """``block`` (whole rows) as ``_blocks`` gives it: a row in it longer than
        ``limits.MAX_ROW_BYTES`` (not counting the whitespace after it) is passed over, as it
        would be had it not fitted in a block, so that its verdict never depends on where
        the blocks fell."""
        row_tag, limit = self._row_tag_bytes, limits.MAX_ROW_BYTES
        # Cheap first: every stretch of half the limit holds the start of a row (a few
        # finds, each stopping at the first row) means no row is as long as the limit.
        step = limit // 2
        if all(
            block.find(row_tag, at, at + step + len(row_tag)) >= 0
            for at in range(0, len(block) - step, step)
        ):
            yield block, None
            return
        starts = [match.start() for match in re.finditer(re.escape(row_tag), block)]
        run = 0  # where the rows not yet given start
        for start, stop in zip(starts, [*starts[1:], len(block)], strict=True):
            row = block[start:stop].rstrip()
            if len(row) > limit:
                if run < start:
                    yield block[run:start], None
                tag = row[: row.find(b">", 0, 4096) + 1] or row[: len(row_tag)]
                yield b"", (tag, len(row))
                run = stop
        if run < len(block):
            yield block[run:], None

    def _overflow(self, buffer: bytes, stream: IO[bytes]) -> tuple[bytes, tuple[bytes, int] | None]:
        """What to carry on with when ``buffer``, more than a row may take, holds no start
        of a row after its first byte, and the row passed over if any (see ``_blocks``)."""
        row_tag, limit = self._row_tag_bytes, limits.MAX_ROW_BYTES
        if not buffer.startswith(row_tag):
            buffer = buffer.lstrip()  # before the first row: spaces and line breaks
            if len(buffer) <= limit:
                return buffer, None
            if not buffer.startswith(row_tag):
                raise ValueError(f"more than {limit:,} bytes of markup that is not a row")
        close = buffer.find(b">")
        if close > 0 and buffer[close - 1] == 0x2F:  # <row .../>
            close += 1
        else:
            close = buffer.find(self._row_close)
            close = close + len(self._row_close) if close >= 0 else -1
        if 0 <= close <= limit:
            # A row of its own size, then whitespace (to the next row, or to the end).
            after = spaces_then(buffer[close:], (row_tag, self._end_tag))
            if after is None:
                raise ValueError(f"more than {limit:,} bytes of markup between two rows")
            return buffer[:close] + after, None
        # The row runs past the limit: pass over it to the next row, or the end of the rows.
        tag = buffer[: buffer.find(b">", 0, 4096) + 1] or buffer[: len(row_tag)]
        keep = max(len(row_tag), len(self._end_tag)) - 1  # a tag cut by a block's end
        size, tail = len(buffer), buffer[-keep:]
        while True:
            data = stream.read(BLOCK_BYTES)
            self.bytes_read = stream.tell()
            if not data:
                raise ValueError("the sheet ends before its last row")
            window = tail + data
            found = [at for at in (window.find(row_tag), window.find(self._end_tag)) if at >= 0]
            if found:
                at = min(found)
                return window[at:], (tag, size + at - len(tail))
            size += len(data)
            tail = window[-keep:]

    def _before(self, block: bytes, next_row: int, start_row: int) -> bool:
        """Whether every row of ``block`` comes before ``start_row``."""
        return self._next_row_after(block, next_row) <= start_row

    def _next_row_after(self, block: bytes, next_row: int) -> int:
        """The number of the row after ``block``'s last (looking at that row's tag alone)."""
        last = block.rfind(self._row_tag_bytes)
        if last < 0:
            return next_row
        match = _ROW_NUMBER.search(block, last, block.find(b">", last) + 1)
        if match is not None:
            return int(match[1]) + 1
        # Rows without numbers: count them (a row with a number among them resets the count,
        # so this holds only when none has one, as with the writers that leave them out).
        return next_row + block.count(self._row_tag_bytes)

    def _read_tail(self, tail: bytes, stream: IO[bytes]) -> None:
        """Read what follows the rows, a block at a time: the merged ranges (the first
        ``limits.MERGED_RANGES_KEPT`` kept, all counted)."""
        kept: list[str] = []
        count = 0
        buffer = tail
        while True:
            data = stream.read(BLOCK_BYTES)
            buffer = buffer + data if buffer else data
            after = 0  # the end of the last merged range found
            for found in self._merge_pattern.finditer(buffer):
                count += 1
                if len(kept) < limits.MERGED_RANGES_KEPT:
                    kept.append(found[1].decode())
                after = found.end()
            if not data:
                break
            # A tag cut by the end of the block starts at the last "<": kept for the next.
            cut = buffer.rfind(b"<", after)
            buffer = buffer[cut:] if cut >= 0 and len(buffer) - cut < 1 << 16 else b""
        self.merged_ranges = tuple(kept)
        self.merged_count = count
        self.bytes_read = self.part_bytes

    def _counts(self) -> _Counts:
        return (
            self.hidden_rows,
            self.first_hidden_row,
            self.formulas_without_value,
            self.first_formula_without_value,
            self.heavy,
        )

    def _rows(self, block: bytes, next_row: int, limit: int = 0) -> tuple[list[Row], int]:
        """The rows holding a value among the ``<row>`` elements in ``block``, and the
        number of the row after them; with ``limit``, no more than that many rows (the
        number after them then means nothing).

        The patterns read the markup spreadsheet programs write; when they meet a cell
        written otherwise, the block is parsed again with ElementTree, and if that fails,
        one row at a time, to keep the rows before the damaged one (raising ``_Damaged``).
        """
        self.faults.clear()
        counts = self._counts()
        text = block.decode("utf-8")
        # Comments, CDATA and processing instructions could hide or hold markup the
        # patterns would take at face value.
        if not _holds_markup(block, 0x21) and not _holds_markup(block, 0x3F):  # <! <?
            try:
                return self._rows_by_pattern(text, next_row, limit)
            except (ValueError, IndexError, KeyError):
                pass
        self._restore(counts)
        try:
            return self._rows_by_tree(text, next_row, limit)
        except (ElementTree.ParseError, ValueError, IndexError):
            self._restore(counts)
        found: list[Row] = []
        starts = [match.start() for match in re.finditer(re.escape(self._row_tag), text)]
        for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
            piece = text[start:end]
            try:
                rows, next_row = self._rows_by_tree(piece, next_row)
            except (ElementTree.ParseError, ValueError, IndexError) as exc:
                number = _row_number(piece[: piece.find(">") + 1], next_row)
                raise _Damaged(found, number, str(exc)) from None
            found.extend(rows)
            if limit and len(found) >= limit:
                return found, next_row
        raise _Damaged(found, next_row, "unreadable rows")

    def _restore(self, counts: _Counts) -> None:
        (
            self.hidden_rows,
            self.first_hidden_row,
            self.formulas_without_value,
            self.first_formula_without_value,
            self.heavy,
        ) = counts
        self.faults.clear()

    def _column(self, letters: str) -> int:
        """The index of column ``letters`` as ``_columns`` keeps it (negative at or right
        of the width)."""
        index = column_index(letters)
        return index if self._width is None or index < self._width else -1 - index

    def _rows_by_pattern(self, text: str, next_row: int, limit: int = 0) -> tuple[list[Row], int]:
        """The rows of ``text`` read with the token pattern, and the number of the row after
        them. ``ValueError`` for a cell the pattern does not read (no column letters)."""
        found: list[Row] = []
        tokens = self._token_pattern.findall(text)
        columns = self._columns
        renderers = self._renderers
        strings = self._strings
        head, blob, offsets = strings.head, strings.blob, strings.offsets
        special = strings.special  # texts too long to keep, or long: looked at closely
        head_size = len(head)
        number = 0
        values: list[str] = []
        append = values.append
        odd: _Odd | None = None  # the row being read is out of the common
        # The hot loop: one pass per cell, with the common types (number, shared string)
        # handled here and the others in _typed().
        for letters, style, kind, formula, raw, inline, row_tag in tokens:
            if row_tag:
                if values or odd is not None:
                    while values and not values[-1]:
                        values.pop()
                    if odd is None:
                        if values:
                            found.append((number, tuple(values)))
                    else:
                        self._odd_row(found, number, values, odd)
                        odd = None
                    values = []
                    append = values.append
                    if limit and len(found) >= limit:
                        return found, next_row
                start = row_tag.find(' r="') + 4  # as _row_number(), without the call
                number = int(row_tag[start : row_tag.index('"', start)]) if start > 3 else next_row
                next_row = number + 1
                if "hidden" in row_tag and _HIDDEN.search(row_tag):
                    self._hidden_row(number)
                continue
            try:
                index = columns[letters]
            except KeyError:
                index = columns[letters] = self._column(letters)
            if index != len(values):
                if index < 0:  # right of the width: counted, not padded
                    odd = self._beyond(odd, -1 - index, number, style, kind, formula, raw, inline)
                    continue
                if index < len(values):
                    del values[index:]  # a cell given twice: the last one wins
                else:
                    values.extend([""] * (index - len(values)))
            if kind == "s":
                item = int(raw)
                if special and item in special:
                    odd = odd or _Odd()
                    append(self._special(odd, index, item))
                elif 0 <= item < head_size:
                    append(head[item])
                elif item > 0:
                    append(blob[offsets[item] : offsets[item + 1]].decode())
                else:
                    raise IndexError(f"no shared string {item}")
            elif not kind or kind == "n":
                if raw:
                    # A style the workbook does not define shows numbers as General.
                    render = renderers.get(style, general_text)
                    if (
                        render is general_text  # general_text's first case, without the call
                        and raw.isdigit()
                        and len(raw) <= 15
                        and (raw[0] != "0" or len(raw) == 1)
                    ):
                        append(raw)
                    else:
                        append(render(raw))
                        if len(raw) >= LONG_TEXT:
                            odd = odd or _Odd()
                else:
                    append("")
                    if formula:
                        self._formula_without_value(number)
            elif kind == "b" and (raw == "1" or raw == "0"):
                append("TRUE" if raw == "1" else "FALSE")
            else:
                if kind == "inlineStr":
                    append(self._inline_text(inline) if inline else "")
                elif kind == "e":
                    append(raw)
                else:
                    append(self._typed(number, kind, style, xml_text(raw), bool(formula)))
                # Markup is never shorter than its text: a long text has long markup.
                if len(raw) >= LONG_TEXT or len(inline) >= LONG_TEXT:
                    odd = odd or _Odd()
        while values and not values[-1]:
            values.pop()
        if odd is not None:
            self._odd_row(found, number, values, odd)
        elif values:
            found.append((number, tuple(values)))
        return found, next_row

    def _special(self, odd: _Odd, index: int, item: int) -> str:
        """The text of shared string ``item`` in column ``index``, one marked long (decoded
        once) or too long to keep (``""``, and the row is too long)."""
        what = self._strings.oversize.get(item)
        if what is None:
            return self._strings.text(item)
        if odd.too_long is None:
            odd.too_long = _too_long_cell(index, what)
        return ""

    def _beyond(
        self,
        odd: _Odd | None,
        column: int,
        number: int,
        style: str,
        kind: str,
        formula: str,
        raw: str,
        inline: str,
    ) -> _Odd | None:
        """Count a cell right of the width (in ``column``, from 0) if it holds a value."""
        if kind == "s":
            item = int(raw)
            what = self._strings.oversize.get(item)
            text = f"({what})" if what else self._strings.text(item)
        elif kind == "inlineStr":
            text = self._inline_text(inline) if inline else ""
        else:
            text = self._typed(number, kind or "n", style, xml_text(raw), bool(formula))
        return self._extra(odd, column, text)

    def _extra(self, odd: _Odd | None, column: int, text: str) -> _Odd | None:
        if not text.strip():
            return odd
        odd = odd or _Odd()
        odd.extra += 1
        if odd.first_extra < 0:
            odd.first_extra = column
        if len(odd.kept) < limits.EXTRA_CELLS_KEPT:
            odd.kept.append(text)
        return odd

    def _odd_row(self, found: list[Row], number: int, values: list[str], odd: _Odd) -> None:
        """Add the row ``number`` of ``values`` (trailing empty cells taken off) that
        ``odd`` says is out of the common: its cells looked at against their limits, its
        fault (if any) in ``faults``."""
        too_long = odd.too_long
        size = sum(map(len, values)) + sum(map(len, odd.kept))
        cell_limit, row_limit = limits.MAX_CELL_CHARS, limits.MAX_ROW_CHARS
        if too_long is None and size > cell_limit:
            index = next((i for i, value in enumerate(values) if len(value) > cell_limit), None)
            if index is not None:
                too_long = _too_long_cell(index, f"{len(values[index]):,} characters")
            elif size > row_limit:
                too_long = (
                    f"its cells hold {size:,} characters, more than a row may hold ({row_limit:,})"
                )
        if size >= LONG_TEXT:
            self.heavy += size
        if odd.kept:
            width = self._width or 0
            values.extend([""] * (width - len(values)))
            values.extend(odd.kept)
        if too_long is None and not odd.extra:
            if values:
                found.append((number, tuple(values)))
            return
        found.append((number, tuple(values)))
        self.faults[number] = RowFault(too_long, odd.extra, odd.first_extra)

    def _typed(self, number: int, kind: str, style: str, text: str, formula: bool) -> str:
        """A cell of a type other than shared or inline string, from its value's text."""
        if not text:
            if formula:
                self._formula_without_value(number)
            return ""
        if kind == "n":
            return self._renderers.get(style, general_text)(text)
        if kind == "b":
            return "TRUE" if text.strip() in ("1", "true") else "FALSE"
        if kind == "d":
            return iso_date_text(text, self._kinds.get(style, FormatKind.GENERAL))
        if kind == "str":
            return unescape_ooxml(text) if "_x" in text else text
        return text  # e (an error value such as #N/A), or a type Excel does not write

    def _inline_text(self, xml: str) -> str:
        """The text of an inline string element ``<is>...</is>``."""
        simple = self._inline_pattern.fullmatch(xml)
        if simple:
            text = xml_text(simple[1])
            return unescape_ooxml(text) if "_x" in text else text
        head = self._head
        return element_text(ElementTree.fromstring(f"{head.start_tag}{xml}{head.end_tag}")[0])

    def _hidden_row(self, number: int) -> None:
        self.hidden_rows += 1
        if self.first_hidden_row is None:
            self.first_hidden_row = number

    def _formula_without_value(self, number: int) -> None:
        self.formulas_without_value += 1
        if self.first_formula_without_value is None:
            self.first_formula_without_value = number

    def _rows_by_tree(self, text: str, next_row: int, limit: int = 0) -> tuple[list[Row], int]:
        """The rows of ``text`` parsed with ElementTree: slower, and reads any XML."""
        prefix = self._head.prefix
        root = ElementTree.fromstring(
            f"{self._head.start_tag}<{prefix}sheetData>{text}"
            f"</{prefix}sheetData>{self._head.end_tag}"
        )
        found: list[Row] = []
        width = MAX_COLUMNS if self._width is None else self._width
        strings = self._strings
        for row in root[0]:
            if local_name(row.tag) != "row":
                continue
            number = int(row.get("r") or next_row)
            next_row = number + 1
            if row.get("hidden", "").lower() in ("1", "true"):
                self._hidden_row(number)
            values: list[str] = []
            odd: _Odd | None = None
            for cell in row:
                if local_name(cell.tag) != "c":
                    continue
                letters = cell.get("r", "").rstrip("0123456789")
                index = column_index(letters) if letters else len(values)
                children = {local_name(child.tag): child for child in cell}
                kind = cell.get("t", "n")
                value = children["v"].text or "" if "v" in children else ""
                what = strings.oversize.get(int(value)) if kind == "s" else None
                if kind == "inlineStr":
                    cell_text = element_text(children["is"]) if "is" in children else ""
                elif kind == "s":
                    cell_text = f"({what})" if what and index >= width else strings.text(int(value))
                else:
                    cell_text = self._typed(number, kind, cell.get("s", ""), value, "f" in children)
                if index >= width:
                    odd = self._extra(odd, index, cell_text)
                    continue
                del values[index:]
                values.extend([""] * (index - len(values)))
                values.append(cell_text)
                if what:
                    odd = odd or _Odd()
                    odd.too_long = odd.too_long or _too_long_cell(index, what)
                elif len(cell_text) >= LONG_TEXT:
                    odd = odd or _Odd()
            while values and not values[-1]:
                values.pop()
            if odd is not None:
                self._odd_row(found, number, values, odd)
            elif values:
                found.append((number, tuple(values)))
            if limit and len(found) >= limit:
                break
        return found, next_row
