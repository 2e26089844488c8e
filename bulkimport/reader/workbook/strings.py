"""The shared-string table: every distinct text of a workbook, held packed as UTF-8."""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from typing import IO
from xml.etree import ElementTree

from bulkimport.reader import limits
from bulkimport.reader.workbook.markup import (
    BLOCK_BYTES,
    element_text,
    read_start_tag,
    spaces_then,
    unescape_ooxml,
    xml_text,
)
from bulkimport.reader.workbook.package import Package

#: The first texts of the table, kept decoded (about 90 bytes each: 6 MB at most).
HEAD_TEXTS = 1 << 16
#: A text of at least this many bytes is long: decoded once, its one text shared by every
#: cell that shows it, so that a sheet naming it in every cell costs no more memory for it.
LONG_TEXT = 1 << 12


class SharedStrings:
    """The shared-string table, packed: its texts as UTF-8 end to end, and where each
    starts (``offsets[i]``; ``offsets[i + 1]`` is where it ends).

    A list of Python strings would cost 60-100 bytes a text; this costs the UTF-8 bytes
    and 4 more. ``get(index)`` decodes one on demand. ``head`` holds the first
    ``HEAD_TEXTS`` texts decoded: spreadsheet programs write the table in the order texts
    are first used, so the texts that repeat down a column (a city, a status, a company)
    are among the first; on a sheet of a million leads, 6 of 10 text cells are.

    A text longer than a cell holds (``limits.MAX_CELL_CHARS``), or whose XML runs past
    ``limits.MAX_ROW_BYTES``, is not kept: it reads as ``""``, and ``oversize`` says how
    long it was, so that the sheet reader makes each row that shows it invalid. Its XML is
    passed over a block at a time, never held whole. Texts of ``LONG_TEXT`` bytes or more
    are in ``long``, read with ``text``: ``special`` holds both kinds, for the sheet reader
    to tell them from the others at the cost of one look at an empty set.
    """

    def __init__(self) -> None:
        self.blob = bytearray()
        self.offsets = array("I", [0])
        self.head: list[str] = []
        #: The texts not kept, by index: what each is, for a person (``a text of 40,000
        #: characters``).
        self.oversize: dict[int, str] = {}
        self.long: set[int] = set()
        self.special: set[int] = set()
        self._decoded: dict[int, str] = {}  # long texts read so far

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, index: int) -> str:
        if index < 0:
            raise IndexError(f"no shared string {index}")
        return self.blob[self.offsets[index] : self.offsets[index + 1]].decode()

    def text(self, index: int) -> str:
        """Text ``index`` (``""`` for one not kept), a long one decoded once."""
        if 0 <= index < len(self.head):
            return self.head[index]
        if index not in self.long:
            return self.get(index)
        text = self._decoded.get(index)
        if text is None:
            text = self._decoded[index] = self.get(index)
        return text

    def extend(self, texts: list[bytes]) -> None:
        if not texts:
            return
        if max(map(len, texts)) >= LONG_TEXT:
            texts = self._screen(texts)
        position = len(self.blob)
        self.blob += b"".join(texts)
        if len(self.blob) >= 1 << 32 and self.offsets.typecode == "I":
            self.offsets = array("Q", self.offsets)
        self.offsets.extend(accumulate(map(len, texts), initial=position))
        del self.offsets[-len(texts) - 1]  # the initial one, already there

    def _screen(self, texts: list[bytes]) -> list[bytes]:
        """``texts`` with those longer than a cell holds left out (as ``b""``), and the long
        ones marked."""
        screened = []
        for index, text in enumerate(texts, start=len(self)):
            if len(text) >= LONG_TEXT:
                # Bytes first: a text has at most as many characters.
                chars = len(text.decode("utf-8", "replace"))
                if chars > limits.MAX_CELL_CHARS:
                    self.oversize[index] = f"a text of {chars:,} characters"
                    text = b""
                else:
                    self.long.add(index)
                self.special.add(index)
            screened.append(text)
        return screened

    def _skip(self, size: int) -> None:
        """Add a text whose XML (``size`` bytes) was passed over unread."""
        self.oversize[len(self)] = f"a text of {size:,} bytes"
        self.special.add(len(self))
        self.offsets.append(len(self.blob))

    @classmethod
    def read(cls, package: Package, part: str | None) -> SharedStrings:
        """The table in ``part`` (an empty one for a workbook without shared strings).

        Read a block at a time: what is carried from one block to the next is the text
        being read, at most ``limits.MAX_ROW_BYTES``, so reading is linear in the part's
        size whatever it holds (a text of 300 MB, a gigabyte of spaces between two)."""
        table = cls()
        if part is None:
            return table
        with package.open(part) as stream:
            data, root = read_start_tag(stream, b"sst")
            if root[2]:  # <sst/>
                return table
            items = _Items(root[0], root[1] or b"")
            carry = data[root.end() :]
            limit = limits.MAX_ROW_BYTES
            while True:
                more = stream.read(BLOCK_BYTES)
                buffer = carry + more if carry else more
                if not more:
                    table.extend(items.texts(buffer))
                    break
                cut = buffer.rfind(items.marker)
                if cut <= 0:
                    # One text (or what comes before the first) runs on past this block.
                    carry = (
                        buffer if len(buffer) <= limit else table._overflow(buffer, items, stream)
                    )
                    continue
                block, carry = buffer[:cut], buffer[cut:]
                table.extend(items.texts(block))
        table.head = [table.get(index) for index in range(min(len(table), HEAD_TEXTS))]
        return table

    def _overflow(self, buffer: bytes, items: _Items, stream: IO[bytes]) -> bytes:
        """What to carry on with when ``buffer``, more than a text may take, holds no start
        of a text after its first byte: whitespace around the texts is dropped, a text
        too long to keep is passed over to its end."""
        if not buffer.startswith(items.marker):
            buffer = buffer.lstrip()  # before the first text: spaces and line breaks
            if len(buffer) <= limits.MAX_ROW_BYTES:
                return buffer
            if not buffer.startswith(items.marker):
                raise ValueError(f"more than {limits.MAX_ROW_BYTES:,} bytes of other markup")
        end = buffer.find(b">")
        if end > 0 and buffer[end - 1] == 0x2F:  # <si/>
            end += 1
        else:
            end = buffer.find(items.end)
            end = end + len(items.end) if end >= 0 else -1
        if end >= 0:
            # A text of its own size, then whitespace (to the next text, or to </sst>).
            rest = buffer[end:].lstrip()
            if rest.startswith(items.close):
                return buffer[:end] + items.close  # nothing after the table counts
            after = spaces_then(rest, (items.marker, items.close))
            if after is None:
                raise ValueError(f"more than {limits.MAX_ROW_BYTES:,} bytes of other markup")
            return buffer[:end] + after
        keep = len(items.end) - 1  # an end tag cut by the end of a block
        size, tail = len(buffer), buffer[-keep:]
        while True:
            more = stream.read(BLOCK_BYTES)
            if not more:
                raise ValueError(f"the shared strings end inside text {len(self)}")
            window = tail + more
            end = window.find(items.end)
            if end >= 0:
                end += len(items.end)
                self._skip(size + end - len(tail))
                return window[end:]
            size += len(more)
            tail = window[-keep:]


class _Items:
    """The texts of the ``<si>`` items of a block of the table, as UTF-8."""

    def __init__(self, start_tag: bytes, prefix: bytes) -> None:
        self.start_tag, self.prefix = start_tag, prefix
        self.close = b"</%ssst>" % prefix
        self.marker = b"<%ssi" % prefix
        self.end = b"</%ssi>" % prefix
        # Items that are a lone plain <t>, their text as it is: most blocks hold no others,
        # and then need no look at each item.
        self.plain = re.compile(
            rb"<%(p)ssi><%(p)st(?:\s[^>]*)?>([^<]*)</%(p)st></%(p)ssi>" % {b"p": prefix}
        )
        # Any item: a lone plain <t> (group 1), or anything else (group 2).
        self.any = re.compile(
            rb"<%(p)ssi>(?:<%(p)st(?:\s[^>]*)?>([^<]*)</%(p)st>|(.*?))</%(p)ssi>|<%(p)ssi\s*/>"
            % {b"p": prefix},
            re.S,
        )

    def texts(self, block: bytes) -> list[bytes]:
        count = block.count(self.marker)
        texts: list[bytes] = self.plain.findall(block)
        if len(texts) == count and not any(mark in block for mark in _ESCAPES):
            return texts
        items = self.any.findall(block)
        if len(items) != count:
            raise ValueError("unreadable shared strings")
        return [
            plain
            if not rich and b"&" not in plain and b"\r" not in plain and b"_x" not in plain
            else _rich_text(rich, self.start_tag, self.close, self.prefix)
            if rich
            else _plain_text(plain)
            for plain, rich in items
        ]


# What makes a text differ from its markup: entities, CR (read as LF), _xHHHH_ escapes.
_ESCAPES = (b"&", b"\r", b"_x")


def _plain_text(raw: bytes) -> bytes:
    """The UTF-8 text of a plain ``<t>``: entities, line ends and ``_xHHHH_`` decoded."""
    if b"&" in raw or b"\r" in raw or b"_x" in raw:
        text = xml_text(raw.decode())
        return (unescape_ooxml(text) if "_x" in text else text).encode("utf-8", "surrogatepass")
    return raw


def _rich_text(body: bytes, start_tag: bytes, close: bytes, prefix: bytes) -> bytes:
    """The UTF-8 text of an ``si`` that is more than a plain ``<t>`` (runs, phonetic guides)."""
    xml = b"%s<%ssi>%s</%ssi>%s" % (start_tag, prefix, body, prefix, close)
    root = ElementTree.fromstring(xml)
    return element_text(root[0]).encode("utf-8", "surrogatepass")
