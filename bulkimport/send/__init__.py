"""Sending rows: the transport, the rate limit, the row policy, the dispatcher.

- ``transport``: the ``Transport`` interface and ``HttpTransport`` (aiohttp);
- ``limiter``: ``RateLimiter``;
- ``budget``: ``SharedBudget``, the server's budget shared by every runner (``--server-rate``);
- ``policy``: the pure decision of a row's next state from an outcome;
- ``dispatcher``: ``Dispatcher``, the worker pool over storage and a transport, with its
  parts: ``feeder`` (claims), ``slots`` (calls in flight), ``outage`` (what it does about
  the server's health), ``refunds`` (attempts an outage cost), ``writer`` (outcomes to
  storage), and ``values`` (what a send is given and gives back);
- ``scripted``: ``ScriptedTransport``, a transport whose server is a function (tests);
- ``remote``: one ``source=http|ftp`` import.
"""

from bulkimport.send.budget import SharedBudget, shared_budget
from bulkimport.send.dispatcher import RATE_EVERY_S, UNKNOWN_CODE, Dispatcher
from bulkimport.send.limiter import RateLimiter
from bulkimport.send.scripted import Request, RequestKind, ScriptedTransport
from bulkimport.send.transport import (
    GET_WARNING,
    INSECURE_WARNING,
    HttpTransport,
    Route,
    Transport,
    exposure_warnings,
    open_session,
)
from bulkimport.send.values import (
    DispatchOptions,
    Feed,
    Listeners,
    SendCounts,
    SendEnd,
    SendResult,
    Watch,
    WatchEvent,
)
from bulkimport.send.writer import RESULT_BATCH_ROWS

__all__ = [
    "GET_WARNING",
    "INSECURE_WARNING",
    "RATE_EVERY_S",
    "RESULT_BATCH_ROWS",
    "UNKNOWN_CODE",
    "DispatchOptions",
    "Dispatcher",
    "Feed",
    "HttpTransport",
    "Listeners",
    "RateLimiter",
    "Request",
    "RequestKind",
    "Route",
    "ScriptedTransport",
    "SendCounts",
    "SendEnd",
    "SendResult",
    "SharedBudget",
    "Transport",
    "Watch",
    "WatchEvent",
    "exposure_warnings",
    "open_session",
    "shared_budget",
]
