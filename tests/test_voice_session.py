"""The turn loop against scripted fakes on a FakeClock (no models, no sockets)."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from voice_fakes import (
    FakeCall,
    FakeCallbacks,
    FakeDnc,
    FakeTransfer,
    LoudnessVad,
    MemoryCallLog,
    Reply,
    ScriptedLlm,
    ScriptedStt,
    ScriptedTts,
    Timeline,
    tone,
)

from televox_pbx.agent.prompts import LINES
from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import AmdStatus, Disposition
from televox_pbx.voice.interfaces import ChatMessage, ToolCall
from televox_pbx.voice.session import (
    INTERRUPTED_MARK,
    CallPorts,
    Engines,
    SessionConfig,
    VoiceSession,
)
from televox_pbx.voice.session_factory import VoiceSessionFactory

OPENING = "Hi {{NAME}}, this is Ava, an AI assistant from Acme Solar."
PHONE = "+15550198000"


def campaign(**over: Any) -> Campaign:
    data: dict[str, Any] = {
        "name": "demo",
        "agent": {"persona_name": "Ava", "business": "Acme Solar", "opening_line": OPENING,
                  "goal": "Book a free consultation."},
        "caller_id": "+15550100000", "trunk": "trunk", "amd": "off",
        "dtmf_actions": {"9": "opt_out", "1": "interested"},
        "transfer": {"exten": "200"},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return Campaign.model_validate(data)


@dataclass
class Rig:
    clock: FakeClock
    call: FakeCall
    tl: Timeline
    session: VoiceSession
    stt: ScriptedStt
    llm: ScriptedLlm
    tts: ScriptedTts
    dnc: FakeDnc
    callbacks: FakeCallbacks
    transfer: FakeTransfer
    log: MemoryCallLog
    task: asyncio.Task[None]
    helpers: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.task.done()

    def idle(self) -> bool:
        return self.call.output.queued_seconds == 0 and self.session._task is None

    async def finish(self, limit_s: float = 60.0) -> None:
        await self.tl.until(lambda: self.task.done(), limit_s=limit_s)
        await self.task

    def spoken_after(self, n: int) -> list[str]:
        return self.tts.spoken[n:]


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[RigFactory]:
    made: list[Rig] = []

    async def make(*, camp: Campaign | None = None, said: list[str] | None = None,
                   replies: list[Reply] | None = None, amd: AmdStatus | None = None,
                   opening: str | None = None, first_token_s: float = 0.0,
                   per_token_s: float = 0.0, variables: dict[str, str] | None = None,
                   zone: str | None = "America/New_York",
                   answered_before_s: float | None = None) -> Rig:
        clock = FakeClock()
        call = FakeCall(clock)
        stt = ScriptedStt(list(said or []), clock=clock, delay_s=0.1)
        llm = ScriptedLlm(list(replies or []), clock=clock, first_token_s=first_token_s,
                          per_token_s=per_token_s)
        tts = ScriptedTts(clock=clock)
        dnc, callbacks, transfer, log = (FakeDnc(clock), FakeCallbacks(), FakeTransfer(clock),
                                         MemoryCallLog())
        factory = VoiceSessionFactory(
            Engines(LoudnessVad(), stt, llm, tts), CallPorts(dnc, callbacks, log, transfer),
            clock, SessionConfig(recordings_dir=tmp_path / "rec"))
        if variables is None:
            variables = {"name": "Sam"}
        answered = None if answered_before_s is None \
            else clock.now() - timedelta(seconds=answered_before_s)
        session = factory.create(campaign=camp or campaign(), call_id=call.call_id,
                                 phone=PHONE, variables=variables, zone=zone, amd=amd,
                                 opening=opening, answered_at=lambda: answered)
        task = asyncio.create_task(session(call))
        r = Rig(clock, call, Timeline(clock, call), session, stt, llm, tts, dnc, callbacks,
                transfer, log, task, [asyncio.create_task(call.pacer())])
        made.append(r)
        await clock.advance(0.02)
        return r

    yield make
    for r in made:
        for t in [r.task, *r.helpers]:
            t.cancel()
        await asyncio.gather(r.task, *r.helpers, return_exceptions=True)


async def opening_done(r: Rig) -> None:
    await r.tl.until(r.idle)


# --- opening and disclosure -----------------------------------------------------------


async def test_opening_line_with_variables_and_disclosure(rig: RigFactory) -> None:
    r = await rig()
    assert r.tts.spoken == ["Hi Sam, this is Ava, an AI assistant from Acme Solar."]
    await r.clock.advance(0.1)
    assert r.call.output.audio_frames(), "the opening starts playing at once"


async def test_opening_override_without_disclosure_gets_one(rig: RigFactory) -> None:
    r = await rig(opening="Thanks for calling Acme, {{NAME}}.", variables={})
    # The disclosure is a piece of its own: the session knows when it has been heard.
    assert r.tts.spoken == ["I'm an AI assistant.", "Thanks for calling Acme, there."]


# --- endpointing and streaming ------------------------------------------------------------


async def test_endpointing_is_timer_driven_without_frames(rig: RigFactory) -> None:
    r = await rig(said=["Yes, tell me more."], replies=["Great."])
    await opening_done(r)
    await r.tl.say(1.0)
    n = len(r.call.output.audio_frames())
    await r.tl.wait(0.4)  # silence suppression: no frames at all
    # The turn may have started provisionally at the pause, but 0.4 s of quiet is not the
    # end of the utterance: nothing is said or recorded yet.
    assert len(r.call.output.audio_frames()) == n
    assert r.session.messages[-1].role != "user"
    await r.tl.wait(0.2)
    assert len(r.stt.heard) == 1
    assert r.stt.heard[0].seconds >= 1.0, "the whole utterance (with pre-roll) is transcribed"
    await r.tl.until(lambda: r.tts.spoken[-1:] == ["Great."])


async def test_short_noise_is_not_an_utterance(rig: RigFactory) -> None:
    r = await rig(said=["x"])
    await opening_done(r)
    await r.tl.say(0.04)
    await r.tl.wait(1.0)
    assert r.stt.heard == []


async def test_reply_is_spoken_clause_by_clause_while_streaming(rig: RigFactory) -> None:
    reply = ("Great, I can help with that. We have openings on Tuesday, Wednesday and "
             "Friday. Which works best for you?")
    r = await rig(said=["Sure."], replies=[reply], per_token_s=0.1)
    await opening_done(r)
    n = len(r.tts.spoken)
    await r.tl.say(0.5)
    await r.tl.until(lambda: len(r.tts.spoken) > n)
    assert r.llm.calls and len(r.tts.spoken) == n + 1
    assert r.tts.spoken[n] == "Great,", "a short first clause starts before the LLM ends"
    await r.tl.until(r.idle)
    assert r.spoken_after(n) == ["Great,", "I can help with that.", "We have openings on Tuesday,",
                                 "Wednesday and Friday.", "Which works best for you?"]


# --- barge-in and echo -----------------------------------------------------------------


LONG = ("Our panels come with a twenty five year warranty, installation takes one day, "
        "and most homes save about a third on their bills, which adds up quickly.")


async def test_barge_in_clears_within_200ms_and_context_keeps_heard_text(
        rig: RigFactory) -> None:
    r = await rig(said=["Tell me about it.", "How much is it?"],
                  replies=[LONG, "It depends on the roof."])
    await opening_done(r)
    await r.tl.say(0.5)
    await r.tl.until(lambda: len(r.call.output.audio_frames()) > 0 and len(r.tts.spoken) >= 2)
    await r.tl.wait(1.5)  # about 1.5 s of the reply plays
    onset = r.clock.monotonic()
    await r.tl.say(0.6)
    clears = r.call.output.clears
    assert clears, "playback was cleared"
    assert clears[0] - onset <= 0.2
    late = [f for f in r.call.output.sent if onset + 0.2 < f.t <= onset + 0.6 and not f.silent]
    assert late == [], "no agent audio after 200 ms of the callee's speech"
    await r.tl.until(lambda: len(r.llm.calls) == 2)
    history = r.llm.calls[1]
    assistant = [m.content for m in history if m.role == "assistant"]
    heard = assistant[-1]
    assert heard.endswith(INTERRUPTED_MARK)
    assert "[" not in heard  # a bracketed mark was copied into the model's next reply
    heard_text = heard[: -len(INTERRUPTED_MARK)]
    assert heard_text and LONG.startswith(heard_text) and len(heard_text) < len(LONG) / 2
    assert ChatMessage("user", "How much is it?") in history[-2:]  # then a note, maybe


async def test_quieter_callee_still_barges_in(rig: RigFactory) -> None:
    r = await rig(said=["Tell me about it.", "Wait."], replies=[LONG, "Yes?"])
    await opening_done(r)
    await r.tl.say(0.5)
    await r.tl.until(lambda: len(r.tts.spoken) >= 2)
    await r.tl.wait(1.0)
    onset = r.clock.monotonic()
    await r.tl.say(0.4, amplitude=4000)  # 6 dB below the agent's voice
    assert r.call.output.clears and r.call.output.clears[0] - onset <= 0.2


async def test_own_echo_does_not_barge_in(rig: RigFactory) -> None:
    r = await rig(said=["Tell me about it."], replies=[LONG])
    await opening_done(r)
    await r.tl.say(0.5)
    await r.tl.until(lambda: len(r.tts.spoken) >= 2)
    await r.tl.wait(0.3)
    await r.tl.echo(2.0, gain=0.25)  # -12 dB, far louder than the VAD's speech threshold
    assert r.call.output.clears == []
    assert len(r.stt.heard) == 1
    assert r.call.output.queued_seconds > 0, "still talking"


# --- DTMF and opt-out -------------------------------------------------------------------


async def test_dtmf_9_opts_out_dnc_before_hangup(rig: RigFactory) -> None:
    r = await rig()
    await r.clock.advance(0.5)
    r.call.push_dtmf("9")
    await r.finish()
    assert [(p, s) for p, s, _ in r.dnc.added] == [(PHONE, "call:dtmf")]
    assert r.call.hangups and r.dnc.added[0][2] <= r.call.hangups[0][0]
    assert r.tts.spoken[-1] == LINES.opt_out_confirm
    assert r.call.output.clears, "the opening was cut off"
    assert r.log.records[0].disposition == Disposition.OPT_OUT.value


async def test_spoken_opt_out_wins_even_if_llm_ignores_it(rig: RigFactory) -> None:
    r = await rig(said=["Please take me off your list."],
                  replies=["Sure! Anyway, about those solar panels."])
    await opening_done(r)
    await r.tl.say(1.0)
    await r.finish()
    assert r.llm.calls == [], "decided before the LLM ran"
    assert r.dnc.added and r.dnc.added[0][2] <= r.call.hangups[0][0]
    assert r.tts.spoken[-1] == LINES.opt_out_confirm
    assert r.session.result is not None
    assert r.session.result.disposition is Disposition.OPT_OUT


async def test_opt_out_tool(rig: RigFactory) -> None:
    """The tool alone is confirmed with the callee first (agent/reply_policy.py)."""
    r = await rig(said=["I'm not coming, I switched dentists.", "Yes."],
                  replies=[["Of course.", ToolCall("opt_out")]])
    await opening_done(r)
    await r.tl.say(1.0)
    await r.tl.until(lambda: r.idle() and len(r.tts.spoken) > 1)
    assert " ".join(r.tts.spoken[1:]).endswith(LINES.opt_out_check) and not r.dnc.added
    await r.tl.say(0.5)
    await r.finish()
    assert r.dnc.added[0][1] == "call:tool"
    assert r.log.records[0].disposition == "OPT_OUT"


async def test_dtmf_interested_runs_an_agent_turn(rig: RigFactory) -> None:
    r = await rig(replies=["Wonderful, let's book a time."])
    await r.clock.advance(0.3)
    r.call.push_dtmf("1")
    await r.tl.until(lambda: bool(r.llm.calls))
    assert "pressed 1" in r.llm.calls[0][-1].content
    r.call.peer_hangup()
    await r.finish()
    assert r.log.records[0].disposition == "INTERESTED"


# --- tools -------------------------------------------------------------------------------


async def test_tools_disposition_callback_and_transfer(rig: RigFactory) -> None:
    r = await rig(said=["Call me Tuesday at three.", "Actually, can I talk to a person?"],
                  replies=[["Sure, Tuesday at three it is.",
                            ToolCall("schedule_callback", {"when": "2026-01-06T15:00"})],
                           [ToolCall("transfer")]])
    await opening_done(r)
    await r.tl.say(1.0)
    await r.tl.until(lambda: bool(r.callbacks.booked))
    _, due, zone = r.callbacks.booked[0]
    assert zone == "America/New_York" and due.utcoffset() is not None
    assert due.isoformat() == "2026-01-06T15:00:00-05:00"
    assert r.llm.schemas[0] is not None
    await r.tl.until(r.idle)
    await r.tl.say(1.0)
    await r.tl.until(lambda: bool(r.transfer.done))
    assert r.tts.spoken[-1] == LINES.transfer
    assert r.transfer.done[0][1].exten == "200"
    r.call.peer_hangup()
    await r.finish()
    assert r.call.hangups == [], "after a transfer we do not hang up the channel"
    assert r.log.records[0].disposition == "CALLBACK"


async def test_end_call_tool_after_goodbye(rig: RigFactory) -> None:
    r = await rig(said=["No, I'm all set."],
                  replies=[["No problem, have a nice day.",
                            ToolCall("set_disposition", {"disposition": "NOT_INTERESTED"}),
                            ToolCall("end_call")]])
    await opening_done(r)
    await r.tl.say(1.0)
    await r.finish()
    assert r.tts.spoken[-2:] == ["No problem,", "have a nice day."]
    assert r.call.hangups and r.call.hangups[0][1] is True, "drained before hanging up"
    assert r.log.records[0].disposition == "NOT_INTERESTED"


# --- silence and limits ----------------------------------------------------------------


async def test_silence_reprompt_then_goodbye(rig: RigFactory) -> None:
    camp = campaign(silence={"reprompt_after_s": 4.0, "hangup_after_s": 10.0})
    r = await rig(camp=camp)
    await opening_done(r)
    idle_at = r.clock.monotonic()
    await r.tl.until(lambda: LINES.reprompt in r.tts.spoken)
    assert 4.0 <= r.clock.monotonic() - idle_at <= 4.1
    await r.tl.until(lambda: LINES.silence_goodbye in r.tts.spoken)
    assert 10.0 <= r.clock.monotonic() - idle_at <= 10.1
    await r.finish()
    assert r.session.result is not None
    assert r.session.result.ended_by == "silence"
    assert r.session.result.disposition is Disposition.NO_ANSWER


async def test_max_call_duration(rig: RigFactory) -> None:
    camp = campaign(silence={"max_call_duration_s": 8.0})
    r = await rig(camp=camp, said=["Hmm, let me think about that for a while."] * 5,
                  replies=["Take your time."] * 5)
    await opening_done(r)
    for _ in range(4):
        await r.tl.say(1.0)
        await r.tl.wait(0.8)
    await r.finish()
    assert LINES.max_duration_goodbye in r.tts.spoken
    assert r.call.hangups[0][0] <= 8.0 + 6.0
    assert r.session.result is not None and r.session.result.ended_by == "max_duration"


@pytest.mark.parametrize("answered_before_s", [None, 4.0])
async def test_the_call_ends_by_its_max_duration_goodbye_included(
        rig: RigFactory, answered_before_s: float | None) -> None:
    # FINDINGS: a 25 s call lasted 28.8 s (the goodbye started at the limit). With AMD()
    # in the dialplan the audio connects seconds after the answer: the length counts
    # from the answer.
    camp = campaign(silence={"max_call_duration_s": 25.0, "hangup_after_s": 60.0})
    r = await rig(camp=camp, said=["Hmm, let me think about that for a while."] * 20,
                  replies=["Take your time."] * 20, answered_before_s=answered_before_s)
    await opening_done(r)
    while not r.done and r.clock.monotonic() < 40.0:
        await r.tl.say(1.0)
        await r.tl.wait(1.5)
    await r.finish()
    assert r.tts.spoken[-1] == LINES.max_duration_goodbye
    [(_, drained)] = r.call.hangups
    assert drained, "the goodbye was heard whole"
    assert r.call.ended_at is not None
    assert r.call.ended_at + (answered_before_s or 0.0) <= 25.0
    assert r.session.result is not None and r.session.result.ended_by == "max_duration"


# --- voicemail ----------------------------------------------------------------------------


async def test_voicemail_hangup_action(rig: RigFactory) -> None:
    r = await rig(amd=AmdStatus.MACHINE)
    await r.finish()
    assert r.tts.spoken == []
    assert r.log.records[0].disposition == "VOICEMAIL"


VM = {"action": "leave_message", "message": "Hi {{NAME}}, this is Ava, an AI assistant from "
      "Acme Solar. Please call us back."}


async def test_voicemail_message_after_beep(rig: RigFactory) -> None:
    r = await rig(camp=campaign(voicemail=VM), amd=AmdStatus.MACHINE)
    await r.tl.say(1.0)
    await r.tl.silence(0.5)
    await r.tl.say(0.5)
    assert r.call.output.audio_frames() == [], "still waiting through the greeting's pauses"
    assert r.tts.spoken, "the message is rendered meanwhile, and held"
    await r.tl.audio(tone(0.4, 8000, freq=1000.0))
    beep_end = r.clock.monotonic()
    await r.tl.silence(0.1)
    assert r.tts.spoken == ["Hi Sam, this is Ava, an AI assistant from Acme Solar. "
                            "Please call us back."]
    first = r.call.output.audio_frames()[0].t
    assert beep_end <= first <= beep_end + 0.2
    await r.finish()
    assert r.log.records[0].disposition == "VOICEMAIL"
    assert r.call.hangups[0][1] is True


async def test_voicemail_message_after_silence(rig: RigFactory) -> None:
    r = await rig(camp=campaign(voicemail=VM), amd=AmdStatus.MACHINE)
    await r.tl.say(2.0)
    end = r.clock.monotonic()
    await r.tl.until(lambda: bool(r.call.output.audio_frames()))
    assert 1.5 <= r.call.output.audio_frames()[0].t - end <= 1.6
    await r.finish()
    assert r.log.records[0].disposition == "VOICEMAIL"


# --- what the call leaves behind ----------------------------------------------------------


async def test_transcript_latency_recording_and_classified_disposition(
        rig: RigFactory, tmp_path: Path) -> None:
    r = await rig(said=["Yes, Tuesday at three works."], replies=["Great, see you then."],
                  first_token_s=0.3)
    await opening_done(r)
    await r.tl.say(1.2)
    await r.tl.until(lambda: r.tts.spoken[-1:] == ["see you then."] and r.idle())
    await r.tl.wait(0.5)
    r.call.peer_hangup()
    await r.finish()
    rec = r.log.records[0]
    assert [(t.speaker, t.text) for t in rec.turns] == [
        ("agent", "Hi Sam, this is Ava, an AI assistant from Acme Solar."),
        ("callee", "Yes, Tuesday at three works."),
        ("agent", "Great, see you then.")]
    assert [t.turn for t in rec.turns] == [1, 2, 3]
    lat = rec.turns[2].latency
    assert lat is not None
    assert lat["endpoint_ms"] == pytest.approx(700, abs=25)
    # The turn started provisionally at the 0.2 s pause, so the transcript was ready before
    # the endpoint; nothing was played before it.
    assert lat["transcript_ms"] < lat["endpoint_ms"]
    assert lat["transcript_ms"] < lat["first_token_ms"] <= lat["first_audio_ms"] \
        <= lat["first_frame_ms"]
    assert lat["endpoint_ms"] <= lat["first_frame_ms"]
    assert rec.turns[1].started_at is not None and rec.turns[1].ended_at is not None
    assert rec.disposition == "INTERESTED"
    assert rec.recording_path is not None and rec.recording_path.exists()
    assert rec.recording_path.is_relative_to(tmp_path / "rec" / "demo")
    with wave.open(str(rec.recording_path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        assert w.getnframes() / 8000 == pytest.approx(rec.recording_seconds, abs=0.01)


async def test_hangup_mid_reply_records_only_heard_text(rig: RigFactory) -> None:
    r = await rig(said=["Tell me more."], replies=[LONG])
    await opening_done(r)
    await r.tl.say(0.5)
    await r.tl.until(lambda: len(r.tts.spoken) >= 2)
    await r.tl.wait(1.0)
    r.call.peer_hangup()
    await r.finish()
    last = r.log.records[0].turns[-1]
    assert last.speaker == "agent" and last.interrupted
    assert LONG.startswith(last.text) and 0 < len(last.text) < len(LONG)
    assert r.session.result is not None and r.session.result.ended_by == "callee"


async def test_hello_over_the_opening_is_answered_after_it(rig: RigFactory) -> None:
    r = await rig(said=["Hello? Who is this?"], replies=["I'm Ava, an AI assistant."])
    await r.clock.advance(0.3)
    await r.tl.say(0.8)
    await r.tl.wait(0.6)
    assert r.call.output.clears == [], "the opening (with its disclosure) is not cut off"
    await r.tl.until(lambda: r.tts.spoken[-1:] == ["an AI assistant."] and r.idle())
    assert r.tts.spoken[1:] == ["I'm Ava,", "an AI assistant."]
    opening_s = len(r.tts.spoken[0]) * r.tts.seconds_per_char
    played_s = len(r.call.output.audio_frames()) * 0.02
    reply_s = sum(len(t) for t in r.tts.spoken[1:]) * r.tts.seconds_per_char
    assert played_s >= opening_s + reply_s - 0.06


async def test_a_greeting_over_the_opening_is_kept_and_not_answered(rig: RigFactory) -> None:
    """The callee says hello as they pick up, over the opening: the opening answers it.
    On the real PBX the model answered it after the opening with its whole introduction
    again. What they say next is answered."""
    r = await rig(said=["Hello, this is Sam speaking.", "What is it about?"],
                  replies=["I'm calling about your roof survey."])
    await r.clock.advance(0.3)
    await r.tl.say(0.8)
    await r.tl.until(r.idle)
    await r.tl.wait(1.5)
    assert r.llm.calls == [], "nothing to answer"
    await r.tl.say(0.6)
    await r.tl.until(lambda: r.tts.spoken[-1:] == ["I'm calling about your roof survey."]
                     and r.idle())
    [context] = r.llm.calls
    # Not for the model: run into the question after it ("Hello, this is Sam speaking.
    # What is it about?") it was greeted back; before the opening, it would break the
    # prompt cached with the opening.
    assert context[1:] == [ChatMessage("assistant", "Hi Sam, this is Ava, an AI assistant "
                                                    "from Acme Solar."),
                           ChatMessage("user", "What is it about?")]
    await r.tl.wait(0.5)
    r.call.peer_hangup()
    await r.finish()
    assert [(t.speaker, t.text) for t in r.log.records[0].turns] == [
        ("agent", "Hi Sam, this is Ava, an AI assistant from Acme Solar."),
        ("callee", "Hello, this is Sam speaking."), ("callee", "What is it about?"),
        ("agent", "I'm calling about your roof survey.")], "all in the transcript"


async def test_system_prompt_has_the_callee_local_date(rig: RigFactory) -> None:
    r = await rig(said=["Sure."], replies=["Great."])
    await opening_done(r)
    await r.tl.say(0.5)
    await r.tl.until(lambda: bool(r.llm.calls))
    system = r.llm.calls[0][0]
    assert system.role == "system" and "Monday 2026-01-05 10:00" in system.content
    # the prefix evaluated while the opening played is exactly where the first reply starts
    [prefix] = r.llm.prefills
    assert [m.role for m in prefix] == ["system", "assistant"]
    assert r.llm.calls[0][: len(prefix)] == prefix


async def test_inbound_handler_uses_caller_id_and_discloses() -> None:
    clock = FakeClock()
    call = FakeCall(clock, inbound=True, caller_id="+15550111222")
    tts, dnc, log = ScriptedTts(), FakeDnc(clock), MemoryCallLog()
    factory = VoiceSessionFactory(
        Engines(LoudnessVad(), ScriptedStt(), ScriptedLlm(), tts),
        CallPorts(dnc, FakeCallbacks(), log), clock, SessionConfig())
    # A caller is a person: `amd: stream` does not screen inbound calls.
    handler = factory.inbound_handler(campaign(dtmf_actions={"9": "opt_out"}, amd="stream"),
                                      opening="Thanks for calling Acme Solar.")
    async def run() -> None:
        await handler(call)

    tasks = [asyncio.create_task(call.pacer()), asyncio.create_task(run())]
    tl = Timeline(clock, call)
    await clock.advance(0.1)
    assert tts.spoken == ["I'm an AI assistant.", "Thanks for calling Acme Solar."]
    await tl.until(lambda: bool(call.output.audio_frames()), limit_s=0.3)  # at once
    call.push_dtmf("9")
    await tl.until(lambda: tasks[1].done())
    assert dnc.added[0][0] == "+15550111222"
    tasks[0].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_failed_transfer_apologises_and_hangs_up(rig: RigFactory) -> None:
    r = await rig(camp=campaign(dtmf_actions={"0": "transfer"}))
    r.transfer.fail = True
    await r.clock.advance(0.3)
    r.call.push_dtmf("0")
    await r.finish()
    assert r.tts.spoken[-2:] == [LINES.transfer, LINES.transfer_unavailable]
    assert r.call.hangups and r.transfer.done == []


async def test_unmapped_digit_reaches_the_agent(rig: RigFactory) -> None:
    r = await rig(replies=["You pressed five."])
    await opening_done(r)
    r.call.push_dtmf("5")
    await r.tl.until(lambda: bool(r.llm.calls))
    assert r.llm.calls[0][-1] == ChatMessage("user", "[The caller pressed the key 5.]")
    await r.tl.until(lambda: r.tts.spoken[-1:] == ["You pressed five."])
