"""End to end with the real models: the simulator's AudioSocket leg (Piper speaking for
the callee) against the real AudioSocket server and a voice session on local models."""

from __future__ import annotations

import asyncio
import re
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from televox_pbx.audiosocket.server import AudioSocketServer
from televox_pbx.audiosocket.session import CallAudio
from televox_pbx.campaigns.dnc import CallDnc, DncService
from televox_pbx.clock import SystemClock
from televox_pbx.config.campaign import AI_DISCLOSURE, Campaign
from televox_pbx.config.settings import ModelSettings
from televox_pbx.domain import Disposition
from televox_pbx.sim.audio_leg import AudioLeg, LegConfig, LegResult, Segment
from televox_pbx.sim.speech import speech_from_tts
from televox_pbx.store.db import Store
from televox_pbx.store.dnc import is_on_dnc
from televox_pbx.store.transcripts import (
    StoreCallbacks,
    StoreCallLog,
    recordings,
    transcript,
)
from televox_pbx.voice.engines.holder import Engines as ModelHolder
from televox_pbx.voice.interfaces import AudioChunk
from televox_pbx.voice.session import (
    CallPorts,
    CallResult,
    Engines,
    SessionConfig,
)
from televox_pbx.voice.session_factory import VoiceSessionFactory

pytestmark = pytest.mark.models

PHONE = "+15550198000"
CAMPAIGN = Campaign.model_validate({
    "name": "e2e", "caller_id": "+15550100000", "trunk": "trunk", "amd": "off",
    "agent": {"persona_name": "Ava", "business": "Acme Solar",
              "opening_line": "Hi {{NAME}}, this is Ava, an AI assistant from Acme Solar. "
                              "Could we book a free solar consultation?",
              "goal": "Book a free solar consultation at a time that suits them."},
    "silence": {"reprompt_after_s": 4, "hangup_after_s": 6, "max_call_duration_s": 100},
})


@pytest.fixture(scope="module")
def models() -> Iterator[ModelHolder]:
    holder = ModelHolder(ModelSettings())
    try:
        holder.vad(), holder.stt(), holder.llm(), holder.tts()
    except Exception as exc:  # pragma: no cover - depends on the box
        pytest.skip(f"local models unavailable: {exc}")
    yield holder
    holder.close()


@dataclass
class Call:
    result: CallResult
    leg: LegResult
    store: Store
    call_id: str
    dnc_at: float | None
    leg_end_at: float


class TimedDnc(CallDnc):
    at: float | None = None

    def __init__(self, store: Store, clock: SystemClock) -> None:
        super().__init__(DncService(store, clock=clock))
        self.clock = clock

    async def add(self, phone: str, *, reason: str, source: str) -> None:
        await super().add(phone, reason=reason, source=source)
        self.at = self.clock.monotonic()


async def place_call(models: ModelHolder, tmp_path: Path, says: list[str]) -> Call:
    clock = SystemClock()
    store = await Store.open(tmp_path / "e2e.db")
    call_id = str(uuid.uuid4())
    await store.execute("INSERT INTO call_attempts(id, phone) VALUES (?, ?)", (call_id, PHONE))
    dnc = TimedDnc(store, clock)
    engines = Engines(models.vad(), models.stt(), models.llm(), models.tts())
    factory = VoiceSessionFactory(engines, CallPorts(dnc, StoreCallbacks(store),
                                                     StoreCallLog(store)),
                                  clock, SessionConfig(recordings_dir=tmp_path / "rec"))
    session = factory.create(campaign=CAMPAIGN, call_id=call_id, phone=PHONE,
                             variables={"name": "Sam"}, zone="America/New_York")
    finished = asyncio.Event()

    async def handler(call: CallAudio) -> None:
        try:
            await session(call)
        finally:
            finished.set()

    speech = speech_from_tts(models.tts())
    segments = [Segment(pcm=await speech(text)) for text in says]
    async with AudioSocketServer(clock) as server:
        server.expect(call_id, handler)
        leg = AudioLeg(call_id, segments, LegConfig("127.0.0.1", server.port,
                                                    hangup_after_s=120.0), clock)
        # The agent ends the call itself (silence after its reply, or the opt-out).
        leg_result = await asyncio.wait_for(leg.run(), 150)
        leg_end = clock.monotonic()
        await asyncio.wait_for(finished.wait(), 30)
    assert session.result is not None
    return Call(session.result, leg_result, store, call_id, dnc.at, leg_end)


async def heard_text(models: ModelHolder, pcm: bytes, seconds: float) -> str:
    clip = AudioChunk(pcm[: int(seconds * 8000) * 2], 8000)
    return (await models.stt().transcribe(clip)).text


async def test_booking_call(models: ModelHolder, tmp_path: Path) -> None:
    call = await place_call(models, tmp_path, ["Yes, Tuesday at three works."])
    try:
        opening = await heard_text(models, call.leg.heard, 7.0)
        assert AI_DISCLOSURE.search(opening) or re.search(r"\bA\.? ?I\b", opening), opening
        rows = await transcript(call.store, call.call_id)
        callee = [r.text for r in rows if r.speaker == "callee"]
        assert callee and re.search(r"tuesday", callee[0], re.IGNORECASE), rows
        assert any(r.speaker == "agent" and r.latency for r in rows), rows
        assert call.result.disposition in {Disposition.INTERESTED, Disposition.CALLBACK,
                                           Disposition.COMPLETED}, [
            (r.speaker, r.text) for r in rows]
        row = await call.store.fetchone("SELECT disposition FROM call_attempts WHERE id = ?",
                                        (call.call_id,))
        assert row is not None and row["disposition"] == call.result.disposition.value
        [(path, seconds)] = await recordings(call.store, call.call_id)
        with wave.open(str(path)) as w:
            assert w.getnchannels() == 2 and w.getframerate() == 8000
        assert seconds and seconds > 5
    finally:
        await call.store.close()


async def test_opt_out_call(models: ModelHolder, tmp_path: Path) -> None:
    call = await place_call(models, tmp_path, ["Please take me off your list."])
    try:
        assert call.result.disposition is Disposition.OPT_OUT
        assert await is_on_dnc(call.store, PHONE)
        assert call.dnc_at is not None and call.dnc_at <= call.leg_end_at, \
            "on the DNC list before the call was hung up"
        assert call.result.ended_by == "opt_out"
        row = await call.store.fetchone("SELECT disposition FROM call_attempts WHERE id = ?",
                                        (call.call_id,))
        assert row is not None and row["disposition"] == "OPT_OUT"
    finally:
        await call.store.close()
