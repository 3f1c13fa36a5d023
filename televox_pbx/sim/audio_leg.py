"""The Asterisk side of one AudioSocket session, played by the simulated callee.

Like app_audiosocket: TCP connect, the UUID frame first, then audio frames paced in real
time (silence when the callee has nothing to say), DTMF frames at scripted times. If the
daemon sends nothing for `no_traffic_timeout_s` the call is hung up, as Asterisk does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from televox_pbx.audiosocket.codec import (
    AudioSocketProtocolError,
    FrameParser,
    Kind,
    encode_audio,
    encode_dtmf,
    encode_uuid,
)
from televox_pbx.clock import Clock
from televox_pbx.sim.speech import RATE, rms

log = logging.getLogger(__name__)

_VOICE_RMS = 300.0  # above this, a daemon frame counts as the agent talking


class LegEnd(StrEnum):
    DAEMON_HANGUP = "daemon_hangup"  # kind 0x00 (or 0xff) from the daemon
    DAEMON_CLOSED = "daemon_closed"  # socket closed by the daemon
    NO_TRAFFIC = "no_traffic"  # nothing from the daemon for the timeout
    CALLEE_HANGUP = "callee_hangup"  # scripted hangup_after_s
    PBX_HANGUP = "pbx_hangup"  # AMI Hangup / Redirect / simulator shutdown
    CONNECT_FAILED = "connect_failed"
    PROTOCOL_ERROR = "protocol_error"


@dataclass(frozen=True, slots=True)
class Segment:
    """One rendered script step: audio to play, a pause, or DTMF digits."""

    pcm: bytes = b""
    pause_s: float = 0.0
    dtmf: str = ""
    at_s: float | None = None
    barge_in: bool = False


@dataclass(slots=True)
class LegResult:
    reason: LegEnd
    heard: bytes = b""  # what the daemon sent (8 kHz slin)
    said: bytes = b""  # what the callee sent
    dtmf_sent: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LegConfig:
    host: str
    port: int
    frame_ms: int = 20
    no_traffic_timeout_s: float = 2.0
    turn_gap_s: float = 0.6
    max_turn_wait_s: float = 8.0
    hangup_after_s: float | None = None
    consumed_s: float = 0.0  # audio AMD() already swallowed before AudioSocket started
    # A callee who waits to be answered: before each line (not barging in), wait for the
    # agent to start talking after the callee's previous speech, then for it to finish.
    await_reply: bool = False


# (direction "said" or "heard", monotonic time, one frame's PCM): for latency benchmarks.
FrameObserver = Callable[[str, float, bytes], None]


class AudioLeg:
    def __init__(self, call_id: str, segments: list[Segment], config: LegConfig,
                 clock: Clock, observer: FrameObserver | None = None) -> None:
        self.call_id = call_id
        self._observer = observer
        self._segments = _skip_consumed(segments, config.consumed_s)
        self._cfg = config
        self._clock = clock
        self._frame_bytes = 2 * RATE * config.frame_ms // 1000
        self._out = bytearray()
        self._drained = asyncio.Event()
        self._drained.set()
        self._heard = bytearray()
        self._said = bytearray()
        self._dtmf: list[str] = []
        self._last_rx = 0.0
        self._last_voice = -1e9
        self._last_said_voice = -1e9
        self._start = 0.0
        self._end: asyncio.Future[LegEnd] | None = None
        self._writer: asyncio.StreamWriter | None = None

    def hangup(self) -> None:
        """The channel is going away (AMI Hangup): close like Asterisk would."""
        self._finish(LegEnd.PBX_HANGUP)

    def _finish(self, reason: LegEnd) -> None:
        if self._end is not None and not self._end.done():
            self._end.set_result(reason)

    async def run(self) -> LegResult:
        self._end = asyncio.get_running_loop().create_future()
        try:
            reader, writer = await asyncio.open_connection(self._cfg.host, self._cfg.port)
        except OSError:
            log.warning("sim audiosocket connect failed", extra={"call_id": self.call_id})
            return LegResult(LegEnd.CONNECT_FAILED)
        self._writer = writer
        writer.write(encode_uuid(self.call_id))
        self._start = self._last_rx = self._clock.monotonic()
        tasks = [asyncio.create_task(coro) for coro in (
            self._pace(writer), self._receive(reader), self._script(writer), self._watchdog())]
        try:
            reason = await self._end
        finally:
            for t in tasks:
                t.cancel()
            for r in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(r, Exception):
                    log.error("sim audio leg task failed", exc_info=r,
                              extra={"call_id": self.call_id})
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        return LegResult(reason, bytes(self._heard), bytes(self._said), list(self._dtmf))

    def _guard(self, exc: BaseException) -> None:
        log.error("sim audio leg failed", exc_info=exc, extra={"call_id": self.call_id})
        self._finish(LegEnd.PROTOCOL_ERROR)

    async def _pace(self, writer: asyncio.StreamWriter) -> None:
        fb = self._frame_bytes
        step = self._cfg.frame_ms / 1000
        next_t = self._clock.monotonic()
        try:
            while True:
                chunk = bytes(self._out[:fb])
                del self._out[:fb]
                if len(chunk) < fb:
                    chunk += bytes(fb - len(chunk))
                if not self._out:
                    self._drained.set()
                writer.write(encode_audio(chunk))
                self._said += chunk
                now = self._clock.monotonic()
                if rms(chunk) > _VOICE_RMS:
                    self._last_said_voice = now
                if self._observer is not None:
                    self._observer("said", now, chunk)
                next_t += step
                await self._clock.sleep(next_t - self._clock.monotonic())
        except (ConnectionError, RuntimeError):
            self._finish(LegEnd.DAEMON_CLOSED)

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        parser = FrameParser()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    self._finish(LegEnd.DAEMON_CLOSED)
                    return
                self._last_rx = self._clock.monotonic()
                for frame in parser.feed(data):
                    if frame.kind in (Kind.HANGUP, Kind.ERROR):
                        self._finish(LegEnd.DAEMON_HANGUP)
                        return
                    if frame.kind == Kind.AUDIO:
                        self._heard += frame.payload
                        if rms(frame.payload) > _VOICE_RMS:
                            self._last_voice = self._last_rx
                        if self._observer is not None:
                            self._observer("heard", self._last_rx, frame.payload)
                    else:
                        # Asterisk ends the session on kinds it does not accept from us.
                        self._finish(LegEnd.PROTOCOL_ERROR)
                        return
        except AudioSocketProtocolError:
            self._finish(LegEnd.PROTOCOL_ERROR)
        except ConnectionError:
            self._finish(LegEnd.DAEMON_CLOSED)

    async def _watchdog(self) -> None:
        limit = self._cfg.no_traffic_timeout_s
        while True:
            idle = self._clock.monotonic() - self._last_rx
            if idle >= limit:
                self._finish(LegEnd.NO_TRAFFIC)
                return
            await self._clock.sleep(min(0.1, limit - idle + 0.001))

    def _elapsed(self) -> float:
        return self._clock.monotonic() - self._start

    async def _script(self, writer: asyncio.StreamWriter) -> None:
        try:
            for seg in self._segments:
                if seg.at_s is not None and seg.at_s > self._elapsed():
                    await self._clock.sleep(seg.at_s - self._elapsed())
                if seg.pcm:
                    if not seg.barge_in:
                        await self._wait_agent_quiet()
                    self._drained.clear()
                    self._out += seg.pcm
                    await self._drained.wait()
                elif seg.pause_s:
                    await self._clock.sleep(seg.pause_s)
                for digit in seg.dtmf:
                    writer.write(encode_dtmf(digit))
                    self._dtmf.append(digit)
                    await self._clock.sleep(0.25)
            if self._cfg.hangup_after_s is not None:
                await self._clock.sleep(self._cfg.hangup_after_s - self._elapsed())
                self._finish(LegEnd.CALLEE_HANGUP)
        except (ConnectionError, RuntimeError) as exc:
            self._guard(exc)

    async def _wait_agent_quiet(self) -> None:
        gap, cap = self._cfg.turn_gap_s, self._cfg.max_turn_wait_s
        waited_from = self._clock.monotonic()
        while self._cfg.await_reply and self._last_voice <= self._last_said_voice:
            if self._clock.monotonic() - waited_from >= cap:
                return
            await self._clock.sleep(0.02)
        while True:
            now = self._clock.monotonic()
            quiet_for = now - self._last_voice
            if quiet_for >= gap or now - waited_from >= cap:
                return
            await self._clock.sleep(min(gap - quiet_for, 0.05) + 0.001)


def _skip_consumed(segments: list[Segment], seconds: float) -> list[Segment]:
    """Drop the first `seconds` of untimed audio/pauses: AMD() heard them, not the agent."""
    skip = int(seconds * RATE) * 2
    out: list[Segment] = []
    for i, seg in enumerate(segments):
        if skip <= 0 or seg.at_s is not None:
            out.extend(segments[i:])
            break
        if seg.pcm:
            cut = min(skip, len(seg.pcm))
            skip -= cut
            if len(seg.pcm) > cut:
                out.append(Segment(pcm=seg.pcm[cut:], dtmf=seg.dtmf, barge_in=True))
        elif seg.pause_s:
            cut_s = min(skip / (2 * RATE), seg.pause_s)
            skip -= int(cut_s * RATE) * 2
            if seg.pause_s > cut_s:
                out.append(Segment(pause_s=seg.pause_s - cut_s))
        else:
            out.append(seg)
    return out
