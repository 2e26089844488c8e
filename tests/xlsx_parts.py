"""Workbooks written part by part, for what openpyxl cannot write: cached formula values,
shared strings as Excel writes them, a namespace prefix, the 1904 date system, markup the
workbook reader's fast patterns leave to ElementTree.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"

# cellXfs of package(): 0 General, 1 date, 2 date-time, 3 time, 4 text, 5 percent 0.0%,
# 6 zeros (11), 7 Chinese date, 8 elapsed hours, 9 currency.
STYLES = f"""<styleSheet xmlns="{MAIN}"><numFmts count="6">
<numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd\\ hh:mm:ss"/>
<numFmt numFmtId="165" formatCode="0.0%"/>
<numFmt numFmtId="166" formatCode="00000000000"/>
<numFmt numFmtId="167" formatCode="yyyy&quot;年&quot;m&quot;月&quot;d&quot;日&quot;"/>
<numFmt numFmtId="168" formatCode="[h]:mm:ss"/>
<numFmt numFmtId="169" formatCode="&quot;¥&quot;#,##0.00;[Red]\\-&quot;¥&quot;#,##0.00"/>
</numFmts><cellXfs count="10"><xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/>
<xf numFmtId="21"/><xf numFmtId="49"/><xf numFmtId="165"/><xf numFmtId="166"/>
<xf numFmtId="167"/><xf numFmtId="168"/><xf numFmtId="169"/></cellXfs></styleSheet>"""


def package(
    path: Path,
    rows: str,
    *,
    strings: tuple[str, ...] = (),
    more_sheets: tuple[tuple[str, str, str], ...] = (),
    workbook_pr: str = "",
    head: str = "",
    tail: str = "",
    root: str = f'<worksheet xmlns="{MAIN}" xmlns:r="{REL}">',
    end: str = "</worksheet>",
    data_start: str = "<sheetData>",
    data_end: str = "</sheetData>",
) -> Path:
    """An xlsx whose first sheet ``Data`` holds ``rows`` (the XML inside sheetData).

    ``strings`` are the ``<si>`` contents of the shared-string table, as XML;
    ``more_sheets`` are ``(name, state, rows)`` of further sheets.
    """
    sheets = (("Data", "visible", rows), *more_sheets)
    entries = "".join(
        f'<sheet name="{name}" sheetId="{n}" r:id="rId{n}"'
        + ("" if state == "visible" else f' state="{state}"')
        + "/>"
        for n, (name, state, _) in enumerate(sheets, start=1)
    )
    rels = "".join(
        f'<Relationship Id="rId{n}" Type="{REL}/worksheet" Target="worksheets/sheet{n}.xml"/>'
        for n in range(1, len(sheets) + 1)
    )
    rels += f'<Relationship Id="rS" Type="{REL}/styles" Target="styles.xml"/>'
    rels += f'<Relationship Id="rT" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="{PKG}"><Relationship Id="r1" Type="{REL}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>',
        )
        archive.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{MAIN}" xmlns:r="{REL}">{workbook_pr}<sheets>{entries}</sheets>'
            "</workbook>",
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels", f'<Relationships xmlns="{PKG}">{rels}</Relationships>'
        )
        archive.writestr("xl/styles.xml", STYLES)
        items = "".join(f"<si>{item}</si>" for item in strings)
        archive.writestr("xl/sharedStrings.xml", f'<sst xmlns="{MAIN}">{items}</sst>')
        for n, (_, _, sheet_rows) in enumerate(sheets, start=1):
            archive.writestr(
                f"xl/worksheets/sheet{n}.xml",
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                f"{root}{head}{data_start}{sheet_rows}{data_end}{tail}{end}",
            )
    return path
