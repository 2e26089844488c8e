"""Cron tells a failure from "try later": resume with nothing to do is no error, a "try later"
(exit 75) is not printed as one, and the job counts the runs in a row that ended so.

Through the command line against the sandbox: an outage past ``--max-outage`` (the sandbox's
``outage`` fault) and a send window that closes during the run (built around the current time:
no test depends on the hour).
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import pytest

from bulkimport.sandbox import Faults, SandboxHandle
from bulkimport.sandbox.faults import Outage
from bulkimport.window import SendWindow
from tests.conftest import SandboxFactory
from tests.helpers import HEADER, bulkimport, good_rows, target, write_csv

# --- resume with nothing to do ----------------------------------------------------------------


@pytest.mark.slow
async def test_resume_with_nothing_to_do_exits_0_in_one_line(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # A finished job with a row that needs a person: run says 1, resume has nothing to do.
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(3), "No phone,,x@y.z,C"])
    ran = await bulkimport("run", str(source), *target(sandbox, "--rate", "0"), cwd=tmp_path)
    assert ran.code == 1, ran.err

    latest = await bulkimport("resume", cwd=tmp_path)
    assert (latest.code, latest.err) == (0, "")
    assert latest.out == "nothing to resume: no unfinished job in bulkimport.db\n"
    quiet = await bulkimport("resume", "--quiet", cwd=tmp_path)
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")
    none = await bulkimport("resume", "--json", cwd=tmp_path)
    assert none.code == 0
    assert none.json() == {
        "job": None,
        "nothing_to_do": "nothing to resume: no unfinished job in bulkimport.db",
    }
    named = await bulkimport("resume", "1", cwd=tmp_path)
    assert (named.code, named.err) == (0, "")
    assert named.out == "nothing to resume: job 1 is already finished\n"
    as_json = await bulkimport("resume", "1", "--json", cwd=tmp_path)
    assert as_json.code == 0
    assert (as_json.json()["job"], as_json.json()["state"]) == (1, "finished")
    assert as_json.json()["nothing_to_do"] == "nothing to resume: job 1 is already finished"

    # A job that does not exist stays an error, under --quiet too.
    missing = await bulkimport("resume", "7", "--quiet", cwd=tmp_path)
    assert missing.code == 2
    assert missing.error_lines() == ["Error: no job 7 in bulkimport.db; see bulkimport jobs"]


# --- a URL that never answered --------------------------------------------------------------


async def test_a_url_that_never_answered_waits_as_an_outage_and_asks_whether_it_is_right(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # 502s from the first call on: a server busy at its first start looks the same, so it is
    # an outage (75, resumable, rows pending), but the line names the URL and asks about it.
    sandbox.set_faults(Faults(outage=Outage.BAD_GATEWAY))
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(5)])
    run = ["run", str(source), *target(sandbox, "--rate", "0", "--max-outage", "1s")]
    down = await bulkimport(*run, cwd=tmp_path)
    assert down.code == 75 and down.error_lines() == [], down.err
    (line,) = down.try_later_lines()
    assert f"{sandbox.url} never gave an Import answer since " in line, line
    assert "--max-outage 1s; is the URL right?" in line and "resume --url" in line, line
    shown = await status_json(tmp_path)
    assert (shown["stop_cause"], shown["counts"]["pending"]) == ("outage", 5)  # type: ignore[index]
    # The server comes up: the same command finishes, every row loaded once.
    sandbox.set_faults(Faults())
    up = await bulkimport(*run, cwd=tmp_path)
    assert up.code == 0, up.err


# --- an outage past --max-outage, three runs in a row -----------------------------------------


async def status_json(cwd: Path) -> dict[str, object]:
    shown = await bulkimport("status", "--json", cwd=cwd)
    assert shown.code == 0, shown.err
    result: dict[str, object] = shown.json()
    return result


@pytest.mark.slow
async def test_runs_that_end_try_later_are_counted_until_one_finishes(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # The URL answered before (last night's load): what follows is an outage, not a wrong URL.
    first = await bulkimport(
        "run", str(write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(5)])),
        *target(sandbox, "--rate", "0"), cwd=tmp_path,
    )  # fmt: skip
    assert first.code == 0, first.err
    assert (await status_json(tmp_path))["try_later_runs"] == 0

    sandbox.set_faults(Faults(outage=Outage.BAD_GATEWAY))
    tonight = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(20, start=100)])
    log = tmp_path / "nightly.log"
    run = ["run", str(tonight), *target(sandbox, "--rate", "0", "--max-outage", "1s")]
    run += ["--log", str(log), "--log-format", "json"]
    started = time.time()
    since = None
    for night in (1, 2, 3):
        quiet = await bulkimport(*run, "--quiet", cwd=tmp_path)
        # Exit 75, and not a word: cron mails whatever is printed.
        assert (quiet.code, quiet.out, quiet.err) == (75, "", ""), night
        shown = await status_json(tmp_path)
        assert (shown["job"], shown["stop_cause"]) == (2, "outage")
        assert shown["try_later_runs"] == night
        since = since or shown["try_later_since"]
        assert shown["try_later_since"] == since  # since the first of them ended
    assert isinstance(since, float) and started <= since <= time.time()
    # What the terminal did not say, the log did: the outage, and each stop, as no error.
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    stops = [e for e in events if e["event"] == "stop"]
    assert [(e["cause"], e["level"]) for e in stops] == [("outage", "warning")] * 3
    assert len([e for e in events if e["event"] == "outage"]) == 3
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(since))

    # Without --quiet: what happened, once, and not as an error.
    loud = await bulkimport(*run, cwd=tmp_path)
    assert loud.code == 75 and loud.error_lines() == [], loud.err
    (line,) = loud.try_later_lines()
    assert "did not answer" in line and "--max-outage 1s" in line, line
    assert line.endswith(
        f': bulkimport resume 2 (ended "try later" 4 runs in a row, since {when})'
    ), line
    status = await bulkimport("status", cwd=tmp_path)
    assert f'  later   ended "try later" 4 runs in a row, since {when} (exit 75)' in (
        status.out.splitlines()
    ), status.out
    listed = await bulkimport("jobs", cwd=tmp_path)
    [job2] = [row for row in listed.out.splitlines() if row.lstrip().startswith("2 ")]
    assert job2.endswith(f'[ended "try later" 4 runs in a row, since {when}]'), job2
    [job1] = [row for row in listed.out.splitlines() if row.lstrip().startswith("1 ")]
    assert "try later" not in job1

    # A run that finishes ends the count.
    sandbox.set_faults(Faults())
    done = await bulkimport(*run, "--quiet", cwd=tmp_path)
    assert (done.code, done.err) == (0, "")
    shown = await status_json(tmp_path)
    assert (shown["job"], shown["state"]) == (2, "finished")
    assert (shown["try_later_runs"], shown["try_later_since"]) == (0, None)
    assert "  later " not in (await bulkimport("status", cwd=tmp_path)).out
    assert "try later" not in (await bulkimport("jobs", cwd=tmp_path)).out


async def test_a_runner_busy_under_quiet_says_nothing(tmp_path: Path) -> None:
    from bulkimport.storage.sqlite import SqliteStorage

    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(2)])
    options = ["--url", "http://127.0.0.1:9/", "--org", "o", "--user", "u", "--campaign", "1"]
    queue = await SqliteStorage.open(tmp_path / "bulkimport.db")
    try:
        async with queue.runner():
            quiet = await bulkimport("run", str(source), *options, "--quiet", cwd=tmp_path)
            loud = await bulkimport("run", str(source), *options, cwd=tmp_path)
    finally:
        await queue.close()
    assert (quiet.code, quiet.out, quiet.err) == (75, "", "")
    assert loud.code == 75 and loud.error_lines() == []
    (line,) = loud.try_later_lines()
    assert "another bulkimport is already working on" in line


# --- a send window that closes during the run -----------------------------------------------


def window_closing_soon() -> SendWindow:
    """A window open for six hours before now, closing at the next whole minute at least five
    seconds away (a window's edges are whole minutes): open now, closed within 65 s."""
    now = datetime.datetime.now()
    end = (now + datetime.timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (end - now).total_seconds() < 5:
        end += datetime.timedelta(minutes=1)
    window = SendWindow((now - datetime.timedelta(hours=6)).time().replace(second=0), end.time())
    assert window.is_open(now.timestamp()) and window.closes_at(now.timestamp()) == (
        end.timestamp()
    )
    return window


@pytest.mark.slow
async def test_a_window_that_closes_is_try_later_and_counted(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    # Slow answers, one at a time: the file cannot be sent before the window closes.
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.05))
    window = window_closing_soon()
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(3000)])
    closed = await bulkimport(
        "run", str(source), *target(sandbox, "--rate", "20", "--concurrency", "1"),
        "--window", str(window), "--quiet", cwd=tmp_path, timeout_s=180,
    )  # fmt: skip
    assert (closed.code, closed.out, closed.err) == (75, "", "")
    shown = await status_json(tmp_path)
    assert (shown["state"], shown["stop_cause"]) == ("interrupted", "window")
    assert shown["try_later_runs"] == 1
    counts = shown["counts"]
    assert isinstance(counts, dict) and 0 < counts["done"] < 3000 and counts["failed"] == 0
    status = await bulkimport("status", cwd=tmp_path)
    assert '  later   the last run ended "try later", at ' in status.out, status.out
    assert f"the send window {window} closed" in status.out
