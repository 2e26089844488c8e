"""Generate a realistic lead workbook (.xlsx) of N rows, so that nothing large is ever committed.

    python bench/generate_xlsx.py --rows 100000 [-o bench/data/leads-100000.xlsx] [--seed 1]
    python bench/generate_xlsx.py --rows 1048575      # a full sheet: header + 1,048,575 rows

The parts are written as Excel writes them, not as a Python library would, so that readers are
measured on the files users have: strings in a shared-string table (``--inline-strings`` writes
them in the cells instead, as openpyxl and xlsxwriter's constant-memory mode do), rows with
``r`` and ``spans``, cell references on every cell, empty cells left out, dates and times as
serial numbers with a date number format, formulas with their cached value.

Sheet ``Leads`` (columns; the value types a person types into Excel):

    A name        Chinese or Western name (text)
    B mobile      11-digit mobile number typed as a number (General format)
    C landline    area-code phone typed as text, leading zero kept (format ``@``), 30 % empty
    D email       text, 30 % empty
    E company     text, 50 % empty
    F city        Chinese text
    G address     Chinese text
    H priority    integer 1-9
    I score       float with one or two decimals (``73.25``), 10 % a whole number
    J signup      date (format 14, ``m/d/yyyy``)
    K last_call   date and time (custom format ``yyyy-mm-dd hh:mm:ss``)
    L best_time   time of day (format 21, ``h:mm:ss``)
    M vip         boolean
    N total       formula ``H*10+I`` with its cached value; every 997th row a ``#DIV/0!``
    O memo        text, 50 % empty

and the layout a real export has: every 1,000th row hidden, column O hidden, O1:P1 merged.
Sheet ``Notes``: a few rows of free text.

The same ``--rows``, ``--seed`` and ``--inline-strings`` always give the same bytes (the zip
entries carry a fixed date), so a file generated once in ``bench/data/`` (gitignored) is reused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import rows as csv_rows

HEADER = (
    "name",
    "mobile",
    "landline",
    "email",
    "company",
    "city",
    "address",
    "priority",
    "score",
    "signup",
    "last_call",
    "best_time",
    "vip",
    "total",
    "memo",
)
COLUMNS = "ABCDEFGHIJKLMNO"
HIDDEN_ROW_EVERY = 1000
ERROR_ROW_EVERY = 997
MAX_ROWS = 1_048_576  # Excel's limit, header included

_ZIP_DATE = (2024, 1, 1, 0, 0, 0)
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)
_AREA_CODES = ("010", "020", "021", "022", "023", "024", "025", "027", "028", "0571", "0755")

# Style indexes into cellXfs below.
_GENERAL, _DATE, _DATETIME, _TIME, _TEXT = 0, 1, 2, 3, 4

_NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_NS_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_NS_MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_NS_X14AC = "http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'
_WORKSHEET_START = (
    f'{_DECLARATION}<worksheet xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}" xmlns:mc="{_NS_MC}" '
    f'mc:Ignorable="x14ac" xmlns:x14ac="{_NS_X14AC}">'
)

_CONTENT_TYPES = f"""{_DECLARATION}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">\
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>\
<Default Extension="xml" ContentType="application/xml"/>\
<Override PartName="/xl/workbook.xml" \
ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>\
<Override PartName="/xl/worksheets/sheet1.xml" \
ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>\
<Override PartName="/xl/worksheets/sheet2.xml" \
ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>\
<Override PartName="/xl/styles.xml" \
ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>\
<Override PartName="/xl/sharedStrings.xml" \
ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>\
</Types>"""

_ROOT_RELS = f"""{_DECLARATION}<Relationships xmlns="{_NS_PKG_REL}">\
<Relationship Id="rId1" Type="{_NS_REL}/officeDocument" Target="xl/workbook.xml"/>\
</Relationships>"""

_WORKBOOK = f"""{_DECLARATION}<workbook xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}">\
<workbookPr defaultThemeVersion="166925"/><bookViews><workbookView activeTab="0"/></bookViews>\
<sheets><sheet name="Leads" sheetId="1" r:id="rId1"/><sheet name="Notes" sheetId="2" r:id="rId2"/>\
</sheets><calcPr calcId="191029"/></workbook>"""

_WORKBOOK_RELS = f"""{_DECLARATION}<Relationships xmlns="{_NS_PKG_REL}">\
<Relationship Id="rId1" Type="{_NS_REL}/worksheet" Target="worksheets/sheet1.xml"/>\
<Relationship Id="rId2" Type="{_NS_REL}/worksheet" Target="worksheets/sheet2.xml"/>\
<Relationship Id="rId3" Type="{_NS_REL}/styles" Target="styles.xml"/>\
<Relationship Id="rId4" Type="{_NS_REL}/sharedStrings" Target="sharedStrings.xml"/>\
</Relationships>"""

_STYLES = f"""{_DECLARATION}<styleSheet xmlns="{_NS_MAIN}">\
<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd\\ hh:mm:ss"/></numFmts>\
<fonts count="1"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>\
<fills count="2"><fill><patternFill patternType="none"/></fill>\
<fill><patternFill patternType="gray125"/></fill></fills>\
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>\
<cellXfs count="5"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>\
<xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>\
<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>\
<xf numFmtId="21" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>\
<xf numFmtId="49" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>\
</cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>\
</styleSheet>"""

_NOTES = (
    ("note", "author"),
    ("导入前请检查手机号", "王芳"),
    ("Landlines keep their leading zero", "Sophie"),
)


class _Strings:
    """Text cells as Excel writes them: an index into the shared-string table, or inline."""

    def __init__(self, inline: bool) -> None:
        self.inline = inline
        self.index: dict[str, int] = {}
        self.count = 0  # references, as Excel's sst@count

    def cell(self, ref: str, text: str, style: int = _GENERAL) -> str:
        s = f' s="{style}"' if style else ""
        if self.inline:
            return f'<c r="{ref}"{s} t="inlineStr"><is><t>{escape(text)}</t></is></c>'
        self.count += 1
        number = self.index.setdefault(text, len(self.index))
        return f'<c r="{ref}"{s} t="s"><v>{number}</v></c>'

    def table(self) -> Iterator[str]:
        yield (
            f'{_DECLARATION}<sst xmlns="{_NS_MAIN}" count="{self.count}" '
            f'uniqueCount="{len(self.index)}">'
        )
        for text in self.index:
            space = ' xml:space="preserve"' if text != text.strip() else ""
            yield f"<si><t{space}>{escape(text)}</t></si>"
        yield "</sst>"


def _serial(moment: dt.datetime) -> float:
    """The Excel serial number (1900 date system) of ``moment``."""
    delta = moment - _EXCEL_EPOCH
    return delta.days + delta.seconds / 86400


def _number(value: float) -> str:
    return repr(int(value)) if value == int(value) else repr(value)


def sheet_rows(count: int, seed: int, strings: _Strings) -> Iterator[str]:
    """The XML of the ``Leads`` sheet's rows, header first, one ``<row>`` at a time."""
    text = strings.cell
    yield (
        '<row r="1" spans="1:15" x14ac:dyDescent="0.25">'
        + "".join(text(f"{col}1", name) for col, name in zip(COLUMNS, HEADER, strict=True))
        + "</row>"
    )
    rng = random.Random(seed + 1_000_003)
    rand, randrange, choice = rng.random, rng.randrange, rng.choice
    start = dt.datetime(2019, 1, 1)
    for index, lead in enumerate(csv_rows(count, seed)):
        row = index + 2
        name, mobile, _, email, company, city, address, priority, memo = lead
        cells = [text(f"A{row}", name), f'<c r="B{row}"><v>{mobile}</v></c>']
        if rand() < 0.7:
            landline = f"{choice(_AREA_CODES)}{randrange(10_000_000, 100_000_000)}"
            cells.append(text(f"C{row}", landline, _TEXT))
        if email:
            cells.append(text(f"D{row}", email))
        if company:
            cells.append(text(f"E{row}", company))
        cells.append(text(f"F{row}", city))
        cells.append(text(f"G{row}", address))
        cells.append(f'<c r="H{row}"><v>{priority}</v></c>')
        score = randrange(0, 10000) / 100 if rand() < 0.9 else float(randrange(0, 100))
        cells.append(f'<c r="I{row}"><v>{_number(score)}</v></c>')
        signup = start + dt.timedelta(days=randrange(0, 2000))
        cells.append(f'<c r="J{row}" s="{_DATE}"><v>{_number(_serial(signup))}</v></c>')
        called = signup + dt.timedelta(seconds=randrange(0, 86400 * 30))
        cells.append(f'<c r="K{row}" s="{_DATETIME}"><v>{_number(_serial(called))}</v></c>')
        best = randrange(8 * 3600, 20 * 3600, 60) / 86400
        cells.append(f'<c r="L{row}" s="{_TIME}"><v>{_number(best)}</v></c>')
        cells.append(f'<c r="M{row}" t="b"><v>{1 if rand() < 0.1 else 0}</v></c>')
        if row % ERROR_ROW_EVERY == 0:
            cells.append(f'<c r="N{row}" t="e"><f>H{row}/0</f><v>#DIV/0!</v></c>')
        else:
            total = int(priority) * 10 + score
            cells.append(f'<c r="N{row}"><f>H{row}*10+I{row}</f><v>{_number(total)}</v></c>')
        if memo:
            cells.append(text(f"O{row}", memo))
        hidden = ' hidden="1"' if row % HIDDEN_ROW_EVERY == 0 else ""
        yield f'<row r="{row}" spans="1:15"{hidden} x14ac:dyDescent="0.25">{"".join(cells)}</row>'


def generate(path: Path, count: int, seed: int = 1, *, inline_strings: bool = False) -> Path:
    """Write a workbook of ``count`` data rows (plus the header) to ``path``; return ``path``."""
    if not 0 <= count < MAX_ROWS:
        raise ValueError(f"a sheet holds at most {MAX_ROWS - 1:,} rows under its header")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    strings = _Strings(inline_strings)

    def entry(name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        return info

    with zipfile.ZipFile(partial, "w") as archive:
        archive.writestr(entry("[Content_Types].xml"), _CONTENT_TYPES)
        archive.writestr(entry("_rels/.rels"), _ROOT_RELS)
        archive.writestr(entry("xl/workbook.xml"), _WORKBOOK)
        archive.writestr(entry("xl/_rels/workbook.xml.rels"), _WORKBOOK_RELS)
        archive.writestr(entry("xl/styles.xml"), _STYLES)
        with archive.open(entry("xl/worksheets/sheet1.xml"), "w", force_zip64=True) as part:
            head = (
                f'{_WORKSHEET_START}<dimension ref="A1:O{count + 1}"/>'
                '<sheetViews><sheetView workbookViewId="0"/></sheetViews>'
                '<sheetFormatPr defaultRowHeight="15" x14ac:dyDescent="0.25"/>'
                '<cols><col min="15" max="15" width="20" hidden="1" customWidth="1"/></cols>'
                "<sheetData>"
            )
            part.write(head.encode())
            buffer: list[str] = []
            for xml in sheet_rows(count, seed, strings):
                buffer.append(xml)
                if len(buffer) >= 2000:
                    part.write("".join(buffer).encode())
                    buffer.clear()
            buffer.append(
                '</sheetData><mergeCells count="1"><mergeCell ref="O1:P1"/></mergeCells>'
                '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" '
                'footer="0.3"/></worksheet>'
            )
            part.write("".join(buffer).encode())
        notes = "".join(
            f'<row r="{number}">'
            + "".join(
                strings.cell(f"{col}{number}", value) for col, value in zip("AB", row, strict=True)
            )
            + "</row>"
            for number, row in enumerate(_NOTES, start=1)
        )
        archive.writestr(
            entry("xl/worksheets/sheet2.xml"),
            f'{_WORKSHEET_START}<dimension ref="A1:B{len(_NOTES)}"/><sheetData>{notes}'
            "</sheetData></worksheet>",
        )
        with archive.open(entry("xl/sharedStrings.xml"), "w", force_zip64=True) as part:
            chunk: list[str] = []
            for xml in strings.table():
                chunk.append(xml)
                if len(chunk) >= 5000:
                    part.write("".join(chunk).encode())
                    chunk.clear()
            part.write("".join(chunk).encode())
    partial.replace(path)
    return path


def data_file(
    count: int,
    seed: int = 1,
    directory: Path | None = None,
    *,
    inline_strings: bool = False,
    generate_missing: bool = True,
) -> Path:
    """``bench/data/leads-<count>.xlsx``, generated unless it is already there (or unless
    ``generate_missing`` is false: then only its path)."""
    directory = directory or Path(__file__).resolve().parent / "data"
    suffix = ("" if seed == 1 else f"-s{seed}") + ("-inline" if inline_strings else "")
    path = directory / f"leads-{count}{suffix}.xlsx"
    if generate_missing and not path.exists():
        generate(path, count, seed, inline_strings=inline_strings)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="data rows under the header")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--inline-strings", action="store_true")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.output:
        path = generate(args.output, args.rows, args.seed, inline_strings=args.inline_strings)
    else:
        path = data_file(args.rows, args.seed, inline_strings=args.inline_strings)
    size = path.stat().st_size
    print(
        f"{path}: {args.rows:,} rows, {size / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
