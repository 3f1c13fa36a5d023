"""Contact import throughput into SQLite: CSV text -> parsed -> mapped -> stored.

Usage: .venv/bin/python bench/bench_import.py [ROWS [RUNS [DIR]]]
(default 100000 rows, 3 runs, the database in the system temp dir; DIR=/dev/shm shows
what is left without disk flushes)
Each run uses a fresh store. Prints rows/s per run for parsing, for the import (mapping,
normalising, dedupe, DNC check, insert) and end to end, then best and median.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from televox_pbx.campaigns.csvio import parse_text
from televox_pbx.campaigns.importer import import_rows
from televox_pbx.campaigns.mapping import build_mapping
from televox_pbx.store import Store
from televox_pbx.store.contacts import ensure_campaign
from televox_pbx.store.dnc import add_numbers

ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")


def make_csv(rows: int, seed: int = 7) -> str:
    rnd = random.Random(seed)
    out = io.StringIO()
    out.write("Name,Email,Phone1,Phone2,Timezone,Case Number\n")
    formats = ("({a}) {b}-{c}", "{a}{b}{c}", "+1{a}{b}{c}", "{a}-{b}-{c}")
    for i in range(rows):
        a = rnd.randint(200, 999)
        b = rnd.randint(200, 999)
        f1 = rnd.choice(formats)
        p1 = f1.format(a=a, b=b, c=f"{i % 10000:04d}")
        p2 = "" if i % 3 else f"+1{a}{(b + 1) % 800 + 200}{i % 10000:04d}"
        out.write(f"Person {i},p{i}@example.com,\"{p1}\",{p2},{rnd.choice(ZONES)},C-{i:07d}\n")
    return out.getvalue()


async def one_run(text: str, rows: int, tmp: Path) -> tuple[float, float, float]:
    """Parse + import into a fresh store: (parse s, import s, import CPU s, all threads)."""
    store = await Store.open(tmp / "bench.db")
    try:
        cid = await ensure_campaign(store, "bench")
        await add_numbers(store, "default", [("+12025550100", "bench")], "bench", "bench",
                          "2026-01-01T00:00:00.000Z")
        t0 = time.perf_counter()
        table = parse_text(text)
        t1 = time.perf_counter()
        c1 = time.process_time()
        mapping = build_mapping(table.headers, [r.values for r in table.rows[:200]])
        summary = await import_rows(store, table.rows, mapping, campaign_id=cid,
                                    default_country="US")
        t2 = time.perf_counter()
        c2 = time.process_time()
        stored = await store.fetchone("SELECT COUNT(*) FROM contacts")
    finally:
        await store.close()
    assert summary.balanced() and stored is not None and stored[0] == summary.added
    return t1 - t0, t2 - t1, c2 - c1


async def main(rows: int, runs: int, where: str | None) -> None:
    text = make_csv(rows)
    results = []
    for i in range(runs):
        with tempfile.TemporaryDirectory(dir=where) as tmp:
            parse_s, import_s, cpu_s = await one_run(text, rows, Path(tmp))
        results.append((parse_s, import_s))
        print(f"run {i + 1}: parse {rows / parse_s:>9,.0f} rows/s   "
              f"import {rows / import_s:>9,.0f} rows/s "
              f"({rows / cpu_s:,.0f} per CPU-second)   "
              f"end to end {rows / (parse_s + import_s):>9,.0f} rows/s")
    imports = sorted(rows / r[1] for r in results)
    e2e = sorted(rows / (r[0] + r[1]) for r in results)
    print(f"rows per run: {rows}; database in {where or tempfile.gettempdir()}; "
          f"cpus: {os.cpu_count()}; "
          f"load average: {os.getloadavg()[0]:.2f} (other work on the box slows every run)")
    print(f"import (map + normalise + dedupe + DNC + insert): best {imports[-1]:,.0f} rows/s, "
          f"median {statistics.median(imports):,.0f} rows/s")
    print(f"end to end (incl. CSV parse): best {e2e[-1]:,.0f} rows/s, "
          f"median {statistics.median(e2e):,.0f} rows/s")


if __name__ == "__main__":
    n_rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    n_runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    asyncio.run(main(n_rows, n_runs, sys.argv[3] if len(sys.argv) > 3 else None))
