"""Reads for the dashboard: campaign progress for the live bars, and call minutes per day
for the cost chart. Both are aggregates served by existing indexes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from televox_pbx.store.db import Store
from televox_pbx.store.dial_queue import FINAL_STATUSES
from televox_pbx.store.timefmt import iso

_LIVE_SQL = "('intent','originated','ringing','answered')"


_QUEUED = ("pending", "callback")
_IN_CALL = ("calling", "connected")
_UNREACHED = ("no_answer", "busy", "failed")  # final, and nobody was reached


@dataclass(frozen=True, slots=True)
class Progress:
    name: str
    state: str
    by_status: dict[str, int]  # contacts per status
    live: int  # attempts in flight

    def as_dict(self) -> dict[str, object]:
        counts = self.by_status
        total = sum(counts.values())
        done = sum(n for s, n in counts.items() if s in FINAL_STATUSES)
        failed = sum(counts.get(s, 0) for s in _UNREACHED)
        return {"name": self.name, "state": self.state, "total": total, "done": done,
                "percent": round(100.0 * done / total, 1) if total else 0.0,
                "queued": sum(counts.get(s, 0) for s in _QUEUED),
                "in_progress": max(self.live, sum(counts.get(s, 0) for s in _IN_CALL)),
                "completed": done - failed, "failed": failed}


async def campaign_progress(store: Store) -> list[Progress]:
    """Every stored campaign: state, contacts per status, live calls (two grouped reads)."""
    rows = await store.fetchall(
        "SELECT k.id, k.name, k.state, c.status, COUNT(c.id) AS n FROM campaigns k"
        " LEFT JOIN contacts c ON c.campaign_id = k.id GROUP BY k.id, c.status ORDER BY k.name")
    live_rows = await store.fetchall(
        f"SELECT campaign_id, COUNT(*) AS n FROM call_attempts WHERE status IN {_LIVE_SQL}"
        " GROUP BY campaign_id")
    live = {r["campaign_id"]: int(r["n"]) for r in live_rows}
    out: dict[int, Progress] = {}
    for r in rows:
        p = out.setdefault(int(r["id"]), Progress(str(r["name"]), str(r["state"]), {},
                                                   live.get(r["id"], 0)))
        if r["status"] is not None:
            p.by_status[str(r["status"])] = int(r["n"])
    return list(out.values())


async def minutes_per_day(store: Store, campaign_id: int, today: datetime,
                          days: int = 30) -> list[tuple[str, float]]:
    """(YYYY-MM-DD, minutes) for the `days` days ending today (UTC), zero-filled."""
    first = (today.astimezone(UTC) - timedelta(days=days - 1)).date()
    rows = await store.fetchall(
        "SELECT substr(created_at, 1, 10) AS day, SUM(duration_s) AS s FROM call_attempts"
        " WHERE campaign_id = ? AND created_at >= ? AND duration_s IS NOT NULL"
        " GROUP BY day", (campaign_id, iso(datetime(first.year, first.month, first.day,
                                                    tzinfo=UTC))))
    seconds = {str(r["day"]): float(r["s"] or 0.0) for r in rows}
    out = []
    for i in range(days):
        day = (first + timedelta(days=i)).isoformat()
        out.append((day, round(seconds.get(day, 0.0) / 60.0, 2)))
    return out
