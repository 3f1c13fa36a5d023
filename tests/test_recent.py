"""Issue 16 item 4: skip contacts any campaign reached in the last N days, and never
redial a contact who did not answer when the campaign says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dialer_support import FakeOriginator, make_campaign, seed

from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.campaigns.retry import Result, next_step
from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import RetryPolicy
from televox_pbx.store import Store
from televox_pbx.store.timefmt import iso

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # 10:00 in New York, a Monday
ANN, BOB = "+12125550101", "+12125550102"
OPEN = {"calling_window": {"start": "08:00", "end": "21:00"},
        "timezone_policy": {"source": "fixed", "fixed_zone": "America/New_York"}}


async def _answered(store: Store, phone: str, days_ago: float) -> None:
    at = iso(NOW - timedelta(days=days_ago))
    await store.execute(
        "INSERT INTO call_attempts(id, phone, status, answered_at, created_at) VALUES"
        " (?, ?, 'completed', ?, ?)", (f"old-{phone}", phone, at, at))


@pytest.mark.parametrize(("days", "dialled"), [(7, [BOB]), (1, [ANN, BOB]), (None, [ANN, BOB])])
async def test_skip_numbers_answered_recently_in_any_campaign(
        store: Store, days: int | None, dialled: list[str]) -> None:
    await _answered(store, ANN, 2.0)  # reached two days ago, by another campaign
    campaign = make_campaign(retry={"skip_answered_within_days": days},
                             pacing={"calls_per_minute": 600, "max_concurrent": 5}, **OPEN)
    await seed(store, campaign, [[ANN], [BOB]])
    clock = FakeClock(NOW)
    pbx = FakeOriginator(clock)
    dialer = Dialer(store, pbx, clock)
    await store.execute("UPDATE campaigns SET run_now_requested = 1")
    await dialer.tick()
    assert sorted(s.req.phone for s in pbx.sent) == dialled
    row = await store.fetchone("SELECT status FROM contacts WHERE name = 'Lead 0'")
    assert row is not None and row[0] == ("skipped" if ANN not in dialled else "calling")
    if ANN not in dialled:
        ev = await store.fetchone("SELECT event, detail FROM contact_events")
        assert ev is not None and ev[0] == "skipped_recently_answered" and "7 day" in ev[1]


async def test_call_now_is_not_skipped(store: Store) -> None:
    await _answered(store, ANN, 2.0)
    campaign = make_campaign(retry={"skip_answered_within_days": 7}, **OPEN)
    await seed(store, campaign, [[ANN]])
    clock = FakeClock(NOW)
    pbx = FakeOriginator(clock)
    result = await Dialer(store, pbx, clock).call_now(1)
    assert result.code == "originated" and [s.req.phone for s in pbx.sent] == [ANN]


@pytest.mark.parametrize("result", [Result.NO_ANSWER, Result.BUSY, Result.VOICEMAIL])
def test_no_redial_of_a_contact_who_did_not_answer(result: Result) -> None:
    policy = RetryPolicy(redial_no_answer=False, max_attempts_per_phone=3)
    u = next_step(result, position=1, live_positions=[1, 2], retry_pass=1, policy=policy,
                  last_disposition=None, now=NOW)
    assert u.status == result.value and u.next_eligible_at is None
    again = next_step(result, position=1, live_positions=[1, 2], retry_pass=1,
                      policy=RetryPolicy(max_attempts_per_phone=3), last_disposition=None,
                      now=NOW)
    assert again.status == "pending"  # the default still tries the next phone
