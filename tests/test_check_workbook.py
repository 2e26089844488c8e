"""``bulkimport check`` on a workbook: the same report as for a CSV file, with sheet rows for
lines, and what is particular to a workbook (its sheets, hidden rows and columns, merged
ranges, formulas without a value, the 1904 date system) said from the reader's facts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openpyxl  # type: ignore[import-untyped]
from click.testing import CliRunner
from openpyxl.utils.datetime import CALENDAR_MAC_1904  # type: ignore[import-untyped]

from bulkimport.check import CheckOptions, check_file, render_text
from bulkimport.cli import cli
from bulkimport.reader import ReaderOptions


def leads(path: Path, *, damaged: bool = True, extras: bool = True) -> Path:
    """A sheet of leads (Chinese names, mobiles typed as numbers, landlines as text), with
    problems for check (an empty phone, a repeated one, Excel's .0) and a workbook's ways."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Leads"
    sheet.append(["name", "phone1", "landline", "total"])
    for number in range(10):
        sheet.append([f"客户{number}", 13800138000 + number, f"0755{number:07d}", number * 2])
    if damaged:
        sheet.append(["张三", None, "075512345678", 1])  # row 12: no phone
        sheet.append(["李四", 13800138003, None, 1])  # row 13: phone of row 5
        sheet.append(["王五", "13800138099.0", None, 1])  # row 14: Excel's .0, repaired
    if extras:
        sheet.append(["赵六", 13800138100, None, "=B15*2"])  # no cached value
        sheet.row_dimensions[3].hidden = True
        sheet.column_dimensions["C"].hidden = True
        sheet.merge_cells("E1:F1")
        book.create_sheet("Notes").append(["read me"])
        hidden = book.create_sheet("Old")
        hidden.sheet_state = "hidden"
        book.epoch = CALENDAR_MAC_1904
    book.save(path)
    return path


def codes(report: Any) -> dict[str, int]:
    return {group.code: group.count for group in report.groups}


def test_check_reports_on_a_workbook_as_on_a_csv_file(tmp_path: Path) -> None:
    report = check_file(leads(tmp_path / "leads.xlsx"), ReaderOptions(), CheckOptions())
    assert report.records == 14 and report.invalid == 0
    assert codes(report) == {
        "repaired-decimal": 1,
        "required-empty": 1,
        "duplicate-phone": 1,
        "formula-without-value": 1,
    }
    duplicate = next(group for group in report.groups if group.code == "duplicate-phone")
    assert duplicate.examples[0].message == "phone1 '13800138003' is already on row 5"
    formulas = next(group for group in report.groups if group.code == "formula-without-value")
    assert formulas.examples[0].line == 15
    assert formulas.examples[0].message.startswith(
        "1 formula cell of sheet 'Leads' has no saved value (the first in this row) and reads "
        "empty: open the workbook in Excel and save it"
    )
    text = render_text(report)
    assert "  sheet      'Leads' (sheet 1 of 3, the first visible; --sheet chooses another)" in (
        text
    )
    assert "encoding" not in text and "delimiter" not in text
    assert "  records    14 (rows 2-15): 14 readable, 0 invalid" in text
    assert "  samples    row 2: name=客户0||phone1=13800138000||landline=07550000000" in text
    assert "  row 12: phone1 is empty" in text
    for note in (
        "the workbook has 3 sheets; 'Leads' was read, not 2 'Notes', 3 'Old' (hidden) "
        "(--sheet NAME or --sheet N reads another)",
        "hidden in Excel: 1 row (the first is row 3) and column C; they are read and sent "
        "like the others",
        "1 merged range (E1:F1): the value is in the top-left cell",
        "the workbook counts dates from 1904 (Excel for Mac)",
    ):
        assert f"  note       {note}" in text


def test_check_json_carries_the_workbook_facts(tmp_path: Path) -> None:
    report = check_file(leads(tmp_path / "leads.xlsx"), ReaderOptions(sheet="1"), CheckOptions())
    data = report.to_json()
    assert (data["kind"], data["encoding"], data["delimiter"]) == ("xlsx", None, None)
    assert data["sheet"] == {
        "name": "Leads",
        "given": True,
        "sheets": [
            {
                "number": 1,
                "name": "Leads",
                "state": "visible",
                "kind": "worksheet",
                "dimension": "A1:F15",
                "read": True,
            },
            {
                "number": 2,
                "name": "Notes",
                "state": "visible",
                "kind": "worksheet",
                "dimension": "A1:A1",
                "read": False,
            },
            {
                "number": 3,
                "name": "Old",
                "state": "hidden",
                "kind": "worksheet",
                "dimension": "A1:A1",
                "read": False,
            },
        ],
        "hidden_rows": 1,
        "first_hidden_row": 3,
        "hidden_columns": ["C"],
        "merged_ranges": ["E1:F1"],
        "merged_range_count": 1,
        "formulas_without_value": 1,
        "first_formula_without_value": 15,
        "date1904": True,
    }
    assert data["first_line"] == 2 and data["records"] == 14
    json.dumps(data, ensure_ascii=False)


def test_a_plain_workbook_is_clean_and_says_nothing_more(tmp_path: Path) -> None:
    path = leads(tmp_path / "plain.xlsx", damaged=False, extras=False)
    report = check_file(path, ReaderOptions(), CheckOptions())
    # Only that the stock campaign knows the landlines as phone2 (a field named landline
    # is the campaign's own to have: --schema says).
    assert report.clean
    assert report.notes == (
        "columns the vendor's campaign knows by another name: 'landline' (phone2); unless "
        "the campaign has fields of these names, --map 'landline=phone2' (--schema checks "
        "against its fields)",
    )
    assert report.to_json()["sheet"]["hidden_columns"] == []
    csv = tmp_path / "plain.csv"
    csv.write_text("name,phone1\nA,13800138000\n")
    data = check_file(csv, ReaderOptions(), CheckOptions()).to_json()
    assert (data["kind"], data["sheet"]) == ("csv", None)
    assert data["encoding"]["name"] == "utf-8"


def invoke(*args: str | Path) -> Any:
    return CliRunner().invoke(cli, ["check", *map(str, args)], env={"BULKIMPORT_CONFIG": None})


def test_cli_check_on_a_workbook_renamed_csv(tmp_path: Path) -> None:
    path = leads(tmp_path / "leads.csv")
    result = invoke(path, "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "xlsx" and data["sheet"]["name"] == "Leads"
    result = invoke(path, "--sheet", "Notes")
    assert result.exit_code == 0, result.output
    assert "  sheet      'Notes' (sheet 2 of 3, given with --sheet)" in result.stdout
    result = invoke(path, "--sheet", "Nope")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert "no sheet 'Nope'; its sheets are 1 'Leads', 2 'Notes', 3 'Old' (hidden)" in (
        result.stderr
    )
