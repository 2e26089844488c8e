"""A server that is there but busy or away for a while is never taken for a wrong URL, and
a wrong scheme is: run as a user runs it (a real ``bulkimport`` process) against the sandbox
behind ``tests/front.py`` (nginx's answers when php-fpm is busy: a lock held during a
backup, its backlog full, a maintenance page, plain http to an HTTPS port).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bulkimport.sandbox import SandboxHandle
from tests.front import Front
from tests.helpers import (
    HEADER,
    bulkimport,
    customers,
    good_rows,
    query,
    spawn,
    write_csv,
    write_figures,
)


def leads(work: Path, rows: int) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    return write_csv(work / "leads.csv", [HEADER, *good_rows(rows)])


def options(url: str) -> list[str]:
    return ["--url", url, "--org", "demo", "--user", "admin", "--campaign", "1"]


def states_and_attempts(db: Path) -> dict[tuple[str, int], int]:
    rows = query(db, "SELECT state, attempts, COUNT(*) FROM rows GROUP BY 1, 2")
    return {(state, attempts): n for state, attempts, n in rows}


def states(db: Path) -> dict[str, int]:
    return {state: n for state, n in query(db, "SELECT state, COUNT(*) FROM rows GROUP BY 1")}


async def until(front: Front, calls: int, proc: asyncio.subprocess.Process) -> None:
    """Wait until ``front`` answered ``calls`` calls (the job still running)."""
    for _ in range(30_000):
        if len(front.answers) >= calls:
            return
        assert proc.returncode is None, "the job ended too soon"
        await asyncio.sleep(0.002)
    raise AssertionError("the job sent too little")


async def assert_loaded_once(sandbox: SandboxHandle, rows: int) -> None:
    held = await customers(sandbox)
    assert len(held) == rows and {c["writes"] for c in held} == {1}


# --- the wrong scheme --------------------------------------------------------------------------


async def test_plain_http_to_an_https_port_is_a_url_error_and_resume_url_fixes_it(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # nginx answers a plain-http call to its HTTPS port with a 400 page; once read as
    # "request too big", the rows were rejected (and stayed so after the URL was fixed).
    rows = 40
    work = tmp_path / "job"
    csv_file = leads(work, rows)
    async with Front(sandbox.url) as front:
        front.mode = "https-port"
        stopped = await bulkimport("run", str(csv_file), *options(front.url), cwd=work)

    assert stopped.code == 3, stopped.err
    (line,) = stopped.error_lines()
    assert front.url in line and "HTTPS port" in line and "use https://" in line, line
    assert f"--url {front.url.replace('http://', 'https://')}" in line, line
    assert "no row was sent or used an attempt" in line and "<" not in line, line
    assert "--method" not in line, line
    db = work / "bulkimport.db"
    assert states_and_attempts(db) == {("pending", 0): rows}  # never rejected

    resumed = await bulkimport("resume", "--url", sandbox.url, "--rate", "0", cwd=work)
    assert resumed.code == 0, resumed.err
    assert states_and_attempts(db) == {("done", 1): rows}
    await assert_loaded_once(sandbox, rows)
    # The job goes to the URL it was resumed with: status shows it, and so does its row.
    shown = await bulkimport("status", cwd=work)
    assert f"target  {sandbox.url} (org demo, campaign 1)" in shown.out, shown.out
    assert front.url not in shown.out
    assert (await bulkimport("status", "--json", cwd=work)).json()["url"] == sandbox.url
    assert query(db, "SELECT target_url FROM jobs") == [(sandbox.url,)]


# --- busy at the first start -------------------------------------------------------------------


@pytest.mark.slow
async def test_a_server_busy_at_the_first_start_is_waited_for_not_taken_for_a_wrong_url(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # A backup holds a lock when the job starts: the first calls wait for it, those beyond
    # php-fpm's backlog get a 502 at once. Before, three 502s made exit 3 ("check --url, no
    # row was sent") while the calls waiting were imported.
    rows = 200
    work = tmp_path / "job"
    csv_file = leads(work, rows)
    stderr = work / "stderr.txt"
    async with Front(sandbox.url) as front:
        front.lock(4.0)
        proc = await spawn(
            "run", str(csv_file), *options(front.url), "--rate", "50",
            cwd=work, stderr_path=stderr,
        )  # fmt: skip
        code = await asyncio.wait_for(proc.wait(), 120)
        statuses = [status for _, status in front.answers]

    err = stderr.read_text()
    assert code == 0, err
    assert "never gave" not in err and "check --url" not in err
    assert 502 in statuses  # the backlog was full
    db = work / "bulkimport.db"
    assert states(db) == {"done": rows}
    await assert_loaded_once(sandbox, rows)
    write_figures(
        "busy_at_first_start",
        {"rows": rows, "lock_s": 4.0, "answers_502": statuses.count(502), "exit": code},
    )


# --- a maintenance page ------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_maintenance_page_is_an_outage_from_its_first_page_and_costs_no_attempt(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    rows = 400
    work = tmp_path / "job"
    csv_file = leads(work, rows)
    stderr = work / "stderr.txt"
    async with Front(sandbox.url) as front:
        proc = await spawn(
            "run", str(csv_file), *options(front.url), "--rate", "50",
            cwd=work, stderr_path=stderr,
        )  # fmt: skip
        await until(front, rows // 4, proc)
        front.mode = "maintenance"
        await asyncio.sleep(5.0)
        front.mode = "pass"
        code = await asyncio.wait_for(proc.wait(), 120)
        pages = sum(1 for _, status in front.answers if status == 503)

    err = stderr.read_text()
    assert code == 0, err
    assert "server unreachable since" in err and "the server answers again" in err, err
    db = work / "bulkimport.db"
    assert states_and_attempts(db) == {("done", 1): rows}
    await assert_loaded_once(sandbox, rows)
    # An outage within a second: the pages before it was clear (the pace cut by each) and
    # its probes every half second, not a pace's worth (250): 55 in one run, where three
    # seconds of pages before the outage (and a probe a second) took 79.
    assert pages < 70, pages
    write_figures("maintenance_5s", {"rows": rows, "calls_into_the_page": pages})


@pytest.mark.slow
async def test_max_outage_counts_from_the_first_maintenance_page(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # Declared after 30 s of silence, a 503 page stopped a job with --max-outage 15s after
    # 34 s. From its first page, a page that outlasts --max-outage stops the job (exit 75)
    # within it, every unsent row pending; before, a page of this length ended unnoticed.
    rows = 300
    work = tmp_path / "job"
    csv_file = leads(work, rows)
    async with Front(sandbox.url) as front:
        proc = await spawn("run", str(csv_file), *options(front.url), "--rate", "50",
                           "--max-outage", "4s", cwd=work, capture=True)  # fmt: skip
        await until(front, rows // 4, proc)
        front.mode = "maintenance"
        _out, err_bytes = await asyncio.wait_for(proc.communicate(), 60)
        err = err_bytes.decode()
        assert proc.returncode == 75, err
        assert "--max-outage 4s" in err and "503" in err, err
        db = work / "bulkimport.db"
        assert query(db, "SELECT stop_cause FROM jobs") == [("outage",)]
        assert states(db).get("rejected") is None and states(db).get("failed") is None
        assert query(db, "SELECT MAX(attempts) FROM rows WHERE state = 'pending'") == [(0,)]

        front.mode = "pass"
        resumed = await bulkimport("resume", cwd=work)
        assert resumed.code == 0, resumed.err
    assert states_and_attempts(db) == {("done", 1): rows}


# --- stalls ------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_server_that_stalls_now_and_then_never_stops_the_job(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # Stalls of 2-3 s (a lock held), at the first start and during the job: every one is
    # waited for, every row loaded once, no exit 3.
    rows = 500
    work = tmp_path / "job"
    csv_file = leads(work, rows)
    stderr = work / "stderr.txt"
    async with Front(sandbox.url) as front:
        front.lock(2.0)
        proc = await spawn(
            "run", str(csv_file), *options(front.url), "--rate", "60",
            cwd=work, stderr_path=stderr,
        )  # fmt: skip
        for share, stall_s in [(0.25, 3.0), (0.5, 2.0), (0.75, 2.5)]:
            await until(front, int(rows * share), proc)
            front.lock(stall_s)
        code = await asyncio.wait_for(proc.wait(), 120)

    err = stderr.read_text()
    assert code == 0, err
    assert "never gave" not in err
    db = work / "bulkimport.db"
    assert states(db) == {"done": rows}
    await assert_loaded_once(sandbox, rows)
