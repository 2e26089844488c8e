"""Phone numbers: which fields hold them, and what Excel does to them. One rule for the
reader, which repairs or refuses a damaged number before anything is sent, and for
``check``, which reports what the reader did and looks further.

Excel damages a phone number in three ways:

- ``1.38E+10``: it showed a long number in scientific notation and the CSV export wrote
  what it showed; the digits are gone, nothing can bring them back;
- ``13800138001.0``: it stored the number as a number; the ``.0`` is an artefact;
- ``'13800138001``: a leading ``'`` is its mark for "this is text"; the mark is an artefact.

Pure functions, no I/O.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from bulkimport.states import RepairKind

_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+")
_DECIMAL = re.compile(r"(\+?\d+)\.0+")
_INTERNATIONAL = re.compile(r"\+\d+")
_SEPARATED = re.compile(r"\+?[\d\s().\-]*\d[\d\s().\-]*")
_NUMBER_START = re.compile(r"[+\d]")
_NOT_DIGIT = re.compile(r"\D")
_PHONE_LIKE = re.compile(
    r"(?i)(?:(?:cell|mobile)[ _-]?)?(?:phone|mobile|tel|telephone|cell)"
    r"(?:[ _-]?(?:no|num|number))?[ _-]?\d*|.*(?:手机|电话).*"
)


def is_phone_like(name: str) -> bool:
    """Whether a field's name says it holds a phone number (``phone2``, ``Mobile``, ``手机``)."""
    return _PHONE_LIKE.fullmatch(name) is not None


def is_scientific(value: str) -> bool:
    """Whether ``value`` is a number in scientific notation (``1.38E+10``, ``1,38E+10``)."""
    return _SCIENTIFIC.fullmatch(value.strip()) is not None


class PhoneVerdict(NamedTuple):
    """What the reader does with one phone number: send ``value`` (``repairs`` says what
    was taken out of it), or nothing at all when its digits are ``lost``."""

    value: str
    repairs: tuple[RepairKind, ...] = ()
    lost: bool = False


def examine_phone(value: str) -> PhoneVerdict:
    """The verdict on a non-empty phone number as read (trimmed, unless spaces are kept)."""
    if value.isdigit() and value.isascii():
        return PhoneVerdict(value)
    if is_scientific(value):
        return PhoneVerdict(value, lost=True)
    repairs: list[RepairKind] = []
    number = value
    if number.startswith("'") and _NUMBER_START.match(number, 1):
        number = number[1:]
        repairs.append(RepairKind.APOSTROPHE)
        if is_scientific(number):
            return PhoneVerdict(value, lost=True)
    decimal = _DECIMAL.fullmatch(number)
    if decimal:
        number = decimal.group(1)
        repairs.append(RepairKind.DECIMAL)
    return PhoneVerdict(number, tuple(repairs))


def classify_phone(value: str) -> tuple[str | None, str | None]:
    """``(check's group code or None, normalised number or None)`` for a non-empty phone
    value, as it is in the file.

    Excel's damage is ``examine_phone``'s verdict (one rule for the reader and ``check``);
    separators and what is no number at all are ``check``'s alone (the reader sends them).
    The number is what duplicates are compared on: digits, with a leading ``+`` kept.
    """
    if value.isdigit() and value.isascii():
        return None, value
    verdict = examine_phone(value)
    if verdict.lost:
        return "excel-scientific", None
    if verdict.repairs:
        code = "excel-apostrophe" if RepairKind.APOSTROPHE in verdict.repairs else "excel-decimal"
        return code, classify_phone(verdict.value)[1]
    if _INTERNATIONAL.fullmatch(value) and value.isascii():
        return None, value
    if _SEPARATED.fullmatch(value) and value.isascii():
        digits = _NOT_DIGIT.sub("", value)
        return "phone-separators", ("+" + digits) if value.lstrip().startswith("+") else digits
    return "phone-not-a-number", None
