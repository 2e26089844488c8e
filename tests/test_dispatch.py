"""The dispatcher: rate limit, backoff, and real jobs sent to the real sandbox over HTTP.

The rate limiter runs on an event loop whose clock is virtual (``VirtualTimeLoop``): sleeping
moves the clock instead of waiting, so Hypothesis can try thousands of call patterns at once.
Everything else uses a real SQLite queue in ``tmp_path`` and the sandbox on a free port.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import selectors
import statistics
import time
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bulkimport.protocol import (
    ImportParams,
    Outcome,
    OutcomeKind,
    PasswordType,
    Trouble,
    classify_http,
    classify_trouble,
    encode_params,
    format_answer,
    md5_hex,
)
from bulkimport.sandbox import Faults, SandboxHandle
from bulkimport.send import (
    Dispatcher,
    DispatchOptions,
    HttpTransport,
    Listeners,
    RateLimiter,
    SendEnd,
    SendResult,
    Transport,
    Watch,
    WatchEvent,
    open_session,
)
from bulkimport.send.dispatcher import UNKNOWN_CODE
from bulkimport.send.health import HealthSettings
from bulkimport.send.scripted import Request, RequestKind, ScriptedTransport
from bulkimport.settings import Method, RetryPolicy, SendSettings
from bulkimport.states import RowState, StopCause
from bulkimport.storage import RowView
from bulkimport.storage.sqlite import SqliteStorage
from tests.conftest import SandboxFactory
from tests.helpers import (
    PARAMS,
    a_runner,
    make_job,
    phone,
    record,
    send_settings,
)

T = TypeVar("T")

RUN_LIMIT_S = 30.0  # no test run may take longer: a hang fails instead of blocking the suite
ANSWERED_DONE = classify_http(200, format_answer(True, "BackMsg_84"))
ANSWERED_DUPLICATE = classify_http(200, format_answer(False, "BackMsg_82"))
NOTHING_IMPORTED = classify_http(200, format_answer(False, "BackMsg_71"))  # a probe's answer
WELCOME_PAGE = classify_http(200, "<html><title>Welcome to nginx!</title></html>")


# --- a virtual clock for the rate limiter -----------------------------------------------------


class _VirtualClockSelector(selectors.SelectSelector):
    """Never waits: moves a virtual clock forward by the timeout the loop asked for, plus
    the next of ``lateness_s`` (cyclically): a busy loop that wakes its timers late."""

    def __init__(self, lateness_s: Sequence[float]) -> None:
        super().__init__()
        self.now_s = 0.0
        self._lateness = itertools.cycle(lateness_s or [0.0])

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise RuntimeError("nothing is scheduled: the scenario would wait forever")
        if timeout > 0:
            self.now_s += timeout + next(self._lateness)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` only moves when every task is waiting for a timer."""

    def __init__(self, lateness_s: Sequence[float] = ()) -> None:
        self._virtual = _VirtualClockSelector(lateness_s)
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now_s


def run_virtual(scenario: Callable[[], Awaitable[T]], lateness_s: Sequence[float] = ()) -> T:
    loop = VirtualTimeLoop(lateness_s)
    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()


async def _acquire_at(
    limiter: RateLimiter, gaps_s: Sequence[float]
) -> tuple[list[float], list[float]]:
    """Callers arrive after each gap; return their arrival and start times, in start order."""
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    starts: list[tuple[int, float]] = []

    async def call(index: int) -> None:
        await limiter.acquire()
        starts.append((index, loop.time()))

    tasks = []
    for index, gap_s in enumerate(gaps_s):
        if gap_s:
            await asyncio.sleep(gap_s)
        arrivals.append(loop.time())
        tasks.append(asyncio.create_task(call(index)))
    await asyncio.gather(*tasks)
    assert [index for index, _ in starts] == list(range(len(gaps_s))), "served out of order"
    return arrivals, [start for _, start in starts]


def max_in_window(times: Sequence[float], window_s: float = 1.0) -> int:
    """The most events in any closed window ``[t, t + window_s]`` (t an event time)."""
    ordered = sorted(times)
    most = 0
    end = 0
    for begin, start in enumerate(ordered):
        while end < len(ordered) and ordered[end] <= start + window_s:
            end += 1
        most = max(most, end - begin)
    return most


# --- RateLimiter ------------------------------------------------------------------------------


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    rate_per_s=st.floats(min_value=0.5, max_value=500.0),
    gaps_s=st.lists(
        st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=0.05), st.floats(0.0, 2.0)),
        min_size=1,
        max_size=60,
    ),
)
def test_rate_limiter_spaces_calls_without_needless_waits(
    rate_per_s: float, gaps_s: list[float]
) -> None:
    async def scenario() -> tuple[list[float], list[float]]:
        limiter = RateLimiter(rate_per_s, clock=asyncio.get_running_loop().time)
        return await _acquire_at(limiter, gaps_s)

    arrivals, starts = run_virtual(scenario)
    interval_s = 1.0 / rate_per_s
    eps = 1e-9
    assert starts[0] == arrivals[0]
    for k in range(1, len(starts)):
        assert starts[k] - starts[k - 1] >= interval_s - eps
        # Work-conserving: a call waits for its turn and not a moment longer.
        earliest = max(arrivals[k], starts[k - 1] + interval_s)
        assert starts[k] <= earliest + eps
    assert max_in_window(starts) <= math.floor(rate_per_s + 1 + eps)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    rate_per_s=st.floats(min_value=0.5, max_value=500.0),
    lateness=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=20),
    gaps_s=st.lists(st.one_of(st.just(0.0), st.floats(0.0, 1.5)), min_size=1, max_size=60),
)
def test_rate_limiter_window_holds_when_the_loop_wakes_late(
    rate_per_s: float, lateness: list[float], gaps_s: list[float]
) -> None:
    interval_s = 1.0 / rate_per_s
    lateness_s = [share * interval_s for share in lateness]  # up to 3 intervals late

    async def scenario() -> list[float]:
        limiter = RateLimiter(rate_per_s, clock=asyncio.get_running_loop().time)
        return (await _acquire_at(limiter, gaps_s))[1]

    starts = run_virtual(scenario, lateness_s)
    assert max_in_window(starts) <= math.floor(rate_per_s + 1 + 1e-9)


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    rate_per_s=st.integers(min_value=1, max_value=200),
    lateness=st.lists(st.floats(min_value=0.0, max_value=0.45), min_size=1, max_size=20),
)
def test_rate_limiter_keeps_its_rate_when_the_loop_wakes_late(
    rate_per_s: int, lateness: list[float]
) -> None:
    interval_s = 1.0 / rate_per_s
    lateness_s = [share * interval_s for share in lateness]
    calls = 150

    async def scenario() -> list[float]:
        limiter = RateLimiter(rate_per_s, clock=asyncio.get_running_loop().time)
        return (await _acquire_at(limiter, [0.0] * calls))[1]

    starts = run_virtual(scenario, lateness_s)
    # A backlog: the k-th call starts on its slot, late by one wake-up at most, not by the
    # sum of every wake-up before it.
    for k, start in enumerate(starts):
        assert start <= k * interval_s + max(lateness_s) + 1e-9
    assert max_in_window(starts) <= rate_per_s + 1


def test_rate_limiter_pause_delays_every_waiter_including_the_sleeping_one() -> None:
    async def scenario() -> list[float]:
        limiter = RateLimiter(10.0, clock=asyncio.get_running_loop().time)

        async def pause_soon() -> None:
            await asyncio.sleep(0.05)  # the second caller is asleep waiting for 0.1
            limiter.pause(2.0)

        pauser = asyncio.create_task(pause_soon())
        _, starts = await _acquire_at(limiter, [0.0] * 5)
        await pauser
        return starts

    assert run_virtual(scenario) == pytest.approx([0.0, 2.05, 2.15, 2.25, 2.35])


def test_rate_limiter_without_rate_does_not_space_but_honours_pause() -> None:
    async def scenario() -> tuple[list[float], list[float], list[float]]:
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(0.0, clock=loop.time)
        _, burst = await _acquire_at(limiter, [0.0] * 5)
        await asyncio.sleep(0.2)
        limiter.pause(1.5)
        limiter.pause(0.5)  # a shorter pause does not shorten the longer one
        _, paused = await _acquire_at(limiter, [0.0] * 3)
        await asyncio.sleep(1.0)
        _, after = await _acquire_at(limiter, [0.0] * 2)
        return burst, paused, after

    burst, paused, after = run_virtual(scenario)
    assert burst == [0.0] * 5
    assert paused == pytest.approx([1.7] * 3)
    assert after == pytest.approx([2.7] * 2)


# --- backoff ----------------------------------------------------------------------------------


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base_s=st.floats(min_value=1e-4, max_value=100.0),
    max_s=st.floats(min_value=0.0, max_value=10_000.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_stays_within_its_ceiling(
    attempt: int, base_s: float, max_s: float, seed: int
) -> None:
    delay_s = RetryPolicy(5, base_s, max_s).backoff_s(attempt, random.Random(seed))
    ceiling_s = min(max_s, base_s * 2.0 ** min(attempt, 100))
    assert 0.0 <= delay_s <= ceiling_s


class _HighestDraw(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_ceiling_doubles_up_to_its_maximum() -> None:
    ceilings = [
        RetryPolicy(5, 0.5, 20.0).backoff_s(attempt, _HighestDraw()) for attempt in range(1, 9)
    ]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0, 20.0]


def test_backoff_is_fully_jittered_and_grows_on_average() -> None:
    rng = random.Random(7)
    means = [
        statistics.fmean(RetryPolicy(5, 0.1, 100.0).backoff_s(a, rng) for _ in range(4000))
        for a in (1, 2, 3)
    ]
    # Uniform in [0, 0.1 * 2**a]: means 0.1, 0.2, 0.4.
    assert means == pytest.approx([0.1, 0.2, 0.4], rel=0.06)


# --- helpers for sending real jobs ------------------------------------------------------------


async def rows_of(queue: SqliteStorage, job_id: int) -> list[RowView]:
    return [row async for row in queue.reports.iter_rows(job_id, list(RowState))]


def by_state(rows: Sequence[RowView]) -> dict[RowState, int]:
    counts = dict.fromkeys(RowState, 0)
    for row in rows:
        counts[row.state] += 1
    return counts


async def inspect(http: aiohttp.ClientSession, handle: SandboxHandle, path: str) -> Any:
    async with http.get(handle.base_url + path) as response:
        assert response.status == 200
        return await response.json()


async def customers(http: aiohttp.ClientSession, handle: SandboxHandle) -> dict[str, Any]:
    """The sandbox's customers of campaign 1 by key (phone1)."""
    found = await inspect(http, handle, "/sandbox/customers?model_id=1")
    by_key = {customer["key"]: customer for customer in found}
    assert len(by_key) == len(found)
    return by_key


@dataclass(frozen=True)
class Call:
    record: str
    started_mono: float
    ended_mono: float
    started_wall: float
    ended_wall: float
    outcome: Outcome


@dataclass
class RecordingTransport(Transport):
    """Passes calls to an inner transport and remembers when each started and ended."""

    inner: Transport | HttpTransport
    calls: list[Call] = field(default_factory=list)

    async def send(self, record: str) -> Outcome:
        started_mono, started_wall = time.monotonic(), time.time()
        outcome = await self.inner.send(record)
        self.calls.append(
            Call(record, started_mono, time.monotonic(), started_wall, time.time(), outcome)
        )
        return outcome


def recording(
    http: aiohttp.ClientSession,
    url: str,
    settings: SendSettings,
    params: ImportParams = PARAMS,
) -> RecordingTransport:
    return RecordingTransport(HttpTransport(http, url, params, settings))


async def dispatch(
    queue: SqliteStorage,
    job_id: int,
    transport: Transport | HttpTransport,
    settings: SendSettings,
    listeners: Listeners | None = None,
    **options: Any,
) -> SendResult:
    """Send the job with ``options`` (``DispatchOptions``' fields), in ``RUN_LIMIT_S``."""
    async with asyncio.timeout(RUN_LIMIT_S):
        return await Dispatcher(
            queue.sending,
            job_id,
            transport,
            settings,
            runner=a_runner(),
            options=DispatchOptions(**options),
            listeners=listeners,
        ).run()


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    async with await SqliteStorage.open(tmp_path / "queue.db") as opened:
        yield opened


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with open_session(8) as session:
        yield session


# --- no faults --------------------------------------------------------------------------------


async def test_every_row_is_imported_exactly_once(
    queue: SqliteStorage, http: aiohttp.ClientSession, sandbox: SandboxHandle
) -> None:
    n = 120
    job_id = await make_job(queue, [record(i) for i in range(n)])
    settings = send_settings()

    result = await dispatch(
        queue, job_id, HttpTransport(http, sandbox.url, PARAMS, settings), settings
    )

    assert result.end is SendEnd.FINISHED
    assert result.cause is None and result.outcome is None
    assert (result.counts.sent, result.counts.done, result.counts.retried) == (n, n, 0)
    counts = await queue.reports.counts(job_id)
    assert counts[RowState.DONE] == n
    assert counts[RowState.PENDING] == counts[RowState.IN_FLIGHT] == 0
    rows = await rows_of(queue, job_id)
    assert {(row.attempts, row.last_code) for row in rows} == {(1, "BackMsg_84")}
    stored = await customers(http, sandbox)
    assert set(stored) == {phone(i) for i in range(n)}
    assert {customer["writes"] for customer in stored.values()} == {1}
    assert stored[phone(7)]["fields"]["customername"] == "Lead 7"
    stats = await inspect(http, sandbox, "/sandbox/stats")
    assert stats["requests"] == n


async def test_duplicates_end_duplicate_and_bad_rows_end_rejected_with_their_answer(
    queue: SqliteStorage, http: aiohttp.ClientSession, sandbox: SandboxHandle
) -> None:
    records = [
        record(1),  # imported
        record(1),  # same key, same data: duplicate data (81)
        record(1, email="other@example.com"),  # same key, other data: duplicate phone (82)
        "name=No phone||email=x@example.com",  # required phone1 missing (76)
        record(2, fax="123"),  # unknown field (74)
        None,  # invalid: never sent
    ]
    job_id = await make_job(queue, records)
    settings = send_settings(concurrency=1)  # in line order: the first one is the original

    result = await dispatch(
        queue, job_id, HttpTransport(http, sandbox.url, PARAMS, settings), settings
    )

    assert result.end is SendEnd.FINISHED
    rows = await rows_of(queue, job_id)
    assert [(row.state, row.last_code) for row in rows] == [
        (RowState.DONE, "BackMsg_84"),
        (RowState.DUPLICATE, "BackMsg_81"),
        (RowState.DUPLICATE, "BackMsg_82"),
        (RowState.REJECTED, "BackMsg_76"),
        (RowState.REJECTED, "BackMsg_74"),
        (RowState.INVALID, "no-values"),
    ]
    assert rows[3].last_message == "BackMsg_76 phone1"
    assert rows[4].last_message == "BackMsg_74 fax"
    assert [row.attempts for row in rows] == [1, 1, 1, 1, 1, 0]
    counts = result.counts
    assert (counts.sent, counts.done, counts.duplicate, counts.rejected) == (5, 1, 2, 2)
    stored = await customers(http, sandbox)
    assert list(stored) == [phone(1)]
    assert stored[phone(1)]["writes"] == 1
    assert "email" not in stored[phone(1)]["fields"]


# --- faults -----------------------------------------------------------------------------------


def assert_each_record_imported_once(
    rows: Sequence[RowView],
    calls: Sequence[Call],
    stored: dict[str, Any],
    max_attempts: int,
    spared: int = 0,
) -> None:
    """Every row ended done (a duplicate answer after an attempt whose outcome was unknown
    is this job's import); the sandbox holds each record once, written once; no row went
    over its attempts, and the calls not held against a row are the ones spared."""
    for row in rows:
        assert row.state is RowState.DONE, row
        assert 1 <= row.attempts <= max_attempts, row
    phones = {dict(p.split("=", 1) for p in str(row.record).split("||"))["phone1"] for row in rows}
    assert set(stored) == phones
    # dupway=skip never writes a duplicate: a resent record is answered 81, not rewritten.
    assert {customer["writes"] for customer in stored.values()} == {1}
    sent_by_record: dict[str, int] = {}
    for call in calls:
        if call.record:  # not a probe of the server (an empty record)
            sent_by_record[call.record] = sent_by_record.get(call.record, 0) + 1
    assert all(sent_by_record[str(row.record)] >= row.attempts for row in rows)
    assert sum(sent_by_record.values()) - sum(row.attempts for row in rows) == spared


@dataclass
class StallingTransport(RecordingTransport):
    """A recording transport on a machine that stalls now and then: before every
    ``every``-th call, the process (the sandbox's side too: it runs in this event loop) is
    held up for ``stall_s``, longer than a call's timeout, as a loaded machine holds up a
    process it does not schedule. The calls in flight then end as timeouts, answered or not,
    sent or not; enough in a row look like a server gone silent, and it is probed."""

    every: int = 40
    stall_s: float = 0.7
    started: int = 0

    async def send(self, record: str) -> Outcome:
        self.started += 1
        if self.started % self.every == 0:
            asyncio.get_running_loop().call_soon(time.sleep, self.stall_s)
        return await super().send(record)


async def assert_faults_retried(
    queue: SqliteStorage,
    job_id: int,
    n: int,
    http: aiohttp.ClientSession,
    handle: SandboxHandle,
    transport: RecordingTransport,
    result: SendResult,
    fault_code: str | None,
) -> None:
    """What a run through faults guarantees, however fast the machine: every row imported
    once, every call beyond one a row the fault's or a timeout's, and every call counted.

    A call's timeout (0.5 s) is a fact of the machine as much as of the server: a loaded
    one that stalls past it turns answers into timeouts (the record imported all the same:
    its resend is answered as a duplicate, this job's own), and calls not yet sent into
    timeouts the server never saw. Enough of them in a row are an outage, probed with an
    empty record: a call that is no row's."""
    assert result.end is SendEnd.FINISHED
    rows = await rows_of(queue, job_id)
    assert_each_record_imported_once(
        rows, transport.calls, await customers(http, handle), 12, result.counts.spared
    )
    codes = [call.outcome.code for call in transport.calls]
    row_codes = [call.outcome.code for call in transport.calls if call.record]
    timeouts = codes.count("timeout")
    if fault_code is not None:
        assert row_codes.count(fault_code) > 0
        # Every call past one a row is the fault's or a timeout: any other code is a retry
        # neither caused (the counts say which).
        retries = [code for code in row_codes if code in {fault_code, "timeout"}]
        assert len(row_codes) == n + len(retries), Counter(codes)
    assert result.counts.sent == len(codes)
    assert sum(row.attempts for row in rows) == len(row_codes) - result.counts.spared
    assert result.counts.retried == len(row_codes) - n
    stats = await inspect(http, handle, "/sandbox/stats")
    # No hidden resend: the server saw no call that was not counted here, and every call
    # but a timeout reached it (a call timed out may never have been sent).
    assert len(codes) - timeouts <= stats["requests"] <= len(codes), Counter(codes)
    # The sandbox imports a record only when it answers it: each was imported once.
    assert stats["by_code"]["BackMsg_84"] == sum(row.state is RowState.DONE for row in rows)
    if fault_code == "HTTP 500":
        # Each 500 seen here was the server's; one answered too late to be seen, a timeout.
        seen = codes.count("HTTP 500")
        assert seen <= stats["by_status"]["500"] <= seen + timeouts
    if fault_code == "timeout":
        # Every hung call timed out (a stalled machine times out others too).
        assert 0 < stats["by_code"]["hung"] <= timeouts


@pytest.mark.parametrize(
    ("faults", "fault_code"),
    [
        (Faults(http500_rate=0.3, seed=1), "HTTP 500"),
        (Faults(backmsg85_rate=0.3, seed=2), "BackMsg_85"),
        (Faults(drop_rate=0.3, seed=3), "dropped"),
        (Faults(hang_rate=0.1, seed=4), "timeout"),
        (
            Faults(http500_rate=0.1, backmsg85_rate=0.1, drop_rate=0.05, hang_rate=0.03, seed=5),
            None,
        ),
    ],
    ids=["http500", "backmsg85", "drop", "hang", "mixed"],
)
async def test_faults_are_retried_until_every_row_is_imported_once(
    queue: SqliteStorage,
    http: aiohttp.ClientSession,
    sandbox_factory: SandboxFactory,
    faults: Faults,
    fault_code: str | None,
) -> None:
    handle = await sandbox_factory(faults=faults)
    n = 150
    job_id = await make_job(queue, [record(i) for i in range(n)])
    settings = send_settings(max_attempts=12, timeout_s=0.5)
    transport = recording(http, handle.url, settings)

    result = await dispatch(queue, job_id, transport, settings, rng=random.Random(1))

    await assert_faults_retried(queue, job_id, n, http, handle, transport, result, fault_code)


@pytest.mark.parametrize(
    ("faults", "fault_code"),
    [(Faults(hang_rate=0.1, seed=4), "timeout"), (Faults(http500_rate=0.3, seed=1), "HTTP 500")],
    ids=["hang", "http500"],
)
async def test_faults_on_a_machine_that_stalls_are_retried_until_every_row_is_imported_once(
    queue: SqliteStorage,
    http: aiohttp.ClientSession,
    sandbox_factory: SandboxFactory,
    faults: Faults,
    fault_code: str,
) -> None:
    # A loaded machine: what the run guarantees holds when its calls time out for the
    # machine's sake too (the stalls are the load, not a wait for anything).
    handle = await sandbox_factory(faults=faults)
    n = 150
    job_id = await make_job(queue, [record(i) for i in range(n)])
    settings = send_settings(max_attempts=12, timeout_s=0.5)
    transport = StallingTransport(HttpTransport(http, handle.url, PARAMS, settings))

    result = await dispatch(queue, job_id, transport, settings, rng=random.Random(1))

    await assert_faults_retried(queue, job_id, n, http, handle, transport, result, fault_code)


def poison_rows(inner: HttpTransport, poison: str) -> ScriptedTransport:
    """Answers the vendor's storage error (``BackMsg_85``, nothing stored) to the records that
    hold ``poison`` (a record the server chokes on), and passes the others on: troubles among
    answers are the rows' own."""

    async def server(request: Request) -> Outcome:
        if poison in request.record:
            return classify_http(200, "|Retuen|2|Retuen|BackMsg_85")
        return await inner.send(request.record)

    return ScriptedTransport(server)


async def test_rows_fail_after_max_attempts_and_are_sent_no_more(
    queue: SqliteStorage, http: aiohttp.ClientSession, sandbox: SandboxHandle
) -> None:
    n = 40
    job_id = await make_job(
        queue, [record(i, memo="boom" if i % 4 == 0 else "ok") for i in range(n)]
    )
    settings = send_settings(max_attempts=2)
    transport = poison_rows(HttpTransport(http, sandbox.url, PARAMS, settings), "memo=boom")

    result = await dispatch(queue, job_id, transport, settings)

    assert result.end is SendEnd.FINISHED
    poisoned = n // 4
    assert (result.counts.failed, result.counts.done) == (poisoned, n - poisoned)
    rows = await rows_of(queue, job_id)
    assert {
        (row.state, row.attempts, row.last_code) for row in rows if "boom" in str(row.record)
    } == {(RowState.FAILED, 2, "BackMsg_85")}
    rows_sent = [r for r in transport.requests if r.kind is RequestKind.SEND]
    assert len(rows_sent) == n + poisoned  # two calls each, no more
    assert len(await customers(http, sandbox)) == n - poisoned


async def test_a_server_that_fails_every_call_is_an_outage_that_costs_no_attempt(
    queue: SqliteStorage, http: aiohttp.ClientSession, sandbox_factory: SandboxFactory
) -> None:
    # HTTP 500 to everything: not forty failing rows but one server down. Sending pauses,
    # probes one call at a time, and past --max-outage the job stops, every row pending.
    handle = await sandbox_factory(faults=Faults(http500_rate=1.0))
    n = 40
    job_id = await make_job(queue, [record(i) for i in range(n)])
    settings = send_settings(max_attempts=2, max_outage_s=2.5)
    transport = recording(http, handle.url, settings)

    result = await dispatch(queue, job_id, transport, settings)

    assert (result.end, result.cause) == (SendEnd.STOPPED, StopCause.OUTAGE)
    rows = await rows_of(queue, job_id)
    assert by_state(rows)[RowState.PENDING] == n
    assert {row.attempts for row in rows} == {0}
    # The calls that showed the outage, then a probe at 1 s and at 3 s: not 40 x 2.
    assert len(transport.calls) <= 2 * settings.pool + 3


# --- rate limit and Retry-After ---------------------------------------------------------------


async def test_rate_limit_holds_at_the_server(
    queue: SqliteStorage, http: aiohttp.ClientSession, sandbox: SandboxHandle
) -> None:
    # What holds on any machine: the calls start spaced (the limiter's bound, proved in its
    # comment and tested on a virtual clock, with the rate it keeps), and the server sees
    # those calls and no other, each while it is made. How close to each other the requests
    # arrive also depends on how promptly this process is run (the sandbox is in it), and
    # how near the limit the run gets is a speed: bench/.
    n, rate = 150, 50.0
    job_id = await make_job(queue, [record(i) for i in range(n)])
    settings = send_settings(rate_per_s=rate, concurrency=8)
    transport = recording(http, sandbox.url, settings)

    result = await dispatch(queue, job_id, transport, settings)

    assert result.end is SendEnd.FINISHED
    assert result.counts.done == n
    assert len(transport.calls) == n
    starts = sorted(call.started_mono for call in transport.calls)
    assert max_in_window(starts) <= rate + 1
    arrivals = sorted(arrival[0] for arrival in await inspect(http, sandbox, "/sandbox/arrivals"))
    assert len(arrivals) == n
    # By any moment, no more requests arrived than calls had started, and no fewer than
    # calls had been answered (the same wall clock: the sandbox runs in this process).
    started = sorted(call.started_wall for call in transport.calls)
    answered = sorted(call.ended_wall for call in transport.calls)
    assert all(s <= a <= e for s, a, e in zip(started, arrivals, answered, strict=True))


@pytest.mark.serial  # the pauses, to the millisecond
async def test_retry_after_pauses_every_worker(
    queue: SqliteStorage, http: aiohttp.ClientSession, sandbox_factory: SandboxFactory
) -> None:
    retry_after_s = 1
    handle = await sandbox_factory(faults=Faults(max_rps=25, retry_after_s=retry_after_s))
    n, concurrency = 60, 4
    job_id = await make_job(queue, [record(i) for i in range(n)])
    settings = send_settings(rate_per_s=200.0, concurrency=concurrency, max_attempts=10)
    transport = recording(http, handle.url, settings)

    result = await dispatch(queue, job_id, transport, settings)

    assert result.end is SendEnd.FINISHED
    assert result.counts.done == n
    throttled = [call for call in transport.calls if call.outcome.code == "HTTP 429"]
    assert throttled, "the ceiling was never reached: the test proves nothing"
    assert result.counts.throttled == len(throttled)
    assert {call.outcome.retry_after_s for call in throttled} == {retry_after_s}
    # Client side, exactly: once a 429 reached the client, no call started for Retry-After.
    for answer in throttled:
        started_in_pause = [
            call
            for call in transport.calls
            if answer.ended_mono < call.started_mono < answer.ended_mono + retry_after_s - 1e-3
        ]
        assert started_in_pause == []
    # Server side: after a 429 arrived, the only arrivals within the pause are calls that were
    # already in flight when the first answer 429 reached the client (their start came first).
    arrivals = await inspect(http, handle, "/sandbox/arrivals")
    for arrived_s, status, *_ in arrivals:
        if status != 429:
            continue
        seen_s = min(c.ended_wall for c in throttled if c.ended_wall >= arrived_s)
        late = [a for a in arrivals if seen_s < a[0] < arrived_s + retry_after_s - 0.05]
        in_flight = [c for c in transport.calls if c.started_wall < seen_s < c.ended_wall]
        assert len(late) <= len(in_flight) <= concurrency - 1


# --- fatal answers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code"),
    [
        (ImportParams(org="demo", user="admin", password="wrong", campaign="1"), "BackMsg_63"),
        (ImportParams(org="demo", user="admin", password="secret", campaign="999"), "BackMsg_73"),
        (ImportParams(org="nope", user="admin", password="secret", campaign="1"), "BackMsg_02"),
    ],
    ids=["password", "campaign", "org"],
)
@pytest.mark.parametrize("rate_per_s", [0.0, 100.0], ids=["unlimited", "rate-limited"])
async def test_fatal_answer_stops_the_job_and_leaves_rows_pending(
    queue: SqliteStorage,
    http: aiohttp.ClientSession,
    sandbox: SandboxHandle,
    params: ImportParams,
    code: str,
    rate_per_s: float,
) -> None:
    n, concurrency = 60, 4
    job_id = await make_job(queue, [record(i) for i in range(n)])
    settings = send_settings(concurrency=concurrency, rate_per_s=rate_per_s)

    result = await dispatch(
        queue, job_id, HttpTransport(http, sandbox.url, params, settings), settings
    )

    assert (result.end, result.cause) == (SendEnd.STOPPED, StopCause.FATAL)
    assert result.outcome is not None
    assert (result.outcome.kind, result.outcome.code) == (OutcomeKind.FATAL, code)
    stats = await inspect(http, sandbox, "/sandbox/stats")
    assert 1 <= stats["requests"] <= concurrency + 1
    assert stats["by_code"] == {code: stats["requests"]}
    rows = await rows_of(queue, job_id)
    assert by_state(rows)[RowState.PENDING] == n
    assert {row.attempts for row in rows} == {0}
    assert sum(row.last_code == code for row in rows) == stats["requests"]

    settings = send_settings(concurrency=concurrency)
    again = await dispatch(
        queue, job_id, HttpTransport(http, sandbox.url, PARAMS, settings), settings
    )

    assert again.end is SendEnd.FINISHED
    assert again.counts.done == n
    assert {row.attempts for row in await rows_of(queue, job_id)} == {1}
    assert len(await customers(http, sandbox)) == n


# --- stop and outage --------------------------------------------------------------------------


@pytest.mark.serial  # how soon it returns
async def test_stop_finishes_calls_in_flight_and_leaves_the_rest_pending(
    queue: SqliteStorage, http: aiohttp.ClientSession, sandbox_factory: SandboxFactory
) -> None:
    handle = await sandbox_factory(faults=Faults(latency_s=0.2))
    n, grace_s = 40, 2.0
    job_id = await make_job(queue, [record(i) for i in range(n)])
    settings = send_settings(concurrency=4)
    dispatcher = Dispatcher(
        queue.sending,
        job_id,
        HttpTransport(http, handle.url, PARAMS, settings),
        settings,
        options=DispatchOptions(grace_s=grace_s),
        runner=a_runner(),
    )
    loop = asyncio.get_running_loop()
    stopped_at: list[float] = []

    def stop() -> None:
        stopped_at.append(loop.time())
        dispatcher.stop()

    loop.call_later(0.5, stop)
    async with asyncio.timeout(RUN_LIMIT_S):
        result = await dispatcher.run()
    returned_s = loop.time() - stopped_at[0]

    assert result.end is SendEnd.STOPPED
    assert returned_s < grace_s - 0.5  # the calls in flight took their 0.2 s, not the grace
    rows = await rows_of(queue, job_id)
    states = by_state(rows)
    assert states[RowState.IN_FLIGHT] == 0
    assert states[RowState.DONE] + states[RowState.PENDING] == n
    assert 4 <= states[RowState.DONE] < n
    assert result.counts.done == states[RowState.DONE]
    # Every call that reached the server was recorded: the done rows are exactly the server's.
    done = {row.record for row in rows if row.state is RowState.DONE}
    assert set(await customers(http, handle)) == {phone(i) for i in range(n) if record(i) in done}
    assert {row.attempts for row in rows if row.state is RowState.PENDING} == {0}

    again = await dispatch(
        queue, job_id, HttpTransport(http, handle.url, PARAMS, settings), settings
    )
    assert again.end is SendEnd.FINISHED
    assert again.counts.done == n - len(done)
    stored = await customers(http, handle)
    assert len(stored) == n
    assert {customer["writes"] for customer in stored.values()} == {1}


@pytest.mark.serial  # how soon it returns
async def test_stop_after_grace_gives_back_unanswered_rows_and_loses_none(
    queue: SqliteStorage, http: aiohttp.ClientSession, sandbox_factory: SandboxFactory
) -> None:
    handle = await sandbox_factory(faults=Faults(latency_s=1.5))
    n, concurrency, grace_s = 12, 4, 0.1
    job_id = await make_job(queue, [record(i) for i in range(n)])
    settings = send_settings(concurrency=concurrency)
    dispatcher = Dispatcher(
        queue.sending,
        job_id,
        HttpTransport(http, handle.url, PARAMS, settings),
        settings,
        options=DispatchOptions(grace_s=grace_s),
        runner=a_runner(),
    )
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, dispatcher.stop)
    started = loop.time()
    async with asyncio.timeout(RUN_LIMIT_S):
        result = await dispatcher.run()

    assert result.end is SendEnd.STOPPED
    assert loop.time() - started < 1.0  # cut off after the grace, before the 1.5 s answers
    rows = await rows_of(queue, job_id)
    assert by_state(rows)[RowState.PENDING] == n  # nothing answered, nothing lost
    cut_off = {row.record for row in rows if row.last_code == UNKNOWN_CODE}
    assert len(cut_off) == concurrency
    assert {row.attempts for row in rows if row.record in cut_off} == {1}
    assert {row.attempts for row in rows if row.record not in cut_off} == {0}
    await asyncio.sleep(1.4)  # the server finishes the calls whose client went away

    again = await dispatch(
        queue, job_id, HttpTransport(http, handle.url, PARAMS, settings), settings
    )

    assert again.end is SendEnd.FINISHED
    rows = await rows_of(queue, job_id)
    # The calls cut off at the stop did reach the server: sent again, the server answers
    # duplicate, and since this job's earlier call was the one that imported them, done.
    assert by_state(rows)[RowState.DONE] == n
    resent = {row.record: row for row in rows if row.record in cut_off}
    assert {row.last_code for row in resent.values()} == {"BackMsg_81"}
    assert all("earlier attempt" in str(row.last_message) for row in resent.values())
    stored = await customers(http, handle)
    assert len(stored) == n
    assert {customer["writes"] for customer in stored.values()} == {1}


@pytest.mark.serial  # how soon it returns
async def test_stop_does_not_wait_out_a_retry_after_pause(
    queue: SqliteStorage, http: aiohttp.ClientSession, sandbox_factory: SandboxFactory
) -> None:
    handle = await sandbox_factory(faults=Faults(max_rps=5, retry_after_s=30))
    n, grace_s = 20, 5.0
    job_id = await make_job(queue, [record(i) for i in range(n)])
    settings = send_settings(concurrency=4, rate_per_s=100.0)
    transport = recording(http, handle.url, settings)
    dispatcher = Dispatcher(
        queue.sending,
        job_id,
        transport,
        settings,
        options=DispatchOptions(grace_s=grace_s),
        runner=a_runner(),
    )
    loop = asyncio.get_running_loop()
    loop.call_later(0.5, dispatcher.stop)
    async with asyncio.timeout(RUN_LIMIT_S):
        result = await dispatcher.run()

    assert result.end is SendEnd.STOPPED
    assert result.seconds < 2.0  # not 0.5 s + the 5 s of grace: nothing was in flight
    assert result.counts.throttled >= 1
    rows = await rows_of(queue, job_id)
    states = by_state(rows)
    assert states[RowState.IN_FLIGHT] == 0
    assert states[RowState.DONE] == 5
    assert states[RowState.PENDING] == n - 5
    assert len(transport.calls) == result.counts.sent
    assert sum(row.attempts for row in rows) == result.counts.sent - result.counts.spared


async def test_rows_retry_through_a_server_outage(
    queue: SqliteStorage, http: aiohttp.ClientSession, sandbox_factory: SandboxFactory
) -> None:
    handle = await sandbox_factory(faults=Faults(latency_s=0.02))
    n, concurrency, max_attempts = 150, 4, 60
    job_id = await make_job(queue, [record(i) for i in range(n)])
    settings = send_settings(
        concurrency=concurrency, max_attempts=max_attempts, backoff_max_s=0.1, timeout_s=2.0
    )
    transport = recording(http, handle.url, settings)
    run = asyncio.create_task(dispatch(queue, job_id, transport, settings))

    await asyncio.sleep(0.3)
    await handle.stop()
    # Down for longer than the first probe's wait (half a second), however late a busy machine runs
    # it: an outage a probe confirms. (A first probe answered at once means the troubles
    # were the rows' own, and their attempts count: tests/test_health.py.)
    await asyncio.sleep(2.5)
    assert not run.done()
    await handle.start()
    result = await run

    assert result.end is SendEnd.FINISHED
    refused = [call for call in transport.calls if call.outcome.code in ("refused", "dropped")]
    assert len(refused) >= 5, "the outage was not seen"
    rows = await rows_of(queue, job_id)
    assert_each_record_imported_once(
        rows, transport.calls, await customers(http, handle), 60, result.counts.spared
    )
    # The outage cost no row an attempt: each row's one counted attempt is its success.
    assert {row.attempts for row in rows} == {1}
    # Paused and probed (every half second), not hammered: a handful of calls.
    assert len(refused) <= 5 + concurrency + 6


# --- method and encoding ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
async def test_values_arrive_whole_whatever_they_hold(
    queue: SqliteStorage, http: aiohttp.ClientSession, sandbox: SandboxHandle, method: str
) -> None:
    memos = [
        "a&password=x&EVENT=Other",
        "1+1=2 %41 100%",
        "#frag?q=1;x=2/é 中文",
        "  spaces  ",
    ]
    job_id = await make_job(queue, [record(i, memo=memo) for i, memo in enumerate(memos)])
    settings = send_settings(method=method)

    result = await dispatch(
        queue, job_id, HttpTransport(http, sandbox.url, PARAMS, settings), settings
    )

    assert result.end is SendEnd.FINISHED
    assert result.counts.done == len(memos)
    stored = await customers(http, sandbox)
    assert [stored[phone(i)]["fields"]["memo"] for i in range(len(memos))] == memos


# --- secrets ----------------------------------------------------------------------------------

SECRET = "ZQXpa@ss/w?rd é+&="  # every encoding of it starts with ZQX


async def _echo(request: web.Request) -> web.Response:
    """Answer with what arrived (not a valid answer): query or body, as sent on the wire."""
    raw = await request.text() if request.method == "POST" else request.raw_path.partition("?")[2]
    style = request.match_info["style"]
    if style == "decoded":
        return web.Response(text=repr(urllib.parse.parse_qsl(raw)))
    if style == "padded":
        # Put the password right across the 200th character, where a message is cut.
        at = raw.index("&password=") + len("&password=")
        return web.Response(text="x" * max(0, 197 - at) + raw)
    if style == "forbidden":
        return web.Response(status=403, text=raw)
    if style == "remote-refused":
        # CODE 2 with a code that is fatal for a remote import and not for a row.
        return web.Response(text="|Retuen|2|Retuen|BackMsg_89 cannot fetch the file")
    if style == "answer":
        # A valid answer, the same for every call, that quotes the password.
        return web.Response(text=f"|Retuen|1|Retuen|BackMsg_84 imported for {SECRET}")
    return web.Response(text="echo " + raw)


@pytest.fixture
async def echo_base_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{style}", _echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("style", ["raw", "padded", "decoded", "forbidden"])
@pytest.mark.parametrize("method", ["get", "post"])
async def test_password_never_stored_in_a_message(
    queue: SqliteStorage, http: aiohttp.ClientSession, echo_base_url: str, style: str, method: str
) -> None:
    job_id = await make_job(queue, [record(1)])
    settings = send_settings(method=method, max_attempts=1)
    params = ImportParams(org="demo", user="admin", password=SECRET, campaign="1")

    result = await dispatch(
        queue, job_id, HttpTransport(http, f"{echo_base_url}/{style}", params, settings), settings
    )

    [row] = await rows_of(queue, job_id)
    assert row.last_message is not None
    messages = [row.last_message]
    if style == "forbidden":
        assert (result.end, result.cause) == (SendEnd.STOPPED, StopCause.FATAL)
        assert result.outcome is not None
        messages.append(result.outcome.message)
    else:
        # A page that is no answer may come after the server saved the row.
        assert (row.state, row.last_code) == (RowState.UNKNOWN, "not an answer")
    for message in messages:
        assert "ZQX" not in message
        assert "***" in message  # masked where it was, so the message still says what came


async def test_a_repeated_answer_is_masked_every_time(
    queue: SqliteStorage, http: aiohttp.ClientSession, echo_base_url: str
) -> None:
    # Short answers are classified and masked once per transport, then reused.
    job_id = await make_job(queue, [record(n) for n in range(1, 6)])
    settings = send_settings()
    params = ImportParams(org="demo", user="admin", password=SECRET, campaign="1")

    result = await dispatch(
        queue, job_id, HttpTransport(http, f"{echo_base_url}/answer", params, settings), settings
    )

    assert result.counts.done == 5
    rows = await rows_of(queue, job_id)
    assert [(row.state, row.last_message) for row in rows] == [
        (RowState.DONE, "BackMsg_84 imported for ***")
    ] * 5


async def test_a_cached_answer_is_classified_for_the_kind_of_call(
    http: aiohttp.ClientSession, echo_base_url: str
) -> None:
    # The same body means one thing for a row and another for a remote import: one transport
    # must not give one call the other's cached outcome.
    settings = send_settings()
    params = ImportParams(org="demo", user="admin", password=SECRET, campaign="1")
    transport = HttpTransport(http, f"{echo_base_url}/remote-refused", params, settings)
    query = encode_params(params)(record(1))
    for _ in range(2):
        row = await transport.send_query(query)
        remote = await transport.send_query(query, remote=True)
        assert (row.kind, remote.kind) == (OutcomeKind.REJECTED, OutcomeKind.FATAL)


async def test_md5_password_never_stored_in_a_message(
    queue: SqliteStorage, http: aiohttp.ClientSession, echo_base_url: str
) -> None:
    job_id = await make_job(queue, [record(1)])
    settings = send_settings(max_attempts=1)
    params = ImportParams(
        org="demo", user="admin", password=SECRET, campaign="1", pwdtype=PasswordType.MD5
    )

    await dispatch(
        queue, job_id, HttpTransport(http, f"{echo_base_url}/raw", params, settings), settings
    )

    [row] = await rows_of(queue, job_id)
    assert row.last_message is not None
    assert md5_hex(SECRET) not in row.last_message
    assert "&password=***&" in row.last_message


# --- a transport that breaks ------------------------------------------------------------------


def broken_on(breaks_on: str) -> ScriptedTransport:
    """Answers done, except for one record, where it raises like a bug would."""

    def server(request: Request) -> Outcome:
        if request.record == breaks_on:
            raise RuntimeError("transport bug")
        return Outcome(OutcomeKind.DONE, "BackMsg_84", "BackMsg_84")

    return ScriptedTransport(server, delay_s=0.001)


async def test_a_transport_error_ends_the_run_and_leaves_no_row_in_flight(
    queue: SqliteStorage,
) -> None:
    n = 30
    job_id = await make_job(queue, [record(i) for i in range(n)])
    settings = send_settings(concurrency=2)

    with pytest.raises(RuntimeError, match="transport bug"):
        await dispatch(queue, job_id, broken_on(record(10)), settings)

    counts = await queue.reports.counts(job_id)
    assert counts[RowState.IN_FLIGHT] == 0
    assert counts[RowState.PENDING] >= 1
    assert counts[RowState.DONE] + counts[RowState.PENDING] == n


async def test_a_get_too_long_for_a_url_is_rejected_without_being_sent(
    queue: SqliteStorage, http: aiohttp.ClientSession, sandbox: SandboxHandle
) -> None:
    # Over the 32 KiB the vendor's nginx takes in a request line; and over a smaller limit
    # given for a smaller server, a row of 5,000 bytes too.
    for limit in (None, 4096):
        settings = send_settings(method="get")
        if limit is not None:
            settings = send_settings(method="get", max_get_bytes=limit)
        job_id = await make_job(
            queue, [record(1), record(2, memo="x" * 40_000), record(3, memo="y" * 5_000)]
        )
        result = await dispatch(
            queue, job_id, HttpTransport(http, sandbox.url, PARAMS, settings), settings
        )
        assert result.end is SendEnd.FINISHED
        rows = await rows_of(queue, job_id)
        rejected = [row for row in rows if row.state is RowState.REJECTED]
        assert [row.line for row in rejected] == ([3] if limit is None else [3, 4])
        for row in rejected:
            assert row.last_code == "too long for GET"
            assert "--method post" in (row.last_message or "")
            assert "--max-get-bytes" in (row.last_message or "")
    stats = await inspect(http, sandbox, "/sandbox/stats")
    assert stats["requests"] == 2 + 1


class HeldAcrossTheConfirmation:
    """A server that is down: the second call of ``held`` stays in flight until the first
    probe has confirmed the outage, then is refused too; the second probe finds it back."""

    def __init__(self, held: str) -> None:
        self.held = held
        self.calls: dict[str, int] = {}
        self.release = asyncio.Event()
        self.probes = 0
        self.down = True

    async def __call__(self, request: Request) -> Outcome:
        if request.kind is RequestKind.PROBE:
            self.probes += 1
            if self.probes == 1:
                asyncio.get_running_loop().call_later(0.05, self.release.set)
                return classify_trouble(Trouble.REFUSED, "cannot connect")
            self.down = False
            return classify_http(200, format_answer(False, "BackMsg_71"))
        self.calls[request.record] = self.calls.get(request.record, 0) + 1
        if request.record == self.held and self.calls[request.record] == 2:
            await self.release.wait()
            return classify_trouble(Trouble.REFUSED, "cannot connect")
        if self.down:
            return classify_trouble(Trouble.REFUSED, "cannot connect")
        return classify_http(200, format_answer(True, "BackMsg_84"))


async def test_a_row_sent_again_before_the_outage_was_confirmed_gets_its_attempt_back(
    queue: SqliteStorage,
) -> None:
    # Row A's first call met the outage (counted, until a probe confirms it), and A was sent
    # again at once; that second call was still in flight when the probe confirmed the outage,
    # so the first attempt could not be taken back then. It is, once that call is recorded.
    records = [record(0), record(1)]
    job_id = await make_job(queue, records)
    server = HeldAcrossTheConfirmation(records[0])
    settings = send_settings(concurrency=2, backoff_base_s=0.001, backoff_max_s=0.001)
    health = HealthSettings(outage_after=3, probe_first_s=0.2)

    result = await dispatch(queue, job_id, ScriptedTransport(server), settings, health=health)

    assert result.end is SendEnd.FINISHED
    assert server.calls[records[0]] >= 3 and server.probes >= 2
    rows = await rows_of(queue, job_id)
    assert {row.state for row in rows} == {RowState.DONE}
    assert [row.attempts for row in rows] == [1, 1]  # the outage cost neither an attempt


# --- a server that does not take the job's HTTP method ------------------------------------------


def get_only(refusal: Outcome, *, get: Outcome = NOTHING_IMPORTED) -> ScriptedTransport:
    """Answers every call by POST with ``refusal``, and by GET with ``get``."""
    return ScriptedTransport(
        lambda request: get if request.method is Method.GET else refusal, delay_s=0.001
    )


def asked_and_sent(transport: ScriptedTransport) -> tuple[int, int]:
    """The calls that asked about the other method, and the others."""
    asked = sum(r.kind is RequestKind.OTHER_METHOD for r in transport.requests)
    return asked, len(transport.requests) - asked


@pytest.mark.parametrize("reached_before", [False, True])
@pytest.mark.parametrize("status", [405, 200])
async def test_no_answer_to_post_but_to_get_stops_naming_get_and_costs_no_attempt(
    queue: SqliteStorage, reached_before: bool, status: int
) -> None:
    job_id = await make_job(queue, [record(n) for n in range(40)])
    refusal = classify_http(status, "<html><title>Not here</title></html>")
    server = get_only(refusal)
    # A URL that answered before meets the 405 as fatal and the pages as an outage: both are
    # told apart too, before --max-outage.
    settings = send_settings(concurrency=4, max_outage_s=600.0)
    result = await dispatch(queue, job_id, server, settings, reached_before=reached_before)
    assert (result.end, result.cause) == (SendEnd.STOPPED, StopCause.NEVER_REACHED)
    assert result.other_method is Method.GET
    assert result.outcome is not None and result.outcome.status == status
    asked, sent = asked_and_sent(server)
    assert asked == 1 and sent <= 4 + 5
    rows = await rows_of(queue, job_id)
    assert {(row.state, row.attempts) for row in rows} == {(RowState.PENDING, 0)}


async def test_a_url_that_answers_neither_method_stops_as_a_wrong_url(
    queue: SqliteStorage,
) -> None:
    job_id = await make_job(queue, [record(n) for n in range(10)])
    not_found = classify_http(404, "<title>404 Not Found</title>")
    server = get_only(not_found, get=not_found)
    result = await dispatch(
        queue, job_id, server, send_settings(concurrency=2), reached_before=False
    )
    assert (result.cause, result.other_method) == (StopCause.NEVER_REACHED, None)
    assert asked_and_sent(server)[0] == 1


# --- what an outage or a wrong URL leaves on the rows ------------------------------------------


@pytest.mark.parametrize(
    ("reached_before", "then"),
    [
        # Never answered: the pages are another server's, which imported nothing.
        (False, RowState.DUPLICATE),
        # Answered before: a page may come after the row was saved (PHP died after it).
        (True, RowState.DONE),
    ],
)
async def test_a_page_from_a_url_never_reached_leaves_no_unknown_outcome_behind(
    queue: SqliteStorage, reached_before: bool, then: RowState
) -> None:
    n = 6
    job_id = await make_job(queue, [record(i) for i in range(n)])
    told: list[Watch] = []

    async def on_watch(event: WatchEvent) -> None:
        told.append(event.kind)

    pages = ScriptedTransport(lambda request: WELCOME_PAGE)
    settings = send_settings(concurrency=2, max_outage_s=0.3)
    first = await dispatch(
        queue, job_id, pages, settings, Listeners(on_watch=on_watch), reached_before=reached_before
    )
    assert first.end is SendEnd.STOPPED
    assert (Watch.UNKNOWN in told) is reached_before

    # The right server, which has those leads already.
    server = ScriptedTransport(lambda request: ANSWERED_DUPLICATE)
    second = await dispatch(queue, job_id, server, settings, reached_before=True)
    assert second.end is SendEnd.FINISHED
    rows = await rows_of(queue, job_id)
    sent_first = {r.record for r in pages.requests if r.kind is RequestKind.SEND}
    assert sent_first
    assert {row.state for row in rows if row.record in sent_first} == {then}
    assert {row.state for row in rows if row.record not in sent_first} <= {RowState.DUPLICATE}


@pytest.mark.parametrize("trouble", [Trouble.REFUSED, Trouble.TIMEOUT])
async def test_rows_an_outage_ran_out_of_attempts_are_counted_again_once_it_is_known(
    queue: SqliteStorage, trouble: Trouble
) -> None:
    # One attempt each: the calls that show the outage end their rows (failed, or unknown
    # after a timeout); the first probe confirms it and takes those attempts back; the rows
    # are sent again once the server is back, and counted once, for how they ended then.
    n = 6
    job_id = await make_job(queue, [record(i) for i in range(n)])
    probes = 0

    def server(request: Request) -> Outcome:
        nonlocal probes
        if request.kind is RequestKind.PROBE:
            probes += 1
            if probes > 1:
                return NOTHING_IMPORTED
        if probes < 2:
            return classify_trouble(trouble, "down")
        return ANSWERED_DONE

    settings = send_settings(concurrency=1, max_attempts=1)
    health = HealthSettings(outage_after=3, probe_first_s=0.05)
    result = await dispatch(queue, job_id, ScriptedTransport(server), settings, health=health)

    assert result.end is SendEnd.FINISHED
    counts = result.counts
    assert (counts.done, counts.failed, counts.maybe_imported) == (n, 0, 0)
    assert counts.settled == n and counts.spared >= 3
    assert {row.state for row in await rows_of(queue, job_id)} == {RowState.DONE}
