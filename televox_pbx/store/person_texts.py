"""One person's texts (issue 16's SMS) for their history: every SMS with a number, both
ways, across campaigns, newest first, and which of the number's attempts were SMS sends
(person_history lists those among the calls; the history shows them as texts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import parse_iso


@dataclass(frozen=True, slots=True)
class TextRow:
    at: datetime | None
    direction: str  # out | in
    kind: str  # campaign | single | reply | confirmation | inbound
    campaign: str | None
    body: str
    status: str  # sent | failed | received | held | superseded
    reason: str | None
    attempt_id: str | None


async def person_texts(store: Store, e164: str, limit: int = 200) -> list[TextRow]:
    rows = await store.fetchall(
        "SELECT m.at, m.direction, m.kind, k.name AS campaign, m.body, m.status, m.reason,"
        " m.attempt_id FROM sms_messages m LEFT JOIN campaigns k ON k.id = m.campaign_id"
        " WHERE m.e164 = ? ORDER BY m.at DESC, m.id DESC LIMIT ?", (e164, limit))
    return [TextRow(parse_iso(r["at"]), str(r["direction"]), str(r["kind"]), r["campaign"],
                    str(r["body"]), str(r["status"]), r["reason"], r["attempt_id"])
            for r in rows]


async def sms_attempt_ids(store: Store, e164: str) -> set[str]:
    """The number's attempts that were SMS sends, not calls."""
    rows = await store.fetchall(
        "SELECT id FROM call_attempts WHERE phone = ? AND channel = 'sms'", (e164,))
    return {str(r["id"]) for r in rows}
