"""Rows that may be on the server: a proxy times out (504) before the server answers, and the
server imports the row all the same (the sandbox's ``queue_timeout_s``).

A real ``bulkimport`` process against a real sandbox; each row is accounted for against the
sandbox's own records: ``done`` ⇔ the server holds it; ``unknown``: it may (its calls got no
answer); ``failed`` or ``duplicate``: never a row this job put there.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from bulkimport.sandbox import Faults, SandboxHandle
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    bulkimport,
    customers,
    good_rows,
    query,
    stats,
    target,
    write_csv,
    write_figures,
)

pytestmark = pytest.mark.slow

ROWS = 150
# A call takes 0.3 s + up to 0.4 s; nginx gives up at 0.55 s: about 3 calls in 8 get its 504
# page, and the server imports those rows all the same. A tenth more get a 500 that
# processes nothing.
SLOW_PROXY = Faults(latency_s=0.3, jitter_s=0.4, queue_timeout_s=0.55, http500_rate=0.1, seed=7)
SEND = ("--rate", "0", "--concurrency", "8", "--json")


def key(line: int) -> str:
    """The phone number (the sandbox's customer key) of ``good_rows``' row at ``line``."""
    return f"139{line - 2:08d}"


def rows_of(db: Path, job: int) -> dict[int, tuple[str, str, str]]:
    """``{line: (state, last_code, last_message)}`` of a job's rows."""
    found = query(db, "SELECT line, state, last_code, last_message FROM rows WHERE job_id = ?", job)
    return {line: (state, code or "", message or "") for line, state, code, message in found}


async def held(sandbox: SandboxHandle) -> set[str]:
    return {c["key"] for c in await customers(sandbox)}


def report_lines(path: str | None) -> list[int]:
    if path is None:
        return []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return [int(row["_line"]) for row in csv.DictReader(handle)]


def exists(path: str) -> bool:
    return Path(path).exists()


def in_state(rows: dict[int, tuple[str, str, str]], *states: str) -> list[int]:
    return sorted(line for line, (state, _, _) in rows.items() if state in states)


def account(rows: dict[int, tuple[str, str, str]], on_server: set[str]) -> dict[str, Any]:
    """Each row against the server's records: what must hold whatever the faults drew."""
    done = in_state(rows, "done")
    unknown = in_state(rows, "unknown")
    settled_no = in_state(rows, "failed", "duplicate")
    assert [line for line in done if key(line) not in on_server] == []
    # No row this job put on the server ends failed or duplicate.
    assert [line for line in settled_no if key(line) in on_server] == []
    # And the server holds no row the job says it did not send there.
    assert sorted(k for k in on_server if int(k[3:]) + 2 not in {*done, *unknown}) == []
    return {
        "done": len(done),
        "unknown": len(unknown),
        "unknown_on_server": sum(1 for line in unknown if key(line) in on_server),
        "failed_or_duplicate": len(settled_no),
    }


def lines_with(rows: dict[int, tuple[str, str, str]], lines: Iterable[int]) -> set[str]:
    return {rows[line][2] for line in lines}


async def test_rows_a_timeout_may_have_imported_end_unknown_listed_apart_and_retried_on_demand(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=SLOW_PROXY)
    work = tmp_path / "job"
    work.mkdir()
    leads = write_csv(work / "leads.csv", [HEADER, *good_rows(ROWS)])
    # --dupway update: each resend rewrites the customer, so 3 unanswered calls at most.
    first = await bulkimport(
        "run", str(leads), *target(sandbox), *SEND, "--dupway", "update", cwd=work,
        timeout_s=300,
    )  # fmt: skip
    db = work / "bulkimport.db"
    summary = first.json()
    rows = rows_of(db, summary["job"])
    assert len(rows) == ROWS
    figures = account(rows, await held(sandbox))
    unknown = in_state(rows, "unknown")
    assert unknown, "no row ended unknown: the faults drew no three 504s in a row"
    assert figures["unknown_on_server"] > 0
    # Its own count, its own list beside the failed-rows report, never in it; exit code 1.
    assert first.code == 1, first.err
    assert summary["counts"]["unknown"] == summary["maybe_on_server"] == len(unknown)
    assert report_lines(summary["unknown_report"]) == unknown
    assert not set(report_lines(summary["report"])) & set(unknown)
    assert all("check the server before sending it again" in m for m in lines_with(rows, unknown))
    assert "may be on the server" in first.err and "retry 1 --unknown" in first.err
    status = await bulkimport("status", cwd=work)
    assert re.search(rf"^ +unknown +{len(unknown)}$", status.out, re.MULTILINE), status.out

    # A plain retry leaves them alone; --unknown sends them again (--dupway skip: safe).
    sandbox.set_faults(Faults())
    plain = await bulkimport("retry", "1", *SEND, "--dupway", "skip", cwd=work, timeout_s=120)
    assert in_state(rows_of(db, 1), "unknown") == unknown, plain.err
    again = await bulkimport(
        "retry", "1", "--unknown", *SEND, "--dupway", "skip", cwd=work, timeout_s=120
    )
    after = rows_of(db, 1)
    assert again.code == (1 if in_state(after, "failed", "rejected") else 0), again.err
    assert in_state(after, "unknown", "duplicate") == []
    assert set(in_state(after, "done")) >= set(unknown)
    account(after, await held(sandbox))
    assert again.json()["unknown_report"] is None
    assert not exists(summary["unknown_report"])  # every row is settled: no list any more
    server = await stats(sandbox)
    write_figures(
        "unknown_rows_dupway_update",
        {
            "rows": ROWS,
            "faults": SLOW_PROXY.to_json(),
            "first_run": figures,
            "first_run_counts": {k: v for k, v in summary["counts"].items() if v},
            "after_retry_unknown": {k: v for k, v in again.json()["counts"].items() if v},
            "answers_504": server["by_status"].get("504", 0),
            "processed_after_504": sum(server["processed_after_504"].values()),
        },
    )


async def test_a_later_night_sends_unknown_rows_again_and_counts_them_loaded_once_answered(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    sandbox = await sandbox_factory(faults=SLOW_PROXY)
    work = tmp_path / "nightly"
    work.mkdir()
    lines = [HEADER, *good_rows(ROWS)]
    nights = ("--dupway", "skip", "--skip-unchanged", "--new")
    # Night 1: two calls per row at most, so that some rows get two 504s and no answer.
    first = await bulkimport(
        "run", str(write_csv(work / "leads.csv", lines)), *target(sandbox), *SEND, *nights,
        "--max-attempts", "2", cwd=work, timeout_s=300,
    )  # fmt: skip
    db = work / "bulkimport.db"
    night1 = rows_of(db, first.json()["job"])
    figures = account(night1, await held(sandbox))
    unknown = in_state(night1, "unknown")
    assert unknown and figures["unknown_on_server"] > 0
    done = in_state(night1, "done")
    # Rows with an unknown outcome among definite failures (a 500 that processed nothing):
    # how many of them the server holds is the evidence for ending them unknown.
    mixed = [
        line
        for (line,) in query(
            db, "SELECT line FROM rows WHERE job_id = 1 AND state = 'unknown'"
            " AND unknowns < attempts",
        )
    ]  # fmt: skip
    on_server = await held(sandbox)
    figures["mixed_unknown"] = len(mixed)
    figures["mixed_unknown_on_server"] = sum(1 for line in mixed if key(line) in on_server)

    # Night 2, the same file, the server well: loaded rows are skipped; the unknown ones are
    # not loaded, so they are sent, and a duplicate answer (the server has it from night 1)
    # counts done: none of them ends duplicate.
    sandbox.set_faults(Faults())
    second = await bulkimport(
        "run", str(write_csv(work / "leads.csv", lines)), *target(sandbox), *SEND, *nights,
        cwd=work, timeout_s=120,
    )  # fmt: skip
    night2 = rows_of(db, second.json()["job"])
    assert in_state(night2, "skipped") == done
    assert set(in_state(night2, "done")) >= set(unknown)
    assert in_state(night2, "duplicate", "unknown") == []
    assert "an earlier job may have loaded" in second.err
    sent = {line: row for line, row in night2.items() if row[0] != "skipped"}
    account({**night1, **sent}, await held(sandbox))
    before = (await stats(sandbox))["requests"]

    # Night 3: every row is loaded now; nothing is sent.
    third = await bulkimport(
        "run", str(write_csv(work / "leads.csv", lines)), *target(sandbox), *SEND, *nights,
        cwd=work, timeout_s=120,
    )  # fmt: skip
    assert third.code == 0, third.err
    night3 = rows_of(db, third.json()["job"])
    assert in_state(night3, "skipped") == sorted(set(done) | set(in_state(night2, "done")))
    assert (await stats(sandbox))["requests"] == before
    write_figures(
        "unknown_rows_next_night",
        {
            "rows": ROWS,
            "night1": figures,
            "night2_counts": {k: v for k, v in second.json()["counts"].items() if v},
            "night3_counts": {k: v for k, v in third.json()["counts"].items() if v},
        },
    )
