"""The simulated callee speaks with real Piper; whisper hears it on both recordings."""

from __future__ import annotations

import asyncio
import re
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from sim_harness import harness

from televox_pbx.config.settings import ModelSettings
from televox_pbx.sim import Callee, Scenario, ScriptItem
from televox_pbx.sim.speech import speech_from_tts
from televox_pbx.voice.engines import Engines
from televox_pbx.voice.interfaces import AudioChunk

pytestmark = pytest.mark.models

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def engines() -> Iterator[Engines]:
    eng = Engines(ModelSettings(cache_dir=REPO / "var" / "models"))
    yield eng
    eng.close()


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def test_callee_speech_reaches_the_daemon_and_the_echo_is_recorded(
        engines: Engines, tmp_path: Path) -> None:
    speech = speech_from_tts(engines.tts())
    scenario = Scenario(default=Callee(ring_s=0.05, script=[
        ScriptItem(say="Please take me off your calling list.")]), turn_gap_s=0.0)
    async with harness(scenario, echo_reply="echo", echo_hangup_s=3.5, speech=speech,
                       out_dir=tmp_path) as h:
        call_id = await h.originate("15550100")
        session = await asyncio.wait_for(h.echo.wait_session(call_id), 10)
        await h.wait_final(call_id)
    stt = engines.stt()
    daemon_side = stt.transcribe_blocking(AudioChunk(bytes(session.audio_in), 8000)).text
    with wave.open(str(tmp_path / f"{call_id}-heard.wav")) as w:
        heard = w.readframes(w.getnframes())
    echoed = stt.transcribe_blocking(AudioChunk(heard, 8000)).text
    for text in (daemon_side, echoed):
        assert {"off", "list"} <= _words(text), text
