"""The PostgreSQL ``ServerBudget``: the ``server_budgets`` table, one row per server.

The clock is the database server's (``clock_timestamp()``, the time of the statement, not of
its transaction): every host sending through the database reads the same one, and a grant
says how far after it its first call is, so a host whose own clock is off is not misled.
"""

from __future__ import annotations

from bulkimport.storage.postgres.database import Database
from bulkimport.storage.values import Grant, ProbeTurn

# One statement, as on SQLite: the budget's next free time moves on by count / rate, from
# now if it lay in the past (moved back first by as much as the clock went back since the
# last reservation); the first granted call is where it was, returned relative to the
# server's now.
_RESERVE = (
    "WITH now AS (SELECT extract(epoch FROM clock_timestamp())::double precision AS at)"
    " INSERT INTO server_budgets AS b (server, next_at, reserved_at)"
    " SELECT $1, now.at + $2, now.at FROM now"
    " ON CONFLICT (server) DO UPDATE"
    " SET next_at = greatest(b.next_at - greatest(b.reserved_at - (SELECT at FROM now), 0),"
    " (SELECT at FROM now)) + $2, reserved_at = (SELECT at FROM now)"
    " RETURNING b.next_at - $2 - (SELECT at FROM now)"
)


# A probe's turn: taken when the last one's interval has passed (or none was ever taken),
# or when it ends further away than an interval: the clock was set back since.
_PROBE_TURN = (
    "WITH now AS (SELECT extract(epoch FROM clock_timestamp())::double precision AS at)"
    " INSERT INTO server_budgets AS b (server, next_at, probe_at)"
    " SELECT $1, now.at, now.at + $2 FROM now"
    " ON CONFLICT (server) DO UPDATE SET probe_at = CASE"
    " WHEN b.probe_at IS NULL OR b.probe_at <= (SELECT at FROM now)"
    " OR b.probe_at > (SELECT at FROM now) + $2"
    " THEN (SELECT at FROM now) + $2 ELSE b.probe_at END"
    " RETURNING b.probe_at = (SELECT at FROM now) + $2, b.backs"
)


class PostgresServerBudget:
    """The servers' budgets kept in one database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def reserve(self, server: str, rate_per_s: float, count: int) -> Grant:
        """``count`` calls to ``server`` at ``rate_per_s``, the next ones free."""
        spacing_s = Grant.spacing_of(rate_per_s, count)
        first_in_s = await self._db.fetchval(_RESERVE, server, count * spacing_s)
        return Grant(count, max(0.0, float(first_in_s)), spacing_s)

    async def probe_turn(self, server: str, interval_s: float) -> ProbeTurn:
        """Whether this runner probes ``server`` now, and how many probes found it back."""
        [found] = await self._db.fetch(_PROBE_TURN, server, interval_s)
        return ProbeTurn(bool(found[0]), int(found[1]))

    async def note_back(self, server: str) -> None:
        """A probe found ``server`` answering again."""
        await self._db.execute(
            "UPDATE server_budgets SET backs = backs + 1, probe_at = NULL WHERE server = $1",
            server,
        )
