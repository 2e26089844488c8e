"""The streaming CSV reader: encoding, dialect, header mapping and per-row validation.

Two steps, so that a later process can resume reading where an earlier one stopped:

- ``sniff_format(path, options)`` looks at the head of the file once: it detects the encoding
  (BOM, then strict UTF-8, then charset-normalizer on a bounded sample), sniffs the delimiter,
  reads the header and applies the column mapping. The result, a ``FileFormat``, is stored
  with the job as JSON.
- ``read_batches(path, fmt)`` streams the records after the header as ``NewRow`` values, in
  ``Batch`` es that end on a record boundary and carry the byte offset just after their last
  record and the line number of the next one: ``read_batches(path, fmt, start_offset=...,
  start_line=...)`` continues exactly there. ``end_offset`` also drives a progress bar.

Every physical record after the header becomes exactly one row, ``PENDING`` with its encoded
``record`` or ``INVALID`` with a short reason; nothing is dropped. Lines end at LF, CRLF or a
bare CR; line numbers are 1-based physical lines of the file.

A file that cannot be read at all raises ``InputError`` with one line naming the file and
saying what to do next; a wrong option value raises ``ConfigError``.
"""

from __future__ import annotations

import codecs
import csv
import json
import operator
import os
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain, compress
from pathlib import Path
from typing import IO, Any, NamedTuple

import charset_normalizer

from bulkimport.errors import ConfigError, InputError, RecordError
from bulkimport.protocol import RECORD_SEPARATOR, encode_record
from bulkimport.rows import Batch, NewRow, cells_rebuilder
from bulkimport.states import RowState

#: How much of the head of the file encoding detection looks at.
SAMPLE_BYTES = 1 << 20
#: How much is read at a time while streaming (lines are split per block, in C).
BLOCK_BYTES = 1 << 20
#: How many lines from the header on the delimiter sniffer parses.
SNIFF_LINES = 200
#: The delimiters the sniffer chooses between, in order of preference on a tie.
DELIMITERS = (",", ";", "\t", "|")
#: The columns of the failed-rows report; dropped so that a report can be read back as is.
REPORT_COLUMNS = frozenset({"_line", "_state", "_code", "_message"})
#: What detection may answer for a file without a BOM that is not UTF-8. Restricting the
#: candidates matters: left free, charset-normalizer calls short GB18030 files cp949 and
#: Western files cp1250.
DETECT_CANDIDATES = ("utf_8", "gb18030", "big5", "cp1252")
# Read as UTF-8 despite broken characters: at least this many good non-ASCII characters,
# and at most one broken for every ten good ones (GB18030 and Big5 text decoded as UTF-8
# gives five or more broken for every good one).
MOSTLY_UTF8_MIN_CHARS = 10
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
DEFAULT_BATCH_ROWS = 5000

# UTF-32 LE before UTF-16 LE: FF FE 00 00 starts with the UTF-16 LE mark.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_WIDE_UNIT = {"utf-16-le": 2, "utf-16-be": 2, "utf-32-le": 4, "utf-32-be": 4}
# Supersets that decode everything the named encoding does, and more.
_SUPERSETS = {"gbk": "gb18030", "gb2312": "gb18030", "hz": "gb18030", "latin-1": "cp1252"}
_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
# Splits decoded UTF-16/32 text at CR, LF and CRLF only (str.splitlines knows more breaks).
_WIDE_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")

_new_tuple = tuple.__new__
_PENDING = RowState.PENDING
_INVALID = RowState.INVALID


@dataclass(frozen=True)
class ReaderOptions:
    """What the user said about the file; ``None`` means detect or sniff.

    ``rename`` maps a column of the file to a field name (``None`` or ``""`` drops the
    column); ``constants`` are ``(field, value)`` pairs added to every record; ``keep_empty``
    sends empty cells as ``field=`` instead of leaving them out.
    """

    encoding: str | None = None
    delimiter: str | None = None
    skip_rows: int = 0
    rename: Mapping[str, str | None] = field(default_factory=dict)
    constants: tuple[tuple[str, str], ...] = ()
    keep_empty: bool = False


@dataclass(frozen=True)
class FileFormat:
    """What sniffing decided about a file, enough to read (or resume reading) its records.

    ``header`` holds the column names as in the file; ``fields`` the field each column is
    sent as (``None``: dropped). ``data_offset`` / ``data_line`` locate the first record
    after the header (byte offset, 1-based physical line).
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
        )


# --- options ---------------------------------------------------------------------------------


def normalize_encoding(name: str) -> str:
    """The Python codec name for ``name``, with GBK/GB2312 widened to GB18030.

    Raises ``ConfigError`` for an unknown encoding.
    """
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise ConfigError(
            f"unknown encoding {name!r}; try utf-8, gb18030, big5 or cp1252"
        ) from None
    if codec in ("iso8859-1", "latin_1"):
        codec = "latin-1"
    return _SUPERSETS.get(codec, codec)


def normalize_delimiter(text: str) -> str:
    """One delimiter character from ``,`` ``;`` ``tab`` ``\\t`` ``|`` and the like."""
    delimiter = _DELIMITER_NAMES.get(text.lower(), text)
    if len(delimiter) != 1 or delimiter in '\r\n"':
        raise ConfigError(f"the delimiter must be one character (or 'tab'), not {text!r}")
    return delimiter


# --- sniffing --------------------------------------------------------------------------------


def sniff_format(path: Path, options: ReaderOptions | None = None) -> FileFormat:
    """Decide how to read ``path``: encoding, delimiter, header, mapping, first record.

    Raises ``InputError`` when the file cannot be read at all (missing, a directory,
    unreadable, binary, empty, no header, unusable column names) and ``ConfigError`` for a
    bad option value.
    """
    options = options or ReaderOptions()
    if options.skip_rows < 0:
        raise ConfigError("--skip-rows cannot be negative")
    forced_delimiter = normalize_delimiter(options.delimiter) if options.delimiter else None
    with _open(path) as handle:
        try:
            sample = handle.read(SAMPLE_BYTES)
        except OSError as exc:
            raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
        if not sample:
            raise InputError(f"{path}: the file is empty")
        encoding, confidence, bom_length = _detect_encoding(path, sample, options.encoding)
        lines = _flat_lines(_blocks(handle, encoding, bom_length, path))
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
        for text, size in lines:
            if text.strip():
                head = [(text, size)]
                break
            offset += size
            line_no += 1
        else:
            raise InputError(f"{path}: the file has no header (it is empty or only blank lines)")
        header_line = line_no + 1
        for pair in lines:
            head.append(pair)
            if len(head) >= SNIFF_LINES:
                break
    texts = [text for text, _ in head]
    delimiter = forced_delimiter or sniff_delimiter(texts)
    reader = csv.reader(texts, delimiter=delimiter, strict=False)
    try:
        names = next(reader)
    except csv.Error as exc:
        raise InputError(f"{path}: line {header_line}: cannot read the header ({exc})") from None
    consumed = reader.line_num
    header = _clean_header(names)
    fields = _map_fields(path, header_line, header, options)
    constants = _check_constants(path, fields, options.constants)
    return FileFormat(
        encoding=encoding,
        encoding_confidence=confidence,
        delimiter=delimiter,
        header=header,
        fields=fields,
        constants=constants,
        keep_empty=options.keep_empty,
        data_offset=offset + sum(size for _, size in head[:consumed]),
        data_line=header_line + consumed,
    )


def sniff_delimiter(lines: Sequence[str]) -> str:
    """The delimiter among ``DELIMITERS`` that best splits ``lines`` (header first).

    The header must split into at least two columns; then the share of rows with the same
    number of cells wins, then the number of columns. A file with one column gets ``,``.
    """
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        try:
            rows = [row for row in csv.reader(lines, delimiter=delimiter) if row]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        data = rows[1:]
        fitting = sum(
            1 for row in data if len(row) == width or (len(row) > width and not any(row[width:]))
        )
        score = (fitting / len(data) if data else 1.0, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _open(path: Path) -> IO[bytes]:
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


def _detect_encoding(path: Path, sample: bytes, forced: str | None) -> tuple[str, float, int]:
    """``(codec, confidence, BOM length)`` for a file whose head is ``sample``."""
    bom_codec, bom_length = next(
        ((codec, len(bom)) for bom, codec in _BOMS if sample.startswith(bom)), (None, 0)
    )
    if forced:
        codec = normalize_encoding(forced)
        if codec == "utf-8-sig":
            codec = "utf-8"
        if codec in ("utf-16", "utf-32"):
            wide = bom_codec if bom_codec and bom_codec.startswith(codec) else None
            codec = wide or _wide_without_bom(sample) or f"{codec}-le"
        # A BOM of the forced encoding is a mark, not text.
        return codec, 1.0, bom_length if codec == bom_codec else 0
    if bom_codec:
        return bom_codec, 1.0, bom_length
    complete = len(sample) < SAMPLE_BYTES
    if b"\x00" in sample:
        wide = _wide_without_bom(sample)
        if wide is None:
            raise InputError(
                f"{path}: this looks like a binary file (it contains NUL bytes), not CSV text; "
                "if it is text, give its encoding with --encoding"
            )
        return wide, 0.9, 0
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8", 1.0, 0
    if not complete:
        # Do not let the cut at the end of the sample split a multibyte character.
        sample = sample[: sample.rfind(b"\n") + 1] or sample
    mostly = _mostly_utf8(sample)
    if mostly is not None:
        return "utf-8", mostly, 0
    match = charset_normalizer.from_bytes(sample, cp_isolation=list(DETECT_CANDIDATES)).best()
    # No guess beyond the encodings we know lead exports to be in: a wrong guess would send
    # every non-ASCII value as garbage, which is worse than asking.
    if match is None:
        raise InputError(
            f"{path}: cannot tell the text encoding; try --encoding gb18030 (or big5, cp1252)"
        )
    codec = normalize_encoding(match.encoding)
    if codec == "latin-1":
        codec = "cp1252" if _decodes(sample, "cp1252") else "latin-1"
    return codec, round(max(0.0, 1.0 - match.chaos), 3), 0


def _mostly_utf8(sample: bytes) -> float | None:
    """The confidence that ``sample`` is UTF-8 with a few broken characters (a cut
    multibyte sequence, a stray byte), or ``None`` if it is not UTF-8 at all.

    Legacy double-byte text (GB18030, Big5) decodes as UTF-8 only here and there, so its
    share of broken characters is high; a UTF-8 export with one cut character has one in
    hundreds. The rows with the broken bytes then become ``invalid``, the rest are read
    as they are, instead of every non-ASCII value being read in the wrong encoding.
    """
    text = sample.decode("utf-8", errors="replace")
    broken = text.count("\ufffd")
    wide = len(_NON_ASCII.findall(text)) - broken
    if wide >= MOSTLY_UTF8_MIN_CHARS and broken * 10 <= wide:
        return round(1.0 - broken / (wide + broken), 3)
    return None


def _decodes(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def _wide_without_bom(sample: bytes) -> str | None:
    """``utf-16-le`` / ``-be`` / ``utf-32-le`` / ``-be`` when NUL bytes fall where a BOM-less
    UTF-16/32 text puts them (mostly Latin text), else ``None``."""
    head = sample[:4096]
    head = head[: len(head) - len(head) % 4]
    if not head:
        return None
    share = [head[i::4].count(0) * 4 / len(head) for i in range(4)]
    if share[1] > 0.9 and share[2] > 0.9 and share[3] > 0.9 and share[0] < 0.1:
        codec = "utf-32-le"
    elif share[0] > 0.9 and share[1] > 0.9 and share[2] > 0.9 and share[3] < 0.1:
        codec = "utf-32-be"
    elif share[1] > 0.6 and share[3] > 0.6 and share[0] < 0.1 and share[2] < 0.1:
        codec = "utf-16-le"
    elif share[0] > 0.6 and share[2] > 0.6 and share[1] < 0.1 and share[3] < 0.1:
        codec = "utf-16-be"
    else:
        return None
    try:
        text = codecs.getincrementaldecoder(codec)().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else codec


def _clean_header(names: list[str]) -> tuple[str, ...]:
    """Column names without a BOM or surrounding spaces; trailing empty names (the empty
    columns Excel leaves at the right) are not columns."""
    cleaned = [name.replace("\ufeff", "").strip() for name in names]
    while cleaned and not cleaned[-1]:
        cleaned.pop()
    return tuple(cleaned)


def _map_fields(
    path: Path, header_line: int, header: tuple[str, ...], options: ReaderOptions
) -> tuple[str | None, ...]:
    where = f"{path}: line {header_line}"
    if not header:
        raise InputError(f"{where}: the header has no column names; check --skip-rows")
    known = set(header)
    missing = [column for column in options.rename if column not in known]
    if missing:
        raise InputError(
            f"{path}: --map names column {missing[0]!r}, which the file does not have; "
            f"its columns are: {', '.join(header)}"
        )
    fields: list[str | None] = []
    seen: dict[str, int] = {}
    for index, column in enumerate(header, start=1):
        if column in options.rename:
            name = options.rename[column] or None
        elif column in REPORT_COLUMNS:
            name = None
        else:
            name = column
        if name is None:
            fields.append(None)
            continue
        if not name:
            raise InputError(
                f"{where}: column {index} has no name; name it in the file, "
                "or check --skip-rows if this line is not the header"
            )
        try:
            encode_record([(name, "")])
        except RecordError as exc:
            raise InputError(f"{where}: column {index}: {exc}; rename it with --map") from None
        if name in seen:
            raise InputError(
                f"{where}: field {name!r} comes from columns {seen[name]} and {index}; "
                "rename or drop one with --map"
            )
        seen[name] = index
        fields.append(name)
    if not seen:
        raise InputError(f"{path}: every column is dropped; nothing would be sent")
    return tuple(fields)


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


# --- streaming -------------------------------------------------------------------------------


class _Block(NamedTuple):
    texts: list[str]  # decoded lines, each with its line ending
    sizes: list[int]  # the byte length of each line in the file
    bad: list[int]  # indexes of lines that did not decode


def _blocks(handle: IO[bytes], encoding: str, offset: int, path: Path) -> Iterator[_Block]:
    """The lines of the file from byte ``offset``, a block at a time."""
    handle.seek(offset)
    if encoding in _WIDE_UNIT:
        return _wide_blocks(handle, encoding, path)
    return _narrow_blocks(handle, encoding, path)


def _read(handle: IO[bytes], path: Path) -> bytes:
    try:
        return handle.read(BLOCK_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None


def _narrow_blocks(handle: IO[bytes], encoding: str, path: Path) -> Iterator[_Block]:
    """Lines of an ASCII-compatible encoding (UTF-8, GB18030, Big5, cp1252...).

    CR and LF bytes never occur inside a multibyte character of these encodings, so the
    bytes are split first (which gives exact byte offsets) and decoded a block at a time.
    """
    carry = b""
    while True:
        data = _read(handle, path)
        buffer = carry + data if carry else data
        if not buffer:
            return
        raw = buffer.splitlines(keepends=True)
        carry = b""
        if data and raw[-1][-1:] != b"\n":
            # An unfinished line, or a CR that may be the first half of a CRLF.
            carry = raw.pop()
            if not raw:
                continue
        yield _decode_lines(raw, encoding)
        if not data:
            return


def _decode_lines(raw: list[bytes], encoding: str) -> _Block:
    sizes = list(map(len, raw))
    try:
        texts = b"".join(raw).decode(encoding).splitlines(keepends=True)
    except UnicodeDecodeError:
        texts = []
    # str.splitlines also breaks at FF, VT, NEL, U+2028...: then the counts differ.
    if len(texts) == len(raw):
        return _Block(texts, sizes, [])
    texts, bad = [], []
    for index, line in enumerate(raw):
        try:
            texts.append(line.decode(encoding))
        except UnicodeDecodeError:
            texts.append(line.decode(encoding, "replace"))
            bad.append(index)
    return _Block(texts, sizes, bad)


def _wide_blocks(handle: IO[bytes], encoding: str, path: Path) -> Iterator[_Block]:
    """Lines of UTF-16/32 text, where a line break is 2 or 4 bytes."""
    unit = _WIDE_UNIT[encoding]
    decoder = codecs.getincrementaldecoder(encoding)()
    carry = ""
    while True:
        data = _read(handle, path)
        final = not data
        state = decoder.getstate()
        bad_block = False
        try:
            text = decoder.decode(data, final=final)
        except UnicodeDecodeError:
            decoder = codecs.getincrementaldecoder(encoding)("replace")
            decoder.setstate(state)
            text = decoder.decode(data, final=final)
            bad_block = True
        buffer = carry + text
        lines = _WIDE_LINE_RE.findall(buffer)
        carry = ""
        if not final and lines and lines[-1][-1:] != "\n":
            carry = lines.pop()
        if lines:
            if unit == 4:
                sizes = [4 * len(line) for line in lines]
            else:
                sizes = [len(line.encode(encoding, "surrogatepass")) for line in lines]
            bad = [i for i, line in enumerate(lines) if "\ufffd" in line] if bad_block else []
            yield _Block(lines, sizes, bad)
        if final:
            return


def _flat_lines(blocks: Iterable[_Block]) -> Iterator[tuple[str, int]]:
    for block in blocks:
        yield from zip(block.texts, block.sizes, strict=True)


class _Position:
    """Where the csv parser is: the block it reads from, and lines that did not decode."""

    __slots__ = ("bad", "first_line", "offset", "sizes")

    def __init__(self, offset: int) -> None:
        self.offset = offset  # byte offset of the current block
        self.first_line = 0  # lines before the current block, counted from the start
        self.sizes: list[int] = []
        self.bad: set[int] = set()  # line indexes, counted from the start

    def offset_after(self, lines_consumed: int) -> int:
        """The byte offset just after the first ``lines_consumed`` lines."""
        return self.offset + sum(self.sizes[: lines_consumed - self.first_line])


def _tracked(blocks: Iterable[_Block], position: _Position) -> Iterator[list[str]]:
    """Hand the blocks' lines on, keeping ``position`` on the block being parsed.

    ``chain.from_iterable`` pulls the next block only once the parser asks for a line past
    the current one, so after each record ``position`` describes the record's last block.
    """
    first_line, offset = 0, position.offset
    for block in blocks:
        position.first_line, position.offset, position.sizes = first_line, offset, block.sizes
        if block.bad:
            position.bad.update(first_line + index for index in block.bad)
        yield block.texts
        first_line += len(block.sizes)
        offset += sum(block.sizes)


class _RowMaker:
    """Turns the cells of one record into its ``NewRow``, encoding as ``encode_record`` would.

    The names were checked once by ``sniff_format``, so a record can only fail on a value
    holding ``|``, and counting the ``|`` of the joined record tells whether one does.
    Such a record, and only such a one, goes through ``encode_record`` for its verdict and
    message. ``template`` (``name=%s||phone1=%s...``) encodes, in one C call, the common
    record that has every cell of the header and no empty one.
    """

    def __init__(self, fmt: FileFormat) -> None:
        kept = [index for index, name in enumerate(fmt.fields) if name is not None]
        self.width = len(fmt.header)
        self.names = [name for name in fmt.fields if name is not None]
        self.prefixes = [f"{name}=" for name in self.names]
        self.pick: Callable[[Sequence[str]], tuple[str, ...]] | None
        if kept == list(range(self.width)):
            self.pick = None
        elif len(kept) == 1:
            only = kept[0]
            self.pick = lambda cells: (cells[only],)
        else:
            self.pick = operator.itemgetter(*kept)
        self.constants = fmt.constants
        self.keep_empty = fmt.keep_empty
        self.tail = "".join(f"{RECORD_SEPARATOR}{name}={value}" for name, value in fmt.constants)
        # The pipes of a record of n parts, when its values hold none: 2 * n + tail_pipes.
        self.tail_pipes = self.tail.count("|") - 2
        # A name with a '|' of its own would throw the count off: always check such records.
        self.countable = not any("|" in name for name in self.names)
        self.template = RECORD_SEPARATOR.join(
            prefix.replace("%", "%%") + "%s" for prefix in self.prefixes
        ) + self.tail.replace("%", "%%")
        self.template_pipes = 2 * len(self.prefixes) + self.tail_pipes
        self.undecodable = f"undecodable bytes (not {fmt.encoding}); try another --encoding"

    def make(self, line: int, cells: tuple[str, ...], undecodable: bool) -> NewRow:
        """The row for a record starting at ``line`` (any record, valid or not)."""
        count = len(cells)
        width = self.width
        if undecodable:
            return NewRow(line, _INVALID, None, cells, self.undecodable)
        if count != width and (count < width or any(cells[width:])):
            reason = f"{count} cells, the header has {width}" if count else "empty line"
            return NewRow(line, _INVALID, None, cells, reason)
        values = cells[:width] if self.pick is None else self.pick(cells)
        if not any(values):
            return NewRow(line, _INVALID, None, cells, "no values")
        if self.keep_empty:
            parts = list(map(operator.add, self.prefixes, values))
        else:
            parts = list(compress(map(operator.add, self.prefixes, values), values))
        record = RECORD_SEPARATOR.join(parts) + self.tail
        if not self.countable or record.count("|") != 2 * len(parts) + self.tail_pipes:
            pairs = [
                (name, value)
                for name, value in zip(self.names, values, strict=True)
                if value or self.keep_empty
            ]
            try:
                record = encode_record(pairs + list(self.constants))
            except RecordError as exc:
                return NewRow(line, _INVALID, None, cells, str(exc))
        return NewRow(line, _PENDING, record, cells, None)


def read_batches(
    path: Path,
    fmt: FileFormat,
    *,
    start_offset: int | None = None,
    start_line: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Generator[Batch, None, None]:
    """Stream the records of ``path`` after its header as batches of ``NewRow``.

    Starts at ``fmt.data_offset`` / ``fmt.data_line``, or where an earlier batch ended
    (``start_offset=batch.end_offset, start_line=batch.next_line``). Each batch holds up to
    ``batch_rows`` rows; memory stays flat whatever the size of the file. Raises
    ``InputError`` if the file cannot be opened or read.
    """
    offset = fmt.data_offset if start_offset is None else start_offset
    first_line = fmt.data_line if start_line is None else start_line
    maker = _RowMaker(fmt)
    make, width, pick = maker.make, maker.width, maker.pick
    template, template_pipes = maker.template, maker.template_pipes
    fast = maker.countable
    prefixes, tail, tail_pipes = maker.prefixes, maker.tail, maker.tail_pipes
    keep_empty, join, add = fmt.keep_empty, RECORD_SEPARATOR.join, operator.add
    new_row = _new_tuple
    # Pending rows of the header's width hold all their cells in their record when the
    # format drops and adds nothing: the queue then stores them once.
    record_width = width if cells_rebuilder(fmt.fields, fmt.constants) is not None else 0
    with _open(path) as handle:
        position = _Position(offset)
        lines = chain.from_iterable(_tracked(_blocks(handle, fmt.encoding, offset, path), position))
        reader = csv.reader(lines, delimiter=fmt.delimiter, strict=False)
        bad = position.bad
        rows: list[NewRow] = []
        append = rows.append
        before = 0  # lines consumed before the current record
        while True:
            try:
                # The hot loop: a record with the header's width, every line decoded and no
                # '|' in its values is encoded here; anything else goes to make().
                for row in reader:
                    cells = tuple(row)
                    line = first_line + before
                    if fast and not bad and len(cells) == width:
                        values = cells if pick is None else pick(cells)
                        if "" not in values:
                            record = template % values
                            ok = record.count("|") == template_pipes
                        elif keep_empty:
                            ok = False
                        else:
                            parts = list(compress(map(add, prefixes, values), values))
                            record = join(parts) + tail
                            ok = record.count("|") == 2 * len(parts) + tail_pipes and bool(parts)
                        before = reader.line_num
                        if ok:
                            append(new_row(NewRow, (line, _PENDING, record, cells, None)))
                        else:
                            append(make(line, cells, False))
                    else:
                        after = reader.line_num
                        append(
                            make(
                                line, cells, bool(bad) and not bad.isdisjoint(range(before, after))
                            )
                        )
                        before = after
                    if len(rows) >= batch_rows:
                        yield Batch(
                            rows, position.offset_after(before), first_line + before, record_width
                        )
                        rows = []
                        append = rows.append
            except csv.Error as exc:
                # The parser gave up on this record (a field over the size limit, usually an
                # unclosed quote); the lines it consumed become one invalid row.
                append(NewRow(first_line + before, _INVALID, None, (), f"unreadable CSV: {exc}"))
                before = reader.line_num
                continue
            break
        if rows:
            yield Batch(rows, position.offset_after(before), first_line + before, record_width)


def file_size(path: Path) -> int:
    """The size of ``path`` in bytes, the total of a byte progress bar (0 if unknown)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
