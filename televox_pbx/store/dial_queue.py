"""The dial queue: which contacts are next, and how a result moves a contact along.

Every query here is served by an index (contacts_dial_queue, the contact_phones unique
key, callbacks_due), so a dialer tick costs about the same at 1M contacts as at 1k.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from aiosqlite import Row

from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso, parse_iso

# Contact statuses that still have work ahead of them.
OPEN_STATUSES = ("pending", "calling", "connected", "callback")
FINAL_STATUSES = ("completed", "no_answer", "busy", "failed", "voicemail", "opted_out", "dnc",
                  "skipped")
# Phones never dialled again once they produced one of these.
DEAD_PHONE_STATUSES = ("wrong_number", "dnc", "invalid")


@dataclass(frozen=True, slots=True)
class Candidate:
    contact_id: int
    campaign_id: int
    timezone: str | None
    variables: dict[str, str]
    phone_index: int
    retry_pass: int
    last_answered_at: datetime | None
    e164: str | None  # None: no live phone left at or after phone_index
    position: int | None
    callback_id: int | None = None


# NULLS FIRST spells out SQLite's own order (never-tried contacts first) for PostgreSQL,
# whose default puts NULLs last.
# The correlated subquery picks the first live phone at or after phone_index through
# the (contact_id, position) unique index.
_NEXT_PHONE = (
    "(SELECT p.position FROM contact_phones p WHERE p.contact_id = c.id"
    " AND p.position >= c.phone_index"
    " AND (p.last_status IS NULL OR p.last_status NOT IN ('wrong_number','dnc','invalid'))"
    " ORDER BY p.position LIMIT 1)")

_CANDIDATE_COLS = (
    "c.id, c.campaign_id, c.timezone, c.variables_json, c.name, c.first_name, c.last_name,"
    " c.email, c.phone_index, c.retry_pass, c.last_answered_at, p.e164, p.position")

QUEUE_SQL = (
    f"SELECT {_CANDIDATE_COLS} FROM contacts c INDEXED BY contacts_dial_queue"
    f" LEFT JOIN contact_phones p ON p.contact_id = c.id AND p.position = {_NEXT_PHONE}"
    " WHERE c.campaign_id = ? AND c.status = 'pending' AND c.retry_pass = ?"
    " AND (c.next_eligible_at IS NULL OR c.next_eligible_at <= ?)"
    " ORDER BY c.next_eligible_at NULLS FIRST, c.id LIMIT ?")


def _variables(r: Row) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in ("name", "first_name", "last_name", "email"):
        if r[key]:
            out[key] = str(r[key])
    try:
        extra = json.loads(r["variables_json"] or "{}")
    except ValueError:
        extra = {}
    if isinstance(extra, dict):
        out.update({str(k): str(v) for k, v in extra.items()})
    return out


def _candidate(r: Row, callback_id: int | None = None) -> Candidate:
    return Candidate(
        contact_id=int(r["id"]), campaign_id=int(r["campaign_id"]), timezone=r["timezone"],
        variables=_variables(r), phone_index=int(r["phone_index"]),
        retry_pass=int(r["retry_pass"]), last_answered_at=parse_iso(r["last_answered_at"]),
        e164=r["e164"], position=int(r["position"]) if r["position"] is not None else None,
        callback_id=callback_id)


async def next_candidates(store: Store, campaign_id: int, retry_pass: int, now: datetime,
                          limit: int) -> list[Candidate]:
    rows = await store.fetchall(QUEUE_SQL, (campaign_id, retry_pass, iso(now), limit))
    return [_candidate(r) for r in rows]


async def candidate_for(store: Store, contact_id: int) -> tuple[Candidate, str] | None:
    """One contact as a dial candidate (for `call now`), with its current status."""
    row = await store.fetchone(
        f"SELECT {_CANDIDATE_COLS}, c.status AS cstatus FROM contacts c"
        f" LEFT JOIN contact_phones p ON p.contact_id = c.id AND p.position = {_NEXT_PHONE}"
        " WHERE c.id = ?", (contact_id,))
    return (_candidate(row), str(row["cstatus"])) if row else None


async def due_callbacks(store: Store, campaign_id: int, now: datetime,
                        limit: int) -> list[Candidate]:
    """Callbacks due now; the phone is the one the callee was reached on when known."""
    rows = await store.fetchall(
        f"SELECT cb.id AS cb_id, {_CANDIDATE_COLS} FROM callbacks cb"
        " JOIN contacts c ON c.id = cb.contact_id"
        " LEFT JOIN call_attempts a ON a.id = cb.attempt_id"
        " LEFT JOIN contact_phones p ON p.contact_id = c.id"
        f" AND p.position = COALESCE(a.phone_position, {_NEXT_PHONE})"
        " WHERE cb.status = 'pending' AND cb.due_at <= ? AND c.campaign_id = ?"
        " AND c.status NOT IN ('calling','connected','opted_out','dnc')"
        " ORDER BY cb.due_at LIMIT ?", (iso(now), campaign_id, limit))
    return [_candidate(r, int(r["cb_id"])) for r in rows]


async def postpone_callback(store: Store, callback_id: int, due_at: datetime) -> None:
    await store.execute("UPDATE callbacks SET due_at = ? WHERE id = ?", (iso(due_at), callback_id))


async def set_callback_status(store: Store, callback_id: int, status: str) -> None:
    await store.execute("UPDATE callbacks SET status = ? WHERE id = ?", (status, callback_id))


async def has_pending_callback(store: Store, contact_id: int) -> bool:
    row = await store.fetchone(
        "SELECT 1 FROM callbacks WHERE contact_id = ? AND status = 'pending' LIMIT 1",
        (contact_id,))
    return row is not None


async def hold_contact(store: Store, contact_id: int, until: datetime) -> None:
    """Keep the contact pending but out of the queue until `until` (window opens)."""
    await store.execute("UPDATE contacts SET next_eligible_at = ?, updated_at = ? WHERE id = ?",
                        (iso(until), iso(until), contact_id))


async def live_positions(store: Store, contact_id: int) -> list[int]:
    rows = await store.fetchall(
        "SELECT position FROM contact_phones WHERE contact_id = ?"
        " AND (last_status IS NULL OR last_status NOT IN ('wrong_number','dnc','invalid'))"
        " ORDER BY position", (contact_id,))
    return [int(r["position"]) for r in rows]


async def mark_phone(store: Store, contact_id: int, position: int, status: str,
                     counted: bool) -> None:
    await store.execute(
        "UPDATE contact_phones SET last_status = ?, attempts = attempts + ?"
        " WHERE contact_id = ? AND position = ?", (status, int(counted), contact_id, position))


@dataclass(frozen=True, slots=True)
class ContactUpdate:
    status: str
    phone_index: int
    retry_pass: int
    next_eligible_at: datetime | None
    last_disposition: str | None


async def update_contact(store: Store, contact_id: int, upd: ContactUpdate, now: datetime,
                         answered_at: datetime | None = None) -> None:
    await store.execute(
        "UPDATE contacts SET status = ?, phone_index = ?, retry_pass = ?, next_eligible_at = ?,"
        " last_disposition = COALESCE(?, last_disposition),"
        " last_answered_at = COALESCE(?, last_answered_at), updated_at = ? WHERE id = ?",
        (upd.status, upd.phone_index, upd.retry_pass,
         iso(upd.next_eligible_at) if upd.next_eligible_at else None, upd.last_disposition,
         iso(answered_at) if answered_at else None, iso(now), contact_id))


async def set_contact_status(store: Store, contact_id: int, status: str, now: datetime) -> None:
    await store.execute("UPDATE contacts SET status = ?, updated_at = ? WHERE id = ?",
                        (status, iso(now), contact_id))


async def contact_retry_state(store: Store, contact_id: int) -> Row | None:
    return await store.fetchone(
        "SELECT id, campaign_id, status, phone_index, retry_pass, last_answered_at"
        " FROM contacts WHERE id = ?", (contact_id,))


async def pass_has_open_work(store: Store, campaign_id: int, retry_pass: int) -> bool:
    """Anyone in this pass (or an older one) still pending or on a call?"""
    row = await store.fetchone(
        "SELECT 1 FROM contacts INDEXED BY contacts_dial_queue WHERE campaign_id = ?"
        " AND status IN ('pending','calling','connected') AND retry_pass <= ? LIMIT 1",
        (campaign_id, retry_pass))
    return row is not None


async def lowest_pending_pass(store: Store, campaign_id: int) -> int | None:
    row = await store.fetchone(
        "SELECT MIN(retry_pass) AS p FROM contacts INDEXED BY contacts_dial_queue"
        " WHERE campaign_id = ? AND status = 'pending'", (campaign_id,))
    return int(row["p"]) if row and row["p"] is not None else None


async def has_open_contacts(store: Store, campaign_id: int) -> bool:
    marks = ",".join("?" * len(OPEN_STATUSES))
    row = await store.fetchone(
        f"SELECT 1 FROM contacts INDEXED BY contacts_dial_queue WHERE campaign_id = ?"
        f" AND status IN ({marks}) LIMIT 1", (campaign_id, *OPEN_STATUSES))
    return row is not None


async def status_counts(store: Store, campaign_id: int) -> dict[str, int]:
    rows = await store.fetchall(
        "SELECT status, COUNT(*) AS n FROM contacts INDEXED BY contacts_dial_queue"
        " WHERE campaign_id = ? GROUP BY status", (campaign_id,))
    return {str(r["status"]): int(r["n"]) for r in rows}


async def restart_contacts(store: Store, campaign_id: int, now: datetime) -> None:
    """Everyone not suppressed goes back to pending, pass 1, first phone, counters zeroed.

    Calls in flight keep their contact; opted-out and DNC contacts stay suppressed.
    """
    async with store.transaction() as conn:
        await conn.execute(
            "UPDATE contacts SET status = 'pending', phone_index = 1, retry_pass = 1,"
            " next_eligible_at = NULL, last_disposition = NULL, updated_at = ?"
            " WHERE campaign_id = ? AND status NOT IN ('calling','connected','opted_out','dnc')",
            (iso(now), campaign_id))
        await conn.execute(
            "UPDATE contact_phones SET attempts = 0,"
            " last_status = CASE WHEN last_status = 'dnc' THEN 'dnc' ELSE NULL END"
            " WHERE campaign_id = ?", (campaign_id,))
        await conn.execute(
            "UPDATE campaigns SET current_pass = 1, pass_started_at = NULL WHERE id = ?",
            (campaign_id,))


async def requeue_contacts(store: Store, campaign_id: int, current_pass: int,
                           now: datetime) -> int:
    """no_answer and failed leads go back in line in the current pass; returns how many."""
    async with store.transaction() as conn:
        cur = await conn.execute(
            "UPDATE contacts SET status = 'pending', phone_index = 1, retry_pass = ?,"
            " next_eligible_at = NULL, updated_at = ?"
            " WHERE campaign_id = ? AND status IN ('no_answer','failed')",
            (current_pass, iso(now), campaign_id))
        return int(cur.rowcount)


async def record_contact_event(store: Store, contact_id: int, attempt_id: str | None,
                               event: str, from_status: str | None, to_status: str,
                               detail: str, at: datetime) -> None:
    """The audit row of a change to a contact, in the same transaction as the change."""
    await store.execute(
        "INSERT INTO contact_events(contact_id, attempt_id, event, from_status, to_status,"
        " detail, at) VALUES (?,?,?,?,?,?,?)",
        (contact_id, attempt_id, event, from_status, to_status, detail, iso(at)))


async def finish_dialing_callbacks(store: Store, contact_id: int) -> None:
    await store.execute(
        "UPDATE callbacks SET status = 'done' WHERE contact_id = ? AND status = 'dialing'",
        (contact_id,))


@dataclass(frozen=True, slots=True)
class PlanRow:
    contact_id: int
    name: str | None
    status: str
    retry_pass: int
    timezone: str | None
    next_eligible_at: datetime | None
    last_disposition: str | None
    e164: str | None
    position: int | None


async def plan_rows(store: Store, campaign_id: int, statuses: tuple[str, ...],
                    limit: int) -> list[PlanRow]:
    """Contacts in the given statuses in dial order (pass, eligibility, id), for `plan`."""
    marks = ",".join("?" * len(statuses))
    rows = await store.fetchall(
        "SELECT c.id, c.name, c.status, c.retry_pass, c.timezone, c.next_eligible_at,"
        " c.last_disposition, p.e164, p.position FROM contacts c INDEXED BY contacts_dial_queue"
        f" LEFT JOIN contact_phones p ON p.contact_id = c.id AND p.position = {_NEXT_PHONE}"
        f" WHERE c.campaign_id = ? AND c.status IN ({marks})"
        " ORDER BY c.retry_pass, c.next_eligible_at NULLS FIRST, c.id LIMIT ?",
        (campaign_id, *statuses, limit))
    return [PlanRow(int(r["id"]), r["name"], str(r["status"]), int(r["retry_pass"]),
                    r["timezone"], parse_iso(r["next_eligible_at"]), r["last_disposition"],
                    r["e164"], r["position"]) for r in rows]


# For other claim paths (store/cluster_claim.py): the same candidate columns and row reader.
CANDIDATE_COLS = _CANDIDATE_COLS
NEXT_PHONE_SQL = _NEXT_PHONE
candidate_from_row = _candidate
