"""``check``'s words, all of them: the titles of the groups, each fact (``facts``) as a
finding's message or a note, and what the text report says of the file as a whole.

``report`` (its JSON too) and ``text`` (the report laid out for a person) take their
sentences from here; this module knows the facts, not the report.
"""

from __future__ import annotations

from typing import assert_never

from bulkimport.campaign import Campaign
from bulkimport.check.facts import (
    BlankLines,
    Date1904,
    Empty,
    Fact,
    FormulaLike,
    FormulasWithoutValue,
    HeaderControls,
    HiddenInExcel,
    HoldsPhones,
    KeyHint,
    MergedRanges,
    MissingRequired,
    NamedLikeKey,
    NoKeyField,
    NoPhoneField,
    Note,
    NoVendorField,
    OtherSheet,
    OtherSheets,
    PhoneChoice,
    PhoneDamage,
    PhoneFieldConstant,
    PhoneFieldMissing,
    PhoneSource,
    Refused,
    Repaired,
    Repeated,
    RequestTooLong,
    SchemaNames,
    Scientific,
    TooLong,
    Truncated,
    UnknownColumn,
    UnknownConstant,
    UnknownPhoneField,
    VendorNames,
)
from bulkimport.reader import FileFormat, SheetFacts
from bulkimport.reader.limits import listed, shown
from bulkimport.reader.phones import PhoneShape
from bulkimport.states import RepairKind

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
    "invalid-not-a-phone": "a phone field that holds no phone number (not sent)",
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
"""The title of each group (``report.GroupCode``), as its heading says it."""

_CONTROL_NAMES = {
    "\x0c": "a form feed (a printed report's page break)",
    "\x0b": "a vertical tab",
    "\x00": "a NUL byte",
}


def message(fact: Fact) -> str:
    """A finding's message: one line that says what is wrong, and what to do about it."""
    match fact:
        case Refused(reason, said):
            return said or reason.value
        case Repaired(name, original, sent):
            return f"{name} {shown(original)} is sent as {shown(sent)}"
        case Empty(name):
            return f"{name} is empty"
        case TooLong(name, length, limit):
            return f"{name} has {length:,} characters (more than {limit:,})"
        case FormulaLike(name, value):
            return (
                f"{name} {shown(value)} starts like a formula: a spreadsheet that opens it runs "
                "it (sent as it is; a report marks it with ')"
            )
        case Scientific(name, value):
            return (
                f"{name} {shown(value)} is in scientific notation: its digits are lost; "
                "re-export the column as text"
            )
        case PhoneDamage(name, value, verdict):
            if RepairKind.APOSTROPHE in verdict.repairs:
                what = "starts with Excel's ' mark; give --phone-field to repair it"
            elif verdict.repairs:
                what = "ends in .0; give --phone-field to repair it, or re-export as text"
            elif verdict.shape is PhoneShape.SEPARATED:
                what = "has separators; the dialer may want digits only"
            else:
                what = "is not a phone number"
            return f"{name} {shown(value)} {what}"
        case Truncated(name, number, digits, usual, share, total):
            return (
                f"{name} {shown(number)} has {digits} digits where {share:.0%} of the "
                f"{total:,} numbers have {usual}: Excel drops a leading 0"
            )
        case Repeated(name, number, first, unit):
            return f"{name} {shown(number)} is already on {unit} {first}"
        case RequestTooLong(size, max_bytes):
            return (
                f"its GET request line would be about {size:,} bytes, over the {max_bytes:,} "
                "the server takes (--max-get-bytes): run rejects it without sending it; "
                "--method post carries it"
            )
        case FormulasWithoutValue(count, sheet):
            return (
                f"{count:,} formula cell{'s' if count != 1 else ''} of sheet {shown(sheet)} "
                f"{'have' if count != 1 else 'has'} no saved value (the first in this row) and "
                f"read{'s' if count == 1 else ''} empty: open the workbook in Excel and save "
                "it, so that Excel computes and saves the values"
            )
        case PhoneFieldMissing(name, header):
            return (
                f"--phone-field {name!r}: no column maps to it; the columns are "
                + listed(header)
                + f"; map one with --map COLUMN={name}"
            )
        case UnknownColumn(column, name, key, campaign):
            how = f"column {shown(column)}"
            if column != name:
                how += f" as {shown(name)}"
            return (
                f"{how}: {_campaign(campaign)} has no such field; rename it with "
                f"--map {key}=FIELD or drop it with --map {key}="
            )
        case UnknownConstant(name, campaign):
            return f"--set {name}=...: {_campaign(campaign)} has no such field"
        case UnknownPhoneField(name, campaign):
            return (
                f"--phone-field {name}: {_campaign(campaign)} has no such field; "
                "the server refuses every record"
            )
        case MissingRequired(spec, campaign):
            label = f"{spec.name!r}" + (f" ({spec.display})" if spec.display else "")
            what = "the key field" if spec.name == campaign.key_field else "required field"
            return (
                f"{what} {label} of {_campaign(campaign)}: no column maps to it; "
                f"map one with --map COLUMN={spec.name}"
            )
        case NoKeyField(key, campaign, hint):
            if campaign is not None:
                where = f"the key field {key!r} of campaign {campaign.id}"
            else:
                where = f"the phone field ({key}, the campaign's key)"
            if hint is not None:
                fix = _hint(hint)
            elif campaign is None:
                fix = f"map the column of phone numbers with --map COLUMN={key}"
            else:
                fix = f"map the column that holds it with --map COLUMN={key}"
            return f"no column maps to {where}: the server refuses every record; {fix}"
        case NoVendorField(names, suggestions):
            options = " ".join(s.option for s in suggestions)
            fix = (
                f"map them: {options}" if suggestions else "map them with --map COLUMN=FIELD"
            ) + " (or check with --schema against the campaign's own fields)"
            return (
                "no column is named as a field of the vendor's campaign ("
                + ", ".join(names)
                + f"): the server refuses every record; {fix}"
            )
        case _:
            assert_never(fact)


def note(fact: Note) -> str:
    """A note: what run does (or what check leaves out) that a person should know."""
    match fact:
        case NoPhoneField(names):
            return (
                "no phone field: no field is named "
                + ", ".join(names)
                + "; give --phone-field to check phone numbers"
            )
        case PhoneFieldConstant(name):
            return f"the phone field {name!r} is a constant (--set): not checked"
        case HeaderControls(chars):
            what = ", ".join(_CONTROL_NAMES.get(char, repr(char)) for char in chars)
            return (
                f"the header (or a line above it) holds {what}: trimmed off the column "
                "names, as spaces are"
            )
        case BlankLines(count, unit, workbook):
            lines = f"{count:,} blank {unit}{'s' if count != 1 else ''}"
            what = "only spaces" if workbook else "only delimiters and spaces"
            return f"{lines} (empty, or {what}) skipped: not records"
        case OtherSheets(count, sheet, others):
            listed_others = ", ".join(
                f"{info.number} {shown(info.name)}" + ("" if info.visible else f" ({info.state})")
                for info in others
            )
            return (
                f"the workbook has {count} sheets; {shown(sheet)} was read, "
                f"not {listed_others} (--sheet NAME or --sheet N reads another)"
            )
        case HiddenInExcel(rows, first_row, columns, unit):
            hidden = []
            if rows:
                hidden.append(
                    f"{rows:,} {unit}{'s' if rows != 1 else ''} (the first is {unit} {first_row})"
                )
            if columns:
                hidden.append(f"column{'s' if len(columns) > 1 else ''} {', '.join(columns)}")
            return (
                f"hidden in Excel: {' and '.join(hidden)}; they are read and sent like the others"
            )
        case MergedRanges(count, ranges):
            shown_ranges = ", ".join(ranges[:5]) + (", ..." if count > 5 else "")
            return (
                f"{count} merged range{'s' if count > 1 else ''} ({shown_ranges}): the value "
                "is in the top-left cell; the other cells of a range read empty"
            )
        case Date1904():
            return (
                "the workbook counts dates from 1904 (Excel for Mac): dates are read as the "
                "sheet shows them"
            )
        case VendorNames(suggestions):
            return (
                "columns the vendor's campaign knows by another name: "
                + ", ".join(f"{shown(s.column)} ({s.field})" for s in suggestions)
                + "; unless the campaign has fields of these names, "
                + " ".join(s.option for s in suggestions)
                + " (--schema checks against its fields)"
            )
        case SchemaNames(campaign, suggestions):
            return (
                f"columns campaign {campaign.id} may know by another name: "
                + ", ".join(f"{shown(s.column)} ({s.field})" for s in suggestions)
                + ": "
                + " ".join(s.option for s in suggestions)
            )
        case _:
            assert_never(fact)


def _campaign(campaign: Campaign) -> str:
    return f"campaign {campaign.id} ({campaign.name!r})"


def _hint(hint: KeyHint) -> str:
    """Where the key field is, and the option that sends it."""
    match hint:
        case NamedLikeKey(column, option):
            return f"column {shown(column)} is named like it: {option}"
        case HoldsPhones(column, phones, values, option):
            return (
                f"column {shown(column)} holds phone numbers ({phones} of the first {values} "
                f"values): {option}"
            )
        case OtherSheet(sheet, column, option):
            hidden = "" if sheet.visible else f" ({sheet.state})"
            return (
                f"sheet {sheet.number} {shown(sheet.name)}{hidden} has a {shown(column)} "
                f"column: {option}"
            )
        case _:
            assert_never(hint)


def encoding(fmt: FileFormat, source: str) -> str:
    """The file's encoding and how it was decided (``CheckReport.encoding_source``)."""
    if source == "option":
        return f"{fmt.encoding} (given with --encoding)"
    if source == "bom":
        return f"{fmt.encoding} with a byte-order mark (certain)"
    if fmt.encoding == "utf-8" and fmt.encoding_confidence >= 1.0:
        return "utf-8, no byte-order mark (certain: it decodes as UTF-8)"
    text = f"{fmt.encoding} (detected, {fmt.encoding_confidence:.0%} sure)"
    if fmt.encoding_confidence < 0.8:
        text += "; if the names look wrong, try --encoding gb18030 (or big5, cp1252)"
    return text


def delimiter(fmt: FileFormat, given: bool, fitting: int, records: int) -> str:
    """The delimiter, how it was decided, and how many records it fits."""
    char = "tab" if fmt.delimiter == "\t" else repr(fmt.delimiter)
    how = "given with --delimiter" if given else "sniffed"
    return (
        f"{char} ({how}; {fitting:,} of {records:,} records have the header's "
        f"{len(fmt.header)} cells)"
    )


def sheet(facts: SheetFacts, given: bool) -> str:
    """The sheet read, and how it was chosen."""
    info = next((info for info in facts.sheets if info.name == facts.sheet), None)
    number = f"sheet {info.number} of {len(facts.sheets)}" if info is not None else "a sheet"
    how = "given with --sheet" if given else "the first visible; --sheet chooses another"
    return f"{shown(facts.sheet or '')} ({number}, {how})"


def records(fmt: FileFormat, count: int, invalid: int, last_line: int) -> str:
    """How many records, on which lines, and how many are readable."""
    span = f"{fmt.unit}s {fmt.data_line:,}-{last_line:,}" if count else "no records"
    return f"{count:,} ({span}): {count - invalid:,} readable, {invalid:,} invalid"


def phone(choice: PhoneChoice, campaign: Campaign | None) -> str:
    """The phone field, and why that one."""
    if choice.source is PhoneSource.OPTION:
        return f"{choice.name} (given with --phone-field)"
    if choice.source is PhoneSource.SCHEMA and campaign is not None:
        return f"{choice.name} (the phone field campaign {campaign.id} requires)"
    if choice.source is PhoneSource.NAME:
        return f"{choice.name} (found by its name; --phone-field chooses another)"
    return "none (no phone checks; give --phone-field)"


def more(count: int) -> str:
    """Findings of a group left out of the text."""
    return f"... and {count:,} more (--all lists every one)"


def summary(records: int, problems: int, groups: int) -> str:
    """The last line: what was found (``groups``: of problems) in how many records."""
    if not problems:
        return f"No problems in {records:,} records; nothing was sent."
    return (
        f"Found {problems:,} problem{'s' if problems != 1 else ''} in "
        f"{groups} group{'s' if groups != 1 else ''} ({records:,} records); nothing was sent."
    )
