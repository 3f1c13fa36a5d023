"""Speech to text with faster-whisper (CTranslate2, int8 on CPU).

One model per process; utterances are transcribed one at a time on a dedicated worker
thread (CTranslate2 already uses every core it is given, so parallel calls only queue).
"""

from __future__ import annotations

import asyncio
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from televox_pbx.voice.engines.resample import pcm16_to_float, resample_float
from televox_pbx.voice.interfaces import AudioChunk, Transcript

WHISPER_RATE = 16000


class WhisperStt:
    # Every decode costs about the same (the 30 s window), so starting one at a pause that
    # may not be the end of the turn is worth it: see stt_speculative.
    worth_speculating = True

    def __init__(self, model_dir: Path, *, cpu_threads: int = 0, language: str = "en",
                 beam_size: int = 1) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if not (model_dir / "model.bin").is_file():
            # faster-whisper would read a missing dir as a hub repo id and try to download.
            raise FileNotFoundError(f"whisper model file missing: {model_dir / 'model.bin'}")
        from faster_whisper import WhisperModel  # heavy import, paid at load time only

        self._model: Any = WhisperModel(str(model_dir), device="cpu", compute_type="int8",
                                        cpu_threads=cpu_threads, num_workers=1,
                                        local_files_only=True)
        self._language = language
        self._beam_size = beam_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stt")

    async def transcribe(self, audio: AudioChunk) -> Transcript:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.transcribe_blocking, audio)

    def transcribe_blocking(self, audio: AudioChunk) -> Transcript:
        samples = resample_float(pcm16_to_float(audio.pcm), audio.sample_rate, WHISPER_RATE)
        if samples.size < WHISPER_RATE // 10:  # under 100 ms: nothing worth decoding
            return Transcript("", None)
        return self._decode(samples)

    def _decode(self, samples: np.ndarray) -> Transcript:
        segments, _info = self._model.transcribe(
            samples, language=self._language, beam_size=self._beam_size, vad_filter=False,
            condition_on_previous_text=False, without_timestamps=True)
        texts: list[str] = []
        weights: list[tuple[float, int]] = []
        for seg in segments:  # a generator: decoding happens while iterating
            text = seg.text.strip()
            if text:
                texts.append(text)
                weights.append((seg.avg_logprob, max(1, len(seg.tokens))))
        if not texts:
            return Transcript("", None)
        total = sum(n for _, n in weights)
        mean_logprob = sum(lp * n for lp, n in weights) / total
        return Transcript(" ".join(texts), round(math.exp(mean_logprob), 3))

    def warm_up(self) -> None:
        """One throwaway decode so the first caller does not pay CTranslate2's set-up."""
        self._decode(np.zeros(WHISPER_RATE // 2, dtype=np.float32))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
