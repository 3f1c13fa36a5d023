"""Retention for the API's own logs: finished webhook deliveries (with their attempt log)
and the API audit table. Deletes go in bounded batches, so a first purge of a big table
never holds the write lock long enough to stall the dialer."""

from __future__ import annotations

from datetime import datetime

from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso

BATCH = 2000


async def _purge(store: Store, sql: str, before: datetime, tag: str) -> int:
    total = 0
    while True:
        async with store.transaction(tag=tag) as conn:
            cur = await conn.execute(sql, (iso(before), BATCH))
            n = int(cur.rowcount or 0)
        total += n
        if n < BATCH:
            return total


async def purge_deliveries(store: Store, before: datetime) -> int:
    """Delivered or failed deliveries created before `before` (their attempts cascade);
    pending ones are never purged: they are still being retried."""
    return await _purge(store, (
        "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries"
        " WHERE created_at < ? AND status != 'pending' ORDER BY created_at LIMIT ?)"),
        before, "retention")


async def purge_audit(store: Store, before: datetime) -> int:
    return await _purge(store, (
        "DELETE FROM api_audit WHERE id IN (SELECT id FROM api_audit WHERE at < ?"
        " ORDER BY at LIMIT ?)"), before, "retention")


async def purge_intake_seen(store: Store, before: datetime) -> int:
    return await _purge(store, (
        # By its key, not SQLite's rowid: PostgreSQL has none.
        "DELETE FROM intake_seen WHERE (campaign, key) IN (SELECT campaign, key"
        " FROM intake_seen WHERE at < ? LIMIT ?)"), before, "retention")
