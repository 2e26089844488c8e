"""``check`` predicts ``run``: for generated files, what ``check --schema`` calls clean,
``run`` sends without refusing it, and every systematic stop of ``run`` is one ``check``
saw coming.

Each example is a file made from a seed: a header drawn from the vendor's field names, the
names files commonly give them (``手机``, ``Notes``) and names no campaign has; values drawn
from phone numbers (good, empty, with separators, not a number), names, memos (some with
``=``, ``,``, quotes or a ``|``, some too long for a GET); a CSV file in UTF-8 or GBK, or a
workbook. Both sides get the same settings: ``check_file`` with the sandbox's campaign (as
``--schema``), and ``Client.load_csv`` against the sandbox itself, with a budget of
rejections small enough to stop a run of a few dozen rows.

The quick form tries a few seeds; the slow one many more.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

import openpyxl  # type: ignore[import-untyped]
import pytest

from bulkimport import Client
from bulkimport.campaign import default_schema
from bulkimport.check import CheckOptions, CheckReport, GetLimit, check_file
from bulkimport.jobs.pipeline import reader_options
from bulkimport.sandbox import SandboxHandle
from bulkimport.settings import Method, RejectBudget, SendSettings, Settings, Target
from bulkimport.states import RowState, StopCause
from tests.helpers import query

VENDOR = ["name", "phone1", "phone2", "email", "company", "city", "memo"]
COMMON = ["手机", "姓名", "备注", "Mobile", "Notes", "城市", "联系电话"]
JUNK = ["foo", "列X", "Score", "remark2"]
PHONE_COLUMNS = {"phone1", "phone2", "手机", "Mobile", "联系电话"}
NAMES = ["张三", "李四", "Ann", "O'Brien", "王 芳", "Zoe", ""]
TEXTS = ["", "VIP", "回访", "a=b", "x, y", 'say "hi"', "ok", "深圳市南山区", "line\nbreak"]
#: A GET limit for the examples that send by GET: under the sandbox's own request-line
#: limit (aiohttp's 8,190 bytes), so that what run refuses is its own refusal.
SMALL_GET = 4096
CAMPAIGN = default_schema().campaigns[0]


@dataclass(frozen=True)
class Example:
    path: Path
    method: Method
    rows: int


def phone(rng: random.Random, serial: int, faults: float) -> str:
    if rng.random() < faults:
        return rng.choice(["", f"138-0013-{serial % 10000:04d}", "n/a", "+86 138 0013 8000"])
    return f"13{rng.randint(0, 9)}{serial:08d}"


def text(rng: random.Random, method: Method, faults: float) -> str:
    if rng.random() < faults:
        if method is Method.GET and rng.random() < 0.5:
            return "长" * rng.randint(300, 800)  # 9 bytes a character in a URL: 4,096 is near
        return rng.choice(["bad|pipe", "=1+2", "x" * 300])
    return rng.choice(TEXTS + NAMES)


def make_example(directory: Path, seed: int) -> Example:
    """A file from ``seed``: half of them a tidy file of the vendor's fields, the others
    with a header drawn from every kind of name; values wrong at a rate drawn too."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        header = ["phone1", *rng.sample([n for n in VENDOR if n != "phone1"], rng.randint(1, 4))]
        rng.shuffle(header)
    else:
        header = list(dict.fromkeys(rng.choices(VENDOR + COMMON + JUNK, k=rng.randint(2, 5))))
    faults = rng.choice([0.0, 0.0, 0.03, 0.1])
    method = Method.GET if rng.random() < 0.3 else Method.POST
    count = rng.randint(12, 40)
    rows = []
    for line in range(count):
        serial = seed * 1000 + line
        rows.append(
            [
                phone(rng, serial, faults) if name in PHONE_COLUMNS else text(rng, method, faults)
                for name in header
            ]
        )
    kind = rng.choice(["utf-8", "gbk", "xlsx"])
    if kind == "xlsx":
        path = directory / f"example-{seed}.xlsx"
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(header)
        for row in rows:
            # A phone number typed as a number, as Excel keeps what looks like one.
            sheet.append([int(v) if v.isdigit() and len(v) < 15 else v for v in row])
        book.save(path)
    else:
        path = directory / f"example-{seed}.csv"
        with open(path, "w", encoding=kind, newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    return Example(path, method, count)


def problem_lines(report: CheckReport) -> set[int]:
    return {
        finding.line
        for group in report.groups
        if group.problem
        for finding in group.examples
        if finding.line is not None
    }


async def check_and_run(tmp_path: Path, sandbox: SandboxHandle, seed: int) -> None:
    example = make_example(tmp_path, seed)
    settings = Settings(
        target=Target(url=sandbox.url, org="demo", user="admin", password="secret", campaign="1"),
        send=SendSettings(
            method=example.method,
            max_get_bytes=SMALL_GET,
            rate_per_s=0,
            concurrency=4,
            backoff_base_s=0.01,
            backoff_max_s=0.05,
            # Half of the last 10 answers refused: a stop a few dozen rows can reach.
            max_rejects=RejectBudget(count=None, share=0.5, window=10),
        ),
    )
    report = check_file(
        example.path,
        reader_options(settings),
        # Long values are no reason of run's: out of the way, they hide none of the others.
        CheckOptions(
            campaign=CAMPAIGN,
            max_length=100_000,
            example_limit=None,
            get_limit=GetLimit.of(settings),
        ),
    )
    db = tmp_path / f"queue-{seed}.db"
    async with Client(db=db, settings=settings) as client:
        summary = await client.load_csv(example.path)
    states = dict(query(db, "SELECT line, state FROM rows"))
    said = f"seed {seed}: {example.path.name} by {example.method}; check: " + ", ".join(
        f"{g.code} {g.count}" for g in report.groups
    )
    said += f"; run: {summary.state} {summary.stop_cause} {summary.message}"
    # A systematic stop is never a surprise.
    if summary.stop_cause is not None:
        assert summary.stop_cause is StopCause.BUDGET, said
        assert not report.clean, said
    # A row check calls clean is not refused nor left unsent by a systematic stop.
    flagged = problem_lines(report)
    file_level = any(
        group.problem and any(f.line is None for f in group.examples) for group in report.groups
    )
    for line, state in states.items():
        if line in flagged or file_level:
            continue
        assert state in (RowState.DONE, RowState.DUPLICATE), f"{said}; line {line} {state}"
    if report.clean:
        assert summary.counts[RowState.DONE] + summary.counts[RowState.DUPLICATE] == len(states), (
            said
        )


# A tidy workbook and CSV file, rows too long for a GET, no phone field, a field the
# campaign lacks (by GET), phone numbers of every kind.
@pytest.mark.parametrize("seed", [100, 102, 112, 101, 105, 138])
async def test_check_predicts_run(tmp_path: Path, sandbox: SandboxHandle, seed: int) -> None:
    await check_and_run(tmp_path, sandbox, seed)


@pytest.mark.slow
async def test_check_predicts_run_over_many_files(tmp_path: Path, sandbox: SandboxHandle) -> None:
    for seed in range(100, 260):
        await check_and_run(tmp_path, sandbox, seed)
