"""Named records in the ``bulkimport`` logger: an event's name and its fields.

A job's own events are typed values (``bulkimport.events``), which the command line logs
(``bulkimport.cli.joblog.log_event``); the few records the library still writes itself (the
``route`` the calls go through, its password masked; a ``warning`` of what exposes the
password; a report written; a customer forgotten) name their event and carry fields with
``extra=event("route", proxy=...)``, which the ``--log`` file writes as plain lines or
JSON. ``file_only`` records go to the log file but not to the terminal, where the command
line prints the same fact its own way.
"""

from __future__ import annotations

from typing import Any


def event(name: str, *, file_only: bool = False, **fields: Any) -> dict[str, Any]:
    """``extra=`` for a log call: the event's name and its fields."""
    return {"event": name, "fields": fields, "file_only": file_only}
