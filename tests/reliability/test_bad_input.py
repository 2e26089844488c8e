"""Bad input through the command line: never a traceback; either one clear line and exit 2,
or every physical line of the file accounted for (in a row to send, in one ``invalid`` with
its line number and a reason, or counted as blank), and after ``run`` every row settled.

Every file of the shared third-party corpus is staged through the command's code (click's
``CliRunner``, in-process: 500 child processes would take minutes); files made here, and a
sample of the corpus, go through a real ``bulkimport`` process, ``stage`` and ``run``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkimport.cli import cli
from bulkimport.reader import FileFormat, read_batches
from bulkimport.sandbox import SandboxHandle
from bulkimport.states import RepairKind
from bulkimport.storage.sqlite import SqliteStorage
from tests.helpers import HEADER, Done, bulkimport, customers, query, target
from tests.reading import CORPUS, corpus_files

NOWHERE = ["--url", "http://127.0.0.1:9/", "--org", "o", "--user", "u", "--campaign", "1"]
SENT_STATES = {"done", "duplicate", "rejected"}


# --- what "accounted for" means ---------------------------------------------------------------


def assert_one_line_refusal(code: int, out: str, err: str, path: Path) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("Error:")
    assert path.name in lines[0]
    assert not out.strip()


def job_rows(db: Path, job: int) -> list[tuple[int, str, str | None, str | None, str | None]]:
    """``(line, state, record, last_code, last_message)`` of the job's rows, in line order."""
    return query(
        db,
        "SELECT line, state, record, last_code, last_message FROM rows WHERE job_id = ?"
        " ORDER BY id",
        job,
    )


def read_lines(db: Path, job: int, path: Path) -> list[int]:
    """The lines of the rows the reader makes of the file, read as the job reads it (the
    reader's own accounting of every line is tested on the same files in
    ``test_reader_corpus``)."""
    (fmt_json,) = query(db, "SELECT format_json FROM jobs WHERE id = ?", job)[0]
    fmt = FileFormat.from_json(fmt_json)
    return [row.line for batch in read_batches(path, fmt) for row in batch.rows]


def assert_accounted_for(
    db: Path, summary: dict[str, object], path: Path, records: int | None, *, sent: bool
) -> list[tuple[int, str, str | None, str | None, str | None]]:
    """Every record the reader makes is one row: ``records`` of them (and the rows the
    reader makes of the file), lines in order, each invalid row with a reason; after
    sending, every row settled, and each row sent with the server's answer."""
    job = int(str(summary["job"]))
    rows = job_rows(db, job)
    lines = read_lines(db, job, path)
    assert [line for line, *_ in rows] == lines
    assert len(rows) == summary["total"]
    if records is not None:
        assert len(rows) == records
    assert lines == sorted(set(lines))
    assert all(line >= 2 for line in lines)
    for line, state, record, code, message in rows:
        if state == "invalid":
            assert record is None and message, line
        elif sent:
            assert state in SENT_STATES, (line, state, code, message)
            assert code, line
        else:
            assert state == "pending" and record, line
    return rows


# --- the whole corpus, through the command's code -----------------------------------------------


@pytest.fixture(scope="module")
def corpus_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus") / "bulkimport.db"


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the shared CSV corpus is not at {CORPUS}")
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_stage_refuses_a_corpus_file_in_one_line_or_accounts_for_every_record(
    path: Path, corpus_db: Path
) -> None:
    result = CliRunner().invoke(
        cli, ["stage", str(path), "--db", str(corpus_db), *NOWHERE, "--quiet", "--json"]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert_one_line_refusal(2, result.stdout, result.stderr, path)
        return
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["state"] == "ready"
    assert_accounted_for(corpus_db, summary, path, None, sent=False)


# --- files made here, through a real process ------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A file to make, how many physical records it holds, and whether it must be refused."""

    make: Callable[[Path], None]
    records: int | None
    refuse: bool = False


def _lines(lines: list[str], encoding: str = "utf-8") -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(("\n".join(lines) + "\n").encode(encoding))

    return make


def _bytes(data: bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(data)

    return make


def _truncated_utf8(path: Path) -> None:
    """UTF-8 with a character cut in the middle of line 5, and one cut at the end of the file."""
    text = "\n".join([HEADER, *(f"王{i},1380000{i:04d},,城" for i in range(10))]) + "\n"
    data = text.encode().replace("王3,".encode(), "王3".encode() + "三".encode()[:2] + b",")
    path.write_bytes(data + "末".encode()[:2])


def _nul_late(path: Path) -> None:
    """NUL bytes only after the first 1.5 MB, beyond what the format sniffer looks at."""
    rows = [f"Lead {i},139{i:08d},lead{i}@example.com,City" for i in range(40_000)]
    rows[38_000] = "Nul\x00Lead,13812345678,,City"
    path.write_bytes(("\n".join([HEADER, *rows]) + "\n").encode())


def _huge_field(path: Path) -> None:
    big = "x" * (10 * 1024 * 1024)
    path.write_bytes(f"name,phone1,memo\nBig,13900000001,{big}\nSmall,13900000002,m\n".encode())


def _unclosed_quote(path: Path) -> None:
    """A stray quote opening a value on line 3 of 5,000 rows: past the csv parser's field
    limit, it used to swallow some 2,300 lines into one invalid row."""
    rows = [f"Lead {i},139{i:08d},lead{i}@example.com,City {i % 7}" for i in range(5_000)]
    rows[1] = 'Lead 1,13900000001,"lead1@example.com,City 1'
    path.write_bytes(("\n".join([HEADER, *rows]) + "\n").encode())


def _excel_blank_rows(path: Path) -> None:
    """Excel's empty rows (bare delimiters), blank lines, and empty lines at the end."""
    rows = [f"张伟{i},1380000{i:04d},,北京" for i in range(30)]
    rows[10:10] = [",,,", ""]
    rows[20:20] = [" , ,\u3000,"]
    path.write_bytes(("\n".join([HEADER, *rows, ",,,", ",,,", "", ""]) + "\n").encode())


def _spaces(path: Path) -> None:
    rows = [f"张伟{i}, 1380000{i:04d} ,,\u00a0北京\u3000" for i in range(30)]
    path.write_bytes(("\n".join([HEADER, *rows]) + "\n").encode())


EXCEL_PHONES = [
    "张伟0,13800000000.0,,北京",  # .0 removed
    "张伟1,'13800000001,,北京",  # leading ' removed
    "张伟2,1.38E+10,,北京",  # digits lost: invalid
    *(f"张伟{i},1380000{i:04d},,北京" for i in range(3, 30)),
]


def _directory(path: Path) -> None:
    path.mkdir()


def _missing(path: Path) -> None:
    pass


WIDE = [",".join(f"c{i}" for i in range(10_000))]
CHINESE = [f"张伟{i},1380000{i:04d},,北京市朝阳区" for i in range(30)]
CASES: dict[str, Case] = {
    "gbk": Case(_lines([HEADER, *CHINESE], "gbk"), 30),
    "gb18030": Case(
        _lines([HEADER, *(f"吉𠮷{i},1380000{i:04d},,广州" for i in range(30))], "gb18030"), 30
    ),
    "big5": Case(
        _lines([HEADER, *(f"陳大文{i},1380000{i:04d},,臺北市" for i in range(30))], "big5"), 30
    ),
    "utf-16": Case(_lines([HEADER, *CHINESE], "utf-16"), 30),
    "utf-16-le-no-bom": Case(_lines([HEADER, *CHINESE], "utf-16-le"), 30),
    "truncated-utf8": Case(_truncated_utf8, 11),
    "nul-bytes": Case(_lines([HEADER, "A\x00b,13800000001,,X", "Ok,13800000002,,Y"]), 2),
    "nul-bytes-late": Case(_nul_late, 40_000),
    "10mb-field": Case(_huge_field, 2),
    "10000-columns": Case(_lines([*WIDE, *(",".join(["7"] * 10_000) for _ in range(3))]), 3),
    "header-only": Case(_lines([HEADER]), 0),
    "unclosed-quote": Case(_unclosed_quote, 5_000),
    "excel-blank-rows": Case(_excel_blank_rows, 30),
    "spaces-around-values": Case(_spaces, 30),
    "excel-phones": Case(_lines([HEADER, *EXCEL_PHONES]), 30),
    "excel-title-lines": Case(
        _lines(["Customer list,,,", ",,,", HEADER, *CHINESE]), None, refuse=True
    ),
    "zero-bytes": Case(_bytes(b""), 0),
    "binary": Case(_bytes(random.Random(1).randbytes(65_536)), None),
    "directory": Case(_directory, None, refuse=True),
    "missing": Case(_missing, None, refuse=True),
    "pipes-equals-password": Case(
        _lines(
            [
                HEADER,
                "Pipe,13800000001,,a||b",
                "Equals,13800000002,x=y,a=b",
                'Inject,13800000003,,"&password=x&EVENT=Other"',
            ]
        ),
        3,
    ),
}


def make_case(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.csv"
    CASES[name].make(path)
    return path


@pytest.mark.parametrize("name", list(CASES))
async def test_stage_refuses_a_bad_file_in_one_line_or_accounts_for_every_record(
    tmp_path: Path, name: str
) -> None:
    path = make_case(tmp_path, name)
    result = await bulkimport("stage", str(path), *NOWHERE, "--quiet", "--json", cwd=tmp_path)
    assert "Traceback" not in result.out + result.err
    if result.code == 2 or CASES[name].refuse:
        assert_one_line_refusal(result.code, result.out, result.err, path)
        if name == "excel-title-lines":
            assert result.err.rstrip().endswith("add --skip-rows 2")
        return
    assert result.code == 0, result.err
    rows = assert_accounted_for(
        tmp_path / "bulkimport.db", result.json(), path, CASES[name].records, sent=False
    )
    facts = await job_facts(tmp_path / "bulkimport.db", int(result.json()["job"]))
    if name == "excel-blank-rows":
        assert facts == (7, {})
    if name == "excel-phones":
        assert facts == (0, {RepairKind.DECIMAL: 1, RepairKind.APOSTROPHE: 1})
        assert [(line, state) for line, state, *_ in rows[:4]] == [
            (2, "pending"),
            (3, "pending"),
            (4, "invalid"),
            (5, "pending"),
        ]
    if name == "unclosed-quote":
        assert [line for line, state, *_ in rows if state == "invalid"] == [3]
        assert str(rows[1][4]).startswith("unclosed quote on line 3: ")
    if name == "pipes-equals-password":
        assert [(line, state) for line, state, *_ in rows] == [
            (2, "invalid"),
            (3, "pending"),
            (4, "pending"),
        ]
        assert "||" in str(rows[0][4])


async def test_stage_refuses_an_encoding_the_bytes_contradict(tmp_path: Path) -> None:
    path = make_case(tmp_path, "spaces-around-values")  # UTF-8, Chinese text
    result = await bulkimport(
        "stage", str(path), *NOWHERE, "--encoding", "gb18030", "--quiet", cwd=tmp_path
    )
    assert_one_line_refusal(result.code, result.out, result.err, path)
    assert "the file is UTF-8" in result.err and "drop --encoding" in result.err


# --- sending: a sample, to the sandbox -----------------------------------------------------------

# The key of a row that arrives whole, and the name it must arrive with.
INTACT = {
    "gbk": ("13800000007", "张伟7"),
    "gb18030": ("13800000007", "吉𠮷7"),
    "big5": ("13800000007", "陳大文7"),
    "utf-16": ("13800000007", "张伟7"),
    "truncated-utf8": ("13800000007", "王7"),
    "pipes-equals-password": ("13800000003", "Inject"),
    "10mb-field": ("13900000002", "Small"),
    "unclosed-quote": ("13900004999", "Lead 4999"),
    "excel-blank-rows": ("13800000029", "张伟29"),
    "spaces-around-values": ("13800000007", "张伟7"),
    "excel-phones": ("13800000000", "张伟0"),
}


async def run_to_sandbox(path: Path, sandbox: SandboxHandle, cwd: Path, *extra: str) -> Done:
    result = await bulkimport(
        "run", str(path), *target(sandbox), "--rate", "0", "--json", *extra, cwd=cwd
    )
    assert "Traceback" not in result.out + result.err
    return result


@pytest.mark.parametrize(
    "name",
    [
        "gbk",
        "gb18030",
        "big5",
        "utf-16",
        "truncated-utf8",
        "pipes-equals-password",
        "10mb-field",
        "10000-columns",
        "unclosed-quote",
        "excel-blank-rows",
        "spaces-around-values",
        "excel-phones",
    ],
)
async def test_run_settles_every_record_of_a_bad_file_and_sends_values_whole(
    tmp_path: Path, sandbox: SandboxHandle, name: str
) -> None:
    path = make_case(tmp_path, name)
    result = await run_to_sandbox(path, sandbox, tmp_path)
    assert result.code in (0, 1), result.err
    assert_accounted_for(
        tmp_path / "bulkimport.db", result.json(), path, CASES[name].records, sent=True
    )
    if name in ("excel-blank-rows", "spaces-around-values"):
        assert result.code == 0, result.out  # nothing invalid: no report, no exit 1
    if name in INTACT:
        key, expected = INTACT[name]
        held = {c["key"]: c["fields"] for c in await customers(sandbox)}
        assert held[key]["customername"] == expected
        if name == "spaces-around-values":
            assert held[key]["city"] == "北京"
    if name == "excel-phones":
        # Never a damaged value sent as if it were fine: repaired, or not sent at all.
        held = {c["key"] for c in await customers(sandbox)}
        assert {"13800000000", "13800000001"} <= held
        assert not any("." in key or "'" in key or "E" in key for key in held)
        assert result.code == 1


async def job_facts(db: Path, job: int) -> tuple[int, dict[RepairKind, int]]:
    """The blank lines and repairs counted with the job, as storage gives them."""
    async with await SqliteStorage.open(db) as storage:
        stored = await storage.jobs.get(job)
        return stored.blank_lines, dict(stored.repairs)


def corpus_sample() -> list[Path]:
    files = corpus_files()
    return sorted(random.Random(7).sample(files, 8)) if files else []


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the shared CSV corpus is not at {CORPUS}")
@pytest.mark.parametrize("path", corpus_sample(), ids=lambda p: str(p.relative_to(CORPUS)))
async def test_run_settles_every_record_of_a_corpus_file(
    tmp_path: Path, sandbox: SandboxHandle, path: Path
) -> None:
    # A corpus file's columns are not the campaign's fields, so the server may reject every
    # row: with the error budget that stops the job (exit 3, tested on its own); here every
    # record is to be settled, so the budget is off.
    result = await run_to_sandbox(path, sandbox, tmp_path, "--max-rejects", "0")
    if result.code == 2:
        assert_one_line_refusal(result.code, result.out, result.err, path)
        return
    assert result.code in (0, 1), result.err
    assert_accounted_for(tmp_path / "bulkimport.db", result.json(), path, None, sent=True)
