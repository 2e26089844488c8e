"""``--server-rate`` on the command line: kept with the job, shown by ``status``, nothing asked
of the database without it, and two processes on one PostgreSQL database (two hosts)
sharing one server's budget, measured where the calls arrive: the sandbox's log.

Real processes, the real sandbox on loopback, real databases (a SQLite file; a throwaway
PostgreSQL cluster, ``tests/pg.py``, skipped with the reason where there is none).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkimport.cli import cli
from bulkimport.sandbox import SandboxHandle
from bulkimport.settings import server_key
from tests.helpers import (
    HEADER,
    arrivals,
    bulkimport,
    good_rows,
    max_in_window,
    query,
    target,
    write_csv,
    write_figures,
)
from tests.storage import conftest as storage_fixtures

pg_cluster = storage_fixtures.pg_cluster
pg_url = storage_fixtures.pg_url


def test_the_commands_that_send_rows_take_a_server_rate(tmp_path: Path) -> None:
    runner = CliRunner()
    for name in ("run", "resume", "retry"):
        assert "--server-rate PER_S" in runner.invoke(cli, [name, "--help"]).output, name
    # The server runs a remote import itself: no calls of ours to share out.
    assert "--server-rate" not in runner.invoke(cli, ["remote", "--help"]).output
    db = str(tmp_path / "q.db")
    bad = runner.invoke(cli, ["run", "x.csv", "--db", db, "--server-rate", "fast"])
    assert bad.exit_code == 2
    assert "--server-rate (command line): " in bad.output


async def test_a_job_keeps_its_server_s_budget_and_status_shows_it(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    leads = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(30)])
    db = tmp_path / "q.db"
    done = await bulkimport(
        "run", str(leads), *target(sandbox), "--db", str(db), "--server-rate", "40", cwd=tmp_path
    )
    assert done.code == 0, done.err
    key = server_key(sandbox.url)
    assert [server for (server,) in query(db, "SELECT server FROM server_budgets")] == [key]
    shown = await bulkimport("status", "--db", str(db), cwd=tmp_path)
    line = f"  budget  40 calls/s for {key}, shared by every job of this database (--server-rate)"
    assert line in shown.out.splitlines()
    as_json = await bulkimport("status", "--db", str(db), "--json", cwd=tmp_path)
    assert as_json.json()["server_rate_per_s"] == 40.0


async def test_without_a_server_rate_the_database_is_never_asked(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    leads = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(30)])
    db = tmp_path / "q.db"
    done = await bulkimport("run", str(leads), *target(sandbox), "--db", str(db), cwd=tmp_path)
    assert done.code == 0, done.err
    assert query(db, "SELECT COUNT(*) FROM server_budgets") == [(0,)]
    shown = await bulkimport("status", "--db", str(db), cwd=tmp_path)
    assert not [line for line in shown.out.splitlines() if line.startswith("  budget")]
    as_json = await bulkimport("status", "--db", str(db), "--json", cwd=tmp_path)
    assert as_json.json()["server_rate_per_s"] is None


async def test_a_profile_names_the_budget_of_each_server(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    leads = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(10)])
    profile = tmp_path / "nightly.toml"
    profile.write_text(
        f'[servers."{sandbox.url}"]\nrate = 25\n[servers."https://other.example"]\nrate = 5\n'
    )
    db = tmp_path / "q.db"
    done = await bulkimport(
        "run", str(leads), *target(sandbox), "--db", str(db), "--config", str(profile),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.code == 0, done.err
    as_json = await bulkimport("status", "--db", str(db), "--json", cwd=tmp_path)
    assert as_json.json()["server_rate_per_s"] == 25.0


ROWS = 150  # per job: 300 calls at 50 a second, about six seconds of both sending


@pytest.mark.slow  # two processes of several seconds each
@pytest.mark.serial  # the calls of two processes, to the millisecond, at the server
async def test_two_hosts_on_one_postgres_database_share_one_server_s_budget(
    tmp_path: Path, sandbox: SandboxHandle, pg_url: str
) -> None:
    # Two nightly jobs to one server, each allowed 50 calls a second on its own, 50 in all.
    # The sandbox tells their calls apart by their answers: with --phone-field a new
    # customer goes into the dial list (BackMsg_83), without it not (BackMsg_84).
    first = write_csv(tmp_path / "first.csv", [HEADER, *good_rows(ROWS)])
    second = write_csv(tmp_path / "second.csv", [HEADER, *good_rows(ROWS, start=10_000)])
    common = ("--db", pg_url, "--rate", "50", "--server-rate", "50")
    done = await asyncio.gather(
        bulkimport(
            "run", str(first), *target(sandbox, "--phone-field", "phone1"), *common, cwd=tmp_path
        ),
        bulkimport("run", str(second), *target(sandbox), *common, cwd=tmp_path),
    )
    assert [d.code for d in done] == [0, 0], [d.err[-2000:] for d in done]
    calls = {
        job: [t for t, status, got in await arrivals(sandbox) if status == 200 and got == code]
        for job, code in (("first", "BackMsg_83"), ("second", "BackMsg_84"))
    }
    assert [len(times) for times in calls.values()] == [ROWS, ROWS]
    everything = [t for times in calls.values() for t in times]
    assert max_in_window(everything) <= 51
    both_from = max(min(times) for times in calls.values())
    both_until = min(max(times) for times in calls.values())
    during = {job: sum(both_from <= t <= both_until for t in ts) for job, ts in calls.items()}
    shares = {job: n / sum(during.values()) for job, n in during.items()}
    write_figures(
        "server_budget_two_hosts",
        {
            "max_calls_in_1s": max_in_window(everything),
            "calls_per_s": round((len(everything) - 1) / (max(everything) - min(everything)), 1),
            "shares_while_both_send": {job: round(share, 3) for job, share in shares.items()},
        },
    )
    assert all(0.4 <= share <= 0.6 for share in shares.values()), shares
