"""Sans-IO AudioSocket codec. Frame = kind (1 byte) + length (2 bytes BE) + payload.

No sockets, no asyncio: `FrameParser.feed(bytes)` gives typed frames, the `encode_*`
functions give bytes. Errors in what the peer sent raise `AudioSocketProtocolError`;
misuse on our side (encoding something invalid) raises `ValueError`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import IntEnum


class Kind(IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10  # slin16 8 kHz: what the AudioSocket() dialplan app always uses
    # Higher rates exist only with the channel driver (Dial(AudioSocket/...)), Asterisk >= 22.7.
    AUDIO_12K = 0x11
    AUDIO_16K = 0x12
    AUDIO_24K = 0x13
    AUDIO_32K = 0x14
    AUDIO_44K = 0x15
    AUDIO_48K = 0x16
    AUDIO_96K = 0x17
    AUDIO_192K = 0x18
    ERROR = 0xFF


class ErrorCode(IntEnum):
    """Error codes Asterisk itself puts in a kind 0xff payload (others are app-defined)."""

    NONE = 0x00
    HANGUP = 0x01  # the calling party hung up
    FRAME_FORWARDING = 0x02
    MEMORY = 0x04


SAMPLE_RATES: dict[Kind, int] = {
    Kind.AUDIO: 8000, Kind.AUDIO_12K: 12000, Kind.AUDIO_16K: 16000, Kind.AUDIO_24K: 24000,
    Kind.AUDIO_32K: 32000, Kind.AUDIO_44K: 44100, Kind.AUDIO_48K: 48000,
    Kind.AUDIO_96K: 96000, Kind.AUDIO_192K: 192000,
}
AUDIO_KINDS = frozenset(SAMPLE_RATES)
DTMF_DIGITS = "0123456789*#ABCD"

HEADER_SIZE = 3
MAX_PAYLOAD = 0xFFFF  # the length field is 16 bits, so this also caps the parser's buffer

_KIND_BY_BYTE: dict[int, Kind] = {k.value: k for k in Kind}


class AudioSocketProtocolError(Exception):
    """The peer sent bytes that are not AudioSocket; end that session only."""


@dataclass(frozen=True, slots=True)
class Frame:
    kind: Kind
    payload: bytes

    @property
    def is_audio(self) -> bool:
        return self.kind in AUDIO_KINDS

    @property
    def sample_rate(self) -> int | None:
        return SAMPLE_RATES.get(self.kind)

    @property
    def uuid(self) -> uuid.UUID:
        if self.kind != Kind.UUID:
            raise ValueError("not a UUID frame")
        return uuid.UUID(bytes=self.payload)

    @property
    def digit(self) -> str:
        if self.kind != Kind.DTMF:
            raise ValueError("not a DTMF frame")
        return self.payload.decode("ascii")

    @property
    def error_code(self) -> int | None:
        """First payload byte of an error frame; None when the (optional) code is absent."""
        if self.kind != Kind.ERROR:
            raise ValueError("not an error frame")
        return self.payload[0] if self.payload else None


class FrameParser:
    """Incremental parser. Validates kind and per-kind length from the header alone, so
    garbage is rejected after 3 bytes instead of after buffering a bogus payload.

    After an error the parser is dead: every later `feed` raises the same error.
    """

    def __init__(self, *, max_payload: int = MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self._max = max_payload
        self._dead: AudioSocketProtocolError | None = None

    def feed(self, data: bytes) -> list[Frame]:
        if self._dead is not None:
            raise self._dead
        self._buf += data
        buf = self._buf
        out: list[Frame] = []
        pos = 0
        try:
            while len(buf) - pos >= HEADER_SIZE:
                kind = _KIND_BY_BYTE.get(buf[pos])
                if kind is None:
                    raise AudioSocketProtocolError(f"unknown frame kind 0x{buf[pos]:02x}")
                length = (buf[pos + 1] << 8) | buf[pos + 2]
                _check_length(kind, length, self._max)
                end = pos + HEADER_SIZE + length
                if len(buf) < end:
                    break
                payload = bytes(buf[pos + HEADER_SIZE:end])
                if kind == Kind.DTMF and not (payload.isascii() and payload.decode().isprintable()):
                    raise AudioSocketProtocolError("DTMF payload is not a printable ASCII digit")
                out.append(Frame(kind, payload))
                pos = end
        except AudioSocketProtocolError as exc:
            self._dead = exc
            self._buf = bytearray()
            raise
        finally:
            # Compact once per feed rather than once per frame (keeps feed linear).
            if self._dead is None and pos:
                del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered (non-zero at EOF = truncated)."""
        return len(self._buf)


def _check_length(kind: Kind, length: int, max_payload: int) -> None:
    if length > max_payload:
        raise AudioSocketProtocolError(f"frame of {length} bytes exceeds {max_payload}")
    if kind == Kind.UUID and length != 16:
        raise AudioSocketProtocolError(f"UUID frame must be 16 bytes, got {length}")
    if kind == Kind.DTMF and length != 1:
        raise AudioSocketProtocolError(f"DTMF frame must be 1 byte, got {length}")
    if kind in AUDIO_KINDS and length % 2:
        raise AudioSocketProtocolError(f"audio frame of odd length {length}")


def encode(kind: Kind, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("payload too large for one frame")
    return bytes((kind,)) + len(payload).to_bytes(2, "big") + payload


def encode_audio(pcm: bytes, kind: Kind = Kind.AUDIO) -> bytes:
    if kind not in AUDIO_KINDS:
        raise ValueError(f"{kind!r} is not an audio kind")
    if not pcm or len(pcm) % 2:
        # Asterisk rejects zero-length audio frames and slin is whole 16-bit samples.
        raise ValueError("slin audio must be a non-zero, even number of bytes")
    return encode(kind, pcm)


def encode_hangup() -> bytes:
    return encode(Kind.HANGUP)


def encode_uuid(call_id: uuid.UUID | str) -> bytes:
    u = call_id if isinstance(call_id, uuid.UUID) else uuid.UUID(call_id)
    return encode(Kind.UUID, u.bytes)


def encode_dtmf(digit: str) -> bytes:
    if len(digit) != 1 or digit not in DTMF_DIGITS:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return encode(Kind.DTMF, digit.encode("ascii"))


def encode_error(code: int | None = None) -> bytes:
    """An error frame (Asterisk -> server only; for simulators and tests)."""
    if code is not None and not 0 <= code <= 0xFF:
        raise ValueError(f"error code out of range: {code}")
    return encode(Kind.ERROR, b"" if code is None else bytes((code,)))
