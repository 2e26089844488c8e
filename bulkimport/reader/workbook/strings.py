"""The shared-string table: every distinct text of a workbook, held packed as UTF-8."""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from xml.etree import ElementTree

from bulkimport.reader.workbook.markup import (
    BLOCK_BYTES,
    element_text,
    read_start_tag,
    unescape_ooxml,
    xml_text,
)
from bulkimport.reader.workbook.package import Package

#: The first texts of the table, kept decoded (about 90 bytes each: 6 MB at most).
HEAD_TEXTS = 1 << 16


class SharedStrings:
    """The shared-string table, packed: its texts as UTF-8 end to end, and where each
    starts (``offsets[i]``; ``offsets[i + 1]`` is where it ends).

    A list of Python strings would cost 60-100 bytes a text; this costs the UTF-8 bytes
    and 4 more. ``get(index)`` decodes one on demand. ``head`` holds the first
    ``HEAD_TEXTS`` texts decoded: spreadsheet programs write the table in the order texts
    are first used, so the texts that repeat down a column (a city, a status, a company)
    are among the first; on a sheet of a million leads, 6 of 10 text cells are.
    """

    def __init__(self) -> None:
        self.blob = bytearray()
        self.offsets = array("I", [0])
        self.head: list[str] = []

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
    def read(cls, package: Package, part: str | None) -> SharedStrings:
        """The table in ``part`` (an empty one for a workbook without shared strings)."""
        table = cls()
        if part is None:
            return table
        with package.open(part) as stream:
            data, root = read_start_tag(stream, b"sst")
            items = _Items(root[0], root[1] or b"")
            carry = data[root.end() :]
            while True:
                more = stream.read(BLOCK_BYTES)
                buffer = carry + more
                cut = buffer.rfind(items.marker) if more else len(buffer)
                if cut <= 0:
                    carry = buffer
                    continue
                block, carry = buffer[:cut], buffer[cut:]
                table.extend(items.texts(block))
                if not more:
                    break
        table.head = [table.get(index) for index in range(min(len(table), HEAD_TEXTS))]
        return table


class _Items:
    """The texts of the ``<si>`` items of a block of the table, as UTF-8."""

    def __init__(self, start_tag: bytes, prefix: bytes) -> None:
        self.start_tag, self.prefix = start_tag, prefix
        self.close = b"</%ssst>" % prefix
        self.marker = b"<%ssi" % prefix
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
