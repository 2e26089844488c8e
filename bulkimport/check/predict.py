"""The reasons ``run`` would reject or stop a whole file for, found without sending.

``check`` exits 0 only for a file that ``run`` sends without a systematic stop. Besides the
rules of ``analysis`` (what the reader marks invalid, what the campaign's schema refuses),
``Predictor`` finds, each as a group of findings with its fix:

==========================  ===================================================================
``no-phone-field``          no column maps to the phone field (``phone1``; with ``--schema``,
                            the campaign's key field): every record is refused. The finding
                            says where one is: a column named like a phone (``手机``,
                            ``Mobile``: ``--map '手机=phone1'``), a column whose values look
                            like phone numbers, or (a workbook) another sheet with such a
                            column (``--sheet Leads``)
``header-unknown``          (without ``--schema``) no column is named as a field of the
                            vendor's campaign (``fieldnames.VENDOR_FIELDS``): the server
                            refuses every record; the finding gives the ``--map`` options the
                            table suggests (``--map '姓名=name' --map '手机=phone1'``)
``request-too-long``        (``--method get``) a record whose request line would be longer
                            than the server takes (``--max-get-bytes``): run rejects it
                            without sending it; ``--method post`` carries it
==========================  ===================================================================

Columns the table knows by another name than the campaign's are a note when the file has
other, known names (the campaign may have a field of that name: ``--schema`` tells).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Iterable
from pathlib import Path

from bulkimport.check.analysis import Checker
from bulkimport.check.facts import (
    HoldsPhones,
    KeyHint,
    NamedLikeKey,
    NoKeyField,
    NoVendorField,
    OtherSheet,
    PhoneSource,
    RequestTooLong,
    SchemaNames,
    VendorNames,
)
from bulkimport.check.fieldnames import (
    Suggestion,
    is_vendor_name,
    suggest_mapping,
    vendor_field,
    vendor_names,
)
from bulkimport.check.report import Finding, GroupCode
from bulkimport.errors import BulkImportError
from bulkimport.reader import (
    FileFormat,
    InputKind,
    ReaderOptions,
    SheetFacts,
    map_key,
    sniff_format,
)
from bulkimport.reader.phones import examine_phone, is_phone_like
from bulkimport.rows import NewRow
from bulkimport.states import RowState

#: The phone field of the vendor's stock campaign (its key).
VENDOR_PHONE = "phone1"
#: Rows whose values are sampled to find a column of phone numbers ...
SAMPLE_ROWS = 200
#: ... in which at least this share of a column's values (and ``MIN_SAMPLED`` of them) are.
PHONE_SHARE = 0.8
MIN_SAMPLED = 3
#: Digits a phone number has (ITU E.164: 15 at most; 7 for a local number).
PHONE_DIGITS = (7, 15)
#: Other sheets of a workbook whose header is read to find the phone field (a workbook may
#: have thousands of sheets: the first ones are where a person put the leads).
SHEETS_LOOKED_AT = 20
#: A date, which is digits and separators too.
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4}")
#: The most bytes a character takes in a URL-encoded query (4 UTF-8 bytes, %XX each).
_MAX_ENCODED_CHAR = 12


def looks_like_phone(value: str) -> bool:
    """Whether ``value`` reads as a phone number: 7 to 15 digits, with separators, a leading
    ``+``, Excel's ``.0`` or ``'`` allowed; a date is not one."""
    number = examine_phone(value).number
    if number is None or _DATE.fullmatch(value.strip()):
        return False
    digits = len(number.lstrip("+"))
    return PHONE_DIGITS[0] <= digits <= PHONE_DIGITS[1]


class Predictor:
    """The rules above, over the rows a ``Checker`` checks: ``add`` each batch's rows,
    then ``finish``; findings go into the checker's groups, notes into its notes."""

    def __init__(
        self, checker: Checker, path: Path | None = None, reader: ReaderOptions | None = None
    ) -> None:
        self.checker = checker
        self.fmt = checker.fmt
        self.path = path
        self.reader = reader or ReaderOptions()
        campaign = checker.options.campaign
        self.campaign = campaign
        #: The field every record needs: the campaign's key, or the vendor's phone field.
        self.key = campaign.key_field if campaign is not None else VENDOR_PHONE
        self._sent = [
            (index, column, name)
            for index, (column, name) in enumerate(
                zip(self.fmt.header, self.fmt.fields, strict=True)
            )
            if name is not None
        ]
        self._limit = checker.options.get_limit
        self._fixed = self._limit.line_bytes("") if self._limit is not None else 0
        self._sampled = 0
        self._sendable = 0  # rows run would send: without any, nothing is refused
        self._values = [0] * len(self.fmt.header)
        self._phones = [0] * len(self.fmt.header)
        self.missing_key = self._key_missing()

    # --- what the file maps

    def _names(self) -> list[str]:
        return [name for *_, name in self._sent] + [name for name, _ in self.fmt.constants]

    def _key_missing(self) -> bool:
        names = self._names()
        if self.campaign is not None:
            campaign = self.campaign
            return not any(campaign.resolve(name) == self.key for name in names)
        phone = self.checker.phone
        # --phone-field that no column maps to is analysis's phone-field-missing already.
        return phone.source is PhoneSource.NONE

    # --- rows

    def add(self, rows: Iterable[NewRow]) -> None:
        limit = self._limit
        sample = self.missing_key and self._sampled < SAMPLE_ROWS
        if limit is None and not sample and self._sendable:
            return
        cheap = (limit.max_bytes - self._fixed) // _MAX_ENCODED_CHAR if limit is not None else 0
        for row in rows:
            if row.state is not RowState.PENDING or row.record is None:
                continue
            self._sendable += 1
            if sample and self._sampled < SAMPLE_ROWS:
                self._sample(row.cells)
            if limit is not None and len(row.record) > cheap:
                size = limit.line_bytes(row.record)
                if size > limit.max_bytes:
                    self.checker.add(
                        GroupCode.REQUEST_TOO_LONG,
                        Finding(row.line, RequestTooLong(size, limit.max_bytes)),
                    )

    def _sample(self, cells: tuple[str, ...]) -> None:
        self._sampled += 1
        for index, value in enumerate(cells[: len(self._values)]):
            if value:
                self._values[index] += 1
                if looks_like_phone(value):
                    self._phones[index] += 1

    # --- the end

    def finish(self, facts: SheetFacts | None = None) -> None:
        if not self._sendable:
            return
        if self.missing_key:
            self._no_key(facts)
        if self.campaign is None:
            self._header()
        else:
            self._schema_names()

    def _no_key(self, facts: SheetFacts | None) -> None:
        hint = self._key_column() or self._key_values()
        if hint is None and facts is not None:
            hint = self._other_sheet(facts)
        fact = NoKeyField(self.key, self.campaign, hint)
        self.checker.add(GroupCode.NO_PHONE_FIELD, Finding(None, fact, self.key))

    def _wanted(self, column: str) -> int:
        """How well ``column``'s name says it holds the key field: 2 by its name in the
        table (``手机`` for ``phone1``), 1 named like a phone, 0 not."""
        wanted = vendor_field(self.key)
        spec = vendor_field(column)
        if column == self.key or (wanted is not None and spec is wanted):
            return 2
        if wanted is not None and wanted.phone and (is_phone_like(column) or (spec and spec.phone)):
            return 1
        if wanted is None and self.campaign is not None:
            return 2 if self.campaign.resolve(column) == self.key else 0
        return 0

    def _suggest(self, index: int, column: str) -> str:
        key = map_key(self.fmt.header, index)
        return Suggestion(key, column, self.key).option

    def _key_column(self) -> KeyHint | None:
        """The column of this file best named as the key field: ``--map '手机=phone1'``."""
        ranked = sorted(
            (
                (-self._wanted(column), index, column)
                for index, column in enumerate(self.fmt.header)
                if column and self._wanted(column)
            )
        )
        for _, index, column in ranked[:1]:
            return NamedLikeKey(column, self._suggest(index, column))
        return None

    def _key_values(self) -> KeyHint | None:
        """A column whose values look like phone numbers (when the key field is a phone)."""
        wanted = vendor_field(self.key)
        if wanted is None or not wanted.phone:
            return None
        for index, column in enumerate(self.fmt.header):
            values, phones = self._values[index], self._phones[index]
            if values >= MIN_SAMPLED and phones >= PHONE_SHARE * values:
                return HoldsPhones(column, phones, values, self._suggest(index, column))
        return None

    def _other_sheet(self, facts: SheetFacts) -> KeyHint | None:
        """Another sheet of the workbook whose header has a column named as the key field:
        ``sheet 3 'Leads' has a phone1 column: --sheet Leads``."""
        if self.path is None or self.fmt.kind is not InputKind.XLSX:
            return None
        for info in facts.sheets[:SHEETS_LOOKED_AT]:
            if info.name == facts.sheet or info.kind != "worksheet":
                continue
            options = dataclasses.replace(
                self.reader, sheet=str(info.number), rename=(), constants=(), skip_rows=0
            )
            try:
                fmt = sniff_format(self.path, options)
            except BulkImportError:
                continue  # a sheet with no header, titles above it...: not the one
            ranked = sorted(
                (-self._wanted(column), index, column)
                for index, column in enumerate(fmt.header)
                if column and self._wanted(column)
            )
            if not ranked:
                continue
            _, index, column = ranked[0]
            option = f"--sheet {shlex.quote(info.name)}"
            if column != self.key:
                option += " " + Suggestion(map_key(fmt.header, index), column, self.key).option
            return OtherSheet(info, column, option)
        return None

    def _header(self) -> None:
        """Without a schema: no column named as a vendor field is a problem; known names
        that the campaign may lack are a note."""
        columns = [
            (map_key(self.fmt.header, index), column, name) for index, column, name in self._sent
        ]
        suggestions = tuple(suggest_mapping(columns))
        if not any(is_vendor_name(name) for name in self._names()):
            fact = NoVendorField(vendor_names(), suggestions)
            self.checker.add(GroupCode.HEADER_UNKNOWN, Finding(None, fact))
        elif suggestions:
            self.checker.note(VendorNames(suggestions))

    def _schema_names(self) -> None:
        """With a schema: the columns it does not know (``schema-unknown-field``) that the
        table takes for one of its fields, and the ``--map`` that sends them as that field."""
        campaign = self.campaign
        assert campaign is not None
        found = []
        for index, column, name in self._sent:
            if campaign.resolve(name) is not None:
                continue
            spec = vendor_field(name)
            if spec is None:
                continue
            # The campaign's own field of that meaning, by any name the table has for it
            # (a campaign whose display name for fullname is 姓名 takes a name column).
            fields = (campaign.resolve(n) for n in (*spec.names, *spec.aliases))
            field = next((f for f in fields if f is not None), None)
            if field is not None and not any(campaign.resolve(n) == field for n in self._names()):
                found.append(Suggestion(map_key(self.fmt.header, index), column, field))
        if found:
            self.checker.note(SchemaNames(campaign, tuple(found)))


def key_fix(fmt: FileFormat) -> list[str]:
    """The ``--map`` options that send a file's columns as the vendor's fields (for a stop
    message of ``run``): those the table suggests, in the file's order."""
    columns = [
        (map_key(fmt.header, index), column, name)
        for index, (column, name) in enumerate(zip(fmt.header, fmt.fields, strict=True))
        if name is not None
    ]
    return [s.option for s in suggest_mapping(columns)]
