"""Issue 19 items 1-3 on a cluster: due callbacks, run-now and call-now are counted in the
campaign's shared token bucket and max_concurrent; a node without its lease claims nothing at
all; the voice capacity and max_concurrent_calls count this box's live calls, not the
cluster's (two nodes on the throw-away PostgreSQL; never skipped)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from dialer_support import FakeOriginator, Sent, make_campaign, seed
from pg_support import PgServer, fresh_database

from televox_pbx.campaigns.cluster_dial import ClusterDial
from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import CallOutcome, CallStatus
from televox_pbx.store import Store
from televox_pbx.store.campaigns import set_run_now
from televox_pbx.store.nodes import rejoin_node, renew_lease, start_node
from televox_pbx.store.timefmt import iso

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
LEASE_S = 3600.0
WINDOW = {"start": "08:00", "end": "21:00",
          "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


def campaign(per_minute: float, max_concurrent: int) -> Campaign:
    return make_campaign(
        calling_window=WINDOW,
        timezone_policy={"source": "fixed", "fixed_zone": "America/New_York"},
        pacing={"calls_per_minute": per_minute, "max_concurrent": max_concurrent},
        retry={"retry_interval_minutes": 0, "max_attempts_per_phone": 1})


def number(i: int) -> str:
    return f"+1212555{i:04d}"


@pytest.fixture
async def stores(pg_server: PgServer) -> AsyncIterator[list[Store]]:
    """Two nodes (two connections) on one database, each with its node identity. Leases
    run on the database's real clock: an hour long, so a slow CI box never sees one lapse."""
    url = fresh_database(pg_server, migrated=True)
    out = [await Store.open(url) for _ in range(2)]
    for i, s in enumerate(out):
        s.node = await start_node(s, f"box-{i}", f"10.0.0.{i}:5038", LEASE_S)
    yield out
    for s in out:
        await s.close()


def dialer(store: Store, clock: FakeClock, capacity: int | None = None,
           max_concurrent_global: int = 10) -> tuple[Dialer, list[Sent]]:
    """A node's dialer and what it sent."""
    async def db_clock() -> datetime:  # the database's clock, moved with the test's
        return clock.now()
    orig = FakeOriginator(clock)
    return Dialer(store, orig, clock, cluster=ClusterDial(store, db_clock=db_clock),
                  capacity=capacity, max_concurrent_global=max_concurrent_global), orig.sent


async def book_callback(store: Store, contact_id: int, due: datetime) -> None:
    await store.execute("UPDATE contacts SET status = 'callback' WHERE id = ?", (contact_id,))
    await store.execute("INSERT INTO callbacks(contact_id, due_at) VALUES (?, ?)",
                        (contact_id, iso(due)))


async def tokens(store: Store) -> float:
    row = await store.fetchone("SELECT tokens FROM campaign_pacing")
    assert row is not None
    return float(row["tokens"])


async def live(store: Store) -> int:
    row = await store.fetchone("SELECT COUNT(*) AS n FROM call_attempts WHERE status IN"
                               " ('intent','originated','ringing','answered')")
    return int(row["n"]) if row else 0


async def test_a_callback_takes_a_shared_token_and_a_line_of_max_concurrent(
        stores: list[Store]) -> None:
    clock = FakeClock(START)
    await seed(stores[0], campaign(per_minute=6, max_concurrent=2),
               [[number(i)] for i in range(3)])
    await book_callback(stores[0], 1, START)
    (a, sent_a), (b, sent_b) = dialer(stores[0], clock), dialer(stores[1], clock)
    await a.tick()
    assert [s.req.phone for s in sent_a] == [number(0)]  # the due callback, first
    await b.tick()  # B's own pacer is ready, but the campaign's token is spent
    assert sent_b == [] and await tokens(stores[0]) < 1
    await clock.advance(10)  # 6 a minute: one token per 10 s, over both nodes
    await b.tick()
    assert [s.req.phone for s in sent_b] == [number(1)]
    await book_callback(stores[1], 3, clock.now())
    await clock.advance(10)
    await a.tick()  # a token again, but both lines of max_concurrent 2 are live
    assert len(sent_a) == 1 and await live(stores[0]) == 2
    row = await stores[0].fetchone("SELECT status FROM callbacks WHERE contact_id = 3")
    assert row is not None and row["status"] == "pending"
    rows = await stores[0].fetchall("SELECT node_id FROM call_attempts ORDER BY created_at")
    assert [r["node_id"] for r in rows] == ["box-0", "box-1"]
    row = await stores[0].fetchone("SELECT status, attempt_id FROM callbacks"
                                   " WHERE contact_id = 1")
    assert row is not None and row["status"] == "dialing"
    assert row["attempt_id"] == sent_a[0].req.call_id


async def test_run_now_skips_the_wait_but_its_calls_are_counted_on_every_node(
        stores: list[Store]) -> None:
    clock = FakeClock(START)
    cid = await seed(stores[0], campaign(per_minute=6, max_concurrent=3),
                     [[number(i)] for i in range(6)])
    (a, sent_a), (b, sent_b) = dialer(stores[0], clock), dialer(stores[1], clock)
    await a.tick()
    await set_run_now(stores[0], cid, True)
    await a.tick()  # run-now: up to max_concurrent at once, the bucket goes into debt
    assert len(sent_a) == 3 and await tokens(stores[0]) == pytest.approx(-2.0)
    await b.tick()
    assert sent_b == []  # full: max_concurrent counts A's calls
    for s in sent_a:
        await a.on_outcome(CallOutcome(s.req.call_id, CallStatus.BUSY))
    for _ in range(2):  # the debt is paid back at the campaign's pace, on B too
        await clock.advance(10)
        await b.tick()
        assert sent_b == []
    await clock.advance(10)
    await b.tick()
    assert len(sent_b) == 1
    row = await stores[0].fetchone("SELECT run_now_requested FROM campaigns")
    assert row is not None and not row["run_now_requested"]


async def test_a_node_without_its_lease_claims_nothing_at_all_until_renewed(
        stores: list[Store]) -> None:
    clock = FakeClock(START)
    cid = await seed(stores[0], campaign(per_minute=600, max_concurrent=3),
                     [[number(i)] for i in range(4)])
    await book_callback(stores[0], 1, START)
    await set_run_now(stores[0], cid, True)
    await stores[1].execute("UPDATE nodes SET lease_until = lease_until - ?"
                            " WHERE node_id = 'box-0'", (2 * LEASE_S,))  # given up for dead
    a, sent_a = dialer(stores[0], clock)
    report = await a.tick()
    got = await a.call_now(3)
    assert sent_a == [] and report.originated == [] and await live(stores[0]) == 0
    assert got.code == "not_ready" and "lease" in got.reason
    row = await stores[0].fetchone("SELECT run_now_requested FROM campaigns")
    assert row is not None and row["run_now_requested"]  # kept for when it is back
    assert stores[0].node is not None
    assert not await renew_lease(stores[0], stores[0].node, LEASE_S)  # a lapsed life ...
    stores[0].node = await rejoin_node(stores[0], stores[0].node, LEASE_S)  # ... the next
    await a.tick()
    assert [s.req.phone for s in sent_a][:1] == [number(0)]  # the callback, then run-now
    assert len(sent_a) == 3
    # A newer start of box-0 elsewhere supersedes this one for good.
    await start_node(stores[1], "box-0", "10.0.0.9:5038", LEASE_S)
    assert (await a.call_now(4)).code == "not_ready"


async def test_call_now_is_counted_in_max_concurrent_over_all_nodes(
        stores: list[Store]) -> None:
    clock = FakeClock(START)
    await seed(stores[0], campaign(per_minute=600, max_concurrent=1),
               [[number(i)] for i in range(2)])
    (a, sent_a), (b, _) = dialer(stores[0], clock), dialer(stores[1], clock)
    assert (await b.call_now(1)).code == "originated"
    got = await a.call_now(2)
    assert got.code == "capacity" and sent_a == []


async def test_capacity_and_the_global_cap_count_this_boxs_calls_only(
        stores: list[Store]) -> None:
    clock = FakeClock(START)
    await seed(stores[0], campaign(per_minute=600, max_concurrent=20),
               [[number(i)] for i in range(12)])
    b, sent_b = dialer(stores[1], clock)
    for _ in range(4):  # B has four calls live on its own box
        await b.tick()
        await clock.advance(1)
    assert len(sent_b) == 4
    a, sent_a = dialer(stores[0], clock, capacity=2)
    capped, sent_c = dialer(stores[0], clock, max_concurrent_global=3)
    for _ in range(4):
        await a.tick()
        await clock.advance(1)
    assert len(sent_a) == 2  # its own two conversations; B's four do not count
    assert (await a.call_now(12)).code == "capacity"
    for s in sent_a:
        await a.on_outcome(CallOutcome(s.req.call_id, CallStatus.BUSY))
    for _ in range(5):
        await capped.tick()
        await clock.advance(1)
    assert len(sent_c) == 3  # max_concurrent_calls: this box's three, not 4 + 3


async def test_two_nodes_calling_one_contact_at_once_dial_it_once(
        stores: list[Store]) -> None:
    clock = FakeClock(START)
    await seed(stores[0], campaign(per_minute=600, max_concurrent=5), [[number(1)]])
    (a, sent_a), (b, sent_b) = dialer(stores[0], clock), dialer(stores[1], clock)
    got = await asyncio.gather(a.call_now(1), b.call_now(1))
    assert sorted(r.code for r in got) == ["in_call", "originated"]
    assert len(sent_a) + len(sent_b) == 1 and await live(stores[0]) == 1
