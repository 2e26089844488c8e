"""How a file is read: what the user said (``settings.ReadSettings``) and what sniffing decided
(``FileFormat``: the kind of file, its encoding and delimiter or its sheet, the header, the
mapping, where the first record starts).

``sniff_format`` looks at the head of the file once; its result is stored with the job, so
that a later process reads (or resumes reading) the file exactly the same way. A workbook is
told by its content, whatever its name (``workbook.is_workbook``): a workbook renamed
``.csv`` is read as a workbook.
"""

from __future__ import annotations

import csv
import enum
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any

from bulkimport.errors import ConfigError, InputError
from bulkimport.reader import limits
from bulkimport.reader.encoding import (
    MIXED_REFUSE_LINES,
    MIXED_REFUSE_SHARE,
    SAMPLE_BYTES,
    detect_encoding,
    display_name,
    is_legacy,
    mixed_lines,
)
from bulkimport.reader.header import (
    HeadRecord,
    check_constants,
    choose_header,
    clean_header,
    filled,
    left_margin,
    map_fields,
)
from bulkimport.reader.lines import flat_lines, read_blocks
from bulkimport.reader.phones import is_phone_like
from bulkimport.reader.workbook import (
    NOT_READ,
    RowFault,
    WorkbookKind,
    column_index,
    is_workbook,
    open_sheet,
)
from bulkimport.settings import DEFAULT_MAX_RECORD_LINES, ReadSettings
from bulkimport.states import Allow

#: How many lines (or rows) from the header on sniffing looks at, and how much of them at
#: most (long lines would otherwise make the head take 200 times a row's limit).
SNIFF_LINES = 200
SNIFF_CHARS = 2 << 20


#: The delimiters the sniffer chooses between, in order of preference on a tie.
DELIMITERS = (",", ";", "\t", "|")

_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


#: What the user said about the file: the read settings, as the reader takes them (the name
#: its callers knew; the same type).
ReaderOptions = ReadSettings


class InputKind(enum.StrEnum):
    """What kind of file a job reads, told by its content."""

    CSV = "csv"  # delimited text: positions are physical lines and byte offsets
    XLSX = "xlsx"  # a sheet of an Excel workbook (.xlsx, .xlsm): positions are sheet rows
    ROWS = "rows"  # mappings given by a program (Client.load_rows): positions are their order


@dataclass(frozen=True)
class FileFormat:
    """What sniffing decided about a file, enough to read (or resume reading) its records.

    ``header`` holds the column names as in the file; ``fields`` the field each column is
    sent as (``None``: dropped). ``data_offset`` / ``data_line`` locate the first record
    after the header (byte offset, 1-based physical line). The rest is how records are made,
    as ``ReadSettings`` says.

    ``kind`` says what the file is; for a workbook (``InputKind.XLSX``), ``sheet`` is the
    name of the sheet read, ``data_line`` the sheet row of the first record, and
    ``encoding``, ``delimiter``, ``data_offset`` have no bearing (``utf-8``, ``,``, 0).
    For rows given by a program (``InputKind.ROWS``), ``sheet`` is the name they were given
    under and ``data_line`` is 1: a row's number is its place among them.
    Formats stored before workbooks were read have neither field: they are CSV.
    """

    encoding: str
    encoding_confidence: float
    delimiter: str
    header: tuple[str, ...]
    fields: tuple[str | None, ...]
    constants: tuple[tuple[str, str], ...]
    keep_empty: bool
    data_offset: int
    data_line: int
    bom: bool = False  # the file starts with a byte-order mark (of its encoding)
    keep_spaces: bool = False
    max_record_lines: int = DEFAULT_MAX_RECORD_LINES
    phone_fields: tuple[str, ...] = ()  # sent fields whose numbers are examined
    repair: bool = True
    kind: InputKind = InputKind.CSV
    sheet: str | None = None
    allow: tuple[Allow, ...] = ()  # --allow: values let through (see reader.values)
    # Each phone field's usual number of digits, learned from the head of the file
    # (reader.learn); kept with the job so that a resume judges as the first run did.
    usual_lengths: tuple[tuple[str, int], ...] = ()

    @property
    def unit(self) -> str:
        """What a record's number counts, for messages: ``line`` (CSV) or ``row`` (a sheet,
        rows given by a program)."""
        return "line" if self.kind is InputKind.CSV else "row"

    def describe(self) -> str:
        """How the file is read, in a few words: ``utf-8, delimiter ','`` or
        ``sheet 'Leads' of a workbook``."""
        if self.kind is InputKind.XLSX:
            return f"sheet {self.sheet!r} of a workbook"
        if self.kind is InputKind.ROWS:
            return f"rows {self.sheet!r} given by a program"
        return f"{self.encoding}, delimiter {self.delimiter!r}"

    def to_json(self) -> str:
        """The format as a JSON object, to be stored with the job."""
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FileFormat:
        """Read back what ``to_json`` wrote."""
        data: dict[str, Any] = json.loads(text)
        return cls(
            encoding=str(data["encoding"]),
            encoding_confidence=float(data["encoding_confidence"]),
            delimiter=str(data["delimiter"]),
            header=tuple(data["header"]),
            fields=tuple(data["fields"]),
            constants=tuple((str(name), str(value)) for name, value in data["constants"]),
            keep_empty=bool(data["keep_empty"]),
            data_offset=int(data["data_offset"]),
            data_line=int(data["data_line"]),
            bom=bool(data.get("bom", False)),
            # Jobs read before values were trimmed go on reading as they started.
            keep_spaces=bool(data.get("keep_spaces", True)),
            max_record_lines=int(data.get("max_record_lines", DEFAULT_MAX_RECORD_LINES)),
            phone_fields=tuple(data.get("phone_fields", ())),
            repair=bool(data.get("repair", True)),
            kind=InputKind(data.get("kind", InputKind.CSV)),
            sheet=None if data.get("sheet") is None else str(data["sheet"]),
            allow=tuple(Allow(value) for value in data.get("allow", ())),
            usual_lengths=tuple(
                (str(name), int(length)) for name, length in data.get("usual_lengths", ())
            ),
        )


def normalize_delimiter(text: str) -> str:
    """One delimiter character from ``,`` ``;`` ``tab`` ``\\t`` ``|`` and the like."""
    delimiter = _DELIMITER_NAMES.get(text.lower(), text)
    if len(delimiter) != 1 or delimiter in '\r\n"':
        raise ConfigError(f"the delimiter must be one character (or 'tab'), not {text!r}")
    return delimiter


def sniff_format(path: Path, options: ReadSettings | None = None) -> FileFormat:
    """Decide how to read ``path``: its kind, then its encoding and delimiter (a CSV file)
    or its sheet (a workbook), the header, the mapping, the first record.

    Raises ``InputError`` when the file cannot be read at all (missing, a directory,
    unreadable, binary, empty, no header, unusable column names, a workbook of a kind that
    is not read) and ``ConfigError`` for a bad option value.
    """
    options = options or ReadSettings()
    if options.skip_rows < 0:
        raise ConfigError("--skip-rows cannot be negative")
    if options.max_record_lines < 1:
        raise ConfigError("--max-record-lines must be at least 1")
    workbook = is_workbook(path)
    if workbook is not None:
        return _sniff_sheet(path, workbook, options)
    return _sniff_csv(path, options)


def _sniff_csv(path: Path, options: ReadSettings) -> FileFormat:
    forced_delimiter = normalize_delimiter(options.delimiter) if options.delimiter else None
    with open_file(path) as handle:
        try:
            sample = handle.read(SAMPLE_BYTES)
        except OSError as exc:
            raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
        if not sample:
            raise InputError(f"{path}: the file is empty")
        encoding, confidence, bom_length = detect_encoding(path, sample, options.encoding)
        if is_legacy(encoding):
            _refuse_mixed(path, sample, encoding)
        lines = flat_lines(read_blocks(handle, encoding, bom_length, path))
        offset, line_no = bom_length, 0
        for _ in range(options.skip_rows):
            skipped = next(lines, None)
            if skipped is None:
                raise InputError(
                    f"{path}: the file has only {line_no} lines, "
                    f"fewer than --skip-rows {options.skip_rows}"
                )
            offset += skipped[1]
            line_no += 1
        # Blank lines above the header (Excel title blocks) are not records: skip them.
        head: list[tuple[str, int]] = []
        for text, size in lines:
            if size > limits.MAX_ROW_BYTES:
                # Given as an empty line: it may be the header, which every row needs.
                raise InputError(
                    f"{path}: line {line_no + 1} is {size:,} bytes long, more than a row may "
                    f"take ({limits.MAX_ROW_BYTES:,}): it cannot be read as the header; is "
                    "this a CSV file?"
                )
            if text.strip():
                head.append((text, size))
                break
            offset += size
            line_no += 1
        else:
            raise InputError(f"{path}: the file has no header (it is empty or only blank lines)")
        taken = head[0][1]
        for pair in lines:
            head.append(pair)
            taken += len(pair[0])
            if len(head) >= SNIFF_LINES or taken > SNIFF_CHARS:
                break
    texts = [text for text, _ in head]
    delimiter = forced_delimiter or sniff_delimiter(texts)
    records = _head_records(path, texts, delimiter, line_no)
    header_record = choose_header(path, records, line_no)
    header_line = line_no + header_record.first + 1
    raw_names = header_record.cells
    header = clean_header(raw_names)
    margin = left_margin(header, records[records.index(header_record) + 1 :])
    fields, header = map_fields(
        path, header_line, header, len(raw_names), options.renamed, margin=margin
    )
    constants = check_constants(path, fields, options.constants)
    return FileFormat(
        encoding=encoding,
        encoding_confidence=confidence,
        delimiter=delimiter,
        header=header,
        fields=fields,
        constants=constants,
        keep_empty=options.keep_empty,
        data_offset=offset + sum(size for _, size in head[: header_record.end]),
        data_line=line_no + header_record.end + 1,
        bom=bom_length > 0,
        keep_spaces=options.keep_spaces,
        max_record_lines=options.max_record_lines,
        phone_fields=phone_fields(fields, options),
        repair=options.repair,
        allow=options.allow,
    )


def _refuse_mixed(path: Path, sample: bytes, encoding: str) -> None:
    """Refuse a file in the legacy ``encoding`` whose head has many lines of UTF-8 text
    (``encoding.MIXED_REFUSE_SHARE``): two files glued together. A few such lines are
    read, each an invalid row (``InvalidReason.OTHER_ENCODING``)."""
    foreign, others, first = mixed_lines(sample, encoding)
    if first is None or foreign < MIXED_REFUSE_LINES:
        return
    if foreign < MIXED_REFUSE_SHARE * (foreign + others):
        return
    number, line = first
    name = display_name(encoding)
    raise InputError(
        f"{path}: the file mixes two encodings: {foreign:,} of the {foreign + others:,} lines "
        f"with non-ASCII text in its head are UTF-8, the others {name} (line {number} reads "
        f"as UTF-8 {limits.shown(line.other)}, as {name} {limits.shown(line.own)}); save it "
        "in one encoding (convert each part to UTF-8) and load it again"
    )


def _head_records(
    path: Path, texts: list[str], delimiter: str, lines_before: int
) -> list[HeadRecord]:
    """The records of ``texts`` (the head of the file after ``lines_before`` lines) that
    fill a cell; a header the csv module cannot read is refused."""
    records: list[HeadRecord] = []
    reader = csv.reader(texts, delimiter=delimiter, strict=False)
    before = 0
    try:
        for cells in reader:
            if filled(cells):
                records.append(HeadRecord(before, reader.line_num, cells))
            before = reader.line_num
    except csv.Error as exc:
        if not records:
            line = lines_before + before + 1
            raise InputError(f"{path}: line {line}: cannot read the header ({exc})") from None
    return records


def _sniff_sheet(path: Path, kind: WorkbookKind, options: ReadSettings) -> FileFormat:
    """The format of a sheet of a workbook: its first rows after ``--skip-rows`` give the
    header as a CSV file's first lines do; row numbers are the sheet's."""
    if kind is not WorkbookKind.XLSX:
        raise InputError(f"{path}: {NOT_READ[kind]}")
    skipped = options.skip_rows
    with open_sheet(path, options.sheet) as sheet:
        head = []
        faults: dict[int, RowFault] = {}  # of the rows of the head: see _refuse_unread
        taken = 0
        rows = sheet.iter_rows(start_row=skipped + 1, rows=SNIFF_LINES)
        for number, cells in islice(rows, SNIFF_LINES):
            head.append((number, cells))
            if number in sheet.faults:
                faults[number] = sheet.faults[number]
            taken += sum(map(len, cells))
            if taken > SNIFF_CHARS:
                break
        name = sheet.info.name
        used = _dimension_width(sheet.info.dimension)
    records = [
        HeadRecord(number - skipped - 1, number - skipped, cells)
        for number, cells in head
        if filled(cells)
    ]
    if not records and not faults:
        below = f" below row {skipped}" if skipped else ""
        raise InputError(
            f"{path}: sheet {name!r} has no header (it is empty{below}); "
            "choose another sheet with --sheet"
        )
    # Every row is read against the header: a header that cannot be read (or a row above
    # it, which may be the header) refuses the file.
    _refuse_unread(path, name, faults, skipped + records[0].first + 1 if records else None)
    header_record = choose_header(path, records, skipped, unit="row")
    header_row = skipped + header_record.first + 1
    _refuse_unread(path, name, faults, header_row)
    raw_width = max(used, *(len(cells) for _, cells in head))
    header = clean_header(header_record.cells)
    margin = left_margin(header, records[records.index(header_record) + 1 :])
    fields, header = map_fields(
        path, header_row, header, raw_width, options.renamed, "row", margin=margin
    )
    constants = check_constants(path, fields, options.constants)
    return FileFormat(
        encoding="utf-8",
        encoding_confidence=1.0,
        delimiter=",",
        header=header,
        fields=fields,
        constants=constants,
        keep_empty=options.keep_empty,
        data_offset=0,
        data_line=header_row + 1,
        keep_spaces=options.keep_spaces,
        phone_fields=phone_fields(fields, options),
        repair=options.repair,
        allow=options.allow,
        kind=InputKind.XLSX,
        sheet=name,
    )


def _refuse_unread(path: Path, sheet: str, faults: dict[int, RowFault], header: int | None) -> None:
    """Refuse the file if a row of its head up to row ``header`` (any row if ``None``) was
    too long to be read."""
    unread = sorted(
        number
        for number, fault in faults.items()
        if fault.too_long and (header is None or number <= header)
    )
    if unread:
        what = "the header" if unread[0] == header else "the header, or above it"
        raise InputError(
            f"{path}: sheet {sheet!r}, row {unread[0]} ({what}): {faults[unread[0]].too_long}"
        )


def _dimension_width(dimension: str | None) -> int:
    """The columns of the range a sheet records as used (``A1:P900``: 16), 0 if unknown."""
    if not dimension:
        return 0
    letters = dimension.rpartition(":")[2].replace("$", "").rstrip("0123456789")
    try:
        return column_index(letters) + 1 if letters else 0
    except ValueError:
        return 0


def phone_fields(fields: tuple[str | None, ...], options: ReadSettings) -> tuple[str, ...]:
    """The sent fields whose numbers the reader examines: ``--phone-field`` and the fields
    named like a phone."""
    return tuple(
        name
        for name in fields
        if name is not None and (name == options.phone_field or is_phone_like(name))
    )


def sniff_delimiter(lines: Sequence[str]) -> str:
    """The delimiter among ``DELIMITERS`` that best splits ``lines`` (header first).

    The header (the first row that fills two cells: title lines above it do not count) must
    split into at least two columns; then the share of rows with the same number of cells
    wins, then the number of columns. A file with one column gets ``,``.
    """
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        try:
            rows = [row for row in csv.reader(lines, delimiter=delimiter) if row]
        except csv.Error:
            continue
        # Title lines above the header fill one cell whatever the delimiter: the header is
        # the first row that fills two.
        start = next((i for i, row in enumerate(rows) if filled(row) >= 2), None)
        if start is None:
            continue
        width = len(rows[start])
        fitting = sum(
            1
            for row in rows[start + 1 :]
            if len(row) == width or (len(row) > width and not any(row[width:]))
        )
        # Rows above the header count as misfits: skipping rows must not win by itself.
        others = len(rows) - 1
        score = (fitting / others if others else 1.0, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def head_controls(path: Path, fmt: FileFormat) -> tuple[str, ...]:
    """The control characters (a form feed, a vertical tab... not line breaks or tabs) in
    a CSV file's head, from its start to its first record: the header trims them off its
    names, and a person should hear of it (a form feed is a printed report's page break)."""
    if fmt.kind is not InputKind.CSV or not fmt.data_offset:
        return ()
    try:
        with open(path, "rb") as handle:
            head = handle.read(min(fmt.data_offset, SNIFF_CHARS))
    except OSError:
        return ()
    text = head.decode(fmt.encoding, "replace")
    return tuple(sorted({char for char in text if _HEAD_CONTROL.match(char)}))


_HEAD_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x85\u2028\u2029]")


def refuse_stdin(path: Path) -> None:
    """Refuse ``-`` (standard input) when no file has that name: a job reads its file again
    to resume after a crash or a stop, and compares it with what it read; a pipe can be
    read once."""
    if str(path) == "-" and not path.exists():
        raise InputError(
            "-: standard input is not read: a job must read its file again to resume after "
            "a crash or a stop; save the input to a file first (... > leads.csv) and give "
            "that file"
        )


def open_file(path: Path) -> IO[bytes]:
    refuse_stdin(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a CSV file")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(
            f"{path}: cannot open the file ({exc.strerror or exc}); check its permissions"
        ) from None
