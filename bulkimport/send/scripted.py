"""``ScriptedTransport``: a ``Transport`` whose server is a function, for tests and trials.

As httpx's ``MockTransport``, the network is replaced by a handler: it gets each call as a
``Request`` (the record, the HTTP method, the URL, and why the call is made) and returns the
``Outcome`` the server's answer would be classified as, or raises as a broken transport
would (the dispatcher then stops, and ``run()`` raises the error, no row lost). The handler
may be a coroutine function, to take its time (``await asyncio.sleep(...)``) or wait for
what a test does meanwhile::

    from bulkimport import Client, Outcome, Request, ScriptedTransport

    def server(request: Request) -> Outcome:
        if "phone1=000" in request.record:
            return ScriptedTransport.answer("|Retuen|2|Retuen|BackMsg_74")
        return ScriptedTransport.answer("|Retuen|1|Retuen|BackMsg_84")

    transport = ScriptedTransport(server)
    async with Client(target, db="leads.db", transport=transport) as client:
        summary = await client.load_csv("leads.csv")
    assert len(transport.requests) == summary.sent   # every call, in order

It is a transport factory too (``Client(transport=...)`` takes one): opened for a job, it
gives itself. Probes and the question about the other HTTP method go through the same handler
(``Request.kind``), as an HTTP transport sends them: an empty record, the job's method
or the other one. ``ScriptedTransport.answer`` classifies a response as the HTTP transport
does (an ``Outcome`` can also be made by hand).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bulkimport.protocol import Outcome, classify_http
from bulkimport.settings import Method, Settings

#: Where the calls of a ``ScriptedTransport`` go when no URL is given (nowhere real).
SCRIPTED_URL = "http://scripted.invalid/asterccinterfaces"


class RequestKind(StrEnum):
    """Why the dispatcher makes a call."""

    SEND = "send"  # a row's record
    PROBE = "probe"  # in an outage: is the server there? (an empty record, nothing imported)
    # No Import answer came to this method: does the server answer the other one? (an empty
    # record and an empty password)
    OTHER_METHOD = "other-method"


@dataclass(frozen=True)
class Request:
    """One call as the server would get it."""

    record: str  # the record as encoded (``name=...||phone1=...``); "" for a probe
    method: Method
    url: str
    kind: RequestKind = RequestKind.SEND


Handler = Callable[[Request], Outcome | Awaitable[Outcome]]


@dataclass
class ScriptedTransport:
    """A ``Transport`` that asks ``handler`` for every call's outcome; see the module's
    documentation. The handler is asked as the call is made; ``delay_s``: how long its
    answer then takes to come back (a call always yields to the event loop once, as a
    socket would). ``requests``: every call made, in order."""

    handler: Handler
    url: str = SCRIPTED_URL
    method: Method = Method.POST
    delay_s: float = 0.0
    requests: list[Request] = field(default_factory=list)

    @staticmethod
    def answer(body: str, *, status: int = 200, retry_after: str | None = None) -> Outcome:
        """The outcome of an HTTP response (``status``, ``body``, a ``Retry-After`` header),
        as the HTTP transport classifies it."""
        return classify_http(status, body, retry_after=retry_after)

    async def send(self, record: str) -> Outcome:
        """The outcome of sending ``record``."""
        return await self._call(Request(record, self.method, self.url))

    async def probe(self) -> Outcome:
        """The outcome of a call with an empty record."""
        return await self._call(Request("", self.method, self.url, RequestKind.PROBE))

    async def other_method(self) -> Method | None:
        """The other HTTP method, if the handler answers it (in the Import protocol)."""
        other = Method.GET if self.method is Method.POST else Method.POST
        outcome = await self._call(Request("", other, self.url, RequestKind.OTHER_METHOD))
        return other if outcome.answered else None

    async def _call(self, request: Request) -> Outcome:
        self.requests.append(request)
        outcome = self.handler(request)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        await asyncio.sleep(self.delay_s)  # the answer's way back
        return outcome

    @contextlib.asynccontextmanager
    async def __call__(self, settings: Settings) -> AsyncIterator[ScriptedTransport]:
        """Opened for a job (as ``Client``'s transport factory): this transport itself."""
        yield self
