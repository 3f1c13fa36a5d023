"""HTTP API latency with a big campaign: a SQLite store seeded with one campaign of
100,000 contacts (and 40,000 call attempts), the API served on loopback, and a client
asking for the campaign's detail (KPIs, counts by status, calls in flight) again and
again. Also the campaigns list, the first page of the contact list with a filter, and
/status, which read the same tables.

Usage: .venv/bin/python bench/bench_api.py [CONTACTS [REQUESTS]]
(default 100000 contacts, 200 requests per endpoint, one at a time). Prints p50/p95/max
in milliseconds per endpoint.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from televox_pbx.clock import SystemClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.settings import Settings
from televox_pbx.store import Store
from televox_pbx.store.campaigns import upsert_campaign
from televox_pbx.web.context import ApiContext
from televox_pbx.web.server import build_app

TOKEN = "bench-token"
STATUSES = ("pending", "pending", "pending", "completed", "completed", "in_progress",
            "failed", "dnc", "opted_out")
DISPOSITIONS = ("INTERESTED", "NOT_INTERESTED", "CALLBACK", "OPT_OUT", "VOICEMAIL", None)


def campaign() -> Campaign:
    return Campaign.model_validate({
        "name": "bench", "caller_id": "+15550100000", "trunk": "trunk",
        "agent": {"persona_name": "Ava", "business": "Acme", "goal": "book a demo",
                  "opening_line": "Hi {{name}}, I'm Ava, an AI assistant calling for Acme."}})


async def seed(store: Store, contacts: int) -> None:
    cid = await upsert_campaign(store, campaign())
    await store.execute("UPDATE campaigns SET state = 'RUNNING' WHERE id = ?", (cid,))
    await store.execute("INSERT INTO campaigns(name) VALUES ('other')")
    async with store.transaction() as conn:
        await conn.executemany(
            "INSERT INTO contacts(id, campaign_id, name, status, retry_pass, last_disposition,"
            " next_eligible_at) VALUES (?,?,?,?,?,?,?)",
            [(i, cid, f"Person {i}", STATUSES[i % len(STATUSES)], 1 + i % 3,
              DISPOSITIONS[i % len(DISPOSITIONS)], None) for i in range(1, contacts + 1)])
        await conn.executemany(
            "INSERT INTO contact_phones(contact_id, campaign_id, position, e164)"
            " VALUES (?,?,1,?)",
            [(i, cid, f"+1212{i:07d}") for i in range(1, contacts + 1)])
        attempts = contacts * 2 // 5
        await conn.executemany(
            "INSERT INTO call_attempts(id, campaign_id, contact_id, phone, status,"
            " disposition, answered_at, duration_s, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            [(f"{i:08d}-0000-4000-8000-000000000000", cid, 1 + i % contacts,
              f"+1212{1 + i % contacts:07d}",
              "completed" if i % 4 else ("no_answer" if i % 8 else "answered"),
              DISPOSITIONS[i % len(DISPOSITIONS)] if i % 4 else None,
              "2026-01-05T15:00:00Z" if i % 4 else None, 30.0 + i % 60,
              f"2026-01-05T{i % 24:02d}:00:00Z") for i in range(attempts)])


async def timed(http: aiohttp.ClientSession, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with http.get(path) as resp:
            await resp.read()
            assert resp.status == 200, (path, resp.status)
        out.append(1000.0 * (time.perf_counter() - t0))
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(contacts: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "campaigns").mkdir()
        store = await Store.open(root / "bench.db")
        t0 = time.perf_counter()
        await seed(store, contacts)
        print(f"seeded {contacts} contacts in {time.perf_counter() - t0:.1f} s")
        settings = Settings(campaigns_dir=root / "campaigns")
        app = build_app(ApiContext(store, settings, SystemClock(), version="bench"),
                        {"bench": SecretStr(TOKEN)})
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with aiohttp.ClientSession(
                    base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                for path in ("/api/v1/campaigns/bench", "/api/v1/campaigns",
                             "/api/v1/campaigns/bench/contacts?status=pending&limit=50",
                             "/api/v1/campaigns/bench/contacts?q=Person%2012&limit=50",
                             "/api/v1/campaigns/bench/contacts?q=212-000-12&limit=50",
                             "/api/v1/status"):
                    await timed(http, path, 3)  # warm the page cache
                    ms = await timed(http, path, requests)
                    print(f"{path:60s} p50 {statistics.median(ms):7.1f} ms  "
                          f"p95 {pct(ms, 95):7.1f} ms  max {max(ms):7.1f} ms  (n={requests})")
        finally:
            await runner.cleanup()
            await store.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
                     int(sys.argv[2]) if len(sys.argv) > 2 else 200))
