"""Workbooks through the reader's two calls, ``sniff_format`` and ``read_batches``: the same
``FileFormat`` and ``Batch`` es as a CSV file, with sheet rows for lines.

The workbook reader itself (cell types, markup, damage) is tested in ``test_workbook.py``;
here, what the reader makes of a sheet: the header and mapping, the records, the accounting
of every row, resuming, and the facts ``check`` reports.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openpyxl  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl.utils.datetime import CALENDAR_MAC_1904  # type: ignore[import-untyped]

from bulkimport.errors import InputError
from bulkimport.jobs.pipeline import reader_options
from bulkimport.protocol import decode_record
from bulkimport.reader import (
    FileFormat,
    InputKind,
    ReaderOptions,
    SheetFacts,
    read_batches,
    sniff_format,
)
from bulkimport.rows import Batch, NewRow
from bulkimport.settings import resolve
from bulkimport.states import InvalidReason, RepairKind, RowState
from tests.xlsx_parts import package

Cell = str | int | float | bool | dt.date | dt.datetime | dt.time | None


def workbook(
    path: Path,
    rows: Sequence[Sequence[Cell]],
    *,
    title: str = "Leads",
    more: Sequence[tuple[str, Sequence[Sequence[Cell]]]] = (),
    text_columns: str = "",
) -> Path:
    """A workbook written by openpyxl whose first sheet ``title`` holds ``rows`` (``None``:
    no cell); ``text_columns`` are formatted as text (``@``), as phone columns often are."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title
    for index, row in enumerate(rows, start=1):
        for column, value in enumerate(row, start=1):
            if value is not None:
                cell = sheet.cell(index, column, value)
                if cell.column_letter in text_columns:
                    cell.number_format = "@"
    for name, other in more:
        extra = book.create_sheet(name)
        for row in other:
            extra.append(list(row))
    book.save(path)
    return path


def read(
    path: Path, options: ReaderOptions | None = None, batch_rows: int = 1000
) -> tuple[FileFormat, list[Batch]]:
    fmt = sniff_format(path, options)
    return fmt, list(read_batches(path, fmt, batch_rows=batch_rows))


def rows_of(batches: list[Batch]) -> list[NewRow]:
    return [row for batch in batches for row in batch.rows]


def values(row: NewRow) -> dict[str, str]:
    assert row.record is not None, row.message
    return dict(decode_record(row.record))


LEADS: list[list[Cell]] = [
    ["name", "phone1", "landline", "signup", "last_call", "best_time", "vip", "score", "memo"],
    [
        "张三",
        13800138000,
        "07551234567",
        dt.date(2024, 3, 5),
        dt.datetime(2024, 3, 5, 9, 30),
        dt.time(8, 15),
        True,
        73.25,
        None,
    ],
    ["李四", 8613900139000, "0101234567", None, None, None, False, 0.1, "回访"],
    ["  王五  ", 13700137000.0, None, None, None, None, None, 100, None],
]


def test_a_workbook_goes_through_the_same_two_calls_as_a_csv_file(tmp_path: Path) -> None:
    path = workbook(tmp_path / "leads.xlsx", LEADS, text_columns="C")
    fmt, batches = read(path)
    assert (fmt.kind, fmt.sheet, fmt.unit) == (InputKind.XLSX, "Leads", "row")
    assert fmt.describe() == "sheet 'Leads' of a workbook"
    assert fmt.header == tuple(LEADS[0]) and fmt.data_line == 2
    assert fmt.phone_fields == ("phone1",)
    rows = rows_of(batches)
    assert [row.line for row in rows] == [2, 3, 4]
    assert values(rows[0]) == {
        "name": "张三",
        "phone1": "13800138000",
        "landline": "07551234567",
        "signup": "2024-03-05",
        "last_call": "2024-03-05 09:30:00",
        "best_time": "08:15:00",
        "vip": "TRUE",
        "score": "73.25",
    }
    assert values(rows[1])["phone1"] == "8613900139000"
    assert values(rows[1])["landline"] == "0101234567"  # text: the leading zero stays
    assert values(rows[1])["memo"] == "回访"
    # Trimmed like CSV values; a whole number typed with .0 is a whole number.
    assert values(rows[2]) == {"name": "王五", "phone1": "13700137000", "score": "100"}
    # Cells padded to the header's width, so storage keeps them once, in the record.
    assert all(len(row.cells) == len(fmt.header) for row in rows)
    assert batches[-1].next_line == 5
    assert batches[-1].end_offset == path.stat().st_size


def test_a_workbook_renamed_csv_is_read_as_a_workbook(tmp_path: Path) -> None:
    path = workbook(tmp_path / "leads.csv", LEADS)
    fmt, batches = read(path)
    assert fmt.kind is InputKind.XLSX
    assert values(rows_of(batches)[0])["phone1"] == "13800138000"


def test_rows_are_sheet_rows_and_every_row_is_accounted_for(tmp_path: Path) -> None:
    rows: list[list[Cell]] = [["name", "phone1"]]
    for number in range(2, 60):
        if number % 7 == 0:
            rows.append([])  # a row with nothing: not in the file
        elif number % 11 == 0:
            rows.append(["   ", " "])  # spaces only: a blank record
        else:
            rows.append([f"n{number}", 13800000000 + number])
    path = workbook(tmp_path / "gaps.xlsx", [*rows, [], [], ["last", 1]])
    fmt, batches = read(path, batch_rows=4)
    got = rows_of(batches)
    assert [row.line for row in got] == [n for n in range(2, 60) if n % 7 and n % 11] + [62]
    assert len(got) + sum(batch.blank_lines for batch in batches) == 62 - 1
    assert batches[-1].next_line == 63
    assert_resumes_everywhere(path, fmt)


def assert_resumes_everywhere(path: Path, fmt: FileFormat) -> None:
    """Resuming at any batch's ``next_line`` gives the rows and blank rows of one pass."""
    batches = list(read_batches(path, fmt, batch_rows=1))
    single = rows_of(batches)
    blank = sum(batch.blank_lines for batch in batches)
    done = counted = 0
    for batch in batches:
        done += len(batch.rows)
        counted += batch.blank_lines
        resumed = list(
            read_batches(
                path, fmt, start_offset=batch.end_offset, start_line=batch.next_line, batch_rows=3
            )
        )
        assert rows_of(resumed) == single[done:]
        assert counted + sum(rest.blank_lines for rest in resumed) == blank
        assert all(rest.end_offset <= path.stat().st_size for rest in resumed)


def test_short_rows_are_padded_and_a_value_right_of_the_header_is_invalid(
    tmp_path: Path,
) -> None:
    path = workbook(
        tmp_path / "wide.xlsx",
        [
            ["name", "phone1", "city"],
            ["A", 13800000001],
            ["B", 13800000002, "Paris", None, "  "],  # spaces right of the header: nothing
            ["C", 13800000003, "Lyon", None, "a note"],
        ],
    )
    _, batches = read(path)
    a, b, c = rows_of(batches)
    assert a.cells == ("A", "13800000001", "") and a.state is RowState.PENDING
    assert b.cells == ("B", "13800000002", "Paris") and b.state is RowState.PENDING
    assert (c.state, c.reason) == (RowState.INVALID, InvalidReason.CELLS)
    assert c.message is not None
    assert "column E ('a note'), right of the header's last column (C)" in c.message
    assert "drop columns D to E with --map '#4=' ... '#5='" in c.message
    # The advice works: the columns are dropped, the row is sent.
    _, batches = read(path, ReaderOptions(rename=(("#4", None), ("#5", None))))
    assert values(rows_of(batches)[2]) == {"name": "C", "phone1": "13800000003", "city": "Lyon"}


TITLED: list[list[Cell]] = [
    ["Lead export, June 2024"],
    [],
    ["name", "phone1", "city", "company"],
    ["A", 13800000001, "Paris", "Acme"],
    ["B", 13800000002, "Lyon", "Globex"],
]


def test_title_rows_are_refused_with_the_skip_rows_to_give(tmp_path: Path) -> None:
    path = workbook(tmp_path / "titled.xlsx", TITLED)
    with pytest.raises(InputError) as raised:
        sniff_format(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: row 1 ('Lead export, June 2024') looks like a title")
    assert message.endswith("the header seems to be row 3: add --skip-rows 2")
    fmt, batches = read(path, ReaderOptions(skip_rows=2))
    assert fmt.header == ("name", "phone1", "city", "company") and fmt.data_line == 4
    assert [row.line for row in rows_of(batches)] == [4, 5]
    # Blank rows right under --skip-rows are skipped, as blank lines are.
    assert sniff_format(path, ReaderOptions(skip_rows=1)).data_line == 4
    with pytest.raises(InputError, match=r"sheet 'Leads' has no header .*below row 9"):
        sniff_format(path, ReaderOptions(skip_rows=9))


def test_map_by_name_and_by_position_set_and_keep_empty(tmp_path: Path) -> None:
    path = workbook(tmp_path / "map.xlsx", [*TITLED[2:], ["C", 13800000003, None, None]])
    options = ReaderOptions(
        rename=(("phone1", "phone"), ("#4", None)),
        constants=(("source", "xlsx"),),
        keep_empty=True,
    )
    fmt, batches = read(path, options)
    assert fmt.fields == ("name", "phone", "city", None)
    assert [row.record for row in rows_of(batches)] == [
        "name=A||phone=13800000001||city=Paris||source=xlsx",
        "name=B||phone=13800000002||city=Lyon||source=xlsx",
        "name=C||phone=13800000003||city=||source=xlsx",
    ]
    with pytest.raises(InputError, match=r"--map names column 'Phone'.*its columns are"):
        sniff_format(path, ReaderOptions(rename=(("Phone", "phone1"),)))
    with pytest.raises(InputError, match="field 'city' is set with --set"):
        sniff_format(path, ReaderOptions(constants=(("city", "x"),)))


def test_the_phone_rules_are_the_csv_rules(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "phones.xlsx",
        [
            ["name", "phone1", "mobile"],
            ["typed as a number", 13800000001, 13900000001],
            ["text with Excel's .0", "13800000002.0", None],
            ["text Excel showed in scientific notation", "1.38E+10", None],
            ["a pipe || in a value", 13800000004, None],
            [None, None, None],
        ],
    )
    _, batches = read(path)
    rows = rows_of(batches)
    assert [row.state for row in rows] == [
        RowState.PENDING,
        RowState.PENDING,
        RowState.INVALID,
        RowState.INVALID,
    ]
    assert values(rows[1])["phone1"] == "13800000002"
    assert [repair.kind for repair in rows[1].repairs] == [RepairKind.DECIMAL]
    assert (rows[2].reason, rows[3].reason) == (
        InvalidReason.PHONE_DIGITS_LOST,
        InvalidReason.PIPE,
    )
    _, batches = read(path, ReaderOptions(repair=False))
    assert rows_of(batches)[1].reason is InvalidReason.PHONE_UNREPAIRED


def test_values_only_in_dropped_columns_are_not_sent(tmp_path: Path) -> None:
    path = workbook(tmp_path / "drop.xlsx", [["name", "note"], ["A", "x"], [None, "only"]])
    _, batches = read(path, ReaderOptions(rename=(("note", None),)))
    assert [row.reason for row in rows_of(batches)] == [None, InvalidReason.NO_VALUES]


SHEETS = (("Notes", [["note"], ["read me"]]), ("2024", [["name", "phone1"], ["X", 1]]))


def test_the_sheet_by_name_or_number_and_the_format_remembers_it(tmp_path: Path) -> None:
    path = workbook(tmp_path / "multi.xlsx", LEADS, more=SHEETS)
    assert sniff_format(path).sheet == "Leads"
    assert sniff_format(path, ReaderOptions(sheet="notes")).sheet == "Notes"
    assert sniff_format(path, ReaderOptions(sheet="3")).sheet == "2024"
    fmt = sniff_format(path, ReaderOptions(sheet="2024"))
    assert FileFormat.from_json(fmt.to_json()) == fmt
    assert [row.record for row in rows_of(list(read_batches(path, fmt)))] == ["name=X||phone1=1"]
    with pytest.raises(InputError) as raised:
        sniff_format(path, ReaderOptions(sheet="Lead"))
    assert "no sheet 'Lead'; its sheets are 1 'Leads', 2 'Notes', 3 '2024'" in str(raised.value)
    # A CSV file has no sheets: a profile's sheet is no error for it.
    csv = tmp_path / "plain.csv"
    csv.write_text("name,phone1\nA,1\n")
    assert sniff_format(csv, ReaderOptions(sheet="Leads")).kind is InputKind.CSV


def test_formats_stored_before_workbooks_are_csv() -> None:
    stored = {
        "encoding": "utf-8",
        "encoding_confidence": 1.0,
        "delimiter": ",",
        "header": ["name"],
        "fields": ["name"],
        "constants": [],
        "keep_empty": False,
        "data_offset": 5,
        "data_line": 2,
    }
    fmt = FileFormat.from_json(json.dumps(stored))
    assert (fmt.kind, fmt.sheet, fmt.unit) == (InputKind.CSV, None, "line")
    assert fmt.describe() == "utf-8, delimiter ','"
    assert json.loads(fmt.to_json())["kind"] == "csv"


def test_the_sheet_option_reaches_the_reader() -> None:
    options = reader_options(resolve({"sheet": "Leads"}, {}, {}, need_target=False))
    assert options.sheet == "Leads"
    options = reader_options(resolve({}, {"BULKIMPORT_SHEET": "2"}, {}, need_target=False))
    assert options.sheet == "2"
    options = reader_options(resolve({}, {}, {"sheet": 3}, need_target=False))
    assert options.sheet == "3"
    assert reader_options(resolve({}, {}, {}, need_target=False)).sheet is None


def ole2(path: Path, stream: str) -> Path:
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + stream.encode("utf-16-le"))
    return path


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("old.xls", "an Excel 97-2003 workbook (.xls), which is not read; open it in Excel"),
        ("locked.xlsx", "the workbook is protected by a password; open it in Excel, remove"),
        ("sheet.ods", "an OpenDocument spreadsheet (.ods), which is not read; open it in"),
        ("book.xlsb", "an Excel binary workbook (.xlsb), which is not read; open it in Excel"),
    ],
)
def test_workbooks_that_are_not_read_say_what_to_do(tmp_path: Path, name: str, says: str) -> None:
    path = tmp_path / name
    if name == "old.xls":
        ole2(path, "Workbook")
    elif name == "locked.xlsx":
        ole2(path, "EncryptedPackage")
    else:
        with zipfile.ZipFile(path, "w") as archive:
            if name.endswith(".ods"):
                archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
            else:
                archive.writestr("xl/workbook.bin", b"\x83\x01")
    with pytest.raises(InputError) as raised:
        sniff_format(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: {says}") and "\n" not in message


def test_reading_learns_what_check_reports(tmp_path: Path, caplog: Any) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Leads"
    for row in [["name", "phone1", "total"], ["A", 1, "=B2*2"], ["B", 2, 4], ["C", 3, "=B4*2"]]:
        sheet.append(row)
    sheet.row_dimensions[3].hidden = True
    sheet.column_dimensions["C"].hidden = True
    sheet.merge_cells("D1:E1")
    book.create_sheet("Notes")
    book.epoch = CALENDAR_MAC_1904
    book.save(tmp_path / "facts.xlsx")
    path = tmp_path / "facts.xlsx"
    fmt = sniff_format(path)
    facts = SheetFacts()
    with caplog.at_level(logging.WARNING, logger="bulkimport"):
        rows = rows_of(list(read_batches(path, fmt, facts=facts)))
    assert [values(row) for row in rows] == [
        {"name": "A", "phone1": "1"},  # a formula without a value reads empty
        {"name": "B", "phone1": "2", "total": "4"},
        {"name": "C", "phone1": "3"},
    ]
    assert facts.sheet == "Leads" and [info.name for info in facts.sheets] == ["Leads", "Notes"]
    assert (facts.hidden_rows, facts.first_hidden_row) == (1, 3)
    assert facts.hidden_columns == ((3, 3),)
    assert facts.merged_ranges == ("D1:E1",)
    assert (facts.formulas_without_value, facts.first_formula_without_value) == (2, 2)
    assert facts.date1904
    assert caplog.text == ""  # the caller that takes the facts reports them
    with caplog.at_level(logging.WARNING, logger="bulkimport"):
        list(read_batches(path, fmt))
    assert "2 formula cells without a value (the first in row 2) read empty" in caplog.text
    # Facts are learned from a whole sheet only; a CSV file leaves them empty.
    csv = tmp_path / "plain.csv"
    csv.write_text("name,phone1\nA,1\n")
    empty = SheetFacts()
    list(read_batches(csv, sniff_format(csv), facts=empty))
    assert empty == SheetFacts()


def test_a_sheet_written_by_hand_with_shared_strings_and_cached_formulas(tmp_path: Path) -> None:
    rows = (
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c>'
        '<c r="C1" t="s"><v>2</v></c></row>'
        '<row r="2"><c r="A2" t="s"><v>3</v></c><c r="B2"><v>13800138000</v></c>'
        '<c r="C2"><f>B2+1</f><v>13800138001</v></c></row>'
        '<row r="5"><c r="A5" t="s"><v>4</v></c><c r="B5" s="6"><v>7551234567</v></c></row>'
    )
    strings = ("<t>name</t>", "<t>phone1</t>", "<t>phone2</t>", "<t>陈超</t>", "<t>王芳</t>")
    path = package(tmp_path / "excel.xlsx", rows, strings=strings)
    fmt, batches = read(path)
    assert fmt.sheet == "Data"
    assert [(row.line, row.record) for row in rows_of(batches)] == [
        (2, "name=陈超||phone1=13800138000||phone2=13800138001"),
        (5, "name=王芳||phone1=07551234567"),  # a zero-padded number format, as shown
    ]
    assert sum(batch.blank_lines for batch in batches) == 2


# Texts a person types, numbers as numbers: what the sheet shows is what is sent.
TEXT = st.text(alphabet=st.sampled_from("ab Z09张三王芳-_.@'"), min_size=1, max_size=8)
CELL = st.one_of(
    TEXT,
    st.integers(min_value=-(10**14), max_value=10**14),
    st.booleans(),
    st.dates(min_value=dt.date(1900, 3, 1), max_value=dt.date(9999, 12, 31)),
)


def shown(value: Cell) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(table=st.lists(st.lists(st.none() | CELL, min_size=3, max_size=3), max_size=12))
def test_any_table_of_typed_cells_reads_as_shown_and_resumes(
    tmp_path: Path, table: list[list[Cell]]
) -> None:
    path = workbook(tmp_path / "any.xlsx", [["a", "b", "c"], *table])
    fmt = dataclasses.replace(sniff_format(path), keep_empty=True)
    batches = list(read_batches(path, fmt, batch_rows=2))
    got = {row.line: row.cells for row in rows_of(batches)}
    expected = {
        number: tuple("" if value is None else shown(value) for value in row)
        for number, row in enumerate(table, start=2)
        if any(value is not None and shown(value) for value in row)
    }
    assert got == expected
    # Rows with a cell (values or spaces) are in the file, the others left out: either way,
    # every row up to the last one in the file is a row or counted blank.
    last = max((n for n, row in enumerate(table, start=2) if row != [None] * 3), default=1)
    assert len(got) + sum(batch.blank_lines for batch in batches) == last - 1
    assert_resumes_everywhere(path, fmt)
