"""Complete files only: a file a program is still writing is waited for, a last line cut short
is held back, and a file that simply ends without a final line end is read."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from bulkimport.check import CheckOptions, check_file
from bulkimport.errors import InputError
from bulkimport.reader import complete, read_batches, sniff_format
from bulkimport.states import InvalidReason, RowState
from tests.conftest import SandboxFactory
from tests.helpers import HEADER, bulkimport, customers, good_rows, start_process, target

# A program writing an export: its lines, then the first part of one more line, flushed; a
# pause; then the rest of it. It prints "paused" when the half line is on disk.
WRITER = """
import sys, time
path, pause, rest = sys.argv[1], float(sys.argv[2]), sys.argv[3]
lines = sys.stdin.read()
with open(path, "w", encoding="utf-8", newline="") as out:
    out.write(lines)
    out.write("停1000,1372")
    out.flush()
    print("paused", flush=True)
    deadline = time.monotonic() + pause
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if rest == "drip":  # a byte now and then: the file never settles
            out.write("0")
            out.flush()
    if rest != "drip":
        out.write(rest)
"""


async def start_writer(path: Path, pause_s: float, rest: str) -> asyncio.subprocess.Process:
    """A writer process that has written the head of ``path`` and paused mid-line."""
    body = "\n".join(["name,phone1", "Ann,13800000001", "Bob,13800000002"]) + "\n"
    proc = await start_process(
        sys.executable,
        "-c",
        WRITER,
        str(path),
        str(pause_s),
        rest,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(body.encode())
    proc.stdin.close()
    assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"paused\n"
    return proc


async def test_run_waits_for_a_writer_paused_mid_line_and_loads_the_line_whole(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory()
    path = tmp_path / "export.csv"
    writer = await start_writer(path, 1.5, "0001000\n")
    assert path.read_bytes().endswith("停1000,1372".encode())
    result = await bulkimport(
        "run", str(path), *target(sandbox), "--rate", "0", "--json", cwd=tmp_path
    )
    assert result.code == 0, result.err
    assert await writer.wait() == 0
    summary = result.json()
    assert summary["counts"]["done"] == 3
    phones = sorted(str(customer) for customer in await customers(sandbox))
    assert any("13720001000" in held for held in phones), phones
    assert not any("'1372'" in held or '"1372"' in held for held in phones), phones


async def test_a_file_still_changing_after_the_wait_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(complete, "SETTLE_SECONDS", 0.5)
    monkeypatch.setattr(complete, "WAIT_SECONDS", 1.5)
    path = tmp_path / "export.csv"
    writer = await start_writer(path, 30, "drip")
    with pytest.raises(InputError) as info:
        await asyncio.to_thread(check_file, path, None, CheckOptions())
    message = str(info.value)
    assert message.startswith(f"{path}: still being written")
    assert "try again" in message and "\n" not in message
    assert writer.returncode is None  # it was still writing: the refusal was no timeout


async def test_a_paused_writer_that_resumes_within_the_wait_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(complete, "SETTLE_SECONDS", 5.0)
    path = tmp_path / "export.csv"
    writer = await start_writer(path, 0.5, "0001000\nCid,13800000003\n")
    report = await asyncio.to_thread(check_file, path, None, CheckOptions())
    assert await writer.wait() == 0
    assert report.clean and report.records == 4
    assert report.last_line == 5


def test_a_short_last_line_without_a_line_end_is_held_back_however_old(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    path.write_bytes(f"{HEADER}\n{good_rows(2)[0]}\n{good_rows(2)[1]}\nCarl,1372".encode())
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    fmt = sniff_format(path)
    rows = [row for batch in read_batches(path, fmt, batch_rows=1) for row in batch.rows]
    last = rows[-1]
    assert (last.line, last.state, last.reason) == (
        4,
        RowState.INVALID,
        InvalidReason.INCOMPLETE_LINE,
    )
    assert last.cells == ("Carl", "1372")
    assert (last.message or "").startswith("incomplete line: the file ends inside it")
    assert [row.state for row in rows[:2]] == [RowState.PENDING] * 2
    report = check_file(path, None, CheckOptions())
    assert [g.code for g in report.groups if g.problem] == ["invalid-incomplete-line"]


@pytest.mark.parametrize(
    "ending",
    [
        b"Carl,13800000003",  # every cell of the header: the end of the file
        b"Carl,13800000003\n",
        b"Carl,1372\n",  # a short line that ends: a wrong number of cells, not incomplete
    ],
)
def test_a_file_that_simply_ends_is_read(tmp_path: Path, ending: bytes) -> None:
    path = tmp_path / "old.csv"
    path.write_bytes(b"name,phone1\nAnn,13800000001\n" + ending)
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    complete.wait_until_written(path)  # at once: the file is old
    fmt = sniff_format(path)
    rows = [row for batch in read_batches(path, fmt) for row in batch.rows]
    assert rows[-1].cells[0] == "Carl"
    assert rows[-1].reason is not InvalidReason.INCOMPLETE_LINE


def test_a_recent_file_that_ends_in_a_line_end_is_not_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "new.csv"
    path.write_bytes(b"name,phone1\nAnn,13800000001\r\n")
    started = time.monotonic()
    complete.wait_until_written(path)
    assert time.monotonic() - started < complete.SETTLE_SECONDS
    wide = tmp_path / "wide.csv"
    wide.write_bytes("name,phone1\nAnn,1\n".encode("utf-16-le"))
    assert complete.ends_in_line_end(wide.read_bytes()[-4:])
