"""``check``'s own rules, one small function or class each (``analysis`` says what each group
finds; ``Checker`` runs them). A rule says what it finds as facts into a ``Sink``: findings
into their groups, notes once for the file; ``render`` puts them in words.

- on the file, once: ``phone_field`` (which field, or why none), ``schema_fields`` (names the
  campaign does not have), ``schema_required`` (its required fields no column maps to);
- on each readable row: ``Repairs``, ``LongValues``, ``ScientificValues``, ``FormulaValues``,
  ``PhoneNumbers`` (the phone field: empty, damaged, then repeated and truncated once the
  file is read), ``OtherPhones`` (fields named like a phone), ``RequiredValues``; on each
  invalid one, ``refused``;
- at the end: ``formulas_without_value``, ``sheet_notes``, ``blank_lines``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Protocol

from bulkimport.campaign import Campaign
from bulkimport.check.facts import (
    BlankLines,
    Date1904,
    Empty,
    FormulaLike,
    FormulasWithoutValue,
    HiddenInExcel,
    MergedRanges,
    MissingRequired,
    NoPhoneField,
    Note,
    OtherSheets,
    PhoneChoice,
    PhoneDamage,
    PhoneFieldConstant,
    PhoneFieldMissing,
    PhoneSource,
    Refused,
    Repaired,
    Repeated,
    Scientific,
    TooLong,
    Truncated,
    UnknownColumn,
    UnknownConstant,
    UnknownPhoneField,
    hidden_column_names,
)
from bulkimport.check.report import Finding, GroupCode, invalid_code, repaired_code
from bulkimport.reader import FileFormat, SheetFacts, map_key
from bulkimport.reader.phones import PhoneShape, PhoneVerdict, examine_phone, is_scientific
from bulkimport.rows import NewRow
from bulkimport.states import InvalidReason, RepairKind
from bulkimport.storage.interface import DuplicateStore

#: Field names taken for the phone field, in this order, when nothing else says which it is.
PHONE_NAMES = ("phone1", "phone", "mobile", "tel")
#: The truncation rule needs this many digit-only phone numbers ...
TRUNCATED_MIN_NUMBERS = 20
#: ... and this share of them with the same length.
TRUNCATED_DOMINANT_SHARE = 0.9

# A value that starts like a formula: after a field's "=" (or a record separator's "|").
_FORMULA_HINT = re.compile(r"=[=@+\-]")
# What a spreadsheet runs: "=" or "@" and more, or "+"/"-" and more that is not a number.
_FORMULA = re.compile(r"[=@].|[+\-](?![0-9 .,]*$)\S")
# One search over the encoded record decides whether any cell needs the full test.
_SCIENTIFIC_HINT = re.compile(r"\d[eE][+-]?\d")

#: The columns that are sent, as ``(index, field name)``.
Columns = Sequence[tuple[int, str]]


class Sink(Protocol):
    """Where rules say what they find."""

    def add(self, code: GroupCode, finding: Finding) -> None:
        """Count ``finding`` in group ``code`` (keeping it as an example while there is room)."""
        ...

    def note(self, fact: Note) -> None:
        """Say ``fact`` once, as a note for the file."""
        ...


# --- the file, once --------------------------------------------------------------------------


def phone_field(fmt: FileFormat, phone: PhoneChoice, present: bool, sink: Sink) -> None:
    """No phone field, a constant for one, or a ``--phone-field`` that no column maps to."""
    if phone.source is PhoneSource.NONE or phone.name is None:
        sink.note(NoPhoneField(PHONE_NAMES))
    elif phone.name in [name for name, _ in fmt.constants]:
        sink.note(PhoneFieldConstant(phone.name))
    elif not present:
        fact = PhoneFieldMissing(phone.name, fmt.header)
        sink.add(GroupCode.PHONE_FIELD_MISSING, Finding(None, fact))


def schema_fields(fmt: FileFormat, phone: PhoneChoice, campaign: Campaign, sink: Sink) -> None:
    """Columns, constants and a ``--phone-field`` the campaign has no field for: the server
    refuses every record that names one."""
    code = GroupCode.SCHEMA_UNKNOWN_FIELD
    for index, (column, name) in enumerate(zip(fmt.header, fmt.fields, strict=True)):
        if name is not None and campaign.resolve(name) is None:
            fact = UnknownColumn(column, name, map_key(fmt.header, index), campaign)
            sink.add(code, Finding(None, fact, name))
    for name, _ in fmt.constants:
        if campaign.resolve(name) is None:
            sink.add(code, Finding(None, UnknownConstant(name, campaign), name))
    if phone.source is PhoneSource.OPTION and phone.name and campaign.resolve(phone.name) is None:
        sink.add(code, Finding(None, UnknownPhoneField(phone.name, campaign), phone.name))


def schema_required(fmt: FileFormat, campaign: Campaign, sink: Sink) -> None:
    """Required fields no column (or constant) maps to."""
    names = [*fmt.fields, *(name for name, _ in fmt.constants)]
    present = {campaign.resolve(name) for name in names if name}
    for spec in campaign.fields:
        # The key field unmapped is check.predict's no-phone-field, which says where it is.
        if spec.required and spec.name != campaign.key_field and spec.name not in present:
            finding = Finding(None, MissingRequired(spec, campaign), spec.name)
            sink.add(GroupCode.SCHEMA_MISSING_REQUIRED, finding)


# --- each row --------------------------------------------------------------------------------


def refused(row: NewRow) -> tuple[GroupCode, Finding]:
    """A row the reader made invalid: its group, by reason, and the reader's account."""
    reason = row.reason or InvalidReason.CELLS
    return invalid_code(reason), Finding(row.line, Refused(reason, row.message))


class Repairs:
    """What the reader repaired in a value before sending it (a note per value)."""

    def __init__(self, fields: Sequence[str | None]) -> None:
        self.fields = fields

    def check(self, row: NewRow, sink: Sink) -> None:
        if not row.repairs:
            return
        sent = dict(zip(self.fields, row.cells, strict=False))
        for repair in row.repairs:
            fact = Repaired(repair.field, repair.original, sent.get(repair.field, ""))
            sink.add(
                repaired_code(repair.kind), Finding(row.line, fact, repair.field, repair.original)
            )


class LongValues:
    """Values longer than ``limit`` characters (``--max-length``)."""

    def __init__(self, sent: Columns, limit: int) -> None:
        self.sent, self.limit = sent, limit

    def check(self, line: int, record: str, cells: Sequence[str], sink: Sink) -> None:
        if len(record) <= self.limit:  # no value of the record is longer than the record
            return
        for index, name in self.sent:
            value = cells[index]
            if len(value) > self.limit:
                fact = TooLong(name, len(value), self.limit)
                sink.add(GroupCode.VALUE_TOO_LONG, Finding(line, fact, name, value))


class ScientificValues:
    """Numbers in scientific notation, in any field: Excel lost their digits."""

    def __init__(self, sent: Columns) -> None:
        self.sent = sent

    def check(self, line: int, record: str, cells: Sequence[str], sink: Sink) -> None:
        if not _SCIENTIFIC_HINT.search(record):
            return
        for index, name in self.sent:
            value = cells[index].strip()
            if is_scientific(value):
                finding = Finding(line, Scientific(name, value), name, value)
                sink.add(GroupCode.EXCEL_SCIENTIFIC, finding)


class FormulaValues:
    """Values a spreadsheet would run as a formula (a note: sent as they are)."""

    def __init__(self, sent: Columns) -> None:
        self.sent = sent

    def check(self, line: int, record: str, cells: Sequence[str], sink: Sink) -> None:
        if not _FORMULA_HINT.search(record):
            return
        for index, name in self.sent:
            value = cells[index]
            if _FORMULA.match(value):
                sink.add(
                    GroupCode.FORMULA_LIKE, Finding(line, FormulaLike(name, value), name, value)
                )


def phone_code(verdict: PhoneVerdict) -> GroupCode | None:
    """The group of a phone number's verdict; ``None`` for a number with nothing to say, and
    for one whose digits are lost (``ScientificValues`` finds every such value)."""
    if verdict.lost:
        return None
    if verdict.repairs:
        if RepairKind.APOSTROPHE in verdict.repairs:
            return GroupCode.EXCEL_APOSTROPHE
        return GroupCode.EXCEL_DECIMAL
    return _SHAPE_CODES.get(verdict.shape)


_SHAPE_CODES = {
    PhoneShape.SEPARATED: GroupCode.PHONE_SEPARATORS,
    PhoneShape.NOT_A_NUMBER: GroupCode.PHONE_NOT_A_NUMBER,
}


def _damage(line: int, name: str, value: str, sink: Sink, not_phones_ok: bool) -> PhoneVerdict:
    verdict = examine_phone(value)
    code = phone_code(verdict)
    # No number at all, in a field the reader examines, is its verdict (invalid-not-a-phone)
    # unless --allow not-phones sends it: then, as asked, nothing to say.
    if code is GroupCode.PHONE_NOT_A_NUMBER and not_phones_ok:
        return verdict
    if code is not None:
        sink.add(code, Finding(line, PhoneDamage(name, value, verdict), name, value))
    return verdict


class PhoneNumbers:
    """The phone field: empty, or damaged (``phone_code``); its numbers go to ``store`` and,
    once the file is read, ``finish`` finds those repeated and those that look truncated
    (see ``analysis``)."""

    def __init__(
        self,
        index: int,
        name: str,
        store: DuplicateStore,
        unit: str,
        limit: int | None,
        not_phones_ok: bool = False,
    ) -> None:
        self.index, self.name, self.store, self.unit, self.limit = index, name, store, unit, limit
        self.not_phones_ok = not_phones_ok
        self.lengths: Counter[int] = Counter()  # digit-only numbers by length
        self._numbers: list[tuple[int, str]] = []

    def check(self, line: int, cells: Sequence[str], sink: Sink) -> None:
        value = cells[self.index]
        if not value:
            sink.add(GroupCode.REQUIRED_EMPTY, Finding(line, Empty(self.name), self.name, ""))
            return
        if value.isdigit() and value.isascii():  # most are: no verdict to make
            number: str | None = value
        else:
            number = _damage(line, self.name, value, sink, self.not_phones_ok).number
        if number is not None:
            self._numbers.append((line, number))
            if number[0] != "+":
                self.lengths[len(number)] += 1

    def flush(self) -> None:
        """Hand the numbers of the batch to the store."""
        if self._numbers:
            self.store.add(self._numbers)
            self._numbers = []

    def finish(self) -> Iterator[tuple[GroupCode, int, list[Finding]]]:
        """The groups found once the file is read: ``(code, count, examples)``."""
        self.flush()
        truncated = self._truncated()
        if truncated is not None:
            yield truncated
        count, repeats = self.store.repeats(self.limit)
        if count:
            yield (
                GroupCode.DUPLICATE_PHONE,
                count,
                [
                    Finding(
                        r.line, Repeated(self.name, r.value, r.first, self.unit), self.name, r.value
                    )
                    for r in repeats
                ],
            )

    def _truncated(self) -> tuple[GroupCode, int, list[Finding]] | None:
        total = sum(self.lengths.values())
        if total < TRUNCATED_MIN_NUMBERS:
            return None
        usual, count = self.lengths.most_common(1)[0]
        share = count / total
        short = self.lengths.get(usual - 1, 0)
        if share < TRUNCATED_DOMINANT_SHARE or not short:
            return None
        examples = [
            Finding(
                line,
                Truncated(self.name, number, usual - 1, usual, share, total),
                self.name,
                number,
            )
            for line, number in self.store.of_length(usual - 1, self.limit)
        ]
        return GroupCode.PHONE_TRUNCATED, short, examples


class OtherPhones:
    """Fields named like a phone, other than the phone field: damaged numbers."""

    def __init__(self, columns: Columns, not_phones_ok: bool = False) -> None:
        self.columns = columns
        self.not_phones_ok = not_phones_ok

    def check(self, line: int, cells: Sequence[str], sink: Sink) -> None:
        for index, name in self.columns:
            value = cells[index]
            if value and not (value.isdigit() and value.isascii()):
                _damage(line, name, value, sink, self.not_phones_ok)


class RequiredValues:
    """Fields the campaign requires (or keys on), empty in a row."""

    def __init__(self, columns: Columns) -> None:
        self.columns = columns

    def check(self, line: int, cells: Sequence[str], sink: Sink) -> None:
        for index, name in self.columns:
            if not cells[index]:
                sink.add(GroupCode.REQUIRED_EMPTY, Finding(line, Empty(name), name, ""))


# --- the end ---------------------------------------------------------------------------------


def formulas_without_value(sheet: SheetFacts) -> Finding:
    """Formula cells saved with no value: one finding for the file, on the first one's row."""
    fact = FormulasWithoutValue(sheet.formulas_without_value, sheet.sheet or "")
    return Finding(sheet.first_formula_without_value, fact)


def sheet_notes(facts: SheetFacts, unit: str = "row") -> list[Note]:
    """What a person sees in Excel differently from what is read, said once for the file."""
    notes: list[Note] = []
    if len(facts.sheets) > 1:
        others = tuple(info for info in facts.sheets if info.name != facts.sheet)
        notes.append(OtherSheets(len(facts.sheets), facts.sheet or "", others))
    columns = tuple(hidden_column_names(facts))
    if facts.hidden_rows or columns:
        notes.append(HiddenInExcel(facts.hidden_rows, facts.first_hidden_row, columns, unit))
    if facts.merged_ranges:
        count = max(facts.merged_count, len(facts.merged_ranges))
        notes.append(MergedRanges(count, facts.merged_ranges))
    if facts.date1904:
        notes.append(Date1904())
    return notes


def blank_lines(count: int, unit: str, workbook: bool) -> BlankLines | None:
    """Lines (or rows) that are not records, skipped; ``None`` when there are none."""
    return BlankLines(count, unit, workbook) if count else None
