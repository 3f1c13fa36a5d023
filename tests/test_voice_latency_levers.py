"""The latency levers: speculative transcription at a pause, short first clauses, and the
KV-state helper of the LLM engine. Fake engines on a FakeClock; no models."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.voice.engines.llm_states import common_prefix
from televox_pbx.voice.fakes import (
    FakeCall,
    FakeCallbacks,
    FakeDnc,
    LoudnessVad,
    MemoryCallLog,
    ScriptedLlm,
    ScriptedStt,
    ScriptedTts,
    Timeline,
)
from televox_pbx.voice.session import CallPorts, Engines, SessionConfig, VoiceSessionFactory
from televox_pbx.voice.turns import ClauseSplitter

CAMPAIGN = Campaign.model_validate({
    "name": "levers", "caller_id": "+15550100000", "trunk": "trunk",
    "agent": {"persona_name": "Ava", "business": "Acme Solar",
              "opening_line": "Hi, this is Ava, an AI assistant from Acme Solar.",
              "goal": "Book a consultation."}})


@dataclass
class WhisperLikeStt(ScriptedStt):
    worth_speculating: bool = True


async def _session(said: list[str]) -> tuple[FakeClock, Timeline, WhisperLikeStt, ScriptedLlm,
                                              asyncio.Task[None], asyncio.Task[None]]:
    clock = FakeClock()
    call = FakeCall(clock)
    stt = WhisperLikeStt(said, clock=clock, delay_s=0.1)
    llm = ScriptedLlm(["Great."], clock=clock)
    factory = VoiceSessionFactory(
        Engines(LoudnessVad(), stt, llm, ScriptedTts(clock=clock)),
        CallPorts(FakeDnc(clock), FakeCallbacks(), MemoryCallLog()), clock, SessionConfig())
    session = factory.create(campaign=CAMPAIGN, call_id=call.call_id, phone="+15550198000")
    task = asyncio.create_task(session(call))
    pacer = asyncio.create_task(call.pacer())
    tl = Timeline(clock, call)
    await clock.advance(0.02)
    await tl.until(lambda: call.output.queued_seconds == 0 and session._task is None)
    return clock, tl, stt, llm, task, pacer


async def _stop(*tasks: asyncio.Task[None]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_transcription_starts_at_the_pause_and_is_reused_at_the_endpoint() -> None:
    _clock, tl, stt, llm, task, pacer = await _session(["Yes, tell me more."])
    await tl.say(1.0)
    await tl.wait(0.3)
    assert len(stt.heard) == 1, "a 0.2 s pause starts a speculative transcription"
    await tl.until(lambda: bool(llm.calls))
    assert len(stt.heard) == 1, "the endpoint reuses it instead of transcribing again"
    assert llm.calls[0][-1].content == "Yes, tell me more."
    await _stop(task, pacer)


async def test_speech_after_the_pause_discards_the_speculation() -> None:
    _clock, tl, stt, llm, task, pacer = await _session(["Yes,", "Yes, tell me more."])
    await tl.say(1.0)
    await tl.wait(0.3)
    await tl.say(0.6)
    await tl.until(lambda: bool(llm.calls))
    assert llm.calls[0][-1].content == "Yes, tell me more.", "the whole utterance counts"
    assert stt.heard[-1].seconds > stt.heard[0].seconds
    await _stop(task, pacer)


def test_first_clause_may_be_short() -> None:
    sp = ClauseSplitter(min_chars=12, first_min_chars=4)
    assert sp.push("Sure, I can do that, ok. Then") == ["Sure,", "I can do that,"]
    assert ClauseSplitter(12).push("Sure, I can do that. ") == ["Sure, I can do that."]


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
