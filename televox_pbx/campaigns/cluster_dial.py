"""The Dialer's claim on PostgreSQL, where several nodes share one database (issue 19).

Instead of pick, gate, then claim (the SQLite path, one writer), a node claims first through
store/cluster_claim.claim_many: the campaign's pacing (a token bucket of calls per minute)
and max_concurrent are counted over ALL nodes, under the campaign's pacing row lock. The
compliance gate then runs again on the claimed contact, on the DATABASE's clock, just before
the Originate: the window and the DNC list as they are at that moment, whichever node's
clock drifted. A refusal closes the claimed attempt unsent (it never went out) and the
contact is held or suppressed as on the SQLite path.

Due callbacks, run-now and call-now claim through here too (`claim_contact`, or the queue
claim with `overdraw`): every claim a node makes is counted in the campaign's shared bucket and
max_concurrent, and none is made while the node's lease has lapsed (store/node_load.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from televox_pbx.config.campaign import Campaign
from televox_pbx.store.attempts import Intent
from televox_pbx.store.cluster_claim import (
    Claimed,
    NoClaim,
    Pacing,
    claim_contact,
    claim_many,
)
from televox_pbx.store.db import Store
from televox_pbx.store.node_load import holds_lease, may_originate
from televox_pbx.store.nodes import db_now_s

__all__ = ["Claimed", "ClusterDial", "NoClaim"]


class ClusterDial:
    """`db_clock`: the database's clock (default: asks the database); tests inject one."""

    def __init__(self, store: Store, *,
                 db_clock: Callable[[], Awaitable[datetime]] | None = None) -> None:
        self._store = store
        self._pinned = db_clock
        self.now = db_clock or self._db_now

    async def _db_now(self) -> datetime:
        row = await self._store.fetchone(f"SELECT {db_now_s(self._store.dialect)} AS t")
        assert row is not None
        return datetime.fromtimestamp(float(row["t"]), UTC)

    async def holds_lease(self) -> bool:
        return await holds_lease(self._store)

    async def may_originate(self, call_id: str) -> bool:
        """Still this node's unsent attempt, with lease to spare (store/node_load.py)."""
        return await may_originate(self._store, call_id)

    async def claim(self, campaign_id: int, retry_pass: int, cfg: Campaign,
                    new_id: Callable[[], str], workspace: str, *, want: int = 1,
                    overdraw: bool = False) -> list[Claimed] | NoClaim:
        """The next contacts of the campaign queue, up to `want` (this node's free slots)
        in one statement. `overdraw`: run-now (store/cluster_claim _admit: the wait is
        skipped, the count is not)."""
        # Unpinned, the claim reads the database's clock itself, once it holds the
        # campaign's pacing lock (store/cluster_claim.py).
        at = await self._pinned() if self._pinned is not None else None
        return await claim_many(self._store, campaign_id, retry_pass, _pacing(cfg), at,
                                new_id, want, workspace=workspace, overdraw=overdraw)

    async def claim_contact(self, intent: Intent, cfg: Campaign, now: datetime,
                            workspace: str, *, overdraw: bool = False) -> NoClaim | None:
        """A contact chosen before the claim (a due callback, call-now); `now`: the
        database's time the gate judged it at."""
        return await claim_contact(self._store, intent, _pacing(cfg), now,
                                   workspace=workspace, overdraw=overdraw)


def _pacing(cfg: Campaign) -> Pacing:
    return Pacing(calls_per_minute=cfg.pacing.calls_per_minute,
                  max_concurrent=cfg.pacing.max_concurrent)
