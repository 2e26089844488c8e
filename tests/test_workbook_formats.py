"""Numbers of a workbook reach the server as its cells show them (``0.00``, ``0.00%``,
``#,##0``), in a workbook LibreOffice Calc made, as a person's would be made: a spreadsheet
saved as .xlsx, not XML written by hand."""

from __future__ import annotations

import subprocess
from pathlib import Path

import openpyxl  # type: ignore[import-untyped]
import pytest

from bulkimport import Client, JobState, RowState, SendSettings, Target
from bulkimport.sandbox import SandboxHandle
from tests.helpers import customers, soffice

NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "number": "urn:oasis:names:tc:opendocument:xmlns:datastyle:1.0",
}
#: The number styles of the sheet: LibreOffice writes them to .xlsx as these format codes.
STYLES = """
<number:number-style style:name="N1"><number:number number:decimal-places="0"
 number:min-decimal-places="0" number:min-integer-digits="1"/></number:number-style>
<number:number-style style:name="N2"><number:number number:decimal-places="2"
 number:min-decimal-places="2" number:min-integer-digits="1"/></number:number-style>
<number:number-style style:name="N3"><number:number number:decimal-places="0"
 number:min-decimal-places="0" number:min-integer-digits="1" number:grouping="true"/>
</number:number-style>
<number:number-style style:name="N4"><number:number number:decimal-places="2"
 number:min-decimal-places="2" number:min-integer-digits="1" number:grouping="true"/>
</number:number-style>
<number:percentage-style style:name="N10"><number:number number:decimal-places="2"
 number:min-decimal-places="2" number:min-integer-digits="1"/><number:text>%</number:text>
</number:percentage-style>
<style:style style:name="phone" style:family="table-cell" style:data-style-name="N1"/>
<style:style style:name="fixed" style:family="table-cell" style:data-style-name="N2"/>
<style:style style:name="whole" style:family="table-cell" style:data-style-name="N3"/>
<style:style style:name="money" style:family="table-cell" style:data-style-name="N4"/>
<style:style style:name="percent" style:family="table-cell" style:data-style-name="N10"/>
"""
#: Columns: (field, cell style); the vendor's fields carry the numbers.
COLUMNS = [
    ("customername", None),
    ("phone1", "phone"),
    ("priority", "whole"),
    ("memo", "fixed"),
    ("address", "percent"),
    ("company", "money"),
    ("phone2", "fixed"),
]
ROWS = [
    ("王芳", 13800138000, 1234, 3.5, 0.035, 1234.5, 13800138001),
    ("李雷", 13800138002, 1234.5, 2.675, 3.5, 1234567.891, 75512345678),
    ("Émile", 13800138003, 7, 3, 1, 0.5, 13800138004),
]
#: What the server must hold: as each cell shows, without thousands separators; whole
#: numbers whole, in full (a phone in a 0.00 column never gets decimals).
SHOWN = {
    "13800138000": ["王芳", "1234", "3.50", "3.50%", "1234.50", "13800138001"],
    "13800138002": ["李雷", "1235", "2.68", "350.00%", "1234567.89", "75512345678"],
    "13800138003": ["Émile", "7", "3", "100.00%", "0.50", "13800138004"],
}


def cell(value: object, style: str | None) -> str:
    styled = f' table:style-name="{style}"' if style else ""
    if isinstance(value, str):
        text = f"<text:p>{value}</text:p>"
        return f'<table:table-cell office:value-type="string">{text}</table:table-cell>'
    kind = "percentage" if style == "percent" else "float"
    return f'<table:table-cell{styled} office:value-type="{kind}" office:value="{value!r}"/>'


def calc_workbook(tmp_path: Path) -> Path:
    """The sheet as a flat ODF file, saved as .xlsx by LibreOffice Calc."""
    rows = [
        "<table:table-row>"
        + "".join(cell(name, None) for name, _ in COLUMNS)
        + "</table:table-row>"
    ]
    for values in ROWS:
        cells = "".join(cell(v, style) for v, (_, style) in zip(values, COLUMNS, strict=True))
        rows.append(f"<table:table-row>{cells}</table:table-row>")
    namespaces = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NS.items())
    source = tmp_path / "leads.fods"
    source.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<office:document {namespaces} office:version="1.2" '
        'office:mimetype="application/vnd.oasis.opendocument.spreadsheet">'
        f"<office:automatic-styles>{STYLES}</office:automatic-styles>"
        '<office:body><office:spreadsheet><table:table table:name="Leads">'
        + "".join(rows)
        + "</table:table></office:spreadsheet></office:body></office:document>",
        encoding="utf-8",
    )
    out = tmp_path / "calc"
    profile = tmp_path / "calc-profile"
    subprocess.run(
        [soffice(), f"-env:UserInstallation={profile.as_uri()}", "--headless",
         "--convert-to", "xlsx", "--outdir", str(out), str(source)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    return out / "leads.xlsx"


@pytest.mark.slow
async def test_numbers_of_a_calc_workbook_reach_the_server_as_shown(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    book = calc_workbook(tmp_path)
    # The formats are those a person picks in Calc (and Excel), as Calc saved them.
    sheet = openpyxl.load_workbook(book).active
    assert [sheet.cell(2, column).number_format for column in range(2, 8)] == [
        "0", "#,##0", "0.00", "0.00%", "#,##0.00", "0.00"
    ]  # fmt: skip
    target = Target(url=sandbox.url, org="demo", user="admin", password="secret", campaign="1")
    async with Client(
        target, db=tmp_path / "q.db", send=SendSettings(rate_per_s=0, max_attempts=1)
    ) as client:
        summary = await client.load_csv(book)
    assert (summary.state, summary.counts[RowState.DONE]) == (JobState.FINISHED, len(ROWS))
    names = [name for name, _ in COLUMNS]
    server = {c["key"]: c["fields"] for c in await customers(sandbox)}
    assert server == {
        phone: dict(zip(names, [values[0], phone, *values[1:]], strict=True))
        for phone, values in SHOWN.items()
    }
