"""The job's health end to end: each behaviour of a job that meets a server that is not there,
not the right one, down for a while, throttling, rejecting every row or refusing the job, run
as a user runs it (a real ``bulkimport`` process) against a real sandbox, and checked on both
sides: the queue database's rows and attempts, and what reached the server.

The same behaviours behind a real nginx are in ``tests/frontends/test_client_behind_nginx.py``;
the figures of both are in docs/reliability.md ("Job health").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bulkimport.sandbox import Faults, SandboxHandle
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    Done,
    bulkimport,
    customers,
    good_rows,
    max_in_window,
    query,
    spawn,
    stats,
    target,
    write_csv,
    write_figures,
)

NEVER_REACHED_S = 15.0  # the bound: a wrong URL is known within this long


def leads(work: Path, rows: int, *, start: int = 0, name: str = "leads.csv") -> Path:
    work.mkdir(parents=True, exist_ok=True)
    return write_csv(work / name, [HEADER, *good_rows(rows, start)])


def states_and_attempts(db: Path) -> dict[tuple[str, int], int]:
    rows = query(db, "SELECT state, attempts, COUNT(*) FROM rows GROUP BY 1, 2")
    return {(state, attempts): n for state, attempts, n in rows}


def job_row(db: Path) -> dict[str, Any]:
    names = ("state", "stop_cause", "resent_unknown", "message")
    values = query(db, f"SELECT {', '.join(names)} FROM jobs ORDER BY id DESC LIMIT 1")[0]
    return dict(zip(names, values, strict=True))


async def timed(*args: str, cwd: Path, **kwargs: Any) -> tuple[Done, float]:
    started = time.monotonic()
    done = await bulkimport(*args, cwd=cwd, **kwargs)
    return done, time.monotonic() - started


# --- never reached: a wrong --url stops at once, nothing used --------------------------------


@contextlib.asynccontextmanager
async def html_server(status: int = 200) -> AsyncIterator[str]:
    """A web server that answers every path with an HTML page (a web site, not the call
    center's endpoint); yields its Import URL."""

    async def page(request: web.Request) -> web.Response:
        body = "<!DOCTYPE html><html><head><title>Welcome to our site</title></head>"
        body += "<body>" + "<p>Hello</p>" * 50 + "</body></html>"
        return web.Response(status=status, text=body, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/asterccinterfaces"
    finally:
        await runner.cleanup()


def closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/asterccinterfaces"


@pytest.mark.parametrize(
    ("wrong", "what"),
    [
        ("closed-port", "no connection"),
        ("https-to-http", "TLS failed"),
        ("html-200", "Welcome to our site"),
    ],
)
async def test_a_url_that_never_answered_stops_at_once_and_resume_with_the_right_url_finishes(
    tmp_path: Path, sandbox: SandboxHandle, wrong: str, what: str
) -> None:
    rows = 300
    work = tmp_path / "job"
    csv_file = leads(work, rows)
    async with contextlib.AsyncExitStack() as stack:
        if wrong == "closed-port":
            url = closed_port_url()
        elif wrong == "https-to-http":
            url = sandbox.url.replace("http://", "https://")
        else:
            url = await stack.enter_async_context(html_server())
        options = ["--url", url, "--org", "demo", "--user", "admin", "--campaign", "1"]
        stopped, seconds = await timed("run", str(csv_file), *options, cwd=work)

    assert stopped.code == 3, stopped.err
    assert seconds < NEVER_REACHED_S
    (line,) = stopped.error_lines()
    assert "never gave an Import answer" in line
    assert url in line and "check --url" in line
    assert what in line
    assert "<" not in line  # a page is shown by its title, never whole
    db = work / "bulkimport.db"
    assert states_and_attempts(db) == {("pending", 0): rows}
    assert job_row(db)["stop_cause"] == "never-reached"
    assert (await stats(sandbox))["requests"] == 0

    resumed = await bulkimport("resume", "--url", sandbox.url, "--rate", "0", "--json", cwd=work)

    assert resumed.code == 0, resumed.err
    assert states_and_attempts(db) == {("done", 1): rows}
    held = await customers(sandbox)
    assert len(held) == rows and {c["writes"] for c in held} == {1}
    write_figures(f"never_reached_{wrong}", {"seconds_to_exit_3": round(seconds, 2), "line": line})


@pytest.mark.slow
async def test_a_url_that_answered_before_and_is_down_now_is_an_outage_not_a_wrong_url(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory()
    work = tmp_path / "job"
    first = await bulkimport("run", str(leads(work, 20)), *target(sandbox), cwd=work)
    assert first.code == 0, first.err
    await sandbox.stop()
    second_file = leads(work, 50, start=1000, name="tonight.csv")

    down = await bulkimport(
        "run", str(second_file), *target(sandbox), "--max-outage", "3s", "--json", cwd=work
    )

    assert down.code == 75, down.err
    assert down.error_lines() == []  # not a failure: try later
    (line,) = down.try_later_lines()
    assert "--max-outage 3s" in line and "never gave" not in line
    assert "server unreachable since" in down.err
    db = work / "bulkimport.db"
    assert job_row(db)["stop_cause"] == "outage"
    assert query(
        db, "SELECT state, attempts, COUNT(*) FROM rows WHERE job_id = 2 GROUP BY 1, 2"
    ) == [("pending", 0, 50)]
    await sandbox.start()
    resumed = await bulkimport("resume", cwd=work)
    assert resumed.code == 0, resumed.err
    assert len(await customers(sandbox)) == 70


# --- an outage in the middle of a job: pause, probe, go on --------------------------------------

OUTAGE_ROWS = 600
OUTAGE_S = 4.0


async def wait_arrivals(
    sandbox: SandboxHandle, calls: int, proc: asyncio.subprocess.Process
) -> None:
    assert sandbox.sandbox is not None
    for _ in range(30_000):
        if len(sandbox.sandbox.stats.arrivals) >= calls:
            return
        assert proc.returncode is None, "the job ended too soon"
        await asyncio.sleep(0.002)
    raise AssertionError("the job sent too little")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["502", "drop", "html200"])
async def test_an_outage_switched_on_and_off_costs_no_attempt_and_status_shows_it(
    tmp_path: Path, sandbox_factory: SandboxFactory, mode: str
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.005))
    work = tmp_path / "job"
    csv_file = leads(work, OUTAGE_ROWS)
    stderr = work / "stderr.txt"
    proc = await spawn(
        "run", str(csv_file), *target(sandbox), "--rate", "100", "--max-attempts", "2",
        cwd=work, stderr_path=stderr,
    )  # fmt: skip
    await wait_arrivals(sandbox, OUTAGE_ROWS // 3, proc)
    sandbox.update_faults(outage=mode)
    await asyncio.sleep(OUTAGE_S / 2)
    during = await bulkimport("status", "--json", cwd=work)
    shown = await bulkimport("status", cwd=work)
    await asyncio.sleep(OUTAGE_S / 2)
    sandbox.update_faults(outage="off")
    code = await asyncio.wait_for(proc.wait(), 120)

    err = stderr.read_text()
    assert code == 0, err
    assert "server unreachable since" in err and "next try in" in err
    assert "the server answers again" in err
    status = during.json()
    assert status["state"] == "running" and status["outage_since"] is not None
    assert "server unreachable since" in shown.out, shown.out
    db = work / "bulkimport.db"
    assert states_and_attempts(db) == {("done", 1): OUTAGE_ROWS}
    assert sandbox.sandbox is not None
    arrivals = list(sandbox.sandbox.stats.arrivals)
    into = [a for a in arrivals if str(a[2]).startswith("outage")]
    # The calls in flight when it began, the troubles that showed it, then one probe every
    # half second: a handful, not a pace's worth (100/s for 4 s would be 400).
    assert len(into) <= 40, len(into)
    held = await customers(sandbox)
    assert len(held) == OUTAGE_ROWS and {c["writes"] for c in held} == {1}
    write_figures(
        f"outage_{mode}",
        {
            "rows": OUTAGE_ROWS,
            "outage_s": OUTAGE_S,
            "calls_into_the_outage": len(into),
            "rows_attempts": {"done/1": OUTAGE_ROWS},
            "status_line": next(
                (line.strip() for line in shown.out.splitlines() if "unreachable" in line), ""
            ),
        },
    )


# --- throttling: slow down, never spend an attempt ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("retry_after_s", [1, 0])
async def test_throttling_costs_no_attempt_and_the_pool_keeps_near_the_allowed_rate(
    tmp_path: Path, sandbox_factory: SandboxFactory, retry_after_s: int
) -> None:
    allowed = 50
    rows = 1500
    sandbox = await sandbox_factory(faults=Faults(max_rps=allowed, retry_after_s=retry_after_s))
    work = tmp_path / "job"
    csv_file = leads(work, rows)

    done, seconds = await timed(
        "run", str(csv_file), *target(sandbox), "--rate", "0", "--concurrency", "16",
        "--max-attempts", "2", "--json", cwd=work, timeout_s=300,
    )  # fmt: skip

    assert done.code == 0, done.err
    db = work / "bulkimport.db"
    assert states_and_attempts(db) == {("done", 1): rows}
    server = await stats(sandbox)
    throttled = server["by_status"].get("429", 0)
    rate = rows / seconds
    # Not the 21 of 50 a pool that only paused got: most of what the server allows.
    assert rate >= 0.6 * allowed, rate
    write_figures(
        f"throttling_sandbox_retry_after_{retry_after_s}",
        {
            "allowed_per_s": allowed,
            "rows": rows,
            "rows_per_s": round(rate, 1),
            "share_of_allowed": round(rate / allowed, 3),
            "answers_429": throttled,
            "calls": server["requests"],
        },
    )


# --- the error budget: every row rejected is a systematic failure ---------------------------


@pytest.mark.parametrize("code", ["74", "999"])
async def test_all_rejections_stop_within_a_hundred_calls_with_the_code_and_the_fix(
    tmp_path: Path, sandbox_factory: SandboxFactory, code: str
) -> None:
    rows = 1000
    sandbox = await sandbox_factory(faults=Faults(code_rates={code: 1}))
    work = tmp_path / "job"
    csv_file = leads(work, rows)

    stopped = await bulkimport(
        "run", str(csv_file), *target(sandbox), "--rate", "0", "--concurrency", "16", cwd=work
    )

    assert stopped.code == 3, stopped.err
    (line,) = stopped.error_lines()
    assert f"BackMsg_{code}" in line
    if code == "74":
        assert "the field names do not match the campaign" in line
        assert "--map" in line and "--new" in line
    calls = (await stats(sandbox))["requests"]
    assert calls <= 100, calls
    db = work / "bulkimport.db"
    counts = states_and_attempts(db)
    assert counts[("rejected", 1)] == calls
    assert counts[("pending", 0)] == rows - calls
    assert job_row(db)["stop_cause"] == "budget"
    write_figures(f"budget_{code}", {"rows": rows, "calls": calls, "line": line})


async def test_no_budget_sends_every_row(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    rows = 300
    sandbox = await sandbox_factory(faults=Faults(code_rates={"74": 1}))
    work = tmp_path / "job"
    done = await bulkimport(
        "run", str(leads(work, rows)), *target(sandbox), "--rate", "0", "--max-rejects", "0",
        cwd=work,
    )  # fmt: skip
    assert done.code == 1, done.err
    assert (await stats(sandbox))["requests"] == rows
    assert states_and_attempts(work / "bulkimport.db") == {("rejected", 1): rows}


# --- the vendor's codes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "meaning", "fix"),
    [
        ("116", "the server's licence is not valid", "administrator"),
        ("115", "more agents than the licence allows", "administrator"),
        ("38", "the agent has no matching account", "--user admin"),
        ("28", "parameter error", "--org"),
    ],
)
async def test_a_fatal_vendor_code_stops_at_once_with_its_meaning_and_fix(
    tmp_path: Path, sandbox_factory: SandboxFactory, code: str, meaning: str, fix: str
) -> None:
    rows = 200
    concurrency = 4
    sandbox = await sandbox_factory(faults=Faults(code_rates={code: 1}, latency_s=0.02))
    work = tmp_path / "job"
    stopped = await bulkimport(
        "run", str(leads(work, rows)), *target(sandbox), "--rate", "0",
        "--concurrency", str(concurrency), cwd=work,
    )  # fmt: skip
    assert stopped.code == 3, stopped.err
    (line,) = stopped.error_lines()
    assert f"BackMsg_{code}" in line and meaning in line and fix in line
    assert (await stats(sandbox))["requests"] <= concurrency
    assert states_and_attempts(work / "bulkimport.db") == {("pending", 0): rows}


@pytest.mark.slow
@pytest.mark.parametrize(("code", "rate"), [("113", 0.2), ("114", 0.2), ("69", 1.0)])
async def test_transient_vendor_codes_are_retried_and_69_is_done(
    tmp_path: Path, sandbox_factory: SandboxFactory, code: str, rate: float
) -> None:
    rows = 200
    sandbox = await sandbox_factory(faults=Faults(code_rates={code: rate}, seed=3))
    work = tmp_path / "job"
    done = await bulkimport(
        "run", str(leads(work, rows)), *target(sandbox), "--rate", "0", "--json",
        cwd=work,
    )  # fmt: skip
    assert done.code == 0, done.err
    db = work / "bulkimport.db"
    by_state = Counter(dict(query(db, "SELECT state, COUNT(*) FROM rows GROUP BY 1")))
    assert by_state == {"done": rows}
    server = (await stats(sandbox))["by_code"]
    if code == "69":
        # An injected answer processes nothing: the client counts BackMsg_69 as done.
        assert server == {"BackMsg_69": rows}
        assert query(db, "SELECT DISTINCT last_code FROM rows") == [("BackMsg_69",)]
    else:
        assert server[f"BackMsg_{code}"] > 0
        assert len(await customers(sandbox)) == rows
        retried = query(db, "SELECT COUNT(*) FROM rows WHERE attempts > 1")[0][0]
        assert retried > 0


# --- unknown outcomes: a 504 for a call the server still processes ---------------------------


@pytest.mark.slow
@pytest.mark.parametrize("dupway", ["skip", "update"])
async def test_a_504_for_a_call_still_processed_is_an_unknown_outcome_not_a_failure(
    tmp_path: Path, sandbox_factory: SandboxFactory, dupway: str
) -> None:
    rows = 200
    # A tenth of the calls take longer than nginx waits (0.3 s + up to 0.4 s, against 0.66 s):
    # its 504 page comes, and the server imports the row all the same.
    faults = Faults(latency_s=0.3, jitter_s=0.4, queue_timeout_s=0.66, seed=5)
    sandbox = await sandbox_factory(faults=faults)
    work = tmp_path / "job"
    log = work / "job.log"
    done = await bulkimport(
        "run", str(leads(work, rows)), *target(sandbox), "--rate", "0", "--concurrency", "8",
        "--dupway", dupway, "--log", str(log), "--json", cwd=work, timeout_s=300,
    )  # fmt: skip
    db = work / "bulkimport.db"
    server = await stats(sandbox)
    assert query(db, "SELECT COUNT(*) FROM rows")[0][0] == rows
    held = await customers(sandbox)
    assert len(held) == rows
    summary = done.json()
    sent = server["requests"]
    if dupway == "skip":
        assert done.code == 0, done.err
        assert summary["counts"]["done"] == rows
        assert summary["resent_unknown"] > 0
        assert {c["writes"] for c in held} == {1}
        assert query(db, "SELECT MAX(attempts) FROM rows")[0][0] < 5
    else:
        warned = [x for x in log.read_text().splitlines() if "may have been processed" in x]
        assert len(warned) == 1, warned
        assert max(c["writes"] for c in held) <= 3
        assert query(db, "SELECT MAX(attempts) FROM rows")[0][0] <= 3
    write_figures(
        f"unknown_outcome_sandbox_{dupway}",
        {
            "rows": rows,
            "calls": sent,
            "answers_504": server["by_status"].get("504", 0),
            "processed_after_504": sum(server["processed_after_504"].values()),
            "resent_unknown": summary["resent_unknown"],
            "counts": {k: v for k, v in summary["counts"].items() if v},
            "max_writes_per_customer": max(c["writes"] for c in held),
        },
    )


# --- a GET too long: that row, not the job ------------------------------------------------


async def test_a_get_too_long_rejects_that_row_and_post_carries_it(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    rows = 50
    work = tmp_path / "job"
    lines = [HEADER, *good_rows(rows)]
    long_line = 10
    name, phone, email, _city = lines[long_line].split(",")
    lines[long_line] = f"{name},{phone},{email},{'张' * 4000}"
    work.mkdir()
    csv_file = write_csv(work / "leads.csv", lines)

    done = await bulkimport(
        "run", str(csv_file), *target(sandbox), "--rate", "0", "--method", "get", cwd=work
    )

    assert done.code == 1, done.err
    db = work / "bulkimport.db"
    rejected = query(db, "SELECT line, last_message FROM rows WHERE state = 'rejected'")
    assert len(rejected) == 1 and rejected[0][0] == long_line + 1
    assert "--method post" in rejected[0][1]
    assert query(db, "SELECT COUNT(*) FROM rows WHERE state = 'done'")[0][0] == rows - 1
    # Refused before sending (past the 32 KiB the vendor's nginx takes): the sandbox never saw it.
    assert (await stats(sandbox))["requests"] == rows - 1

    retried = await bulkimport("retry", "1", "--rejected", "--method", "post", cwd=work)
    assert retried.code == 0, retried.err
    assert len(await customers(sandbox)) == rows


# --- --rate auto on a server of known capacity ----------------------------------------------


@pytest.mark.slow
async def test_rate_auto_loads_without_5xx_and_status_shows_pace_and_latency(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    rows = 3000
    sandbox = await sandbox_factory(faults=Faults(capacity=200, latency_s=0.02, seed=1))
    work = tmp_path / "job"
    csv_file = leads(work, rows)
    proc = await spawn("run", str(csv_file), *target(sandbox), "--rate", "auto", cwd=work)
    status: dict[str, Any] = {}
    text = ""
    for _ in range(200):
        await asyncio.sleep(0.25)
        if proc.returncode is not None:
            break
        shown = await bulkimport("status", "--json", cwd=work)
        if shown.code == 0 and shown.json().get("pace_per_s") is not None:
            status = shown.json()
            text = (await bulkimport("status", cwd=work)).out
            break
    code = await asyncio.wait_for(proc.wait(), 240)
    assert code == 0
    assert status, "status never showed the pace"
    assert status["latency_s"] is not None and status["latency_s"] > 0
    assert "pace" in text and "latency" in text, text
    server = await stats(sandbox)
    errors = sum(n for s, n in server["by_status"].items() if s.startswith("5"))
    assert errors == 0, server
    assert states_and_attempts(work / "bulkimport.db") == {("done", 1): rows}
    write_figures(
        "auto_capacity_200",
        {
            "rows": rows,
            "calls": server["requests"],
            "status_pace_per_s": status["pace_per_s"],
            "status_latency_s": status["latency_s"],
        },
    )


@pytest.mark.slow
async def test_max_rate_caps_rate_auto(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    rows = 600
    cap = 40
    sandbox = await sandbox_factory(faults=Faults(capacity=300, latency_s=0.01))
    work = tmp_path / "job"
    done = await bulkimport(
        "run", str(leads(work, rows)), *target(sandbox), "--rate", "auto", "--max-rate",
        str(cap), cwd=work, timeout_s=180,
    )  # fmt: skip
    assert done.code == 0, done.err
    assert sandbox.sandbox is not None
    times = [a[0] for a in sandbox.sandbox.stats.arrivals]
    assert len(times) == rows
    assert max_in_window(times) <= cap + 2  # the network's jitter: a call or two
