"""One routed AudioSocket call: the `CallAudio` a session sees, and the tasks behind it.

Three transport tasks (reader, pacer, idle watchdog) and the session handler run per
call. Whichever transport task sees the end (peer hangup, EOF, reset, bad bytes,
silence, a peer that stopped reading) records one `HangupReason`; the rest is torn down
from that single place, `_end`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from televox_pbx.audiosocket.codec import (
    AudioSocketProtocolError,
    ErrorCode,
    Frame,
    FrameParser,
    Kind,
    encode_audio,
    encode_hangup,
)
from televox_pbx.audiosocket.pacer import OutputQueue, Pacer
from televox_pbx.audiosocket.router import Route
from televox_pbx.audiosocket.session import (
    OUT_RATE,
    AudioIn,
    AudioOutput,
    Dtmf,
    FrameSent,
    Hangup,
    HangupReason,
    InEvent,
    RecordingTap,
    SessionHandler,
)
from televox_pbx.clock import Clock, wait_for

log = logging.getLogger(__name__)

# Reasons after which the peer may still be listening, so it gets a kind 0x00 first.
_SEND_HANGUP = frozenset({HangupReason.LOCAL, HangupReason.SHUTDOWN, HangupReason.IDLE_TIMEOUT,
                          HangupReason.PEER_ERROR})
# Reasons after which flushing is pointless: the socket is dropped at once.
_ABORT = frozenset({HangupReason.PEER_RESET, HangupReason.PEER_STALLED})


class PeerStalled(Exception):
    """The peer stopped reading: our unsent audio passed the write-buffer limit."""


class FrameWriter:
    """The only way bytes reach Asterisk: audio (kind 0x10) and hangup (kind 0x00).

    Anything else would make Asterisk end the session, so nothing else can be sent.
    """

    def __init__(self, writer: asyncio.StreamWriter, *, max_buffer: int) -> None:
        self._writer = writer
        self._max_buffer = max_buffer

    def send_audio(self, pcm: bytes) -> None:
        self._send(encode_audio(pcm))

    def send_hangup(self) -> None:
        self._send(encode_hangup())

    def _send(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise ConnectionResetError("AudioSocket connection is closed")
        self._writer.write(data)
        if self._writer.transport.get_write_buffer_size() > self._max_buffer:
            raise PeerStalled(f"{self._max_buffer} bytes unsent")

    def abort(self) -> None:
        """Drop the connection without flushing (peer gone or not reading)."""
        self._writer.transport.abort()

    async def close(self, flush_s: float = 2.0) -> None:
        """Flush (briefly) and close; never raises."""
        w = self._writer
        try:
            if not w.is_closing():
                await asyncio.wait_for(w.drain(), flush_s)
        except (OSError, TimeoutError):
            pass
        w.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(w.wait_closed(), flush_s)


class _Inbox:
    """Bounded event queue; the oldest events go first when the session falls behind."""

    def __init__(self, cap: int) -> None:
        self._items: deque[InEvent] = deque()
        self._cap = cap
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0

    def put(self, ev: InEvent) -> None:
        if self._closed:
            return
        if len(self._items) >= self._cap:
            self._items.popleft()
            self.dropped += 1
        self._items.append(ev)
        self._closed = isinstance(ev, Hangup)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> InEvent | None:
        """Next event; None once the final Hangup has been taken."""
        while not self._items:
            if self._closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class CallConnection:
    """Implements `CallAudio` for one socket whose UUID has been routed."""

    def __init__(self, route: Route, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, parser: FrameParser, clock: Clock, *,
                 idle_timeout_s: float = 60.0, max_write_buffer: int = 32_000,
                 inbox_cap: int = 500, max_lag_frames: int = 5) -> None:
        self._route = route
        self._reader = reader
        self._frames = FrameWriter(writer, max_buffer=max_write_buffer)
        self._parser = parser
        self._clock = clock
        self._idle_timeout = idle_timeout_s
        self._inbox = _Inbox(inbox_cap)
        self._output = OutputQueue()
        self._pacer = Pacer(self._output, self._frames.send_audio, clock,
                            max_lag_frames=max_lag_frames)
        self._output.add_listener(self._tap_outbound)
        self._tap: RecordingTap | None = None
        self._rate = OUT_RATE
        self._reason: HangupReason | None = None
        self._ended = asyncio.Event()
        self._last_rx = clock.monotonic()
        self._transport: list[asyncio.Task[None]] = []
        self._closing: asyncio.Task[None] | None = None
        self.session_failed = False
        self._log_extra = {"call_id": route.call_id, "inbound": route.inbound}

    # --- CallAudio ----------------------------------------------------------------------

    @property
    def call_id(self) -> str:
        return self._route.call_id

    @property
    def inbound(self) -> bool:
        return self._route.inbound

    @property
    def caller_id(self) -> str | None:
        return self._route.caller_id

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def output(self) -> AudioOutput:
        return self._output

    @property
    def hangup_reason(self) -> HangupReason | None:
        return self._reason

    @property
    def pacer(self) -> Pacer:
        return self._pacer

    async def incoming(self) -> AsyncIterator[InEvent]:
        while (ev := await self._inbox.get()) is not None:
            yield ev
            if isinstance(ev, Hangup):
                return

    def set_recording_tap(self, tap: RecordingTap | None) -> None:
        self._tap = tap

    async def hangup(self, *, drain: bool = False) -> None:
        if drain and self._reason is None:
            await self._output.wait_drained()
        self._end(HangupReason.LOCAL)
        await self._close()

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self, handler: SessionHandler, initial: list[Frame], *,
                  post_hangup_timeout_s: float) -> None:
        """Serve the call until it is down and the handler has finished (or timed out)."""
        self._transport = [
            asyncio.create_task(self._guard(lambda: self._read_loop(initial)), name="as-read"),
            asyncio.create_task(self._guard(self._pacer.run), name="as-pace"),
            asyncio.create_task(self._guard(self._watchdog), name="as-idle"),
        ]
        session = asyncio.create_task(self._run_handler(handler), name=f"session-{self.call_id}")
        ended = asyncio.create_task(self._ended.wait())
        try:
            await asyncio.wait({session, ended}, return_when=asyncio.FIRST_COMPLETED)
            # Returning from the handler hangs up; a dead call is closed. Either way:
            self._end(HangupReason.LOCAL)
            await self._close()
            if not session.done():
                try:
                    await wait_for(self._clock, asyncio.shield(session), post_hangup_timeout_s)
                except TimeoutError:
                    log.warning("session still running after hangup; cancelled",
                                extra=self._log_extra)
        except asyncio.CancelledError:
            self._end(HangupReason.SHUTDOWN)
            await asyncio.shield(self._close())
            raise
        finally:
            ended.cancel()
            session.cancel()
            await asyncio.wait([session, *self._transport])

    def _end(self, reason: HangupReason, error_code: int | None = None) -> None:
        """Record why the call ended (first reason wins) and stop the transport."""
        if self._reason is not None:
            return
        self._reason = reason
        current = asyncio.current_task()
        for task in self._transport:
            if task is not current:
                task.cancel()  # the pacer can write nothing after this: a hangup comes last
        self._output.close()
        self._inbox.put(Hangup(reason, self._clock.monotonic(), error_code))
        self._ended.set()

    async def _close(self) -> None:
        if self._closing is None:
            self._closing = asyncio.create_task(self._close_once())
        await asyncio.shield(self._closing)

    async def _close_once(self) -> None:
        if self._reason in _ABORT:
            self._frames.abort()
            return
        if self._reason in _SEND_HANGUP:
            with contextlib.suppress(OSError, PeerStalled):
                self._frames.send_hangup()
        await self._frames.close()

    async def _guard(self, start: Callable[[], Awaitable[None]]) -> None:
        """Turn a transport task's failure into this call's end reason. (Takes a factory:
        a task cancelled before its first step must not leave a never-awaited coroutine.)"""
        try:
            await start()
        except (ConnectionError, OSError):
            self._end(HangupReason.PEER_RESET)
        except PeerStalled:
            log.warning("peer stopped reading audio", extra=self._log_extra)
            self._end(HangupReason.PEER_STALLED)
        except AudioSocketProtocolError as exc:
            log.warning("AudioSocket protocol error: %s", exc, extra=self._log_extra)
            self._end(HangupReason.PROTOCOL_ERROR)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("AudioSocket transport failed", extra=self._log_extra)
            self._end(HangupReason.PROTOCOL_ERROR)

    async def _run_handler(self, handler: SessionHandler) -> None:
        try:
            await handler(self)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session failed", extra=self._log_extra)
            self.session_failed = True

    # --- transport tasks ----------------------------------------------------------------

    async def _read_loop(self, initial: list[Frame]) -> None:
        self._dispatch(initial)
        while self._reason is None:
            data = await self._reader.read(65536)
            if not data:
                if self._parser.pending:
                    raise AudioSocketProtocolError(
                        f"connection closed mid-frame ({self._parser.pending} bytes pending)")
                self._end(HangupReason.PEER_EOF)
                return
            self._last_rx = self._clock.monotonic()
            self._dispatch(self._parser.feed(data))

    def _dispatch(self, frames: list[Frame]) -> None:
        now = self._clock.monotonic()
        for frame in frames:
            if self._reason is not None:
                return
            if frame.is_audio:
                if not frame.payload:
                    continue
                rate = frame.sample_rate or OUT_RATE
                self._rate = rate
                if self._tap is not None:
                    self._tap_inbound(frame.payload, rate, now)
                self._inbox.put(AudioIn(frame.payload, rate, now))
                if self._inbox.dropped == 1:
                    log.warning("session is not keeping up; dropping oldest audio",
                                extra=self._log_extra)
            elif frame.kind == Kind.DTMF:
                self._inbox.put(Dtmf(frame.digit, now))
            elif frame.kind == Kind.HANGUP:
                self._end(HangupReason.PEER_HANGUP)
            elif frame.kind == Kind.ERROR:
                code = frame.error_code
                if code == ErrorCode.HANGUP:
                    self._end(HangupReason.PEER_HANGUP, code)
                else:
                    log.warning("Asterisk reported an AudioSocket error",
                                extra={**self._log_extra, "error_code": code})
                    self._end(HangupReason.PEER_ERROR, code)
            else:  # a second UUID
                raise AudioSocketProtocolError(f"unexpected {frame.kind.name} frame mid-call")

    async def _watchdog(self) -> None:
        while self._reason is None:
            idle = self._clock.monotonic() - self._last_rx
            if idle >= self._idle_timeout:
                log.warning("no AudioSocket traffic; hanging up", extra=self._log_extra)
                self._end(HangupReason.IDLE_TIMEOUT)
                return
            await self._clock.sleep(self._idle_timeout - idle)

    # A broken recorder must not end the call: it is logged and switched off.

    def _tap_inbound(self, pcm: bytes, rate: int, t: float) -> None:
        try:
            if self._tap is not None:
                self._tap.on_inbound(pcm, rate, t)
        except Exception:
            log.exception("recording tap failed; recording stopped", extra=self._log_extra)
            self._tap = None

    def _tap_outbound(self, frame: FrameSent) -> None:
        try:
            if self._tap is not None:
                self._tap.on_outbound(frame.pcm, frame.t)
        except Exception:
            log.exception("recording tap failed; recording stopped", extra=self._log_extra)
            self._tap = None

