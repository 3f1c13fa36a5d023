"""One history per person: every call with a number, inbound and outbound, across
campaigns and agents, newest first (`televox contacts show NUMBER`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import parse_iso


@dataclass(frozen=True, slots=True)
class HistoryRow:
    call_id: str
    at: datetime | None
    direction: str
    campaign: str | None
    agent: str | None
    number: str | None  # the business's number: the one dialled (inbound), else None
    contact_name: str | None
    status: str
    disposition: str | None
    duration_s: float | None
    turns: int


async def record_inbound_route(store: Store, call_id: str, number: str, agent: str) -> None:
    await store.execute("INSERT INTO inbound_routes(call_id, number, agent) VALUES (?, ?, ?)"
                        " ON CONFLICT (call_id) DO UPDATE SET number = excluded.number,"
                        " agent = excluded.agent", (call_id, number, agent))


def _agent_of(config_json: str | None) -> str | None:
    """The agent of a stored campaign: its agent file's name, else the inline persona."""
    if not config_json:
        return None
    try:
        agent: dict[str, Any] = json.loads(config_json).get("agent") or {}
    except (ValueError, AttributeError):
        return None
    profile = agent.get("profile")
    if isinstance(profile, dict) and profile.get("name"):
        return str(profile["name"])
    persona = agent.get("persona_name")
    return f"(inline) {persona}" if persona else None


async def person_history(store: Store, e164: str, limit: int = 200) -> list[HistoryRow]:
    rows = await store.fetchall(
        "SELECT a.id, a.created_at, a.direction, a.status, a.disposition, a.duration_s,"
        " a.turns, k.name AS campaign, k.config_json, c.name AS contact_name,"
        " r.number, r.agent AS inbound_agent"
        " FROM call_attempts a LEFT JOIN campaigns k ON k.id = a.campaign_id"
        " LEFT JOIN contacts c ON c.id = a.contact_id"
        " LEFT JOIN inbound_routes r ON r.call_id = a.id"
        " WHERE a.phone = ? AND a.status != 'not_sent'"
        " ORDER BY a.created_at DESC, a.id LIMIT ?", (e164, limit))
    return [HistoryRow(
        call_id=str(r["id"]), at=parse_iso(r["created_at"]), direction=str(r["direction"]),
        campaign=r["campaign"], agent=r["inbound_agent"] or _agent_of(r["config_json"]),
        number=r["number"], contact_name=r["contact_name"], status=str(r["status"]),
        disposition=r["disposition"],
        duration_s=float(r["duration_s"]) if r["duration_s"] is not None else None,
        turns=int(r["turns"] or 0)) for r in rows]
