"""The physical lines of a text file, a block at a time, with the byte size of each, and
``LineSource``, which hands them to the csv parser with a bound on the lines of a record.

Reading needs exact byte offsets (so that it can resume at a record boundary) and fast
splitting (in C, per block). Lines end at LF, CRLF or a bare CR.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, NamedTuple

from bulkimport.errors import InputError
from bulkimport.reader.encoding import WIDE_UNIT

#: How much is read at a time while streaming (lines are split per block, in C).
BLOCK_BYTES = 1 << 20
# Splits decoded UTF-16/32 text at CR, LF and CRLF only (str.splitlines knows more breaks).
_WIDE_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


class Block(NamedTuple):
    texts: list[str]  # decoded lines, each with its line ending
    sizes: list[int]  # the byte length of each line in the file
    bad: list[int]  # indexes of lines that did not decode


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


def _decode_lines(raw: list[bytes], encoding: str) -> Block:
    sizes = list(map(len, raw))
    try:
        texts = b"".join(raw).decode(encoding).splitlines(keepends=True)
    except UnicodeDecodeError:
        texts = []
    # str.splitlines also breaks at FF, VT, NEL, U+2028...: then the counts differ.
    if len(texts) == len(raw):
        return Block(texts, sizes, [])
    texts, bad = [], []
    for index, line in enumerate(raw):
        try:
            texts.append(line.decode(encoding))
        except UnicodeDecodeError:
            texts.append(line.decode(encoding, "replace"))
            bad.append(index)
    return Block(texts, sizes, bad)


def _wide_blocks(handle: IO[bytes], encoding: str, path: Path) -> Iterator[Block]:
    """Lines of UTF-16/32 text, where a line break is 2 or 4 bytes."""
    unit = WIDE_UNIT[encoding]
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
            yield Block(lines, sizes, bad)
        if final:
            return


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
    lines that did not decode, and the end mark: an empty line after the last one (``end``).
    The parser reads the end mark as an empty record, or, if a quoted field is still open at
    the end of the file, as part of it: the reading loop tells the two apart by its line.
    """

    __slots__ = (
        "_base",
        "_blocks",
        "_kept",
        "_next_line",
        "_next_offset",
        "end",
        "marks",
        "max_lines",
        "record_start",
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
        self.end: int | None = None

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
                self.marks.update(kept.first + index for index in block.bad)
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
