"""The client behind a real nginx in front of a PHP server's ways (IMPORT-API.md, "What the
real server is like"): bytes printed before the answer, a row saved before the script died, a
database lock that holds every call, and a server moved to TLS. Each is a real ``bulkimport
run`` through a real nginx, checked on both sides: every row of the file is at the server
exactly once, or counted ``unknown`` (and then at the server all the same); none is lost, and
a working server never stops the job (exit 3).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bulkimport.sandbox import Faults, SandboxHandle
from bulkimport.sandbox.pages import HTTPS_PORT_PAGE
from tests.conftest import SandboxFactory
from tests.frontends.conftest import NginxFactory
from tests.frontends.frontend_helpers import (
    html_title,
    leads,
    raw_request,
    request_head,
    states_and_attempts,
    statuses,
    through,
    wait_stats,
)
from tests.frontends.nginx import NginxFront, NginxHandle, self_signed_certificate
from tests.helpers import (
    HEADER,
    bulkimport,
    customers,
    good_rows,
    query,
    spawn,
    stats,
    write_csv,
    write_figures,
)


def states(db: Path) -> dict[str, int]:
    return dict(query(db, "SELECT state, COUNT(*) FROM rows GROUP BY 1"))


async def assert_every_row_once_at_the_server(
    sandbox: SandboxHandle, db: Path, rows: int, *, written_once: bool = True
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Every row of the file is done or ``unknown``, and at the server as one customer (an
    unknown one too: its call was processed, no answer said so), written once unless told
    (``--dupway update`` rewrites it at each resend). The row states, counted, and the
    customers."""
    counted = states(db)
    assert set(counted) <= {"done", "unknown"}, counted
    assert sum(counted.values()) == rows
    held = await customers(sandbox)
    phones = Counter(c["fields"]["phone1"] for c in held)
    assert phones == Counter(line.split(",")[1] for line in good_rows(rows))
    if written_once:
        assert {c["writes"] for c in held} == {1}, [c for c in held if c["writes"] != 1]
    return counted, held


# --- bytes before the answer: a BOM, PHP's notices ------------------------------------------


@pytest.mark.parametrize("fault", ["bom_rate", "notice_rate", "html_notice_rate", "all"])
async def test_bytes_printed_before_the_answer_are_read_through_and_cost_no_call(
    tmp_path: Path, sandbox_factory: SandboxFactory, nginx_factory: NginxFactory, fault: str
) -> None:
    rows = 150
    names = ["bom_rate", "notice_rate", "html_notice_rate"] if fault == "all" else [fault]
    faults = Faults.from_json({"seed": 5, **dict.fromkeys(names, 0.5)})
    sandbox = await sandbox_factory(faults=faults)
    front = await nginx_factory(sandbox)
    work = tmp_path / "job"

    done = await bulkimport(
        "run", str(leads(work, rows)),
        *through(front, "--rate", "0", "--concurrency", "8", "--json"), cwd=work,
    )  # fmt: skip

    assert done.code == 0, done.err
    db = work / "bulkimport.db"
    assert states_and_attempts(db) == {("done", 1): rows}
    await assert_every_row_once_at_the_server(sandbox, db, rows)
    # Each row one call: an answer after a notice is an answer, not a page to send again.
    assert (await stats(sandbox))["requests"] == rows
    assert statuses(front) == {200: rows}


async def test_a_refusal_after_php_s_notices_still_stops_the_job_and_a_rejection_is_its_row_s(
    tmp_path: Path, sandbox_factory: SandboxFactory, nginx_factory: NginxFactory
) -> None:
    rows = 100
    preambles = Faults(bom_rate=1, notice_rate=1, html_notice_rate=1)
    sandbox = await sandbox_factory(faults=preambles)
    front = await nginx_factory(sandbox)
    work = tmp_path / "job"
    csv_file = leads(work, rows)
    options = through(front, "--rate", "0", "--concurrency", "8")

    refused = await bulkimport("run", str(csv_file), *options, cwd=work, password="wrong")

    # BackMsg_63 behind every notice: the account's wrong password, in one line, not a page.
    assert refused.code == 3, refused.err
    (line,) = refused.error_lines()
    assert "BackMsg_63" in line and "Notice" not in line and "<" not in line, line
    db = work / "bulkimport.db"
    assert states(db) == {"pending": rows}

    # A row the campaign refuses (BackMsg_76, behind the same notices) is rejected alone.
    write_csv(csv_file, [HEADER, *good_rows(rows - 1), "No Phone,,x@example.com,Nowhere"])
    finished = await bulkimport("run", str(csv_file), *options, "--new", cwd=work)
    assert finished.code == 1, finished.err
    assert finished.error_lines() == []
    rejected = query(db, "SELECT line, last_code FROM rows WHERE job_id = 2 AND state != 'done'")
    assert rejected == [(rows + 1, "BackMsg_76")]
    assert len(await customers(sandbox)) == rows - 1


# --- PHP dies after the row was saved: a 500, or its fatal error with status 200 -----------


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["http500_after_rate", "fatal200_after_rate"])
async def test_a_row_saved_before_php_died_is_at_the_server_once_and_never_lost(
    tmp_path: Path, sandbox_factory: SandboxFactory, nginx_factory: NginxFactory, fault: str
) -> None:
    rows = 200
    faults = Faults.from_json({"seed": 11, fault: 0.2})
    sandbox = await sandbox_factory(faults=faults)
    front = await nginx_factory(sandbox)
    work = tmp_path / "job"

    done = await bulkimport(
        "run", str(leads(work, rows)),
        *through(front, "--rate", "0", "--concurrency", "8", "--dupway", "skip", "--json"),
        cwd=work, timeout_s=300,
    )  # fmt: skip

    assert done.code in (0, 1), done.err  # a working server: never a stop (exit 3)
    assert done.error_lines() == []
    db = work / "bulkimport.db"
    counted, _ = await assert_every_row_once_at_the_server(sandbox, db, rows)
    # A row whose every call died after its save is unknown (and at the server): exit 1.
    assert done.code == (1 if "unknown" in counted else 0), (counted, done.err)
    server = await stats(sandbox)
    fate = fault.removesuffix("_rate").replace("_", "-")  # the sandbox's name for the fate
    died = sum(n for code, n in server["by_code"].items() if code.startswith(fate))
    assert died > 0, server
    summary: dict[str, Any] = done.json()
    # Each call that died after the save was an unknown outcome: its resend found the
    # customer there (a duplicate answer), which counts as done.
    assert summary["resent_unknown"] >= 1
    write_figures(
        f"nginx_{fault.removesuffix('_rate')}",
        {
            "rows": rows,
            "calls": server["requests"],
            "died_after_the_save": died,
            "states": counted,
            "resent_unknown": summary["resent_unknown"],
        },
    )


# --- a database lock: every call held, then all answer ---------------------------------------


async def lock_while_running(
    proc: asyncio.subprocess.Process, sandbox: SandboxHandle, after: int, **lock: float
) -> None:
    """Set the lock once ``after`` calls have arrived, the job still running."""
    assert sandbox.sandbox is not None
    while len(sandbox.sandbox.stats.arrivals) < after:
        assert proc.returncode is None
        await asyncio.sleep(0.005)
    sandbox.update_faults(**lock)


@pytest.mark.slow
async def test_a_lock_shorter_than_nginx_waits_holds_the_calls_and_costs_nothing(
    tmp_path: Path, sandbox_factory: SandboxFactory, nginx_factory: NginxFactory
) -> None:
    rows = 600
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.005))
    front = await nginx_factory(sandbox)  # the stock proxy_read_timeout: 180 s
    work = tmp_path / "job"
    stderr = work / "stderr.txt"
    csv_file = leads(work, rows)
    proc = await spawn(
        "run", str(csv_file), *through(front, "--rate", "0", "--concurrency", "8"),
        cwd=work, stderr_path=stderr,
    )  # fmt: skip
    await lock_while_running(proc, sandbox, rows // 4, lock_s=3)
    code = await asyncio.wait_for(proc.wait(), 180)

    assert code == 0, stderr.read_text()
    db = work / "bulkimport.db"
    assert states_and_attempts(db) == {("done", 1): rows}
    await assert_every_row_once_at_the_server(sandbox, db, rows)
    assert (await stats(sandbox))["requests"] == rows
    log = front.access_log()
    assert statuses(front) == {200: rows}
    held = [entry for entry in log if entry.request_time_s >= 1]
    assert held  # the lock was met: the calls in flight when it was set waited for it
    write_figures("nginx_lock_held", {"rows": rows, "lock_s": 3, "calls_held": len(held)})


@pytest.mark.slow
@pytest.mark.parametrize("dupway", ["skip", "update"])
async def test_a_lock_longer_than_proxy_read_timeout_is_an_unknown_outcome_not_a_failure(
    tmp_path: Path, sandbox_factory: SandboxFactory, nginx_factory: NginxFactory, dupway: str
) -> None:
    rows = 800
    # nginx gives up after 1 s with its 504; PHP waits for the lock and imports the row all
    # the same (queue_timeout_s 0: the sandbox leaves the 504 to the real nginx).
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.005, queue_timeout_s=0))
    front = await nginx_factory(sandbox, NginxFront(read_timeout_s=1))
    work = tmp_path / "job"
    stderr = work / "stderr.txt"
    csv_file = leads(work, rows)
    # At 100 calls a second the job runs for 8 s at least: past two locks of 2.5 s, every 4 s
    # from when the first 100 calls arrived.
    proc = await spawn(
        "run", str(csv_file),
        *through(front, "--rate", "100", "--concurrency", "8", "--dupway", dupway,
        "--json"), cwd=work, stderr_path=stderr, capture=True,
    )  # fmt: skip
    await lock_while_running(proc, sandbox, 100, lock_s=2.5, lock_every_s=4)
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    err = stderr.read_text()

    assert proc.returncode == 0, err
    assert "Error:" not in err
    db = work / "bulkimport.db"
    log = front.access_log()
    gateway = statuses(front)[504]
    assert gateway > 0
    # PHP finishes what nginx gave up on: every call forwarded is answered at the server.
    forwarded = sum(entry.forwarded for entry in log)
    await wait_stats(sandbox, lambda server: server["requests"] == forwarded)
    counted, held = await assert_every_row_once_at_the_server(
        sandbox, db, rows, written_once=dupway == "skip"
    )
    if dupway == "skip":
        # The resend of a call nginx gave up on finds the customer: a duplicate, done.
        assert counted == {"done": rows}
    summary: dict[str, Any] = json.loads(out)
    assert summary["resent_unknown"] >= 1
    # No customer written more often than its row was resent after an unknown outcome.
    assert sum(c["writes"] - 1 for c in held) <= summary["resent_unknown"]
    write_figures(
        f"nginx_lock_504_{dupway}",
        {
            "rows": rows,
            "answers_504": gateway,
            "states": counted,
            "resent_unknown": summary["resent_unknown"],
            "max_writes_per_customer": max(c["writes"] for c in held),
        },
    )


@pytest.mark.slow
async def test_a_lock_at_the_start_behind_nginx_s_504s_is_an_outage_not_a_wrong_url(
    tmp_path: Path, sandbox_factory: SandboxFactory, nginx_factory: NginxFactory
) -> None:
    rows = 200
    sandbox = await sandbox_factory(faults=Faults(queue_timeout_s=0))
    front = await nginx_factory(sandbox, NginxFront(read_timeout_s=1))
    work = tmp_path / "job"
    csv_file = leads(work, rows)
    # Locked for 6 s from before the job starts: its first calls, before any answer, all
    # get nginx's 504 after 1 s. A URL that has not answered yet, but not a wrong one.
    sandbox.update_faults(lock_s=6)

    done = await bulkimport(
        "run", str(csv_file),
        *through(front, "--rate", "0", "--concurrency", "8", "--dupway", "skip", "--json"),
        cwd=work, timeout_s=300,
    )  # fmt: skip

    assert done.code == 0, done.err
    assert done.error_lines() == []
    log = front.access_log()
    gateway = statuses(front)[504]
    assert gateway > 0 and log[0].status == 504
    forwarded = sum(entry.forwarded for entry in log)
    await wait_stats(sandbox, lambda server: server["requests"] == forwarded)
    counted, _ = await assert_every_row_once_at_the_server(sandbox, work / "bulkimport.db", rows)
    assert counted == {"done": rows}
    write_figures(
        "nginx_lock_at_start_504",
        {"rows": rows, "answers_504": gateway, "calls": len(log), "states": counted},
    )


# --- a server moved to TLS: http:// to its HTTPS port ------------------------------------------


async def test_nginx_s_https_port_answers_plain_http_with_the_page_the_sandbox_imitates(
    tmp_path: Path, sandbox: SandboxHandle, nginx_factory: NginxFactory
) -> None:
    tls = await self_signed_certificate(tmp_path / "tls")
    front = await nginx_factory(sandbox, NginxFront(tls=tls))
    request = request_head(f"GET {front.plain_url.split(str(front.port), 1)[1]} HTTP/1.1")

    status, body = await raw_request(front.port, request)

    assert status == 400
    imitation = HTTPS_PORT_PAGE.decode()
    assert (
        html_title(body)
        == html_title(imitation)
        == ("400 The plain HTTP request was sent to HTTPS port")
    )
    # The same page but for the version nginx puts in its last line (server_tokens).
    assert body.splitlines()[:4] == imitation.splitlines()[:4]
    assert (await stats(sandbox))["requests"] == 0  # nothing reached the server


@pytest.mark.parametrize("setup", ["nginx-tls", "sandbox-https-only"])
async def test_http_to_an_https_port_stops_at_once_naming_https_and_resumes_over_tls(
    tmp_path: Path, sandbox_factory: SandboxFactory, nginx_factory: NginxFactory, setup: str
) -> None:
    rows = 200
    work = tmp_path / "job"
    csv_file = leads(work, rows)
    if setup == "nginx-tls":
        sandbox = await sandbox_factory()
        tls = await self_signed_certificate(tmp_path / "tls")
        front: NginxHandle = await nginx_factory(sandbox, NginxFront(tls=tls))
        url, right = front.plain_url, [front.url, "--ca-file", str(tls.certificate)]
    else:
        # The sandbox's stand-in for that port, behind a plain nginx.
        sandbox = await sandbox_factory(faults=Faults(https_only=True))
        front = await nginx_factory(sandbox)
        url, right = front.url, [front.url]

    stopped = await bulkimport(
        "run", str(csv_file), *through(url, "--rate", "0", "--concurrency", "8"), cwd=work
    )

    assert stopped.code == 3, stopped.err
    (line,) = stopped.error_lines()
    assert "https://" in line and "HTTPS port" in line and "<" not in line, line
    db = work / "bulkimport.db"
    assert states_and_attempts(db) == {("pending", 0): rows}
    assert await customers(sandbox) == []
    calls = len(front.access_log())
    assert 1 <= calls <= 8  # one round of the calls in flight at most

    if setup == "sandbox-https-only":
        sandbox.update_faults(https_only=False)
    resumed = await bulkimport("resume", "--url", *right, cwd=work)
    assert resumed.code == 0, resumed.err
    await assert_every_row_once_at_the_server(sandbox, db, rows)
    write_figures(f"nginx_https_port_{setup}", {"rows": rows, "calls": calls, "line": line})
