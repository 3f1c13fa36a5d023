"""The outgoing-webhook outbox (webhook_deliveries) and its delivery log (webhook_attempts).

Events are derived from rows the changes themselves write in their own transactions:
contact_events (every lead status change an outcome makes) and campaign_state_log (filled
by a trigger on campaigns.state). `outbox_step` reads past a cursor per source and writes
the deliveries AND moves the cursors in one transaction: each event is queued exactly once
per subscriber, however the daemon stops.

Several nodes on PostgreSQL (issue 19): the source rows of every node are in the shared
tables, so each node's outbox sees them all. One outbox step at a time holds the cursors'
rows (FOR UPDATE SKIP LOCKED: a node that finds them taken skips its step), and the cursor
is (transaction id, row id) read behind the oldest running transaction (migration 0022): a
row that commits late with a smaller id is never stepped over. A delivery being sent is
claimed by one node (`claim_due`, FOR UPDATE SKIP LOCKED) until its claim lapses, so two
nodes never send it at once and a dead node's claims come back after `claim_s`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from televox_pbx.store.db import Store
from televox_pbx.store.nodes import db_now_s
from televox_pbx.store.sqlport import POSTGRESQL
from televox_pbx.store.timefmt import iso

CONTACT_EVENTS = "contact_events"
STATE_LOG = "campaign_state_log"

_CONTACT_SQL = (
    "SELECT e.id, e.contact_id, e.attempt_id, e.event, e.from_status, e.to_status, e.detail,"
    " e.at, c.campaign_id, k.name AS campaign, c.name AS contact_name, c.last_disposition,"
    " c.retry_pass, a.phone, a.status AS call_status, a.disposition, a.duration_s,"
    " a.amd_status, a.answered_at, a.hangup_at, a.turns, a.failure"
    " FROM contact_events e JOIN contacts c ON c.id = e.contact_id"
    " JOIN campaigns k ON k.id = c.campaign_id LEFT JOIN call_attempts a ON a.id = e.attempt_id"
    " WHERE e.id > ?2 ORDER BY e.id LIMIT ?3")
_STATE_SQL = (
    "SELECT l.id, l.campaign_id, k.name AS campaign, l.from_state, l.to_state, l.at"
    " FROM campaign_state_log l JOIN campaigns k ON k.id = l.campaign_id"
    " WHERE l.id > ?2 ORDER BY l.id LIMIT ?3")
# PostgreSQL: past the (tx, id) cursor, and only rows whose transaction ended before the
# oldest one still running began: whatever commits later sorts after them.
_HORIZON = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
_PG_SOURCE = {
    CONTACT_EVENTS: _CONTACT_SQL.replace(
        ", e.at,", ", e.at, e.tx,").replace(
        " WHERE e.id > ?2 ORDER BY e.id", f" WHERE (e.tx, e.id) > (?1, ?2) AND e.tx < {_HORIZON}"
        " ORDER BY e.tx, e.id"),
    STATE_LOG: _STATE_SQL.replace(", l.at", ", l.at, l.tx").replace(
        " WHERE l.id > ?2 ORDER BY l.id", f" WHERE (l.tx, l.id) > (?1, ?2) AND l.tx < {_HORIZON}"
        " ORDER BY l.tx, l.id"),
}


@dataclass(frozen=True, slots=True)
class SourceRow:
    source: str  # CONTACT_EVENTS or STATE_LOG
    row_id: int
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewDelivery:
    event_id: str
    event: str
    subscription: str
    url: str
    campaign_id: int | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: str
    event: str
    subscription: str
    url: str
    payload_json: str
    status: str
    attempts: int
    last_error: str | None
    created_at: str
    next_attempt_at: str | None
    delivered_at: str | None


Planner = Callable[[Sequence[SourceRow]], list[NewDelivery]]


async def outbox_step(store: Store, plan: Planner, now: datetime, limit: int = 500) -> int:
    """Queue the deliveries for source rows past the cursors; returns how many rows were
    read (0: caught up, or another node is stepping). Nothing new costs two indexed reads
    and no write lock, so the poll does not contend with the dialer's transactions."""
    if not await _anything_new(store):
        return 0
    pg = store.dialect == POSTGRESQL
    async with store.transaction(tag="outbox") as conn:
        async with conn.execute(
                "SELECT source, last_tx, last_id FROM webhook_cursors ORDER BY source"
                + (" FOR UPDATE SKIP LOCKED" if pg else "")) as cur:
            cursors = {str(r["source"]): (int(r["last_tx"]), int(r["last_id"]))
                       for r in await cur.fetchall()}
        rows: list[SourceRow] = []
        last: dict[str, tuple[int, int]] = {}
        for source, sql in ((CONTACT_EVENTS, _CONTACT_SQL), (STATE_LOG, _STATE_SQL)):
            if source not in cursors:
                if pg:
                    continue  # another node's step holds it
                cursors[source] = (0, 0)
            async with conn.execute(_PG_SOURCE[source] if pg else sql,
                                    (*cursors[source], limit)) as cur:
                got = [dict(r) for r in await cur.fetchall()]
            rows += [SourceRow(source, int(r["id"]), r) for r in got]
            if got:
                last[source] = (int(got[-1].get("tx") or 0), int(got[-1]["id"]))
        if not rows:
            return 0
        at = iso(now)
        await conn.executemany(
            "INSERT INTO webhook_deliveries(url, event, payload_json, status,"
            " attempts, created_at, event_id, subscription, campaign_id, next_attempt_at)"
            " VALUES (?,?,?,'pending',0,?,?,?,?,?) ON CONFLICT DO NOTHING",
            [(d.url, d.event, json.dumps(d.payload, ensure_ascii=False, separators=(",", ":")),
              at, d.event_id, d.subscription, d.campaign_id, at) for d in plan(rows)])
        for source, (tx, row_id) in last.items():
            await conn.execute(
                "INSERT INTO webhook_cursors(source, last_tx, last_id) VALUES (?, ?, ?)"
                " ON CONFLICT(source) DO UPDATE SET last_tx = excluded.last_tx,"
                " last_id = excluded.last_id", (source, tx, row_id))
        return len(rows)


async def _anything_new(store: Store) -> bool:
    if store.dialect == POSTGRESQL:
        sql = ("SELECT EXISTS (SELECT 1 FROM contact_events e WHERE (e.tx, e.id) > (SELECT"
               " last_tx, last_id FROM webhook_cursors WHERE source = ?1) AND e.tx <"
               f" {_HORIZON}) OR EXISTS (SELECT 1 FROM campaign_state_log l WHERE"
               " (l.tx, l.id) > (SELECT last_tx, last_id FROM webhook_cursors WHERE"
               f" source = ?2) AND l.tx < {_HORIZON})")
    else:
        sql = ("SELECT EXISTS (SELECT 1 FROM contact_events WHERE id > (SELECT"
               " COALESCE(MAX(last_id), 0) FROM webhook_cursors WHERE source = ?1)) OR EXISTS"
               " (SELECT 1 FROM campaign_state_log WHERE id > (SELECT COALESCE(MAX(last_id),"
               " 0) FROM webhook_cursors WHERE source = ?2))")
    row = await store.fetchone(sql, (CONTACT_EVENTS, STATE_LOG))
    return bool(row and row[0])


_DCOLS = ("id, event_id, event, subscription, url, payload_json, status, attempts, last_error,"
          " created_at, next_attempt_at, delivered_at")


def _delivery(r: Any) -> Delivery:
    return Delivery(int(r["id"]), str(r["event_id"]), str(r["event"]), str(r["subscription"]),
                    str(r["url"]), str(r["payload_json"]), str(r["status"]), int(r["attempts"]),
                    r["last_error"], str(r["created_at"]), r["next_attempt_at"],
                    r["delivered_at"])


async def due_deliveries(store: Store, now: datetime, limit: int, skip: Sequence[int] = (),
                         full: Sequence[str] = ()) -> list[Delivery]:
    """Pending deliveries whose next attempt is due, oldest first; `skip`: in flight;
    `full`: subscriptions that may not start another one now."""
    # (NOT IN over an empty list would need `NOT IN (NULL)`, which matches nothing.)
    busy = f" AND id NOT IN ({','.join('?' * len(skip))})" if skip else ""
    if full:
        busy += f" AND subscription NOT IN ({','.join('?' * len(full))})"
    rows = await store.fetchall(
        f"SELECT {_DCOLS} FROM webhook_deliveries WHERE status = 'pending'"
        f" AND next_attempt_at <= ?{busy} ORDER BY next_attempt_at, id LIMIT ?",
        (iso(now), *skip, *full, limit))
    return [_delivery(r) for r in rows]


async def claim_due(store: Store, claimer: str, now: datetime, limit: int, claim_s: float,
                    skip: Sequence[int] = (), full: Sequence[str] = ()) -> list[Delivery]:
    """As `due_deliveries`, but each delivery returned is claimed for `claimer` until
    `claim_s` from now (database clock): no other node gets it until this one records its
    attempt or the claim lapses (its node died mid-send). PostgreSQL only."""
    busy = f" AND id NOT IN ({','.join('?' * len(skip))})" if skip else ""
    if full:
        busy += f" AND subscription NOT IN ({','.join('?' * len(full))})"
    db_now = db_now_s(store.dialect)
    cols = ", ".join(f"d.{c.strip()}" for c in _DCOLS.split(","))
    async with store.transaction(tag="webhook_claim") as conn, conn.execute(
            f"WITH picked AS (SELECT id FROM webhook_deliveries WHERE status = 'pending'"
            f" AND next_attempt_at <= ? AND (claim_until IS NULL OR claim_until <= {db_now})"
            f"{busy} ORDER BY next_attempt_at, id LIMIT ? FOR UPDATE SKIP LOCKED)"
            f" UPDATE webhook_deliveries d SET claim_node = ?, claim_until = {db_now} + ?"
            f" FROM picked WHERE d.id = picked.id RETURNING {cols}",
            (iso(now), *skip, *full, limit, claimer, claim_s)) as cur:
        rows = await cur.fetchall()
    got = [_delivery(r) for r in rows]
    got.sort(key=lambda d: (d.next_attempt_at or "", d.id))
    return got


async def release_claims(store: Store, claimer: str) -> int:
    """Give back the deliveries `claimer` holds (shutdown): another node may send them now."""
    async with store.transaction(tag="webhook_claim") as conn:
        cur = await conn.execute(
            "UPDATE webhook_deliveries SET claim_node = NULL, claim_until = NULL"
            " WHERE claim_node = ?", (claimer,))
        return int(cur.rowcount or 0)


async def record_attempt(store: Store, delivery_id: int, attempt: int, at: datetime, *,
                         status_code: int | None, error: str | None, duration_ms: float,
                         outcome: str, next_at: datetime | None,
                         claimer: str | None = None) -> bool:
    """One try, logged, and the delivery moved on: `outcome` delivered | pending | failed.
    With `claimer` (several nodes), only while the delivery is still claimed by it; the
    claim ends here. False: the claim had lapsed and another node took the delivery over
    (its own attempt is the one logged)."""
    mine = " AND claim_node = ?" if claimer is not None else ""
    async with store.transaction(tag="webhook") as conn:
        cur = await conn.execute(
            "UPDATE webhook_deliveries SET status = ?, attempts = ?, last_error = ?,"
            " next_attempt_at = ?, delivered_at = ?, claim_node = NULL, claim_until = NULL"
            f" WHERE id = ?{mine}",
            (outcome, attempt, error, iso(next_at) if next_at else None,
             iso(at) if outcome == "delivered" else None, delivery_id,
             *((claimer,) if claimer is not None else ())))
        if claimer is not None and int(cur.rowcount) != 1:
            return False
        await conn.execute(
            "INSERT INTO webhook_attempts(delivery_id, attempt, at, status_code, error,"
            " duration_ms) VALUES (?,?,?,?,?,?)",
            (delivery_id, attempt, iso(at), status_code, error, round(duration_ms, 1)))
    return True


async def list_deliveries(store: Store, *, status: str | None = None, event: str | None = None,
                          limit: int = 100, offset: int = 0,
                          delivery_id: int | None = None) -> tuple[list[Delivery], int]:
    where: list[str] = ["1=1"]
    params: list[object] = []
    if delivery_id is not None:
        where.append("id = ?")
        params.append(delivery_id)
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if event is not None:
        where.append("event = ?")
        params.append(event)
    cond = " AND ".join(where)
    rows = await store.fetchall(
        f"SELECT {_DCOLS} FROM webhook_deliveries WHERE {cond} ORDER BY id DESC"
        f" LIMIT ? OFFSET ?", (*params, limit, offset))
    total = await store.fetchone(f"SELECT COUNT(*) FROM webhook_deliveries WHERE {cond}",
                                 params)
    return [_delivery(r) for r in rows], int(total[0]) if total else 0


async def delivery_attempts(store: Store, delivery_id: int) -> list[dict[str, Any]]:
    rows = await store.fetchall(
        "SELECT attempt, at, status_code, error, duration_ms FROM webhook_attempts"
        " WHERE delivery_id = ? ORDER BY attempt", (delivery_id,))
    return [dict(r) for r in rows]
