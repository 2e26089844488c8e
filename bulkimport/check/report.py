"""What a check found, as data: the group codes, the findings in their groups, the report, and
the report as JSON (its shape is a contract: scripts read it).

A finding holds a fact (``facts``); its ``message``, a group's ``title`` and the report's
``notes`` are the fact put in words by ``render``, the one place ``check``'s sentences are
made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bulkimport.campaign import Campaign
from bulkimport.check import render
from bulkimport.check.facts import Fact, Note, PhoneChoice, hidden_column_names
from bulkimport.reader import FileFormat, SheetFacts
from bulkimport.reader.limits import SHOWN_CHARS, clip
from bulkimport.states import InvalidReason, RepairKind


class GroupCode(StrEnum):
    """The groups of findings, in the order a report lists them (stable: scripts may rely on
    the codes; ``analysis`` says what each finds)."""

    SCHEMA_UNKNOWN_FIELD = "schema-unknown-field"
    SCHEMA_MISSING_REQUIRED = "schema-missing-required"
    PHONE_FIELD_MISSING = "phone-field-missing"
    NO_PHONE_FIELD = "no-phone-field"
    HEADER_UNKNOWN = "header-unknown"
    REQUEST_TOO_LONG = "request-too-long"
    # One per InvalidReason (invalid_code).
    INVALID_CELLS = "invalid-cells"
    INVALID_PIPE = "invalid-pipe"
    INVALID_NO_VALUES = "invalid-no-values"
    INVALID_ENCODING = "invalid-encoding"
    INVALID_CSV = "invalid-csv"
    INVALID_UNCLOSED_QUOTE = "invalid-unclosed-quote"
    INVALID_PHONE_DIGITS_LOST = "invalid-phone-digits-lost"
    INVALID_PHONE_UNREPAIRED = "invalid-phone-unrepaired"
    INVALID_TOO_LONG = "invalid-too-long"
    INVALID_OTHER_ENCODING = "invalid-other-encoding"
    INVALID_INCOMPLETE_LINE = "invalid-incomplete-line"
    INVALID_NUL = "invalid-nul"
    INVALID_VALUE_TYPE = "invalid-value-type"
    INVALID_UNREPAIRED = "invalid-unrepaired"
    INVALID_CONTROL_CHARACTERS = "invalid-control-characters"
    INVALID_PHONE_SHORT = "invalid-phone-short"
    INVALID_PHONE_LONG = "invalid-phone-long"
    INVALID_TOTALS_ROW = "invalid-totals-row"
    INVALID_NOT_A_PHONE = "invalid-not-a-phone"
    # One per RepairKind (repaired_code): notes, not problems.
    REPAIRED_DECIMAL = "repaired-decimal"
    REPAIRED_APOSTROPHE = "repaired-apostrophe"
    REPAIRED_TEXT_FORMULA = "repaired-text-formula"
    REPAIRED_CONTROL_PADDING = "repaired-control-padding"
    REQUIRED_EMPTY = "required-empty"
    EXCEL_SCIENTIFIC = "excel-scientific"
    EXCEL_DECIMAL = "excel-decimal"
    EXCEL_APOSTROPHE = "excel-apostrophe"
    PHONE_SEPARATORS = "phone-separators"
    PHONE_NOT_A_NUMBER = "phone-not-a-number"
    PHONE_TRUNCATED = "phone-truncated"
    DUPLICATE_PHONE = "duplicate-phone"
    VALUE_TOO_LONG = "value-too-long"
    FORMULA_WITHOUT_VALUE = "formula-without-value"
    FORMULA_LIKE = "formula-like"  # a note

    @property
    def problem(self) -> bool:
        """A problem to fix, or a note on what run does: a file with notes only is clean."""
        return self is not GroupCode.FORMULA_LIKE and not self.startswith("repaired-")


def invalid_code(reason: InvalidReason) -> GroupCode:
    """The group of a row the reader marked invalid."""
    return GroupCode(f"invalid-{reason.value}")


def repaired_code(kind: RepairKind) -> GroupCode:
    """The group of the values the reader repaired this way."""
    return GroupCode(f"repaired-{kind.value}")


@dataclass(frozen=True)
class Finding:
    """One finding: where (``line`` is ``None`` for the file as a whole), what (``fact``), and
    the field and value it is about."""

    line: int | None
    fact: Fact
    field: str | None = None
    value: str | None = None

    def __post_init__(self) -> None:
        # A value is kept to be shown: cut to what shows it (a cell can be 32,767 long).
        if self.value is not None and len(self.value) > SHOWN_CHARS:
            object.__setattr__(self, "value", clip(self.value))

    @property
    def message(self) -> str:
        return render.message(self.fact)

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

    code: GroupCode
    count: int = 0
    examples: list[Finding] = field(default_factory=list)

    @property
    def title(self) -> str:
        return render.GROUP_TITLES[self.code]

    @property
    def problem(self) -> bool:
        """A problem to fix, or a note on what run does (``GroupCode.problem``)."""
        return self.code.problem

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
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
    said: tuple[Note, ...]  # the notes, as facts (``notes``: in words)
    blank_lines: int = 0  # lines that are not records: empty, spaces, bare delimiters
    sheet: SheetFacts | None = None  # what reading a workbook's sheet found out
    sheet_given: bool = False  # the sheet was chosen with --sheet

    @property
    def notes(self) -> tuple[str, ...]:
        """The notes: what run does that a person should know, said once for the file."""
        return tuple(render.note(fact) for fact in self.said)

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
