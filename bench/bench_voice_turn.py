"""Per-turn latency of one real call: simulator callee (Piper) -> AudioSocket server ->
voice session on the local models. Prints each agent turn's latency breakdown, in ms
after the end of the callee's speech.
Usage: .venv/bin/python bench/bench_voice_turn.py ["what the callee says" ...]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from repo_models import model_settings

from televox_pbx.audiosocket.server import AudioSocketServer
from televox_pbx.audiosocket.session import CallAudio
from televox_pbx.campaigns.dnc import CallDnc, DncService
from televox_pbx.clock import SystemClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.sim.audio_leg import AudioLeg, LegConfig, Segment
from televox_pbx.sim.speech import speech_from_tts
from televox_pbx.store.db import Store
from televox_pbx.store.transcripts import StoreCallbacks, StoreCallLog, transcript
from televox_pbx.voice.engines.holder import Engines as ModelHolder
from televox_pbx.voice.session import CallPorts, Engines, SessionConfig
from televox_pbx.voice.session_factory import VoiceSessionFactory

CAMPAIGN = Campaign.model_validate({
    "name": "bench", "caller_id": "+15550100000", "trunk": "trunk",
    "agent": {"persona_name": "Ava", "business": "Acme Solar",
              "opening_line": "Hi {{NAME}}, this is Ava, an AI assistant from Acme Solar. "
                              "Could we book a free solar consultation?",
              "goal": "Book a free solar consultation at a time that suits them."},
    "silence": {"reprompt_after_s": 4, "hangup_after_s": 5, "max_call_duration_s": 120}})
KEYS = ("endpoint_ms", "transcript_ms", "first_token_ms", "first_audio_ms", "first_frame_ms")


async def main(says: list[str]) -> None:
    started = time.perf_counter()
    models = ModelHolder(model_settings())
    await models.preload()
    print(f"models loaded in {time.perf_counter() - started:.1f} s")
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "bench.db")
        call_id = str(uuid.uuid4())
        await store.execute("INSERT INTO call_attempts(id, phone) VALUES (?, ?)",
                            (call_id, "+15550198000"))
        factory = VoiceSessionFactory(
            Engines(models.vad(), models.stt(), models.llm(), models.tts()),
            CallPorts(CallDnc(DncService(store, clock=clock)), StoreCallbacks(store),
                  StoreCallLog(store)),
            clock, SessionConfig())
        session = factory.create(campaign=CAMPAIGN, call_id=call_id, phone="+15550198000",
                                 variables={"name": "Sam"})
        done = asyncio.Event()

        async def handler(call: CallAudio) -> None:
            try:
                await session(call)
            finally:
                done.set()

        speech = speech_from_tts(models.tts())
        segments = [Segment(pcm=await speech(text)) for text in says]
        async with AudioSocketServer(clock) as server:
            server.expect(call_id, handler)
            leg = AudioLeg(call_id, segments, LegConfig("127.0.0.1", server.port,
                                                        hangup_after_s=150.0), clock)
            t0 = time.perf_counter()
            await leg.run()
            await done.wait()
            print(f"call lasted {time.perf_counter() - t0:.1f} s")
        for row in await transcript(store, call_id):
            print(f"{row.speaker:>6}: {row.text}")
            if row.latency:
                print("        " + "  ".join(f"{k}={row.latency[k]:.0f}" for k in KEYS
                                             if k in row.latency))
        await store.close()
    models.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["Yes, Tuesday at three works.",
                                      "Great, thanks. Bye."]))
