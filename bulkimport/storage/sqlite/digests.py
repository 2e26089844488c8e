"""A record's customer and digest, as SQL functions of every connection to the queue.

The latest record each customer received (``latest_records``, see ``latest.py``) is kept as
a digest: 8 bytes of BLAKE2b of the encoded record (a 64-bit integer, SQLite's cheapest
value), not the record itself. Two different records share a digest with a probability of
2**-64: a changed row skipped once in 10**19 comparisons.

A record is ``name=value||name=value...`` and a value never holds ``|`` (the format has no
escaping; such rows are invalid), so a field's value is found by its ``||name=`` alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from bulkimport.protocol import RECORD_SEPARATOR
from bulkimport.storage.sqlite.cells import holds_value


def customer_of(record: str | None, key_field: str) -> str | None:
    """The value of ``key_field`` in ``record`` (None when it has none, or it is empty)."""
    if record is None:
        return None
    prefix = f"{key_field}="
    if record.startswith(prefix):
        start = len(prefix)
    else:
        found = record.find(RECORD_SEPARATOR + prefix)
        if found < 0:
            return None
        start = found + len(RECORD_SEPARATOR) + len(prefix)
    end = record.find(RECORD_SEPARATOR, start)
    value = record[start:] if end < 0 else record[start:end]
    return value or None


def digest_of(record: str | None) -> int | None:
    """A 64-bit digest of ``record`` (None for no record)."""
    if record is None:
        return None
    digest = hashlib.blake2b(record.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


#: ``(name, number of arguments, function)``, registered on each connection as deterministic.
SQL_FUNCTIONS: tuple[tuple[str, int, Callable[..., Any]], ...] = (
    ("bulkimport_customer", 2, customer_of),
    ("bulkimport_digest", 1, digest_of),
    ("bulkimport_holds", 3, holds_value),
)
