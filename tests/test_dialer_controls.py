"""Campaign state machine and operator actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dialer_support import FakeOriginator, add_dnc, make_campaign, seed

from televox_pbx.campaigns.controls import Action, ControlError, State, apply, transition
from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.clock import FakeClock
from televox_pbx.domain import CallOutcome, CallStatus
from televox_pbx.store import Store
from televox_pbx.store.campaigns import get_campaign
from televox_pbx.store.dial_queue import status_counts

pytestmark = pytest.mark.both_backends  # each test on SQLite and on PostgreSQL

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def camp() -> object:
    return make_campaign(
        calling_window={"start": "08:00", "end": "21:00"},
        timezone_policy={"source": "fixed", "fixed_zone": "America/New_York"},
        pacing={"calls_per_minute": 60, "max_concurrent": 5},
        retry={"retry_interval_minutes": 0, "max_attempts_per_phone": 1})



def test_transitions() -> None:
    assert transition(State.IDLE, Action.START) is State.RUNNING
    assert transition(State.RUNNING, Action.PAUSE) is State.PAUSED
    assert transition(State.PAUSED, Action.RESUME) is State.RUNNING
    assert transition(State.COMPLETED, Action.RESTART) is State.RUNNING
    with pytest.raises(ControlError, match="restart"):
        transition(State.COMPLETED, Action.START)
    with pytest.raises(ControlError):
        transition(State.RUNNING, Action.RESUME)


async def test_schedule_then_dialer_starts_it(store: Store) -> None:
    clock = FakeClock(START)
    c = camp()
    await seed(store, c, [["+12125550100"]], state="IDLE")
    await apply(store, c.name, Action.SCHEDULE, clock.now(), at=START + timedelta(minutes=5))
    orig = FakeOriginator(clock)
    d = Dialer(store, orig, clock)
    await d.tick()
    assert orig.sent == []
    await clock.advance(300)
    await d.tick()
    row = await get_campaign(store, c.name)
    assert row is not None and row.state == "RUNNING" and len(orig.sent) == 1


async def run_out(d: Dialer, orig: FakeOriginator, clock: FakeClock, n: int) -> None:
    done: set[str] = set()
    for _ in range(n):
        await d.tick()
        for s in orig.sent:
            if s.req.call_id not in done:
                done.add(s.req.call_id)
                await d.on_outcome(CallOutcome(s.req.call_id, CallStatus.NO_ANSWER))
        await clock.advance(1)


async def test_restart_requeue_and_dnc(store: Store) -> None:
    clock = FakeClock(START)
    c = camp()
    await seed(store, c, [["+12125550100"], ["+12125550101"], ["+12125550102"]])
    orig = FakeOriginator(clock)
    d = Dialer(store, orig, clock)
    await run_out(d, orig, clock, 10)
    assert await status_counts(store, 1) == {"no_answer": 3}
    row = await get_campaign(store, c.name)
    assert row is not None and row.state == "COMPLETED"

    await apply(store, c.name, Action.REQUEUE, clock.now())
    assert await status_counts(store, 1) == {"pending": 3}
    await run_out(d, orig, clock, 10)
    assert len(orig.sent) == 6

    await add_dnc(store, "+12125550101")
    await apply(store, c.name, Action.RESTART, clock.now())
    row = await get_campaign(store, c.name)
    assert row is not None and row.state == "RUNNING" and row.current_pass == 1
    await run_out(d, orig, clock, 10)
    assert [s.req.phone for s in orig.sent[6:]] == ["+12125550100", "+12125550102"]
    assert await status_counts(store, 1) == {"no_answer": 2, "dnc": 1}


async def test_unknown_campaign_is_an_error(store: Store) -> None:
    with pytest.raises(ControlError, match="no campaign"):
        await apply(store, "nope", Action.START, START)
