"""The streaming CSV reader, on real files written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkimport.errors import ConfigError, InputError, RecordError
from bulkimport.jobs.pipeline import reader_options
from bulkimport.protocol import decode_record, encode_record
from bulkimport.reader import (
    DEFAULT_MAX_RECORD_LINES,
    FileFormat,
    ReaderOptions,
    normalize_delimiter,
    read_batches,
    sniff_format,
)
from bulkimport.reader import format as reader_format
from bulkimport.reader.values import text_formula
from bulkimport.rows import NewRow, Repair
from bulkimport.settings import ReadSettings, resolve
from bulkimport.states import Allow, InvalidReason, RepairKind, RowState
from tests.reading import (
    LINE_BREAK,
    assert_every_line_accounted_for,
    assert_resumes_everywhere,
    blank_lines,
    repairs,
)

HEADER = "name,phone1,city,memo"


def write(tmp_path: Path, data: bytes | str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read_all(
    path: Path, options: ReaderOptions | None = None, batch_rows: int = 1000
) -> tuple[FileFormat, list[NewRow]]:
    fmt = sniff_format(path, options)
    rows = [row for batch in read_batches(path, fmt, batch_rows=batch_rows) for row in batch.rows]
    return fmt, rows


def read_counted(
    path: Path, options: ReaderOptions | None = None, batch_rows: int = 1000
) -> tuple[FileFormat, list[NewRow], int]:
    """Like ``read_all``, with the number of blank lines the batches counted."""
    fmt = sniff_format(path, options)
    batches = list(read_batches(path, fmt, batch_rows=batch_rows))
    return fmt, [row for batch in batches for row in batch.rows], blank_lines(batches)


def records(rows: list[NewRow]) -> list[str | None]:
    return [row.record for row in rows]


def test_reads_utf8_records_with_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\nAlice,13800000001,Paris,hi\n李娜,13900000002,北京,\n")
    fmt, rows = read_all(path)
    assert (fmt.encoding, fmt.encoding_confidence, fmt.delimiter) == ("utf-8", 1.0, ",")
    assert fmt.header == ("name", "phone1", "city", "memo")
    assert (fmt.data_line, fmt.data_offset) == (2, len(HEADER) + 1)
    assert rows == [
        NewRow(
            2,
            RowState.PENDING,
            "name=Alice||phone1=13800000001||city=Paris||memo=hi",
            ("Alice", "13800000001", "Paris", "hi"),
        ),
        # Empty cells are left out of the record.
        NewRow(
            3,
            RowState.PENDING,
            "name=李娜||phone1=13900000002||city=北京",
            ("李娜", "13900000002", "北京", ""),
        ),
    ]


def test_keep_empty_sends_empty_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,c\n1,,3\n,,\n4,5,6\n")
    _, rows, blank = read_counted(path, ReaderOptions(keep_empty=True))
    assert records(rows) == ["a=1||b=||c=3", "a=4||b=5||c=6"]
    assert blank == 1


def test_last_line_without_newline_is_a_record_and_final_newline_is_not(tmp_path: Path) -> None:
    _, with_newline = read_all(write(tmp_path, "a,b\n1,2\n3,4\n", "x.csv"))
    _, without = read_all(write(tmp_path, "a,b\n1,2\n3,4", "y.csv"))
    assert records(with_newline) == records(without) == ["a=1||b=2", "a=3||b=4"]


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", b"\xef\xbb\xbf"),
        ("utf-16-le", b"\xff\xfe"),
        ("utf-16-be", b"\xfe\xff"),
        ("utf-32-le", b"\xff\xfe\x00\x00"),
        ("utf-32-be", b"\x00\x00\xfe\xff"),
    ],
)
def test_bom_files(tmp_path: Path, encoding: str, bom: bytes) -> None:
    text = 'name,phone1,memo\r\n王芳,13800000001,"多行\r\n备注 😀"\r\nJosé,13800000002,ok\r\n'
    path = write(tmp_path, bom + text.encode(encoding))
    fmt, rows = read_all(path, batch_rows=1)
    assert fmt.encoding == encoding
    assert fmt.header[0] == "name"  # no BOM in the first name
    assert [row.line for row in rows] == [2, 4]
    assert records(rows) == [
        "name=王芳||phone1=13800000001||memo=多行\r\n备注 😀",
        "name=José||phone1=13800000002||memo=ok",
    ]
    assert_resumes_everywhere(path, fmt)


def test_utf16_without_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "name,phone1\nAnna,13800000001\n".encode("utf-16-le"))
    fmt, rows = read_all(path)
    assert fmt.encoding == "utf-16-le"
    assert records(rows) == ["name=Anna||phone1=13800000001"]


CHINESE = (
    "姓名,电话,城市,地址\n"
    '张伟,13800138000,北京,"北京市朝阳区建国路88号,SOHO现代城"\n'
    "王芳,13912345678,上海,上海市浦东新区世纪大道100号\n"
    "李娜,15011112222,广州,广州市天河区体育西路\n"
    "刘洋,18622223333,深圳,深圳市南山区科技园\n"
)


@pytest.mark.parametrize("encoding", ["gb18030", "gbk"])
def test_gb18030_and_gbk_are_read_as_gb18030(tmp_path: Path, encoding: str) -> None:
    path = write(tmp_path, CHINESE.encode(encoding))
    fmt, rows = read_all(path)
    assert fmt.encoding == "gb18030"
    assert 0 < fmt.encoding_confidence <= 1
    assert fmt.header == ("姓名", "电话", "城市", "地址")
    assert (
        rows[0].record
        == "姓名=张伟||电话=13800138000||城市=北京||地址=北京市朝阳区建国路88号,SOHO现代城"
    )
    assert all(row.state is RowState.PENDING for row in rows)


def test_big5(tmp_path: Path) -> None:
    text = "姓名,電話,地址\n陳大文,0912345678,臺北市信義區松高路\n林美玲,0922333444,高雄市前鎮區\n"
    fmt, rows = read_all(write(tmp_path, text.encode("big5")))
    assert fmt.encoding == "big5"
    assert rows[0].cells == ("陳大文", "0912345678", "臺北市信義區松高路")


def test_cp1252(tmp_path: Path) -> None:
    text = "name,city,price\nJosé,Zürich,€ 12\nFrançoise,Besançon,“quoted”\n"
    fmt, rows = read_all(write(tmp_path, text.encode("cp1252")))
    assert fmt.encoding == "cp1252"
    assert rows[1].cells == ("Françoise", "Besançon", "“quoted”")


def test_encoding_option_overrides_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "name\nJosé\n".encode("cp1252"))
    fmt, rows = read_all(path, ReaderOptions(encoding="latin-1"))
    assert (fmt.encoding, fmt.encoding_confidence) == ("cp1252", 1.0)
    assert rows[0].cells == ("José",)
    with pytest.raises(ConfigError, match="unknown encoding"):
        sniff_format(path, ReaderOptions(encoding="klingon"))


def test_undecodable_bytes_make_the_row_invalid_but_reported(tmp_path: Path) -> None:
    # A truncated multibyte sequence in the middle of the file, past what detection saw.
    good = "name,phone1\n" + "".join(f"张伟{i},1380000{i:04d}\n" for i in range(3))
    path = write(tmp_path, good.encode() + b"\xe5\xbc,13800009999\n" + "李,1\n".encode())
    _, rows = read_all(path, ReaderOptions(encoding="utf-8"))
    bad = rows[3]
    assert (bad.line, bad.state, bad.record) == (5, RowState.INVALID, None)
    assert bad.message is not None and "undecodable bytes (not utf-8)" in bad.message
    assert bad.cells == ("\ufffd", "13800009999")
    assert rows[4].state is RowState.PENDING


@pytest.mark.parametrize(
    ("delimiter", "option"), [(";", None), ("\t", None), ("|", None), ("\t", "tab"), ("\t", "\\t")]
)
def test_delimiters(tmp_path: Path, delimiter: str, option: str | None) -> None:
    # The values hold the other candidate delimiters: the sniffer must not be misled.
    other = "".join(d for d in ",;|\t" if d != delimiter)
    rows_in = [["name", "phone1", "memo"], ["A" + other, "1", other + "x"], ["C", "2", "z"]]
    text = "".join(delimiter.join(cells) + "\n" for cells in rows_in)
    options = ReaderOptions(delimiter=option, keep_spaces=True)
    fmt, rows = read_all(write(tmp_path, text), options)
    assert fmt.delimiter == delimiter
    assert [row.cells for row in rows] == [tuple(cells) for cells in rows_in[1:]]


def test_delimiter_option_validation() -> None:
    assert normalize_delimiter("TAB") == "\t"
    with pytest.raises(ConfigError):
        normalize_delimiter(",,")


def test_quoted_delimiters_quotes_and_line_breaks(tmp_path: Path) -> None:
    text = 'name,memo,city\n"Smith, J","He said ""hi""\nand left",Paris\nB,"x\r\ny",Lyon\n'
    _, rows = read_all(write(tmp_path, text))
    assert rows[0].cells == ("Smith, J", 'He said "hi"\nand left', "Paris")
    assert [row.line for row in rows] == [2, 4]


@pytest.mark.parametrize("newline", ["\r\n", "\r", "\n"])
def test_line_endings(tmp_path: Path, newline: str) -> None:
    text = newline.join(["a,b", "1,2", '"x\ny",3', "", "5,6"]) + newline
    fmt, rows, blank = read_counted(write(tmp_path, text), batch_rows=1)
    assert [row.line for row in rows] == [2, 3, 6]
    assert [row.message for row in rows] == [None, None, None]
    assert blank == 1
    assert rows[1].cells == ("x\ny", "3")
    assert_resumes_everywhere(write(tmp_path, text), fmt)


def test_spaces_around_values_are_trimmed(tmp_path: Path) -> None:
    text = (
        "name,phone1,city,memo\n"
        "甲, 13912000099 ,\u00a0北京\u3000,\t a  b \t\n"  # every value: the fast path
        "乙,13912000098 , ,\n"  # empty values: the general path
        '" 丙 ","\n13912000097\n",上海,x\n'
    )
    path = write(tmp_path, text)
    _, rows = read_all(path)
    assert records(rows) == [
        "name=甲||phone1=13912000099||city=北京||memo=a  b",
        "name=乙||phone1=13912000098",
        "name=丙||phone1=13912000097||city=上海||memo=x",
    ]
    assert rows[0].cells == ("甲", "13912000099", "北京", "a  b")
    fmt, kept = read_all(path, ReaderOptions(keep_spaces=True))
    assert fmt.keep_spaces
    assert records(kept)[:2] == [
        "name=甲||phone1= 13912000099 ||city=\u00a0北京\u3000||memo=\t a  b \t",
        "name=乙||phone1=13912000098 ||city= ",
    ]
    assert FileFormat.from_json(fmt.to_json()) == fmt


def test_ragged_lines(tmp_path: Path) -> None:
    text = "a,b,c\n1,2\n1,2,3,4\n1,2,3,,\n"
    _, rows = read_all(write(tmp_path, text))
    assert [row.message for row in rows] == [
        "2 cells, the header has 3",
        "4 cells, the header has 3",
        None,  # trailing empty cells, as Excel writes them, are fine
    ]
    assert rows[2].cells == ("1", "2", "3", "", "")
    assert rows[2].record == "a=1||b=2||c=3"


def test_pipes_and_equals_in_values(tmp_path: Path) -> None:
    text = "a,b\nx||y,1\nk=v,&password=x\nend|,2\n1,a|b\n"
    _, rows = read_all(write(tmp_path, text))
    assert rows[0].message == "the value of 'a' contains '||'"
    assert rows[1].record == "a=k=v||b=&password=x"
    assert decode_record(rows[1].record) == [("a", "k=v"), ("b", "&password=x")]
    assert rows[2].message == "the value of 'a' ends with '|'"
    assert rows[3].record == "a=1||b=a|b"


def test_blank_lines_and_rows_of_bare_delimiters_are_counted_not_rows(tmp_path: Path) -> None:
    # Blank lines, Excel's empty rows (delimiters only), cells of spaces only (a no-break
    # space, an ideographic space, a tab), and the empty lines at the end of the file.
    text = "a,b,c\n1,2,3\n\n,,\n , \t,\u3000\n\u00a0\n4,5,6\n,,,,,,\n\n\r\n"
    path = write(tmp_path, text)
    fmt, rows, blank = read_counted(path, batch_rows=1)
    assert [(row.line, row.record) for row in rows] == [(2, "a=1||b=2||c=3"), (7, "a=4||b=5||c=6")]
    assert blank == 7
    assert_every_line_accounted_for(path, fmt)
    assert_resumes_everywhere(path, fmt)


def test_a_line_of_excels_empty_text_is_blank(tmp_path: Path) -> None:
    # Some exports write every empty cell as ="" so that Excel keeps the column as text: a
    # line of them is an empty line, not a row, and the others keep their values.
    text = 'a,b,c\n="",="",""\n="1",="",3\n=" ",,\n'
    path = write(tmp_path, text)
    fmt, rows, blank = read_counted(path)
    assert [(row.line, row.state, row.record) for row in rows] == [
        (3, RowState.PENDING, "a=1||c=3")
    ]
    assert blank == 2
    assert_every_line_accounted_for(path, fmt)


def test_a_line_with_values_only_in_dropped_columns_has_no_values(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,note\n1,2,x\n,,only a note\n")
    _, rows, blank = read_counted(path, ReaderOptions(rename=(("note", None),)))
    assert [(row.line, row.reason) for row in rows] == [(2, None), (3, InvalidReason.NO_VALUES)]
    assert rows[1].message is not None and "dropped" in rows[1].message
    assert blank == 0


def test_skip_rows_and_blank_lines_before_the_header(tmp_path: Path) -> None:
    text = "Lead export\nJune 2024\n\n  \nname,phone1\nA,1\n"
    fmt, rows = read_all(write(tmp_path, text), ReaderOptions(skip_rows=2))
    assert fmt.header == ("name", "phone1")
    assert (fmt.data_line, rows[0].line) == (6, 6)
    with pytest.raises(InputError, match="fewer than --skip-rows 9"):
        sniff_format(tmp_path / "in.csv", ReaderOptions(skip_rows=9))


def test_map_drop_and_set(tmp_path: Path) -> None:
    path = write(tmp_path, "Name,Mobile,Notes,Extra\nA,1,n,x\n")
    options = ReaderOptions(
        rename=(("Name", "customername"), ("Mobile", "phone1"), ("Extra", None), ("Notes", "")),
        constants=(("priority", "5"), ("memo", "from 100% import")),
    )
    fmt, rows = read_all(path, options)
    assert fmt.fields == ("customername", "phone1", None, None)
    assert rows[0].record == "customername=A||phone1=1||priority=5||memo=from 100% import"
    assert rows[0].cells == ("A", "1", "n", "x")
    assert FileFormat.from_json(fmt.to_json()) == fmt


def test_a_blank_line_is_not_a_record_even_with_constants(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n,\n1,\n")
    _, rows, blank = read_counted(path, ReaderOptions(constants=(("c", "1"),)))
    assert [(row.line, row.record) for row in rows] == [(3, "a=1||c=1")]
    assert blank == 1


def test_mapping_a_missing_column_names_it_and_lists_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "name,phone1\nA,1\n")
    with pytest.raises(InputError, match=r"'Mobile'.*its columns are: name, phone1") as info:
        sniff_format(path, ReaderOptions(rename=(("Mobile", "phone1"),)))
    assert str(path) in str(info.value)


def test_constant_clashing_with_a_column_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name,phone1\nA,1\n")
    with pytest.raises(InputError, match="'name' is set with --set"):
        sniff_format(path, ReaderOptions(constants=(("name", "x"),)))
    with pytest.raises(ConfigError, match="contains '='"):
        sniff_format(path, ReaderOptions(constants=(("a=b", "x"),)))


def test_report_columns_are_dropped_so_a_report_reads_back(tmp_path: Path) -> None:
    text = "name,phone1,_line,_state,_code,_message\nA,1,7,rejected,BackMsg_76,missing phone1\n"
    fmt, rows = read_all(write(tmp_path, text))
    assert fmt.fields == ("name", "phone1", None, None, None, None)
    assert rows[0].record == "name=A||phone1=1"


def test_header_names_are_trimmed_and_trailing_empty_columns_ignored(tmp_path: Path) -> None:
    fmt, rows = read_all(write(tmp_path, " name , phone1,,\nA,1,,\n"))
    assert fmt.header == ("name", "phone1")
    assert rows[0].record == "name=A||phone1=1"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("a,,b", "column 2 has no name"),
        ("a,b,a", "field 'a' comes from columns 1 and 3"),
        ("a,b=c", "contains '='"),
    ],
)
def test_bad_headers(tmp_path: Path, header: str, message: str) -> None:
    path = write(tmp_path, f"{header}\n1,2,3\n")
    with pytest.raises(InputError, match=message) as info:
        sniff_format(path)
    assert str(info.value).startswith(f"{path}: line 1:")


def test_duplicate_after_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "name,fullname\nA,B\n")
    with pytest.raises(InputError, match="field 'name' comes from columns 1 and 2"):
        sniff_format(path, ReaderOptions(rename=(("fullname", "name"),)))


def test_only_a_header_gives_no_rows(tmp_path: Path) -> None:
    _, rows = read_all(write(tmp_path, "name,phone1\n"))
    assert rows == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\n\n  \r\n", "no header"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "a PNG image"),
        (bytes(range(32)) * 64, "binary file"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(InputError, match=message) as info:
        sniff_format(path)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file") as info:
        sniff_format(tmp_path / "nope.csv")
    assert "nope.csv" in str(info.value)
    with pytest.raises(InputError, match="is a directory"):
        sniff_format(tmp_path)


def test_unreadable_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests may run as root, who can read a file with mode 0, so the refusal is simulated.
    path = write(tmp_path, "a\n1\n")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(reader_format, "open", refuse, raising=False)
    with pytest.raises(InputError, match="cannot open the file \\(Permission denied\\)"):
        sniff_format(path)


def test_an_unclosed_quote_at_the_end_costs_its_own_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'a,b\n1,2\n"3,4\n5,6\n')
    fmt, rows = read_all(path)
    assert [(row.line, row.state) for row in rows] == [
        (2, RowState.PENDING),
        (3, RowState.INVALID),
        (4, RowState.PENDING),
    ]
    assert rows[1].reason is InvalidReason.UNCLOSED_QUOTE
    assert rows[1].message is not None and rows[1].message.startswith("unclosed quote on line 3")
    assert rows[1].cells == ("3,4",)
    assert rows[2].record == "a=5||b=6"
    assert_resumes_everywhere(path, fmt)


def leads(count: int) -> list[str]:
    return [f"Lead {i},138{i:08d},City {i % 7},memo {i}" for i in range(count)]


@pytest.mark.parametrize("quoted_elsewhere", [False, True])
def test_an_unclosed_quote_costs_its_own_line_and_never_the_lines_after_it(
    tmp_path: Path, quoted_elsewhere: bool
) -> None:
    lines = [HEADER, *leads(3000)]
    lines[2] = 'Lead 1,13800000001,"City 1,memo 1'  # line 3: a quote that never closes
    if quoted_elsewhere:
        # Quoted values further down close and reopen the stray field.
        for i in range(10, 3000, 7):
            lines[i] = f'"Smith, J {i}",138{i:08d},City,"memo, {i}"'
    path = write(tmp_path, "\n".join(lines) + "\n")
    fmt, rows = read_all(path, batch_rows=500)
    assert [row.line for row in rows] == list(range(2, 3002))
    invalid = [row for row in rows if row.state is RowState.INVALID]
    assert [(row.line, row.reason) for row in invalid] == [(3, InvalidReason.UNCLOSED_QUOTE)]
    message = invalid[0].message or ""
    assert message.startswith("unclosed quote on line 3: ") and "\n" not in message
    assert rows[2].record == "name=Lead 2||phone1=13800000002||city=City 2||memo=memo 2"
    assert_every_line_accounted_for(path, fmt)


def test_a_quoted_value_may_span_lines_up_to_the_bound(tmp_path: Path) -> None:
    memo = "\n".join(f"note line {i}" for i in range(5))
    path = write(tmp_path, f'{HEADER}\nA,1,X,"{memo}"\nB,2,Y,z\n')
    fmt, rows = read_all(path)
    assert [(row.line, row.state) for row in rows] == [(2, RowState.PENDING), (7, RowState.PENDING)]
    assert rows[0].cells[3] == memo
    fmt, rows = read_all(path, ReaderOptions(max_record_lines=4))
    assert fmt.max_record_lines == 4
    assert (rows[0].line, rows[0].reason) == (2, InvalidReason.UNCLOSED_QUOTE)
    assert "more than 4 lines" in (rows[0].message or "")
    assert [row.line for row in rows] == [2, 3, 4, 5, 6, 7]
    assert rows[-1].record == "name=B||phone1=2||city=Y||memo=z"
    assert_every_line_accounted_for(path, fmt)
    assert_resumes_everywhere(path, fmt)
    with pytest.raises(ConfigError, match="--max-record-lines"):
        sniff_format(path, ReaderOptions(max_record_lines=0))


def test_a_record_whose_quote_swallows_a_line_of_another_shape_is_cut(tmp_path: Path) -> None:
    # The stray quote of line 3 is closed by the quote of line 4: one record of 5 cells.
    text = f'{HEADER}\nA,1,X,m\nB,2,"Y,m\n"C",3,Z,n\nD,4,W,o\n'
    path = write(tmp_path, text)
    fmt, rows = read_all(path)
    assert [(row.line, row.reason) for row in rows] == [
        (2, None),
        (3, InvalidReason.UNCLOSED_QUOTE),
        (4, None),
        (5, None),
    ]
    assert "runs to line 4" in (rows[1].message or "")
    assert rows[2].record == "name=C||phone1=3||city=Z||memo=n"
    assert_resumes_everywhere(path, fmt)


def test_a_single_column_file_with_an_unclosed_quote(tmp_path: Path) -> None:
    path = write(tmp_path, 'phone1\n1\n"2\n3\n')
    fmt, rows = read_all(path)
    assert [(row.line, row.state, row.record) for row in rows] == [
        (2, RowState.PENDING, "phone1=1"),
        (3, RowState.INVALID, None),
        (4, RowState.PENDING, "phone1=3"),
    ]
    assert_resumes_everywhere(path, fmt)


def test_a_legitimate_multiline_value_at_the_end_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'a,b\n1,"x\ny"')
    _, rows = read_all(path)
    assert [(row.line, row.record) for row in rows] == [(2, "a=1||b=x\ny")]


def test_a_value_over_the_field_limit_costs_its_own_line(tmp_path: Path) -> None:
    big = "x" * 200_000
    long_lines = "".join("y" * 20_000 + "\n" for _ in range(10))
    path = write(tmp_path, f'a,b\n1,{big}\n2,y\n3,"x\n{long_lines}4,z\n')
    fmt, rows = read_all(path)
    assert [(row.line, row.reason) for row in rows] == [
        (2, InvalidReason.TOO_LONG),  # a value longer than a cell holds
        (3, None),
        (4, InvalidReason.UNCLOSED_QUOTE),
        *((line, InvalidReason.CELLS) for line in range(5, 15)),
        (15, None),
    ]
    assert "the quoted value runs past 131,072 characters" in (rows[2].message or "")
    assert_resumes_everywhere(path, fmt)


# --- resumption ------------------------------------------------------------------------------


def test_resumes_from_every_batch_boundary(tmp_path: Path) -> None:
    text = (
        "\ufeffname;phone1;memo\r\n"
        + "".join(f'张{i};138{i:08d};"line\r\nbreak {i}"\r\n' for i in range(5))
        + "\r\nbad;row\rx;1;2\r\n;;\r\n"
        + "".join(f"李{i};139{i:08d};m\n" for i in range(5))
        + '王;"1;2\n'  # an unclosed quote, then more records
        + "".join(f"赵{i};137{i:08d};m\n" for i in range(5))
        + '钱;"2;"3\n\n'  # and one at the end of the file
    )
    path = write(tmp_path, text.encode("gb18030"))
    fmt = sniff_format(path, ReaderOptions(encoding="gb18030", max_record_lines=3))
    assert_resumes_everywhere(path, fmt)
    assert_every_line_accounted_for(path, fmt)


def test_batches_end_on_record_boundaries(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n" + "".join(f'{i},"x\ny"\n' for i in range(10)))
    fmt = sniff_format(path)
    batches = list(read_batches(path, fmt, batch_rows=3))
    assert [len(batch.rows) for batch in batches] == [3, 3, 3, 1]
    assert [batch.next_line for batch in batches] == [8, 14, 20, 22]
    data = path.read_bytes()
    assert all(data[: batch.end_offset].endswith(b'y"\n') for batch in batches)


def test_small_blocks_split_lines_and_crlf_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Blocks of a few bytes put every block boundary inside a line, a character or a CRLF.
    monkeypatch.setattr("bulkimport.reader.lines.BLOCK_BYTES", 3)
    text = '名,电话\r\n张伟,1\r\n"多\r\n行",2\r王,3'
    for encoding in ("utf-8", "gb18030", "utf-16-le", "utf-32-be"):
        path = write(tmp_path, text.encode(encoding), f"{encoding}.csv")
        fmt, rows = read_all(path, ReaderOptions(encoding=encoding))
        assert [row.line for row in rows] == [2, 3, 5], encoding
        assert rows[1].cells == ("多\r\n行", "2"), encoding
        assert_resumes_everywhere(path, fmt)


# --- properties ------------------------------------------------------------------------------


def csv_line(cells: list[str]) -> str:
    """One RFC 4180 line (the stdlib writer of Python 3.11 leaves a lone CR unquoted)."""
    return ",".join(
        '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\r\n') else cell
        for cell in cells
    )


def sent_as(value: str) -> str:
    """A trimmed cell as the reader sends it: the text inside Excel's text formula."""
    inner = text_formula(value)
    return value if inner is None else inner.strip()


CELL = st.text(alphabet=st.sampled_from('ab張 ,;"\r\n|=&é'), max_size=6)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    table=st.lists(st.lists(CELL, min_size=3, max_size=3), max_size=6),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "utf-16"]),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_any_table_reads_back(
    tmp_path: Path, table: list[list[str]], encoding: str, newline: str
) -> None:
    text = "".join(csv_line(cells) + newline for cells in [["c0", "c1", "c2"], *table])
    path = write(tmp_path, text.encode(encoding))
    options = ReaderOptions(encoding=encoding, delimiter=",")
    fmt, rows, blank = read_counted(path, options, batch_rows=2)
    trimmed = [tuple(cell.strip() for cell in cells) for cells in table]
    # A record of empty or blank cells (or of Excel's empty text, ="") is no row: its lines
    # are counted as blank.
    expected_cells = [cells for cells in trimmed if any(map(sent_as, cells))]
    assert blank == sum(
        1 + len(LINE_BREAK.findall(csv_line(cells)))
        for cells, clean in zip(table, trimmed, strict=True)
        if not any(map(sent_as, clean))
    )
    assert len(rows) == len(expected_cells)
    for row, cells in zip(rows, expected_cells, strict=True):
        # Excel's text formula (="…") is sent as the text inside it (tests/test_values.py).
        sent = tuple(sent_as(value) for value in cells)
        pairs = [(name, value) for name, value in zip(fmt.fields, sent, strict=True) if value]
        try:
            expected = encode_record([(str(name), value) for name, value in pairs])
        except RecordError as exc:
            # Kept as they were read: the report gives the line back.
            assert (row.state, row.message, row.cells) == (RowState.INVALID, str(exc), cells)
        else:
            # Kept as sent; the formula taken out is in the row's repairs.
            assert (row.state, row.record, row.cells) == (RowState.PENDING, expected, sent)
    assert_resumes_everywhere(path, fmt)
    assert_every_line_accounted_for(path, fmt)


SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_samples_hold_the_planted_problems() -> None:
    fmt, rows = read_all(SAMPLES / "leads.csv")
    assert fmt.header == (
        "name",
        "phone1",
        "phone2",
        "email",
        "company",
        "city",
        "address",
        "priority",
        "memo",
    )
    assert len(rows) == 300
    assert [row.line for row in rows if row.state is RowState.INVALID] == [103, 123, 226]
    assert 163 not in [row.line for row in rows]  # the blank line
    no_phone = [row.line for row in rows if row.record and "phone1=" not in row.record]
    assert no_phone == [73, 185, 294]
    gbk, gbk_rows = read_all(SAMPLES / "leads-gbk.csv")
    assert (gbk.encoding, len(gbk_rows)) == ("gb18030", 50)
    assert all(row.state is RowState.PENDING for row in gbk_rows)


def test_utf8_with_one_cut_character_is_still_utf8(tmp_path: Path) -> None:
    lines = ["name,city", *(f"王{i},北京" for i in range(30))]
    data = "\n".join(lines).encode() + b"\n"
    data = data.replace("王7,".encode(), "王7".encode() + "三".encode()[:2] + b",")
    fmt, rows = read_all(write(tmp_path, data))
    assert fmt.encoding == "utf-8"
    assert 0.9 < fmt.encoding_confidence < 1.0
    bad = [row for row in rows if row.state is RowState.INVALID]
    assert [row.line for row in bad] == [9]
    assert "undecodable" in (bad[0].message or "")
    assert rows[0].record == "name=王0||city=北京"


def test_legacy_double_byte_text_is_not_taken_for_broken_utf8(tmp_path: Path) -> None:
    lines = ["name,city", *(f"王{i},北京市朝阳区" for i in range(30))]
    fmt, rows = read_all(write(tmp_path, ("\n".join(lines) + "\n").encode("gb18030")))
    assert fmt.encoding == "gb18030"
    assert rows[3].record == "name=王3||city=北京市朝阳区"


# --- a forced encoding that the bytes contradict ------------------------------------------


@pytest.mark.parametrize(
    ("data", "forced", "what"),
    [
        ("name,phone1\n张三,13800000001\n李四,13800000002\n".encode(), "gb18030", "UTF-8"),
        ("name,phone1\n张三,13800000001\n".encode(), "big5", "UTF-8"),
        ("name,phone1\nJosé,13800000001\n".encode(), "cp1252", "UTF-8"),
        (b"\xef\xbb\xbf" + "name,phone1\n张三,1\n".encode(), "gbk", "UTF-8 byte-order mark"),
        (b"\xef\xbb\xbfname,phone1\nAnn,1\n", "latin-1", "UTF-8 byte-order mark"),
        (b"\xff\xfe" + "name,phone1\nAnn,1\n".encode("utf-16-le"), "utf-8", "UTF-16"),
    ],
)
def test_a_forced_encoding_the_bytes_contradict_is_refused(
    tmp_path: Path, data: bytes, forced: str, what: str
) -> None:
    path = write(tmp_path, data)
    with pytest.raises(InputError) as info:
        sniff_format(path, ReaderOptions(encoding=forced))
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    assert what in message and forced in message
    assert "drop --encoding" in message and "encoding" in message


@pytest.mark.parametrize(
    ("data", "forced", "expected"),
    [
        # Nothing but ASCII: every ASCII-compatible encoding reads it alike.
        (b"name,phone1\nAnn,13800000001\n", "gb18030", "gb18030"),
        (CHINESE.encode("gbk"), "gbk", "gb18030"),
        ("name,phone1\n张三,1\n".encode(), "utf-8", "utf-8"),
        ("name,phone1\n张三,1\n".encode("utf-8-sig"), "utf-8-sig", "utf-8"),
        ("name,phone1\nAnn,1\n".encode("utf-16"), "utf-16", "utf-16-le"),
    ],
)
def test_a_forced_encoding_the_bytes_allow_is_used(
    tmp_path: Path, data: bytes, forced: str, expected: str
) -> None:
    fmt = sniff_format(write(tmp_path, data), ReaderOptions(encoding=forced))
    assert fmt.encoding == expected


# --- columns by position, title lines above the header -------------------------------------


def test_map_names_a_column_by_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, "name,phone,phone,,memo\nA,1,2,x,m\n")
    with pytest.raises(InputError, match=r"--map '#3=FIELD'"):
        sniff_format(path, ReaderOptions(rename=(("#4", "note"),)))
    with pytest.raises(InputError, match=r"column 4 has no name; name it with --map '#4=FIELD'"):
        sniff_format(path, ReaderOptions(rename=(("#3", "phone2"),)))
    options = ReaderOptions(rename=(("phone", "phone1"), ("#3", "phone2"), ("#4", "")))
    fmt, rows = read_all(path, options)
    assert fmt.fields == ("name", "phone1", "phone2", None, "memo")
    assert rows[0].record == "name=A||phone1=1||phone2=2||memo=m"
    assert FileFormat.from_json(fmt.to_json()) == fmt


def test_map_by_position_names_an_unnamed_column_at_the_right(tmp_path: Path) -> None:
    path = write(tmp_path, "name,phone1,\nA,1,note\n")
    fmt, rows = read_all(path, ReaderOptions(rename=(("#3", "memo"),)))
    assert fmt.header == ("name", "phone1", "")
    assert rows[0].record == "name=A||phone1=1||memo=note"


@pytest.mark.parametrize("key", ["#0", "#4", "#99"])
def test_map_by_a_position_the_file_does_not_have(tmp_path: Path, key: str) -> None:
    path = write(tmp_path, "name,phone1,city\nA,1,X\n")
    with pytest.raises(InputError, match=rf"--map '{key}=x': the file has 3 columns, #1 to #3"):
        sniff_format(path, ReaderOptions(rename=((key, "x"),)))


def test_a_name_that_cannot_be_mapped_by_name_is_advised_by_position(tmp_path: Path) -> None:
    path = write(tmp_path, "name,a=b\nA,1\n")
    with pytest.raises(InputError, match=r"contains '='.*--map '#2=FIELD'"):
        sniff_format(path)
    fmt = sniff_format(path, ReaderOptions(rename=(("#2", "phone1"),)))
    assert fmt.fields == ("name", "phone1")


EXCEL_TITLE = (
    "Customer list,,,,\n"
    ",,,,\n"
    "name,phone1,city,company,memo\n"
    "A,13800000001,Paris,Acme,\n"
    "B,13800000002,Lyon,,x\n"
    "C,13800000003,Nice,Globex,y\n"
)
HAND_TITLE = (
    "Leads export\n"
    "June 2024, all regions\n"
    "\n"
    "name;phone1;city;company\n"
    "A;13800000001;Paris;Acme\n"
    "B;13800000002;Lyon;Globex\n"
)


@pytest.mark.parametrize(
    ("text", "skip_rows", "advice", "delimiter"),
    [
        (EXCEL_TITLE, 0, "--skip-rows 2", ","),
        (HAND_TITLE, 0, "--skip-rows 3", ";"),
        (HAND_TITLE, 1, "--skip-rows 3", ";"),
        ("sep=;\nname;phone1;city\nA;1;X\nB;2;Y\n", 0, "--skip-rows 1", ";"),
    ],
)
def test_title_lines_above_the_header_are_refused_with_the_skip_rows_to_give(
    tmp_path: Path, text: str, skip_rows: int, advice: str, delimiter: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        sniff_format(path, ReaderOptions(skip_rows=skip_rows))
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert message.endswith(f"add {advice}")
    skip = int(advice.rsplit(" ", 1)[1])
    fmt, rows = read_all(path, ReaderOptions(skip_rows=skip))
    assert fmt.delimiter == delimiter
    assert fmt.header[:2] == ("name", "phone1")
    assert [row.state for row in rows] == [RowState.PENDING] * len(rows)


@pytest.mark.parametrize(
    "text",
    [
        # Sparse data under a full header, a header with few names and rows as wide.
        "name,phone1,phone2,email,city,memo\nA,1,,,,\nB,2,,,,\nC,,,,,x\n",
        "name,phone1\nA,1\nB,\n",
        "phone1\n1\n2\n",
        "name,phone1,city\n",
        # Blank lines and rows of bare delimiters above the header are not titles.
        "\n,,\n  \nname,phone1,city\nA,1,X\nB,2,Y\n",
    ],
)
def test_files_without_title_lines_are_read(tmp_path: Path, text: str) -> None:
    fmt = sniff_format(write(tmp_path, text))
    assert fmt.header[0] in ("name", "phone1")


# --- numbers Excel damaged in phone fields ---------------------------------------------------

PHONES = "name,phone1,phone2,Mobile,contact,account\n"
DAMAGED = (
    PHONES
    + "A,13800138001.0,'13800138002,13800138003,x,4.5E+17\n"  # repaired; account as it is
    + "B,1.38E+10,,,,\n"  # digits lost
    + "C,13800138004,1.39E+10,,,\n"  # digits lost, in another phone field
    + "D,13800138005,,'0755-1234567,,\n"  # a field named like a phone
    + "E,13800138006,,,13800138007.00,\n"  # the --phone-field
    + "F,+8613800138008,,,,\n"  # fine as it is
)


def test_phone_numbers_excel_damaged_are_repaired_or_refused(tmp_path: Path) -> None:
    path = write(tmp_path, DAMAGED)
    # contact 'x' is no phone number: sent, as this campaign asks (the rule: test_values).
    fmt = sniff_format(path, ReaderOptions(phone_field="contact", allow=(Allow.NOT_PHONES,)))
    assert fmt.phone_fields == ("phone1", "phone2", "Mobile", "contact")
    assert fmt.repair and FileFormat.from_json(fmt.to_json()) == fmt
    batches = list(read_batches(path, fmt, batch_rows=2))
    rows = [row for batch in batches for row in batch.rows]
    assert rows[0].record == (
        "name=A||phone1=13800138001||phone2=13800138002||Mobile=13800138003||contact=x"
        "||account=4.5E+17"
    )
    assert rows[0].cells[1:3] == ("13800138001", "13800138002")
    assert rows[0].repairs == (
        Repair("phone1", RepairKind.DECIMAL, "13800138001.0"),
        Repair("phone2", RepairKind.APOSTROPHE, "'13800138002"),
    )
    assert [(row.line, row.reason) for row in rows[1:3]] == [
        (3, InvalidReason.PHONE_DIGITS_LOST),
        (4, InvalidReason.PHONE_DIGITS_LOST),
    ]
    assert rows[1].message == (
        "phone1 '1.38E+10' is in scientific notation: its digits are lost; "
        "re-export the column as text"
    )
    assert rows[1].cells[1] == "1.38E+10" and rows[1].repairs == ()
    assert rows[3].record == "name=D||phone1=13800138005||Mobile=0755-1234567"
    assert rows[4].record == "name=E||phone1=13800138006||contact=13800138007"
    assert rows[5].record == "name=F||phone1=+8613800138008" and rows[5].repairs == ()
    assert repairs(batches) == {RepairKind.DECIMAL: 2, RepairKind.APOSTROPHE: 2}
    assert_resumes_everywhere(path, fmt)
    # Without --phone-field, 'contact' is no phone field: its value is sent as it is.
    _, plain = read_all(path)
    assert plain[4].record == "name=E||phone1=13800138006||contact=13800138007.00"


def test_no_repair_refuses_what_it_would_have_repaired(tmp_path: Path) -> None:
    path = write(tmp_path, DAMAGED)
    fmt = sniff_format(path, ReaderOptions(repair=False))
    assert not fmt.repair
    batches = list(read_batches(path, fmt))
    rows = [row for batch in batches for row in batch.rows]
    assert [(row.line, row.reason) for row in rows] == [
        (2, InvalidReason.PHONE_UNREPAIRED),
        (3, InvalidReason.PHONE_DIGITS_LOST),
        (4, InvalidReason.PHONE_DIGITS_LOST),
        (5, InvalidReason.PHONE_UNREPAIRED),
        (6, None),
        (7, None),
    ]
    assert rows[0].message == (
        "phone1 '13800138001.0' ends in .0 (Excel stored it as a number); "
        "not repaired (--no-repair): fix it in the file"
    )
    assert rows[3].message == (
        "Mobile \"'0755-1234567\" starts with Excel's ' mark; "
        "not repaired (--no-repair): fix it in the file"
    )
    assert repairs(batches) == {}


def test_a_phone_field_that_is_not_sent_is_not_checked(tmp_path: Path) -> None:
    path = write(tmp_path, DAMAGED)
    _, rows = read_all(path, ReaderOptions(rename=(("phone1", None), ("phone2", None))))
    assert rows[1].record == "name=B"


def test_the_reading_options_reach_the_reader() -> None:
    given = {"keep_spaces": True, "no_repair": True, "max_record_lines": "7", "phone_field": "tel"}
    resolved = resolve(given, {}, {}, need_target=False)
    options = reader_options(resolved)
    assert options is resolved.read  # the reader takes the read settings, not a copy
    assert (options.keep_spaces, options.repair, options.max_record_lines) == (True, False, 7)
    assert options.phone_field == "tel"
    assert reader_options(resolve({}, {}, {}, need_target=False)) == ReaderOptions()
    assert ReaderOptions is ReadSettings
    assert ReaderOptions().max_record_lines == DEFAULT_MAX_RECORD_LINES == 100


RAW_CELL = st.text(alphabet=st.sampled_from('ab张 "\t'), max_size=4)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.lists(RAW_CELL, min_size=0, max_size=4), max_size=12),
    max_record_lines=st.sampled_from([1, 2, 3, 100]),
    block_bytes=st.sampled_from([5, 64, 1 << 20]),
)
def test_any_text_with_stray_quotes_is_accounted_for_and_resumes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lines: list[list[str]],
    max_record_lines: int,
    block_bytes: int,
) -> None:
    # Lines as people type them: quotes anywhere, never escaped, any number of cells.
    monkeypatch.setattr("bulkimport.reader.lines.BLOCK_BYTES", block_bytes)
    text = "".join(",".join(cells) + "\n" for cells in [["c0", "c1", "c2"], *lines])
    path = write(tmp_path, text)
    fmt = sniff_format(path, ReaderOptions(delimiter=",", max_record_lines=max_record_lines))
    assert_resumes_everywhere(path, fmt)
    assert_every_line_accounted_for(path, fmt)
    for row in [row for batch in read_batches(path, fmt) for row in batch.rows]:
        assert "\n" not in (row.message or "")
        if row.reason is InvalidReason.UNCLOSED_QUOTE:
            assert (row.message or "").startswith(f"unclosed quote on line {row.line}: ")
