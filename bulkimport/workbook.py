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
  the header's width).
- Hidden rows and columns are read like the others; the reader counts them
  (``hidden_rows``, ``hidden_columns``) so that ``check`` can say they are there.
- A merged range holds its value in its top-left cell only; the others read ``""``.
  The ranges are listed at the end of the sheet's part, so ``merged_ranges`` is known once
  ``iter_rows`` has read the whole sheet (``None`` before).

Memory and speed: the sheet is decompressed and parsed a block at a time (about 1 MiB of
XML), so memory does not grow with the rows. The shared-string table (every distinct text
of the workbook) is held in memory packed as UTF-8 with an offset array, about 25 bytes
per distinct text. Rows are parsed with precompiled patterns for the cell markup that
spreadsheet programs write; a block holding any other markup (CDATA, comments, attributes
in single quotes, extension elements in cells...) is parsed with ElementTree instead,
which reads any well-formed XML, more slowly. ``start_row`` skips the rows before it by
scanning the decompressed bytes for row numbers, without parsing them: resuming near the
end of a million-row sheet costs its decompression (a second or two), not its parsing.

On ``bench/xlsx_candidates.py``'s sheet of 1,048,576 rows of 15 typed columns (1.78 M
distinct texts), on a 2-core machine: about 43,000 rows/s, a peak RSS of 85 MiB (of which
the shared strings take about 45 MB), the first row after 1.7 s (the shared strings are
read on opening), a resume at row 943,718 in 2.7 s. Why no library: python-calamine holds
the whole sheet (1.1 GiB for that sheet), openpyxl's read-only mode reads 11,000 rows/s
and holds the shared strings as Python strings (330 MiB); the benchmark's docstring has
the figures.
"""

from __future__ import annotations

import enum
import os
import posixpath
import re
import zipfile
import zlib
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from itertools import accumulate
from pathlib import Path
from types import TracebackType
from typing import IO, Final
from urllib.parse import unquote
from xml.etree import ElementTree

from bulkimport.errors import InputError

#: How much decompressed XML is parsed at a time.
BLOCK_BYTES: Final = 1 << 20
#: Excel's limits.
MAX_ROWS: Final = 1_048_576
MAX_COLUMNS: Final = 16_384

_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_HEAD_BYTES_MAX = 16 << 20  # the markup before <sheetData> is a few KiB; this is a guard

# Serial day numbers: day 0 of the 1900 system is 1899-12-31, but Excel counts a
# 29 February 1900 that never was (serial 60), so from serial 61 on day 0 is 1899-12-30.
_ORDINAL_1900 = date(1899, 12, 30).toordinal()
_ORDINAL_1904 = date(1904, 1, 1).toordinal()
_MS_PER_DAY = 86_400_000
_MAX_ORDINAL = date.max.toordinal()
_MAX_SERIAL = 2_958_466  # 10000-01-01
# Dates and times of day repeat down a column: their texts are kept, up to this many.
_CACHE_ITEMS = 8192
# %-templates: half the time of f"{hour:02d}..." for every date-time of a sheet.
_CLOCK_TEXT = "%02d:%02d:%02d"
_CLOCK_MS_TEXT = "%02d:%02d:%02d.%03d"
_DATETIME_TEXT = "%s %02d:%02d:%02d"


class WorkbookKind(enum.StrEnum):
    """What kind of workbook a file is, told by its content."""

    XLSX = "xlsx"  # Office Open XML workbook (.xlsx, .xlsm, .xltx): read
    XLSB = "xlsb"  # Excel binary workbook: not read, save it as .xlsx
    XLS = "xls"  # Excel 97-2003 (BIFF in an OLE2 file): not read, save it as .xlsx
    ODS = "ods"  # OpenDocument spreadsheet: not read, save it as .xlsx
    ENCRYPTED = "encrypted"  # an xlsx/xlsb protected by a password (an OLE2 file): not read


@dataclass(frozen=True)
class SheetInfo:
    """One sheet of a workbook, as its tab shows it.

    ``number`` is the sheet's position among the workbook's tabs counted from 1, hidden tabs
    included (what ``open_sheet(path, 2)`` and ``--sheet 2`` mean). ``state`` is
    ``visible``, ``hidden`` or ``veryHidden`` (hidden so that only a macro can show it);
    ``kind`` is ``worksheet`` for a sheet of cells (``chartsheet``, ``dialogsheet`` or
    ``macrosheet`` otherwise: those have no rows). ``dimension`` is the range the sheet
    records as used (``A1:O1048576``), ``None`` when it records none.
    """

    name: str
    number: int
    state: str
    kind: str
    dimension: str | None

    @property
    def visible(self) -> bool:
        """Whether the tab shows in Excel."""
        return self.state == "visible"


def is_workbook(path: str | os.PathLike[str]) -> WorkbookKind | None:
    """The kind of workbook ``path`` holds, by its content; ``None`` if it is not one.

    A truncated xlsx (its zip directory lost) is still told by the names of its first
    entries. Never raises for an unreadable file: that is for the reader to report.
    """
    try:
        with open(path, "rb") as handle:
            magic = handle.read(8)
            if magic == _OLE2_MAGIC:
                if _holds_encrypted_package(handle):
                    return WorkbookKind.ENCRYPTED
                return WorkbookKind.XLS
            if not magic.startswith(_ZIP_MAGIC):
                return None
            try:
                with zipfile.ZipFile(handle) as archive:
                    names = {name.lower(): name for name in archive.namelist()}
                    if "xl/workbook.xml" in names:
                        return WorkbookKind.XLSX
                    if "xl/workbook.bin" in names:
                        return WorkbookKind.XLSB
                    if "mimetype" in names:
                        with archive.open(names["mimetype"]) as entry:
                            if entry.read(100).strip().startswith(_ODS_MIMETYPE):
                                return WorkbookKind.ODS
                    return None
            except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError):
                handle.seek(0)
                head = handle.read(1 << 16)
                if b"xl/workbook.xml" in head or b"xl/worksheets/" in head:
                    return WorkbookKind.XLSX
                if _ODS_MIMETYPE in head[:200]:
                    return WorkbookKind.ODS
                return None
    except OSError:
        return None


def _holds_encrypted_package(handle: IO[bytes]) -> bool:
    """Whether an OLE2 file holds an ``EncryptedPackage`` stream (a password-protected
    xlsx) rather than an xls workbook. The stream names are in the file's directory,
    written in UTF-16; the directory of such a file is small and lies in its first
    megabytes, so they are searched for there."""
    handle.seek(0)
    head = handle.read(4 << 20)
    return _ENCRYPTED_STREAM in head


def list_sheets(path: str | os.PathLike[str]) -> list[SheetInfo]:
    """The sheets of the workbook at ``path``, in tab order. Raises ``InputError`` for a
    file that is not a readable xlsx."""
    with _Package(Path(path)) as package:
        return package.sheets()


def open_sheet(path: str | os.PathLike[str], sheet: str | int | None = None) -> SheetReader:
    """Open one sheet of the workbook at ``path`` for reading.

    ``sheet`` is ``None`` for the first visible sheet of cells; a name (exactly as on its
    tab, or differing only in case as Excel allows); or a number counting the tabs from 1,
    hidden ones included, given as an ``int`` or as digits (``"2"``). A name made of
    digits is looked for as a name first. Raises ``InputError`` naming the file and its
    sheets when there is no such sheet, and for a file that cannot be read.
    """
    package = _Package(Path(path))
    try:
        info = _choose_sheet(package.path, package.sheets(), sheet)
        return SheetReader(package, info)
    except BaseException:
        package.close()
        raise


def _choose_sheet(path: Path, sheets: list[SheetInfo], wanted: str | int | None) -> SheetInfo:
    cells = [info for info in sheets if info.kind == "worksheet"]
    if wanted is None:
        for info in cells:
            if info.visible:
                return info
        if cells:
            return cells[0]
        raise InputError(f"{path}: the workbook has no sheet of cells")
    chosen: SheetInfo | None = None
    if isinstance(wanted, str):
        chosen = next((info for info in sheets if info.name == wanted), None)
        if chosen is None:
            folded = wanted.casefold()
            chosen = next((info for info in sheets if info.name.casefold() == folded), None)
        if chosen is None and wanted.strip().isdigit():
            wanted = int(wanted)
    if chosen is None and isinstance(wanted, int) and 1 <= wanted <= len(sheets):
        chosen = sheets[wanted - 1]
    names = ", ".join(
        f"{info.number} {info.name!r}" + ("" if info.visible else f" ({info.state})")
        for info in sheets
    )
    if chosen is None:
        raise InputError(
            f"{path}: no sheet {wanted!r}; its sheets are {names} (give a name or a number)"
        )
    if chosen.kind != "worksheet":
        raise InputError(f"{path}: sheet {chosen.name!r} is a {chosen.kind}, it has no cells")
    return chosen


# --- the package: zip entries and relationships ------------------------------------------


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn whatever a damaged workbook makes the zip, zlib or XML modules raise into one
    ``InputError`` line."""
    try:
        yield
    except InputError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ElementTree.ParseError) as exc:
        raise InputError(
            f"{path}: the workbook is damaged ({exc}); open it in Excel and save it again"
        ) from None
    except NotImplementedError as exc:  # zipfile: a compression method or encryption
        raise InputError(
            f"{path}: cannot read the workbook ({exc}); save it again as .xlsx"
        ) from None
    except (UnicodeDecodeError, ValueError, KeyError, IndexError) as exc:
        raise InputError(
            f"{path}: the workbook is damaged ({type(exc).__name__}: {exc}); open it "
            "in Excel and save it again"
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


class _Package:
    """An open xlsx: its zip, the workbook part, its sheets and where their parts are."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            raise InputError(f"{path}: no such file; check the path")
        if path.is_dir():
            raise InputError(f"{path}: is a directory, not a workbook")
        found = is_workbook(path)
        if found is not WorkbookKind.XLSX:
            reason = _NOT_READ[found] if found else "not an xlsx workbook"
            raise InputError(f"{path}: {reason}")
        with _reading(path):
            self.zip = zipfile.ZipFile(path)
        try:
            with _reading(path):
                self._names = {name.lower(): name for name in self.zip.namelist()}
                self.workbook_part = self._main_part()
                rels = self._relationships(self.workbook_part)
                root = self.xml(self.workbook_part)
        except BaseException:
            self.zip.close()
            raise
        self.date1904 = False
        self._sheet_parts: dict[str, str | None] = {}
        self._sheets: list[SheetInfo] = []
        for element in root:
            name = _local(element.tag)
            if name == "workbookPr":
                self.date1904 = element.get("date1904", "").lower() in ("1", "true")
            elif name == "sheets":
                for number, sheet in enumerate(element, start=1):
                    rel_id = next(
                        (value for key, value in sheet.attrib.items() if _local(key) == "id"),
                        "",
                    )
                    target, rel_type = rels.get(rel_id, (None, ""))
                    sheet_kind = _local(rel_type.replace("/", "}")) or "worksheet"
                    if sheet_kind == "xlMacrosheet":
                        sheet_kind = "macrosheet"
                    sheet_name = sheet.get("name", f"Sheet{number}")
                    self._sheet_parts[sheet_name] = target
                    self._sheets.append(
                        SheetInfo(
                            name=sheet_name,
                            number=number,
                            state=sheet.get("state", "visible"),
                            kind=sheet_kind,
                            dimension=None,
                        )
                    )
        self.styles_part = self._related(rels, "/styles")
        self.strings_part = self._related(rels, "/sharedStrings")

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> _Package:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sheets(self) -> list[SheetInfo]:
        """The sheets, each with the dimension its part records (read from its head)."""
        found = []
        with _reading(self.path):
            for info in self._sheets:
                part = self._sheet_parts.get(info.name)
                dimension = None
                if info.kind == "worksheet" and part is not None and self.has(part):
                    with self.open(part) as stream:
                        dimension = _SheetHead.read(stream).dimension
                found.append(SheetInfo(info.name, info.number, info.state, info.kind, dimension))
        return found

    def sheet_part(self, info: SheetInfo) -> str:
        """The part holding the cells of sheet ``info``."""
        part = self._sheet_parts.get(info.name)
        if part is None or not self.has(part):
            raise InputError(
                f"{self.path}: the workbook is damaged (the cells of sheet {info.name!r} are "
                "missing); open it in Excel and save it again"
            )
        return part

    def open(self, part: str) -> IO[bytes]:
        """The decompressed content of ``part`` as a stream."""
        return self.zip.open(self._names[part.lower()])

    def has(self, part: str) -> bool:
        return part.lower() in self._names

    def xml(self, part: str) -> ElementTree.Element:
        with self.open(part) as stream:
            return ElementTree.parse(stream).getroot()

    def _main_part(self) -> str:
        if self.has("_rels/.rels"):
            for target, rel_type in self._relationships("").values():
                if rel_type.endswith("/officeDocument") and target and self.has(target):
                    return target
        return "xl/workbook.xml"

    def _relationships(self, part: str) -> dict[str, tuple[str | None, str]]:
        """``{id: (part name, type)}`` of the relationships of ``part``."""
        folder, name = posixpath.split(part)
        rels_part = posixpath.join(folder, "_rels", f"{name}.rels")
        if not self.has(rels_part):
            return {}
        found: dict[str, tuple[str | None, str]] = {}
        for rel in self.xml(rels_part):
            target = rel.get("Target", "")
            if rel.get("TargetMode") == "External":
                part_name = None
            elif target.startswith("/"):
                part_name = unquote(target[1:])
            else:
                part_name = posixpath.normpath(posixpath.join(folder, unquote(target)))
            found[rel.get("Id", "")] = (part_name, rel.get("Type", ""))
        return found

    def _related(self, rels: dict[str, tuple[str | None, str]], type_end: str) -> str | None:
        for target, rel_type in rels.values():
            if rel_type.endswith(type_end) and target and self.has(target):
                return target
        return None


_NOT_READ = {
    WorkbookKind.XLS: "an Excel 97-2003 workbook (.xls), which is not read; open it in Excel "
    "or LibreOffice and save it as .xlsx",
    WorkbookKind.XLSB: "an Excel binary workbook (.xlsb), which is not read; open it in Excel "
    "and save it as .xlsx",
    WorkbookKind.ODS: "an OpenDocument spreadsheet (.ods), which is not read; open it in "
    "LibreOffice and save it as .xlsx",
    WorkbookKind.ENCRYPTED: "the workbook is protected by a password; open it in Excel, "
    "remove the password (File > Info > Protect Workbook) and save it",
}


# --- number formats --------------------------------------------------------------------------


class FormatKind(enum.Enum):
    """How a number is shown, as far as it changes the text a person reads."""

    GENERAL = "general"  # the number itself
    DATE = "date"  # YYYY-MM-DD
    DATETIME = "datetime"  # YYYY-MM-DD HH:MM:SS
    TIME = "time"  # HH:MM:SS (the time of day)
    ELAPSED = "elapsed"  # [h]:mm:ss: hours in full
    PERCENT = "percent"  # the number times 100 with the format's decimals, and %
    ZEROS = "zeros"  # 0000000: a whole number padded with zeros to a width


# The built-in formats (ECMA-376 part 1, 18.8.30, and the East Asian ids 27-36, 50-58,
# which are dates and times in every East Asian locale).
_BUILTIN_DATES = frozenset({14, 15, 16, 17, 27, 28, 29, 30, 31, 36, 50, 51, 52, 53, 54, 57, 58})
_BUILTIN_TIMES = frozenset({18, 19, 20, 21, 32, 33, 34, 35, 45, 47, 55, 56})
_BUILTIN_FORMATS: dict[int, tuple[FormatKind, int]] = {
    **{number: (FormatKind.DATE, 0) for number in _BUILTIN_DATES},
    **{number: (FormatKind.TIME, 0) for number in _BUILTIN_TIMES},
    22: (FormatKind.DATETIME, 0),
    46: (FormatKind.ELAPSED, 0),
    9: (FormatKind.PERCENT, 0),
    10: (FormatKind.PERCENT, 2),
}
_QUOTED = re.compile(r'"[^"]*"|\\.|_.|\*.')
_BRACKETS = re.compile(r"\[([^\]]*)\]")
_EXPONENT = re.compile(r"e[+-]")


def format_kind(code: str) -> tuple[FormatKind, int]:
    """What a number format code shows: its kind, and its width or decimals.

    Only the first section (positive numbers) counts. Quoted text, escaped characters,
    colours and locales are not letters of the pattern: ``yyyy"年"m"月"d"日"`` is a date,
    ``[Red]0.00`` a number.
    """
    section = _split_sections(code)[0]
    plain = _QUOTED.sub("", section)
    elapsed = False
    for inside in _BRACKETS.findall(plain):
        if inside.lower() in ("h", "hh", "m", "mm", "s", "ss"):
            elapsed = True
    plain = _BRACKETS.sub("", plain).lower().replace("general", "")
    if elapsed:
        return FormatKind.ELAPSED, 0
    # The exponent of a scientific format (0.00E+00) is not a letter of a date.
    plain = _EXPONENT.sub("", plain)
    has_time = "h" in plain or "s" in plain or "am/pm" in plain or "a/p" in plain
    plain = plain.replace("am/pm", "").replace("a/p", "")
    has_date = any(letter in plain for letter in "ydeg") or ("m" in plain and not has_time)
    if has_date and has_time:
        return FormatKind.DATETIME, 0
    if has_date:
        return FormatKind.DATE, 0
    if has_time:
        return FormatKind.TIME, 0
    if "%" in plain:
        _, _, decimals = plain.partition(".")
        return FormatKind.PERCENT, len(decimals) - len(decimals.lstrip("0#?"))
    if len(plain) > 1 and plain.strip("0") == "":
        return FormatKind.ZEROS, len(plain)
    return FormatKind.GENERAL, 0


def _split_sections(code: str) -> list[str]:
    sections, start, quoted, index = [], 0, False, 0
    while index < len(code):
        char = code[index]
        if char == '"':
            quoted = not quoted
        elif char == "\\" and not quoted:
            index += 1
        elif char == ";" and not quoted:
            sections.append(code[start:index])
            start = index + 1
        index += 1
    sections.append(code[start:])
    return sections


def number_text(raw: str) -> str:
    """A number as a person reads it in a General cell, from its text in the file.

    Whole numbers in full; others in the shortest form, at most 15 significant digits,
    never with an exponent. Text that is not a number is given back unchanged.
    """
    try:
        value = float(raw)
    except ValueError:
        return raw
    return _float_text(value) if value == value else raw


def _float_text(value: float) -> str:
    if value.is_integer() and -1e15 < value < 1e15:
        return str(int(value))
    text = repr(value)
    # 16 characters or fewer hold at most 15 digits: the common case, as it is.
    if len(text) <= 16 and "e" not in text:
        return text
    mantissa = text.partition("e")[0].lstrip("-").replace(".", "").strip("0")
    if len(mantissa) > 15:
        text = f"{value:.15g}"
    if "e" in text or "inf" in text:
        try:
            text = format(Decimal(text), "f")
        except InvalidOperation:
            return text
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _general(raw: str) -> str:
    """``number_text``, quicker for the numbers Excel writes: whole numbers as digits (as
    phones are), others as the shortest decimal that gives the number back (``73.25``)."""
    if raw.isdigit():
        if len(raw) <= 15 and (raw[0] != "0" or len(raw) == 1):
            return raw
    elif (
        len(raw) <= 16  # then at most 15 digits
        and raw.replace(".", "", 1).isdigit()
        and raw[-1] != "0"
        and raw[0] != "."
        and (raw[0] != "0" or raw[1] == ".")
    ):
        return raw
    try:
        value = float(raw)
    except ValueError:
        return raw
    return _float_text(value) if value == value else raw


class _Dates:
    """Turns serial numbers into ISO text, in the workbook's date system."""

    def __init__(self, date1904: bool) -> None:
        self.date1904 = date1904
        self._days: dict[int, str | None] = {}

    def day_text(self, days: int) -> str | None:
        """The ISO date of serial day ``days``, ``None`` if no calendar date has it."""
        text = self._days.get(days, "")
        if text != "":
            return text
        if self.date1904:
            ordinal = _ORDINAL_1904 + days
        elif days >= 61:
            ordinal = _ORDINAL_1900 + days
        elif days == 60:
            ordinal = -1  # 1900-02-29, which Excel counts and the calendar does not
        else:
            ordinal = _ORDINAL_1900 + days + 1
        if ordinal == -1:
            text = "1900-02-29"
        elif 1 <= ordinal <= _MAX_ORDINAL:
            text = date.fromordinal(ordinal).isoformat()
        else:
            text = None
        if len(self._days) < _CACHE_ITEMS:
            self._days[days] = text
        return text

    def renderer(self, kind: FormatKind) -> Callable[[str], str]:
        """How a serial number reads in a format of ``kind`` (a date or time kind)."""
        day_text = self.day_text

        def elapsed(raw: str) -> str:
            try:
                serial = float(raw)
            except ValueError:
                return raw
            millis = round(abs(serial) * _MS_PER_DAY)
            return ("-" if serial < 0 else "") + _clock(millis, hours_in_full=True)

        def moment(raw: str) -> str:
            try:
                serial = float(raw)
            except ValueError:
                return raw
            if not 0 <= serial < _MAX_SERIAL:
                return number_text(raw)  # Excel shows ####### for a negative date
            days, millis = divmod(round(serial * _MS_PER_DAY), _MS_PER_DAY)
            if kind is FormatKind.TIME:
                return _clock(millis)
            day = day_text(days)
            if day is None:
                return number_text(raw)
            if kind is FormatKind.DATE:
                return day
            seconds, fraction = divmod(millis, 1000)
            if fraction:
                return f"{day} {_clock(millis)}"
            minutes, second = divmod(seconds, 60)
            hour, minute = divmod(minutes, 60)
            return _DATETIME_TEXT % (day, hour, minute, second)

        if kind is FormatKind.ELAPSED:
            return elapsed
        if kind is FormatKind.DATETIME:
            return moment  # (nearly) every value differs: nothing to gain from a cache
        cache: dict[str, str] = {}

        def cached(raw: str) -> str:
            text = cache.get(raw)
            if text is None:
                text = moment(raw)
                if len(cache) < _CACHE_ITEMS:
                    cache[raw] = text
            return text

        return cached


def _clock(millis: int, *, hours_in_full: bool = False) -> str:
    """``HH:MM:SS`` (and ``.mmm`` if there are milliseconds) of ``millis`` after midnight."""
    seconds, fraction = divmod(millis, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    if not hours_in_full:
        hour %= 24
    if fraction:
        return _CLOCK_MS_TEXT % (hour, minute, second, fraction)
    return _CLOCK_TEXT % (hour, minute, second)


def _percent(decimals: int) -> Callable[[str], str]:
    quantum = Decimal(1).scaleb(-decimals)

    def render(raw: str) -> str:
        try:
            value = Decimal(raw) * 100
        except InvalidOperation:
            return raw
        if not value.is_finite():
            return raw
        return f"{value.quantize(quantum, rounding=ROUND_HALF_UP)}%"

    return render


def _zeros(width: int) -> Callable[[str], str]:
    def render(raw: str) -> str:
        text = _general(raw)
        if text.isdigit():
            return text.zfill(width)
        if text.startswith("-") and text[1:].isdigit():
            return "-" + text[1:].zfill(width)
        return text

    return render


def _number_renderers(
    package: _Package, dates: _Dates
) -> tuple[dict[str, Callable[[str], str]], dict[str, FormatKind]]:
    """How the numbers of each style read (``{style index: renderer}``, as in a cell's
    ``s`` attribute), and each style's kind of format."""
    renderers: dict[str, Callable[[str], str]] = {}
    kinds: dict[str, FormatKind] = {}
    if package.styles_part is None:
        return {"": _general}, kinds
    root = package.xml(package.styles_part)
    custom: dict[int, str] = {}
    formats: list[int] = []
    for element in root:
        name = _local(element.tag)
        if name == "numFmts":
            for fmt in element:
                try:
                    custom[int(fmt.get("numFmtId", ""))] = fmt.get("formatCode", "")
                except ValueError:
                    continue
        elif name == "cellXfs":
            for xf in element:
                try:
                    formats.append(int(xf.get("numFmtId", "0")))
                except ValueError:
                    formats.append(0)
    made: dict[tuple[FormatKind, int], Callable[[str], str]] = {}
    for index, number in enumerate(formats):
        # A custom code may redefine a built-in id; it wins, as in Excel.
        if number in custom:
            kind = format_kind(custom[number])
        else:
            kind = _BUILTIN_FORMATS.get(number, (FormatKind.GENERAL, 0))
        if kind not in made:
            made[kind] = _renderer(kind, dates)
        renderers[str(index)] = made[kind]
        kinds[str(index)] = kind[0]
    # A cell without a style has style 0.
    renderers[""] = renderers.get("0", _general)
    kinds[""] = kinds.get("0", FormatKind.GENERAL)
    return renderers, kinds


def _renderer(kind: tuple[FormatKind, int], dates: _Dates) -> Callable[[str], str]:
    form, size = kind
    if form is FormatKind.GENERAL:
        return _general
    if form is FormatKind.PERCENT:
        return _percent(size)
    if form is FormatKind.ZEROS:
        return _zeros(size)
    return dates.renderer(form)


# --- text ------------------------------------------------------------------------------------

_ENTITY = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|[a-zA-Z]+);")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
# OOXML writes characters XML cannot hold (and CR, tab) as _xHHHH_, and a literal "_x" as
# "_x005F_x" (ECMA-376 part 1, 22.9.2.19).
_OOXML_ESCAPE = re.compile(r"_x([0-9a-fA-F]{4})_")


def _entity(match: re.Match[str]) -> str:
    name = match[1]
    if name[0] == "#":
        return chr(int(name[2:], 16) if name[1] in "xX" else int(name[1:]))
    return _NAMED_ENTITIES.get(name, match[0])


def _xml_text(raw: str) -> str:
    """The text of raw element content: entities replaced, line ends as an XML parser
    gives them."""
    if "&" in raw:
        raw = _ENTITY.sub(_entity, raw)
    if "\r" in raw:
        raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    return raw


def _unescape_ooxml(text: str) -> str:
    return _OOXML_ESCAPE.sub(lambda match: chr(int(match[1], 16)), text)


def _element_text(element: ElementTree.Element) -> str:
    """The text of an ``si`` or ``is`` element: its runs, without phonetic guides (rPh)."""
    parts = []
    for child in element:
        name = _local(child.tag)
        if name == "t":
            parts.append(child.text or "")
        elif name == "r":
            parts.extend(t.text or "" for t in child if _local(t.tag) == "t")
    text = "".join(parts)
    return _unescape_ooxml(text) if "_x" in text else text


class _SharedStrings:
    """The shared-string table, packed: its texts as UTF-8 end to end, and where each
    starts (``offsets[i]``; ``offsets[i + 1]`` is where it ends).

    A list of Python strings would cost 60-100 bytes a text; this costs the UTF-8 bytes
    and 4 more. ``get(index)`` decodes one on demand.
    """

    def __init__(self) -> None:
        self.blob = bytearray()
        self.offsets = array("I", [0])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, index: int) -> str:
        if index < 0:
            raise IndexError(f"no shared string {index}")
        return self.blob[self.offsets[index] : self.offsets[index + 1]].decode()

    def extend(self, texts: list[bytes]) -> None:
        position = len(self.blob)
        self.blob += b"".join(texts)
        if len(self.blob) >= 1 << 32 and self.offsets.typecode == "I":
            self.offsets = array("Q", self.offsets)
        self.offsets.extend(accumulate(map(len, texts), initial=position))
        del self.offsets[-len(texts) - 1]  # the initial one, already there

    @classmethod
    def read(cls, package: _Package, part: str | None) -> _SharedStrings:
        """The table in ``part`` (an empty one for a workbook without shared strings)."""
        table = cls()
        if part is None:
            return table
        with package.open(part) as stream:
            data, root = _read_start_tag(stream, b"sst")
            prefix = root[1] or b""
            start_tag, close = root[0], b"</%ssst>" % prefix
            # One item: a lone plain <t> (group 1), or anything else (group 2).
            pattern = re.compile(
                rb"<%(p)ssi>(?:<%(p)st(?:\s[^>]*)?>([^<]*)</%(p)st>|(.*?))</%(p)ssi>|<%(p)ssi\s*/>"
                % {b"p": prefix},
                re.S,
            )
            marker = b"<%ssi" % prefix
            carry = data[root.end() :]
            while True:
                more = stream.read(BLOCK_BYTES)
                buffer = carry + more
                cut = buffer.rfind(marker) if more else len(buffer)
                if cut <= 0:
                    carry = buffer
                    continue
                block, carry = buffer[:cut], buffer[cut:]
                items = pattern.findall(block)
                if len(items) != block.count(marker):
                    raise ValueError("unreadable shared strings")
                table.extend(
                    [
                        plain
                        if not rich
                        and b"&" not in plain
                        and b"\r" not in plain
                        and b"_x" not in plain
                        else _rich_text(rich, start_tag, close, prefix)
                        if rich
                        else _plain_text(plain)
                        for plain, rich in items
                    ]
                )
                if not more:
                    return table


def _plain_text(raw: bytes) -> bytes:
    """The UTF-8 text of a plain ``<t>``: entities, line ends and ``_xHHHH_`` decoded."""
    if b"&" in raw or b"\r" in raw or b"_x" in raw:
        text = _xml_text(raw.decode())
        return (_unescape_ooxml(text) if "_x" in text else text).encode("utf-8", "surrogatepass")
    return raw


def _rich_text(body: bytes, start_tag: bytes, close: bytes, prefix: bytes) -> bytes:
    """The UTF-8 text of an ``si`` that is more than a plain ``<t>`` (runs, phonetic guides)."""
    xml = b"%s<%ssi>%s</%ssi>%s" % (start_tag, prefix, body, prefix, close)
    root = ElementTree.fromstring(xml)
    return _element_text(root[0]).encode("utf-8", "surrogatepass")


def _read_start_tag(stream: IO[bytes], name: bytes) -> tuple[bytes, re.Match[bytes]]:
    """Read from ``stream`` until the start tag of the first element called ``name``
    (with any namespace prefix) is in; that data and the tag's match: group 1 the prefix
    (``b"x:"`` or ``None``), group 2 ``b"/"`` for an empty element."""
    pattern = re.compile(rb"<(\w+:)?" + re.escape(name) + rb"\b[^>]*?(/?)>")
    data = b""
    while True:
        found = pattern.search(data)
        if found:
            return data, found
        more = stream.read(1 << 16)
        if not more or len(data) > _HEAD_BYTES_MAX:
            raise ValueError(f"no <{name.decode()}> element")
        data += more


# --- the sheet -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SheetHead:
    """What a sheet's part says before its rows."""

    start_tag: str  # the root element's start tag, namespace declarations and all
    end_tag: str  # the root element's end tag
    prefix: str  # of SpreadsheetML's elements in this part: "" or "x:"
    dimension: str | None
    hidden_columns: tuple[tuple[int, int], ...]
    rest: bytes  # what was read past the <sheetData> start tag
    empty: bool  # <sheetData/>

    @classmethod
    def read(cls, stream: IO[bytes]) -> _SheetHead:
        """Read the head of a sheet's part from the start of ``stream``."""
        data, found = _read_start_tag(stream, b"sheetData")
        prefix = (found[1] or b"").decode()
        root = _WORKSHEET_TAG.search(data, 0, found.start())
        if root is None:
            raise ValueError("no <worksheet> element")
        start_tag, end_tag = root[0].decode(), f"</{root[1].decode()}>"
        head = ElementTree.fromstring(data[root.start() : found.start()] + end_tag.encode())
        dimension = None
        hidden: list[tuple[int, int]] = []
        for element in head:
            name = _local(element.tag)
            if name == "dimension":
                dimension = element.get("ref")
            elif name == "cols":
                for col in element:
                    if col.get("hidden", "").lower() in ("1", "true"):
                        try:
                            hidden.append((int(col.get("min", "")), int(col.get("max", ""))))
                        except ValueError:
                            continue
        return cls(
            start_tag=start_tag,
            end_tag=end_tag,
            prefix=prefix,
            dimension=dimension,
            hidden_columns=tuple(hidden),
            rest=data[found.end() :],
            empty=found[2] == b"/",
        )


def column_letters(number: int) -> str:
    """The letters of column ``number``: ``A`` for 1, ``XFD`` for 16384."""
    letters = ""
    while number > 0:
        number, remainder = divmod(number - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _column_index(letters: str) -> int:
    """The index (from 0) of the column named ``letters``; ``ValueError`` past XFD."""
    index = -1
    for char in letters.upper():
        index = (index + 1) * 26 + ord(char) - 65
    if not 0 <= index < MAX_COLUMNS:
        raise ValueError(f"no column {letters!r}")
    return index


_WORKSHEET_TAG = re.compile(rb"<((?:\w+:)?worksheet)\b[^>]*>")
# The facts a block of rows adds up, to be undone if the block must be parsed again.
_Counts = tuple[int, int | None, int, int | None]
_ROW_NUMBER = re.compile(rb'\sr="([0-9]+)"')


def _row_number(tag: str, default: int) -> int:
    """The number in a row's start tag (its ``r``), or ``default`` if it has none."""
    start = tag.find(' r="') + 4
    return int(tag[start : tag.index('"', start)]) if start > 3 else default


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

    - ``info``: the sheet's name, number, visibility and recorded dimension;
    - ``date1904``: the workbook counts dates from 1904 (old Mac Excel), not 1900;
    - ``hidden_columns``: ``(first, last)`` column numbers (from 1) of hidden columns,
      known on opening (``column_letters`` names them);
    - ``hidden_rows``, ``first_hidden_row``: the hidden rows ``iter_rows`` has met;
    - ``formulas_without_value``, ``first_formula_without_value``: the formulas
      ``iter_rows`` has met that have no cached value (the file was written by a program
      that does not compute formulas: those cells read empty), and the row of the first;
    - ``merged_ranges``: the merged ranges (``"A1:C1"``), ``None`` until ``iter_rows`` has
      read the whole sheet.

    Use it as a context manager, or ``close()`` it.
    """

    def __init__(self, package: _Package, info: SheetInfo) -> None:
        self.path = package.path
        self.info = info
        self._package = package
        self._part = package.sheet_part(info)
        with _reading(self.path):
            self.date1904 = package.date1904
            with package.open(self._part) as stream:
                self._head = _SheetHead.read(stream)
            self._renderers, self._kinds = _number_renderers(package, _Dates(self.date1904))
            self._strings = _SharedStrings.read(package, package.strings_part)
        self.hidden_columns = self._head.hidden_columns
        self.hidden_rows = 0
        self.first_hidden_row: int | None = None
        self.formulas_without_value = 0
        self.first_formula_without_value: int | None = None
        self.merged_ranges: tuple[str, ...] | None = None
        prefix = self._head.prefix
        p = re.escape(prefix)
        # The rows and cells of a block, in one pass: a row's start tag (group 1), or a
        # cell: its column letters, style, type, formula element, value and inline string,
        # its attributes in the order every spreadsheet program writes them (r, s, t, then
        # others such as cm or vm). A cell written otherwise is not matched, and the counts
        # in _rows() send its block to ElementTree.
        self._token_pattern = re.compile(
            # Possessive quantifiers (*+, ?+): nothing to try again on a failed match, and
            # a quarter faster than plain ones.
            rf"(<{p}row\b[^>]*+>)"
            rf'|<{p}c r="([A-Za-z]*+)[0-9]*+"(?: s="([0-9]*+)")?+(?: t="(\w*+)")?+'
            r'(?:\s++[\w:.-]++="[^"]*+")*+\s*+'
            rf"(?:/>|>(<{p}f\b[^>]*?(?:/>|>[^<]*+</{p}f>))?+"
            rf"(?:<{p}v>([^<]*+)</{p}v>)?+"
            rf"(<{p}is>.*?</{p}is>)?+</{p}c>)",
            re.S,
        )
        # Every element of a sheet's rows whose name starts with "c" is a cell, except in
        # rich inline text (<color>, <charset>...), which then goes to ElementTree.
        self._cell_tag_bytes = f"<{prefix}c".encode()
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
        last = 0
        try:
            with self._package.open(self._part) as stream:
                head = _SheetHead.read(stream)
                if head.empty:
                    self._read_tail(head.rest + stream.read())
                    return
                carry = head.rest
                next_row = 1  # the number of the next row, if it gives none
                while True:
                    data = stream.read(BLOCK_BYTES)
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

        The patterns read the markup spreadsheet programs write; when they do not account
        for every row and cell of the block, the block is parsed again with ElementTree,
        and if that fails, one row at a time, to keep the rows before the damaged one
        (raising ``_Damaged``).
        """
        counts = self._counts()
        text = block.decode("utf-8")
        # Comments, CDATA and processing instructions could hide or hold markup the
        # patterns would take at face value. (Bytes are counted quicker than text.)
        if b"<!" not in block and b"<?" not in block:
            try:
                found, after, cells_seen, rows_seen = self._rows_by_pattern(text, next_row)
            except (ValueError, IndexError, KeyError):
                cells_seen = rows_seen = -1
            if rows_seen == block.count(self._row_tag_bytes) and cells_seen == block.count(
                self._cell_tag_bytes
            ):
                return found, after
        self._restore(counts)
        try:
            return self._rows_by_tree(text, next_row)
        except (ElementTree.ParseError, ValueError, IndexError):
            self._restore(counts)
        found = []
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
    ) -> tuple[list[tuple[int, tuple[str, ...]]], int, int, int]:
        """The rows of ``text`` read with the token pattern; the number of the row after
        them, and how many cells and rows the pattern matched."""
        found: list[tuple[int, tuple[str, ...]]] = []
        tokens = self._token_pattern.findall(text)
        columns = self._columns
        renderers = self._renderers
        blob, offsets = self._strings.blob, self._strings.offsets
        rows_seen = 0
        number = 0
        values: list[str] = []
        append = values.append
        # The hot loop: one pass per cell, with the common types (number, shared string)
        # handled here and the others in _typed().
        for row_tag, letters, style, kind, formula, raw, inline in tokens:
            if row_tag:
                if values:
                    while values and not values[-1]:
                        values.pop()
                    if values:
                        found.append((number, tuple(values)))
                    values = []
                    append = values.append
                rows_seen += 1
                number = _row_number(row_tag, next_row)
                next_row = number + 1
                if "hidden" in row_tag and _HIDDEN.search(row_tag):
                    self._hidden_row(number)
                continue
            try:
                index = columns[letters]
            except KeyError:
                index = columns[letters] = _column_index(letters)
            if index != len(values):
                if index < len(values):
                    del values[index:]  # a cell given twice: the last one wins
                else:
                    values.extend([""] * (index - len(values)))
            if kind == "s":
                item = int(raw)
                append(blob[offsets[item] : offsets[item + 1]].decode())
            elif not kind or kind == "n":
                if raw:
                    try:
                        append(renderers[style](raw))
                    except KeyError:  # a style the workbook does not define
                        append(_general(raw))
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
                append(self._typed(number, kind, style, _xml_text(raw), bool(formula)))
        while values and not values[-1]:
            values.pop()
        if values:
            found.append((number, tuple(values)))
        return found, next_row, len(tokens) - rows_seen, rows_seen

    def _typed(self, number: int, kind: str, style: str, text: str, formula: bool) -> str:
        """A cell of a type other than shared or inline string, from its value's text."""
        if not text:
            if formula:
                self._formula_without_value(number)
            return ""
        if kind == "n":
            return self._renderers.get(style, _general)(text)
        if kind == "b":
            return "TRUE" if text.strip() in ("1", "true") else "FALSE"
        if kind == "d":
            return _iso_date_text(text, self._kinds.get(style, FormatKind.GENERAL))
        if kind == "str":
            return _unescape_ooxml(text) if "_x" in text else text
        return text  # e (an error value such as #N/A), or a type Excel does not write

    def _inline_text(self, xml: str) -> str:
        """The text of an inline string element ``<is>...</is>``."""
        simple = self._inline_pattern.fullmatch(xml)
        if simple:
            text = _xml_text(simple[1])
            return _unescape_ooxml(text) if "_x" in text else text
        head = self._head
        return _element_text(ElementTree.fromstring(f"{head.start_tag}{xml}{head.end_tag}")[0])

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
            if _local(row.tag) != "row":
                continue
            number = int(row.get("r") or next_row)
            next_row = number + 1
            if row.get("hidden", "").lower() in ("1", "true"):
                self._hidden_row(number)
            values: list[str] = []
            for cell in row:
                if _local(cell.tag) != "c":
                    continue
                letters = cell.get("r", "").rstrip("0123456789")
                if letters:
                    index = _column_index(letters)
                    del values[index:]
                    values.extend([""] * (index - len(values)))
                children = {_local(child.tag): child for child in cell}
                kind = cell.get("t", "n")
                value = children["v"].text or "" if "v" in children else ""
                if kind == "inlineStr":
                    values.append(_element_text(children["is"]) if "is" in children else "")
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


def _iso_date_text(text: str, kind: FormatKind) -> str:
    """A cell of type ``d`` (an ISO 8601 date, as Strict OOXML and some programs write
    dates), read as a serial date with the same number format would be."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", ""))
    except ValueError:
        return text
    day = moment.date().isoformat()
    clock = _clock(
        ((moment.hour * 60 + moment.minute) * 60 + moment.second) * 1000
        + moment.microsecond // 1000
    )
    if kind is FormatKind.DATE or (kind is not FormatKind.DATETIME and "T" not in text):
        return day
    if kind is FormatKind.TIME:
        return clock
    return f"{day} {clock}"
