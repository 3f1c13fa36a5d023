"""Cluster claims on PostgreSQL (issue 19): claims per second with 1, 3 and 8 nodes at
1 million contacts, and the claim latency with 8 nodes (prints numbers; not a test).

Each node is a process of its own with its own Store (its own asyncpg connection) and
node row, claiming from one campaign as fast as it can through
store/cluster_claim.claim_many: the SKIP LOCKED pick and televox_take_many (the pacing row
lock, the bucket, the lease, the live count, the attempt inserts) in one statement, one
round trip and one transaction each. `--batch 1` is one claim per statement (a node with
one free slot, a paced tick); `--batch 8` is up to 8 (a node with 8 free slots, run-now).
Claims per second count contacts claimed; the latency is per statement.
All nodes of one campaign queue for its pacing row: what limits several nodes is how long
that lock is held (EXPLAIN ANALYZE of the pick: about 0.5 ms at 1M contacts). Pacing is
set wide open, so the numbers are the claim path's own cost.
A node ends its calls as a dialer would (up to 10 live; the oldest are closed, outside the
timed claim), so the live count stays small. Contacts are bulk-loaded with COPY.

    .venv/bin/python bench/bench_cluster_claims.py [--dsn postgresql://...]
        [--contacts 1000000] [--nodes 1,3,8] [--batch 1,8] [--seconds 10] [--explain]

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
    Pacing,
    claim_many,
)
from televox_pbx.store.nodes import start_node  # noqa: E402
from televox_pbx.store.sqlport import to_postgres  # noqa: E402

OPEN = Pacing(calls_per_minute=10_000_000, max_concurrent=1_000_000, burst=1_000_000)
LIVE_PER_NODE = 10
# The server settings README "Several boxes" recommends for the shared database.
RECOMMENDED = ["autovacuum_naptime=5s"]
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
        print(f"loaded {contacts:,} contacts with COPY in {time.perf_counter() - t0:.1f} s",
              flush=True)
        # A freshly COPYed table is not a settled one: the first reads of each page write
        # its hint bits, and autovacuum's insert-triggered VACUUM of the million rows runs
        # on the same 2 cores, so the first runs measured the load's aftermath (550 claims/s
        # with 3 nodes, against 2,000 once settled). VACUUM now, as a live database is.
        t0 = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        print(f"VACUUM (ANALYZE) in {time.perf_counter() - t0:.1f} s", flush=True)
    finally:
        await conn.close()
    return cid


async def reset(url: str, cid: int) -> None:
    """Every run starts from the same database: no attempts, every contact pending, the
    tables vacuumed. Without it each run inherits the dead index entries of the runs
    before it (every claim writes a contact and an attempt, and ending a call writes the
    attempt again), and later runs measured slower for that alone."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM call_attempts")
        await conn.execute("UPDATE contacts SET status = 'pending', last_attempt_at = NULL"
                           " WHERE campaign_id = $1 AND status <> 'pending'", cid)
        await conn.execute("DELETE FROM campaign_pacing")
        await conn.execute("VACUUM (ANALYZE) call_attempts, contacts, campaign_pacing")
    finally:
        await conn.close()


async def node_main(url: str, node: str, cid: int, seconds: float, start_at: float,
                    batch: int) -> tuple[int, list[float]]:
    store = await Store.open(url, migrate=False)
    latencies: list[float] = []
    live: list[str] = []
    claimed = 0
    try:
        store.node = await start_node(store, node, "bench", lease_s=3600)
        ids = (f"{node}-{uuid.uuid4().hex[:8]}-{i}" for i in itertools.count())
        await asyncio.sleep(max(0.0, start_at - time.time()))
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            got = await claim_many(store, cid, 1, OPEN, None, lambda: next(ids), batch)
            latencies.append(time.perf_counter() - t0)
            if not isinstance(got, list) or len(got) != batch:
                raise SystemExit(f"{node}: not {batch} claims ({got})")
            live.extend(c.call_id for c in got)
            claimed += len(got)
            if len(live) > LIVE_PER_NODE:  # the oldest calls end, as on a dialer
                done, live = live[:-LIVE_PER_NODE // 2], live[-LIVE_PER_NODE // 2:]
                await store.execute(
                    f"UPDATE call_attempts SET status = 'completed' WHERE id IN"
                    f" ({','.join('?' * len(done))})", tuple(done))
    finally:
        await store.close()
    return claimed, latencies


def _node_process(url: str, node: str, cid: int, seconds: float, start_at: float,
                  batch: int, out: Any) -> None:
    out.put(asyncio.run(node_main(url, node, cid, seconds, start_at, batch)))


def run_nodes(url: str, cid: int, nodes: int, seconds: float, batch: int
              ) -> tuple[int, list[float]]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0 + 0.5 * nodes  # every process imported and connected
    procs = [ctx.Process(target=_node_process,
                         args=(url, f"bench-{nodes}-{batch}-{i}", cid, seconds, start_at,
                               batch, out))
             for i in range(nodes)]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    lat = [x for _, r in results for x in r]
    return sum(n for n, _ in results), lat


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
    ap.add_argument("--batch", default="1,8", help="claims per statement, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the pick")
    ap.add_argument("--pg-setting", action="append", default=None, metavar="NAME=VALUE",
                    help="a setting of the throw-away server (default: the README's"
                         f" {' '.join(RECOMMENDED)}); repeat for several")
    args = ap.parse_args()
    args.pg_setting = RECOMMENDED if args.pg_setting is None else args.pg_setting
    load1, load5, _ = os.getloadavg()
    print(f"box: {os.cpu_count()} cores, load {load1:.2f} (1 min) {load5:.2f} (5 min)")
    server = None
    tmp = None
    try:
        if args.dsn:
            url = args.dsn
            print("server settings: as the server given by --dsn has them")
        else:
            from pg_support import fresh_database, start_server, stop_server
            shm = Path("/dev/shm")
            tmp = tempfile.mkdtemp(prefix="televox-bench-pg-",
                                   dir=str(shm) if shm.is_dir() else None)
            server = start_server(Path(tmp), " ".join(f"-c {kv}" for kv in args.pg_setting))
            url = fresh_database(server, migrated=False)
            print(f"throw-away server, with {' '.join(args.pg_setting) or 'its defaults'}")
        cid = asyncio.run(load(url, args.contacts))
        if args.explain:
            asyncio.run(explain(url, cid))
        for batch in (int(x) for x in args.batch.split(",")):
            for n in (int(x) for x in args.nodes.split(",")):
                asyncio.run(reset(url, cid))
                count, lat = run_nodes(url, cid, n, args.seconds, batch)
                print(f"{n} node(s), {batch} per statement: {count / args.seconds:,.0f}"
                      f" claims/s ({count:,} in {args.seconds:.0f} s); statement latency"
                      f" p50 {pct(lat, 50):.1f} ms, p95 {pct(lat, 95):.1f} ms,"
                      f" max {max(lat) * 1000:.1f} ms", flush=True)
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
