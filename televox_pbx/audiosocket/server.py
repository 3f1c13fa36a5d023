"""The daemon's AudioSocket listener. Asterisk is the TCP client, one connection per call.

Per connection: read the UUID frame (the first frame, within `uuid_timeout_s`), route it
(`Router.claim`), then serve it as a `CallConnection` running the session handler.
Anything wrong with one connection closes that connection only and is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

from televox_pbx.audiosocket.codec import AudioSocketProtocolError, Frame, FrameParser, Kind
from televox_pbx.audiosocket.connection import CallConnection
from televox_pbx.audiosocket.router import Refused, Router
from televox_pbx.audiosocket.session import SessionHandler
from televox_pbx.clock import Clock, wait_for
from televox_pbx.config.settings import AudioSocketSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServerStats:
    """For health: what is connected now and what went wrong so far."""

    active: int  # calls being served
    pending: int  # expected or announced calls not yet connected
    accepted: int
    refused: int
    refused_by_reason: dict[str, int] = field(default_factory=dict)
    ended_by_reason: dict[str, int] = field(default_factory=dict)
    session_errors: int = 0  # handlers that raised


@dataclass(frozen=True, slots=True)
class ServerOptions:
    grace_s: float = 1.0  # how long an unknown UUID waits for its inbound announcement
    uuid_timeout_s: float = 5.0  # connect -> UUID frame
    idle_timeout_s: float = 60.0  # no frame from Asterisk (silence suppression sends none)
    post_hangup_timeout_s: float = 120.0  # handler's post-call work after hangup
    max_write_buffer: int = 32_000  # unsent bytes (~1 s of audio) => peer stalled
    inbox_cap: int = 500  # incoming events buffered for a slow session (~10 s)


class AudioSocketServer:
    def __init__(self, clock: Clock, *, host: str = "127.0.0.1", port: int = 0,
                 inbound_handler: SessionHandler | None = None,
                 options: ServerOptions | None = None) -> None:
        self._clock = clock
        self._host = host
        self._port = port
        self.options = options or ServerOptions()
        self.router = Router(clock, inbound_handler=inbound_handler,
                             grace_s=self.options.grace_s)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._active: dict[str, CallConnection] = {}
        self._accepted = 0
        self._refused: Counter[str] = Counter()
        self._ended: Counter[str] = Counter()
        self._session_errors = 0

    @classmethod
    def from_settings(cls, settings: AudioSocketSettings, clock: Clock, *,
                      inbound_handler: SessionHandler | None = None,
                      options: ServerOptions | None = None) -> AudioSocketServer:
        return cls(clock, host=settings.bind_host, port=settings.port,
                   inbound_handler=inbound_handler, options=options)

    # --- routing (delegated; see Router) ------------------------------------------------

    def expect(self, call_id: str, handler: SessionHandler) -> None:
        self.router.expect(call_id, handler)

    def announce_inbound(self, call_id: str, caller_id: str | None = None) -> None:
        self.router.announce_inbound(call_id, caller_id)

    def discard(self, call_id: str) -> None:
        self.router.discard(call_id)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connect, self._host, self._port)
        log.info("AudioSocket server listening", extra={"port": self.port})

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    def active_calls(self) -> dict[str, CallConnection]:
        return dict(self._active)

    def stats(self) -> ServerStats:
        return ServerStats(active=len(self._active), pending=self.router.pending_count,
                           accepted=self._accepted, refused=sum(self._refused.values()),
                           refused_by_reason=dict(self._refused),
                           ended_by_reason=dict(self._ended),
                           session_errors=self._session_errors)

    async def wait_idle(self) -> None:
        """Return once no connection is being served (calls, refusals, all of them)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop accepting, give live calls `grace_s` to end on their own, then hang up
        the rest (kind 0x00) and wait for every connection task."""
        if self._server is not None:
            self._server.close()
        if grace_s > 0 and self._tasks:
            with contextlib.suppress(TimeoutError):
                await wait_for(self._clock, self.wait_idle(), grace_s)
        while self._tasks:  # a loop: a connection accepted just before close() may follow
            tasks = set(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AudioSocketServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # --- per connection -----------------------------------------------------------------

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Our own task (not the one asyncio.streams would make) so that the server owns it:
        # tracked for shutdown, and a cancelled connection is not reported as an error.
        task = asyncio.create_task(self._connection(reader, writer), name="audiosocket-conn")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except Exception:
            log.exception("AudioSocket connection failed")
        finally:
            if not writer.is_closing():
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = FrameParser()
        try:
            frames = await wait_for(self._clock, _read_frames(reader, parser),
                                    self.options.uuid_timeout_s)
            if frames[0].kind != Kind.UUID:
                raise AudioSocketProtocolError(f"first frame is {frames[0].kind.name}, not UUID")
            call_id = str(frames[0].uuid)
        except TimeoutError:
            return self._refuse(None, "no_uuid")
        except AudioSocketProtocolError as exc:
            log.warning("AudioSocket protocol error before UUID: %s", exc)
            return self._refuse(None, "protocol_error")
        except (ConnectionError, OSError, EOFError):
            return self._refuse(None, "closed_before_uuid")
        try:
            route = await self.router.claim(call_id)
        except Refused as exc:
            return self._refuse(call_id, exc.reason.value)
        conn = CallConnection(route, reader, writer, parser, self._clock,
                              idle_timeout_s=self.options.idle_timeout_s,
                              max_write_buffer=self.options.max_write_buffer,
                              inbox_cap=self.options.inbox_cap)
        self._accepted += 1
        self._active[call_id] = conn
        log.info("AudioSocket call connected", extra={"call_id": call_id,
                                                      "inbound": route.inbound})
        try:
            await conn.run(route.handler, frames[1:],
                           post_hangup_timeout_s=self.options.post_hangup_timeout_s)
        finally:
            del self._active[call_id]
            reason = conn.hangup_reason.value if conn.hangup_reason else "unknown"
            self._ended[reason] += 1
            self._session_errors += conn.session_failed
            log.info("AudioSocket call ended",
                     extra={"call_id": call_id, "reason": reason,
                            "frames_sent": conn.pacer.stats.frames,
                            "resyncs": conn.pacer.stats.resyncs})

    def _refuse(self, call_id: str | None, reason: str) -> None:
        self._refused[reason] += 1
        log.warning("AudioSocket connection refused", extra={"call_id": call_id,
                                                            "reason": reason})


async def _read_frames(reader: asyncio.StreamReader, parser: FrameParser) -> list[Frame]:
    """At least one frame (the rest of that read too); EOFError if the peer closes."""
    while True:
        data = await reader.read(65536)
        if not data:
            raise EOFError("closed before the first frame")
        frames = parser.feed(data)
        if frames:
            return frames
