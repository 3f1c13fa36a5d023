"""Scripted fake engines (tests/voice_fake_engines.py), a fake call on a FakeClock, and a
timeline helper for tests.

Nothing here loads a model or opens a socket; time moves only when the test advances
the FakeClock, so turn-taking and barge-in are checked by frame counts, not by sleeping.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime

from voice_fake_engines import (
    RATE,
    LoudnessVad,
    LoudnessVadStream,
    Reply,
    ScriptedLlm,
    ScriptedStt,
    ScriptedTts,
    ScriptedTurn,
    scale,
    tone,
)

from televox_pbx.audiosocket.session import (
    FRAME_BYTES,
    FRAME_SECONDS,
    AudioIn,
    Dtmf,
    FrameListener,
    FrameSent,
    Hangup,
    HangupReason,
    InEvent,
    RecordingTap,
)
from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import TransferConfig
from televox_pbx.store.transcripts import CallRecord

__all__ = ["RATE", "FakeCall", "FakeCallbacks", "FakeDnc", "FakeOutput", "FakeTransfer",
           "LoudnessVad", "LoudnessVadStream", "MemoryCallLog", "Reply", "ScriptedLlm",
           "ScriptedStt", "ScriptedTts", "ScriptedTurn", "Timeline", "scale", "tone"]


# --- the call ------------------------------------------------------------------------


class FakeOutput:
    """AudioOutput paced by a task on the FakeClock: one 320-byte frame per 20 ms."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._queue = bytearray()
        self._enqueued = 0  # stream position at the end of the queue
        self._played = 0
        self._listeners: list[FrameListener] = []
        self.sent: list[FrameSent] = []
        self.clears: list[float] = []
        self.closed = False
        self._drained = asyncio.Event()
        self._drained.set()

    def enqueue(self, pcm: bytes) -> int:
        if self.closed:
            return self._enqueued
        self._queue += pcm
        self._enqueued += len(pcm)
        if self._queue:
            self._drained.clear()
        return self._enqueued

    def clear(self) -> float:
        dropped = len(self._queue)
        self._queue.clear()
        self._played = self._enqueued
        self.clears.append(self.clock.monotonic())
        self._drained.set()
        return dropped / 16.0

    @property
    def queued_seconds(self) -> float:
        return len(self._queue) / (RATE * 2)

    @property
    def played_position(self) -> int:
        return self._played

    async def wait_drained(self) -> None:
        await self._drained.wait()

    def add_listener(self, listener: FrameListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def send_frame(self, seq: int, t: float) -> FrameSent:
        chunk = bytes(self._queue[:FRAME_BYTES])
        del self._queue[:FRAME_BYTES]
        self._played += len(chunk)
        frame = FrameSent(seq=seq, t=t, scheduled=t, pcm=chunk.ljust(FRAME_BYTES, b"\0"),
                          audio_bytes=len(chunk), position=self._played)
        self.sent.append(frame)
        for listener in list(self._listeners):
            listener(frame)
        if not self._queue:
            self._drained.set()
        return frame

    def audio_frames(self) -> list[FrameSent]:
        return [f for f in self.sent if not f.silent]


class FakeCall:
    """A CallAudio on a FakeClock. Start `pacer()` as a task (the Timeline does)."""

    def __init__(self, clock: FakeClock, call_id: str = "00000000-0000-4000-8000-000000000001",
                 *, inbound: bool = False, caller_id: str | None = None) -> None:
        self.clock = clock
        self._call_id = call_id
        self._inbound = inbound
        self._caller_id = caller_id
        self._output = FakeOutput(clock)
        self._events: asyncio.Queue[InEvent] = asyncio.Queue()
        self._tap: RecordingTap | None = None
        self._reason: HangupReason | None = None
        self.hangups: list[tuple[float, bool]] = []  # (t, drain)
        self.ended_at: float | None = None  # when the line went down, drained or not

    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def inbound(self) -> bool:
        return self._inbound

    @property
    def caller_id(self) -> str | None:
        return self._caller_id

    @property
    def sample_rate(self) -> int:
        return RATE

    @property
    def output(self) -> FakeOutput:
        return self._output

    @property
    def hangup_reason(self) -> HangupReason | None:
        return self._reason

    def set_recording_tap(self, tap: RecordingTap | None) -> None:
        self._tap = tap

    async def incoming(self) -> AsyncIterator[InEvent]:
        while True:
            ev = await self._events.get()
            yield ev
            if isinstance(ev, Hangup):
                return

    async def hangup(self, *, drain: bool = False) -> None:
        if self._reason is not None:
            return
        self.hangups.append((self.clock.monotonic(), drain))
        if drain:
            await self._output.wait_drained()
        self._end(HangupReason.LOCAL)

    def _end(self, reason: HangupReason) -> None:
        if self._reason is None:
            self._reason = reason
            self.ended_at = self.clock.monotonic()
            self._output.closed = True
            self._events.put_nowait(Hangup(reason, self.clock.monotonic()))

    # test side
    def push_audio(self, pcm: bytes) -> None:
        if self._reason is not None:
            return
        t = self.clock.monotonic()
        if self._tap is not None:
            self._tap.on_inbound(pcm, RATE, t)
        self._events.put_nowait(AudioIn(pcm, RATE, t))

    def push_dtmf(self, digit: str) -> None:
        if self._reason is None:
            self._events.put_nowait(Dtmf(digit, self.clock.monotonic()))

    def peer_hangup(self) -> None:
        self._end(HangupReason.PEER_HANGUP)

    async def pacer(self) -> None:
        seq = 0
        while self._reason is None:
            await self.clock.sleep(FRAME_SECONDS)
            if self._reason is not None:
                break
            frame = self._output.send_frame(seq, self.clock.monotonic())
            if self._tap is not None:
                self._tap.on_outbound(frame.pcm, frame.t)
            seq += 1


class Timeline:
    """Drives a FakeCall: the callee's audio in 20 ms frames while the clock advances."""

    def __init__(self, clock: FakeClock, call: FakeCall) -> None:
        self.clock = clock
        self.call = call

    async def wait(self, seconds: float) -> None:
        """Nothing arrives (silence suppression): only time passes."""
        await self.clock.advance(seconds)

    async def say(self, seconds: float, amplitude: float = 6000.0, freq: float = 180.0) -> None:
        """The callee speaks for `seconds` (a tone loud enough for the fake VAD)."""
        await self.audio(tone(seconds, amplitude, freq))

    async def silence(self, seconds: float) -> None:
        """Frames of digital silence (a far end without silence suppression)."""
        await self.audio(bytes(round(seconds * RATE) * 2))

    async def audio(self, pcm: bytes) -> None:
        for i in range(0, len(pcm), FRAME_BYTES):
            self.call.push_audio(pcm[i:i + FRAME_BYTES])
            await self.clock.advance(FRAME_SECONDS)

    async def echo(self, seconds: float, gain: float) -> None:
        """Feed back what the agent is sending right now, attenuated (line echo)."""
        recent: deque[bytes] = deque(maxlen=2)
        for _ in range(round(seconds / FRAME_SECONDS)):
            sent = self.call.output.sent
            recent.append(sent[-1].pcm if sent else bytes(FRAME_BYTES))
            self.call.push_audio(scale(recent[0], gain))
            await self.clock.advance(FRAME_SECONDS)

    async def until(self, predicate: Callable[[], bool], limit_s: float = 30.0,
                    step_s: float = FRAME_SECONDS) -> float:
        """Advance in steps until `predicate()`; returns the time it took."""
        start = self.clock.monotonic()
        while not predicate():
            if self.clock.monotonic() - start > limit_s:
                raise AssertionError(f"condition not met within {limit_s} s")
            await self.clock.advance(step_s)
        return self.clock.monotonic() - start


# --- ports ---------------------------------------------------------------------------


@dataclass
class FakeDnc:
    clock: FakeClock
    added: list[tuple[str, str, float]] = field(default_factory=list)  # phone, source, t

    async def add(self, phone: str, *, reason: str, source: str) -> None:
        self.added.append((phone, source, self.clock.monotonic()))


@dataclass
class FakeCallbacks:
    booked: list[tuple[str, datetime, str | None]] = field(default_factory=list)

    async def schedule(self, call_id: str, due_at: datetime, zone: str | None) -> None:
        self.booked.append((call_id, due_at, zone))


@dataclass
class FakeTransfer:
    clock: FakeClock
    done: list[tuple[str, TransferConfig, float]] = field(default_factory=list)
    fail: bool = False

    async def transfer(self, call_id: str, target: TransferConfig) -> None:
        if self.fail:
            raise RuntimeError("redirect failed")
        self.done.append((call_id, target, self.clock.monotonic()))


@dataclass
class MemoryCallLog:
    records: list[CallRecord] = field(default_factory=list)

    async def save_call(self, record: CallRecord) -> None:
        self.records.append(record)
