"""One record as the Import event carries it: ``field=value||field=value``. Pure.

The format has no escaping: ``encode_record`` refuses what could not be split back into the
same pairs, ``decode_record`` splits as the server does.
"""

from __future__ import annotations

from collections.abc import Iterable

from bulkimport.errors import RecordError

RECORD_SEPARATOR = "||"


def encode_record(fields: Iterable[tuple[str, str]]) -> str:
    """Join ``(name, value)`` pairs into one ``context``: ``name=value||name=value``.

    The format has no escaping, so a record that could not be split back into the same pairs
    is refused with ``RecordError`` (its message says why): an empty name, a name holding
    ``=`` or ``||``, a value holding ``||``, or a value ending in ``|`` when another field
    follows it (``a|`` + ``||`` reads as ``a`` + ``||`` + ``|``).
    """
    pairs = list(fields)
    if not pairs:
        raise RecordError("the record has no fields")
    parts: list[str] = []
    last = len(pairs) - 1
    for index, (name, value) in enumerate(pairs):
        if not name:
            raise RecordError("a field name is empty")
        if "=" in name:
            raise RecordError(f"field name {name!r} contains '='")
        if RECORD_SEPARATOR in name:
            raise RecordError(f"field name {name!r} contains '||'")
        if name.startswith("|") and index > 0:
            raise RecordError(f"field name {name!r} starts with '|'")
        if RECORD_SEPARATOR in value:
            raise RecordError(f"the value of {name!r} contains '||'")
        if value.endswith("|") and index < last:
            raise RecordError(f"the value of {name!r} ends with '|'")
        parts.append(f"{name}={value}")
    return RECORD_SEPARATOR.join(parts)


def decode_record(context: str) -> list[tuple[str, str]]:
    """Split a ``context`` into ``(name, value)`` pairs, as the server does.

    Each pair is split at its first ``=``. Raises ``RecordError`` for an empty context or a
    pair with no ``=`` or an empty name.
    """
    if not context:
        raise RecordError("the context is empty")
    pairs: list[tuple[str, str]] = []
    for part in context.split(RECORD_SEPARATOR):
        name, sep, value = part.partition("=")
        if not sep or not name:
            raise RecordError(f"malformed pair {part[:40]!r}")
        pairs.append((name, value))
    return pairs
