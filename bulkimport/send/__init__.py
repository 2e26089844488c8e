"""Sending rows: the transport, the rate limit, the row policy, the dispatcher.

- ``transport``: the ``Transport`` interface and ``HttpTransport`` (aiohttp);
- ``limiter``: ``RateLimiter``;
- ``policy``: the pure decision of a row's next state from an outcome;
- ``dispatcher``: ``Dispatcher``, the worker pool over storage and a transport;
- ``remote``: one ``source=http|ftp`` import.
"""

from bulkimport.send.dispatcher import (
    RATE_EVERY_S,
    RESULT_BATCH_ROWS,
    Dispatcher,
    Feed,
    SendCounts,
    SendEnd,
    SendResult,
    Watch,
    WatchEvent,
)
from bulkimport.send.limiter import RateLimiter
from bulkimport.send.transport import (
    GET_WARNING,
    INSECURE_WARNING,
    PROXY_ADVICE,
    HttpTransport,
    Route,
    Transport,
    certificate_advice,
    exposure_warnings,
    open_session,
)

__all__ = [
    "GET_WARNING",
    "INSECURE_WARNING",
    "PROXY_ADVICE",
    "RATE_EVERY_S",
    "RESULT_BATCH_ROWS",
    "Dispatcher",
    "Feed",
    "HttpTransport",
    "RateLimiter",
    "Route",
    "SendCounts",
    "SendEnd",
    "SendResult",
    "Transport",
    "Watch",
    "WatchEvent",
    "certificate_advice",
    "exposure_warnings",
    "open_session",
]
