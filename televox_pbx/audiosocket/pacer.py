"""The agent's output: a reframing queue and the 20 ms pacer that drains it.

Asterisk writes whatever we send straight to the channel, so timing is ours: exactly one
320-byte frame per 20 ms, on an absolute schedule (slot n is due at start + n * 20 ms) so
that sleep overshoot never accumulates into drift. Silence fills the gaps, because the
AudioSocket app gives up after 2 s without traffic.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from televox_pbx.audiosocket.session import (
    BYTES_PER_MS,
    FRAME_BYTES,
    FRAME_SECONDS,
    OUT_RATE,
    FrameListener,
    FrameSent,
)
from televox_pbx.clock import Clock

log = logging.getLogger(__name__)

_SILENCE = bytes(FRAME_BYTES)


class OutputQueue:
    """Implements `AudioOutput`: arbitrary-length PCM in, 320-byte frames out."""

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._head = 0  # bytes of _chunks[0] already taken
        self._queued = 0
        self._enqueued_pos = 0  # stream position after the last enqueued byte
        self._played_pos = 0
        self._listeners: list[FrameListener] = []
        self._drained = asyncio.Event()
        self._drained.set()
        self._closed = False

    # --- AudioOutput -------------------------------------------------------------------

    def enqueue(self, pcm: bytes) -> int:
        if len(pcm) % 2:
            raise ValueError("slin16 audio must be an even number of bytes")
        if self._closed or not pcm:
            return self._enqueued_pos
        self._chunks.append(bytes(pcm))
        self._queued += len(pcm)
        self._enqueued_pos += len(pcm)
        self._drained.clear()
        return self._enqueued_pos

    def clear(self) -> float:
        dropped = self._queued
        self._chunks.clear()
        self._head = 0
        self._queued = 0
        self._played_pos = self._enqueued_pos  # cleared audio is behind us, unheard
        self._drained.set()
        return dropped / BYTES_PER_MS

    @property
    def queued_seconds(self) -> float:
        return self._queued / (2 * OUT_RATE)

    @property
    def played_position(self) -> int:
        return self._played_pos

    async def wait_drained(self) -> None:
        await self._drained.wait()

    def add_listener(self, listener: FrameListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
        return remove

    # --- pacer side ---------------------------------------------------------------------

    @property
    def queued_bytes(self) -> int:
        return self._queued

    def take_frame(self) -> tuple[bytes, int]:
        """The next 320 bytes to send and how many of them are queued audio (the rest is
        silence padding). Advances `played_position`: the caller writes it right away."""
        if not self._queued:
            return _SILENCE, 0
        parts: list[bytes] = []
        need = FRAME_BYTES
        while need and self._chunks:
            chunk = self._chunks[0]
            piece = chunk[self._head:self._head + need]
            parts.append(piece)
            need -= len(piece)
            self._head += len(piece)
            if self._head >= len(chunk):
                self._chunks.popleft()
                self._head = 0
        audio = FRAME_BYTES - need
        self._queued -= audio
        self._played_pos += audio
        if need:
            parts.append(_SILENCE[:need])
        if not self._queued:
            self._drained.set()
        return b"".join(parts), audio

    def notify(self, frame: FrameSent) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(frame)
            except Exception:
                log.exception("frame listener failed; ignored")

    def close(self) -> None:
        """The call is down: drop what is queued, wake drain waiters, ignore new audio.
        Unlike clear(), `played_position` stays at what was really sent (= heard)."""
        self._closed = True
        self._chunks.clear()
        self._head = 0
        self._queued = 0
        self._drained.set()


@dataclass(slots=True)
class PacerStats:
    frames: int = 0
    audio_frames: int = 0
    resyncs: int = 0
    skipped_slots: int = 0  # slots given up when resyncing (time, not audio, is skipped)
    max_late_s: float = 0.0


class Pacer:
    """Sends one frame per slot through `write` until cancelled (or `write` raises).

    `write` takes 320 bytes of 8 kHz slin16; it is the only way out, so the pacer can
    only ever send audio. If the loop falls more than `max_lag_frames` slots behind
    (a stalled event loop), it resyncs to the current slot instead of bursting to catch
    up; smaller lags are caught up frame by frame.
    """

    def __init__(self, queue: OutputQueue, write: Callable[[bytes], None], clock: Clock, *,
                 frame_s: float = FRAME_SECONDS, max_lag_frames: int = 5) -> None:
        self._queue = queue
        self._write = write
        self._clock = clock
        self._frame_s = frame_s
        self._max_lag = max_lag_frames
        self.stats = PacerStats()
        self.started_at: float | None = None

    async def run(self) -> None:
        clock, frame_s, stats = self._clock, self._frame_s, self.stats
        start = self.started_at = clock.monotonic()
        slot = 0
        while True:
            due = start + slot * frame_s  # absolute: no drift however late we wake
            now = clock.monotonic()
            if now < due:
                await clock.sleep(due - now)
                now = clock.monotonic()
            behind = int((now - due) / frame_s)
            if behind > self._max_lag:
                slot += behind
                stats.resyncs += 1
                stats.skipped_slots += behind
                due = start + slot * frame_s
            pcm, audio = self._queue.take_frame()
            self._write(pcm)
            stats.frames += 1
            if audio:
                stats.audio_frames += 1
            stats.max_late_s = max(stats.max_late_s, now - due)
            self._queue.notify(FrameSent(seq=stats.frames - 1, t=now, scheduled=due, pcm=pcm,
                                         audio_bytes=audio,
                                         position=self._queue.played_position))
            slot += 1
