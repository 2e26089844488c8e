"""``ScriptedTransport``: a ``Transport`` whose server is a function, for tests and trials.

As httpx's ``MockTransport``, the network is replaced by a handler: it gets each call as a
``Request`` (the record, the HTTP method, the URL, and why the call is made) and returns the
``Outcome`` the server's answer would be classified as, or raises as a broken transport
would (the dispatcher then stops, and ``run()`` raises the error, no row lost). The handler
may be a coroutine function, to take its time (``await asyncio.sleep(...)``) or wait for
what a test does meanwhile::

    from bulkimport import Client, Method, Outcome, ScriptedTransport
    from bulkimport.protocol import classify_http, format_answer

    def server(request):
        if "phone1=000" in request.record:
            return classify_http(200, format_answer(False, "BackMsg_74"))
        return classify_http(200, format_answer(True, "BackMsg_84"))

    transport = ScriptedTransport(server)
    async with Client(target, db="leads.db", transport=transport) as client:
        summary = await client.load_csv("leads.csv")
    assert len(transport.requests) == summary.sent   # every call, in order

It is a transport factory too (``Client(transport=...)`` takes one): opened for a job, it
gives itself. Probes and the question about the other HTTP method go through the same handler
(``Request.purpose``), as an HTTP transport sends them: an empty record, the job's method
or the other one.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bulkimport.protocol import Outcome
from bulkimport.settings import Method, Settings

#: Where the calls of a ``ScriptedTransport`` go when no URL is given (nowhere real).
SCRIPTED_URL = "http://scripted.invalid/asterccinterfaces"


class Purpose(StrEnum):
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
    purpose: Purpose = Purpose.SEND


Handler = Callable[[Request], Outcome | Awaitable[Outcome]]


@dataclass
class ScriptedTransport:
    """A ``Transport`` that asks ``handler`` for every call's outcome; see the module's
    documentation. ``delay_s``: how long each call takes before the handler is asked (a
    call always yields to the event loop once, as a socket would). ``requests``: every
    call made, in order."""

    handler: Handler
    url: str = SCRIPTED_URL
    method: Method = Method.POST
    delay_s: float = 0.0
    requests: list[Request] = field(default_factory=list)

    async def send(self, record: str) -> Outcome:
        """The outcome of sending ``record``."""
        return await self._call(Request(record, self.method, self.url))

    async def probe(self) -> Outcome:
        """The outcome of a call with an empty record."""
        return await self._call(Request("", self.method, self.url, Purpose.PROBE))

    async def other_method(self) -> Method | None:
        """The other HTTP method, if the handler answers it (in the Import protocol)."""
        other = Method.GET if self.method is Method.POST else Method.POST
        outcome = await self._call(Request("", other, self.url, Purpose.OTHER_METHOD))
        return other if outcome.answered else None

    async def _call(self, request: Request) -> Outcome:
        self.requests.append(request)
        await asyncio.sleep(self.delay_s)
        outcome = self.handler(request)
        if inspect.isawaitable(outcome):
            return await outcome
        return outcome

    @contextlib.asynccontextmanager
    async def __call__(self, settings: Settings) -> AsyncIterator[ScriptedTransport]:
        """Opened for a job (as ``Client``'s transport factory): this transport itself."""
        yield self
