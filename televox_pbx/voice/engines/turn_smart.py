"""Smart Turn v3.2: is the callee's turn complete, from the sound of its last 8 s?

The ONNX model takes Whisper-style log-mel features (80 x 800: 8 s at 16 kHz, the audio
zero-padded at the start when shorter, normalized to zero mean and unit variance) and
returns the probability that the speaker has finished. The features come from
faster-whisper's extractor (bit for bit those of the reference implementation). About
25-70 ms per call on one core of this box: the session runs it off the event loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import onnxruntime
from faster_whisper.feature_extractor import FeatureExtractor

from televox_pbx.voice.engines.resample import pcm16_to_float, resample_float
from televox_pbx.voice.interfaces import AudioChunk

MODEL_RATE = 16000
WINDOW_S = 8
_SAMPLES = MODEL_RATE * WINDOW_S
_FRAMES = _SAMPLES // 160


class SmartTurn:
    """Shared by every call; `complete_prob` may run on several threads at once."""

    def __init__(self, model_path: Path) -> None:
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        # Stateless when called without chunk_length: safe from several threads.
        self._features = FeatureExtractor(feature_size=80, sampling_rate=MODEL_RATE)

    def features(self, pcm: bytes, sample_rate: int) -> np.ndarray:
        audio = resample_float(pcm16_to_float(pcm), sample_rate, MODEL_RATE)[-_SAMPLES:]
        audio = np.pad(audio.astype(np.float32), (_SAMPLES - len(audio), 0))
        audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
        mel = self._features(audio, padding=0)
        return np.asarray(mel[:, :_FRAMES], dtype=np.float32)

    def complete_prob(self, pcm: bytes, sample_rate: int) -> float:
        """P(the turn is complete) for an utterance (s16le mono) that ends in a pause."""
        feats = self.features(pcm, sample_rate)[None]
        out = self._session.run(None, {"input_features": feats})[0]
        return float(np.asarray(out).reshape(-1)[0])

    async def complete(self, audio: AudioChunk) -> float:
        """The `TurnModel` side: `complete_prob` on a worker thread."""
        return await asyncio.to_thread(self.complete_prob, audio.pcm, audio.sample_rate)

    def warm_up(self) -> None:
        self.complete_prob(b"\0\0" * 1600, 8000)
