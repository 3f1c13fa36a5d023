"""Sans-IO AMI codec: bytes in, typed messages out, and back.

No sockets, no asyncio. Values are decoded with surrogateescape so bytes that are not
UTF-8 survive a round trip instead of being dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
_ENC = "utf-8"
_ERRORS = "surrogateescape"


class AmiProtocolError(Exception):
    """The peer sent something that is not AMI; the connection must be closed."""


@dataclass(frozen=True, slots=True)
class AmiBanner:
    text: str  # e.g. "Asterisk Call Manager/9.0.0"


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI message: ordered fields; repeated keys (Variable, ChanVariable) kept."""

    fields: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str | None = None) -> str | None:
        k = key.lower()
        for name, value in self.fields:
            if name.lower() == k:
                return value
        return default

    def getall(self, key: str) -> list[str]:
        k = key.lower()
        return [value for name, value in self.fields if name.lower() == k]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action(self) -> str | None:
        return self.get("Action")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def variables(self, key: str = "Variable") -> dict[str, str]:
        """Parse repeated `Variable: NAME=value` (or ChanVariable) fields into a dict."""
        out: dict[str, str] = {}
        for item in self.getall(key):
            name, sep, value = item.partition("=")
            if sep:
                out[name] = value
        return out

    def as_dict(self) -> dict[str, str]:
        """Last value wins for repeated keys; use `fields` when repeats matter."""
        return dict(self.fields)

    @classmethod
    def build(cls, *pairs: tuple[str, str], **kw: str) -> AmiMessage:
        return cls(tuple(pairs) + tuple(kw.items()))


class AmiParser:
    """Incremental parser. `feed()` returns every complete item in the data so far.

    `expect_banner`: a client reads one banner line first; a server (the simulator) does not.
    """

    def __init__(self, *, expect_banner: bool = True,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self._buf = bytearray()
        self._need_banner = expect_banner
        self._max = max_message_bytes
        self._fields: list[tuple[str, str]] = []
        self._msg_bytes = 0
        self._dead: AmiProtocolError | None = None

    def feed(self, data: bytes) -> list[AmiBanner | AmiMessage]:
        if self._dead is not None:
            raise self._dead
        self._buf += data
        out: list[AmiBanner | AmiMessage] = []
        try:
            for line in self._lines():
                item = self._on_line(line)
                if item is not None:
                    out.append(item)
            if self._msg_bytes + len(self._buf) > self._max:
                raise AmiProtocolError(f"AMI message exceeds {self._max} bytes")
        except AmiProtocolError as exc:
            self._dead = exc
            raise
        return out

    def _lines(self) -> Iterator[bytes]:
        start = 0
        buf = self._buf
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            end = nl - 1 if nl > start and buf[nl - 1] == 0x0D else nl
            line = bytes(buf[start:end])
            start = nl + 1
            yield line
        if start:
            del buf[:start]

    def _on_line(self, line: bytes) -> AmiBanner | AmiMessage | None:
        if self._need_banner:
            self._need_banner = False
            text = line.decode(_ENC, _ERRORS)
            if "Call Manager" not in text and "/" not in text:
                raise AmiProtocolError("expected an AMI banner line")
            return AmiBanner(text)
        if not line:
            if not self._fields:
                return None  # stray blank line between messages
            msg = AmiMessage(tuple(self._fields))
            self._fields = []
            self._msg_bytes = 0
            return msg
        self._msg_bytes += len(line) + 2
        if self._msg_bytes > self._max:
            raise AmiProtocolError(f"AMI message exceeds {self._max} bytes")
        key, sep, value = line.partition(b":")
        if not sep:
            # Asterisk ends some command output with a bare line; keep it, never drop.
            self._fields.append(("", line.decode(_ENC, _ERRORS)))
            return None
        if not key or b" " in key.strip() and b":" not in key:
            # A key is a single token; anything else is not AMI.
            if not key.strip() or len(key.split()) > 1:
                raise AmiProtocolError("malformed AMI header line")
        self._fields.append((key.decode(_ENC, _ERRORS).strip(),
                             value[1:].decode(_ENC, _ERRORS) if value.startswith(b" ")
                             else value.decode(_ENC, _ERRORS)))
        return None


def encode(fields: Iterable[tuple[str, str]]) -> bytes:
    """Serialise one message. CR/LF inside a value would split the message: refuse it."""
    parts: list[bytes] = []
    for key, value in fields:
        if "\r" in key or "\n" in key or ":" in key or "\r" in value or "\n" in value:
            raise ValueError(f"AMI field {key!r} contains a line break or colon in the key")
        parts.append(f"{key}: {value}\r\n".encode(_ENC, _ERRORS))
    parts.append(b"\r\n")
    return b"".join(parts)


def encode_message(msg: AmiMessage) -> bytes:
    return encode(msg.fields)


def encode_banner(text: str = "Asterisk Call Manager/9.0.0") -> bytes:
    return f"{text}\r\n".encode(_ENC)
