"""The store modules of SMS, custom tool calls and inbound routes, on SQLite and on the
throw-away PostgreSQL (both_backends; a missing PostgreSQL fails, never skips)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dialer_support import add_dnc, make_campaign, seed

from televox_pbx.agent.custom_tools import ToolCallRecord
from televox_pbx.clock import FakeClock
from televox_pbx.store import Store
from televox_pbx.store import sms as sms_store
from televox_pbx.store.attempts import ClaimRefused
from televox_pbx.store.person_history import record_inbound_route
from televox_pbx.store.tool_calls import StoreToolCalls, tool_calls_of

pytestmark = pytest.mark.both_backends

NOW = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)
ANN, BOB = "+12125550101", "+12125550102"


async def test_message_claims_threads_and_recipients(store: Store) -> None:
    cid = await seed(store, make_campaign(), [[ANN], [BOB]])  # the channel is not stored here
    await sms_store.claim_message(store, "m1", ANN, NOW, "default", cid)
    with pytest.raises(ClaimRefused) as live:  # one live attempt per number
        await sms_store.claim_message(store, "m2", ANN, NOW, "default", cid)
    assert live.value.code == "in_call"
    await sms_store.finish_message(store, sms_store.OutMessage(
        ANN, "Hi Ann", "campaign", cid, 1, "m1"), True, None, NOW)
    await add_dnc(store, BOB)
    with pytest.raises(ClaimRefused) as dnc:
        await sms_store.claim_message(store, "m3", BOB, NOW, "default", cid)
    assert dnc.value.code == "dnc"
    await sms_store.finish_message(store, sms_store.OutMessage(
        BOB, "Hi Bo", "campaign", cid, 2, None), False, "refused: on: the DNC list", NOW)
    later = NOW + timedelta(minutes=1)
    await sms_store.record(store, ANN, "in", "reply", "yes please", "received", later,
                           campaign_id=cid, contact_id=1)
    assert [(r.e164, r.status, r.reason) for r in await sms_store.recipients(store, cid)] \
        == [(ANN, "replied", None), (BOB, "failed", "refused: on: the DNC list")]
    assert await sms_store.thread(store, ANN) == [("out", "Hi Ann"), ("in", "yes please")]
    assert await sms_store.thread_owner(store, ANN) == (cid, 1)
    assert [(t.direction, t.body) for t in await sms_store.contact_thread(store, cid, 1)] \
        == [("out", "Hi Ann"), ("in", "yes please")]
    assert await sms_store.dnc_source(store, BOB, "default") is not None
    assert await sms_store.dnc_source(store, ANN, "default") is None


async def test_held_replies_are_superseded_by_number_or_by_id(store: Store) -> None:
    first = await sms_store.record(store, ANN, "out", "reply", "later", "held", NOW)
    await sms_store.record(store, BOB, "out", "reply", "later too", "held", NOW)
    assert [h[1] for h in await sms_store.held_replies(store)] == [ANN, BOB]
    await sms_store.supersede_held(store, row_id=first, reason="window")
    assert [h[1] for h in await sms_store.held_replies(store)] == [BOB]
    await sms_store.supersede_held(store, e164=BOB, reason="stop")
    assert await sms_store.held_replies(store) == []


async def test_a_not_sent_message_is_closed(store: Store) -> None:
    await sms_store.claim_message(store, "m1", ANN, NOW, "default")
    await sms_store.cancel_message(store, "m1", "the PBX link is down")
    row = await store.fetchone("SELECT status, notes FROM call_attempts WHERE id = 'm1'")
    assert row is not None and (row["status"], row["notes"]) == ("not_sent",
                                                                 "the PBX link is down")


async def test_tool_calls_and_inbound_routes(store: Store) -> None:
    log = StoreToolCalls(store, FakeClock(NOW))
    done = ToolCallRecord("crm_lookup", '{"id": 7}', "ok", 200, 35, 120)
    await log.record("call-1", "support", done)
    await log.record("call-1", "support", ToolCallRecord("crm_lookup", "{}", "timeout",
                                                         None, 2000, 0))
    got = await tool_calls_of(store, "call-1")
    assert got[0] == done and [t.status for t in got] == ["ok", "timeout"]
    assert await tool_calls_of(store, "call-2") == []
    await record_inbound_route(store, "in-1", "+15550100000", "support")
    await record_inbound_route(store, "in-1", "+15550100000", "sales")  # rerouted
    row = await store.fetchone("SELECT agent FROM inbound_routes WHERE call_id = 'in-1'")
    assert row is not None and row["agent"] == "sales"
