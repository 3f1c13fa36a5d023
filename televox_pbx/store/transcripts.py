"""What a voice session leaves behind: transcript turns, the recording, the disposition."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from televox_pbx.store.attempts import OWNED_SQL, owner_params
from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso, parse_iso

Speaker = Literal["agent", "callee", "system"]


@dataclass(frozen=True, slots=True)
class TurnRow:
    turn: int
    speaker: Speaker
    text: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    interrupted: bool = False
    # Milliseconds from the end of callee speech to each stage (agent turns only).
    latency: Mapping[str, float] | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    attempt_id: str
    turns: Sequence[TurnRow] = field(default_factory=tuple)
    disposition: str | None = None
    recording_path: Path | None = None
    recording_seconds: float | None = None
    # The stream detector's verdict (campaign `amd: stream`), stored where AMD()'s is.
    amd_status: str | None = None
    amd_cause: str | None = None


def callee_turns(turns: Sequence[TurnRow]) -> int:
    """THE turn count (attempt rows, the log, `calls show`, exports): turns in which the
    callee said something."""
    return sum(1 for t in turns if t.speaker == "callee" and t.text.strip())


async def save_call(store: Store, record: CallRecord) -> None:
    """Everything at once, in one transaction; the attempt row must already exist."""
    async with store.transaction() as conn:
        await conn.executemany(
            "INSERT INTO transcripts(attempt_id, turn, speaker, text, started_at, ended_at,"
            " interrupted, latency_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(record.attempt_id, t.turn, t.speaker, t.text,
              iso(t.started_at) if t.started_at else None,
              iso(t.ended_at) if t.ended_at else None, int(t.interrupted),
              json.dumps(dict(t.latency)) if t.latency is not None else None)
             for t in record.turns])
        if record.recording_path is not None:
            await conn.execute(
                "INSERT INTO recordings(attempt_id, path, seconds) VALUES (?, ?, ?)",
                (record.attempt_id, str(record.recording_path), record.recording_seconds))
        n = callee_turns(record.turns)
        await conn.execute(
            "UPDATE call_attempts SET disposition = COALESCE(?, disposition),"
            " amd_status = COALESCE(?, amd_status), amd_cause = COALESCE(?, amd_cause),"
            " turns = CASE WHEN turns > ? THEN turns ELSE ? END WHERE id = ?" + OWNED_SQL,
            (record.disposition, record.amd_status, record.amd_cause, n, n,
             record.attempt_id, *owner_params(store)))


async def transcript(store: Store, attempt_id: str) -> list[TurnRow]:
    rows = await store.fetchall(
        "SELECT turn, speaker, text, started_at, ended_at, interrupted, latency_json"
        " FROM transcripts WHERE attempt_id = ? ORDER BY turn, id", (attempt_id,))
    return [TurnRow(
        turn=int(r["turn"]), speaker=r["speaker"], text=str(r["text"]),
        started_at=_dt(r["started_at"]), ended_at=_dt(r["ended_at"]),
        interrupted=bool(r["interrupted"]),
        latency=json.loads(r["latency_json"]) if r["latency_json"] else None) for r in rows]


async def recordings(store: Store, attempt_id: str) -> list[tuple[Path, float | None]]:
    rows = await store.fetchall(
        "SELECT path, seconds FROM recordings WHERE attempt_id = ? ORDER BY id", (attempt_id,))
    return [(Path(r["path"]), r["seconds"]) for r in rows]


def _dt(text: str | None) -> datetime | None:
    return parse_iso(text)


class StoreCallLog:
    """The session's CallLogPort, backed by the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def save_call(self, record: CallRecord) -> None:
        await save_call(self.store, record)


async def add_callback(store: Store, attempt_id: str, due_at: datetime,
                       zone: str | None) -> int:
    """A callback booked on the call, for the attempt's contact; the dialer picks it up.

    One call books at most one callback: a second one ("actually, make it Thursday")
    replaces the first, in the same transaction, so the contact is never dialed twice."""
    async with store.transaction() as conn:
        await conn.execute(
            "UPDATE callbacks SET status = 'replaced' WHERE attempt_id = ? AND status = 'pending'",
            (attempt_id,))
        cur = await conn.execute(
            "INSERT INTO callbacks(attempt_id, contact_id, due_at, zone)"
            " SELECT id, contact_id, ?, ? FROM call_attempts WHERE id = ?",
            (iso(due_at), zone, attempt_id))
        callback_id = int(cur.lastrowid or 0)
        await conn.execute(
            "UPDATE contacts SET callback_at = ? WHERE id ="
            " (SELECT contact_id FROM call_attempts WHERE id = ?)", (iso(due_at), attempt_id))
    return callback_id


class StoreCallbacks:
    """The session's CallbackPort, backed by the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def schedule(self, call_id: str, due_at: datetime, zone: str | None) -> None:
        await add_callback(self.store, call_id, due_at, zone)
