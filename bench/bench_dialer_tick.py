"""Dialer tick cost at 1k, 100k and 1M contacts (prints numbers; not a test).

Synthetic contacts are bulk-inserted straight into a fresh SQLite file; then we time
ticks that each pick, gate, write the intent for and originate one call (a no-op
originator), with the result fed back so the line never fills up.

    .venv/bin/python bench/bench_dialer_tick.py [--sizes 1000,100000,1000000] [--ticks 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import CallOutcome, CallStatus, OriginateRequest
from televox_pbx.store import Store
from televox_pbx.store.campaigns import upsert_campaign

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
CHUNK = 50_000


class NullOriginator:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def originate(self, req: OriginateRequest) -> None:
        self.sent.append(req.call_id)


def campaign() -> Campaign:
    return Campaign.model_validate({
        "name": "bench",
        "agent": {"persona_name": "Ava", "business": "Acme", "goal": "demo",
                  "opening_line": "Hi, I'm Ava, an AI assistant."},
        "caller_id": "+15550100000", "trunk": "trunk",
        "pacing": {"calls_per_minute": 600, "max_concurrent": 50},
        # Number-based zones: the gate does the full phonenumbers lookup on each call.
        "timezone_policy": {"source": "number"},
    })


async def populate(store: Store, n: int) -> int:
    cid = await upsert_campaign(store, campaign())
    await store.execute("UPDATE campaigns SET state = 'RUNNING' WHERE id = ?", (cid,))
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        async with store.transaction() as conn:
            await conn.executemany(
                "INSERT INTO contacts(id, campaign_id, name) VALUES (?,?,?)",
                [(i + 1, cid, f"Lead {i}") for i in range(lo, hi)])
            await conn.executemany(
                "INSERT INTO contact_phones(contact_id, campaign_id, position, e164)"
                " VALUES (?,?,1,?)",
                [(i + 1, cid, f"+1212{2000000 + i:07d}") for i in range(lo, hi)])
    await store.execute("ANALYZE")
    await store.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # don't bill the load to ticks
    return cid


async def bench(n: int, ticks: int) -> tuple[float, float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "bench.db")
        t0 = time.perf_counter()
        await populate(store, n)
        load_s = time.perf_counter() - t0
        clock = FakeClock(START)
        orig = NullOriginator()
        dialer = Dialer(store, orig, clock, max_concurrent_global=50)
        samples: list[float] = []
        for _ in range(ticks):
            t = time.perf_counter()
            await dialer.tick()
            samples.append(time.perf_counter() - t)
            while orig.sent:
                await dialer.on_outcome(CallOutcome(orig.sent.pop(), CallStatus.NO_ANSWER))
            await clock.advance(0.1)
        await store.close()
    samples.sort()
    return (load_s, statistics.median(samples) * 1e3,
            samples[int(len(samples) * 0.95)] * 1e3, samples[-1] * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--ticks", type=int, default=300)
    args = ap.parse_args()
    print(f"{'contacts':>10} {'load s':>8} {'tick p50 ms':>12} {'p95 ms':>8} {'max ms':>8}")
    for n in (int(s) for s in args.sizes.split(",")):
        load_s, p50, p95, worst = asyncio.run(bench(n, args.ticks))
        print(f"{n:>10} {load_s:>8.1f} {p50:>12.2f} {p95:>8.2f} {worst:>8.2f}")


if __name__ == "__main__":
    main()
