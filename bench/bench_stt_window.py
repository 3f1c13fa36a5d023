"""Benchmark WhisperStt's decode window: faster-whisper's fixed 30 s window (window_s=None)
against the short window (speech + 1 s, at least 10 s) on Piper-synthesized utterances.

Run:  .venv/bin/python bench/bench_stt_window.py [--cache-dir var/models] [--variants 3]
Piper's output varies per synthesis, so each text is synthesized --variants times. Prints per
window: mean/p95 time per transcription, how many transcripts differ from the text in
normalised words, and (short window) how many clips fell back to the 30 s decode.
Timings depend on what else the CPU is doing; the two windows are timed interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from pathlib import Path

import numpy as np

from televox_pbx.config.settings import ModelSettings
from televox_pbx.sim.speech import speech_from_tts
from televox_pbx.voice.engines import Engines
from televox_pbx.voice.engines.manifest import load_manifest
from televox_pbx.voice.engines.stt_whisper import WhisperStt
from televox_pbx.voice.interfaces import AudioChunk

REPO = Path(__file__).resolve().parents[1]
UTTERANCES = [
    "Yes.", "No.", "Okay.", "Hello?", "Who is this?", "Sorry, I didn't catch that.",
    "Not right now, thanks.", "Please take me off your list.",
    "Could the engineer come on a Saturday?", "How much does the survey cost?",
    "Yes, I'm interested, but can you call me back tomorrow afternoon?",
    "I already have solar panels on my roof.", "Is this a real person or a recording?",
    "My husband deals with that, he's at work until six.",
    "What company did you say you were calling from?",
    "Stop calling me, I've told you people before.", "Sure, go ahead.",
    "I rent the house, so I'd have to ask my landlord first.",
    "Can you send me something in writing by email instead of phoning?",
    "I'm driving at the moment, could you ring back later this evening, maybe after "
    "dinner, and ask for Margaret, because she looks after all the bills in this house.",
]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache-dir", type=Path, default=REPO / "var" / "models")
    ap.add_argument("--variants", type=int, default=3)
    args = ap.parse_args()
    settings = ModelSettings(cache_dir=args.cache_dir)
    engines = Engines(settings, manifest=load_manifest(REPO / "models" / "manifest.json"))
    await engines.preload(("tts",))
    speak = speech_from_tts(engines.tts())
    said = [text for text in UTTERANCES for _ in range(args.variants)]
    clips = [await speak(text) for text in said]
    seconds = [len(c) / 16000 for c in clips]
    print(f"{len(UTTERANCES)} texts x {args.variants} syntheses = {len(clips)} clips, "
          f"{min(seconds):.1f}-{max(seconds):.1f} s of audio")

    model_dir = engines.registry.resolve(settings.stt).directory
    windows: dict[str, WhisperStt] = {"30 s": WhisperStt(model_dir, window_s=None),
                                      "10 s": WhisperStt(model_dir, window_s=10.0)}
    for stt in windows.values():
        stt.warm_up()
    times: dict[str, list[float]] = {name: [] for name in windows}
    texts: dict[str, list[str]] = {name: [] for name in windows}
    for i, clip in enumerate(clips):
        for name in list(windows) if i % 2 == 0 else list(reversed(windows)):
            started = time.perf_counter()
            result = windows[name].transcribe_blocking(AudioChunk(clip, 8000))
            times[name].append(time.perf_counter() - started)
            texts[name].append(result.text)

    for name, stt in windows.items():
        t = np.array(times[name])
        differ = [(u, got) for u, got in zip(said, texts[name], strict=True)
                  if words(u) != words(got)]
        extra = (f", {stt.short_decodes} short decodes, {stt.fallbacks} fell back to 30 s"
                 if stt.short_decodes else "")
        print(f"window {name}: mean {t.mean() * 1000:.0f} ms, p95 "
              f"{np.percentile(t, 95) * 1000:.0f} ms over {t.size} transcriptions; "
              f"{len(differ)}/{len(clips)} differ from the text{extra}")
        for text, got in differ:
            print(f"    {text!r} -> {got!r}")
    same = sum(words(a) == words(b) for a, b in zip(*texts.values(), strict=True))
    print(f"the two windows agree word-for-word on {same}/{len(clips)} clips")
    for stt in windows.values():
        stt.close()
    engines.close()


if __name__ == "__main__":
    asyncio.run(main())
