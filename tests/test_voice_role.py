"""The voice session uses the role pieces at its call sites: noise is never answered, a
reply in the callee's voice is never said, and the stored disposition comes from the
whole transcript; the daemon warms the shared prompt before it dials (fakes only; the
pieces themselves: tests/test_agent_role.py)."""

from __future__ import annotations

from pathlib import Path

from app_support import fake_engines, make_campaign, write_settings
from dialer_support import seed as dialer_seed
from test_voice_session import RigFactory, campaign, opening_done, rig
from voice_fakes import ScriptedLlm

from televox_pbx.agent.prompts import LINES, stable_prompt
from televox_pbx.app import App
from televox_pbx.store import Store
from televox_pbx.voice.interfaces import ChatMessage, ToolCall

__all__ = ["rig"]  # the fixture, shared with test_voice_session


async def test_whisper_noise_is_never_answered(rig: RigFactory) -> None:
    r = await rig(said=["Thank you for watching!"], replies=["Thanks for watching too!"])
    await opening_done(r)
    await r.tl.say(1.0)
    await r.tl.until(lambda: bool(r.stt.heard) and r.idle())
    await r.tl.wait(1.0)
    assert r.llm.calls == [] and len(r.tts.spoken) == 1, "only the opening was said"


async def test_a_reply_in_the_callees_voice_is_never_said(rig: RigFactory) -> None:
    r = await rig(said=["Sure."], replies=["Great! I'll be there on Tuesday.",
                                           "Great! We will see you on Tuesday."])
    await opening_done(r)
    await r.tl.say(0.5)
    await r.tl.until(lambda: len(r.llm.calls) == 2 and r.idle())
    said = " ".join(r.tts.spoken[1:])
    assert said == "Great! We will see you on Tuesday."
    r.call.peer_hangup()
    await r.finish()
    assert [t.text for t in r.log.records[0].turns if t.speaker == "agent"][1:] == [said]


async def test_a_yes_to_the_question_is_stored_as_interested(rig: RigFactory) -> None:
    r = await rig(said=["Yes."], replies=[[ToolCall("set_disposition",
                                                    {"disposition": "COMPLETED"}),
                                           "Wonderful, see you then. Goodbye."]],
                  camp=campaign(agent={"goal": "Confirm the appointment on Tuesday."}),
                  opening="Hi, this is Ava, an AI assistant. Can you make your appointment "
                          "on Tuesday?")
    await opening_done(r)
    await r.tl.say(0.5)
    await r.finish()  # "Goodbye." ends the call (the reply policy adds end_call)
    assert r.log.records[0].disposition == "INTERESTED"
    assert r.session.result is not None and r.session.result.ended_by == "agent"
    assert LINES.fallback not in r.tts.spoken


async def test_the_daemon_warms_running_campaigns_before_it_dials(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, {})
    camp = make_campaign()
    store = await Store.open(settings.database.path)
    try:
        await dialer_seed(store, camp, [])  # RUNNING, nobody to call
    finally:
        await store.close()
    engines = fake_engines([], [])
    app = App(settings, engines=engines, audiosocket_port=0)
    await app.start()
    try:
        assert isinstance(engines.llm, ScriptedLlm)
        [[system]] = engines.llm.prefills
        assert system == ChatMessage("system", stable_prompt(camp))
    finally:
        await app.stop()
