"""One sheet of a workbook, streamed: ``SheetReader.iter_rows`` yields the rows that hold a
value, each cell as the text a person sees.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final
from xml.etree import ElementTree

from bulkimport.errors import InputError
from bulkimport.reader.workbook.markup import (
    BLOCK_BYTES,
    element_text,
    local_name,
    reading,
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
from bulkimport.reader.workbook.strings import SharedStrings

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
_Counts = tuple[int, int | None, int, int | None]
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
      ``iter_rows`` is, for a progress bar.

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
        self.part_bytes = package.size(self._part)
        self.bytes_read = 0
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
        self._merge_pattern = re.compile(rf'<{p}mergeCell\s+ref="([^"]*)"'.encode())
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

    def iter_rows(self, start_row: int = 1) -> Iterator[tuple[int, tuple[str, ...]]]:
        """``(row_number, cells)`` for each row from ``start_row`` on that holds a value.

        ``row_number`` is the row as Excel numbers it (from 1); ``cells`` the text of
        each cell from column A to the row's last value. Rows before ``start_row`` are
        skipped without being parsed. Raises ``InputError`` if the sheet turns out to be
        damaged, naming the last row read.
        """
        self.hidden_rows = 0
        self.first_hidden_row = None
        self.formulas_without_value = 0
        self.first_formula_without_value = None
        self.merged_ranges = None
        self.bytes_read = 0
        last = 0
        try:
            with self._package.open(self._part) as stream:
                head = SheetHead.read(stream)
                if head.empty:
                    self._read_tail(head.rest + stream.read())
                    self.bytes_read = self.part_bytes
                    return
                carry = head.rest
                next_row = 1  # the number of the next row, if it gives none
                while True:
                    data = stream.read(BLOCK_BYTES)
                    self.bytes_read = stream.tell()
                    buffer = carry + data if carry else data
                    end = buffer.find(self._end_tag)
                    if end >= 0:
                        block, carry = buffer[:end], b""
                    elif not data:
                        raise ValueError("the sheet ends before its last row")
                    else:
                        cut = buffer.rfind(self._row_tag_bytes)
                        if cut <= 0:
                            carry = buffer
                            continue
                        block, carry = buffer[:cut], buffer[cut:]
                    if next_row < start_row and self._before(block, next_row, start_row):
                        next_row = self._next_row_after(block, next_row)
                    elif block:
                        try:
                            rows, next_row = self._rows(block, next_row)
                        except _Damaged as damage:
                            yield from (row for row in damage.rows if row[0] >= start_row)
                            raise InputError(
                                f"{self.path}: sheet {self.info.name!r} is damaged at row "
                                f"{damage.row} ({damage.reason}); open the workbook in Excel "
                                "and save it again"
                            ) from None
                        if rows and rows[0][0] >= start_row:
                            yield from rows
                        else:
                            yield from (row for row in rows if row[0] >= start_row)
                        if rows:
                            last = rows[-1][0]
                    if end >= 0:
                        self._read_tail(buffer[end:] + stream.read())
                        self.bytes_read = self.part_bytes
                        return
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
                f"{self.path}: sheet {self.info.name!r} is damaged {after} ({exc}); open the "
                "workbook in Excel and save it again"
            ) from None

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

    def _read_tail(self, tail: bytes) -> None:
        self.merged_ranges = tuple(ref.decode() for ref in self._merge_pattern.findall(tail))

    def _counts(self) -> _Counts:
        return (
            self.hidden_rows,
            self.first_hidden_row,
            self.formulas_without_value,
            self.first_formula_without_value,
        )

    def _rows(self, block: bytes, next_row: int) -> tuple[list[tuple[int, tuple[str, ...]]], int]:
        """The rows holding a value among the ``<row>`` elements in ``block``, and the
        number of the row after them.

        The patterns read the markup spreadsheet programs write; when they meet a cell
        written otherwise, the block is parsed again with ElementTree, and if that fails,
        one row at a time, to keep the rows before the damaged one (raising ``_Damaged``).
        """
        counts = self._counts()
        text = block.decode("utf-8")
        # Comments, CDATA and processing instructions could hide or hold markup the
        # patterns would take at face value.
        if not _holds_markup(block, 0x21) and not _holds_markup(block, 0x3F):  # <! <?
            try:
                return self._rows_by_pattern(text, next_row)
            except (ValueError, IndexError, KeyError):
                pass
        self._restore(counts)
        try:
            return self._rows_by_tree(text, next_row)
        except (ElementTree.ParseError, ValueError, IndexError):
            self._restore(counts)
        found: list[tuple[int, tuple[str, ...]]] = []
        starts = [match.start() for match in re.finditer(re.escape(self._row_tag), text)]
        for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
            piece = text[start:end]
            try:
                rows, next_row = self._rows_by_tree(piece, next_row)
            except (ElementTree.ParseError, ValueError, IndexError) as exc:
                number = _row_number(piece[: piece.find(">") + 1], next_row)
                raise _Damaged(found, number, str(exc)) from None
            found.extend(rows)
        raise _Damaged(found, next_row, "unreadable rows")

    def _restore(self, counts: _Counts) -> None:
        (
            self.hidden_rows,
            self.first_hidden_row,
            self.formulas_without_value,
            self.first_formula_without_value,
        ) = counts

    def _rows_by_pattern(
        self, text: str, next_row: int
    ) -> tuple[list[tuple[int, tuple[str, ...]]], int]:
        """The rows of ``text`` read with the token pattern, and the number of the row after
        them. ``ValueError`` for a cell the pattern does not read (no column letters)."""
        found: list[tuple[int, tuple[str, ...]]] = []
        tokens = self._token_pattern.findall(text)
        columns = self._columns
        renderers = self._renderers
        strings = self._strings
        head, blob, offsets = strings.head, strings.blob, strings.offsets
        head_size = len(head)
        number = 0
        values: list[str] = []
        append = values.append
        # The hot loop: one pass per cell, with the common types (number, shared string)
        # handled here and the others in _typed().
        for letters, style, kind, formula, raw, inline, row_tag in tokens:
            if row_tag:
                if values:
                    while values and not values[-1]:
                        values.pop()
                    if values:
                        found.append((number, tuple(values)))
                    values = []
                    append = values.append
                start = row_tag.find(' r="') + 4  # as _row_number(), without the call
                number = int(row_tag[start : row_tag.index('"', start)]) if start > 3 else next_row
                next_row = number + 1
                if "hidden" in row_tag and _HIDDEN.search(row_tag):
                    self._hidden_row(number)
                continue
            try:
                index = columns[letters]
            except KeyError:
                index = columns[letters] = column_index(letters)
            if index != len(values):
                if index < len(values):
                    del values[index:]  # a cell given twice: the last one wins
                else:
                    values.extend([""] * (index - len(values)))
            if kind == "s":
                item = int(raw)
                if 0 <= item < head_size:
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
                else:
                    append("")
                    if formula:
                        self._formula_without_value(number)
            elif kind == "b" and (raw == "1" or raw == "0"):
                append("TRUE" if raw == "1" else "FALSE")
            elif kind == "e":
                append(raw)
            elif kind == "inlineStr":
                append(self._inline_text(inline) if inline else "")
            else:
                append(self._typed(number, kind, style, xml_text(raw), bool(formula)))
        while values and not values[-1]:
            values.pop()
        if values:
            found.append((number, tuple(values)))
        return found, next_row

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

    def _rows_by_tree(
        self, text: str, next_row: int
    ) -> tuple[list[tuple[int, tuple[str, ...]]], int]:
        """The rows of ``text`` parsed with ElementTree: slower, and reads any XML."""
        prefix = self._head.prefix
        root = ElementTree.fromstring(
            f"{self._head.start_tag}<{prefix}sheetData>{text}"
            f"</{prefix}sheetData>{self._head.end_tag}"
        )
        found = []
        for row in root[0]:
            if local_name(row.tag) != "row":
                continue
            number = int(row.get("r") or next_row)
            next_row = number + 1
            if row.get("hidden", "").lower() in ("1", "true"):
                self._hidden_row(number)
            values: list[str] = []
            for cell in row:
                if local_name(cell.tag) != "c":
                    continue
                letters = cell.get("r", "").rstrip("0123456789")
                if letters:
                    index = column_index(letters)
                    del values[index:]
                    values.extend([""] * (index - len(values)))
                children = {local_name(child.tag): child for child in cell}
                kind = cell.get("t", "n")
                value = children["v"].text or "" if "v" in children else ""
                if kind == "inlineStr":
                    values.append(element_text(children["is"]) if "is" in children else "")
                elif kind == "s":
                    values.append(self._strings.get(int(value)))
                else:
                    values.append(
                        self._typed(number, kind, cell.get("s", ""), value, "f" in children)
                    )
            while values and not values[-1]:
                values.pop()
            if values:
                found.append((number, tuple(values)))
        return found, next_row
