"""The simulator's AMI listener: banner, per-connection parsing, login gate, event fan-out.

Action semantics live in `sim/pbx.py`; this module only moves messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from televox_pbx.ami.codec import AmiMessage, AmiParser, AmiProtocolError, encode, encode_banner

log = logging.getLogger(__name__)

BANNER = "Asterisk Call Manager/11.0.0"  # what Asterisk 22.10 prints (see the fixtures)

Fields = list[tuple[str, str]]


class AmiSession:
    """One client connection as Asterisk's manager sees it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.logged_in = False
        self.events_on = True
        self.closed = False

    def send(self, fields: Fields) -> None:
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(encode(fields))

    def send_raw(self, data: bytes) -> None:
        if not self.closed and not self.writer.is_closing():
            self.writer.write(data)

    def abort(self) -> None:
        """Drop the TCP connection without a goodbye (simulates a dead socket)."""
        self.closed = True
        transport = self.writer.transport
        transport.abort()


Handler = Callable[[AmiSession, AmiMessage], Awaitable[None]]


class AmiServer:
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.Server | None = None
        self.sessions: set[AmiSession] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, host, port)
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def broadcast(self, fields: Fields) -> None:
        data = encode(fields)
        for session in self.sessions:
            if session.logged_in and session.events_on:
                session.send_raw(data)

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        session = AmiSession(reader, writer)
        self.sessions.add(session)
        try:
            writer.write(encode_banner(BANNER))
            await self._serve(session)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except AmiProtocolError as exc:
            log.warning("sim AMI: bad bytes from client; closing", extra={"error": str(exc)})
        finally:
            self.sessions.discard(session)
            session.closed = True
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    async def _serve(self, session: AmiSession) -> None:
        parser = AmiParser(expect_banner=False)
        while not session.closed:
            data = await session.reader.read(65536)
            if not data:
                return
            for item in parser.feed(data):
                if isinstance(item, AmiMessage):
                    await self._handler(session, item)
                    if session.closed:
                        return
