"""The PostgreSQL ``JobStore``: the ``jobs`` table, as the SQLite one keeps it."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from typing import Any

from bulkimport.errors import ConfigError
from bulkimport.rows import FileIdentity, TargetRef
from bulkimport.states import JobState, RowState, StopCause
from bulkimport.storage.columns import JOB_COLUMNS, check_no_password, job_from_row
from bulkimport.storage.postgres.database import Database
from bulkimport.storage.postgres.leases import LIVE_RUNNERS
from bulkimport.storage.values import Job, RunnerId, RunnerView

# Open jobs (Job.is_open): the ones that may still be resumed.
_OPEN = "state <> 'finished' AND superseded_by IS NULL"
_SAME_FILE = "file_path = $2 AND file_size = $3 AND file_mtime_ns = $4 AND file_head_sha256 = $5"
# Jobs a finished job ($1) replaces: open, older, the same file, and the same target ($6)
# or one that was refused ($7: the causes that refuse a target)...
_REPLACED = (
    f"{_OPEN} AND id < $1 AND {_SAME_FILE}"
    " AND (target_key = $6 OR (state = 'stopped' AND stop_cause = ANY($7::text[])))"
)
# ...and earlier exports of the same path to the same target (if nothing they hold is lost).
_EARLIER_EXPORT = (
    f"{_OPEN} AND id < $1 AND file_path = $2 AND target_key = $6 AND NOT ({_SAME_FILE})"
)
# How many rows left to send of job $3 are for no customer ($2: the key field) that job $1
# loaded, found on the server or found unchanged.
_LEFT_UNCOVERED = (
    "WITH loaded AS (SELECT DISTINCT bulkimport_customer(record, $2) AS customer FROM rows"
    " WHERE job_id = $1 AND state IN ('done', 'duplicate', 'skipped') AND record IS NOT NULL)"
    " SELECT count(*) FROM rows r WHERE r.job_id = $3 AND r.state IN ('pending', 'in_flight')"
    " AND NOT EXISTS (SELECT 1 FROM loaded"
    " WHERE loaded.customer = bulkimport_customer(r.record, $2))"
)
_RUN_ENDS = (JobState.FINISHED, JobState.STOPPED, JobState.INTERRUPTED)


class PostgresJobs:
    """Jobs in the ``jobs`` table of one database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _missing(self, job_id: int) -> ConfigError:
        return ConfigError(f"no job {job_id} in {self._db.location}; see bulkimport jobs")

    async def create(
        self,
        file: FileIdentity,
        target: TargetRef,
        settings: Mapping[str, Any],
        fmt_json: str,
    ) -> Job:
        """A new job in state ``reading``, its counters with it; ``ConfigError`` if
        ``settings`` carry a password. It goes on from the "try later" runs of the latest job
        of the same path and target."""
        check_no_password(settings)
        settings_json = json.dumps(dict(settings), ensure_ascii=False, sort_keys=True)
        now = time.time()
        carried = "FROM jobs WHERE file_path = $2 AND target_key = $6 ORDER BY id DESC LIMIT 1"
        rows = await self._db.fetch(
            "WITH job AS (INSERT INTO jobs (state, file_path, file_size, file_mtime_ns,"
            " file_head_sha256, target_key, target_url, target_org, target_campaign,"
            " settings_json, format_json, created_at, updated_at, try_later_runs,"
            " try_later_since)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12,"
            f" coalesce((SELECT try_later_runs {carried}), 0),"
            f" (SELECT try_later_since {carried}))"
            f" RETURNING {JOB_COLUMNS}),"
            " counters AS (INSERT INTO job_counts (job_id, state)"
            " SELECT job.id, each_state FROM job, unnest($13::text[]) AS each_state)"
            " SELECT * FROM job",
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
            [state.value for state in RowState],
        )
        return job_from_row(rows[0])

    async def get(self, job_id: int) -> Job:
        """The job ``job_id``; ``ConfigError`` if there is none."""
        rows = await self._db.fetch(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1", job_id)
        if not rows:
            raise self._missing(job_id)
        return job_from_row(rows[0])

    async def _first(self, where: str, *args: Any) -> Job | None:
        rows = await self._db.fetch(f"SELECT {JOB_COLUMNS} FROM jobs {where}", *args)
        return job_from_row(rows[0]) if rows else None

    async def find_unfinished(self, file: FileIdentity, target: TargetRef) -> Job | None:
        """The latest open job for the same file (path, size, mtime, head) and target."""
        return await self._first(
            "WHERE file_path = $1 AND target_key = $2 AND file_size = $3 AND file_mtime_ns = $4"
            f" AND file_head_sha256 = $5 AND {_OPEN} ORDER BY id DESC LIMIT 1",
            file.path,
            target.key,
            file.size,
            file.mtime_ns,
            file.head_sha256,
        )

    async def latest(self, *, unfinished: bool = False) -> Job | None:
        """The most recently created job (only an open one, if ``unfinished``), if any."""
        if unfinished:
            return await self._first(f"WHERE {_OPEN} ORDER BY id DESC LIMIT 1")
        return await self._first("ORDER BY id DESC LIMIT 1")

    async def supersede(self, job_id: int, key_field: str | None = None) -> list[Job]:
        """Mark the older open jobs that the finished job ``job_id`` replaces as superseded
        by it; return them (see ``JobStore.supersede``)."""
        job = await self.get(job_id)
        if job.state is not JobState.FINISHED:
            return []
        file = job.file
        args = (
            job_id, file.path, file.size, file.mtime_ns, file.head_sha256, job.target.key,
            [StopCause.FATAL.value, StopCause.NEVER_REACHED.value],
        )  # fmt: skip
        replaced = [
            job_from_row(row)
            for row in await self._db.fetch(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE {_REPLACED} ORDER BY id", *args
            )
        ]
        if key_field is not None:
            exports = await self._db.fetch(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE {_EARLIER_EXPORT} ORDER BY id", *args[:6]
            )
            for row in exports:
                old = job_from_row(row)
                if await self._db.fetchval(_LEFT_UNCOVERED, job_id, key_field, old.id) == 0:
                    replaced.append(old)
            replaced.sort(key=lambda old: old.id)
        if not replaced:
            return []
        await self._db.execute(
            f"UPDATE jobs SET superseded_by = $1, updated_at = $2 WHERE id = ANY($3) AND {_OPEN}",
            job_id,
            time.time(),
            [old.id for old in replaced],
        )
        return [dataclasses.replace(old, superseded_by=job_id) for old in replaced]

    async def set_report(self, job_id: int, path: str | None) -> None:
        """Keep where the job's failed-rows report now is; a path belongs to one job."""
        await self._set_report_path("report_path", job_id, path)

    async def set_unknown_report(self, job_id: int, path: str | None) -> None:
        """Keep where the list of the job's unknown rows now is; a path belongs to one job."""
        await self._set_report_path("unknown_report_path", job_id, path)

    async def _set_report_path(self, column: str, job_id: int, path: str | None) -> None:
        async with self._db.transaction() as conn:
            if path is not None:
                await conn.execute(
                    f"UPDATE jobs SET {column} = NULL WHERE {column} = $1 AND id <> $2",
                    path,
                    job_id,
                )
            status = await conn.execute(
                f"UPDATE jobs SET {column} = $1 WHERE id = $2", path, job_id
            )
            if status != "UPDATE 1":
                raise self._missing(job_id)

    async def retarget(self, job_id: int, target: TargetRef) -> None:
        """The job goes to ``target`` from now on (kept in its settings too)."""
        async with self._db.transaction() as conn:
            found = await conn.fetchval(
                "SELECT settings_json FROM jobs WHERE id = $1 FOR UPDATE", job_id
            )
            if found is None:
                raise self._missing(job_id)
            settings = json.loads(found or "{}")
            settings.update(url=target.url, org=target.org, campaign=target.campaign)
            await conn.execute(
                "UPDATE jobs SET target_key = $1, target_url = $2, target_org = $3,"
                " target_campaign = $4, settings_json = $5, updated_at = $6 WHERE id = $7",
                target.key,
                target.url,
                target.org,
                target.campaign,
                json.dumps(settings, ensure_ascii=False, sort_keys=True),
                time.time(),
                job_id,
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
        """Move a job to ``state`` with ``message``, ``cause`` and ``facts`` (see
        ``JobStore.set_state``: the health figures cleared, the "try later" runs counted)."""
        now = time.time()
        try_later = state is JobState.INTERRUPTED and cause is not None and cause.is_try_later
        ended = state in _RUN_ENDS and not try_later
        touched = await self._db.execute(
            "UPDATE jobs SET state = $1, message = $2, stop_cause = $3, stop_facts = $10,"
            " updated_at = $4,"
            " outage_since = NULL, next_try_at = NULL, window_opens_at = NULL,"
            " started_at = CASE WHEN $5 AND started_at IS NULL THEN $4 ELSE started_at END,"
            " finished_at = CASE WHEN $6 THEN $4 ELSE NULL END,"
            " try_later_runs = CASE WHEN $7 THEN try_later_runs + 1 WHEN $8 THEN 0"
            " ELSE try_later_runs END,"
            " try_later_since = CASE WHEN $7 THEN coalesce(try_later_since, $4) WHEN $8 THEN NULL"
            " ELSE try_later_since END"
            " WHERE id = $9",
            state.value,
            message,
            cause.value if cause is not None else None,
            now,
            state is JobState.RUNNING,
            state is JobState.FINISHED,
            try_later,
            ended,
            job_id,
            json.dumps(facts, ensure_ascii=False) if facts is not None else None,
        )
        if touched != 1:
            raise self._missing(job_id)

    async def record_send_rate(
        self,
        job_id: int,
        rate_per_s: float,
        *,
        pace_per_s: float | None = None,
        latency_s: float | None = None,
        runner: RunnerId | None = None,
    ) -> None:
        """Keep the runner's latest sending rate, pace and latency with it and with the job;
        the job's rate is that of all its live runners together."""
        now = time.time()
        if runner is None:
            await self._db.execute(
                "UPDATE jobs SET send_rate_per_s = $1, send_rate_at = $2, pace_per_s = $3,"
                " latency_s = $4 WHERE id = $5",
                rate_per_s,
                now,
                pace_per_s,
                latency_s,
                job_id,
            )
            return
        await self._db.execute(
            "WITH me AS (UPDATE runners SET job_id = $5, rate_per_s = $1, seen_at = $2"
            " WHERE id = $6)"
            " UPDATE jobs SET send_rate_per_s = $1 + coalesce((SELECT sum(rate_per_s)"
            f" FROM runners WHERE job_id = $5 AND id <> $6 AND id IN ({LIVE_RUNNERS})), 0),"
            " send_rate_at = $2, pace_per_s = $3, latency_s = $4 WHERE id = $5",
            rate_per_s,
            now,
            pace_per_s,
            latency_s,
            job_id,
            runner,
        )

    async def leave(self, job_id: int, runner: RunnerId) -> bool:
        """``runner`` stops sending job ``job_id``: whether other runners still send it. The
        job's row lock puts runners that stop at once one after the other, and each marks
        itself leaving first: the last of them sees no other."""
        async with self._db.transaction() as conn:
            await conn.execute("SELECT id FROM jobs WHERE id = $1 FOR UPDATE", job_id)
            await conn.execute("UPDATE runners SET leaving = true WHERE id = $1", runner)
            return bool(
                await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM runners WHERE job_id = $1 AND id <> $2"
                    f" AND NOT leaving AND id IN ({LIVE_RUNNERS}))",
                    job_id,
                    runner,
                )
            )

    async def take_reading(self, job_id: int, runner: RunnerId) -> bool:
        """Whether ``runner`` is to read the job's file: no live runner reads it (it is
        taken over from one gone), or ``runner`` already does. The others send what it
        stores."""
        taken = await self._db.fetchval(
            "UPDATE jobs SET reader = $2 WHERE id = $1 AND (reader IS NULL OR reader = $2"
            f" OR reader NOT IN ({LIVE_RUNNERS})) RETURNING id",
            job_id,
            runner,
        )
        return taken is not None

    async def attach_runner(self, job_id: int, runner: RunnerId) -> None:
        """``runner`` works on job ``job_id`` now."""
        await self._db.execute(
            "UPDATE runners SET job_id = $1, seen_at = $2 WHERE id = $3",
            job_id,
            time.time(),
            runner,
        )

    async def runners(self, job_id: int) -> tuple[RunnerView, ...]:
        """The live runners sending job ``job_id`` (their lock held, their lease running),
        oldest first."""
        found = await self._db.fetch(
            "SELECT id, host, pid, started_at, rate_per_s, seen_at FROM runners"
            f" WHERE job_id = $1 AND id IN ({LIVE_RUNNERS}) ORDER BY id",
            job_id,
        )
        return tuple(RunnerView(RunnerId(int(r[0])), r[1], r[2], r[3], r[4], r[5]) for r in found)

    async def record_outage(
        self, job_id: int, since: float | None, next_try_at: float | None
    ) -> None:
        """The server has not answered since ``since``; the next probe is at ``next_try_at``."""
        await self._db.execute(
            "UPDATE jobs SET outage_since = $1, next_try_at = $2 WHERE id = $3",
            since,
            next_try_at,
            job_id,
        )

    async def record_window_wait(self, job_id: int, opens_at: float | None) -> None:
        """The runner waits for the send window, which opens at ``opens_at``."""
        await self._db.execute(
            "UPDATE jobs SET window_opens_at = $1 WHERE id = $2", opens_at, job_id
        )

    async def url_answered(self, url: str) -> bool:
        """Whether ``url`` ever gave a valid Import answer to a job of this database."""
        return bool(await self._db.fetch("SELECT 1 FROM endpoints WHERE url = $1", url))

    async def note_answer(self, url: str) -> None:
        """``url`` gave a valid Import answer (now)."""
        now = time.time()
        await self._db.execute(
            "INSERT INTO endpoints (url, first_answer_at, last_answer_at) VALUES ($1, $2, $2)"
            " ON CONFLICT (url) DO UPDATE SET last_answer_at = excluded.last_answer_at",
            url,
            now,
        )

    # Last: in the class body, the name `list` is this method from here on.
    async def list(self) -> list[Job]:
        """Every job, oldest first."""
        return [
            job_from_row(r)
            for r in await self._db.fetch(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY id")
        ]
