"""What every part of a workbook is read with: the zip's errors turned into one line, the
text of XML content and of OOXML's escapes, the start tag of a part's root element, and
``scan``, which reads the elements of a part that a caller wants without building its tree.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final
from xml.etree import ElementTree

from bulkimport.errors import InputError
from bulkimport.reader import limits

#: How much decompressed XML is parsed at a time.
BLOCK_BYTES: Final = 1 << 20


@contextmanager
def reading(path: Path) -> Iterator[None]:
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


def local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


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


def xml_text(raw: str) -> str:
    """The text of raw element content: entities replaced, line ends as an XML parser
    gives them."""
    if "&" in raw:
        raw = _ENTITY.sub(_entity, raw)
    if "\r" in raw:
        raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    return raw


def unescape_ooxml(text: str) -> str:
    return _OOXML_ESCAPE.sub(lambda match: chr(int(match[1], 16)), text)


def element_text(element: ElementTree.Element) -> str:
    """The text of an ``si`` or ``is`` element: its runs, without phonetic guides (rPh)."""
    parts = []
    for child in element:
        name = local_name(child.tag)
        if name == "t":
            parts.append(child.text or "")
        elif name == "r":
            parts.extend(t.text or "" for t in child if local_name(t.tag) == "t")
    text = "".join(parts)
    return unescape_ooxml(text) if "_x" in text else text


def read_start_tag(stream: IO[bytes], name: bytes) -> tuple[bytes, re.Match[bytes]]:
    """Read from ``stream`` until the start tag of the first element called ``name``
    (with any namespace prefix) is in; that data and the tag's match: group 1 the prefix
    (``b"x:"`` or ``None``), group 2 ``b"/"`` for an empty element.

    ``ValueError`` when the tag is not in the first ``limits.MAX_HEAD_BYTES`` (what comes
    before it is read whole: a few KB in a real part)."""
    pattern = re.compile(rb"<(\w+:)?" + re.escape(name) + rb"\b[^>]*?(/?)>")
    limit = limits.MAX_HEAD_BYTES
    data = bytearray()
    start = 0  # where a tag not yet complete may start
    while True:
        found = pattern.search(data, start)
        if found:
            return bytes(data), found
        more = stream.read(1 << 16)
        if not more:
            raise ValueError(f"no <{name.decode()}> element")
        if len(data) > limit:
            raise ValueError(f"no <{name.decode()}> element in the first {limit:,} bytes")
        # A tag cut by the end of the data starts at its last "<": search again from there,
        # not from the start (appending to a bytearray and searching the new part keeps
        # reading a large head linear).
        start = max(data.rfind(b"<"), 0)
        data += more


def spaces_then(rest: bytes, tags: tuple[bytes, ...]) -> bytes | None:
    """If ``rest`` is XML whitespace, then maybe the start of one of ``tags`` cut by the end
    of a block, that start (``b""`` if none); ``None`` if it holds anything else."""
    cut = rest.rfind(b"<")
    start = rest[cut:] if cut >= 0 else b""
    if start and not any(tag.startswith(start) for tag in tags):
        return None
    # translate() deletes XML's whitespace twice as fast as strip() scans for it.
    return None if rest[: len(rest) - len(start)].translate(None, b" \t\r\n") else start


def scan(
    stream: IO[bytes], paths: Collection[tuple[str, ...]]
) -> Iterator[tuple[tuple[str, ...], dict[str, str]]]:
    """The elements of an XML stream whose path of local names below the root is in
    ``paths`` (``("sheets", "sheet")``), with their attributes, in document order.

    No tree is built and text is not kept: memory holds the path being read and the
    elements found in one chunk, however large the part (a workbook's styles can list
    64,000 formats, its names hundreds of thousands). Raises ``ElementTree.ParseError``
    for markup that is not well-formed.
    """
    target = _Scanner(frozenset(paths))
    parser = ElementTree.XMLParser(target=target)
    while True:
        chunk = stream.read(1 << 16)
        if not chunk:
            break
        parser.feed(chunk)
        if target.found:
            yield from target.found
            target.found.clear()
    parser.close()
    yield from target.found


class _Scanner:
    """The target of ``scan``'s parser: collects the wanted elements as they start."""

    def __init__(self, paths: frozenset[tuple[str, ...]]) -> None:
        self.paths = paths
        self.depth = max(map(len, paths), default=0)
        self.names: list[str] = []  # the path below the root of the element being read
        self.root = False
        self.found: list[tuple[tuple[str, ...], dict[str, str]]] = []

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if not self.root:
            self.root = True
            return
        self.names.append(local_name(tag))
        if len(self.names) <= self.depth:
            path = tuple(self.names)
            if path in self.paths:
                self.found.append((path, attrib))

    def end(self, tag: str) -> None:
        if self.names:
            self.names.pop()

    def data(self, data: str) -> None:
        pass

    def close(self) -> None:
        pass
