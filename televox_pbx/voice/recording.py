"""A two-track call recording (callee left, agent right, 8 kHz) laid out on call time.

It is the AudioSocket server's `RecordingTap`: inbound frames arrive with gaps wherever
the far end sent nothing, so both tracks are positioned by time, not concatenated.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from televox_pbx.voice.engines.resample import resample_pcm16 as to_rate

RATE = 8000
_BYTES_PER_S = RATE * 2


class StereoRecorder:
    def __init__(self, t0: float, max_seconds: float = 3600.0) -> None:
        self._t0 = t0
        self._left = bytearray()
        self._right = bytearray()
        self._max = int(max_seconds * _BYTES_PER_S)

    def _offset(self, t: float) -> int:
        return max(0, round((t - self._t0) * RATE)) * 2

    def _write(self, track: bytearray, t: float, pcm: bytes) -> None:
        # Place by time, but never overwrite: jitter only ever shifts audio a little later.
        pos = max(self._offset(t), len(track))
        if pos + len(pcm) > self._max:
            return
        if pos > len(track):
            track.extend(bytes(pos - len(track)))
        track.extend(pcm)

    def on_inbound(self, pcm: bytes, sample_rate: int, t: float) -> None:
        self._write(self._left, t, to_rate(pcm, sample_rate, RATE))

    def on_outbound(self, pcm: bytes, t: float) -> None:
        self._write(self._right, t, pcm)

    @property
    def seconds(self) -> float:
        return max(len(self._left), len(self._right)) / _BYTES_PER_S

    def write_wav(self, path: Path) -> float:
        """Interleave the tracks into a stereo WAV (atomically); returns its seconds."""
        n = max(len(self._left), len(self._right)) // 2
        left = np.zeros(n, dtype="<i2")
        right = np.zeros(n, dtype="<i2")
        left[: len(self._left) // 2] = np.frombuffer(bytes(self._left), dtype="<i2")
        right[: len(self._right) // 2] = np.frombuffer(bytes(self._right), dtype="<i2")
        frames = np.stack([left, right], axis=1).tobytes()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(frames)
        tmp.replace(path)
        return n / RATE
