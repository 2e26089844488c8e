"""The network side of sending: the ``Transport`` interface a dispatcher sends through, and
``HttpTransport``, its aiohttp implementation (one Import call → a classified ``Outcome``).

The transport is injected (by the library layer, or a test), so the dispatcher never knows
whether it talks HTTP, a test double, or a recording.
"""

from __future__ import annotations

import dataclasses
import ssl
from typing import Protocol

import aiohttp
from yarl import URL

from bulkimport.protocol import (
    MESSAGE_LIMIT,
    ImportParams,
    Outcome,
    OutcomeKind,
    Trouble,
    classify_http,
    classify_trouble,
    encode_params,
    mask_secrets,
)
from bulkimport.settings import Method, SendSettings

MAX_GET_URL_BYTES = 8000  # Apache and nginx refuse request lines over 8 KiB by default


ANSWER_CACHE_CHARS = 200  # answers this short are classified once per transport...


ANSWER_CACHE_SIZE = 256  # ...up to this many different ones


CONNECT_TIMEOUT_S = 10.0  # a TCP connection that is not made by then will not be


def _reason(exc: BaseException) -> str:
    """A short reason from an aiohttp error (its own message, or its type)."""
    cause = exc.__cause__ or exc
    text = str(cause).strip() or type(cause).__name__
    return text.split("\n", 1)[0][:120]


class Transport(Protocol):
    """What a dispatcher needs from the network: send one record, classify the answer.

    ``send`` never raises for a network or server problem: every such problem is an
    ``Outcome`` (``TRANSIENT``, ``FATAL``...). Secrets are masked out of its message.
    ``probe`` asks whether the server is there without touching data: an Import call with
    an empty record, which the server answers in its protocol (``BackMsg_71``) and imports
    nothing with; any answer in the protocol means it is there.
    """

    async def send(self, record: str) -> Outcome: ...

    async def probe(self) -> Outcome:
        return await self.send("")


def open_session(concurrency: int) -> aiohttp.ClientSession:
    """A client session for Import calls: ``concurrency`` keep-alive connections, no hidden
    resends.

    aiohttp sends a GET a second time by itself when a reused connection drops before the
    answer (aio-libs/aiohttp#10790), with no public switch. An Import call is not
    idempotent, and every send must be an attempt we count and bound, so that resend is
    turned off: a drop becomes a transient outcome and our own retry (with backoff) follows.
    """
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    session = aiohttp.ClientSession(connector=connector)
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session


class HttpTransport:
    """Sends one Import call over an ``aiohttp.ClientSession`` and classifies the answer.

    The session is injected so that tests and the command line choose its connector.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        params: ImportParams,
        settings: SendSettings,
        *,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self._session = session
        self._url = url
        # The query is sent exactly as encoded: left to yarl, it would be "requoted" (%40 back
        # to @, %2F to /...) into a form of the password that mask_secrets does not know.
        self._base_url = str(URL(url))
        self._secrets = (*params.secrets, *secrets)
        self._encode = encode_params(params)
        self._post = settings.method is Method.POST
        # A connection that cannot be made says so sooner than an answer that is slow.
        self._timeout = aiohttp.ClientTimeout(
            total=settings.timeout_s, sock_connect=min(settings.timeout_s, CONNECT_TIMEOUT_S)
        )
        self._ssl: bool | ssl.SSLContext = bool(settings.verify_tls)
        # A server gives the same few answers over and over ("|Retuen|1|Retuen|BackMsg_84"):
        # each short one is classified and masked once.
        self._answers: dict[tuple[str, bool], Outcome] = {}

    async def send(self, record: str) -> Outcome:
        query = self._encode(record)
        if not self._post and len(self._base_url) + 1 + len(query) > MAX_GET_URL_BYTES:
            # Sending it would only earn a 414 (or a 400) for this row, or worse, a proxy's
            # page: refuse the row here, and say what would carry it.
            return classify_trouble(
                Trouble.TOO_LARGE,
                f"the request would be {len(self._base_url) + 1 + len(query):,} bytes, "
                f"over the {MAX_GET_URL_BYTES:,} a server takes in a URL; use --method post",
            )
        return await self.send_query(query)

    async def probe(self) -> Outcome:
        """An Import call with an empty record: alive or not, and nothing imported."""
        return await self.send_query(self._encode(""))

    async def send_query(self, query: str, *, remote: bool = False) -> Outcome:
        """Send one call whose parameters are ``query`` (already URL-encoded) and classify
        the answer (``remote``: as for a ``source=http|ftp`` import); secrets are masked out
        of the message."""
        try:
            if self._post:
                request = self._session.post(
                    self._url,
                    data=query.encode("ascii"),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    timeout=self._timeout,
                    ssl=self._ssl,
                    allow_redirects=False,
                )
            else:
                request = self._session.get(
                    URL(f"{self._base_url}?{query}", encoded=True),
                    timeout=self._timeout,
                    ssl=self._ssl,
                    allow_redirects=False,
                )
            async with request as response:
                body = await response.text(errors="replace")
                if response.status == 200 and len(body) <= ANSWER_CACHE_CHARS:
                    cached = self._answers.get((body, remote))
                    if cached is not None:
                        return cached
                    outcome = self._masked(classify_http(200, body, remote=remote))
                    if len(self._answers) < ANSWER_CACHE_SIZE:
                        self._answers[body, remote] = outcome
                    return outcome
                outcome = classify_http(
                    response.status,
                    body,
                    retry_after=response.headers.get("Retry-After"),
                    remote=remote,
                )
        except aiohttp.ClientConnectorCertificateError as exc:
            # Waiting will not fix a certificate: the job stops.
            outcome = Outcome(
                OutcomeKind.FATAL,
                "TLS certificate",
                f"the server's certificate was refused ({exc.certificate_error}); "
                "fix it or use --insecure",
                trouble=Trouble.TLS,
            )
        except aiohttp.ClientSSLError as exc:
            outcome = classify_trouble(Trouble.TLS, _reason(exc))
        except aiohttp.ConnectionTimeoutError:
            outcome = classify_trouble(Trouble.REFUSED, "no connection in time")
        except aiohttp.ClientConnectorError as exc:
            outcome = classify_trouble(Trouble.REFUSED, f"cannot connect ({_reason(exc)})")
        except (TimeoutError, aiohttp.ServerTimeoutError):
            outcome = classify_trouble(Trouble.TIMEOUT, "no answer in time")
        except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as exc:
            # Not HTTP at all (another protocol on that port), or a broken response.
            outcome = classify_trouble(Trouble.NOT_AN_ANSWER, f"not HTTP ({_reason(exc)})")
        except aiohttp.ClientError as exc:
            outcome = classify_trouble(Trouble.DROPPED, f"connection lost ({_reason(exc)})")
        return self._masked(outcome)

    def _masked(self, outcome: Outcome) -> Outcome:
        message = self._mask(outcome.message) if self._secrets else outcome.message
        if outcome.trouble is Trouble.TOO_LARGE and not self._post and outcome.status:
            # The front end refused this request: in a URL, a long record is the usual cause.
            message = message[:120] + "; use --method post (the record goes in the body)"
        if message is outcome.message:
            return outcome
        return dataclasses.replace(outcome, message=message)

    def _mask(self, message: str) -> str:
        """``message`` without the password, whole or cut off at the end of the message."""
        cut = len(message) >= MESSAGE_LIMIT
        message = mask_secrets(message, self._secrets)
        if cut:
            # A message is cut at MESSAGE_LIMIT: a password across the cut is only partly
            # there, and mask_secrets cannot see it.
            for secret in self._secrets:
                for size in range(min(len(secret), len(message)) - 1, 0, -1):
                    if message.endswith(secret[:size]):
                        return message[:-size] + "***"
        return message
