"""The AMI event log table (ami_events): batched inserts, filtered reads, retention."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from televox_pbx.store.db import Store
from televox_pbx.store.sqlport import POSTGRESQL
from televox_pbx.store.timefmt import iso, parse_iso

_KEY_OK = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class EventRow:
    received_at: datetime
    event: str | None
    call_id: str | None
    fields: Mapping[str, str | list[str]]  # repeated AMI keys become lists
    id: int | None = None


async def insert_events(store: Store, rows: Sequence[EventRow]) -> None:
    """One transaction per batch: a busy Asterisk sends thousands of events a second."""
    if not rows:
        return
    params = [(iso(r.received_at), r.event, r.call_id,
               json.dumps(r.fields, ensure_ascii=False, separators=(",", ":")))
              for r in rows]
    async with store.transaction() as conn:
        await conn.executemany(
            "INSERT INTO ami_events(received_at, event, call_id, fields_json) "
            "VALUES (?, ?, ?, ?)", params)


async def query_events(store: Store, *, since: datetime | None = None,
                       after_id: int | None = None, call_id: str | None = None,
                       filters: Mapping[str, str] | None = None,
                       limit: int = 100, newest: bool = True) -> list[EventRow]:
    """Events matching every condition, returned oldest first.

    `newest`: take the last `limit` matches (tail); otherwise the first (follow).
    `filters`: exact Key=Value on the stored fields (`Event` also matches the column).
    """
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("received_at >= ?")
        params.append(iso(since))
    if after_id is not None:
        where.append("id > ?")
        params.append(after_id)
    if call_id is not None:
        where.append("call_id = ?")
        params.append(call_id.lower())
    for key, value in (filters or {}).items():
        if key.lower() == "event":
            where.append("event = ?")
        else:
            if not _KEY_OK.match(key):
                raise ValueError(f"bad filter key {key!r}")
            where.append(f"CAST(fields_json AS jsonb) ->> '{key}' = ?"
                         if store.dialect == POSTGRESQL
                         else f"json_extract(fields_json, '$.\"{key}\"') = ?")
        params.append(value)
    sql = "SELECT id, received_at, event, call_id, fields_json FROM ami_events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY id {'DESC' if newest else 'ASC'} LIMIT ?"
    params.append(limit)
    rows = await store.fetchall(sql, params)
    out = [EventRow(id=int(r["id"]), received_at=parse_iso(r["received_at"]) or datetime.min,
                    event=r["event"], call_id=r["call_id"],
                    fields=json.loads(r["fields_json"])) for r in rows]
    if newest:
        out.reverse()
    return out


async def prune_events(store: Store, before: datetime) -> int:
    """Delete rows received before `before`; returns how many."""
    async with store.transaction() as conn:
        cur = await conn.execute("DELETE FROM ami_events WHERE received_at < ?",
                                 (iso(before),))
        return int(cur.rowcount or 0)
