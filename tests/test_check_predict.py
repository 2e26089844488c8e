"""``check`` finds what would make ``run`` refuse a whole file, and says the fix: no phone
field (and where one is), no column named as a campaign's field, records too long for a GET.
Files are written as their producers write them: a GBK export, an openpyxl workbook."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import openpyxl  # type: ignore[import-untyped]
from click.testing import CliRunner

from bulkimport.campaign import Campaign, FieldSpec
from bulkimport.check import CheckOptions, CheckReport, GetLimit, check_file
from bulkimport.check.fieldnames import suggest_mapping, vendor_field
from bulkimport.cli import cli
from bulkimport.protocol import DEFAULT_MAX_GET_BYTES
from bulkimport.reader import ReaderOptions
from bulkimport.sandbox import SandboxHandle
from bulkimport.settings import Method, SendSettings, Settings
from tests.helpers import bulkimport, customers, target

CHINESE = ["姓名,手机,城市,备注", "张三,13800138000,北京,老客户", "李四,13800138001,上海,"]


def invoke(*args: str | Path) -> Any:
    return CliRunner().invoke(cli, ["check", *map(str, args)], env={"BULKIMPORT_CONFIG": None})


def findings(report: CheckReport, code: str) -> list[str]:
    return [f.message for g in report.groups if g.code == code for f in g.examples]


def write(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def test_the_names_files_give_the_vendors_fields() -> None:
    for column in ("手机", "联系电话", "Mobile", "Phone Number", "phone_number", "CELL"):
        spec = vendor_field(column)
        assert spec is not None and spec.name == "phone1", column
    found = [vendor_field(column) for column in ("姓名", "备注", "Notes", "邮箱")]
    assert [spec.name if spec else None for spec in found] == ["name", "memo", "memo", "email"]
    assert vendor_field("Score") is None
    # A field already sent is not suggested again; each vendor field once.
    columns = [("phone1", "phone1", "phone1"), ("手机", "手机", "手机"), ("备注", "备注", "备注")]
    assert [s.option for s in suggest_mapping(columns)] == ["--map '备注=memo'"]
    assert [s.option for s in suggest_mapping([("#2", "Notes", "Notes")])] == ["--map '#2=memo'"]


async def test_a_gbk_file_with_a_chinese_header_gets_the_map_that_loads_it(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    path = write(tmp_path / "gbk.csv", CHINESE, "gbk")
    result = invoke(path, "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    groups = {group["code"]: group for group in data["groups"]}
    assert set(groups) == {"no-phone-field", "header-unknown"}
    [no_phone] = groups["no-phone-field"]["examples"]
    assert no_phone["line"] is None
    assert no_phone["message"].endswith("column '手机' is named like it: --map '手机=phone1'")
    [unknown] = groups["header-unknown"]["examples"]
    fix = "--map '姓名=name' --map '手机=phone1' --map '城市=city' --map '备注=memo'"
    assert f"the server refuses every record; map them: {fix} " in unknown["message"]

    # The fix it gives: check is clean, run loads every row.
    options = ["--map", "姓名=name", "--map", "手机=phone1", "--map", "城市=city"]
    options += ["--map", "备注=memo"]
    assert invoke(path, *options).exit_code == 0
    done = await bulkimport("run", str(path), *target(sandbox), *options, cwd=tmp_path)
    assert done.code == 0, done.err
    held = {c["fields"]["phone1"]: c["fields"] for c in await customers(sandbox)}
    assert held["13800138000"] == {
        "customername": "张三",
        "phone1": "13800138000",
        "city": "北京",
        "memo": "老客户",
    }


async def test_the_same_file_unmapped_is_stopped_by_run_as_check_said(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    lines = [CHINESE[0], *(f"客户{i},1380013{i:04d},北京,备注{i}" for i in range(120))]
    path = write(tmp_path / "gbk.csv", lines, "gbk")
    assert invoke(path).exit_code == 1
    stopped = await bulkimport("run", str(path), *target(sandbox, "--rate", "0"), cwd=tmp_path)
    assert stopped.code == 3, stopped.err  # the error budget: every row is refused
    assert await customers(sandbox) == []
    # Its one line suggests the mapping check gives (and applies none of it).
    [line] = [line for line in stopped.err.splitlines() if line.startswith("Error: ")]
    assert re.match(r"Error: the server rejected (\d+) of the last \1 rows, BackMsg_74", line)
    assert (
        "; its columns may be the campaign's fields under other names: --map '姓名=name' "
        "--map '手机=phone1' --map '城市=city' --map '备注=memo' (bulkimport check shows what "
        "each column is sent as)"
    ) in line


def cover_workbook(path: Path) -> Path:
    """A cover page first, notes second, the leads on the third sheet."""
    book = openpyxl.Workbook()
    cover = book.active
    cover.title = "Cover"
    for text in ("Spring campaign leads", "Prepared by Sales", "Do not forward"):
        cover.append([text])
    book.create_sheet("Notes").append(["read me", "first"])
    leads = book.create_sheet("Leads")
    leads.append(["name", "phone1", "city"])
    for number in range(5):
        leads.append([f"客户{number}", 13800138000 + number, "深圳"])
    book.save(path)
    return path


async def test_a_workbook_read_from_its_cover_page_names_the_sheet_of_leads(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    path = cover_workbook(tmp_path / "leads.xlsx")
    report = check_file(path, ReaderOptions(), CheckOptions())
    assert not report.clean
    [message] = findings(report, "no-phone-field")
    assert message.endswith("sheet 3 'Leads' has a 'phone1' column: --sheet Leads")
    assert check_file(path, ReaderOptions(sheet="Leads"), CheckOptions()).clean
    # The fix it gives loads the leads.
    done = await bulkimport("run", str(path), *target(sandbox, "--sheet", "Leads"), cwd=tmp_path)
    assert done.code == 0, done.err
    assert len(await customers(sandbox)) == 5


def test_a_column_of_phone_numbers_under_another_name_is_found_by_its_values(
    tmp_path: Path,
) -> None:
    lines = ["who,c2,when", *(f"A{i},1390000{i:04d},2024-01-0{i % 9 + 1}" for i in range(10))]
    report = check_file(write(tmp_path / "x.csv", lines), ReaderOptions(), CheckOptions())
    [message] = findings(report, "no-phone-field")
    assert message.endswith("column 'c2' holds phone numbers (10 of the first 10 values): "
                            "--map 'c2=phone1'")  # fmt: skip
    # The dates are digits and separators too: not taken for phone numbers.
    assert "when" not in message


def test_with_a_schema_the_missing_key_field_is_where_to_look(tmp_path: Path) -> None:
    campaign = Campaign(
        "3", "Invitations", (FieldSpec("fullname", "姓名"), FieldSpec("email", "邮箱")), "email"
    )
    lines = ["姓名,电子邮箱", "张三,z@example.com"]
    options = CheckOptions(campaign=campaign)
    report = check_file(write(tmp_path / "x.csv", lines), ReaderOptions(), options)
    [message] = findings(report, "no-phone-field")
    assert message.startswith("no column maps to the key field 'email' of campaign 3")
    assert message.endswith("column '电子邮箱' is named like it: --map '电子邮箱=email'")
    assert not findings(report, "schema-missing-required")  # one cause, reported once
    # Mapped, nothing is refused; and with the schema, no guessing at names.
    mapped = ReaderOptions(rename=(("电子邮箱", "email"),))
    assert check_file(tmp_path / "x.csv", mapped, options).clean


def test_a_file_without_records_has_nothing_for_run_to_refuse(tmp_path: Path) -> None:
    report = check_file(write(tmp_path / "x.csv", ["foo,bar"]), ReaderOptions(), CheckOptions())
    assert report.clean


def memo_file(tmp_path: Path) -> Path:
    # 900 Chinese characters: 8,100 bytes once URL-encoded.
    lines = ["name,phone1,memo", "张三,13800138000,短", f"李四,13800138001,{'长' * 900}"]
    return write(tmp_path / "memo.csv", lines)


def test_the_get_limit_is_the_servers_32_kib_and_a_setting(tmp_path: Path) -> None:
    path = memo_file(tmp_path)
    wide = CheckOptions(max_length=1000, get_limit=GetLimit())
    assert GetLimit().max_bytes == DEFAULT_MAX_GET_BYTES == 32 * 1024
    assert check_file(path, ReaderOptions(), wide).clean
    small = GetLimit(max_bytes=8000)
    report = check_file(path, ReaderOptions(), CheckOptions(max_length=1000, get_limit=small))
    [message] = findings(report, "request-too-long")
    assert "over the 8,000 the server takes (--max-get-bytes)" in message
    assert "--method post carries it" in message
    assert [f.line for g in report.groups for f in g.examples] == [3]
    # By POST the record goes in the body: no limit to check.
    post = Settings(send=SendSettings(method=Method.POST, max_get_bytes=8000))
    assert GetLimit.of(post) is None


def test_check_takes_the_get_limit_from_the_command_line(tmp_path: Path) -> None:
    path = memo_file(tmp_path)
    common = ["--max-length", "1000", "--method", "get"]
    assert invoke(path, *common).exit_code == 0
    result = invoke(path, *common, "--max-get-bytes", "8000")
    assert result.exit_code == 1, result.output
    assert "request-too-long: record too long for a GET request line" in result.stdout
    assert invoke(path, "--max-length", "1000", "--max-get-bytes", "8000").exit_code == 0


def test_with_a_schema_columns_it_knows_by_another_name_are_a_note(tmp_path: Path) -> None:
    campaign = Campaign(
        "3",
        "Invitations",
        (FieldSpec("fullname", "姓名"), FieldSpec("email", "邮箱"), FieldSpec("memo", "备注")),
        "email",
    )
    lines = ["name,email,Notes,Score", "张三,z@example.com,hi,3"]
    report = check_file(
        write(tmp_path / "x.csv", lines), ReaderOptions(), CheckOptions(campaign=campaign)
    )
    assert findings(report, "schema-unknown-field")  # as before: exact
    assert report.notes[-1] == (
        "columns campaign 3 may know by another name: 'name' (fullname), 'Notes' (memo): "
        "--map 'name=fullname' --map 'Notes=memo'"
    )
