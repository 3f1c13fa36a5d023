"""Engine plumbing without the real models: reply parsing, grammar, splitting, resampling,
LLM streaming/cancellation on a scripted fake, and Engines error reporting."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from televox_pbx.agent.tools import tools_schema
from televox_pbx.config.settings import ModelSettings
from televox_pbx.voice.engines import Engines
from televox_pbx.voice.engines.llm_llama import LlamaLlm
from televox_pbx.voice.engines.llm_reply import (
    ReplyStreamParser,
    format_instructions,
    normalize_tools,
    reply_schema,
    wrap_assistant,
)
from televox_pbx.voice.engines.manifest import load_manifest
from televox_pbx.voice.engines.registry import ModelUnavailable
from televox_pbx.voice.engines.resample import (
    StreamResampler,
    pcm16_to_float,
    resample_pcm16,
)
from televox_pbx.voice.engines.stt_speculative import SpeculativeTranscriber
from televox_pbx.voice.engines.text_split import split_for_tts
from televox_pbx.voice.interfaces import AudioChunk, ChatMessage, ToolCall, Transcript

REPLY = ('{"tool": {"name": "schedule_callback", "arguments": {"when": "2026-03-03T15:00"}}, '
         '"say": "Sure \\"tomorrow\\", at 3 \\u2014 bye \\ud83d\\ude00.\\nOk"}')
SAID = 'Sure "tomorrow", at 3 — bye 😀.\nOk'
NAMES = {t.name for t in normalize_tools(tools_schema(transfer_available=True))}


@pytest.mark.parametrize("step", [1, 2, 3, 7, len(REPLY)])
def test_parser_streams_speech_and_tool_for_any_chunking(step: int) -> None:
    parser = ReplyStreamParser(NAMES)
    said, tools = [], []
    for i in range(0, len(REPLY), step):
        text, calls = parser.feed(REPLY[i:i + step])
        said.append(text)
        tools.extend(calls)
    assert "".join(said) == SAID
    assert tools == [ToolCall("schedule_callback", {"when": "2026-03-03T15:00"})]
    assert parser.complete and parser.tool_error is None


def test_parser_tool_arrives_before_any_speech() -> None:
    parser = ReplyStreamParser(NAMES)
    _, calls = parser.feed('{"tool": {"name": "opt_out", "arguments": {}}, ')
    assert calls == [ToolCall("opt_out", {})]
    assert parser.feed('"say": "Bye') == ("Bye", [])
    assert not parser.complete


def test_parser_null_tool_unknown_tool_and_truncation() -> None:
    parser = ReplyStreamParser(NAMES)
    assert parser.feed('{"tool": null, "say": "hi"}') == ("hi", [])
    assert parser.tool_seen and parser.tool is None and parser.complete
    bad = ReplyStreamParser(NAMES)
    assert bad.feed('{"tool": {"name": "launch", "arguments": {}}, "say": ""}') == ("", [])
    assert bad.tool_error is not None and "launch" in bad.tool_error
    cut = ReplyStreamParser(NAMES)
    assert cut.feed('{"tool": null, "say": "Hello the') == ("Hello the", [])
    assert not cut.complete


def test_reply_schema_compiles_to_a_grammar_with_tool_first() -> None:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    tools = normalize_tools(tools_schema(transfer_available=False))
    schema = reply_schema(tools)
    assert list(schema["properties"]) == ["tool", "say"]
    gbnf = json_schema_to_gbnf(json.dumps(schema))
    assert '"\\"opt_out\\""' in gbnf and "root ::=" in gbnf
    text = format_instructions(tools)
    assert "opt_out()" in text and "schedule_callback(when: string (Local date" in text
    assert format_instructions(tools) == text  # stable bytes: prompt-cache friendly


def test_normalize_accepts_bare_entries_and_wrap_assistant() -> None:
    tools = normalize_tools({"tools": [{"name": "hang_up", "description": "d"}]})
    assert tools[0].name == "hang_up" and tools[0].parameters["type"] == "object"
    assert normalize_tools(None) == []
    assert json.loads(wrap_assistant("Hi there")) == {"tool": None, "say": "Hi there"}
    already = '{"tool": null, "say": "x"}'
    assert wrap_assistant(already) == already


def test_split_for_tts() -> None:
    assert split_for_tts("Hello there. How are you? Fine!") == [
        "Hello there.", "How are you?", "Fine!"]
    long = ("I understand completely, and I have removed your number from our list, "
            "so you will not hear from us again, ok.")
    pieces = split_for_tts(long)
    assert len(pieces) > 1 and " ".join(pieces) == long
    assert all(len(p) >= 12 for p in pieces)
    assert split_for_tts("   ") == []


def test_resampling_lengths_and_stream_matches_one_shot() -> None:
    t = np.arange(8000) / 8000
    pcm = (np.sin(2 * np.pi * 300 * t) * 8000).astype("<i2").tobytes()
    up = resample_pcm16(pcm, 8000, 16000)
    assert len(up) == 2 * len(pcm)
    stream = StreamResampler(8000, 16000)
    out = b"".join(stream.process(pcm[i:i + 321]) for i in range(0, len(pcm), 321))
    out += stream.flush()
    assert abs(len(out) - len(up)) <= 4
    a, b = pcm16_to_float(out[:len(up)]), pcm16_to_float(up)
    assert float(np.max(np.abs(a[200:-200] - b[200:-200]))) < 0.02
    down = resample_pcm16(bytes(2 * 22050), 22050, 8000)
    assert len(down) == 2 * 8000


class _FakeLlama:
    """Yields scripted pieces slowly, recording how far generation got."""

    def __init__(self, pieces: list[str], delay: float = 0.0,
                 fail: Exception | None = None) -> None:
        self.pieces, self.delay, self.fail = pieces, delay, fail
        self.produced = 0
        self.prompts: list[list[dict[str, str]]] = []
        self.closed = threading.Event()

    def create_chat_completion(self, messages: list[dict[str, str]],
                               **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.prompts.append(messages)
        return self._gen()

    def _gen(self) -> Iterator[dict[str, Any]]:
        try:
            for piece in self.pieces:
                if self.fail is not None:
                    raise self.fail
                time.sleep(self.delay)  # stands in for token compute on the worker thread
                self.produced += 1
                yield {"choices": [{"delta": {"content": piece}}]}
        finally:
            self.closed.set()


async def test_llm_streams_tool_then_speech_and_prefixes_the_format_block() -> None:
    pieces = [REPLY[i:i + 5] for i in range(0, len(REPLY), 5)]
    fake = _FakeLlama(pieces)
    llm = LlamaLlm(fake)
    schema = tools_schema(transfer_available=False)
    msgs = [ChatMessage("system", "You are Anna."), ChatMessage("assistant", "Hello!"),
            ChatMessage("user", "call me tomorrow")]
    deltas = [d async for d in llm.stream(msgs, schema)]
    assert deltas[0].tool_call == ToolCall("schedule_callback", {"when": "2026-03-03T15:00"})
    assert "".join(d.text for d in deltas) == SAID
    prompt = fake.prompts[0]
    assert prompt[0]["content"].startswith("Answer every turn with one JSON object")
    assert prompt[0]["content"].endswith("You are Anna.")
    assert json.loads(prompt[1]["content"]) == {"tool": None, "say": "Hello!"}
    llm.close()


async def test_llm_plain_text_without_tools() -> None:
    llm = LlamaLlm(_FakeLlama(["Hel", "lo", "."]))
    assert [d.text async for d in llm.stream([ChatMessage("user", "hi")])] == ["Hel", "lo", "."]
    llm.close()


async def test_llm_cancel_stops_generation_promptly() -> None:
    fake = _FakeLlama(["tok "] * 1000, delay=0.005)
    llm = LlamaLlm(fake)
    agen = llm.stream([ChatMessage("user", "talk forever")])
    got = [await agen.__anext__() for _ in range(3)]
    assert got[0].text == "tok "
    await agen.aclose()
    assert await asyncio.to_thread(fake.closed.wait, 5.0)
    assert fake.produced < 50
    llm.close()


async def test_llm_task_cancellation_also_stops() -> None:
    fake = _FakeLlama(["tok "] * 1000, delay=0.005)
    llm = LlamaLlm(fake)
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in llm.stream([ChatMessage("user", "x")]):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(fake.closed.wait, 5.0)
    assert fake.produced < 50
    llm.close()


async def test_llm_worker_errors_reach_the_consumer() -> None:
    llm = LlamaLlm(_FakeLlama(["x"], fail=RuntimeError("kv cache full")))
    with pytest.raises(RuntimeError, match="kv cache full"):
        async for _ in llm.stream([ChatMessage("user", "x")]):
            pass
    llm.close()


def test_engines_report_a_missing_model_by_file(tmp_path: Path) -> None:
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps({"version": 1, "models": [
        {"id": "stt-x", "kind": "stt", "main": "model.bin", "files": [
            {"name": "model.bin", "size": 1, "sha256": "0" * 64,
             "source": {"path": "nowhere/model.bin"}}]}]}))
    engines = Engines(ModelSettings(stt="stt-x", cache_dir=tmp_path / "cache"),
                      manifest=load_manifest(manifest_path))
    with pytest.raises(ModelUnavailable, match=r"nowhere/model\.bin"):
        engines.stt()
    status = {s.name: s for s in engines.status()}
    assert not status["stt"].loaded and "model.bin" in (status["stt"].error or "")
    assert not status["llm"].loaded and status["llm"].error is None


class _CountingStt:
    def __init__(self) -> None:
        self.calls: list[bytes] = []

    async def transcribe(self, audio: AudioChunk) -> Transcript:
        self.calls.append(audio.pcm)
        await asyncio.sleep(0)
        return Transcript(f"{len(audio.pcm)} bytes")


async def test_speculative_transcript_is_reused_when_audio_is_unchanged() -> None:
    stt = _CountingStt()
    spec = SpeculativeTranscriber(stt)
    audio = AudioChunk(b"\x01\x00" * 800, 8000)
    spec.speculate(audio)
    spec.speculate(audio)  # the same pause reported twice: still one transcription
    assert (await spec.final(audio)).text == "1600 bytes"
    assert len(stt.calls) == 1 and spec.reused == 1


async def test_speculation_is_discarded_when_the_caller_kept_talking() -> None:
    stt = _CountingStt()
    spec = SpeculativeTranscriber(stt)
    spec.speculate(AudioChunk(b"\x01\x00" * 800, 8000))
    longer = AudioChunk(b"\x01\x00" * 1600, 8000)
    assert (await spec.final(longer)).text == "3200 bytes"
    assert spec.reused == 0 and stt.calls[-1] == longer.pcm
    spec.speculate(longer)
    spec.cancel()
    assert (await spec.final(longer)).text == "3200 bytes" and spec.reused == 0


def test_engines_fail_fast_on_missing_files_without_any_hub(tmp_path: Path) -> None:
    from televox_pbx.voice.engines.stt_whisper import WhisperStt
    from televox_pbx.voice.engines.tts_piper import PiperTts

    with pytest.raises(FileNotFoundError, match=r"model\.bin"):
        WhisperStt(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"voice\.onnx"):
        PiperTts(tmp_path / "voice.onnx")
    with pytest.raises(FileNotFoundError, match=r"m\.gguf"):
        LlamaLlm.load(tmp_path / "m.gguf")
