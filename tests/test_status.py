"""`status` while a job is sending: the runner's measured rate, and the ETA derived from it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bulkimport.jobs.pipeline import summarize
from bulkimport.sandbox import Faults
from bulkimport.send import Dispatcher, HttpTransport, open_session
from bulkimport.send import dispatcher as dispatch
from bulkimport.send.pace import PaceState
from bulkimport.states import JobState, RowState
from bulkimport.storage.sqlite import SqliteStorage
from tests.conftest import SandboxFactory
from tests.helpers import a_runner
from tests.test_dispatch import PARAMS, make_job, record, send_settings


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    async with await SqliteStorage.open(tmp_path / "queue.db") as opened:
        yield opened


async def test_a_running_job_shows_its_rate_and_eta(queue: SqliteStorage) -> None:
    job_id = await make_job(queue, [record(i) for i in range(100)])
    await queue.jobs.set_state(job_id, JobState.RUNNING)
    await queue.jobs.record_send_rate(job_id, 20.0)
    summary = await summarize(queue, job_id)
    assert summary.rate_per_s == 20.0
    assert summary.eta_s == pytest.approx(100 / 20.0)
    assert summary.to_json()["eta_s"] == pytest.approx(5.0)


async def test_no_rate_once_the_job_is_not_running(queue: SqliteStorage) -> None:
    job_id = await make_job(queue, [record(i) for i in range(10)])
    await queue.jobs.set_state(job_id, JobState.RUNNING)
    await queue.jobs.record_send_rate(job_id, 20.0)
    await queue.jobs.set_state(job_id, JobState.INTERRUPTED)
    summary = await summarize(queue, job_id)
    assert summary.rate_per_s is None
    assert summary.eta_s is None


async def test_a_stale_rate_is_not_shown(
    queue: SqliteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A runner killed while sending leaves the job `running` with an old figure.
    job_id = await make_job(queue, [record(i) for i in range(10)])
    await queue.jobs.set_state(job_id, JobState.RUNNING)
    await queue.jobs.record_send_rate(job_id, 20.0)
    later = time.time() + 3 * dispatch.RATE_EVERY_S + 1
    monkeypatch.setattr("bulkimport.jobs.pipeline.time.time", lambda: later)
    assert (await summarize(queue, job_id)).rate_per_s is None


async def test_the_dispatcher_reports_its_rate_while_sending(
    queue: SqliteStorage, sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "RATE_EVERY_S", 0.2)
    handle = await sandbox_factory(faults=Faults(latency_s=0.01))
    job_id = await make_job(queue, [record(i) for i in range(150)])
    settings = send_settings(rate_per_s=200.0, concurrency=4)
    async with open_session(4) as session:
        transport = HttpTransport(session, handle.url, PARAMS, settings)

        async def on_rate(rate_per_s: float, pace: PaceState) -> None:
            await queue.jobs.record_send_rate(job_id, rate_per_s, pace_per_s=pace.rate_per_s)

        await Dispatcher(
            queue.sending, job_id, transport, settings, runner=a_runner(), on_rate=on_rate
        ).run()
    job = await queue.jobs.get(job_id)
    assert job.send_rate_per_s is not None
    # 150 rows at most 200/s: measured over a 0.2 s window, it cannot exceed the limit much.
    assert 10.0 < job.send_rate_per_s <= 200.0 * 1.2
    assert (await queue.reports.counts(job_id))[RowState.DONE] == 150
