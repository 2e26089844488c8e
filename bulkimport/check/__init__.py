"""``bulkimport check``: a dry run over a file that sends nothing.

- ``analysis``: ``Checker`` runs the rules (``rules``, one each) over what the reader yields,
  sorts what they find into groups and makes a ``CheckReport`` (``report``: the group codes,
  findings and report as data, ``to_json()``; ``facts``: what each finding or note is);
- ``predict``: what would make ``run`` reject or stop the whole file (no phone field, no
  known field name, records too long for a GET), with the fix (``fieldnames``: the names
  files give the vendor's fields; ``requests``: a GET's request line);
- ``render``: every sentence of check: titles, messages and notes made from the facts, and
  what the text says of the file; ``text``: the report laid out as text for a person;
- ``check_file`` (here) ties the checker to the reader.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bulkimport.check.analysis import (
    DEFAULT_EXAMPLE_LIMIT,
    DEFAULT_MAX_LENGTH,
    Checker,
    CheckOptions,
    choose_phone_field,
    select_campaign,
)
from bulkimport.check.facts import HeaderControls, PhoneChoice, PhoneSource
from bulkimport.check.predict import Predictor
from bulkimport.check.render import GROUP_TITLES
from bulkimport.check.report import (
    CheckReport,
    Finding,
    Group,
    GroupCode,
    invalid_code,
    repaired_code,
)
from bulkimport.check.requests import GetLimit
from bulkimport.check.rules import phone_code
from bulkimport.check.text import TEXT_EXAMPLES, render_text
from bulkimport.reader import (
    ReaderOptions,
    SheetFacts,
    head_controls,
    read_batches,
    sniff_format,
    wait_until_written,
)
from bulkimport.reader.phones import is_phone_like
from bulkimport.storage.interface import DuplicateStore

__all__ = [
    "DEFAULT_EXAMPLE_LIMIT",
    "DEFAULT_MAX_LENGTH",
    "GROUP_TITLES",
    "TEXT_EXAMPLES",
    "CheckOptions",
    "CheckReport",
    "Checker",
    "Finding",
    "GetLimit",
    "Group",
    "GroupCode",
    "PhoneChoice",
    "PhoneSource",
    "check_file",
    "choose_phone_field",
    "invalid_code",
    "is_phone_like",
    "phone_code",
    "render_text",
    "repaired_code",
    "select_campaign",
]


def check_file(
    path: Path,
    reader_options: ReaderOptions | None = None,
    options: CheckOptions | None = None,
    *,
    on_progress: Callable[[int], None] | None = None,
    duplicates: DuplicateStore | None = None,
) -> CheckReport:
    """Read ``path`` as ``run`` would and check every record.

    ``on_progress`` gets the byte offset reached after each batch (for a workbook, how far
    into the file reading is). ``duplicates`` keeps the phone numbers compared for duplicates
    (``Checker``'s default: a temporary SQLite file); it is closed at the end. Raises
    ``InputError`` when the file cannot be read and ``ConfigError`` for a bad option, as the
    reader does.
    """
    reader_options = reader_options or ReaderOptions()
    wait_until_written(path)
    fmt = sniff_format(path, reader_options)
    facts = SheetFacts()
    with Checker(fmt, options, duplicates=duplicates) as checker:
        # What would make run reject or stop the whole file (check.predict).
        predictor = Predictor(checker, path, reader_options)
        controls = head_controls(path, fmt)
        if controls:
            checker.note(HeaderControls(tuple(controls)))
        for batch in read_batches(path, fmt, facts=facts):
            checker.add_batch(batch)
            predictor.add(batch.rows)
            if on_progress is not None:
                on_progress(batch.end_offset)
        predictor.finish(facts if facts.sheet is not None else None)
        return checker.finish(
            path=str(path),
            bom=fmt.bom,
            encoding_given=bool(reader_options.encoding),
            delimiter_given=bool(reader_options.delimiter),
            sheet=facts,
            sheet_given=reader_options.sheet is not None,
        )
