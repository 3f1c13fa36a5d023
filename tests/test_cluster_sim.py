"""Issue 19's cluster test: three real daemons, each with its own PBX simulator, share one
throw-away PostgreSQL. Two campaigns share numbers across TELEVOX_CLUSTER_CONTACTS contacts
(5,000 by default, as issue 19 asks; on a 2-core box shared with other work, load about
11, 5,000 took 6.3 min with limits that did not bind). Alpha's
max_concurrent and beta's calls per minute are set where they bind. Mid-run some numbers
go on the DNC list; one node is SIGKILLed with calls in flight and started again later
(its start-up recovery adopts its attempts). Some contacts live where the window is closed
all along. Afterwards, from the database alone:

- no number ever had two live attempts (each attempt's live interval, from the audit);
- every contact is terminal or scheduled, none left behind a phone put on the DNC list;
- each campaign's max_concurrent (live intervals) and calls per minute (the attempts'
  start times, any 60 s) were never exceeded, counted over all nodes;
- nothing reached the PBX outside its window, nor after its number's DNC entry.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from cluster_support import (
    AUDIT_SQL,
    Node,
    dialled_after_dnc,
    make_node,
    max_live,
    most_in_a_minute,
    now_utc,
    one_live_per_number,
    outside_window,
    read_outcome,
)
from invariant_model import CampaignSpec
from pg_support import PgServer, fresh_database

from televox_pbx.campaigns.controls import Action, apply
from televox_pbx.config.campaign import Campaign
from televox_pbx.store import Store
from televox_pbx.store.campaigns import upsert_campaign

CONTACTS = int(os.environ.get("TELEVOX_CLUSTER_CONTACTS", "5000"))
NODES = ("n1", "n2", "n3")
# Alpha (two thirds of the contacts) is held by its max_concurrent, beta by its pace.
PACE = {"alpha": {"calls_per_minute": 600, "max_concurrent": 12},
        "beta": {"calls_per_minute": 300, "max_concurrent": 25}}
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# Two zones 13-14 hours apart: whichever is in its day hosts the open numbers.
ZONES = {"America/New_York": "+1212555{:04d}", "Asia/Tokyo": "+8135550{:04d}"}
LIMIT_S = 1200.0  # the whole run, real seconds: a stuck cluster fails, never hangs CI


def open_zone(now: datetime) -> tuple[str, str, str, str]:
    """(open zone, its number pattern, closed zone's pattern, window) where the open zone
    is between 03:00 and 21:00, the window its local time +-2 h."""
    for zone, pattern in ZONES.items():
        local = now.astimezone(ZoneInfo(zone))
        if 3 <= local.hour < 21:
            other = next(p for z, p in ZONES.items() if z != zone)
            start, end = local - timedelta(hours=2), local + timedelta(hours=2)
            return zone, pattern, other, f"{start:%H:%M}-{end:%H:%M}"
    raise AssertionError("no zone in its day")  # 13-14 h apart: one always is


def campaign(name: str, window: str) -> dict[str, Any]:
    start, end = window.split("-")
    return {"name": name, "caller_id": "+15550100000", "trunk": "trunk", "amd": False,
            "agent": {"persona_name": "Ava", "business": "Acme", "goal": "book a demo",
                      "opening_line": "Hi, I'm Ava, an AI assistant calling for Acme."},
            "calling_window": {"legal_override": True, "start": start, "end": end,
                               "weekdays": EVERY_DAY},
            "timezone_policy": {"source": "number"}, "pacing": PACE[name],
            "retry": {"retry_interval_minutes": 0, "max_attempts_per_phone": 1},
            "ring_timeout_s": 5}


def plan(n: int, pattern: str, closed: str) -> tuple[list[str], list[str], set[str]]:
    """Each campaign's phones in dial order (alpha two thirds of `n`, beta one third, 40%
    of beta's numbers shared with alpha, the two meeting from opposite ends); one number
    in 50 is in the closed zone."""
    na, nb = n - n // 3, n // 3
    shared = nb * 2 // 5
    phones = [closed.format(i) if i % 50 == 49 else pattern.format(i)
              for i in range(na + nb - shared)]
    a = phones[:na]
    b = phones[:shared][::-1] + phones[na:]
    return a, b, {p for p in phones if p.startswith(closed[:6])}


async def seed(url: str, specs: list[dict[str, Any]], lists: list[list[str]]) -> None:
    store = await Store.open(url)
    try:
        for spec, phones in zip(specs, lists, strict=True):
            cfg = Campaign.model_validate(spec)
            cid = await upsert_campaign(store, cfg)
            await store.execute("INSERT INTO contacts(id, campaign_id, name) SELECT"
                                " g + ?, ?, 'Lead' FROM generate_series(1, ?) g",
                                (cid * 1_000_000, cid, len(phones)))
            conn: asyncpg.Connection = await asyncpg.connect(url)
            try:
                await conn.copy_records_to_table(
                    "contact_phones", columns=["contact_id", "campaign_id", "position", "e164"],
                    records=[(cid * 1_000_000 + i + 1, cid, 1, p)
                             for i, p in enumerate(phones)])
            finally:
                await conn.close()
            await apply(store, cfg.name, Action.START, now_utc())
    finally:
        await store.close()


async def progress(conn: asyncpg.Connection) -> tuple[int, int, int]:
    """(attempts, live attempts, contacts still to dial now)."""
    row = await conn.fetchrow(
        "SELECT (SELECT COUNT(*) FROM call_attempts),"
        " (SELECT COUNT(*) FROM call_attempts WHERE status IN"
        "  ('intent','originated','ringing','answered')),"
        " (SELECT COUNT(*) FROM contacts c WHERE c.status IN ('calling','connected')"
        "  OR (c.status = 'pending' AND (c.next_eligible_at IS NULL"
        "      OR c.next_eligible_at <= to_char(now() AT TIME ZONE 'UTC',"
        "                                        'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))))")
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


async def until(conn: asyncpg.Connection, cond: Any, what: str, nodes: list[Node],
                deadline: float) -> tuple[int, int, int]:
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        got = await progress(conn)
        if await cond(got):
            return got
        for node in nodes:
            assert node.proc is None or node.proc.returncode in (None, -9), \
                f"{node.name} exited {node.proc.returncode}:\n{node.log_tail()}"
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} ({await progress(conn)});\n"
                         + "\n".join(n.log_tail(1500) for n in nodes))


async def test_three_nodes_two_campaigns_one_killed(pg_server: PgServer) -> None:
    url = fresh_database(pg_server, migrated=True)
    _, pattern, closed, window = open_zone(now_utc())
    specs = [campaign("alpha", window), campaign("beta", window)]
    a, b, closed_phones = plan(CONTACTS, pattern, closed)
    conn = await asyncpg.connect(url)
    await conn.execute(AUDIT_SQL)
    await seed(url, specs, [a, b])
    # Calls ring 0.2 s and last 0.8 s once answered; one number in ten is busy.
    numbers = {p: {"behaviour": "busy"} for p in [*a, *b] if int(p[-2:]) % 10 == 3}
    scenario = {"default": {"behaviour": "answer", "ring_s": 0.2, "hangup_after_s": 0.8},
                "numbers": numbers, "timer_b_s": 1.0}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LIMIT_S
    dnc_done: dict[str, datetime] = {}
    with tempfile.TemporaryDirectory(prefix="televox-cluster-") as tmp:
        nodes = [make_node(Path(tmp), name, url, scenario) for name in NODES]
        try:
            for node in nodes:
                await node.start()
            total = len(a) + len(b)

            async def share(f: float) -> Any:
                async def cond(p: tuple[int, int, int]) -> bool:
                    return p[0] >= f * total
                return cond

            # A third of the way: numbers not yet dialled (and some being dialled) go on
            # the DNC list, one transaction; its commit time is when the insert returned.
            await until(conn, await share(0.3), "30% dialled", nodes, deadline)
            listed = sorted({*a[len(a) // 2::37], *b[len(b) // 3::41]} - closed_phones)
            await conn.executemany("INSERT INTO dnc(e164, workspace, reason) VALUES"
                                   " ($1, 'default', 'test') ON CONFLICT DO NOTHING",
                                   [(p,) for p in listed])
            dnc_done = dict.fromkeys(listed, now_utc())

            # Kill n2 while it has calls live, then let the others go on without it.
            victim = nodes[1]

            async def victim_busy(p: tuple[int, int, int]) -> bool:
                live = await conn.fetchval(
                    "SELECT COUNT(*) FROM call_attempts WHERE node_id = 'n2' AND status IN"
                    " ('originated','ringing','answered')")
                return p[0] >= 0.4 * total and int(live) >= 3
            await until(conn, victim_busy, "n2 busy at 40%", nodes, deadline)
            await victim.kill()
            killed_live = int(await conn.fetchval(
                "SELECT COUNT(*) FROM call_attempts WHERE node_id = 'n2' AND status IN"
                " ('intent','originated','ringing','answered')"))
            await until(conn, await share(0.5), "half dialled", nodes, deadline)
            await victim.start()

            async def done(p: tuple[int, int, int]) -> bool:
                return p[1] == 0 and p[2] == 0
            await until(conn, done, "the campaigns to finish", nodes, deadline)
            codes = [await n.stop() for n in nodes]
            assert codes == [0, 0, 0], "\n".join(n.log_tail() for n in nodes)
            epochs = dict(await conn.fetch("SELECT node_id, epoch FROM nodes"))
        finally:
            for node in nodes:
                await node.stop()
            await conn.close()

    outcome, dnc_held = await read_outcome(url)
    rows = outcome.attempts
    judged = {s["name"]: CampaignSpec.from_config(s) for s in specs}
    problems = [*one_live_per_number(rows), *outside_window(rows, judged),
                *dialled_after_dnc(rows, dnc_done), *outcome.unsettled]
    assert not problems, f"{len(problems)} broken:\n" + "\n".join(problems[:40])
    # n2 restarted once (epoch 2), or was taken over by a survivor first (its epoch bumped:
    # the kill outlasted its lease; issue 19 item 4) and then restarted (epoch 3).
    assert epochs["n1"] == epochs["n3"] == 1 and epochs["n2"] in (2, 3), epochs
    assert killed_live >= 1  # the kill cut calls: the restart had something to recover
    peaks = {n: max_live([r for r in rows if r.campaign == n]) for n in judged}
    minutes = {n: most_in_a_minute([r.created for r in rows if r.campaign == n])
               for n in judged}
    print(f"cluster: {len(a) + len(b)} contacts, {len(rows)} attempts,"
          f" {sum(1 for r in rows if r.originated)} dialled, killed with {killed_live} live,"
          f" peak live {peaks}, most in a minute {minutes}, DNC held {dnc_held},"
          f" contacts {dict(outcome.contacts)}")
    for name in judged:
        assert peaks[name] <= PACE[name]["max_concurrent"], (name, peaks)
        assert minutes[name] <= PACE[name]["calls_per_minute"] + 1, (name, minutes)
    # The closed zone's contacts were never dialled; they wait for their window.
    assert not [r for r in rows if r.phone in closed_phones and r.originated is not None]
    assert outcome.contacts["pending"] >= len(closed_phones)
    # Most contacts were really worked on, and none waits for ever behind a phone that went
    # on the DNC list (the claim skips it; campaigns/dnc_sweep.py moves it on).
    assert sum(1 for r in rows if r.originated is not None) >= 0.8 * (len(a) + len(b))
    assert dnc_held == 0
