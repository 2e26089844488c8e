"""What ``run`` would read from a file, and every problem, with its line number.

``Checker`` consumes the ``NewRow`` batches that ``reader.read_batches`` yields and sorts what
it finds into groups; ``finish()`` turns them into a ``CheckReport`` (``to_json()``,
``render_text()``). ``check_file`` ties it to the reader. Nothing is sent anywhere.

The groups, by code (stable: scripts may rely on them):

==========================  ===================================================================
``schema-unknown-field``    (``--schema``) a field, constant or ``--phone-field`` the campaign
                            does not have: the server refuses every record that names one
``schema-missing-required`` (``--schema``) a required field (or the key field) no column maps to
``phone-field-missing``     ``--phone-field`` names a field no column maps to
``invalid-*``               records the reader marks invalid (never sent), by reason: ``cells``
                            (wrong number of cells), ``no-values`` (values only in dropped
                            columns), ``pipe`` (a ``|`` that would break the record),
                            ``encoding``, ``csv``, ``unclosed-quote``, ``phone-digits-lost``
                            (``1.38E+10`` in a phone field), ``phone-unrepaired`` (Excel's
                            ``.0`` or ``'`` with ``--no-repair``), ``too-long`` (a value
                            longer than a cell holds, a line or row past the reader's
                            limits: ``reader.limits``), ``other-encoding`` (a line of UTF-8
                            text in a GB18030, Big5, cp1252... file),
                            ``incomplete-line`` (the last line, with no line end and fewer
                            cells than the header: the file was being written), ``nul`` (a
                            NUL byte in the line),
                            ``unrepaired`` (Excel's ``="..."``
                            or control characters around a value, ``--no-repair``),
                            ``control-characters`` (inside a value), ``phone-short`` and
                            ``phone-long`` (far from the column's usual length),
                            ``totals-row`` (a ``合计``/``Total`` row): one group per
                            ``InvalidReason``; the last four name the ``--allow`` that lets
                            them through
``repaired-*``              (a note, not a problem) phone numbers the reader repaired before
                            sending them, by kind: ``decimal`` (a trailing ``.0``),
                            ``apostrophe`` (a leading ``'``), ``text-formula`` (Excel's
                            ``="..."``, any value), ``control-padding`` (a trailing ``\\r``,
                            a form feed around a value): one group per ``RepairKind``
``required-empty``          the phone field (or a field the schema requires) is empty
``excel-scientific``        a value such as ``1.38E+10`` in a field that is no phone field:
                            Excel showed a long number in scientific notation and its digits
                            are gone; it is sent as it is
``excel-decimal``           a ``.0`` or ``'`` on the phone number checked when the reader does
``excel-apostrophe``        not take that field for a phone field (a field the schema chose,
                            with no ``--phone-field``): sent as it is
``phone-separators``        a phone number with spaces, dashes, dots or parentheses
``phone-not-a-number``      a phone field holding something else than digits (and those
                            separators, and one leading ``+``)
``phone-truncated``         see below
``duplicate-phone``         the phone number is already on an earlier line (both are given)
``value-too-long``          a value longer than ``max_length`` characters
``formula-like``            (a note) a value a spreadsheet would run as a formula
                            (``=HYPERLINK(…)``, ``@SUM(…)``, ``+cmd|…``): sent as it is; a
                            failed-rows report writes it with a leading ``'`` (``rows.inert``)
``formula-without-value``   (a workbook) formula cells with no value saved in the file: they
                            read empty (the workbook was written by a program that does not
                            compute formulas); counted, with the row of the first
==========================  ===================================================================

For a workbook, lines are sheet rows, and what reading the sheet found out about the workbook
(``reader.SheetFacts``: its sheets and which was read, hidden rows and columns, merged
ranges, the 1904 date system) is in the report's ``sheet``, and said in its notes.

What the reader does (invalid rows, repairs, blank lines) is reported from the rows and
batches it yields: ``check`` has no rule of its own for it. The reader's phone fields are
``--phone-field`` and the fields named like a phone (``reader.phones.is_phone_like``).

Phone rules apply to the phone field and to fields named like one (``phone2``, ``Mobile``,
``tel_1``, ``手机``, ``电话``...). A leading ``+`` is an international number, never an alarm;
such numbers are also left out of the truncation rule. The phone number compared for
duplicates is the value without separators, apostrophe or ``.0`` (``138-0013-8000`` and
``13800138000.0`` are the same number); values in scientific notation are left out, their
digits are gone and ``excel-scientific`` lists them.

``phone-truncated``, explicitly: among the phone field's values that are digits only (after
the normalisation above, no ``+``), when there are at least ``TRUNCATED_MIN_NUMBERS`` of them
and one length ``N`` covers at least ``TRUNCATED_DOMINANT_SHARE`` of them, a value of exactly
``N - 1`` digits looks truncated: Excel drops the leading zero of ``0755...`` or ``07911...``.
Nothing else is called truncated (a 10-digit ``400`` service number in a file of 11-digit
mobile numbers is reported too: check those by eye).

Memory stays flat: examples are bounded per group (``example_limit``), and the phone numbers
needed for duplicates go to a ``storage.DuplicateStore`` (by default a private temporary SQLite
database on disk, ``storage.sqlite.duplicates``), not into a Python dict.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any

from bulkimport.campaign import Campaign, Schema
from bulkimport.check.requests import GetLimit
from bulkimport.errors import ConfigError
from bulkimport.protocol import RECORD_SEPARATOR
from bulkimport.reader import FileFormat, SheetFacts, map_key
from bulkimport.reader.limits import SHOWN_CHARS, clip, listed, shown
from bulkimport.reader.phones import (
    PhoneShape,
    PhoneVerdict,
    examine_phone,
    is_phone_like,
    is_scientific,
)
from bulkimport.reader.workbook import column_letters
from bulkimport.rows import Batch, NewRow
from bulkimport.states import InvalidReason, RepairKind, RowState
from bulkimport.storage.interface import DuplicateStore
from bulkimport.storage.sqlite.duplicates import SqliteDuplicates

#: A value longer than this is reported; call-center fields are mostly ``varchar(255)``.
DEFAULT_MAX_LENGTH = 255
#: Examples kept per group (the count is always exact); ``None`` keeps every one.
DEFAULT_EXAMPLE_LIMIT = 100
#: Encoded records shown as samples.
SAMPLE_RECORDS = 3
#: Field names taken for the phone field, in this order, when nothing else says which it is.
PHONE_NAMES = ("phone1", "phone", "mobile", "tel")
#: The truncation rule needs this many digit-only phone numbers ...
TRUNCATED_MIN_NUMBERS = 20
#: ... and this share of them with the same length.
TRUNCATED_DOMINANT_SHARE = 0.9

GROUP_TITLES: dict[str, str] = {
    "schema-unknown-field": "fields the campaign does not have",
    "schema-missing-required": "required fields that no column maps to",
    "phone-field-missing": "the phone field is not in the file",
    "no-phone-field": "no column maps to the phone field (every record is refused)",
    "header-unknown": "no column is named as a field of the campaign (every record is refused)",
    "request-too-long": "record too long for a GET request line (rejected, not sent)",
    "invalid-cells": "wrong number of cells (not sent)",
    "invalid-pipe": "a '|' that would break the record (not sent)",
    "invalid-no-values": "values only in dropped columns (not sent)",
    "invalid-encoding": "undecodable bytes (not sent)",
    "invalid-csv": "unreadable CSV (not sent)",
    "invalid-unclosed-quote": "unclosed quote (the line is not sent; the next lines are read)",
    "invalid-phone-digits-lost": "phone number in scientific notation, its digits lost (not sent)",
    "invalid-phone-unrepaired": "phone number with Excel's .0 or ' mark, --no-repair (not sent)",
    "invalid-too-long": "a value, line or row too long to be a lead's (not sent)",
    "invalid-other-encoding": "a UTF-8 line in a file of another encoding (not sent)",
    "invalid-incomplete-line": "the last line, cut short while the file was written (not sent)",
    "invalid-nul": "a NUL byte in the line: damaged text (not sent)",
    "invalid-value-type": "a value with no text to send: a list, a dict, an object (not sent)",
    "invalid-unrepaired": 'Excel\'s ="..." or control characters around a value, --no-repair '
    "(not sent)",
    "invalid-control-characters": "control characters in a value (not sent)",
    "invalid-phone-short": "phone number far shorter than the column's usual (not sent)",
    "invalid-phone-long": "phone number far longer than the column's usual (not sent)",
    "invalid-totals-row": "a totals row under the data (not sent)",
    "repaired-decimal": "phone number ending in .0: repaired, sent without the .0",
    "repaired-apostrophe": "phone number starting with ': repaired, sent without Excel's mark",
    "repaired-text-formula": 'Excel\'s text formula ="...": repaired, sent as the text inside',
    "repaired-control-padding": "control characters around a value (\\r, form feed): repaired, "
    "taken away",
    "required-empty": "empty required field",
    "excel-scientific": "number in scientific notation (Excel; digits lost; sent as it is)",
    "excel-decimal": "phone number ending in .0 (sent as it is: not a phone field to run)",
    "excel-apostrophe": "phone number starting with ' (sent as it is: not a phone field to run)",
    "phone-separators": "phone number with spaces, dashes or parentheses",
    "phone-not-a-number": "phone field that holds no phone number",
    "phone-truncated": "phone number that looks truncated (a leading digit lost)",
    "duplicate-phone": "phone number already on an earlier line",
    "value-too-long": "value too long",
    "formula-without-value": "formula without a saved value (read empty)",
    "formula-like": "value a spreadsheet would run as a formula (sent as it is; inert in reports)",
}
#: Groups that say what run does, not what is wrong: they leave a file clean.
NOTE_GROUPS = frozenset(
    code for code in GROUP_TITLES if code.startswith("repaired-") or code == "formula-like"
)

# One search over the encoded record decides whether any cell needs the full test.
_SCIENTIFIC_HINT = re.compile(r"\d[eE][+-]?\d")
# A value that starts like a formula: after a field's "=" (or a record separator's "|").
_FORMULA_HINT = re.compile(r"=[=@+\-]")
# What a spreadsheet runs: "=" or "@" and more, or "+"/"-" and more that is not a number.
_FORMULA = re.compile(r"[=@].|[+\-](?![0-9 .,]*$)\S")


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


@dataclass(frozen=True)
class CheckOptions:
    """What to check beyond the reader's own rules.

    ``phone_field`` as ``--phone-field`` (empty: choose, see ``choose_phone_field``);
    ``campaign`` from ``--schema``; ``example_limit`` ``None`` keeps every example;
    ``get_limit``: with ``--method get``, the request line records are held to.
    """

    phone_field: str = ""
    campaign: Campaign | None = None
    max_length: int = DEFAULT_MAX_LENGTH
    example_limit: int | None = DEFAULT_EXAMPLE_LIMIT
    get_limit: GetLimit | None = None


@dataclass(frozen=True)
class Finding:
    """One problem: where (``line`` is ``None`` for the file as a whole) and what."""

    line: int | None
    message: str
    field: str | None = None
    value: str | None = None

    def __post_init__(self) -> None:
        # A value is kept to be shown: cut to what shows it (a cell can be 32,767 long).
        if self.value is not None and len(self.value) > SHOWN_CHARS:
            object.__setattr__(self, "value", clip(self.value))

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "field": self.field,
            "value": self.value,
            "message": self.message,
        }


@dataclass
class Group:
    """The findings of one code: an exact ``count`` and the first few ``examples``."""

    code: str
    count: int = 0
    examples: list[Finding] = field(default_factory=list)

    @property
    def title(self) -> str:
        return GROUP_TITLES[self.code]

    @property
    def problem(self) -> bool:
        """A problem to fix, or a note on what run does (``NOTE_GROUPS``)."""
        return self.code not in NOTE_GROUPS

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "title": self.title,
            "problem": self.problem,
            "count": self.count,
            "examples": [finding.to_json() for finding in self.examples],
            "more": self.count - len(self.examples),
        }


@dataclass(frozen=True)
class CheckReport:
    """Everything a check found out about one file."""

    path: str
    format: FileFormat
    bom: bool
    encoding_given: bool
    delimiter_given: bool
    records: int
    invalid: int
    last_line: int
    fitting: int  # records with the header's number of cells
    phone: PhoneChoice
    campaign: Campaign | None
    samples: tuple[tuple[int, str], ...]
    groups: tuple[Group, ...]
    notes: tuple[str, ...]
    blank_lines: int = 0  # lines that are not records: empty, spaces, bare delimiters
    sheet: SheetFacts | None = None  # what reading a workbook's sheet found out
    sheet_given: bool = False  # the sheet was chosen with --sheet

    @property
    def problems(self) -> int:
        """The number of findings that are problems; 0 means the file is clean."""
        return sum(group.count for group in self.groups if group.problem)

    @property
    def clean(self) -> bool:
        return not any(group.problem for group in self.groups)

    @property
    def repaired(self) -> dict[RepairKind, int]:
        """How many values the reader repairs, per kind (kinds with none left out)."""
        found = {group.code: group.count for group in self.groups}
        return {
            kind: found[repaired_code(kind)] for kind in RepairKind if repaired_code(kind) in found
        }

    @property
    def encoding_source(self) -> str:
        """How the encoding was decided: ``option``, ``bom`` or ``detected``."""
        if self.encoding_given:
            return "option"
        return "bom" if self.bom else "detected"

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON-ready object (examples bounded as collected).

        A workbook has ``sheet`` (``None`` for a CSV file) and no ``encoding`` or
        ``delimiter`` (``None``); lines are sheet rows."""
        fmt = self.format
        text = self.sheet is None
        return {
            "file": self.path,
            "kind": fmt.kind.value,
            "clean": self.clean,
            "problems": self.problems,
            "encoding": {
                "name": fmt.encoding,
                "bom": self.bom,
                "source": self.encoding_source,
                "confidence": fmt.encoding_confidence,
            }
            if text
            else None,
            "delimiter": {
                "char": fmt.delimiter,
                "source": "option" if self.delimiter_given else "sniffed",
                "fitting_records": self.fitting,
            }
            if text
            else None,
            "sheet": None
            if self.sheet is None
            else {**sheet_json(self.sheet), "given": self.sheet_given},
            "header": list(fmt.header),
            "fields": list(fmt.fields),
            "constants": dict(fmt.constants),
            "first_line": fmt.data_line,
            "records": self.records,
            "blank_lines": self.blank_lines,
            "repaired": {kind.value: count for kind, count in self.repaired.items()},
            "valid": self.records - self.invalid,
            "invalid": self.invalid,
            "phone_field": {"name": self.phone.name, "source": self.phone.source.value},
            "campaign": (
                None
                if self.campaign is None
                else {"id": self.campaign.id, "name": self.campaign.name}
            ),
            "samples": [{"line": line, "record": record} for line, record in self.samples],
            "groups": [group.to_json() for group in self.groups],
            "notes": list(self.notes),
        }


def sheet_json(facts: SheetFacts) -> dict[str, Any]:
    """What ``check --json`` says about a workbook: its sheets (and which was read), hidden
    rows and columns, merged ranges, formulas without a value, the date system."""
    return {
        "name": facts.sheet,
        "sheets": [
            {
                "number": info.number,
                "name": info.name,
                "state": info.state,
                "kind": info.kind,
                "dimension": info.dimension,
                "read": info.name == facts.sheet,
            }
            for info in facts.sheets
        ],
        "hidden_rows": facts.hidden_rows,
        "first_hidden_row": facts.first_hidden_row,
        "hidden_columns": hidden_column_names(facts),
        "merged_ranges": list(facts.merged_ranges),
        "merged_range_count": facts.merged_count,
        "formulas_without_value": facts.formulas_without_value,
        "first_formula_without_value": facts.first_formula_without_value,
        "date1904": facts.date1904,
    }


def hidden_column_names(facts: SheetFacts) -> list[str]:
    """The hidden columns by their letters (``O``, ``Q:S`` for a run)."""
    return [
        column_letters(first)
        if first == last
        else f"{column_letters(first)}:{column_letters(last)}"
        for first, last in facts.hidden_columns
    ]


def sheet_notes(facts: SheetFacts, unit: str = "row") -> list[str]:
    """The notes ``check`` gives about a workbook: what a person sees in Excel differently
    from what is read, said once for the file."""
    notes = []
    if len(facts.sheets) > 1:
        others = ", ".join(
            f"{info.number} {shown(info.name)}" + ("" if info.visible else f" ({info.state})")
            for info in facts.sheets
            if info.name != facts.sheet
        )
        notes.append(
            f"the workbook has {len(facts.sheets)} sheets; {shown(facts.sheet or '')} was read, "
            f"not {others} (--sheet NAME or --sheet N reads another)"
        )
    hidden = []
    if facts.hidden_rows:
        rows = f"{facts.hidden_rows:,} {unit}{'s' if facts.hidden_rows != 1 else ''}"
        hidden.append(f"{rows} (the first is {unit} {facts.first_hidden_row})")
    columns = hidden_column_names(facts)
    if columns:
        hidden.append(f"column{'s' if len(columns) > 1 else ''} {', '.join(columns)}")
    if hidden:
        notes.append(
            f"hidden in Excel: {' and '.join(hidden)}; they are read and sent like the others"
        )
    if facts.merged_ranges:
        count = max(facts.merged_count, len(facts.merged_ranges))
        ranges = ", ".join(facts.merged_ranges[:5]) + (", ..." if count > 5 else "")
        notes.append(
            f"{count} merged range{'s' if count > 1 else ''} ({ranges}): the value is in the "
            "top-left cell; the other cells of a range read empty"
        )
    if facts.date1904:
        notes.append(
            "the workbook counts dates from 1904 (Excel for Mac): dates are read as the "
            "sheet shows them"
        )
    return notes


# --- choosing things -------------------------------------------------------------------------


def select_campaign(schema: Schema, campaign_id: str | None) -> Campaign:
    """The campaign of ``schema`` to check against: ``campaign_id``, or its only campaign."""
    ids = ", ".join(c.id for c in schema.campaigns)
    if campaign_id:
        campaign = schema.campaign(str(campaign_id))
        if campaign is None:
            raise ConfigError(f"--campaign {campaign_id}: the schema has no such campaign ({ids})")
        return campaign
    if len(schema.campaigns) == 1:
        return schema.campaigns[0]
    raise ConfigError(f"the schema has several campaigns; choose one with --campaign ({ids})")


def choose_phone_field(
    fmt: FileFormat, given: str = "", campaign: Campaign | None = None
) -> PhoneChoice:
    """The phone field: ``given`` (``--phone-field``), else the campaign's key field or a
    required field if it is named like a phone, else a field named like ``PHONE_NAMES``
    (case-insensitive), else none."""
    names = [name for name in fmt.fields if name is not None] + [n for n, _ in fmt.constants]
    if given:
        if campaign is not None and given not in names:
            # The server accepts a display name too: check the column that resolves to it.
            wanted = campaign.resolve(given)
            match = next((n for n in names if wanted and campaign.resolve(n) == wanted), None)
            if match is not None:
                return PhoneChoice(match, PhoneSource.OPTION)
        return PhoneChoice(given, PhoneSource.OPTION)
    if campaign is not None:
        # The key field first, then required fields; only one whose name or display name
        # says phone (a campaign may be keyed on an e-mail address).
        specs = sorted(campaign.fields, key=lambda s: s.name != campaign.key_field)
        for spec in specs:
            if spec.name != campaign.key_field and not spec.required:
                continue
            if not (is_phone_like(spec.name) or is_phone_like(spec.display)):
                continue
            match = next((n for n in names if campaign.resolve(n) == spec.name), None)
            if match is not None:
                return PhoneChoice(match, PhoneSource.SCHEMA)
    lowered = {name.lower(): name for name in reversed(names)}
    for wanted in PHONE_NAMES:
        if wanted in lowered:
            return PhoneChoice(lowered[wanted], PhoneSource.NAME)
    return PhoneChoice(None, PhoneSource.NONE)


def invalid_code(reason: InvalidReason) -> str:
    """The group of a row the reader marked invalid."""
    return f"invalid-{reason.value}"


def repaired_code(kind: RepairKind) -> str:
    """The group of the values the reader repaired this way."""
    return f"repaired-{kind.value}"


def phone_code(verdict: PhoneVerdict) -> str | None:
    """The group of a phone number's verdict; ``None`` for a number with nothing to say, and
    for one whose digits are lost (``excel-scientific`` finds every such value)."""
    if verdict.lost:
        return None
    if verdict.repairs:
        return "excel-apostrophe" if RepairKind.APOSTROPHE in verdict.repairs else "excel-decimal"
    return _SHAPE_CODES.get(verdict.shape)


_SHAPE_CODES = {
    PhoneShape.SEPARATED: "phone-separators",
    PhoneShape.NOT_A_NUMBER: "phone-not-a-number",
}


def _show(value: str) -> str:
    """A value quoted for a one-line message, cut to ``limits.SHOWN_CHARS`` characters."""
    return shown(value)


def _sample(record: str) -> str:
    """An encoded record shown as a sample: each value cut as a message cuts it."""
    if len(record) <= SHOWN_CHARS:
        return record
    parts = []
    for part in record.split(RECORD_SEPARATOR):
        name, equals, value = part.partition("=")
        parts.append(f"{clip(name)}{equals}{clip(value)}")
    return RECORD_SEPARATOR.join(parts)


# --- the checker -----------------------------------------------------------------------------


class Checker:
    """Accumulates the findings about one file, batch by batch; use it as a context manager
    (it holds a ``DuplicateStore``) or call ``finish()``, which closes it. ``duplicates``:
    where the phone numbers go (a temporary SQLite file by default)."""

    def __init__(
        self,
        fmt: FileFormat,
        options: CheckOptions | None = None,
        *,
        duplicates: DuplicateStore | None = None,
    ) -> None:
        self.fmt = fmt
        self.options = options or CheckOptions()
        self.phone = choose_phone_field(fmt, self.options.phone_field, self.options.campaign)
        self.records = 0
        self.invalid = 0
        self.misfits = 0  # records without the header's number of cells
        self.blank_lines = 0
        self.last_line = fmt.data_line - 1
        self.samples: list[tuple[int, str]] = []
        self.notes: list[str] = []
        self._groups: dict[str, Group] = {}
        self._lengths: Counter[int] = Counter()
        self._store = duplicates if duplicates is not None else SqliteDuplicates()
        self._limit = self.options.example_limit
        self._sent = [(i, name) for i, name in enumerate(fmt.fields) if name is not None]
        self._phone_index: int | None = None
        if self.phone.name is not None and self.phone.name in fmt.fields:
            self._phone_index = fmt.fields.index(self.phone.name)
        self._other_phones = [
            (i, name) for i, name in self._sent if i != self._phone_index and is_phone_like(name)
        ]
        self._required = self._required_columns()
        self._file_level_checks()

    # --- file-level findings (the header, the mapping, the schema)

    def _required_columns(self) -> list[tuple[int, str]]:
        campaign = self.options.campaign
        required: list[tuple[int, str]] = []
        if campaign is None:
            return required
        wanted = {s.name for s in campaign.fields if s.required or s.name == campaign.key_field}
        for index, name in self._sent:
            if index != self._phone_index and campaign.resolve(name) in wanted:
                required.append((index, name))
        return required

    def _file_level_checks(self) -> None:
        fmt, phone, campaign = self.fmt, self.phone, self.options.campaign
        constants = [name for name, _ in fmt.constants]
        if phone.source is PhoneSource.NONE:
            self.notes.append(
                "no phone field: no field is named "
                + ", ".join(PHONE_NAMES)
                + "; give --phone-field to check phone numbers"
            )
        elif phone.name in constants:
            self.notes.append(f"the phone field {phone.name!r} is a constant (--set): not checked")
        elif self._phone_index is None:
            self._add(
                "phone-field-missing",
                Finding(
                    None,
                    f"--phone-field {phone.name!r}: no column maps to it; the columns are "
                    + listed(fmt.header)
                    + f"; map one with --map COLUMN={phone.name}",
                ),
            )
        if campaign is None:
            return
        where = f"campaign {campaign.id} ({campaign.name!r})"
        for index, (column, name) in enumerate(zip(fmt.header, fmt.fields, strict=True)):
            if name is not None and campaign.resolve(name) is None:
                how = (
                    f"column {_show(column)}"
                    if column == name
                    else f"column {_show(column)} as {_show(name)}"
                )
                key = map_key(fmt.header, index)
                self._add(
                    "schema-unknown-field",
                    Finding(
                        None,
                        f"{how}: {where} has no such field; rename it with "
                        f"--map {key}=FIELD or drop it with --map {key}=",
                        name,
                    ),
                )
        for name in constants:
            if campaign.resolve(name) is None:
                self._add(
                    "schema-unknown-field",
                    Finding(None, f"--set {name}=...: {where} has no such field", name),
                )
        if (
            phone.source is PhoneSource.OPTION
            and phone.name
            and campaign.resolve(phone.name) is None
        ):
            self._add(
                "schema-unknown-field",
                Finding(
                    None,
                    f"--phone-field {phone.name}: {where} has no such field; "
                    "the server refuses every record",
                    phone.name,
                ),
            )
        present = {campaign.resolve(name) for name in [*fmt.fields, *constants] if name}
        for spec in campaign.fields:
            # The key field unmapped is check.predict's no-phone-field, which says where it is.
            if spec.required and spec.name != campaign.key_field and spec.name not in present:
                label = f"{spec.name!r}" + (f" ({spec.display})" if spec.display else "")
                what = "the key field" if spec.name == campaign.key_field else "required field"
                self._add(
                    "schema-missing-required",
                    Finding(
                        None,
                        f"{what} {label} of {where}: no column maps to it; "
                        f"map one with --map COLUMN={spec.name}",
                        spec.name,
                    ),
                )

    # --- rows

    def _add(self, code: str, finding: Finding) -> None:
        group = self._groups.get(code)
        if group is None:
            group = self._groups[code] = Group(code)
        group.count += 1
        if self._limit is None or len(group.examples) < self._limit:
            group.examples.append(finding)

    def add_finding(self, code: str, finding: Finding) -> None:
        """Count a finding of a rule kept in a module of its own (``check.predict``)."""
        self._add(code, finding)

    def add_batch(self, batch: Batch) -> None:
        """Check a batch the reader made: its rows, and its blank lines."""
        self.blank_lines += batch.blank_lines
        self.add(batch.rows)

    def add(self, rows: Iterable[NewRow]) -> None:
        """Check a batch of rows (in file order)."""
        add = self._add
        phone_index = self._phone_index
        phone_name = self.phone.name
        max_length = self.options.max_length
        numbers: list[tuple[int, str]] = []
        lengths = self._lengths
        for row in rows:
            self.records += 1
            line = row.line
            self.last_line = line
            if row.state is not RowState.PENDING or row.record is None:
                self._invalid_row(row)
                continue
            cells, record = row.cells, row.record
            if row.repairs:
                self._repairs(line, row)
            if len(self.samples) < SAMPLE_RECORDS:
                self.samples.append((line, _sample(record)))
            # Both pre-tests look at the whole record at once: most rows pass them.
            if len(record) > max_length:
                self._long_values(line, cells)
            if _SCIENTIFIC_HINT.search(record):
                self._scientific_values(line, cells)
            if _FORMULA_HINT.search(record):
                self._formula_values(line, cells)
            if phone_index is not None:
                value = cells[phone_index]
                if not value:
                    add("required-empty", Finding(line, f"{phone_name} is empty", phone_name, ""))
                else:
                    verdict = examine_phone(value)
                    code = phone_code(verdict)
                    if code is not None:
                        add(code, _phone_finding(line, code, phone_name, value))
                    number = verdict.number
                    if number is not None:
                        numbers.append((line, number))
                        if number[0] != "+":
                            lengths[len(number)] += 1
            for index, name in self._other_phones:
                value = cells[index]
                if value and not (value.isdigit() and value.isascii()):
                    code = phone_code(examine_phone(value))
                    if code is not None:
                        add(code, _phone_finding(line, code, name, value))
            for index, name in self._required:
                if not cells[index]:
                    add("required-empty", Finding(line, f"{name} is empty", name, ""))
        if numbers:
            self._store.add(numbers)

    def _invalid_row(self, row: NewRow) -> None:
        self.invalid += 1
        width, cells = len(self.fmt.header), row.cells
        reason = row.reason or InvalidReason.CELLS
        # A row too long to read has its cells cut and a note after them: not a misfit.
        if reason is not InvalidReason.TOO_LONG and (
            len(cells) < width or (len(cells) > width and any(cells[width:]))
        ):
            self.misfits += 1
        self._add(invalid_code(reason), Finding(row.line, row.message or reason.value))

    def _repairs(self, line: int, row: NewRow) -> None:
        sent = dict(zip(self.fmt.fields, row.cells, strict=False))
        for repair in row.repairs:
            self._add(
                repaired_code(repair.kind),
                Finding(
                    line,
                    f"{repair.field} {_show(repair.original)} is sent as "
                    f"{_show(sent.get(repair.field, ''))}",
                    repair.field,
                    repair.original,
                ),
            )

    def _long_values(self, line: int, cells: tuple[str, ...]) -> None:
        limit = self.options.max_length
        for index, name in self._sent:
            value = cells[index]
            if len(value) > limit:
                self._add(
                    "value-too-long",
                    Finding(
                        line,
                        f"{name} has {len(value):,} characters (more than {limit:,})",
                        name,
                        value,
                    ),
                )

    def _formula_values(self, line: int, cells: tuple[str, ...]) -> None:
        for index, name in self._sent:
            value = cells[index]
            if _FORMULA.match(value):
                self._add(
                    "formula-like",
                    Finding(
                        line,
                        f"{name} {_show(value)} starts like a formula: a spreadsheet that "
                        "opens it runs it (sent as it is; a report marks it with ')",
                        name,
                        value,
                    ),
                )

    def _scientific_values(self, line: int, cells: tuple[str, ...]) -> None:
        for index, name in self._sent:
            value = cells[index].strip()
            if is_scientific(value):
                self._add(
                    "excel-scientific",
                    Finding(
                        line,
                        f"{name} {_show(value)} is in scientific notation: its digits are lost; "
                        "re-export the column as text",
                        name,
                        value,
                    ),
                )

    # --- the end

    def _truncated(self) -> None:
        total = sum(self._lengths.values())
        if total < TRUNCATED_MIN_NUMBERS:
            return
        length, count = self._lengths.most_common(1)[0]
        share = count / total
        short = self._lengths.get(length - 1, 0)
        if share < TRUNCATED_DOMINANT_SHARE or not short:
            return
        group = self._groups["phone-truncated"] = Group("phone-truncated", short)
        for line, number in self._store.of_length(length - 1, self._limit):
            group.examples.append(
                Finding(
                    line,
                    f"{self.phone.name} {_show(number)} has {length - 1} digits where "
                    f"{share:.0%} of the {total:,} numbers have {length}: Excel drops a "
                    "leading 0",
                    self.phone.name,
                    number,
                )
            )

    def _duplicates(self) -> None:
        count, examples = self._store.repeats(self._limit)
        if not count:
            return
        group = self._groups["duplicate-phone"] = Group("duplicate-phone", count)
        for line, number, first in examples:
            group.examples.append(
                Finding(
                    line,
                    f"{self.phone.name} {_show(number)} is already on {self.fmt.unit} {first}",
                    self.phone.name,
                    number,
                )
            )

    def finish(
        self,
        *,
        path: str,
        bom: bool = False,
        encoding_given: bool = False,
        delimiter_given: bool = False,
        sheet: SheetFacts | None = None,
        sheet_given: bool = False,
    ) -> CheckReport:
        """The report; closes the temporary database. ``sheet``: what reading a workbook's
        sheet found out (``None``, or empty facts, for a CSV file)."""
        try:
            if self._phone_index is not None:
                self._truncated()
                self._duplicates()
        finally:
            self.close()
        if sheet is not None and sheet.sheet is None:
            sheet = None
        if sheet is not None and sheet.formulas_without_value:
            self._formulas_without_value(sheet)
        groups = tuple(self._groups[code] for code in GROUP_TITLES if code in self._groups)
        notes = list(self.notes)
        if sheet is not None:
            notes.extend(sheet_notes(sheet, self.fmt.unit))
        if self.blank_lines:
            unit = self.fmt.unit
            lines = f"{self.blank_lines:,} blank {unit}{'s' if self.blank_lines != 1 else ''}"
            what = "only spaces" if sheet is not None else "only delimiters and spaces"
            notes.append(f"{lines} (empty, or {what}) skipped: not records")
        return CheckReport(
            path=path,
            format=self.fmt,
            bom=bom,
            encoding_given=encoding_given,
            delimiter_given=delimiter_given,
            records=self.records,
            invalid=self.invalid,
            last_line=self.last_line,
            fitting=self.records - self.misfits,
            phone=self.phone,
            campaign=self.options.campaign,
            samples=tuple(self.samples),
            groups=groups,
            notes=tuple(notes),
            blank_lines=self.blank_lines,
            sheet=sheet,
            sheet_given=sheet_given,
        )

    def _formulas_without_value(self, sheet: SheetFacts) -> None:
        count = sheet.formulas_without_value
        group = self._groups["formula-without-value"] = Group("formula-without-value", count)
        group.examples.append(
            Finding(
                sheet.first_formula_without_value,
                f"{count:,} formula cell{'s' if count != 1 else ''} of sheet "
                f"{shown(sheet.sheet or '')} "
                f"{'have' if count != 1 else 'has'} no saved value (the first in this row) and "
                f"read{'s' if count == 1 else ''} empty: open the workbook in Excel and save "
                "it, so that Excel computes and saves the values",
            )
        )

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Checker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _phone_finding(line: int, code: str, name: str | None, value: str) -> Finding:
    what = {
        "excel-decimal": "ends in .0; give --phone-field to repair it, or re-export as text",
        "excel-apostrophe": "starts with Excel's ' mark; give --phone-field to repair it",
        "phone-separators": "has separators; the dialer may want digits only",
        "phone-not-a-number": "is not a phone number",
    }[code]
    return Finding(line, f"{name} {_show(value)} {what}", name, value)
