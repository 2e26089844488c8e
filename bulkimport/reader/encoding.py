"""Which text encoding a file is in: a byte-order mark, strict UTF-8, "mostly UTF-8", then
charset-normalizer on a bounded sample, restricted to the encodings lead exports come in.

Pure functions over a sample of bytes; ``sniff_format`` reads the sample.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import charset_normalizer

from bulkimport.errors import ConfigError, InputError

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
        if wide is None:
            raise InputError(
                f"{path}: this looks like a binary file (it contains NUL bytes), not CSV text; "
                "if it is text, give its encoding with --encoding"
            )
        return wide, 0.9, 0
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
    # No guess beyond the encodings we know lead exports to be in: a wrong guess would send
    # every non-ASCII value as garbage, which is worse than asking.
    if match is None:
        raise InputError(
            f"{path}: cannot tell the text encoding; try --encoding gb18030 (or big5, cp1252)"
        )
    codec = normalize_encoding(match.encoding)
    if codec == "latin-1":
        codec = "cp1252" if _decodes(sample, "cp1252") else "latin-1"
    return codec, round(max(0.0, 1.0 - match.chaos), 3), 0


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
        return None
    try:
        text = codecs.getincrementaldecoder(codec)().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else codec
