"""The API audit log: who changed what through the HTTP API, and when."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


async def record_audit(store: Store, *, actor: str, action: str, target: str,
                       detail: Mapping[str, Any], at: datetime) -> int:
    return await store.execute(
        "INSERT INTO api_audit(at, actor, action, target, detail_json) VALUES (?,?,?,?,?)",
        (iso(at), actor, action, target,
         json.dumps(dict(detail), ensure_ascii=False, default=str, sort_keys=True)))


async def list_audit(store: Store, *, actor: str | None = None, action: str | None = None,
                     limit: int = 100, offset: int = 0) -> tuple[list[AuditEntry], int]:
    """Newest first, and the total that matches."""
    where, params = ["1=1"], []
    if actor is not None:
        where.append("actor = ?")
        params.append(actor)
    if action is not None:
        where.append("action = ?")
        params.append(action)
    cond = " AND ".join(where)
    rows = await store.fetchall(
        f"SELECT id, at, actor, action, target, detail_json FROM api_audit WHERE {cond}"
        " ORDER BY id DESC LIMIT ? OFFSET ?", (*params, limit, offset))
    total = await store.fetchone(f"SELECT COUNT(*) FROM api_audit WHERE {cond}", params)
    return ([AuditEntry(int(r["id"]), str(r["at"]), str(r["actor"]), str(r["action"]),
                        str(r["target"]), json.loads(r["detail_json"])) for r in rows],
            int(total[0]) if total else 0)
