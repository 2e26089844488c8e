"""What came back from one call, classified. Pure: no I/O.

- ``parse_answer``: the ``|Retuen|CODE|Retuen|MESSAGE`` body, found after what a PHP server
  may print before it (BOMs, whitespace, PHP's notices and warnings), ``None`` for anything
  else.
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

PREAMBLE_LIMIT = 200
# The CODE slot is 1 or 2; a server that puts something else there (``|Retuen|07|Retuen|``)
# made a near-answer: read only for a fatal code in its message.
_ANSWER_RE = re.compile(r"\|Retuen\|([^|\r\n<>]{0,16})\|Retuen\|(.*)\Z", re.DOTALL)
# What PHP prints before (or after) the script's output when display_errors is on: a UTF-8 BOM
# of each included file saved "with BOM", whitespace, and its non-fatal diagnostics, plain
# ("\nNotice: Undefined index: x in /f.php on line 3\n") or with html_errors
# ("<br />\n<b>Notice</b>:  Undefined index: x in <b>/f.php</b> on line <b>3</b><br />\n").
# Anything else (an HTML page that holds an answer somewhere) is not an answer.
_DIAGNOSTIC = (
    r"(?:<b>)?(?:PHP\ )?(?:Notice|Warning|Deprecated|Strict\ Standards)(?:</b>)?:[ \t]+"
    r"[^\n]*?\ on\ line\ (?:<b>)?\d+(?:</b>)?"
)
_NOISE_RE = re.compile(
    rf"(?:[\s\ufeff]+|(?:<br\s*/?>\s*)?{_DIAGNOSTIC}(?:[ \t]*<br\s*/?>)?)+", re.VERBOSE
)
_DIAGNOSTIC_LINE_RE = re.compile(_DIAGNOSTIC, re.VERBOSE)
_BACKMSG_RE = re.compile(r"BackMsg_(\d+)")
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_H1_RE = re.compile(r"<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")
_BR_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SPACE_RE = re.compile(r"\s+")


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
    # Another HTTP 5xx (or 408): a 500 may come of PHP dying after the row was saved.
    SERVER_ERROR = "server-error"
    # A response whose body is no Import answer (an HTML page, PHP's fatal error after the
    # row was saved): maybe processed.
    NOT_AN_ANSWER = "not-an-answer"
    CLIENT_ERROR = "client-error"  # HTTP 4xx: the request itself was refused (path, login)
    # HTTP 400/413/414/431, or a GET too long to send: the front end refuses this request
    # (too long, a header too large, malformed), not the job: the row is rejected.
    TOO_LARGE = "too-large"
    # nginx's 400 "The plain HTTP request was sent to HTTPS port": http:// to a TLS port;
    # never processed, and wrong for every row (the URL wants https://).
    HTTPS_PORT = "https-port"

    @property
    def maybe_processed(self) -> bool:
        """Whether the request may have reached the server and been imported: no answer
        came after it left, or the server (PHP) failed after it may have saved the row."""
        return self in _MAYBE_PROCESSED


_MAYBE_PROCESSED = frozenset(
    {
        Trouble.DROPPED,
        Trouble.TIMEOUT,
        Trouble.GATEWAY,
        Trouble.SERVER_ERROR,
        Trouble.NOT_AN_ANSWER,
    }
)
# Statuses of a server error that say the request was not run: 408 (it did not arrive whole
# in time), 501 (the method is not implemented), 505 (the HTTP version).
_NOT_RUN_STATUSES = frozenset({408, 501, 505})
_HTTPS_PORT_TEXT = "The plain HTTP request was sent to HTTPS port"


@dataclass(frozen=True)
class Answer:
    """An answer body: ``success`` for CODE 1, the message, and the BackMsg codes in it.

    ``preamble``: what the server printed around the answer (a BOM, PHP's notices), as one
    line of at most ``PREAMBLE_LIMIT`` characters; empty for a clean answer. ``slot``: the
    CODE as sent, ``1`` or ``2`` in a valid answer; anything else makes a near-answer
    (``near``), which only a fatal code in its message makes worth reading.
    """

    success: bool
    message: str
    codes: tuple[int, ...]
    preamble: str = ""
    slot: str = ""

    @property
    def near(self) -> bool:
        """The CODE slot holds neither 1 nor 2 (``|Retuen|07|Retuen|BackMsg_07``)."""
        return self.slot not in ("", "1", "2")


def format_answer(success: bool, message: str) -> str:
    """The body the server sends: ``|Retuen|1|Retuen|message`` (the sandbox uses this)."""
    return f"|{ANSWER_MARKER}|{1 if success else 2}|{ANSWER_MARKER}|{message}"


def parse_answer(body: str) -> Answer | None:
    """Parse an answer body; ``None`` when it is no answer (HTML, empty, a proxy's).

    The answer may follow BOMs, whitespace and PHP's diagnostics, and be followed by PHP's
    diagnostics; nothing else. A CODE other than 1 or 2 gives a near-answer (``Answer.near``).
    """
    noise = _NOISE_RE.match(body)
    start = noise.end() if noise is not None else 0
    match = _ANSWER_RE.match(body, start)
    if match is None:
        return None
    message, trailer = _cut_trailer(match.group(2).rstrip())
    codes = tuple(int(code) for code in _BACKMSG_RE.findall(message))
    slot = match.group(1)
    return Answer(
        success=slot == "1",
        message=message,
        codes=codes,
        preamble=_preamble(body[:start], trailer),
        slot=slot,
    )


def _cut_trailer(message: str) -> tuple[str, str]:
    """``message`` without the PHP diagnostics on its last lines, and those lines."""
    if " on line " not in message:  # a clean message never has PHP's words
        return message, ""
    lines = message.split("\n")
    keep = len(lines)
    while keep > 1:
        line = _BR_RE.sub("", lines[keep - 1]).strip(" \t\r\ufeff")
        if line and _DIAGNOSTIC_LINE_RE.fullmatch(line) is None:
            break
        keep -= 1
    if keep == len(lines):
        return message, ""
    kept = "\n".join(lines[:keep])
    end = len(kept)
    while True:  # the "<br />" that opened the first diagnostic, and whitespace
        while end and kept[end - 1].isspace():
            end -= 1
        tag = next((t for t in ("<br />", "<br/>", "<br>") if kept.endswith(t, 0, end)), "")
        if not tag:
            break
        end -= len(tag)
    return kept[:end], "\n".join(lines[keep:])


def _preamble(before: str, after: str) -> str:
    """What came around the answer as one line; BOMs shown by name, since they are invisible."""
    parts = []
    for label, text in (("", before), ("after the answer: ", after)):
        boms = text.count("\ufeff")
        text = _BR_RE.sub(" ", text.replace("\ufeff", ""))
        text = one_line(html.unescape(_TAG_RE.sub("", text)), PREAMBLE_LIMIT)
        if boms:
            text = ("a BOM" if boms == 1 else f"{boms} BOMs") + (f", {text}" if text else "")
        if text:
            parts.append(label + text)
    return "; ".join(parts)[:PREAMBLE_LIMIT]


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
    # What the server printed around its answer (a BOM, PHP's notices), one line; "" if
    # nothing: the answer is read all the same, and the job says once what came with it.
    preamble: str = ""

    @property
    def answered(self) -> bool:
        """The server answered in the Import protocol (whatever it said)."""
        return self.trouble is None

    @property
    def maybe_processed(self) -> bool:
        """No answer came, but the request may have reached the server and been imported:
        a timeout or a drop after it left, a proxy's 502/504, a 500 or a page that is no
        answer (PHP may have died after saving the row)."""
        return (
            self.trouble is not None
            and self.trouble.maybe_processed
            and self.status not in _NOT_RUN_STATUSES
        )

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
    unknown CODE 2 rejects the row and keeps the message; an unknown CODE 1 is done. (A
    near-answer is ``classify_http``'s to judge.)
    """
    message = one_line(answer.message)
    codes = answer.codes
    preamble = answer.preamble
    duplicate = _first(codes, OutcomeKind.DUPLICATE, remote)
    if duplicate is not None:
        code = f"BackMsg_{duplicate:02d}"
        return Outcome(OutcomeKind.DUPLICATE, code, message, backmsg=duplicate, preamble=preamble)
    first = codes[0] if codes else None
    if answer.success:
        done = _first(codes, OutcomeKind.DONE, remote)
        number = done if done is not None else first
        code = _code_text(number, "ok")
        return Outcome(OutcomeKind.DONE, code, message, backmsg=number, preamble=preamble)
    for kind in (OutcomeKind.FATAL, OutcomeKind.TRANSIENT, OutcomeKind.REJECTED):
        found = _first(codes, kind, remote)
        if found is not None:
            code = f"BackMsg_{found:02d}"
            return Outcome(kind, code, message, backmsg=found, preamble=preamble)
    code = _code_text(first, "error")
    return Outcome(OutcomeKind.REJECTED, code, message, backmsg=first, preamble=preamble)


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
    wrong for every row, and so is nginx's 400 for http:// to its HTTPS port
    (``HTTPS_PORT``). Other 400s and 413/414/431 refuse this one request (the row; when every
    row gets one, the error budget stops the job). 429/503 throttle,
    502/504 are a proxy's (the upstream may have processed the call), 408 and other 5xx are
    transient (a 500 may come after the row was saved). A 2xx whose body is no Import answer
    is transient too (``NOT_AN_ANSWER``, maybe processed); a near-answer
    (``|Retuen|07|Retuen|BackMsg_07``) is fatal when its message holds a fatal code, else no
    answer.
    """
    message = one_line(body)
    code = f"HTTP {status}"
    if status == 400 and _HTTPS_PORT_TEXT in body:
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
    if answer is not None and answer.near:
        # A near-answer is read for a fatal code only: a wrong password is wrong however
        # the server wrote it; anything else in it is no answer.
        fatal = _first(answer.codes, OutcomeKind.FATAL, remote)
        if fatal is not None:
            return Outcome(
                OutcomeKind.FATAL,
                f"BackMsg_{fatal:02d}",
                one_line(answer.message),
                backmsg=fatal,
                status=status,
                preamble=answer.preamble,
            )
        answer = None
    if answer is None:
        text = message or "(an empty body)"
        trouble = Trouble.NOT_AN_ANSWER
        return Outcome(OutcomeKind.TRANSIENT, "not an answer", text, None, None, status, trouble)
    outcome = classify_answer(answer, remote=remote)
    return Outcome(
        outcome.kind,
        outcome.code,
        outcome.message,
        None,
        outcome.backmsg,
        status,
        preamble=answer.preamble,
    )


def classify_trouble(trouble: Trouble, message: str) -> Outcome:
    """The outcome of a call that got no HTTP response (``REFUSED``, ``TLS``, ``DROPPED``,
    ``TIMEOUT``), or a request refused before sending (``TOO_LARGE``)."""
    kind = OutcomeKind.REJECTED if trouble is Trouble.TOO_LARGE else OutcomeKind.TRANSIENT
    code = "too long for GET" if trouble is Trouble.TOO_LARGE else trouble.value
    return Outcome(kind, code, one_line(message), trouble=trouble)
