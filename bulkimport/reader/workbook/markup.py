"""What every part of a workbook is read with: the zip's errors turned into one line, the
text of XML content and of OOXML's escapes, the start tag of a part's root element.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final
from xml.etree import ElementTree

from bulkimport.errors import InputError

#: How much decompressed XML is parsed at a time.
BLOCK_BYTES: Final = 1 << 20
_HEAD_BYTES_MAX = 16 << 20  # the markup before <sheetData> is a few KiB; this is a guard


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
    (``b"x:"`` or ``None``), group 2 ``b"/"`` for an empty element."""
    pattern = re.compile(rb"<(\w+:)?" + re.escape(name) + rb"\b[^>]*?(/?)>")
    data = b""
    while True:
        found = pattern.search(data)
        if found:
            return data, found
        more = stream.read(1 << 16)
        if not more or len(data) > _HEAD_BYTES_MAX:
            raise ValueError(f"no <{name.decode()}> element")
        data += more
