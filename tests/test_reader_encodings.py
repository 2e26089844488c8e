"""Files that are mostly in one encoding and partly in another: UTF-8 lines in a GB18030, Big5
or cp1252 file, and legacy lines in a UTF-8 file, each found and never sent as mojibake."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkimport.check import CheckOptions, check_file
from bulkimport.cli import cli
from bulkimport.errors import InputError
from bulkimport.reader import ReaderOptions, read_batches, sniff_format
from bulkimport.reader.encoding import legacy_reading, utf8_line
from bulkimport.rows import NewRow
from bulkimport.states import InvalidReason, RowState
from tests.reading import assert_resumes_everywhere

NAMES = ["王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄勇", "周杰", "吴霞", "徐明"]
CITIES = ["北京", "上海", "广州", "深圳", "杭州", "成都"]


def chinese_lines(count: int, start: int = 0) -> list[str]:
    return [
        f"{NAMES[i % len(NAMES)]}{i},{CITIES[i % len(CITIES)]},1380000{i:04d}\n"
        for i in range(start, start + count)
    ]


def read(path: Path, options: ReaderOptions | None = None) -> list[NewRow]:
    fmt = sniff_format(path, options)
    return [row for batch in read_batches(path, fmt) for row in batch.rows]


def invalid(rows: list[NewRow]) -> list[NewRow]:
    return [row for row in rows if row.state is RowState.INVALID]


def test_utf8_lines_glued_into_a_gb18030_file_are_invalid_and_name_both_readings(
    tmp_path: Path,
) -> None:
    head = ("姓名,城市,电话\n" + "".join(chinese_lines(30))).encode("gbk")
    glued = "张三,上海,13900000001\n李四,深圳,13900000002\n".encode()
    tail = "".join(chinese_lines(5, 30)).encode("gbk")
    path = tmp_path / "glued.csv"
    path.write_bytes(head + glued + tail)
    fmt = sniff_format(path)
    assert fmt.encoding == "gb18030"
    rows = read(path)
    bad = invalid(rows)
    assert [row.line for row in bad] == [32, 33]
    assert {row.reason for row in bad} == {InvalidReason.OTHER_ENCODING}
    # The cells are what the line says: a failed-rows report holds them right.
    assert bad[0].cells == ("张三", "上海", "13900000001")
    message = bad[0].message or ""
    assert "UTF-8" in message and "GB18030" in message
    assert "'张三,上海,13900000001'" in message and "'寮犱笁,涓婃捣,13900000001'" in message
    # The lines around them are read in the file's encoding.
    assert [row.cells[0] for row in rows if row.line in (31, 34)] == ["徐明29", "王芳30"]
    assert len(rows) == 37 and len(bad) == 2
    assert_resumes_everywhere(path, fmt)


@pytest.mark.parametrize(
    ("legacy", "own", "foreign"),
    [
        ("big5", "陳大文{i},臺北市信義區,09123{i:05d}\n", "陳小明,臺中市,0912000000\n"),
        ("cp1252", "Françoise{i},Besançon,“quoted”\n", "José,Zürich,ok\n"),
        ("gb18030", "王芳{i},北京市朝阳区,1380000{i:04d}\n", "Zoë 😀,北京,1\n"),
    ],
)
def test_a_utf8_line_in_any_legacy_file_is_found(
    tmp_path: Path, legacy: str, own: str, foreign: str
) -> None:
    lines = "".join(own.format(i=i) for i in range(30))
    path = tmp_path / "in.csv"
    path.write_bytes(("name,city,memo\n" + lines).encode(legacy) + foreign.encode())
    fmt = sniff_format(path)
    assert fmt.encoding == legacy
    rows = read(path)
    assert [(row.line, row.reason) for row in invalid(rows)] == [(32, InvalidReason.OTHER_ENCODING)]
    assert invalid(rows)[0].cells == tuple(foreign.strip().split(","))


def test_a_forced_legacy_encoding_finds_utf8_lines_too(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    body = ("name,city,phone1\n" + "".join(chinese_lines(5))).encode("gbk")
    path.write_bytes(body + "张三,上海,1\n".encode())
    rows = read(path, ReaderOptions(encoding="gbk"))
    assert [row.line for row in invalid(rows)] == [7]


def test_a_pure_gb18030_file_has_no_utf8_lines_whatever_its_characters(tmp_path: Path) -> None:
    # Every GB2312 character alone on a line (one in seven is valid UTF-8 of two bytes by
    # accident), then in pairs: no line is taken for UTF-8.
    chars = []
    for lead in range(0xB0, 0xF8):
        for trail in range(0xA1, 0xFF):
            try:
                chars.append(bytes([lead, trail]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    lines = [f"{i},{char},1\n" for i, char in enumerate(chars)]
    lines += [
        f"{i},{a}{b},2\n" for i, (a, b) in enumerate(zip(chars, reversed(chars), strict=True))
    ]
    accidental = sum(_valid_utf8(line.encode("gb18030")) for line in lines)
    assert accidental > 500  # the hazard is real
    path = tmp_path / "pure.csv"
    path.write_bytes(("id,name,n\n" + "".join(lines)).encode("gb18030"))
    rows = read(path)
    assert sniff_format(path).encoding == "gb18030"
    assert invalid(rows) == []
    assert len(rows) == len(lines)


def test_a_pure_big5_file_has_no_utf8_lines(tmp_path: Path) -> None:
    chars = []
    for lead in range(0xA4, 0xC7):
        for trail in [*range(0x40, 0x7F), *range(0xA1, 0xFF)]:
            try:
                chars.append(bytes([lead, trail]).decode("big5"))
            except UnicodeDecodeError:
                continue
    lines = [f"{i},{char}{chars[-i]},1\n" for i, char in enumerate(chars)]
    path = tmp_path / "pure.csv"
    path.write_bytes(("id,name,n\n" + "".join(lines)).encode("big5"))
    assert invalid(read(path, ReaderOptions(encoding="big5"))) == []


def test_a_western_cp1252_file_has_no_utf8_lines(tmp_path: Path) -> None:
    words = ["José", "Zürich", "Ærøskøbing", "€ 12.50", "“quoted”", "naïve café", "Straße", "½"]
    lines = [f"{i},{a} {b},x\n" for i, a in enumerate(words) for b in words]
    path = tmp_path / "west.csv"
    path.write_bytes(("id,name,n\n" + "".join(lines)).encode("cp1252"))
    assert sniff_format(path).encoding == "cp1252"
    assert invalid(read(path)) == []


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not data.isascii()


@pytest.mark.parametrize(
    ("legacy", "text", "named"),
    [
        ("gbk", "张三,上海市浦东新区,13900000001", "GB18030"),
        ("big5", "陳大文,臺北市信義區,0912345678", "Big5"),
        ("cp1252", "José,Zürich,0912345678", "cp1252"),
    ],
)
def test_a_legacy_line_in_a_utf8_file_names_what_it_reads_as(
    tmp_path: Path, legacy: str, text: str, named: str
) -> None:
    path = tmp_path / "in.csv"
    body = ("name,city,phone1\n" + "".join(chinese_lines(40))).encode()
    path.write_bytes(body + (text + "\n").encode(legacy) + "李,北京,13900009999\n".encode())
    assert sniff_format(path).encoding == "utf-8"
    rows = read(path)
    bad = invalid(rows)
    assert [(row.line, row.reason) for row in bad] == [(42, InvalidReason.ENCODING)]
    message = bad[0].message or ""
    assert message.startswith("undecodable bytes (not utf-8)")
    assert f"reads as {named} {text!r}" in message
    assert rows[-1].state is RowState.PENDING


def test_a_character_cut_short_is_broken_utf8_not_a_legacy_line() -> None:
    cut = "王".encode()[:2]
    assert legacy_reading(cut + b",13800009999\n") is None
    assert legacy_reading(b"x" + "张伟".encode() + cut + b",1\n") is None
    assert legacy_reading("张三,上海".encode("gbk")) == ("gb18030", "张三,上海")
    assert utf8_line("张三".encode(), "gb18030") == "张三"
    # Two bytes of UTF-8 are not enough in a double-byte file, enough in a single-byte one.
    assert utf8_line("José".encode(), "gb18030") is None
    assert utf8_line("José".encode(), "cp1252") == "José"
    assert utf8_line(b"\xc2\x85", "cp1252") is None  # a control character: not text


def test_a_file_with_many_utf8_lines_in_a_legacy_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "glued.csv"
    legacy = ("姓名,城市,电话\n" + "".join(chinese_lines(40))).encode("gbk")
    path.write_bytes(legacy + "".join(chinese_lines(20, 40)).encode())
    with pytest.raises(InputError) as info:
        sniff_format(path)
    message = str(info.value)
    assert message.startswith(f"{path}: the file mixes two encodings: 20 of the 61 lines")
    assert "line 42 reads as UTF-8 '王芳40,杭州,13800000040'" in message
    assert "save it in one encoding" in message and "\n" not in message


def test_a_half_and_half_file_is_refused_with_both_readings(tmp_path: Path) -> None:
    path = tmp_path / "glued.csv"
    utf8 = ("姓名,城市,电话\n" + "".join(chinese_lines(20))).encode()
    path.write_bytes(utf8 + "".join(chinese_lines(30, 20)).encode("gbk"))
    with pytest.raises(InputError, match="mixes two encodings: 21 of the 51 lines") as info:
        sniff_format(path)
    assert "line 1 reads as UTF-8 '姓名,城市,电话', as GB18030 '濮撳悕" in str(info.value)


def test_check_reports_the_utf8_lines_of_a_legacy_file(tmp_path: Path) -> None:
    path = tmp_path / "glued.csv"
    body = ("name,city,phone1\n" + "".join(chinese_lines(30))).encode("gbk")
    path.write_bytes(body + "张三,上海,13900000001\n".encode())
    report = check_file(path, None, CheckOptions())
    assert not report.clean
    group = next(g for g in report.groups if g.code == "invalid-other-encoding")
    assert group.count == 1 and group.examples[0].line == 32
    result = CliRunner().invoke(cli, ["check", str(path)], env={"BULKIMPORT_CONFIG": None})
    assert result.exit_code == 1, result.output
    assert "UTF-8 line in a file of another encoding" in result.output
    assert "寮犱笁" in result.output


# --- NUL bytes, binary files, damaged workbooks -----------------------------------------------


def test_a_nul_byte_makes_its_row_invalid_not_the_file_binary(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    lines = ["name,phone1", "Ann,13800000001", "B\x00b,13800000002", "Cid,13800000003"]
    path.write_bytes(("\n".join(lines) + "\n").encode())
    fmt = sniff_format(path)
    rows = read(path)
    assert [row.state for row in rows] == [RowState.PENDING, RowState.INVALID, RowState.PENDING]
    bad = rows[1]
    assert (bad.line, bad.reason) == (3, InvalidReason.NUL)
    assert (
        bad.message == "a NUL byte in column 1 ('name'), 'B\\x00b': the line is damaged; not sent"
    )
    assert_resumes_everywhere(path, fmt)
    report = check_file(path, None, CheckOptions())
    assert [(g.code, g.count) for g in report.groups if g.problem] == [("invalid-nul", 1)]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(200), "this is a PNG image, not CSV text"),
        (b"%PDF-1.7\n" + bytes(200), "this is a PDF document"),
        (bytes(range(256)) * 40, "looks like a binary file"),
        (b"PK\x03\x04" + b"\x14\x00" * 10 + b"notes.txt" + bytes(80), "a zip archive, not CSV"),
    ],
)
def test_binary_files_are_still_refused_whole(tmp_path: Path, data: bytes, says: str) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    with pytest.raises(InputError, match=says) as info:
        sniff_format(path)
    assert str(info.value).startswith(f"{path}: ")


def test_a_workbook_cut_short_in_its_first_part_is_a_damaged_xlsx(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    for n in range(200):
        book.active.append([f"name {n}", 13800000000 + n])
    whole = tmp_path / "whole.xlsx"
    book.save(whole)
    data = whole.read_bytes()
    first_name_end = data.index(b".xml") + 4  # the first part's name, then its data
    for cut in (first_name_end + 10, first_name_end + 200):
        path = tmp_path / f"cut{cut}.xlsx"
        path.write_bytes(data[:cut])
        with pytest.raises(InputError) as info:
            sniff_format(path)
        assert "damaged .xlsx" in str(info.value) or "workbook is damaged" in str(info.value)
        assert "binary" not in str(info.value)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_chinese_utf16_without_a_bom_is_text_not_binary(tmp_path: Path, encoding: str) -> None:
    # Few Latin characters: the NUL bytes are only those of commas and line breaks.
    path = tmp_path / "in.csv"
    path.write_bytes(("姓名,城市\n" + "王芳,北京\n李娜,上海\n" * 20).encode(encoding))
    fmt = sniff_format(path)
    assert fmt.encoding == encoding
    assert read(path)[1].cells == ("李娜", "上海")


def test_narrow_text_with_a_nul_after_a_line_break_stays_narrow(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"name,phone1\n" + b"Ann,13800000001\n" * 20 + b"\x00Bob,1\n")
    assert sniff_format(path).encoding == "utf-8"
    assert [row.reason for row in invalid(read(path))] == [InvalidReason.NUL]
