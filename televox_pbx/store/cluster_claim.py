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
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from televox_pbx.store.db import Store, StoreError
from televox_pbx.store.dial_queue import (
    CANDIDATE_COLS,
    NEXT_PHONE_SQL,
    Candidate,
    candidate_from_row,
)
from televox_pbx.store.nodes import db_now_s
from televox_pbx.store.sqlport import POSTGRESQL
from televox_pbx.store.timefmt import iso

_RETRIES = 5
_LIVE = "('intent','originated','ringing','answered')"

_PICK = (
    f"WITH pick AS (SELECT {CANDIDATE_COLS}, c.next_eligible_at AS eligible FROM contacts c"
    f" LEFT JOIN contact_phones p ON p.contact_id = c.id AND p.position = {NEXT_PHONE_SQL}"
    " WHERE c.campaign_id = :campaign AND c.status = 'pending' AND c.retry_pass = :pass"
    " AND (c.next_eligible_at IS NULL OR c.next_eligible_at <= :now)"
    " AND p.e164 IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM dnc d WHERE d.workspace = :ws AND d.e164 = p.e164)"
    " ORDER BY c.next_eligible_at NULLS FIRST, c.id LIMIT :n"
    " FOR UPDATE OF c SKIP LOCKED)"
    " SELECT * FROM pick ORDER BY eligible NULLS FIRST, id")

# The attempt, and what follows from whether it went in, in one statement (one round trip
# while the pacing row is locked): the contact is `calling` and the bucket pays a token, or
# (the number is live elsewhere) the contact waits for the backoff.
_TAKE = (
    "WITH ins AS (INSERT INTO call_attempts(id, campaign_id, contact_id, phone,"
    " phone_position, retry_pass, status, created_at, gate_reason, node_id, node_epoch)"
    " VALUES (:id, :campaign, :contact, :phone, :position, :pass, 'intent', :now, :reason,"
    f" :node, :epoch) ON CONFLICT (phone) WHERE status IN {_LIVE} DO NOTHING"
    " RETURNING contact_id),"
    " took AS (UPDATE contacts SET status = 'calling', last_attempt_at = :now,"
    " updated_at = :now WHERE id IN (SELECT contact_id FROM ins) RETURNING id),"
    " waits AS (UPDATE contacts SET next_eligible_at = :later, updated_at = :now"
    " WHERE id = :contact AND NOT EXISTS (SELECT 1 FROM ins) RETURNING id),"
    " paid AS (UPDATE campaign_pacing SET tokens = :tokens, refilled_s = :now_s"
    " WHERE campaign_id = :campaign AND EXISTS (SELECT 1 FROM ins) RETURNING campaign_id)"
    " SELECT (SELECT COUNT(*) FROM ins) AS n, (SELECT COUNT(*) FROM took) AS t,"
    " (SELECT COUNT(*) FROM waits) AS w, (SELECT COUNT(*) FROM paid) AS p")


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
    """Six round trips: BEGIN, the lock, the state, the pick, the take, COMMIT (the lock is
    held for the last four: with several nodes on one campaign it is what they queue for)."""
    backed_off = 0
    clock = db_now_s(store.dialect)
    node = store.node
    lease = (f"EXISTS (SELECT 1 FROM nodes WHERE node_id = :node AND epoch = :epoch"
             f" AND lease_until > {clock})") if node is not None else "TRUE"
    async with store.transaction(tag="claim") as conn:
        row = await _lock_pacing(conn, campaign_id, pacing, pinned, clock)
        # Once the lock is held (never while waiting for it): the database's clock, the
        # lease, and the campaign's live attempts over all nodes.
        async with conn.execute(
                f"SELECT {clock} AS now_s, {lease} AS leased, (SELECT COUNT(*) FROM"
                f" call_attempts WHERE campaign_id = :campaign AND status IN {_LIVE}) AS live",
                {"campaign": campaign_id, "node": node.node_id if node else None,
                 "epoch": node.epoch if node else None}) as cur:
            state = await cur.fetchone()
        assert state is not None
        asked = pinned.timestamp() if pinned is not None else float(state["now_s"])
        # The bucket's time never goes back (a pinned time older than the last claim's
        # would refill the same seconds twice).
        now_s = max(asked, float(row["refilled_s"]))
        now = pinned if pinned is not None and asked >= now_s \
            else datetime.fromtimestamp(now_s, UTC)
        elapsed = now_s - float(row["refilled_s"])
        tokens = min(pacing.burst, float(row["tokens"]) + elapsed * pacing.calls_per_minute / 60)
        if tokens < 1.0:
            return NoClaim("paced")
        if not state["leased"]:  # a node claims only while it holds its lease
            return NoClaim("no_lease")
        if int(state["live"]) >= pacing.max_concurrent:
            return NoClaim("full")
        async with conn.execute(_PICK, {"campaign": campaign_id, "pass": retry_pass,
                                        "now": iso(now), "ws": workspace, "n": pick}) as cur:
            rows = await cur.fetchall()
        for r in rows:
            cand = candidate_from_row(r)
            call_id = new_id()
            async with conn.execute(_TAKE, {
                    "id": call_id, "campaign": campaign_id, "contact": cand.contact_id,
                    "phone": cand.e164, "position": cand.position, "pass": cand.retry_pass,
                    "now": iso(now), "reason": "cluster claim",
                    "node": node.node_id if node else None, "epoch": node.epoch if node else None,
                    "later": iso(now + backoff), "tokens": tokens - 1.0,
                    "now_s": now_s}) as cur:
                took = await cur.fetchone()
            assert took is not None
            if int(took["n"]) != 1:  # the number is live elsewhere: this contact waits
                backed_off += 1
                continue
            return Claimed(call_id, cand)
    return NoClaim("empty", backed_off)


async def _lock_pacing(conn: Any, campaign_id: int, pacing: Pacing, pinned: datetime | None,
                       clock: str) -> Any:
    """The campaign's pacing row, locked (made first, with a full bucket, if missing)."""
    lock = "SELECT tokens, refilled_s FROM campaign_pacing WHERE campaign_id = ? FOR UPDATE"
    async with conn.execute(lock, (campaign_id,)) as cur:
        row = await cur.fetchone()
    if row is not None:
        return row
    await conn.execute(
        f"INSERT INTO campaign_pacing(campaign_id, tokens, refilled_s)"
        f" VALUES (?, ?, {'?' if pinned else clock}) ON CONFLICT (campaign_id) DO NOTHING",
        (campaign_id, pacing.burst, *((pinned.timestamp(),) if pinned else ())))
    async with conn.execute(lock, (campaign_id,)) as cur:
        row = await cur.fetchone()
    assert row is not None
    return row
