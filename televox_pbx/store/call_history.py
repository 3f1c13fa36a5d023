"""Reads for `televox calls`: finished and live calls, and one call whole."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso, parse_iso
from televox_pbx.store.transcripts import TurnRow, recordings, transcript


@dataclass(frozen=True, slots=True)
class CallRow:
    id: str
    campaign: str | None
    contact_id: int | None
    contact_name: str | None
    phone: str
    direction: str
    status: str
    failure: str | None
    disposition: str | None
    amd_status: str | None
    amd_cause: str | None  # why: AMD()'s AMDCAUSE or the stream detector's (e.g. BEEP)
    turns: int
    duration_s: float | None
    created_at: datetime | None
    answered_at: datetime | None
    hangup_at: datetime | None
    hangup_cause: int | None
    sip_code: int | None
    notes: str | None


@dataclass(frozen=True, slots=True)
class CallDetail:
    call: CallRow
    turns: list[TurnRow]
    recordings: list[tuple[Path, float | None]]


_SELECT = (
    "SELECT a.id, k.name AS campaign, a.contact_id, c.name AS contact_name, a.phone,"
    " a.direction, a.status, a.failure, a.disposition, a.amd_status, a.amd_cause,"
    " a.turns, a.duration_s,"
    " a.created_at, a.answered_at, a.hangup_at, a.hangup_cause, a.sip_code, a.notes"
    " FROM call_attempts a LEFT JOIN campaigns k ON k.id = a.campaign_id"
    " LEFT JOIN contacts c ON c.id = a.contact_id")


def _row(r: Any) -> CallRow:
    return CallRow(
        id=str(r["id"]), campaign=r["campaign"], contact_id=r["contact_id"],
        contact_name=r["contact_name"], phone=str(r["phone"]), direction=str(r["direction"]),
        status=str(r["status"]), failure=r["failure"], disposition=r["disposition"],
        amd_status=r["amd_status"], amd_cause=r["amd_cause"], turns=int(r["turns"] or 0),
        duration_s=float(r["duration_s"]) if r["duration_s"] is not None else None,
        created_at=parse_iso(r["created_at"]), answered_at=parse_iso(r["answered_at"]),
        hangup_at=parse_iso(r["hangup_at"]), hangup_cause=r["hangup_cause"],
        sip_code=r["sip_code"], notes=r["notes"])


async def list_calls(store: Store, *, campaign: str | None = None, status: str | None = None,
                     since: datetime | None = None, limit: int = 50) -> list[CallRow]:
    """Newest first. Attempts never sent (not_sent) are bookkeeping, not calls."""
    where = ["a.status != 'not_sent'"]
    params: list[Any] = []
    if campaign is not None:
        where.append("k.name = ?")
        params.append(campaign)
    if status is not None:
        where.append("a.status = ?")
        params.append(status)
    if since is not None:
        where.append("a.created_at >= ?")
        params.append(iso(since))
    rows = await store.fetchall(
        f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY a.created_at DESC, a.id LIMIT ?",
        (*params, limit))
    return [_row(r) for r in rows]


async def call_detail(store: Store, call_id: str) -> CallDetail | None:
    """One call by its id, or by a unique prefix of it (as `calls list` prints them)."""
    rows = await store.fetchall(f"{_SELECT} WHERE a.id LIKE ? LIMIT 2",
                                (call_id.replace("%", "").replace("_", r"\_") + "%",))
    if len(rows) != 1:
        return None
    call = _row(rows[0])
    return CallDetail(call, await transcript(store, call.id),
                      await recordings(store, call.id))
