"""Which text encoding a file is in: a byte-order mark, strict UTF-8, "mostly UTF-8", then
charset-normalizer on a bounded sample, restricted to the encodings lead exports come in.

Pure functions over a sample of bytes; ``sniff_format`` reads the sample.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from pathlib import Path
from typing import NamedTuple

import charset_normalizer

from bulkimport.errors import ConfigError, InputError
from bulkimport.reader.limits import shown

#: How much of the head of the file encoding detection looks at.
SAMPLE_BYTES = 1 << 20
#: What detection may answer for a file without a BOM that is not UTF-8. Restricting the
#: candidates matters: left free, charset-normalizer calls short GB18030 files cp949 and
#: Western files cp1250.
DETECT_CANDIDATES = ("utf_8", "gb18030", "big5", "cp1252")


# Read as UTF-8 despite broken characters: at least this many good non-ASCII characters,
# and at most one broken for every ten good ones (GB18030 and Big5 text decoded as UTF-8
# gives five or more broken for every good one).
MOSTLY_UTF8_MIN_CHARS = 10


_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


#: Every byte-order mark and the codec it announces. UTF-32 LE before UTF-16 LE:
#: FF FE 00 00 starts with the UTF-16 LE mark.
BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# How a byte-order mark's codec is named to a person.
_FAMILY = {
    "utf-8": "UTF-8",
    "utf-16-le": "UTF-16",
    "utf-16-be": "UTF-16",
    "utf-32-le": "UTF-32",
    "utf-32-be": "UTF-32",
}
#: Encodings whose line break is more than one byte: the width of one code unit.
WIDE_UNIT = {"utf-16-le": 2, "utf-16-be": 2, "utf-32-le": 4, "utf-32-be": 4}
# Supersets that decode everything the named encoding does, and more.
_SUPERSETS = {"gbk": "gb18030", "gb2312": "gb18030", "hz": "gb18030", "latin-1": "cp1252"}


#: Legacy encodings in which most characters (the CJK ones) take two bytes. Two bytes of them
#: are valid UTF-8 of a two-byte character (U+0080 to U+07FF) by accident for about one
#: Chinese character in seven, so in these a line is taken for UTF-8 only when it holds a
#: character of three bytes or more (CJK text in UTF-8 is all such characters; no line of
#: GB18030 or Big5 text decoded to one by accident in two million generated lines of one to
#: eleven common characters).
DOUBLE_BYTE = frozenset(
    {
        "gb18030",
        "gbk",
        "gb2312",
        "big5",
        "big5hkscs",
        "cp950",
        "cp936",
        "cp932",
        "shift_jis",
        "shift_jis_2004",
        "shift_jisx0213",
        "euc_jp",
        "euc_jis_2004",
        "euc_jisx0213",
        "euc_kr",
        "cp949",
        "johab",
    }
)

#: The legacy encodings a line of a UTF-8 file that is not UTF-8 is read in, to say what it
#: holds: the likely one is named in its row's message.
LEGACY_CANDIDATES = ("gb18030", "big5", "cp1252")

#: A legacy file is refused, rather than read line by line, when lines of UTF-8 text are at
#: least this share of the lines with non-ASCII text in its head, and at least
#: ``MIXED_REFUSE_LINES`` of them: then it is two files glued together, and a quarter or
#: more of it would be left for a second pass.
MIXED_REFUSE_SHARE = 0.25
MIXED_REFUSE_LINES = 10

# A UTF-8 sequence that a legacy file's line may hold: of three or four bytes (double-byte
# encodings), or of two or more (single-byte ones). A pre-test: the line must then decode.
_UTF8_WIDE_SEQUENCE = re.compile(rb"[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")
# Unicode categories that real text does not hold: controls, private use, unassigned.
_NOT_TEXT = frozenset({"Cc", "Co", "Cn", "Cs"})


class Foreign(NamedTuple):
    """A line in another encoding than its file's: a line of UTF-8 text in a legacy file, or
    of legacy text in a UTF-8 file. ``own`` is how the file's encoding reads it, ``other``
    how ``codec`` (the other encoding) does."""

    own: str
    codec: str
    other: str


def is_legacy(codec: str) -> bool:
    """A narrow encoding other than UTF-8 (GB18030, Big5, cp1252, ...): UTF-8 text in it is
    read as other characters (张三 as 寮犱笁), without an error."""
    return codec != "utf-8" and codec not in WIDE_UNIT


def utf8_pretest(codec: str) -> re.Pattern[bytes]:
    """The pre-test for lines of UTF-8 text in a file in the legacy ``codec``: a line that
    has no match is not one (``utf8_line``)."""
    return _UTF8_WIDE_SEQUENCE if codec in DOUBLE_BYTE else _UTF8_SEQUENCE


def utf8_line(line: bytes, codec: str) -> str | None:
    """The text of ``line`` of a file in the legacy ``codec`` if the line is UTF-8 text, else
    ``None``.

    It is when it decodes as UTF-8, holds a multibyte character (of three bytes or more in
    a double-byte encoding: see ``DOUBLE_BYTE``) and nothing that text does not hold
    (controls, private use, unassigned code points)."""
    if line.isascii():
        return None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    wide = [char for char in text if char > "\x7f"]
    if any(unicodedata.category(char) in _NOT_TEXT for char in wide):
        return None
    if codec in DOUBLE_BYTE and not any(char > "\u07ff" for char in wide):
        return None
    return text


def legacy_reading(line: bytes) -> tuple[str, str] | None:
    """``(codec, text)``: the likely legacy encoding of ``line`` of a UTF-8 file that does
    not decode as UTF-8, and what it reads as in it; ``None`` when the line is broken UTF-8
    (one character cut short, or more good characters than broken ones) or reads as no
    text in any of ``LEGACY_CANDIDATES``.

    GB18030 and Big5 decode most of each other's bytes, into characters of the other's
    script: the reading whose characters are more of its encoding's common ones (GB2312 for
    GB18030, Big5's first level for Big5) wins, GB18030 on a tie."""
    if _cut_utf8(line):
        return None
    as_utf8 = line.decode("utf-8", "replace")
    broken = as_utf8.count("\ufffd")
    if len(_NON_ASCII.findall(as_utf8)) - broken > broken:
        return None
    best: tuple[float, str, str] | None = None
    for codec in LEGACY_CANDIDATES:
        try:
            text = line.decode(codec)
        except UnicodeDecodeError:
            continue
        wide = _NON_ASCII.findall(text)
        if not wide or any(unicodedata.category(char) in _NOT_TEXT for char in wide):
            continue
        # cp1252 reads anything: it is taken only when no CJK reading is mostly common.
        common = _COMMON.get(codec)
        score = 0.5 if common is None else sum(map(common, wide)) / len(wide)
        if best is None or score > best[0]:
            best = (score, codec, text)
    return None if best is None else (best[1], best[2])


def _cut_utf8(line: bytes) -> bool:
    """``line`` is UTF-8 but for one character cut short (an export that cut a value at a
    number of bytes): ``legacy_reading`` would read those bytes as some other character."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not _CUT.fullmatch(line, exc.start, exc.end):
            return False
        try:
            line[exc.end :].decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    return False


# The start of a UTF-8 character without its last continuation bytes.
_CUT = re.compile(rb"[\xc2-\xdf]|[\xe0-\xef][\x80-\xbf]?|[\xf0-\xf4][\x80-\xbf]{0,2}")


def _common_gb(char: str) -> bool:
    try:
        char.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def _common_big5(char: str) -> bool:
    try:
        code = char.encode("big5")
    except UnicodeEncodeError:
        return False
    return len(code) == 1 or 0xA440 <= int.from_bytes(code) <= 0xC67E or code[0] < 0xA4


_COMMON = {"gb18030": _common_gb, "big5": _common_big5}


def mixed_lines(sample: bytes, codec: str) -> tuple[int, int, tuple[int, Foreign] | None]:
    """In ``sample`` (the head of a file in the legacy ``codec``): how many of its lines are
    UTF-8 text (``utf8_line``), how many others hold non-ASCII text, and the first of the
    former (its 1-based line and readings)."""
    pretest = utf8_pretest(codec)
    foreign = others = 0
    first: tuple[int, Foreign] | None = None
    complete = len(sample) < SAMPLE_BYTES
    lines = sample.splitlines(keepends=True)
    if not complete and lines:
        lines.pop()  # may be cut inside a character
    for number, line in enumerate(lines, start=1):
        if line.isascii():
            continue
        text = utf8_line(line, codec) if pretest.search(line) else None
        if text is None:
            others += 1
            continue
        foreign += 1
        if first is None:
            own = line.decode(codec, "replace")
            first = (number, Foreign(own.rstrip("\r\n"), "utf-8", text.rstrip("\r\n")))
    return foreign, others, first


def display_name(codec: str) -> str:
    """How an encoding is named to a person: ``UTF-8``, ``GB18030``, ``cp1252``."""
    return _FAMILY.get(codec) or _NAMES.get(codec) or codec.upper()


_NAMES = {"big5": "Big5", "big5hkscs": "Big5-HKSCS", "latin-1": "Latin-1", "cp1252": "cp1252"}


def bom_of(head: bytes) -> tuple[str | None, int]:
    """``(codec, length)`` of the byte-order mark ``head`` starts with, or ``(None, 0)``."""
    return next(((codec, len(bom)) for bom, codec in BOMS if head.startswith(bom)), (None, 0))


def normalize_encoding(name: str) -> str:
    """The Python codec name for ``name``, with GBK/GB2312 widened to GB18030.

    Raises ``ConfigError`` for an unknown encoding.
    """
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise ConfigError(
            f"unknown encoding {name!r}; try utf-8, gb18030, big5 or cp1252"
        ) from None
    if codec in ("iso8859-1", "latin_1"):
        codec = "latin-1"
    return _SUPERSETS.get(codec, codec)


def detect_encoding(path: Path, sample: bytes, forced: str | None) -> tuple[str, float, int]:
    """``(codec, confidence, BOM length)`` for a file whose head is ``sample``."""
    bom_codec, bom_length = bom_of(sample)
    if forced:
        codec = normalize_encoding(forced)
        if codec == "utf-8-sig":
            codec = "utf-8"
        if codec in ("utf-16", "utf-32"):
            wide = bom_codec if bom_codec and bom_codec.startswith(codec) else None
            codec = wide or _wide_without_bom(sample) or f"{codec}-le"
        _refuse_contradicted(path, sample, forced, codec, bom_codec)
        # A BOM of the forced encoding is a mark, not text.
        return codec, 1.0, bom_length if codec == bom_codec else 0
    if bom_codec:
        return bom_codec, 1.0, bom_length
    complete = len(sample) < SAMPLE_BYTES
    if b"\x00" in sample:
        wide = _wide_without_bom(sample)
        if wide is not None:
            return wide, 0.9, 0
    _refuse_binary(path, sample)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8", 1.0, 0
    if not complete:
        # Do not let the cut at the end of the sample split a multibyte character.
        sample = sample[: sample.rfind(b"\n") + 1] or sample
    mostly = _mostly_utf8(sample)
    if mostly is not None:
        return "utf-8", mostly, 0
    match = charset_normalizer.from_bytes(sample, cp_isolation=list(DETECT_CANDIDATES)).best()
    if match is None:
        # Lines of UTF-8 text among legacy ones throw detection off: it is told by the others,
        # and the reader finds those lines (``utf8_line``).
        rest = b"".join(
            line
            for line in sample.splitlines(keepends=True)
            if line.isascii() or not _decodes(line, "utf-8")
        )
        if rest != sample:
            match = charset_normalizer.from_bytes(rest, cp_isolation=list(LEGACY_CANDIDATES)).best()
    # No guess beyond the encodings we know lead exports to be in: a wrong guess would send
    # every non-ASCII value as garbage, which is worse than asking.
    if match is None:
        _refuse_mixed_utf8(path, sample)
        raise InputError(
            f"{path}: cannot tell the text encoding; try --encoding gb18030 (or big5, cp1252)"
        )
    codec = normalize_encoding(match.encoding)
    if codec == "latin-1":
        codec = "cp1252" if _decodes(sample, "cp1252") else "latin-1"
    return codec, round(max(0.0, 1.0 - match.chaos), 3), 0


#: NUL bytes allowed in a text file's head: up to one in a thousand of its bytes, or
#: ``BINARY_MIN_NULS``: a NUL or two in a value make their rows invalid, not the file
#: binary. Binary data holds one NUL in about 256 bytes, often far more.
BINARY_NUL_SHARE = 0.001
BINARY_MIN_NULS = 8
# The first bytes of binary files that are sent for a CSV by mistake, and what they are.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
)
_ZIP_MAGIC = b"PK\x03\x04"
# Names of a zip's parts that only an Office document has.
_OFFICE_PARTS = (b"[Content_Types].xml", b"docProps/", b"_rels/.rels", b"xl/")


def _refuse_binary(path: Path, sample: bytes) -> None:
    """Refuse a file that is no text: a known binary kind by its first bytes, a zip (a
    damaged .xlsx when its parts are an Office document's), or bytes with many NULs."""
    for magic, kind in _MAGIC:
        if sample.startswith(magic):
            raise InputError(f"{path}: this is {kind}, not CSV text")
    if sample.startswith(_ZIP_MAGIC):
        if any(part in sample for part in _OFFICE_PARTS):
            raise InputError(
                f"{path}: damaged .xlsx: the file starts as an Excel workbook but its zip "
                "cannot be read (cut short, or a part is missing); open it in Excel and save "
                "it again, or export it again"
            )
        raise InputError(f"{path}: this is a zip archive, not CSV text or an .xlsx workbook")
    nuls = sample.count(0)
    if nuls > max(BINARY_MIN_NULS, BINARY_NUL_SHARE * len(sample)):
        raise InputError(
            f"{path}: this looks like a binary file ({nuls:,} NUL bytes in its first "
            f"{len(sample):,}), not CSV text; if it is text, give its encoding with --encoding"
        )


def _refuse_mixed_utf8(path: Path, sample: bytes) -> None:
    """Refuse a file whose encoding detection cannot tell because its head is UTF-8 text in
    some lines and legacy text in others (two files glued together), naming both."""
    lines = sample.splitlines()
    if len(sample) >= SAMPLE_BYTES and lines:
        lines.pop()  # may be cut inside a character
    utf8: list[int] = []
    legacy: list[tuple[int, tuple[str, str]]] = []
    for number, line in enumerate(lines, start=1):
        if line.isascii():
            continue
        if _decodes(line, "utf-8"):
            utf8.append(number)
        else:
            reading = legacy_reading(line)
            if reading is not None:
                legacy.append((number, reading))
    if not utf8 or not legacy:
        return
    number, (codec, text) = legacy[0]
    name = display_name(codec)
    text = text.rstrip("\r\n")
    raise InputError(
        f"{path}: the file mixes two encodings: {len(utf8):,} lines with non-ASCII text in its "
        f"head are UTF-8 (the first is line {utf8[0]}), {len(legacy):,} are not (line {number} "
        f"reads as {name} {shown(text)}); save it in one encoding (convert each part to "
        "UTF-8) and load it again"
    )


def _refuse_contradicted(
    path: Path, sample: bytes, forced: str, codec: str, bom_codec: str | None
) -> None:
    """Refuse a forced encoding that the bytes prove wrong: a byte-order mark of another
    encoding, or non-ASCII text that decodes as UTF-8 given as anything else. Reading on
    would store every non-ASCII value as mojibake (张三 as 寮犱笁) without a word."""
    fix = "drop --encoding (or the profile's encoding)"
    if bom_codec is not None and codec != bom_codec:
        name = _FAMILY.get(bom_codec, bom_codec)
        raise InputError(
            f"{path}: the file starts with a {name} byte-order mark, so it is {name}, "
            f"not {forced} as the encoding setting says; {fix} to read it as {name}"
        )
    if codec == "utf-8" or bom_codec is not None or sample.isascii():
        return
    complete = len(sample) < SAMPLE_BYTES
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
    except UnicodeDecodeError:
        return
    found = _NON_ASCII_RUN.search(text)
    if found is None:  # the only non-ASCII bytes are a character cut at the sample's end
        return
    word = found.group()[:12]
    misread = word.encode("utf-8").decode(codec, "replace")
    raise InputError(
        f"{path}: the file is UTF-8 (its non-ASCII text decodes as UTF-8, e.g. {word!r}), "
        f"not {forced} as the encoding setting says, which would read {word!r} as "
        f"{misread!r}; {fix} to read it as UTF-8"
    )


def _mostly_utf8(sample: bytes) -> float | None:
    """The confidence that ``sample`` is UTF-8 with a few broken characters (a cut
    multibyte sequence, a stray byte), or ``None`` if it is not UTF-8 at all.

    Legacy double-byte text (GB18030, Big5) decodes as UTF-8 only here and there, so its
    share of broken characters is high; a UTF-8 export with one cut character has one in
    hundreds. The rows with the broken bytes then become ``invalid``, the rest are read
    as they are, instead of every non-ASCII value being read in the wrong encoding.
    """
    text = sample.decode("utf-8", errors="replace")
    broken = text.count("\ufffd")
    wide = len(_NON_ASCII.findall(text)) - broken
    if wide >= MOSTLY_UTF8_MIN_CHARS and broken * 10 <= wide:
        return round(1.0 - broken / (wide + broken), 3)
    return None


def _decodes(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def _wide_without_bom(sample: bytes) -> str | None:
    """``utf-16-le`` / ``-be`` / ``utf-32-le`` / ``-be`` when NUL bytes fall where a BOM-less
    UTF-16/32 text puts them (mostly Latin text), else ``None``."""
    head = sample[:4096]
    head = head[: len(head) - len(head) % 4]
    if not head:
        return None
    share = [head[i::4].count(0) * 4 / len(head) for i in range(4)]
    if share[1] > 0.9 and share[2] > 0.9 and share[3] > 0.9 and share[0] < 0.1:
        codec = "utf-32-le"
    elif share[0] > 0.9 and share[1] > 0.9 and share[2] > 0.9 and share[3] < 0.1:
        codec = "utf-32-be"
    elif share[1] > 0.6 and share[3] > 0.6 and share[0] < 0.1 and share[2] < 0.1:
        codec = "utf-16-le"
    elif share[0] > 0.6 and share[2] > 0.6 and share[1] < 0.1 and share[3] < 0.1:
        codec = "utf-16-be"
    else:
        return _utf16_by_structure(head)
    try:
        text = codecs.getincrementaldecoder(codec)().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else codec


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _utf16_by_structure(head: bytes) -> str | None:
    """``utf-16-le`` / ``-be`` for BOM-less UTF-16 text with few Latin characters (Chinese
    text: its NUL bytes are only those of commas, digits and line breaks), told by where
    every NUL falls (odd or even bytes only) and by the text being lines of text; else
    ``None``."""
    even, odd = head[0::2].count(0), head[1::2].count(0)
    if (even + odd) * 50 < len(head):  # a stray NUL in narrow text is no UTF-16
        return None
    if odd and not even:
        codec = "utf-16-le"
    elif even and not odd:
        codec = "utf-16-be"
    else:
        return None
    try:
        text = codecs.getincrementaldecoder(codec)().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    if len(_LINE_BREAK.findall(text)) < 2:
        return None
    if any(unicodedata.category(char) in _NOT_TEXT for char in text if char not in "\r\n\t"):
        return None
    return codec
