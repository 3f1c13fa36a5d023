"""Issue 12, items 8-10 and the compliance wording: what the callee hears and when they
are called back. Scripted engines on a FakeClock; no models, no sockets, no sleeps."""

from __future__ import annotations

import asyncio
import re
import shutil
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from dialer_support import FakeOriginator, make_campaign, seed
from voice_fakes import (
    FakeCall,
    FakeCallbacks,
    FakeDnc,
    LoudnessVad,
    MemoryCallLog,
    Reply,
    ScriptedLlm,
    ScriptedStt,
    ScriptedTts,
    Timeline,
)

from televox_pbx.agent.tools import InvalidTool, ScheduleCallback, parse_tool_call
from televox_pbx.audiosocket.session import FRAME_SECONDS
from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.campaigns.gate import GateContext, GateReason, check
from televox_pbx.cli.check import check_directory
from televox_pbx.clock import FakeClock
from televox_pbx.config.calling_window import CallingWindow
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import AmdStatus, CallOutcome, CallStatus, Disposition
from televox_pbx.store import Store
from televox_pbx.store.transcripts import StoreCallbacks
from televox_pbx.voice.interfaces import AudioChunk, ToolCall
from televox_pbx.voice.session import (
    CallPorts,
    Engines,
    SessionConfig,
    VoiceSession,
)
from televox_pbx.voice.session_factory import VoiceSessionFactory

REPO = Path(__file__).resolve().parents[1]
OPENING = "Hi {{NAME}}, this is Ava, an AI assistant from Acme Solar. Do you have a minute?"
DISCLOSURE = "Hi Sam, this is Ava, an AI assistant from Acme Solar."
NY_PHONE = "+12125550100"  # New York only
BOISE_LA_PHONE = "+12085550103"  # area code 208: America/Boise or America/Los_Angeles
START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York


def campaign(**over: Any) -> Campaign:
    data: dict[str, Any] = {
        "name": "demo", "caller_id": "+15550100000", "trunk": "trunk", "amd": "asterisk",
        "agent": {"persona_name": "Ava", "business": "Acme Solar", "opening_line": OPENING,
                  "goal": "Book a free consultation."},
        "dtmf_actions": {"9": "opt_out"},
    }
    data.update(over)
    return Campaign.model_validate(data)


class FailOnceTts(ScriptedTts):
    """The first render fails mid-call: a playback error in the opening."""

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        if not self.spoken:
            self.spoken.append(text)
            raise RuntimeError("TTS engine crashed")
        async for chunk in super().synthesize(text):
            yield chunk


@dataclass
class Rig:
    clock: FakeClock
    call: FakeCall
    tl: Timeline
    llm: ScriptedLlm
    tts: ScriptedTts
    callbacks: FakeCallbacks
    log: MemoryCallLog
    session: VoiceSession
    task: asyncio.Task[None]
    pacer: asyncio.Task[None]
    rec_dir: Path
    amd_asked: list[float] = field(default_factory=list)

    def idle(self) -> bool:
        return self.call.output.queued_seconds == 0 and self.session._task is None

    async def finish(self) -> None:
        await self.tl.until(self.task.done, limit_s=60)
        await self.task

    def agent_turns(self) -> list[tuple[str, bool]]:
        [record] = self.log.records
        return [(t.text, t.interrupted) for t in record.turns if t.speaker == "agent"]


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[RigFactory]:
    made: list[Rig] = []

    async def make(*, camp: Campaign | None = None, said: list[str] | None = None,
                   replies: list[Reply] | None = None, zone: str | None = "America/New_York",
                   phone: str = NY_PHONE, tts: ScriptedTts | None = None,
                   amd_verdict: list[AmdStatus | None] | None = None) -> Rig:
        clock = FakeClock(START)
        call = FakeCall(clock)
        llm = ScriptedLlm(list(replies or []), clock=clock)
        tts = tts or ScriptedTts(clock=clock)
        callbacks, log = FakeCallbacks(), MemoryCallLog()
        rec_dir = tmp_path / "rec"
        factory = VoiceSessionFactory(
            Engines(LoudnessVad(), ScriptedStt(list(said or []), clock=clock, delay_s=0.1),
                    llm, tts),
            CallPorts(FakeDnc(clock), callbacks, log), clock,
            SessionConfig(recordings_dir=rec_dir))
        asked: list[float] = []
        extra: dict[str, Any] = {}
        if amd_verdict is not None:
            from televox_pbx.voice.amd import await_verdict  # what app.py wires in

            box = amd_verdict  # the test sets box[0] when the AMI event "arrives"

            def amd_wait(timeout_s: float) -> Awaitable[AmdStatus | None]:
                asked.append(timeout_s)
                return await_verdict(lambda: box[0], clock, timeout_s)
            extra["amd_wait"] = amd_wait
        session = factory.create(campaign=camp or campaign(), call_id=call.call_id,
                                 phone=phone, variables={"name": "Sam"}, zone=zone, **extra)
        r = Rig(clock, call, Timeline(clock, call), llm, tts, callbacks, log, session,
                asyncio.create_task(session(call)), asyncio.create_task(call.pacer()),
                rec_dir, asked)
        made.append(r)
        await clock.advance(FRAME_SECONDS)
        return r

    yield make
    for r in made:
        r.task.cancel()
        r.pacer.cancel()
        await asyncio.gather(r.task, r.pacer, return_exceptions=True)


def agent_seconds_after(recording: Path, t: float) -> float:
    """Seconds of agent audio (right channel) in the recording after call time `t`."""
    with wave.open(str(recording)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    right = pcm[round(t * 8000):, 1]
    frames = right[: len(right) // 160 * 160].reshape(-1, 160)
    return float(np.count_nonzero(np.abs(frames).max(axis=1) > 0)) * FRAME_SECONDS


# --- item 9: the AI disclosure is said whole, again if it was cut ----------------------------


async def test_dtmf_cutting_the_opening_gets_the_disclosure_said_first_next_turn(
        rig: RigFactory) -> None:
    r = await rig(replies=["You pressed five."])
    await r.clock.advance(0.6 - FRAME_SECONDS)
    cut_at = r.clock.monotonic()
    r.call.push_dtmf("5")  # a key with no action: the agent answers it
    await r.tl.until(lambda: r.tts.spoken[-1:] == ["You pressed five."] and r.idle())
    r.call.peer_hangup()
    await r.finish()
    # The transcript: the opening cut inside the disclosure, then an agent turn that says
    # the whole disclosure sentence first, then the answer.
    [(opening, cut), (answer, answer_cut)] = r.agent_turns()
    assert cut and DISCLOSURE.startswith(opening) and len(opening) < len(DISCLOSURE)
    assert answer == f"{DISCLOSURE} You pressed five." and not answer_cut
    assert r.tts.spoken == [DISCLOSURE, "Do you have a minute?", DISCLOSURE, "You pressed five."]
    # ...and the recording has it: the agent spoke at least that long after the key.
    record = r.log.records[0]
    assert record.recording_path is not None
    disclosure_s = len(DISCLOSURE) * r.tts.seconds_per_char
    assert agent_seconds_after(record.recording_path, cut_at) >= disclosure_s


async def test_opt_out_key_in_the_opening_still_discloses_before_goodbye(
        rig: RigFactory) -> None:
    r = await rig()
    await r.clock.advance(0.6 - FRAME_SECONDS)
    r.call.push_dtmf("9")
    await r.finish()
    [_, (goodbye, _)] = r.agent_turns()
    assert goodbye.startswith(DISCLOSURE)


async def test_barge_in_over_a_reply_queued_behind_the_opening_spares_the_disclosure(
        rig: RigFactory) -> None:
    # A question over the opening is answered after it: that answer is queued behind the
    # opening's audio. Talking again must not clear the queue, disclosure and all. (A
    # greeting over the opening is not answered: the opening is its answer.)
    r = await rig(said=["Who is this?", "Hello, who is it?"],
                  replies=["Yes I am here.", "It is Ava."])
    await r.clock.advance(0.3)
    await r.tl.say(0.6)
    await r.tl.wait(0.8)  # the endpoint: the answer is queued behind the opening
    assert r.tts.spoken[-1:] == ["Yes I am here."]
    played_s = len(r.call.output.audio_frames()) * FRAME_SECONDS
    assert played_s < len(DISCLOSURE) * r.tts.seconds_per_char, "still disclosing"
    await r.tl.say(0.6)
    await r.tl.until(lambda: r.tts.spoken[-1:] == ["It is Ava."] and r.idle())
    r.call.peer_hangup()
    await r.finish()
    # The disclosure's audio was all sent before any clear of the output, or it was said
    # again; and the transcript says which.
    clears = r.call.output.clears
    sent_s = FRAME_SECONDS * len([f for f in r.call.output.audio_frames()
                                  if not clears or f.t <= clears[0]])
    opening, cut = r.agent_turns()[0]
    if sent_s >= len(DISCLOSURE) * r.tts.seconds_per_char:
        assert opening.startswith(DISCLOSURE)
    else:
        assert cut and not opening.startswith(DISCLOSURE)
        assert any(text.startswith(DISCLOSURE) for text, _ in r.agent_turns()[1:])


async def test_callee_hanging_up_mid_opening_leaves_only_what_was_heard(
        rig: RigFactory) -> None:
    # The real-PBX case: words over the opening are answered behind it (queued), then
    # the callee hangs up while the opening still plays. Neither the opening's tail nor
    # the queued answer was heard, and the opening did not go on after the hang-up.
    # (It was "Hello?", which is now not answered: the opening is its answer.)
    r = await rig(said=["Who is this?"], replies=["Yes I am here."])
    await r.clock.advance(0.3)
    await r.tl.say(0.6)
    await r.tl.wait(0.8)  # the endpoint: the answer is queued behind the opening
    played_s = len(r.call.output.audio_frames()) * FRAME_SECONDS
    queued_s = sum(len(t) for t in r.tts.spoken) * r.tts.seconds_per_char
    assert r.tts.spoken[-1:] == ["Yes I am here."]
    assert played_s + r.call.output.queued_seconds >= queued_s - FRAME_SECONDS, "all queued"
    assert played_s < len(DISCLOSURE) * r.tts.seconds_per_char, "the opening still plays"
    hung_up = r.clock.now()
    r.call.peer_hangup()
    await r.finish()
    [record] = r.log.records
    [opening] = [t for t in record.turns if t.speaker == "agent"]
    assert opening.interrupted and opening.text and DISCLOSURE.startswith(opening.text)
    assert len(opening.text) < len(DISCLOSURE)
    assert opening.ended_at is not None
    assert opening.ended_at <= hung_up + timedelta(seconds=FRAME_SECONDS), (
        f"the opening ran to {opening.ended_at:%H:%M:%S.%f}, the call ended at "
        f"{hung_up:%H:%M:%S.%f}")


async def test_failed_render_of_the_opening_discloses_at_the_next_turn(
        rig: RigFactory) -> None:
    r = await rig(said=["Hello?"], replies=["Yes I am here."], tts=FailOnceTts())
    await r.tl.wait(0.5)
    assert r.call.output.audio_frames() == [], "the opening never played"
    await r.tl.say(0.6)
    await r.tl.until(lambda: r.tts.spoken[-1:] == ["Yes I am here."] and r.idle())
    assert r.tts.spoken[1:] == [DISCLOSURE, "Yes I am here."]


async def test_a_heard_disclosure_is_not_repeated(rig: RigFactory) -> None:
    r = await rig(replies=["You pressed five."])
    await r.tl.until(r.idle)  # the whole opening played
    n = len(r.tts.spoken)
    r.call.push_dtmf("5")
    await r.tl.until(lambda: r.tts.spoken[-1:] == ["You pressed five."] and r.idle())
    assert r.tts.spoken[n:] == ["You pressed five."]


# --- item 10: the AMD verdict is awaited, NOTSURE is a person -------------------------------


async def test_machine_verdict_arriving_after_connect_is_used(rig: RigFactory) -> None:
    verdict: list[AmdStatus | None] = [None]
    r = await rig(amd_verdict=verdict)
    await r.clock.advance(0.3)
    verdict[0] = AmdStatus.MACHINE  # the AMI UserEvent comes after the audio
    await r.finish()
    assert r.tts.spoken == [], "nothing said to an answering machine"
    assert r.log.records[0].disposition == Disposition.VOICEMAIL.value


async def test_notsure_verdict_is_answered_as_a_person_with_the_disclosure(
        rig: RigFactory) -> None:
    verdict: list[AmdStatus | None] = [None]
    r = await rig(amd_verdict=verdict)
    await r.clock.advance(0.3)
    assert r.tts.spoken == [], "the agent waits for the verdict"
    verdict[0] = AmdStatus.NOTSURE
    await r.tl.until(lambda: bool(r.tts.spoken) and r.idle())
    assert r.tts.spoken[0] == DISCLOSURE
    assert r.call.output.audio_frames()[0].t >= 0.3
    r.call.peer_hangup()
    await r.finish()
    assert r.agent_turns()[0] == (f"{DISCLOSURE} Do you have a minute?", False)


async def test_no_verdict_within_the_bound_is_a_person(rig: RigFactory) -> None:
    r = await rig(amd_verdict=[None])
    await r.tl.until(lambda: bool(r.tts.spoken))
    assert r.amd_asked == [SessionConfig().amd_wait_s]
    assert r.clock.monotonic() >= SessionConfig().amd_wait_s
    assert r.tts.spoken[0] == DISCLOSURE


async def test_amd_off_does_not_wait(rig: RigFactory) -> None:
    r = await rig(camp=campaign(amd=False), amd_verdict=[None])
    assert r.tts.spoken[:1] == [DISCLOSURE] and r.amd_asked == []


# --- item 8: callbacks in the callee's local time ------------------------------------------


def callback_reply(when: str) -> list[Reply]:
    return [["Sure, I'll call you then.", ToolCall("schedule_callback", {"when": when})]]


async def test_callback_without_contact_zone_is_read_in_the_numbers_zone_not_utc(
        rig: RigFactory) -> None:
    # No single zone from the dialer: the number's zone (New York) is the callee's.
    r = await rig(zone=None, said=["Call me tomorrow at three."],
                  replies=callback_reply("2026-01-06T15:00"))
    await r.tl.until(r.idle)
    await r.tl.say(1.0)
    await r.tl.until(lambda: bool(r.callbacks.booked))
    [(_, due, zone)] = r.callbacks.booked
    assert zone == "America/New_York"
    assert due == datetime(2026, 1, 6, 20, 0, tzinfo=UTC)  # 15:00 EST, not 15:00 UTC


async def test_callback_outside_the_window_is_refused_and_the_agent_says_why(
        rig: RigFactory) -> None:
    # A key cut the opening: the disclosure is owed, and the model answers with a tool
    # call alone. The disclosure is said, the refusal reaches the model, and it speaks.
    r = await rig(replies=[[ToolCall("schedule_callback", {"when": "2026-01-06T23:00"})],
                           "Only nine to eight please."])
    await r.clock.advance(0.6 - FRAME_SECONDS)
    r.call.push_dtmf("5")
    await r.tl.until(lambda: len(r.llm.calls) == 2 and r.idle())
    assert r.callbacks.booked == []
    tool = r.llm.calls[1][-1]
    assert tool.role == "tool" and "outside the hours we may call" in tool.content
    assert r.tts.spoken[-2:] == [DISCLOSURE, "Only nine to eight please."]


def test_callback_on_a_number_in_two_zones_is_inside_the_window_in_both() -> None:
    zones = ("America/Boise", "America/Los_Angeles")
    window = CallingWindow()  # 09:00-20:00
    now = START

    def book(when: str) -> ScheduleCallback | InvalidTool:
        action = parse_tool_call(ToolCall("schedule_callback", {"when": when}), now=now,
                                 zones=zones, window=window)
        assert isinstance(action, ScheduleCallback | InvalidTool)
        return action

    # 09:30 Boise is 08:30 in LA: too early there; 09:30 LA (10:30 Boise) is fine in both.
    early = book("2026-01-06T09:30")
    assert isinstance(early, ScheduleCallback)
    assert early.due_at == datetime(2026, 1, 6, 17, 30, tzinfo=UTC)
    # 19:30 LA is 20:30 in Boise: too late there; 19:30 Boise (18:30 LA) is fine in both.
    late = book("2026-01-06T19:30")
    assert isinstance(late, ScheduleCallback)
    assert late.due_at == datetime(2026, 1, 7, 2, 30, tzinfo=UTC)
    # 21:00 is closed in both readings: refused, with a reason the agent can say.
    refused = book("2026-01-06T21:00")
    assert isinstance(refused, InvalidTool) and "09:00 to 20:00" in refused.error
    # No zone known at all: refused, never booked in UTC.
    unknown = parse_tool_call(ToolCall("schedule_callback", {"when": "2026-01-06T15:00"}),
                              now=now, zones=(), window=window)
    assert isinstance(unknown, InvalidTool) and "time zone" in unknown.error


async def test_contact_policy_intersects_the_declared_zone_with_the_numbers(
        store: Store) -> None:
    # Monday 20:30 in New York (closed) is 17:30 in Los Angeles (open).
    at = datetime(2026, 1, 6, 1, 30, tzinfo=UTC)
    camp = make_campaign(timezone_policy={"source": "contact"})
    d = await check(store, GateContext(camp, NY_PHONE, at, contact_tz="America/Los_Angeles"))
    assert not d.allowed, "a declared zone does not move a New York number to LA"
    assert d.reason is GateReason.UNKNOWN_TIMEZONE and d.held
    # A declared zone that is one of the number's zones narrows it.
    d = await check(store, GateContext(camp, BOISE_LA_PHONE, at,
                                       contact_tz="America/Los_Angeles"))
    assert d.allowed and d.zones == ("America/Los_Angeles",)
    # The campaign may say to trust the declared zone.
    trusting = make_campaign(timezone_policy={"source": "contact",
                                              "trust_contact_timezone": True})
    d = await check(store, GateContext(trusting, NY_PHONE, at, contact_tz="America/Los_Angeles"))
    assert d.allowed and d.zones == ("America/Los_Angeles",)


async def test_second_callback_in_one_call_replaces_the_first(store: Store) -> None:
    clock = FakeClock(START)
    camp = make_campaign(timezone_policy={"source": "fixed", "fixed_zone": "America/New_York"},
                         retry={"retry_interval_minutes": 0, "max_attempts_per_phone": 1})
    await seed(store, camp, [[NY_PHONE]])
    orig = FakeOriginator(clock)
    dialer = Dialer(store, orig, clock)
    await dialer.tick()
    [first] = orig.sent
    call_id = first.req.call_id
    port = StoreCallbacks(store)
    monday_noon = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)
    tuesday_noon = datetime(2026, 1, 6, 17, 0, tzinfo=UTC)
    await port.schedule(call_id, monday_noon, "America/New_York")
    await port.schedule(call_id, tuesday_noon, "America/New_York")  # "make it Tuesday"
    rows = await store.fetchall("SELECT due_at, status FROM callbacks ORDER BY id")
    assert [r["status"] for r in rows] == ["replaced", "pending"]
    await dialer.on_outcome(CallOutcome(call_id, CallStatus.COMPLETED, answered_at=START,
                                        hangup_at=START), 2, Disposition.CALLBACK)
    await clock.advance(3600)  # pacing runs on the monotonic clock
    clock.set_now(monday_noon)
    await dialer.tick()
    assert len(orig.sent) == 1, "the replaced time is not dialed"
    await clock.advance(3600)
    clock.set_now(tuesday_noon)
    await dialer.tick()
    assert len(orig.sent) == 2 and orig.sent[1].req.phone == NY_PHONE


# --- compliance wording --------------------------------------------------------------------


def write_config(tmp_path: Path, opening: str, **agent: Any) -> Path:
    (tmp_path / "campaigns").mkdir(parents=True)
    (tmp_path / "televox.yaml").write_text("campaigns_dir: campaigns\n", encoding="utf-8")
    data = {"name": "c", "caller_id": "+15550100000", "trunk": "trunk",
            "agent": {"persona_name": "Sam", "business": "Northwind",
                      "opening_line": opening, "goal": "A survey.", **agent}}
    (tmp_path / "campaigns" / "c.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("opening", [
    "Hello, I'm Sam, an automated assistant for Northwind.",
    "Hello, this is an automated call from Northwind.",
    "Hi, I'm Sam, a virtual agent for Northwind.",
    "Hi, I'm Sam from Northwind, with a few questions.",
])
def test_check_requires_the_word_ai(tmp_path: Path, opening: str) -> None:
    report = check_directory(write_config(tmp_path, opening))
    assert [i.field for i in report.issues] == ["agent.opening_line"]
    assert "AI" in report.issues[0].message


def test_check_accepts_ai_and_the_explicit_override(tmp_path: Path) -> None:
    ok = check_directory(write_config(tmp_path / "a", "Hello, I'm Sam, an AI assistant."))
    assert not ok.issues
    spelled = check_directory(write_config(tmp_path / "b", "I'm an artificial intelligence."))
    assert not spelled.issues
    override = check_directory(write_config(tmp_path / "c", "Hi, I'm Sam from Northwind.",
                                            allow_no_ai_disclosure=True))
    assert not override.issues


@pytest.mark.parametrize("config_dir", ["config", "config/demo"])
def test_every_shipped_campaign_says_ai(tmp_path: Path, config_dir: str) -> None:
    copy = tmp_path / "config"
    shutil.copytree(REPO / config_dir, copy)
    report = check_directory(copy)
    assert not report.issues, report.issues
    for path in sorted((copy / "campaigns").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        # A campaign naming an agent file keeps its own opening line at the top level.
        opening = (data["opening_line"] if isinstance(data["agent"], str)
                   else data["agent"]["opening_line"])
        assert re.search(r"\bAI\b|artificial intelligence", opening), path.name
