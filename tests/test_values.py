"""One verdict per value: Excel's text formula, control characters, totals rows and phone
numbers far shorter than their column's usual, judged by the reader and reported by
``check`` the same way; ``run`` against the sandbox never sends a wrong value.

Files are written as their producers write them: a CRM's Excel-friendly CSV (a byte-order
mark, CRLF, ``="..."`` cells), a Chinese CRM's GBK export with a totals row under the data,
values carrying a terminal's ANSI colours.
"""

from __future__ import annotations

import asyncio
import json
import signal
import zipfile
from collections import Counter
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkimport.check import CheckOptions, check_file
from bulkimport.reader import FileFormat, ReaderOptions, RecordMaker, read_batches, sniff_format
from bulkimport.reader.values import text_formula, totals_label, unpad, usual_length
from bulkimport.rows import NewRow
from bulkimport.sandbox import Faults, SandboxHandle
from bulkimport.states import Allow, InvalidReason, RepairKind, RowState
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    base_env,
    bulkimport,
    command,
    customers,
    get_json,
    good_rows,
    query,
    start_process,
    target,
)


def crm_export(path: Path, lines: list[str], encoding: str = "utf-8-sig") -> Path:
    """A file as a CRM's export writes it: CRLF line ends, a byte-order mark for UTF-8."""
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def read(path: Path, **options: object) -> tuple[FileFormat, list[NewRow]]:
    fmt = sniff_format(path, ReaderOptions(**options))  # type: ignore[arg-type]
    return fmt, [row for batch in read_batches(path, fmt, batch_rows=3) for row in batch.rows]


def repairs(path: Path, fmt: FileFormat) -> Counter[RepairKind]:
    counted: Counter[RepairKind] = Counter()
    for batch in read_batches(path, fmt, batch_rows=4):
        counted.update(batch.repairs)
    return counted


def verdicts(rows: list[NewRow]) -> dict[int, InvalidReason | None]:
    return {row.line: row.reason for row in rows}


# --- the rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "inner"),
    [
        ('="013800000002"', "013800000002"),
        ('=""', ""),
        ('="say ""hi"""', 'say "hi"'),
        ('="a"&"b"', None),  # a formula that computes: not a text formula
        ("=SUM(A1)", None),
        ("013800000002", None),
    ],
)
def test_text_formula(value: str, inner: str | None) -> None:
    assert text_formula(value) == inner


@pytest.mark.parametrize(
    ("value", "trim", "result"),
    [
        ("13800138000\r", True, ("13800138000", True)),
        ("\x0c13800138000 ", True, ("13800138000", True)),
        (" 13800138000\x00\x00", True, ("13800138000\x00\x00", False)),  # NUL: damaged
        ("  plain  ", True, ("plain", False)),
        ("a\nb\n", True, ("a\nb", False)),  # a line break is whitespace, not a control
        ("\x1b[31mred", True, ("\x1b[31mred", False)),  # inside: not padding
        ("keep \x0c", False, ("keep ", True)),
        ("keep\r", False, ("keep\r", False)),  # spaces kept: line breaks too
        ("13800138000\u200b", True, ("13800138000", True)),  # a zero-width space pasted
        ("\u202d张三 \ufeff", False, ("张三 ", True)),  # a direction mark, a stray BOM
        ("a\u200bb", True, ("a\u200bb", False)),  # inside: not padding
        ("👩\u200d💻", True, ("👩\u200d💻", False)),  # a joiner is part of an emoji
    ],
)
def test_unpad(value: str, trim: bool, result: tuple[str, bool]) -> None:
    assert unpad(value, trim) == result


def test_usual_length_is_robust_to_a_few_outliers_and_needs_enough_numbers() -> None:
    assert usual_length(Counter({11: 95, 4: 3, 12: 2})) == 11
    assert usual_length(Counter({11: 4})) is None  # too few to say
    assert usual_length(Counter({11: 50, 8: 50})) is None  # no length is usual
    assert usual_length(Counter({11: 3, 12: 3, 8: 1})) is None


def test_totals_label_needs_a_label_a_number_and_no_phone_number() -> None:
    assert totals_label(("合计", "2", ""), [1]) == (0, 1)
    assert totals_label(("Grand Total:", "", "1,234.50"), [1]) == (0, 2)
    assert totals_label(("Total", "13800138000", "5"), [1]) is None  # a lead named Total
    assert totals_label(("合计", "", ""), [1]) is None  # no number
    assert totals_label(("Totally", "2", ""), [1]) is None


# --- the reader's verdicts -------------------------------------------------------------------


def test_excel_text_formula_cells_are_repaired_in_every_field(tmp_path: Path) -> None:
    path = crm_export(
        tmp_path / "crm.csv",
        [
            "客户名称,手机,编号",
            '张三,="013800000002",="00042"',
            '李四,"=""013800000003""",00043',  # the same cell, quoted by another writer
            "王五,13800000004,00044",
        ],
    )
    fmt, rows = read(path)
    assert [row.record for row in rows] == [
        "客户名称=张三||手机=013800000002||编号=00042",
        "客户名称=李四||手机=013800000003||编号=00043",
        "客户名称=王五||手机=13800000004||编号=00044",
    ]
    assert [(r.field, r.kind, r.original) for r in rows[0].repairs] == [
        ("手机", RepairKind.TEXT_FORMULA, '="013800000002"'),
        ("编号", RepairKind.TEXT_FORMULA, '="00042"'),
    ]
    assert repairs(path, fmt) == {RepairKind.TEXT_FORMULA: 3}

    _, refused = read(path, repair=False)
    assert verdicts(refused) == {
        2: InvalidReason.UNREPAIRED,
        3: InvalidReason.UNREPAIRED,
        4: None,
    }
    assert refused[0].message == (
        "手机 '=\"013800000002\"' is Excel's text formula; not repaired (--no-repair): "
        "fix it in the file"
    )


def crm_with_totals(tmp_path: Path) -> Path:
    """A Chinese CRM's GBK export: 30 leads, a lead named Total, then the totals row."""
    lines = ["name,phone1,email,city"]
    lines += [f"客户{i},139{i:08d},lead{i}@example.com,上海市浦东新区" for i in range(30)]
    lines.append("Total,13900000099,total@example.com,上海市")
    lines += ["", "合计,31,,"]
    return crm_export(tmp_path / "export.csv", lines, "gbk")


def test_a_totals_row_under_the_data_is_invalid_unless_allowed(tmp_path: Path) -> None:
    path = crm_with_totals(tmp_path)
    _, rows = read(path)
    invalid = {row.line: row.message for row in rows if row.state is RowState.INVALID}
    assert invalid == {
        34: "a totals row (name '合计', phone1 '31'): not a lead; delete the row, "
        "or --allow totals-rows sends it"
    }
    assert rows[-1].reason is InvalidReason.TOTALS_ROW
    # Let through, it is judged as any row: its "phone number" is far too short.
    _, allowed = read(path, allow=(Allow.TOTALS_ROWS,))
    assert verdicts(allowed)[34] is InvalidReason.PHONE_SHORT
    _, both = read(path, allow=(Allow.TOTALS_ROWS, Allow.SHORT_PHONES))
    assert both[-1].state is RowState.PENDING and both[-1].record == "name=合计||phone1=31"


def short_phones(tmp_path: Path) -> Path:
    lines = [HEADER, *good_rows(12)]
    lines += ["Note,1234,note@example.com,X"]  # 4 digits among 11-digit mobiles
    lines += ["Zero lost,1380013800,z@example.com,X"]  # one short: check's, not the reader's
    lines += ["Landline,02161234567,l@example.com,X", "Local,61234567,loc@example.com,X"]
    lines += ["Cut,138,c@example.com,X", "Mark,'1234.0,m@example.com,X"]
    return crm_export(tmp_path / "short.csv", lines)


def test_phone_numbers_far_shorter_than_the_column_are_invalid(tmp_path: Path) -> None:
    path = short_phones(tmp_path)
    fmt, rows = read(path)
    assert fmt.usual_lengths == (("phone1", 11),)
    found = {row.line: row.message for row in rows if row.state is RowState.INVALID}
    assert found == {
        14: "phone1 '1234' has 4 digits where the column's numbers have 11: not a phone "
        "number; fix the row, or --allow short-phones sends it",
        18: "phone1 '138' has 3 digits where the column's numbers have 11: not a phone "
        "number; fix the row, or --allow short-phones sends it",
        19: "phone1 '1234' has 4 digits where the column's numbers have 11: not a phone "
        "number; fix the row, or --allow short-phones sends it",
    }
    _, allowed = read(path, allow=(Allow.SHORT_PHONES,))
    assert all(row.state is RowState.PENDING for row in allowed)


def test_phone_numbers_far_longer_than_the_column_are_invalid(tmp_path: Path) -> None:
    lines = [HEADER, *good_rows(12)]
    lines += ["ID card,110101199003071234,id@example.com,X"]  # 18 digits
    lines += ["Dialled abroad,008613800138000,intl@example.com,X"]  # 15: a phone number
    path = crm_export(tmp_path / "long.csv", lines)
    _, rows = read(path)
    assert {row.line: row.message for row in rows if row.reason} == {
        14: "phone1 '110101199003071234' has 18 digits where the column's numbers have 11: "
        "not a phone number; fix the row, or --allow long-phones sends it"
    }
    _, allowed = read(path, allow=(Allow.LONG_PHONES,))
    assert all(row.state is RowState.PENDING for row in allowed)


def test_a_column_without_a_usual_length_is_not_judged_by_length(tmp_path: Path) -> None:
    lines = [HEADER, "A,13800138000,a,X", "B,1234,b,X", "C,0216123456,c,X", "D,12,d,X"]
    fmt, rows = read(crm_export(tmp_path / "few.csv", lines))
    assert fmt.usual_lengths == ()
    assert all(row.state is RowState.PENDING for row in rows)


def ansi_file(tmp_path: Path) -> Path:
    """Values pasted from a terminal (ANSI colours, a bell), one padded by a form feed, one
    ending in a stray carriage return, a multi-line cell."""
    lines = [HEADER, *good_rows(10)]
    lines += ["\x1b[31mRed Lead\x1b[0m,13800000001,red@example.com,X"]
    lines += ["Bell,13800000002,bell\x07@example.com,X"]
    lines += ["Form,\x0c13800000003,form@example.com,X"]
    lines += ['Return,"13800000004\r",ret@example.com,X']
    lines += ['Multi,13800000006,multi@example.com,"line one\r\nline two"']
    return crm_export(tmp_path / "ansi.csv", lines)


def test_control_characters_inside_a_value_are_invalid_around_it_repaired(
    tmp_path: Path,
) -> None:
    path = ansi_file(tmp_path)
    fmt, rows = read(path)
    assert verdicts(rows)[12] is InvalidReason.CONTROL
    assert verdicts(rows)[13] is InvalidReason.CONTROL
    assert rows[10].message == (
        "name '\\x1b[31mRed Lead\\x1b[0m' holds control characters ('\\x1b'); they are no "
        "lead's data: remove them, or --allow control-characters sends them"
    )
    sent = {row.line: row.record for row in rows if row.state is RowState.PENDING}
    assert sent[14] == "name=Form||phone1=13800000003||email=form@example.com||city=X"
    assert sent[15] == "name=Return||phone1=13800000004||email=ret@example.com||city=X"
    assert sent[17] == (
        "name=Multi||phone1=13800000006||email=multi@example.com||city=line one\r\nline two"
    )
    assert repairs(path, fmt) == {RepairKind.CONTROL_PADDING: 2}

    _, allowed = read(path, allow=(Allow.CONTROL_CHARACTERS,))
    assert all(row.state is RowState.PENDING for row in allowed)
    assert allowed[10].record is not None and "\x1b[31m" in allowed[10].record
    _, refused = read(path, repair=False)
    assert [line for line, reason in verdicts(refused).items() if reason] == [12, 13, 14, 15]
    assert verdicts(refused)[14] is InvalidReason.UNREPAIRED


def test_characters_that_show_as_nothing_are_taken_from_around_a_value_and_refused_inside(
    tmp_path: Path,
) -> None:
    # Copied from a web page or a chat app: a zero-width space after a number, a direction
    # mark before a name, a word joiner inside a number; and a header saved with one too.
    lines = ["name\u200b,phone1,email,city\u2060", *good_rows(10)]
    lines += ["\u200f张三,13800000011\u200b,z@example.com,X"]
    lines += ["Joined,138\u206000000012,j@example.com,X"]
    lines += ["王\u200b五,13800000013,w@example.com,X"]
    lines += ["Emoji 👩\u200d💻,13800000014,e@example.com,X"]
    path = crm_export(tmp_path / "pasted.csv", lines)
    fmt, rows = read(path)
    assert fmt.header == ("name", "phone1", "email", "city")
    judged = verdicts(rows)
    assert (judged[12], judged[13], judged[14]) == (
        None,
        InvalidReason.CONTROL,
        InvalidReason.CONTROL,
    )
    assert judged[15] is None
    sent = {row.line: row.record for row in rows if row.state is RowState.PENDING}
    assert sent[12] == "name=张三||phone1=13800000011||email=z@example.com||city=X"
    assert "\u200d" in (sent[15] or "")
    assert repairs(path, fmt) == {RepairKind.CONTROL_PADDING: 2}  # two values of one row
    _, allowed = read(path, allow=(Allow.CONTROL_CHARACTERS,))
    # A word joiner inside a phone number leaves no number to dial, allowed or not.
    assert [row.reason for row in allowed if row.reason] == [InvalidReason.NOT_A_PHONE]
    # check says what run does, value for value.
    report = check_file(path, ReaderOptions(), CheckOptions())
    groups = {group.code: group.count for group in report.groups}
    assert groups["invalid-control-characters"] == 2


def test_a_phone_field_holding_no_phone_number_is_invalid_unless_allowed(tmp_path: Path) -> None:
    # What CRMs and people put where a number should be: a placeholder, two numbers in one
    # cell, letters, full-width digits typed with a Chinese input method.
    lines = ["name,phone1,email,city,mobile2", *(row + ",13900000000" for row in good_rows(10))]
    lines += ["NA,n/a,na@example.com,X,", "Wu,无,wu@example.com,X,"]
    lines += ["Two,13800000013/13900000013,two@example.com,X,"]
    lines += ["Wide,１３８００００００１４,wide@example.com,X,"]
    lines += ["Second,13800000015,second@example.com,X,see notes"]
    lines += ["Dashes,138-0000-0016,dash@example.com,X,+86 139 0000 0016"]
    path = crm_export(tmp_path / "crm.csv", lines)
    _, rows = read(path)
    judged = verdicts(rows)
    assert [line for line, reason in judged.items() if reason] == [12, 13, 14, 15, 16]
    assert {judged[line] for line in (12, 13, 14, 15, 16)} == {InvalidReason.NOT_A_PHONE}
    assert rows[10].message == (
        "phone1 'n/a' is not a phone number (the dialer cannot call it); fix the row, or "
        "--allow not-phones sends it"
    )
    assert judged[17] is None  # separators: a number all the same, sent as written
    _, allowed = read(path, allow=(Allow.NOT_PHONES,))
    assert all(row.state is RowState.PENDING for row in allowed)
    # check says the same, value for value; with the --allow, nothing of them.
    report = check_file(path, ReaderOptions(), CheckOptions())
    groups = {group.code: group.count for group in report.groups}
    assert groups["invalid-not-a-phone"] == 5 and "phone-not-a-number" not in groups
    allowing = check_file(path, ReaderOptions(allow=(Allow.NOT_PHONES,)), CheckOptions())
    codes = {group.code for group in allowing.groups}
    assert not {"invalid-not-a-phone", "phone-not-a-number"} & codes


def test_nul_and_other_controls_reach_the_record_maker_judged_alike(tmp_path: Path) -> None:
    path = crm_export(tmp_path / "in.csv", [HEADER, *good_rows(10)])
    maker = RecordMaker(sniff_format(path))
    # A NUL is damaged text around a value or inside it, as the reader of lines says.
    padded = maker.make(20, ["Nul", "13800000005", "n@example.com", "City\x00\x00"])
    assert padded is not None and padded.reason is InvalidReason.NUL
    inside = maker.make(21, ["N\x00ul", "13800000005", "", ""])
    assert inside is not None and inside.reason is InvalidReason.NUL
    formfeed = maker.make(23, ["Ff", "13800000005", "n@example.com", "City\x0c"])
    assert formfeed is not None and formfeed.record is not None
    assert [r.kind for r in formfeed.repairs] == [RepairKind.CONTROL_PADDING]
    for char in ("\x7f", "\x9b", "\x01"):
        judged = maker.maker()(22, [f"a{char}b", "13800000005", "", ""])
        assert judged is not None and judged.reason is InvalidReason.CONTROL


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_a_nul_is_damaged_text_in_every_encoding_and_no_allow_sends_it(
    tmp_path: Path, encoding: str
) -> None:
    # The same lines saved as UTF-8 (split by the line reader) and as UTF-16/32 (decoded in
    # wide blocks): one verdict, and --allow control-characters does not send a NUL.
    lines = [HEADER, *good_rows(10), "ab\x00,13800000011,,X", "c\x00d,13800000012,,X"]
    path = crm_export(tmp_path / f"nul-{encoding}.csv", lines, encoding=encoding)
    for allow in ((), (Allow.CONTROL_CHARACTERS,)):
        _, rows = read(path, allow=allow)
        judged = verdicts(rows)
        assert (judged[12], judged[13]) == (InvalidReason.NUL, InvalidReason.NUL), encoding
        assert all(reason is None for line, reason in judged.items() if line < 12)


def test_resuming_anywhere_judges_as_one_pass(tmp_path: Path) -> None:
    """The usual length is learned once, from the head, and kept in the stored format: a
    resume from any batch (with the format read back from the job) judges the same."""
    lines = [HEADER, *good_rows(40), "Short,1234,s@example.com,X", *good_rows(20, start=50)]
    lines += ['Formula,="013800000009",f@example.com,X', "合计,61,,"]
    path = crm_export(tmp_path / "resume.csv", lines)
    fmt = sniff_format(path)
    stored = FileFormat.from_json(fmt.to_json())
    assert stored == fmt and stored.usual_lengths == (("phone1", 11),)
    whole = [row for batch in read_batches(path, fmt) for row in batch.rows]
    assert verdicts(whole)[42] is InvalidReason.PHONE_SHORT
    assert verdicts(whole)[64] is InvalidReason.TOTALS_ROW
    batches = list(read_batches(path, stored, batch_rows=7))
    done = 0
    for batch in batches:
        done += len(batch.rows)
        rest = read_batches(path, stored, start_offset=batch.end_offset, start_line=batch.next_line)
        assert [row for more in rest for row in more.rows] == whole[done:]
    # What a job stored before the usual length was learned reads on without it.
    old = json.loads(fmt.to_json())
    del old["usual_lengths"], old["allow"]
    assert FileFormat.from_json(json.dumps(old)).usual_lengths == ()


# --- check reports the reader's verdicts -----------------------------------------------------


def test_check_reports_each_verdict_as_the_reader_makes_it(tmp_path: Path) -> None:
    for path in (short_phones(tmp_path), ansi_file(tmp_path), crm_with_totals(tmp_path)):
        report = check_file(path, ReaderOptions(), CheckOptions())
        fmt = sniff_format(path)
        rows = [row for batch in read_batches(path, fmt) for row in batch.rows]
        invalid = Counter(f"invalid-{row.reason}" for row in rows if row.reason)
        assert {g.code: g.count for g in report.groups if g.code.startswith("invalid-")} == invalid
        assert not report.clean


async def test_check_then_run_the_sandbox_holds_no_wrong_value(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    lines = [HEADER, *good_rows(20)]
    lines += ['Formula,="013800000002",f@example.com,="00042"']
    lines += ["\x1b[31mRed\x1b[0m,13800000003,red@example.com,X"]
    lines += ['Return,"13800000004\r",r@example.com,X']
    lines += ["Note,1234,note@example.com,X"]
    lines += ["合计,24,,"]
    path = crm_export(tmp_path / "leads.csv", lines)

    checked = await bulkimport("check", str(path), "--json", cwd=tmp_path)
    assert checked.code == 1, checked.err
    groups = {g["code"]: g["count"] for g in checked.json()["groups"]}
    assert groups == {
        "invalid-control-characters": 1,
        "invalid-phone-short": 1,
        "invalid-totals-row": 1,
        "repaired-text-formula": 2,
        "repaired-control-padding": 1,
    }
    ran = await bulkimport(
        "run", str(path), *target(sandbox), "--rate", "0", "--json", cwd=tmp_path
    )
    assert ran.code == 1, ran.err
    summary = ran.json()
    assert summary["counts"]["invalid"] == 3 and summary["counts"]["done"] == 22
    assert summary["repairs"]["text-formula"] == 2 and summary["repairs"]["control-padding"] == 1
    held = {c["key"]: c["fields"] for c in await customers(sandbox)}
    assert len(held) == 22
    values = [value for fields in held.values() for value in fields.values()]
    assert not any(v.startswith("=") or not v.isprintable() or v == "合计" for v in values)
    assert {len(key) for key in held} == {11, 12}
    assert held["013800000002"]["city"] == "00042"

    # The campaign that wants them: --allow lets each through, check and run alike.
    allow = "short-phones,control-characters,totals-rows"
    again = await bulkimport("check", str(path), "--allow", allow, cwd=tmp_path)
    assert again.code == 0, again.out
    assert "No problems" in again.out


@pytest.mark.slow
@pytest.mark.posix_only("SIGKILL and its exit status")
async def test_a_job_killed_midway_judges_the_same_after_resume(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.01))
    lines = [HEADER]
    for block in range(10):
        lines += good_rows(80, start=block * 100)
        lines += [f"Short {block},{block}234,s{block}@example.com,X"]
        lines += [f"Bell {block},13700000{block:03d},b\x07{block}@example.com,X"]
    lines += ["合计,820,,"]
    path = crm_export(tmp_path / "big.csv", lines)
    checked = await bulkimport("check", str(path), "--json", cwd=tmp_path)
    expected = {g["code"]: g["count"] for g in checked.json()["groups"]}
    assert expected == {
        "invalid-control-characters": 10,
        "invalid-phone-short": 10,
        "invalid-totals-row": 1,
    }
    proc = await start_process(
        *command(), "run", str(path), *target(sandbox), "--rate", "0", "--concurrency", "4",
        "--quiet", cwd=tmp_path, env=base_env(BULKIMPORT_PASSWORD="secret"),
        stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(600):
        await asyncio.sleep(0.05)
        if (await get_json(sandbox, "/sandbox/stats"))["requests"] >= 100:
            break
    proc.send_signal(signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL
    sent_before_kill = (await get_json(sandbox, "/sandbox/stats"))["requests"]
    assert sent_before_kill < 800, "the job finished before it could be killed"
    resumed = await bulkimport("resume", "--json", cwd=tmp_path)
    assert resumed.code == 1, resumed.err
    counts = resumed.json()["counts"]
    assert counts["done"] + counts["duplicate"] == 800 and counts["invalid"] == 21
    db = tmp_path / "bulkimport.db"
    codes = Counter(
        f"invalid-{code}"
        for (code,) in query(db, "SELECT last_code FROM rows WHERE state = 'invalid'")
    )
    assert codes == expected
    (stored,) = query(db, "SELECT format_json FROM jobs")
    assert json.loads(stored[0])["usual_lengths"] == [["phone1", 11]]
    held = await customers(sandbox)
    assert len(held) == 800
    assert all(len(c["key"]) == 11 for c in held)


def test_allow_is_a_typed_setting() -> None:
    from bulkimport.errors import ConfigError
    from bulkimport.settings import build, merge

    values = merge({"allow": "totals-rows, short-phones"}, {}, {})
    assert build(values).read.allow == (Allow.SHORT_PHONES, Allow.TOTALS_ROWS)
    from_env = merge({}, {"BULKIMPORT_ALLOW": "control-characters"}, {})
    assert build(from_env).read.allow == (Allow.CONTROL_CHARACTERS,)
    assert build(merge({}, {}, {"allow": "totals-rows"})).read.allow == (Allow.TOTALS_ROWS,)
    assert build(merge({}, {}, {})).stored()["allow"] == ""
    with pytest.raises(ConfigError, match="'zeros' is not one of short-phones"):
        merge({"allow": "zeros"}, {}, {})


def test_a_workbook_is_judged_as_a_csv_file(tmp_path: Path) -> None:
    """A sheet as a person keeps it: numbers typed as numbers, a short one, and a 合计 row
    under the data whose count is a formula's saved value."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["name", "phone1", "email", "city"])
    for i in range(20):
        sheet.append([f"客户{i}", 13800000000 + i, f"c{i}@example.com", "上海"])
    sheet.append(["Note", 1234, "note@example.com", "上海"])
    sheet.append(["合计", "=COUNTA(B2:B22)", None, None])
    path = tmp_path / "leads.xlsx"
    book.save(path)
    # openpyxl saves no value for a formula: write the one Excel would have saved.
    with_value = tmp_path / "saved.xlsx"
    _save_formula_value(path, with_value, "B23", "21")
    fmt, rows = read(with_value)
    assert fmt.usual_lengths == (("phone1", 11),)
    assert {row.line: row.reason for row in rows if row.reason} == {
        22: InvalidReason.PHONE_SHORT,
        23: InvalidReason.TOTALS_ROW,
    }
    report = check_file(with_value, ReaderOptions(), CheckOptions())
    assert {g.code for g in report.groups} == {"invalid-phone-short", "invalid-totals-row"}


def _save_formula_value(source: Path, target: Path, cell: str, value: str) -> None:
    """Copy a workbook, giving formula ``cell`` of its first sheet a saved value."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                start = text.index(f'<c r="{cell}"')
                end = text.index("</c>", start)
                formula = text[start:end]
                text = text[:start] + formula + f"<v>{value}</v>" + text[end:]
                data = text.encode()
            out.writestr(item, data)


VALUE = st.one_of(
    st.text(alphabet=st.sampled_from('13 8="\r\n\t\x0c\x1b\x00\x85a合计|'), max_size=6),
    st.sampled_from(
        ["13800138000", "1234", "12345678", "1101011990030712", '="0138"', "合计", "31", ""]
    ),
    st.sampled_from(["Total:", "1,234.5", "0086138001380001"]),
)


@settings(max_examples=300, deadline=None)
@given(
    cells=st.lists(VALUE, min_size=3, max_size=5),
    keep_spaces=st.booleans(),
    repair=st.booleans(),
    allow=st.sets(st.sampled_from(list(Allow))),
)
def test_the_fast_path_judges_as_the_general_path(
    cells: list[str], keep_spaces: bool, repair: bool, allow: set[Allow]
) -> None:
    """Whatever the record, the maker's fast path and ``make`` give the same row: the one
    verdict cannot depend on which path a record took."""
    fmt = FileFormat(
        encoding="utf-8",
        encoding_confidence=1.0,
        delimiter=",",
        header=("name", "phone1", "phone2", "memo"),
        fields=("name", "phone1", "phone2", "memo"),
        constants=(),
        keep_empty=False,
        data_offset=0,
        data_line=2,
        keep_spaces=keep_spaces,
        phone_fields=("phone1", "phone2"),
        repair=repair,
        allow=tuple(sorted(allow)),
        usual_lengths=(("phone1", 11), ("phone2", 8)),
    )
    fast = RecordMaker(fmt)
    general = RecordMaker(fmt)
    assert fast.maker()(7, cells) == general.make(7, cells)
    assert fast.repaired == general.repaired


def test_a_report_loaded_back_learns_from_its_rows_that_were_not_too_short(
    tmp_path: Path,
) -> None:
    """Half the report's rows were refused as far too short and not edited: the usual
    length is learned from the others, and they stay invalid."""
    header = HEADER + ",_extra,_line,_state,_code,_message"
    lines = [header]
    lines += [
        f"Lead {i},139{i:08d},l{i}@example.com,X,,{i + 2},rejected,76,refused" for i in range(5)
    ]
    lines += [
        f"Note {i},{i}234,n{i}@example.com,X,,{i + 9},invalid,phone-short,too short"
        for i in range(5)
    ]
    path = tmp_path / "leads-job-1-failed.csv"
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig")
    fmt, rows = read(path)
    assert fmt.usual_lengths == (("phone1", 11),)
    assert [row.reason for row in rows] == [None] * 5 + [InvalidReason.PHONE_SHORT] * 5
