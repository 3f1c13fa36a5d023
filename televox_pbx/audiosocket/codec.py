"""Sans-IO AudioSocket codec. Frame = kind (1 byte) + length (2 bytes BE) + payload."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import IntEnum


class Kind(IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10  # slin16 8 kHz
    AUDIO_12K = 0x11
    AUDIO_16K = 0x12
    AUDIO_24K = 0x13
    AUDIO_32K = 0x14
    AUDIO_44K = 0x15
    AUDIO_48K = 0x16
    AUDIO_96K = 0x17
    AUDIO_192K = 0x18
    ERROR = 0xFF


SAMPLE_RATES: dict[Kind, int] = {
    Kind.AUDIO: 8000, Kind.AUDIO_12K: 12000, Kind.AUDIO_16K: 16000, Kind.AUDIO_24K: 24000,
    Kind.AUDIO_32K: 32000, Kind.AUDIO_44K: 44100, Kind.AUDIO_48K: 48000,
    Kind.AUDIO_96K: 96000, Kind.AUDIO_192K: 192000,
}

MAX_PAYLOAD = 0xFFFF


class AudioSocketProtocolError(Exception):
    """The peer sent bytes that are not AudioSocket; end that session only."""


@dataclass(frozen=True, slots=True)
class Frame:
    kind: Kind
    payload: bytes

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


class FrameParser:
    """Incremental parser. Validates kinds and per-kind lengths as frames arrive."""

    def __init__(self, *, max_payload: int = MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self._max = max_payload
        self._dead: AudioSocketProtocolError | None = None

    def feed(self, data: bytes) -> list[Frame]:
        if self._dead is not None:
            raise self._dead
        self._buf += data
        out: list[Frame] = []
        try:
            while len(self._buf) >= 3:
                kind_byte = self._buf[0]
                length = int.from_bytes(self._buf[1:3], "big")
                try:
                    kind = Kind(kind_byte)
                except ValueError:
                    raise AudioSocketProtocolError(
                        f"unknown frame kind 0x{kind_byte:02x}") from None
                _check_length(kind, length, self._max)
                if len(self._buf) < 3 + length:
                    break
                payload = bytes(self._buf[3:3 + length])
                del self._buf[:3 + length]
                if kind == Kind.DTMF and not payload.isascii():
                    raise AudioSocketProtocolError("DTMF payload is not ASCII")
                out.append(Frame(kind, payload))
        except AudioSocketProtocolError as exc:
            self._dead = exc
            raise
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
    if kind in SAMPLE_RATES and length % 2:
        raise AudioSocketProtocolError(f"audio frame of odd length {length}")


def encode(kind: Kind, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("payload too large for one frame")
    return bytes((kind,)) + len(payload).to_bytes(2, "big") + payload


def encode_audio(pcm: bytes, kind: Kind = Kind.AUDIO) -> bytes:
    if len(pcm) % 2:
        raise ValueError("slin audio must be an even number of bytes")
    return encode(kind, pcm)


def encode_hangup() -> bytes:
    return encode(Kind.HANGUP)


def encode_uuid(call_id: uuid.UUID | str) -> bytes:
    u = call_id if isinstance(call_id, uuid.UUID) else uuid.UUID(call_id)
    return encode(Kind.UUID, u.bytes)


def encode_dtmf(digit: str) -> bytes:
    if len(digit) != 1 or digit not in "0123456789*#ABCD":
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return encode(Kind.DTMF, digit.encode("ascii"))
