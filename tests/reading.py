"""What the reader's tests share: the shared CSV corpus, and the checks that a file is read
whole (every line in a row or counted blank) and resumes after any batch as one pass reads it.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from bulkimport.reader import FileFormat, read_batches
from bulkimport.rows import Batch
from bulkimport.states import RepairKind

# --- the shared CSV corpus (third-party test files, read-only) --------------------------------


def _find_corpus() -> Path:
    """``shared/corpus`` next to the checkout, or next to any folder above it."""
    here = Path(__file__).resolve().parents[1]
    for folder in here.parents:
        if (folder / "shared" / "corpus").is_dir():
            return folder / "shared" / "corpus"
    return here.parent / "shared" / "corpus"


CORPUS = _find_corpus()


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(path for path in CORPUS.rglob("*") if path.is_file() and path.name != "INDEX.tsv")


# --- a file read whole, and resumed anywhere ------------------------------------------------


def blank_lines(batches: list[Batch]) -> int:
    return sum(batch.blank_lines for batch in batches)


def repairs(batches: list[Batch]) -> dict[RepairKind, int]:
    total: dict[RepairKind, int] = {}
    for batch in batches:
        for kind, count in batch.repairs.items():
            total[kind] = total.get(kind, 0) + count
    return total


def assert_resumes_everywhere(path: Path, fmt: FileFormat) -> None:
    """Resuming after any batch gives exactly the rows (and blank lines) of a single pass."""
    batches: list[Batch] = list(read_batches(path, fmt, batch_rows=1))
    single = [row for batch in batches for row in batch.rows]
    blank = blank_lines(batches)
    whole = list(read_batches(path, fmt))
    assert [row for batch in whole for row in batch.rows] == single
    assert blank_lines(whole) == blank
    done = counted = 0
    for batch in batches:
        done += len(batch.rows)
        counted += batch.blank_lines
        resumed = list(
            read_batches(
                path, fmt, start_offset=batch.end_offset, start_line=batch.next_line, batch_rows=2
            )
        )
        assert [row for rest in resumed for row in rest.rows] == single[done:]
        assert counted + blank_lines(resumed) == blank
        assert _add(repairs(batches[: batches.index(batch) + 1]), repairs(resumed)) == repairs(
            batches
        )
    if batches:
        assert batches[-1].end_offset == path.stat().st_size


def _add(one: dict[RepairKind, int], other: dict[RepairKind, int]) -> dict[RepairKind, int]:
    return {kind: one.get(kind, 0) + other.get(kind, 0) for kind in {*one, *other}}


LINE_BREAK = re.compile(r"\r\n|\r|\n")


def assert_every_line_accounted_for(path: Path, fmt: FileFormat) -> None:
    """Every physical line after the header is in a row or counted as blank: the lines of
    each row (one, plus the line breaks inside its values) and the blank lines add up to
    the lines of the file. Needs the values as read (``keep_spaces``): a trimmed value may
    have lost a line break at its end."""
    fmt = dataclasses.replace(fmt, keep_spaces=True)
    batches = list(read_batches(path, fmt, batch_rows=7))
    rows = [row for batch in batches for row in batch.rows]
    in_rows = sum(1 + sum(len(LINE_BREAK.findall(cell)) for cell in row.cells) for row in rows)
    assert in_rows + blank_lines(batches) == count_lines(path, fmt)
    lines = [row.line for row in rows]
    assert lines == sorted(set(lines))


def count_lines(path: Path, fmt: FileFormat) -> int:
    """How many physical lines the file has after its header (a last line without a line
    break counts)."""
    text = path.read_bytes()[fmt.data_offset :].decode(fmt.encoding, "replace")
    return len(LINE_BREAK.findall(text)) + (1 if text and not LINE_BREAK.search(text[-1]) else 0)
