"""Sans-IO AMI codec: bytes in, typed messages out, and back.

No sockets, no asyncio. Values are decoded with surrogateescape so bytes that are not
UTF-8 survive a round trip instead of being dropped.

Wire rules followed here:
- a client first reads one banner line ("Asterisk Call Manager/X.Y.Z");
- a message is `Key: Value` lines ended by a blank line; lines end with CRLF, bare LF is
  accepted too (some proxies and our own fixtures use it);
- repeated keys are legal and kept in order;
- legacy command output (`Response: Follows`) carries raw lines, possibly blank, up to
  `--END COMMAND--`; such lines, and any other line that is not `Token: value`, are kept
  as fields with the empty key so nothing the peer sent is lost and encode() reproduces it.
Every buffer is capped: a peer that never ends a line or a message gets AmiProtocolError.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import repeat

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
MAX_BANNER_BYTES = 1024
RAW = ""  # the key of a line that is not `Key: Value` (command output and oddities)
END_COMMAND = "--END COMMAND--"
_ENC = "utf-8"
_ERRORS = "surrogateescape"
_END_COMMAND_B = END_COMMAND.encode()
_MAX_KNOWN_KEYS = 2048
_partition = str.partition
_COLON_SP = repeat(": ")


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
        # Asterisk spells keys consistently, so try the exact spelling first (hot path).
        for name, value in self.fields:
            if name == key:
                return value
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

    @property
    def output(self) -> list[str]:
        """Command output lines: modern `Output:` fields or legacy raw `Follows` lines."""
        return [value for name, value in self.fields
                if name == "Output" or (name == RAW and value != END_COMMAND)]

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


def _is_follows(first_line: str) -> bool:
    key, sep, value = first_line.partition(":")
    return bool(sep) and key.lower() == "response" and value.strip(" \t").lower() == "follows"


def _parse_lines(lines: list[str]) -> tuple[tuple[str, str], ...]:
    fields: list[tuple[str, str]] = []
    append = fields.append
    for line in lines:
        key, sep, value = line.partition(":")
        # A key is one token; a line whose "key" has blanks is output text, not a header.
        if sep and key and " " not in key and "\t" not in key and "\r" not in key:
            append((key, value[1:] if value[:1] == " " else value))
        else:
            append((RAW, line))
    return tuple(fields)


def _split_lines(text: str) -> list[str]:
    if text.count("\n") == text.count("\r\n"):
        return text.split("\r\n")
    return [line[:-1] if line[-1:] == "\r" else line for line in text.split("\n")]


class AmiParser:
    """Incremental parser. `feed()` returns every complete item in the data so far.

    `expect_banner`: a client reads one banner line first; a server (the simulator) does not.
    After an AmiProtocolError the parser is dead and raises it again on every feed.
    """

    def __init__(self, *, expect_banner: bool = True,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self._buf = bytearray()
        self._need_banner = expect_banner
        self._max = max_message_bytes
        # Search state of the incomplete message at the buffer start: where the terminator
        # search resumes (so byte-by-byte feeds stay linear) and where --END COMMAND-- is.
        self._scan = 0
        self._marker = -1
        self._keys: dict[str, str] = {}  # validated header names, for the fast path
        self._dead: AmiProtocolError | None = None

    def feed(self, data: bytes) -> list[AmiBanner | AmiMessage]:
        if self._dead is not None:
            raise self._dead
        self._buf += data
        out: list[AmiBanner | AmiMessage] = []
        try:
            if self._need_banner and not self._banner(out):
                return out
            self._messages(out, len(data))
        except AmiProtocolError as exc:
            self._dead = exc
            self._buf.clear()
            raise
        return out

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete item (for tests and health output)."""
        return len(self._buf)

    def _banner(self, out: list[AmiBanner | AmiMessage]) -> bool:
        buf = self._buf
        nl = buf.find(b"\n", 0, MAX_BANNER_BYTES + 1)
        if nl < 0:
            if len(buf) > MAX_BANNER_BYTES:
                raise AmiProtocolError("AMI banner line too long")
            return False
        end = nl - 1 if nl and buf[nl - 1] == 0x0D else nl
        text = bytes(buf[:end]).decode(_ENC, _ERRORS)
        if "Call Manager" not in text:
            raise AmiProtocolError("expected an AMI banner line")
        del buf[:nl + 1]
        self._need_banner = False
        out.append(AmiBanner(text))
        return True

    def _messages(self, out: list[AmiBanner | AmiMessage], fresh: int) -> None:
        buf = self._buf
        n = len(buf)
        pos = self._fast(out, fresh)
        try:
            while pos < n:
                # Blank lines between messages are noise, not empty messages.
                c = buf[pos]
                if c == 0x0A:
                    pos += 1
                    continue
                if c == 0x0D and pos + 1 < n and buf[pos + 1] == 0x0A:
                    pos += 2
                    continue
                end = self._find_end(pos)
                if end < 0:
                    break
                block = bytes(buf[pos:end])
                lines = _split_lines(block.decode(_ENC, _ERRORS))
                lines.pop()  # the text after the last "\n" of the block is empty
                out.append(AmiMessage(_parse_lines(lines)))
                pos = self._skip_blank(end)
                self._scan = pos
                self._marker = -1
        finally:
            if pos:
                del buf[:pos]
                self._scan = max(0, self._scan - pos)
                if self._marker >= 0:
                    self._marker -= pos
        if len(buf) > self._max:
            raise AmiProtocolError(f"AMI message exceeds {self._max} bytes")

    def _fast(self, out: list[AmiBanner | AmiMessage], fresh: int) -> int:
        """Parse the complete messages at the buffer start in bulk, when plainly framed.

        Returns how many bytes were consumed (0: the line-by-line path decides). Output is
        identical to that path: framing is checked for the whole run with C-speed scans,
        and a line is taken as `Key: value` only when its key is one already validated
        by `_parse_lines` rules (a small cache: AMI has a few hundred key names).
        """
        buf = self._buf
        pos = 0
        while buf[pos:pos + 2] == b"\r\n":  # blank lines between messages
            pos += 2
        if pos >= len(buf) or self._follows(pos):
            return 0
        # Earlier feeds left no complete message behind, so a terminator can only end in
        # the fresh bytes: searching just those keeps byte-by-byte feeding linear.
        last = buf.rfind(b"\r\n\r\n", max(pos, len(buf) - fresh - 3))
        if last < pos or last + 4 - pos > self._max:
            return 0
        end = last + 4
        region = bytes(buf[pos:end])
        if (b"\r\n\r\n\r\n" in region  # stray blank lines
                or region.count(b"\n") != region.count(b"\r\n")  # bare LF line ends
                or b"follows" in region.lower()):  # legacy command output framing
            return 0
        keys = self._keys
        for chunk in region.decode(_ENC, _ERRORS)[:-4].split("\r\n\r\n"):
            lines = chunk.split("\r\n")
            try:
                fields = tuple([(keys[k], v) for k, sep, v in map(_partition, lines, _COLON_SP)
                                if sep])
            except KeyError:
                fields = ()
            if len(fields) != len(lines):
                fields = _parse_lines(lines)
                self._learn_keys(fields)
            out.append(AmiMessage(fields))
        self._scan = 0
        self._marker = -1
        return end

    def _learn_keys(self, fields: tuple[tuple[str, str], ...]) -> None:
        # Bounded, so a peer inventing keys cannot grow it; unknown keys just go slow.
        keys = self._keys
        for key, _ in fields:
            if key and key not in keys and len(keys) < _MAX_KNOWN_KEYS:
                keys[key] = key

    def _find_end(self, pos: int) -> int:
        """Index just past the last line of the message at `pos`, or -1 if incomplete.

        The message ends at the first blank line; a `Follows` message only at the first
        blank line after `--END COMMAND--` (its output may contain blank lines).
        """
        buf = self._buf
        limit = pos + self._max + 4
        start = max(pos, self._scan)
        if self._follows(pos):
            if self._marker < 0:
                marker = buf.find(_END_COMMAND_B, start, limit)
                if marker < 0:
                    self._scan = max(pos, len(buf) - len(_END_COMMAND_B) + 1)
                    return -1
                self._marker = marker
            start = max(start, self._marker)
        end = self._blank_line(start, limit)
        if end < 0:
            # Resume later just before the tail, which may hold half a terminator.
            self._scan = max(start, len(buf) - 3)
        return end

    def _follows(self, pos: int) -> bool:
        buf = self._buf
        if buf[pos] not in b"Rr":  # fast reject: events start with "Event:"
            return False
        nl = buf.find(b"\n", pos, pos + 64)
        head = bytes(buf[pos:nl if nl >= 0 else pos + 64])
        if head.endswith(b"\r"):
            head = head[:-1]
        return head[:9].lower() == b"response:" and _is_follows(head.decode(_ENC, _ERRORS))

    def _blank_line(self, start: int, limit: int) -> int:
        """Index of the newline that ends the last line before a blank line, plus one."""
        buf = self._buf
        crlf = buf.find(b"\n\r\n", start, limit)
        lf = buf.find(b"\n\n", start, crlf + 2 if crlf >= 0 else limit)
        if lf >= 0:
            return lf + 1
        if crlf >= 0:
            return crlf + 1
        return -1

    def _skip_blank(self, end: int) -> int:
        """Step over the blank line that terminated the message ending at `end`."""
        buf = self._buf
        if buf[end] == 0x0D:
            return end + 2
        return end + 1


def encode(fields: Iterable[tuple[str, str]]) -> bytes:
    """Serialise one message. A line break in a key or value would split it: refuse it.

    A field with the empty key (RAW) is written as a bare line, as parsed.
    """
    parts: list[str] = []
    follows = False
    for key, value in fields:
        if "\r" in value or "\n" in value:
            raise ValueError(f"AMI field {key!r} has a line break in its value")
        if key == RAW:
            if not value and not follows:
                raise ValueError("an empty raw line would end the AMI message early")
            parts.append(f"{value}\r\n")
            continue
        if "\r" in key or "\n" in key or ":" in key or " " in key or "\t" in key:
            raise ValueError(f"AMI key {key!r} is not a single token")
        if not parts and key.lower() == "response" and value.strip(" \t").lower() == "follows":
            follows = True
        parts.append(f"{key}: {value}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode(_ENC, _ERRORS)


def encode_message(msg: AmiMessage) -> bytes:
    return encode(msg.fields)


def encode_banner(text: str = "Asterisk Call Manager/9.0.0") -> bytes:
    return f"{text}\r\n".encode(_ENC, _ERRORS)
