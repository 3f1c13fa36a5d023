"""On a cluster, contacts whose next phone went on the DNC list after they were queued.

The cluster claim never picks them (issue 19: DNC numbers are excluded from the pick), so
left alone they would stay pending forever, where on one box the gate refuses them and the
next phone is tried. When a campaign's queue has nothing left to claim, the Dialer takes a
few of them here and refuses them through its own path (campaigns/dialer.py `_try`: the
gate says DNC, the phone is marked and the contact moves on). Each is first held for a
minute by a conditional update of its eligibility, so two nodes never refuse the same phone
twice; a node that dies holding one lets it go when the minute is up.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from televox_pbx.store.db import Store
from televox_pbx.store.dial_queue import (
    CANDIDATE_COLS,
    NEXT_PHONE_SQL,
    Candidate,
    candidate_from_row,
)
from televox_pbx.store.timefmt import iso

HOLD = timedelta(minutes=1)
_DUE = "(c.next_eligible_at IS NULL OR c.next_eligible_at <= ?)"
_BLOCKED_SQL = (
    f"SELECT {CANDIDATE_COLS} FROM contacts c"
    f" JOIN contact_phones p ON p.contact_id = c.id AND p.position = {NEXT_PHONE_SQL}"
    f" WHERE c.campaign_id = ? AND c.status = 'pending' AND c.retry_pass = ? AND {_DUE}"
    " AND EXISTS (SELECT 1 FROM dnc d WHERE d.workspace = ? AND d.e164 = p.e164)"
    " ORDER BY c.id LIMIT ?")


async def take_blocked(store: Store, campaign_id: int, retry_pass: int, now: datetime,
                       workspace: str, limit: int = 20) -> list[Candidate]:
    """Due contacts of the pass whose next phone is DNC-listed, each now held by us."""
    rows = await store.fetchall(_BLOCKED_SQL, (campaign_id, retry_pass, iso(now),
                                               workspace, limit))
    taken: list[Candidate] = []
    for row in rows:
        cand = candidate_from_row(row)
        async with store.transaction(tag="dnc-sweep") as conn:
            cur = await conn.execute(
                f"UPDATE contacts c SET next_eligible_at = ? WHERE c.id = ?"
                f" AND c.status = 'pending' AND {_DUE}",
                (iso(now + HOLD), cand.contact_id, iso(now)))
            if cur.rowcount == 1:
                taken.append(cand)
    return taken
