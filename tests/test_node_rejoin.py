"""A node whose lease lapsed (a long pause, a database outage) joins again as the next life
of its node id, without a restart (store/nodes.rejoin_node, lease_keeper.py), and claims
again; whatever its old life held is settled by the dead-node rules, and its unsent intent
is never sent: nobody is dialled twice. On the throw-away PostgreSQL (several nodes share
one database only there); the lease lapses on the database's clock by an UPDATE, the
keepers run on a FakeClock: no sleeps."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from dialer_support import FakeOriginator, make_campaign, seed
from pg_support import PgServer, fresh_database

from televox_pbx.ami.remote import Unreachable
from televox_pbx.campaigns.cluster_dial import ClusterDial
from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.campaigns.node_reconcile import NodeReconciler
from televox_pbx.campaigns.outcomes import OutcomeApplier
from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import CallOutcome, CallStatus
from televox_pbx.lease_keeper import LeaseKeeper
from televox_pbx.store import Store
from televox_pbx.store.attempts import Intent, claim, get_attempt, mark_originated, mark_progress
from televox_pbx.store.db import NodeIdentity

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
AMI = ["10.0.0.0:5038", "10.0.0.1:5038"]


def campaign() -> Campaign:
    return make_campaign(
        calling_window={"start": "08:00", "end": "21:00",
                        "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
        timezone_policy={"source": "fixed", "fixed_zone": "America/New_York"},
        pacing={"calls_per_minute": 600, "max_concurrent": 3})


def number(i: int) -> str:
    return f"+1212555{i:04d}"


class Probes:
    """Each node's Asterisk as a reconciler sees it: its calls up, or unreachable."""

    def __init__(self) -> None:
        self.live: dict[str, set[str]] = {}

    def __call__(self, address: str) -> Probes:
        self.address = address
        return self

    async def live_call_ids(self) -> set[str]:
        if self.address not in self.live:
            raise Unreachable("ConnectionRefusedError")
        return set(self.live[self.address])


class Node:
    """One daemon: its store, lease keeper, dialer (whose claim may stall before the
    Originate) and dead-node reconciler, all on one FakeClock."""

    def __init__(self, store: Store, i: int, clock: FakeClock, probes: Probes) -> None:
        self.store, self.clock = store, clock
        self.keeper = LeaseKeeper(store, clock, f"box-{i}", AMI[i])
        self.orig = FakeOriginator(clock)
        self.stall: Callable[[], Awaitable[None]] | None = None
        self.dialer = Dialer(store, self.orig, clock, max_concurrent_global=50,
                             cluster=ClusterDial(store, db_clock=self._db_clock))
        self.reconciler = NodeReconciler(
            store, clock, OutcomeApplier(store, clock, lambda r: r.config()), probes)
        self._asked = 0

    async def _db_clock(self) -> datetime:
        """Asked at the claim, then at the re-check before the Originate: `stall` runs
        there once, as if the node paused between its claim and the send."""
        self._asked += 1
        if self._asked == 2 and self.stall is not None:
            stall, self.stall = self.stall, None
            await stall()
        return self.clock.now()

    def sent(self) -> list[str]:
        return [s.req.call_id for s in self.orig.sent]


@pytest.fixture
async def cluster(pg_server: PgServer) -> AsyncIterator[tuple[Node, Node, Probes]]:
    url = fresh_database(pg_server, migrated=True)
    clock, probes = FakeClock(START), Probes()
    nodes = [Node(await Store.open(url), i, clock, probes) for i in range(2)]
    for n in nodes:
        await n.keeper.start()
    yield nodes[0], nodes[1], probes
    for n in nodes:
        await n.store.close()


async def lapse(other: Store, node: str) -> None:
    """The node's lease ran out a minute ago, on the database's clock."""
    await other.execute("UPDATE nodes SET lease_until = CAST(EXTRACT(EPOCH FROM"
                        " clock_timestamp()) AS DOUBLE PRECISION) - 60 WHERE node_id = ?",
                        (node,))


async def no_double_dial(a: Node, b: Node) -> None:
    """Every Originate of either node went to a different number, each under a life
    that owned its attempt (every attempt row's id sent at most once)."""
    rows = await a.store.fetchall("SELECT id, phone FROM call_attempts")
    phone = {r["id"]: r["phone"] for r in rows}
    sent = a.sent() + b.sent()
    assert len(sent) == len(set(sent))
    assert max(Counter(phone[c] for c in sent).values(), default=0) <= 1


async def test_a_lapsed_node_taken_over_joins_again_and_claims_without_a_double_dial(
        cluster: tuple[Node, Node, Probes]) -> None:
    a, b, probes = cluster
    await seed(a.store, campaign(), [[number(i)] for i in range(1, 4)])
    probes.live[AMI[0]] = set()  # box-0's Asterisk answers: no call of it is up
    old: list[str] = []

    async def stall() -> None:  # box-0 pauses after its claim; box-1 takes it over
        row = await a.store.fetchone("SELECT id FROM call_attempts")
        assert row is not None
        old.append(str(row["id"]))
        await lapse(b.store, "box-0")
        report = await b.reconciler.pass_once()
        assert report.taken_over == {"box-0": 1} and report.finalised == {old[0]: "N4"}
        assert await a.keeper.renew_once()  # box-0 wakes: the next life of its id
        assert a.store.node == NodeIdentity("box-0", 3) and a.keeper.rejoined == 1
    a.stall = stall
    await a.dialer.tick()
    await a.clock.advance(1)
    await a.dialer.tick()
    assert old and old[0] not in a.sent()  # the old life's intent never went out
    gone = await get_attempt(a.store, old[0])
    assert gone is not None and gone.status == "failed"  # box-1's verdict (N4) stands
    assert a.sent(), "box-0 claims again in its new life, without a restart"
    for call_id in a.sent():
        row = await a.store.fetchone("SELECT node_id, node_epoch FROM call_attempts"
                                     " WHERE id = ?", (call_id,))
        assert row is not None and (row["node_id"], row["node_epoch"]) == ("box-0", 3)
    await b.dialer.tick()
    await no_double_dial(a, b)


async def test_a_lapsed_node_nobody_took_over_never_sends_its_old_intent(
        cluster: tuple[Node, Node, Probes]) -> None:
    a, b, _ = cluster
    await seed(a.store, campaign(), [[number(i)] for i in range(1, 4)])
    old: list[str] = []

    async def stall() -> None:  # box-0 pauses after its claim; nobody takes it over
        row = await a.store.fetchone("SELECT id FROM call_attempts")
        assert row is not None
        old.append(str(row["id"]))
        await lapse(b.store, "box-0")
        assert await a.keeper.renew_once()  # the next life adopts the old intent
        assert a.store.node == NodeIdentity("box-0", 2)
    a.stall = stall
    await a.dialer.tick()
    assert old and old[0] not in a.sent()
    row = await a.store.fetchone("SELECT status FROM call_attempts WHERE id = ?", (old[0],))
    assert row is not None and row["status"] in ("not_sent", "intent")
    await a.clock.advance(1)
    await a.dialer.tick()
    assert a.sent() and old[0] not in a.sent()
    await b.dialer.tick()
    await no_double_dial(a, b)


async def test_the_old_lifes_call_is_settled_by_the_dead_node_rules_on_its_own_asterisk(
        cluster: tuple[Node, Node, Probes]) -> None:
    """An answered call of the lapsed life: kept while its channel is up on the node's own
    Asterisk (N1), then dropped and not redialled once it is gone (N3)."""
    a, _, probes = cluster
    cid = await seed(a.store, campaign(), [[number(1)]])
    await claim(a.store, Intent("c1", cid, 1, number(1), 1, 1, "t"), START, "default")
    await mark_originated(a.store, "c1", START)
    await mark_progress(a.store, CallOutcome("c1", CallStatus.ANSWERED,
                                             answered_at=START + timedelta(seconds=5)))
    await lapse(a.store, "box-0")
    assert await a.keeper.renew_once() and a.store.node == NodeIdentity("box-0", 2)
    probes.live[AMI[0]] = {"c1"}
    assert (await a.reconciler.pass_once()).kept == ["c1"]  # N1
    probes.live[AMI[0]] = set()
    assert (await a.reconciler.pass_once()).finalised == {"c1": "N3"}
    row = await get_attempt(a.store, "c1")
    assert row is not None and row.status == "dropped"
    contact = await a.store.fetchone("SELECT status FROM contacts")
    assert contact is not None and contact["status"] != "pending"  # not redialled
