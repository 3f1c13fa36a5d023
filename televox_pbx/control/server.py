"""The daemon's end of the control channel: a Unix socket (mode 0600) and a token file
(mode 0600, new at every start) that a client must quote on its first line.

Each connection carries one authenticated request to one handler. Whatever a peer sends,
the worst it can do is end its own connection: bad input, a wrong token or a handler's
failure closes that connection and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import stat
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from televox_pbx.clock import Clock
from televox_pbx.control.protocol import (
    MAX_LINE,
    MAX_SOCKET_PATH,
    ProtocolError,
    encode,
    read_message,
    token_ok,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
# A peer has this long to send its request line.
REQUEST_TIMEOUT_S = 10.0
# Connections served at once; more are turned away (it is a local, operator's channel).
MAX_CONNECTIONS = 16


class ControlError(Exception):
    """The control channel cannot start (another daemon holds it, a bad path)."""


class Channel:
    """One connection, as a handler sees it: send events, read the client's next line."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @property
    def gone(self) -> bool:
        return self._writer.is_closing()

    async def send(self, msg: Mapping[str, Any]) -> None:
        """Best effort: a client that went away must not fail the work it asked for."""
        if self._writer.is_closing():
            return
        try:
            self._writer.write(encode(msg))
            await self._writer.drain()
        except (ConnectionError, OSError):
            self._writer.close()

    def send_nowait(self, msg: Mapping[str, Any]) -> None:
        """For callers that cannot await (transcript taps): the line is buffered in
        order; the next `send` drains it."""
        if not self._writer.is_closing():
            self._writer.write(encode(msg))

    async def receive(self) -> dict[str, Any] | None:
        """The client's next line; None once it has gone or sent something malformed."""
        try:
            return await read_message(self._reader)
        except (ProtocolError, ConnectionError, OSError):
            return None


Handler = Callable[[dict[str, Any], Channel], Awaitable[None]]


class ControlServer:
    def __init__(self, socket_path: Path, token_path: Path, clock: Clock,
                 handlers: Mapping[str, Handler], *,
                 request_timeout_s: float = REQUEST_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.socket_path = socket_path
        self.token_path = token_path
        self._clock = clock
        self._handlers = dict(handlers)
        self._request_timeout_s = request_timeout_s
        self._max_connections = max_connections
        self._token = ""
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[Any]] = set()
        self._owned: dict[Path, int] = {}  # path -> inode we created (removed on close)
        self.rejected = 0  # wrong or missing token
        self.malformed = 0  # not a request line

    # -- start and stop ------------------------------------------------------------------

    async def start(self) -> None:
        path = self.socket_path
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise ControlError(f"control socket path {path} is longer than {MAX_SOCKET_PATH}"
                               " bytes; set control.socket_path to a shorter one")
        path.parent.mkdir(parents=True, exist_ok=True)
        await self._clear_stale(path)
        self._token = secrets.token_urlsafe(32)
        sock = _bind_private(path)  # fails if another daemon bound it meanwhile
        try:
            self._owned[path] = path.stat().st_ino
            # Only now the token file: a daemon that lost the race above never replaces
            # the token of the one that won.
            self._owned[self.token_path] = _write_private(self.token_path,
                                                          self._token + "\n")
            self._server = await asyncio.start_unix_server(self._serve, sock=sock,
                                                           limit=MAX_LINE)
        except OSError as exc:
            sock.close()
            await self.close()
            raise ControlError(f"cannot start the control channel: {exc}") from exc
        log.info("control channel listening", extra={"socket": str(path)})

    async def _clear_stale(self, path: Path) -> None:
        """A socket left by a daemon that died is removed; a live one means another
        daemon serves this database, and this one must not start."""
        mode = _mode(path)
        if mode is None:
            return
        if not stat.S_ISSOCK(mode):
            raise ControlError(f"{path} exists and is not a socket; remove it or set "
                               "control.socket_path")
        try:
            _, writer = await asyncio.open_unix_connection(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            _remove(path)
            return
        writer.close()
        raise ControlError(f"another televox daemon is serving this database (its control "
                           f"socket {path} answers)")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        for path, inode in self._owned.items():
            _remove(path, inode)  # never a successor daemon's file
        self._owned.clear()

    # -- one connection ------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        self._conns.add(me)
        chan = Channel(reader, writer)
        try:
            if len(self._conns) > self._max_connections:
                await chan.send({"event": "error", "error": "busy",
                                 "reason": "too many control connections"})
                return
            await self._dispatch(chan, reader)
        except ProtocolError as exc:
            self.malformed += 1
            log.info("control: malformed request, connection closed",
                     extra={"error": str(exc)})
            await chan.send({"event": "error", "error": "malformed", "reason": str(exc)})
        except (ConnectionError, OSError):
            pass
        except Exception:
            log.exception("control request failed")
            await chan.send({"event": "error", "error": "internal",
                             "reason": "the daemon failed on this request; see its log"})
        finally:
            self._conns.discard(me)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _dispatch(self, chan: Channel, reader: asyncio.StreamReader) -> None:
        got = await self._within(self._request_timeout_s, read_message(reader))
        if got is None:
            return  # nothing (in time): just close
        msg = got[0]
        if msg is None:
            return
        if not token_ok(msg.get("token"), self._token):
            self.rejected += 1
            log.warning("control: request with a wrong token refused")
            await chan.send({"event": "error", "error": "unauthorized",
                             "reason": "wrong control token"})
            return
        op, args = msg.get("op"), msg.get("args", {})
        handler = self._handlers.get(op) if isinstance(op, str) else None
        if handler is None or not isinstance(args, dict):
            await chan.send({"event": "error", "error": "bad_request",
                             "reason": f"unknown operation {op!r}" if handler is None
                             else "args must be an object"})
            return
        await handler(args, chan)

    async def _within(self, seconds: float,
                      coro: Coroutine[Any, Any, T]) -> tuple[T] | None:
        """(result,) of `coro`, or None when the injected clock passes `seconds` first."""
        work = asyncio.ensure_future(coro)
        timer = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        return None if work.cancelled() else (work.result(),)


def _mode(path: Path) -> int | None:
    try:
        return path.lstat().st_mode
    except FileNotFoundError:
        return None


def _remove(path: Path, inode: int | None = None) -> None:
    """Unlink `path` if it is there (and, given `inode`, still that file)."""
    with contextlib.suppress(OSError):
        if inode is None or path.lstat().st_ino == inode:
            path.unlink()


def _bind_private(path: Path) -> socket.socket:
    """A socket at `path`, mode 0600 before it listens. asyncio's own unix server would
    remove a socket already there; bind() refuses to. (The token, not the mode, is what
    keeps others out: umask is process-wide, so it is left alone.)"""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
    except OSError as exc:
        sock.close()
        raise ControlError(f"cannot bind the control socket {path}: {exc.strerror}") from exc
    sock.listen(MAX_CONNECTIONS)
    sock.setblocking(False)
    return sock


def _write_private(path: Path, text: str) -> int:
    """A new file only this user can read (never an old one reused); returns its inode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        return os.fstat(f.fileno()).st_ino
