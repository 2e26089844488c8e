"""Named events in the ``bulkimport`` logger: what a job did, with its fields.

The library logs through the ``bulkimport`` logger as usual; a record may name its event and
carry fields with ``extra=event("progress", job=3, done=1200)``, which the command line's
``--log`` file writes as plain lines or JSON (``bulkimport.cli.joblog``). Events: ``start``
(the settings, never a secret), ``skip_unchanged``, ``retry``, ``progress``, ``stop``,
``summary``, ``remote``, ``route`` (the proxy the calls go through, its password masked),
``error``. ``file_only`` records go to the log file but not to the terminal, where the
command line prints the same fact its own way.
"""

from __future__ import annotations

from typing import Any


def event(name: str, *, file_only: bool = False, **fields: Any) -> dict[str, Any]:
    """``extra=`` for a log call: the event's name and its fields."""
    return {"event": name, "fields": fields, "file_only": file_only}
