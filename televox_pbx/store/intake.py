"""The webhook intake's replay guard: signed requests already accepted, per campaign."""

from __future__ import annotations

from datetime import datetime

from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso


async def claim_request(store: Store, campaign: str, key: str, at: datetime,
                        forget_before: datetime) -> bool:
    """Record `key` as accepted; False when it already was (a replay). Keys older than
    `forget_before` go first: their timestamps are refused as stale anyway."""
    async with store.transaction(tag="intake") as conn:
        # This campaign's only: another may accept older timestamps (its own max_age_s).
        await conn.execute("DELETE FROM intake_seen WHERE campaign = ? AND at < ?",
                           (campaign, iso(forget_before)))
        cur = await conn.execute(
            "INSERT INTO intake_seen(campaign, key, at) VALUES (?,?,?) ON CONFLICT DO NOTHING",
            (campaign, key, iso(at)))
        return bool(cur.rowcount)


async def release_request(store: Store, campaign: str, key: str) -> None:
    """The request was refused after its claim (bad JSON, bad mapping): the sender may fix
    the problem and send the same event again."""
    await store.execute("DELETE FROM intake_seen WHERE campaign = ? AND key = ?",
                        (campaign, key))
