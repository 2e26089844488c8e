"""Hostile input files, written streaming so that making even the full-size ones is cheap:
a workbook whose rows are separated by a gigabyte of spaces, one whose shared string is
300 MB long, one with a value in column XFD of every row, a CSV file with a line of 200 MB.

Each takes its size as an argument: the quick tests make them small, the slow tests and
``bench/hostile.py`` full size. ``measure`` runs a command in a process of its own and
gives its wall time and peak memory.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
CHUNK = 1 << 20

#: The full sizes, as the files were measured before the reader had limits.
SPACES = 1 << 30
LONG_STRING = 300 << 20
WIDE_ROWS = 200_000
LONG_LINE = 200 << 20

#: The header of every file, and the rows around the hostile part (name, phone1, city).
HEADER = ("name", "phone1", "city")
LEADS = (("Ann", "13800000001", "Paris"), ("Bob", "13800000002", "Lyon"))


def _text(value: str) -> bytes:
    return value.replace("&", "&amp;").replace("<", "&lt;").encode()


def row(number: int, values: Sequence[str]) -> bytes:
    """A ``<row>`` of inline strings, from column A."""
    cells = b"".join(
        b'<c r="%s%d" t="inlineStr"><is><t>%s</t></is></c>' % (column.encode(), number, _text(v))
        for column, v in zip("ABCDEFGH", values, strict=False)
    )
    return b'<row r="%d">%s</row>' % (number, cells)


def workbook(path: Path, rows: Iterable[bytes], strings: Iterable[bytes] = ()) -> Path:
    """An xlsx whose one sheet holds ``rows`` (the bytes inside ``<sheetData>``, in chunks)
    and whose shared-string table holds ``strings`` (the bytes inside ``<sst>``): each part
    written as it comes, never held whole."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        )
        archive.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="{PKG}"><Relationship Id="r1" Type="{REL}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>',
        )
        archive.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets>'
            '<sheet name="Leads" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<Relationships xmlns="{PKG}">'
            f'<Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>'
            "</Relationships>",
        )
        with archive.open("xl/sharedStrings.xml", "w", force_zip64=True) as part:
            part.write(f'<sst xmlns="{MAIN}">'.encode())
            for chunk in strings:
                part.write(chunk)
            part.write(b"</sst>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as part:
            part.write(f'<worksheet xmlns="{MAIN}"><sheetData>'.encode())
            for chunk in rows:
                part.write(chunk)
            part.write(b"</sheetData></worksheet>")
    return path


def _run(byte: bytes, size: int) -> Iterator[bytes]:
    """``size`` bytes of ``byte``, a chunk at a time."""
    block = byte * CHUNK
    while size > 0:
        yield block[:size]
        size -= CHUNK


def spaces_workbook(path: Path, spaces: int = SPACES, where: str = "between") -> Path:
    """The header and two leads (rows 1-3), with ``spaces`` bytes of spaces ``between``
    rows 2 and 3, ``before`` the first row, or ``inside`` row 2 (between two cells)."""

    def rows() -> Iterator[bytes]:
        if where == "before":
            yield from _run(b" ", spaces)
        yield row(1, HEADER)
        if where == "inside":
            yield b'<row r="2"><c r="A2" t="inlineStr"><is><t>Ann</t></is></c>'
            yield from _run(b" ", spaces)
            yield b'<c r="B2"><v>13800000001</v></c></row>'
        else:
            yield row(2, LEADS[0])
        if where == "between":
            yield from _run(b" ", spaces)
        yield row(3, LEADS[1])

    return workbook(path, rows())


def long_string_workbook(path: Path, chars: int = LONG_STRING) -> Path:
    """The header and three leads; Bob's city (row 3, column C) is shared string 1, of
    ``chars`` characters."""
    strings = [b"<si><t>Paris</t></si>", b"<si><t>", *_run(b"x", chars), b"</t></si>"]
    rows = [
        row(1, HEADER),
        b'<row r="2"><c r="A2" t="inlineStr"><is><t>Ann</t></is></c>'
        b'<c r="B2"><v>13800000001</v></c><c r="C2" t="s"><v>0</v></c></row>',
        b'<row r="3"><c r="A3" t="inlineStr"><is><t>Bob</t></is></c>'
        b'<c r="B3"><v>13800000002</v></c><c r="C3" t="s"><v>1</v></c></row>',
        row(4, ("Cy", "13800000003", "Nice")),
    ]
    return workbook(path, rows, strings)


def wide_workbook(path: Path, rows: int = WIDE_ROWS) -> Path:
    """The header and ``rows`` leads, each with a value in column XFD as well."""
    strings = [b"<si><t>Paris</t></si>", b"<si><t>a note far right</t></si>"]

    def sheet() -> Iterator[bytes]:
        yield row(1, HEADER)
        batch = []
        for number in range(2, rows + 2):
            batch.append(
                b'<row r="%d"><c r="A%d" t="s"><v>0</v></c><c r="B%d"><v>%d</v></c>'
                b'<c r="XFD%d" t="s"><v>1</v></c></row>'
                % (number, number, number, 13800000000 + number, number)
            )
            if len(batch) == 10_000:
                yield b"".join(batch)
                batch = []
        yield b"".join(batch)

    return workbook(path, sheet(), strings)


def long_line_csv(path: Path, size: int = LONG_LINE, newline: bytes = b"\n") -> Path:
    """The header and three leads; Bob's line (line 3) is ``size`` bytes long."""
    with open(path, "wb") as out:
        out.write(b"name,phone1,city" + newline + b"Ann,13800000001,Paris" + newline)
        out.write(b"Bob,13800000002,")
        for chunk in _run(b"x", size - len(b"Bob,13800000002,")):
            out.write(chunk)
        out.write(newline + b"Cy,13800000003,Nice" + newline)
    return path


class Measured(NamedTuple):
    seconds: float
    max_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def measure(args: Sequence[str], env: dict[str, str] | None = None) -> Measured:
    """Run ``args`` in a process of its own: its wall time and peak memory (its own max RSS,
    as ``getrusage`` gives it for a child waited for).

    The process is started from a small one made for the purpose: a child's peak memory
    counts the memory of the process it was forked from (until it runs its program), and a
    test process can be large."""
    if env:
        args = ["env", *(f"{key}={value}" for key, value in env.items()), *args]
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    )
    return Measured(*json.loads(done.stdout))


def _measure(args: Sequence[str]) -> Measured:
    """``measure``, run from the small process: its one child is the command, so the
    peak memory of its children is the command's."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        returncode = subprocess.run(list(args), stdout=out, stderr=err, check=False).returncode
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 << 20 if sys.platform == "darwin" else 1 << 10  # bytes on macOS, KiB on Linux
    return Measured(seconds, peak / scale, returncode, stdout, stderr)


if __name__ == "__main__":
    print(json.dumps(_measure(sys.argv[1:])))
