"""Nightly loads end to end: a profile, no prompts, a JSON log, incremental second nights."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
import sqlite3
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bulkimport.sandbox import Faults, SandboxHandle
from bulkimport.window import SendWindow
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    ROOT,
    bulkimport,
    customers,
    get_json,
    good_rows,
    query,
    spawn,
    stats,
    target,
    write_csv,
)


def profile(path: Path, sandbox: SandboxHandle, **more: Any) -> Path:
    settings: dict[str, Any] = {
        "url": sandbox.url, "org": "demo", "user": "admin", "campaign": "1",
        "dupway": "update", "skip_unchanged": True, "rate": 0, "concurrency": 4,
        "log": str(path.parent / "nightly.log"), "log_format": "json", **more,
    }  # fmt: skip
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    os.chmod(path, 0o600)
    return path


def log_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def reset_stats(sandbox: SandboxHandle) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sandbox.base_url}/sandbox/reset-stats", json={}) as response,
    ):
        assert response.status == 200, await response.text()


async def test_second_night_sends_only_new_and_changed_rows(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    config = profile(tmp_path / "nightly.toml", sandbox)
    night1 = good_rows(400)
    first = await bulkimport(
        "run", str(write_csv(tmp_path / "leads.csv", [HEADER, *night1])),
        "--config", str(config), "--json", cwd=tmp_path,
    )  # fmt: skip
    assert first.code == 0, first.err
    assert first.json()["counts"]["done"] == 400

    # Tonight: the same export, 10 rows changed (a new city) and 10 new rows: 5 %.
    night2 = [
        line.replace(",City ", ",Moved ") if i % 40 == 0 else line for i, line in enumerate(night1)
    ]
    night2 += good_rows(10, start=1000)
    await reset_stats(sandbox)
    second = await bulkimport(
        "run", str(write_csv(tmp_path / "leads.csv", [HEADER, *night2])),
        "--config", str(config), "--json", cwd=tmp_path,
    )  # fmt: skip
    assert second.code == 0, second.err
    counts = second.json()["counts"]
    assert (counts["skipped"], counts["done"]) == (390, 20)
    assert "390 rows skipped" in second.err
    assert (await get_json(sandbox, "/sandbox/stats"))["requests"] == 20
    writes = {c["key"]: c["writes"] for c in await customers(sandbox)}
    changed = {f"139{i:08d}" for i in range(0, 400, 40)}
    assert len(writes) == 410
    assert {k for k, n in writes.items() if n == 2} == changed
    skip_events = [
        e for e in log_events(tmp_path / "nightly.log") if e["event"] == "skip_unchanged"
    ]
    assert skip_events[-1]["skipped"] == 390

    # A third night with nothing new sends nothing; rows repeated inside one file are not
    # "unchanged since an earlier job" and are sent (the server answers duplicate).
    await reset_stats(sandbox)
    twice = good_rows(2, start=2000) * 2
    third = await bulkimport(
        "run", str(write_csv(tmp_path / "leads.csv", [HEADER, *night2, *twice])),
        "--config", str(config), "--dupway", "skip", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert third.code == 0, third.err
    counts = third.json()["counts"]
    assert (counts["skipped"], counts["done"], counts["duplicate"]) == (410, 2, 2)
    assert (await get_json(sandbox, "/sandbox/stats"))["requests"] == 4


async def test_json_log_carries_start_progress_stop_and_summary(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.02))
    config = profile(tmp_path / "nightly.toml", sandbox, concurrency=2, log_interval=0.1)
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(60)])
    refused = await bulkimport(
        "run", str(source), "--config", str(config), cwd=tmp_path, password="wrong"
    )
    assert refused.code == 3
    done = await bulkimport("run", str(source), "--config", str(config), cwd=tmp_path)
    assert done.code == 0, done.err
    events = log_events(tmp_path / "nightly.log")
    assert all({"ts", "level", "event", "message"} <= set(e) for e in events)
    names = [e["event"] for e in events]
    assert names[0] == "start"
    assert "stop" in names and "progress" in names and names[-1] == "summary"
    start = events[0]
    assert start["settings"]["campaign"] == "1" and start["settings"]["rate"] == 0
    stop = next(e for e in events if e["event"] == "stop")
    assert stop["state"] == "stopped" and stop["level"] == "error"
    assert "password" in stop["reason"]
    progress = [e for e in events if e["event"] == "progress" and e["phase"] == "sending"]
    assert progress and all(0 <= e["settled"] <= e["total"] == 60 for e in progress)
    summary = events[-1]
    assert summary["state"] == "finished" and summary["counts"]["done"] == 60
    # The terminal got no progress lines it did not ask for twice, and no JSON.
    assert "{" not in done.err


async def test_runner_busy_is_logged_and_exits_75(tmp_path: Path, sandbox: SandboxHandle) -> None:
    config = profile(tmp_path / "nightly.toml", sandbox)
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(2)])
    from bulkimport.storage.sqlite import SqliteStorage

    queue = await SqliteStorage.open(tmp_path / "bulkimport.db")
    try:
        async with queue.runner():
            busy = await bulkimport("run", str(source), "--config", str(config), cwd=tmp_path)
    finally:
        await queue.close()
    assert busy.code == 75
    assert busy.err.count("already working on") == 1
    (error,) = [e for e in log_events(tmp_path / "nightly.log") if e["event"] == "error"]
    assert error["exit_code"] == 75


def sample_window() -> SendWindow:
    with (ROOT / "samples" / "nightly.toml").open("rb") as file:
        return SendWindow.parse(tomllib.load(file)["window"])


def test_the_sample_nightly_profile_sends_by_night_only() -> None:
    window = sample_window()
    night = datetime.datetime(2026, 11, 29, 23, 0).timestamp()
    day = datetime.datetime(2026, 11, 30, 10, 0).timestamp()
    assert window.is_open(night) and not window.is_open(day)
    assert window.closes_at(night) == datetime.datetime(2026, 11, 30, 6, 0).timestamp()


async def test_the_sample_nightly_profile_runs_the_sample_file(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # Only what cannot be the same here: the server, where files go, and the send window:
    # the sample's sends by night only, and this test must pass at any hour. A window of the
    # six hours either side of now is open now (the sample's hours: the test above).
    now = datetime.datetime.now()
    around_now = SendWindow(
        (now - datetime.timedelta(hours=6)).time().replace(second=0, microsecond=0),
        (now + datetime.timedelta(hours=6)).time().replace(second=0, microsecond=0),
    )
    assert around_now.is_open(now.timestamp()) and sample_window() != around_now
    result = await bulkimport(
        "run", str(ROOT / "samples" / "leads.csv"),
        "--config", str(ROOT / "samples" / "nightly.toml"), "--window", str(around_now),
        "--url", sandbox.url, "--db", "n.db", "--report", "failed.csv", "--log", "n.log",
        "--json", cwd=tmp_path, password=None, env={"BULKIMPORT_CC_PASSWORD": "secret"},
    )  # fmt: skip
    assert result.code == 1, result.err  # the sample holds bad rows on purpose
    summary = result.json()
    assert summary["counts"]["done"] > 250
    assert summary["report"] == str(tmp_path / "failed.csv")
    assert (tmp_path / "failed.csv").exists()
    with sqlite3.connect(tmp_path / "n.db") as conn:
        stored = json.loads(conn.execute("SELECT settings_json FROM jobs").fetchone()[0])
    assert stored["skip_unchanged"] is True and stored["password_env"] == "BULKIMPORT_CC_PASSWORD"
    assert stored["window"] == str(around_now)  # the command line wins over the profile
    held = await customers(sandbox)
    assert held[0]["fields"].get("customername")
    assert all("address" not in c["fields"] for c in held)


# --- incremental loads keep the server up to date -------------------------------------------------


async def test_a_row_changed_back_is_sent_again(tmp_path: Path, sandbox: SandboxHandle) -> None:
    # Night 1 loads A, night 2 changes five customers to B, night 3 loads A again: those five
    # hold B on the server, so they are sent; the others are skipped.
    config = profile(tmp_path / "nightly.toml", sandbox)
    night_a = good_rows(50)
    night_b = [
        line.replace(",City ", ",Moved ") if i < 5 else line for i, line in enumerate(night_a)
    ]
    for night, rows, sent in ((1, night_a, 50), (2, night_b, 5), (3, night_a, 5)):
        result = await bulkimport(
            "run", str(write_csv(tmp_path / "leads.csv", [HEADER, *rows])),
            "--config", str(config), "--json", cwd=tmp_path,
        )  # fmt: skip
        assert result.code == 0, (night, result.err)
        counts = result.json()["counts"]
        assert (counts["done"], counts["skipped"]) == (sent, 50 - sent), night
    held = {c["key"]: c for c in await customers(sandbox)}
    assert all(not c["fields"]["city"].startswith("Moved") for c in held.values())
    assert [held[f"139{i:08d}"]["writes"] for i in range(7)] == [3, 3, 3, 3, 3, 1, 1]
    assert "45 rows skipped (unchanged since the last record loaded for the same phone1)" in (
        result.err
    )


async def test_the_customer_key_can_be_named(tmp_path: Path, sandbox: SandboxHandle) -> None:
    config = profile(tmp_path / "nightly.toml", sandbox, customer_key="email")
    rows = good_rows(10)
    for _night in (1, 2):
        result = await bulkimport(
            "run", str(write_csv(tmp_path / "leads.csv", [HEADER, *rows])),
            "--config", str(config), "--json", cwd=tmp_path,
        )  # fmt: skip
        assert result.code == 0, result.err
    assert "10 rows skipped (unchanged since the last record loaded for the same email)" in (
        result.err
    )
    # A file without a field that identifies a customer cannot be loaded incrementally.
    no_phone = write_csv(tmp_path / "names.csv", ["name,city", "A,B"])
    refused = await bulkimport(
        "run", str(no_phone), "--config", str(profile(tmp_path / "p.toml", sandbox)),
        cwd=tmp_path,
    )  # fmt: skip
    assert refused.code == 2
    assert refused.error_lines() == [
        "Error: --skip-unchanged: no field identifies a customer in this file (no phone "
        "field); name one with --customer-key FIELD"
    ]


# --- a bounded database ---------------------------------------------------------------------------


async def test_the_nightly_profile_prunes_old_jobs_and_skipping_goes_on(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    config = profile(tmp_path / "nightly.toml", sandbox, prune="1s")
    rows = good_rows(30)
    changed = [line.replace(",City ", ",Moved ") if i < 3 else line for i, line in enumerate(rows)]
    db = tmp_path / "bulkimport.db"
    for night, lines in enumerate((rows, changed, changed), start=1):
        result = await bulkimport(
            "run", str(write_csv(tmp_path / "leads.csv", [HEADER, *lines])),
            "--config", str(config), "--json", cwd=tmp_path,
        )  # fmt: skip
        assert result.code == 0, result.err
        assert result.json()["job"] == night
        # Each night, the jobs of the nights before it are gone, and their rows with them.
        assert [job for (job,) in query(db, "SELECT id FROM jobs")] == [night]
        assert {job for (job,) in query(db, "SELECT DISTINCT job_id FROM rows")} == {night}
        if night > 1:
            assert "pruned 1 job finished before" in result.err
        await asyncio.sleep(1.1)
    # Night 3 sent nothing: night 2's records outlived its job.
    assert (result.json()["counts"]["skipped"], result.json()["counts"]["done"]) == (30, 0)
    prune_events = [e for e in log_events(tmp_path / "nightly.log") if e["event"] == "prune"]
    assert [e["jobs"] for e in prune_events] == [[1], [2]]


@pytest.mark.slow
async def test_prune_command_drops_finished_jobs_and_their_reports(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    db = tmp_path / "nightly.db"
    base = ["--db", str(db), *target(sandbox), "--rate", "0"]
    failing = write_csv(tmp_path / "bad.csv", [HEADER, *good_rows(5), "No phone,,x@y.z,C"])
    first = await bulkimport("run", str(failing), *base, "--json", cwd=tmp_path)
    assert first.code == 1
    assert first.json()["report"] == str(tmp_path / "nightly-job-1-failed.csv")
    assert (tmp_path / "nightly-job-1-failed.csv").exists()
    waiting = write_csv(tmp_path / "later.csv", [HEADER, *good_rows(5, start=10)])
    staged = await bulkimport("stage", str(waiting), *base, cwd=tmp_path)
    assert staged.code == 0

    nothing = await bulkimport("prune", "--older-than", "1h", "--db", str(db), cwd=tmp_path)
    assert nothing.code == 0, nothing.err
    assert "nothing to prune" in nothing.out
    pruned = await bulkimport("prune", "--older-than", "0s", "--db", str(db), cwd=tmp_path)
    assert pruned.code == 0, pruned.err
    assert pruned.out.startswith("pruned 1 job finished before ")
    assert "(1)" in pruned.out and "MB given back" in pruned.out
    assert not (tmp_path / "nightly-job-1-failed.csv").exists()
    listed = (await bulkimport("jobs", "--db", str(db), "--json", cwd=tmp_path)).json()
    assert [(job["job"], job["state"]) for job in listed["jobs"]] == [(2, "ready")]

    usage = await bulkimport("prune", "--db", str(db), cwd=tmp_path)
    assert usage.code == 2
    assert usage.error_lines() == [
        'Error: give --older-than DURATION (e.g. 30d), or prune = "30d" in the profile'
    ]
    missing = await bulkimport("prune", "--older-than", "1d", "--db", "none.db", cwd=tmp_path)
    assert missing.code == 2 and not (tmp_path / "none.db").exists()


# --- the job resume picks -------------------------------------------------------------------------


async def test_a_job_refused_for_its_target_is_superseded_by_a_load_that_got_through(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(10)])
    options = ["--url", sandbox.url, "--org", "demo", "--user", "admin", "--rate", "0"]
    wrong = await bulkimport("run", str(source), *options, "--campaign", "99", cwd=tmp_path)
    assert wrong.code == 3, wrong.err
    listed = await bulkimport("jobs", cwd=tmp_path)
    assert "leads.csv → " + f"{sandbox.url} (org demo, campaign 99)" in listed.out

    right = await bulkimport("run", str(source), *options, "--campaign", "1", cwd=tmp_path)
    assert right.code == 0, right.err
    assert (
        f"job 1 (stopped, the same file to {sandbox.url} (org demo, campaign 99)) is "
        "superseded by job 2: resume no longer picks it"
    ) in right.err
    listed = await bulkimport("jobs", cwd=tmp_path)
    lines = listed.out.splitlines()
    assert "campaign 99)  [superseded by 2]" in lines[1] and "campaign 1)" in lines[2]

    # resume no longer exits 3 on the old job, every night: it has nothing to do (exit 0).
    resumed = await bulkimport("resume", cwd=tmp_path)
    assert (resumed.code, resumed.err) == (0, "")
    assert resumed.out == "nothing to resume: no unfinished job in bulkimport.db\n"
    # Named, it is resumed as asked (its target may have been fixed on the server since).
    named = await bulkimport("resume", "1", cwd=tmp_path)
    assert named.code == 3
    assert "job 1 was superseded by job 2; going on as asked" in named.err


async def test_resume_says_which_job_it_chose_and_why(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(10)])
    config = profile(tmp_path / "nightly.toml", sandbox, skip_unchanged=False)
    staged = await bulkimport("stage", str(source), "--config", str(config), cwd=tmp_path)
    assert staged.code == 0, staged.err
    resumed = await bulkimport("resume", "--config", str(config), cwd=tmp_path)
    assert resumed.code == 0, resumed.err
    assert "resuming job 1 (the latest unfinished job, ready): 10 pending" in resumed.err


# --- the log names the job a signal stopped -------------------------------------------------------


@pytest.mark.posix_only("a signal sent to another process (Windows has console events instead)")
async def test_a_stop_is_logged_with_its_job_and_its_signal(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.05))
    config = profile(tmp_path / "nightly.toml", sandbox, concurrency=2)
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(300)])
    proc = await spawn(
        "run", str(source), "--config", str(config), cwd=tmp_path,
        stderr_path=tmp_path / "err.txt",
    )  # fmt: skip
    for _ in range(600):
        await asyncio.sleep(0.02)
        if (await stats(sandbox))["requests"] >= 10:
            break
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 30) == 130
    [stop] = [e for e in log_events(tmp_path / "nightly.log") if e.get("reason") == "signal"]
    assert (stop["event"], stop["job"], stop["signal"]) == ("stop", 1, "SIGTERM")
    assert stop["message"] == (
        "SIGTERM: stopping job 1: finishing the calls in flight (another one quits at once)"
    )
    assert "Ctrl-C" not in (tmp_path / "err.txt").read_text()


@pytest.mark.posix_only("a signal sent to another process (Windows has console events instead)")
async def test_tonights_export_supersedes_last_nights_unfinished_job(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    # Last night's run stopped before its end (the send window closed, say); tonight's export
    # holds every customer it had left, so once tonight's job is done, last night's is
    # superseded: nothing it holds is lost, and resume and prune no longer wait for it.
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.05))
    config = profile(tmp_path / "nightly.toml", sandbox, concurrency=2, prune="1s")
    rows = good_rows(200)
    proc = await spawn(
        "run", str(write_csv(tmp_path / "leads.csv", [HEADER, *rows])), "--config", str(config),
        cwd=tmp_path,
    )  # fmt: skip
    for _ in range(600):
        await asyncio.sleep(0.02)
        if (await stats(sandbox))["requests"] >= 10:
            break
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 30) == 130

    sandbox.set_faults(Faults())
    tonight = [line.replace(",City ", ",Moved ") if i < 3 else line for i, line in enumerate(rows)]
    result = await bulkimport(
        "run", str(write_csv(tmp_path / "leads.csv", [HEADER, *tonight])),
        "--config", str(config), "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert (
        "job 1 (interrupted, an earlier export of the same file; every row it had left is for "
        "a customer job 2 loaded) is superseded by job 2: resume no longer picks it"
    ) in result.err
    held = {c["key"]: c for c in await customers(sandbox)}
    assert len(held) == 200 and held["13900000000"]["fields"]["city"].startswith("Moved")
    assert (await bulkimport("resume", "--config", str(config), cwd=tmp_path)).code == 0
    await asyncio.sleep(1.1)
    pruned = await bulkimport("prune", "--config", str(config), cwd=tmp_path)
    assert pruned.out.startswith("pruned 2 jobs finished before "), pruned.out


async def test_a_profile_that_prunes_still_lets_an_old_job_be_retried(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(backmsg85_rate=0.3, seed=3))
    config = profile(
        tmp_path / "nightly.toml", sandbox, prune="1s", max_attempts=1, concurrency=1,
        skip_unchanged=False,
    )  # fmt: skip
    source = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(10)])
    first = await bulkimport("run", str(source), "--config", str(config), cwd=tmp_path)
    assert first.code == 1, first.err
    await asyncio.sleep(1.1)
    sandbox.set_faults(Faults())
    retried = await bulkimport("retry", "1", "--config", str(config), "--json", cwd=tmp_path)
    assert retried.code == 0, retried.err
    assert retried.json()["counts"]["done"] == 10
