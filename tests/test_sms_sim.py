"""SMS campaigns and inbound texts over real AMI/TCP against the PBX simulator (issue 16):
MessageSend through the gate and the claim, recipient statuses, STOP/START, replies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from dialer_support import FakeProbe, add_dnc, seed
from pydantic import SecretStr
from sms_support import CannedResponder, sms_campaign

from televox_pbx.ami.client import AmiClient
from televox_pbx.campaigns import gate
from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.clock import FakeClock
from televox_pbx.config.settings import AmiSettings
from televox_pbx.sim import Simulator
from televox_pbx.sms.ami import AmiMessenger
from televox_pbx.sms.service import SmsService
from televox_pbx.store import Store
from televox_pbx.store import sms as sms_store
from televox_pbx.store.campaigns import get_campaign

SECRET = "sms-sim-secret"
NOON = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)  # 12:00 in New York
NIGHT = datetime(2026, 1, 6, 4, 0, tzinfo=UTC)  # 23:00 in New York
ANN, BOB, CY, DEE = "+12125550101", "+12125550102", "+12125550103", "+12125550104"
# Every test (its rig takes `store`) runs on SQLite and on the throw-away PostgreSQL.
pytestmark = pytest.mark.both_backends


@dataclass
class Rig:
    store: Store
    clock: FakeClock
    sim: Simulator
    client: AmiClient
    sms: SmsService
    dialer: Dialer
    responder: CannedResponder

    async def text_in(self, sender: str, body: str) -> None:
        before = await self.store.fetchone("SELECT COUNT(*) FROM sms_messages"
                                           " WHERE direction = 'in'")
        self.sim.deliver_message(sender, "+15550100000", body)
        for _ in range(500):  # the event crosses the socket; run() handles it
            await asyncio.sleep(0.002)
            row = await self.store.fetchone("SELECT COUNT(*) FROM sms_messages"
                                            " WHERE direction = 'in'")
            if row and before and row[0] > before[0]:
                break
        for _ in range(20):
            await asyncio.sleep(0.002)

    def bodies_to(self, number: str) -> list[str]:
        return [m.body for m in self.sim.messages if m.to == number]


@pytest.fixture
async def rig(store: Store) -> AsyncIterator[Rig]:
    clock = FakeClock(NOON)
    sim = Simulator(clock=clock, secret=SECRET, allow_placeholder_speech=True)
    port = await sim.start()
    client = AmiClient(AmiSettings(port=port, ping_interval_s=600), port=port,
                       secret=SecretStr(SECRET))
    await client.start()
    await client.wait_logged_in(5)
    responder = CannedResponder()
    sms = SmsService(store, AmiMessenger(client), clock, responder=responder)
    client.subscribe(sms.on_event)
    task = asyncio.create_task(sms.run())
    dialer = Dialer(store, _NoCalls(), clock, probe=FakeProbe())
    dialer.sms = sms
    try:
        yield Rig(store, clock, sim, client, sms, dialer, responder)
    finally:
        task.cancel()
        await client.close()
        await sim.close()


class _NoCalls:
    async def originate(self, req: object) -> None:
        raise AssertionError("an SMS campaign must not place calls")


async def _seed(store: Store, names: list[str], phones: list[str]) -> int:
    cid = await seed(store, sms_campaign(), [[p] for p in phones])
    for i, name in enumerate(names):
        await store.execute("UPDATE contacts SET name = ?, variables_json = ? WHERE id = ?",
                            (name, json.dumps({"DATE": "Jan 9"}), i + 1))
    return cid


async def _run(rig: Rig, ticks: int = 10) -> None:
    for _ in range(ticks):
        await rig.dialer.tick()
        await rig.clock.advance(1.0)


async def test_campaign_texts_each_contact_once_through_gate_and_claim(rig: Rig) -> None:
    cid = await _seed(rig.store, ["Ann", "B" * 150, "Cy", "Dee"], [ANN, BOB, CY, DEE])
    await add_dnc(rig.store, CY)
    # Dee is in a call right now: the one-live-attempt claim refuses her text.
    await rig.store.execute("INSERT INTO call_attempts(id, phone, status) VALUES"
                            " ('live-call', ?, 'answered')", (DEE,))
    await _run(rig)
    assert rig.bodies_to(ANN) == [
        "Hi Ann, your Acme appointment is on Jan 9. Reply STOP to opt out."]
    assert [m.sender for m in rig.sim.messages] == ["+15550100000"]
    sent = rig.sim.actions_named("MessageSend")[0]
    assert sent.get("Destination") == f"pjsip:PJSIP/{ANN}@trunk"
    assert rig.bodies_to(CY) == [] and rig.bodies_to(DEE) == []
    status = {r.e164: (r.status, r.reason) for r in await sms_store.recipients(rig.store, cid)}
    assert status[ANN] == ("sent", None)
    assert status[BOB][0] == "failed" and "contact 2: the message is" in (status[BOB][1] or "")
    assert status[DEE] == ("queued", None)  # waits for the call to end
    assert status[CY] == ("queued", None)  # never sent: the gate suppressed it (DNC)
    row = await rig.store.fetchone("SELECT status FROM contacts WHERE id = 3")
    assert row is not None and row[0] == "dnc"
    # Every outbound message is an attempt that held (and released) the number's claim.
    rows = await rig.store.fetchall("SELECT status, channel FROM call_attempts"
                                    " WHERE id != 'live-call'")
    assert sorted(tuple(r) for r in rows) == [("completed", "sms"), ("failed", "sms")]
    # The call ends: Dee gets her text on a later tick, once.
    await rig.store.execute("UPDATE call_attempts SET status = 'completed'"
                            " WHERE id = 'live-call'")
    await rig.store.execute("UPDATE contacts SET next_eligible_at = NULL WHERE id = 4")
    await _run(rig)
    assert len(rig.bodies_to(DEE)) == 1 and len(rig.bodies_to(ANN)) == 1
    row2 = await get_campaign(rig.store, "spring")
    assert row2 is not None and row2.state == "COMPLETED"


async def test_no_text_outside_the_window(rig: Rig) -> None:
    await rig.clock.advance((NIGHT - NOON).total_seconds())
    await _seed(rig.store, ["Ann"], [ANN])
    await _run(rig, 3)
    assert rig.sim.messages == []


async def test_a_refused_message_is_failed_with_the_reason(rig: Rig) -> None:
    cid = await _seed(rig.store, ["Ann"], [ANN])
    rig.sim.refuse_messages_to.add(ANN)
    await _run(rig, 3)
    [r] = await sms_store.recipients(rig.store, cid)
    assert (r.status, r.reason) == ("failed", "Message failed to send.")


async def test_stop_opts_out_everywhere_with_one_confirmation(rig: Rig) -> None:
    await _seed(rig.store, ["Ann"], [ANN])
    await _run(rig, 2)
    await rig.text_in("(212) 555-0101", "Stop")
    row = await rig.store.fetchone("SELECT source FROM dnc WHERE e164 = ?", (ANN,))
    assert row is not None and row[0] == "sms"  # stored in E.164
    assert rig.bodies_to(ANN)[-1].startswith("You are unsubscribed")
    await rig.text_in(ANN, "STOP")  # again: no second confirmation
    assert len(rig.bodies_to(ANN)) == 2
    # No call and no text afterwards, whoever asks.
    decision = await gate.check(rig.store, gate.GateContext(
        campaign=sms_campaign(channel="voice", sms=None), phone=ANN, now=rig.clock.now()))
    assert decision.reason is gate.GateReason.DNC
    single = await rig.sms.send_single(sms_campaign(), None, ANN, "hello")
    assert single.code == "dnc" and len(rig.bodies_to(ANN)) == 2
    # START takes the text opt-out back, with a confirmation.
    await rig.text_in(ANN, "start")
    assert await rig.store.fetchone("SELECT 1 FROM dnc WHERE e164 = ?", (ANN,)) is None
    assert rig.bodies_to(ANN)[-1].startswith("You are subscribed again")


async def test_start_leaves_an_opt_out_made_elsewhere(rig: Rig) -> None:
    await _seed(rig.store, ["Ann"], [ANN])
    await _run(rig, 2)
    await rig.store.execute("INSERT INTO dnc(e164, source) VALUES (?, 'call')", (ANN,))
    await rig.text_in(ANN, "UNSTOP")
    assert await rig.store.fetchone("SELECT 1 FROM dnc WHERE e164 = ?", (ANN,)) is not None
    assert len(rig.bodies_to(ANN)) == 1


async def test_a_reply_is_answered_by_the_agent_in_one_segment(rig: Rig) -> None:
    cid = await _seed(rig.store, ["Ann"], [ANN])
    await _run(rig, 2)
    rig.responder.answer = "We are open nine to five. " * 10
    await rig.text_in(ANN, "When are you open?")
    answer = rig.bodies_to(ANN)[-1]
    assert answer.startswith("We are open nine to five.") and len(answer) <= 160
    thread = rig.responder.threads[-1]
    assert thread[0][0] == "out" and thread[-1] == ("in", "When are you open?")
    [r] = await sms_store.recipients(rig.store, cid)
    assert r.status == "replied"


async def test_a_reply_at_night_is_held(rig: Rig) -> None:
    await _seed(rig.store, ["Ann"], [ANN])
    await _run(rig, 2)
    await rig.clock.advance((NIGHT - NOON).total_seconds())
    await rig.text_in(ANN, "When are you open?")
    assert len(rig.bodies_to(ANN)) == 1
    row = await rig.store.fetchone("SELECT status FROM sms_messages WHERE kind = 'reply'")
    assert row is not None and row[0] == "held"


async def test_a_held_reply_goes_out_when_the_window_opens(rig: Rig) -> None:
    await _seed(rig.store, ["Ann"], [ANN])
    await _run(rig, 2)
    await rig.clock.advance((NIGHT - NOON).total_seconds())
    await rig.text_in(ANN, "When are you open?")
    assert await rig.sms.send_held() == 0  # still night
    await rig.clock.advance(10 * 3600)  # 09:00 in New York: run()'s check sends it
    for _ in range(500):
        if rig.responder.answer in rig.bodies_to(ANN):
            break
        await asyncio.sleep(0.01)
    await rig.clock.advance(300)  # later checks: nothing more to send
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert rig.bodies_to(ANN).count(rig.responder.answer) == 1


async def test_a_held_reply_is_dropped_after_stop(rig: Rig) -> None:
    await _seed(rig.store, ["Ann"], [ANN])
    await _run(rig, 2)
    await rig.clock.advance((NIGHT - NOON).total_seconds())
    await rig.text_in(ANN, "When are you open?")
    await rig.text_in(ANN, "STOP")
    await rig.clock.advance(10 * 3600)
    assert await rig.sms.send_held() == 0
    assert not any(b == rig.responder.answer for b in rig.bodies_to(ANN))
