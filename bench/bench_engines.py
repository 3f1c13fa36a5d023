"""Benchmark the local engines: load times, STT on a ~3 s utterance, LLM first token
(cold and with the prompt prefix cached) and tokens/s, TTS time to first audio, VAD cost.

Run:  .venv/bin/python bench/bench_engines.py [--cache-dir var/models]
Prints numbers; passes or fails nothing. Timings depend on what else the CPU is doing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from televox_pbx.agent.tools import tools_schema
from televox_pbx.config.settings import ModelSettings
from televox_pbx.voice.engines import Engines
from televox_pbx.voice.engines.manifest import load_manifest
from televox_pbx.voice.interfaces import AudioChunk, ChatMessage

REPO = Path(__file__).resolve().parents[1]
UTTERANCE = "Yes, I'm interested, but can you call me back tomorrow afternoon?"
SYSTEM = ("You are Anna, an AI phone assistant calling on behalf of Acme Solar.\n"
          "Goal of this call: offer a free solar roof survey. Speak in one or two short "
          "sentences. If the person asks not to be called again, call opt_out.")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


async def bench_llm(engines: Engines, threads: int) -> None:
    llm = engines.llm()
    llm.temperature = 0.0
    tools = tools_schema(transfer_available=False)
    turns = ["Hello? Who is this?", "What does the survey involve?",
             "Please don't call me again."]
    history = [ChatMessage("system", SYSTEM)]
    for i, user in enumerate(turns):
        history.append(ChatMessage("user", user))
        started = time.perf_counter()
        first_piece = first_text = None
        n = 0
        reply = ""
        tool = None
        async for delta in llm.stream(history, tools):
            now = time.perf_counter() - started
            n += 1
            if first_piece is None:
                first_piece = now
            if delta.text and first_text is None:
                first_text = now
            reply += delta.text
            tool = tool or delta.tool_call
        total = time.perf_counter() - started
        label = "cold" if i == 0 else "warm"
        rate = (n - 1) / (total - (first_piece or 0)) if n > 1 else 0.0
        print(f"llm turn {i + 1} ({label}, {threads} threads): first delta "
              f"{_ms(first_piece or 0)}, first speech {_ms(first_text or 0)}, "
              f"{n} deltas in {total:.2f} s ({rate:.1f} deltas/s), "
              f"tool={tool.name if tool else None}")
        history.append(ChatMessage("assistant", reply))
    started = time.perf_counter()
    count = 0
    async for _ in llm.stream([ChatMessage("user", "Count from one to thirty in words.")]):
        count += 1
    took = time.perf_counter() - started
    print(f"llm plain text: {count} tokens in {took:.2f} s ({count / took:.1f} tok/s)")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache-dir", type=Path, default=REPO / "var" / "models")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    settings = ModelSettings(cache_dir=args.cache_dir, llm_threads=args.threads)
    engines = Engines(settings, manifest=load_manifest(REPO / "models" / "manifest.json"))
    await engines.preload()
    for s in engines.status():
        print(f"load {s.name}: {s.load_seconds:.2f} s ({s.model})")

    tts = engines.tts()
    for text in ["Warm up.", "Thanks for taking my call. I'm Anna, an AI assistant from "
                 "Acme Solar, and I'd like to offer you a free roof survey."]:
        started = time.perf_counter()
        first = None
        audio = 0.0
        async for chunk in tts.synthesize(text):
            first = first if first is not None else time.perf_counter() - started
            audio += chunk.seconds
    print(f"tts: first audio {_ms(first or 0)}, {audio:.2f} s of audio in "
          f"{time.perf_counter() - started:.2f} s")

    speech = tts.synthesize_pcm8k(UTTERANCE)
    stt = engines.stt()
    await stt.transcribe(AudioChunk(speech, 8000))  # warm-up
    started = time.perf_counter()
    result = await stt.transcribe(AudioChunk(speech, 8000))
    print(f"stt: {len(speech) / 16000:.2f} s utterance in {_ms(time.perf_counter() - started)}"
          f" -> {result.text!r}")

    stream = engines.vad().new_stream()
    frames = [speech[i:i + 320] for i in range(0, len(speech) - 319, 320)]
    started = time.perf_counter()
    for frame in frames:
        stream.speech_prob(frame)
    per = (time.perf_counter() - started) / len(frames)
    print(f"vad: {len(frames)} x 20 ms frames, {per * 1e6:.0f} us per frame")

    await bench_llm(engines, args.threads)
    engines.close()


if __name__ == "__main__":
    asyncio.run(main())
