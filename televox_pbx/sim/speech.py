"""Audio the simulated callee plays: a pluggable speech source plus tones and WAV files."""

from __future__ import annotations

import math
import wave
from pathlib import Path
from typing import Protocol

import numpy as np
import soxr

from televox_pbx.voice.interfaces import Tts

RATE = 8000


class SpeechSource(Protocol):
    async def __call__(self, text: str) -> bytes:
        """Synthesize `text` as 8 kHz mono signed 16-bit little-endian PCM."""


def speech_from_tts(tts: Tts) -> SpeechSource:
    """Adapt any voice Tts engine (e.g. Piper at 22050 Hz) into an 8 kHz SpeechSource."""
    async def speak(text: str) -> bytes:
        out = bytearray()
        async for chunk in tts.synthesize(text):
            out += to_8k(chunk.pcm, chunk.sample_rate)
        return bytes(out)
    return speak


class SpeechUnavailable(RuntimeError):
    """A script says text but no speech source (Piper) is configured."""


def to_8k(pcm: bytes, rate: int) -> bytes:
    if rate == RATE or not pcm:
        return pcm
    x = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    return np.asarray(soxr.resample(x, rate, RATE), dtype="<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(2 * int(RATE * seconds))


def tone(seconds: float, freq: float = 440.0, amplitude: int = 6000) -> bytes:
    n = int(RATE * seconds)
    t = np.arange(n, dtype=np.float64) / RATE
    samples = (amplitude * np.sin(2 * math.pi * freq * t)).astype("<i2")
    return samples.tobytes()


def beep() -> bytes:
    """The voicemail tone."""
    return tone(0.4, 1000.0, 8000)


def placeholder_speech(text: str) -> bytes:
    """Not speech: a tone as long as the words would take. Only for demos without Piper."""
    words = max(1, len(text.split()))
    return tone(0.35 * words, 300.0, 4000) + silence(0.1)


def read_wav_8k(path: Path) -> bytes:
    """PCM of an 8 kHz mono 16-bit WAV; anything else is refused with a clear message."""
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: need 8 kHz mono 16-bit WAV, got {w.getframerate()} Hz "
                             f"x{w.getnchannels()} {8 * w.getsampwidth()}-bit")
        return w.readframes(w.getnframes())


def write_wav_8k(path: Path, pcm: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)


def rms(pcm: bytes) -> float:
    if len(pcm) < 2:
        return 0.0
    arr = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.int64)
    return float(np.sqrt(arr.dot(arr) / arr.size))
