"""The parameters of one Import call: the target's fixed settings, their wire values, and the
URL encoding of a whole call. Pure: no I/O.

- ``ImportParams``: the settings of one target that are the same for every call;
  ``request_params`` builds the 22 ordered parameters (``EVENT`` and the 21 of the event).
- ``encode_params``: the URL-encoded query (or form body) of a call, for any record.
- ``secret_forms`` / ``mask_secrets``: every form of the password, removed from any text
  before it is kept or shown.
- ``get_line_bytes``: how long the request line of a GET call is, to hold it to what the
  server takes (``DEFAULT_MAX_GET_BYTES``).
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

ENDPOINT_PATH = "/asterccinterfaces"

#: The longest GET request line (its CRLF included) the vendor's stock server takes: its nginx
#: has ``large_client_header_buffers 4 32k``, and a longer line is answered 414 (or 400).
DEFAULT_MAX_GET_BYTES = 32 * 1024
#: What a GET's request line holds besides its target: ``GET `` and `` HTTP/1.1\r\n``.
_GET_LINE_FRAME = len("GET  HTTP/1.1\r\n")


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

    @property
    def rewrites(self) -> tuple[str, ...]:
        """The options under which a record sent twice changes the customer twice (a resend
        after an unknown outcome is then not harmless): as they are given."""
        found = []
        if self.dupway is DupWay.UPDATE:
            found.append("--dupway update")
        if self.resetstatus:
            found.append("--resetstatus yes")
        if self.emptyagent:
            found.append("--emptyagent yes")
        if self.dupdiallist is DupDialList.ALL:
            found.append("--dupdiallist all")
        return tuple(found)

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


def get_line_bytes(url: str, query: str, *, absolute: bool = False) -> int:
    """The bytes of the request line of a GET of ``url`` with ``query`` (URL-encoded, so
    ASCII), its CRLF included: ``GET /path?query HTTP/1.1``. ``absolute``: the line holds
    the whole URL (a plain ``http://`` call through a proxy)."""
    parts = urllib.parse.urlsplit(url)
    target = url.split("?", 1)[0] if absolute else (parts.path or "/")
    return _GET_LINE_FRAME + len(target.encode()) + 1 + len(query)


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
