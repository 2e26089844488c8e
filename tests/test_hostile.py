"""Hostile files are bounded: a workbook part that expands like a zip bomb, a gigabyte of
spaces between rows, a shared string of 300 MB, a value in column XFD of every row, a CSV
line of 200 MB. Each ends as a refused file (one line naming it and where) or as invalid
rows with their reason, in memory that does not grow with it (``reader.limits``).

The quick tests make the files small (and lower a limit where the full size is what
crosses it); the ``slow`` ones make them full size and run ``check`` and ``stage`` in a
process of their own, whose peak memory they bound generously (no timing is asserted:
``bench/hostile.py`` prints the times).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bulkimport.check import CheckOptions, check_file, render_text
from bulkimport.cli import cli
from bulkimport.errors import InputError
from bulkimport.protocol import decode_record
from bulkimport.reader import ReaderOptions, limits, read_batches, sniff_format
from bulkimport.reader.workbook import open_sheet
from bulkimport.rows import Batch, NewRow
from bulkimport.states import Allow, InvalidReason, RowState
from tests.helpers import query
from tests.hostile import (
    HEADER,
    LEADS,
    LONG_LINE,
    LONG_STRING,
    MAIN,
    SPACES,
    WIDE_ROWS,
    long_line_csv,
    long_string_workbook,
    measure,
    row,
    spaces_workbook,
    wide_workbook,
    workbook,
)

#: The most memory a process reading a hostile file may take: generous, the reader takes
#: well under half of it.
MEMORY_MB = 250


def read(path: Path, **options: Any) -> tuple[list[Batch], list[NewRow]]:
    fmt = sniff_format(path, ReaderOptions(**options))
    batches = list(read_batches(path, fmt))
    return batches, [row for batch in batches for row in batch.rows]


def summary(rows: list[NewRow]) -> list[tuple[int, RowState, InvalidReason | None]]:
    return [(row.line, row.state, row.reason) for row in rows]


def values(row: NewRow) -> dict[str, str]:
    assert row.record is not None
    return dict(decode_record(row.record))


def one_line_error(path: Path, **options: Any) -> str:
    with pytest.raises(InputError) as caught:
        check_file(path, ReaderOptions(**options), CheckOptions())
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message


@pytest.fixture
def lifted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The zip-bomb limit lifted, to read what it would refuse."""
    monkeypatch.setattr(limits, "MAX_EXPANSION", 1 << 30)
    yield


# --- limits in one place ---------------------------------------------------------------------


def test_values_are_clipped_with_their_length() -> None:
    assert limits.clip("abc") == "abc"
    assert limits.clip("x" * 300) == "x" * 60 + "… (300 characters)"
    assert limits.shown("x" * 61) == repr("x" * 60) + "… (61 characters)"
    assert limits.listed([f"c{i}" for i in range(30)], 2) == "c0, c1, ... (30 in all)"
    # Each limit is far above real data: a cell is at most Excel's, a row far below 1 MB.
    assert limits.MAX_CELL_CHARS == 32_767
    assert limits.MAX_ROW_BYTES >= 1 << 20 and limits.MAX_EXPANSION >= 100


# --- a gigabyte of spaces: a zip bomb, refused; spaces read in linear time ----------------------


def test_a_part_that_expands_like_a_zip_bomb_refuses_the_file_in_one_line(tmp_path: Path) -> None:
    path = spaces_workbook(tmp_path / "spaces.xlsx", 80 << 20)
    message = one_line_error(path)
    assert "part xl/worksheets/sheet1.xml expands from " in message
    assert "a workbook's part expands at most 100 times" in message
    # The command line says the same, in one line, exit 2.
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"Error: {message}"]


def test_a_part_past_the_absolute_cap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = spaces_workbook(tmp_path / "spaces.xlsx", 2 << 20)
    monkeypatch.setattr(limits, "MAX_PART_BYTES", 1 << 20)
    assert "more than the 1,048,576 bytes a part may have" in one_line_error(path)


@pytest.mark.parametrize("where", ["before", "between"])
def test_spaces_around_rows_are_passed_over(tmp_path: Path, lifted: None, where: str) -> None:
    path = spaces_workbook(tmp_path / "spaces.xlsx", 5 << 20, where=where)
    _, rows = read(path)
    assert summary(rows) == [(2, RowState.PENDING, None), (3, RowState.PENDING, None)]
    assert values(rows[1]) == dict(zip(HEADER, ("Bob", "13800000002", "Lyon"), strict=True))


def test_a_row_whose_xml_runs_past_the_limit_is_invalid_and_not_held(
    tmp_path: Path, lifted: None
) -> None:
    path = spaces_workbook(tmp_path / "spaces.xlsx", 3 << 20, where="inside")
    _, rows = read(path)
    assert summary(rows) == [
        (2, RowState.INVALID, InvalidReason.TOO_LONG),
        (3, RowState.PENDING, None),
    ]
    assert rows[0].message is not None
    assert rows[0].message.startswith("its XML runs to 3,14")
    assert rows[0].message.endswith("more than a row may take (1,048,576); not read")
    # Its cells say what was not read, right of the header: a report read back keeps it invalid.
    assert rows[0].cells[:3] == ("", "", "") and "not read" in rows[0].cells[3]


@pytest.mark.parametrize("before", [100, 600_000, 1_000_000])
def test_a_row_past_the_limit_gets_the_same_verdict_wherever_the_blocks_fall(
    tmp_path: Path, before: int
) -> None:
    """A long row whole in one block is passed over as one cut by a block's end is, and
    resuming at any row reads the same."""
    ann = row(2, ("Ann", "1", "Paris"))
    parts = [row(1, HEADER), ann[:-6] + b" " * before + ann[-6:]]  # spaces inside <row>
    parts += [row(3, ("Bob", "2", "y" * 1_100_000)), row(4, ("Cy", "3", "Nice"))]
    path = workbook(tmp_path / "long.xlsx", parts)
    for start in (2, 3, 4):
        with open_sheet(path) as sheet:
            found = [
                (number, cells, sheet.faults.get(number))
                for number, cells in sheet.iter_rows(start, width=3)
            ]
        assert [number for number, _, _ in found] == list(range(start, 5))
        faulty = [(number, cells) for number, cells, fault in found if fault is not None]
        assert faulty == ([(3, ())] if start <= 3 else [])


# --- a shared string of 300 MB ---------------------------------------------------------------


@pytest.mark.parametrize(("chars", "what"), [(40_000, "40,000 characters"), (3 << 20, "bytes")])
def test_a_shared_string_longer_than_a_cell_makes_its_row_invalid(
    tmp_path: Path, chars: int, what: str
) -> None:
    path = long_string_workbook(tmp_path / "long.xlsx", chars)
    _, rows = read(path)
    assert summary(rows) == [
        (2, RowState.PENDING, None),
        (3, RowState.INVALID, InvalidReason.TOO_LONG),
        (4, RowState.PENDING, None),
    ]
    bob = rows[1]
    assert bob.message is not None and bob.message.startswith("column C holds a text of ")
    assert what in bob.message and bob.message.endswith(
        "more than a cell holds (32,767 characters)"
    )
    # What was read is kept; the value not read is empty, and said right of the header.
    assert bob.cells[:3] == ("Bob", "13800000002", "") and bob.cells[3].startswith("(column C")
    report = check_file(path, ReaderOptions(), CheckOptions())
    text = render_text(report)
    assert "invalid-too-long" in text and max(map(len, text.splitlines())) < 300


def test_a_header_too_long_to_read_refuses_the_file(tmp_path: Path) -> None:
    strings = [b"<si><t>", b"n" * 40_000, b"</t></si>"]
    rows = [b'<row r="1"><c r="A1" t="s"><v>0</v></c></row>', row(2, ("Ann",))]
    message = one_line_error(workbook(tmp_path / "header.xlsx", rows, strings))
    assert "sheet 'Leads', row 1 (the header, or above it): column A holds a text of " in message


def test_a_long_text_named_in_every_cell_is_held_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text of legal length that many cells show costs its memory once (past the texts
    kept decoded too), and a row whose cells come to more than a row may hold is invalid."""
    strings = [b"<si><t>s</t></si>" * 70_000, b"<si><t>", b"z" * 30_000, b"</t></si>"]
    cells = b"".join(b'<c r="%s2" t="s"><v>70000</v></c>' % c.encode() for c in "ABC")
    rows = [row(1, HEADER), b'<row r="2">' + cells + b"</row>"]
    path = workbook(tmp_path / "repeated.xlsx", rows, strings)
    with open_sheet(path) as sheet:
        ((_, found),) = list(sheet.iter_rows(2))
    assert len(found) == 3 and len({id(cell) for cell in found}) == 1  # one text, three cells
    # The text is in the phone field too: a campaign that sends what is no number.
    _, (bob,) = read(path, allow=(Allow.NOT_PHONES,))
    assert bob.state is RowState.PENDING and values(bob)["city"] == "z" * 30_000
    monkeypatch.setattr(limits, "MAX_ROW_CHARS", 50_000)
    _, (bob,) = read(path, allow=(Allow.NOT_PHONES,))
    assert (bob.reason, bob.message) == (
        InvalidReason.TOO_LONG,
        "its cells hold 90,000 characters, more than a row may hold (50,000)",
    )


# --- a value in column XFD of every row ------------------------------------------------------


@pytest.mark.slow
def test_a_value_in_column_xfd_is_counted_not_padded(tmp_path: Path) -> None:
    path = wide_workbook(tmp_path / "wide.xlsx", 2_000)
    _, rows = read(path)
    assert len(rows) == 2_000 and all(r.reason is InvalidReason.CELLS for r in rows)
    first = rows[0]
    assert first.cells == ("Paris", "13800000002", "", "a note far right")
    assert first.message is not None and first.message.startswith(
        "a value in column XFD ('a note far right'), right of the header's last column (C)"
    )
    # The advice works: the columns right of the header dropped, every row is sent.
    _, rows = read(path, rename=tuple((f"#{n}", None) for n in range(4, 16_385)))
    assert {r.state for r in rows} == {RowState.PENDING}


def test_values_right_of_the_header_are_counted_and_the_first_kept(tmp_path: Path) -> None:
    cells = b"".join(
        b'<c r="%s2" t="inlineStr"><is><t>v%d</t></is></c>' % (column.encode(), n)
        for n, column in enumerate(["A", "B", "C", *(f"X{c}" for c in "ABCDEFGHIJKL")])
    )
    path = workbook(tmp_path / "many.xlsx", [row(1, HEADER), b'<row r="2">' + cells + b"</row>"])
    _, (only,) = read(path)
    assert only.cells == ("v0", "v1", "v2", *(f"v{n}" for n in range(3, 3 + 8)))
    assert only.message is not None
    assert only.message.startswith("a value in column XA ('v3') and 11 more, right of")


def test_a_workbook_with_xfd_in_every_row_stages_a_small_queue(tmp_path: Path) -> None:
    path = wide_workbook(tmp_path / "wide.xlsx", 10_000)
    db = tmp_path / "queue.db"
    done = measure(_stage(path, db), env={"BULKIMPORT_PASSWORD": "x"})
    assert "job 1 ready: 10,000 rows (invalid 10,000)" in done.stdout, done.stderr
    # Each row is stored with the header's cells and the one value right of them.
    ((rows, longest),) = query(db, "SELECT count(*), max(length(cells)) FROM rows")
    assert rows == 10_000 and longest < 100
    assert db.stat().st_size < 20 << 20 and done.max_rss_mb < MEMORY_MB


# --- a CSV line of 200 MB --------------------------------------------------------------------


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_a_line_longer_than_a_row_is_invalid_and_the_others_read(
    tmp_path: Path, newline: bytes
) -> None:
    path = long_line_csv(tmp_path / "long.csv", 3 << 20, newline)
    batches, rows = read(path)
    assert summary(rows) == [
        (2, RowState.PENDING, None),
        (3, RowState.INVALID, InvalidReason.TOO_LONG),
        (4, RowState.PENDING, None),
    ]
    bob = rows[1]
    assert bob.message is not None
    size = (3 << 20) + len(newline)
    assert bob.message.startswith(f"the line is {size:,} bytes long, more than a row may take")
    assert "(it starts 'Bob,13800000002,xxx" in bob.message and len(bob.message) < 250
    assert bob.cells == ("", "", "", f"(a line of {size:,} bytes, not read)")
    # Resumed after any batch, reading goes on exactly where it stopped.
    fmt = sniff_format(path)
    for cut in (1, 2):
        head = list(read_batches(path, fmt, batch_rows=1))[cut - 1]
        rest = list(
            read_batches(path, fmt, start_offset=head.end_offset, start_line=head.next_line)
        )
        assert [r.line for b in rest for r in b.rows] == [r.line for r in rows[cut:]]
    assert batches[-1].end_offset == path.stat().st_size


def test_a_long_line_at_the_end_without_a_line_break(tmp_path: Path) -> None:
    path = tmp_path / "end.csv"
    path.write_bytes(b"name,phone1\nAnn,1\nBob," + b"x" * (2 << 20))
    _, rows = read(path)
    assert summary(rows) == [
        (2, RowState.PENDING, None),
        (3, RowState.INVALID, InvalidReason.TOO_LONG),
    ]


def test_a_long_line_in_utf16(tmp_path: Path) -> None:
    text = "name,phone1\r\nAnn,1\r\nBob," + "x" * (1 << 20) + "\r\nCy,3\r\n"
    path = tmp_path / "wide.csv"
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    batches, rows = read(path)
    assert summary(rows) == [
        (2, RowState.PENDING, None),
        (3, RowState.INVALID, InvalidReason.TOO_LONG),
        (4, RowState.PENDING, None),
    ]
    assert batches[-1].end_offset == path.stat().st_size


def test_a_header_line_too_long_refuses_the_file(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_bytes(b"name," + b"n" * (2 << 20) + b"\nAnn,1\n")
    message = one_line_error(path)
    assert "line 1 is 2,097,158 bytes long, more than a row may take" in message


def test_a_cell_longer_than_a_cell_holds_makes_its_row_invalid(tmp_path: Path) -> None:
    path = tmp_path / "cell.csv"
    path.write_bytes(b"name,phone1,city\nAnn,1,Paris\nBob,2," + b"y" * 40_000 + b"\nCy,3,Nice\n")
    _, rows = read(path)
    assert summary(rows)[1] == (3, RowState.INVALID, InvalidReason.TOO_LONG)
    assert rows[1].message == (
        "column 3 ('city') holds 40,000 characters, more than a cell holds (32,767)"
    )
    assert rows[1].cells[2] == "y" * 40_000  # kept whole: a report read back is invalid again
    assert rows[2].state is RowState.PENDING


def test_long_lines_cut_a_batch_short_of_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_BATCH_CHARS", 1 << 20)
    path = tmp_path / "memos.csv"
    memo = "m" * 20_000
    path.write_text("name,memo\n" + "".join(f"L{n},{memo}\n" for n in range(300)))
    batches, rows = read(path)
    assert len(rows) == 300 and {r.state for r in rows} == {RowState.PENDING}
    assert len(batches) > 3 and max(len(b.rows) for b in batches) < 150


def test_samples_and_messages_clip_long_values(tmp_path: Path) -> None:
    path = tmp_path / "memo.csv"
    path.write_text("name,phone1,memo\nAnn,13800000001," + "m" * 300 + "\n")
    report = check_file(path, ReaderOptions(), CheckOptions())
    ((_, sample),) = report.samples
    assert sample == "name=Ann||phone1=13800000001||memo=" + "m" * 60 + "… (300 characters)"
    assert report.to_json()["samples"][0]["record"] == sample
    (finding,) = next(g for g in report.groups if g.code == "value-too-long").examples
    assert finding.to_json()["value"] == "m" * 60 + "… (300 characters)"


# --- full size, each in a process of its own -------------------------------------------------


def _check(path: Path) -> list[str]:
    return [sys.executable, "-m", "bulkimport", "check", str(path)]


def _stage(path: Path, db: Path) -> list[str]:
    return [
        sys.executable,
        *("-m", "bulkimport", "stage", str(path)),
        *("--url", "http://127.0.0.1:9/asterccinterfaces", "--org", "o", "--user", "u"),
        *("--campaign", "1", "--db", str(db)),
    ]


@pytest.mark.slow
def test_full_size_hostile_workbooks_and_line(tmp_path: Path) -> None:
    spaces = measure(_check(spaces_workbook(tmp_path / "spaces.xlsx", SPACES)))
    assert spaces.returncode == 2 and len(spaces.stderr.strip().splitlines()) == 1
    assert "expands from" in spaces.stderr and spaces.max_rss_mb < MEMORY_MB

    long = long_string_workbook(tmp_path / "long.xlsx", LONG_STRING)
    refused = measure(_check(long))
    assert refused.returncode == 2 and "xl/sharedStrings.xml expands" in refused.stderr

    wide = measure(_check(wide_workbook(tmp_path / "wide.xlsx", WIDE_ROWS)))
    assert wide.returncode == 1 and f"({WIDE_ROWS:,})" in wide.stdout
    assert wide.max_rss_mb < MEMORY_MB
    staged = measure(
        _stage(tmp_path / "wide.xlsx", tmp_path / "wide.db"), env={"BULKIMPORT_PASSWORD": "x"}
    )
    assert staged.returncode in (0, 1), staged.stderr
    assert (tmp_path / "wide.db").stat().st_size < 200 << 20 and staged.max_rss_mb < MEMORY_MB

    line = measure(_check(long_line_csv(tmp_path / "long.csv", LONG_LINE)))
    assert line.returncode == 1 and "invalid-too-long" in line.stdout
    assert max(map(len, line.stdout.splitlines())) < 300 and line.max_rss_mb < MEMORY_MB


@pytest.mark.slow
def test_full_size_whitespace_and_string_read_in_flat_memory_when_the_ratio_is_lifted(
    tmp_path: Path,
) -> None:
    """What the zip-bomb limit refuses is still read in flat memory when it is lifted: a
    gigabyte of spaces between two rows, a shared string of 300 MB."""
    lift = (
        "import sys; from pathlib import Path; from bulkimport.reader import limits; "
        "limits.MAX_EXPANSION = 1 << 30; from bulkimport.check import check_file; "
        "r = check_file(Path(sys.argv[1])); print(r.records, r.invalid)"
    )
    spaces = measure([sys.executable, "-c", lift, str(spaces_workbook(tmp_path / "s.xlsx"))])
    assert (spaces.returncode, spaces.stdout.split()) == (0, ["2", "0"]), spaces.stderr
    assert spaces.max_rss_mb < MEMORY_MB
    long = measure([sys.executable, "-c", lift, str(long_string_workbook(tmp_path / "l.xlsx"))])
    assert (long.returncode, long.stdout.split()) == (0, ["3", "1"]), long.stderr
    assert long.max_rss_mb < MEMORY_MB


# --- whitespace whose end falls on a block's end ---------------------------------------------

_SHEET_START = f'<worksheet xmlns="{MAIN}"><sheetData>'.encode()
_STRINGS_START = f'<sst xmlns="{MAIN}">'.encode()
# Where blocks end in a part: after the first read of its head, then every BLOCK_BYTES.
_BOUNDARY = (1 << 16) + 2 * (1 << 20)


@pytest.mark.parametrize("shift", range(-13, 3))
def test_spaces_then_a_tag_cut_by_a_blocks_end(tmp_path: Path, shift: int) -> None:
    """More spaces than a row may take, then ``<row`` (or ``</sheetData>``, ``<si``,
    ``</sst>``) across the end of a block: read as if the spaces were not there."""
    first = row(1, HEADER) + row(2, LEADS[0])
    spaces = _BOUNDARY + shift - len(_SHEET_START) - len(first)
    bob = b'<row r="3"><c r="A3" t="s"><v>0</v></c><c r="B3" t="s"><v>1</v></c></row>'
    rows = [first, b" " * spaces, bob, b" " * (2 << 20)]
    strings_first = b"<si><t>Bob</t></si>"
    pad = _BOUNDARY + shift - len(_STRINGS_START) - len(strings_first)
    strings = [strings_first, b" " * pad, b"<si><t>13800000002</t></si>", b" " * (2 << 20)]
    _, found = read(workbook(tmp_path / "cut.xlsx", rows, strings))
    assert summary(found) == [(2, RowState.PENDING, None), (3, RowState.PENDING, None)]
    assert values(found[1]) == {"name": "Bob", "phone1": "13800000002"}


@pytest.mark.parametrize("shift", range(-3, 3))
def test_a_long_lines_crlf_cut_by_a_blocks_end(tmp_path: Path, shift: int) -> None:
    """The CR of a long line's CRLF at the end of a block and its LF in the next: one line
    break, not two."""
    header = b"name,phone1\r\n"
    size = 2 * (1 << 20) + shift - len(b"Bob,") - 1  # the CR at the end of the 2nd block
    path = tmp_path / "crlf.csv"
    path.write_bytes(header + b"Bob," + b"x" * size + b"\r\nCy,3\r\n")
    batches, rows = read(path)
    assert summary(rows) == [
        (2, RowState.INVALID, InvalidReason.TOO_LONG),
        (3, RowState.PENDING, None),
    ]
    assert sum(batch.blank_lines for batch in batches) == 0
    assert batches[-1].end_offset == path.stat().st_size
