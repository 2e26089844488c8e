"""The SQLite ``ServerBudget``: the ``server_budgets`` table, one row per server.

The clock is this host's (``time.time()``): a SQLite file is shared by the processes of one
host only. A reservation is one upsert on the sending path's connection, where a claim
runs too: no thread hop for a statement of a few microseconds.
"""

from __future__ import annotations

import sqlite3
import time

from bulkimport.storage.sqlite.database import Database
from bulkimport.storage.values import Grant, ProbeTurn

# One statement: the budget's next free time moves on by count / rate, from now if it lay
# in the past; what it was before is the first granted call. A clock set back since the last
# reservation moves the next free time back by as much (``reserved_at``): the calls granted
# keep their spacing, and nobody waits for the clock to catch up.
_RESERVE = (
    "INSERT INTO server_budgets (server, next_at, reserved_at) VALUES (?1, ?2 + ?3, ?2)"
    " ON CONFLICT (server) DO UPDATE"
    " SET next_at = max(next_at - max(coalesce(reserved_at, ?2) - ?2, 0), ?2) + ?3,"
    " reserved_at = ?2"
    " RETURNING next_at"
)


# A probe's turn: taken when the last one's interval has passed (or none was ever taken),
# or when it ends further away than an interval: the clock was set back since.
_PROBE_TURN = (
    "INSERT INTO server_budgets (server, next_at, probe_at) VALUES (?1, ?2, ?2 + ?3)"
    " ON CONFLICT (server) DO UPDATE SET probe_at = CASE"
    " WHEN probe_at IS NULL OR probe_at <= ?2 OR probe_at > ?2 + ?3 THEN ?2 + ?3"
    " ELSE probe_at END"
    " RETURNING probe_at = ?2 + ?3, backs"
)


class SqliteServerBudget:
    """The servers' budgets kept in one database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def reserve(self, server: str, rate_per_s: float, count: int) -> Grant:
        """``count`` calls to ``server`` at ``rate_per_s``, the next ones free."""
        spacing_s = Grant.spacing_of(rate_per_s, count)
        span_s = count * spacing_s

        def reserve(conn: sqlite3.Connection) -> tuple[float, float]:
            now = time.time()
            (next_at,) = conn.execute(_RESERVE, (server, now, span_s)).fetchone()
            return float(next_at), now

        async with self._db.lock:
            next_at, now = await self._db.on_loop(reserve)
        return Grant(count, max(0.0, next_at - span_s - now), spacing_s)

    async def probe_turn(self, server: str, interval_s: float) -> ProbeTurn:
        """Whether this runner probes ``server`` now, and how many probes found it back."""

        def turn(conn: sqlite3.Connection) -> ProbeTurn:
            mine, backs = conn.execute(_PROBE_TURN, (server, time.time(), interval_s)).fetchone()
            return ProbeTurn(bool(mine), int(backs))

        async with self._db.lock:
            return await self._db.on_loop(turn)

    async def note_back(self, server: str) -> None:
        """A probe found ``server`` answering again."""

        def back(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE server_budgets SET backs = backs + 1, probe_at = NULL WHERE server = ?",
                (server,),
            )

        async with self._db.lock:
            await self._db.on_loop(back)
