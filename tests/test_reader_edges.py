"""Edges of what the reader takes: a table that starts in column B, a workbook job named by
its sheet, and standard input (``-``), refused in words."""

from __future__ import annotations

from pathlib import Path

import openpyxl  # type: ignore[import-untyped]
import pytest
from click.testing import CliRunner

from bulkimport.check import CheckOptions, check_file
from bulkimport.cli import cli
from bulkimport.errors import InputError
from bulkimport.reader import read_batches, sniff_format
from bulkimport.sandbox import SandboxHandle
from tests.helpers import bulkimport, customers, target


def records(path: Path) -> list[str | None]:
    fmt = sniff_format(path)
    return [row.record for batch in read_batches(path, fmt) for row in batch.rows]


def test_empty_columns_at_the_left_are_no_columns(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b",,name,phone1,\n,,Ann,13800000001,\n,,Bob,13800000002,\n")
    fmt = sniff_format(path)
    assert fmt.fields == (None, None, "name", "phone1")
    assert records(path) == ["name=Ann||phone1=13800000001", "name=Bob||phone1=13800000002"]


def test_an_unnamed_column_at_the_left_that_holds_values_still_needs_a_name(
    tmp_path: Path,
) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b",name,phone1\n7,Ann,13800000001\n")
    with pytest.raises(InputError, match="column 1 has no name; name it with --map '#1=FIELD'"):
        sniff_format(path)


def test_a_sheet_that_starts_in_column_b_is_read(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Leads"
    sheet["B2"], sheet["C2"] = "name", "phone1"
    sheet["B3"], sheet["C3"] = "Ann", "13800000001"
    path = tmp_path / "leads.xlsx"
    book.save(path)
    fmt = sniff_format(path)
    assert fmt.fields == (None, "name", "phone1")
    assert records(path) == ["name=Ann||phone1=13800000001"]


async def test_a_workbook_job_is_named_by_its_sheet_not_an_encoding(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Leads"
    sheet.append(["name", "phone1"])
    sheet.append(["Ann", "13800000001"])
    path = tmp_path / "leads.xlsx"
    book.save(path)
    result = await bulkimport("run", str(path), *target(sandbox), "--rate", "0", cwd=tmp_path)
    assert result.code == 0, result.err
    assert f"job 1: {path} (sheet 'Leads' of a workbook, 2 columns)" in result.err.splitlines()
    assert "delimiter" not in result.err
    assert len(await customers(sandbox)) == 1


def test_check_refuses_standard_input_in_words(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["check", "-"], input="name,phone1\nAnn,1\n", env={"BULKIMPORT_CONFIG": None}
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: -: standard input is not read")
    assert "save the input to a file first" in result.stderr
    assert result.stderr.count("\n") == 1


async def test_run_refuses_standard_input_and_reads_a_file_named_dash(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    refused = await bulkimport("run", "-", *target(sandbox), cwd=tmp_path)
    assert refused.code == 2
    assert "-: standard input is not read" in refused.err and "Traceback" not in refused.err
    (tmp_path / "-").write_bytes(b"name,phone1\nAnn,13800000001\n")
    loaded = await bulkimport("run", "-", *target(sandbox), "--rate", "0", cwd=tmp_path)
    assert loaded.code == 0, loaded.err
    assert len(await customers(sandbox)) == 1


@pytest.mark.parametrize("data", [b"\x0cname,phone1\nAnn,1\n", b"\x0c\nname,phone1\nAnn,1\n"])
def test_a_form_feed_before_the_header_is_said_not_silently_taken_off(
    tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(data)
    assert records(path) == ["name=Ann||phone1=1"]
    report = check_file(path, None, CheckOptions())
    assert any("a form feed (a printed report's page break)" in note for note in report.notes)
    result = CliRunner().invoke(cli, ["check", str(path)], env={"BULKIMPORT_CONFIG": None})
    assert "form feed" in result.output


def test_a_plain_header_has_no_note_of_control_characters(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_bytes(b"name,phone1\tx\r\nAnn,1\r\n")
    report = check_file(path, None, CheckOptions())
    assert not any("holds" in note for note in report.notes)
