"""Operator feedback on a finished call: a corrected disposition and notes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso


@dataclass(frozen=True, slots=True)
class Note:
    id: int
    author: str
    text: str
    at: str


async def set_disposition(store: Store, call_id: str, disposition: str, actor: str,
                          at: datetime) -> str | None:
    """Correct a call's disposition; returns the old one. The contact's last disposition
    follows when this is its latest attempt, and the contact's audit trail (contact_events)
    gets a row, all in one transaction. The contact's status is left as the dialer set it."""
    async with store.transaction(tag="disposition") as conn:
        async with conn.execute("SELECT disposition, contact_id FROM call_attempts"
                                " WHERE id = ?", (call_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise KeyError(call_id)
        old, contact_id = row["disposition"], row["contact_id"]
        await conn.execute("UPDATE call_attempts SET disposition = ? WHERE id = ?",
                           (disposition, call_id))
        if contact_id is not None:
            await conn.execute(
                "UPDATE contacts SET last_disposition = ?, updated_at = ? WHERE id = ?"
                " AND NOT EXISTS (SELECT 1 FROM call_attempts b WHERE b.contact_id = ?"
                " AND (b.created_at > (SELECT created_at FROM call_attempts WHERE id = ?)))",
                (disposition, iso(at), contact_id, contact_id, call_id))
            async with conn.execute("SELECT status FROM contacts WHERE id = ?",
                                    (contact_id,)) as cur:
                status = await cur.fetchone()
            if status is not None:
                await conn.execute(
                    "INSERT INTO contact_events(contact_id, attempt_id, event, from_status,"
                    " to_status, detail, at) VALUES (?,?,?,?,?,?,?)",
                    (contact_id, call_id, "disposition_edited", status["status"],
                     status["status"], f"{old or '-'} -> {disposition} by {actor}", iso(at)))
    return str(old) if old is not None else None


async def add_note(store: Store, call_id: str, author: str, text: str, at: datetime) -> int:
    return await store.execute(
        "INSERT INTO call_notes(attempt_id, author, text, at) VALUES (?,?,?,?)",
        (call_id, author, text, iso(at)))


async def notes(store: Store, call_id: str) -> list[Note]:
    rows = await store.fetchall(
        "SELECT id, author, text, at FROM call_notes WHERE attempt_id = ? ORDER BY id",
        (call_id,))
    return [Note(int(r["id"]), str(r["author"]), str(r["text"]), str(r["at"])) for r in rows]
