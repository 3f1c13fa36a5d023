"""The compliance gate: DNC in any format, windows, unknown zones, audit rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dialer_support import add_dnc, make_campaign

from televox_pbx.campaigns.gate import GateContext, GateReason, check
from televox_pbx.store import Store

pytestmark = pytest.mark.both_backends  # each test on SQLite and on PostgreSQL

MONDAY_NOON_NY = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)



@pytest.mark.parametrize("written", ["+12125550188", "(212) 555-0188", "212.555.0188",
                                     "1-212-555-0188", "2125550188"])
async def test_dnc_matches_every_format(store: Store, written: str) -> None:
    await add_dnc(store, "+12125550188")
    d = await check(store, GateContext(make_campaign(), written, MONDAY_NOON_NY))
    assert not d.allowed and d.reason is GateReason.DNC and not d.held


async def test_dnc_is_per_workspace(store: Store) -> None:
    await add_dnc(store, "+12125550188", workspace="other")
    d = await check(store, GateContext(make_campaign(), "+12125550188", MONDAY_NOON_NY))
    assert d.allowed and d.e164 == "+12125550188"


async def test_outside_window_is_held_with_next_open(store: Store) -> None:
    early = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # 07:00 in New York
    d = await check(store, GateContext(make_campaign(), "+12125550100", early))
    assert not d.allowed and d.held and d.reason is GateReason.OUTSIDE_WINDOW
    assert d.next_open_at == datetime(2026, 1, 5, 14, 0, tzinfo=UTC)


async def test_trusted_contact_timezone_overrides_number(store: Store) -> None:
    # 12:00 New York is 09:00 LA: open; at 16:30 UTC LA is still 08:30: held.
    camp = make_campaign(timezone_policy={"source": "contact", "trust_contact_timezone": True})
    ctx = GateContext(camp, "+12125550100", datetime(2026, 1, 5, 16, 30, tzinfo=UTC),
                      contact_tz="America/Los_Angeles")
    assert (await check(store, ctx)).reason is GateReason.OUTSIDE_WINDOW


async def test_contact_timezone_the_number_is_not_in_is_held(store: Store) -> None:
    ctx = GateContext(make_campaign(), "+12125550100", MONDAY_NOON_NY,
                      contact_tz="America/Los_Angeles")
    d = await check(store, ctx)
    assert not d.allowed and d.reason is GateReason.UNKNOWN_TIMEZONE
    assert "America/New_York" in d.detail and "trust_contact_timezone" in d.detail


async def test_unknown_zone_is_held_never_called(store: Store) -> None:
    camp = make_campaign(timezone_policy={"source": "number"})
    # +888 is a global service number: no zone.
    d = await check(store, GateContext(camp, "+88810000000", MONDAY_NOON_NY))
    assert not d.allowed
    assert d.reason in (GateReason.UNKNOWN_TIMEZONE, GateReason.INVALID_NUMBER)


async def test_invalid_number_refused(store: Store) -> None:
    d = await check(store, GateContext(make_campaign(), "12", MONDAY_NOON_NY))
    assert d.reason is GateReason.INVALID_NUMBER and not d.held


async def test_every_decision_is_recorded(store: Store) -> None:
    await add_dnc(store, "+12125550188")
    camp = make_campaign()
    await check(store, GateContext(camp, "+12125550188", MONDAY_NOON_NY, contact_id=7))
    await check(store, GateContext(camp, "+12125550100", MONDAY_NOON_NY, contact_id=8,
                                   purpose="call_now"))
    rows = await store.fetchall("SELECT contact_id, allowed, reason, detail FROM gate_decisions"
                                " ORDER BY id")
    assert [(r["contact_id"], r["allowed"], r["reason"]) for r in rows] == [
        (7, 0, "dnc"), (8, 1, "ok")]
    assert rows[1]["detail"].startswith("call_now:")
