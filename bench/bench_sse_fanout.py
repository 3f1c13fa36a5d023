"""SSE fan-out of the dashboard's live progress to 50 clients (prints numbers; not a test).

The API server runs in a child process on a fresh SQLite file (one campaign, 200 contacts
by default); 50 logged-in clients hold /ui/progress open. The parent marks one contact
done at a time straight in the database and waits until every client has seen it, then
waits a varying part of the hub's 0.5 s interval before the next change. Printed:

  end to end   database change -> each client has the new snapshot (includes the hub's
               0.5 s sampling interval: the bound on how stale a bar can be)
  fan-out      the hub publishes a snapshot -> each client has it
  server CPU   the child process's CPU time over the wall time, while changes stream and
               while 50 clients sit idle

    .venv/bin/python bench/bench_sse_fanout.py [--clients 50] [--changes 40] [--contacts 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sqlite3
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp

from televox_pbx.clock import SystemClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.settings import Settings
from televox_pbx.store import Store
from televox_pbx.store.campaigns import upsert_campaign
from televox_pbx.web.context import ApiContext
from televox_pbx.web.server import build_app
from televox_pbx.web.ui.progress import HUB
from televox_pbx.web.ui.sessions import COOKIE, SESSIONS


def _campaign() -> Campaign:
    return Campaign.model_validate({
        "name": "bench", "caller_id": "+15550100000", "trunk": "trunk",
        "agent": {"persona_name": "Ava", "business": "Acme", "goal": "demo",
                  "opening_line": "Hi, I'm Ava, an AI assistant calling for Acme."}})


async def _prepare(db: Path, contacts: int) -> None:
    store = await Store.open(db)
    cid = await upsert_campaign(store, _campaign())
    await store.close()
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT INTO contacts(campaign_id, name, status) VALUES (?, ?, ?)",
                         ((cid, f"c{i}", "pending") for i in range(contacts)))


def _server(db: str, conn: Connection) -> None:
    async def serve() -> None:
        store = await Store.open(db)
        ctx = ApiContext(store, Settings(), SystemClock())
        app = build_app(ctx, {})
        published: list[tuple[float, int]] = []
        app[HUB].on_publish = lambda m: published.append(
            (time.time(), json.loads(m)["campaigns"][0]["done"]))
        runner = aiohttp.web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = int(runner.addresses[0][1])
        conn.send((port, app[SESSIONS].create("ui:bench").id))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "stop"
        conn.send(published)
        await runner.cleanup()
        await store.close()

    asyncio.run(serve())


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    def __init__(self) -> None:
        self.seen: dict[int, float] = {}  # done count -> when this client first had it
        self.done = -1


async def _listen(session: aiohttp.ClientSession, url: str, client: Client) -> None:
    async with session.get(url) as resp:
        event = ""
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "progress":
                done = int(json.loads(line[5:])["campaigns"][0]["done"])
                client.seen.setdefault(done, time.time())
                client.done = done


async def _until(check: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("clients did not catch up")
        await asyncio.sleep(0.002)


def _pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[q - 1] if len(xs) > 1 else xs[0]  # type: ignore


async def _bench(n_clients: int, changes: int, idle_s: float, contacts: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        await _prepare(db, contacts)
        parent, child = mp.Pipe()
        proc = mp.get_context("spawn").Process(target=_server, args=(str(db), child))
        proc.start()
        port, sid = parent.recv()
        jar = aiohttp.CookieJar(unsafe=True)
        jar.update_cookies({COOKIE: sid}, aiohttp.client.URL(f"http://127.0.0.1:{port}/"))
        connector = aiohttp.TCPConnector(limit=0)
        clients = [Client() for _ in range(n_clients)]
        async with aiohttp.ClientSession(cookie_jar=jar, connector=connector,
                                         timeout=aiohttp.ClientTimeout(total=None)) as s:
            url = f"http://127.0.0.1:{port}/ui/progress"
            tasks = [asyncio.create_task(_listen(s, url, c)) for c in clients]
            await _until(lambda: all(c.done == 0 for c in clients))
            cpu0, wall0 = _cpu_s(proc.pid or 0), time.monotonic()
            await asyncio.sleep(idle_s)
            idle_cpu = (_cpu_s(proc.pid or 0) - cpu0) / (time.monotonic() - wall0)
            writer = sqlite3.connect(db, isolation_level=None)
            ids = [r[0] for r in writer.execute("SELECT id FROM contacts ORDER BY id")]
            changed: dict[int, float] = {}
            cpu0, wall0 = _cpu_s(proc.pid or 0), time.monotonic()
            for k in range(1, changes + 1):
                writer.execute("UPDATE contacts SET status = 'completed' WHERE id = ?",
                               (ids[k - 1],))
                changed[k] = time.time()
                await _until(lambda k=k: all(c.done >= k for c in clients))  # type: ignore
                await asyncio.sleep((k * 37 % 500) / 1000)  # any phase of the hub's 0.5 s
            busy_cpu = (_cpu_s(proc.pid or 0) - cpu0) / (time.monotonic() - wall0)
            writer.close()
            parent.send("stop")
            published = {done: at for at, done in parent.recv()}
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        proc.join(15)
    e2e = [(c.seen[k] - changed[k]) * 1000 for c in clients for k in changed if k in c.seen]
    fan = [(c.seen[k] - published[k]) * 1000 for c in clients for k in changed
           if k in c.seen and k in published]
    print(f"{n_clients} SSE clients, {contacts} contacts, {changes} changes, "
          f"{len(e2e)} deliveries")
    print(f"end to end (DB change -> client): p50 {_pct(e2e, 50):7.1f} ms   "
          f"p95 {_pct(e2e, 95):7.1f} ms   max {max(e2e):7.1f} ms")
    print(f"fan-out (publish -> client):       p50 {_pct(fan, 50):7.1f} ms   "
          f"p95 {_pct(fan, 95):7.1f} ms   max {max(fan):7.1f} ms")
    print(f"server CPU: {busy_cpu * 100:5.1f}% of a core while streaming, "
          f"{idle_cpu * 100:5.1f}% with {n_clients} idle clients")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--changes", type=int, default=40)
    ap.add_argument("--idle-s", type=float, default=5.0)
    ap.add_argument("--contacts", type=int, default=200, help="in the one campaign")
    args = ap.parse_args()
    asyncio.run(_bench(args.clients, args.changes, args.idle_s, args.contacts))


if __name__ == "__main__":
    main()
