"""The send window (``--window 20:00-07:00``): its hours, waiting for it to open, stopping when
it closes, and what the command line says and exits with.

The dispatcher runs on a real queue with a wall clock that starts at 19:59 and runs sixty
times faster than time (a minute a second): a window of two minutes lasts two seconds.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bulkimport.errors import ExitCode, WindowClosed
from bulkimport.jobs.summary import JobSummary
from bulkimport.messages import window_reason
from bulkimport.protocol import Outcome, classify_answer, format_answer, parse_answer
from bulkimport.rows import FileIdentity, NewRow
from bulkimport.send import (
    Dispatcher,
    DispatchOptions,
    Listeners,
    Request,
    ScriptedTransport,
    SendEnd,
    Watch,
    WatchEvent,
)
from bulkimport.settings import SendSettings
from bulkimport.states import JobState, RowState, StopCause
from bulkimport.storage.sqlite import SqliteStorage
from bulkimport.window import SendWindow
from tests.helpers import a_runner, bulkimport, job_target, spawn, write_csv

SPEED = 60.0  # wall seconds per second
FILE = FileIdentity("/data/leads.csv", 1, 1, "ab" * 32)


def at(hours: int, minutes: int, seconds: float = 0.0, *, day: int = 29) -> float:
    """Unix seconds of a local time on 2026-11-{day}."""
    moment = datetime.datetime(2026, 11, day, hours, minutes)
    return moment.timestamp() + seconds


# --- the hours --------------------------------------------------------------------------------


def test_a_window_parses_and_prints_back() -> None:
    window = SendWindow.parse(" 20:00 - 7:00 ")
    assert (window.start, window.end) == (datetime.time(20), datetime.time(7))
    assert str(window) == "20:00-07:00"
    assert SendWindow.parse(str(window)) == window


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("20-07", "not a window of hours"),
        ("20:00", "not a window of hours"),
        ("25:00-07:00", "25:00 is not a time of day"),
        ("20:60-07:00", "20:60 is not a time of day"),
        ("20:00-20:00", "starts when it ends"),
    ],
)
def test_a_bad_window_says_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        SendWindow.parse(text)


def test_a_night_window_is_open_across_midnight_and_closed_by_day() -> None:
    night = SendWindow.parse("20:00-07:00")
    assert not night.is_open(at(19, 59, 59.9))
    assert night.is_open(at(20, 0))
    assert night.is_open(at(23, 59, 59))
    assert night.is_open(at(0, 0, day=30))
    assert night.is_open(at(6, 59, 59, day=30))
    assert not night.is_open(at(7, 0, day=30))
    assert not night.is_open(at(12, 0))
    # Opens at 20:00 the same day, or the next day once past it.
    assert night.opens_at(at(12, 0)) == at(20, 0)
    assert night.opens_at(at(21, 0)) == at(21, 0)  # open: now
    assert night.closes_at(at(21, 0)) == at(7, 0, day=30)
    assert night.closes_at(at(3, 0, day=30)) == at(7, 0, day=30)


def test_a_day_window() -> None:
    day = SendWindow.parse("09:30-17:00")
    assert not day.is_open(at(9, 29, 59))
    assert day.is_open(at(9, 30))
    assert not day.is_open(at(17, 0))
    assert day.opens_at(at(17, 0)) == at(9, 30, day=30)
    assert day.opens_at(at(8, 0)) == at(9, 30)


def test_a_job_stopped_by_its_window_exits_75_and_says_when_it_goes_on() -> None:
    window = SendWindow.parse("20:00-07:00")
    reason = window_reason(window, at(7, 0, 1, day=30))
    assert reason == (
        "the send window 20:00-07:00 closed; the job resumes with the same command, "
        "sending from 20:00"
    )
    summary = JobSummary(
        job=3,
        state=JobState.INTERRUPTED,
        file="leads.csv",
        target=job_target(),
        total=10,
        counts={RowState.PENDING: 10},
        resent_unknown=0,
        message=reason,
        stop_cause=StopCause.WINDOW,
    )
    assert summary.exit_code is ExitCode.TRY_LATER
    with pytest.raises(WindowClosed, match="sending from 20:00"):
        summary.raise_for_state()


# --- the dispatcher on a fast clock ------------------------------------------------------------


class FastWall:
    """A wall clock that starts at ``start_s`` and runs ``SPEED`` times faster than time."""

    def __init__(self, start_s: float) -> None:
        self.start_s = start_s
        self.origin = time.monotonic()

    def __call__(self) -> float:
        return self.start_s + (time.monotonic() - self.origin) * SPEED


def done(wall: FastWall, starts: list[float]) -> ScriptedTransport:
    """Answers every call at once, done; puts the wall time each call started in ``starts``."""
    answer = parse_answer(format_answer(True, "BackMsg_84"))
    assert answer is not None

    def server(request: Request) -> Outcome:
        starts.append(wall())
        return classify_answer(answer)

    return ScriptedTransport(server)


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    async with await SqliteStorage.open(tmp_path / "queue.db") as opened:
        yield opened


async def job_of(queue: SqliteStorage, rows: int) -> int:
    job = await queue.jobs.create(FILE, job_target(), {}, "{}")
    new = [
        NewRow(line, RowState.PENDING, f"phone1=138{line:08d}", (f"138{line:08d}",))
        for line in range(2, rows + 2)
    ]
    await queue.reading.add_rows(job.id, new, read_offset=100, read_line=rows + 2)
    await queue.reading.finish(job.id)
    return job.id


async def test_nothing_goes_before_the_window_opens_and_sending_stops_when_it_closes(
    queue: SqliteStorage,
) -> None:
    job_id = await job_of(queue, 2000)
    wall = FastWall(at(19, 59, 30))  # the window opens in 30 wall seconds: half a second
    starts: list[float] = []
    transport = done(wall, starts)
    told: list[WatchEvent] = []

    async def on_watch(event: WatchEvent) -> None:
        told.append(event)

    settings = SendSettings(rate_per_s=200, concurrency=4, window=SendWindow.parse("20:00-20:02"))
    async with asyncio.timeout(30):
        result = await Dispatcher(
            queue.sending,
            job_id,
            transport,
            settings,
            runner=a_runner(),
            options=DispatchOptions(wall_clock=wall),
            listeners=Listeners(on_watch=on_watch),
        ).run()

    # It waited, saying until when; it sent only inside the window; the window closed it.
    assert [event.kind for event in told[:2]] == [Watch.WINDOW_WAIT, Watch.WINDOW_OPEN]
    assert told[0].next_try_s == at(20, 0)
    assert starts, "nothing was sent in the window"
    assert min(starts) >= at(20, 0)
    assert max(starts) < at(20, 2)
    assert (result.end, result.cause) == (SendEnd.STOPPED, StopCause.WINDOW)
    # Two seconds at 200 calls/s: some rows went, the rest wait for the next window.
    counts = await queue.reports.counts(job_id)
    assert counts[RowState.DONE] == len(starts) == result.counts.done
    assert counts[RowState.PENDING] == 2000 - len(starts)
    assert counts[RowState.IN_FLIGHT] == 0


async def test_a_stop_while_waiting_for_the_window_sends_nothing(queue: SqliteStorage) -> None:
    job_id = await job_of(queue, 10)
    wall = FastWall(at(8, 0))  # twelve hours before the window: twelve minutes here
    starts: list[float] = []
    transport = done(wall, starts)
    settings = SendSettings(rate_per_s=0, window=SendWindow.parse("20:00-07:00"))
    dispatcher = Dispatcher(
        queue.sending,
        job_id,
        transport,
        settings,
        runner=a_runner(),
        options=DispatchOptions(wall_clock=wall),
    )
    running = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0.3)
    dispatcher.stop()
    async with asyncio.timeout(5):
        result = await running
    assert (result.end, result.cause, starts) == (SendEnd.STOPPED, StopCause.SIGNAL, [])
    assert (await queue.reports.counts(job_id))[RowState.PENDING] == 10


# --- the command line, in real time ------------------------------------------------------------


@pytest.mark.posix_only("a signal sent to another process (Windows has console events instead)")
async def test_run_outside_its_window_waits_says_until_when_and_status_shows_it(
    tmp_path: Path,
) -> None:
    # A window that opens in two hours: the runner waits for it. (Nothing listens at the URL;
    # nothing may be sent anyway.)
    now = datetime.datetime.now()
    opens = (now + datetime.timedelta(hours=2)).replace(second=0, microsecond=0)
    closes = opens + datetime.timedelta(hours=1)
    window = f"{opens:%H:%M}-{closes:%H:%M}"
    write_csv(tmp_path / "leads.csv", ["name,phone1", "张三,13800000001", "李四,13800000002"])
    errors = tmp_path / "runner.err"
    runner = await spawn(
        "run", "leads.csv", "--url", "http://127.0.0.1:9/asterccinterfaces", "--org", "demo",
        "--user", "admin", "--campaign", "1", "--window", window,
        cwd=tmp_path, stderr_path=errors,
    )  # fmt: skip
    try:
        said = f"outside the send window, sending at {opens:%H:%M}"
        deadline = time.monotonic() + 20
        while said not in errors.read_text(encoding="utf-8"):
            assert runner.returncode is None, errors.read_text(encoding="utf-8")
            assert time.monotonic() < deadline, errors.read_text(encoding="utf-8")
            await asyncio.sleep(0.05)
        status = await bulkimport("status", cwd=tmp_path)
        assert status.code == 0, status.err
        assert f"  window  {said}" in status.out.splitlines()
        as_json = json.loads((await bulkimport("status", "--json", cwd=tmp_path)).out)
        assert as_json["state"] == "running"
        assert as_json["window_opens_at"] == opens.timestamp()
    finally:
        runner.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(runner.wait(), 20)
    # Ctrl-C while waiting: interrupted, nothing sent, resumable with the same command.
    assert code == ExitCode.INTERRUPTED, errors.read_text(encoding="utf-8")
    after = json.loads((await bulkimport("status", "--json", cwd=tmp_path)).out)
    assert (after["state"], after["counts"]["pending"], after["window_opens_at"]) == (
        "interrupted",
        2,
        None,
    )
