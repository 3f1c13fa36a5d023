"""Text to speech with Piper; audio comes out at 8 kHz for AudioSocket.

Replies are cut into sentences (and long sentences into clauses) and each piece is
synthesized on a worker thread and yielded as soon as it is ready. Piper's phonemizer
(espeak-ng) keeps global state, so all synthesis is serialised by one lock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from televox_pbx.voice.engines.resample import float_to_pcm16, resample_float
from televox_pbx.voice.engines.text_split import split_for_tts
from televox_pbx.voice.interfaces import AudioChunk

OUTPUT_RATE = 8000


class PiperTts:
    def __init__(self, model_path: Path, config_path: Path | None = None, *,
                 sample_rate: int = OUTPUT_RATE, length_scale: float | None = None) -> None:
        from piper import PiperVoice, SynthesisConfig  # heavy import, paid at load time only

        config = config_path or model_path.with_name(model_path.name + ".json")
        for needed in (model_path, config):
            if not needed.is_file():
                raise FileNotFoundError(f"piper voice file missing: {needed}")
        self._voice = PiperVoice.load(model_path, config_path=config)
        self._syn = SynthesisConfig(length_scale=length_scale)
        self.voice_rate: int = self._voice.config.sample_rate
        self.sample_rate = sample_rate
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        loop = asyncio.get_running_loop()
        for piece in split_for_tts(text):
            pcm = await loop.run_in_executor(self._executor, self._render, piece)
            if pcm:
                yield AudioChunk(pcm, self.sample_rate)

    def synthesize_pcm8k(self, text: str) -> bytes:
        """Blocking: the whole text as 8 kHz s16le mono (the simulator's SpeechSource)."""
        return b"".join(self._render(piece, OUTPUT_RATE) for piece in split_for_tts(text))

    def _render(self, text: str, rate: int | None = None) -> bytes:
        with self._lock:
            parts = [chunk.audio_float_array for chunk in self._voice.synthesize(text, self._syn)]
        if not parts:
            return b""
        audio = np.concatenate(parts).astype(np.float32, copy=False)
        return float_to_pcm16(resample_float(audio, self.voice_rate, rate or self.sample_rate))

    def warm_up(self) -> None:
        """One throwaway synthesis so the first caller does not pay ONNX Runtime's set-up."""
        self._render("Hello.")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
