"""Machine detection in the audio stream (campaign `amd: stream`) in a whole voice session,
on the fake clock: a person's "Hello?" is answered at once with the held opening, a
voicemail greeting is never talked over and gets its message after the beep (or its end),
and the verdict is stored with the call."""

from __future__ import annotations

from test_voice_session import VM, Rig, RigFactory, campaign
from test_voice_session import rig as rig  # the fixture
from voice_fakes import tone

from televox_pbx.domain import AmdStatus
from televox_pbx.voice.context import CalleeSaid

STREAM = {"amd": "stream"}


def first_audio(r: Rig) -> float | None:
    frames = r.call.output.audio_frames()
    return frames[0].t if frames else None


def callee_turns(r: Rig) -> list[str]:
    return [e.text for e in r.session.context.entries if isinstance(e, CalleeSaid)]


async def test_a_persons_hello_is_answered_by_the_held_opening_at_once(
        rig: RigFactory) -> None:
    r = await rig(camp=campaign(**STREAM), said=["Hello?"])
    await r.tl.silence(0.5)
    assert first_audio(r) is None and r.tts.spoken, "opening rendered, held, not played"
    await r.tl.say(0.6)
    greeting_end = r.clock.monotonic()
    await r.tl.until(lambda: first_audio(r) is not None, limit_s=3.0)
    start = first_audio(r)
    assert start is not None and start - greeting_end <= 0.6
    await r.tl.until(r.idle)
    # The greeting is kept in the transcript but not answered: the opening answered it.
    assert callee_turns(r) == ["Hello?"]
    assert r.llm.calls == []
    r.call.peer_hangup()
    await r.finish()
    record = r.log.records[0]
    assert record.amd_status == "HUMAN" and (record.amd_cause or "").startswith("SHORT")
    # Confirmed after the opening began, the greeting still comes first in the transcript.
    assert [t.speaker for t in record.turns] == ["callee", "agent"]
    assert record.turns[0].text == "Hello?"


async def test_a_voicemail_greeting_is_not_talked_over_and_the_message_follows_the_beep(
        rig: RigFactory) -> None:
    r = await rig(camp=campaign(voicemail=VM, **STREAM))
    await r.tl.silence(0.3)
    await r.tl.say(3.5)  # a long greeting: a machine
    await r.tl.silence(0.4)
    await r.tl.say(1.5)
    assert first_audio(r) is None, "nothing is said over the greeting"
    await r.tl.audio(tone(0.4, 8000, freq=1000.0))
    beep_end = r.clock.monotonic()
    await r.tl.silence(0.2)
    start = first_audio(r)
    assert start is not None and beep_end <= start <= beep_end + 0.2
    assert r.tts.spoken[-1] == ("Hi Sam, this is Ava, an AI assistant from Acme Solar. "
                                "Please call us back.")
    await r.finish()
    record = r.log.records[0]
    assert record.disposition == "VOICEMAIL" and record.amd_status == "MACHINE"
    assert callee_turns(r) == [], "a machine's greeting is not the callee's words"
    # The held opening was never heard: the message is all the agent said.
    assert [t.text for t in record.turns] == [r.tts.spoken[-1]]


async def test_a_beep_alone_decides_and_the_message_starts_after_it(
        rig: RigFactory) -> None:
    r = await rig(camp=campaign(voicemail=VM, **STREAM))
    await r.tl.silence(0.3)
    await r.tl.say(1.0)
    await r.tl.silence(0.1)
    await r.tl.audio(tone(0.4, 8000, freq=1000.0))
    beep_end = r.clock.monotonic()
    await r.tl.silence(0.3)
    start = first_audio(r)
    assert start is not None and beep_end <= start <= beep_end + 0.2
    await r.finish()
    assert r.log.records[0].amd_cause == "BEEP"


async def test_a_greeting_without_a_beep_gets_the_message_once_it_ends(
        rig: RigFactory) -> None:
    r = await rig(camp=campaign(voicemail=VM, **STREAM))
    await r.tl.say(4.0)
    end = r.clock.monotonic()
    await r.tl.until(lambda: first_audio(r) is not None, limit_s=5.0)
    start = first_audio(r)
    assert start is not None and start >= end + 1.0  # after the greeting's end, not over it
    await r.finish()
    assert r.log.records[0].disposition == "VOICEMAIL"


async def test_the_greetings_words_make_a_short_greeting_a_machine(
        rig: RigFactory) -> None:
    r = await rig(camp=campaign(voicemail=VM, **STREAM),
                  said=["Hi, you've reached Sam.", "Please leave a message."])
    await r.tl.say(1.2)
    await r.tl.silence(0.6)  # a pause a person would leave: the words decide
    await r.tl.say(1.0)
    assert first_audio(r) is None
    await r.finish()
    record = r.log.records[0]
    assert record.amd_status == "MACHINE" and record.amd_cause == "WORDS"
    assert r.tts.spoken[-1].endswith("Please call us back.")


async def test_a_machine_with_voicemail_hangup_hears_nothing(
        rig: RigFactory) -> None:
    r = await rig(camp=campaign(**STREAM))  # voicemail.action: hangup (the default)
    await r.tl.say(3.5)
    await r.finish()
    assert r.call.output.audio_frames() == []
    assert r.log.records[0].disposition == "VOICEMAIL"


async def test_silence_is_answered_as_a_person(rig: RigFactory) -> None:
    r = await rig(camp=campaign(**STREAM))
    await r.tl.silence(2.0)
    assert first_audio(r) is None
    await r.tl.until(lambda: first_audio(r) is not None, limit_s=2.0)
    assert r.tts.spoken[0].startswith("Hi Sam, this is Ava, an AI assistant")
    r.call.peer_hangup()
    await r.finish()
    assert r.log.records[0].amd_status == "NOTSURE"


async def test_an_asterisk_verdict_skips_the_stream_detector(
        rig: RigFactory) -> None:
    r = await rig(camp=campaign(**STREAM), amd=AmdStatus.HUMAN)
    await r.tl.until(lambda: first_audio(r) is not None, limit_s=1.0)
    assert r.session.screening is None


async def test_a_greeting_taken_for_a_person_is_caught_by_its_words(
        rig: RigFactory) -> None:
    """"Hello." and a pause, then "You have reached the Parkers...": the opening starts,
    the greeting's words turn the verdict, the agent stops, and the message (without the
    opening's disclosure) follows the beep."""
    r = await rig(camp=campaign(voicemail=VM, **STREAM),
                  said=["Hello.", "You have reached the Parkers, leave us a message."])
    await r.tl.say(0.5)
    await r.tl.silence(0.6)
    assert first_audio(r) is not None, "taken for a person: the opening plays"
    await r.tl.say(2.0)
    await r.tl.silence(0.3)
    assert r.session.screening is not None
    decision = r.session.screening.decision
    assert decision is not None and decision.cause == "LATEWORDS"
    assert r.call.output.queued_seconds == 0, "the agent stopped talking over it"
    spoken = len(r.call.output.audio_frames())
    await r.tl.audio(tone(0.4, 8000, freq=1000.0))
    beep_end = r.clock.monotonic()
    await r.tl.silence(0.3)
    message = r.call.output.audio_frames()[spoken:]
    assert message and message[0].t >= beep_end
    await r.finish()
    record = r.log.records[0]
    assert record.disposition == "VOICEMAIL" and record.amd_status == "MACHINE"
    agent = [t.text for t in record.turns if t.speaker == "agent"]
    assert agent[-1] == r.tts.spoken[-1] and agent[-1].startswith("Hi Sam, this is Ava")
    assert agent[-1].count("Ava") == 1, "the opening's disclosure is not repeated"
