"""The physical lines of a text file, a block at a time, with the byte size of each, and
``LineSource``, which hands them to the csv parser with a bound on the lines of a record.

Reading needs exact byte offsets (so that it can resume at a record boundary) and fast
splitting (in C, per block). Lines end at LF, CRLF or a bare CR.

A line longer than ``limits.MAX_ROW_BYTES`` is never held: what is carried from one block to
the next is at most that, and past it the line is passed over to its end, counting its
bytes, so that a file that is one line of 200 MB is read in time in proportion to it and in
flat memory. Such a line is given as an empty line (``"\n"``, its size exact) listed in
``Block.unread`` with how it starts, for the reader to make it an invalid row.
"""

from __future__ import annotations

import codecs
import operator
import re
from collections.abc import Iterable, Iterator
from itertools import compress, repeat
from pathlib import Path
from typing import IO, NamedTuple

from bulkimport.errors import InputError
from bulkimport.reader import limits
from bulkimport.reader.encoding import (
    WIDE_UNIT,
    Foreign,
    is_legacy,
    legacy_reading,
    utf8_line,
)

#: How much is read at a time while streaming (lines are split per block, in C).
BLOCK_BYTES = 1 << 20
# Splits decoded UTF-16/32 text at CR, LF and CRLF only (str.splitlines knows more breaks).
_WIDE_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")
# A line at least this long (in bytes) is long: counted in ``Block.heavy``.
_HEAVY_LINE = 1 << 12


class Unread(NamedTuple):
    """A line too long to be read (``Block.unread``): its index in the block, how it starts
    (decoded, cut), and its size in bytes."""

    at: int
    head: str
    size: int


class Block(NamedTuple):
    texts: list[str]  # decoded lines, each with its line ending
    sizes: list[int]  # the byte length of each line in the file
    bad: list[int]  # indexes of lines that did not decode
    unread: tuple[Unread, ...] = ()  # lines too long to read: "\n" among the texts
    long: tuple[int, ...] = ()  # indexes of lines that may hold a value too long for a cell
    heavy: int = 0  # the bytes of the long lines (_HEAVY_LINE), to bound a batch's memory
    # Lines in another encoding than the file's (see ``encoding.Foreign``): UTF-8 text in a
    # legacy file (its text among ``texts`` is the UTF-8 reading), or legacy text in a UTF-8
    # file (also in ``bad``).
    foreign: tuple[tuple[int, Foreign], ...] = ()
    open_end: bool = False  # the file ends in its last line, which has no line end
    nul: tuple[int, ...] = ()  # indexes of lines that hold a NUL byte


def read_blocks(handle: IO[bytes], encoding: str, offset: int, path: Path) -> Iterator[Block]:
    """The lines of the file from byte ``offset``, a block at a time."""
    handle.seek(offset)
    if encoding in WIDE_UNIT:
        return _wide_blocks(handle, encoding, path)
    return _narrow_blocks(handle, encoding, path)


def _read(handle: IO[bytes], path: Path) -> bytes:
    try:
        return handle.read(BLOCK_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None


def _narrow_blocks(handle: IO[bytes], encoding: str, path: Path) -> Iterator[Block]:
    """Lines of an ASCII-compatible encoding (UTF-8, GB18030, Big5, cp1252...).

    CR and LF bytes never occur inside a multibyte character of these encodings, so the
    bytes are split first (which gives exact byte offsets) and decoded a block at a time.
    """
    limit = limits.MAX_ROW_BYTES
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
            if len(carry) > limit:
                # Too long to be a row: passed over to its end, never held whole.
                if raw:
                    yield _decode_lines(raw, encoding)
                head = carry[: limits.HEAD_KEPT_BYTES].decode(encoding, "replace")
                size, carry = _pass_line(handle, carry, path)
                yield Block(["\n"], [size], [], (Unread(0, head, size),))
                continue
            if not raw:
                continue
        block = _decode_lines(raw, encoding)
        if not data and raw[-1][-1:] not in (b"\n", b"\r"):
            block = block._replace(open_end=True)
        yield block
        if not data:
            return


def _pass_line(handle: IO[bytes], start: bytes, path: Path) -> tuple[int, bytes]:
    """Read on to the end of the line that begins with ``start`` (no line break in it but
    maybe a last CR), a block at a time: its size in bytes, line break included, and what
    was read after it."""
    size = len(start)
    cr = start.endswith(b"\r")  # a CR at the end of a block: an LF may follow
    while True:
        data = _read(handle, path)
        if cr:
            return (size + 1, data[1:]) if data[:1] == b"\n" else (size, data)
        if not data:
            return size, b""
        ends = [at for at in (data.find(b"\r"), data.find(b"\n")) if at >= 0]
        if not ends:
            size += len(data)
            continue
        at = min(ends)
        if data[at] == 0x0D and at + 1 == len(data):
            size += len(data)
            cr = True
            continue
        end = at + 2 if data[at : at + 2] == b"\r\n" else at + 1
        return size + end, data[end:]


def _decode_lines(raw: list[bytes], encoding: str) -> Block:
    sizes = list(map(len, raw))
    top = max(sizes)
    unread: tuple[Unread, ...] = ()
    long: tuple[int, ...] = ()
    heavy = 0
    if top >= _HEAVY_LINE:
        heavy = sum(size for size in sizes if size >= _HEAVY_LINE)
        if top > limits.MAX_CELL_CHARS:  # bytes: never fewer than characters
            long = tuple(i for i, size in enumerate(sizes) if size > limits.MAX_CELL_CHARS)
        if top > limits.MAX_ROW_BYTES:
            # Whole in this block, but too long to be a row all the same: the verdict
            # must not depend on where the blocks fell.
            unread = tuple(
                Unread(i, raw[i][: limits.HEAD_KEPT_BYTES].decode(encoding, "replace"), size)
                for i, size in enumerate(sizes)
                if size > limits.MAX_ROW_BYTES
            )
            raw = list(raw)
            for each in unread:
                raw[each.at] = b"\n"
            long = tuple(i for i in long if sizes[i] <= limits.MAX_ROW_BYTES)
    joined = b"".join(raw)
    nul: tuple[int, ...] = ()
    if b"\x00" in joined:
        nul = tuple(i for i, line in enumerate(raw) if b"\x00" in line)
    try:
        texts = joined.decode(encoding).splitlines(keepends=True)
    except UnicodeDecodeError:
        texts = []
    # str.splitlines also breaks at FF, VT, NEL, U+2028...: then the counts differ.
    if len(texts) == len(raw):
        if not is_legacy(encoding) or joined.isascii():
            return Block(texts, sizes, [], unread, long, heavy, nul=nul)
        foreign = _utf8_lines(raw, joined, texts, encoding)
        return Block(texts, sizes, [], unread, long, heavy, tuple(foreign), nul=nul)
    texts, bad = [], []
    found: list[tuple[int, Foreign]] = []
    for index, line in enumerate(raw):
        try:
            texts.append(line.decode(encoding))
        except UnicodeDecodeError:
            own = line.decode(encoding, "replace")
            texts.append(own)
            bad.append(index)
            if encoding == "utf-8":
                reading = legacy_reading(line)
                if reading is not None:
                    found.append((index, Foreign(own, *reading)))
    if is_legacy(encoding) and not joined.isascii():
        found.extend(_utf8_lines(raw, joined, texts, encoding))
    return Block(texts, sizes, bad, unread, long, heavy, tuple(sorted(found)), nul=nul)


def _utf8_lines(
    raw: list[bytes], joined: bytes, texts: list[str], encoding: str
) -> list[tuple[int, Foreign]]:
    """The lines of UTF-8 text among ``raw`` (lines of a file in the legacy ``encoding``,
    ``joined`` together, decoded as ``texts``): each one's text becomes its UTF-8 reading,
    so that its cells are what the line says.

    The block is decoded as UTF-8 once, in C, and only the lines that hold no broken
    character there and some non-ASCII one are looked at (``utf8_line``): a legacy file
    pays about a decoding more per block, not a Python step per line."""
    parts = joined.decode("utf-8", "replace").split("\n")
    if parts[-1] == "":
        parts.pop()
    if len(parts) == len(raw):
        broken = map(str.__contains__, parts, repeat("\ufffd"))
        skipped = map(operator.or_, broken, map(str.isascii, parts))
        candidates: Iterable[int] = compress(range(len(parts)), map(operator.not_, skipped))
    else:  # lines that end in a bare CR
        candidates = range(len(raw))
    found: list[tuple[int, Foreign]] = []
    for line in candidates:
        text = utf8_line(raw[line], encoding)
        if text is not None:
            found.append((line, Foreign(texts[line], "utf-8", text)))
            texts[line] = text
    return found


def _wide_blocks(handle: IO[bytes], encoding: str, path: Path) -> Iterator[Block]:
    """Lines of UTF-16/32 text, where a line break is 2 or 4 bytes."""
    unit = WIDE_UNIT[encoding]
    limit = limits.MAX_ROW_BYTES

    def size_of(text: str) -> int:
        return unit * len(text) if unit == 4 else len(text.encode(encoding, "surrogatepass"))

    decoder = codecs.getincrementaldecoder(encoding)()
    carry = ""
    passing: Unread | None = None  # a line too long to read, being passed over
    cr = False  # the line being passed over ended the last text with a CR
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
        if passing is not None:
            # Read on to the end of the line, counting its bytes.
            if cr:
                end = 1 if text.startswith("\n") else 0
            else:
                found = _LINE_BREAK_RE.search(text)
                end = -1 if found is None else found.end()
                if found is not None and found[0] == "\r" and end == len(text) and not final:
                    end, cr = -1, True  # an LF may follow in the next text
            if end < 0 and not final:
                passing = passing._replace(size=passing.size + size_of(text))
                continue
            end = len(text) if end < 0 else end
            size = passing.size + size_of(text[:end])
            yield Block(["\n"], [size], [], (passing._replace(size=size),))
            passing, cr, text = None, False, text[end:]
        buffer = carry + text
        lines = _WIDE_LINE_RE.findall(buffer)
        carry = ""
        if not final and lines and lines[-1][-1:] != "\n":
            carry = lines.pop()
            if unit * len(carry) > limit:  # at least that many bytes
                passing = Unread(0, carry[: limits.HEAD_KEPT_BYTES], size_of(carry))
                cr = carry.endswith("\r")
                carry = ""
        if lines:
            if unit == 4:
                sizes = [4 * len(line) for line in lines]
            else:
                sizes = [len(line.encode(encoding, "surrogatepass")) for line in lines]
            bad = [i for i, line in enumerate(lines) if "\ufffd" in line] if bad_block else []
            yield _wide_block(lines, sizes, bad)
        if final:
            if passing is not None:  # the file ends inside it
                yield Block(["\n"], [passing.size], [], (passing,))
            return


def _wide_block(lines: list[str], sizes: list[int], bad: list[int]) -> Block:
    """The block of decoded ``lines``: those too long to be a row unread, as in
    ``_decode_lines``."""
    top = max(sizes)
    if top < _HEAVY_LINE:
        return Block(lines, sizes, bad)
    heavy = sum(size for size in sizes if size >= _HEAVY_LINE)
    unread = tuple(
        Unread(i, lines[i][: limits.HEAD_KEPT_BYTES], size)
        for i, size in enumerate(sizes)
        if size > limits.MAX_ROW_BYTES
    )
    for each in unread:
        lines[each.at] = "\n"
    long = tuple(
        i for i, size in enumerate(sizes) if limits.MAX_CELL_CHARS < size <= limits.MAX_ROW_BYTES
    )
    return Block(lines, sizes, bad, unread, long, heavy)


def flat_lines(blocks: Iterable[Block]) -> Iterator[tuple[str, int]]:
    for block in blocks:
        yield from zip(block.texts, block.sizes, strict=True)


class RecordTooLong(Exception):
    """The record being parsed has run past its bound of lines (an unclosed quote)."""


class _Kept(NamedTuple):
    first: int  # index of its first line, counted from where reading started
    offset: int  # byte offset of its first line
    texts: list[str]
    sizes: list[int]


class LineSource:
    """The lines of a file from a byte offset, for the csv parser, a chunk at a time, kept
    so that parsing can start again at any line of the record being parsed.

    ``lines(first)`` yields the lines from line ``first`` (counted from where reading
    started) in chunks of at most ``max_lines``. The parser pulls a chunk only when it needs
    a line past the last one, so Python runs once per chunk, never per line. Before each
    chunk the source checks the record being parsed: the reading loop keeps
    ``record_start`` on its first line (counted from ``first``), and a record that has run
    past ``max_lines`` lines raises ``RecordTooLong`` out of the parser. The parser reads at
    most ``2 * max_lines`` lines of a record that never ends, however large the file.

    Blocks are kept from the one holding the record being parsed: ``lines`` starting again
    at a line of that record, ``line`` and ``offset_after`` need them. ``marks`` holds the
    lines the reading loop must look at closely: those that did not decode (also in
    ``bad``), those too long to read (``unread``, given to the parser as empty lines),
    those long enough to hold a value too long for a cell (``long``), those in another
    encoding than the file's (``foreign``), those holding a NUL byte (``nul``), the last
    line of the file when it has no line end (``unterminated``), and the end mark: an
    empty line after the last one (``end``). The parser reads the end mark as an empty
    record, or, if a quoted field is still open at the end of the file, as part of it: the
    reading loop tells the two apart by its line. ``heavy`` counts the bytes of the long
    lines read so far, for the reading loop to cut a batch short when lines are long.
    """

    __slots__ = (
        "_base",
        "_blocks",
        "_kept",
        "_next_line",
        "_next_offset",
        "bad",
        "end",
        "foreign",
        "heavy",
        "long",
        "marks",
        "max_lines",
        "nul",
        "record_start",
        "unread",
        "unterminated",
    )

    def __init__(self, blocks: Iterator[Block], offset: int, max_lines: int) -> None:
        self._blocks = blocks
        self._kept: list[_Kept] = []
        self._next_line = 0
        self._next_offset = offset
        self._base = 0
        self.max_lines = max_lines
        self.record_start = 0  # first line of the record being parsed, counted from _base
        self.marks: set[int] = set()
        self.bad: set[int] = set()
        self.unread: dict[int, Unread] = {}
        self.long: set[int] = set()
        self.foreign: dict[int, Foreign] = {}
        self.nul: set[int] = set()
        self.heavy = 0
        self.end: int | None = None
        self.unterminated: int | None = None

    def lines(self, first: int) -> Iterator[list[str]]:
        """The lines from line ``first`` on, in chunks; ``record_start`` counts from it."""
        self._base = first
        self.record_start = 0
        for kept in list(self._kept):
            start = first - kept.first
            if start < len(kept.texts):
                yield from self._chunks(kept, max(start, 0))
        for block in self._blocks:
            kept = _Kept(self._next_line, self._next_offset, block.texts, block.sizes)
            if block.bad:
                self.bad.update(kept.first + index for index in block.bad)
                self.marks.update(kept.first + index for index in block.bad)
            if block.unread:
                self.unread.update((kept.first + line.at, line) for line in block.unread)
                self.marks.update(kept.first + line.at for line in block.unread)
            if block.long:
                self.long.update(kept.first + index for index in block.long)
                self.marks.update(kept.first + index for index in block.long)
            if block.foreign:
                self.foreign.update((kept.first + index, line) for index, line in block.foreign)
                self.marks.update(kept.first + index for index, _ in block.foreign)
            if block.nul:
                self.nul.update(kept.first + index for index in block.nul)
                self.marks.update(kept.first + index for index in block.nul)
            if block.open_end:
                self.unterminated = kept.first + len(block.sizes) - 1
                self.marks.add(self.unterminated)
            self.heavy += block.heavy
            self._next_line += len(block.sizes)
            self._next_offset += sum(block.sizes)
            self._keep(kept)
            yield from self._chunks(kept, 0)
        if self.end is None:
            self.end = self._next_line
            self.marks.add(self.end)
            self._keep(_Kept(self.end, self._next_offset, [""], [0]))
            yield [""]

    def _keep(self, kept: _Kept) -> None:
        """Keep ``kept``, and drop the blocks that end before the record being parsed."""
        start = self._base + self.record_start
        self._kept = [k for k in self._kept if k.first + len(k.texts) > start]
        self._kept.append(kept)
        if self.marks and min(self.marks) < start:
            # Lines before the record being parsed are never looked at again (pruned in
            # place: the reading loop holds the set).
            passed = [line for line in self.marks if line < start]
            self.marks.difference_update(passed)
            self.bad.difference_update(passed)
            self.long.difference_update(passed)
            self.nul.difference_update(passed)
            for line in passed:
                self.unread.pop(line, None)
                self.foreign.pop(line, None)

    def _chunks(self, kept: _Kept, start: int) -> Iterator[list[str]]:
        texts, step = kept.texts, self.max_lines
        for index in range(start, len(texts), step):
            if kept.first + index - self._base - self.record_start > step:
                raise RecordTooLong
            yield texts[index : index + step] if index or len(texts) > step else texts

    def offset_after(self, lines: int) -> int:
        """The byte offset just after the first ``lines`` lines (counted from where reading
        started): the first line of the record being parsed, or a line before it in the
        same block."""
        for kept in reversed(self._kept):
            if kept.first <= lines:
                return kept.offset + sum(kept.sizes[: lines - kept.first])
        return self._next_offset

    def line(self, index: int) -> str:
        """The text of line ``index``, without its line break: a line of the record being
        parsed."""
        kept = next(kept for kept in reversed(self._kept) if kept.first <= index)
        return kept.texts[index - kept.first].rstrip("\r\n")
