"""Numbers as a person reads them: number formats (what changes the digits shown: dates,
times, percentages, zero padding, a fixed number of decimals), the two date systems, and
numbers without an exponent.

A number is sent as the cell shows it, with two exceptions, both for the fields numbers go
to: no thousands separators (``#,##0.00`` shows ``1,234.50``, sent ``1234.50``: a field
takes a number, and a separator is one more character a server may refuse), and a whole
number stays whole in full (``0.00`` shows ``3.00``, sent ``3``): a phone number or an ID in
a column formatted with decimals must never get them, and ``3`` is ``3.00`` to any field.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from bulkimport.errors import InputError
from bulkimport.reader import limits
from bulkimport.reader.workbook.markup import scan
from bulkimport.reader.workbook.package import Package

# Serial day numbers: day 0 of the 1900 system is 1899-12-31, but Excel counts a
# 29 February 1900 that never was (serial 60), so from serial 61 on day 0 is 1899-12-30.
_ORDINAL_1900 = date(1899, 12, 30).toordinal()
_ORDINAL_1904 = date(1904, 1, 1).toordinal()
_MS_PER_DAY = 86_400_000
_MAX_ORDINAL = date.max.toordinal()
_MAX_SERIAL = 2_958_466  # 10000-01-01
# Dates and times of day repeat down a column: their texts are kept, up to this many.
_CACHE_ITEMS = 8192
# %-templates: half the time of f"{hour:02d}..." for every date-time of a sheet.
_CLOCK_TEXT = "%02d:%02d:%02d"
_CLOCK_MS_TEXT = "%02d:%02d:%02d.%03d"
_DATETIME_TEXT = "%s %02d:%02d:%02d"


class FormatKind(enum.Enum):
    """How a number is shown, as far as it changes the text a person reads."""

    GENERAL = "general"  # the number itself
    DATE = "date"  # YYYY-MM-DD
    DATETIME = "datetime"  # YYYY-MM-DD HH:MM:SS
    TIME = "time"  # HH:MM:SS (the time of day)
    ELAPSED = "elapsed"  # [h]:mm:ss: hours in full
    PERCENT = "percent"  # the number times 100 with the format's decimals, and %
    ZEROS = "zeros"  # 0000000: a whole number padded with zeros to a width
    DECIMALS = "decimals"  # 0.00, #,##0.00: a fraction rounded to the format's decimals


# The built-in formats (ECMA-376 part 1, 18.8.30, and the East Asian ids 27-36, 50-58,
# which are dates and times in every East Asian locale).
_BUILTIN_DATES = frozenset({14, 15, 16, 17, 27, 28, 29, 30, 31, 36, 50, 51, 52, 53, 54, 57, 58})
_BUILTIN_TIMES = frozenset({18, 19, 20, 21, 32, 33, 34, 35, 45, 47, 55, 56})
_BUILTIN_FORMATS: dict[int, tuple[FormatKind, int]] = {
    **{number: (FormatKind.DATE, 0) for number in _BUILTIN_DATES},
    **{number: (FormatKind.TIME, 0) for number in _BUILTIN_TIMES},
    22: (FormatKind.DATETIME, 0),
    46: (FormatKind.ELAPSED, 0),
    9: (FormatKind.PERCENT, 0),
    10: (FormatKind.PERCENT, 2),
    # 0, 0.00, #,##0, #,##0.00, and the same with the locale's currency or negatives in
    # parentheses (5-8, 37-40).
    **{number: (FormatKind.DECIMALS, 0) for number in (1, 3, 5, 6, 37, 38)},
    **{number: (FormatKind.DECIMALS, 2) for number in (2, 4, 7, 8, 39, 40)},
}
_QUOTED = re.compile(r'"[^"]*"|\\.|_.|\*.')
_BRACKETS = re.compile(r"\[([^\]]*)\]")
_EXPONENT = re.compile(r"e[+-]")
# Digits with a fixed number of decimals, thousands separators or not (none after the last
# digit: ``#,##0,`` shows thousands).
_FIXED = re.compile(r"[#,0]*0(?:\.(0+))?")


def format_kind(code: str) -> tuple[FormatKind, int]:
    """What a number format code shows: its kind, and its width or decimals.

    Only the first section (positive numbers) counts. Quoted text, escaped characters,
    colours and locales are not letters of the pattern: ``yyyy"年"m"月"d"日"`` is a date,
    ``[Red]0.00`` a number.
    """
    section = _split_sections(code)[0]
    plain = _QUOTED.sub("", section)
    elapsed = False
    for inside in _BRACKETS.findall(plain):
        if inside.lower() in ("h", "hh", "m", "mm", "s", "ss"):
            elapsed = True
    plain = _BRACKETS.sub("", plain).lower().replace("general", "")
    if elapsed:
        return FormatKind.ELAPSED, 0
    # The exponent of a scientific format (0.00E+00) is not a letter of a date.
    scientific = _EXPONENT.search(plain) is not None
    plain = _EXPONENT.sub("", plain)
    has_time = "h" in plain or "s" in plain or "am/pm" in plain or "a/p" in plain
    plain = plain.replace("am/pm", "").replace("a/p", "")
    has_date = any(letter in plain for letter in "ydeg") or ("m" in plain and not has_time)
    if has_date and has_time:
        return FormatKind.DATETIME, 0
    if has_date:
        return FormatKind.DATE, 0
    if has_time:
        return FormatKind.TIME, 0
    if "%" in plain:
        _, _, decimals = plain.partition(".")
        return FormatKind.PERCENT, len(decimals) - len(decimals.lstrip("0#?"))
    if len(plain) > 1 and plain.strip("0") == "":
        return FormatKind.ZEROS, len(plain)
    fixed = None if scientific else _FIXED.fullmatch(plain.strip())
    if fixed is not None:
        return FormatKind.DECIMALS, len(fixed.group(1) or "")
    return FormatKind.GENERAL, 0


def _split_sections(code: str) -> list[str]:
    sections, start, quoted, index = [], 0, False, 0
    while index < len(code):
        char = code[index]
        if char == '"':
            quoted = not quoted
        elif char == "\\" and not quoted:
            index += 1
        elif char == ";" and not quoted:
            sections.append(code[start:index])
            start = index + 1
        index += 1
    sections.append(code[start:])
    return sections


def number_text(raw: str) -> str:
    """A number as a person reads it in a General cell, from its text in the file.

    Whole numbers in full; others in the shortest form, at most 15 significant digits,
    never with an exponent. Text that is not a number is given back unchanged.
    """
    try:
        value = float(raw)
    except ValueError:
        return raw
    return _float_text(value) if value == value else raw


def _float_text(value: float) -> str:
    if value.is_integer() and -1e15 < value < 1e15:
        return str(int(value))
    text = repr(value)
    # 16 characters or fewer hold at most 15 digits: the common case, as it is.
    if len(text) <= 16 and "e" not in text:
        return text
    mantissa = text.partition("e")[0].lstrip("-").replace(".", "").strip("0")
    if len(mantissa) > 15:
        text = f"{value:.15g}"
    if "e" in text or "inf" in text:
        try:
            text = format(Decimal(text), "f")
        except InvalidOperation:
            return text
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def general_text(raw: str) -> str:
    """``number_text``, quicker for the numbers Excel writes: whole numbers as digits (as
    phones are), others as the shortest decimal that gives the number back (``73.25``)."""
    if raw.isdigit():
        if len(raw) <= 15 and (raw[0] != "0" or len(raw) == 1):
            return raw
    elif (
        len(raw) <= 16  # then at most 15 digits
        and raw.replace(".", "", 1).isdigit()
        and raw[-1] != "0"
        and raw[0] != "."
        and (raw[0] != "0" or raw[1] == ".")
    ):
        return raw
    try:
        value = float(raw)
    except ValueError:
        return raw
    return _float_text(value) if value == value else raw


class Dates:
    """Turns serial numbers into ISO text, in the workbook's date system."""

    def __init__(self, date1904: bool) -> None:
        self.date1904 = date1904
        self._days: dict[int, str | None] = {}

    def day_text(self, days: int) -> str | None:
        """The ISO date of serial day ``days``, ``None`` if no calendar date has it."""
        text = self._days.get(days, "")
        if text != "":
            return text
        if self.date1904:
            ordinal = _ORDINAL_1904 + days
        elif days >= 61:
            ordinal = _ORDINAL_1900 + days
        elif days == 60:
            ordinal = -1  # 1900-02-29, which Excel counts and the calendar does not
        else:
            ordinal = _ORDINAL_1900 + days + 1
        if ordinal == -1:
            text = "1900-02-29"
        elif 1 <= ordinal <= _MAX_ORDINAL:
            text = date.fromordinal(ordinal).isoformat()
        else:
            text = None
        if len(self._days) < _CACHE_ITEMS:
            self._days[days] = text
        return text

    def renderer(self, kind: FormatKind) -> Callable[[str], str]:
        """How a serial number reads in a format of ``kind`` (a date or time kind)."""
        day_text = self.day_text

        def elapsed(raw: str) -> str:
            try:
                serial = float(raw)
            except ValueError:
                return raw
            millis = round(abs(serial) * _MS_PER_DAY)
            return ("-" if serial < 0 else "") + _clock(millis, hours_in_full=True)

        def moment(raw: str) -> str:
            try:
                serial = float(raw)
            except ValueError:
                return raw
            if not 0 <= serial < _MAX_SERIAL:
                return number_text(raw)  # Excel shows ####### for a negative date
            days, millis = divmod(round(serial * _MS_PER_DAY), _MS_PER_DAY)
            if kind is FormatKind.TIME:
                return _clock(millis)
            day = day_text(days)
            if day is None:
                return number_text(raw)
            if kind is FormatKind.DATE:
                return day
            seconds, fraction = divmod(millis, 1000)
            if fraction:
                return f"{day} {_clock(millis)}"
            minutes, second = divmod(seconds, 60)
            hour, minute = divmod(minutes, 60)
            return _DATETIME_TEXT % (day, hour, minute, second)

        if kind is FormatKind.ELAPSED:
            return elapsed
        if kind is FormatKind.DATETIME:
            return moment  # (nearly) every value differs: nothing to gain from a cache
        cache: dict[str, str] = {}

        def cached(raw: str) -> str:
            text = cache.get(raw)
            if text is None:
                text = moment(raw)
                if len(cache) < _CACHE_ITEMS:
                    cache[raw] = text
            return text

        return cached


def _clock(millis: int, *, hours_in_full: bool = False) -> str:
    """``HH:MM:SS`` (and ``.mmm`` if there are milliseconds) of ``millis`` after midnight."""
    seconds, fraction = divmod(millis, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    if not hours_in_full:
        hour %= 24
    if fraction:
        return _CLOCK_MS_TEXT % (hour, minute, second, fraction)
    return _CLOCK_TEXT % (hour, minute, second)


def _percent(decimals: int) -> Callable[[str], str]:
    quantum = Decimal(1).scaleb(-decimals)

    def render(raw: str) -> str:
        try:
            value = Decimal(raw) * 100
        except InvalidOperation:
            return raw
        if not value.is_finite():
            return raw
        return f"{value.quantize(quantum, rounding=ROUND_HALF_UP)}%"

    return render


def _decimals(places: int) -> Callable[[str], str]:
    """A number as a format with ``places`` fixed decimals shows it, without thousands
    separators; a whole number whole, in full (see the module's docstring)."""
    quantum = Decimal(1).scaleb(-places)

    def render(raw: str) -> str:
        text = general_text(raw)  # 15 significant digits, as Excel rounds what it shows
        if "." not in text:
            return text
        try:
            value = Decimal(text).quantize(quantum, rounding=ROUND_HALF_UP)
        except InvalidOperation:
            return text
        return format(value.copy_abs() if value.is_zero() else value, "f")

    return render


def _zeros(width: int) -> Callable[[str], str]:
    def render(raw: str) -> str:
        text = general_text(raw)
        if text.isdigit():
            return text.zfill(width)
        if text.startswith("-") and text[1:].isdigit():
            return "-" + text[1:].zfill(width)
        return text

    return render


_NUMBER_FORMAT = ("numFmts", "numFmt")
_CELL_FORMAT = ("cellXfs", "xf")


def number_renderers(
    package: Package, dates: Dates
) -> tuple[dict[str, Callable[[str], str]], dict[str, FormatKind]]:
    """How the numbers of each style read (``{style index: renderer}``, as in a cell's
    ``s`` attribute), and each style's kind of format."""
    renderers: dict[str, Callable[[str], str]] = {}
    kinds: dict[str, FormatKind] = {}
    if package.styles_part is None:
        return {"": general_text}, kinds
    custom: dict[int, str] = {}
    formats: list[int] = []
    with package.open(package.styles_part) as stream:
        for path, attrib in scan(stream, (_NUMBER_FORMAT, _CELL_FORMAT)):
            if path == _NUMBER_FORMAT:
                try:
                    custom[int(attrib.get("numFmtId", ""))] = attrib.get("formatCode", "")
                except ValueError:
                    continue
            else:
                try:
                    formats.append(int(attrib.get("numFmtId", "0")))
                except ValueError:
                    formats.append(0)
            if len(formats) + len(custom) > limits.MAX_STYLES:
                raise InputError(
                    f"{package.path}: part {package.styles_part} defines more than "
                    f"{limits.MAX_STYLES:,} cell formats (Excel makes at most 64,000); open "
                    "the workbook in Excel and save it again"
                )
    made: dict[tuple[FormatKind, int], Callable[[str], str]] = {}
    for index, number in enumerate(formats):
        # A custom code may redefine a built-in id; it wins, as in Excel.
        if number in custom:
            kind = format_kind(custom[number])
        else:
            kind = _BUILTIN_FORMATS.get(number, (FormatKind.GENERAL, 0))
        if kind not in made:
            made[kind] = _renderer(kind, dates)
        renderers[str(index)] = made[kind]
        kinds[str(index)] = kind[0]
    # A cell without a style has style 0.
    renderers[""] = renderers.get("0", general_text)
    kinds[""] = kinds.get("0", FormatKind.GENERAL)
    return renderers, kinds


def _renderer(kind: tuple[FormatKind, int], dates: Dates) -> Callable[[str], str]:
    form, size = kind
    if form is FormatKind.GENERAL:
        return general_text
    if form is FormatKind.PERCENT:
        return _percent(size)
    if form is FormatKind.ZEROS:
        return _zeros(size)
    if form is FormatKind.DECIMALS:
        return _decimals(size)
    return dates.renderer(form)


def iso_date_text(text: str, kind: FormatKind) -> str:
    """A cell of type ``d`` (an ISO 8601 date, as Strict OOXML and some programs write
    dates), read as a serial date with the same number format would be."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", ""))
    except ValueError:
        return text
    day = moment.date().isoformat()
    clock = _clock(
        ((moment.hour * 60 + moment.minute) * 60 + moment.second) * 1000
        + moment.microsecond // 1000
    )
    if kind is FormatKind.DATE or (kind is not FormatKind.DATETIME and "T" not in text):
        return day
    if kind is FormatKind.TIME:
        return clock
    return f"{day} {clock}"
