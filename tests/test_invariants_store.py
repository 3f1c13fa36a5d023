"""Issue 12, items 1-4, 7 and 8c: the store, not its callers, keeps the invariants.

Each test names the defect it reproduces; each failed on main e3a0511.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dialer_support import FakeOriginator, FakeProbe, make_campaign, seed

from televox_pbx.ami.codec import AmiMessage
from televox_pbx.ami.tracker import CallTracker
from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.campaigns.dnc import CallDnc, DncService
from televox_pbx.clock import FakeClock
from televox_pbx.domain import (
    CallOutcome,
    CallStatus,
    Disposition,
    FailureKind,
    OriginateRequest,
)
from televox_pbx.store import Store
from televox_pbx.store import dial_queue as dq
from televox_pbx.store.attempts import record_inbound
from televox_pbx.store.dnc import add_numbers

pytestmark = pytest.mark.both_backends  # each test on SQLite and on PostgreSQL

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # 10:00 in New York


def camp(name: str = "spring", **kw: Any) -> Any:
    base: dict[str, Any] = {
        "calling_window": {"start": "08:00", "end": "21:00"},
        "timezone_policy": {"source": "fixed", "fixed_zone": "America/New_York"},
        "pacing": {"calls_per_minute": 60, "max_concurrent": 5},
        "retry": {"retry_interval_minutes": 0, "max_attempts_per_phone": 2}}
    base.update(kw)
    return make_campaign(name=name, **base)


async def live_count(store: Store, phone: str) -> int:
    row = await store.fetchone(
        "SELECT COUNT(*) FROM call_attempts WHERE phone = ?"
        " AND status IN ('intent','originated','ringing','answered')", (phone,))
    assert row is not None
    return int(row[0])


# -- item 1: every DNC write goes through one normaliser ---------------------------------

async def test_inbound_opt_out_is_stored_in_e164_and_blocks_the_next_campaign(
        store: Store) -> None:
    clock = FakeClock(START)
    # The inbound session hands the DNC port the caller ID as Asterisk gives it.
    await CallDnc(DncService(store, clock=clock)).add("(212) 555-0100", reason="asked",
                                                      source="inbound")
    row = await store.fetchone("SELECT e164 FROM dnc")
    assert row is not None and row[0] == "+12125550100"
    await seed(store, camp(), [["+12125550100"]])
    orig = FakeOriginator(clock)
    await Dialer(store, orig, clock).tick()
    assert orig.sent == []


async def test_store_refuses_a_dnc_number_that_was_not_normalised(store: Store) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        await add_numbers(store, "default", [("2125550100", "raw")], source="x", actor="y",
                          at="2026-01-05T15:00:00.000Z")
    assert await store.fetchone("SELECT 1 FROM dnc") is None


async def test_inbound_attempt_is_live_and_blocks_dialing_that_number(store: Store) -> None:
    clock = FakeClock(START)
    assert await record_inbound(store, "in-1", "+12125550100", START)
    await seed(store, camp(), [["+12125550100"]])
    orig = FakeOriginator(clock)
    await Dialer(store, orig, clock).tick()
    assert orig.sent == []  # they are talking to us right now
    assert await live_count(store, "+12125550100") == 1


# -- item 2: two callbacks of one contact never make two live calls -----------------------

async def test_two_due_callbacks_dial_the_contact_once(store: Store) -> None:
    clock = FakeClock(START)
    cid = await seed(store, camp(), [["+12125550100"]])
    await store.execute("UPDATE contacts SET status = 'callback'")
    for minutes in (1, 2):
        await store.execute(
            "INSERT INTO callbacks(contact_id, due_at) VALUES (1, ?)",
            ((START - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),))
    await store.execute("UPDATE campaigns SET run_now_requested = 1 WHERE id = ?", (cid,))
    orig = FakeOriginator(clock)
    await Dialer(store, orig, clock).tick()
    assert len(orig.sent) == 1
    assert await live_count(store, "+12125550100") == 1


# -- item 3: one live attempt per number, enforced by the database -----------------------

async def test_same_number_in_two_campaigns_is_dialed_once(store: Store) -> None:
    clock = FakeClock(START)
    await seed(store, camp("a"), [["+12125550100"]])
    await seed(store, camp("b"), [["+12125550100"]])
    orig = FakeOriginator(clock)
    d = Dialer(store, orig, clock)
    await d.tick()
    await clock.advance(2)
    await d.tick()
    assert [s.req.phone for s in orig.sent] == ["+12125550100"]
    assert await live_count(store, "+12125550100") == 1


async def test_a_second_process_on_the_same_database_cannot_dial_a_live_number(
        store_url: str) -> None:
    clock = FakeClock(START)
    one, two = await Store.open(store_url), await Store.open(store_url)
    try:
        await seed(one, camp("a"), [["+12125550100"]])
        await seed(one, camp("b"), [["+12125550100"]])
        o1, o2 = FakeOriginator(clock), FakeOriginator(clock)
        await Dialer(one, o1, clock).tick()
        await Dialer(two, o2, clock).tick()
        assert len(o1.sent) + len(o2.sent) == 1
        assert await live_count(two, "+12125550100") == 1
    finally:
        await one.close()
        await two.close()


async def test_call_now_is_refused_while_a_campaign_calls_that_number(store: Store) -> None:
    clock = FakeClock(START)
    await seed(store, camp("a"), [["+12125550100"]])
    await seed(store, camp("b"), [["+12125550100"]], state="IDLE")
    orig = FakeOriginator(clock)
    d = Dialer(store, orig, clock)
    await d.tick()
    other = await store.fetchone(
        "SELECT c.id FROM contacts c JOIN campaigns k ON k.id = c.campaign_id"
        " WHERE k.name = 'b'")
    assert other is not None
    result = await d.call_now(int(other[0]))
    assert (result.call_id, result.code, result.reason) == (None, "in_call",
                                                            "already in a call")
    assert len(orig.sent) == 1


# -- item 4: an outcome is one transaction; recovery leaves no contact stranded ------------

async def test_a_crash_while_applying_an_outcome_leaves_all_or_nothing(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(START)
    await seed(store, camp(), [["+12125550100", "+12125550101"]])
    orig = FakeOriginator(clock)
    d = Dialer(store, orig, clock)
    await d.tick()
    call_id = orig.sent[0].req.call_id

    async def crash(*_: Any, **__: Any) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(dq, "update_contact", crash)
    with pytest.raises(RuntimeError):
        await d.on_outcome(CallOutcome(call_id, CallStatus.BUSY))
    monkeypatch.undo()
    row = await store.fetchone("SELECT status FROM call_attempts WHERE id = ?", (call_id,))
    assert row is not None and row[0] == "originated"  # nothing of the outcome committed
    # A restart with the channel gone resolves the attempt and moves the contact on.
    d2 = Dialer(store, FakeOriginator(clock), clock, probe=FakeProbe())
    await d2.recover()
    contact = await store.fetchone("SELECT status FROM contacts")
    assert contact is not None and contact[0] != "calling"
    assert await live_count(store, "+12125550100") == 0


async def test_recovery_unsticks_a_contact_calling_without_a_live_attempt(
        store: Store) -> None:
    clock = FakeClock(START)
    await seed(store, camp(), [["+12125550100"]])
    # The state main left behind: the attempt finished, the contact never moved on.
    await store.execute("UPDATE contacts SET status = 'calling'")
    await store.execute("INSERT INTO call_attempts(id, campaign_id, contact_id, phone, status)"
                        " VALUES ('old', 1, 1, '+12125550100', 'busy')")
    await Dialer(store, FakeOriginator(clock), clock, probe=FakeProbe()).recover()
    contact = await store.fetchone("SELECT status FROM contacts")
    assert contact is not None and contact[0] == "pending"
    audit = await store.fetchone("SELECT event FROM contact_events")
    assert audit is not None and audit[0] == "recovered:no_live_attempt"


# -- item 7: outcomes the way Asterisk reports them ----------------------------------------

async def test_an_invalid_number_is_marked_invalid_and_never_retried(store: Store) -> None:
    clock = FakeClock(START)
    await seed(store, camp(), [["+12125550100", "+12125550101"]])
    orig = FakeOriginator(clock)
    d = Dialer(store, orig, clock)
    for _ in range(12):
        await d.tick()
        for s in orig.sent[-1:]:
            status = (CallStatus.FAILED, FailureKind.INVALID_NUMBER) \
                if s.req.phone.endswith("100") else (CallStatus.NO_ANSWER, None)
            await d.on_outcome(CallOutcome(s.req.call_id, status[0], failure=status[1],
                                           hangup_cause=1, sip_code=404))
        await clock.advance(5)
    phones = [s.req.phone for s in orig.sent]
    assert phones.count("+12125550100") == 1  # 404 once, never again
    assert phones.count("+12125550101") == 2  # the other phone keeps its retries
    row = await store.fetchone("SELECT last_status FROM contact_phones WHERE position = 1")
    assert row is not None and row[0] == "invalid"


def msg(**fields: str) -> AmiMessage:
    return AmiMessage(tuple(fields.items()))


async def test_a_pbx_restart_during_an_answered_call_is_dropped_and_retried_once(
        store: Store) -> None:
    clock = FakeClock(START)
    tracker = CallTracker(clock)
    tracker.register("c1")
    tracker.feed(msg(Event="Newchannel", Uniqueid="c1", ChannelStateDesc="Down"))
    tracker.feed(msg(Event="Newstate", Uniqueid="c1", ChannelStateDesc="Up"))
    await clock.advance(5)
    tracker.feed(msg(Event="Shutdown", Shutdown="Cleanly", Restart="True"))
    [end] = tracker.feed(msg(Event="Hangup", Uniqueid="c1", Cause="0"))
    assert (end.status, end.failure) == (CallStatus.DROPPED, FailureKind.PBX_FAULT)
    assert end.duration_s == 5.0

    await seed(store, camp(), [["+12125550100"]])
    orig = FakeOriginator(clock)
    d = Dialer(store, orig, clock)
    for _ in range(3):
        await d.tick()
        for s in orig.sent[-1:]:
            await d.on_outcome(CallOutcome(s.req.call_id, CallStatus.ANSWERED,
                                           answered_at=clock.now()))
            await d.on_outcome(CallOutcome(s.req.call_id, CallStatus.DROPPED,
                                           failure=FailureKind.PBX_FAULT,
                                           answered_at=clock.now(), hangup_at=clock.now()))
        await clock.advance(5)
    rows = await store.fetchall("SELECT status FROM call_attempts")
    assert [r[0] for r in rows] == ["dropped", "dropped"]  # the call, and one retry
    contact = await store.fetchone("SELECT status FROM contacts")
    assert contact is not None and contact[0] == "completed"


async def test_duration_after_a_kill_during_a_call_comes_from_the_pbx(store: Store) -> None:
    clock = FakeClock(START)
    await seed(store, camp(), [["+12125550100"], ["+12125550101"]])
    orig = FakeOriginator(clock)
    d = Dialer(store, orig, clock)
    await d.tick()
    await clock.advance(1)
    await d.tick()
    ended, unended = (s.req.call_id for s in orig.sent)
    for cid in (ended, unended):
        await d.on_outcome(CallOutcome(cid, CallStatus.ANSWERED, answered_at=clock.now()))
    await clock.advance(5.4)
    # Hangup seen for one call; the daemon dies while waiting for the session's result.
    await d.on_ended(CallOutcome(ended, CallStatus.COMPLETED, answered_at=clock.now()
                                 - timedelta(seconds=5.4), hangup_at=clock.now()))
    await clock.advance(10)  # the restart comes 10 s later
    d2 = Dialer(store, FakeOriginator(clock), clock, probe=FakeProbe())
    await d2.recover()
    rows = {r["id"]: (r["status"], r["duration_s"]) for r in await store.fetchall(
        "SELECT id, status, duration_s FROM call_attempts")}
    assert rows[ended] == ("completed", pytest.approx(5.4))
    assert rows[unended] == ("dropped", None)  # no Hangup seen: unknown, never invented


# -- item 8c: the window is judged at each claim, not once per batch ----------------------

async def test_the_window_is_checked_at_each_claim(store: Store) -> None:
    clock = FakeClock(datetime(2026, 1, 6, 1, 59, 59, tzinfo=UTC))  # 20:59:59 New York
    await seed(store, camp(), [["+12125550100"], ["+12125550101"]])
    await store.execute("UPDATE campaigns SET run_now_requested = 1")

    class Slow(FakeOriginator):
        async def originate(self, req: OriginateRequest) -> None:
            await super().originate(req)
            await self.clock.advance(2)  # the window closes while this Originate goes out

    orig = Slow(clock)
    await Dialer(store, orig, clock).tick()
    assert len(orig.sent) == 1



async def test_reconcile_leaves_a_call_whose_session_result_is_on_its_way(
        store: Store) -> None:
    # The Hangup was seen (end kept) and the voice session is still saving: a periodic
    # reconcile must not settle it first, or the real result (turns, disposition) would
    # arrive as a duplicate and be lost.
    clock = FakeClock(START)
    await seed(store, camp(), [["+12125550100"]])
    orig = FakeOriginator(clock)
    d = Dialer(store, orig, clock, probe=FakeProbe())
    await d.tick()
    call_id = orig.sent[0].req.call_id
    await d.on_outcome(CallOutcome(call_id, CallStatus.ANSWERED, answered_at=clock.now()))
    await clock.advance(120)
    await d.on_ended(CallOutcome(call_id, CallStatus.COMPLETED,
                                 answered_at=START, hangup_at=clock.now()))
    report = await d.reconcile(skip=frozenset({call_id}))
    assert report.finalised == []
    await d.on_outcome(CallOutcome(call_id, CallStatus.COMPLETED, answered_at=START,
                                   hangup_at=clock.now()), 3, Disposition.INTERESTED)
    row = await store.fetchone("SELECT status, disposition FROM call_attempts")
    assert row is not None and tuple(row) == ("completed", "INTERESTED")
