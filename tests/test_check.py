"""``bulkimport check``: the analysis on real files in tmp_path, then the command."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bulkimport.campaign import Campaign, FieldSpec, Schema
from bulkimport.check import (
    GROUP_TITLES,
    CheckOptions,
    CheckReport,
    GroupCode,
    PhoneSource,
    check_file,
    choose_phone_field,
    invalid_code,
    is_phone_like,
    phone_code,
    render,
    render_text,
    repaired_code,
    select_campaign,
)
from bulkimport.check.facts import BlankLines, MissingRequired, PhoneDamage, Repeated
from bulkimport.cli import cli
from bulkimport.errors import ConfigError
from bulkimport.reader import ReaderOptions, read_batches, sniff_format
from bulkimport.reader.phones import examine_phone, is_scientific
from bulkimport.states import InvalidReason, RepairKind

ROOT = Path(__file__).resolve().parents[1]
HEADER = "name,phone1,email,city"
CAMPAIGN = Campaign(
    "7",
    "Spring",
    (
        FieldSpec("customername", "name"),
        FieldSpec("phone1", "phone1", required=True),
        FieldSpec("email", "email"),
        FieldSpec("company", "company", required=True),
    ),
    "phone1",
)


def write(tmp_path: Path, lines: list[str], encoding: str = "utf-8", name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def good(n: int, start: int = 0) -> list[str]:
    return [
        f"Lead {i},139{i:08d},lead{i}@example.com,City {i % 7}" for i in range(start, start + n)
    ]


def check(
    tmp_path: Path,
    lines: list[str],
    reader: ReaderOptions | None = None,
    **options: Any,
) -> CheckReport:
    return check_file(write(tmp_path, lines), reader, CheckOptions(**options))


def group(report: CheckReport, code: str) -> list[tuple[int | None, str]]:
    """The (line, message) examples of one group; [] when the group is absent."""
    for found in report.groups:
        if found.code == code:
            return [(f.line, f.message) for f in found.examples]
    return []


def count(report: CheckReport, code: str) -> int:
    return next((g.count for g in report.groups if g.code == code), 0)


# --- the rules, one by one -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code", "number"),
    [
        ("13800138000", None, "13800138000"),
        ("+8613800138000", None, "+8613800138000"),
        ("1.38E+10", None, None),  # digits lost: excel-scientific says so, for any field
        ("1.38e10", None, None),
        ("1,38E+10", None, None),
        ("'1.38E+10", None, None),
        ("13800138000.0", "excel-decimal", "13800138000"),
        ("'13800138000", "excel-apostrophe", "13800138000"),
        ("'13800138000.0", "excel-apostrophe", "13800138000"),
        ("'0755-1234567", "excel-apostrophe", "07551234567"),
        ("138-0013-8000", "phone-separators", "13800138000"),
        ("(010) 6552 9988", "phone-separators", "01065529988"),
        (" 13800138000 ", "phone-separators", "13800138000"),
        ("+44 20 7946 0958", "phone-separators", "+442079460958"),
        ("n/a", "phone-not-a-number", None),
        ("13800138000 ext 5", "phone-not-a-number", None),
        ("１３８００１３８０００", "phone-not-a-number", None),
        ("--", "phone-not-a-number", None),
    ],
)
def test_the_reader_s_phone_verdict_is_check_s(
    value: str, code: str | None, number: str | None
) -> None:
    verdict = examine_phone(value)
    assert (phone_code(verdict), verdict.number) == (code, number)
    assert verdict.lost == is_scientific(value.lstrip("'"))


@pytest.mark.parametrize("reason", list(InvalidReason))
def test_every_invalid_reason_has_a_group_of_its_own(reason: InvalidReason) -> None:
    code = invalid_code(reason)
    assert code == f"invalid-{reason.value}" and GROUP_TITLES[code]
    assert "(not sent)" in GROUP_TITLES[code] or "not sent" in GROUP_TITLES[code]


@pytest.mark.parametrize("kind", list(RepairKind))
def test_every_repair_kind_has_a_group_of_its_own(kind: RepairKind) -> None:
    code = repaired_code(kind)
    assert code == f"repaired-{kind.value}" and "repaired" in GROUP_TITLES[code]


def test_only_repairs_and_formulas_are_notes() -> None:
    notes = {code for code in GroupCode if not code.problem}
    assert notes == {code for code in GroupCode if code.startswith("repaired-")} | {
        GroupCode.FORMULA_LIKE
    }
    assert set(GROUP_TITLES) == set(GroupCode)


def test_findings_are_facts_and_render_says_them(tmp_path: Path) -> None:
    lines = [HEADER, *good(3), "", "Dup,139-0000-0001,x,Y", "Empty,,x,Y"]
    report = check(tmp_path, lines, campaign=CAMPAIGN)
    groups = {group.code: group for group in report.groups}
    assert all(isinstance(code, GroupCode) for code in groups)
    (repeated,) = groups[GroupCode.DUPLICATE_PHONE].examples
    assert (repeated.line, repeated.fact) == (6, Repeated("phone1", "13900000001", 3, "line"))
    (separated,) = groups[GroupCode.PHONE_SEPARATORS].examples
    assert isinstance(separated.fact, PhoneDamage)
    assert separated.fact.verdict == examine_phone("139-0000-0001")
    (missing,) = groups[GroupCode.SCHEMA_MISSING_REQUIRED].examples
    assert missing.fact == MissingRequired(CAMPAIGN.fields[3], CAMPAIGN)
    # The JSON says what render says, from the same facts.
    data = report.to_json()
    said = [e["message"] for g in data["groups"] for e in g["examples"]]
    assert said == [render.message(f.fact) for g in report.groups for f in g.examples]
    assert report.said == (BlankLines(1, "line", workbook=False),)
    assert data["notes"] == [render.note(fact) for fact in report.said] == list(report.notes)


def test_phone_like_names() -> None:
    for name in (
        "phone2",
        "Phone",
        "MOBILE",
        "tel_1",
        "cell phone",
        "Phone No",
        "手机号码",
        "联系电话",
    ):
        assert is_phone_like(name), name
    for name in ("hotel", "telegram", "email", "phones_called", "name"):
        assert not is_phone_like(name), name


def test_duplicates_give_both_line_numbers(tmp_path: Path) -> None:
    rows = good(5)
    rows.insert(3, "Again,13900000001,again@example.com,X")  # line 5 repeats line 3
    rows.append("Third,139-0000-0001,third@example.com,X")  # line 8: the same number, dashed
    report = check(tmp_path, [HEADER, *rows])
    assert group(report, "duplicate-phone") == [
        (5, "phone1 '13900000001' is already on line 3"),
        (8, "phone1 '13900000001' is already on line 3"),
    ]
    assert group(report, "phone-separators") == [
        (8, "phone1 '139-0000-0001' has separators; the dialer may want digits only")
    ]


def test_scientific_notation_in_a_phone_field_is_not_sent_and_elsewhere_reported(
    tmp_path: Path,
) -> None:
    lines = ["name,phone1,account", "A,1.38E+10,1", "B,1.38E+10,2", "C,13800138000,4.5E+17"]
    report = check(tmp_path, lines)
    assert [line for line, _ in group(report, "invalid-phone-digits-lost")] == [2, 3]
    assert "(not sent)" in GROUP_TITLES["invalid-phone-digits-lost"]
    assert group(report, "excel-scientific") == [
        (4, "account '4.5E+17' is in scientific notation: its digits are lost; "
         "re-export the column as text")
    ]  # fmt: skip
    assert count(report, "duplicate-phone") == 0
    assert count(report, "phone-not-a-number") == 0


def test_excel_marks_on_phone_fields_are_repaired_and_said_so(tmp_path: Path) -> None:
    lines = [
        "name,phone1,phone2,memo",
        "A,13800138000,13900139000.0,x",
        "B,13800138001,'0201234,x",
        "C,13800138002.0,,x",
    ]
    report = check(tmp_path, lines)
    assert group(report, "repaired-decimal") == [
        (2, "phone2 '13900139000.0' is sent as '13900139000'"),
        (4, "phone1 '13800138002.0' is sent as '13800138002'"),
    ]
    assert group(report, "repaired-apostrophe") == [(3, "phone2 \"'0201234\" is sent as '0201234'")]
    # Repairs are notes: what run does, not a problem.
    assert report.clean and report.problems == 0
    assert report.to_json()["repaired"] == {"decimal": 2, "apostrophe": 1}
    text = render_text(report)
    assert "repaired-decimal: phone number ending in .0: repaired" in text
    # Only the phone field takes part in duplicates and in the empty check.
    assert count(report, "required-empty") == 0


def test_check_counts_what_the_reader_repairs_and_refuses(tmp_path: Path) -> None:
    lines = ["name,phone1,Mobile", *(f"L{i},138{i:08d}.0,'139{i:08d}" for i in range(30))]
    lines += ["X,1.38E+10,", "Y,,1.39E+10"]
    path = write(tmp_path, lines)
    reader = ReaderOptions(phone_field="phone1")
    fmt = sniff_format(path, reader)
    batches = list(read_batches(path, fmt, batch_rows=7))
    report = check_file(path, reader)
    for kind in RepairKind:
        counted = sum(batch.repairs.get(kind, 0) for batch in batches)
        assert count(report, repaired_code(kind)) == counted == (30 if kind.phone else 0)
    lost = [row.line for batch in batches for row in batch.rows if row.reason]
    assert [line for line, _ in group(report, "invalid-phone-digits-lost")] == lost == [32, 33]


def test_no_repair_makes_damaged_phone_numbers_problems(tmp_path: Path) -> None:
    lines = ["name,phone1", "A,13800138000.0", "B,13800138001"]
    report = check(tmp_path, lines, ReaderOptions(repair=False))
    assert not report.clean
    assert group(report, "invalid-phone-unrepaired") == [
        (2, "phone1 '13800138000.0' ends in .0 (Excel stored it as a number); "
         "not repaired (--no-repair): fix it in the file")
    ]  # fmt: skip
    assert count(report, "repaired-decimal") == 0


def test_truncated_needs_a_clear_majority(tmp_path: Path) -> None:
    rows = [f"Lead {i},139{i:08d},,X" for i in range(30)]
    rows.append("Short,1065529988,,X")  # line 32: Beijing 010... without its 0
    rows.append("Plus,+1065529988,,X")  # international: never called truncated
    rows.append("Long,139000000001,,X")  # longer: not truncated either
    report = check(tmp_path, [HEADER, *rows])
    assert [line for line, _ in group(report, "phone-truncated")] == [32]
    assert (
        "has 10 digits where 94% of the 32 numbers have 11"
        in group(report, "phone-truncated")[0][1]
    )


def test_truncated_stays_quiet_on_mixed_lengths_or_few_numbers(tmp_path: Path) -> None:
    mixed = [f"L{i},{'139' if i % 3 else '10'}{i:08d},,X" for i in range(40)]
    assert count(check(tmp_path, [HEADER, *mixed]), "phone-truncated") == 0
    few = [f"L{i},139{i:08d},,X" for i in range(10)] + ["S,1065529988,,X"]
    assert count(check(tmp_path, [HEADER, *few]), "phone-truncated") == 0


def test_empty_phone_and_long_values(tmp_path: Path) -> None:
    lines = [HEADER, "A,,a@example.com,X", f"B,13800138000,{'x' * 300},X", "C,13800138001,c,X"]
    report = check(tmp_path, lines, max_length=255)
    assert group(report, "required-empty") == [(2, "phone1 is empty")]
    assert group(report, "value-too-long") == [(3, "email has 300 characters (more than 255)")]
    assert count(check(tmp_path, lines, max_length=1000), "value-too-long") == 0


def test_invalid_rows_are_grouped_with_their_reasons(tmp_path: Path) -> None:
    lines = [HEADER, *good(2), "A,1,2", "", "B,13800000009,b||c,X", 'C,"1,x,y', *good(1, 9)]
    report = check(tmp_path, lines)
    assert group(report, "invalid-cells") == [(4, "3 cells, the header has 4")]
    assert group(report, "invalid-pipe") == [(6, "the value of 'email' contains '||'")]
    ((line, message),) = group(report, "invalid-unclosed-quote")
    assert line == 7 and message.startswith("unclosed quote on line 7: ")
    assert (report.records, report.invalid, report.fitting, report.blank_lines) == (6, 3, 4, 1)


def test_blank_lines_are_a_note_not_a_problem(tmp_path: Path) -> None:
    lines = [HEADER, *good(2), "", ",,,", " , ,\u3000,", *good(2, 5), "", ""]
    report = check(tmp_path, lines)
    assert report.clean and report.records == 4
    assert report.blank_lines == 5
    assert "5 blank lines (empty, or only delimiters and spaces) skipped: not records" in (
        report.notes
    )
    assert report.to_json()["blank_lines"] == 5
    assert render_text(report).endswith("No problems in 4 records; nothing was sent.")


def test_examples_are_bounded_but_counts_exact(tmp_path: Path) -> None:
    rows = [f"L{i},,x,X" for i in range(250)]
    report = check(tmp_path, [HEADER, *rows], example_limit=100)
    assert count(report, "required-empty") == 250
    assert len(group(report, "required-empty")) == 100
    text = render_text(report, examples=10)
    assert "... and 240 more (--all lists every one)" in text
    unbounded = check(tmp_path, [HEADER, *rows], example_limit=None)
    assert len(group(unbounded, "required-empty")) == 250


def test_a_clean_file(tmp_path: Path) -> None:
    report = check(tmp_path, [HEADER, *good(40)])
    assert report.clean and report.problems == 0
    assert report.samples[0] == (
        2,
        "name=Lead 0||phone1=13900000000||email=lead0@example.com||city=City 0",
    )
    assert len(report.samples) == 3
    assert render_text(report).endswith("No problems in 40 records; nothing was sent.")


# --- which field is the phone ----------------------------------------------------------------


def test_phone_field_choice(tmp_path: Path) -> None:
    fmt = sniff_format(write(tmp_path, ["Name,Mobile,Tel,email", "a,1,2,x"]))
    assert choose_phone_field(fmt) == choose_phone_field(fmt, "", None)
    assert choose_phone_field(fmt).name == "Mobile"
    assert choose_phone_field(fmt).source is PhoneSource.NAME
    assert choose_phone_field(fmt, "Tel").source is PhoneSource.OPTION
    fmt = sniff_format(write(tmp_path, ["name,email", "a,x"]))
    assert choose_phone_field(fmt).source is PhoneSource.NONE


def test_phone_field_from_the_schema_key_field(tmp_path: Path) -> None:
    path = write(tmp_path, ["name,mobile,Cell", "a,1,2"])
    fmt = sniff_format(path, ReaderOptions(rename=(("Cell", "phone1"),)))
    choice = choose_phone_field(fmt, "", CAMPAIGN)
    assert (choice.name, choice.source) == ("phone1", PhoneSource.SCHEMA)
    # A campaign keyed on e-mail: the key is not a phone, the names decide.
    by_email = Campaign("8", "E", (FieldSpec("email", required=True),), "email")
    fmt = sniff_format(write(tmp_path, ["email,mobile", "a,1"]))
    assert choose_phone_field(fmt, "", by_email).name == "mobile"


def test_no_phone_field_is_a_problem_run_would_meet_on_every_record(tmp_path: Path) -> None:
    report = check(tmp_path, ["name,email", "a,x", "b,y"])
    assert not report.clean
    assert count(report, "no-phone-field") == 1
    assert "the server refuses every record" in group(report, "no-phone-field")[0][1]
    assert "give --phone-field" in report.notes[0]


def test_a_phone_field_that_is_not_in_the_file(tmp_path: Path) -> None:
    report = check(tmp_path, [HEADER, *good(2)], phone_field="mobile")
    assert (
        "--phone-field 'mobile': no column maps to it" in group(report, "phone-field-missing")[0][1]
    )


# --- the schema ------------------------------------------------------------------------------


def test_schema_unknown_and_missing_fields(tmp_path: Path) -> None:
    lines = ["name,phone1,email,city", "A,13800138000,a@x,Z", "B,13800138001,b@x,Z"]
    report = check(
        tmp_path, lines, ReaderOptions(constants=(("source", "web"),)), campaign=CAMPAIGN
    )
    unknown = group(report, "schema-unknown-field")
    assert [line for line, _ in unknown] == [None, None]
    assert "column 'city': campaign 7 ('Spring') has no such field" in unknown[0][1]
    assert "--set source=...: campaign 7 ('Spring') has no such field" in unknown[1][1]
    missing = group(report, "schema-missing-required")
    assert len(missing) == 1 and "required field 'company' (company)" in missing[0][1]
    # 'name' is the display name of customername: the server takes it.
    assert not any("'name'" in message for _, message in unknown)


def test_schema_required_fields_empty_in_rows(tmp_path: Path) -> None:
    lines = ["name,phone1,company", "A,13800138000,Acme", "B,13800138001,", "C,,Acme"]
    report = check(tmp_path, lines, campaign=CAMPAIGN)
    assert group(report, "required-empty") == [(3, "company is empty"), (4, "phone1 is empty")]
    assert report.phone.source is PhoneSource.SCHEMA


def test_select_campaign() -> None:
    other = Campaign("9", "Other", CAMPAIGN.fields, "phone1")
    schema = Schema("demo", (), (), (CAMPAIGN, other))
    assert select_campaign(schema, "9") is other
    with pytest.raises(ConfigError, match=r"choose one with --campaign \(7, 9\)"):
        select_campaign(schema, None)
    with pytest.raises(ConfigError, match="no such campaign"):
        select_campaign(schema, "5")
    assert select_campaign(Schema("demo", (), (), (CAMPAIGN,)), None) is CAMPAIGN


# --- encodings -------------------------------------------------------------------------------


def test_bom_and_gbk_show_in_the_report(tmp_path: Path) -> None:
    lines = ["姓名,phone1,城市", *[f"王伟{i},139{i:08d},深圳市南山区" for i in range(30)]]
    bom = check_file(write(tmp_path, lines, "utf-8-sig", "bom.csv"))
    assert (bom.format.encoding, bom.bom) == ("utf-8", True)
    assert "utf-8 with a byte-order mark (certain)" in render_text(bom)
    gbk = check_file(write(tmp_path, lines, "gbk", "gbk.csv"))
    assert gbk.format.encoding == "gb18030" and not gbk.bom
    text = render_text(gbk)
    assert "gb18030 (detected, " in text and "% sure)" in text
    assert re.search(r"columns +姓名 +-> 姓名\n", text)
    given = check_file(write(tmp_path, lines, "gbk", "gbk.csv"), ReaderOptions(encoding="gbk"))
    assert "gb18030 (given with --encoding)" in render_text(given)


def test_json_shape(tmp_path: Path) -> None:
    report = check(tmp_path, [HEADER, *good(3), "Dup,13900000001,x,Y"])
    data = json.loads(json.dumps(report.to_json()))
    assert data["clean"] is False and data["problems"] == 1
    assert data["encoding"] == {
        "name": "utf-8",
        "bom": False,
        "source": "detected",
        "confidence": 1.0,
    }
    assert data["delimiter"]["char"] == ","
    assert data["header"] == data["fields"] == ["name", "phone1", "email", "city"]
    assert data["phone_field"] == {"name": "phone1", "source": "name"}
    assert data["records"] == 4 and data["first_line"] == 2
    assert len(data["samples"]) == 3
    assert data["groups"] == [
        {
            "code": "duplicate-phone",
            "title": "phone number already on an earlier line",
            "problem": True,
            "count": 1,
            "examples": [
                {
                    "line": 5,
                    "field": "phone1",
                    "value": "13900000001",
                    "message": "phone1 '13900000001' is already on line 3",
                }
            ],
            "more": 0,
        }
    ]


# --- the command -----------------------------------------------------------------------------


def invoke(*args: str | Path) -> Any:
    return CliRunner().invoke(cli, ["check", *map(str, args)], env={"BULKIMPORT_CONFIG": None})


def test_cli_clean_file_exits_0(tmp_path: Path) -> None:
    result = invoke(write(tmp_path, [HEADER, *good(5)]))
    assert result.exit_code == 0, result.output
    assert "No problems in 5 records; nothing was sent." in result.stdout
    assert "phone      phone1 (found by its name" in result.stdout


def test_cli_problems_exit_1_grouped_with_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, *good(3), "A,,x,Y", "B,1.38E+10,x,Y", "C,13900000000,x,Y"])
    result = invoke(path)
    assert result.exit_code == 1
    out = result.stdout
    assert "required-empty: empty required field (1)\n  line 5: phone1 is empty" in out
    assert "invalid-phone-digits-lost: phone number in scientific notation" in out
    assert "  line 6: phone1 '1.38E+10' is in scientific notation" in out
    assert "  line 7: phone1 '13900000000' is already on line 2" in out
    assert out.rstrip().endswith("Found 3 problems in 3 groups (6 records); nothing was sent.")


def test_cli_says_repaired_and_no_repair_says_not_sent(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, *good(3), "A,13800138009.0,x,Y"])
    result = invoke(path)
    assert result.exit_code == 0, result.output
    assert "repaired-decimal: phone number ending in .0: repaired" in result.stdout
    assert "  line 5: phone1 '13800138009.0' is sent as '13800138009'" in result.stdout
    assert "No problems in 4 records" in result.stdout
    refused = invoke(path, "--no-repair")
    assert refused.exit_code == 1
    assert "invalid-phone-unrepaired: " in refused.stdout and "(not sent)" in refused.stdout


def test_cli_quiet_prints_only_the_problems(tmp_path: Path) -> None:
    result = invoke(write(tmp_path, [HEADER, *good(2), "A,,x,Y"]), "--quiet")
    assert result.exit_code == 1
    assert result.stdout.startswith("required-empty:")


@pytest.mark.parametrize("kind", ["missing", "binary", "empty"])
def test_cli_unreadable_file_exits_2_with_one_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "in.csv"
    if kind == "binary":
        path.write_bytes(b"\x00\x01\x02\x03" * 100)
    elif kind == "empty":
        path.write_bytes(b"")
    result = invoke(path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")


def test_cli_json(tmp_path: Path) -> None:
    rows = [f"L{i},,x,X" for i in range(150)]
    result = invoke(write(tmp_path, [HEADER, *rows]), "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    (empty,) = data["groups"]
    assert (empty["count"], len(empty["examples"]), empty["more"]) == (150, 100, 50)
    every = json.loads(invoke(write(tmp_path, [HEADER, *rows]), "--json", "--all").stdout)
    assert len(every["groups"][0]["examples"]) == 150


def test_cli_takes_the_options_of_run_without_a_password(tmp_path: Path) -> None:
    path = write(tmp_path, ["Name,Mobile,Notes", "a,13800138000,x", "b,13800138000,y"])
    result = invoke(
        path,
        *("--url", "https://cc.example.com/asterccinterfaces", "--org", "acme", "--rate", "5"),
        *("--map", "Mobile=phone1", "--map", "Notes=", "--set", "source=web"),
    )
    assert result.exit_code == 1, result.output
    assert "Notes  -> (dropped)" in result.stdout
    assert "source = 'web' (--set)" in result.stdout
    assert "line 3: phone1 '13800138000' is already on line 2" in result.stdout


def test_cli_schema(tmp_path: Path) -> None:
    path = write(tmp_path, ["name,phone1,city", "A,13800138000,X"])
    schema = ROOT / "samples" / "sandbox-schema.toml"
    result = invoke(path, "--schema", schema)
    assert result.exit_code == 2
    assert "choose one with --campaign (1, 2, 3)" in result.stderr
    result = invoke(path, "--schema", schema, "--campaign", "1")
    assert result.exit_code == 0, result.output
    assert "campaign   1 (Spring leads)" in result.stdout
    result = invoke(path, "--schema", schema, "--campaign", "3")
    assert result.exit_code == 1
    assert "schema-unknown-field: fields the campaign does not have (3)" in result.stdout
    assert "required field 'fullname' (姓名) of campaign 3" in result.stdout


def test_cli_on_the_sample_file() -> None:
    result = invoke(ROOT / "samples" / "leads.csv")
    assert result.exit_code == 1
    out = result.stdout
    for expected in (
        "  line 103: 7 cells, the header has 9",  # ragged: too few
        "  line 226: 10 cells, the header has 9",  # ragged: too many
        "  line 123: the value of 'memo' contains '||'",
        "  note       1 blank line (empty, or only delimiters and spaces) skipped: not records",
        "  line 73: phone1 is empty",
        "  line 185: phone1 is empty",
        "  line 294: phone1 is empty",
        "  line 45: phone1 '18351319305' is already on line 7",
        "  line 154: phone1 '18699424057' is already on line 63",
        "  line 266: phone1 '18063166562' is already on line 204",
    ):
        assert expected in out
    assert "encoding   utf-8, no byte-order mark (certain" in out


def test_cli_refuses_an_encoding_the_bytes_contradict(tmp_path: Path) -> None:
    path = write(tmp_path, ["name,phone1", "张三,13800000001", "李四,13800000002"])
    result = invoke(path, "--encoding", "gb18030")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {path}: the file is UTF-8")
    assert "'张三' as '寮犱笁'" in line and "drop --encoding" in line
    assert invoke(path).exit_code == 0


def test_cli_refuses_title_lines_with_the_skip_rows_to_give(tmp_path: Path) -> None:
    lines = ["Customer list,,,", ",,,", HEADER, *good(5)]
    path = write(tmp_path, lines)
    result = invoke(path)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {path}: line 1 ('Customer list') looks like a title")
    assert line.endswith("the header seems to be line 3: add --skip-rows 2")
    assert invoke(path, "--skip-rows", "2").exit_code == 0


def test_cli_maps_a_column_by_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, ["name,phone1,phone1,city", "A,13800000001,13900000001,X"])
    refused = invoke(path)
    assert refused.exit_code == 2
    assert "rename one by its position with --map '#3=FIELD'" in refused.stderr
    result = invoke(path, "--map", "#3=phone2")
    assert result.exit_code == 0, result.output
    assert "phone1 -> phone2" in result.stdout


def test_cli_on_the_excel_sample() -> None:
    result = invoke(ROOT / "samples" / "leads-excel.csv")
    assert result.exit_code == 1
    out = result.stdout
    for expected in (
        "  line 4: name=王芳||phone1=13912000099||company=Acme Trading Co.||city=北京",
        "  note       3 blank lines (empty, or only delimiters and spaces) skipped: not records",
        "  line 13: unclosed quote on line 13: the value it opens runs to line 15",
        "  line 9: phone1 '1.38E+10' is in scientific notation: its digits are lost",
        "  line 6: phone1 '13800138001.0' is sent as '13800138001'",
        "  line 7: phone1 \"'13800138002\" is sent as '13800138002'",
    ):
        assert expected in out
    assert out.rstrip().endswith("Found 2 problems in 2 groups (15 records); nothing was sent.")
