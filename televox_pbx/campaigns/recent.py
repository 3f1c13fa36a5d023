"""Skip recently answered numbers, across campaigns (retry.skip_answered_within_days).

Asked by the dialer after the gate allows a campaign dial and before the claim: a number
that any campaign (or a call-now, or an inbound call) reached within the last N days is
not dialled again; the contact is closed as 'skipped' with an audit row. An operator's
call-now is not skipped: they asked for that call.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from televox_pbx.config.campaign import Campaign
from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso

SKIPPED = "skipped"


async def answered_since(store: Store, e164: str, since: datetime) -> bool:
    row = await store.fetchone(
        "SELECT 1 FROM call_attempts WHERE phone = ? AND answered_at >= ? LIMIT 1",
        (e164, iso(since)))
    return row is not None


async def skip_if_answered(store: Store, campaign: Campaign, contact_id: int, e164: str,
                           now: datetime, purpose: str) -> bool:
    """True (and the contact closed as skipped) when the number was answered recently."""
    days = campaign.retry.skip_answered_within_days
    if not days or purpose == "call_now":
        return False
    if not await answered_since(store, e164, now - timedelta(days=days)):
        return False
    async with store.transaction(tag="skip") as conn:
        async with conn.execute("SELECT status FROM contacts WHERE id = ?",
                                (contact_id,)) as cur:
            row = await cur.fetchone()
        await conn.execute("UPDATE contacts SET status = ?, updated_at = ? WHERE id = ?",
                           (SKIPPED, iso(now), contact_id))
        await conn.execute(
            "INSERT INTO contact_events(contact_id, event, from_status, to_status, detail, at)"
            " VALUES (?, 'skipped_recently_answered', ?, ?, ?, ?)",
            (contact_id, row[0] if row else None, SKIPPED,
             f"answered within the last {days} day(s)", iso(now)))
    return True
