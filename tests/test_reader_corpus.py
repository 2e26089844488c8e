"""The reader against third-party CSV test corpora (read-only, in the shared folder)."""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

import pytest

from bulkimport.errors import InputError
from bulkimport.reader import FileFormat, ReaderOptions, read_batches, sniff_format
from bulkimport.rows import NewRow
from bulkimport.states import InvalidReason
from tests.reading import CORPUS, assert_every_line_accounted_for, corpus_files

pytestmark = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"the shared CSV corpus is not at {CORPUS}"
)


def read_rows(path: Path, fmt: FileFormat) -> list[NewRow]:
    return [row for batch in read_batches(path, fmt, batch_rows=97) for row in batch.rows]


def stdlib_record_lines(path: Path, fmt: FileFormat) -> list[int]:
    """The first line of each record the stdlib csv module finds after the header, blank
    ones left out (a parser error counts as one record, as the reader reports it as one
    invalid row)."""
    with open(path, "rb") as handle:
        handle.seek(fmt.data_offset)
        data = handle.read()
    text = codecs.decode(data, fmt.encoding, "replace")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter)
    lines: list[int] = []
    before = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return lines
        except csv.Error:
            cells = ["error"]
        if any(cell.strip() for cell in cells):
            lines.append(fmt.data_line + before)
        before = reader.line_num


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_corpus_file_is_refused_cleanly_or_fully_accounted_for(path: Path) -> None:
    try:
        fmt = sniff_format(path)
    except InputError as exc:
        assert str(path) in str(exc)
        assert "\n" not in str(exc)
        return
    rows = read_rows(path, fmt)
    lines = [row.line for row in rows]
    assert lines == sorted(set(lines))
    assert all(line >= fmt.data_line for line in lines)
    # Every line in a row or counted blank, and each message on one line naming a line.
    assert_every_line_accounted_for(path, fmt)
    assert all("\n" not in (row.message or "") for row in rows)
    # Where no record had to be cut back to its first line, the rows are the stdlib's
    # records (blank ones aside), line for line.
    if all(row.reason is not InvalidReason.UNCLOSED_QUOTE for row in rows):
        assert lines == stdlib_record_lines(path, fmt)


SPECTRUM = CORPUS / "csv-spectrum"


@pytest.mark.parametrize(
    "name",
    [
        "comma_in_quotes",
        "empty",
        "empty_crlf",
        "escaped_quotes",
        "json",
        "newlines",
        "newlines_crlf",
        "quotes_and_newlines",
        "simple",
        "simple_crlf",
        "utf8",
    ],
)
def test_csv_spectrum_reads_as_its_json_says(name: str) -> None:
    path = SPECTRUM / "csvs" / f"{name}.csv"
    expected = json.loads((SPECTRUM / "json" / f"{name}.json").read_text(encoding="utf-8"))
    fmt = sniff_format(path, ReaderOptions(keep_empty=True))
    rows = read_rows(path, fmt)
    assert [dict(zip(fmt.header, row.cells, strict=True)) for row in rows] == expected


def test_csv_spectrum_location_coordinates_reads_the_bare_quote() -> None:
    # Its json has an upstream data error (the phone number); the bare quote is the point.
    path = SPECTRUM / "csvs" / "location_coordinates.csv"
    fmt = sniff_format(path)
    (row,) = read_rows(path, fmt)
    assert len(row.cells) == len(fmt.header)
    assert any('"' in cell for cell in row.cells)


@pytest.mark.parametrize(
    ("name", "encoding"),
    [
        ("utf8_nobom.csv", "utf-8"),
        ("utf8_bom.csv", "utf-8"),
        ("utf16le_bom.csv", "utf-16-le"),
        ("utf16be_bom.csv", "utf-16-be"),
        ("utf32le_bom.csv", "utf-32-le"),
        ("utf32be_bom.csv", "utf-32-be"),
    ],
)
def test_fastcsv_encodings(name: str, encoding: str) -> None:
    matches = list((CORPUS / "fastcsv").rglob(name))
    assert matches, f"{name} not in the corpus"
    fmt = sniff_format(matches[0])
    assert fmt.encoding == encoding
    assert fmt.header == ("foo", "üÜß")
    assert [row.cells for row in read_rows(matches[0], fmt)] == [("123", "456")]


@pytest.mark.parametrize(
    ("relative", "encoding"),
    [
        # Both decode without error as GB18030, into garbage: the detector must not fall for it.
        ("messytables/horror/characters.csv", "big5"),
        ("csvlint.rb/features/fixtures/invalid-byte-sequence.csv", "cp1252"),
        ("messytables/horror/utf-16le_encoded.csv", "utf-16-le"),
        ("messytables/horror/spanish_chars.csv", "cp1252"),
    ],
)
def test_encoding_traps(relative: str, encoding: str) -> None:
    assert sniff_format(CORPUS / relative).encoding == encoding


def test_univocity_correctness() -> None:
    path = CORPUS / "univocity-csv-parsers-comparison" / "src/main/resources/correctness.csv"
    fmt = sniff_format(path)
    rows = read_rows(path, fmt)
    assert len(rows) == 5
    assert all(len(row.cells) == 5 for row in rows)
    assert any('Venture "Extended Edition"' in row.cells for row in rows)


def test_bare_cr_manifest() -> None:
    path = CORPUS / "w3c-csvw" / "tests" / "manifest.csv"
    fmt = sniff_format(path)
    rows = read_rows(path, fmt)
    assert len(rows) > 100
    assert rows[0].line == 2
