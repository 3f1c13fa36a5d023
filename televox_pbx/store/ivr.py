"""IVR answers: saved per call as they are given; exported one row per call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    digit: str | None
    recording: str | None
    at: str


async def save_answer(store: Store, attempt_id: str, question: str, digit: str | None,
                      at: datetime, recording: str | None = None) -> None:
    """campaign and contact come from the attempt (NULL for a call with no row yet)."""
    await store.execute(
        "INSERT INTO ivr_answers(attempt_id, campaign_id, contact_id, question, digit,"
        " recording, at) SELECT ?, a.campaign_id, a.contact_id, ?, ?, ?, ?"
        " FROM call_attempts a WHERE a.id = ?",
        (attempt_id, question, digit, recording, iso(at), attempt_id))


async def answers(store: Store, attempt_id: str) -> list[Answer]:
    rows = await store.fetchall(
        "SELECT question, digit, recording, at FROM ivr_answers WHERE attempt_id = ?"
        " ORDER BY id", (attempt_id,))
    return [Answer(str(r[0]), r[1], r[2], str(r[3])) for r in rows]


async def export_rows(store: Store, campaign_id: int,
                      questions: Sequence[str]) -> tuple[list[str], list[list[object]]]:
    """One row per answered call: who, when, then one column per question (the key, or
    the recording's path; the last answer when a question was answered twice)."""
    header = ["attempt_id", "contact_id", "name", "phone", "called_at", *questions]
    rows = await store.fetchall(
        "SELECT a.id, a.contact_id, c.name, a.phone, a.created_at, i.question,"
        " COALESCE(i.digit, i.recording) FROM ivr_answers i"
        " JOIN call_attempts a ON a.id = i.attempt_id"
        " LEFT JOIN contacts c ON c.id = a.contact_id"
        " WHERE i.campaign_id = ? ORDER BY a.created_at, a.id, i.id", (campaign_id,))
    out: dict[str, list[object]] = {}
    index = {q: 5 + n for n, q in enumerate(questions)}
    for r in rows:
        line = out.setdefault(str(r[0]), [r[0], r[1], r[2], r[3], r[4],
                                          *[""] * len(questions)])
        col = index.get(str(r[5]))
        if col is not None:
            line[col] = r[6]
    return header, list(out.values())
