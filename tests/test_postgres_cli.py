"""Every command on a PostgreSQL database: ``--db postgresql://...`` end to end.

Real processes, the real sandbox on loopback, a throwaway PostgreSQL cluster
(``tests/pg.py``, one database per test); where no PostgreSQL server can be found, the
tests that need one skip with the reason.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bulkimport.cli.base import Where
from bulkimport.jobs.report import default_report_path
from bulkimport.sandbox import Faults, SandboxHandle
from bulkimport.storage import database_name, is_postgres_url, url_password, without_password
from tests import test_remote
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    bulkimport,
    customers,
    good_rows,
    kill_mid_send,
    target,
    write_csv,
)
from tests.storage import conftest as storage_fixtures

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = (
    "run", str(ROOT / "samples" / "leads.csv"),
    "--config", str(ROOT / "samples" / "sandbox.toml"), "--sandbox",
)  # fmt: skip
SAMPLE_SUMMARY = "300 rows (done 291, duplicate 3, rejected 3, invalid 3)"
PASSWORD = "hunter2-db"

pg_cluster = storage_fixtures.pg_cluster
pg_url = storage_fixtures.pg_url
remote_sandbox = test_remote.sandbox  # may fetch from loopback, where ``files`` serves
files = test_remote.files


def with_password(url: str, where: str = "user") -> str:
    """The test cluster's URL with a password in it (trust authentication ignores it): in
    its user part, or as a ``password=`` parameter (libpq and asyncpg take both)."""
    if where == "query":
        return f"{url}{'&' if '?' in url else '?'}password={PASSWORD}"
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def summary_of(err_and_out: str) -> str:
    [line] = [line for line in err_and_out.splitlines() if line.startswith("job 1 finished:")]
    return line


# --- without a server -------------------------------------------------------------------------


def test_a_url_names_postgres_and_a_file_does_not() -> None:
    assert is_postgres_url("postgresql://u@host/leads")
    assert is_postgres_url("POSTGRES://u@host/leads")
    assert not is_postgres_url("postgresql.db")
    assert not is_postgres_url(Path("postgresql://u@host/leads"))


def test_a_report_of_a_url_goes_to_the_current_folder_named_after_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = "postgresql://u:pw@db.example.com:5433/leads?sslmode=require"
    assert default_report_path(url, 3) == tmp_path / "leads-job-3-failed.csv"
    assert database_name("postgresql://u@/?host=/run/pg&dbname=nightly") == "nightly"
    assert database_name("postgresql://ops@host") == "ops"
    assert database_name("postgresql://u@host/a%2F..%2Fb") == "a_.._b"
    assert default_report_path(tmp_path / "q" / "nightly.db", 4) == (
        tmp_path / "q" / "nightly-job-4-failed.csv"
    )


def test_the_advice_repeats_the_url_without_its_password() -> None:
    url = f"postgresql://ops:{PASSWORD}@db.example.com/leads"
    assert without_password(url) == "postgresql://ops@db.example.com/leads"
    assert without_password("postgresql://ops@db/leads") == "postgresql://ops@db/leads"
    shown = Where(url, None).command("resume", 3)
    assert shown == "bulkimport resume 3 --db postgresql://ops@db.example.com/leads"
    # libpq's other place for it: a parameter.
    given = f"postgresql://ops@db.example.com/leads?sslmode=require&password={PASSWORD}"
    assert without_password(given) == "postgresql://ops@db.example.com/leads?sslmode=require"
    assert url_password(given) == url_password(url) == PASSWORD
    assert PASSWORD not in Where(given, None).command("resume", 3)


async def test_without_the_driver_a_url_says_which_extra_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked" / "asyncpg"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("no asyncpg here")\n')
    result = await bulkimport(
        "status", "--db", "postgresql://ops@/leads?host=/nowhere",
        cwd=tmp_path, env={"PYTHONPATH": str(blocker.parent)},
    )  # fmt: skip
    assert result.code != 0
    assert result.err.strip() == (
        "Error: a postgresql:// database needs the PostgreSQL driver: "
        "pip install 'bulkimport[postgres]'"
    )


# --- on a PostgreSQL database -----------------------------------------------------------------


@pytest.mark.slow
async def test_the_readme_sample_gives_the_same_summary_as_with_sqlite(
    tmp_path: Path, pg_url: str
) -> None:
    (tmp_path / "pg").mkdir()
    (tmp_path / "sqlite").mkdir()
    on_pg = await bulkimport(*SAMPLE, "--db", pg_url, cwd=tmp_path / "pg")
    on_sqlite = await bulkimport(*SAMPLE, "--db", "queue.db", cwd=tmp_path / "sqlite")
    assert (on_pg.code, on_sqlite.code) == (1, 1), on_pg.err
    assert SAMPLE_SUMMARY in summary_of(on_pg.out)
    assert summary_of(on_pg.out) == summary_of(on_sqlite.out)
    report = tmp_path / "pg" / f"{database_name(pg_url)}-job-1-failed.csv"
    assert f"6 rows need attention (3 rejected, 3 invalid): {report}" in on_pg.err
    with report.open(encoding="utf-8-sig", newline="") as f:
        assert len(list(csv.reader(f))) == 1 + 6

    status = await bulkimport("status", "--db", pg_url, cwd=tmp_path, password=None)
    assert status.code == 0, status.err
    assert status.out.startswith("job 1: finished")
    assert f"report  {report}" in status.out
    jobs = await bulkimport("jobs", "--json", "--db", pg_url, cwd=tmp_path, password=None)
    assert [job["counts"]["done"] for job in jobs.json()["jobs"]] == [291]
    failed = await bulkimport(
        "failed", "--db", pg_url, "-o", "fix.csv", cwd=tmp_path, password=None
    )
    assert failed.code == 0, failed.err
    assert failed.out.strip() == "job 1: 6 rows written to fix.csv"


@pytest.mark.posix_only("SIGKILL and its exit status (Windows' kill is TerminateProcess)")
async def test_kill_mid_send_then_resume_sends_every_row_exactly_once(
    tmp_path: Path, sandbox_factory: SandboxFactory, pg_url: str
) -> None:
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.01))
    rows = 1500
    csv_file = write_csv(tmp_path / "leads.csv", [HEADER, *good_rows(rows)])
    sent_before_kill = await kill_mid_send(
        sandbox, "run", str(csv_file), *target(sandbox), "--db", pg_url,
        "--rate", "0", "--concurrency", "8", cwd=tmp_path, after=300,
    )  # fmt: skip
    assert sent_before_kill < rows, "the job finished before it could be killed"

    resumed = await bulkimport("resume", "--json", "--db", pg_url, cwd=tmp_path)
    assert resumed.code == 0, resumed.err
    counts = resumed.json()["counts"]
    assert resumed.json()["total"] == rows
    assert counts["done"] + counts["duplicate"] == rows
    held = await customers(sandbox)
    assert len(held) == rows
    assert all(c["writes"] == 1 for c in held)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["user", "query"])
async def test_no_password_of_the_url_in_output_logs_or_reports(
    tmp_path: Path, pg_url: str, where: str
) -> None:
    url = with_password(pg_url, where)
    log = tmp_path / "run.log"
    run = await bulkimport(*SAMPLE, "--db", url, "--log", str(log), cwd=tmp_path)
    assert run.code == 1, run.err
    warnings = [line for line in run.err.splitlines() if "PGPASSWORD" in line]
    assert len(warnings) == 1
    assert f"--db {without_password(url)}" in run.err.replace("'", "")
    later = [
        await bulkimport(*args, "--db", url, cwd=tmp_path, password=None)
        for args in (("status",), ("jobs",), ("failed", "-o", "fix.csv"), ("resume", "9"))
    ]
    assert [done.code for done in later[:3]] == [0, 0, 0]
    assert later[3].code != 0
    assert "no job 9 in" in later[3].err
    reports = [tmp_path / f"{database_name(pg_url)}-job-1-failed.csv", tmp_path / "fix.csv"]
    written = [path.read_text(encoding="utf-8-sig") for path in reports]
    for text in [run.out, run.err, log.read_text(), *written] + [d.out + d.err for d in later]:
        assert PASSWORD not in text


@pytest.mark.slow
async def test_forget_and_prune_on_postgres(tmp_path: Path, pg_url: str) -> None:
    run = await bulkimport(*SAMPLE, "--db", pg_url, cwd=tmp_path)
    assert run.code == 1, run.err
    with (ROOT / "samples" / "leads.csv").open(encoding="utf-8", newline="") as f:
        phone = next(row["phone1"] for row in csv.DictReader(f) if row["phone1"])
    forgot = await bulkimport("forget", "--key", phone, "--json", "--db", pg_url, cwd=tmp_path)
    assert forgot.code == 0, forgot.err
    assert forgot.json()["rows"] >= 1
    again = await bulkimport("forget", "--key", phone, "--db", pg_url, cwd=tmp_path)
    assert again.out.strip() == f"nothing in {pg_url} holds that value"

    nothing = await bulkimport("prune", "--older-than", "30d", "--db", pg_url, cwd=tmp_path)
    assert nothing.code == 0, nothing.err
    assert nothing.out.strip().endswith(f"in {pg_url}: nothing to prune")
    pruned = await bulkimport("prune", "--older-than", "0s", "--json", "--db", pg_url, cwd=tmp_path)
    assert pruned.code == 0, pruned.err
    assert pruned.json()["pruned"] == [1]
    jobs = await bulkimport("jobs", "--db", pg_url, cwd=tmp_path)
    assert jobs.out.strip() == f"no jobs in {pg_url}"


async def test_a_remote_import_is_recorded_in_postgres(
    tmp_path: Path, remote_sandbox: SandboxHandle, files: str, pg_url: str
) -> None:
    sent = await bulkimport(
        "remote", f"{files}/leads.csv", *target(remote_sandbox), "--db", pg_url, cwd=tmp_path
    )
    assert sent.code == 0, sent.err
    listed = await bulkimport("jobs", "--json", "--db", pg_url, cwd=tmp_path)
    remotes = listed.json()["remote_imports"]
    assert [(r["server_job_id"], r["state"]) for r in remotes] == [(sent.out.strip(), "accepted")]
    assert not (tmp_path / "bulkimport.db").exists()
