"""Typed settings, resolved from the command line, the environment, a TOML profile and defaults.

Every setting is declared once in ``SPECS``: the command line builds its options from it,
``resolve`` reads it from each source, ``build`` puts it in its field of ``Settings`` (named by
an accessor that mypy checks, and ``SETTING_PATHS`` on import), ``Settings.stored`` reads
it back for a job to keep. Precedence: command line > environment
(``BULKIMPORT_<NAME>``) > profile (``--config``) > the settings stored with a job (on resume)
> defaults. Pure: no I/O except ``load_profile``, ``read_password`` and the check that
``--ca-file`` holds certificates.
"""

from __future__ import annotations

import dataclasses
import datetime
import operator
import os
import random
import re
import ssl
import stat
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar, cast, get_type_hints

from bulkimport.errors import ConfigError
from bulkimport.portable import permission_bits_mean_privacy
from bulkimport.protocol import (
    DEFAULT_MAX_GET_BYTES,
    ChangePackage,
    DupDialList,
    DupWay,
    ImportOptions,
    ImportParams,
    PasswordType,
    Source,
    UserType,
)
from bulkimport.rows import TargetRef
from bulkimport.states import Allow
from bulkimport.window import SendWindow

ENV_PREFIX = "BULKIMPORT_"
PASSWORD_ENV = "BULKIMPORT_PASSWORD"
DEFAULT_RATE_PER_S: float | None = 20.0  # a pace a production server takes without noticing
DEFAULT_CONCURRENCY = 8
DEFAULT_AUTO_CONCURRENCY = 64  # a cap: --rate auto finds how many calls in flight it needs
DEFAULT_MAX_OUTAGE_S = 1800.0  # a restart, a licence check, a night's maintenance
DEFAULT_LOG_INTERVAL_S = 10.0
#: ``exetime`` values that mean "now" to the server.
NOW_EXETIMES = ("", "0000-00-00 00:00:00")
EXETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: The lines a quoted value may span by default: a memo or an address runs to a few lines,
#: a quote that is still open after a hundred was never closed.
DEFAULT_MAX_RECORD_LINES = 100

T = TypeVar("T")


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Spec:
    """One setting: its name (``snake_case``; the option is ``--kebab-case``), how to parse
    it, its default, its help text, and the field of ``Settings`` it lands in (``field``, an
    accessor such as ``lambda s: s.send.rate_per_s``: mypy checks it, and ``SETTING_PATHS``
    checks it again when the module is imported), with how its value becomes the field's
    (``load``), how the field is written back to be stored with a job (``dump``), and whether
    it is at all (``stored``). ``build`` makes ``Settings`` from these alone."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    flag: bool = False  # a boolean switch on the command line
    multiple: bool = False  # repeatable on the command line; a table or list in a profile
    metavar: str = ""
    group: str = "target"
    field: Callable[[Settings], object] = dataclasses.field(kw_only=True)
    load: Callable[[Any], Any] = _same  # the merged value → the field's value
    dump: Callable[[Any], Any] = _same  # the field's value → the value stored (and merged)
    stored: bool = True  # kept with a job (and read back on resume)

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def dump_pairs(pairs: Sequence[tuple[str, str | None]]) -> list[str]:
    """``[("A", "b"), ("C", None)]`` → ``["A=b", "C="]``: how ``--map``/``--set`` are given."""
    return [f"{name}={value or ''}" for name, value in pairs]


def load_rename(items: Sequence[str]) -> tuple[tuple[str, str | None], ...]:
    """``--map`` as given (``["A=b", "C="]``) → ``(("A", "b"), ("C", None))``: renamed or
    dropped columns."""
    pairs = parse_pairs(items, "map", allow_empty_value=True)
    return tuple((column, name or None) for column, name in pairs)


def load_constants(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``--set`` as given (``["src=web"]``) → ``(("src", "web"),)``."""
    return tuple(parse_pairs(items, "set", allow_empty_value=True))


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected yes or no, not {text!r}")


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a whole number") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a number") from None


def parse_positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def parse_non_negative_int(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def parse_non_negative_float(text: str) -> float:
    value = _number(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a number, zero or more")
    return value


def parse_positive_float(text: str) -> float:
    value = parse_non_negative_float(text)
    if value == 0:
        raise ValueError("must be more than zero")
    return value


def parse_rate(text: str) -> float | None:
    """Calls per second (0: no limit), or ``auto`` (None): the pace is found as it goes."""
    if text.strip().lower() == "auto":
        return None
    try:
        return parse_non_negative_float(text)
    except ValueError as exc:
        raise ValueError(f"{exc}; give calls per second (0: no limit) or auto") from None


def dump_rate(rate_per_s: float | None) -> str | float:
    return "auto" if rate_per_s is None else rate_per_s


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``1h30m``, ``2d``."""
    value = text.strip().lower().replace(" ", "")
    parts = _DURATION_RE.findall(value)
    if not value or "".join(number + unit for number, unit in parts) != value:
        raise ValueError(f"{text!r} is not a duration (e.g. 90s, 30m, 1h30m)")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def parse_url(text: str) -> str:
    """The Import endpoint's URL (``/asterccinterfaces`` when it has no path). Errors show
    it masked (``mask_url``): a mistyped URL may hold a user and password."""
    value = text.strip()
    shown = mask_url(value)
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"{shown!r} is not an http(s) URL")
    if shown != value or parsed.username or parsed.password:
        raise ValueError(
            f"{shown!r}: put no credentials in the URL; use --user and BULKIMPORT_PASSWORD"
        )
    path = parsed.path or "/asterccinterfaces"
    if path == "/":
        path = "/asterccinterfaces"
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))


#: ``--proxy direct``: no proxy, whatever HTTPS_PROXY and HTTP_PROXY say.
DIRECT = "direct"


def mask_url(text: str) -> str:
    """``text`` (a URL, or what was given as one) with the user and password before its
    host replaced by ``***``: ``https://user:pass@host/path`` → ``https://***@host/path``.

    The one masking of URLs: every URL put in a message, a log or an output goes through
    it. Up to the last ``@`` of the authority goes, so a password holding ``@`` is masked
    whole; a password holding ``/``, ``?`` or ``#`` (not percent-encoded: what stands before
    it then reads as a host with a port that is no number) is masked up to the URL's last
    ``@``. A URL with no credentials comes back as it was."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    ends = [at for at in (rest.find(mark) for mark in "/?#") if at >= 0]
    authority = rest[: min(ends, default=len(rest))]
    if "@" in authority:
        cut = authority.rindex("@")
    elif "@" in rest and _port_is_no_number(authority):
        cut = rest.rindex("@")
    else:
        return text
    return f"{scheme}{sep}***{rest[cut:]}"


def _port_is_no_number(authority: str) -> bool:
    """Whether ``host:port`` has a port that is not a number (``user:pa`` of
    ``user:pa/ss@host``)."""
    host_end = authority.find("]") + 1 if authority.startswith("[") else 0
    _, colon, port = authority[host_end:].rpartition(":")
    return bool(colon) and not port.isdigit()


def server_key(url: str) -> str:
    """The server ``url`` sends to, as its budget is known by (``--server-rate``): scheme,
    host and port (the scheme's own when none is given), path (``parse_url``'s when it has
    none); never a user, a password, a query or a fragment. Scheme and host in lower case,
    a trailing ``/`` dropped: ``HTTPS://CC.example/import/`` and ``https://cc.example:443/import``
    are one server. ``ValueError`` for what is no http(s) URL."""
    parsed = urllib.parse.urlsplit(url.strip())
    scheme = parsed.scheme.lower()
    if scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"{mask_url(url)!r} is not an http(s) URL")
    try:
        port = parsed.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"{mask_url(url)!r} has a port that is no number") from None
    host = parsed.hostname  # lower case, without the brackets of an IPv6 address
    if ":" in host:
        host = f"[{host}]"
    path = parsed.path.rstrip("/") or "/asterccinterfaces"
    return f"{scheme}://{host}:{port}{path}"


def shown_target(ref: TargetRef) -> TargetRef:
    """``ref`` as it is shown and logged: its URL masked (``mask_url``)."""
    return ref._replace(url=mask_url(ref.url))


def parse_proxy(text: str) -> str:
    """An HTTP proxy's URL (``http://[user:password@]host:port``; ``host:port`` means
    ``http://host:port``), or ``direct`` for none. Errors show the URL with its credentials
    masked."""
    value = text.strip()
    if value.lower() in (DIRECT, "none"):
        return DIRECT
    if "://" not in value:
        value = "http://" + value
    shown = mask_url(value)
    parsed = urllib.parse.urlsplit(value)
    if "@" in parsed.path:
        raise ValueError(f"{shown!r}: write a / in the proxy's user or password as %2F")
    if parsed.scheme.lower() not in ("http", "https"):
        raise ValueError(
            f"{shown!r}: only http:// (and https://) proxies are supported, not {parsed.scheme}://"
        )
    try:
        port = parsed.port
    except ValueError:
        raise ValueError(f"{shown!r}: the port is not a number") from None
    if not parsed.hostname or parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise ValueError(f"{shown!r} is not a proxy URL (http://host:port)")
    netloc = parsed.netloc if port is not None else parsed.netloc.rstrip(":")
    return urllib.parse.urlunsplit((parsed.scheme.lower(), netloc, "", "", ""))


def parse_ca_file(text: str) -> str:
    """A PEM file of certificate authorities to trust, as an absolute path (a job resumed
    from another folder finds it); it is read here, so that a wrong path is a settings
    error before anything is read or sent."""
    if not text.strip():
        raise ValueError("give the path of a PEM file of CA certificates")
    path = Path(text.strip()).expanduser()
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a PEM file of CA certificates")
    try:
        # A context with no default trust: only the file's certificates are loaded.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError:
        raise ValueError(
            f"{path}: no CA certificate in it (a PEM file holds -----BEGIN CERTIFICATE----- "
            "blocks; convert a DER file with: openssl x509 -inform der -in FILE -out FILE.pem)"
        ) from None
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return str(path.resolve())


def parse_exetime(text: str) -> str:
    """``YYYY-MM-DD HH:MM:SS`` (the server's local time), or empty / ``now`` for now."""
    value = text.strip()
    if value.lower() == "now" or value in NOW_EXETIMES:
        return ""
    try:
        datetime.datetime.strptime(value, EXETIME_FORMAT)
    except ValueError:
        raise ValueError(f"{text!r}: expected YYYY-MM-DD HH:MM:SS or now") from None
    return value


def _choice(values: Sequence[str]) -> Callable[[str], str]:
    by_lower = {v.lower(): v for v in values}

    def parse(text: str) -> str:
        try:
            return by_lower[text.strip().lower()]
        except KeyError:
            raise ValueError(f"{text!r} is not one of {', '.join(values)}") from None

    return parse


def parse_allow(text: str) -> tuple[Allow, ...]:
    """``short-phones,totals-rows`` → the ``Allow`` kinds, in their order; empty for none."""
    allowed: list[Allow] = []
    for word in text.replace(" ", ",").split(","):
        if not word:
            continue
        try:
            kind = Allow(word.strip().lower())
        except ValueError:
            kinds = ", ".join(_names(Allow))
            raise ValueError(f"{word!r} is not one of {kinds} (comma-separated)") from None
        if kind not in allowed:
            allowed.append(kind)
    return tuple(sorted(allowed))


def dump_allow(allowed: Sequence[Allow]) -> str:
    """How ``--allow`` is given: ``control-characters,short-phones``."""
    return ",".join(kind.value for kind in allowed)


def _names(enum: Any) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


_BUDGET_RE = re.compile(r"\A\s*(\d+(?:\.\d+)?)\s*(%?)\s*\Z")


@dataclass(frozen=True)
class RejectBudget:
    """How many rejected rows a run may meet before they look systematic (a wrong mapping, a
    field the campaign lacks) and the job stops (as dsbulk's ``log.maxErrors``).

    ``count``: stop at this many rejections in a run; ``share``: stop when more than this
    share of the last ``window`` answers were rejections (judged once ``window`` answers came);
    neither: no budget.
    """

    count: int | None = None
    share: float | None = 0.5
    window: int = 100

    @classmethod
    def parse(cls, text: str) -> RejectBudget:
        """``100`` (rows), ``20%`` (of the last 100 answers), ``0`` (no budget)."""
        match = _BUDGET_RE.match(text)
        if match is None:
            raise ValueError(f"{text!r}: give a number of rows (100) or a share (20%), 0 for none")
        number, percent = float(match[1]), match[2]
        if percent:
            if not 0 <= number <= 100:
                raise ValueError(f"{text!r}: a share is 0% to 100%")
            return cls(count=None, share=number / 100 if number else None)
        if number != int(number):
            raise ValueError(f"{text!r}: a number of rows is a whole number")
        return cls(count=int(number) or None, share=None)

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        if self.share is not None:
            return f"{self.share * 100:g}%"
        return "0"


class Method(StrEnum):
    """How a call is sent: in a form body (the default), or in the query string (the
    vendor's documented form, which puts the password into every request line)."""

    GET = "get"  # the password (or its MD5) in the request line: in every access log
    POST = "post"  # the parameters in the body: out of the access logs


SPECS: tuple[Spec, ...] = (
    # --- the target: who we are and where the rows go
    Spec(
        "url",
        parse_url,
        "",
        "Import endpoint, e.g. https://cc.example.com/asterccinterfaces.",
        field=lambda s: s.target.url,
    ),
    Spec("org", str, "", "Organisation identity (orgidentity).", field=lambda s: s.target.org),
    Spec("user", str, "", "Account name or agent number.", field=lambda s: s.target.user),
    Spec(
        "usertype",
        _choice(_names(UserType)),
        "account",
        "Who logs in.",
        _names(UserType),
        field=lambda s: s.target.usertype,
        load=UserType,
    ),
    Spec(
        "pwdtype",
        _choice(_names(PasswordType)),
        "plaintext",
        "Send the password as is or as its MD5 (which logs in just as the password does: "
        "keep it as secret).",
        _names(PasswordType),
        field=lambda s: s.target.pwdtype,
        load=PasswordType,
    ),
    Spec(
        "password_env",
        str,
        None,
        "Name of the environment variable that holds the password (default BULKIMPORT_PASSWORD).",
        metavar="VAR",
        field=lambda s: s.password_env,
        load=lambda name: name or PASSWORD_ENV,
    ),
    Spec("campaign", str, "", "Campaign id (model_id).", field=lambda s: s.target.campaign),
    Spec(
        "phone_field",
        str,
        "",
        "Field that also puts the record in the dial list.",
        field=lambda s: s.target.options.phone_field,
    ),
    Spec(
        "priority_field",
        str,
        "",
        "Field holding the dial-list priority.",
        field=lambda s: s.target.options.priority_field,
    ),
    Spec(
        "dialtime_field",
        str,
        "",
        "Field holding the dial time.",
        field=lambda s: s.target.options.dialtime_field,
    ),
    Spec(
        "dupway",
        _choice(_names(DupWay)),
        "skip",
        "On a duplicate: update it or skip.",
        _names(DupWay),
        field=lambda s: s.target.options.dupway,
        load=DupWay,
    ),
    Spec(
        "dupdiallist",
        _choice(_names(DupDialList)),
        "ignoreDuplicate",
        "On a duplicate: whether it goes into the dial list.",
        _names(DupDialList),
        field=lambda s: s.target.options.dupdiallist,
        load=DupDialList,
    ),
    Spec(
        "changepackage",
        _choice(_names(ChangePackage)),
        "skip",
        "On a duplicate in another package of the main table.",
        _names(ChangePackage),
        field=lambda s: s.target.options.changepackage,
        load=ChangePackage,
    ),
    Spec(
        "emptyagent",
        parse_bool,
        False,
        "On a duplicate: clear its assigned agent.",
        ("yes", "no"),
        field=lambda s: s.target.options.emptyagent,
    ),
    Spec(
        "resetstatus",
        parse_bool,
        False,
        "On a duplicate: reset its status.",
        ("yes", "no"),
        field=lambda s: s.target.options.resetstatus,
    ),
    # --- how to send
    Spec(
        "method",
        _choice(("get", "post")),
        "post",
        "HTTP method: POST sends the parameters in the body; GET puts them, the password (or "
        "its MD5, which logs in as well) with them, into every request line, and so into the "
        "access logs of the server and of any proxy.",
        ("get", "post"),
        group="send",
        field=lambda s: s.send.method,
        load=Method,
    ),
    Spec(
        "max_get_bytes",
        parse_positive_int,
        DEFAULT_MAX_GET_BYTES,
        "With --method get: the longest request line the server takes, in bytes (its "
        "nginx's large_client_header_buffers; 32 KiB in the vendor's stock install). A row "
        "whose call would be longer is not sent and is rejected, saying to use --method post.",
        metavar="BYTES",
        group="send",
        field=lambda s: s.send.max_get_bytes,
    ),
    Spec(
        "rate",
        parse_rate,
        DEFAULT_RATE_PER_S,
        "Calls per second at most (0 = no limit), or auto: find the pace the server takes "
        "without slowing down, and follow it.",
        metavar="PER_S|auto",
        group="send",
        field=lambda s: s.send.rate_per_s,
        dump=dump_rate,
    ),
    Spec(
        "max_rate",
        parse_non_negative_float,
        0.0,
        "With --rate auto: never more calls per second than this (0 = no cap).",
        metavar="PER_S",
        group="send",
        field=lambda s: s.send.max_rate_per_s,
    ),
    Spec(
        "server_rate",
        parse_non_negative_float,
        0.0,
        "Calls per second at most for the server, shared by every job and runner of this "
        "--db that sends to it (0 = none); each job's --rate stays its own ceiling. A "
        'profile sets it per server: [servers."URL"] rate = N.',
        metavar="PER_S",
        group="send",
        field=lambda s: s.send.server_rate_per_s,
    ),
    Spec(
        "concurrency",
        parse_positive_int,
        None,
        f"Calls in flight at most [default: {DEFAULT_CONCURRENCY}, with --rate auto "
        f"{DEFAULT_AUTO_CONCURRENCY}].",
        metavar="N",
        group="send",
        field=lambda s: s.send.concurrency,
    ),
    Spec(
        "max_outage",
        parse_duration,
        DEFAULT_MAX_OUTAGE_S,
        "How long to wait for a server that does not answer (probing it) before stopping "
        "the job, resumable (exit 75): e.g. 30m, 2h, 0 to stop at once.",
        metavar="DURATION",
        group="send",
        field=lambda s: s.send.max_outage_s,
    ),
    Spec(
        "window",
        SendWindow.parse,
        None,
        "Send only between these hours, local time (e.g. 20:00-07:00): outside, wait for "
        "the window; when it closes, stop, resumable (exit 75).",
        metavar="HH:MM-HH:MM",
        group="send",
        field=lambda s: s.send.window,
        dump=lambda window: None if window is None else str(window),
    ),
    Spec(
        "max_rejects",
        RejectBudget.parse,
        RejectBudget(),
        "Stop the job when rejections look systematic: N rows, or P% of the last 100 "
        "answers; 0 never stops.",
        metavar="N|P%",
        group="send",
        field=lambda s: s.send.max_rejects,
        dump=str,
    ),
    Spec(
        "max_attempts",
        parse_positive_int,
        5,
        "Attempts per row before it is marked failed.",
        metavar="N",
        group="send",
        field=lambda s: s.send.max_attempts,
    ),
    Spec(
        "timeout",
        parse_positive_float,
        30.0,
        "Seconds per call.",
        metavar="S",
        group="send",
        field=lambda s: s.send.timeout_s,
    ),
    Spec(
        "skip_unchanged",
        parse_bool,
        False,
        "Skip rows whose exact record an earlier job already loaded (done) into the same "
        "server, org and campaign: a nightly file sends only its new and changed rows.",
        flag=True,
        group="send",
        field=lambda s: s.skip_unchanged,
    ),
    Spec(
        "customer_key",
        str,
        "",
        "With --skip-unchanged: the field that identifies a customer; a row is skipped only "
        "if it equals the last record loaded for that customer [default: --phone-field, "
        "else the file's first phone-like field].",
        metavar="FIELD",
        group="send",
        field=lambda s: s.customer_key,
    ),
    Spec(
        "proxy",
        parse_proxy,
        None,
        "Send the calls through this HTTP proxy: http://[USER:PASSWORD@]HOST:PORT, or "
        "direct for none; wins over HTTPS_PROXY and HTTP_PROXY. NO_PROXY and this machine's "
        "own addresses are reached directly. Never stored with a job.",
        metavar="URL",
        group="send",
        field=lambda s: s.send.proxy,
        stored=False,
    ),
    Spec(
        "ca_file",
        parse_ca_file,
        None,
        "Also trust the certificate authorities in this PEM file (a company's own CA, or "
        "the one of a proxy that inspects TLS), besides the usual ones.",
        metavar="PATH",
        group="send",
        field=lambda s: s.send.ca_file,
    ),
    Spec(
        "system_trust",
        parse_bool,
        False,
        "Verify the server's certificate with the operating system's trust store (the "
        "macOS keychain, the Windows certificate store), where a company's CA is usually "
        "installed already.",
        flag=True,
        group="send",
        field=lambda s: s.send.system_trust,
    ),
    Spec(
        "insecure",
        parse_bool,
        False,
        "Do not verify the server's TLS certificate at all (a last resort: see --ca-file "
        "and --system-trust); said on every run, and never kept with a job (a resume "
        "verifies again unless given it again).",
        flag=True,
        group="send",
        field=lambda s: s.send.verify_tls,
        load=operator.not_,
        dump=operator.not_,
        stored=False,
    ),
    # --- how to read the file
    Spec(
        "encoding",
        str,
        None,
        "File encoding (default: detect).",
        metavar="NAME",
        group="read",
        field=lambda s: s.read.encoding,
    ),
    Spec(
        "delimiter",
        str,
        None,
        "Delimiter (default: sniff); 'tab' for a tab.",
        metavar="C",
        group="read",
        field=lambda s: s.read.delimiter,
    ),
    Spec(
        "skip_rows",
        parse_non_negative_int,
        0,
        "Title lines above the header.",
        metavar="N",
        group="read",
        field=lambda s: s.read.skip_rows,
    ),
    Spec(
        "sheet",
        str,
        None,
        "The sheet of a workbook (.xlsx) to read: its name, or its number counting the tabs "
        "from 1 (default: the first visible sheet). A CSV file ignores it.",
        metavar="NAME|N",
        group="read",
        field=lambda s: s.read.sheet,
    ),
    Spec(
        "map",
        str,
        (),
        "Rename a column (COLUMN=FIELD) or drop it (COLUMN=). Repeatable.",
        multiple=True,
        metavar="COLUMN=FIELD",
        group="read",
        field=lambda s: s.read.rename,
        load=load_rename,
        dump=dump_pairs,
    ),
    Spec(
        "set",
        str,
        (),
        "A constant field on every record (FIELD=VALUE). Repeatable.",
        multiple=True,
        metavar="FIELD=VALUE",
        group="read",
        field=lambda s: s.read.constants,
        load=load_constants,
        dump=dump_pairs,
    ),
    Spec(
        "keep_empty",
        parse_bool,
        False,
        "Send empty cells as FIELD= (they are left out by default).",
        flag=True,
        group="read",
        field=lambda s: s.read.keep_empty,
    ),
    Spec(
        "keep_spaces",
        parse_bool,
        False,
        "Send values with the whitespace around them (trimmed by default, no-break and "
        "ideographic spaces too).",
        flag=True,
        group="read",
        field=lambda s: s.read.keep_spaces,
    ),
    Spec(
        "no_repair",
        parse_bool,
        False,
        "Do not repair phone numbers Excel marked (a trailing .0, a leading '): their rows "
        "are invalid, not sent, and reported.",
        flag=True,
        group="read",
        field=lambda s: s.read.repair,
        load=operator.not_,
        dump=operator.not_,
    ),
    Spec(
        "allow",
        parse_allow,
        (),
        "Send values the reader otherwise refuses, for a campaign that wants them "
        "(comma-separated): short-phones, long-phones (far from the phone column's usual "
        "length), control-characters (inside a value), totals-rows (a 合计/Total row), "
        "not-phones (a phone field holding no phone number: n/a, 无, two numbers).",
        metavar="KIND,...",
        group="read",
        field=lambda s: s.read.allow,
        dump=dump_allow,
    ),
    Spec(
        "max_record_lines",
        parse_positive_int,
        DEFAULT_MAX_RECORD_LINES,
        "Lines a quoted value may span; a quote still open after that is taken as unclosed: "
        "its line is reported invalid and reading goes on at the next line.",
        metavar="N",
        group="read",
        field=lambda s: s.read.max_record_lines,
    ),
    # --- output
    Spec(
        "report",
        str,
        None,
        "Where to write the failed-rows report.",
        metavar="PATH",
        group="output",
        field=lambda s: s.output.report,
    ),
    Spec(
        "log",
        str,
        None,
        "Append a log of the job to this file: start (settings, no secrets), progress, "
        "stops, summary.",
        metavar="PATH",
        group="output",
        field=lambda s: s.output.log,
    ),
    Spec(
        "log_format",
        _choice(("plain", "json")),
        "plain",
        "Format of the --log file: plain lines, or one JSON object per line.",
        ("plain", "json"),
        group="output",
        field=lambda s: s.output.log_format,
    ),
    Spec(
        "log_interval",
        parse_positive_float,
        DEFAULT_LOG_INTERVAL_S,
        "Seconds between progress lines in the log.",
        metavar="S",
        group="output",
        field=lambda s: s.output.log_interval_s,
    ),
    Spec(
        "prune",
        parse_duration,
        None,
        "Before the job, drop the finished jobs older than this (e.g. 30d) and their "
        "reports, as `bulkimport prune --older-than` does: a nightly database stays bounded.",
        metavar="DURATION",
        group="output",
        field=lambda s: s.output.prune_after_s,
    ),
    # --- remote imports (`bulkimport remote`): the server fetches the file itself
    Spec(
        "source",
        _choice(("http", "ftp")),
        "http",
        "How the server fetches the file.",
        ("http", "ftp"),
        group="remote",
        field=lambda s: s.remote.source,
        load=Source,
    ),
    Spec(
        "source_user",
        str,
        "",
        "User name for the file's server (its password: BULKIMPORT_SOURCE_PASSWORD).",
        metavar="NAME",
        group="remote",
        field=lambda s: s.remote.source_user,
    ),
    Spec(
        "exetime",
        parse_exetime,
        "",
        "When the server imports the file: 'YYYY-MM-DD HH:MM:SS' (its local time) or now.",
        metavar="TIME",
        group="remote",
        field=lambda s: s.remote.exetime,
    ),
    Spec(
        "delrow",
        parse_non_negative_int,
        1,
        "Leading lines of the file the server drops (the header).",
        metavar="N",
        group="remote",
        field=lambda s: s.remote.delrow,
    ),
)

SPECS_BY_NAME: dict[str, Spec] = {spec.name: spec for spec in SPECS}
REQUIRED_FOR_SENDING = ("url", "org", "user", "campaign")
#: Keys a profile may hold besides the settings above.
PROFILE_EXTRA_KEYS = ("db", "servers")
#: The profile's table of budgets per server: ``[servers."https://host/path"]`` ``rate = N``,
#: read as ``{server_key(url): rate}``.
SERVERS_KEY = "servers"


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where rows go and as whom. ``password`` lives in memory only: it is excluded from
    ``repr`` and comparisons and never stored (``Settings.stored`` leaves it out). A ``url``
    with a user and password in it is refused (a ``ConfigError`` that shows it masked)."""

    url: str = ""
    org: str = ""
    user: str = ""
    campaign: str = ""
    password: str = field(default="", repr=False, compare=False)
    usertype: UserType = UserType.ACCOUNT
    pwdtype: PasswordType = PasswordType.PLAINTEXT
    options: ImportOptions = field(default_factory=ImportOptions)

    def __post_init__(self) -> None:
        # As --url refuses them (parse_url): a login in the URL would be sent with every
        # call and kept with the job.
        if self.url and mask_url(self.url) != self.url:
            raise ConfigError(
                f"{mask_url(self.url)}: put no credentials in the URL; give them as "
                "Target(user=..., password=...)"
            )

    @property
    def ref(self) -> TargetRef:
        """Identifies the target for resuming and incremental loads: server, org, campaign."""
        return TargetRef(self.url, self.org, self.campaign)

    @property
    def key(self) -> str:
        return self.ref.key

    @property
    def missing(self) -> tuple[str, ...]:
        """The settings a target needs that are empty (``url``, ``org``, ``user``, ``campaign``)."""
        return tuple(name for name in REQUIRED_FOR_SENDING if not getattr(self, name))

    def with_password(self, password: str) -> Target:
        return dataclasses.replace(self, password=password)

    def import_params(self) -> ImportParams:
        return ImportParams(
            org=self.org,
            user=self.user,
            password=self.password,
            campaign=self.campaign,
            usertype=self.usertype,
            pwdtype=self.pwdtype,
            options=self.options,
        )


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a row is tried again after transient errors.

    The backoff is exponential with full jitter (AWS Architecture Blog, "Exponential
    Backoff And Jitter"): retries of many rows spread over the whole interval, not in waves.
    """

    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0

    def ceiling_s(self, attempt: int) -> float:
        """The longest wait after ``attempt`` attempts: ``base * 2**attempt``, capped."""
        return min(self.backoff_max_s, self.backoff_base_s * (2.0 ** min(attempt, 62)))

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """A wait drawn uniformly from ``[0, ceiling_s(attempt)]`` (full jitter)."""
        return rng.uniform(0.0, self.ceiling_s(attempt))


@dataclass(frozen=True)
class SendSettings:
    """How rows are sent."""

    method: Method = Method.POST
    rate_per_s: float | None = DEFAULT_RATE_PER_S  # 0 = unlimited; None = auto
    concurrency: int | None = None  # None: DEFAULT_CONCURRENCY (DEFAULT_AUTO_CONCURRENCY)
    max_attempts: int = 5
    timeout_s: float = 30.0
    verify_tls: bool = True  # False: --insecure, never stored with a job
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    max_rate_per_s: float = 0.0  # with auto: the cap (0 = none)
    max_outage_s: float = DEFAULT_MAX_OUTAGE_S
    max_rejects: RejectBudget = field(default_factory=RejectBudget)
    window: SendWindow | None = None  # the hours in which calls may start (None: any time)
    # The proxy given (--proxy: a URL, or DIRECT), None: HTTPS_PROXY/HTTP_PROXY decide. Its
    # URL may hold the proxy's password: out of repr, never stored with a job.
    proxy: str | None = field(default=None, repr=False)
    ca_file: str | None = None  # a PEM file of CAs trusted besides the default ones
    system_trust: bool = False  # verify with the operating system's trust store
    max_get_bytes: int = DEFAULT_MAX_GET_BYTES  # the longest GET request line, CRLF included
    # The server's budget, shared by every job and runner of the database (0 = none).
    server_rate_per_s: float = 0.0

    @property
    def auto(self) -> bool:
        """The pace is found as it goes (``--rate auto``)."""
        return self.rate_per_s is None

    @property
    def pool(self) -> int:
        """How many calls may be in flight at most."""
        if self.concurrency is not None:
            return self.concurrency
        return DEFAULT_AUTO_CONCURRENCY if self.auto else DEFAULT_CONCURRENCY

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.backoff_base_s, self.backoff_max_s)


@dataclass(frozen=True)
class ReadSettings:
    """How the file is read: what the user said about it, as the reader takes it; ``None``
    means detect or sniff.

    ``rename`` maps a column of the file, by name or by position (``#3``, 1-based), to a
    field name (``None`` or ``""`` drops the column; a column named twice: the last one);
    ``constants`` are ``(field, value)`` pairs added to every record; ``keep_empty`` sends
    empty cells as ``field=`` instead of leaving them out; ``keep_spaces`` sends values with
    the whitespace around them (it is trimmed by default); a quoted value may span at most
    ``max_record_lines`` lines (a quote still open after that is taken as unclosed).
    ``phone_field`` is the target's ``--phone-field``: with the fields named like a phone,
    its numbers are repaired (or, not ``repair``, refused) when Excel damaged them.
    ``sheet`` names the sheet of a workbook to read, by name or by number (``"2"``: the
    second tab); ``None`` reads the first visible one. ``encoding``, ``delimiter``,
    ``max_record_lines`` are for CSV files and ``sheet`` for workbooks: each kind ignores
    the others' (a profile may name both).
    """

    encoding: str | None = None
    delimiter: str | None = None
    skip_rows: int = 0
    rename: tuple[tuple[str, str | None], ...] = ()
    constants: tuple[tuple[str, str], ...] = ()
    keep_empty: bool = False
    keep_spaces: bool = False
    repair: bool = True  # --no-repair turns it off
    max_record_lines: int = DEFAULT_MAX_RECORD_LINES
    phone_field: str = ""  # the target's --phone-field: its numbers are repaired too
    sheet: str | None = None  # a workbook's sheet, by name or number (None: the first)
    allow: tuple[Allow, ...] = ()  # --allow: values let through that are otherwise invalid

    @property
    def renamed(self) -> dict[str, str | None]:
        """``rename`` as a mapping of column to field."""
        return dict(self.rename)


@dataclass(frozen=True)
class OutputSettings:
    """Where the report and the log go."""

    report: str | None = None
    log: str | None = None
    log_format: str = "plain"
    log_interval_s: float = DEFAULT_LOG_INTERVAL_S
    prune_after_s: float | None = None  # prune finished jobs older than this first


@dataclass(frozen=True)
class RemoteSettings:
    """What a remote import asks of the server besides the file's URL."""

    source: Source = Source.HTTP
    source_user: str = ""
    exetime: str = ""  # empty: now
    delrow: int = 1


@dataclass(frozen=True)
class Settings:
    """Everything a command needs, resolved and checked; ``stored()`` is what a job keeps."""

    target: Target = field(default_factory=Target)
    send: SendSettings = field(default_factory=SendSettings)
    read: ReadSettings = field(default_factory=ReadSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    remote: RemoteSettings = field(default_factory=RemoteSettings)
    password_env: str = PASSWORD_ENV
    skip_unchanged: bool = False
    customer_key: str = ""  # the field that identifies a customer ("": the phone field)

    def require_target(self) -> Target:
        """The target, or a ``ConfigError`` naming the settings it lacks."""
        missing = self.target.missing
        if missing:
            options = ", ".join(SPECS_BY_NAME[name].option for name in missing)
            raise ConfigError(
                f"missing {options}: give them as options, BULKIMPORT_* variables or in a "
                "--config profile"
            )
        return self.target

    def stored(self) -> dict[str, Any]:
        """Every setting by its name, as a job stores it (and ``resolve`` reads it back as
        ``stored``); never the password, nor the proxy (it may hold the proxy's password,
        and it belongs to the network a command runs in, not to the job), nor ``--insecure``
        (a resume verifies the server again unless it is given again)."""
        return {spec.name: spec.dump(spec.field(self)) for spec in SPECS if spec.stored}


def parse_pairs(
    items: Sequence[str], what: str, *, allow_empty_value: bool
) -> list[tuple[str, str]]:
    """``["A=b", "C="]`` → ``[("A", "b"), ("C", "")]``, refusing malformed items."""
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--{what} {item!r}: expected NAME=VALUE")
        if not value and not allow_empty_value:
            raise ConfigError(f"--{what} {item!r}: the value is empty")
        pairs.append((name.strip(), value))
    return pairs


def load_profile(path: Path, *, warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Read a TOML profile into ``{setting: raw value}``; warn when others can read it."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such profile") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the profile ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    # A profile never holds the password itself, but one that names where it lives (or
    # holds the proxy's password) should be private like any file of a service account.
    proxy = data.get("proxy")
    holds = (
        "holds the proxy's password"
        if isinstance(proxy, str) and "@" in proxy
        else "names the password's variable"
        if "password_env" in data
        else ""
    )
    if (
        warn is not None
        and holds
        and permission_bits_mean_privacy()
        and os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    ):
        warn(
            f"warning: {path} can be read by other users; "
            f"a profile {holds}, keep it private (chmod 600 {path})"
        )
    if "password" in data:
        raise ConfigError(
            f"{path}: a profile must not hold the password; "
            'set password_env = "VAR" and put the password in that environment variable'
        )
    profile: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in SPECS_BY_NAME and name not in PROFILE_EXTRA_KEYS:
            known = ", ".join(sorted([*SPECS_BY_NAME, *PROFILE_EXTRA_KEYS]))
            raise ConfigError(f"{path}: unknown setting {key!r} (known: {known})")
        if name == SERVERS_KEY:
            profile[SERVERS_KEY] = _server_rates(path, value)
            continue
        spec = SPECS_BY_NAME.get(name)
        if spec is not None and spec.multiple:
            # `[map]` / `[set]` tables, or lists of "A=b" strings.
            if isinstance(value, dict):
                value = [f"{k}={'' if v is None else v}" for k, v in value.items()]
            elif not isinstance(value, list):
                raise ConfigError(f"{path}: {key} must be a table or a list of NAME=VALUE")
            profile[name] = tuple(str(v) for v in value)
        elif isinstance(value, (dict, list)):
            raise ConfigError(f"{path}: {key} must be a single value")
        else:
            profile[name] = value
    return profile


def _server_rates(path: Path, table: Any) -> dict[str, float]:
    """A profile's ``[servers."URL"]`` tables as ``{server_key(URL): rate}``."""
    if not isinstance(table, dict):
        raise ConfigError(f'{path}: servers must be tables: [servers."https://host/path"]')
    rates: dict[str, float] = {}
    for url, entry in table.items():
        where = f"{path}: [servers.{mask_url(url)!r}]"
        if not isinstance(entry, dict) or set(entry) != {"rate"}:
            raise ConfigError(f"{where} must hold rate = N (calls per second), and only that")
        try:
            key = server_key(url)
            rates[key] = parse_non_negative_float(str(entry["rate"]))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return rates


def _profile_server_rate(profile: Mapping[str, Any], url: Any) -> float | None:
    """The rate the profile's ``[servers."URL"]`` table gives the server of ``url``."""
    rates = profile.get(SERVERS_KEY)
    if not rates or not url:
        return None
    try:
        found: float | None = rates.get(server_key(str(url)))
    except ValueError:
        return None
    return found


def _from_source(spec: Spec, raw: Any, source: str) -> Any:
    if spec.multiple:
        return tuple(raw)
    if isinstance(raw, bool) and spec.parse is parse_bool:
        return raw
    text = raw if isinstance(raw, str) else str(raw).lower() if isinstance(raw, bool) else str(raw)
    try:
        return spec.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{spec.option} ({source}): {exc}") from None


def merge(
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    profile: Mapping[str, Any],
    stored: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Each setting's value from the first source that gives it, parsed: the command line
    (``cli`` holds only the options given; ``None``, ``()`` or ``False`` mean not given),
    the environment (``BULKIMPORT_<NAME>``), the profile (for ``server_rate``, its
    ``[servers."URL"]`` table for the target's server first), the job's stored settings (those a
    job keeps: a value stored by an earlier version for one it no longer keeps, such as
    ``insecure``, is passed over), the default."""
    values: dict[str, Any] = {}
    for spec in SPECS:
        given = cli.get(spec.name)
        if given is not None and given != () and given is not False:
            values[spec.name] = _from_source(spec, given, "command line")
        elif not spec.multiple and env.get(spec.env):
            values[spec.name] = _from_source(spec, env[spec.env], spec.env)
        elif spec.name == "server_rate" and (
            (rate := _profile_server_rate(profile, values.get("url"))) is not None
        ):
            # The profile's table for this very server says more than its plain key.
            values[spec.name] = rate
        elif spec.name in profile:
            values[spec.name] = _from_source(spec, profile[spec.name], "profile")
        elif spec.stored and stored is not None and stored.get(spec.name) is not None:
            values[spec.name] = _from_source(spec, stored[spec.name], "job")
        else:
            values[spec.name] = spec.default
    return values


def build(values: Mapping[str, Any]) -> Settings:
    """Typed settings from merged values (``merge``): each spec's value, ``load``-ed, in its
    field (``SETTING_PATHS``), the derived fields copied (``DERIVED``), every other field at
    its default."""
    given = {SETTING_PATHS[spec.name]: spec.load(values[spec.name]) for spec in SPECS}
    for derived, source in _DERIVED_PATHS:
        given[derived] = given[source]
    return _make(Settings, (), given)


def _make(cls: type[T], where: tuple[str, ...], given: Mapping[tuple[str, ...], Any]) -> T:
    """A ``cls`` (a settings dataclass at ``where`` in ``Settings``) with the ``given``
    values of the fields below it; the others at their defaults."""
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        path = (*where, item.name)
        if path in given:
            values[item.name] = given[path]
        elif any(other[: len(path)] == path for other in given):
            values[item.name] = _make(hints[item.name], path, given)
    return cls(**values)


class _Recorder:
    """Stands for a ``Settings`` while an accessor runs: records the fields it names, each
    checked to be a field of the dataclass it is read from."""

    def __init__(self, cls: Any, path: tuple[str, ...] = ()) -> None:
        self._cls = cls
        self._path = path

    def __getattr__(self, name: str) -> _Recorder:
        names = [item.name for item in dataclasses.fields(self._cls)] if self._is_dataclass else []
        if name not in names:
            where = ".".join(("Settings", *self._path))
            raise AttributeError(f"{where} has no field {name!r}")
        return _Recorder(get_type_hints(self._cls)[name], (*self._path, name))

    @property
    def _is_dataclass(self) -> bool:
        return isinstance(self._cls, type) and dataclasses.is_dataclass(self._cls)


def path_of(accessor: Callable[[Settings], object]) -> tuple[str, ...]:
    """The field an accessor reads: ``lambda s: s.send.rate_per_s`` → ``("send",
    "rate_per_s")``; an ``AttributeError`` naming it when a name is no field."""
    recorded = accessor(cast(Settings, _Recorder(Settings)))
    if not isinstance(recorded, _Recorder) or not recorded._path:
        raise TypeError(f"{accessor!r} reads no field of Settings")
    return recorded._path


#: Where each setting lands in ``Settings``, checked when the module is imported: an accessor
#: naming no field (a typo) fails here, not on the first run that reads it.
SETTING_PATHS: dict[str, tuple[str, ...]] = {spec.name: path_of(spec.field) for spec in SPECS}

#: Fields set from another setting's field, (derived, source): the reader repairs the
#: target's --phone-field as it repairs the fields named like phones.
DERIVED: tuple[tuple[Callable[[Settings], object], Callable[[Settings], object]], ...] = (
    (lambda s: s.read.phone_field, lambda s: s.target.options.phone_field),
)

#: Fields of ``Settings`` no setting gives: the password (read from its variable, in memory
#: only) and the backoff's base and cap (a program's, for tests and benchmarks).
NOT_SETTINGS: tuple[Callable[[Settings], object], ...] = (
    lambda s: s.target.password,
    lambda s: s.send.backoff_base_s,
    lambda s: s.send.backoff_max_s,
)
# Taken on import as well, so that a typo in either list fails there.
_DERIVED_PATHS = tuple((path_of(derived), path_of(source)) for derived, source in DERIVED)
_NOT_SETTINGS_PATHS = tuple(path_of(accessor) for accessor in NOT_SETTINGS)


def resolve(
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    profile: Mapping[str, Any],
    stored: Mapping[str, Any] | None = None,
    *,
    need_target: bool = True,
) -> Settings:
    """Merge the sources by precedence (``merge``), type them (``build``) and, when a target
    is needed, check that it is complete. ``stored`` is the settings of the job being
    resumed (``Settings.stored()`` of an earlier run)."""
    settings = build(merge(cli, env, profile, stored))
    if need_target:
        settings.require_target()
    return settings


def read_password(
    settings: Settings,
    env: Mapping[str, str],
    *,
    prompt: Callable[[str], str] | None,
) -> str:
    """The password from its environment variable, or from ``prompt`` (only given when a
    person is at the terminal); a ``ConfigError`` when neither has it."""
    password = env.get(settings.password_env, "")
    if password:
        return password
    if prompt is not None:
        password = prompt("Password")
        if password:
            return password
    raise ConfigError(
        f"no password: set {settings.password_env} (the password is never an option "
        "and never stored)"
    )
