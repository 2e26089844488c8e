"""What came back from one call, classified. Pure: no I/O.

- ``parse_answer``: the ``|Retuen|CODE|Retuen|MESSAGE`` body (``None`` for anything else).
- ``classify_answer`` / ``classify_http``: an ``Outcome``: what it means for the row
  (``kind``), the facts it rests on as fields (``backmsg``, ``status``, ``trouble``), and a
  short ``code`` and one-line ``message`` to keep and show.
- ``classify_trouble``: the outcome of a call that got no HTTP response at all.

``Trouble`` says why a call got no Import answer; the dispatcher's job-level decisions (an
outage, a URL that never answered, throttling, an unknown outcome) read it, never the text.
"""

from __future__ import annotations

import email.utils
import html
import re
import time
from dataclasses import dataclass
from enum import StrEnum

from bulkimport.protocol.codes import CODES, Fix, OutcomeKind

ANSWER_MARKER = "Retuen"  # the vendor's spelling, part of the protocol
MESSAGE_LIMIT = 200
MAX_RETRY_AFTER_S = 3600.0

_ANSWER_RE = re.compile(r"\A\s*\|Retuen\|([12])\|Retuen\|(.*?)\s*\Z", re.DOTALL)
_BACKMSG_RE = re.compile(r"BackMsg_(\d+)")
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_H1_RE = re.compile(r"<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")
_SPACE_RE = re.compile(r"\s+")
_HTTPS_PORT_RE = re.compile(r"plain HTTP request was sent to HTTPS port", re.IGNORECASE)


class Trouble(StrEnum):
    """Why a call got no Import answer. The value is the short code kept with the row."""

    REFUSED = "refused"  # no connection: refused, unknown host, unreachable; never sent
    # The proxy the calls go through: not reached, or it refused to pass them on (its login,
    # its rules); never sent to the server.
    PROXY = "proxy"
    TLS = "tls"  # the TLS handshake failed (a certificate, https to a plain port); never sent
    DROPPED = "dropped"  # the connection broke after the request left: maybe processed
    TIMEOUT = "timeout"  # no answer in time after the request left: maybe processed
    THROTTLED = "throttled"  # HTTP 429 or 503: the server (or its proxy) asks us to slow down
    GATEWAY = "gateway"  # HTTP 502 or 504 from a proxy: the upstream may have processed it
    SERVER_ERROR = "server-error"  # another HTTP 5xx (or 408)
    NOT_AN_ANSWER = "not-an-answer"  # a response whose body is no Import answer (HTML...)
    CLIENT_ERROR = "client-error"  # HTTP 4xx: the request itself was refused (path, login)
    # HTTP 400/413/414/431, or a GET too long to send: the front end refuses this request
    # (too long, a header too large, malformed), not the job: the row is rejected.
    TOO_LARGE = "too-large"
    # HTTP 400 "The plain HTTP request was sent to HTTPS port": http:// to a port that speaks
    # HTTPS (nginx's answer); the URL is wrong for every row, never the row itself.
    HTTPS_PORT = "https-port"

    @property
    def maybe_processed(self) -> bool:
        """Whether the request may have reached the server and been imported."""
        return self in (Trouble.DROPPED, Trouble.TIMEOUT, Trouble.GATEWAY)


@dataclass(frozen=True)
class Answer:
    """A valid answer body: ``success`` for CODE 1, the message, and the BackMsg codes in it."""

    success: bool
    message: str
    codes: tuple[int, ...]


def format_answer(success: bool, message: str) -> str:
    """The body the server sends: ``|Retuen|1|Retuen|message`` (the sandbox uses this)."""
    return f"|{ANSWER_MARKER}|{1 if success else 2}|{ANSWER_MARKER}|{message}"


def parse_answer(body: str) -> Answer | None:
    """Parse an answer body; ``None`` when it is not a valid answer (HTML, empty, a proxy's)."""
    match = _ANSWER_RE.match(body)
    if match is None:
        return None
    message = match.group(2)
    codes = tuple(int(code) for code in _BACKMSG_RE.findall(message))
    return Answer(success=match.group(1) == "1", message=message, codes=codes)


@dataclass(frozen=True)
class Outcome:
    """The classified result of one call.

    ``kind`` decides the row; ``backmsg`` (the code that decided, when the server answered
    in its protocol), ``status`` (the HTTP status, when there was a response) and
    ``trouble`` (why there was no Import answer, if so) are the facts behind it. ``code`` is
    short and stable (``BackMsg_84``, ``HTTP 503``, ``timeout``) and ``message`` one line (at
    most ``MESSAGE_LIMIT`` characters, never holding a secret once the transport masked it).
    """

    kind: OutcomeKind
    code: str
    message: str = ""
    retry_after_s: float | None = None
    backmsg: int | None = None
    status: int | None = None
    trouble: Trouble | None = None

    @property
    def answered(self) -> bool:
        """The server answered in the Import protocol (whatever it said)."""
        return self.trouble is None

    @property
    def maybe_processed(self) -> bool:
        """No answer came, but the request may have reached the server and been imported."""
        return self.trouble is not None and self.trouble.maybe_processed

    @property
    def fix(self) -> Fix | None:
        """Where to look when this outcome stops the job."""
        if self.backmsg is not None:
            code = CODES.get(self.backmsg)
            return code.fix if code is not None else None
        return None


def _first(codes: tuple[int, ...], kind: OutcomeKind, remote: bool) -> int | None:
    return next(
        (n for n in codes if n in CODES and CODES[n].verdict_for(remote=remote) is kind), None
    )


def classify_answer(answer: Answer, *, remote: bool = False) -> Outcome:
    """Classify a valid answer, following the code table (``codes.CODES``).

    Duplicates win over success codes (the server kept its record); for CODE 2, fatal codes
    win over transient, transient over rejected (a wrong password is wrong for every row). An
    unknown CODE 2 rejects the row and keeps the message; an unknown CODE 1 is done.
    """
    message = one_line(answer.message)
    codes = answer.codes
    duplicate = _first(codes, OutcomeKind.DUPLICATE, remote)
    if duplicate is not None:
        return Outcome(OutcomeKind.DUPLICATE, f"BackMsg_{duplicate:02d}", message, None, duplicate)
    first = codes[0] if codes else None
    if answer.success:
        done = _first(codes, OutcomeKind.DONE, remote)
        number = done if done is not None else first
        return Outcome(OutcomeKind.DONE, _code_text(number, "ok"), message, None, number)
    for kind in (OutcomeKind.FATAL, OutcomeKind.TRANSIENT, OutcomeKind.REJECTED):
        found = _first(codes, kind, remote)
        if found is not None:
            return Outcome(kind, f"BackMsg_{found:02d}", message, None, found)
    return Outcome(OutcomeKind.REJECTED, _code_text(first, "error"), message, None, first)


def _code_text(number: int | None, default: str) -> str:
    return f"BackMsg_{number:02d}" if number is not None else default


def parse_retry_after(value: str | None, *, now_s: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    ``None`` when absent or unreadable; clamped to ``[0, MAX_RETRY_AFTER_S]``.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now_s is None else now_s)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` as one line of at most ``limit`` characters: an HTML page as its title (or
    first heading), anything else with its whitespace folded."""
    if "<" in text and ">" in text:
        found = _TITLE_RE.search(text) or _H1_RE.search(text)
        if found is not None:
            text = html.unescape(_TAG_RE.sub(" ", found.group(1)))
        elif _TAG_RE.search(text):
            text = html.unescape(_TAG_RE.sub(" ", text))
    return _SPACE_RE.sub(" ", text).strip()[:limit]


def looks_like_html(body: str) -> bool:
    head = body.lstrip()[:200].lower()
    return head.startswith(("<!doctype", "<html", "<head", "<body", "<?xml")) or "<html" in head


def classify_http(
    status: int,
    body: str,
    *,
    retry_after: str | None = None,
    remote: bool = False,
    now_s: float | None = None,
) -> Outcome:
    """Classify a whole HTTP response: the status first, then the answer body.

    401/403/404 (and any 4xx that waiting cannot fix) are fatal: the URL or the login is
    wrong for every row. 400/413/414/431 refuse this one request (the row; when every row
    gets one, the error budget stops the job). 429/503 throttle,
    502/504 are a proxy's (the upstream may have processed the call), 408 and other 5xx are
    transient. A 2xx whose body is no Import answer is transient too (``NOT_AN_ANSWER``).
    """
    message = one_line(body)
    code = f"HTTP {status}"
    if status == 400 and _HTTPS_PORT_RE.search(body):
        return Outcome(OutcomeKind.FATAL, code, message, status=status, trouble=Trouble.HTTPS_PORT)
    if status in (400, 413, 414, 431):
        return Outcome(
            OutcomeKind.REJECTED, code, message, status=status, trouble=Trouble.TOO_LARGE
        )
    if status in (429, 503):
        wait_s = parse_retry_after(retry_after, now_s=now_s)
        return Outcome(
            OutcomeKind.TRANSIENT, code, message, wait_s, None, status, Trouble.THROTTLED
        )
    if status in (502, 504):
        return Outcome(OutcomeKind.TRANSIENT, code, message, None, None, status, Trouble.GATEWAY)
    if status == 408 or status >= 500:
        trouble = Trouble.SERVER_ERROR
        return Outcome(OutcomeKind.TRANSIENT, code, message, None, None, status, trouble)
    if status >= 400:
        return Outcome(OutcomeKind.FATAL, code, message, None, None, status, Trouble.CLIENT_ERROR)
    answer = parse_answer(body) if status == 200 else None
    if answer is None:
        text = message or "(an empty body)"
        trouble = Trouble.NOT_AN_ANSWER
        return Outcome(OutcomeKind.TRANSIENT, "not an answer", text, None, None, status, trouble)
    outcome = classify_answer(answer, remote=remote)
    return Outcome(outcome.kind, outcome.code, outcome.message, None, outcome.backmsg, status)


def classify_trouble(trouble: Trouble, message: str) -> Outcome:
    """The outcome of a call that got no HTTP response (``REFUSED``, ``TLS``, ``DROPPED``,
    ``TIMEOUT``), or a request refused before sending (``TOO_LARGE``)."""
    kind = OutcomeKind.REJECTED if trouble is Trouble.TOO_LARGE else OutcomeKind.TRANSIENT
    code = "too long for GET" if trouble is Trouble.TOO_LARGE else trouble.value
    return Outcome(kind, code, one_line(message), trouble=trouble)
