"""Typed settings, resolved from the command line, the environment, a TOML profile and defaults.

Every setting is declared once in ``SPECS``: the command line builds its options from it,
``resolve`` reads it from each source. Precedence: command line > environment
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
from typing import Any

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


@dataclass(frozen=True)
class Spec:
    """One setting: its name (``snake_case``; the option is ``--kebab-case``), how to parse
    it, its default, its help text, and where it lands in ``Settings`` (``field``, a dotted
    path) with how it is written back to be stored with a job (``dump``), if it is at all
    (``stored``)."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    flag: bool = False  # a boolean switch on the command line
    multiple: bool = False  # repeatable on the command line; a table or list in a profile
    metavar: str = ""
    group: str = "target"
    field: str = ""
    dump: Callable[[Any], Any] = lambda value: value
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


def dump_rename(pairs: Sequence[tuple[str, str | None]]) -> list[str]:
    return dump_pairs(pairs)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected yes or no, not {text!r}")


def parse_positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def parse_non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def parse_non_negative_float(text: str) -> float:
    value = float(text)
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
    return parse_non_negative_float(text)


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


SPECS: tuple[Spec, ...] = (
    # --- the target: who we are and where the rows go
    Spec(
        "url",
        parse_url,
        None,
        "Import endpoint, e.g. https://cc.example.com/asterccinterfaces.",
        field="target.url",
    ),
    Spec("org", str, None, "Organisation identity (orgidentity).", field="target.org"),
    Spec("user", str, None, "Account name or agent number.", field="target.user"),
    Spec(
        "usertype",
        _choice(_names(UserType)),
        "account",
        "Who logs in.",
        _names(UserType),
        field="target.usertype",
    ),
    Spec(
        "pwdtype",
        _choice(_names(PasswordType)),
        "plaintext",
        "Send the password as is or as its MD5 (which logs in just as the password does: "
        "keep it as secret).",
        _names(PasswordType),
        field="target.pwdtype",
    ),
    Spec(
        "password_env",
        str,
        None,
        "Name of the environment variable that holds the password (default BULKIMPORT_PASSWORD).",
        metavar="VAR",
        field="password_env",
    ),
    Spec("campaign", str, None, "Campaign id (model_id).", field="target.campaign"),
    Spec(
        "phone_field",
        str,
        "",
        "Field that also puts the record in the dial list.",
        field="target.options.phone_field",
    ),
    Spec(
        "priority_field",
        str,
        "",
        "Field holding the dial-list priority.",
        field="target.options.priority_field",
    ),
    Spec(
        "dialtime_field",
        str,
        "",
        "Field holding the dial time.",
        field="target.options.dialtime_field",
    ),
    Spec(
        "dupway",
        _choice(_names(DupWay)),
        "skip",
        "On a duplicate: update it or skip.",
        _names(DupWay),
        field="target.options.dupway",
    ),
    Spec(
        "dupdiallist",
        _choice(_names(DupDialList)),
        "ignoreDuplicate",
        "On a duplicate: whether it goes into the dial list.",
        _names(DupDialList),
        field="target.options.dupdiallist",
    ),
    Spec(
        "changepackage",
        _choice(_names(ChangePackage)),
        "skip",
        "On a duplicate in another package of the main table.",
        _names(ChangePackage),
        field="target.options.changepackage",
    ),
    Spec(
        "emptyagent",
        parse_bool,
        False,
        "On a duplicate: clear its assigned agent.",
        ("yes", "no"),
        field="target.options.emptyagent",
    ),
    Spec(
        "resetstatus",
        parse_bool,
        False,
        "On a duplicate: reset its status.",
        ("yes", "no"),
        field="target.options.resetstatus",
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
        field="send.method",
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
        field="send.max_get_bytes",
    ),
    Spec(
        "rate",
        parse_rate,
        DEFAULT_RATE_PER_S,
        "Calls per second at most (0 = no limit), or auto: find the pace the server takes "
        "without slowing down, and follow it.",
        metavar="PER_S|auto",
        group="send",
        field="send.rate_per_s",
        dump=dump_rate,
    ),
    Spec(
        "max_rate",
        parse_non_negative_float,
        0.0,
        "With --rate auto: never more calls per second than this (0 = no cap).",
        metavar="PER_S",
        group="send",
        field="send.max_rate_per_s",
    ),
    Spec(
        "concurrency",
        parse_positive_int,
        None,
        f"Calls in flight at most [default: {DEFAULT_CONCURRENCY}, with --rate auto "
        f"{DEFAULT_AUTO_CONCURRENCY}].",
        metavar="N",
        group="send",
        field="send.concurrency",
    ),
    Spec(
        "max_outage",
        parse_duration,
        DEFAULT_MAX_OUTAGE_S,
        "How long to wait for a server that does not answer (probing it) before stopping "
        "the job, resumable (exit 75): e.g. 30m, 2h, 0 to stop at once.",
        metavar="DURATION",
        group="send",
        field="send.max_outage_s",
    ),
    Spec(
        "window",
        SendWindow.parse,
        None,
        "Send only between these hours, local time (e.g. 20:00-07:00): outside, wait for "
        "the window; when it closes, stop, resumable (exit 75).",
        metavar="HH:MM-HH:MM",
        group="send",
        field="send.window",
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
        field="send.max_rejects",
        dump=str,
    ),
    Spec(
        "max_attempts",
        parse_positive_int,
        5,
        "Attempts per row before it is marked failed.",
        metavar="N",
        group="send",
        field="send.max_attempts",
    ),
    Spec(
        "timeout",
        parse_positive_float,
        30.0,
        "Seconds per call.",
        metavar="S",
        group="send",
        field="send.timeout_s",
    ),
    Spec(
        "skip_unchanged",
        parse_bool,
        False,
        "Skip rows whose exact record an earlier job already loaded (done) into the same "
        "server, org and campaign: a nightly file sends only its new and changed rows.",
        flag=True,
        group="send",
        field="skip_unchanged",
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
        field="customer_key",
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
        field="send.proxy",
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
        field="send.ca_file",
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
        field="send.system_trust",
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
        field="send.verify_tls",
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
        field="read.encoding",
    ),
    Spec(
        "delimiter",
        str,
        None,
        "Delimiter (default: sniff); 'tab' for a tab.",
        metavar="C",
        group="read",
        field="read.delimiter",
    ),
    Spec(
        "skip_rows",
        parse_non_negative_int,
        0,
        "Title lines above the header.",
        metavar="N",
        group="read",
        field="read.skip_rows",
    ),
    Spec(
        "sheet",
        str,
        None,
        "The sheet of a workbook (.xlsx) to read: its name, or its number counting the tabs "
        "from 1 (default: the first visible sheet). A CSV file ignores it.",
        metavar="NAME|N",
        group="read",
        field="read.sheet",
    ),
    Spec(
        "map",
        str,
        (),
        "Rename a column (COLUMN=FIELD) or drop it (COLUMN=). Repeatable.",
        multiple=True,
        metavar="COLUMN=FIELD",
        group="read",
        field="read.rename",
        dump=dump_rename,
    ),
    Spec(
        "set",
        str,
        (),
        "A constant field on every record (FIELD=VALUE). Repeatable.",
        multiple=True,
        metavar="FIELD=VALUE",
        group="read",
        field="read.constants",
        dump=dump_pairs,
    ),
    Spec(
        "keep_empty",
        parse_bool,
        False,
        "Send empty cells as FIELD= (they are left out by default).",
        flag=True,
        group="read",
        field="read.keep_empty",
    ),
    Spec(
        "keep_spaces",
        parse_bool,
        False,
        "Send values with the whitespace around them (trimmed by default, no-break and "
        "ideographic spaces too).",
        flag=True,
        group="read",
        field="read.keep_spaces",
    ),
    Spec(
        "no_repair",
        parse_bool,
        False,
        "Do not repair phone numbers Excel marked (a trailing .0, a leading '): their rows "
        "are invalid, not sent, and reported.",
        flag=True,
        group="read",
        field="read.repair",
        dump=operator.not_,
    ),
    Spec(
        "allow",
        parse_allow,
        (),
        "Send values the reader otherwise refuses, for a campaign that wants them "
        "(comma-separated): short-phones, long-phones (far from the phone column's usual "
        "length), control-characters (inside a value), totals-rows (a 合计/Total row).",
        metavar="KIND,...",
        group="read",
        field="read.allow",
        dump=dump_allow,
    ),
    Spec(
        "max_record_lines",
        parse_positive_int,
        100,
        "Lines a quoted value may span; a quote still open after that is taken as unclosed: "
        "its line is reported invalid and reading goes on at the next line.",
        metavar="N",
        group="read",
        field="read.max_record_lines",
    ),
    # --- output
    Spec(
        "report",
        str,
        None,
        "Where to write the failed-rows report.",
        metavar="PATH",
        group="output",
        field="output.report",
    ),
    Spec(
        "log",
        str,
        None,
        "Append a log of the job to this file: start (settings, no secrets), progress, "
        "stops, summary.",
        metavar="PATH",
        group="output",
        field="output.log",
    ),
    Spec(
        "log_format",
        _choice(("plain", "json")),
        "plain",
        "Format of the --log file: plain lines, or one JSON object per line.",
        ("plain", "json"),
        group="output",
        field="output.log_format",
    ),
    Spec(
        "log_interval",
        parse_positive_float,
        DEFAULT_LOG_INTERVAL_S,
        "Seconds between progress lines in the log.",
        metavar="S",
        group="output",
        field="output.log_interval_s",
    ),
    Spec(
        "prune",
        parse_duration,
        None,
        "Before the job, drop the finished jobs older than this (e.g. 30d) and their "
        "reports, as `bulkimport prune --older-than` does: a nightly database stays bounded.",
        metavar="DURATION",
        group="output",
        field="output.prune_after_s",
    ),
    # --- remote imports (`bulkimport remote`): the server fetches the file itself
    Spec(
        "source",
        _choice(("http", "ftp")),
        "http",
        "How the server fetches the file.",
        ("http", "ftp"),
        group="remote",
        field="remote.source",
    ),
    Spec(
        "source_user",
        str,
        "",
        "User name for the file's server (its password: BULKIMPORT_SOURCE_PASSWORD).",
        metavar="NAME",
        group="remote",
        field="remote.source_user",
    ),
    Spec(
        "exetime",
        parse_exetime,
        "",
        "When the server imports the file: 'YYYY-MM-DD HH:MM:SS' (its local time) or now.",
        metavar="TIME",
        group="remote",
        field="remote.exetime",
    ),
    Spec(
        "delrow",
        parse_non_negative_int,
        1,
        "Leading lines of the file the server drops (the header).",
        metavar="N",
        group="remote",
        field="remote.delrow",
    ),
)

SPECS_BY_NAME: dict[str, Spec] = {spec.name: spec for spec in SPECS}
REQUIRED_FOR_SENDING = ("url", "org", "user", "campaign")
#: Keys a profile may hold besides the settings above.
PROFILE_EXTRA_KEYS = ("db",)


class Method(StrEnum):
    """How a call is sent: in a form body (the default), or in the query string (the
    vendor's documented form, which puts the password into every request line)."""

    GET = "get"  # the password (or its MD5) in the request line: in every access log
    POST = "post"  # the parameters in the body: out of the access logs


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
    """How the file is read (turned into the reader's options by the library layer)."""

    encoding: str | None = None
    delimiter: str | None = None
    skip_rows: int = 0
    rename: tuple[tuple[str, str | None], ...] = ()
    constants: tuple[tuple[str, str], ...] = ()
    keep_empty: bool = False
    keep_spaces: bool = False
    repair: bool = True  # --no-repair turns it off
    max_record_lines: int = 100
    phone_field: str = ""  # the target's --phone-field: its numbers are repaired too
    sheet: str | None = None  # a workbook's sheet, by name or number (None: the first)
    allow: tuple[Allow, ...] = ()  # --allow: values let through that are otherwise invalid


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
        return {spec.name: spec.dump(_field(self, spec.field)) for spec in SPECS if spec.stored}


def _field(settings: Settings, path: str) -> Any:
    value: Any = settings
    for name in path.split("."):
        value = getattr(value, name)
    return value


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
    the environment (``BULKIMPORT_<NAME>``), the profile, the job's stored settings (those a
    job keeps: a value stored by an earlier version for one it no longer keeps, such as
    ``insecure``, is passed over), the default."""
    values: dict[str, Any] = {}
    for spec in SPECS:
        given = cli.get(spec.name)
        if given is not None and given != () and given is not False:
            values[spec.name] = _from_source(spec, given, "command line")
        elif not spec.multiple and env.get(spec.env):
            values[spec.name] = _from_source(spec, env[spec.env], spec.env)
        elif spec.name in profile:
            values[spec.name] = _from_source(spec, profile[spec.name], "profile")
        elif spec.stored and stored is not None and stored.get(spec.name) is not None:
            values[spec.name] = _from_source(spec, stored[spec.name], "job")
        else:
            values[spec.name] = spec.default
    return values


def build(values: Mapping[str, Any]) -> Settings:
    """Typed settings from merged values (``merge``)."""
    return Settings(
        target=_target(values),
        send=SendSettings(
            method=Method(values["method"]),
            rate_per_s=values["rate"],
            max_rate_per_s=values["max_rate"],
            concurrency=values["concurrency"],
            max_outage_s=values["max_outage"],
            max_rejects=values["max_rejects"],
            window=values["window"],
            max_attempts=values["max_attempts"],
            timeout_s=values["timeout"],
            verify_tls=not values["insecure"],
            proxy=values["proxy"],
            ca_file=values["ca_file"],
            system_trust=values["system_trust"],
            max_get_bytes=values["max_get_bytes"],
        ),
        read=ReadSettings(
            encoding=values["encoding"],
            delimiter=values["delimiter"],
            skip_rows=values["skip_rows"],
            rename=tuple(
                (column, name or None)
                for column, name in parse_pairs(values["map"], "map", allow_empty_value=True)
            ),
            constants=tuple(parse_pairs(values["set"], "set", allow_empty_value=True)),
            keep_empty=values["keep_empty"],
            keep_spaces=values["keep_spaces"],
            repair=not values["no_repair"],
            max_record_lines=values["max_record_lines"],
            phone_field=values["phone_field"],
            sheet=values["sheet"],
            allow=values["allow"],
        ),
        output=OutputSettings(
            report=values["report"],
            log=values["log"],
            log_format=values["log_format"],
            log_interval_s=values["log_interval"],
            prune_after_s=values["prune"],
        ),
        remote=RemoteSettings(
            source=Source(values["source"]),
            source_user=values["source_user"],
            exetime=values["exetime"],
            delrow=values["delrow"],
        ),
        password_env=values["password_env"] or PASSWORD_ENV,
        skip_unchanged=values["skip_unchanged"],
        customer_key=values["customer_key"],
    )


def _target(values: Mapping[str, Any]) -> Target:
    return Target(
        url=values["url"] or "",
        org=values["org"] or "",
        user=values["user"] or "",
        campaign=values["campaign"] or "",
        usertype=UserType(values["usertype"]),
        pwdtype=PasswordType(values["pwdtype"]),
        options=ImportOptions(
            phone_field=values["phone_field"],
            priority_field=values["priority_field"],
            dialtime_field=values["dialtime_field"],
            dupway=DupWay(values["dupway"]),
            dupdiallist=DupDialList(values["dupdiallist"]),
            changepackage=ChangePackage(values["changepackage"]),
            emptyagent=values["emptyagent"],
            resetstatus=values["resetstatus"],
        ),
    )


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
