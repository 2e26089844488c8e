"""The Import API as bulkimport speaks it: pure functions, no I/O.

- ``ImportParams``: the fixed settings of one target; ``request_params`` builds the 22 ordered
  parameters (``EVENT`` and the 21 of the Import event) for one call.
- ``encode_record`` / ``decode_record``: one record as ``field=value||field=value``.
- ``parse_answer``: the ``|Retuen|CODE|Retuen|MESSAGE`` body.
- ``classify_answer`` / ``classify_http``: what an answer means for the row (done, duplicate,
  rejected, transient, fatal), following the table in the README.
- ``mask_secrets``: remove a password (and its MD5) from any text before it is kept.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bulkimport.errors import RecordError

ENDPOINT_PATH = "/asterccinterfaces"

#: Every parameter of the Import event, in the documented order. All must be sent.
PARAMETER_NAMES: tuple[str, ...] = (
    "EVENT",
    "orgidentity",
    "usertype",
    "user",
    "pwdtype",
    "password",
    "modeltype",
    "model_id",
    "source",
    "context",
    "source_user",
    "source_pwd",
    "exetime",
    "delrow",
    "phone_field",
    "priority_field",
    "dialtime_field",
    "emptyagent",
    "resetstatus",
    "dupway",
    "dupdiallist",
    "changepackage",
)

RECORD_SEPARATOR = "||"
ANSWER_MARKER = "Retuen"  # the vendor's spelling, part of the protocol


class UserType(StrEnum):
    AGENT = "agent"
    ACCOUNT = "account"


class PasswordType(StrEnum):
    PLAINTEXT = "plaintext"
    MD5 = "md5"


class DupWay(StrEnum):
    UPDATE = "update"
    SKIP = "skip"


class DupDialList(StrEnum):
    IGNORE_DUPLICATE = "ignoreDuplicate"
    ALL = "all"
    IGNORE_SUCCESS = "ignoreSuccess"


class ChangePackage(StrEnum):
    SKIP = "skip"
    UNASSIGN_TO_CURRENT = "unassignToCurrent"
    REASSIGN_TO_CURRENT = "reassignToCurrent"


class Source(StrEnum):
    DATA = "data"
    HTTP = "http"
    FTP = "ftp"


def md5_hex(text: str) -> str:
    """The lowercase hex MD5 of ``text`` (UTF-8), as ``pwdtype=md5`` expects."""
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def parse_yes_no(value: str) -> bool:
    """``yes`` / ``no`` (empty: no), as the server reads ``emptyagent`` and ``resetstatus``."""
    if value not in ("yes", "no", ""):
        raise ValueError(f"{value!r} is not yes or no")
    return value == "yes"


@dataclass(frozen=True)
class ImportOptions:
    """What the server does with a record besides storing it: the dial list, and duplicates.

    The client sends these with every call; the sandbox reads them back with
    ``from_params``.
    """

    phone_field: str = ""
    priority_field: str = ""
    dialtime_field: str = ""
    dupway: DupWay = DupWay.SKIP
    dupdiallist: DupDialList = DupDialList.IGNORE_DUPLICATE
    changepackage: ChangePackage = ChangePackage.SKIP
    emptyagent: bool = False
    resetstatus: bool = False

    def to_params(self) -> dict[str, str]:
        """The wire values of the eight parameters."""
        return {
            "phone_field": self.phone_field,
            "priority_field": self.priority_field,
            "dialtime_field": self.dialtime_field,
            "emptyagent": yes_no(self.emptyagent),
            "resetstatus": yes_no(self.resetstatus),
            "dupway": self.dupway.value,
            "dupdiallist": self.dupdiallist.value,
            "changepackage": self.changepackage.value,
        }

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ImportOptions:
        """Read the wire values back (an empty value means the default); ``ValueError`` for
        a value that is not one of the documented ones."""
        return cls(
            phone_field=params["phone_field"],
            priority_field=params["priority_field"],
            dialtime_field=params["dialtime_field"],
            dupway=DupWay(params["dupway"] or DupWay.SKIP),
            dupdiallist=DupDialList(params["dupdiallist"] or DupDialList.IGNORE_DUPLICATE),
            changepackage=ChangePackage(params["changepackage"] or ChangePackage.SKIP),
            emptyagent=parse_yes_no(params["emptyagent"]),
            resetstatus=parse_yes_no(params["resetstatus"]),
        )


@dataclass(frozen=True)
class ImportParams:
    """The settings of one Import target that are the same for every call.

    ``password`` is the plain password as the user gave it; with ``pwdtype=md5`` its MD5 is
    sent instead. It is excluded from ``repr`` so that it cannot leak into a log or traceback.
    """

    org: str
    user: str
    password: str = field(repr=False)
    campaign: str
    usertype: UserType = UserType.ACCOUNT
    pwdtype: PasswordType = PasswordType.PLAINTEXT
    options: ImportOptions = field(default_factory=ImportOptions)

    @property
    def password_sent(self) -> str:
        """The value of the ``password`` parameter."""
        if self.pwdtype is PasswordType.MD5:
            return md5_hex(self.password)
        return self.password

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every form of the password that must never be kept or shown."""
        return secret_forms(self.password)

    def request_params(
        self,
        context: str,
        *,
        source: Source = Source.DATA,
        source_user: str = "",
        source_pwd: str = "",
        exetime: str = "",
        delrow: str = "",
    ) -> list[tuple[str, str]]:
        """The 22 parameters of one call, in order, unencoded (the HTTP client encodes them)."""
        values = {
            "EVENT": "Import",
            "orgidentity": self.org,
            "usertype": self.usertype.value,
            "user": self.user,
            "pwdtype": self.pwdtype.value,
            "password": self.password_sent,
            "modeltype": "Campaign",
            "model_id": self.campaign,
            "source": source.value,
            "context": context,
            "source_user": source_user,
            "source_pwd": source_pwd,
            "exetime": exetime,
            "delrow": delrow,
            **self.options.to_params(),
        }
        return [(name, values[name]) for name in PARAMETER_NAMES]


def encode_params(params: ImportParams) -> Callable[[str], str]:
    """A function that gives the URL-encoded query (or form body) of one call for a record.

    Every value is encoded by ``urllib.parse.urlencode`` (``+`` for a space, ``%XX`` for the
    rest), so a record holding ``&password=x`` stays inside ``context``. The parameters before
    and after ``context`` are the same for every call and are encoded once.
    """
    ordered = params.request_params("")
    split = PARAMETER_NAMES.index("context")
    head = urllib.parse.urlencode(ordered[:split])
    tail = urllib.parse.urlencode(ordered[split + 1 :])
    quote = urllib.parse.quote_plus

    def encode(record: str) -> str:
        return f"{head}&context={quote(record)}&{tail}"

    return encode


def secret_forms(password: str) -> tuple[str, ...]:
    """The password as given, its MD5, and their URL-encoded forms (empty: nothing to hide)."""
    if not password:
        return ()
    forms = {password, md5_hex(password)}
    forms |= {urllib.parse.quote_plus(f) for f in list(forms)}
    forms |= {urllib.parse.quote(f, safe="") for f in list(forms)}
    # Longest first so that a form containing another is masked whole.
    return tuple(sorted(forms, key=len, reverse=True))


# The value of a password parameter echoed in a server's page (an error page that shows the
# request line, a proxy's message), in whatever form it was cut or re-encoded.
_SECRET_PARAMETER = re.compile(r"\b(password|source_pwd)=[^&\s\"'<>]*")


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of every secret replaced by ``***``, and the value of
    any ``password=`` or ``source_pwd=`` parameter too, whatever it holds."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _SECRET_PARAMETER.sub(r"\1=***", text)


# --- records -------------------------------------------------------------------------------


def encode_record(fields: Iterable[tuple[str, str]]) -> str:
    """Join ``(name, value)`` pairs into one ``context``: ``name=value||name=value``.

    The format has no escaping, so a record that could not be split back into the same pairs
    is refused with ``RecordError`` (its message says why): an empty name, a name holding
    ``=`` or ``||``, a value holding ``||``, or a value ending in ``|`` when another field
    follows it (``a|`` + ``||`` reads as ``a`` + ``||`` + ``|``).
    """
    pairs = list(fields)
    if not pairs:
        raise RecordError("the record has no fields")
    parts: list[str] = []
    last = len(pairs) - 1
    for index, (name, value) in enumerate(pairs):
        if not name:
            raise RecordError("a field name is empty")
        if "=" in name:
            raise RecordError(f"field name {name!r} contains '='")
        if RECORD_SEPARATOR in name:
            raise RecordError(f"field name {name!r} contains '||'")
        if name.startswith("|") and index > 0:
            raise RecordError(f"field name {name!r} starts with '|'")
        if RECORD_SEPARATOR in value:
            raise RecordError(f"the value of {name!r} contains '||'")
        if value.endswith("|") and index < last:
            raise RecordError(f"the value of {name!r} ends with '|'")
        parts.append(f"{name}={value}")
    return RECORD_SEPARATOR.join(parts)


def decode_record(context: str) -> list[tuple[str, str]]:
    """Split a ``context`` into ``(name, value)`` pairs, as the server does.

    Each pair is split at its first ``=``. Raises ``RecordError`` for an empty context or a
    pair with no ``=`` or an empty name.
    """
    if not context:
        raise RecordError("the context is empty")
    pairs: list[tuple[str, str]] = []
    for part in context.split(RECORD_SEPARATOR):
        name, sep, value = part.partition("=")
        if not sep or not name:
            raise RecordError(f"malformed pair {part[:40]!r}")
        pairs.append((name, value))
    return pairs


# --- answers -------------------------------------------------------------------------------

_ANSWER_RE = re.compile(r"\A\s*\|Retuen\|([12])\|Retuen\|(.*?)\s*\Z", re.DOTALL)
_BACKMSG_RE = re.compile(r"BackMsg_(\d+)")


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


class OutcomeKind(StrEnum):
    """What an answer means for the row that was sent."""

    DONE = "done"  # imported or updated
    DUPLICATE = "duplicate"  # the server kept its existing record
    REJECTED = "rejected"  # this row is wrong; sending it again will not help
    TRANSIENT = "transient"  # try again later
    FATAL = "fatal"  # the job's settings are wrong: stop sending


@dataclass(frozen=True)
class Outcome:
    """The classified result of one call.

    ``code`` is short and stable (``BackMsg_84``, ``HTTP 503``, ``timeout``); ``message`` is the
    server's message or the start of an invalid body (at most ``MESSAGE_LIMIT`` characters,
    never holding a secret once ``mask_secrets`` was applied by the caller).
    """

    kind: OutcomeKind
    code: str
    message: str = ""
    retry_after_s: float | None = None


MESSAGE_LIMIT = 200

DONE_CODES = frozenset({84, 83, 78, 77, 79, 80})
DUPLICATE_CODES = frozenset({81, 82})
REJECTED_CODES = frozenset({74, 75, 76, 71})
TRANSIENT_CODES = frozenset({85, 100})
FATAL_CODES = frozenset({1, 2, 3, 5, 6, 7, 9, 12, 55, 15, 63, 67, 70, 73, 72})
REMOTE_FATAL_CODES = frozenset({86, 87, 88, 89, 404})

#: What each code means, for one-line messages (from the vendor's return-code table).
CODE_MEANINGS: dict[int, str] = {
    1: "a required parameter is empty",
    2: "wrong or unknown organisation (orgidentity)",
    3: "unknown agent",
    5: "the agent is disabled",
    6: "wrong agent password",
    7: "the agent cannot log in",
    9: "wrong agent password",
    12: "the agent is not allowed to do this",
    55: "the agent is not allowed to do this",
    15: "unknown account",
    63: "wrong account password",
    67: "wrong campaign id",
    70: "wrong modeltype or model_id",
    71: "the record (context) is empty",
    72: "bad source",
    73: "the campaign does not exist",
    74: "field names do not match the campaign",
    75: "the record (context) is malformed",
    76: "a required field is missing",
    77: "duplicate: status reset",
    78: "duplicate: updated",
    79: "duplicate: assigned agent cleared",
    80: "duplicate: put in the dial list",
    81: "duplicate data",
    82: "duplicate phone number",
    83: "imported and put in the dial list",
    84: "imported",
    85: "storage error on the server",
    86: "only CSV files can be imported",
    87: "the import job failed",
    88: "the upload failed",
    89: "the server could not fetch the file",
    100: "the server cannot reach its telephony core",
    404: "the file was not found",
}


def describe_code(code: int) -> str:
    """``BackMsg_NN (meaning)`` for messages."""
    meaning = CODE_MEANINGS.get(code)
    return f"BackMsg_{code:02d}" + (f" ({meaning})" if meaning else "")


def _first_code(codes: Sequence[int], wanted: frozenset[int]) -> int | None:
    return next((code for code in codes if code in wanted), None)


def classify_answer(answer: Answer, *, remote: bool = False) -> Outcome:
    """Classify a valid answer, following the Import return-code table.

    Duplicates win over success codes (the server kept its record); for CODE 2, fatal codes
    win over row codes (a wrong password is wrong for every row). An unknown CODE 2 rejects
    the row and keeps the message.
    """
    message = answer.message[:MESSAGE_LIMIT]
    codes = answer.codes
    code_text = f"BackMsg_{codes[0]:02d}" if codes else ("ok" if answer.success else "error")
    duplicate = _first_code(codes, DUPLICATE_CODES)
    if duplicate is not None:
        return Outcome(OutcomeKind.DUPLICATE, f"BackMsg_{duplicate:02d}", message)
    if answer.success:
        return Outcome(OutcomeKind.DONE, code_text, message)
    fatal_codes = FATAL_CODES | REMOTE_FATAL_CODES if remote else FATAL_CODES
    for kind, wanted in (
        (OutcomeKind.FATAL, fatal_codes),
        (OutcomeKind.TRANSIENT, TRANSIENT_CODES),
        (OutcomeKind.REJECTED, REJECTED_CODES),
    ):
        found = _first_code(codes, wanted)
        if found is not None:
            return Outcome(kind, f"BackMsg_{found:02d}", message)
    return Outcome(OutcomeKind.REJECTED, code_text, message)


TRANSIENT_HTTP = frozenset({408, 429, 500, 502, 503, 504})
FATAL_HTTP = frozenset({401, 403, 404})
# This one request was too large (body, URL, headers): the row is at fault, not the job.
REJECTED_HTTP = frozenset({413, 414, 431})
MAX_RETRY_AFTER_S = 3600.0


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


def classify_http(
    status: int,
    body: str,
    *,
    retry_after: str | None = None,
    remote: bool = False,
    now_s: float | None = None,
) -> Outcome:
    """Classify a whole HTTP response: the status first, then the answer body."""
    snippet = body[:MESSAGE_LIMIT]
    if status in FATAL_HTTP:
        return Outcome(OutcomeKind.FATAL, f"HTTP {status}", snippet)
    if status in REJECTED_HTTP:
        return Outcome(OutcomeKind.REJECTED, f"HTTP {status}", snippet)
    if 400 <= status < 500 and status not in TRANSIENT_HTTP:
        # A client error that waiting cannot fix (405, 400, 414...): the settings are wrong.
        return Outcome(OutcomeKind.FATAL, f"HTTP {status}", snippet)
    if status != 200:
        return Outcome(
            OutcomeKind.TRANSIENT,
            f"HTTP {status}",
            snippet,
            retry_after_s=parse_retry_after(retry_after, now_s=now_s)
            if status in (429, 503)
            else None,
        )
    answer = parse_answer(body)
    if answer is None:
        return Outcome(OutcomeKind.TRANSIENT, "invalid answer", snippet)
    return classify_answer(answer, remote=remote)
