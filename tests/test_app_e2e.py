"""The whole daemon in one process: App with the embedded simulator over real TCP (AMI and
AudioSocket on 127.0.0.1, ephemeral ports), scripted fake engines instead of models.

The campaign's calling window is open around the clock (legal_override, every weekday,
fixed zone UTC), so these tests do not depend on the time of day they run at.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from app_support import fake_engines, make_campaign, write_settings
from voice_fakes import ScriptedLlm

from televox_pbx.app import App
from televox_pbx.campaigns.controls import Action, apply
from televox_pbx.campaigns.importer import import_records
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.settings import Settings
from televox_pbx.domain import Disposition
from televox_pbx.store import Store
from televox_pbx.store.campaigns import upsert_campaign
from televox_pbx.store.dnc import is_on_dnc
from televox_pbx.store.transcripts import recordings, transcript
from televox_pbx.voice.interfaces import ToolCall
from televox_pbx.voice.session import Engines

ANSWER = "+12125550101"
BUSY = "+12125550102"
NO_ANSWER = "+12125550103"
OPT_OUT = "+12125550104"
LONG_CALL = "+12125550105"

# The callee's line; the fake STT decides what it "said" (the audio is only a tone).
CALLEE_LINE = "Yes, that sounds good, tell me a bit more about it please."


async def seed(app: App, campaign: Campaign, phones: Sequence[str]) -> None:
    """Import the contacts with the importer, then start the campaign (operator action)."""
    assert app.store is not None
    campaign_id = await upsert_campaign(app.store, campaign)
    await import_records(app.store, campaign, campaign_id,
                         [{"name": f"Lead {i}", "phone": p} for i, p in enumerate(phones)],
                         source="test", actor="test")
    row = await apply(app.store, campaign.name, Action.START, datetime.now(UTC))
    assert row.state == "RUNNING"


async def run_app(settings: Settings, engines: Engines, campaign: Campaign,
                  phones: Sequence[str], limit_s: float = 20.0) -> int:
    """Run the daemon until the campaign is done; returns the Originates the sim saw."""
    app = App(settings, engines=engines, audiosocket_port=0)
    await app.start()
    try:
        await seed(app, campaign, phones)
        await asyncio.wait_for(app.run(asyncio.Event(), exit_when_idle=True), limit_s)
        return len(app.sim.actions_named("Originate"))
    finally:
        await app.stop()


async def contact_statuses(store: Store) -> dict[str, str]:
    rows = await store.fetchall(
        "SELECT p.e164, c.status FROM contacts c JOIN contact_phones p ON p.contact_id = c.id")
    return {str(r["e164"]): str(r["status"]) for r in rows}


async def test_campaign_end_to_end(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, {
        ANSWER: {"behaviour": "answer", "ring_s": 0.2, "script": [{"say": CALLEE_LINE}]},
        BUSY: {"behaviour": "busy"},
        NO_ANSWER: {"behaviour": "no_listener"},
    })
    engines = fake_engines(
        ["Yes, that sounds good, tell me more."],
        [["Great, someone will email you the details. Goodbye! ",
          ToolCall("set_disposition", {"disposition": "interested"}),
          ToolCall("end_call", {"reason": "done"})]])
    originates = await run_app(settings, engines, make_campaign(), [ANSWER, BUSY, NO_ANSWER])

    assert originates == 3  # exactly one per attempt, never re-sent
    store = await Store.open(settings.database.path)
    try:
        assert await contact_statuses(store) == {
            ANSWER: "completed", BUSY: "busy", NO_ANSWER: "no_answer"}
        attempts = await store.fetchall("SELECT id, phone, status, disposition FROM call_attempts")
        assert len(attempts) == 3
        by_phone = {str(a["phone"]): a for a in attempts}
        answered = by_phone[ANSWER]
        assert answered["status"] == "completed"
        assert answered["disposition"] == Disposition.INTERESTED.value
        turns = await transcript(store, str(answered["id"]))
        speakers = [t.speaker for t in turns]
        assert speakers[:3] == ["agent", "callee", "agent"], turns
        assert "AI assistant" in turns[0].text and "Lead 0" in turns[0].text
        assert turns[1].text == "Yes, that sounds good, tell me more."
        [(path, seconds)] = await recordings(store, str(answered["id"]))
        assert path.exists() and seconds and seconds > 1.0
        assert by_phone[BUSY]["status"] == "busy"
        assert by_phone[NO_ANSWER]["status"] == "no_answer"
        for phone in (BUSY, NO_ANSWER):
            assert not await transcript(store, str(by_phone[phone]["id"]))
        events = await store.fetchall("SELECT event, call_id FROM ami_events")
        names = {str(e["event"]) for e in events}
        assert {"OriginateResponse", "Hangup"} <= names
        logged_calls = {str(e["call_id"]) for e in events if e["call_id"]}
        assert str(answered["id"]) in logged_calls
    finally:
        await store.close()


async def test_opt_out_on_the_call_puts_the_number_on_dnc(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, {
        OPT_OUT: {"behaviour": "answer", "ring_s": 0.2, "script": [{"say": CALLEE_LINE}]}})
    # The phrase alone decides (before the LLM), so the model is never asked.
    engines = fake_engines(["Please take me off your list."], [])
    originates = await run_app(settings, engines, make_campaign(), [OPT_OUT])

    assert originates == 1
    assert isinstance(engines.llm, ScriptedLlm) and engines.llm.calls == []
    store = await Store.open(settings.database.path)
    try:
        assert await is_on_dnc(store, OPT_OUT)
        assert await contact_statuses(store) == {OPT_OUT: "opted_out"}
        row = await store.fetchone("SELECT status, disposition FROM call_attempts")
        assert row is not None and row["disposition"] == Disposition.OPT_OUT.value
    finally:
        await store.close()


async def test_stop_mid_call_shuts_down_cleanly(tmp_path: Path) -> None:
    """SIGTERM while a call is up: dialing stops, the call finishes, its result is
    stored, and every socket and the store close."""
    settings = write_settings(tmp_path, {
        LONG_CALL: {"behaviour": "answer", "ring_s": 0.2, "hangup_after_s": 3.0,
                    "script": [{"pause_s": 0.1}]},
        ANSWER: {"behaviour": "answer", "ring_s": 0.2}})
    engines = fake_engines([], [])
    campaign = make_campaign(pacing={"calls_per_minute": 1, "max_concurrent": 1})
    app = App(settings, engines=engines, audiosocket_port=0)
    await app.start()
    stop = asyncio.Event()
    try:
        await seed(app, campaign, [LONG_CALL, ANSWER])
        running = asyncio.create_task(app.run(stop))

        for _ in range(200):  # until the call is up (AudioSocket connected)
            if app.audiosocket is not None and app.audiosocket.stats().active:
                break
            await asyncio.sleep(0.05)
        assert app.audiosocket is not None and app.audiosocket.stats().active == 1
        stop.set()
        await asyncio.wait_for(running, 10)
    finally:
        await asyncio.wait_for(app.stop(), 15)
    assert app.store is None
    assert len(app.sim.actions_named("Originate")) == 1  # nothing new after the stop
    store = await Store.open(settings.database.path)
    try:
        rows = await store.fetchall("SELECT phone, status FROM call_attempts")
        assert [(r["phone"], r["status"]) for r in rows] == [(LONG_CALL, "completed")]
        statuses = await contact_statuses(store)
        assert statuses[ANSWER] == "pending"
        # Nobody spoke on it: a no-answer, and with one attempt per phone, final.
        assert statuses[LONG_CALL] == "no_answer"
    finally:
        await store.close()


async def test_inbound_call_is_answered_by_the_dialled_numbers_agent(tmp_path: Path) -> None:
    """The simulator rings the daemon: the AMI announcement (with the number dialled)
    lets the AudioSocket UUID in, that number's agent answers, and the call is stored as
    an inbound attempt."""
    from app_support import with_number_agents

    from televox_pbx.sim.scenario import Callee

    settings = with_number_agents(write_settings(tmp_path, {}),
                                  {"+15550100300": "frontdesk"})
    engines = fake_engines([CALLEE_LINE], ["Sure, I can help with that. Goodbye."])
    app = App(settings, engines=engines, audiosocket_port=0)
    await app.start()
    stop = asyncio.Event()
    running = asyncio.create_task(app.run(stop))
    try:
        caller = Callee(behaviour="answer", script=[{"say": CALLEE_LINE}], hangup_after_s=4.0)
        call_id = await app.sim.start_inbound("+12125550199", callee=caller,
                                              dialed="15550100300")
        await asyncio.wait_for(app.sim.wait_call_ended(call_id), 15)
        assert app.audiosocket is not None and app.audiosocket.stats().refused == 0
        assert app.store is not None
        for _ in range(100):  # the session saves its result just after the hang-up
            rows = await transcript(app.store, call_id)
            if rows:
                break
            await asyncio.sleep(0.05)
        assert rows and rows[0].speaker == "agent" and "AI assistant" in rows[0].text
        for _ in range(100):  # closed once the session has returned
            row = await app.store.fetchone(
                "SELECT direction, phone, status FROM call_attempts WHERE id = ?", (call_id,))
            if row is not None and row["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        assert row is not None and row["direction"] == "inbound"
        assert row["phone"] == "+12125550199" and row["status"] == "completed"
        assert app._results is not None and not app._results._results  # nothing kept
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await asyncio.wait_for(app.stop(), 15)


async def test_call_to_an_unknown_number_is_refused_and_logged(tmp_path: Path) -> None:
    from app_support import with_number_agents

    from televox_pbx.sim.scenario import Callee

    settings = with_number_agents(write_settings(tmp_path, {}),
                                  {"+15550100300": "frontdesk"})
    app = App(settings, engines=fake_engines([], []), audiosocket_port=0)
    await app.start()
    stop = asyncio.Event()
    running = asyncio.create_task(app.run(stop))
    try:
        caller = Callee(behaviour="answer", script=[{"say": CALLEE_LINE}], hangup_after_s=4.0)
        call_id = await app.sim.start_inbound("+12125550199", callee=caller,
                                              dialed="+15550100999")
        await asyncio.wait_for(app.sim.wait_call_ended(call_id), 15)
        assert app.audiosocket is not None and app.audiosocket.stats().refused == 1
        assert app.eventlog is not None and app.store is not None
        await app.eventlog.flush()
        rows = await app.store.fetchall(
            "SELECT event, call_id FROM ami_events WHERE event = 'TelevoxInboundRefused'")
        assert [(r["event"], r["call_id"]) for r in rows] == [
            ("TelevoxInboundRefused", call_id)]
        assert await app.store.fetchall(
            "SELECT id FROM call_attempts WHERE direction = 'inbound'") == []
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await asyncio.wait_for(app.stop(), 15)


async def test_unannounced_audiosocket_uuid_is_refused(tmp_path: Path) -> None:
    """A connection whose UUID nobody expects (no attempt, no inbound announcement) is
    refused; the daemon keeps running."""
    import uuid

    from televox_pbx.audiosocket.codec import encode_uuid

    settings = write_settings(tmp_path, {})
    app = App(settings, engines=fake_engines([], []), audiosocket_port=0)
    await app.start()
    try:
        assert app.audiosocket is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", app.audiosocket.port)
        writer.write(encode_uuid(uuid.uuid4()))
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed on us
        writer.close()
        assert app.audiosocket.stats().refused == 1
    finally:
        await app.stop()


async def test_only_the_daemon_answers_inbound_calls(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-off App (`televox call`, recover=False) has no node identity: it answers no
    inbound call, whose row would be no node's on a cluster. The daemon answers them."""
    from televox_pbx.app_calls import CallHandlers

    async def handler(call: object) -> None:  # the handler of the numbers with an agent
        return None
    monkeypatch.setattr(CallHandlers, "inbound", lambda self: handler)
    settings = write_settings(tmp_path, {})
    for recover, answers in ((False, False), (True, True)):
        app = App(settings, engines=fake_engines([], []), audiosocket_port=0,
                  recover=recover)
        await app.start()
        try:
            assert app.audiosocket is not None
            assert (app.audiosocket.router.inbound_handler is handler) is answers
        finally:
            await app.stop()
