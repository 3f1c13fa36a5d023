"""Reads for `televox call`: which contact holds a number, and how one attempt ended."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from televox_pbx.store.attempts import UNFINISHED
from televox_pbx.store.db import Store


@dataclass(frozen=True, slots=True)
class AttemptSummary:
    status: str
    disposition: str | None
    duration_s: float | None
    failure: str | None
    hangup_cause: int | None
    turns: int


async def contact_for_phone(store: Store, campaign_id: int, e164: str) -> int | None:
    """The campaign's contact that has this number (the (campaign, e164) unique key)."""
    row = await store.fetchone(
        "SELECT contact_id FROM contact_phones WHERE campaign_id = ? AND e164 = ?",
        (campaign_id, e164))
    return int(row["contact_id"]) if row else None


async def attempt_summary(store: Store, call_id: str) -> AttemptSummary | None:
    row = await store.fetchone(
        "SELECT status, disposition, duration_s, failure, hangup_cause, turns"
        " FROM call_attempts WHERE id = ?", (call_id,))
    if row is None:
        return None
    return AttemptSummary(
        status=str(row["status"]), disposition=row["disposition"],
        duration_s=float(row["duration_s"]) if row["duration_s"] is not None else None,
        failure=row["failure"],
        hangup_cause=int(row["hangup_cause"]) if row["hangup_cause"] is not None else None,
        turns=int(row["turns"] or 0))


async def settled(store: Store, call_ids: Sequence[str]) -> bool:
    """Every one of these attempts is final AND the dialer has moved its contact on.

    The attempt row turns final a moment before the contact is updated (same lock, later
    statement), so "final" alone is not yet the moment to stop feeding the dialer."""
    if not call_ids:
        return True
    marks = ",".join("?" * len(call_ids))
    states = ",".join("?" * len(UNFINISHED))
    row = await store.fetchone(
        f"SELECT COUNT(*) AS n FROM call_attempts a LEFT JOIN contacts c ON c.id = a.contact_id"
        f" WHERE a.id IN ({marks}) AND (a.status IN ({states})"
        f" OR c.status IN ('calling', 'connected'))", (*call_ids, *UNFINISHED))
    return row is not None and int(row["n"]) == 0
