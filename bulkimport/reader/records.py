"""From the cells of one record of the file to the row that is stored: the one record encoder.

``RecordMaker`` encodes exactly as ``protocol.encode_record`` would, but fast: the names
were checked once (when the header was mapped), so a record can only fail on a value holding
``|``, and counting the ``|`` of the joined record tells whether one does. Such a record, and
only such a one, goes through ``encode_record`` for its verdict and message.

Values are trimmed of the whitespace around them (spaces, tabs, the no-break space U+00A0,
the ideographic space U+3000: ``str.strip``) unless the format keeps spaces. A record whose
cells are all empty or blank (or Excel's empty text, ``=""``, as some exports write an empty
cell) is no row at all: ``make`` returns ``None`` and counts it in ``blank_records``.

The numbers of the format's phone fields are examined (``phones.examine_phone``): one whose
digits Excel lost makes the row invalid; Excel's ``.0`` and ``'`` are taken out, the row
says so in ``NewRow.repairs`` and ``repaired`` counts them per kind (or, if the format does
not repair, the row is invalid). A record whose phone numbers are all digits never pays for
more than one ``isdigit``.

Every sent value is judged by the rules of ``values``, once, here: Excel's text formula
``="..."`` is repaired (counted in ``repaired``), control characters around a value taken
away (counted), and a value with control characters inside, a totals row, a phone number far
shorter than its column's usual length (``FileFormat.usual_lengths``) make the row invalid,
unless ``FileFormat.allow`` lets them through. A record pays for these with one ``join``, one
``isprintable`` and one set look-up; those that may hold any take the general path.

``cells_rebuilder`` is the way back, for the formats that lose nothing on the way: it gives a
row's cells back from its record, so storage need not keep them twice.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from itertools import compress
from types import MappingProxyType

from bulkimport.errors import RecordError
from bulkimport.protocol import RECORD_SEPARATOR, decode_record, encode_record
from bulkimport.reader.format import FileFormat
from bulkimport.reader.limits import shown
from bulkimport.reader.phones import PhoneShape, examine_phone
from bulkimport.reader.values import (
    FAR_LONG,
    FAR_SHORT,
    PHONE_DIGITS,
    SUSPECT,
    TOTALS_CELLS,
    control_characters,
    text_formula,
    totals_label,
    unpad,
)
from bulkimport.rows import REPORT_COLUMNS, NewRow, Repair, revive
from bulkimport.states import Allow, InvalidReason, RepairKind, RowState

_new_tuple = tuple.__new__
EXTRA_COLUMN = REPORT_COLUMNS[0]
_PENDING = RowState.PENDING
_NOTHING_PADDED: Mapping[int, str] = MappingProxyType({})
_INVALID = RowState.INVALID

#: ``maker()``'s function: the row of a record starting at a line, from its cells as read
#: (the csv parser's list, a sheet row's tuple), or ``None`` for a blank record.
MakeRow = Callable[[int, Sequence[str]], NewRow | None]


class RecordMaker:
    """Turns the cells of one record of a file of format ``fmt`` into its ``NewRow``.

    ``template`` (``name=%s||phone1=%s...``) encodes, in one C call, the common record that
    has every cell of the header and no empty one; a record with empty cells joins the
    others in C too; anything else (a wrong number of cells, a ``|`` in a value, a blank
    record) takes the general path, ``make``.
    """

    def __init__(self, fmt: FileFormat) -> None:
        kept = [index for index, name in enumerate(fmt.fields) if name is not None]
        self.width = len(fmt.header)
        self.names = [name for name in fmt.fields if name is not None]
        self.prefixes = [f"{name}=" for name in self.names]
        self.pick: Callable[[Sequence[str]], tuple[str, ...]] | None
        if kept == list(range(self.width)):
            self.pick = None
        elif len(kept) == 1:
            only = kept[0]
            self.pick = lambda cells: (cells[only],)
        else:
            self.pick = operator.itemgetter(*kept)
        self.trim = not fmt.keep_spaces
        self.constants = fmt.constants
        self.keep_empty = fmt.keep_empty
        self.tail = "".join(f"{RECORD_SEPARATOR}{name}={value}" for name, value in fmt.constants)
        # The pipes of a record of n parts, when its values hold none: 2 * n + tail_pipes.
        self.tail_pipes = self.tail.count("|") - 2
        # A name with a '|' of its own would throw the count off: always check such records.
        self.countable = not any("|" in name for name in self.names)
        self.template = RECORD_SEPARATOR.join(
            prefix.replace("%", "%%") + "%s" for prefix in self.prefixes
        ) + self.tail.replace("%", "%%")
        self.template_pipes = 2 * len(self.prefixes) + self.tail_pipes
        self.undecodable = f"undecodable bytes (not {fmt.encoding}); try another --encoding"
        # The phone fields: (index of the column, field name).
        self.phones = [
            (index, name)
            for index, name in enumerate(fmt.fields)
            if name is not None and name in fmt.phone_fields
        ]
        self.repair = fmt.repair
        self.kept = kept
        self.fields = fmt.fields
        self.header = fmt.header
        self.allow = frozenset(fmt.allow)
        self.not_phones_ok = Allow.NOT_PHONES in self.allow
        # The phone fields judged by length, by name: the numbers of digits a number may
        # have, shortest and longest, outside which it is far from the column's usual.
        usual = dict(fmt.usual_lengths)
        short_ok = Allow.SHORT_PHONES in self.allow
        long_ok = Allow.LONG_PHONES in self.allow
        self.usual_of = {name: usual[name] for _, name in self.phones if name in usual}
        self.bounds = {
            name: (0 if short_ok else length - FAR_SHORT + 1, 0 if long_ok else length + FAR_LONG)
            for name, length in self.usual_of.items()
        }
        # A failed-rows report read back: a row whose _extra says its cells did not fit
        # stays invalid until a person empties it (the column itself is dropped).
        self.extra = fmt.header.index(EXTRA_COLUMN) if EXTRA_COLUMN in fmt.header else None
        # Its cells as they were before the report marked the formula-like ones (``inert``).
        self.report = set(REPORT_COLUMNS[1:]) <= set(fmt.header)
        #: Blank records met so far (``make`` returned ``None``); the reader resets it.
        self.blank_records = 0
        #: Values repaired so far in pending rows, per kind; the reader resets it.
        self.repaired: Counter[RepairKind] = Counter()

    def clean(self, cells: Sequence[str]) -> tuple[str, ...]:
        """The cells as they are sent: trimmed, unless the format keeps spaces; a report's as
        they were before it was written."""
        cleaned = tuple(map(str.strip, cells)) if self.trim else tuple(cells)
        return tuple(map(revive, cleaned)) if self.report else cleaned

    def make(self, line: int, cells: Sequence[str], undecodable: bool = False) -> NewRow | None:
        """The row for a record starting at ``line`` (any record, valid or not), or ``None``
        for a blank one (counted in ``blank_records``)."""
        if not SUSPECT.search("".join(cells)):
            return self._make(line, self.clean(cells), undecodable)
        # Control characters around a value are taken away (and, when sent, counted).
        cleaned, padded = [], {}
        for index, cell in enumerate(cells):
            value, taken = unpad(cell, self.trim)
            cleaned.append(value)
            if taken:
                padded[index] = cell
        clean = tuple(map(revive, cleaned)) if self.report else tuple(cleaned)
        return self._make(line, clean, undecodable, padded)

    def maker(self) -> MakeRow:
        """``make`` as a plain function, for loops over millions of records: the common cases
        (the header's width, no '|' in a value) run on local names only."""
        width, pick, template, tail = self.width, self.pick, self.template, self.tail
        template_pipes, general = self.template_pipes, self._make
        prefixes, keep_empty, trim = self.prefixes, self.keep_empty, self.trim
        # Pipes of a record of n parts: 2 * n + part_pipes.
        part_pipes = self.tail_pipes
        join, add, strip = RECORD_SEPARATOR.join, operator.add, str.strip
        if not self.countable or self.extra is not None or self.report:
            return lambda line, cells: self.make(line, cells)
        whole, suspect, labels = self.make, SUSPECT.search, TOTALS_CELLS.isdisjoint
        phone_digits = PHONE_DIGITS
        # The phone numbers judged by length: (index, fewest digits, most digits + 1; 0: any).
        bounds = {index: self.bounds[name] for index, name in self.phones if name in self.bounds}
        usual = [(index, low, high or 1 << 30) for index, (low, high) in bounds.items()]
        columns = [index for index, _ in self.phones]
        # The phone numbers of a record as one text: all digits (or empty) needs no more.
        # One or two phone fields (the common case) are read without a call.
        phone_count = len(columns)
        first_phone, second_phone = [*columns, 0, 0][:2]
        first_low, first_high = bounds.get(first_phone, (0, 0))
        first_high = first_high or 1 << 30
        second_low, second_high = bounds.get(second_phone, (0, 0))
        second_high = second_high or 1 << 30
        phones_of = operator.itemgetter(*columns) if phone_count > 2 else None

        def make(line: int, raw: Sequence[str]) -> NewRow | None:
            # Excel's text formula, control characters: the general path, from the cells
            # as read.
            joined = "".join(raw)
            if '="' in joined or (not joined.isprintable() and suspect(joined)):
                return whole(line, raw)
            cells = tuple(map(strip, raw)) if trim else tuple(raw)
            # A row whose first phone field holds a phone number is no totals row: most rows
            # skip the look-up of their cells among the labels.
            if phone_count and len(cells) > first_phone:
                first = cells[first_phone]
                numbered = len(first) >= phone_digits and first.isdigit()
            else:
                numbered = False
            if not numbered and not labels(cells):
                return general(line, cells, False)
            if len(cells) == width and (trim or cells[0].strip()):
                if phone_count:
                    if phone_count == 1:
                        phones = cells[first_phone]
                        if phones and (
                            not (phones.isdigit() and phones.isascii())
                            or not first_low <= len(phones) < first_high
                        ):
                            return general(line, cells, False)
                    elif phones_of is None:
                        phones = cells[first_phone]
                        if phones and (
                            not (phones.isdigit() and phones.isascii())
                            or not first_low <= len(phones) < first_high
                        ):
                            return general(line, cells, False)
                        phones = cells[second_phone]
                        if phones and (
                            not (phones.isdigit() and phones.isascii())
                            or not second_low <= len(phones) < second_high
                        ):
                            return general(line, cells, False)
                    else:
                        phones = "".join(phones_of(cells))
                        if phones and not (phones.isdigit() and phones.isascii()):
                            return general(line, cells, False)
                        for index, low, high in usual:
                            if cells[index] and not low <= len(cells[index]) < high:
                                return general(line, cells, False)
                values = cells if pick is None else pick(cells)
                if "" not in values or (keep_empty and any(values)):
                    record = template % values
                    if record.count("|") == template_pipes:
                        return _new_tuple(NewRow, (line, _PENDING, record, cells, None, None, ()))
                else:
                    # Empty cells are left out: join the others, in C.
                    parts = len(values) - values.count("")
                    if parts:
                        record = join(map(add, compress(prefixes, values), filter(None, values)))
                        record += tail
                        if record.count("|") == 2 * parts + part_pipes:
                            return _new_tuple(
                                NewRow, (line, _PENDING, record, cells, None, None, ())
                            )
            return general(line, cells, False)

        return make

    def _make(
        self,
        line: int,
        cells: tuple[str, ...],
        undecodable: bool,
        padded: Mapping[int, str] = _NOTHING_PADDED,
    ) -> NewRow | None:
        if undecodable:
            return NewRow(line, _INVALID, None, cells, InvalidReason.ENCODING, self.undecodable)
        if not any(map(str.strip, cells)) or (
            '="' in "".join(cells) and not any(map(_holds_text, cells))
        ):
            self.blank_records += 1
            return None
        count = len(cells)
        width = self.width
        if count != width and (count < width or any(map(str.strip, cells[width:]))):
            message = f"{count} cell{'s' if count != 1 else ''}, the header has {width}"
            return NewRow(line, _INVALID, None, cells, InvalidReason.CELLS, message)
        if self.extra is not None and cells[self.extra].strip():
            message = (
                f"{EXTRA_COLUMN} holds {shown(cells[self.extra].strip())}: the line had cells that "
                f"fit no column; put them in their columns, then empty {EXTRA_COLUMN}"
            )
            return NewRow(line, _INVALID, None, cells, InvalidReason.CELLS, message)
        judged = self._judge_values(line, cells, padded)
        if isinstance(judged, NewRow):
            return judged
        sent, repairs = judged
        if self.phones:
            examined = self._examine_phones(line, sent, cells)
            if isinstance(examined, NewRow):
                return examined
            sent, phone_repairs = examined
            repairs += phone_repairs
        values = sent[:width] if self.pick is None else self.pick(sent)
        if not any(values):
            message = "no values to send: the line's values are all in dropped columns"
            return NewRow(line, _INVALID, None, cells, InvalidReason.NO_VALUES, message)
        if self.keep_empty:
            parts = list(map(operator.add, self.prefixes, values))
        else:
            parts = list(compress(map(operator.add, self.prefixes, values), values))
        record = RECORD_SEPARATOR.join(parts) + self.tail
        if not self.countable or record.count("|") != 2 * len(parts) + self.tail_pipes:
            pairs = [
                (name, value)
                for name, value in zip(self.names, values, strict=True)
                if value or self.keep_empty
            ]
            try:
                record = encode_record(pairs + list(self.constants))
            except RecordError as exc:
                return NewRow(line, _INVALID, None, cells, InvalidReason.PIPE, str(exc))
        if repairs:
            self.repaired.update(repair.kind for repair in repairs)
        return NewRow(line, _PENDING, record, sent, None, None, repairs)

    def _judge_values(
        self, line: int, cells: tuple[str, ...], padded: Mapping[int, str]
    ) -> NewRow | tuple[tuple[str, ...], tuple[Repair, ...]]:
        """The cells with Excel's text formulas taken out and the repairs (control
        characters taken from around a value, in ``padded``: the cells as read, by index,
        count too), or the invalid row of a value that cannot be sent: one with control
        characters inside, a totals row (``values``)."""
        repaired: list[str] | None = None
        repairs: list[Repair] = []
        allow_controls = Allow.CONTROL_CHARACTERS in self.allow
        for index in self.kept:
            value = cells[index]
            name = self.fields[index] or ""
            if index in padded:
                if not self.repair:
                    message = (
                        f"{name} {shown(padded[index])} has control characters around it; "
                        "not repaired (--no-repair): fix it in the file"
                    )
                    return NewRow(line, _INVALID, None, cells, InvalidReason.UNREPAIRED, message)
                repairs.append(Repair(name, RepairKind.CONTROL_PADDING, padded[index]))
            if value.startswith('="'):
                inner = text_formula(value)
                if inner is not None:
                    if not self.repair:
                        message = (
                            f"{name} {shown(value)} is Excel's text formula; not repaired "
                            "(--no-repair): fix it in the file"
                        )
                        reason = InvalidReason.UNREPAIRED
                        return NewRow(line, _INVALID, None, cells, reason, message)
                    inner = inner.strip() if self.trim else inner
                    repaired = repaired or list(cells)
                    repaired[index] = inner
                    repairs.append(Repair(name, RepairKind.TEXT_FORMULA, value))
                    value = inner
            if "\x00" in value:
                message = f"{name} {shown(value)} holds a NUL byte: damaged text; not sent"
                return NewRow(line, _INVALID, None, cells, InvalidReason.NUL, message)
            if not allow_controls and not value.isprintable():
                found = control_characters(value)
                if found:
                    which = ", ".join(shown(char) for char in found)
                    message = (
                        f"{name} {shown(value)} holds control characters ({which}); they are "
                        "no lead's data: remove them, or --allow control-characters sends them"
                    )
                    return NewRow(line, _INVALID, None, cells, InvalidReason.CONTROL, message)
        sent = cells if repaired is None else tuple(repaired)
        if Allow.TOTALS_ROWS not in self.allow and not TOTALS_CELLS.isdisjoint(sent):
            totals = totals_label(sent, [index for index, _ in self.phones])
            if totals is not None:
                label, number = totals
                message = (
                    f"a totals row ({self.header[label]} {shown(sent[label])}, "
                    f"{self.header[number]} {shown(sent[number])}): not a lead; delete the "
                    "row, or --allow totals-rows sends it"
                )
                return NewRow(line, _INVALID, None, cells, InvalidReason.TOTALS_ROW, message)
        return sent, tuple(repairs)

    def _examine_phones(
        self, line: int, sent: tuple[str, ...], cells: tuple[str, ...]
    ) -> NewRow | tuple[tuple[str, ...], tuple[Repair, ...]]:
        """The cells as they are sent (``sent``) with their phone numbers repaired and the
        repairs, or the invalid row (of ``cells``) of a number that cannot be sent."""
        repaired: list[str] | None = None
        repairs: list[Repair] = []
        for index, name in self.phones:
            value = sent[index]
            if not value:
                continue
            if value.isdigit() and value.isascii():
                short = self._far(line, name, value, cells)
                if short is not None:
                    return short
                continue
            verdict = examine_phone(value)
            if verdict.lost:
                message = (
                    f"{name} {shown(value)} is in scientific notation: its digits are lost; "
                    "re-export the column as text"
                )
                reason = InvalidReason.PHONE_DIGITS_LOST
                return NewRow(line, _INVALID, None, cells, reason, message)
            if verdict.shape is PhoneShape.NOT_A_NUMBER and not self.not_phones_ok:
                message = (
                    f"{name} {shown(value)} is not a phone number (the dialer cannot call "
                    f"it); fix the row, or --allow {Allow.NOT_PHONES} sends it"
                )
                return NewRow(line, _INVALID, None, cells, InvalidReason.NOT_A_PHONE, message)
            if not verdict.repairs:
                continue
            if not self.repair:
                what = _ARTEFACTS[verdict.repairs[0]]
                message = (
                    f"{name} {shown(value)} {what}; not repaired (--no-repair): fix it in the file"
                )
                reason = InvalidReason.PHONE_UNREPAIRED
                return NewRow(line, _INVALID, None, cells, reason, message)
            short = self._far(line, name, verdict.value, cells)
            if short is not None:
                return short
            repaired = repaired or list(sent)
            repaired[index] = verdict.value
            repairs.extend(Repair(name, kind, value) for kind in verdict.repairs)
        return (sent if repaired is None else tuple(repaired)), tuple(repairs)

    def _far(self, line: int, name: str, number: str, cells: tuple[str, ...]) -> NewRow | None:
        """The invalid row of a phone number far from its column's usual length."""
        bounds = self.bounds.get(name)
        if bounds is None or not (number.isdigit() and number.isascii()):
            return None
        low, high = bounds
        count = len(number)
        if count < low:
            reason, allow = InvalidReason.PHONE_SHORT, Allow.SHORT_PHONES
        elif high and count >= high:
            reason, allow = InvalidReason.PHONE_LONG, Allow.LONG_PHONES
        else:
            return None
        digits = f"{count} digit{'s' if count != 1 else ''}"
        message = (
            f"{name} {shown(number)} has {digits} where the column's numbers have "
            f"{self.usual_of[name]}: not a phone number; fix the row, or --allow {allow} "
            "sends it"
        )
        return NewRow(line, _INVALID, None, cells, reason, message)


# What each artefact is, for a message about a value that has it.
_ARTEFACTS = {
    RepairKind.DECIMAL: "ends in .0 (Excel stored it as a number)",
    RepairKind.APOSTROPHE: "starts with Excel's ' mark",
}


def cells_rebuilder(fmt: FileFormat) -> Callable[[str], tuple[str, ...]] | None:
    """How to get a pending row's cells back from its record, for a format that loses
    nothing on the way: every column sent under a name of its own (one without ``|``), no
    constants added, so each cell is in the record (an empty one by its absence). ``None``
    for any other format."""
    fields, constants = fmt.fields, fmt.constants
    if constants or not fields:
        return None
    names = [name for name in fields if name is not None and "|" not in name]
    if len(names) != len(fields) or len(set(names)) != len(names):
        return None

    def rebuild(record: str) -> tuple[str, ...]:
        values = dict(decode_record(record))
        return tuple(values.get(name, "") for name in names)

    return rebuild


def _holds_text(cell: str) -> bool:
    """Whether ``cell`` shows anything: not blank, nor Excel's text formula of a blank."""
    value = cell.strip()
    if not value:
        return False
    inner = text_formula(value)
    return inner is None or bool(inner.strip())
