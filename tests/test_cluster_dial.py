"""Issue 19 item 2 wired: the Dialer on PostgreSQL claims through claim_next (pacing and
max_concurrent over all nodes) and gates again on the database's clock just before the
Originate (the throw-away PostgreSQL; never skipped)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from dialer_support import FakeOriginator, add_dnc, make_campaign, seed
from pg_support import PgServer, fresh_database

from televox_pbx.campaigns.cluster_dial import ClusterDial
from televox_pbx.campaigns.dial_results import TickReport
from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.store import Store
from televox_pbx.store.nodes import start_node

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
EVENING = datetime(2026, 1, 6, 3, 0, tzinfo=UTC)  # 22:00 in New York: window closed
WINDOW = {"start": "08:00", "end": "21:00",
          "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


def campaign(max_concurrent: int = 3) -> Campaign:
    return make_campaign(
        calling_window=WINDOW,
        timezone_policy={"source": "fixed", "fixed_zone": "America/New_York"},
        pacing={"calls_per_minute": 600, "max_concurrent": max_concurrent})


def number(i: int) -> str:
    return f"+1212555{i:04d}"


@pytest.fixture
async def stores(pg_server: PgServer) -> AsyncIterator[list[Store]]:
    """Two nodes (two connections) on one database, each with its node identity."""
    url = fresh_database(pg_server, migrated=True)
    out = [await Store.open(url) for _ in range(2)]
    for i, s in enumerate(out):
        s.node = await start_node(s, f"box-{i}", f"10.0.0.{i}:5038")
    yield out
    for s in out:
        await s.close()


def dialer(store: Store, orig: FakeOriginator, db_time: datetime | None = None) -> Dialer:
    async def db_clock() -> datetime:  # the database's clock, pinned for the test
        return db_time or orig.clock.now()
    return Dialer(store, orig, orig.clock, max_concurrent_global=50,
                  cluster=ClusterDial(store, db_clock=db_clock))


async def test_two_nodes_keep_the_campaigns_max_concurrent_in_total(
        stores: list[Store]) -> None:
    clock = FakeClock(START)
    await seed(stores[0], campaign(max_concurrent=3), [[number(i)] for i in range(10)])
    origs = [FakeOriginator(clock) for _ in stores]
    dialers = [dialer(s, o) for s, o in zip(stores, origs, strict=True)]
    for _ in range(4):
        for d in dialers:
            await d.tick()
        await clock.advance(1)
    assert sum(len(o.sent) for o in origs) == 3
    rows = await stores[0].fetchall("SELECT node_id, status FROM call_attempts")
    assert {r["status"] for r in rows} == {"originated"}
    assert {r["node_id"] for r in rows} <= {"box-0", "box-1"}


async def test_the_window_is_judged_again_on_the_databases_clock(
        stores: list[Store]) -> None:
    clock = FakeClock(START)  # this node's clock says 10:00 in New York ...
    await seed(stores[0], campaign(), [[number(1)]])
    orig = FakeOriginator(clock)
    report = await dialer(stores[0], orig, db_time=EVENING).tick()  # the database: 22:00
    assert report.originated == [] and report.held == 1 and orig.sent == []
    row = await stores[0].fetchone("SELECT status, notes FROM call_attempts")
    assert row is not None and row["status"] == "not_sent"
    assert "outside_window" in str(row["notes"])
    contact = await stores[0].fetchone("SELECT status, next_eligible_at FROM contacts")
    assert contact is not None and contact["status"] == "pending"
    assert contact["next_eligible_at"] > "2026-01-06T03:00"  # held until the window opens


async def test_a_number_listed_after_the_claim_is_never_dialled(stores: list[Store]) -> None:
    clock = FakeClock(START)
    store = stores[0]
    await seed(store, campaign(), [[number(1)]])

    asked: list[datetime] = []

    async def db_clock() -> datetime:  # asked at the claim, then at the re-check
        if asked:  # the re-check: someone put the number on the DNC list since the claim
            await add_dnc(stores[1], number(1))
        asked.append(clock.now())
        return clock.now()
    orig = FakeOriginator(clock)
    d = Dialer(store, orig, clock, cluster=ClusterDial(store, db_clock=db_clock))
    report = await d.tick()
    assert orig.sent == [] and report.suppressed == 1
    row = await store.fetchone("SELECT status FROM call_attempts")
    assert row is not None and row["status"] == "not_sent"
    contact = await store.fetchone("SELECT status FROM contacts")
    assert contact is not None and contact["status"] != "calling"


async def test_without_a_cluster_the_dialer_keeps_its_own_path(stores: list[Store]) -> None:
    clock = FakeClock(START)
    await seed(stores[0], campaign(), [[number(1)]])
    orig = FakeOriginator(clock)
    await Dialer(stores[0], orig, clock).tick()
    row = await stores[0].fetchone("SELECT gate_reason, node_id FROM call_attempts")
    assert len(orig.sent) == 1 and row is not None
    assert row["gate_reason"] != "cluster claim" and row["node_id"] == "box-0"


async def test_a_node_without_its_lease_claims_nothing(stores: list[Store]) -> None:
    clock = FakeClock(START)
    await seed(stores[0], campaign(), [[number(1)], [number(2)]])
    await stores[1].execute("UPDATE nodes SET lease_until = lease_until - 60"
                            " WHERE node_id = 'box-0'")  # box-0 was given up for dead
    lapsed = FakeOriginator(clock)
    await dialer(stores[0], lapsed).tick()
    superseded = FakeOriginator(clock)
    await start_node(stores[1], "box-1", "10.0.0.1:5038")  # box-1 restarted elsewhere
    await dialer(stores[1], superseded).tick()
    assert lapsed.sent == [] and superseded.sent == []
    row = await stores[0].fetchone("SELECT COUNT(*) AS n FROM call_attempts")
    assert row is not None and row["n"] == 0


async def _stall_then(store: Store, other: Store, clock: FakeClock, sql: list[str]
                      ) -> tuple[FakeOriginator, Dialer]:
    """A dialer whose node stalls between its claim and the Originate; meanwhile `sql`
    runs on the other node's connection."""
    asked: list[datetime] = []

    async def db_clock() -> datetime:  # asked at the claim, then at the re-check
        if asked:
            for statement in sql:
                await other.execute(statement)
        asked.append(clock.now())
        return clock.now()
    orig = FakeOriginator(clock)
    return orig, Dialer(store, orig, clock, cluster=ClusterDial(store, db_clock=db_clock))


async def test_a_node_whose_lease_lapses_after_its_claim_sends_nothing(
        stores: list[Store]) -> None:
    clock = FakeClock(START)
    await seed(stores[0], campaign(), [[number(1)]])
    orig, d = await _stall_then(stores[0], stores[1], clock, [
        "UPDATE nodes SET lease_until = EXTRACT(EPOCH FROM clock_timestamp()) + 1"
        " WHERE node_id = 'box-0'"])
    report = await d.tick()
    assert orig.sent == [] and report.originated == []
    row = await stores[0].fetchone("SELECT status, notes FROM call_attempts")
    assert row is not None and row["status"] == "not_sent" and "lease" in row["notes"]
    contact = await stores[0].fetchone("SELECT status FROM contacts")
    assert contact is not None and contact["status"] == "pending"  # back in line


async def test_a_node_taken_over_after_its_claim_sends_nothing_and_leaves_the_call(
        stores: list[Store]) -> None:
    """The survivor owns the attempt now (issue 19 item 4): the stalled node neither dials
    nor touches the attempt or the contact; the survivor's rules settle them."""
    clock = FakeClock(START)
    await seed(stores[0], campaign(), [[number(1)]])
    orig, d = await _stall_then(stores[0], stores[1], clock, [
        "UPDATE nodes SET epoch = epoch + 1, taken_over_by = 'box-1' WHERE node_id = 'box-0'",
        "UPDATE call_attempts SET node_id = 'box-1', node_epoch = 1, pbx_node = 'box-0'"])
    await d.tick()
    assert orig.sent == []
    row = await stores[0].fetchone("SELECT status, node_id FROM call_attempts")
    assert row is not None and (row["status"], row["node_id"]) == ("intent", "box-1")
    contact = await stores[0].fetchone("SELECT status FROM contacts")
    assert contact is not None and contact["status"] == "calling"


async def test_a_contact_whose_next_phone_went_on_the_dnc_list_moves_on(
        stores: list[Store]) -> None:
    """The cluster claim never picks a DNC-listed phone; the contact is not left pending
    for ever: its phone is marked dnc (no attempt, no call) and its next phone is dialled,
    as the gate does on one box."""
    clock = FakeClock(START)
    await seed(stores[0], campaign(), [[number(1), number(2)], [number(3)]])
    await add_dnc(stores[1], number(1))
    await add_dnc(stores[1], number(3))
    orig = FakeOriginator(clock)
    d = dialer(stores[0], orig)
    for _ in range(3):
        await d.tick()
        await clock.advance(1)
    assert [s.req.phone for s in orig.sent] == [number(2)]
    phones = await stores[0].fetchall(
        "SELECT e164, last_status FROM contact_phones ORDER BY e164")
    status = {p["e164"]: p["last_status"] for p in phones}
    assert status[number(1)] == "dnc" and status[number(3)] == "dnc"
    contacts = await stores[0].fetchall("SELECT status FROM contacts ORDER BY id")
    assert contacts[1]["status"] != "pending"  # its only phone is listed: it is done
    attempts = await stores[0].fetchall("SELECT phone FROM call_attempts")
    assert [a["phone"] for a in attempts] == [number(2)]


class _LinkDown(Exception):
    """The Originator proves nothing went out."""


async def test_run_now_claims_its_free_slots_in_one_statement(stores: list[Store]) -> None:
    """Run-now with several free slots: one claim statement for the lot, each claimed
    contact gated again and dialled, and max_concurrent kept."""
    from televox_pbx.store import campaigns as camp
    clock = FakeClock(START)
    store = stores[0]
    cid = await seed(store, campaign(max_concurrent=4), [[number(i)] for i in range(10)])
    await camp.set_run_now(store, cid, True)
    claims: list[str] = []
    fetch_alone = store.fetch_alone

    async def counted(sql: str, params: object = (), *, tag: str = "") -> list[object]:
        if tag == "claim":
            claims.append(sql)
        return await fetch_alone(sql, params, tag=tag)  # type: ignore[arg-type]
    store.fetch_alone = counted  # type: ignore[method-assign]
    orig = FakeOriginator(clock)
    report = await dialer(store, orig).tick()
    assert len(orig.sent) == 4 and len(report.originated) == 4
    assert len(claims) == 1
    rows = await store.fetchall("SELECT status FROM call_attempts")
    assert [r["status"] for r in rows] == ["originated"] * 4


async def test_a_batch_cut_short_by_the_link_puts_the_rest_back(stores: list[Store]) -> None:
    """The link goes down at the second Originate of a claimed batch: the rest of the batch
    is closed unsent and its contacts are back in line, never left live."""
    from televox_pbx.store import campaigns as camp
    clock = FakeClock(START)
    store = stores[0]
    cid = await seed(store, campaign(max_concurrent=4), [[number(i)] for i in range(10)])
    await camp.set_run_now(store, cid, True)
    orig = FakeOriginator(clock)

    def second_fails(req: object) -> None:
        if len(orig.sent) == 2:
            raise _LinkDown("link down")
    orig.on_send = second_fails

    async def db_clock() -> datetime:
        return clock.now()
    d = Dialer(store, orig, clock, max_concurrent_global=50, not_sent=(_LinkDown,),
               cluster=ClusterDial(store, db_clock=db_clock))
    await d.tick()
    rows = await store.fetchall("SELECT status, COUNT(*) AS n FROM call_attempts"
                                " GROUP BY status ORDER BY status")
    assert {r["status"]: int(r["n"]) for r in rows} == {"not_sent": 3, "originated": 1}
    calling = await store.fetchone("SELECT COUNT(*) AS n FROM contacts"
                                   " WHERE status = 'calling'")
    assert calling is not None and int(calling["n"]) == 1


async def test_a_batch_cut_short_by_an_error_puts_the_untried_back(
        stores: list[Store], monkeypatch: pytest.MonkeyPatch) -> None:
    """An error while dialling the second claim of a batch: the claims after it are put
    back; the failing one is left to the recovery rules (it may have gone out)."""
    from televox_pbx.store import campaigns as camp
    clock = FakeClock(START)
    store = stores[0]
    cid = await seed(store, campaign(max_concurrent=4), [[number(i)] for i in range(10)])
    await camp.set_run_now(store, cid, True)
    d = dialer(store, FakeOriginator(clock))
    real_try = d._try
    tried: list[str | None] = []

    async def failing_try(*args: object, **kw: object) -> object:
        tried.append(kw.get("claimed"))  # type: ignore[arg-type]
        if len(tried) == 2:
            raise RuntimeError("database gone")
        return await real_try(*args, **kw)  # type: ignore[arg-type]
    monkeypatch.setattr(d, "_try", failing_try)
    with pytest.raises(RuntimeError):
        await d._dial(await camp.get_campaign_by_id(store, cid),  # type: ignore[arg-type]
                      campaign(max_concurrent=4), 4, TickReport(), overdraw=True)
    rows = await store.fetchall("SELECT id, status FROM call_attempts")
    status = {r["id"]: r["status"] for r in rows}
    assert status[tried[0]] == "originated" and status[tried[1]] == "intent"
    assert sorted(status.values()) == ["intent", "not_sent", "not_sent", "originated"]
