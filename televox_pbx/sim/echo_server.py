"""A tiny daemon-side AudioSocket server for simulator tests and benchmarks.

Not the product's server (that is televox_pbx/audiosocket/): it accepts legs, records what
the simulated callee sends, and answers with paced audio (echo, tone or nothing), hanging
up after a set time if asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field

from televox_pbx.audiosocket.codec import (
    AudioSocketProtocolError,
    FrameParser,
    Kind,
    encode_audio,
    encode_hangup,
)
from televox_pbx.sim.speech import tone

FRAME = 320  # 20 ms of 8 kHz slin
# The echo waits for this much audio before playing it back, and again after running dry:
# the leg's pacer and ours are separate timers, and without a little buffer each late
# frame on a busy box became 20 ms of silence inside a word of the echo.
JITTER_FRAMES = 4


@dataclass(slots=True)
class EchoSession:
    call_id: str
    audio_in: bytearray = field(default_factory=bytearray)
    frames_in: int = 0
    frame_sizes: set[int] = field(default_factory=set)
    dtmf: list[str] = field(default_factory=list)
    ended_by: str = ""  # "us" (hangup frame sent) | "peer" (socket closed)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class EchoAudioSocketServer:
    """reply: "echo" sends back what arrives, "tone" a 440 Hz tone, "silent" nothing."""

    def __init__(self, *, reply: str = "echo", hangup_after_s: float | None = None) -> None:
        self.reply = reply
        self.hangup_after_s = hangup_after_s
        self.sessions: dict[str, EchoSession] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._new = asyncio.Condition()
        self.port = 0

    async def start(self, host: str = "127.0.0.1") -> int:
        self._server = await asyncio.start_server(self._accept, host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def wait_session(self, call_id: str) -> EchoSession:
        async with self._new:
            await self._new.wait_for(lambda: call_id in self.sessions)
        return self.sessions[call_id]

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        parser = FrameParser()
        session: EchoSession | None = None
        sender: asyncio.Task[None] | None = None
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    if session is not None and not session.ended_by:
                        session.ended_by = "peer"
                    return
                for frame in parser.feed(data):
                    if frame.kind == Kind.UUID and session is None:
                        session = EchoSession(str(uuid.UUID(bytes=frame.payload)))
                        async with self._new:
                            self.sessions[session.call_id] = session
                            self._new.notify_all()
                        sender = asyncio.create_task(self._send(session, writer))
                    elif session is None:
                        return  # the first frame must be the UUID
                    elif frame.kind == Kind.AUDIO:
                        session.audio_in += frame.payload
                        session.frames_in += 1
                        session.frame_sizes.add(len(frame.payload))
                    elif frame.kind == Kind.DTMF:
                        session.dtmf.append(frame.digit)
                    elif frame.kind == Kind.HANGUP:
                        session.ended_by = "peer"
                        return
        except (AudioSocketProtocolError, ConnectionError):
            return
        finally:
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
            if session is not None:
                session.done.set()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    async def _send(self, session: EchoSession, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        start = next_t = loop.time()
        sent = 0
        primed = False
        beep = tone(0.02, 440.0, 6000)
        while True:
            if self.hangup_after_s is not None and loop.time() - start >= self.hangup_after_s:
                session.ended_by = "us"
                writer.write(encode_hangup())
                return
            if self.reply == "echo":
                ready = len(session.audio_in) - sent
                primed = ready >= FRAME * (1 if primed else JITTER_FRAMES)
                chunk = bytes(session.audio_in[sent:sent + FRAME]) if primed else b""
                sent += len(chunk)
                writer.write(encode_audio(chunk.ljust(FRAME, b"\0")))
            elif self.reply == "tone":
                writer.write(encode_audio(beep))
            next_t += FRAME / 16000
            await asyncio.sleep(max(0.0, next_t - loop.time()))
