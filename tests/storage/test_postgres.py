"""What the PostgreSQL storage keeps beyond the contract suite (which it runs too): its URL
and password, its schema, claims that never wait for another claimer, runners on several
hosts, cells that hold what PostgreSQL text cannot."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator

import asyncpg
import pytest

from bulkimport.errors import ConfigError, DatabaseError, RunnerBusy
from bulkimport.rows import Batch, NewRow, RowResult
from bulkimport.states import InvalidReason, JobState, RowState
from bulkimport.storage.postgres import PostgresStorage, is_postgres_url, masked, open_url
from bulkimport.storage.postgres.database import LOCK_SPACE, RUNNER_LOCK, RUNNER_SPACE, Database
from bulkimport.storage.postgres.runner import _connect as runner_connection
from tests import pg
from tests.helpers import RUNNER
from tests.storage.conftest import FILE, TARGET, ready_job

PASSWORD = "s3cr%40t:pw"  # percent-encoded "s3cr@t:pw", as a URL must carry it


def with_password(url: str, password: str = PASSWORD) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@"))


def test_a_url_is_shown_with_its_password_masked() -> None:
    assert masked("postgresql://ops:hunter2@db.example.com:5433/leads") == (
        "postgresql://ops:***@db.example.com:5433/leads"
    )
    assert (
        masked("postgresql://ops@db.example.com/leads") == "postgresql://ops@db.example.com/leads"
    )
    assert masked(f"postgres://ops:{PASSWORD}@h/d?sslmode=require") == (
        "postgres://ops:***@h/d?sslmode=require"
    )
    assert masked(f"postgres://ops@h/d?password={PASSWORD}&sslmode=require") == (
        "postgres://ops@h/d?password=***&sslmode=require"
    )
    assert is_postgres_url("postgresql://h/d") and is_postgres_url("POSTGRES://h/d")
    assert not is_postgres_url("queue.db") and not is_postgres_url("/data/postgresql.db")


async def test_the_password_never_reaches_a_message(pg_url: str) -> None:
    url = with_password(pg_url)
    storage = await open_url(url)  # trust authentication: the password is not asked
    try:
        assert PASSWORD not in storage.location and "***" in storage.location
        with pytest.raises(ConfigError) as raised:
            await storage.jobs.get(7)
        assert PASSWORD not in str(raised.value)
    finally:
        await storage.close()
    missing = with_password(pg_url.replace("/t", "/nosuch_t", 1))
    with pytest.raises(DatabaseError) as refused:
        await open_url(missing)
    message = str(refused.value)
    assert "nosuch_t" in message and "***" in message
    for form in (PASSWORD, urllib.parse.unquote(PASSWORD)):
        assert form not in message


async def test_an_empty_database_is_created_only_when_asked(pg_url: str) -> None:
    with pytest.raises(DatabaseError, match="holds no bulkimport storage"):
        await PostgresStorage.open(pg_url, create=False)
    with pytest.raises(DatabaseError, match="holds no bulkimport storage"):
        await PostgresStorage.open(pg_url, read_only=True)
    async with await PostgresStorage.open(pg_url) as storage:
        await ready_job(storage, 2)
    async with await PostgresStorage.open(pg_url, read_only=True) as storage:
        [job] = await storage.jobs.list()
        assert job.total_rows == 2
        # Read-only is the server's to keep: `status` cannot write by mistake.
        with pytest.raises(DatabaseError, match="read-only"):
            await storage.jobs.set_state(job.id, JobState.RUNNING)


async def test_processes_starting_at_once_migrate_once(pg_url: str) -> None:
    opened = await asyncio.gather(*(PostgresStorage.open(pg_url) for _ in range(4)))
    for storage in opened:
        await storage.close()
    conn = await asyncpg.connect(pg_url)
    try:
        versions = [row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")]
        assert versions == sorted(set(versions)) and versions[0] == 1
        # A version this bulkimport does not know: written by a newer one.
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'x', 0)"
        )
    finally:
        await conn.close()
    with pytest.raises(DatabaseError, match="newer bulkimport"):
        await PostgresStorage.open(pg_url)


async def test_a_claim_passes_over_rows_another_claimer_holds_without_waiting(
    pg_url: str,
) -> None:
    async with await PostgresStorage.open(pg_url) as storage:
        job = await ready_job(storage, 10)
        other = await asyncpg.connect(pg_url)
        try:
            # Another host's claim, its transaction still open, holds lines 2 to 4.
            async with other.transaction():
                await other.execute(
                    "SELECT id FROM rows WHERE job_id = $1 ORDER BY id LIMIT 3 FOR UPDATE", job.id
                )
                claimed = await asyncio.wait_for(
                    storage.sending.claim_batch(job.id, 4, now_s=time.time(), runner=RUNNER), 10
                )
            assert [row.line for row in claimed] == [5, 6, 7, 8]
        finally:
            await other.close()
        counts = await storage.reports.counts(job.id)
        assert (counts[RowState.IN_FLIGHT], counts[RowState.PENDING]) == (4, 6)


async def test_recovery_on_another_host_leaves_a_live_runners_rows(pg_url: str) -> None:
    async with (
        await PostgresStorage.open(pg_url) as here,
        await PostgresStorage.open(pg_url) as there,
    ):
        job = await ready_job(here, 5)
        async with here.runner() as runner:
            mine = await here.sending.claim_batch(job.id, 3, now_s=time.time(), runner=runner)
            assert await there.runner_alive()
            async with there.runner() as elsewhere:
                # Another runner, on another host, sends the same job: it claims the
                # rest, and recovering takes nothing of a live runner's.
                theirs = await there.sending.claim_batch(
                    job.id, 10, now_s=time.time(), runner=elsewhere
                )
                assert [r.line for r in theirs] == [5, 6]
                assert await there.sending.recover_in_flight(job.id, elsewhere) == 0
                assert await there.sending.held_elsewhere(job.id, elsewhere) == 3
                await there.sending.release(job.id, [r.id for r in theirs])
            # The first ended with its rows left in flight: they are taken back now.
        assert not await there.runner_alive()
        async with there.runner() as after:
            assert await there.sending.recover_in_flight(job.id, after) == len(mine)
        assert (await there.jobs.get(job.id)).resent_unknown == 3


async def test_a_runner_whose_lease_ran_out_loses_its_rows(pg_url: str) -> None:
    # A host that hangs keeps its connection (and so its lock) but stops renewing its lease:
    # its rows are taken back once the lease has run out, and what it records when it
    # wakes up no longer counts for them.
    async with (
        await PostgresStorage.open(pg_url, lease_s=0.6) as here,
        await PostgresStorage.open(pg_url) as there,
    ):
        job = await ready_job(here, 4)
        admin = await asyncpg.connect(pg_url)
        try:
            async with here.runner() as hung, there.runner() as alive:
                mine = await here.sending.claim_batch(job.id, 2, now_s=time.time(), runner=hung)
                assert await there.sending.recover_in_flight(job.id, alive) == 0
                # Hung: nothing renews its lease now (its renewal is stopped by hand).
                await admin.execute("UPDATE runners SET lease_until = 0 WHERE id = $1", int(hung))
                assert await there.sending.recover_in_flight(job.id, alive) == 2
                again = await there.sending.claim_batch(job.id, 2, now_s=time.time(), runner=alive)
                assert [r.id for r in again] == [r.id for r in mine]
                # The hung runner wakes up and records its outcomes: not for rows another
                # runner holds now.
                late = [RowResult(r.id, RowState.DONE, "0", "") for r in mine]
                assert await here.sending.record_results(job.id, late, runner=hung) == 0
                ours = [RowResult(r.id, RowState.DONE, "0", "") for r in again]
                assert await there.sending.record_results(job.id, ours, runner=alive) == 2
                # Its renewal goes on: after a third of its lease it is live again.
                for _ in range(50):
                    await asyncio.sleep(0.05)
                    if int(hung) in [r.id for r in await there.jobs.runners(job.id)]:
                        break
                await here.jobs.record_send_rate(job.id, 1.0, runner=hung)
                assert int(hung) in [r.id for r in await there.jobs.runners(job.id)]
        finally:
            await admin.close()
        assert (await there.jobs.get(job.id)).resent_unknown == 2


async def test_one_runner_reads_a_job_the_others_follow(pg_url: str) -> None:
    async with (
        await PostgresStorage.open(pg_url) as here,
        await PostgresStorage.open(pg_url) as there,
    ):
        job = await here.jobs.create(FILE, TARGET, {}, "{}")
        async with there.runner() as follower:
            async with here.runner() as reader:
                assert await here.jobs.take_reading(job.id, reader)
                assert await here.jobs.take_reading(job.id, reader)  # still its own
                assert not await there.jobs.take_reading(job.id, follower)
            # The reader is gone (its host died): the follower reads the rest.
            assert await there.jobs.take_reading(job.id, follower)
        with pytest.raises(RunnerBusy):
            async with there.maintenance(), here.runner():
                pass


async def test_of_runners_that_stop_at_once_the_last_to_leave_sets_the_jobs_state(
    pg_url: str,
) -> None:
    async with (
        await PostgresStorage.open(pg_url) as here,
        await PostgresStorage.open(pg_url) as there,
    ):
        job = await here.jobs.create(FILE, TARGET, {}, "{}")
        other = await here.jobs.create(FILE, TARGET, {}, "{}")
        async with here.runner() as first, there.runner() as second, there.runner() as elsewhere:
            await here.jobs.attach_runner(job.id, first)
            await there.jobs.attach_runner(job.id, second)
            await there.jobs.attach_runner(other.id, elsewhere)  # sends another job: no say
            # Both are stopped at once: each asks while the other still holds its lock.
            left = await asyncio.gather(
                here.jobs.leave(job.id, first), there.jobs.leave(job.id, second)
            )
            assert sorted(left) == [False, True]  # one of them, the last, sets the state
            assert await there.jobs.leave(other.id, elsewhere) is False  # alone on its job


async def test_every_session_asks_the_server_to_drop_a_vanished_host_within_half_a_minute() -> None:
    # Over TCP (a Unix socket's connection ends with its process), the pool's sessions and
    # the runner's lock session ask the server to probe a silent client after 15 s and give up
    # on it after 3 probes or 30 s of unacknowledged data, not after the systems' two hours.
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    names = ["idle_in_transaction_session_timeout", "tcp_keepalives_idle",
             "tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout"]  # fmt: skip
    with pg.cluster(tcp_port=port):
        database = await Database.open(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        try:
            pooled = [await database.fetchval(f"SHOW {name}") for name in names]
            locks = await runner_connection(database)
            try:
                locking = [await locks.fetchval(f"SHOW {name}") for name in names]
            finally:
                await locks.close()
        finally:
            await database.close()
    assert pooled == locking == ["1min", "15", "5", "3", "30000"]  # seconds; milliseconds


async def test_a_runner_whose_connection_dies_frees_the_lock(pg_url: str) -> None:
    async with await PostgresStorage.open(pg_url) as storage:
        admin = await asyncpg.connect(pg_url)
        try:
            async with storage.runner():
                assert await storage.runner_alive()
                # The server loses the runner's connection (its host gone, a kill -9).
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND classid = $1 AND objid = $2 AND granted",
                    LOCK_SPACE,
                    RUNNER_LOCK,
                )
                for _ in range(100):
                    if not await storage.runner_alive():
                        break
                    await asyncio.sleep(0.05)
                assert not await storage.runner_alive()
                async with storage.runner():  # another one may start at once
                    pass
        finally:
            await admin.close()


async def test_cells_keep_what_postgresql_text_cannot_hold(pg_url: str) -> None:
    async with await PostgresStorage.open(pg_url) as storage:
        job = await storage.jobs.create(FILE, TARGET, {}, "{}")
        damaged = ("138\x00001", "name", "")
        row = NewRow(2, RowState.INVALID, None, damaged, InvalidReason.NUL, "a NUL byte")
        await storage.reading.add_rows(job.id, [row], read_offset=20, read_line=2)
        [view] = [v async for v in storage.reports.iter_rows(job.id, [RowState.INVALID])]
        assert (view.cells, view.last_code) == (damaged, InvalidReason.NUL.value)


async def test_a_runner_whose_lease_ran_out_releases_and_claims_nothing_of_anothers(
    pg_url: str,
) -> None:
    async with (
        await PostgresStorage.open(pg_url) as here,
        await PostgresStorage.open(pg_url) as there,
    ):
        job = await ready_job(here, 4)
        admin = await asyncpg.connect(pg_url)
        try:
            async with here.runner() as hung, there.runner() as alive:
                mine = await here.sending.claim_batch(job.id, 2, now_s=time.time(), runner=hung)
                await admin.execute("UPDATE runners SET lease_until = 0 WHERE id = $1", int(hung))
                # Until it renews its lease, it claims nothing more.
                assert (
                    await here.sending.claim_batch(job.id, 2, now_s=time.time(), runner=hung) == []
                )
                assert await there.sending.recover_in_flight(job.id, alive) == 2
                again = await there.sending.claim_batch(job.id, 4, now_s=time.time(), runner=alive)
                assert len(again) == 4
                # Woken, it gives back the rows of its buffer: not those another one holds.
                ids = [row.id for row in mine]
                assert await here.sending.release(job.id, ids, runner=hung) == 0
                assert (await there.reports.counts(job.id))[RowState.IN_FLIGHT] == 4
        finally:
            await admin.close()


async def test_a_reader_that_lost_reading_to_another_stores_no_batch_twice(pg_url: str) -> None:
    async with (
        await PostgresStorage.open(pg_url) as here,
        await PostgresStorage.open(pg_url) as there,
    ):
        job = await here.jobs.create(FILE, TARGET, {}, "{}")
        taken_over = threading.Event()

        def batches() -> Iterator[Batch]:
            yield Batch([NewRow(2, RowState.PENDING, "a=1", ("1",))], 10, 3)
            taken_over.wait(10)  # the reader, slow on its next batch, loses reading
            yield Batch([NewRow(3, RowState.PENDING, "a=2", ("2",))], 20, 4)

        reading = asyncio.ensure_future(here.reading.ingest(job.id, batches()))
        for _ in range(200):
            if (await there.jobs.get(job.id)).total_rows == 1:
                break
            await asyncio.sleep(0.01)
        # Another runner took reading over (the first one's lease ran out) and stored the
        # next line from the committed position.
        await there.reading.add_rows(
            job.id, [NewRow(3, RowState.PENDING, "a=2", ("2",))], read_offset=20, read_line=4
        )
        taken_over.set()
        with pytest.raises(DatabaseError, match="another runner"):
            await reading
        assert (await there.jobs.get(job.id)).total_rows == 2
        pending = there.reports.iter_rows(job.id, [RowState.PENDING])
        assert [view.line async for view in pending] == [2, 3]


async def test_a_runner_whose_connection_drops_takes_its_locks_again(pg_url: str) -> None:
    async with await PostgresStorage.open(pg_url, lease_s=0.9) as storage:
        job = await ready_job(storage, 2)
        admin = await asyncpg.connect(pg_url)
        try:
            async with storage.runner() as runner:
                await storage.jobs.attach_runner(job.id, runner)
                assert [r.id for r in await storage.jobs.runners(job.id)] == [runner]
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND classid = $1 AND objid = $2 AND granted",
                    RUNNER_SPACE,
                    int(runner),
                )
                for _ in range(100):
                    if not await storage.jobs.runners(job.id):
                        break
                    await asyncio.sleep(0.02)
                assert not await storage.jobs.runners(job.id)  # its lock went with it
                for _ in range(200):
                    if await storage.jobs.runners(job.id):
                        break
                    await asyncio.sleep(0.02)
                # The next renewal took the locks again on a new connection.
                assert [r.id for r in await storage.jobs.runners(job.id)] == [runner]
        finally:
            await admin.close()


async def test_a_claim_walks_the_pending_rows_in_order_from_the_first_claim(pg_url: str) -> None:
    from bulkimport.storage.postgres.sending import _CLAIM

    async with await PostgresStorage.open(pg_url) as storage:
        # Rows just copied in, as wide as leads are: the table has no statistics yet.
        job = await storage.jobs.create(FILE, TARGET, {"rate": 5}, '{"delimiter": ","}')
        wide = "x" * 400
        rows = [
            NewRow(n, RowState.PENDING, f"phone={n}&{wide}", (str(n), wide))
            for n in range(2, 20_002)
        ]
        await storage.reading.add_rows(job.id, rows, read_offset=100, read_line=20_001)
        await storage.reading.finish(job.id)
        first = await storage.sending.claim_batch(job.id, 64, now_s=time.time(), runner=RUNNER)
        await storage.sending.record_results(
            job.id, [RowResult(row.id, RowState.DONE, "0", "") for row in first], runner=RUNNER
        )
        conn = await asyncpg.connect(pg_url)
        try:
            plan = "\n".join(
                row[0]
                for row in await conn.fetch(
                    "EXPLAIN " + _CLAIM, job.id, time.time(), 64, RUNNER, time.time()
                )
            )
        finally:
            await conn.close()
        # Not a bitmap of every pending row sorted, nor the primary key past the rows done.
        assert "Index Scan using rows_pending on rows" in plan, plan
        assert "Bitmap Heap Scan on rows  (" not in plan, plan
        assert "Index Scan using rows_pkey on rows  (" not in plan, plan
        second = await storage.sending.claim_batch(job.id, 3, now_s=time.time(), runner=RUNNER)
        assert [row.line for row in second] == [66, 67, 68]
