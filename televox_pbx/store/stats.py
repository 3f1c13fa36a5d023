"""Counts for /status and /metrics: cheap aggregate reads, each served by an index."""

from __future__ import annotations

from dataclasses import dataclass

from televox_pbx.store.db import Store


@dataclass(frozen=True, slots=True)
class CampaignCount:
    name: str
    state: str
    contacts: dict[str, int]


async def queue_depth(store: Store) -> int:
    """Contacts waiting to be dialled in campaigns that are running or scheduled."""
    row = await store.fetchone(
        "SELECT COUNT(*) FROM contacts c JOIN campaigns k ON k.id = c.campaign_id"
        " WHERE k.state IN ('RUNNING','SCHEDULED') AND c.status = 'pending'")
    return int(row[0]) if row else 0


async def attempts_by_status(store: Store) -> dict[str, int]:
    rows = await store.fetchall(
        "SELECT status, COUNT(*) AS n FROM call_attempts GROUP BY status")
    return {str(r["status"]): int(r["n"]) for r in rows}


async def campaign_counts(store: Store) -> list[CampaignCount]:
    rows = await store.fetchall(
        "SELECT k.name, k.state, c.status, COUNT(c.id) AS n FROM campaigns k"
        " LEFT JOIN contacts c ON c.campaign_id = k.id GROUP BY k.id, c.status ORDER BY k.name")
    out: dict[str, CampaignCount] = {}
    for r in rows:
        entry = out.setdefault(str(r["name"]), CampaignCount(str(r["name"]), str(r["state"]), {}))
        if r["status"] is not None:
            entry.contacts[str(r["status"])] = int(r["n"])
    return list(out.values())


async def webhook_counts(store: Store) -> dict[str, int]:
    rows = await store.fetchall(
        "SELECT status, COUNT(*) AS n FROM webhook_deliveries GROUP BY status")
    return {str(r["status"]): int(r["n"]) for r in rows}
