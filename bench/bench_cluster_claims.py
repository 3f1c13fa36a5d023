"""Cluster claims on PostgreSQL (issue 19): claims per second with 1, 3 and 8 nodes at
1 million contacts, and the claim latency with 8 nodes (prints numbers; not a test).

Each node is a process of its own with its own Store (its own asyncpg connection) and
node row, claiming from one campaign as fast as it can through
store/cluster_claim.claim_next: the SKIP LOCKED pick and televox_take (the pacing row
lock, the bucket, the lease, the live count, the attempt insert) in one statement, one
round trip and one transaction each.
All nodes of one campaign queue for its pacing row: what limits several nodes is how long
that lock is held (EXPLAIN ANALYZE of the pick: about 0.5 ms at 1M contacts). Pacing is
set wide open, so the numbers are the claim path's own cost.
A node ends its calls as a dialer would (up to 10 live; the oldest are closed, outside the
timed claim), so the live count stays small. Contacts are bulk-loaded with COPY.

    .venv/bin/python bench/bench_cluster_claims.py [--dsn postgresql://...]
        [--contacts 1000000] [--nodes 1,3,8] [--seconds 10] [--explain]

Without --dsn a throw-away PostgreSQL is started (tests/pg_support.py) and removed after.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from televox_pbx.config.campaign import Campaign  # noqa: E402
from televox_pbx.store import Store  # noqa: E402
from televox_pbx.store.campaigns import upsert_campaign  # noqa: E402
from televox_pbx.store.cluster_claim import (  # noqa: E402
    _PICK,
    Claimed,
    Pacing,
    claim_next,
)
from televox_pbx.store.nodes import start_node  # noqa: E402
from televox_pbx.store.sqlport import to_postgres  # noqa: E402

OPEN = Pacing(calls_per_minute=10_000_000, max_concurrent=1_000_000, burst=1_000_000)
LIVE_PER_NODE = 10
CHUNK = 100_000


def campaign(name: str) -> Campaign:
    return Campaign.model_validate({
        "name": name, "caller_id": "+15550100000", "trunk": "trunk",
        "agent": {"persona_name": "Ava", "business": "Acme", "goal": "book a demo",
                  "opening_line": "Hi, I'm Ava, an AI assistant calling for Acme."}})


async def load(url: str, contacts: int) -> int:
    """A migrated database with one campaign of `contacts` contacts, one phone each."""
    store = await Store.open(url)
    try:
        cid = await upsert_campaign(store, campaign("bench"))
        await store.execute("UPDATE campaigns SET state = 'RUNNING' WHERE id = ?", (cid,))
    finally:
        await store.close()
    conn = await asyncpg.connect(url)
    try:
        if await conn.fetchval("SELECT COUNT(*) FROM contacts WHERE campaign_id = $1", cid):
            print("contacts already loaded (a --dsn used before): reused")
            return cid
        t0 = time.perf_counter()
        for lo in range(0, contacts, CHUNK):
            ids = range(lo + 1, min(contacts, lo + CHUNK) + 1)
            await conn.copy_records_to_table("contacts", columns=["id", "campaign_id", "name"],
                                             records=[(i, cid, "Lead") for i in ids])
            await conn.copy_records_to_table(
                "contact_phones", columns=["id", "contact_id", "campaign_id", "position", "e164"],
                records=[(i, i, cid, 1, f"+1{2000000000 + i}") for i in ids])
        await conn.execute("ANALYZE")
        print(f"loaded {contacts:,} contacts with COPY in {time.perf_counter() - t0:.1f} s",
              flush=True)
    finally:
        await conn.close()
    return cid


async def node_main(url: str, node: str, cid: int, seconds: float, start_at: float
                    ) -> list[float]:
    store = await Store.open(url, migrate=False)
    latencies: list[float] = []
    live: list[str] = []
    try:
        store.node = await start_node(store, node, "bench", lease_s=3600)
        ids = (f"{node}-{uuid.uuid4().hex[:8]}-{i}" for i in itertools.count())
        await asyncio.sleep(max(0.0, start_at - time.time()))
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            got = await claim_next(store, cid, 1, OPEN, None, lambda: next(ids))
            latencies.append(time.perf_counter() - t0)
            if not isinstance(got, Claimed):
                raise SystemExit(f"{node}: no claim ({got})")
            live.append(got.call_id)
            if len(live) > LIVE_PER_NODE:  # the oldest calls end, as on a dialer
                done, live = live[:-LIVE_PER_NODE // 2], live[-LIVE_PER_NODE // 2:]
                await store.execute(
                    f"UPDATE call_attempts SET status = 'completed' WHERE id IN"
                    f" ({','.join('?' * len(done))})", tuple(done))
    finally:
        await store.close()
    return latencies


def _node_process(url: str, node: str, cid: int, seconds: float, start_at: float,
                  out: Any) -> None:
    out.put(asyncio.run(node_main(url, node, cid, seconds, start_at)))


def run_nodes(url: str, cid: int, nodes: int, seconds: float) -> tuple[int, list[float]]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0 + 0.5 * nodes  # every process imported and connected
    procs = [ctx.Process(target=_node_process,
                         args=(url, f"bench-{nodes}-{i}", cid, seconds, start_at, out))
             for i in range(nodes)]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    lat = [x for r in results for x in r]
    return len(lat), lat


async def explain(url: str, cid: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        sql, args = to_postgres(_PICK + " SELECT * FROM pick", {
            "campaign": cid, "pass": 1, "eligible": None, "ws": "default", "n": 4})
        async with conn.transaction():
            plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
        print("EXPLAIN ANALYZE of the pick:")
        for row in plan:
            print("   ", row[0])
    finally:
        await conn.close()


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[q - 1] * 1000 if len(xs) > 1 else xs[0] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", help="a PostgreSQL URL (default: a throw-away server)")
    ap.add_argument("--contacts", type=int, default=1_000_000)
    ap.add_argument("--nodes", default="1,3,8")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the pick")
    args = ap.parse_args()
    load1, load5, _ = os.getloadavg()
    print(f"box: {os.cpu_count()} cores, load {load1:.2f} (1 min) {load5:.2f} (5 min)")
    server = None
    tmp = None
    try:
        if args.dsn:
            url = args.dsn
        else:
            from pg_support import fresh_database, start_server, stop_server
            shm = Path("/dev/shm")
            tmp = tempfile.mkdtemp(prefix="televox-bench-pg-",
                                   dir=str(shm) if shm.is_dir() else None)
            server = start_server(Path(tmp))
            url = fresh_database(server, migrated=False)
        cid = asyncio.run(load(url, args.contacts))
        if args.explain:
            asyncio.run(explain(url, cid))
        for n in (int(x) for x in args.nodes.split(",")):
            count, lat = run_nodes(url, cid, n, args.seconds)
            print(f"{n} node(s): {count / args.seconds:,.0f} claims/s ({count:,} in"
                  f" {args.seconds:.0f} s); latency p50 {pct(lat, 50):.1f} ms,"
                  f" p95 {pct(lat, 95):.1f} ms, max {max(lat) * 1000:.1f} ms", flush=True)
        if args.explain:
            asyncio.run(explain(url, cid))
        load1, load5, _ = os.getloadavg()
        print(f"box load after: {load1:.2f} (1 min) {load5:.2f} (5 min)")
    finally:
        if server is not None:
            stop_server(server)
        if tmp is not None:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
