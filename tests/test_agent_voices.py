"""A voice per agent: one Piper engine per distinct voice of the manifest, loaded once and
shared by every call that names it; a call of an agent speaks with its agent's voice and
the rest with the settings' voice. Only one Piper voice ships, so the manifest here names
two voices (hermetic files; Piper itself is replaced by a recorder of what it loaded)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from test_voice_session import PHONE
from voice_fakes import (
    FakeCallbacks,
    FakeDnc,
    LoudnessVad,
    MemoryCallLog,
    ScriptedLlm,
    ScriptedStt,
    ScriptedTts,
)

from televox_pbx.clock import FakeClock
from televox_pbx.config.agent import AgentFile
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.settings import ModelSettings
from televox_pbx.voice.agent_extras import agent_voices
from televox_pbx.voice.engines import tts_piper
from televox_pbx.voice.engines.holder import Engines as ModelHolder
from televox_pbx.voice.engines.manifest import load_manifest
from televox_pbx.voice.session import CallPorts, Engines, SessionConfig
from televox_pbx.voice.session_factory import VoiceSessionFactory


class RecordingPiper:
    loaded: ClassVar[list[Path]] = []

    def __init__(self, path: Path) -> None:
        self.path = path
        RecordingPiper.loaded.append(path)


@pytest.fixture
def holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelHolder:
    models = tmp_path / "models"
    models.mkdir()
    entries = []
    for voice in ("voice-a", "voice-b", "voice-c"):
        data = voice.encode()
        (models / f"{voice}.onnx").write_bytes(data)
        entries.append({"id": voice, "kind": "tts", "main": f"{voice}.onnx", "files": [
            {"name": f"{voice}.onnx", "size": len(data),
             "sha256": hashlib.sha256(data).hexdigest(),
             "source": {"path": f"{voice}.onnx"}}]})
    (models / "manifest.json").write_text(json.dumps({"version": 1, "models": entries}))
    RecordingPiper.loaded = []
    monkeypatch.setattr(tts_piper, "PiperTts", RecordingPiper)
    return ModelHolder(ModelSettings(cache_dir=tmp_path / "cache", tts="voice-a"),
                       manifest=load_manifest(models / "manifest.json"))


def _agent_file(directory: Path, name: str, voice: str | None) -> None:
    line = f"voice: {voice}\n" if voice else ""
    (directory / f"{name}.yaml").write_text(
        f"name: {name}\npersona_name: Ava\nbusiness: Acme Dental\n{line}")


def test_one_engine_per_distinct_voice_loaded_once(holder: ModelHolder,
                                                   tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    _agent_file(agents, "front", "voice-b")
    _agent_file(agents, "billing", "voice-b")
    _agent_file(agents, "sales", "voice-a")  # the settings' voice: the default engine
    _agent_file(agents, "plain", None)
    voices = agent_voices(holder, agents)
    assert sorted(voices) == ["voice-a", "voice-b"]
    assert voices["voice-a"] is holder.tts()
    assert holder.tts_voice("voice-b") is voices["voice-b"]
    assert [p.name for p in RecordingPiper.loaded] == ["voice-a.onnx", "voice-b.onnx"]


def test_a_voice_that_cannot_load_leaves_the_default(holder: ModelHolder,
                                                     tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    _agent_file(agents, "front", "voice-x")  # not in the manifest (`televox check` says so)
    assert agent_voices(holder, agents) == {}


def _campaign(voice: str | None) -> Campaign:
    agent = AgentFile(name="desk", persona_name="Ava", business="Acme Dental", voice=voice)
    return Campaign.model_validate(
        {"name": "c", "agent": "desk", "opening_line": "Hi, this is Ava, an AI assistant.",
         "goal": "Book a visit.", "caller_id": "+15550100000", "trunk": "t"},
        context={"agents": {"desk": agent}})


def test_a_call_speaks_with_its_agents_voice(tmp_path: Path) -> None:
    clock = FakeClock()
    default, other = ScriptedTts(clock=clock), ScriptedTts(clock=clock)
    engines = Engines(LoudnessVad(), ScriptedStt([], clock=clock), ScriptedLlm([]), default,
                      voices={"voice-b": other})
    factory = VoiceSessionFactory(engines, CallPorts(FakeDnc(clock), FakeCallbacks(),
                                                     MemoryCallLog()),
                                  clock, SessionConfig(recordings_dir=tmp_path))
    tts_of: dict[Any, Any] = {}
    for voice in ("voice-b", None, "voice-unknown"):
        session = factory.create(campaign=_campaign(voice), call_id=f"c-{voice}",
                                 phone=PHONE)
        tts_of[voice] = session.engines.tts
    assert tts_of == {"voice-b": other, None: default, "voice-unknown": default}
