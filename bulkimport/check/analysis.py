"""What ``run`` would read from a file, and every problem, with its line number.

``Checker`` consumes the ``NewRow`` batches that ``reader.read_batches`` yields, runs the
rules (``rules``: one each) over them and sorts what they find into groups; ``finish()`` turns
them into a ``CheckReport`` (``report``: data, ``to_json()``), which ``render`` puts in words.
``check_file`` ties it to the reader. Nothing is sent anywhere.

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
the normalisation above, no ``+``), when there are at least ``rules.TRUNCATED_MIN_NUMBERS``
of them and one length ``N`` covers at least ``rules.TRUNCATED_DOMINANT_SHARE`` of them, a
value of exactly ``N - 1`` digits looks truncated: Excel drops the leading zero of
``0755...`` or ``07911...``. Nothing else is called truncated (a 10-digit ``400`` service
number in a file of 11-digit mobile numbers is reported too: check those by eye).

Memory stays flat: examples are bounded per group (``example_limit``), and the phone numbers
needed for duplicates go to a ``storage.DuplicateStore`` (by default a private temporary SQLite
database on disk, ``storage.sqlite.duplicates``), not into a Python dict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

from bulkimport.campaign import Campaign, Schema
from bulkimport.check import rules
from bulkimport.check.facts import Note, PhoneChoice, PhoneSource
from bulkimport.check.report import CheckReport, Finding, Group, GroupCode
from bulkimport.check.requests import GetLimit
from bulkimport.errors import ConfigError
from bulkimport.protocol import RECORD_SEPARATOR
from bulkimport.reader import FileFormat, SheetFacts
from bulkimport.reader.limits import SHOWN_CHARS, clip
from bulkimport.reader.phones import is_phone_like
from bulkimport.rows import Batch, NewRow
from bulkimport.states import Allow, InvalidReason, RowState
from bulkimport.storage.interface import DuplicateStore
from bulkimport.storage.sqlite.duplicates import SqliteDuplicates

#: A value longer than this is reported; call-center fields are mostly ``varchar(255)``.
DEFAULT_MAX_LENGTH = 255
#: Examples kept per group (the count is always exact); ``None`` keeps every one.
DEFAULT_EXAMPLE_LIMIT = 100
#: Encoded records shown as samples.
SAMPLE_RECORDS = 3


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


class Checker:
    """Accumulates the findings about one file, batch by batch; use it as a context manager
    (it holds a ``DuplicateStore``) or call ``finish()``, which closes it. ``duplicates``:
    where the phone numbers go (a temporary SQLite file by default). Other rules
    (``check.predict``) say what they find through ``add`` and ``note``, as ``rules`` do."""

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
        self.notes: list[Note] = []
        self._groups: dict[GroupCode, Group] = {}
        self._store = duplicates if duplicates is not None else SqliteDuplicates()
        self._limit = self.options.example_limit
        sent = [(i, name) for i, name in enumerate(fmt.fields) if name is not None]
        not_phones_ok = Allow.NOT_PHONES in fmt.allow
        phone_index: int | None = None
        if self.phone.name is not None and self.phone.name in fmt.fields:
            phone_index = fmt.fields.index(self.phone.name)
        self._phones = (
            None
            if phone_index is None or self.phone.name is None
            else rules.PhoneNumbers(
                phone_index, self.phone.name, self._store, fmt.unit, self._limit, not_phones_ok
            )
        )
        self._repairs = rules.Repairs(fmt.fields)
        # Each looks at the whole record first: most rows pass that test.
        self._values = (
            rules.LongValues(sent, self.options.max_length),
            rules.ScientificValues(sent),
            rules.FormulaValues(sent),
        )
        cell_rules = (
            rules.OtherPhones(
                [(i, n) for i, n in sent if i != phone_index and is_phone_like(n)], not_phones_ok
            ),
            rules.RequiredValues(self._required_columns(sent, phone_index)),
        )
        # A rule with no column to look at is left out of the loop over every row.
        self._cells = tuple(rule for rule in cell_rules if rule.columns)
        rules.phone_field(fmt, self.phone, phone_index is not None, self)
        campaign = self.options.campaign
        if campaign is not None:
            rules.schema_fields(fmt, self.phone, campaign, self)
            rules.schema_required(fmt, campaign, self)

    def _required_columns(
        self, sent: list[tuple[int, str]], phone_index: int | None
    ) -> list[tuple[int, str]]:
        campaign = self.options.campaign
        if campaign is None:
            return []
        wanted = {s.name for s in campaign.fields if s.required or s.name == campaign.key_field}
        return [
            (index, name)
            for index, name in sent
            if index != phone_index and campaign.resolve(name) in wanted
        ]

    # --- what rules say (rules.Sink)

    def add(self, code: GroupCode, finding: Finding) -> None:
        """Count ``finding`` in group ``code``; keep it while the group has room for examples."""
        group = self._groups.get(code)
        if group is None:
            group = self._groups[code] = Group(code)
        group.count += 1
        if self._limit is None or len(group.examples) < self._limit:
            group.examples.append(finding)

    def note(self, fact: Note) -> None:
        """Say ``fact`` once for the file."""
        self.notes.append(fact)

    # --- rows

    def add_batch(self, batch: Batch) -> None:
        """Check a batch the reader made: its rows, and its blank lines."""
        self.blank_lines += batch.blank_lines
        self.add_rows(batch.rows)

    def add_rows(self, rows: Iterable[NewRow]) -> None:
        """Check a batch of rows (in file order)."""
        phones, values, cells_rules = self._phones, self._values, self._cells
        for row in rows:
            self.records += 1
            line = self.last_line = row.line
            if row.state is not RowState.PENDING or row.record is None:
                self._invalid_row(row)
                continue
            cells, record = row.cells, row.record
            self._repairs.check(row, self)
            if len(self.samples) < SAMPLE_RECORDS:
                self.samples.append((line, _sample(record)))
            for rule in values:
                rule.check(line, record, cells, self)
            if phones is not None:
                phones.check(line, cells, self)
            for cells_rule in cells_rules:
                cells_rule.check(line, cells, self)
        if phones is not None:
            phones.flush()

    def _invalid_row(self, row: NewRow) -> None:
        self.invalid += 1
        width, cells = len(self.fmt.header), row.cells
        # A row too long to read has its cells cut and a note after them: not a misfit.
        if row.reason is not InvalidReason.TOO_LONG and (
            len(cells) < width or (len(cells) > width and any(cells[width:]))
        ):
            self.misfits += 1
        self.add(*rules.refused(row))

    # --- the end

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
        """The report; closes the duplicate store. ``sheet``: what reading a workbook's
        sheet found out (``None``, or empty facts, for a CSV file)."""
        try:
            if self._phones is not None:
                for code, count, examples in self._phones.finish():
                    self._groups[code] = Group(code, count, examples)
        finally:
            self.close()
        if sheet is not None and sheet.sheet is None:
            sheet = None
        notes = list(self.notes)
        if sheet is not None:
            if sheet.formulas_without_value:
                code = GroupCode.FORMULA_WITHOUT_VALUE
                count = sheet.formulas_without_value
                self._groups[code] = Group(code, count, [rules.formulas_without_value(sheet)])
            notes.extend(rules.sheet_notes(sheet, self.fmt.unit))
        blank = rules.blank_lines(self.blank_lines, self.fmt.unit, sheet is not None)
        if blank is not None:
            notes.append(blank)
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
            groups=tuple(self._groups[code] for code in GroupCode if code in self._groups),
            said=tuple(notes),
            blank_lines=self.blank_lines,
            sheet=sheet,
            sheet_given=sheet_given,
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
    required field if it is named like a phone, else a field named like ``rules.PHONE_NAMES``
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
    for wanted in rules.PHONE_NAMES:
        if wanted in lowered:
            return PhoneChoice(lowered[wanted], PhoneSource.NAME)
    return PhoneChoice(None, PhoneSource.NONE)


def _sample(record: str) -> str:
    """An encoded record shown as a sample: each value cut as a message cuts it."""
    if len(record) <= SHOWN_CHARS:
        return record
    parts = []
    for part in record.split(RECORD_SEPARATOR):
        name, equals, value = part.partition("=")
        parts.append(f"{clip(name)}{equals}{clip(value)}")
    return RECORD_SEPARATOR.join(parts)
