"""The latency levers: a turn started provisionally at the callee's first pause, short
first clauses, and the KV-state helper of the LLM engine. Fake engines on a FakeClock; no models."""

from __future__ import annotations

import asyncio

import pytest
from voice_fakes import (
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

from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.voice.engines.llm_states import common_prefix
from televox_pbx.voice.session import (
    CallPorts,
    Engines,
    SessionConfig,
    VoiceSession,
)
from televox_pbx.voice.session_factory import VoiceSessionFactory
from televox_pbx.voice.trim import trim_leading_silence
from televox_pbx.voice.turns import ClauseSplitter

CAMPAIGN = Campaign.model_validate({
    "name": "levers", "caller_id": "+15550100000", "trunk": "trunk", "amd": "off",
    "agent": {"persona_name": "Ava", "business": "Acme Solar",
              "opening_line": "Hi, this is Ava, an AI assistant from Acme Solar.",
              "goal": "Book a consultation."}})


async def _session(said: list[str], replies: list[str], *, per_token_s: float = 0.0,
                   tts_delay_s: float = 0.0, config: SessionConfig | None = None
                   ) -> tuple[FakeClock, FakeCall, Timeline, ScriptedStt, ScriptedLlm,
                              VoiceSession, asyncio.Task[None], asyncio.Task[None]]:
    clock = FakeClock()
    call = FakeCall(clock)
    stt = ScriptedStt(said, clock=clock, delay_s=0.1)
    llm = ScriptedLlm(replies, clock=clock, first_token_s=0.05, per_token_s=per_token_s)
    factory = VoiceSessionFactory(
        Engines(LoudnessVad(), stt, llm, ScriptedTts(clock=clock, delay_s=tts_delay_s)),
        CallPorts(FakeDnc(clock), FakeCallbacks(), MemoryCallLog()), clock,
        config or SessionConfig())
    session = factory.create(campaign=CAMPAIGN, call_id=call.call_id, phone="+15550198000")
    task = asyncio.create_task(session(call))
    pacer = asyncio.create_task(call.pacer())
    tl = Timeline(clock, call)
    await clock.advance(0.02)
    await tl.until(lambda: call.output.queued_seconds == 0 and session._task is None)
    return clock, call, tl, stt, llm, session, task, pacer


async def _stop(*tasks: asyncio.Task[None]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_turn_starts_at_the_pause_but_is_held_until_the_endpoint() -> None:
    clock, call, tl, stt, llm, session, task, pacer = await _session(
        ["Yes, tell me more."], ["Great."])
    frames = len(call.output.audio_frames())
    await tl.say(1.0)
    spoke_until = clock.monotonic()
    await tl.wait(0.4)
    assert len(stt.heard) == 1 and len(llm.calls) == 1, "the turn starts at a 0.2 s pause"
    assert llm.calls[0][-1].content == "Yes, tell me more."
    assert len(call.output.audio_frames()) == frames, "nothing is said before the endpoint"
    assert session.messages[-1].role == "assistant", "nor put in the context"
    await tl.until(lambda: len(call.output.audio_frames()) > frames)
    # The reply was ready before the endpoint (0.7 s), so it plays right after it.
    assert clock.monotonic() - spoke_until == pytest.approx(0.72, abs=0.05)
    assert len(stt.heard) == 1 and len(llm.calls) == 1, "the provisional turn was the turn"
    assert [m.role for m in session.messages[-2:]] == ["user", "assistant"]
    await _stop(task, pacer)


async def test_speech_after_the_pause_cancels_the_provisional_turn() -> None:
    _clock, call, tl, stt, llm, session, task, pacer = await _session(
        ["Yes,", "Yes, tell me more."], ["Wrong.", "Great."])
    frames = len(call.output.audio_frames())
    await tl.say(1.0)
    await tl.wait(0.35)  # transcribed "Yes," and the LLM was asked
    assert llm.calls and llm.calls[0][-1].content == "Yes,"
    await tl.say(0.6)
    assert len(call.output.audio_frames()) == frames, "the held reply was never played"
    await tl.until(lambda: len(call.output.audio_frames()) > frames and session._task is None
                   and call.output.queued_seconds == 0)
    assert llm.calls[-1][-1].content == "Yes, tell me more.", "the whole utterance counts"
    assert stt.heard[-1].seconds > stt.heard[0].seconds
    users = [m.content for m in session.messages if m.role == "user"]
    assert users == ["Yes, tell me more."], "the dropped turn left nothing in the context"
    assert session.messages[-1].content == "Great."
    assert all(m.content != "Wrong." for m in session.messages)
    await _stop(task, pacer)


async def test_a_word_still_fading_out_when_the_turn_took_its_audio_is_heard_again() -> None:
    """...and heard again as soon as the sound has died away, not at the endpoint."""
    clock, call, tl, stt, llm, session, task, pacer = await _session(
        ["Yes, that work.", "Yes, that works."], ["Wrong.", "Great."])
    frames = len(call.output.audio_frames())
    await tl.say(1.0)
    voice_end = clock.monotonic()
    await tl.wait(0.25)  # the provisional turn took the audio so far and asked the LLM
    assert len(stt.heard) == 1 and len(llm.calls) == 1
    await tl.say(0.1, amplitude=120.0)  # a faint final "s": -34 dB, not speech to the VAD
    await tl.until(lambda: len(stt.heard) == 2, limit_s=1.0)
    # 0.1 s after the faint sound ended, well before the endpoint (0.7 s after the voice).
    assert clock.monotonic() - voice_end == pytest.approx(0.45, abs=0.03)
    await tl.until(lambda: len(call.output.audio_frames()) > frames)
    assert clock.monotonic() - voice_end == pytest.approx(0.72, abs=0.05), \
        "the redone turn was ready at the endpoint"
    assert llm.calls[-1][-1].content == "Yes, that works.", "redone on the whole utterance"
    assert len(stt.heard) == 2 and stt.heard[-1].seconds > stt.heard[0].seconds
    await tl.until(lambda: session._task is None)
    assert [m.content for m in session.messages if m.role == "user"] == ["Yes, that works."]
    assert all(m.content != "Wrong." for m in session.messages)
    await _stop(task, pacer)


def test_first_clause_may_be_short() -> None:
    sp = ClauseSplitter(min_chars=12, first_min_chars=4)
    assert sp.push("Sure, I can do that, ok. Then") == ["Sure,", "I can do that,"]
    assert ClauseSplitter(12).push("Sure, I can do that. ") == ["Sure, I can do that."]


def _split(text: str, max_words: int = 6) -> list[str]:
    sp = ClauseSplitter(12, 4, max_words)
    out = [c for word in text.split(" ") for c in sp.push(word + " ")]
    rest = sp.flush()
    return out + ([rest] if rest else [])


def test_a_long_first_sentence_is_cut_before_a_phrase_word() -> None:
    assert _split("The consultation involves checking the roof and getting an engineer "
                  "out. It is free.") == [
        "The consultation involves checking the roof", "and getting an engineer out.",
        "It is free."]
    assert _split("He would need to visit the home.") == ["He would need",
                                                          "to visit the home."]


def test_a_forced_first_cut_never_ends_on_a_small_word() -> None:
    assert _split("I got your number from the phone system.") == [
        "I got your number", "from the phone system."]
    assert _split("Yes, that is a problem.") == ["Yes,", "that is a problem."]
    assert _split("One two three.") == ["One two three."]
    # only the first clause is cut by words; later ones wait for punctuation
    assert _split("Sure, we install panels made by Acme in most homes here") == [
        "Sure,", "we install panels made by Acme in most homes here"]


def _cut_at(tokens: list[str]) -> list[tuple[int, str]]:
    """Clauses out of a token stream, each with the index of the token that released it."""
    sp = ClauseSplitter(12, 4, 6)
    return [(i, c) for i, tok in enumerate(tokens) for c in sp.push(tok)]


def test_a_clause_is_released_by_its_punctuation_token_not_the_next_one() -> None:
    """The LLM streams "." and "," as tokens of their own: waiting for the next token's
    space would put one more decode (~50 ms) before the first audio."""
    assert _cut_at(["Yes", ",", " it", " is"]) == [(1, "Yes,")]
    assert _cut_at(["I", " said", " Ac", "me", " Solar", "."]) == [(5, "I said Acme Solar.")]
    # A 6-word first cut is made as soon as the 7th word starts (the 6th is then whole).
    assert _cut_at(["I", " need", " the", " address", " of", " the", " property"]) == [
        (6, "I need the address")]
    # Punctuation that may be inside a token-split word waits for the space after it.
    assert _cut_at(["It", " costs", " $1", ",", "200", " today", ",", " ok"]) == [
        (6, "It costs $1,200 today,")]
    assert _cut_at(["From", " the", " U", ".", "S", ".", " to", " here"]) == [
        (6, "From the U.S.")]
    assert _cut_at(["Hi", " Dr", ".", " Smith", ",", " ok"]) == [(4, "Hi Dr. Smith,")]


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0


async def test_the_llm_is_not_asked_for_more_while_the_first_clause_renders() -> None:
    """LLM decoding and Piper share two cores: while the callee waits on the first clause's
    audio, the session pulls no more text (on the real engine: decodes no more tokens)."""
    _clock, _call, tl, _stt, llm, session, task, pacer = await _session(
        ["Hi"], ["Sure, the visit takes thirty minutes and costs nothing at all."],
        per_token_s=0.01, tts_delay_s=0.2)
    tts = session.engines.tts
    assert isinstance(tts, ScriptedTts)
    await tl.say(0.8)
    await tl.until(lambda: len(tts.renders) >= 3, limit_s=10)
    start, end = tts.renders[1]  # [0] is the opening; [1] the reply's first clause
    assert tts.spoken[1] == "Sure,"
    assert llm.pulled_at, "the reply streamed in more than one piece"
    assert not [t for t in llm.pulled_at if start <= t < end]
    assert [t for t in llm.pulled_at if t >= end], "it resumes once the clause is rendered"
    await _stop(task, pacer)


LONG_SECOND = ("Sure, the savings from a consultation can vary depending on the size of "
               "your home and the type of roof you have.")


@pytest.mark.parametrize("starve_s", [0.3, None])
async def test_a_long_sentence_is_cut_when_the_reply_audio_runs_out(
        starve_s: float | None) -> None:
    """"Sure," plays for 0.25 s; the sentence after it takes 2.2 s to write. Waiting for
    its full stop leaves the line silent long enough for the callee to take the turn."""
    _clock, _call, tl, _stt, _llm, session, task, pacer = await _session(
        ["Hi"], [LONG_SECOND], per_token_s=0.1,
        config=SessionConfig(starve_s=starve_s))
    tts = session.engines.tts
    assert isinstance(tts, ScriptedTts)
    await tl.say(0.8)
    await tl.until(lambda: len(tts.spoken) > 1)
    await tl.until(lambda: session._task is None, limit_s=20)
    pieces = tts.spoken[1:]  # [0] is the opening
    assert " ".join(pieces) == LONG_SECOND, "every word is said, once, in order"
    assert pieces[0] == "Sure,"
    if starve_s is None:
        assert pieces == ["Sure,", LONG_SECOND.removeprefix("Sure, ")]
    else:
        # Once the line has been quiet for 0.3 s; at the last word that may end a piece.
        assert pieces[1:] == ["the savings from a consultation can vary depending",
                              "on the size of your home and the type of roof you have."]
    await _stop(task, pacer)


def test_leading_silence_is_cut_to_a_short_margin() -> None:
    quiet, voice = b"\x05\x00" * 400, b"\x00\x10" * 800  # 50 ms near-silence, then voice
    trimmed = trim_leading_silence(quiet + voice, 8000)
    assert trimmed.endswith(voice) and len(trimmed) == len(voice) + 2 * 80  # 10 ms kept
    assert trim_leading_silence(voice, 8000) == voice
    assert trim_leading_silence(quiet, 8000) == quiet  # all quiet: a deliberate pause
    assert trim_leading_silence(b"", 8000) == b""
