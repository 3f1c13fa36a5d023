"""The control channel's wire format: JSON lines over a Unix socket, one request a
connection.

Client -> daemon: one line `{"token": ..., "op": ..., "args": {...}}`; while a call runs,
`{"op": "hangup"}` may follow; a client that closes its end (even only its write side)
has left, and its call is hung up. Daemon -> client: event lines `{"event": ...}`; the last
is "done", "allowed", "refused", "error" or "pong". A line longer than MAX_LINE, bytes
that are not UTF-8 JSON, or JSON that is not an object ends that connection.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from televox_pbx.config.settings import Settings

PROTOCOL_VERSION = 1
MAX_LINE = 64 * 1024
# The kernel's limit on a Unix socket path (sun_path, with its terminating NUL).
MAX_SOCKET_PATH = 107


class ProtocolError(Exception):
    """The peer sent something that is not a request line; the connection ends."""


def _beside_database(settings: Settings, suffix: str) -> Path:
    db = settings.database.path
    return db.with_name(f"{db.stem or 'televox'}{suffix}")


def socket_path(settings: Settings) -> Path:
    return settings.control.socket_path or _beside_database(settings, ".sock")


def token_path(settings: Settings) -> Path:
    return settings.control.token_path or _beside_database(settings, ".token")


def encode(msg: Mapping[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    if not line.endswith(b"\n"):
        raise ProtocolError("unterminated line")
    try:
        msg = json.loads(line)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # deep nesting too
        raise ProtocolError(f"not JSON ({type(exc).__name__})") from exc
    if not isinstance(msg, dict):
        raise ProtocolError("not a JSON object")
    return msg


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next line as an object; None at a clean end of stream. The reader's own
    limit (MAX_LINE) caps the line: readline raises ValueError past it."""
    try:
        line = await reader.readline()
    except ValueError as exc:
        raise ProtocolError("line too long") from exc
    if not line:
        return None
    return decode(line)


def token_ok(given: object, expected: str) -> bool:
    """Constant-time comparison; anything that is not a string is simply wrong."""
    if not isinstance(given, str) or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
