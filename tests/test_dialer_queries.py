"""The dialer's hot queries are served by indexes (so a tick does not grow with the list)."""

from __future__ import annotations

from datetime import UTC, datetime

from televox_pbx.store import Store
from televox_pbx.store.dial_queue import QUEUE_SQL

NOW = datetime(2026, 1, 5, 15, tzinfo=UTC).isoformat()


async def plan_of(store: Store, sql: str, params: tuple[object, ...]) -> str:
    rows = await store.fetchall(f"EXPLAIN QUERY PLAN {sql}", params)
    return "\n".join(str(r["detail"]) for r in rows)


async def test_queue_query_uses_indexes() -> None:
    store = await Store.open(":memory:")
    try:
        plan = await plan_of(store, QUEUE_SQL, (1, 1, NOW, 10))
        assert "USING INDEX contacts_dial_queue" in plan
        assert "SCAN c" not in plan.replace("SCAN c USING", "")
        assert "TEMP B-TREE" not in plan  # ORDER BY follows the index: stops at LIMIT
        assert "sqlite_autoindex_contact_phones" in plan
        inflight = await plan_of(
            store, "SELECT COUNT(*) FROM call_attempts WHERE campaign_id = ? AND status IN"
            " ('intent','originated','ringing','answered')", (1,))
        assert "COVERING INDEX call_attempts_kpis (campaign_id=? AND status=?)" in inflight
    finally:
        await store.close()
