"""Issue 19 item 4: a dead node's calls, taken over by one survivor and settled by the rules
T1, N1..N5 of campaigns/node_reconcile.py. On the throw-away PostgreSQL only (several nodes
share one database only there); each node is a Store of its own, as each daemon has."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from dialer_support import make_campaign, seed
from pg_support import PgServer, fresh_database

from televox_pbx.ami.remote import REMOTE_TIMEOUT_S, RemoteAmiProbe, Unreachable
from televox_pbx.campaigns.node_reconcile import NodeReconciler, node_reconciler
from televox_pbx.campaigns.outcomes import OutcomeApplier
from televox_pbx.clock import FakeClock
from televox_pbx.config.settings import AmiSettings, Settings
from televox_pbx.domain import CallOutcome, CallStatus
from televox_pbx.store import Store
from televox_pbx.store.attempts import (
    Intent,
    claim,
    close_stale_inbound,
    finish,
    get_attempt,
    has_live_attempt,
    mark_ended,
    mark_originated,
    mark_progress,
    record_inbound,
    unfinished_attempts,
)
from televox_pbx.store.node_takeover import expired_nodes, take_over
from televox_pbx.store.nodes import list_nodes, rejoin_node, renew_lease, start_node

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
A_AMI, B_AMI, C_AMI = "10.0.0.1:5038", "10.0.0.2:5038", "10.0.0.3:5038"
PHONES = [f"+1212555010{i}" for i in range(6)]


class Probes:
    """Each node's Asterisk, as the survivor sees it: the calls up there, or unreachable."""

    def __init__(self) -> None:
        self.live: dict[str, set[str]] = {}
        self.asked: list[str] = []

    def __call__(self, address: str) -> Probes.One:
        return Probes.One(self, address)

    class One:
        def __init__(self, probes: Probes, address: str) -> None:
            self.probes, self.address = probes, address

        async def live_call_ids(self) -> set[str]:
            self.probes.asked.append(self.address)
            if self.address not in self.probes.live:
                raise Unreachable("ConnectionRefusedError")
            return set(self.probes.live[self.address])


@pytest.fixture
async def url(pg_server: PgServer) -> str:
    return fresh_database(pg_server, migrated=True)


@pytest.fixture
async def nodes(url: str) -> AsyncIterator[tuple[Store, Store, Store]]:
    """Three daemons' stores on one database: box-a (about to die), box-b and box-c."""
    stores = [await Store.open(url, migrate=False) for _ in range(3)]
    for s, (name, ami) in zip(stores, [("box-a", A_AMI), ("box-b", B_AMI), ("box-c", C_AMI)],
                              strict=True):
        s.node = await start_node(s, name, ami)
    yield stores[0], stores[1], stores[2]
    for s in stores:
        await s.close()


async def dial(store: Store, cid: int, n: int, status: CallStatus | None = None,
               *, hangup: bool = False) -> str:
    """Contact n's call, made by `store`'s node, brought to `status`."""
    call_id = f"c{n}"
    await claim(store, Intent(call_id, cid, n, PHONES[n - 1], 1, 1, "t"), NOW, "default")
    await mark_originated(store, call_id, NOW)
    if status is not None:
        answered = NOW + timedelta(seconds=5) if status is CallStatus.ANSWERED else None
        await mark_progress(store, CallOutcome(call_id, status, answered_at=answered))
    if hangup:
        await mark_ended(store, CallOutcome(call_id, CallStatus.COMPLETED,
                                            answered_at=NOW + timedelta(seconds=5),
                                            hangup_at=NOW + timedelta(seconds=40)))
    return call_id


async def die(store: Store, node: str, ago_s: float = 30.0) -> None:
    """The node stopped renewing: its lease ran out `ago_s` ago (it started a while
    before that)."""
    await store.execute(
        "UPDATE nodes SET lease_until = CAST(EXTRACT(EPOCH FROM clock_timestamp())"
        " AS DOUBLE PRECISION) - ?, started_s = started_s - ? - 60 WHERE node_id = ?",
        (ago_s, ago_s, node))


def reconciler(store: Store, probes: Probes) -> NodeReconciler:
    clock = FakeClock(NOW)
    return NodeReconciler(store, clock, OutcomeApplier(store, clock, lambda r: r.config()),
                          probes)


async def contact_status(store: Store, contact_id: int) -> str:
    row = await store.fetchone("SELECT status FROM contacts WHERE id = ?", (contact_id,))
    assert row is not None
    return str(row["status"])


async def test_two_survivors_racing_exactly_one_takes_the_dead_node_over(
        nodes: tuple[Store, Store, Store]) -> None:
    a, b, c = nodes
    me_b, me_c = b.node, c.node
    assert me_b is not None and me_c is not None
    cid = await seed(a, make_campaign(), [[p] for p in PHONES[:3]])
    for n in (1, 2, 3):
        await dial(a, cid, n, CallStatus.RINGING)
    assert await expired_nodes(b, me_b) == []
    await die(a, "box-a")
    [dead_b] = await expired_nodes(b, me_b)
    [dead_c] = await expired_nodes(c, me_c)
    # On two connections at once: the row lock and the re-checked WHERE pick one.
    won = await asyncio.gather(take_over(b, me_b, dead_b), take_over(c, me_c, dead_c))
    assert sorted(won, key=lambda w: w is None) == [3, None]  # exactly one, moving all 3
    winner = b if won[0] is not None else c
    assert winner.node is not None
    row = await b.fetchone("SELECT epoch, taken_over_by FROM nodes WHERE node_id = 'box-a'")
    assert row is not None and (row["epoch"], row["taken_over_by"]) == (2, winner.node.node_id)
    rows = await b.fetchall("SELECT node_id, node_epoch, pbx_node, lost_at FROM call_attempts")
    assert {(r["node_id"], r["node_epoch"], r["pbx_node"]) for r in rows} == {
        (winner.node.node_id, winner.node.epoch, "box-a")}
    assert all(r["lost_at"] is not None for r in rows)
    # Once only: nobody sees it as a node to take over again, nor re-takes it.
    assert await expired_nodes(b, me_b) == []
    assert await take_over(c, me_c, dead_c) is None
    # The loser's whole pass finds nothing to do either.
    loser = c if winner is b else b
    report = await reconciler(loser, Probes()).pass_once()
    assert report.taken_over == {} and report.finalised == {}


async def test_reachable_asterisk_rules_n1_to_n4(nodes: tuple[Store, Store, Store]) -> None:
    a, b, _ = nodes
    cid = await seed(a, make_campaign(), [[p] for p in PHONES[:4]])
    up = await dial(a, cid, 1, CallStatus.ANSWERED)  # N1 then N3: still talking
    ended = await dial(a, cid, 2, CallStatus.ANSWERED, hangup=True)  # N2: Hangup stored
    cut = await dial(a, cid, 3, CallStatus.ANSWERED)  # N3: gone, no Hangup
    rang = await dial(a, cid, 4, CallStatus.RINGING)  # N4: never answered
    await die(a, "box-a")
    probes = Probes()
    probes.live[A_AMI] = {up.upper()}  # Asterisk reports ids in its own case
    report = await reconciler(b, probes).pass_once()

    assert report.taken_over == {"box-a": 4}
    assert report.kept == [up]
    assert report.finalised == {ended: "N2", cut: "N3", rang: "N4"}
    assert probes.asked == [A_AMI]  # the dead node's Asterisk, once per pass
    statuses = {i: (await get_attempt(b, i) or pytest.fail(i)).status
                for i in (up, ended, cut, rang)}
    assert statuses == {up: "answered", ended: "completed", cut: "dropped", rang: "failed"}
    assert await has_live_attempt(b, PHONES[0])  # kept: the number stays blocked
    assert await contact_status(b, 3) == "completed"  # reached: never redialed
    assert await contact_status(b, 4) != "completed"  # counted; the retry policy decides

    probes.live[A_AMI] = set()  # the call ended later on that Asterisk (nobody saw its Hangup)
    report = await reconciler(b, probes).pass_once()
    assert report.finalised == {up: "N3"} and report.taken_over == {}
    assert not await has_live_attempt(b, PHONES[0])
    assert await contact_status(b, 1) == "completed"


async def test_unreachable_asterisk_n5_waits_for_lease_and_max_duration(
        nodes: tuple[Store, Store, Store]) -> None:
    a, b, _ = nodes
    cid = await seed(a, make_campaign(ring_timeout_s=20,
                                      silence={"max_call_duration_s": 300}),
                     [[p] for p in PHONES[:3]])
    talking = await dial(a, cid, 1, CallStatus.ANSWERED)
    ringing = await dial(a, cid, 2, CallStatus.RINGING)
    sent = await dial(a, cid, 3)  # Originate accepted, nothing heard back
    await die(a, "box-a", ago_s=30)
    probes = Probes()  # box-a's Asterisk does not answer
    rec = reconciler(b, probes)
    report = await rec.pass_once()
    assert report.taken_over == {"box-a": 3} and report.unreachable == ["box-a"]
    assert sorted(report.waiting) == sorted([talking, ringing, sent])
    assert report.finalised == {}
    assert all([await has_live_attempt(b, p) for p in PHONES[:3]])  # still blocked
    # 20 s ring + 300 s call + 60 s margin = 380 s after the lease ran out: not yet at 370 s.
    await b.execute("UPDATE call_attempts SET lost_at = lost_at - 340")
    assert (await rec.pass_once()).finalised == {}
    await b.execute("UPDATE call_attempts SET lost_at = lost_at - 20")
    report = await rec.pass_once()
    assert report.finalised == {talking: "N5", ringing: "N5", sent: "N5"}
    for call_id, n in ((talking, 1), (ringing, 2), (sent, 3)):
        row = await get_attempt(b, call_id)
        assert row is not None and row.status == "dropped", row
        assert await contact_status(b, n) == "completed"  # may have been answered: skipped
        assert not await has_live_attempt(b, PHONES[n - 1])  # the number is free again


async def test_a_simulator_node_that_restarted_has_no_calls_left_n6(
        nodes: tuple[Store, Store, Store]) -> None:
    a, b, _ = nodes
    a.node = await start_node(a, "box-a", "simulator")  # the embedded PBX: unreachable
    cid = await seed(a, make_campaign(), [[p] for p in PHONES[:2]])
    talking = await dial(a, cid, 1, CallStatus.ANSWERED)
    ringing = await dial(a, cid, 2, CallStatus.RINGING)
    await die(a, "box-a")
    probes = Probes()
    rec = reconciler(b, probes)
    report = await rec.pass_once()
    assert report.unreachable == ["box-a"] and sorted(report.waiting) == [talking, ringing]
    await start_node(a, "box-a", "simulator")  # a new process: the old simulator died
    report = await rec.pass_once()
    assert report.finalised == {talking: "N3", ringing: "N4"}
    assert probes.asked == []  # a simulator is never asked over AMI
    assert await contact_status(b, 1) == "completed"


async def test_a_stored_hangup_applies_even_when_the_asterisk_is_unreachable(
        nodes: tuple[Store, Store, Store]) -> None:
    a, b, _ = nodes
    cid = await seed(a, make_campaign(), [[PHONES[0]]])
    ended = await dial(a, cid, 1, CallStatus.ANSWERED, hangup=True)
    await die(a, "box-a")
    report = await reconciler(b, Probes()).pass_once()
    assert report.finalised == {ended: "N2"}
    row = await get_attempt(b, ended)
    assert row is not None and row.status == "completed" and row.hangup_at is not None


async def test_the_dead_node_coming_back_is_fenced(nodes: tuple[Store, Store, Store]) -> None:
    a, b, _ = nodes
    cid = await seed(a, make_campaign(), [[p] for p in PHONES[:2]])
    call = await dial(a, cid, 1, CallStatus.ANSWERED)
    await die(a, "box-a")
    probes = Probes()
    probes.live[A_AMI] = {call}
    await reconciler(b, probes).pass_once()  # N1: adopted, still live
    before = await get_attempt(b, call)
    assert a.node is not None and not await renew_lease(a, a.node)  # its lease is gone
    # box-a wakes up believing in its old life and reports the end of the call.
    end = CallOutcome(call, CallStatus.COMPLETED, answered_at=NOW,
                      hangup_at=NOW + timedelta(seconds=30))
    await mark_progress(a, CallOutcome(call, CallStatus.ANSWERED, answered_at=NOW))
    await mark_ended(a, end)
    async with a.transaction():
        assert not await finish(a, end, turns=4, disposition="INTERESTED")
    assert not await OutcomeApplier(a, FakeClock(NOW), lambda r: r.config()).apply(
        end, 4, None)
    assert await get_attempt(b, call) == before
    assert await unfinished_attempts(a) == []  # nothing for its own recovery either
    # It restarts: a new epoch, the takeover forgotten, the adopted call not taken back.
    a.node = await start_node(a, "box-a", A_AMI)
    assert a.node.epoch == 3
    assert await unfinished_attempts(a) == []
    row = await a.fetchone("SELECT n.node_id, n.taken_over_by FROM nodes n JOIN call_attempts c"
                           " ON c.pbx_node = n.node_id WHERE c.id = ?", (call,))
    assert row is not None and (row["node_id"], row["taken_over_by"]) == ("box-a", None)
    # The survivor's own recovery (its Asterisk) leaves the adopted call alone; its
    # reconciler still asks box-a's Asterisk, which ended the call meanwhile.
    assert await unfinished_attempts(b) == []
    probes.live[A_AMI] = set()
    assert (await reconciler(b, probes).pass_once()).finalised == {call: "N3"}
    listed = {r.node_id: r for r in await list_nodes(b)}
    assert listed["box-a"].alive and listed["box-b"].in_flight == 0


async def test_a_survivor_without_its_own_lease_takes_nothing_over(
        nodes: tuple[Store, Store, Store]) -> None:
    a, b, c = nodes
    cid = await seed(a, make_campaign(), [[PHONES[0]]])
    await dial(a, cid, 1, CallStatus.RINGING)
    await die(a, "box-a")
    await die(b, "box-b", ago_s=1)  # box-b is itself presumed dead: a ghost
    report = await reconciler(b, Probes()).pass_once()
    assert report.taken_over == {}
    report = await reconciler(c, Probes()).pass_once()  # box-c takes both over
    assert report.taken_over == {"box-a": 1, "box-b": 0}


async def test_an_unreachable_asterisk_never_blocks_the_pass(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A real probe: 'simulator' and a refused port fail at once; a server that accepts
    and never speaks fails after REMOTE_TIMEOUT_S on the (fake) clock."""
    clock = FakeClock(NOW)
    monkeypatch.setenv("TELEVOX_TEST_REMOTE_SECRET", "x")
    settings = AmiSettings(secret_env="TELEVOX_TEST_REMOTE_SECRET")
    with pytest.raises(Unreachable):
        await RemoteAmiProbe(settings, clock, "simulator").live_call_ids()
    held: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda r, w: held.append(w), "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        task = asyncio.ensure_future(
            RemoteAmiProbe(settings, clock, f"127.0.0.1:{port}").live_call_ids())
        for _ in range(400):
            if task.done():
                break
            await clock.advance(REMOTE_TIMEOUT_S / 4)
        assert task.done()
        with pytest.raises(Unreachable, match="TimeoutError"):
            task.result()
    finally:
        for w in held:
            w.close()
        silent.close()
        await silent.wait_closed()
    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    with pytest.raises(Unreachable):
        await RemoteAmiProbe(settings, clock, f"127.0.0.1:{port}").live_call_ids()


async def test_the_daemon_builds_its_reconciler(nodes: tuple[Store, Store, Store]) -> None:
    _, b, _ = nodes
    rec = node_reconciler(b, FakeClock(NOW), Settings())
    assert (await rec.pass_once()).taken_over == {}


async def test_an_inbound_call_is_its_nodes_and_survives_another_nodes_restart(
        nodes: tuple[Store, Store, Store]) -> None:
    """An inbound call's row carries the node that answered it: another node's restart
    (its recovery closes the inbound calls that died with ITS sockets) leaves it live, so
    the caller's number stays blocked for every campaign; its own node's restart closes it."""
    a, b, _ = nodes
    assert await record_inbound(a, "in-a", PHONES[0], NOW)
    row = await a.fetchone("SELECT node_id, node_epoch FROM call_attempts WHERE id = 'in-a'")
    assert row is not None and a.node is not None
    assert (row["node_id"], row["node_epoch"]) == ("box-a", a.node.epoch)
    assert await close_stale_inbound(b) == 0  # box-b restarted: not its call
    assert await has_live_attempt(b, PHONES[0])
    a.node = await start_node(a, "box-a", A_AMI)  # box-a restarted: its caller is gone
    assert await close_stale_inbound(a) == 1
    assert not await has_live_attempt(a, PHONES[0])


async def test_a_dead_nodes_inbound_call_is_settled_by_a_survivor(
        nodes: tuple[Store, Store, Store]) -> None:
    """box-a dies while a caller talks to it and its Asterisk does not answer: a survivor
    takes the call over and frees the number only after the lease and the longest call
    have passed (N5), as for an outbound call."""
    a, b, _ = nodes
    assert await record_inbound(a, "in-a", PHONES[0], NOW)
    await die(a, "box-a", ago_s=30)
    probes = Probes()
    probes.live[A_AMI] = set()  # reachable; an inbound channel is not named by our id
    rec = reconciler(b, probes)
    report = await rec.pass_once()
    assert report.taken_over == {"box-a": 1} and report.waiting == ["in-a"]
    assert report.finalised == {}  # never N3 on a channel list that cannot show it
    assert await has_live_attempt(b, PHONES[0])
    await b.execute("UPDATE call_attempts SET lost_at = lost_at - 100000")
    report = await rec.pass_once()
    assert report.finalised == {"in-a": "N5"}
    row = await get_attempt(b, "in-a")
    assert row is not None and row.status == "dropped"
    assert not await has_live_attempt(b, PHONES[0])


async def test_a_node_that_rejoins_keeps_its_inbound_calls(
        nodes: tuple[Store, Store, Store]) -> None:
    """R1 without a restart: the process still holds its inbound call, which stays its own
    in the new life (not adopted), so its own reconciler leaves it alone and the
    transcript writes of the new life pass the epoch check."""
    a, _, _ = nodes
    assert await record_inbound(a, "in-a", PHONES[0], NOW)
    await die(a, "box-a", ago_s=5)
    assert a.node is not None
    a.node = await rejoin_node(a, a.node)
    row = await a.fetchone("SELECT node_epoch, pbx_node, status FROM call_attempts")
    assert row is not None
    assert (row["node_epoch"], row["pbx_node"], row["status"]) == (a.node.epoch, None,
                                                                   "answered")
    probes = Probes()
    probes.live[A_AMI] = set()
    report = await reconciler(a, probes).pass_once()
    assert report.finalised == {} and await has_live_attempt(a, PHONES[0])


async def test_inbound_rows_of_the_previous_version_are_never_closed_mid_call(
        nodes: tuple[Store, Store, Store]) -> None:
    """Inbound rows with no node (written before rows carried one): a node's restart
    closes them only while no other node is alive (a node still on the old version may be
    talking to that caller); otherwise they are closed once older than any inbound call
    may last (the reconciler's pass)."""
    a, b, c = nodes
    await a.execute("INSERT INTO call_attempts(id, phone, direction, status, answered_at,"
                    " created_at) VALUES ('old-in', ?, 'inbound', 'answered', ?, ?)",
                    (PHONES[0], NOW.isoformat(), NOW.isoformat()))
    assert await close_stale_inbound(a) == 0  # box-b and box-c are alive
    assert await has_live_attempt(a, PHONES[0])
    report = await reconciler(b, Probes()).pass_once()  # answered long ago (NOW is 2026-01)
    assert report.finalised == {} and not await has_live_attempt(a, PHONES[0])
    await a.execute("INSERT INTO call_attempts(id, phone, direction, status, answered_at,"
                    " created_at) VALUES ('old-in-2', ?, 'inbound', 'answered', ?, ?)",
                    (PHONES[1], NOW.isoformat(), NOW.isoformat()))
    await die(b, "box-b")
    await die(c, "box-c")
    assert await close_stale_inbound(a) == 1  # no other node alive: its call is over


async def test_a_rejoin_keeps_an_inbound_call_it_had_taken_over_on_n7(
        nodes: tuple[Store, Store, Store]) -> None:
    a, b, _ = nodes
    assert await record_inbound(a, "in-a", PHONES[0], NOW)
    await die(a, "box-a", ago_s=30)
    rec = reconciler(b, Probes())
    assert (await rec.pass_once()).waiting == ["in-a"]  # b holds it now (N7)
    await die(b, "box-b", ago_s=5)
    assert b.node is not None
    b.node = await rejoin_node(b, b.node)
    row = await b.fetchone("SELECT node_id, node_epoch, pbx_node FROM call_attempts")
    assert row is not None
    assert (row["node_id"], row["node_epoch"], row["pbx_node"]) == ("box-b", b.node.epoch,
                                                                    "box-a")
    assert (await rec.pass_once()).waiting == ["in-a"]  # still settled by N7
