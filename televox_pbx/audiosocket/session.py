"""What a voice session sees of one call's audio. Code sessions against these protocols.

A session is an async function `SessionHandler = (CallAudio) -> Awaitable[None]`. The
AudioSocket server calls it once per connected call, as its own task, right after the
call's UUID is matched; the call is live for as long as the handler runs:

    async def session(call: CallAudio) -> None:
        call.set_recording_tap(recorder)           # optional, both directions
        call.output.add_listener(on_frame_sent)    # optional, every frame we send
        async for ev in call.incoming():
            match ev:
                case AudioIn(pcm, rate, t): ...    # feed VAD / STT
                case Dtmf(digit, t): ...
                case Hangup(reason, t): break      # always the last event
        ...post-call work (store results)...

Rules the server keeps:
- Outgoing audio is 8 kHz slin16 mono, whatever the incoming rate. `output.enqueue()`
  takes any even length; a 20 ms pacer sends it in 320-byte frames, and silence whenever
  the queue is empty (Asterisk drops the call after 2 s without traffic). The last partial
  frame of queued audio is padded with silence.
- Incoming audio is passed through as it arrives (Asterisk sends 320 or 480 byte frames,
  following the far end's packetisation). Gaps are silence: with silence suppression
  Asterisk sends nothing at all, so never wait for frames to measure time; use `t`.
- `incoming()` ends after a `Hangup` event, whoever hung up. Returning from the handler
  hangs up the call at once (kind 0x00, then close) if it is still up, dropping queued
  audio; `await call.hangup(drain=True)` first to let a goodbye play out. An exception
  in the handler is logged with its traceback and ends only this call.
- After the call is down the handler may keep running for post-call work, up to the
  server's `post_hangup_timeout_s`; then it is cancelled.
- All methods are for the event loop thread only (use `loop.call_soon_threadsafe` from
  worker threads). `t` values are `Clock.monotonic()` seconds of the server's clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

OUT_RATE = 8000
FRAME_SECONDS = 0.020
FRAME_BYTES = OUT_RATE * 2 * 20 // 1000  # 320: 20 ms of 8 kHz slin16
BYTES_PER_MS = OUT_RATE * 2 / 1000  # 16.0


class HangupReason(StrEnum):
    PEER_HANGUP = "peer_hangup"  # Asterisk sent kind 0x00
    PEER_EOF = "peer_eof"  # socket closed (or half-closed) by Asterisk
    PEER_RESET = "peer_reset"  # connection reset / broken pipe
    PEER_ERROR = "peer_error"  # Asterisk sent kind 0xff
    PROTOCOL_ERROR = "protocol_error"  # bytes that are not AudioSocket; we closed
    IDLE_TIMEOUT = "idle_timeout"  # nothing received for too long
    PEER_STALLED = "peer_stalled"  # the peer stopped reading our audio
    LOCAL = "local"  # the session (or handler return) hung up
    SHUTDOWN = "shutdown"  # the daemon is stopping


@dataclass(frozen=True, slots=True)
class AudioIn:
    """One frame of caller audio: slin16 mono little-endian at `sample_rate`."""

    pcm: bytes
    sample_rate: int
    t: float  # monotonic seconds when it arrived


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str  # one of 0-9 * # A-D (as Asterisk sends it)
    t: float


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: HangupReason
    t: float
    error_code: int | None = None  # the kind 0xff payload, for PEER_ERROR


InEvent = AudioIn | Dtmf | Hangup


@dataclass(frozen=True, slots=True)
class FrameSent:
    """One 20 ms frame written to the socket (silence fill included).

    `position` is the output stream position after this frame: the number of bytes of
    queued audio that are behind us, played or cleared (see `AudioOutput.enqueue`).
    """

    seq: int  # 0, 1, 2 ... per call
    t: float  # monotonic seconds when written
    scheduled: float  # the slot it was due in (t - scheduled = pacer lateness)
    pcm: bytes  # the 320 bytes sent
    audio_bytes: int  # bytes of queued audio in this frame; 0 = pure silence fill
    position: int

    @property
    def silent(self) -> bool:
        return self.audio_bytes == 0


FrameListener = Callable[[FrameSent], None]


class AudioOutput(Protocol):
    """The agent's voice: a queue drained by the 20 ms pacer."""

    def enqueue(self, pcm: bytes) -> int:
        """Queue 8 kHz slin16 audio (any even length). Returns the stream position at the
        end of this chunk: once `played_position >= that`, all of it has been sent.
        After the call ended this is a no-op."""

    def clear(self) -> float:
        """Barge-in: drop everything not yet sent. Returns the milliseconds dropped.
        `played_position` is where the listener stopped hearing."""

    @property
    def queued_seconds(self) -> float:
        """Audio waiting to be sent."""

    @property
    def played_position(self) -> int:
        """Stream position (bytes of enqueued audio) sent so far; cleared audio counts as
        passed, so compare it to `enqueue`'s return values (read it before `clear()` to
        know what was heard). Once the call is down it stays at what was really sent."""

    async def wait_drained(self) -> None:
        """Return once nothing is queued (all sent or cleared) or the call is down."""

    def add_listener(self, listener: FrameListener) -> Callable[[], None]:
        """Call `listener` for every frame sent (keep it quick; exceptions are logged and
        ignored). Returns a function that removes it. Use `FrameSent.silent` and `t` for
        time-to-first-audio and for what was heard before an interruption."""


class RecordingTap(Protocol):
    """Both directions of the call, for the session's stereo recording.

    Outbound is continuous (one 320-byte frame per 20 ms, silence included); inbound has
    gaps wherever Asterisk sent nothing, so place it by `t`, not by concatenation.
    """

    def on_inbound(self, pcm: bytes, sample_rate: int, t: float) -> None: ...

    def on_outbound(self, pcm: bytes, t: float) -> None: ...


class CallAudio(Protocol):
    """One connected call, as a session sees it."""

    @property
    def call_id(self) -> str:
        """The attempt UUID (canonical lowercase form), also the AMI ActionID and row key."""

    @property
    def inbound(self) -> bool:
        """True for calls announced by the TelevoxInbound UserEvent."""

    @property
    def caller_id(self) -> str | None:
        """Inbound only: the caller's number from the announcement. Never log it as text."""

    @property
    def sample_rate(self) -> int:
        """Rate of incoming audio: 8000 until a frame of another rate arrives."""

    @property
    def output(self) -> AudioOutput: ...

    @property
    def hangup_reason(self) -> HangupReason | None:
        """None while the call is up."""

    def incoming(self) -> AsyncIterator[InEvent]:
        """Caller audio, DTMF and finally one `Hangup`. Single consumer. If the consumer
        falls more than a few seconds behind, the oldest events are dropped."""

    def set_recording_tap(self, tap: RecordingTap | None) -> None: ...

    async def hangup(self, *, drain: bool = False) -> None:
        """End the call: send kind 0x00, then close. With `drain`, first let queued audio
        play out (e.g. after a goodbye). Idempotent."""


SessionHandler = Callable[[CallAudio], Awaitable[None]]
