"""Phone numbers: which fields hold them, and what Excel does to them. One rule for the
reader, which repairs or refuses a damaged number before anything is sent, and for
``check``, which reports what the reader did and looks further: ``examine_phone`` gives one
typed verdict (``PhoneVerdict``) that both read, and that ``check`` puts in words.

Excel damages a phone number in three ways:

- ``1.38E+10``: it showed a long number in scientific notation and the CSV export wrote
  what it showed; the digits are gone, nothing can bring them back;
- ``13800138001.0``: it stored the number as a number; the ``.0`` is an artefact;
- ``'13800138001``: a leading ``'`` is its mark for "this is text"; the mark is an artefact.

Pure functions, no I/O.
"""

from __future__ import annotations

import re
from enum import StrEnum
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


class PhoneShape(StrEnum):
    """What a phone number is made of, once Excel's marks are taken away."""

    DIGITS = "digits"  # digits only: 13800138000
    INTERNATIONAL = "international"  # one leading + and digits: +8613800138000
    SEPARATED = "separated"  # digits with spaces, dashes, dots or parentheses: 138-0013-8000
    NOT_A_NUMBER = "not-a-number"  # anything else (n/a, full-width digits), or digits lost


class PhoneVerdict(NamedTuple):
    """What one phone number is: the reader sends ``value`` (``repairs`` says what was taken
    out of it), or nothing at all when its digits are ``lost``; ``shape`` is what ``value``
    is made of, and ``number`` the number it dials (digits, a leading ``+`` kept; ``None``
    when there is none), on which ``check`` compares numbers for duplicates."""

    value: str
    repairs: tuple[RepairKind, ...] = ()
    lost: bool = False
    shape: PhoneShape = PhoneShape.DIGITS
    number: str | None = None


def examine_phone(value: str) -> PhoneVerdict:
    """The verdict on a non-empty phone number as read (trimmed, unless spaces are kept)."""
    if value.isdigit() and value.isascii():
        return PhoneVerdict(value, number=value)
    if is_scientific(value):
        return PhoneVerdict(value, lost=True, shape=PhoneShape.NOT_A_NUMBER)
    repairs: list[RepairKind] = []
    number = value
    if number.startswith("'") and _NUMBER_START.match(number, 1):
        number = number[1:]
        repairs.append(RepairKind.APOSTROPHE)
        if is_scientific(number):
            return PhoneVerdict(value, lost=True, shape=PhoneShape.NOT_A_NUMBER)
    decimal = _DECIMAL.fullmatch(number)
    if decimal:
        number = decimal.group(1)
        repairs.append(RepairKind.DECIMAL)
    shape, digits = _shape(number)
    return PhoneVerdict(number, tuple(repairs), shape=shape, number=digits)


def _shape(value: str) -> tuple[PhoneShape, str | None]:
    """What ``value`` (no Excel marks) is made of, and the number it dials."""
    if not value.isascii():
        return PhoneShape.NOT_A_NUMBER, None
    if value.isdigit():
        return PhoneShape.DIGITS, value
    if _INTERNATIONAL.fullmatch(value):
        return PhoneShape.INTERNATIONAL, value
    if _SEPARATED.fullmatch(value):
        digits = _NOT_DIGIT.sub("", value)
        return PhoneShape.SEPARATED, ("+" + digits) if value.lstrip().startswith("+") else digits
    return PhoneShape.NOT_A_NUMBER, None
