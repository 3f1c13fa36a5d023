"""Audit trail of compliance-gate decisions (table gate_decisions)."""

from __future__ import annotations

from datetime import datetime

from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso


async def record_gate_decision(store: Store, *, campaign_id: int | None, contact_id: int | None,
                               phone: str, allowed: bool, reason: str, detail: str,
                               at: datetime) -> None:
    await store.execute(
        "INSERT INTO gate_decisions(campaign_id, contact_id, phone, allowed, reason, detail, at)"
        " VALUES (?,?,?,?,?,?,?)",
        (campaign_id, contact_id, phone, int(allowed), reason, detail, iso(at)))


async def recent_decisions(store: Store, contact_id: int,
                           limit: int = 20) -> list[dict[str, object]]:
    rows = await store.fetchall(
        "SELECT allowed, reason, detail, at FROM gate_decisions WHERE contact_id = ?"
        " ORDER BY id DESC LIMIT ?", (contact_id, limit))
    return [dict(r) for r in rows]
