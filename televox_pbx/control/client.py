"""The CLI's end of the control channel: find the running daemon, quote its token, send
one request and read the events it streams back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from televox_pbx.config.settings import Settings
from televox_pbx.control.protocol import (
    MAX_LINE,
    PROTOCOL_VERSION,
    ProtocolError,
    encode,
    read_message,
    socket_path,
    token_path,
)


class ClientError(Exception):
    """A daemon is there, but we cannot talk to it (its token, its answer)."""


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 token: str) -> None:
        self._reader = reader
        self._writer = writer
        self._token = token

    async def request(self, op: str, args: Mapping[str, Any]) -> None:
        await self.send({"token": self._token, "op": op, "args": dict(args),
                         "version": PROTOCOL_VERSION})

    async def send(self, msg: Mapping[str, Any]) -> None:
        self._writer.write(encode(msg))
        await self._writer.drain()

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Each event line until the daemon closes the connection."""
        while True:
            try:
                msg = await read_message(self._reader)
            except ProtocolError as exc:
                raise ClientError(f"the daemon's answer is unreadable: {exc}") from exc
            except (ConnectionError, OSError):
                return
            if msg is None:
                return
            yield msg

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


async def connect(settings: Settings) -> Connection | None:
    """A connection to the daemon serving this database, or None when none runs (no
    socket, or a stale one nobody listens on)."""
    if not settings.control.enabled:
        return None
    path = socket_path(settings)
    if not path.exists():
        return None
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_LINE)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except PermissionError as exc:
        raise ClientError(f"a daemon is running, but its control socket {path} is not "
                          "open to this user (run as the daemon's user)") from exc
    except OSError as exc:
        raise ClientError(f"cannot reach the daemon at {path}: {exc.strerror or exc}") \
            from exc
    try:
        token = _read_token(token_path(settings))
    except ClientError:
        writer.close()
        raise
    return Connection(reader, writer, token)


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except PermissionError as exc:
        raise ClientError(f"a daemon is running, but its token file {path} is not readable "
                          "by this user (run as the daemon's user)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(f"a daemon is running, but its token file {path} cannot be read "
                          f"({type(exc).__name__})") from exc
    if not token:
        raise ClientError(f"a daemon is running, but its token file {path} is empty")
    return token
