"""Call attempts: the intent written before an Originate, progress, and final results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiosqlite import Row

from televox_pbx.domain import CallOutcome, CallStatus
from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso, parse_iso

# Attempt statuses that mean "maybe still on the PBX".
UNFINISHED = ("intent", "originated", "ringing", "answered")
_UNFINISHED_SQL = "('intent','originated','ringing','answered')"


@dataclass(frozen=True, slots=True)
class Intent:
    call_id: str
    campaign_id: int
    contact_id: int
    phone: str
    phone_position: int
    retry_pass: int
    gate_reason: str
    callback_id: int | None = None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    id: str
    campaign_id: int | None
    contact_id: int | None
    phone: str
    phone_position: int | None
    retry_pass: int | None
    status: str
    disposition: str | None
    turns: int
    answered_at: datetime | None
    created_at: datetime | None


def _row(r: Row) -> AttemptRow:
    return AttemptRow(
        id=str(r["id"]), campaign_id=r["campaign_id"], contact_id=r["contact_id"],
        phone=str(r["phone"]), phone_position=r["phone_position"], retry_pass=r["retry_pass"],
        status=str(r["status"]), disposition=r["disposition"], turns=int(r["turns"] or 0),
        answered_at=parse_iso(r["answered_at"]), created_at=parse_iso(r["created_at"]))


_COLS = ("id, campaign_id, contact_id, phone, phone_position, retry_pass, status, disposition,"
         " turns, answered_at, created_at")


async def write_intent(store: Store, intent: Intent, now: datetime) -> None:
    """One transaction: the attempt row in 'intent' and the contact 'calling'.

    Written BEFORE the Originate, so a crash can never leave a call we do not know of.
    """
    async with store.transaction() as conn:
        await conn.execute(
            "INSERT INTO call_attempts(id, campaign_id, contact_id, phone, phone_position,"
            " retry_pass, status, created_at, gate_reason) VALUES (?,?,?,?,?,?, 'intent', ?, ?)",
            (intent.call_id, intent.campaign_id, intent.contact_id, intent.phone,
             intent.phone_position, intent.retry_pass, iso(now), intent.gate_reason))
        await conn.execute(
            "UPDATE contacts SET status = 'calling', last_attempt_at = ?, updated_at = ?"
            " WHERE id = ?", (iso(now), iso(now), intent.contact_id))
        if intent.callback_id is not None:
            await conn.execute(
                "UPDATE callbacks SET status = 'dialing', attempt_id = COALESCE(attempt_id, ?)"
                " WHERE id = ?", (intent.call_id, intent.callback_id))


async def mark_originated(store: Store, call_id: str, at: datetime) -> None:
    """Originate accepted; only moves an attempt the tracker has not already advanced."""
    await store.execute(
        "UPDATE call_attempts SET status = 'originated', originated_at = COALESCE(originated_at,?)"
        " WHERE id = ? AND status = 'intent'", (iso(at), call_id))


async def mark_progress(store: Store, outcome: CallOutcome) -> None:
    """Ringing/answered while the call is up; never moves a finished attempt back."""
    await store.execute(
        f"UPDATE call_attempts SET status = ?,"
        f" ringing_at = COALESCE(ringing_at, ?), answered_at = COALESCE(answered_at, ?),"
        f" amd_status = COALESCE(?, amd_status), amd_cause = COALESCE(?, amd_cause)"
        f" WHERE id = ? AND status IN {_UNFINISHED_SQL}",
        (outcome.status.value, _t(outcome.ringing_at), _t(outcome.answered_at),
         outcome.amd_status.value if outcome.amd_status else None, outcome.amd_cause,
         outcome.call_id))


async def finish(store: Store, outcome: CallOutcome, *, turns: int | None,
                 disposition: str | None, notes: str | None = None) -> bool:
    """Record the final result; False when the attempt was already final (a duplicate)."""
    assert outcome.status.is_final
    async with store.conn.execute(
        f"UPDATE call_attempts SET status = ?, failure = ?, hangup_cause = ?, sip_code = ?,"
        f" amd_status = COALESCE(?, amd_status), amd_cause = COALESCE(?, amd_cause),"
        f" disposition = COALESCE(?, disposition), turns = COALESCE(?, turns),"
        f" duration_s = ?, originated_at = COALESCE(originated_at, ?),"
        f" ringing_at = COALESCE(ringing_at, ?), answered_at = COALESCE(answered_at, ?),"
        f" hangup_at = ?, notes = COALESCE(?, notes)"
        f" WHERE id = ? AND status IN {_UNFINISHED_SQL}",
        (outcome.status.value, outcome.failure.value if outcome.failure else None,
         outcome.hangup_cause, outcome.sip_code,
         outcome.amd_status.value if outcome.amd_status else None, outcome.amd_cause,
         disposition, turns, outcome.duration_s, _t(outcome.originated_at),
         _t(outcome.ringing_at), _t(outcome.answered_at), _t(outcome.hangup_at), notes,
         outcome.call_id)) as cur:
        return cur.rowcount == 1


async def get_attempt(store: Store, call_id: str) -> AttemptRow | None:
    row = await store.fetchone(f"SELECT {_COLS} FROM call_attempts WHERE id = ?", (call_id,))
    return _row(row) if row else None


async def unfinished_attempts(store: Store) -> list[AttemptRow]:
    rows = await store.fetchall(
        f"SELECT {_COLS} FROM call_attempts WHERE status IN {_UNFINISHED_SQL}"
        " AND direction = 'outbound'")
    return [_row(r) for r in rows]


async def in_flight(store: Store, campaign_id: int | None = None) -> int:
    if campaign_id is None:
        row = await store.fetchone(
            f"SELECT COUNT(*) AS n FROM call_attempts WHERE status IN {_UNFINISHED_SQL}")
    else:
        row = await store.fetchone(
            f"SELECT COUNT(*) AS n FROM call_attempts WHERE campaign_id = ?"
            f" AND status IN {_UNFINISHED_SQL}", (campaign_id,))
    return int(row["n"]) if row else 0


@dataclass(frozen=True, slots=True)
class Kpis:
    calls: int
    reached: int
    interested: int
    opted_out: int
    avg_duration_s: float | None


async def kpis(store: Store, campaign_id: int) -> Kpis:
    row = await store.fetchone(
        "SELECT COUNT(*) AS calls,"
        " SUM(answered_at IS NOT NULL) AS reached,"
        " SUM(disposition = 'INTERESTED') AS interested,"
        " SUM(disposition = 'OPT_OUT') AS opted_out,"
        " AVG(duration_s) AS avg_d"
        " FROM call_attempts WHERE campaign_id = ? AND status != 'intent'", (campaign_id,))
    if row is None:
        return Kpis(0, 0, 0, 0, None)
    return Kpis(int(row["calls"] or 0), int(row["reached"] or 0), int(row["interested"] or 0),
                int(row["opted_out"] or 0),
                float(row["avg_d"]) if row["avg_d"] is not None else None)


def _t(at: datetime | None) -> str | None:
    return iso(at) if at else None


def is_final_status(status: str) -> bool:
    try:
        return CallStatus(status).is_final
    except ValueError:
        return False


async def cancel_unsent(store: Store, call_id: str, contact_id: int, retry_at: datetime,
                        reason: str) -> None:
    """The transport proved nothing went out: close the attempt as 'not_sent' (kept for
    audit, never resent) and put the contact back in line on the same phone."""
    async with store.transaction() as conn:
        await conn.execute(
            "UPDATE call_attempts SET status = 'not_sent', notes = ? WHERE id = ?"
            " AND status = 'intent'", (reason, call_id))
        await conn.execute(
            "UPDATE contacts SET status = 'pending', next_eligible_at = ?, updated_at = ?"
            " WHERE id = ? AND status = 'calling'", (iso(retry_at), iso(retry_at), contact_id))
        await conn.execute(
            "UPDATE callbacks SET status = 'pending' WHERE contact_id = ? AND status = 'dialing'",
            (contact_id,))


async def record_inbound(store: Store, call_id: str, caller: str, at: datetime) -> None:
    """An inbound call gets an attempt row too, so its transcript and result have a home."""
    await store.execute(
        "INSERT OR IGNORE INTO call_attempts(id, phone, direction, status, answered_at)"
        " VALUES (?, ?, 'inbound', 'answered', ?)", (call_id, caller, iso(at)))


async def finish_inbound(store: Store, call_id: str, at: datetime) -> None:
    """The inbound call's session ended: close its row (no dialer owns inbound calls)."""
    await store.execute(
        "UPDATE call_attempts SET status = 'completed', hangup_at = ?,"
        " duration_s = ROUND((julianday(?) - julianday(answered_at)) * 86400.0, 3)"
        " WHERE id = ? AND direction = 'inbound' AND status = 'answered'",
        (iso(at), iso(at), call_id))


async def close_stale_inbound(store: Store, at: datetime) -> int:
    """After a crash: inbound calls still 'answered' died with the daemon's sockets."""
    rows = await store.fetchall(
        "SELECT id FROM call_attempts WHERE direction = 'inbound' AND status = 'answered'")
    for r in rows:
        await finish_inbound(store, str(r["id"]), at)
    return len(rows)
