"""Custom tool calls kept with their call (migration 0011): arguments, status, latency and
response size, never the response itself."""

from __future__ import annotations

from televox_pbx.agent.custom_tools import ToolCallRecord
from televox_pbx.clock import Clock
from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso


class StoreToolCalls:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def record(self, call_id: str, agent: str, record: ToolCallRecord) -> None:
        await self.store.execute(
            "INSERT INTO tool_calls(call_id, agent, tool, arguments, status, http_status, "
            "latency_ms, response_bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (call_id, agent, record.tool, record.arguments, record.status, record.http_status,
             record.latency_ms, record.response_bytes, iso(self.clock.now())))


async def tool_calls_of(store: Store, call_id: str) -> list[ToolCallRecord]:
    rows = await store.fetchall(
        "SELECT tool, arguments, status, http_status, latency_ms, response_bytes "
        "FROM tool_calls WHERE call_id = ? ORDER BY id", (call_id,))
    return [ToolCallRecord(r["tool"], r["arguments"], r["status"], r["http_status"],
                           r["latency_ms"], r["response_bytes"]) for r in rows]
