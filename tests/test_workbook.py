"""The workbook reader, on small workbooks made at test time.

Two ways to make them: openpyxl (a real writer, with its own habits: inline strings, ``t="n"``,
formulas without cached values), and ``package()`` of ``tests/xlsx_parts.py``, which writes the
XML parts by hand for what openpyxl cannot write: cached formula values, shared strings as
Excel writes them, a namespace prefix, the 1904 date system, markup the fast patterns leave to
ElementTree.
"""

from __future__ import annotations

import datetime as dt
import math
import zipfile
from pathlib import Path

import openpyxl  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl.utils.datetime import CALENDAR_MAC_1904  # type: ignore[import-untyped]

from bulkimport.errors import InputError
from bulkimport.reader.workbook import (
    FormatKind,
    SheetInfo,
    WorkbookKind,
    column_letters,
    format_kind,
    is_workbook,
    list_sheets,
    number_text,
    numbers,
    open_sheet,
)
from bulkimport.reader.workbook import sheet as sheet_module
from tests.xlsx_parts import MAIN, package

Row = tuple[int, tuple[str, ...]]


def read(path: Path, sheet: str | int | None = None, start_row: int = 1) -> list[Row]:
    with open_sheet(path, sheet) as reader:
        return list(reader.iter_rows(start_row=start_row))


def cells(path: Path, sheet: str | int | None = None) -> list[tuple[str, ...]]:
    return [row for _, row in read(path, sheet)]


# --- cell types ------------------------------------------------------------------------------


def test_phone_numbers_typed_as_numbers_read_in_full(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.append([13800138000, 13800138000.0, 8613800138000, 123456789012345678])
    wb.save(tmp_path / "p.xlsx")
    # A number of more than 15 digits reads as Excel shows it: its first 15 digits.
    assert cells(tmp_path / "p.xlsx") == [
        ("13800138000", "13800138000", "8613800138000", "123456789012346000")
    ]


def test_text_keeps_leading_zeros_and_chinese(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.append(["07551234567", "王芳", "  spaced  ", "O'Brien & Sons <VIP>", "a\nb"])
    wb.save(tmp_path / "t.xlsx")
    assert cells(tmp_path / "t.xlsx") == [
        ("07551234567", "王芳", "  spaced  ", "O'Brien & Sons <VIP>", "a\nb")
    ]


def test_shared_strings_as_excel_writes_them(tmp_path: Path) -> None:
    strings = (
        "<t>07551234567</t>",
        "<t>陈超鹏</t>",
        '<t xml:space="preserve"> lead </t>',
        "<t>Smith &amp; Sons</t>",
        "<r><t>rich </t></r><r><rPr><b/></rPr><t>text</t></r>",
        "<t>東京</t><rPh sb='0' eb='2'><t>トウキョウ</t></rPh><phoneticPr fontId='1'/>",
        "<t>line_x000D_\r\nbreak</t>",
        "<t/>",
    )
    rows = '<row r="1">' + "".join(
        f'<c r="{column_letters(i + 1)}1" t="s"><v>{i}</v></c>' for i in range(len(strings))
    )
    path = package(tmp_path / "s.xlsx", rows + "</row>", strings=strings)
    assert cells(path) == [
        ("07551234567", "陈超鹏", " lead ", "Smith & Sons", "rich text", "東京", "line\r\nbreak")
    ]


def test_dates_datetimes_and_times(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.append(
        [
            dt.date(2024, 3, 5),
            dt.datetime(2024, 3, 5, 14, 30),
            dt.datetime(2024, 3, 5, 14, 30, 15, 250000),
            dt.time(9, 5),
            dt.datetime(2024, 3, 5),
        ]
    )
    wb.active["E1"].number_format = "yyyy-mm-dd hh:mm:ss"
    wb.save(tmp_path / "d.xlsx")
    assert cells(tmp_path / "d.xlsx") == [
        ("2024-03-05", "2024-03-05 14:30:00", "2024-03-05 14:30:15.250", "09:05:00",
         "2024-03-05 00:00:00")
    ]  # fmt: skip


def test_number_formats_that_change_what_a_person_reads(tmp_path: Path) -> None:
    row = (
        '<row r="1"><c r="A1" s="1"><v>45356</v></c>'  # date: 2024-03-05
        '<c r="B1" s="2"><v>45356.604166666664</v></c>'  # 14:30:00
        '<c r="C1" s="3"><v>0.25</v></c>'  # time
        '<c r="D1" s="5"><v>0.125</v></c>'  # 0.0%: 12.5%
        '<c r="E1" s="6"><v>7551234567</v></c>'  # zeros: the phone's leading 0 comes back
        '<c r="F1" s="7"><v>45356</v></c>'  # a Chinese date pattern: still ISO
        '<c r="G1" s="8"><v>1.5</v></c>'  # [h]:mm:ss: 36 hours
        '<c r="H1" s="9"><v>1234.5</v></c>'  # currency: the number as shown, undecorated
        '<c r="I1" s="4"><v>42</v></c>'  # a number in a text-formatted cell
        '<c r="J1" s="99"><v>7</v></c>'  # a style the workbook lacks: General
        "</row>"
    )
    path = package(tmp_path / "f.xlsx", row)
    assert cells(path) == [
        ("2024-03-05", "2024-03-05 14:30:00", "06:00:00", "12.5%", "07551234567",
         "2024-03-05", "36:00:00", "1234.50", "42", "7")
    ]  # fmt: skip


def test_the_1904_date_system(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.epoch = CALENDAR_MAC_1904
    wb.active.append([dt.date(2024, 3, 5), dt.datetime(2001, 1, 2, 3, 4, 5)])
    wb.save(tmp_path / "mac.xlsx")
    with open_sheet(tmp_path / "mac.xlsx") as reader:
        assert reader.date1904
        assert [row for _, row in reader.iter_rows()] == [("2024-03-05", "2001-01-02 03:04:05")]


def test_serial_days_around_excels_1900_leap_day(tmp_path: Path) -> None:
    serials = zip("ABCD", (1, 59, 60, 61), strict=True)
    row = "".join(f'<c r="{c}1" s="1"><v>{v}</v></c>' for c, v in serials)
    path = package(tmp_path / "leap.xlsx", f'<row r="1">{row}</row>')
    assert cells(path) == [("1900-01-01", "1900-02-28", "1900-02-29", "1900-03-01")]


def test_booleans_and_errors_read_as_shown(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.append([True, False, "#N/A", "#DIV/0!", "#REF!"])
    wb.save(tmp_path / "b.xlsx")
    assert cells(tmp_path / "b.xlsx") == [("TRUE", "FALSE", "#N/A", "#DIV/0!", "#REF!")]


def test_formulas_read_as_their_cached_values(tmp_path: Path) -> None:
    row = (
        '<row r="1"><c r="A1"><v>2</v></c>'
        '<c r="B1"><f>A1*10+0.1+0.2</f><v>20.300000000000001</v></c>'
        '<c r="C1" t="str"><f>"a"&amp;"b"</f><v>ab &amp; c</v></c>'
        '<c r="D1" t="e"><f>1/0</f><v>#DIV/0!</v></c>'
        '<c r="E1" t="b"><f>TRUE()</f><v>1</v></c>'
        '<c r="F1" s="1"><f>TODAY()</f><v>45356</v></c>'
        '<c r="G1"><f t="shared" ref="G1:G2" si="0">A1+1</f><v>3</v></c></row>'
        '<row r="2"><c r="G2"><f t="shared" si="0"/><v>4</v></c></row>'
    )
    path = package(tmp_path / "cached.xlsx", row)
    with open_sheet(path) as reader:
        assert list(reader.iter_rows()) == [
            (1, ("2", "20.3", "ab & c", "#DIV/0!", "TRUE", "2024-03-05", "3")),
            (2, ("", "", "", "", "", "", "4")),
        ]
        assert reader.formulas_without_value == 0


def test_formulas_without_cached_values_are_counted(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()  # openpyxl computes nothing: its formulas have no value
    ws = wb.active
    ws.append(["name", "total"])
    ws.append(["Ann", "=1+1"])
    ws.append(["Bob", "=2+2"])
    wb.save(tmp_path / "nocache.xlsx")
    with open_sheet(tmp_path / "nocache.xlsx") as reader:
        assert [row for _, row in reader.iter_rows()] == [("name", "total"), ("Ann",), ("Bob",)]
        assert reader.formulas_without_value == 2
        assert reader.first_formula_without_value == 2


def test_empty_cells_gaps_and_blank_rows(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"], ws["D1"] = "a", "d"
    ws["B3"] = "b"
    ws["C5"] = ""  # a cell with nothing in it
    ws["A6"] = "last"
    ws["F6"].number_format = "0.00"  # a styled empty cell after the last value
    wb.save(tmp_path / "gaps.xlsx")
    # Blank rows are not yielded; row numbers stay exact; nothing after a row's last value.
    assert read(tmp_path / "gaps.xlsx") == [(1, ("a", "", "", "d")), (3, ("", "b")), (6, ("last",))]


def test_a_cell_far_right_gives_a_row_that_wide(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active["A1"], wb.active["XFD1"] = "first", "last"
    wb.save(tmp_path / "wide.xlsx")
    ((_, row),) = read(tmp_path / "wide.xlsx")
    assert len(row) == 16384 and row[0] == "first" and row[-1] == "last"


def test_merged_ranges_hold_their_value_top_left(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["title", None, None])
    ws.append(["a", "b", "c"])
    ws.merge_cells("A1:C1")
    wb.save(tmp_path / "merged.xlsx")
    with open_sheet(tmp_path / "merged.xlsx") as reader:
        assert reader.merged_ranges is None  # not known before the end of the sheet
        assert [row for _, row in reader.iter_rows()] == [("title",), ("a", "b", "c")]
        assert reader.merged_ranges == ("A1:C1",)


def test_hidden_rows_and_columns_are_read_and_counted(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    for n in range(1, 6):
        ws.append([f"a{n}", f"b{n}", f"c{n}"])
    ws.row_dimensions[3].hidden = True
    ws.row_dimensions[5].hidden = True
    ws.column_dimensions["B"].hidden = True
    wb.save(tmp_path / "hidden.xlsx")
    with open_sheet(tmp_path / "hidden.xlsx") as reader:
        assert reader.hidden_columns == ((2, 2),)
        rows = list(reader.iter_rows())
        assert rows[2] == (3, ("a3", "b3", "c3"))
        assert (reader.hidden_rows, reader.first_hidden_row) == (2, 3)


# --- sheets ----------------------------------------------------------------------------------


@pytest.fixture
def three_sheets(tmp_path: Path) -> Path:
    wb = openpyxl.Workbook()
    wb.active.title = "Secret"
    wb.active.sheet_state = "hidden"
    wb.active.append(["hidden"])
    wb.create_sheet("Leads").append(["leads"])
    wb.create_sheet("2024").append(["year"])
    wb.create_sheet("Notes").append(["notes"])
    wb.save(tmp_path / "multi.xlsx")
    return tmp_path / "multi.xlsx"


def test_list_sheets(three_sheets: Path) -> None:
    assert list_sheets(three_sheets) == [
        SheetInfo("Secret", 1, "hidden", "worksheet", "A1:A1"),
        SheetInfo("Leads", 2, "visible", "worksheet", "A1:A1"),
        SheetInfo("2024", 3, "visible", "worksheet", "A1:A1"),
        SheetInfo("Notes", 4, "visible", "worksheet", "A1:A1"),
    ]


def test_sheet_by_name_by_number_and_by_default(three_sheets: Path) -> None:
    assert cells(three_sheets) == [("leads",)]  # the first visible sheet
    assert cells(three_sheets, "Notes") == [("notes",)]
    assert cells(three_sheets, "notes") == [("notes",)]  # Excel's names ignore case
    assert cells(three_sheets, 4) == [("notes",)]  # counted from 1, hidden tabs included
    assert cells(three_sheets, "4") == [("notes",)]
    assert cells(three_sheets, 1) == [("hidden",)]
    assert cells(three_sheets, "2024") == [("year",)]  # a name of digits is a name first


def test_a_missing_sheet_names_the_sheets_there_are(three_sheets: Path) -> None:
    with pytest.raises(InputError) as raised:
        open_sheet(three_sheets, "Leeds")
    message = str(raised.value)
    assert "\n" not in message
    assert str(three_sheets) in message and "'Leeds'" in message
    assert "1 'Secret' (hidden), 2 'Leads', 3 '2024', 4 'Notes'" in message
    with pytest.raises(InputError, match="no sheet 5"):
        open_sheet(three_sheets, 5)


# --- what a file is --------------------------------------------------------------------------


def test_a_workbook_renamed_csv_is_told_by_its_content(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.append(["name", "phone"])
    wb.active.append(["Ann", 13800138000])
    wb.save(tmp_path / "leads.csv")
    assert is_workbook(tmp_path / "leads.csv") is WorkbookKind.XLSX
    assert cells(tmp_path / "leads.csv") == [("name", "phone"), ("Ann", "13800138000")]


def test_files_that_are_not_xlsx(tmp_path: Path) -> None:
    (tmp_path / "plain.csv").write_text("name,phone\nAnn,1\n")
    assert is_workbook(tmp_path / "plain.csv") is None
    assert is_workbook(tmp_path / "missing.xlsx") is None
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    (tmp_path / "old.xls").write_bytes(ole + "Workbook".encode("utf-16-le"))
    assert is_workbook(tmp_path / "old.xls") is WorkbookKind.XLS
    (tmp_path / "locked.xlsx").write_bytes(ole + "EncryptedPackage".encode("utf-16-le"))
    assert is_workbook(tmp_path / "locked.xlsx") is WorkbookKind.ENCRYPTED
    with zipfile.ZipFile(tmp_path / "sheet.ods", "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", "<office:document-content/>")
    assert is_workbook(tmp_path / "sheet.ods") is WorkbookKind.ODS
    with zipfile.ZipFile(tmp_path / "book.xlsb", "w") as archive:
        archive.writestr("xl/workbook.bin", b"\x83\x01")
    assert is_workbook(tmp_path / "book.xlsb") is WorkbookKind.XLSB
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "hi")
    assert is_workbook(tmp_path / "other.zip") is None

    for name, says in [
        ("old.xls", "save it as .xlsx"),
        ("locked.xlsx", "protected by a password"),
        ("sheet.ods", "save it as .xlsx"),
        ("book.xlsb", "save it as .xlsx"),
        ("plain.csv", "not an xlsx workbook"),
        ("missing.xlsx", "no such file"),
    ]:
        with pytest.raises(InputError, match=says):
            open_sheet(tmp_path / name)


def test_a_truncated_workbook_is_still_told_and_reported_damaged(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    for n in range(2000):
        wb.active.append([f"name {n}", n])
    wb.save(tmp_path / "whole.xlsx")
    data = (tmp_path / "whole.xlsx").read_bytes()
    (tmp_path / "cut.xlsx").write_bytes(data[: len(data) // 2])
    assert is_workbook(tmp_path / "cut.xlsx") is WorkbookKind.XLSX
    with pytest.raises(InputError, match=r"cut\.xlsx: the workbook is damaged .*save it again"):
        open_sheet(tmp_path / "cut.xlsx")


def test_damage_inside_a_sheet_is_reported_with_the_last_row_read(tmp_path: Path) -> None:
    rows = "".join(f'<row r="{n}"><c r="A{n}"><v>{n}</v></c></row>' for n in range(1, 4))
    path = package(tmp_path / "bad.xlsx", rows + '<row r="4"><c r="A4"><v>4</v></c')
    got: list[Row] = []
    with open_sheet(path) as reader, pytest.raises(InputError) as raised:
        got.extend(reader.iter_rows())
    assert got == [(n, (str(n),)) for n in (1, 2, 3)]  # the rows before the damage
    assert "sheet 'Data' is damaged at row 4" in str(raised.value)
    path = package(tmp_path / "index.xlsx", '<row r="1"><c r="A1" t="s"><v>7</v></c></row>')
    with open_sheet(path) as reader, pytest.raises(InputError, match="damaged at row 1"):
        list(reader.iter_rows())


def test_garbage_with_a_zip_signature_is_damaged(tmp_path: Path) -> None:
    (tmp_path / "junk.xlsx").write_bytes(b"PK\x03\x04" + b"xl/workbook.xml" + bytes(100))
    with pytest.raises(InputError, match="damaged"):
        list_sheets(tmp_path / "junk.xlsx")


# --- markup beyond what Excel writes ---------------------------------------------------------


ROWS_CANONICAL = (
    '<row r="1" spans="1:3"><c r="A1" t="s"><v>0</v></c><c r="B1"><v>13800138000</v></c>'
    '<c r="C1" s="1"><v>45356</v></c></row>'
    '<row r="3" hidden="1"><c r="B3" t="inlineStr"><is><t>in line</t></is></c></row>'
)


def test_markup_the_patterns_do_not_know_reads_the_same(tmp_path: Path) -> None:
    expected = [(1, ("王芳", "13800138000", "2024-03-05")), (3, ("", "in line"))]
    canonical = package(tmp_path / "a.xlsx", ROWS_CANONICAL, strings=("<t>王芳</t>",))
    assert read(canonical) == expected
    variants = {
        "attributes in another order": ROWS_CANONICAL.replace(
            '<c r="C1" s="1">', '<c s="1" r="C1">'
        ),
        "single quotes": ROWS_CANONICAL.replace('<c r="A1" t="s">', "<c r='A1' t='s'>"),
        "a comment": ROWS_CANONICAL.replace("</row>", '<!-- <c r="D1"><v>9</v></c> --></row>', 1),
        "CDATA": ROWS_CANONICAL.replace("<t>in line</t>", "<t><![CDATA[in line]]></t>"),
        "line breaks in tags": ROWS_CANONICAL.replace('<c r="B1">', '<c\n  r="B1">'),
        "an extension element in a cell": ROWS_CANONICAL.replace(
            "<v>13800138000</v></c>", "<v>13800138000</v><extLst/></c>"
        ),
        "an empty element for no value": ROWS_CANONICAL.replace(
            '<c r="B3" t="inlineStr">', '<c r="A3"><v/></c><c r="B3" t="inlineStr">'
        ),
        "rich inline text": ROWS_CANONICAL.replace(
            "<is><t>in line</t></is>",
            '<is><r><rPr><color rgb="FFFF0000"/></rPr><t xml:space="preserve">in </t></r>'
            "<r><t>line</t></r></is>",
        ),
        "a cell without a reference": ROWS_CANONICAL.replace('<c r="B1">', "<c>"),
    }
    for name, rows in variants.items():
        path = package(tmp_path / "v.xlsx", rows, strings=("<t>王芳</t>",))
        with open_sheet(path) as reader:
            assert list(reader.iter_rows()) == expected, name
            assert reader.hidden_rows == 1, name


def test_a_namespace_prefix_and_rows_without_numbers(tmp_path: Path) -> None:
    rows = (
        '<x:row><x:c t="s"><x:v>0</x:v></x:c><x:c><x:v>1.5</x:v></x:c></x:row>'
        '<x:row><x:c r="C2"><x:v>2</x:v></x:c></x:row>'
        '<x:row r="5"><x:c r="A5" t="inlineStr"><x:is><x:t>five</x:t></x:is></x:c></x:row>'
        "<x:row><x:c><x:v>6</x:v></x:c></x:row>"
    )
    path = package(
        tmp_path / "x.xlsx",
        rows,
        strings=("<t>one</t>",),
        root=f'<x:worksheet xmlns:x="{MAIN}">',
        end="</x:worksheet>",
        data_start="<x:sheetData>",
        data_end="</x:sheetData>",
    )
    assert read(path) == [(1, ("one", "1.5")), (2, ("", "", "2")), (5, ("five",)), (6, ("6",))]


def test_a_sheet_without_rows(tmp_path: Path) -> None:
    path = package(tmp_path / "empty.xlsx", "", data_start="<sheetData/>", data_end="")
    with open_sheet(path) as reader:
        assert list(reader.iter_rows()) == []
        assert reader.merged_ranges == ()


# --- resuming --------------------------------------------------------------------------------


def test_start_row_skips_to_that_row_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sheet_module, "BLOCK_BYTES", 512)  # many blocks, cut anywhere
    rows = "".join(
        f'<row r="{n}"><c r="A{n}" t="s"><v>{n % 3}</v></c><c r="B{n}"><v>{n}</v></c></row>'
        for n in range(1, 400)
        if n % 7  # every 7th row is blank
    )
    path = package(tmp_path / "long.xlsx", rows, strings=("<t>a</t>", "<t>b</t>", "<t>c</t>"))
    everything = read(path)
    assert len(everything) == 399 - 399 // 7
    for start in (1, 2, 7, 8, 100, 398, 399, 400, 10_000):
        assert read(path, start_row=start) == [row for row in everything if row[0] >= start]


def test_start_row_with_rows_without_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sheet_module, "BLOCK_BYTES", 256)
    rows = "".join(f"<row><c><v>{n}</v></c></row>" for n in range(1, 200))
    path = package(tmp_path / "unnumbered.xlsx", rows)
    assert read(path, start_row=150) == [(n, (str(n),)) for n in range(150, 200)]


# --- numbers and formats ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("13800138000", "13800138000"),
        ("1.38E+10", "13800000000"),
        ("13800138000.0", "13800138000"),
        ("3.14", "3.14"),
        ("0.30000000000000004", "0.3"),
        ("30.069999999999997", "30.07"),
        ("1E-05", "0.00001"),
        ("-2.5", "-2.5"),
        ("1.5E+20", "150000000000000000000"),
        ("1.2345678901234567E+18", "1234567890123460000"),
        ("007", "7"),
        ("123456789012345678", "123456789012346000"),
        ("not a number", "not a number"),
    ],
)
def test_number_text(raw: str, text: str) -> None:
    assert number_text(raw) == text
    assert numbers.general_text(raw) == text


@given(st.floats(min_value=-1e300, max_value=1e300))
def test_the_quick_path_for_numbers_agrees_with_the_careful_one(value: float) -> None:
    raw = repr(value)
    shown = numbers.general_text(raw)
    assert shown == number_text(raw)
    assert "e" not in shown.lower()
    if value:
        assert math.isclose(float(shown), value, rel_tol=1e-14)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("General", (FormatKind.GENERAL, 0)),
        ("0.00", (FormatKind.DECIMALS, 2)),
        ("#,##0.00_);[Red](#,##0.00)", (FormatKind.DECIMALS, 2)),
        ('"¥"#,##0.00', (FormatKind.DECIMALS, 2)),
        ("#,##0", (FormatKind.DECIMALS, 0)),
        ("0", (FormatKind.DECIMALS, 0)),
        ("0.0#", (FormatKind.GENERAL, 0)),  # optional decimals: the number itself
        ("#,##0,", (FormatKind.GENERAL, 0)),  # thousands: the number itself
        ("0.00E+00", (FormatKind.GENERAL, 0)),
        ("@", (FormatKind.GENERAL, 0)),
        ("00000", (FormatKind.ZEROS, 5)),
        ("0%", (FormatKind.PERCENT, 0)),
        ("0.00%", (FormatKind.PERCENT, 2)),
        ("yyyy-mm-dd", (FormatKind.DATE, 0)),
        ('yyyy"年"m"月"d"日"', (FormatKind.DATE, 0)),
        ("[$-804]yyyy/m/d;@", (FormatKind.DATE, 0)),
        ("mmm-yy", (FormatKind.DATE, 0)),
        ("m/d/yyyy h:mm", (FormatKind.DATETIME, 0)),
        ("h:mm AM/PM", (FormatKind.TIME, 0)),
        ("mm:ss", (FormatKind.TIME, 0)),
        ('h"时"mm"分"', (FormatKind.TIME, 0)),
        ("[h]:mm:ss", (FormatKind.ELAPSED, 0)),
    ],
)
def test_format_kind(code: str, kind: tuple[FormatKind, int]) -> None:
    assert format_kind(code) == kind


def test_column_letters() -> None:
    assert [column_letters(n) for n in (1, 26, 27, 702, 703, 16384)] == [
        "A", "Z", "AA", "ZZ", "AAA", "XFD"
    ]  # fmt: skip
