"""Claims across nodes (issue 19 item 2), on PostgreSQL: one transaction per claim.

1. The campaign's pacing row is locked (FOR UPDATE): a token bucket of calls per minute,
   and the live count against max_concurrent, both counted over all nodes.
2. The contact is picked with FOR UPDATE SKIP LOCKED inside a CTE that carries the LIMIT
   (a `WHERE id IN (... LIMIT n ...)` subquery may return more than n rows), its next
   phone's DNC entry excluded: two nodes never pick the same contact, nor wait for each
   other.
3. The attempt goes in under the partial unique index on live attempts per number
   (call_attempts_one_live). A conflict (the number is live in another campaign or inbound)
   backs that contact off and the next pick is tried.

The Dialer claims through here on PostgreSQL (campaigns/cluster_dial.py), then re-checks the
window and DNC on the database's clock just before the Originate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from televox_pbx.store.db import Store, StoreError
from televox_pbx.store.dial_queue import (
    CANDIDATE_COLS,
    NEXT_PHONE_SQL,
    Candidate,
    candidate_from_row,
)
from televox_pbx.store.sqlport import POSTGRESQL
from televox_pbx.store.timefmt import iso

_RETRIES = 5
# The database's clock as the store writes times (ISO 8601, UTC, milliseconds).
_NOW_TEXT = ("to_char(clock_timestamp() AT TIME ZONE 'UTC',"
             " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
_LIVE = "('intent','originated','ringing','answered')"

_PICK = (
    f"WITH pick AS (SELECT {CANDIDATE_COLS}, c.next_eligible_at AS eligible FROM contacts c"
    f" LEFT JOIN contact_phones p ON p.contact_id = c.id AND p.position = {NEXT_PHONE_SQL}"
    " WHERE c.campaign_id = :campaign AND c.status = 'pending' AND c.retry_pass = :pass"
    " AND (c.next_eligible_at IS NULL OR c.next_eligible_at <="
    f" COALESCE(CAST(:eligible AS TEXT), {_NOW_TEXT}))"
    " AND p.e164 IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM dnc d WHERE d.workspace = :ws AND d.e164 = p.e164)"
    " ORDER BY c.next_eligible_at NULLS FIRST, c.id LIMIT :n"
    " FOR UPDATE OF c SKIP LOCKED)"
    " SELECT * FROM pick ORDER BY eligible NULLS FIRST, id")

# The locked part (migration 0024): the bucket, the lease, the live count, the attempt.
_TAKE = ("SELECT out_reason, out_contact, out_backed FROM televox_take(:campaign, :pinned,"
         " :rate, :max, :burst, :node, :epoch, :backoff, :id, :contacts, :phones,"
         " :positions, :passes)")


@dataclass(frozen=True, slots=True)
class Pacing:
    calls_per_minute: float
    max_concurrent: int
    burst: float = 1.0  # the bucket's size: calls that may start back to back


@dataclass(frozen=True, slots=True)
class Claimed:
    call_id: str
    candidate: Candidate


@dataclass(frozen=True, slots=True)
class NoClaim:
    """paced (no token), full (max_concurrent live), empty (no contact to pick), or
    no_lease (this node's lease expired, or a newer start of it took over)."""
    reason: str
    backed_off: int = 0  # contacts whose number was live elsewhere


async def claim_next(store: Store, campaign_id: int, retry_pass: int, pacing: Pacing,
                     now: datetime | None, new_id: Callable[[], str], *,
                     workspace: str = "default", pick: int = 4,
                     backoff: timedelta = timedelta(minutes=1)) -> Claimed | NoClaim:
    """One claim for this campaign, whichever node asks, in one transaction.

    `now=None` (the daemon): the database's clock, read once the pacing row is locked. The
    claims of a campaign then carry times in the order they took the lock, so the token
    bucket and the attempts' stored start times agree exactly (a time read before waiting
    for the lock may be older than the claim that went first). Tests pin `now`."""
    if store.dialect != POSTGRESQL:
        raise StoreError("claim_next needs PostgreSQL (SQLite serialises its one writer)")
    for attempt in range(_RETRIES):
        try:
            return await _claim(store, campaign_id, retry_pass, pacing, now, new_id,
                                workspace, pick, backoff)
        except asyncpg.DeadlockDetectedError:
            # Two campaigns' claims each waiting on the other's uncommitted attempt to a
            # shared number: PostgreSQL aborts one whole transaction; it simply runs again.
            if attempt == _RETRIES - 1:
                raise
    raise AssertionError("unreachable")


async def _claim(store: Store, campaign_id: int, retry_pass: int, pacing: Pacing,
                 pinned: datetime | None, new_id: Callable[[], str], workspace: str,
                 pick: int, backoff: timedelta) -> Claimed | NoClaim:
    """Four round trips: BEGIN, the pick (SKIP LOCKED never waits), the take
    (televox_take: the pacing lock and everything under it, server-side), COMMIT. The
    pacing row that every node claiming for this campaign queues for is held over no
    client round trip but the COMMIT's (statement by statement it was held over eight)."""
    node = store.node
    call_id = new_id()  # one id: an insert that met a live number used none
    async with store.transaction(tag="claim") as conn:
        # Due now on the database's clock (or the pinned time); the picked contacts stay
        # locked until this transaction ends, whatever it decides.
        async with conn.execute(_PICK, {"campaign": campaign_id, "pass": retry_pass,
                                        "eligible": iso(pinned) if pinned else None,
                                        "ws": workspace, "n": pick}) as cur:
            cands = [candidate_from_row(r) for r in await cur.fetchall()]
        if not cands:
            return NoClaim("empty")
        async with conn.execute(_TAKE, {
                "campaign": campaign_id,
                "pinned": pinned.timestamp() if pinned is not None else None,
                "rate": float(pacing.calls_per_minute), "max": pacing.max_concurrent,
                "burst": float(pacing.burst), "node": node.node_id if node else None,
                "epoch": node.epoch if node else None, "backoff": backoff.total_seconds(),
                "id": call_id, "contacts": [c.contact_id for c in cands],
                "phones": [c.e164 for c in cands], "positions": [c.position for c in cands],
                "passes": [c.retry_pass for c in cands]}) as cur:
            row = await cur.fetchone()
    assert row is not None
    if row["out_reason"] != "claimed":
        return NoClaim(str(row["out_reason"]), int(row["out_backed"]))
    return Claimed(call_id, next(c for c in cands if c.contact_id == row["out_contact"]))
