"""One remote import (``source=http`` / ``source=ftp``): the server fetches a CSV file itself.

- ``split_credentials``: the file's URL without the user and password it may carry (they go
  to ``source_user`` / ``source_pwd``, never into the database or a message).
- ``remote_query``: the 22 parameters of the call, URL-encoded by the standard library.
- ``submit_remote``: makes the call, retries transient answers (up to ``max_attempts``), and
  classifies the last answer with ``classify_http(..., remote=True)``: a success carries the
  server's import job id. A first call that gets no Import answer (a 405, a 404, a page)
  asks the server with the other HTTP method: answered, the import is refused naming it.

The account password and the file's password are masked out of every message kept.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from bulkimport.errors import ConfigError
from bulkimport.protocol import (
    ImportParams,
    Outcome,
    OutcomeKind,
    Source,
    secret_forms,
)
from bulkimport.send.health import could_be_the_method
from bulkimport.send.transport import HttpTransport, Route
from bulkimport.settings import Method, SendSettings, mask_url
from bulkimport.states import RemoteState

SOURCE_PASSWORD_ENV = "BULKIMPORT_SOURCE_PASSWORD"

_SCHEMES = {Source.HTTP: ("http", "https"), Source.FTP: ("ftp",)}


@dataclass(frozen=True)
class RemoteRequest:
    """What to import: the file's URL (no credentials in it) and how the server gets it."""

    url: str
    source: Source = Source.HTTP
    source_user: str = ""
    source_password: str = field(default="", repr=False)
    exetime: str = ""  # empty: now
    delrow: int = 1

    @property
    def secrets(self) -> tuple[str, ...]:
        return secret_forms(self.source_password)


@dataclass(frozen=True)
class RemoteResult:
    """The last answer to a remote import and how many calls it took."""

    state: RemoteState
    outcome: Outcome
    attempts: int
    # Refused because the server gives no Import answer to the method used: the one it
    # answered instead.
    other_method: Method | None = None

    @property
    def server_job_id(self) -> str | None:
        """The server's import job id (the message of a success), if accepted."""
        if self.state is not RemoteState.ACCEPTED:
            return None
        return self.outcome.message.strip() or None


def split_credentials(url: str, source: Source) -> tuple[str, str, str]:
    """``(url without credentials, user, password)``; ``ConfigError`` for a URL the chosen
    source cannot fetch (the URL shown with its credentials masked)."""
    shown = mask_url(url.strip())
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES[source] or not parts.hostname:
        wanted = " or ".join(f"{s}://" for s in _SCHEMES[source])
        raise ConfigError(f"{shown!r}: --source {source.value} needs a {wanted} URL of a CSV file")
    try:
        port = parts.port
    except ValueError:
        # What reads as the port is part of a password holding a / ? or #.
        raise ConfigError(
            f"{shown!r}: the port is not a number (write a / ? # or @ in the user or "
            "password as %2F %3F %23 %40)"
        ) from None
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    host = parts.hostname
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    clean = urllib.parse.urlunsplit((scheme, netloc, parts.path, parts.query, ""))
    return clean, user, password


def remote_query(params: ImportParams, request: RemoteRequest) -> str:
    """The URL-encoded query (or form body) of the call."""
    return urllib.parse.urlencode(
        params.request_params(
            request.url,
            source=request.source,
            source_user=request.source_user,
            source_pwd=request.source_password,
            exetime=request.exetime,
            delrow=str(request.delrow),
        )
    )


async def submit_remote(
    session: aiohttp.ClientSession,
    endpoint: str,
    params: ImportParams,
    request: RemoteRequest,
    settings: SendSettings,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[int, Outcome, float], None] | None = None,
    on_route: Callable[[Route], None] | None = None,
) -> RemoteResult:
    """Ask the server to import ``request``; retry transient answers up to ``max_attempts``.
    ``on_route`` is told how the call goes (directly, or through which proxy). A first call
    that gets no Import answer asks the server with the other HTTP method: answered, the
    import is refused (``other_method``)."""
    transport = HttpTransport(session, endpoint, params, settings, secrets=request.secrets)
    if on_route is not None:
        on_route(transport.route)
    query = remote_query(params, request)
    attempt = 0
    while True:
        attempt += 1
        outcome = await transport.send_query(query, remote=True)
        if attempt == 1 and could_be_the_method(outcome):
            other = await transport.other_method()
            if other is not None:
                return RemoteResult(RemoteState.REFUSED, outcome, attempt, other)
        if outcome.kind is not OutcomeKind.TRANSIENT or attempt >= settings.max_attempts:
            break
        # The ceiling of the backoff, without jitter: jitter spreads many rows' retries, and
        # a remote import is one call.
        delay = max(settings.retry.ceiling_s(attempt - 1), outcome.retry_after_s or 0.0)
        if on_retry is not None:
            on_retry(attempt, outcome, delay)
        await sleep(delay)
    if outcome.kind is OutcomeKind.DONE:
        state = RemoteState.ACCEPTED
    elif outcome.kind is OutcomeKind.TRANSIENT:
        state = RemoteState.FAILED
    else:
        state = RemoteState.REFUSED
    return RemoteResult(state, outcome, attempt)
