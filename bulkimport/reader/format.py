"""How a file is read: what the user said (``ReaderOptions``) and what sniffing decided
(``FileFormat``: encoding, delimiter, header, mapping, where the first record starts).

``sniff_format`` looks at the head of the file once; its result is stored with the job, so
that a later process reads (or resumes reading) the file exactly the same way.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from bulkimport.errors import ConfigError, InputError, RecordError
from bulkimport.protocol import encode_record
from bulkimport.reader.encoding import SAMPLE_BYTES, detect_encoding
from bulkimport.reader.lines import flat_lines, read_blocks
from bulkimport.reader.phones import is_phone_like
from bulkimport.rows import REPORT_COLUMNS

#: How many lines from the header on the delimiter sniffer parses.
SNIFF_LINES = 200


#: The lines a quoted value may span by default: a memo or an address runs to a few lines,
#: a quote that is still open after a hundred was never closed.
DEFAULT_MAX_RECORD_LINES = 100

#: Title lines above the header: at most this many, each filling at most this many cells ...
TITLE_MAX_LINES = 10
TITLE_MAX_CELLS = 2
#: ... compared with the median of the cells filled by this many records below it.
TITLE_LOOKAHEAD = 20

#: The delimiters the sniffer chooses between, in order of preference on a tie.
DELIMITERS = (",", ";", "\t", "|")


# `--map '#3=phone2'`: a column by its position, 1-based as a person counts.
_POSITION = re.compile(r"#(\d+)")

_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


@dataclass(frozen=True)
class ReaderOptions:
    """What the user said about the file; ``None`` means detect or sniff.

    ``rename`` maps a column of the file, by name or by position (``#3``, 1-based), to a
    field name (``None`` or ``""`` drops the column); ``constants`` are ``(field, value)``
    pairs added to every record; ``keep_empty`` sends empty cells as ``field=`` instead of
    leaving them out; ``keep_spaces`` sends values with the whitespace around them (it is
    trimmed by default); a quoted value may span at most ``max_record_lines`` lines (a quote
    still open after that is taken as unclosed). ``phone_field`` is the target's
    ``--phone-field``: with the fields named like a phone, its numbers are repaired (or, not
    ``repair``, refused) when Excel damaged them (see ``phones``).
    """

    encoding: str | None = None
    delimiter: str | None = None
    skip_rows: int = 0
    rename: Mapping[str, str | None] = field(default_factory=dict)
    constants: tuple[tuple[str, str], ...] = ()
    keep_empty: bool = False
    keep_spaces: bool = False
    max_record_lines: int = DEFAULT_MAX_RECORD_LINES
    phone_field: str = ""
    repair: bool = True


@dataclass(frozen=True)
class FileFormat:
    """What sniffing decided about a file, enough to read (or resume reading) its records.

    ``header`` holds the column names as in the file; ``fields`` the field each column is
    sent as (``None``: dropped). ``data_offset`` / ``data_line`` locate the first record
    after the header (byte offset, 1-based physical line). The rest is how records are made,
    as ``ReaderOptions`` says.
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
        )


def normalize_delimiter(text: str) -> str:
    """One delimiter character from ``,`` ``;`` ``tab`` ``\\t`` ``|`` and the like."""
    delimiter = _DELIMITER_NAMES.get(text.lower(), text)
    if len(delimiter) != 1 or delimiter in '\r\n"':
        raise ConfigError(f"the delimiter must be one character (or 'tab'), not {text!r}")
    return delimiter


def sniff_format(path: Path, options: ReaderOptions | None = None) -> FileFormat:
    """Decide how to read ``path``: encoding, delimiter, header, mapping, first record.

    Raises ``InputError`` when the file cannot be read at all (missing, a directory,
    unreadable, binary, empty, no header, unusable column names) and ``ConfigError`` for a
    bad option value.
    """
    options = options or ReaderOptions()
    if options.skip_rows < 0:
        raise ConfigError("--skip-rows cannot be negative")
    if options.max_record_lines < 1:
        raise ConfigError("--max-record-lines must be at least 1")
    forced_delimiter = normalize_delimiter(options.delimiter) if options.delimiter else None
    with open_file(path) as handle:
        try:
            sample = handle.read(SAMPLE_BYTES)
        except OSError as exc:
            raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
        if not sample:
            raise InputError(f"{path}: the file is empty")
        encoding, confidence, bom_length = detect_encoding(path, sample, options.encoding)
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
            if text.strip():
                head.append((text, size))
                break
            offset += size
            line_no += 1
        else:
            raise InputError(f"{path}: the file has no header (it is empty or only blank lines)")
        for pair in lines:
            head.append(pair)
            if len(head) >= SNIFF_LINES:
                break
    texts = [text for text, _ in head]
    delimiter = forced_delimiter or sniff_delimiter(texts)
    header_record = _find_header(path, texts, delimiter, line_no)
    header_line = line_no + header_record.first + 1
    raw_names = header_record.cells
    header = _clean_header(raw_names)
    fields, header = _map_fields(path, header_line, header, len(raw_names), options)
    constants = _check_constants(path, fields, options.constants)
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
        phone_fields=tuple(
            name
            for name in fields
            if name is not None and (name == options.phone_field or is_phone_like(name))
        ),
        repair=options.repair,
    )


class _HeadRecord(NamedTuple):
    first: int  # index of its first line in the head
    end: int  # index of the line after it
    cells: list[str]


def _filled(cells: Sequence[str]) -> int:
    """How many cells hold something besides spaces."""
    return sum(1 for cell in cells if cell.strip())


def _find_header(path: Path, texts: list[str], delimiter: str, lines_before: int) -> _HeadRecord:
    """The header among the first records of ``texts`` (the head of the file after
    ``--skip-rows`` and ``lines_before`` lines in all): the first record that is neither
    blank (empty, spaces, bare delimiters) nor a title.

    A title (``Customer list,,,,``, ``sep=;``, a report's name and date) fills at most
    ``TITLE_MAX_CELLS`` cells, at most half of what the records below it typically fill (the
    median of the next ``TITLE_LOOKAHEAD``). Titles are refused with the ``--skip-rows``
    that reads the header: taken for the header, a title makes the real header a record
    and every column a field no one asked for.
    """
    records: list[_HeadRecord] = []
    reader = csv.reader(texts, delimiter=delimiter, strict=False)
    before = 0
    try:
        for cells in reader:
            if _filled(cells):
                records.append(_HeadRecord(before, reader.line_num, cells))
            before = reader.line_num
    except csv.Error as exc:
        if not records:
            line = lines_before + before + 1
            raise InputError(f"{path}: line {line}: cannot read the header ({exc})") from None
    if not records:
        raise InputError(f"{path}: the file has no header (it is empty or only blank lines)")
    titles = 0
    typical: list[int] = []
    while titles < min(TITLE_MAX_LINES, len(records) - 1):
        filled = _filled(records[titles].cells)
        below = records[titles + 1 : titles + 1 + TITLE_LOOKAHEAD]
        typical.append(statistics.median_low(_filled(record.cells) for record in below))
        if filled > TITLE_MAX_CELLS or 2 * filled > typical[-1]:
            break
        titles += 1
    if not titles:
        return records[0]
    header = records[titles]
    filled = _filled(records[0].cells)
    first = lines_before + records[0].first + 1
    last = lines_before + records[titles - 1].end
    text = next(cell.strip() for cell in records[0].cells if cell.strip())
    shown = repr(text if len(text) <= 40 else text[:40] + "...")
    where = f"line {first} ({shown})" if first == last else f"lines {first}-{last} ({shown}...)"
    count = f"{filled} cell{'s' if filled > 1 else ''}"
    raise InputError(
        f"{path}: {where} {'looks like a title' if titles == 1 else 'look like titles'} "
        f"above the header ({count} filled, where the records below fill {typical[0]}); "
        f"the header seems to be line {lines_before + header.first + 1}: "
        f"add --skip-rows {lines_before + header.first}"
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
        start = next((i for i, row in enumerate(rows) if _filled(row) >= 2), None)
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


def open_file(path: Path) -> IO[bytes]:
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


def _clean_header(names: list[str]) -> tuple[str, ...]:
    """Column names without a BOM or surrounding spaces; trailing empty names (the empty
    columns Excel leaves at the right) are not columns."""
    cleaned = [name.replace("\ufeff", "").strip() for name in names]
    while cleaned and not cleaned[-1]:
        cleaned.pop()
    return tuple(cleaned)


def _map_fields(
    path: Path,
    header_line: int,
    header: tuple[str, ...],
    raw_width: int,
    options: ReaderOptions,
) -> tuple[tuple[str | None, ...], tuple[str, ...]]:
    """The field of each column (``None``: dropped), and the header, widened to the unnamed
    columns at the right that ``--map '#N=FIELD'`` names."""
    where = f"{path}: line {header_line}"
    by_position: dict[int, str | None] = {}
    by_name: dict[str, str | None] = {}
    for column, name in options.rename.items():
        position = _POSITION.fullmatch(column)
        if position is None:
            by_name[column] = name
            continue
        index = int(position[1])
        if not 1 <= index <= raw_width:
            raise InputError(
                f"{path}: --map '{column}={name or ''}': the file has {raw_width} columns, "
                f"#1 to #{raw_width}"
            )
        by_position[index] = name
    if by_position:
        header = header + ("",) * (max(by_position) - len(header))
    if not header:
        raise InputError(f"{where}: the header has no column names; check --skip-rows")
    known = set(header)
    missing = [column for column in by_name if column not in known]
    if missing:
        raise InputError(
            f"{path}: --map names column {missing[0]!r}, which the file does not have; "
            f"its columns are: {', '.join(header)}"
        )
    fields: list[str | None] = []
    seen: dict[str, int] = {}
    for index, column in enumerate(header, start=1):
        if index in by_position:
            name = by_position[index] or None
        elif column in by_name:
            name = by_name[column] or None
        elif column in REPORT_COLUMNS:
            name = None
        else:
            name = column
        if name is None:
            fields.append(None)
            continue
        by_place = f"--map '#{index}=FIELD'"
        if not name:
            raise InputError(
                f"{where}: column {index} has no name; name it with {by_place} or drop it "
                f"with --map '#{index}=', or check --skip-rows if this line is not the header"
            )
        try:
            encode_record([(name, "")])
        except RecordError as exc:
            raise InputError(f"{where}: column {index}: {exc}; rename it with {by_place}") from None
        if name in seen:
            raise InputError(
                f"{where}: field {name!r} comes from columns {seen[name]} and {index}; "
                f"rename one by its position with {by_place} (or drop it with --map '#{index}=')"
            )
        seen[name] = index
        fields.append(name)
    if not seen:
        raise InputError(f"{path}: every column is dropped; nothing would be sent")
    return tuple(fields), header


def map_key(header: Sequence[str], index: int) -> str:
    """How ``--map`` names column ``index`` (0-based) of ``header``: by its name when that
    is unambiguous, else by its position (``#3``)."""
    name = header[index]
    if name and "=" not in name and header.count(name) == 1 and not _POSITION.fullmatch(name):
        return name
    return f"#{index + 1}"


def _check_constants(
    path: Path, fields: tuple[str | None, ...], constants: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    if not constants:
        return ()
    try:
        encode_record(constants)
    except RecordError as exc:
        raise ConfigError(f"--set: {exc}") from None
    names = [name for name, _ in constants]
    for name in names:
        if name in fields or names.count(name) > 1:
            raise InputError(
                f"{path}: field {name!r} is set with --set and also comes from "
                + ("another --set" if names.count(name) > 1 else "a column")
                + "; drop the column with --map or remove one --set"
            )
    return tuple((str(name), str(value)) for name, value in constants)
