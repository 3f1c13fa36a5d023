"""What a SIPp far end says: one G.711 RTP stream, written as a pcap for `play_pcap_audio`.

SIPp replays a capture's UDP payloads with the capture's timing, from the call's media
port to the address in Asterisk's SDP; it keeps the RTP headers as they are. So one pcap
holds the whole far end of a call: 20 ms mu-law packets from the answer on (silence when
the callee says nothing, as a phone does), speech at given times, and RFC 4733
telephone-events (payload type 101, as Asterisk offers) in the same stream, so sequence
numbers and timestamps run on across them as a real phone's do.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 8000
PTIME_MS = 20
SAMPLES = RATE * PTIME_MS // 1000  # 160 per packet
PT_PCMU = 0
PT_EVENT = 101
ULAW_SILENCE = 0xFF
_DTMF_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11,
               "A": 12, "B": 13, "C": 14, "D": 15}
_BIAS = 0x84
_CLIP = 32635


def ulaw_encode(pcm: bytes) -> bytes:
    """16-bit little-endian linear PCM to G.711 mu-law (ITU-T G.711, as Asterisk does)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    # Floor to 14 bits first, as the reference coder (and Asterisk's table) does.
    mag = np.minimum(np.abs(x >> 2) << 2, _CLIP) + _BIAS
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def ulaw_decode(data: bytes) -> bytes:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign, exponent, mantissa = u & 0x80, (u >> 4) & 0x07, u & 0x0F
    mag = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -mag, mag).astype("<i2").tobytes()


@dataclass(frozen=True, slots=True)
class Speech:
    at_s: float  # from the answer
    pcm: bytes  # 8 kHz 16-bit mono


@dataclass(frozen=True, slots=True)
class Digit:
    at_s: float
    digit: str
    ms: int = 200


@dataclass(frozen=True, slots=True)
class Packet:
    t: float  # seconds from the first packet
    payload: bytes  # the RTP packet


def _rtp(seq: int, ts: int, pt: int, payload: bytes, marker: bool, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


def rtp_stream(duration_s: float, speech: list[Speech], digits: list[Digit],
               ssrc: int = 0x7E1E0C5) -> list[Packet]:
    """Packets every 20 ms for `duration_s`; a digit replaces the audio while it lasts."""
    n = int(duration_s * 1000 / PTIME_MS)
    audio = np.zeros(n * SAMPLES, dtype="<i2")
    for s in speech:
        start = int(s.at_s * RATE)
        pcm = np.frombuffer(s.pcm, dtype="<i2")[: max(0, len(audio) - start)]
        audio[start:start + len(pcm)] = pcm
    events: dict[int, tuple[Digit, int]] = {}  # packet index -> (digit, index in event)
    for d in digits:
        first = int(d.at_s * 1000 / PTIME_MS)
        count = max(1, d.ms // PTIME_MS)
        for k in range(count + 3):  # + three end packets (RFC 4733 2.5.1.4)
            events[first + k] = (d, k)
    packets: list[Packet] = []
    seq = 1
    for i in range(n):
        t = i * PTIME_MS / 1000
        if i in events:
            d, k = events[i]
            count = max(1, d.ms // PTIME_MS)
            start_ts = (i - k) * SAMPLES
            end = k >= count
            duration = SAMPLES * (count if end else k + 1)
            payload = struct.pack("!BBH", _DTMF_CODES[d.digit], (0x80 if end else 0) | 10,
                                  duration)
            packets.append(Packet(t, _rtp(seq, start_ts, PT_EVENT, payload, k == 0, ssrc)))
        else:
            frame = audio[i * SAMPLES:(i + 1) * SAMPLES].tobytes()
            packets.append(Packet(t, _rtp(seq, i * SAMPLES, PT_PCMU, ulaw_encode(frame),
                                          i == 0, ssrc)))
        seq += 1
    return packets


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(payload: bytes, sport: int, dport: int, ident: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    src = dst = bytes([127, 0, 0, 1])
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0x4000, 64, 17,
                     0, src, dst)
    ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
    ether = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00"
    return ether + ip + udp


def write_pcap(path: Path, packets: list[Packet], sport: int = 40000,
               dport: int = 20000) -> None:
    """A classic libpcap file, Ethernet link type, every packet to one UDP port (SIPp
    maps the lowest destination port of the capture onto the peer's RTP port)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, p in enumerate(packets):
        data = _frame(p.payload, sport, dport, i)
        sec, usec = int(p.t), round((p.t - int(p.t)) * 1_000_000)
        out.append(struct.pack("<IIII", sec, usec, len(data), len(data)) + data)
    path.write_bytes(b"".join(out))


def read_pcap_rtp(path: Path) -> list[tuple[float, bytes]]:
    """(time, RTP packet) for every packet of a pcap written by write_pcap (for tests)."""
    data = path.read_bytes()
    pos, out = 24, []
    while pos < len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, pos)
        frame = data[pos + 16:pos + 16 + incl]
        out.append((sec + usec / 1e6, frame[14 + 20 + 8:]))
        pos += 16 + incl
    return out
