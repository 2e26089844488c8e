"""The workbook as a package: what kind of file it is (by its content), its zip entries and
relationships, its sheets, and the head of a sheet's part (what it says before its rows).

Every part is checked before it is read: one that would expand more than
``limits.MAX_EXPANSION`` times over its compressed size (past ``limits.EXPANSION_FLOOR``),
or to more than ``limits.MAX_PART_BYTES``, refuses the file in one line. The zip module
never gives more bytes than a part's recorded size (and checks them against its CRC), so
the recorded sizes bound what reading can cost.
"""

from __future__ import annotations

import enum
import io
import os
import posixpath
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote

from bulkimport.errors import InputError
from bulkimport.reader import limits
from bulkimport.reader.workbook.markup import local_name, read_start_tag, reading, scan

# A workbook's part relates to one part per sheet and a few others (styles, shared
# strings, theme, external links).
_MAX_RELATIONSHIPS = 2 * limits.MAX_SHEETS
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")


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


NOT_READ = {
    WorkbookKind.XLS: "an Excel 97-2003 workbook (.xls), which is not read; open it in Excel "
    "or LibreOffice and save it as .xlsx",
    WorkbookKind.XLSB: "an Excel binary workbook (.xlsb), which is not read; open it in Excel "
    "and save it as .xlsx",
    WorkbookKind.ODS: "an OpenDocument spreadsheet (.ods), which is not read; open it in "
    "LibreOffice and save it as .xlsx",
    WorkbookKind.ENCRYPTED: "the workbook is protected by a password; open it in Excel, "
    "remove the password (File > Info > Protect Workbook) and save it",
}


def list_sheets(path: str | os.PathLike[str]) -> list[SheetInfo]:
    """The sheets of the workbook at ``path``, in tab order. Raises ``InputError`` for a
    file that is not a readable xlsx."""
    with Package(Path(path)) as package:
        return package.sheets()


def choose_sheet(path: Path, sheets: list[SheetInfo], wanted: str | int | None) -> SheetInfo:
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
        f"{info.number} {limits.shown(info.name)}" + ("" if info.visible else f" ({info.state})")
        for info in sheets[:20]
    ) + ("" if len(sheets) <= 20 else f", ... ({len(sheets):,} in all)")
    if chosen is None:
        asked = limits.shown(wanted) if isinstance(wanted, str) else wanted
        raise InputError(
            f"{path}: no sheet {asked}; its sheets are {names} (give a name or a number)"
        )
    if chosen.kind != "worksheet":
        raise InputError(
            f"{path}: sheet {limits.shown(chosen.name)} is a {chosen.kind}, it has no cells"
        )
    return chosen


# --- the package: zip entries and relationships ------------------------------------------


class Package:
    """An open xlsx: its zip, the workbook part, its sheets and where their parts are."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            raise InputError(f"{path}: no such file; check the path")
        if path.is_dir():
            raise InputError(f"{path}: is a directory, not a workbook")
        found = is_workbook(path)
        if found is not WorkbookKind.XLSX:
            reason = NOT_READ[found] if found else "not an xlsx workbook"
            raise InputError(f"{path}: {reason}")
        with reading(path):
            self.zip = zipfile.ZipFile(path)
        try:
            with reading(path):
                self._names = {name.lower(): name for name in self.zip.namelist()}
                self.workbook_part = self._main_part()
                rels = self._relationships(self.workbook_part)
                self.date1904 = False
                self._sheet_parts: dict[str, str | None] = {}
                self._sheets: list[SheetInfo] = []
                self._read_workbook(rels)
        except BaseException:
            self.zip.close()
            raise
        self.styles_part = self._related(rels, "/styles")
        self.strings_part = self._related(rels, "/sharedStrings")

    def _read_workbook(self, rels: dict[str, tuple[str | None, str]]) -> None:
        """The date system and the sheets, from the workbook part."""
        with self.open(self.workbook_part) as stream:
            elements = scan(stream, (("workbookPr",), ("sheets", "sheet")))
            for path, attrib in elements:
                if path == ("workbookPr",):
                    self.date1904 = attrib.get("date1904", "").lower() in ("1", "true")
                    continue
                number = len(self._sheets) + 1
                if number > limits.MAX_SHEETS:
                    # Each sheet's head is read to list them: a workbook of a million
                    # sheets would be read a million times.
                    raise InputError(
                        f"{self.path}: the workbook has more than {limits.MAX_SHEETS:,} "
                        "sheets; open it in Excel and save the sheet to load as a workbook "
                        "of its own"
                    )
                rel_id = next(
                    (value for key, value in attrib.items() if local_name(key) == "id"), ""
                )
                target, rel_type = rels.get(rel_id, (None, ""))
                sheet_kind = local_name(rel_type.replace("/", "}")) or "worksheet"
                if sheet_kind == "xlMacrosheet":
                    sheet_kind = "macrosheet"
                sheet_name = attrib.get("name", f"Sheet{number}")
                self._sheet_parts[sheet_name] = target
                self._sheets.append(
                    SheetInfo(
                        name=sheet_name,
                        number=number,
                        state=attrib.get("state", "visible"),
                        kind=sheet_kind,
                        dimension=None,
                    )
                )

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> Package:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sheets(self) -> list[SheetInfo]:
        """The sheets, each with the dimension its part records (read from its head)."""
        found = []
        with reading(self.path):
            for info in self._sheets:
                part = self._sheet_parts.get(info.name)
                dimension = None
                if info.kind == "worksheet" and part is not None and self.has(part):
                    with self.open(part) as stream:
                        dimension = SheetHead.read(stream).dimension
                found.append(SheetInfo(info.name, info.number, info.state, info.kind, dimension))
        return found

    def sheet_part(self, info: SheetInfo) -> str:
        """The part holding the cells of sheet ``info``."""
        part = self._sheet_parts.get(info.name)
        if part is None or not self.has(part):
            raise InputError(
                f"{self.path}: the workbook is damaged (the cells of sheet "
                f"{limits.shown(info.name)} are missing); open it in Excel and save it again"
            )
        return part

    def open(self, part: str) -> IO[bytes]:
        """The decompressed content of ``part`` as a stream; ``InputError`` if it would
        expand past the limits (a zip bomb)."""
        info = self.zip.getinfo(self._names[part.lower()])
        self._check_expansion(info)
        return self.zip.open(info)

    def _check_expansion(self, info: zipfile.ZipInfo) -> None:
        """Refuse a part that would expand too much, before reading a byte of it.

        The whole file is refused, not the part alone: a part that expands like a zip bomb
        was not written by a spreadsheet program, and nothing else in the file can be
        trusted to be what it seems."""
        size, packed = info.file_size, info.compress_size
        ratio = size / max(packed, 1)
        if size > limits.MAX_PART_BYTES:
            why = f"more than the {limits.MAX_PART_BYTES:,} bytes a part may have"
        elif size > limits.EXPANSION_FLOOR and ratio > limits.MAX_EXPANSION:
            why = f"a workbook's part expands at most {limits.MAX_EXPANSION} times"
        else:
            return
        raise InputError(
            f"{self.path}: part {info.filename} expands from {packed:,} to {size:,} bytes "
            f"({ratio:,.0f} times; {why}): not a workbook a spreadsheet program saved, "
            "refused unread"
        )

    def size(self, part: str) -> int:
        """The decompressed size of ``part`` in bytes, as the zip's directory records it."""
        return self.zip.getinfo(self._names[part.lower()]).file_size

    def has(self, part: str) -> bool:
        return part.lower() in self._names

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
        with self.open(rels_part) as stream:
            for _, rel in scan(stream, (("Relationship",),)):
                target = rel.get("Target", "")
                if rel.get("TargetMode") == "External":
                    part_name = None
                elif target.startswith("/"):
                    part_name = unquote(target[1:])
                else:
                    part_name = posixpath.normpath(posixpath.join(folder, unquote(target)))
                found[rel.get("Id", "")] = (part_name, rel.get("Type", ""))
                if len(found) > _MAX_RELATIONSHIPS:
                    raise InputError(
                        f"{self.path}: part {rels_part} lists more than "
                        f"{_MAX_RELATIONSHIPS:,} relationships; open the workbook in Excel "
                        "and save it again"
                    )
        return found

    def _related(self, rels: dict[str, tuple[str | None, str]], type_end: str) -> str | None:
        for target, rel_type in rels.values():
            if rel_type.endswith(type_end) and target and self.has(target):
                return target
        return None


@dataclass(frozen=True)
class SheetHead:
    """What a sheet's part says before its rows."""

    start_tag: str  # the root element's start tag, namespace declarations and all
    end_tag: str  # the root element's end tag
    prefix: str  # of SpreadsheetML's elements in this part: "" or "x:"
    dimension: str | None
    hidden_columns: tuple[tuple[int, int], ...]
    rest: bytes  # what was read past the <sheetData> start tag
    empty: bool  # <sheetData/>

    @classmethod
    def read(cls, stream: IO[bytes]) -> SheetHead:
        """Read the head of a sheet's part from the start of ``stream``."""
        data, found = read_start_tag(stream, b"sheetData")
        prefix = (found[1] or b"").decode()
        root = _WORKSHEET_TAG.search(data, 0, found.start())
        if root is None:
            raise ValueError("no <worksheet> element")
        start_tag, end_tag = root[0].decode(), f"</{root[1].decode()}>"
        head = io.BytesIO(data[root.start() : found.start()] + end_tag.encode())
        dimension = None
        hidden: list[tuple[int, int]] = []
        for path, attrib in scan(head, (("dimension",), ("cols", "col"))):
            if path == ("dimension",):
                dimension = attrib.get("ref")
            elif attrib.get("hidden", "").lower() in ("1", "true"):
                try:
                    hidden.append((int(attrib.get("min", "")), int(attrib.get("max", ""))))
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


_WORKSHEET_TAG = re.compile(rb"<((?:\w+:)?worksheet)\b[^>]*>")
