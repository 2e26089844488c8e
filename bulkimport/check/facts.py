"""What ``check`` found out, as facts: one frozen dataclass per kind of finding or note.

The rules (``rules``, ``predict``) make these; ``render`` alone puts them in words, for the
text report and for the messages and notes of the JSON one. A fact holds what its sentence
needs and nothing said: values as they are, counts, the campaign, the option that fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bulkimport.campaign import Campaign, FieldSpec
from bulkimport.check.fieldnames import Suggestion
from bulkimport.reader import SheetFacts
from bulkimport.reader.phones import PhoneVerdict
from bulkimport.reader.workbook import SheetInfo, column_letters
from bulkimport.states import InvalidReason

# --- the phone field -------------------------------------------------------------------------


class PhoneSource(StrEnum):
    """How the phone field was chosen."""

    OPTION = "option"  # --phone-field
    SCHEMA = "schema"  # the campaign's key (or a required) field, named like a phone
    NAME = "name"  # a field called phone1, phone, mobile or tel
    NONE = "none"  # no phone field: phone checks are skipped


@dataclass(frozen=True)
class PhoneChoice:
    """The field checked as the phone number, and why that one."""

    name: str | None
    source: PhoneSource


# --- findings: a row's --------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """The reader made the row invalid; ``message`` is the reader's own account of it."""

    reason: InvalidReason
    message: str | None


@dataclass(frozen=True)
class Repaired:
    """The reader sends ``field``'s ``original`` value as ``sent``."""

    field: str
    original: str
    sent: str


@dataclass(frozen=True)
class Empty:
    """A field that must have a value has none."""

    field: str


@dataclass(frozen=True)
class TooLong:
    """A value of ``length`` characters, over ``limit`` (``--max-length``)."""

    field: str
    length: int
    limit: int


@dataclass(frozen=True)
class FormulaLike:
    """A value a spreadsheet would run as a formula."""

    field: str
    value: str


@dataclass(frozen=True)
class Scientific:
    """A number in scientific notation: Excel lost its digits."""

    field: str
    value: str


@dataclass(frozen=True)
class PhoneDamage:
    """A phone number with something to say about it: the reader's verdict on ``value``."""

    field: str
    value: str
    verdict: PhoneVerdict


@dataclass(frozen=True)
class Truncated:
    """A number of ``digits`` digits where ``share`` of the ``total`` have ``usual``."""

    field: str
    number: str
    digits: int
    usual: int
    share: float
    total: int


@dataclass(frozen=True)
class Repeated:
    """A number already on an earlier line (or row: ``unit``), ``first``."""

    field: str
    number: str
    first: int
    unit: str


@dataclass(frozen=True)
class RequestTooLong:
    """With ``--method get``, a record whose request line is ``size`` bytes."""

    size: int
    max_bytes: int


# --- findings: the file's ------------------------------------------------------------------------


@dataclass(frozen=True)
class FormulasWithoutValue:
    """``count`` formula cells of ``sheet`` saved with no value (the first in the row)."""

    count: int
    sheet: str


@dataclass(frozen=True)
class PhoneFieldMissing:
    """``--phone-field name``: no column maps to it (``header``: the columns there are)."""

    name: str
    header: tuple[str, ...]


@dataclass(frozen=True)
class UnknownColumn:
    """Column ``column``, sent as ``name`` (by ``--map key=``), is no field of ``campaign``."""

    column: str
    name: str
    key: str
    campaign: Campaign


@dataclass(frozen=True)
class UnknownConstant:
    """``--set name=...`` names no field of ``campaign``."""

    name: str
    campaign: Campaign


@dataclass(frozen=True)
class UnknownPhoneField:
    """``--phone-field name`` names no field of ``campaign``."""

    name: str
    campaign: Campaign


@dataclass(frozen=True)
class MissingRequired:
    """A required field of ``campaign`` that no column maps to."""

    spec: FieldSpec
    campaign: Campaign


@dataclass(frozen=True)
class NamedLikeKey:
    """Column ``column`` is named like the key field: ``option`` maps it."""

    column: str
    option: str


@dataclass(frozen=True)
class HoldsPhones:
    """``phones`` of the first ``values`` values of column ``column`` are phone numbers."""

    column: str
    phones: int
    values: int
    option: str


@dataclass(frozen=True)
class OtherSheet:
    """Another sheet of the workbook has a column named like the key field."""

    sheet: SheetInfo
    column: str
    option: str


KeyHint = NamedLikeKey | HoldsPhones | OtherSheet


@dataclass(frozen=True)
class NoKeyField:
    """No column maps to ``key`` (``campaign``'s key field, or the vendor's phone field)."""

    key: str
    campaign: Campaign | None
    hint: KeyHint | None


@dataclass(frozen=True)
class NoVendorField:
    """No column is named as a field of the vendor's campaign (``names``)."""

    names: tuple[str, ...]
    suggestions: tuple[Suggestion, ...]


Fact = (
    Refused
    | Repaired
    | Empty
    | TooLong
    | FormulaLike
    | Scientific
    | PhoneDamage
    | Truncated
    | Repeated
    | RequestTooLong
    | FormulasWithoutValue
    | PhoneFieldMissing
    | UnknownColumn
    | UnknownConstant
    | UnknownPhoneField
    | MissingRequired
    | NoKeyField
    | NoVendorField
)


# --- notes: what run does, said once for the file ---------------------------------------------


@dataclass(frozen=True)
class NoPhoneField:
    """No field is named as ``names``: phone numbers are not checked."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class PhoneFieldConstant:
    """The phone field is a constant (``--set``): not checked."""

    name: str


@dataclass(frozen=True)
class HeaderControls:
    """The header (or a line above it) holds these control characters, trimmed off."""

    chars: tuple[str, ...]


@dataclass(frozen=True)
class BlankLines:
    """``count`` lines (rows: ``unit``) that are not records were skipped."""

    count: int
    unit: str
    workbook: bool


@dataclass(frozen=True)
class OtherSheets:
    """The workbook has ``count`` sheets; ``sheet`` was read, not the ``others``."""

    count: int
    sheet: str
    others: tuple[SheetInfo, ...]


@dataclass(frozen=True)
class HiddenInExcel:
    """Rows (the first: ``first_row``) and columns hidden in Excel, read all the same."""

    rows: int
    first_row: int | None
    columns: tuple[str, ...]
    unit: str


@dataclass(frozen=True)
class MergedRanges:
    """``count`` merged ranges, the first of them ``ranges``."""

    count: int
    ranges: tuple[str, ...]


@dataclass(frozen=True)
class Date1904:
    """The workbook counts dates from 1904."""


@dataclass(frozen=True)
class VendorNames:
    """Columns the vendor's stock campaign knows by another name (no ``--schema``)."""

    suggestions: tuple[Suggestion, ...]


@dataclass(frozen=True)
class SchemaNames:
    """Columns ``campaign`` may know by another name."""

    campaign: Campaign
    suggestions: tuple[Suggestion, ...]


Note = (
    NoPhoneField
    | PhoneFieldConstant
    | HeaderControls
    | BlankLines
    | OtherSheets
    | HiddenInExcel
    | MergedRanges
    | Date1904
    | VendorNames
    | SchemaNames
)


def hidden_column_names(facts: SheetFacts) -> list[str]:
    """The hidden columns by their letters (``O``, ``Q:S`` for a run)."""
    return [
        column_letters(first)
        if first == last
        else f"{column_letters(first)}:{column_letters(last)}"
        for first, last in facts.hidden_columns
    ]
