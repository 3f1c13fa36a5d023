"""Grounded turns in a call (scripted fakes, FakeClock): the knowledge note follows the
callee's words (the system prompt, the agent's fixed part first, never changes); a
question the knowledge covers is answered as stored, one it does not is declined with a
callback offered, both without the LLM; requests and statements go to the LLM."""

from __future__ import annotations

import asyncio
from pathlib import Path

from knowledge_support import REPO, new_index, new_index_async
from test_voice_session import PHONE, Rig, opening_done
from voice_fakes import (
    FakeCall,
    FakeCallbacks,
    FakeDnc,
    FakeTransfer,
    LoudnessVad,
    MemoryCallLog,
    ScriptedLlm,
    ScriptedStt,
    ScriptedTts,
    Timeline,
)

from televox_pbx.agent.prompts import agent_prompt
from televox_pbx.clock import FakeClock
from televox_pbx.config.loader import load_campaign
from televox_pbx.knowledge.grounding import DECLINE, HEDGE, NOTE_CHARS, Grounding, sentences
from televox_pbx.knowledge.query import group, is_question, stem
from televox_pbx.voice.session import CallPorts, Engines, SessionConfig
from televox_pbx.voice.session_factory import VoiceSessionFactory

RECALL = load_campaign(REPO / "config" / "campaigns" / "recall.yaml")


async def _call(tmp_path: Path, said: list[str], replies: list[str]) -> Rig:
    index = await new_index_async(tmp_path)
    assert RECALL.agent.profile is not None
    index.build(RECALL.agent.profile)
    clock = FakeClock()
    call = FakeCall(clock)
    stt = ScriptedStt(said, clock=clock, delay_s=0.1)
    llm = ScriptedLlm(list(replies), clock=clock)
    tts = ScriptedTts(clock=clock)
    dnc, callbacks, transfer, log = (FakeDnc(clock), FakeCallbacks(), FakeTransfer(clock),
                                     MemoryCallLog())
    factory = VoiceSessionFactory(
        Engines(LoudnessVad(), stt, llm, tts),
        CallPorts(dnc, callbacks, log, transfer, knowledge=index),
        clock, SessionConfig(recordings_dir=tmp_path / "rec"))
    session = factory.create(campaign=RECALL, call_id=call.call_id, phone=PHONE,
                             variables={"name": "Sam"}, zone="America/New_York")
    task = asyncio.create_task(session(call))
    r = Rig(clock, call, Timeline(clock, call), session, stt, llm, tts, dnc, callbacks,
            transfer, log, task, [asyncio.create_task(call.pacer())])
    await clock.advance(0.02)
    return r


async def _stop(r: Rig) -> None:
    for t in [r.task, *r.helpers]:
        t.cancel()
    await asyncio.gather(r.task, *r.helpers, return_exceptions=True)


async def test_clear_faq_match_is_spoken_as_stored_without_the_llm(tmp_path: Path) -> None:
    r = await _call(tmp_path, ["How much does a crown cost?"], [])
    try:
        await opening_done(r)
        n = len(r.tts.spoken)
        await r.tl.say(1.0)
        await r.tl.until(lambda: len(r.tts.spoken) > n and r.idle())
        assert " ".join(r.spoken_after(n)) == (
            "A porcelain crown costs 1,100 dollars per tooth without insurance.")
        assert r.llm.calls == []
        assert r.session.messages[-1].content.startswith("A porcelain crown costs")
    finally:
        await _stop(r)


async def test_a_question_the_knowledge_lacks_is_declined_without_the_llm(
        tmp_path: Path) -> None:
    r = await _call(tmp_path, ["Do you offer Botox injections?"], [])
    try:
        await opening_done(r)
        n = len(r.tts.spoken)
        await r.tl.say(1.0)
        await r.tl.until(lambda: len(r.tts.spoken) > n and r.idle())
        assert " ".join(r.spoken_after(n)) == DECLINE
        assert r.llm.calls == []
    finally:
        await _stop(r)


async def test_a_request_goes_to_the_llm_though_its_words_are_in_the_knowledge(
        tmp_path: Path) -> None:
    r = await _call(tmp_path, ["Can you call me back after hours?"], ["Of course."])
    try:
        await opening_done(r)
        await r.tl.say(1.0)
        await r.tl.until(lambda: bool(r.llm.calls) and r.idle())
        assert r.llm.calls
    finally:
        await _stop(r)


async def test_a_question_about_the_call_goes_to_the_llm_whatever_else_the_turn_says(
        tmp_path: Path) -> None:
    """On the real PBX "I have a minute. What is it about?" was declined ("I don't have
    that information"): "minute", which the knowledge never uses, made it look like a
    question about something unknown. Only the asking sentence's words count."""
    r = await _call(tmp_path, ["I have a minute. What is it about?"],
                    ["I'm calling to help you book your checkup."])
    try:
        await opening_done(r)
        n = len(r.tts.spoken)
        await r.tl.say(1.0)
        await r.tl.until(lambda: len(r.tts.spoken) > n and r.idle())
        assert r.llm.calls
        assert " ".join(r.spoken_after(n)) != DECLINE
    finally:
        await _stop(r)


async def test_knowledge_note_follows_the_callees_words(tmp_path: Path) -> None:
    said = "I bought a whitening kit and I haven't opened it, I want to return it."
    r = await _call(tmp_path, [said], ["Yes, within 30 days."])
    try:
        await opening_done(r)
        await r.tl.say(1.0)
        await r.tl.until(lambda: bool(r.llm.calls) and r.idle())
        messages = r.llm.calls[-1]
        assert RECALL.agent.profile is not None
        assert messages[0].role == "system"
        assert messages[0].content.startswith(agent_prompt(RECALL.agent.profile))
        assert messages[0] == r.session.messages[0], "the system prompt never changes"
        # The callee's turn (a turn hint of the reply policy may follow it).
        user = next(m.content for m in reversed(messages) if m.content.startswith(said))
        assert user.startswith(said + "\n[Knowledge: Refunds: Whitening kits may be returned")
        # The transcript keeps the callee's words only.
        assert r.session.context.callee_texts == [said]
    finally:
        await _stop(r)


def test_note_stays_within_its_budget_and_unrelated_words_get_none(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    assert RECALL.agent.profile is not None
    index.build(RECALL.agent.profile)
    ground = Grounding(index, "front-desk")
    note = ground.note("What if I'm running twenty minutes late to my appointment?")
    assert note is not None and len(note) <= NOTE_CHARS + len("[Knowledge: ]")
    assert ground.note("What is it you do?") is None


def test_verdicts_answer_hedge_decline_or_leave_it_to_the_llm(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    assert RECALL.agent.profile is not None
    index.build(RECALL.agent.profile)
    ground = Grounding(index, "front-desk", variables={"APPOINTMENT_DAY": "Thursday"})
    crown = ground.verdict("What's the fee for a porcelain crown?")
    assert crown is not None and crown.kind == "answer"
    assert crown.text == "A porcelain crown costs 1,100 dollars per tooth without insurance."
    # A document chunk: its best sentence, without its heading.
    teen = ground.verdict("Can a teenager come alone to a cleaning with a consent form?")
    assert teen is not None and teen.text.startswith("A signed consent form lets a teenager")
    # The knowledge covers the insurance, not Humana: the nearest fact, said as such.
    humana = ground.verdict("Do you accept Humana dental insurance?")
    assert humana is not None and humana.kind == "hedge"
    assert humana.text == HEDGE.format(
        fact="We accept Delta Dental, Cigna, Aetna, MetLife and Guardian.")
    botox = ground.verdict("Do you offer Botox injections?")
    assert botox is not None and (botox.kind, botox.text) == ("decline", DECLINE)
    # business_info is knowledge too.
    phone = ground.verdict("What's your phone number?")
    assert phone is not None and "555 0100 200" in phone.text
    # Not for the knowledge: a request, a statement, the call's own variables, small talk,
    # a question too vague to say what it is about.
    for turn in ("Can you call me back tomorrow?", "Can I move my appointment?",
                 "Yes, that works for me.", "Is it still on Thursday?", "Who is this?",
                 "How much does it cost?"):
        assert ground.verdict(turn) is None, turn
    assert ground.direct("Do you offer Botox injections?") == DECLINE


def test_sentences_and_stems_for_matching() -> None:
    assert sentences("Dr. Chen removes them. Complex cases go to Dr. Lee. Call us.") == [
        "Dr. Chen removes them.", "Complex cases go to Dr. Lee.", "Call us."]
    assert {stem(w) for w in ("filled", "filling", "fillings")} == {"fill"}
    assert stem("location") == stem("located") and stem("cancelled") == stem("cancel")
    assert group("car") == group("parking")  # a caller's word for what the FAQ says
    assert is_question("do you take Cigna") and not is_question("I take Cigna.")
