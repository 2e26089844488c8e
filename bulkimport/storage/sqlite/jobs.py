"""The SQLite ``JobStore``: the ``jobs`` table."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from typing import Any

from bulkimport.errors import ConfigError
from bulkimport.rows import FileIdentity, TargetRef
from bulkimport.states import JobState, StopCause
from bulkimport.storage.columns import JOB_COLUMNS as _JOB_COLUMNS
from bulkimport.storage.columns import check_no_password
from bulkimport.storage.columns import job_from_row as _job_from_row
from bulkimport.storage.sqlite.database import Database, placeholders
from bulkimport.storage.sqlite.latest import row_range
from bulkimport.storage.sqlite.runner import runner_alive
from bulkimport.storage.values import Job, RunnerId, RunnerView

# A job's id: never one given before, even to a job since pruned (ids_used, migration 013).
_NEXT_ID = (
    "SELECT max(coalesce((SELECT max(id) FROM jobs), 0),"
    " coalesce((SELECT last_id FROM ids_used WHERE name = 'jobs'), 0)) + 1"
)
# Open jobs (Job.is_open): the ones that may still be resumed.
_OPEN = "state <> 'finished' AND superseded_by IS NULL"
# Jobs a finished job replaces (JobStore.supersede): open, older, the same file, and the same
# target or one that was refused...
_SAME_FILE = (
    "file_path = :path AND file_size = :size AND file_mtime_ns = :mtime"
    " AND file_head_sha256 = :head"
)
_REPLACED = (
    f"{_OPEN} AND id < :job AND {_SAME_FILE}"
    " AND (target_key = :target OR (state = 'stopped' AND stop_cause IN (:fatal, :never)))"
)
# ...and, if every row they have left is for a customer it loaded, earlier exports of the
# same path to the same target (last night's file, left when the send window closed).
_EARLIER_EXPORT = (
    f"{_OPEN} AND id < :job AND file_path = :path AND target_key = :target AND NOT ({_SAME_FILE})"
)
# A new job goes on from the "try later" runs of the latest job of the same path and target.
_CARRIED = "FROM jobs WHERE file_path = ? AND target_key = ? ORDER BY id DESC LIMIT 1"


# The states a run of a job ends in (the others: it is being read, staged or sent).
_RUN_ENDS = (JobState.FINISHED, JobState.STOPPED, JobState.INTERRUPTED)


class SqliteJobs:
    """Jobs in the ``jobs`` table of one database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        file: FileIdentity,
        target: TargetRef,
        settings: Mapping[str, Any],
        fmt_json: str,
    ) -> Job:
        """Create a job in state ``reading`` for ``file`` sent to ``target``.

        ``settings`` must not carry a password (``ConfigError`` if a key containing
        "password" has a non-empty value).
        """
        check_no_password(settings)
        settings_json = json.dumps(dict(settings), ensure_ascii=False, sort_keys=True)
        now = time.time()
        db = self._db
        async with db.lock, db.transaction():
            cursor = await db.conn.execute(
                "INSERT INTO jobs (id, state, file_path, file_size, file_mtime_ns,"
                " file_head_sha256, target_key, target_url, target_org, target_campaign,"
                " settings_json, format_json, created_at, updated_at, try_later_runs,"
                " try_later_since)"
                f" VALUES (({_NEXT_ID}), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                f" coalesce((SELECT try_later_runs {_CARRIED}), 0),"
                f" (SELECT try_later_since {_CARRIED}))",
                (
                    JobState.READING.value,
                    file.path,
                    file.size,
                    file.mtime_ns,
                    file.head_sha256,
                    target.key,
                    target.url,
                    target.org,
                    target.campaign,
                    settings_json,
                    fmt_json,
                    now,
                    now,
                    file.path,
                    target.key,
                    file.path,
                    target.key,
                ),
            )
            job_id = cursor.lastrowid
            await cursor.close()
            assert job_id is not None
            return await self._get(job_id)

    async def find_unfinished(self, file: FileIdentity, target: TargetRef) -> Job | None:
        """The latest open job (unfinished, not superseded) for the same file (path, size,
        mtime, head) and target."""
        return await self._first(
            "WHERE file_path = ? AND target_key = ? AND file_size = ? AND file_mtime_ns = ?"
            f" AND file_head_sha256 = ? AND {_OPEN} ORDER BY id DESC LIMIT 1",
            (file.path, target.key, file.size, file.mtime_ns, file.head_sha256),
        )

    async def latest(self, *, unfinished: bool = False) -> Job | None:
        """The most recently created job (only an open one, if ``unfinished``), if any."""
        if unfinished:
            return await self._first(f"WHERE {_OPEN} ORDER BY id DESC LIMIT 1", ())
        return await self._first("ORDER BY id DESC LIMIT 1", ())

    async def supersede(self, job_id: int, key_field: str | None = None) -> list[Job]:
        """Mark the older open jobs that the finished job ``job_id`` replaces as superseded
        by it (the same file, and the same target or a refused one; with ``key_field``, also
        an earlier export of the same path to the same target whose every row left to send
        is for a customer this job loaded); return them."""
        db = self._db
        async with db.lock:
            job = await self._get(job_id)
            if job.state is not JobState.FINISHED:
                return []
            file = job.file
            params = {
                "job": job_id, "path": file.path, "size": file.size, "mtime": file.mtime_ns,
                "head": file.head_sha256, "target": job.target.key,
                "fatal": StopCause.FATAL.value, "never": StopCause.NEVER_REACHED.value,
            }  # fmt: skip
            found = await db.conn.execute_fetchall(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {_REPLACED} ORDER BY id", params
            )
            replaced = [_job_from_row(row) for row in found]
            exports = await db.conn.execute_fetchall(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {_EARLIER_EXPORT} ORDER BY id", params
            )
        if key_field is not None and exports:
            covered = await self._covered(
                job_id, [_job_from_row(row) for row in exports], key_field
            )
            replaced = sorted([*replaced, *covered], key=lambda old: old.id)
        if not replaced:
            return []
        ids = [old.id for old in replaced]
        async with db.lock, db.transaction():
            await db.conn.execute(
                f"UPDATE jobs SET superseded_by = ?, updated_at = ?"
                f" WHERE id IN ({placeholders(len(ids))}) AND {_OPEN}",
                (job_id, time.time(), *ids),
            )
        return [dataclasses.replace(old, superseded_by=job_id) for old in replaced]

    async def _covered(self, job_id: int, earlier: list[Job], key_field: str) -> list[Job]:
        """The jobs of ``earlier`` whose every row left to send (pending, in flight) is for a
        customer that ``job_id`` loaded, found unchanged or found on the server: sending
        them would only put older values back."""
        db = self._db
        covered: list[Job] = []
        async with db.lock:
            low, high = await row_range(db, job_id)
            await db.conn.execute("DROP TABLE IF EXISTS temp.loaded_customers")
            await db.conn.execute(
                "CREATE TEMP TABLE loaded_customers (customer TEXT PRIMARY KEY) WITHOUT ROWID"
            )
            try:
                await db.conn.execute(
                    "INSERT OR IGNORE INTO temp.loaded_customers"
                    " SELECT bulkimport_customer(record, ?) FROM rows"
                    " WHERE id BETWEEN ? AND ? AND job_id = ?"
                    " AND state IN ('done', 'duplicate', 'skipped') AND record IS NOT NULL",
                    (key_field, low, high, job_id),
                )
                for old in earlier:
                    old_low, old_high = await row_range(db, old.id)
                    left = await db.conn.execute_fetchall(
                        "SELECT count(*) FROM rows WHERE id BETWEEN ? AND ? AND job_id = ?"
                        " AND state IN ('pending', 'in_flight') AND coalesce("
                        " bulkimport_customer(record, ?) NOT IN"
                        " (SELECT customer FROM temp.loaded_customers), 1)",
                        (old_low, old_high, old.id, key_field),
                    )
                    if next(iter(left))[0] == 0:
                        covered.append(old)
            finally:
                await db.conn.execute("DROP TABLE IF EXISTS temp.loaded_customers")
        return covered

    async def set_report(self, job_id: int, path: str | None) -> None:
        """Keep where the job's failed-rows report now is (None: it has none); another job
        whose report was at ``path`` has none any more."""
        await self._set_report_path("report_path", job_id, path)

    async def set_unknown_report(self, job_id: int, path: str | None) -> None:
        """Keep where the list of the job's rows that may be on the server now is (None: it
        has none); another job whose list was at ``path`` has none any more."""
        await self._set_report_path("unknown_report_path", job_id, path)

    async def _set_report_path(self, column: str, job_id: int, path: str | None) -> None:
        db = self._db
        async with db.lock, db.transaction():
            if path is not None:
                await db.conn.execute(
                    f"UPDATE jobs SET {column} = NULL WHERE {column} = ? AND id <> ?",
                    (path, job_id),
                )
            cursor = await db.conn.execute(
                f"UPDATE jobs SET {column} = ? WHERE id = ?", (path, job_id)
            )
            touched = cursor.rowcount
            await cursor.close()
            if touched != 1:
                raise ConfigError(f"no job {job_id} in {db.path}; see bulkimport jobs")

    async def get(self, job_id: int) -> Job:
        """The job ``job_id``; ``ConfigError`` if there is none."""
        async with self._db.lock:
            return await self._get(job_id)

    async def _get(self, job_id: int) -> Job:
        rows = await self._db.conn.execute_fetchall(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
        )
        if not rows:
            raise ConfigError(f"no job {job_id} in {self._db.path}; see bulkimport jobs")
        return _job_from_row(next(iter(rows)))

    async def _first(self, where: str, params: tuple[Any, ...]) -> Job | None:
        async with self._db.lock:
            rows = await self._db.conn.execute_fetchall(
                f"SELECT {_JOB_COLUMNS} FROM jobs {where}", params
            )
        return _job_from_row(next(iter(rows))) if rows else None

    async def list(self) -> list[Job]:
        """Every job, oldest first."""
        async with self._db.lock:
            rows = await self._db.conn.execute_fetchall(
                f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY id"
            )
        return [_job_from_row(row) for row in rows]

    async def retarget(self, job_id: int, target: TargetRef) -> None:
        """The job goes to ``target`` from now on (a ``resume`` with another ``--url``):
        stored with it, so that ``status`` shows it and the next ``resume`` uses it."""
        db = self._db
        async with db.lock, db.transaction():
            rows = await db.conn.execute_fetchall(
                "SELECT settings_json FROM jobs WHERE id = ?", (job_id,)
            )
            if not rows:
                raise ConfigError(f"no job {job_id} in {db.path}; see bulkimport jobs")
            settings = json.loads(next(iter(rows))[0] or "{}")
            settings.update(url=target.url, org=target.org, campaign=target.campaign)
            await db.conn.execute(
                "UPDATE jobs SET target_key = ?, target_url = ?, target_org = ?,"
                " target_campaign = ?, settings_json = ?, updated_at = ? WHERE id = ?",
                (
                    target.key,
                    target.url,
                    target.org,
                    target.campaign,
                    json.dumps(settings, ensure_ascii=False, sort_keys=True),
                    time.time(),
                    job_id,
                ),
            )

    async def set_state(
        self,
        job_id: int,
        state: JobState,
        message: str | None = None,
        cause: StopCause | None = None,
        *,
        facts: Mapping[str, Any] | None = None,
    ) -> None:
        """Move a job to ``state`` and keep ``message``, ``cause`` and ``facts`` (JSON
        values) as the reason it stopped (None clears them; so does any state, and the
        health figures with it).

        ``started_at`` is set the first time the job runs; ``finished_at`` when it finishes
        (and cleared if it runs again, e.g. for ``retry``). A run that ends "try later"
        (interrupted by a cause that ``is_try_later``) adds one to ``try_later_runs``; any
        other end (finished, stopped, interrupted) sets it back to 0.
        """
        now = time.time()
        try_later = state is JobState.INTERRUPTED and cause is not None and cause.is_try_later
        ended = state in _RUN_ENDS and not try_later
        db = self._db
        async with db.lock, db.transaction():
            cursor = await db.conn.execute(
                "UPDATE jobs SET state = ?, message = ?, stop_cause = ?, stop_facts = ?,"
                " updated_at = ?,"
                " outage_since = NULL, next_try_at = NULL, window_opens_at = NULL,"
                " started_at = CASE WHEN ? AND started_at IS NULL THEN ? ELSE started_at END,"
                " finished_at = CASE WHEN ? THEN ? ELSE NULL END,"
                " try_later_runs = CASE WHEN ? THEN try_later_runs + 1 WHEN ? THEN 0"
                " ELSE try_later_runs END,"
                " try_later_since = CASE WHEN ? THEN coalesce(try_later_since, ?) WHEN ? THEN NULL"
                " ELSE try_later_since END"
                " WHERE id = ?",
                (
                    state.value,
                    message,
                    cause.value if cause is not None else None,
                    json.dumps(facts, ensure_ascii=False) if facts is not None else None,
                    now,
                    state is JobState.RUNNING,
                    now,
                    state is JobState.FINISHED,
                    now,
                    try_later,
                    ended,
                    try_later,
                    now,
                    ended,
                    job_id,
                ),
            )
            touched = cursor.rowcount
            await cursor.close()
            if touched != 1:
                raise ConfigError(f"no job {job_id} in {db.path}; see bulkimport jobs")

    async def record_send_rate(
        self,
        job_id: int,
        rate_per_s: float,
        *,
        pace_per_s: float | None = None,
        latency_s: float | None = None,
        runner: RunnerId | None = None,
    ) -> None:
        """Keep the runner's latest sending rate with the job (for ``status`` and its ETA),
        and the pace it holds and the latency it sees; with ``runner``, with it too."""
        db = self._db
        now = time.time()
        async with db.lock, db.transaction():
            await db.conn.execute(
                "UPDATE jobs SET send_rate_per_s = ?, send_rate_at = ?, pace_per_s = ?,"
                " latency_s = ? WHERE id = ?",
                (rate_per_s, now, pace_per_s, latency_s, job_id),
            )
            if runner is not None:
                await db.conn.execute(
                    "UPDATE runners SET job_id = ?, rate_per_s = ?, seen_at = ? WHERE id = ?",
                    (job_id, rate_per_s, now, runner),
                )

    async def attach_runner(self, job_id: int, runner: RunnerId) -> None:
        """``runner`` works on job ``job_id`` now."""
        db = self._db
        async with db.lock, db.transaction():
            await db.conn.execute(
                "UPDATE runners SET job_id = ?, seen_at = ? WHERE id = ?",
                (job_id, time.time(), runner),
            )

    async def leave(self, job_id: int, runner: RunnerId) -> bool:
        """One runner at a time: none other sends the job."""
        return False

    async def runners(self, job_id: int) -> tuple[RunnerView, ...]:
        """The live runner sending job ``job_id``, if there is one: the holder of the runner
        lock, once it said it sends this job."""
        if not runner_alive(self._db.path):
            return ()
        db = self._db
        async with db.lock:
            cursor = await db.conn.execute(
                "SELECT id, host, pid, started_at, rate_per_s, seen_at FROM runners"
                " WHERE id = (SELECT max(id) FROM runners WHERE ended_at IS NULL) AND job_id = ?",
                (job_id,),
            )
            found = await cursor.fetchall()
            await cursor.close()
        return tuple(RunnerView(RunnerId(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in found)

    async def take_reading(self, job_id: int, runner: RunnerId) -> bool:
        """Always: the runner lock admits one runner at a time, and it reads what it sends."""
        return True

    async def record_outage(
        self, job_id: int, since: float | None, next_try_at: float | None
    ) -> None:
        """The server has not answered since ``since`` (Unix seconds), and will be tried
        again at ``next_try_at``; None for both: it answers again."""
        db = self._db
        async with db.lock, db.transaction():
            await db.conn.execute(
                "UPDATE jobs SET outage_since = ?, next_try_at = ? WHERE id = ?",
                (since, next_try_at, job_id),
            )

    async def record_window_wait(self, job_id: int, opens_at: float | None) -> None:
        """The runner waits for the send window, which opens at ``opens_at`` (Unix
        seconds); None: it is open."""
        db = self._db
        async with db.lock, db.transaction():
            await db.conn.execute(
                "UPDATE jobs SET window_opens_at = ? WHERE id = ?", (opens_at, job_id)
            )

    async def url_answered(self, url: str) -> bool:
        """Whether ``url`` ever gave a valid Import answer to a job of this database."""
        async with self._db.lock:
            rows = await self._db.conn.execute_fetchall(
                "SELECT 1 FROM endpoints WHERE url = ?", (url,)
            )
        return bool(rows)

    async def note_answer(self, url: str) -> None:
        """``url`` gave a valid Import answer (now)."""
        now = time.time()
        db = self._db
        async with db.lock, db.transaction():
            await db.conn.execute(
                "INSERT INTO endpoints (url, first_answer_at, last_answer_at) VALUES (?, ?, ?)"
                " ON CONFLICT (url) DO UPDATE SET last_answer_at = excluded.last_answer_at",
                (url, now, now),
            )
