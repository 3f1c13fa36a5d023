"""Issue 19 item 2: claims from several nodes on one PostgreSQL (PostgreSQL only: the
throw-away server of tests/pg_support.py; a missing server fails, never skips)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dialer_support import add_dnc, make_campaign, seed
from pg_support import PgServer, fresh_database

from televox_pbx.store import Store, StoreError
from televox_pbx.store.attempts import record_inbound
from televox_pbx.store.cluster_claim import Claimed, NoClaim, Pacing, claim_many, claim_next
from televox_pbx.store.nodes import start_node

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
LIVE = "('intent','originated','ringing','answered')"
_ids = itertools.count(1)


def new_id() -> str:
    return f"call-{next(_ids)}"


def number(i: int) -> str:
    return f"+1212555{i:04d}"


@pytest.fixture
async def nodes(pg_server: PgServer) -> AsyncIterator[list[Store]]:
    """Four nodes: four stores (connections) on one database."""
    url = fresh_database(pg_server, migrated=True)
    stores = [await Store.open(url) for _ in range(4)]
    yield stores
    for s in stores:
        await s.close()


async def drain(node: Store, campaign_id: int, pacing: Pacing, now: datetime,
                out: list[Claimed], want: int = 1) -> NoClaim:
    """Claims until refused: one at a time (`want` 1, claim_next) or up to `want` per
    statement (claim_many, a node with several free slots)."""
    while True:
        got: Claimed | list[Claimed] | NoClaim
        if want == 1:
            got = await claim_next(node, campaign_id, 1, pacing, now, new_id)
        else:
            got = await claim_many(node, campaign_id, 1, pacing, now, new_id, want)
        if isinstance(got, NoClaim):
            return got
        out.extend(got if isinstance(got, list) else [got])
        await asyncio.sleep(0)  # let the other nodes in between


WANTS = pytest.mark.parametrize("want", [1, 3], ids=["one_by_one", "three_at_once"])


async def live_per_number(store: Store) -> dict[str, int]:
    rows = await store.fetchall(f"SELECT phone, COUNT(*) AS n FROM call_attempts"
                                f" WHERE status IN {LIVE} GROUP BY phone")
    return {str(r["phone"]): int(r["n"]) for r in rows}


@WANTS
async def test_four_nodes_keep_max_concurrent_dnc_and_one_live_call_per_number(
        nodes: list[Store], want: int) -> None:
    first = nodes[0]
    cid = await seed(first, make_campaign(name="a"), [[number(i)] for i in range(40)])
    await add_dnc(first, number(5))
    await add_dnc(first, number(7))
    # The first contact is talking to us: whichever node's pick holds it tries it first, so
    # it is always met, backed off, and the claim goes on to the next (a later contact could
    # go untried before max_concurrent is reached, and the backoff check below would flake).
    assert await record_inbound(first, "in-1", number(0), NOW)
    claimed: list[Claimed] = []
    pacing = Pacing(calls_per_minute=600, max_concurrent=12, burst=100)
    ends = await asyncio.gather(*(drain(n, cid, pacing, NOW, claimed, want) for n in nodes))
    assert {e.reason for e in ends} == {"full"}
    assert len(claimed) == 12
    assert len({c.candidate.contact_id for c in claimed}) == 12  # no contact twice
    phones = {c.candidate.e164 for c in claimed}
    assert not phones & {number(5), number(7), number(0)}
    assert all(n == 1 for n in (await live_per_number(first)).values())
    # The contact whose number was live elsewhere waits, still pending, for the backoff.
    row = await first.fetchone(
        "SELECT c.status, c.next_eligible_at FROM contacts c JOIN contact_phones p"
        " ON p.contact_id = c.id WHERE p.e164 = ?", (number(0),))
    assert row is not None and row["status"] == "pending"
    assert row["next_eligible_at"] == "2026-01-05T15:01:00.000Z"


@WANTS
async def test_the_token_bucket_paces_all_nodes_together(nodes: list[Store],
                                                         want: int) -> None:
    # Enough contacts that four nodes' picks (up to 6 each in batches of 3) never lock
    # them all: a node finding every due contact locked by the others says `empty`.
    cid = await seed(nodes[0], make_campaign(name="a"), [[number(i)] for i in range(40)])
    pacing = Pacing(calls_per_minute=12, max_concurrent=100, burst=3)  # one per 5 s
    claimed: list[Claimed] = []

    async def round_at(at: datetime) -> set[str]:
        ends = await asyncio.gather(*(drain(n, cid, pacing, at, claimed, want)
                                      for n in nodes))
        return {e.reason for e in ends}

    assert await round_at(NOW) == {"paced"}
    assert len(claimed) == 3  # the burst, not 3 per node
    assert await round_at(NOW + timedelta(seconds=10)) == {"paced"}
    assert len(claimed) == 5  # 10 s at 12 a minute: 2 more
    assert await round_at(NOW + timedelta(seconds=12)) == {"paced"}
    assert len(claimed) == 5


@WANTS
async def test_two_campaigns_sharing_numbers_never_dial_one_twice(
        nodes: list[Store], want: int) -> None:
    shared = [[number(i)] for i in range(15)]
    a = await seed(nodes[0], make_campaign(name="a"), shared)
    b = await seed(nodes[0], make_campaign(name="b"), shared)
    pacing = Pacing(calls_per_minute=600, max_concurrent=100, burst=100)
    claimed: list[Claimed] = []
    jobs: list[Any] = [drain(n, cid, pacing, NOW, claimed, want)
                       for n, cid in zip(nodes, (a, b, a, b), strict=True)]
    await asyncio.gather(*jobs)
    assert sorted(c.candidate.e164 or "" for c in claimed) == sorted(p[0] for p in shared)
    assert all(n == 1 for n in (await live_per_number(nodes[0])).values())


async def test_claim_next_refuses_sqlite(store: Store) -> None:
    with pytest.raises(StoreError, match="PostgreSQL"):
        await claim_next(store, 1, 1, Pacing(10, 2), NOW, new_id)


async def test_only_a_node_holding_its_lease_claims(nodes: list[Store]) -> None:
    """The lease is checked on the database's clock, in the claim's own transaction."""
    cid = await seed(nodes[0], make_campaign(name="a"), [[number(i)] for i in range(3)])
    pacing = Pacing(calls_per_minute=600, max_concurrent=10, burst=10)
    lapsed, holder = nodes[0], nodes[1]
    lapsed.node = await start_node(lapsed, "lapsed", "127.0.0.1:5038", lease_s=-1.0)
    holder.node = await start_node(holder, "holder", "127.0.0.1:5039", lease_s=60.0)
    assert await claim_next(lapsed, cid, 1, pacing, None, new_id) == NoClaim("no_lease")
    got = await claim_next(holder, cid, 1, pacing, None, new_id)
    assert isinstance(got, Claimed)
    row = await holder.fetchone("SELECT node_id, node_epoch, status FROM call_attempts")
    assert row is not None and (row["node_id"], row["status"]) == ("holder", "intent")


async def test_a_claim_is_one_statement_and_an_empty_queue_takes_no_pacing_lock(
        nodes: list[Store], monkeypatch: pytest.MonkeyPatch) -> None:
    """One round trip per claim (the pick and televox_take in one statement, its own
    transaction: no BEGIN, no COMMIT); with nothing to pick it never queues for the
    campaign's pacing row that every node claiming for it shares."""
    from televox_pbx.store.pg import PgConn
    cid = await seed(nodes[0], make_campaign(name="a"), [[number(1)]])
    pacing = Pacing(calls_per_minute=600, max_concurrent=10, burst=10)
    sent: list[str] = []
    run_now = PgConn._run_now

    async def counted(self: PgConn, sql: str, params: Any) -> Any:
        sent.append(sql)
        return await run_now(self, sql, params)
    monkeypatch.setattr(PgConn, "_run_now", counted)
    assert isinstance(await claim_next(nodes[0], cid, 1, pacing, None, new_id), Claimed)
    assert len(sent) == 1 and "televox_take_many" in sent[0]
    async with nodes[1].transaction() as conn:  # another node holds the pacing row
        await conn.execute("SELECT 1 FROM campaign_pacing WHERE campaign_id = ? FOR UPDATE",
                           (cid,))
        await nodes[0].execute("SET lock_timeout = '100ms'")  # a wait would fail the claim
        assert await claim_next(nodes[0], cid, 1, pacing, None, new_id) == NoClaim("empty")


async def test_a_batch_takes_what_one_by_one_claims_would_and_no_more(
        nodes: list[Store]) -> None:
    """claim_many: the k-th claimed contact gets the k-th id, in the claim order; a number
    live elsewhere is backed off inside the batch and the next contact taken instead; the
    batch stops at the bucket's tokens and at max_concurrent, as single claims would."""
    node = nodes[0]
    cid = await seed(node, make_campaign(name="a"), [[number(i)] for i in range(10)])
    assert await record_inbound(node, "in-1", number(1), NOW)  # the 2nd contact is busy
    ids = iter(["x1", "x2", "x3", "x4", "x5"])
    got = await claim_many(node, cid, 1, Pacing(600, max_concurrent=100, burst=3), NOW,
                           lambda: next(ids), 5)
    assert isinstance(got, list)
    assert [c.call_id for c in got] == ["x1", "x2", "x3"]  # 3 tokens in the bucket
    assert [c.candidate.e164 for c in got] == [number(0), number(2), number(3)]
    rows = await node.fetchall("SELECT id, phone FROM call_attempts WHERE campaign_id = ?"
                               " ORDER BY id", (cid,))
    assert [(r["id"], r["phone"]) for r in rows] == [
        ("x1", number(0)), ("x2", number(2)), ("x3", number(3))]
    pacing = Pacing(600, max_concurrent=5, burst=100)
    # The bucket is empty now; a minute later it is full, but only 2 places are left.
    later = NOW + timedelta(minutes=1)
    got = await claim_many(node, cid, 1, pacing, later, new_id, 5)
    assert isinstance(got, list) and len(got) == 2
    assert await claim_many(node, cid, 1, pacing, later, new_id, 5) == NoClaim("full")
    assert all(n == 1 for n in (await live_per_number(node)).values())


async def test_a_batch_overdraw_stops_at_max_concurrent_in_debt(nodes: list[Store]) -> None:
    """Run-now's overdraw in one statement: the bucket may go into debt down to
    -max_concurrent, as single overdrawn claims would, and max_concurrent still holds."""
    node = nodes[0]
    cid = await seed(node, make_campaign(name="a"), [[number(i)] for i in range(10)])
    pacing = Pacing(6, max_concurrent=4, burst=1)
    got = await claim_many(node, cid, 1, pacing, NOW, new_id, 10, overdraw=True)
    assert isinstance(got, list) and len(got) == 4
    row = await node.fetchone("SELECT tokens FROM campaign_pacing WHERE campaign_id = ?",
                              (cid,))
    assert row is not None and float(row["tokens"]) == -3.0
    assert await claim_many(node, cid, 1, pacing, NOW, new_id, 10,
                            overdraw=True) == NoClaim("full")
