"""The rules on values that are not phone numbers' own (those are in ``phones``): one verdict
per value, made by the reader (``records.RecordMaker``) and reported by ``check`` from the
rows the reader makes, so that ``check`` and ``run`` cannot disagree.

- **Excel's text formula.** ``="013800000002"`` is what CRMs write to keep Excel from eating
  leading zeros; Excel shows the text inside. It is repaired (``RepairKind.TEXT_FORMULA``)
  in any sent value, or, with ``--no-repair``, the row is invalid.
- **Control characters** (``CONTROL``: C0 but tab and line breaks, DEL, C1, NUL, and the
  characters that show as nothing, ``INVISIBLE``: a zero-width space, direction marks) are
  no lead's data: an ANSI colour (``\\x1b[31m``), a bell, a NUL, a zero-width space pasted
  with a number. Around a value (a trailing
  ``\\r`` of a trimmed value, a form feed: ``PADDING``) they are taken away
  and counted (``RepairKind.CONTROL_PADDING``), or, with ``--no-repair``, the row is
  invalid; inside one, the row is invalid unless ``--allow control-characters``. A line
  break inside a quoted value is a multi-line cell, not a control character. A NUL anywhere
  is damaged text (``InvalidReason.NUL``), whatever the file's encoding or a program gave,
  and no ``--allow`` sends it.
- **Totals rows.** A spreadsheet's ``合计`` / ``Total`` row under the data: a cell that is
  exactly a label (``TOTALS_LABELS``, in its common spellings), another cell that is a
  number, and no phone number that looks like one. Invalid unless ``--allow totals-rows``.
- **Phone numbers far from their column's usual length.** The usual length is learned from
  the head of the file (``usual_length``; ``learn``) and kept with the job; a number of
  digits only that is ``FAR_SHORT`` digits or more shorter is a count, a note, a cut value
  (invalid unless ``--allow short-phones``), one ``FAR_LONG`` digits or more longer an ID
  or card number (invalid unless ``--allow long-phones``).

Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

#: Characters that show as nothing and come with text copied from web pages, chat apps and
#: word processors: a zero-width space, the direction marks and embeddings (which can also
#: make a value read differently from what it holds), a word joiner, a byte-order mark in
#: the middle of text. In a phone number they make it no number; in a name, a duplicate
#: the call center cannot see. Joiners (U+200C, U+200D) are not among them: scripts and
#: emoji need them.
INVISIBLE = "\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff"
#: Control characters no value should hold: C0 but tab, line feed and carriage return (a
#: line break in a multi-line cell), DEL, C1; NUL included; and the ``INVISIBLE`` ones.
CONTROL = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{INVISIBLE}]")
#: What may stand around a value and is taken away (with the whitespace and line breaks,
#: when values are trimmed) and counted as a repair when it is a control character. Values
#: read with their spaces (``--keep-spaces``) keep their line breaks too.
PADDING = "\x0b\x0c\x1c\x1d\x1e\x1f\x85\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
PADDING += "\u2060\u2066\u2067\u2068\u2069\ufeff"
# Every whitespace character (they are all below U+3001), and the padding.
_TRIM = "".join(char for char in map(chr, range(0x3001)) if char.isspace()) + PADDING
# The characters taken from around a value that make the taking a repair to count.
_COUNTED = re.compile(f"[\r\x0b\x0c\x1c-\x1f\x85{INVISIBLE}]")
# One search over a whole record tells whether any value needs a closer look: a control
# character, or a carriage return (counted when it pads a value).
SUSPECT = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{INVISIBLE}]")

_TEXT_FORMULA = re.compile(r'="((?:[^"]|"")*)"', re.DOTALL)

#: The labels of a totals row, as they are written in Chinese and English spreadsheets.
TOTALS_LABELS = (
    "合计",
    "总计",
    "小计",
    "共计",
    "合計",
    "總計",
    "小計",
    "total",
    "totals",
    "sum",
    "grand total",
    "subtotal",
    "sub-total",
    "sub total",
)
#: Their spellings matched as a cell: as given, upper case, title case; with a colon or not.
TOTALS_CELLS = frozenset(
    spelling + colon
    for label in TOTALS_LABELS
    for spelling in (label, label.upper(), label.title(), label.capitalize())
    for colon in ("", ":", "：")
)
# A total: digits with thousands separators, decimals, a sign, a currency, a percent.
_AMOUNT = re.compile(r"[-+]?[¥￥$€£]?\d[\d,]*(?:\.\d+)?%?")
#: A number with this many digits in a phone field is taken for a phone number (a totals
#: row's count has fewer).
PHONE_DIGITS = 7

#: A phone number this many digits shorter than its column's usual length, or more, is far
#: from it (one digit short is Excel's lost leading zero: ``check`` reports it) ...
FAR_SHORT = 4
#: ... and so is one this many digits longer, or more (an 18-digit ID number among 11-digit
#: mobiles; ``0086`` before a mobile number is 4 digits more, and no number has 16).
FAR_LONG = 5
#: The usual length is learned from this many numbers at most ...
USUAL_SAMPLE = 1000
#: ... needs at least this many of them ...
USUAL_MIN_NUMBERS = 5
#: ... and this share of them with the same length.
USUAL_MIN_SHARE = 0.6


def unpad(value: str, trim: bool) -> tuple[str, bool]:
    """``value`` without what stands around it (whitespace and ``PADDING`` when ``trim``,
    ``PADDING`` alone when spaces are kept), and whether a control character was taken."""
    stripped = value.strip(_TRIM if trim else PADDING)
    if len(stripped) == len(value):
        return value, False
    start = value.find(stripped) if stripped else len(value)
    taken = value[:start] + value[start + len(stripped) :]
    return stripped, _COUNTED.search(taken) is not None


def text_formula(value: str) -> str | None:
    """The text inside Excel's text formula ``="..."`` (``""`` for a quote), or ``None``."""
    if not value.startswith('="'):
        return None
    match = _TEXT_FORMULA.fullmatch(value)
    return None if match is None else match.group(1).replace('""', '"')


def control_characters(value: str) -> list[str]:
    """The control characters of ``value``, each once, in order (``['\\x1b']``)."""
    return list(dict.fromkeys(CONTROL.findall(value)))


def totals_label(cells: Sequence[str], phones: Iterable[int]) -> tuple[int, int] | None:
    """``(index of the label, index of a number)`` if the cells make a totals row: a cell
    that is a label of ``TOTALS_CELLS``, another that is a number, and every phone cell
    (``phones``: their indexes) empty or a number too short to be a phone number."""
    label = next((index for index, cell in enumerate(cells) if cell in TOTALS_CELLS), None)
    if label is None:
        return None
    for index in phones:
        value = cells[index]
        if value and (_AMOUNT.fullmatch(value) is None or _is_phone_number(value)):
            return None
    number = next(
        (
            index
            for index, cell in enumerate(cells)
            if index != label and cell and _AMOUNT.fullmatch(cell)
        ),
        None,
    )
    return None if number is None else (label, number)


def _is_phone_number(value: str) -> bool:
    return value.isdigit() and len(value) >= PHONE_DIGITS


def usual_length(lengths: Counter[int]) -> int | None:
    """The usual number of digits of a column's phone numbers, from how many numbers have
    each length: the most common, if there are ``USUAL_MIN_NUMBERS`` numbers and it covers
    ``USUAL_MIN_SHARE`` of them (a few odd numbers do not move it), else ``None``."""
    total = sum(lengths.values())
    if total < USUAL_MIN_NUMBERS:
        return None
    # Ties go to the longer length: the same answer however the numbers came.
    length, count = max(lengths.items(), key=lambda item: (item[1], item[0]))
    return length if count >= USUAL_MIN_SHARE * total else None
