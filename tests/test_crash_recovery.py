"""Crash safety in-process: intents before Originates, reconciliation on restart."""

from __future__ import annotations

from datetime import UTC, datetime

from dialer_support import FakeOriginator, FakeProbe, make_campaign, seed

from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.clock import FakeClock
from televox_pbx.domain import CallOutcome, CallStatus, Disposition, OriginateRequest
from televox_pbx.store import Store
from televox_pbx.store.campaigns import get_campaign

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def camp() -> object:
    return make_campaign(
        calling_window={"start": "08:00", "end": "21:00"},
        timezone_policy={"source": "fixed", "fixed_zone": "America/New_York"},
        pacing={"calls_per_minute": 60, "max_concurrent": 5},
        retry={"retry_interval_minutes": 0, "max_attempts_per_phone": 1})



class Boom(Exception):
    pass


async def test_intent_is_written_before_originate(store: Store) -> None:
    clock = FakeClock(START)
    c = camp()
    await seed(store, c, [["+12125550100"]])
    seen: list[str | None] = []

    class Peek(FakeOriginator):
        async def originate(self, req: OriginateRequest) -> None:
            row = await store.fetchone("SELECT status FROM call_attempts WHERE id = ?",
                                       (req.call_id,))
            seen.append(row["status"] if row else None)
            contact = await store.fetchone("SELECT status FROM contacts")
            seen.append(contact["status"] if contact else None)

    await Dialer(store, Peek(clock), clock).tick()
    assert seen == ["intent", "calling"]


async def test_failed_originate_spends_the_attempt(store: Store) -> None:
    clock = FakeClock(START)
    c = camp()
    await seed(store, c, [["+12125550100", "+12125550101"]])

    class Down(FakeOriginator):
        async def originate(self, req: OriginateRequest) -> None:
            await super().originate(req)
            raise Boom("AMI down")

    orig = Down(clock)
    dialer = Dialer(store, orig, clock)
    await dialer.tick()
    await clock.advance(1)
    await dialer.tick()
    phones = [s.req.phone for s in orig.sent]
    assert phones == ["+12125550100", "+12125550101"]  # next phone, never a resend
    rows = await store.fetchall("SELECT status FROM call_attempts")
    assert [r["status"] for r in rows] == ["failed", "failed"]


async def test_restart_reconciles_without_reoriginating(store: Store) -> None:
    clock = FakeClock(START)
    c = camp()
    # Contact 0..5 have two phones: a lost attempt moves on to phone 2.
    await seed(store, c, [[f"+1212555010{i}", f"+1212555020{i}"] for i in range(6)])
    first = FakeOriginator(clock)
    d1 = Dialer(store, first, clock)
    for _ in range(5):
        await d1.tick()
        await clock.advance(1)
    sent = [s.req for s in first.sent]
    assert len(sent) == 5
    # Before the crash: call 0 was answered (still up), call 1 answered and gone,
    # calls 2-4 never heard back; only 0 and 4 still have a channel.
    await d1.on_outcome(CallOutcome(sent[0].call_id, CallStatus.ANSWERED, answered_at=START))
    await d1.on_outcome(CallOutcome(sent[1].call_id, CallStatus.ANSWERED, answered_at=START))
    del d1  # SIGKILL: nothing else runs

    probe = FakeProbe(live={sent[0].call_id, sent[4].call_id})
    second = FakeOriginator(clock)
    d2 = Dialer(store, second, clock, probe=probe)
    report = await d2.recover()
    assert set(report.kept) == {sent[0].call_id, sent[4].call_id}
    assert set(report.finalised) == {sent[1].call_id, sent[2].call_id, sent[3].call_id}
    status = {r["id"]: r["status"] for r in await store.fetchall(
        "SELECT id, status FROM call_attempts")}
    # Answered and gone with no Hangup seen: dropped by our restart, end time unknown (never
    # the time of recovery); the person was reached, so the contact is not redialed.
    assert status[sent[1].call_id] == "dropped"
    row1 = await store.fetchone("SELECT hangup_at, duration_s, failure FROM call_attempts"
                                " WHERE id = ?", (sent[1].call_id,))
    assert row1 is not None and tuple(row1) == (None, None, "daemon_restart")
    assert status[sent[2].call_id] == status[sent[3].call_id] == "failed"
    contacts = [r["status"] for r in await store.fetchall(
        "SELECT status FROM contacts ORDER BY id")]
    assert contacts[:5] == ["connected", "completed", "pending", "pending", "calling"]
    row = await get_campaign(store, c.name)
    assert row is not None and row.state == "RUNNING"

    # The live calls end normally; everything finishes with no attempt ever resent.
    await d2.on_outcome(CallOutcome(sent[0].call_id, CallStatus.COMPLETED, answered_at=START,
                                    hangup_at=clock.now()), 4, Disposition.INTERESTED)
    await d2.on_outcome(CallOutcome(sent[4].call_id, CallStatus.NO_ANSWER))
    for _ in range(30):
        await d2.tick()
        for s in second.sent:
            await d2.on_outcome(CallOutcome(s.req.call_id, CallStatus.NO_ANSWER))
        await clock.advance(1)
    old_ids = {r.call_id for r in sent}
    assert not old_ids & {s.req.call_id for s in second.sent}
    # Leads 2, 3, 4 went to phone 2; lead 5 was never dialled before the crash.
    assert sorted(s.req.phone for s in second.sent) == [
        "+12125550105", "+12125550202", "+12125550203", "+12125550204", "+12125550205"]
    row = await get_campaign(store, c.name)
    assert row is not None and row.state == "COMPLETED"


async def test_live_reconcile_leaves_fresh_attempts_alone(store: Store) -> None:
    clock = FakeClock(START)
    c = camp()
    await seed(store, c, [["+12125550100"]])
    d = Dialer(store, FakeOriginator(clock), clock, probe=FakeProbe())
    await d.tick()
    report = await d.reconcile()  # the channel may not exist yet: leave it
    assert report.finalised == []
    await clock.advance(120)
    report = await d.reconcile()
    assert len(report.finalised) == 1


async def test_unsent_originate_is_closed_and_the_contact_waits(store: Store) -> None:
    clock = FakeClock(START)
    c = camp()
    await seed(store, c, [["+12125550100", "+12125550101"]])

    class NotConnected(Exception):
        pass

    class Offline(FakeOriginator):
        down = True  # the link dropped after the last readiness check
        reconciled = False

        def ready(self) -> bool:
            return self.reconciled

        async def originate(self, req: OriginateRequest) -> None:
            if self.down:
                raise NotConnected("AMI not connected")
            await super().originate(req)

    orig = Offline(clock)
    orig.reconciled = True
    d = Dialer(store, orig, clock, not_sent=(NotConnected,))
    await d.tick()
    row = await store.fetchone("SELECT status FROM call_attempts")
    assert row is not None and row["status"] == "not_sent"
    orig.reconciled = False  # the runner knows the link is down now
    for _ in range(5):
        await clock.advance(10)
        await d.tick()
    assert orig.sent == []  # no hot loop against a dead link, no new attempt rows
    n = await store.fetchone("SELECT COUNT(*) FROM call_attempts")
    assert n is not None and n[0] == 1
    orig.down, orig.reconciled = False, True  # logged in and reconciled: go at once
    await d.tick()
    assert [s.req.phone for s in orig.sent] == ["+12125550100"]  # same phone, new id
