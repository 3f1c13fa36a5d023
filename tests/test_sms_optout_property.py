"""Property (issue 16): whatever the sequence of STOP and START texts (any keyword, any
case, an operator's own DNC entry mixed in), a number whose last STOP came after every
START is never callable or textable; START only ever takes back an opt-out SMS made."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from sms_support import CannedResponder, Texts, sms_campaign

from televox_pbx.campaigns import gate
from televox_pbx.campaigns.dnc import DncService
from televox_pbx.clock import FakeClock
from televox_pbx.sms.ami import InboundMessage
from televox_pbx.sms.keywords import START_WORDS, STOP_WORDS
from televox_pbx.sms.service import SmsService
from televox_pbx.store import Store

NUMBER = "+12125550101"
NOON = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)

stop = st.tuples(st.just("stop"), st.sampled_from(sorted(STOP_WORDS)))
start = st.tuples(st.just("start"), st.sampled_from(sorted(START_WORDS)))
manual = st.tuples(st.just("manual"), st.just(""))
casing = st.sampled_from([str.upper, str.lower, str.title])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(stop, start, manual), casing), max_size=12))
def test_no_number_callable_after_its_last_stop(events: list[tuple[tuple[str, str],
                                                               object]]) -> None:
    asyncio.run(_check([(kind, word, case) for (kind, word), case in events]))


async def _check(events: list[tuple[str, str, object]]) -> None:
    store = await Store.open(":memory:")
    try:
        clock = FakeClock(NOON)
        texts = Texts()
        sms = SmsService(store, texts, clock, responder=CannedResponder())
        manual_listed = False
        last_stop = last_start = -1
        for i, (kind, word, case) in enumerate(events):
            if kind == "manual":
                await DncService(store, clock=clock).add([NUMBER], source="manual")
                manual_listed = True
                continue
            assert callable(case)
            await sms.on_inbound(InboundMessage(NUMBER, "+15550100000", str(case(word))))
            if kind == "stop":
                last_stop = i
            else:
                last_start = i
            await clock.advance(1.0)
        decision = await gate.check(store, gate.GateContext(
            campaign=sms_campaign(channel="voice", sms=None), phone=NUMBER, now=clock.now()))
        listed = decision.reason is gate.GateReason.DNC
        if last_stop > last_start or manual_listed:
            assert listed
            assert (await sms.send_single(sms_campaign(), None, NUMBER, "hi")).code == "dnc"
        row = await store.fetchone("SELECT source FROM dnc WHERE e164 = ?", (NUMBER,))
        if row is not None and row[0] == "sms":
            assert last_stop > last_start  # an SMS opt-out stands only while not undone
        # Confirmations: one per new SMS opt-out and one per undone one, nothing else.
        assert all(b.startswith(("You are unsubscribed", "You are subscribed"))
                   for *_, b in texts.sent)
    finally:
        await store.close()
