"""bulkimport: load large CSV files of leads into a call-center campaign through the Import API.

The public API (everything else is private and may change)::

    from bulkimport import Client, Target

    target = Target(url="https://cc.example.com/asterccinterfaces", org="acme",
                    user="admin", password=os.environ["CC_PASSWORD"], campaign="12")
    async with Client(target, db="leads.db") as client:
        summary = await client.load_csv("leads.csv")
        summary.raise_for_state()   # ServerRefused, Interrupted: the job is resumable

What a job does and learns comes as typed events (``Client(on_event=...)``: ``OutageBegan``,
``WindowWait``, ``JobStopped`` with its ``StopFacts``...), never as a sentence to parse.

See docs/library.md. Names are imported when first used, so that ``import bulkimport``
stays cheap.

Tests replace the network the way the project's own do: ``ScriptedTransport(handler)``
asks ``handler`` for the ``Outcome`` of every call (a ``Request``: the record, the HTTP
method, the URL, and its ``RequestKind``), and is given to ``Client(transport=...)``; a
``Transport`` of one's own has ``send(record) -> Outcome``.
"""

from __future__ import annotations

import importlib
import logging as _logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# A library logs; the application decides where to. Without this, a record logged before
# the command line configures logging would reach Python's last-resort handler.
_logging.getLogger("bulkimport").addHandler(_logging.NullHandler())

_EXPORTS = {
    "Client": "bulkimport.jobs.client",
    "check_csv": "bulkimport.jobs.client",
    "JobSummary": "bulkimport.jobs.summary",
    "ProgressEvent": "bulkimport.jobs.progress",
    "Phase": "bulkimport.jobs.progress",
    "Target": "bulkimport.settings",
    "Settings": "bulkimport.settings",
    "SendSettings": "bulkimport.settings",
    "ReadSettings": "bulkimport.settings",
    "Method": "bulkimport.settings",
    "ImportOptions": "bulkimport.protocol",
    "UserType": "bulkimport.protocol",
    "PasswordType": "bulkimport.protocol",
    "DupWay": "bulkimport.protocol",
    "DupDialList": "bulkimport.protocol",
    "ChangePackage": "bulkimport.protocol",
    "CheckOptions": "bulkimport.check",
    "CheckReport": "bulkimport.check",
    "RowState": "bulkimport.states",
    "JobState": "bulkimport.states",
    "ExitCode": "bulkimport.errors",
    "BulkImportError": "bulkimport.errors",
    "ConfigError": "bulkimport.errors",
    "InputError": "bulkimport.errors",
    "DatabaseError": "bulkimport.errors",
    "DiskFull": "bulkimport.errors",
    "TryLater": "bulkimport.errors",
    "RunnerBusy": "bulkimport.errors",
    "ServerUnavailable": "bulkimport.errors",
    "WindowClosed": "bulkimport.errors",
    "ServerRefused": "bulkimport.errors",
    "Interrupted": "bulkimport.errors",
    "StopCause": "bulkimport.states",
    "SendWindow": "bulkimport.window",
    "Forgotten": "bulkimport.storage",
    "Event": "bulkimport.events",
    "Step": "bulkimport.events",
    "Opened": "bulkimport.events",
    "Replaced": "bulkimport.events",
    "JobOpened": "bulkimport.events",
    "JobResumed": "bulkimport.events",
    "RunStarted": "bulkimport.events",
    "ReadProgress": "bulkimport.events",
    "SendProgress": "bulkimport.events",
    "ColumnsAdded": "bulkimport.events",
    "RenameUnused": "bulkimport.events",
    "RowsReset": "bulkimport.events",
    "SkippedUnchanged": "bulkimport.events",
    "Superseded": "bulkimport.events",
    "Pruned": "bulkimport.events",
    "Forgot": "bulkimport.events",
    "OutageBegan": "bulkimport.events",
    "ProbeFailed": "bulkimport.events",
    "ServerBack": "bulkimport.events",
    "WindowWait": "bulkimport.events",
    "WindowOpen": "bulkimport.events",
    "PaceChanged": "bulkimport.events",
    "UnknownOutcome": "bulkimport.events",
    "StopRequested": "bulkimport.events",
    "StopFacts": "bulkimport.events",
    "JobStopped": "bulkimport.events",
    "RunEnded": "bulkimport.events",
    "Transport": "bulkimport.send",
    "Outcome": "bulkimport.protocol",
    "OutcomeKind": "bulkimport.protocol",
    "ScriptedTransport": "bulkimport.send",
    "Request": "bulkimport.send",
    "RequestKind": "bulkimport.send",
}

__all__ = [
    "BulkImportError",
    "ChangePackage",
    "CheckOptions",
    "CheckReport",
    "Client",
    "ColumnsAdded",
    "ConfigError",
    "DatabaseError",
    "DiskFull",
    "DupDialList",
    "DupWay",
    "Event",
    "ExitCode",
    "Forgot",
    "Forgotten",
    "ImportOptions",
    "InputError",
    "Interrupted",
    "JobOpened",
    "JobResumed",
    "JobState",
    "JobStopped",
    "JobSummary",
    "Method",
    "Opened",
    "OutageBegan",
    "Outcome",
    "OutcomeKind",
    "PaceChanged",
    "PasswordType",
    "Phase",
    "ProbeFailed",
    "ProgressEvent",
    "Pruned",
    "ReadProgress",
    "ReadSettings",
    "RenameUnused",
    "Replaced",
    "Request",
    "RequestKind",
    "RowState",
    "RowsReset",
    "RunEnded",
    "RunStarted",
    "RunnerBusy",
    "ScriptedTransport",
    "SendProgress",
    "SendSettings",
    "SendWindow",
    "ServerBack",
    "ServerRefused",
    "ServerUnavailable",
    "Settings",
    "SkippedUnchanged",
    "Step",
    "StopCause",
    "StopFacts",
    "StopRequested",
    "Superseded",
    "Target",
    "Transport",
    "TryLater",
    "UnknownOutcome",
    "UserType",
    "WindowClosed",
    "WindowOpen",
    "WindowWait",
    "check_csv",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bulkimport' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from bulkimport.check import CheckOptions, CheckReport
    from bulkimport.errors import (
        BulkImportError,
        ConfigError,
        DatabaseError,
        DiskFull,
        ExitCode,
        InputError,
        Interrupted,
        RunnerBusy,
        ServerRefused,
        ServerUnavailable,
        TryLater,
        WindowClosed,
    )
    from bulkimport.events import (
        ColumnsAdded,
        Event,
        Forgot,
        JobOpened,
        JobResumed,
        JobStopped,
        Opened,
        OutageBegan,
        PaceChanged,
        ProbeFailed,
        Pruned,
        ReadProgress,
        RenameUnused,
        Replaced,
        RowsReset,
        RunEnded,
        RunStarted,
        SendProgress,
        ServerBack,
        SkippedUnchanged,
        Step,
        StopFacts,
        StopRequested,
        Superseded,
        UnknownOutcome,
        WindowOpen,
        WindowWait,
    )
    from bulkimport.jobs.client import Client, check_csv
    from bulkimport.jobs.progress import Phase, ProgressEvent
    from bulkimport.jobs.summary import JobSummary
    from bulkimport.protocol import (
        ChangePackage,
        DupDialList,
        DupWay,
        ImportOptions,
        Outcome,
        OutcomeKind,
        PasswordType,
        UserType,
    )
    from bulkimport.send import Request, RequestKind, ScriptedTransport, Transport
    from bulkimport.settings import Method, ReadSettings, SendSettings, Settings, Target
    from bulkimport.states import JobState, RowState, StopCause
    from bulkimport.storage import Forgotten
    from bulkimport.window import SendWindow
