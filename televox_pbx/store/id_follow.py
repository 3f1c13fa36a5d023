"""Following a table by id on a database that several nodes write (issue 19 item 6).

An id is handed out at INSERT but becomes visible at COMMIT. With one writer (SQLite, one
box) that is the same order; with several nodes on PostgreSQL, node A's row 10 can commit
after node B's row 11 was streamed, and a reader that moved its cursor to 11 never sees
10. So on PostgreSQL a follower streams the ids after its cursor only up to the first gap:
a missing id is a transaction still in flight (it appears within moments) or one rolled
back (it never will). A gap is waited for `wait_s` on the injected clock, then passed.
Identity sequences hand ids out one at a time (cache 1), so gaps are rare and short.
"""

from __future__ import annotations

from televox_pbx.clock import Clock
from televox_pbx.store.db import Store
from televox_pbx.store.sqlport import POSTGRESQL

GAP_WAIT_S = 2.0
_LOOK = 2000  # ids examined per call


class IdFollower:
    def __init__(self, store: Store, table: str, clock: Clock, *,
                 wait_s: float = GAP_WAIT_S) -> None:
        if not table.isidentifier():
            raise ValueError(f"bad table name {table!r}")
        self.store, self.table, self.clock, self.wait_s = store, table, clock, wait_s
        self._gaps: dict[int, float] = {}  # first missing id -> when it was first seen

    async def safe_upto(self, cursor: int) -> int | None:
        """The highest id that may be streamed after `cursor` now; None: no bound (one
        writer). Ids past an unfilled gap younger than `wait_s` are held back."""
        if self.store.dialect != POSTGRESQL:
            return None
        rows = await self.store.fetchall(
            f"SELECT id FROM {self.table} WHERE id > ? ORDER BY id LIMIT ?", (cursor, _LOOK))
        now = self.clock.monotonic()
        upto = cursor
        for r in rows:
            found = int(r[0])
            if found != upto + 1:  # ids upto+1 .. found-1 are not (yet) visible
                seen = self._gaps.setdefault(upto + 1, now)
                if now - seen < self.wait_s:
                    break
            upto = found
        self._gaps = {k: v for k, v in self._gaps.items() if k > upto}
        return upto
