"""The vendor's return codes (``BackMsg_NN``): what each means, and what it means for the row
or the job. One table; every decision and every message about a code reads it.

The meanings are the vendor's return-code table (IMPORT-API.md, "Codes that matter for
Import"); where the vendor says nothing, the treatment is ours and says so there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OutcomeKind(StrEnum):
    """What an answer means for the row that was sent."""

    DONE = "done"  # imported or updated
    DUPLICATE = "duplicate"  # the server kept its existing record
    REJECTED = "rejected"  # this row is wrong; sending it again will not help
    TRANSIENT = "transient"  # try again later
    FATAL = "fatal"  # the job's settings (or the server) are wrong: stop sending


class Fix(StrEnum):
    """Where a person should look when a code stops the job."""

    PARAMETERS = "parameters"  # a parameter built from the job's settings is wrong
    ORG = "org"  # --org
    LOGIN = "login"  # --user / --usertype: the agent or account
    PASSWORD = "password"  # the password (and --pwdtype)
    CAMPAIGN = "campaign"  # --campaign
    LICENCE = "licence"  # the server's licence: nothing to set here, its administrator
    FIELDS = "fields"  # the file's columns against the campaign's fields: header, --map
    FILE = "file"  # a remote import's file or its URL


@dataclass(frozen=True)
class Code:
    """One ``BackMsg_NN``: its number, the vendor's meaning, and what it means to us."""

    number: int
    meaning: str
    verdict: OutcomeKind
    fix: Fix | None = None
    remote_verdict: OutcomeKind | None = None  # for a remote import, when it differs

    @property
    def name(self) -> str:
        """``BackMsg_NN``."""
        return f"BackMsg_{self.number:02d}"

    def describe(self) -> str:
        """``BackMsg_NN (meaning)``."""
        return f"{self.name} ({self.meaning})"

    def verdict_for(self, *, remote: bool) -> OutcomeKind:
        if remote and self.remote_verdict is not None:
            return self.remote_verdict
        return self.verdict


_D, _DUP, _R, _T, _F = (
    OutcomeKind.DONE,
    OutcomeKind.DUPLICATE,
    OutcomeKind.REJECTED,
    OutcomeKind.TRANSIENT,
    OutcomeKind.FATAL,
)

CODES: dict[int, Code] = {
    code.number: code
    for code in (
        Code(84, "new record imported into the package", _D),
        Code(83, "imported and put in the dial list", _D),
        Code(78, "duplicate: updated", _D),
        Code(77, "duplicate: status reset", _D),
        Code(79, "duplicate: assigned agent cleared", _D),
        Code(80, "duplicate: put in the dial list", _D),
        Code(69, "dial-list data import finished", _D),  # our choice
        Code(81, "duplicate data", _DUP),
        Code(82, "duplicate phone number", _DUP),
        Code(74, "the field names do not match the campaign", _R, Fix.FIELDS),
        Code(75, "the record (context) is malformed", _R, Fix.FIELDS),
        Code(76, "a required field is missing", _R, Fix.FIELDS),
        Code(71, "the record (context) is empty", _R, Fix.FIELDS),
        Code(85, "storage error on the server", _T),
        Code(100, "the server cannot reach its telephony core", _T),
        Code(113, "account data could not be created", _T),  # our choice
        Code(114, "agent data could not be created", _T),  # our choice
        Code(1, "a required parameter is empty", _F, Fix.PARAMETERS),
        Code(28, "parameter error", _F, Fix.PARAMETERS),  # our choice: wrong for every row
        Code(2, "wrong or unknown organisation (orgidentity)", _F, Fix.ORG),
        Code(3, "the agent number does not exist, or the password is wrong", _F, Fix.LOGIN),
        Code(5, "the account the agent belongs to is disabled", _F, Fix.LOGIN),
        Code(6, "the account the agent belongs to does not exist", _F, Fix.LOGIN),
        Code(7, "wrong password", _F, Fix.PASSWORD),
        Code(9, "the agent number does not exist", _F, Fix.LOGIN),
        Code(12, "no such agent", _F, Fix.LOGIN),
        Code(55, "the agent number is wrong or does not exist", _F, Fix.LOGIN),
        Code(38, "the agent has no matching account", _F, Fix.LOGIN),
        Code(15, "unknown account", _F, Fix.LOGIN),
        Code(63, "wrong account password", _F, Fix.PASSWORD),
        Code(115, "more agents than the licence allows", _F, Fix.LICENCE),
        Code(116, "the server's licence is not valid", _F, Fix.LICENCE),
        Code(67, "wrong campaign id", _F, Fix.CAMPAIGN),
        Code(70, "wrong modeltype or model_id", _F, Fix.CAMPAIGN),
        Code(73, "the campaign does not exist", _F, Fix.CAMPAIGN),
        Code(72, "bad source", _F, Fix.PARAMETERS),
        Code(86, "only CSV files can be imported", _R, Fix.FILE, _F),
        Code(87, "the import job failed", _R, Fix.FILE, _F),
        Code(88, "the upload failed", _R, Fix.FILE, _F),
        Code(89, "the server could not fetch the file", _R, Fix.FILE, _F),
        Code(404, "the file was not found", _R, Fix.FILE, _F),
    )
}


def code_of(number: int) -> Code | None:
    """The known code ``number``, or ``None`` (an unknown code: the caller decides)."""
    return CODES.get(number)


def describe_code(number: int) -> str:
    """``BackMsg_NN (meaning)``, or ``BackMsg_NN`` for a code the table does not know."""
    code = CODES.get(number)
    return code.describe() if code is not None else f"BackMsg_{number:02d}"
