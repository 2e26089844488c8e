"""Complete files only: a file still being written is not read until it settles.

A program writing an export writes a line in pieces; paused between two of them, it leaves
a last line with no line end (``停1000,深圳,1372``), which would be read as a record with
the phone number ``1372``. Yet a file that simply ends without a final line end is common
and legitimate (Python's csv module ends every line, many exports do not end the last).
What tells them apart:

- **recent**: the file was modified less than ``SETTLE_SECONDS`` ago and its last line has
  no line end. ``wait_until_written`` waits (at most ``WAIT_SECONDS``) until it ends in a
  line end or has not changed for ``SETTLE_SECONDS``; a file that goes on changing all
  that time is refused: still being written, try again.
- **ragged**: the last line has no line end and fewer cells than the header: a writer
  paused inside it. The reader makes it an ``invalid`` row (``INCOMPLETE_LINE``) instead of
  a short record, however old the file is (``batches``).

A last line with every cell of the header in a file that has not changed for a few seconds
is the end of the file, and is read. A writer paused longer than ``SETTLE_SECONDS`` inside
the last value of a line is not told from a file that ends there: no rule on the bytes can.

Workbooks are not waited for: a workbook half written is a damaged zip, refused as such.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bulkimport.errors import InputError

#: A file modified less than this long ago whose last line has no line end is being written.
SETTLE_SECONDS = 2.0
#: How long reading waits for such a file to settle before it refuses it.
WAIT_SECONDS = 10.0
#: How often the file is looked at meanwhile.
POLL_SECONDS = 0.1

# A zip's first bytes: a workbook, never waited for.
_ZIP = b"PK\x03\x04"


def wait_until_written(path: Path) -> None:
    """Return when ``path`` holds only complete lines or has settled (see the module's
    docstring); raise ``InputError`` if it is still changing after ``WAIT_SECONDS``. A file
    that cannot be looked at is left to the reader to refuse."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            stat = os.stat(path)
            if not os.path.isfile(path) or not stat.st_size:
                return
            with open(path, "rb") as handle:
                head = handle.read(len(_ZIP))
                handle.seek(max(0, stat.st_size - 4))
                tail = handle.read(4)
        except OSError:
            return
        age = time.time() - stat.st_mtime
        if age >= SETTLE_SECONDS or head == _ZIP or ends_in_line_end(tail):
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise InputError(
                f"{path}: still being written (changed {age:.1f} s ago, and its last line has "
                f"no line end after {WAIT_SECONDS:g} s of waiting): try again when the "
                "program writing it is done"
            )
        time.sleep(min(POLL_SECONDS, left, SETTLE_SECONDS - age))


def ends_in_line_end(tail: bytes) -> bool:
    """The last bytes of a file end its last line (in any encoding: UTF-16 and UTF-32 put
    NUL bytes beside the line end)."""
    return tail.rstrip(b"\x00")[-1:] in (b"\n", b"\r")
