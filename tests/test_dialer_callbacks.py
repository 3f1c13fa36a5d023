"""Scheduled callbacks and `call now` go through the same gate as campaign dialing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dialer_support import FakeOriginator, add_dnc, make_campaign, seed

from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.clock import FakeClock
from televox_pbx.domain import CallOutcome, CallStatus, Disposition
from televox_pbx.store import Store
from televox_pbx.store.campaigns import get_campaign
from televox_pbx.store.timefmt import iso

pytestmark = pytest.mark.both_backends  # each test on SQLite and on PostgreSQL

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # Monday 10:00 New York


def camp() -> object:
    return make_campaign(
        calling_window={"start": "09:00", "end": "20:00"},
        timezone_policy={"source": "fixed", "fixed_zone": "America/New_York"},
        pacing={"calls_per_minute": 60, "max_concurrent": 2},
        retry={"retry_interval_minutes": 0, "max_attempts_per_phone": 1})



async def test_callback_waits_for_its_time_and_the_window(store: Store) -> None:
    clock = FakeClock(START)
    c = camp()
    await seed(store, c, [["+12125550100"]])
    orig = FakeOriginator(clock)
    d = Dialer(store, orig, clock)
    await d.tick()
    first = orig.sent[0].req.call_id
    # During the call the agent books a callback for 21:30 New York (window closed).
    due = datetime(2026, 1, 6, 2, 30, tzinfo=UTC)
    await store.execute("INSERT INTO callbacks(attempt_id, contact_id, due_at) VALUES (?,?,?)",
                        (first, 1, iso(due)))
    await d.on_outcome(CallOutcome(first, CallStatus.COMPLETED, answered_at=START,
                                   hangup_at=START), 4, Disposition.CALLBACK)
    row = await store.fetchone("SELECT status FROM contacts")
    assert row is not None and row["status"] == "callback"
    for _ in range(3):
        await clock.advance(3600)
        await d.tick()
    campaign = await get_campaign(store, c.name)
    assert campaign is not None and campaign.state == "RUNNING"  # the callback is open
    clock.set_now(due)
    await d.tick()
    assert len(orig.sent) == 1  # 21:30 is outside the window: postponed, not dialled
    cb = await store.fetchone("SELECT due_at, status FROM callbacks")
    assert cb is not None and cb["status"] == "pending"
    assert cb["due_at"].startswith("2026-01-06T14:00:00")  # 09:00 New York next day
    clock.set_now(datetime(2026, 1, 6, 14, 0, tzinfo=UTC))
    await d.tick()
    assert len(orig.sent) == 2 and orig.sent[1].req.phone == "+12125550100"
    await d.on_outcome(CallOutcome(orig.sent[1].req.call_id, CallStatus.COMPLETED,
                                   answered_at=clock.now(), hangup_at=clock.now()),
                       3, Disposition.INTERESTED)
    cb = await store.fetchone("SELECT status FROM callbacks")
    assert cb is not None and cb["status"] == "done"
    await clock.advance(2)
    await d.tick()
    campaign = await get_campaign(store, c.name)
    assert campaign is not None and campaign.state == "COMPLETED"
    gate_rows = await store.fetchall("SELECT allowed, detail FROM gate_decisions ORDER BY id")
    assert [r["detail"].split(":")[0] for r in gate_rows] == ["campaign", "callback",
                                                              "callback"]


async def test_call_now_respects_gate_and_concurrency(store: Store) -> None:
    clock = FakeClock(START)
    c = camp()
    await seed(store, c, [["+12125550100"], ["+12125550101"], ["+12125550102"],
                          ["+12125550103"]])
    await add_dnc(store, "+12125550103")
    orig = FakeOriginator(clock)
    d = Dialer(store, orig, clock)
    r1 = await d.call_now(1)
    assert r1.call_id is not None
    again = await d.call_now(1)
    assert (again.reason, again.code) == ("already in a call", "in_call")
    assert (await d.call_now(4)).call_id is None  # DNC
    assert (await d.call_now(2)).call_id is not None
    assert "concurrency" in (await d.call_now(3)).reason
    clock.set_now(datetime(2026, 1, 5, 3, 0, tzinfo=UTC))  # 22:00 New York
    await d.on_outcome(CallOutcome(r1.call_id, CallStatus.NO_ANSWER))
    r3 = await d.call_now(3)
    assert r3.call_id is None and r3.code == "window"
    assert r3.reason == ("outside the calling window in America/New_York;"
                         " it opens at 2026-01-05 09:00 America/New_York")
    details = [r["detail"] for r in await store.fetchall("SELECT detail FROM gate_decisions")]
    assert all(x.startswith("call_now:") for x in details)
