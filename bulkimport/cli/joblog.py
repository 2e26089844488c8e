"""The job log (``--log FILE``): plain lines or JSON lines, one named event per record.

The library logs through the ``bulkimport`` logger as usual; a record may name its event and
carry fields with ``extra=event("progress", job=3, done=1200)``. Events: ``start`` (the
settings, never a secret), ``skip_unchanged``, ``progress``, ``stop`` (a signal, a fatal
answer), ``summary``, ``remote``, ``error``. A JSON line holds ``ts`` (UTC, ISO 8601),
``level``, ``event``, ``message`` and the fields; a plain line holds the time, the level and
the message.

Records marked ``file_only`` go to the log file but not to the terminal, where the command
line prints the same fact its own way; ``progress`` records stay off the terminal while a
progress bar shows them.
"""

from __future__ import annotations

import datetime
import json
import logging
from enum import StrEnum
from typing import Any


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
