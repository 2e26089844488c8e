"""The network side of sending: the ``Transport`` interface a dispatcher sends through, and
``HttpTransport``, its aiohttp implementation (one Import call → a classified ``Outcome``).

The transport is injected (by the library layer, or a test), so the dispatcher never knows
whether it talks HTTP, a test double, or a recording.

Every call to the target takes the same way (``route_for``): directly, or through the proxy
given (``--proxy``) or named by ``HTTPS_PROXY``/``HTTP_PROXY`` (``NO_PROXY`` and this
machine's own addresses are always reached directly); and is verified with the same trust
(``tls_context``: the default CAs, plus ``--ca-file``, or the system's with
``--system-trust``).
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import os
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from yarl import URL

from bulkimport.errors import ConfigError
from bulkimport.protocol import (
    MESSAGE_LIMIT,
    ImportParams,
    Outcome,
    OutcomeKind,
    Trouble,
    classify_http,
    classify_trouble,
    encode_params,
    get_line_bytes,
    mask_secrets,
    one_line,
    secret_forms,
)
from bulkimport.settings import DIRECT, Method, SendSettings, mask_url, parse_proxy

ANSWER_CACHE_CHARS = 200  # answers this short are classified once per transport...


ANSWER_CACHE_SIZE = 256  # ...up to this many different ones


CONNECT_TIMEOUT_S = 10.0  # a TCP connection that is not made by then will not be


#: The outcome codes of a certificate that was refused, by what is wrong with it.
CERT_UNTRUSTED = "TLS certificate"  # signed by an authority this machine does not trust
CERT_NAME = "TLS certificate name"  # valid, but for another host name
CERT_EXPIRED = "TLS certificate expired"  # expired, or not valid yet
# OpenSSL's verify codes (X509_V_ERR_*) for the last two.
_NAME_CODES = frozenset({62})  # HOSTNAME_MISMATCH
_DATE_CODES = frozenset({9, 10})  # CERT_NOT_YET_VALID, CERT_HAS_EXPIRED

#: Said on every run that sends by GET to a server that is not this machine.
GET_WARNING = (
    "warning: --method get: the password (or its MD5) goes into every request line, and so "
    "into the access logs of the server and of any proxy"
)
#: Said on every run with --insecure.
INSECURE_WARNING = (
    "warning: --insecure: TLS verification is off: anyone between here and the server can "
    "read the password and the leads"
)


@dataclass(frozen=True)
class Route:
    """How calls reach the target: through ``proxy`` (its URL, which may hold its user and
    password: never shown, see ``shown``), or directly. ``origin`` says what decided:
    ``--proxy``, ``HTTPS_PROXY``, ``no_proxy``, ``loopback``..."""

    proxy: str | None = field(default=None, repr=False)
    origin: str = ""

    @property
    def shown(self) -> str:
        """The proxy's URL with its user and password masked (``http://***@host:3128``)."""
        return mask_url(self.proxy) if self.proxy else ""

    @property
    def has_credentials(self) -> bool:
        return self.proxy is not None and "@" in self.proxy

    @property
    def secrets(self) -> tuple[str, ...]:
        """The proxy's password in the forms a message could hold it (as written in the
        URL, decoded, URL-encoded), and the ``Proxy-Authorization`` value made of it."""
        if self.proxy is None:
            return ()
        parts = urllib.parse.urlsplit(self.proxy)
        if parts.password is None:
            return ()
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password)
        basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        forms = {parts.password, *secret_forms(password), basic}
        return tuple(sorted((form for form in forms if form), key=len, reverse=True))

    def __str__(self) -> str:
        if self.proxy is None:
            return "directly" + (f" ({self.origin})" if self.origin else "")
        return f"the proxy {self.shown} ({self.origin})"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine (``localhost``, ``127.0.0.0/8``, ``::1``): a proxy
    elsewhere would reach its own loopback, never ours."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _env(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """``(variable, value)`` of ``name`` in lower case (as curl and urllib prefer it), else in
    upper case; None when neither is set to something."""
    for variable in (name.lower(), name.upper()):
        value = env.get(variable, "").strip()
        if value:
            return variable, value
    return None


def bypasses_proxy(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY``'s comma-separated list names ``host`` (on ``port``): ``*`` (all),
    a domain (``example.com`` or ``.example.com``: it and every name under it), a name with
    a port (``example.com:8080``), an IP address or a CIDR block (``10.0.0.0/8``)."""
    name = host.strip("[]").rstrip(".").lower()
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(name)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
                continue
            except ValueError:
                pass
        entry_host, entry_port = entry, None
        head, sep, tail = entry.rpartition(":")
        if sep and tail.isdigit() and (not head.count(":") or head.endswith("]")):
            entry_host, entry_port = head, int(tail)
        if entry_port is not None and entry_port != port:
            continue
        entry_host = entry_host.strip("[]").removeprefix("*").lstrip(".").rstrip(".")
        if entry_host and (name == entry_host or name.endswith("." + entry_host)):
            return True
    return False


def route_for(url: str, proxy: str | None, env: Mapping[str, str]) -> Route:
    """How calls to ``url`` go: through ``proxy`` (``--proxy``: a URL, or ``DIRECT``), else
    through the proxy ``HTTPS_PROXY`` (``HTTP_PROXY`` for an http:// URL) names in ``env``;
    directly for this machine's addresses, for hosts ``NO_PROXY`` lists (whichever proxy was
    given), with ``--proxy direct``, or when no proxy is set. A malformed variable is a
    ``ConfigError`` naming it (the proxy's password masked)."""
    target = URL(url)
    host = target.host or ""
    if is_loopback(host):
        return Route(None, "loopback")
    if proxy == DIRECT:
        return Route(None, "--proxy direct")
    found = _env(env, "no_proxy")
    if found is not None and bypasses_proxy(host, target.port, found[1]):
        return Route(None, found[0])
    if proxy is not None:
        variable, value = "--proxy", proxy
    else:
        found = _env(env, f"{target.scheme}_proxy")
        if found is None:
            return Route(None)
        variable, value = found
    try:
        return Route(parse_proxy(value), variable)
    except ValueError as exc:
        raise ConfigError(f"{variable}: {exc}") from None


def exposure_warnings(url: str, settings: SendSettings) -> list[str]:
    """The warnings a run sending to ``url`` with ``settings`` gives, every time: the
    password in every request line (``--method get``, unless the server is this machine),
    no TLS verification (``--insecure``)."""
    warnings = []
    if settings.method is Method.GET and not is_loopback(URL(url).host or ""):
        warnings.append(GET_WARNING)
    if not settings.verify_tls:
        warnings.append(INSECURE_WARNING)
    return warnings


def tls_context(settings: SendSettings) -> bool | ssl.SSLContext:
    """How the server's certificate is verified: not at all (``--insecure``), by aiohttp's
    default context (True), or by a context that also trusts ``--ca-file`` and, with
    ``--system-trust``, trusts what the operating system trusts (``truststore``)."""
    if not settings.verify_tls:
        return False
    if settings.ca_file is None and not settings.system_trust:
        return True
    context: ssl.SSLContext
    if settings.system_trust:
        try:
            import truststore
        except ImportError:
            raise ConfigError(
                "--system-trust needs the truststore package: pip install truststore"
            ) from None
        context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        context = ssl.create_default_context()
    if settings.ca_file is not None:
        try:
            context.load_verify_locations(cafile=settings.ca_file)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ConfigError(f"--ca-file {settings.ca_file}: cannot be used ({reason})") from None
    context.set_alpn_protocols(["http/1.1"])  # as aiohttp's own contexts
    return context


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

    async def other_method(self) -> Method | None:
        """Asked when the calls got no Import answer: the other HTTP method, if the server
        answers it (a server that takes GET only answers POST with a 405, a 404 or a page),
        else None. A transport with no methods says None."""
        return None


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
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._session = session
        self._url = url
        # The query is sent exactly as encoded: left to yarl, it would be "requoted" (%40 back
        # to @, %2F to /...) into a form of the password that mask_secrets does not know.
        self._base_url = str(URL(url))
        #: How the calls go: directly, or through a proxy (``env``: where HTTPS_PROXY,
        #: HTTP_PROXY and NO_PROXY are read, the process's environment by default).
        self.route = route_for(url, settings.proxy, os.environ if env is None else env)
        self._proxy = URL(self.route.proxy) if self.route.proxy is not None else None
        self._secrets = (*params.secrets, *secrets, *self.route.secrets)
        self._encode = encode_params(params)
        # The call that asks whether the server takes the other method: an empty record and
        # an empty password (what it answers, BackMsg_01, is in its protocol all the same):
        # a GET of it puts no password into the request line.
        self._blank = urllib.parse.urlencode(
            [
                (name, "" if name == "password" else value)
                for name, value in params.request_params("")
            ]
        )
        self._post = settings.method is Method.POST
        self._max_get_bytes = settings.max_get_bytes
        # A plain http:// call through a proxy names the whole URL in its request line.
        self._absolute = self._proxy is not None and URL(url).scheme == "http"
        # A connection that cannot be made says so sooner than an answer that is slow.
        self._timeout = aiohttp.ClientTimeout(
            total=settings.timeout_s, sock_connect=min(settings.timeout_s, CONNECT_TIMEOUT_S)
        )
        self._ssl: bool | ssl.SSLContext = tls_context(settings)
        # A server gives the same few answers over and over ("|Retuen|1|Retuen|BackMsg_84"):
        # each short one is classified and masked once.
        self._answers: dict[tuple[str, bool], Outcome] = {}

    async def send(self, record: str) -> Outcome:
        query = self._encode(record)
        if not self._post:
            size = get_line_bytes(self._base_url, query, absolute=self._absolute)
            if size > self._max_get_bytes:
                # Sending it would only earn a 414 (or a 400) for this row, or worse, a
                # proxy's page: refuse the row here, and say what would carry it.
                return classify_trouble(
                    Trouble.TOO_LARGE,
                    f"the request line would be {size:,} bytes, over the "
                    f"{self._max_get_bytes:,} the server takes (--max-get-bytes); use "
                    "--method post (the record goes in the body)",
                )
        return await self.send_query(query)

    async def probe(self) -> Outcome:
        """An Import call with an empty record: alive or not, and nothing imported."""
        return await self.send_query(self._encode(""))

    async def other_method(self) -> Method | None:
        """Whether the server answers the other method (GET for POST, POST for GET): one
        call with an empty record and an empty password, which imports nothing."""
        other = Method.GET if self._post else Method.POST
        outcome = await self.send_query(self._blank, method=other)
        return other if outcome.answered else None

    async def send_query(
        self, query: str, *, remote: bool = False, method: Method | None = None
    ) -> Outcome:
        """Send one call whose parameters are ``query`` (already URL-encoded) and classify
        the answer (``remote``: as for a ``source=http|ftp`` import; ``method``: another
        than the settings'); secrets are masked out of the message."""
        post = self._post if method is None else method is Method.POST
        try:
            if post:
                request = self._session.post(
                    self._url,
                    data=query.encode("ascii"),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    timeout=self._timeout,
                    ssl=self._ssl,
                    proxy=self._proxy,
                    allow_redirects=False,
                )
            else:
                request = self._session.get(
                    URL(f"{self._base_url}?{query}", encoded=True),
                    timeout=self._timeout,
                    ssl=self._ssl,
                    proxy=self._proxy,
                    allow_redirects=False,
                )
            async with request as response:
                body = await response.text(errors="replace")
                if response.status == 407 and self._proxy is not None:
                    # The proxy's answer to a plain http:// call, not the server's.
                    return self._proxy_refused(407, response.reason)
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
            return self._certificate_refused(exc)
        except aiohttp.ClientSSLError as exc:
            outcome = classify_trouble(Trouble.TLS, _reason(exc))
        except aiohttp.ConnectionTimeoutError:
            if self._proxy is not None:
                return self._proxy_trouble("no connection in time")
            outcome = classify_trouble(Trouble.REFUSED, "no connection in time")
        except aiohttp.ClientConnectorError as exc:
            # Through a proxy, every connection made is one to the proxy.
            if self._proxy is not None:
                return self._proxy_trouble(_reason(exc))
            outcome = classify_trouble(Trouble.REFUSED, f"cannot connect ({_reason(exc)})")
        except aiohttp.ClientHttpProxyError as exc:
            # The proxy's answer to CONNECT (an https:// call): the server was not asked.
            return self._proxy_refused(exc.status, exc.message)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            outcome = classify_trouble(Trouble.TIMEOUT, "no answer in time")
        except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as exc:
            # Not HTTP at all (another protocol on that port), or a broken response.
            outcome = classify_trouble(Trouble.NOT_AN_ANSWER, f"not HTTP ({_reason(exc)})")
        except aiohttp.ClientError as exc:
            outcome = classify_trouble(Trouble.DROPPED, f"connection lost ({_reason(exc)})")
        return self._masked(outcome)

    def _certificate_refused(self, exc: aiohttp.ClientConnectorCertificateError) -> Outcome:
        """A certificate that was refused: whose (the server's, or an https:// proxy's), and
        what is wrong with it (the outcome's code); ``messages.certificate_advice`` says
        what to do."""
        error = exc.certificate_error
        verify_code = getattr(error, "verify_code", None)
        code = (
            CERT_NAME
            if verify_code in _NAME_CODES
            else CERT_EXPIRED
            if verify_code in _DATE_CODES
            else CERT_UNTRUSTED
        )
        reason = self._mask(getattr(error, "verify_message", None) or _reason(error))
        proxy = self._proxy
        if proxy is not None and proxy.scheme == "https" and exc.host == proxy.host:
            whose = f"{self.route}'s certificate"
        else:
            whose = "the server's certificate"
            if proxy is not None:
                whose += f" (through {self.route})"
        return Outcome(
            OutcomeKind.FATAL, code, one_line(f"{whose} was refused: {reason}"), trouble=Trouble.TLS
        )

    # The outcomes below are made of the route (its password masked already) and of what
    # came back, masked before it is put in: the message as a whole is not masked again, so
    # that a short password cannot take letters out of the words around it.

    def _proxy_trouble(self, reason: str) -> Outcome:
        """The proxy cannot be reached (yet): a transient trouble that names it."""
        return classify_trouble(
            Trouble.PROXY, f"cannot connect to {self.route}: {self._mask(reason)}"
        )

    def _proxy_refused(self, status: int, reason: str | None) -> Outcome:
        """The proxy answered instead of passing the call on: 407 (its login), another 4xx
        (its rules) stop the job; a 5xx (it could not reach the server) is the server's
        trouble, as a refused connection would be."""
        target = URL(self._url)
        where = f"{target.host}:{target.port}"
        status_text = f"HTTP {status}" + (f" {self._mask(reason)}" if reason else "")
        if status >= 500:
            return classify_trouble(
                Trouble.REFUSED, f"{self.route} could not reach {where} ({status_text})"
            )
        if status == 407:
            message = (
                f"{self.route} refused its user and password ({status_text})"
                if self.route.has_credentials
                else f"{self.route} wants a user and password ({status_text}): give them "
                "in its URL, http://USER:PASSWORD@HOST:PORT"
            )
        else:
            message = f"{self.route} refused to connect to {where} ({status_text})"
        return Outcome(
            OutcomeKind.FATAL, "proxy", one_line(message), status=status, trouble=Trouble.PROXY
        )

    def _masked(self, outcome: Outcome) -> Outcome:
        message = self._mask(outcome.message) if self._secrets else outcome.message
        if outcome.trouble is Trouble.TOO_LARGE and not self._post and outcome.status:
            # The front end refused this request: in a URL, a long record is the usual cause.
            message = message[:120] + "; use --method post (the record goes in the body)"
        preamble = outcome.preamble
        if preamble and self._secrets:
            preamble = self._mask(preamble)  # PHP's notices may quote the request
        if message is outcome.message and preamble is outcome.preamble:
            return outcome
        return dataclasses.replace(outcome, message=message, preamble=preamble)

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
