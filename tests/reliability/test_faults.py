"""A bad day at the server: every fault at once, and a request ceiling answered with 429.

One job is run by the real command line against the sandbox with 5 % HTTP 500, 2 % dropped
connections, 1 % hangs, 2 % ``BackMsg_85``; after its first calls (which show the job's own
rate), the sandbox also gets a requests-per-second ceiling below that rate, answered with
HTTP 429 + ``Retry-After``. The run happens once per module; each test
checks one guarantee on what it left: the queue's rows, and the sandbox's arrival log (wall
time, HTTP status, code of every request), customers and counters.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bulkimport.sandbox import Faults, SandboxConfig, serve_sandbox
from tests.helpers import (
    HEADER,
    arrivals,
    bulkimport,
    customers,
    good_rows,
    max_in_window,
    query,
    stats,
    target,
    write_csv,
    write_figures,
)

pytestmark = pytest.mark.slow

ROWS = 400
RATE_PER_S = 100  # the job's --rate
MAX_RPS = 80  # the sandbox's ceiling: below the job's rate, so it answers 429 now and then
CEILING_AFTER_CALLS = 200  # the job runs at its own rate for this many calls first
RETRY_AFTER_S = 1
MAX_ATTEMPTS = 8
# A call already on its way when the 429 was answered may arrive just after it; one that
# arrives later than this was sent during the pause.
IN_TRANSIT_S = 0.05
FAULT_CODES = {
    "http500": "HTTP 500",
    "dropped": "dropped",
    "hung": "hung",
    "backmsg85": "BackMsg_85",
    "http429": "HTTP 429",
}


@dataclass(frozen=True)
class FaultyRun:
    """What one job against the faulty sandbox left behind."""

    code: int
    err: str
    summary: dict[str, Any]
    rows: list[tuple[int, str, int]]  # line, state, attempts
    held: list[dict[str, Any]]  # the sandbox's customers
    by_code: dict[str, int]
    log: list[tuple[float, int, str]]  # the sandbox's arrivals
    seconds: float

    @property
    def times(self) -> list[float]:
        return [t for t, _, _ in self.log]

    def calls_during_pauses(self) -> list[tuple[float, float]]:
        """``(429 answered at, call arrived at)`` for each call inside a Retry-After pause."""
        throttled_at = [t for t, status, _ in self.log if status == 429]
        return [
            (t0, t)
            for t0 in throttled_at
            for t in self.times
            if t0 + IN_TRANSIT_S < t < t0 + RETRY_AFTER_S
        ]


async def _run_job(work: Path) -> FaultyRun:
    faults = Faults(http500_rate=0.05, drop_rate=0.02, hang_rate=0.01, backmsg85_rate=0.02, seed=11)
    throttling = dataclasses.replace(faults, max_rps=MAX_RPS, retry_after_s=RETRY_AFTER_S)
    config = SandboxConfig(port=0, db_path=work / "sandbox" / "sandbox.db", faults=faults)
    async with serve_sandbox(config) as sandbox:

        async def add_the_ceiling() -> None:
            assert sandbox.sandbox is not None
            for _ in range(60_000):  # five minutes at most
                if len(sandbox.sandbox.stats.arrivals) >= CEILING_AFTER_CALLS:
                    sandbox.set_faults(throttling)
                    return
                await asyncio.sleep(0.005)

        ceiling = asyncio.create_task(add_the_ceiling())
        job = work / "job"
        job.mkdir()
        csv_file = write_csv(job / "leads.csv", [HEADER, *good_rows(ROWS)])
        started = time.monotonic()
        result = await bulkimport(
            "run", str(csv_file), *target(sandbox), "--rate", str(RATE_PER_S),
            "--concurrency", "8", "--timeout", "1", "--max-attempts", str(MAX_ATTEMPTS),
            "--json", cwd=job, timeout_s=240,
        )  # fmt: skip
        seconds = time.monotonic() - started
        assert ceiling.done(), "the job ended before the ceiling was set"
        return FaultyRun(
            code=result.code,
            err=result.err,
            summary=result.json() if result.code in (0, 1) else {},
            rows=query(job / "bulkimport.db", "SELECT line, state, attempts FROM rows ORDER BY 1"),
            held=await customers(sandbox),
            by_code=(await stats(sandbox))["by_code"],
            log=await arrivals(sandbox),
            seconds=seconds,
        )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> FaultyRun:
    """The job, run once for the module (a sandbox in its own event loop)."""
    result = asyncio.run(_run_job(tmp_path_factory.mktemp("faults")))
    write_figures(
        "faults",
        {
            "rows": ROWS,
            "rate_per_s": RATE_PER_S,
            "sandbox_max_rps": MAX_RPS,
            "retry_after_s": RETRY_AFTER_S,
            "exit_code": result.code,
            "requests": len(result.log),
            "attempts_recorded": sum(attempts for _, _, attempts in result.rows),
            "faults_by_type": {name: result.by_code.get(c, 0) for name, c in FAULT_CODES.items()},
            "row_states": result.summary.get("counts"),
            "max_attempts_used": max((a for _, _, a in result.rows), default=0),
            "max_attempts": MAX_ATTEMPTS,
            "max_calls_in_a_1s_window": max_in_window(result.times),
            "calls_during_retry_after_pauses": len(result.calls_during_pauses()),
            "server_rows_written_more_than_once": sum(1 for c in result.held if c["writes"] > 1),
            "seconds": round(result.seconds, 1),
        },
    )
    return result


def test_every_good_row_ends_done_and_the_server_holds_it_once(run: FaultyRun) -> None:
    assert run.code == 0, run.err
    assert [line for line, _, _ in run.rows] == list(range(2, ROWS + 2))
    assert {state for _, state, _ in run.rows} == {"done"}
    assert sorted(c["key"] for c in run.held) == sorted(f"139{i:08d}" for i in range(ROWS))
    assert {c["writes"] for c in run.held} == {1}


def test_every_kind_of_fault_happened(run: FaultyRun) -> None:
    missing = [name for name, code in FAULT_CODES.items() if not run.by_code.get(code)]
    assert not missing


def test_no_row_goes_over_its_attempt_limit(run: FaultyRun) -> None:
    assert max(attempts for _, _, attempts in run.rows) <= MAX_ATTEMPTS
    assert min(attempts for _, _, attempts in run.rows) >= 1


def test_every_call_that_reached_the_server_is_a_counted_attempt_or_a_spared_one(
    run: FaultyRun,
) -> None:
    # aiohttp re-sends a GET by itself when a connection drops (off since ed50d71): such a
    # call would bypass the rate limit, Retry-After and the attempt limit. The only calls
    # not counted as attempts are those the server throttled (429: never the row's fault)
    # and probes of an outage (an empty record, answered BackMsg_71).
    spared = run.by_code.get("HTTP 429", 0) + run.by_code.get("BackMsg_71", 0)
    assert len(run.log) == sum(attempts for _, _, attempts in run.rows) + spared


def test_no_1_second_window_holds_more_calls_than_the_rate(run: FaultyRun) -> None:
    assert len(run.log) >= ROWS
    # Before the ceiling the job runs at its own rate: the windows come close to it.
    assert RATE_PER_S * 0.9 <= max_in_window(run.times) <= RATE_PER_S + 1


def test_no_call_arrives_during_a_retry_after_pause(run: FaultyRun) -> None:
    assert run.by_code.get("HTTP 429", 0) > 0
    assert run.calls_during_pauses() == []
