"""The job log (``--log FILE``): plain lines or JSON lines, one named event per record.

A job's typed events (``bulkimport.events``) become records of the ``bulkimport`` logger here
(``log_event``): the line from ``bulkimport.messages``, the fields from the event. Other records may
name their event and carry fields with ``extra=event("remote", job=3)``. Events: ``start`` (the
settings, never a secret), ``skip_unchanged``, ``progress``, ``stop`` (a signal, a fatal answer),
``summary``, ``remote``, ``error``. A JSON line holds ``ts`` (UTC, ISO 8601), ``level``, ``event``,
``message`` and the fields; a plain line holds the time, the level and the message.

Records marked ``file_only`` go to the log file but not to the terminal, where the command
line prints the same fact its own way; ``progress`` records stay off the terminal while a
progress bar shows them.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from bulkimport.events import (
    ColumnsAdded,
    Event,
    Forgot,
    JobStopped,
    OutageBegan,
    Pruned,
    RenameUnused,
    RowsReset,
    RunEnded,
    RunStarted,
    ServerBack,
    SkippedUnchanged,
    StopRequested,
    Superseded,
    UnknownOutcome,
    WindowOpen,
    WindowWait,
)
from bulkimport.jobs.events import event as log_fields
from bulkimport.messages import logged, stop_text, trouble_text
from bulkimport.states import StopCause


class LogFormat(StrEnum):
    PLAIN = "plain"
    JSON = "json"


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``event``, ``message``, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, Any] = {
            "ts": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "message"),
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({k: v for k, v in fields.items() if k not in line})
        return json.dumps(line, ensure_ascii=False, default=str)


def plain_formatter() -> logging.Formatter:
    return logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonLinesFormatter() if LogFormat(log_format) is LogFormat.JSON else plain_formatter()


#: What a job waiting says (an outage, the server back, the send window not open yet):
#: under ``--quiet``, for the log file only. Cron mails whatever is printed, and a wait is
#: no failure; if it lasts, the run ends "try later" (exit 75) and ``status`` counts it.
WAITING_EVENTS = frozenset({"outage", "back", "window_wait"})


class ConsoleFilter(logging.Filter):
    """Keeps off the terminal what is for the log file only (see the module docstring), and,
    ``quiet``, what a job waiting says (``WAITING_EVENTS``)."""

    def __init__(self, *, bars: bool, quiet: bool = False) -> None:
        super().__init__()
        self._bars = bars
        self._quiet = quiet

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "file_only", False):
            return False
        name = getattr(record, "event", None)
        if self._quiet and name in WAITING_EVENTS:
            return False
        return not (self._bars and name == "progress")


def log_event(event: Event) -> None:
    """Write ``event`` to the ``bulkimport`` logger: its line (``bulkimport.messages``) and
    its fields, taken from the event (progress goes by ``cli.progress``)."""
    record = _record(event)
    text = logged(event)
    if record is None or text is None:
        return
    level, name, file_only, fields = record
    logging.getLogger("bulkimport").log(
        level, "%s", text, extra=log_fields(name, file_only=file_only, **fields)
    )


def _record(event: Event) -> tuple[int, str, bool, dict[str, Any]] | None:
    """The level, the event's name in the log, whether it is for the log file only, and
    its fields."""
    info, warning = logging.INFO, logging.WARNING
    if isinstance(event, OutageBegan):
        trouble = trouble_text(event.outcome) if event.outcome is not None else ""
        return (
            warning,
            "outage",
            False,
            {"job": event.job, "since": event.since, "trouble": trouble},
        )
    if isinstance(event, ServerBack):
        fields: dict[str, Any] = {"job": event.job, "since": event.since, "after_s": event.after_s}
        return warning, "back", False, fields
    if isinstance(event, WindowWait):
        return warning, "window_wait", False, {"job": event.job, "opens_at": event.opens_at}
    if isinstance(event, WindowOpen):
        return info, "window_open", False, {"job": event.job}
    if isinstance(event, UnknownOutcome):
        return warning, "unknown_outcome", False, {"job": event.job, "line": event.line}
    if isinstance(event, StopRequested):
        fields = {"reason": "signal", "signal": event.signal or "a stop request", "job": event.job}
        return warning, "stop", False, fields
    if isinstance(event, JobStopped):
        facts = event.facts
        try_later = facts.cause is StopCause.SIGNAL or facts.cause.is_try_later
        fields = {
            "job": event.job,
            "state": event.state.value,
            "cause": facts.cause.value,
            "code": facts.code,
            "reason": stop_text(facts),
            "setting": facts.setting,
            # What the calls of this run did: answered, or maybe processed without an answer.
            "answered": facts.answered,
            "maybe_processed": facts.maybe_processed,
        }
        return warning if try_later else logging.ERROR, "stop", True, fields
    if isinstance(event, RowsReset):
        return info, "retry", True, {"job": event.job, "rows": event.rows}
    if isinstance(event, SkippedUnchanged):
        return info, "skip_unchanged", True, _fields(event)
    if isinstance(event, Superseded):
        return info, "superseded", True, {"job": event.job, "by": event.by}
    if isinstance(event, Pruned):
        return (
            info,
            "prune",
            True,
            {"jobs": list(event.jobs), "reports": event.reports, "before": event.before},
        )
    if isinstance(event, Forgot):
        fields = _fields(event)
        fields["jobs"] = list(event.jobs)
        return info, "forget", True, fields
    if isinstance(event, ColumnsAdded):
        return info, "columns", True, {"job": event.job, "added": dict(event.first_rows)}
    if isinstance(event, RenameUnused):
        return warning, "rename-unused", False, {"job": event.job, "key": event.key}
    if isinstance(event, RunStarted):
        return info, "start", True, _fields(event)
    if isinstance(event, RunEnded):
        fields = _fields(event)
        fields["counts"] = {state.value: n for state, n in event.counts.items()}
        fields["reason"] = fields.pop("message")
        return info, "summary", True, fields
    return None


def _fields(event: Event) -> dict[str, Any]:
    """An event's fields as plain values."""
    return {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value
