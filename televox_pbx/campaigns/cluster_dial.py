"""The Dialer's claim on PostgreSQL, where several nodes share one database (issue 19).

Instead of pick, gate, then claim (the SQLite path, one writer), a node claims first through
store/cluster_claim.claim_next: the campaign's pacing (a token bucket of calls per minute)
and max_concurrent are counted over ALL nodes, under the campaign's pacing row lock. The
compliance gate then runs again on the claimed contact, on the DATABASE's clock, just before
the Originate: the window and the DNC list as they are at that moment, whichever node's
clock drifted. A refusal closes the claimed attempt unsent (it never went out) and the
contact is held or suppressed as on the SQLite path.

Callbacks and run-now keep the Dialer's own path (att.claim under the same one-live-call
index); only the campaign queue goes through here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from televox_pbx.config.campaign import Campaign
from televox_pbx.store.cluster_claim import Claimed, NoClaim, Pacing, claim_next
from televox_pbx.store.db import Store
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

    async def claim(self, campaign_id: int, retry_pass: int, cfg: Campaign,
                    new_id: Callable[[], str], workspace: str) -> Claimed | NoClaim:
        pacing = Pacing(calls_per_minute=cfg.pacing.calls_per_minute,
                        max_concurrent=cfg.pacing.max_concurrent)
        # Unpinned, the claim reads the database's clock itself, once it holds the
        # campaign's pacing lock (store/cluster_claim.py).
        at = await self._pinned() if self._pinned is not None else None
        return await claim_next(self._store, campaign_id, retry_pass, pacing, at, new_id,
                                workspace=workspace)
