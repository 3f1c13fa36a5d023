"""SMS rows: the claim and result of each outbound message, the thread per number, and
each recipient's status (queued, sent, failed with the reason, replied)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from televox_pbx.store.attempts import ClaimRefused
from televox_pbx.store.db import Store, is_unique_violation
from televox_pbx.store.timefmt import iso


@dataclass(frozen=True, slots=True)
class OutMessage:
    e164: str
    body: str
    kind: str  # campaign | single | reply | confirmation
    campaign_id: int | None = None
    contact_id: int | None = None
    attempt_id: str | None = None


@dataclass(frozen=True, slots=True)
class Recipient:
    contact_id: int
    e164: str | None
    status: str  # queued | sent | failed | replied
    reason: str | None


async def claim_message(store: Store, attempt_id: str, phone: str, now: datetime,
                        workspace: str, campaign_id: int | None = None) -> None:
    """The one-live-attempt claim for a message with no contact (a single SMS, a reply):
    the same conditional INSERT as a call's claim, refused on DNC or a live attempt."""
    try:
        async with store.transaction(tag="claim") as conn:
            cur = await conn.execute(
                "INSERT INTO call_attempts(id, campaign_id, phone, status, created_at,"
                " gate_reason, channel) SELECT ?, ?, ?, 'intent', ?, 'sms', 'sms'"
                " WHERE NOT EXISTS (SELECT 1 FROM dnc WHERE workspace = ? AND e164 = ?)",
                (attempt_id, campaign_id, phone, iso(now), workspace, phone))
            if cur.rowcount != 1:
                raise ClaimRefused("dnc", "on the DNC list")
    except Exception as exc:  # SQLite's IntegrityError or asyncpg's UniqueViolationError
        if not is_unique_violation(exc, "call_attempts.phone"):
            raise
        raise ClaimRefused("in_call", "already in a call") from exc


async def finish_message(store: Store, msg: OutMessage, ok: bool, reason: str | None,
                         at: datetime) -> None:
    """Close the message's attempt, settle its contact and log the text, in one
    transaction. A contact whose send failed is final ('failed'): never texted twice."""
    t = iso(at)
    async with store.transaction(tag="sms") as conn:
        if msg.attempt_id is not None:
            await conn.execute(
                "UPDATE call_attempts SET status = ?, failure = ?, notes = ?, channel = 'sms',"
                " originated_at = COALESCE(originated_at, ?), hangup_at = ?"
                " WHERE id = ? AND status IN ('intent','originated')",
                ("completed" if ok else "failed", None if ok else "other",
                 None if ok else reason, t, t, msg.attempt_id))
        if msg.contact_id is not None:
            status = "completed" if ok else "failed"
            async with conn.execute("SELECT status FROM contacts WHERE id = ?",
                                    (msg.contact_id,)) as cur:
                row = await cur.fetchone()
            await conn.execute(
                "UPDATE contacts SET status = ?, last_disposition = ?, updated_at = ?"
                " WHERE id = ?", (status, "sms_sent" if ok else "sms_failed", t,
                                  msg.contact_id))
            await conn.execute(
                "INSERT INTO contact_events(contact_id, attempt_id, event, from_status,"
                " to_status, detail, at) VALUES (?,?,?,?,?,?,?)",
                (msg.contact_id, msg.attempt_id, "sms_sent" if ok else "sms_failed",
                 row[0] if row else None, status, reason or "", t))
        await conn.execute(
            "INSERT INTO sms_messages(campaign_id, contact_id, attempt_id, e164, direction,"
            " kind, body, status, reason, at) VALUES (?,?,?,?, 'out', ?,?,?,?,?)",
            (msg.campaign_id, msg.contact_id, msg.attempt_id, msg.e164, msg.kind, msg.body,
             "sent" if ok else "failed", reason, t))


async def cancel_message(store: Store, attempt_id: str, reason: str) -> None:
    """Nothing went out (the PBX link was down): the attempt is closed 'not_sent'."""
    await store.execute("UPDATE call_attempts SET status = 'not_sent', notes = ?"
                        " WHERE id = ? AND status = 'intent'", (reason, attempt_id))


async def dnc_source(store: Store, e164: str, workspace: str) -> str | None:
    """Who put the number on the DNC list (its `source`), or None when it is not on it."""
    row = await store.fetchone("SELECT source FROM dnc WHERE workspace = ? AND e164 = ?",
                               (workspace, e164))
    return str(row[0]) if row else None


async def record(store: Store, e164: str, direction: str, kind: str, body: str,
                 status: str, at: datetime, *, campaign_id: int | None = None,
                 contact_id: int | None = None, reason: str | None = None) -> int:
    return await store.execute(
        "INSERT INTO sms_messages(campaign_id, contact_id, e164, direction, kind, body,"
        " status, reason, at) VALUES (?,?,?,?,?,?,?,?,?)",
        (campaign_id, contact_id, e164, direction, kind, body, status, reason, iso(at)))


async def thread_owner(store: Store, e164: str) -> tuple[int | None, int | None] | None:
    """(campaign_id, contact_id) of the newest text we sent this number, or None."""
    row = await store.fetchone(
        "SELECT campaign_id, contact_id FROM sms_messages WHERE e164 = ? AND direction = 'out'"
        " AND kind IN ('campaign','single','reply') ORDER BY id DESC LIMIT 1", (e164,))
    return (row[0], row[1]) if row else None


async def thread(store: Store, e164: str, limit: int = 12) -> list[tuple[str, str]]:
    """(direction, body) oldest first: the last `limit` texts with this number."""
    rows = await store.fetchall(
        "SELECT direction, body FROM sms_messages WHERE e164 = ?"
        " AND status IN ('sent','received') ORDER BY id DESC LIMIT ?", (e164, limit))
    return [(str(r[0]), str(r[1])) for r in reversed(rows)]


async def recipients(store: Store, campaign_id: int) -> list[Recipient]:
    """Every contact of an SMS campaign with its status: replied once a text came back,
    else the result of our send (sent / failed with the reason), else queued."""
    rows = await store.fetchall(
        "SELECT c.id,"
        " (SELECT e164 FROM contact_phones p WHERE p.contact_id = c.id ORDER BY position"
        "  LIMIT 1) AS e164,"
        # status, then the reason after the first ':' (a status never holds one; char(31)
        # is a type name to PostgreSQL)
        " (SELECT status || ':' || COALESCE(reason, '') FROM sms_messages m"
        "  WHERE m.contact_id = c.id AND m.direction = 'out' AND m.kind = 'campaign'"
        "  ORDER BY m.id DESC LIMIT 1) AS sent,"
        " EXISTS (SELECT 1 FROM sms_messages i WHERE i.direction = 'in'"
        "  AND i.campaign_id = c.campaign_id AND i.contact_id = c.id) AS replied"
        " FROM contacts c WHERE c.campaign_id = ? ORDER BY c.id", (campaign_id,))
    out: list[Recipient] = []
    for r in rows:
        status, reason = "queued", None
        if r["sent"]:
            status, _, why = str(r["sent"]).partition(":")
            reason = why or None
        if r["replied"]:
            status = "replied"
        out.append(Recipient(int(r[0]), r["e164"], status, reason))
    return out


async def held_replies(store: Store) -> list[tuple[int, str, str, int | None]]:
    """(id, e164, body, campaign_id) of replies waiting for the window, oldest first."""
    rows = await store.fetchall("SELECT id, e164, body, campaign_id FROM sms_messages"
                                " WHERE status = 'held' ORDER BY id")
    return [(int(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]


async def supersede_held(store: Store, e164: str | None = None, row_id: int | None = None,
                         reason: str = "") -> None:
    """Held replies to a number (or one by id) are no longer to be sent as they are."""
    await store.execute(
        "UPDATE sms_messages SET status = 'superseded', reason = ? WHERE status = 'held'"
        " AND (e164 = ? OR id = ?)", (reason, e164, row_id))


@dataclass(frozen=True, slots=True)
class ThreadText:
    direction: str  # out | in
    kind: str
    body: str
    status: str
    reason: str | None
    at: str


async def contact_thread(store: Store, campaign_id: int, contact_id: int) -> list[ThreadText]:
    """Every text between a campaign and one of its contacts, oldest first (API, UI)."""
    rows = await store.fetchall(
        "SELECT direction, kind, body, status, reason, at FROM sms_messages"
        " WHERE campaign_id = ? AND contact_id = ? ORDER BY id", (campaign_id, contact_id))
    return [ThreadText(str(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], str(r[5]))
            for r in rows]
