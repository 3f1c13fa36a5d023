"""Cutting the quiet lead-in off synthesized speech.

Piper starts every clause with 30-60 ms of near silence. Before the first clause of a
reply that is pure waiting for the callee, so it is cut down to a short margin; between
clauses it stays (it is part of the natural pause).
"""

from __future__ import annotations

import numpy as np

# |sample| above this (about -44 dBFS) is the voice starting; Piper's lead-in stays below.
LEAD_THRESHOLD = 200
LEAD_KEEP_S = 0.01  # kept before the onset, so the attack is not cut


def trim_leading_silence(pcm: bytes, rate: int, *, threshold: int = LEAD_THRESHOLD,
                         keep_s: float = LEAD_KEEP_S) -> bytes:
    """s16le mono `pcm` from `keep_s` before its first sample louder than `threshold`;
    all-quiet audio comes back unchanged (it may be a deliberate pause)."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    if loud.size == 0:
        return pcm
    start = max(0, int(loud[0]) - int(keep_s * rate))
    return pcm[start * 2:]
