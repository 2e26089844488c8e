"""What a ``jobs`` and a ``remote_imports`` row hold, the same for every backend: the columns
read, in their order, and how a row of them becomes a ``Job`` or a ``RemoteImport``; the
column of each kind of repair; the rule that keeps a password out of stored settings. A
change to what a job holds reaches SQLite and PostgreSQL alike, or fails loudly in both."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from bulkimport.errors import ConfigError
from bulkimport.rows import FileIdentity, TargetRef
from bulkimport.states import JobState, RemoteState, RepairKind, StopCause
from bulkimport.storage.values import Job, RemoteImport

#: The column of ``jobs`` that counts each kind of repair (migrations 008, 016).
REPAIR_COLUMNS: dict[RepairKind, str] = {
    RepairKind.DECIMAL: "repaired_decimal",
    RepairKind.APOSTROPHE: "repaired_apostrophe",
    RepairKind.TEXT_FORMULA: "repaired_text_formula",
    RepairKind.CONTROL_PADDING: "repaired_control_padding",
}

JOB_COLUMNS = (
    "id, state, file_path, file_size, file_mtime_ns, file_head_sha256, target_url, target_org,"
    " target_campaign, settings_json, format_json, read_offset, read_line, total_rows,"
    " resent_unknown, message, created_at, updated_at, started_at, finished_at,"
    " send_rate_per_s, send_rate_at, stop_cause, outage_since, next_try_at, pace_per_s,"
    " latency_s, blank_lines, report_path, superseded_by, read_done, window_opens_at,"
    " try_later_runs, try_later_since, unknown_report_path, stop_facts, "
    + ", ".join(REPAIR_COLUMNS.values())
)


def job_from_row(row: Sequence[Any]) -> Job:
    return Job(
        id=row[0],
        state=JobState(row[1]),
        file=FileIdentity(row[2], row[3], row[4], row[5]),
        target=TargetRef(row[6], row[7], row[8]),
        settings=json.loads(row[9]),
        fmt_json=row[10],
        read_offset=row[11],
        read_line=row[12],
        total_rows=row[13],
        resent_unknown=row[14],
        message=row[15],
        created_at=row[16],
        updated_at=row[17],
        started_at=row[18],
        finished_at=row[19],
        send_rate_per_s=row[20],
        send_rate_at=row[21],
        stop_cause=StopCause(row[22]) if row[22] else None,
        outage_since=row[23],
        next_try_at=row[24],
        pace_per_s=row[25],
        latency_s=row[26],
        blank_lines=row[27],
        report_path=row[28],
        superseded_by=row[29],
        read_done=bool(row[30]),
        window_opens_at=row[31],
        try_later_runs=row[32],
        try_later_since=row[33],
        unknown_report_path=row[34],
        stop_facts=json.loads(row[35]) if row[35] else None,
        repairs={kind: n for kind, n in zip(REPAIR_COLUMNS, row[36:], strict=True) if n},
    )


def check_no_credentials(url: str) -> None:
    """Refuse a URL (a remote import's file) that holds a user name or a password."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ConfigError("refusing to store a URL that holds credentials")


def check_no_password(settings: Mapping[str, Any], where: str = "settings") -> None:
    """Refuse settings that still carry a password: it must never reach the database."""
    for key, value in settings.items():
        name = str(key).lower()
        # `password_env` names the variable that holds the password: not a secret itself.
        if "password" in name and not name.endswith("_env") and value not in (None, ""):
            raise ConfigError(
                f"refusing to store {where}[{key!r}]: a password is never written to the database"
            )
        if isinstance(value, Mapping):
            check_no_password(value, f"{where}[{key!r}]")


REMOTE_COLUMNS = (
    "id, created_at, source, url, target_key, exetime, delrow, server_job_id, state, code,"
    " message, attempts"
)


def remote_from_row(row: Sequence[Any]) -> RemoteImport:
    return RemoteImport(
        id=row[0],
        created_at=row[1],
        source=row[2],
        url=row[3],
        target_key=row[4],
        exetime=row[5],
        delrow=row[6],
        server_job_id=row[7],
        state=RemoteState(row[8]),
        code=row[9],
        message=row[10],
        attempts=row[11],
    )
