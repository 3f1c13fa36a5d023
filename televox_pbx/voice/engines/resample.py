"""PCM conversion and resampling with soxr (8 kHz <-> 16 kHz, 22.05 kHz -> 8 kHz).

One-shot helpers for whole utterances, and `StreamResampler` for audio that arrives in
small frames (it keeps soxr's filter state between frames, so there are no edge clicks).
"""

from __future__ import annotations

import numpy as np
import soxr

_QUALITY = "HQ"


def pcm16_to_float(pcm: bytes) -> np.ndarray:
    """s16le bytes -> float32 in [-1, 1). A trailing odd byte is ignored."""
    usable = len(pcm) - len(pcm) % 2
    return np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    scaled = np.clip(np.asarray(samples, dtype=np.float32) * 32768.0, -32768, 32767)
    data: bytes = scaled.astype("<i2").tobytes()
    return data


def resample_float(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate or samples.size == 0:
        return np.asarray(samples, dtype=np.float32)
    out: np.ndarray = soxr.resample(np.asarray(samples, dtype=np.float32), from_rate, to_rate,
                                    quality=_QUALITY)
    return out.astype(np.float32, copy=False)


def resample_pcm16(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    if from_rate == to_rate:
        return pcm[: len(pcm) - len(pcm) % 2]
    return float_to_pcm16(resample_float(pcm16_to_float(pcm), from_rate, to_rate))


class StreamResampler:
    """Resample a stream of s16le frames; `flush()` returns the filter's tail at the end."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._carry = b""  # an odd byte left over from the previous frame
        self._stream = (None if from_rate == to_rate else
                        soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32",
                                            quality=_QUALITY))

    def process_float(self, pcm: bytes) -> np.ndarray:
        data = self._carry + pcm
        usable = len(data) - len(data) % 2
        self._carry = data[usable:]
        samples = pcm16_to_float(data[:usable])
        if self._stream is None:
            return samples
        out: np.ndarray = self._stream.resample_chunk(samples, last=False)
        return out.astype(np.float32, copy=False)

    def process(self, pcm: bytes) -> bytes:
        return float_to_pcm16(self.process_float(pcm))

    def flush(self) -> bytes:
        self._carry = b""
        if self._stream is None:
            return b""
        tail: np.ndarray = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        return float_to_pcm16(tail)
