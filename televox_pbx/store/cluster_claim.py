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
4. A node with several free slots claims up to that many contacts in the same statement
   (`claim_many`): one round trip and one hold of the pacing lock for the lot, each
   contact spending a token and a place under max_concurrent as a claim of its own would.

The Dialer claims through here on PostgreSQL (campaigns/cluster_dial.py), then re-checks the
window and DNC on the database's clock just before the Originate. Due callbacks and call-now
(a contact chosen before the claim) go through `claim_contact`: the same pacing row, lease
and max_concurrent, in one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg

from televox_pbx.store.attempts import Intent
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
T = TypeVar("T")
# The database's clock as the store writes times (ISO 8601, UTC, milliseconds).
_NOW_TEXT = ("to_char(clock_timestamp() AT TIME ZONE 'UTC',"
             " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
_LIVE = "('intent','originated','ringing','answered')"

# The due contacts, locked (SKIP LOCKED: it never waits), in the claim's order.
_PICK = (
    f"WITH pick AS (SELECT {CANDIDATE_COLS}, c.next_eligible_at AS eligible FROM contacts c"
    f" LEFT JOIN contact_phones p ON p.contact_id = c.id AND p.position = {NEXT_PHONE_SQL}"
    " WHERE c.campaign_id = :campaign AND c.status = 'pending' AND c.retry_pass = :pass"
    " AND (c.next_eligible_at IS NULL OR c.next_eligible_at <="
    f" COALESCE(CAST(:eligible AS TEXT), {_NOW_TEXT}))"
    " AND p.e164 IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM dnc d WHERE d.workspace = :ws AND d.e164 = p.e164)"
    " ORDER BY c.next_eligible_at NULLS FIRST, c.id LIMIT :n"
    " FOR UPDATE OF c SKIP LOCKED)")

# The whole queue claim in ONE statement, so one round trip (its own transaction: the
# database commits a lone statement itself). `pick` locks the contacts first (SKIP LOCKED:
# it never waits), in the claim's order; `took` then runs the locked part,
# televox_take_many (migration 0025: the pacing lock, the bucket, the lease, the live
# count, the attempts),
# over them, and only when something was picked (an empty queue takes no pacing lock). A
# CTE that calls a volatile function is evaluated once; one read twice is computed once.
# The pick's LIMIT goes in as a literal (`_claim_sql`): with a `$n` LIMIT PostgreSQL's
# generic plan is a disaster, so every claim was planned afresh (about 1 ms of server CPU);
# with a literal the cached generic plan is the custom one.
_ORDER = "ORDER BY eligible NULLS FIRST, id"
_CLAIM = (
    _PICK
    + f", arr AS (SELECT array_agg(id {_ORDER}) AS contacts,"
    f" array_agg(e164 {_ORDER}) AS phones, array_agg(position {_ORDER}) AS positions,"
    f" array_agg(retry_pass {_ORDER}) AS passes FROM pick),"
    " took AS (SELECT t.out_reason, t.out_contact, t.out_id, t.out_backed FROM arr"
    " CROSS JOIN LATERAL televox_take_many(:campaign, :pinned, :rate, :max, :burst,"
    " :overdraw, :node, :epoch, :backoff, :want, :ids, arr.contacts, arr.phones,"
    " arr.positions, arr.passes) t WHERE arr.contacts IS NOT NULL)"
    " SELECT took.out_reason, took.out_contact, took.out_id, took.out_backed, pick.*"
    " FROM took LEFT JOIN pick ON pick.id = took.out_contact")

_INSERT = (
    "INSERT INTO call_attempts(id, campaign_id, contact_id, phone, phone_position,"
    " retry_pass, status, created_at, gate_reason, node_id, node_epoch)"
    " VALUES (:id, :campaign, :contact, :phone, :position, :pass, 'intent', :now, :reason,"
    " :node, :epoch)"
    f" ON CONFLICT (phone) WHERE status IN {_LIVE} DO NOTHING")


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
                     backoff: timedelta = timedelta(minutes=1),
                     overdraw: bool = False) -> Claimed | NoClaim:
    """One claim for this campaign, whichever node asks, in one transaction.

    `now=None` (the daemon): the database's clock, read once the pacing row is locked. The
    claims of a campaign then carry times in the order they took the lock, so the token
    bucket and the attempts' stored start times agree exactly (a time read before waiting
    for the lock may be older than the claim that went first). Tests pin `now`.
    `overdraw` (run-now): the claim may take a token the bucket has not refilled yet, down
    to -max_concurrent (the wait is skipped, never the count)."""
    got = await claim_many(store, campaign_id, retry_pass, pacing, now, new_id, 1,
                           workspace=workspace, pick=pick, backoff=backoff, overdraw=overdraw)
    return got if isinstance(got, NoClaim) else got[0]


async def claim_many(store: Store, campaign_id: int, retry_pass: int, pacing: Pacing,
                     now: datetime | None, new_id: Callable[[], str], want: int, *,
                     workspace: str = "default", pick: int = 4,
                     backoff: timedelta = timedelta(minutes=1),
                     overdraw: bool = False) -> list[Claimed] | NoClaim:
    """Up to `want` claims in one statement (a node with several free slots), in the
    claim order; as many as `want` claims made one by one at this moment would have got
    (tokens, max_concurrent), never more. `pick - 1` spare contacts are locked beside them
    for those whose number turns out live elsewhere. Otherwise as claim_next."""
    if want < 1:
        raise ValueError("want must be at least 1")
    return await _retrying(store, lambda: _claim(store, campaign_id, retry_pass, pacing, now,
                                                  new_id, workspace, want + pick - 1, want,
                                                  backoff, overdraw))


async def claim_contact(store: Store, intent: Intent, pacing: Pacing, now: datetime, *,
                        workspace: str = "default", overdraw: bool = False) -> NoClaim | None:
    """One claim of a contact chosen elsewhere (a due callback, call-now), counted like a
    queue claim: the campaign's token bucket and max_concurrent over all nodes, and this
    node's lease. None: claimed (the attempt 'intent', the contact 'calling', the callback
    'dialing'). Otherwise why not: paced, full, no_lease, dnc, contact_busy, in_call."""
    return await _retrying(store, lambda: _claim_contact(store, intent, pacing, now,
                                                          workspace, overdraw))


async def _retrying(store: Store, once: Callable[[], Awaitable[T]]) -> T:
    if store.dialect != POSTGRESQL:
        raise StoreError("cluster claims need PostgreSQL (SQLite serialises its one writer)")
    for attempt in range(_RETRIES):
        try:
            return await once()
        except asyncpg.DeadlockDetectedError:
            # Two campaigns' claims each waiting on the other's uncommitted attempt to a
            # shared number: PostgreSQL aborts one whole transaction; it simply runs again.
            if attempt == _RETRIES - 1:
                raise
    raise AssertionError("unreachable")


@lru_cache(maxsize=8)
def _claim_sql(pick: int) -> str:
    return _CLAIM.replace("LIMIT :n", f"LIMIT {int(pick)}")


async def _claim(store: Store, campaign_id: int, retry_pass: int, pacing: Pacing,
                 pinned: datetime | None, new_id: Callable[[], str], workspace: str,
                 pick: int, want: int, backoff: timedelta, overdraw: bool
                 ) -> list[Claimed] | NoClaim:
    """One round trip (_CLAIM): the pick and televox_take_many in one statement, its own
    transaction. The pacing row that every node claiming for this campaign queues for is
    held over no client round trip at all (over four before: BEGIN, the pick, the take,
    COMMIT; over eight statement by statement)."""
    node = store.node
    ids = [new_id() for _ in range(want)]  # the k-th claim takes the k-th; the rest unused
    # Due now on the database's clock (or the pinned time); the picked contacts stay
    # locked until the statement ends, whatever it decides.
    rows = await store.fetch_alone(_claim_sql(pick), {
        "campaign": campaign_id, "pass": retry_pass,
        "eligible": iso(pinned) if pinned else None, "ws": workspace,
        "pinned": pinned.timestamp() if pinned is not None else None,
        "rate": float(pacing.calls_per_minute), "max": pacing.max_concurrent,
        "burst": float(pacing.burst), "overdraw": overdraw,
        "node": node.node_id if node else None,
        "epoch": node.epoch if node else None, "backoff": backoff.total_seconds(),
        "want": want, "ids": ids}, tag="claim")
    if not rows:
        return NoClaim("empty")
    if rows[0]["out_reason"] != "claimed":
        return NoClaim(str(rows[0]["out_reason"]), int(rows[0]["out_backed"]))
    order = {call_id: k for k, call_id in enumerate(ids)}
    return [Claimed(str(row["out_id"]), candidate_from_row(row))
            for row in sorted(rows, key=lambda r: order[str(r["out_id"])])]


async def _admit(conn: Any, store: Store, campaign_id: int, pacing: Pacing, now_s: float,
                 overdraw: bool) -> float | NoClaim:
    """Lock the campaign's pacing row; the tokens left after the refill, or why not.
    An overdraw (run-now, call-now: an operator asked for now) may take the bucket into
    debt down to -max_concurrent: it skips the wait, never the count, so the calls after
    it, on every node, wait until the campaign's average pace is kept again."""
    await conn.execute(
        "INSERT INTO campaign_pacing(campaign_id, tokens, refilled_s) VALUES (?, ?, ?)"
        " ON CONFLICT (campaign_id) DO NOTHING", (campaign_id, pacing.burst, now_s))
    async with conn.execute("SELECT tokens, refilled_s FROM campaign_pacing"
                            " WHERE campaign_id = ? FOR UPDATE", (campaign_id,)) as cur:
        row = await cur.fetchone()
    assert row is not None
    elapsed = max(0.0, now_s - float(row["refilled_s"]))
    tokens = min(pacing.burst, float(row["tokens"]) + elapsed * pacing.calls_per_minute / 60)
    if tokens < (1.0 - pacing.max_concurrent if overdraw else 1.0):
        return NoClaim("paced")
    if store.node is not None:  # a node claims only while it holds its lease
        async with conn.execute(
                f"SELECT 1 FROM nodes WHERE node_id = ? AND epoch = ?"
                f" AND lease_until > {db_now_s(store.dialect)}",
                (store.node.node_id, store.node.epoch)) as cur:
            if await cur.fetchone() is None:
                return NoClaim("no_lease")
    async with conn.execute(f"SELECT COUNT(*) FROM call_attempts WHERE campaign_id = ?"
                            f" AND status IN {_LIVE}", (campaign_id,)) as cur:
        live = await cur.fetchone()
    if live is not None and int(live[0]) >= pacing.max_concurrent:
        return NoClaim("full")
    return tokens


async def _spend(conn: Any, campaign_id: int, tokens: float, now_s: float) -> None:
    # The bucket's time never goes back: a `now` read before waiting for the lock may be
    # older than the claim that went first (its seconds would be refilled twice).
    await conn.execute("UPDATE campaign_pacing SET tokens = ?,"
                       " refilled_s = GREATEST(refilled_s, ?) WHERE campaign_id = ?",
                       (tokens - 1.0, now_s, campaign_id))


def _owner(store: Store) -> tuple[str | None, int | None]:
    return (store.node.node_id, store.node.epoch) if store.node else (None, None)


async def _calling(conn: Any, contact_id: int, now: datetime) -> None:
    await conn.execute("UPDATE contacts SET status = 'calling', last_attempt_at = ?,"
                       " updated_at = ? WHERE id = ?", (iso(now), iso(now), contact_id))


async def _claim_contact(store: Store, intent: Intent, pacing: Pacing, now: datetime,
                         workspace: str, overdraw: bool) -> NoClaim | None:
    now_s = now.timestamp()
    async with store.transaction(tag="claim") as conn:
        tokens = await _admit(conn, store, intent.campaign_id, pacing, now_s, overdraw)
        if isinstance(tokens, NoClaim):
            return tokens
        # Locked: a queue claim on another node skips this contact meanwhile (SKIP LOCKED),
        # or it claimed first and this one sees 'calling'.
        async with conn.execute("SELECT status FROM contacts WHERE id = ? FOR UPDATE",
                                (intent.contact_id,)) as cur:
            contact = await cur.fetchone()
        if contact is None or str(contact["status"]) in ("calling", "connected"):
            return NoClaim("contact_busy")
        async with conn.execute("SELECT 1 FROM dnc WHERE workspace = ? AND e164 = ?",
                                (workspace, intent.phone)) as cur:
            if await cur.fetchone() is not None:
                return NoClaim("dnc")
        node, epoch = _owner(store)
        cur = await conn.execute(_INSERT, {
            "id": intent.call_id, "campaign": intent.campaign_id,
            "contact": intent.contact_id, "phone": intent.phone,
            "position": intent.phone_position, "pass": intent.retry_pass, "now": iso(now),
            "reason": intent.gate_reason, "node": node, "epoch": epoch})
        if cur.rowcount != 1:  # live elsewhere: another campaign, a node, an inbound call
            return NoClaim("in_call")
        await _calling(conn, intent.contact_id, now)
        if intent.callback_id is not None:
            await conn.execute(
                "UPDATE callbacks SET status = 'dialing', attempt_id = COALESCE(attempt_id, ?)"
                " WHERE id = ? AND status = 'pending'", (intent.call_id, intent.callback_id))
        await _spend(conn, intent.campaign_id, tokens, now_s)
    return None
