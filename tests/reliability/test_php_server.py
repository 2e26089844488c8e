"""Jobs against a sandbox that answers as PHP behind nginx does: every row accounted for
against the sandbox's own records.

- a BOM and PHP's notices before every answer: every row loads, ``done``, exit 0;
- PHP dying after it saved the row (a bare 500, or its fatal error with status 200): the call
  is an unknown outcome, the row is sent again, the server finds it there, and it is ``done``,
  stored once;
- a database lock that holds every call now and then: every row loads;
- http:// to nginx's HTTPS port: the job stops without a row sent or stored;
- a near-answer with a fatal code (``|Retuen|07|Retuen|BackMsg_07``): the job stops, refused.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bulkimport.sandbox import Faults, SandboxHandle
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    bulkimport,
    customers,
    good_rows,
    row_states,
    stats,
    target,
    write_csv,
)

ROWS = 200


def _job(tmp_path: Path) -> tuple[Path, dict[int, str]]:
    work = tmp_path / "job"
    work.mkdir()
    lines = good_rows(ROWS)
    write_csv(work / "leads.csv", [HEADER, *lines])
    return work, {n + 2: row.split(",")[1] for n, row in enumerate(lines)}


async def _all_loaded_once(sandbox: SandboxHandle, work: Path, phones: dict[int, str]) -> None:
    states = row_states(work / "bulkimport.db")
    assert states == dict.fromkeys(phones, "done")
    held = await customers(sandbox)
    assert sorted(c["key"] for c in held) == sorted(phones.values())


async def test_a_bom_and_php_notices_before_every_answer_load_every_row(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(bom_rate=1, notice_rate=1, html_notice_rate=1))
    work, phones = _job(tmp_path)
    done = await bulkimport(
        "run", "leads.csv", *target(sandbox), "--rate", "0", "--quiet", "--log", "job.log",
        cwd=work,
    )  # fmt: skip
    assert done.code == 0, done.err
    await _all_loaded_once(sandbox, work, phones)
    assert all(c["writes"] == 1 for c in await customers(sandbox))
    # The job says once what the server printed with its answers.
    said = [line for line in (work / "job.log").read_text().splitlines() if "Notice" in line]
    assert len(said) == 1
    assert "a BOM, Notice: Undefined index: agent in /var/www/html/" in said[0]


async def test_rows_php_saved_before_it_died_are_done_and_stored_once(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(
        faults=Faults(http500_after_rate=0.1, fatal200_after_rate=0.05, seed=5)
    )
    work, phones = _job(tmp_path)
    done = await bulkimport(
        "run", "leads.csv", *target(sandbox), "--dupway", "skip", "--rate", "0",
        "--concurrency", "4", "--quiet", cwd=work,
    )  # fmt: skip
    assert done.code == 0, done.err
    await _all_loaded_once(sandbox, work, phones)
    by_code = (await stats(sandbox))["by_code"]
    # Rows imported by a call whose answer PHP's death took: each was sent again until a clean
    # answer said it was there (BackMsg_81), and none was written twice.
    died = sum(n for code, n in by_code.items() if code.endswith("-after BackMsg_84"))
    assert died >= 10
    assert by_code["BackMsg_84"] + died == ROWS
    assert by_code["BackMsg_81"] == died
    assert all(c["writes"] == 1 for c in await customers(sandbox))


async def test_a_database_lock_now_and_then_holds_calls_and_every_row_loads(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.01, lock_s=0.5, lock_every_s=1))
    work, phones = _job(tmp_path)
    done = await bulkimport(
        "run", "leads.csv", *target(sandbox), "--rate", "0", "--quiet", cwd=work
    )
    assert done.code == 0, done.err
    await _all_loaded_once(sandbox, work, phones)


async def test_http_to_an_https_port_stops_the_job_with_nothing_sent(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=Faults(https_only=True))
    work, _ = _job(tmp_path)
    done = await bulkimport("run", "leads.csv", *target(sandbox), "--quiet", cwd=work)
    assert done.code == 3, done.err  # refused: waiting will not fix the URL
    assert "HTTPS port" in done.err or "https://" in done.err
    assert await customers(sandbox) == []
    assert set(row_states(work / "bulkimport.db").values()) == {"pending"}


async def _near_answer(request: web.Request) -> web.Response:
    # A server that writes the code of a wrong password where CODE belongs.
    return web.Response(text="\ufeff|Retuen|07|Retuen|BackMsg_07")


async def test_a_near_answer_with_a_fatal_code_stops_the_job_as_refused(tmp_path: Path) -> None:
    app = web.Application()
    app.router.add_route("*", "/asterccinterfaces", _near_answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/asterccinterfaces"
        work, _ = _job(tmp_path)
        done = await bulkimport(
            "run", "leads.csv", "--url", url, "--org", "demo", "--user", "admin",
            "--campaign", "1", "--quiet", cwd=work,
        )  # fmt: skip
    finally:
        await runner.cleanup()
    assert done.code == 3, done.err
    assert "BackMsg_07" in done.err
    assert set(row_states(work / "bulkimport.db").values()) == {"pending"}
