"""Whisper over several calls' audio in one generate call, against one call at a time.

The STT engine decodes an utterance in a short window (>= 10 s, see stt_whisper.py).
Here N utterances (Piper speech, as the simulator's callees) are decoded either one after
another, or as one batch of N feature windows in one CTranslate2 `generate` call, which
is what an STT batcher across calls would do. Prints the median wall time of each and
the time the last of the N waits, which is what a batch saves or costs a callee.

Usage: .venv/bin/python bench/bench_stt_batch.py [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import numpy as np
from repo_models import model_settings

from televox_pbx.sim.speech import speech_from_tts
from televox_pbx.voice.engines.holder import Engines
from televox_pbx.voice.engines.resample import pcm16_to_float, resample_float
from televox_pbx.voice.engines.stt_whisper import HOP, WHISPER_RATE

LINES = ["Yes, Tuesday at three works for me.", "Who is this, and why are you calling?",
         "I already have panels on the garage.", "Please take me off your list."]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    engines = Engines(model_settings())
    stt = engines.stt()
    speak = speech_from_tts(engines.tts())
    clips = [asyncio.run(speak(line)) for line in LINES]
    samples = [resample_float(pcm16_to_float(c), 8000, WHISPER_RATE) for c in clips]
    frames = max(stt._window(s.size) or 0 for s in samples)
    model = stt._model
    feats = [model.feature_extractor(np.pad(s, (0, frames * HOP - s.size)), padding=0)
             [:, :frames] for s in samples]
    max_new = min(model.max_length // 2, 20 + frames // 10)

    def generate(batch: list[np.ndarray]) -> list[str]:
        out = model.model.generate(
            stt._storage(np.ascontiguousarray(np.stack(batch))), [stt._prompt] * len(batch),
            beam_size=1, max_length=2 * max_new, return_scores=True,
            return_no_speech_prob=True, suppress_tokens=stt._suppress)
        return [stt._tokenizer.decode(r.sequences_ids[0]).strip() for r in out]

    print(f"window {frames / 100:.1f} s; texts: {generate(feats)}")
    for n in (1, 2, 3, 4):
        alone, batched = [], []
        for _ in range(args.reps):
            t = time.perf_counter()
            for f in feats[:n]:
                generate([f])
            alone.append(time.perf_counter() - t)
            t = time.perf_counter()
            generate(feats[:n])
            batched.append(time.perf_counter() - t)
        a, b = statistics.median(alone), statistics.median(batched)
        print(f"N={n}: one at a time {a:.3f} s (first done ~{a / n:.3f} s, last {a:.3f} s)"
              f"   one batch {b:.3f} s (all done together)   batch/alone {b / a:.2f}")
    engines.close()


if __name__ == "__main__":
    main()
