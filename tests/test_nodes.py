"""Issue 19 items 3 and 2's fence: nodes, epochs, leases, and epoch-checked attempt writes
(each test on SQLite and on the throw-away PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dialer_support import make_campaign, seed

from televox_pbx.clock import FakeClock
from televox_pbx.config.settings import Settings
from televox_pbx.domain import CallOutcome, CallStatus
from televox_pbx.lease_keeper import LeaseKeeper, start_lease
from televox_pbx.store import Store
from televox_pbx.store.attempts import (
    Intent,
    claim,
    finish,
    get_attempt,
    mark_ended,
    mark_originated,
    mark_progress,
)
from televox_pbx.store.node_load import may_originate
from televox_pbx.store.node_takeover import expired_nodes, take_over
from televox_pbx.store.nodes import NodeIdentity, list_nodes, renew_lease, start_node
from televox_pbx.store.transcripts import CallRecord, save_call

pytestmark = pytest.mark.both_backends

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
PHONE = "+12125550100"


async def test_each_start_takes_the_next_epoch_and_a_live_lease(store: Store) -> None:
    a1 = await start_node(store, "box-a", "10.0.0.1:5038")
    b1 = await start_node(store, "box-b", "10.0.0.2:5038")
    a2 = await start_node(store, "box-a", "10.0.0.9:5038")
    assert (a1.epoch, b1.epoch, a2.epoch) == (1, 1, 2)
    rows = {r.node_id: r for r in await list_nodes(store)}
    assert rows["box-a"].ami_address == "10.0.0.9:5038" and rows["box-a"].epoch == 2
    assert rows["box-a"].alive and 5 < rows["box-a"].expires_in_s <= 12
    # The earlier life of box-a is a ghost: its renewals are refused.
    assert not await renew_lease(store, a1)
    assert await renew_lease(store, a2)
    await store.execute("UPDATE nodes SET lease_until = lease_until - 60 WHERE node_id = ?",
                        ("box-b",))
    rows = {r.node_id: r for r in await list_nodes(store)}
    assert not rows["box-b"].alive and rows["box-b"].expires_in_s < 0


async def test_attempts_carry_their_node_and_are_counted_in_flight(store: Store) -> None:
    cid = await seed(store, make_campaign(), [[PHONE]])
    store.node = await start_node(store, "box-a", "10.0.0.1:5038")
    await claim(store, Intent("c1", cid, 1, PHONE, 1, 1, "test"), NOW, "default")
    row = await store.fetchone("SELECT node_id, node_epoch FROM call_attempts WHERE id = ?",
                               ("c1",))
    assert row is not None and (row["node_id"], row["node_epoch"]) == ("box-a", 1)
    assert [(r.node_id, r.in_flight) for r in await list_nodes(store)] == [("box-a", 1)]


async def test_a_stale_epoch_cannot_overwrite_a_survivors_decision(store: Store) -> None:
    cid = await seed(store, make_campaign(), [[PHONE]])
    ghost = await start_node(store, "box-a", "10.0.0.1:5038")
    store.node = ghost
    await claim(store, Intent("c1", cid, 1, PHONE, 1, 1, "test"), NOW, "default")
    await mark_originated(store, "c1", NOW)
    # box-a is given up for dead; box-b took the attempt over (issue 19 item 4's job).
    survivor = await start_node(store, "box-b", "10.0.0.2:5038")
    await store.execute("UPDATE call_attempts SET node_id = ?, node_epoch = ? WHERE id = ?",
                        (survivor.node_id, survivor.epoch, "c1"))
    before = await get_attempt(store, "c1")
    # box-a comes back, still believing in its old life, and writes.
    end = CallOutcome("c1", CallStatus.COMPLETED, answered_at=NOW,
                      hangup_at=NOW + timedelta(seconds=30))
    await mark_progress(store, CallOutcome("c1", CallStatus.ANSWERED, answered_at=NOW))
    await mark_ended(store, end)
    async with store.transaction() as _:
        assert not await finish(store, end, turns=3, disposition="INTERESTED")
    await save_call(store, CallRecord("c1", disposition="OPT_OUT"))
    assert await get_attempt(store, "c1") == before
    # The owner's writes go through.
    store.node = survivor
    async with store.transaction() as _:
        assert await finish(store, end, turns=3, disposition="INTERESTED")
    done = await get_attempt(store, "c1")
    assert done is not None and done.status == "completed"


async def test_a_restart_adopts_its_own_live_attempts_but_not_taken_over_ones(
        store: Store) -> None:
    cid = await seed(store, make_campaign(), [[PHONE], ["+12125550101"]])
    store.node = await start_node(store, "box-a", "10.0.0.1:5038")
    await claim(store, Intent("c1", cid, 1, PHONE, 1, 1, "t"), NOW, "default")
    await claim(store, Intent("c2", cid, 2, "+12125550101", 1, 1, "t"), NOW, "default")
    await store.execute("UPDATE call_attempts SET node_id = 'box-b' WHERE id = 'c2'")
    store.node = await start_node(store, "box-a", "10.0.0.1:5038")
    rows = await store.fetchall("SELECT id, node_id, node_epoch FROM call_attempts ORDER BY id")
    assert [(r["id"], r["node_id"], r["node_epoch"]) for r in rows] == [
        ("c1", "box-a", 2), ("c2", "box-b", 1)]


async def test_the_lease_keeper_renews_until_superseded(store: Store) -> None:
    clock = FakeClock(NOW)
    keeper = LeaseKeeper(store, clock, "box-a", "10.0.0.1:5038")
    await keeper.start()
    assert store.node == NodeIdentity("box-a", 1) and keeper.held
    assert await keeper.renew_once()
    await start_node(store, "box-a", "10.0.0.1:5038")  # a second process with the same id
    assert not await keeper.renew_once()
    assert not keeper.held and keeper.superseded
    await keeper.run()  # returns at once: a superseded process stops for good
    assert store.node == NodeIdentity("box-a", 1) and keeper.rejoined == 0


async def test_the_daemon_names_its_node_and_its_asterisk(store: Store) -> None:
    settings = Settings.model_validate({"database": {"node_id": "box-a"},
                                        "ami": {"host": "pbx-1.lan", "port": 5039}})
    keeper = await start_lease(store, FakeClock(NOW), settings)
    assert keeper.held
    [row] = await list_nodes(store)
    assert (row.node_id, row.ami_address, row.epoch) == ("box-a", "pbx-1.lan:5039", 1)


async def test_a_node_registers_its_voice_capacity(store: Store) -> None:
    settings = Settings.model_validate({"database": {"node_id": "box-a"}})
    await start_lease(store, FakeClock(NOW), settings, capacity=4)
    await start_node(store, "box-b", "10.0.0.2:5038")  # no voice engines: nothing bounds it
    rows = {r.node_id: r.capacity for r in await list_nodes(store)}
    assert rows == {"box-a": 4, "box-b": None}
    await start_node(store, "box-a", "10.0.0.1:5038", capacity=2)  # restarted, fewer cores
    assert {r.node_id: r.capacity for r in await list_nodes(store)}["box-a"] == 2


async def lapse(store: Store, node: str) -> None:
    """The node's lease ran out a minute ago on the database's clock."""
    await store.execute("UPDATE nodes SET lease_until = lease_until - 60 WHERE node_id = ?",
                        (node,))


async def test_a_lapsed_lease_is_not_revived_but_joined_again_as_a_new_life(
        store: Store) -> None:
    """A long pause: the old life's attempts are adopted (settled by the dead-node rules),
    its unsent intent is never sent, and the node claims again without a restart."""
    cid = await seed(store, make_campaign(), [[PHONE], ["+12125550101"]])
    keeper = LeaseKeeper(store, FakeClock(NOW), "box-a", "10.0.0.1:5038")
    await keeper.start()
    await claim(store, Intent("old", cid, 1, PHONE, 1, 1, "t"), NOW, "default")
    assert await may_originate(store, "old")
    await lapse(store, "box-a")
    assert store.node is not None and not await renew_lease(store, store.node)
    assert await keeper.renew_once() and keeper.held and keeper.rejoined == 1
    assert store.node == NodeIdentity("box-a", 2)
    row = await store.fetchone("SELECT node_id, node_epoch, pbx_node, lost_at, status"
                               " FROM call_attempts WHERE id = 'old'")
    assert row is not None and row["status"] == "intent"
    assert (row["node_id"], row["node_epoch"], row["pbx_node"]) == ("box-a", 2, "box-a")
    assert row["lost_at"] is not None
    assert not await may_originate(store, "old")  # the new life never sends it
    # The new life claims and may send its own.
    await claim(store, Intent("new", cid, 2, "+12125550101", 1, 1, "t"), NOW, "default")
    assert await may_originate(store, "new")
    [me] = await list_nodes(store)
    assert me.alive and me.epoch == 2


async def test_a_node_taken_over_while_lapsed_joins_again_and_leaves_the_call(
        store: Store) -> None:
    cid = await seed(store, make_campaign(), [[PHONE]])
    keeper = LeaseKeeper(store, FakeClock(NOW), "box-a", "10.0.0.1:5038")
    await keeper.start()
    await claim(store, Intent("old", cid, 1, PHONE, 1, 1, "t"), NOW, "default")
    box_a = store.node
    survivor = await start_node(store, "box-b", "10.0.0.2:5038")
    await lapse(store, "box-a")
    [dead] = await expired_nodes(store, survivor)
    assert await take_over(store, survivor, dead) == 1
    store.node = box_a
    assert await keeper.renew_once() and store.node == NodeIdentity("box-a", 3)
    row = await store.fetchone("SELECT node_id, node_epoch FROM call_attempts")
    assert row is not None and (row["node_id"], row["node_epoch"]) == ("box-b", 1)
    assert not await may_originate(store, "old")
    rows = {r.node_id: r for r in await list_nodes(store)}
    assert rows["box-a"].alive and rows["box-a"].in_flight == 0
    assert await expired_nodes(store, survivor) == []


async def test_after_a_database_outage_longer_than_the_lease_it_joins_again(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(NOW)
    keeper = LeaseKeeper(store, clock, "box-a", "10.0.0.1:5038")
    await keeper.start()

    async def down(*_: object) -> bool:
        raise ConnectionError("the database is unreachable")
    monkeypatch.setattr("televox_pbx.lease_keeper.renew_lease", down)
    await clock.advance(keeper.lease_s)
    assert not await keeper.renew_once() and not keeper.held
    monkeypatch.undo()
    await lapse(store, "box-a")  # it answers again; the lease ran out meanwhile
    assert await keeper.renew_once() and keeper.held
    assert store.node == NodeIdentity("box-a", 2)
    assert await keeper.renew_once() and store.node == NodeIdentity("box-a", 2)
