"""``check``'s ``DuplicateStore`` in SQLite: every (line, phone number) of a file in a private
temporary database on disk.

An empty file name makes SQLite create an on-disk database that it deletes on close; its page
cache is bounded, so memory stays flat however many numbers the file holds (a Python dict
takes about 100 bytes a number). It is no queue database: nothing is shared, nothing kept.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from bulkimport.storage.interface import DuplicateStore, Repeat

#: The page cache, in KiB (SQLite's negative form).
CACHE_KIB = 2 * 1024


class SqliteDuplicates:
    """A ``DuplicateStore`` in a temporary SQLite file; ``close()`` deletes it."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("")
        self._db.executescript(
            f"""
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA temp_store = FILE;
            PRAGMA cache_size = -{CACHE_KIB};
            CREATE TABLE phones (line INTEGER PRIMARY KEY, phone TEXT NOT NULL);
            """
        )

    def add(self, numbers: Sequence[tuple[int, str]]) -> None:
        self._db.executemany("INSERT INTO phones VALUES (?, ?)", numbers)

    def repeats(self, limit: int | None) -> tuple[int, list[Repeat]]:
        self._db.execute("CREATE INDEX phones_by_phone ON phones (phone, line)")
        # Grouping walks the index; count(DISTINCT phone) would sort the table again.
        (total,) = self._db.execute(
            "SELECT coalesce(sum(n - 1), 0) FROM "
            "(SELECT count(*) AS n FROM phones GROUP BY phone HAVING n > 1)"
        ).fetchone()
        rows = self._db.execute(
            """
            WITH firsts AS (
                SELECT phone, min(line) AS first FROM phones
                GROUP BY phone HAVING count(*) > 1
            )
            SELECT p.line, p.phone, f.first
            FROM phones AS p JOIN firsts AS f ON p.phone = f.phone AND p.line > f.first
            ORDER BY p.line LIMIT ?
            """,
            (-1 if limit is None else limit,),
        ).fetchall()
        return int(total), [Repeat(int(a), str(b), int(c)) for a, b, c in rows]

    def of_length(self, digits: int, limit: int | None) -> list[tuple[int, str]]:
        rows = self._db.execute(
            "SELECT line, phone FROM phones WHERE length(phone) = ? AND phone NOT LIKE '+%' "
            "ORDER BY line LIMIT ?",
            (digits, -1 if limit is None else limit),
        ).fetchall()
        return [(int(line), str(phone)) for line, phone in rows]

    def close(self) -> None:
        self._db.close()


def _conforms(store: SqliteDuplicates) -> DuplicateStore:
    """For the type checker: ``SqliteDuplicates`` implements ``DuplicateStore``."""
    return store
