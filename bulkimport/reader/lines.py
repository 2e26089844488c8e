"""The physical lines of a text file, a block at a time, with the byte size of each.

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


class Position:
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


def tracked(blocks: Iterable[Block], position: Position) -> Iterator[list[str]]:
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
