"""LLM call summaries: the worker's queue (answered calls that have hung up and have none
yet) and the rows it writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from televox_pbx.store.attempts import UNFINISHED
from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso

_UNFINISHED = ",".join(f"'{s}'" for s in UNFINISHED)


@dataclass(frozen=True, slots=True)
class Summary:
    status: str  # done | failed
    text: str | None
    at: str


async def calls_to_summarize(store: Store, limit: int, since: datetime) -> list[str]:
    """Answered, finished calls that hung up after `since`, in which the callee said
    something and that have no summary row yet, oldest hang-up first."""
    rows = await store.fetchall(
        "SELECT a.id FROM call_attempts a INDEXED BY call_attempts_answered_hangup"
        " WHERE a.answered_at IS NOT NULL AND a.hangup_at >= ?"
        f" AND a.status NOT IN ({_UNFINISHED}) AND a.turns > 0"
        " AND NOT EXISTS (SELECT 1 FROM call_summaries s WHERE s.attempt_id = a.id)"
        " ORDER BY a.hangup_at, a.id LIMIT ?", (iso(since), limit))
    return [str(r["id"]) for r in rows]


async def save_summary(store: Store, attempt_id: str, *, status: str, text: str | None,
                       tries: int, at: datetime) -> None:
    await store.execute(
        "INSERT INTO call_summaries(attempt_id, status, summary, tries, at) VALUES (?,?,?,?,?)"
        " ON CONFLICT(attempt_id) DO UPDATE SET status = excluded.status,"
        " summary = excluded.summary, tries = excluded.tries, at = excluded.at",
        (attempt_id, status, text, tries, iso(at)))


async def get_summary(store: Store, attempt_id: str) -> Summary | None:
    row = await store.fetchone(
        "SELECT status, summary, at FROM call_summaries WHERE attempt_id = ?", (attempt_id,))
    return Summary(str(row["status"]), row["summary"], str(row["at"])) if row else None


async def summary_counts(store: Store) -> dict[str, int]:
    rows = await store.fetchall("SELECT status, COUNT(*) AS n FROM call_summaries"
                                " GROUP BY status")
    return {str(r["status"]): int(r["n"]) for r in rows}
