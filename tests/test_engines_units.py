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
from televox_pbx.voice.engines.llm_eval import Stopped, eval_prompt, plan_slices
from televox_pbx.voice.engines.llm_llama import LlamaLlm, _tool_starts
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
from televox_pbx.voice.engines.text_split import split_for_tts
from televox_pbx.voice.interfaces import ChatMessage, ToolCall

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


async def test_llm_makes_each_piece_only_when_the_consumer_asks() -> None:
    """A consumer that stops pulling frees the CPU (TTS of the first clause needs it)."""
    fake = _FakeLlama(["tok "] * 10)
    llm = LlamaLlm(fake)
    agen = llm.stream([ChatMessage("user", "x")])
    for n in (1, 2, 3):
        await agen.__anext__()
        await asyncio.sleep(0.05)  # real time: the worker thread would have raced ahead
        assert fake.produced == n
    await agen.aclose()
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


class _VocabLlama:
    """Just a tokenizer: token i is VOCAB[i]."""

    VOCAB = (b" null", b" {", b' {"', b" ", b" n", b" nul", b" null ", b" nothing", b"null",
             b"{", b"", b" no")

    def n_vocab(self) -> int:
        return len(self.VOCAB)

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return [self.VOCAB.index(text)]

    def detokenize(self, tokens: list[int]) -> bytes:
        return b"".join(self.VOCAB[t] for t in tokens)


def test_tool_starts_are_null_and_every_token_that_could_begin_another_value() -> None:
    starts = _tool_starts(_VocabLlama())
    assert starts is not None
    null_id, rivals = starts
    assert null_id == 0
    # ` {`-tokens, pieces of ` null`, and ` null` with more after it; not other words.
    assert [_VocabLlama.VOCAB[t] for t in rivals] == [b" {", b' {"', b" ", b" n", b" nul",
                                                      b" null "]


class _CacheLlama:
    """The parts of llama_cpp.Llama that prefix reuse touches, recording what was done."""

    def __init__(self, cached: list[int], *, requires_eval: bool = False) -> None:
        self.input_ids = np.zeros(64, dtype=np.intc)
        self.input_ids[: len(cached)] = cached
        self.n_tokens = len(cached)
        self._requires_eval = requires_eval
        self.removed_from: list[int] = []
        self.evaluated: list[list[int]] = []
        self._ctx = self

    def kv_cache_seq_rm(self, seq_id: int, p0: int, p1: int) -> bool:
        self.removed_from.append(p0)
        return True

    def reset(self) -> None:
        self.n_tokens = 0

    def eval(self, tokens: list[int]) -> None:
        self.evaluated.append(list(tokens))
        self.input_ids[self.n_tokens: self.n_tokens + len(tokens)] = tokens
        self.n_tokens += len(tokens)
        self._requires_eval = False


@pytest.mark.parametrize(("cached", "requires_eval", "evaluated"), [
    ([1, 2, 3], False, [[4, 5]]),         # a prefix hit: only the new tokens
    ([1, 2, 9, 9], False, [[3, 4, 5]]),   # diverged: rewind to the common prefix
    ([1, 2, 3, 4, 5], False, []),         # evaluated by a live decode: logits current
    ([1, 2, 3, 4, 5], True, [[5]]),       # restored state: replay the last token
    ([1, 2, 3, 4, 5, 6], False, [[5]]),   # cached with more after: replay the last
    ([7], False, [[1, 2, 3, 4, 5]]),      # nothing shared: from scratch
    ([], False, [[1, 2, 3, 4, 5]]),
])
def test_eval_prompt_reuses_the_cached_prefix_like_llama_generate(
        cached: list[int], requires_eval: bool, evaluated: list[list[int]]) -> None:
    llama = _CacheLlama(cached, requires_eval=requires_eval)
    eval_prompt(llama, [1, 2, 3, 4, 5])
    assert llama.evaluated == evaluated
    assert llama.n_tokens == 5 and llama.input_ids[:5].tolist() == [1, 2, 3, 4, 5]


def test_eval_prompt_gives_up_between_slices_once_stopped() -> None:
    llama = _CacheLlama([])
    stop = threading.Event()
    original = llama.eval

    def eval_then_stop(tokens: list[int]) -> None:
        original(tokens)
        stop.set()  # the consumer left while the first slice was being evaluated
    llama.eval = eval_then_stop  # type: ignore[method-assign]
    with pytest.raises(Stopped):
        eval_prompt(llama, list(range(1, 41)), stop)
    assert llama.evaluated == [list(range(1, 33))], "one 32-token slice, then no more"
    whole = _CacheLlama([])
    eval_prompt(whole, list(range(1, 41)), threading.Event())
    assert [len(s) for s in whole.evaluated] == [32, 8]


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


def test_engines_fail_fast_on_missing_files_without_any_hub(tmp_path: Path) -> None:
    from televox_pbx.voice.engines.stt_whisper import WhisperStt
    from televox_pbx.voice.engines.tts_piper import PiperTts

    with pytest.raises(FileNotFoundError, match=r"model\.bin"):
        WhisperStt(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"voice\.onnx"):
        PiperTts(tmp_path / "voice.onnx")
    with pytest.raises(FileNotFoundError, match=r"m\.gguf"):
        LlamaLlm.load(tmp_path / "m.gguf")


@pytest.mark.parametrize(("text", "n_tokens", "degenerate"), [
    ("Yes.", 2, False),
    ("Could the engineer come on a Saturday?", 8, False),
    ("No, no, no.", 6, False),  # one word said three times: not a 3-word run said twice
    ("Please take me off your list. Please take me off your list.", 14, True),
    ("I don't know. I DON'T know!", 9, True),  # normalised: case and punctuation ignored
    ("yes yes yes yes", 4, True),  # overlapping runs count
    ("ha" * 60, 30, True),  # gzip ratio far above 2.0
    ("Hello, this is a perfectly normal sentence", 99, True),  # hit the token limit
    ("", 0, False),
])
def test_whisper_degenerate_decode_check(text: str, n_tokens: int, degenerate: bool) -> None:
    from televox_pbx.voice.engines.stt_whisper import looks_degenerate

    assert looks_degenerate(text, n_tokens, max_tokens=99) is degenerate


def test_whisper_decode_that_stopped_early_is_degenerate() -> None:
    from televox_pbx.voice.engines.stt_whisper import looks_degenerate, voiced_seconds

    assert looks_degenerate("Hi Sam.", 3, 99, voiced_s=5.5)
    assert not looks_degenerate("Yes.", 2, 99, voiced_s=0.5)
    assert not looks_degenerate("Could the engineer come on a Saturday?", 8, 99, voiced_s=2.0)
    tone = np.sin(np.arange(16000, dtype=np.float32) / 5.0) * 0.5
    clip = np.concatenate([np.zeros(16000, np.float32), tone, np.zeros(8000, np.float32)])
    assert voiced_seconds(clip) == pytest.approx(1.0, abs=0.04)
    assert voiced_seconds(np.zeros(100, np.float32)) == 0.0


@pytest.mark.parametrize(("text", "clip_s", "head"), [
    ("Do you offer financing? Do you offer financing? Do you", 1.4, "Do you offer financing?"),
    ("Are there any tax credits? Are there any tax credits? Are there any", 1.6,
     "Are there any tax credits?"),
    ("I don't know. I DON'T know!", 1.0, "I don't know."),  # normalised as the loop test
    ("Yes. No, thanks. Yes. No, thanks.", 1.0, "Yes. No, thanks."),  # a run of sentences
    # Drifting, or going on to new words: the careful 30 s decode.
    ("Are there any tax credits? Are there any tax credits? Are you? Are you?", 1.6, None),
    ("I'm not interested. I'm not interested. Stop calling me.", 2.0, None),
    ("Thank you. Thank you. Thank you.", 1.0, None),  # a stock phrase of noise
    ("Hi. Hi there.", 1.0, None),  # not the same sentence
    ("Thank you", 1.0, None),
    ("", 1.0, None),
    # The first copy alone holds more words than 0.5 s could: not a loop of real speech.
    ("One two three four five six seven. One two three four five six seven.", 0.5, None),
])
def test_whisper_loop_is_cut_to_its_first_copy(text: str, clip_s: float,
                                               head: str | None) -> None:
    from televox_pbx.voice.engines.stt_whisper import collapse_repeat

    assert collapse_repeat(text, clip_s) == head


def test_whisper_loop_of_the_prompts_own_words_is_not_cut() -> None:
    """Noise can be decoded as the hotwords prompt said over and over."""
    from televox_pbx.voice.engines.stt_whisper import HOTWORDS, WhisperStt

    stt = WhisperStt.__new__(WhisperStt)  # no model: only the prompt's words are needed
    stt._hotwords = HOTWORDS
    assert stt._prompted("Stop calling me. Take me off your list.")
    assert not stt._prompted("Do you offer financing?")
    assert not stt._prompted("Please stop calling me tomorrow.")


@pytest.mark.parametrize(("n", "plan"), [
    (0, []), (1, [(1, 1)]), (9, [(9, 9)]), (10, [(10, 16)]), (15, [(15, 16)]),
    (16, [(16, 16)]), (17, [(17, 17)]), (25, [(25, 25)]), (26, [(26, 32)]), (31, [(31, 32)]),
    (32, [(32, 32)]), (33, [(32, 32), (1, 1)]), (45, [(32, 32), (13, 16)]),
])
def test_slices_are_padded_to_the_fast_batch_size(n: int, plan: list[tuple[int, int]]) -> None:
    assert plan_slices(n) == plan
