"""Fatal answers (wrong password, unknown campaign, unknown org) stop the job within one round
of calls in flight, with exit code 3, one line naming what to fix and every row still pending;
``resume`` with the setting fixed completes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkimport.sandbox import Faults
from tests.conftest import SandboxFactory
from tests.helpers import (
    HEADER,
    bulkimport,
    customers,
    good_rows,
    query,
    stats,
    write_csv,
    write_figures,
)

ROWS = 200
CONCURRENCY = 4


@pytest.mark.parametrize(
    ("wrong", "fixed", "password", "names"),
    [
        ([], [], "not-the-password", "password"),
        (["--campaign", "99"], ["--campaign", "1"], "secret", "campaign"),
        (["--org", "nope"], ["--org", "demo"], "secret", "org"),
    ],
    ids=["password", "campaign", "org"],
)
async def test_a_fatal_answer_stops_within_one_round_and_resume_completes_the_job(
    tmp_path: Path,
    sandbox_factory: SandboxFactory,
    wrong: list[str],
    fixed: list[str],
    password: str,
    names: str,
) -> None:
    # Answers take a while, so that a whole round of calls is in flight at the first answer.
    sandbox = await sandbox_factory(faults=Faults(latency_s=0.05))
    work = tmp_path / "job"
    work.mkdir()
    csv_file = write_csv(work / "leads.csv", [HEADER, *good_rows(ROWS)])
    options = {"--org": "demo", "--campaign": "1"}
    options.update(zip(wrong[::2], wrong[1::2], strict=True))
    target = ["--url", sandbox.url, "--user", "admin", *(x for kv in options.items() for x in kv)]

    stopped = await bulkimport(
        "run", str(csv_file), *target, "--rate", "0", "--concurrency", str(CONCURRENCY),
        cwd=work, password=password,
    )  # fmt: skip

    assert stopped.code == 3, stopped.err
    assert "Traceback" not in stopped.err
    (line,) = stopped.error_lines()
    assert names in line.lower()
    assert "bulkimport resume 1" in line
    calls = (await stats(sandbox))["requests"]
    assert 1 <= calls <= CONCURRENCY
    db = work / "bulkimport.db"
    assert query(db, "SELECT state, attempts, COUNT(*) FROM rows GROUP BY 1, 2") == [
        ("pending", 0, ROWS)
    ]
    assert query(db, "SELECT state FROM jobs") == [("stopped",)]
    assert await customers(sandbox) == []

    sandbox.set_faults(Faults())  # slow answers were for the first round; the rest goes at once
    resumed = await bulkimport("resume", *fixed, "--json", cwd=work)

    assert resumed.code == 0, resumed.err
    assert resumed.json()["counts"]["done"] == ROWS
    held = await customers(sandbox)
    assert len(held) == ROWS
    assert {c["writes"] for c in held} == {1}
    write_figures(
        f"fatal_{names}",
        {"calls_before_the_stop": calls, "concurrency": CONCURRENCY, "message": line},
    )
