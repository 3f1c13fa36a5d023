"""AudioSocket codec: every case parsed whole, byte by byte, and with trailing data."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from televox_pbx.audiosocket.codec import (
    SAMPLE_RATES,
    AudioSocketProtocolError,
    ErrorCode,
    Frame,
    FrameParser,
    Kind,
    encode,
    encode_audio,
    encode_dtmf,
    encode_error,
    encode_hangup,
    encode_uuid,
)

CALL_ID = uuid.UUID("6f1c2a4e-9b7d-4c3e-8a15-2d9e0f4b7c61")


def parse_whole(data: bytes) -> list[Frame]:
    return FrameParser().feed(data)


def parse_bytewise(data: bytes) -> list[Frame]:
    p = FrameParser()
    out: list[Frame] = []
    for i in range(len(data)):
        out += p.feed(data[i:i + 1])
    assert p.pending == 0
    return out


def parse_with_trailing(data: bytes) -> list[Frame]:
    """The same frames come out when the next frame's first bytes follow them."""
    p = FrameParser()
    out = p.feed(data + b"\x10\x01")
    assert p.pending == 2
    return out


PARSERS = [parse_whole, parse_bytewise, parse_with_trailing]

CASES: list[tuple[str, bytes, list[Frame]]] = [
    ("uuid", bytes.fromhex("010010") + CALL_ID.bytes, [Frame(Kind.UUID, CALL_ID.bytes)]),
    ("hangup", b"\x00\x00\x00", [Frame(Kind.HANGUP, b"")]),
    ("dtmf", b"\x03\x00\x01#", [Frame(Kind.DTMF, b"#")]),
    ("audio320", b"\x10\x01\x40" + bytes(range(256)) + bytes(64),
     [Frame(Kind.AUDIO, bytes(range(256)) + bytes(64))]),
    ("audio480", b"\x10\x01\xe0" + b"\x01\x02" * 240, [Frame(Kind.AUDIO, b"\x01\x02" * 240)]),
    ("audio16k", b"\x12\x02\x80" + bytes(640), [Frame(Kind.AUDIO_16K, bytes(640))]),
    ("error-code", b"\xff\x00\x01\x02", [Frame(Kind.ERROR, b"\x02")]),
    ("error-empty", b"\xff\x00\x00", [Frame(Kind.ERROR, b"")]),
    ("sequence", encode_uuid(CALL_ID) + encode_audio(bytes(320)) + encode_dtmf("5")
     + encode_hangup(),
     [Frame(Kind.UUID, CALL_ID.bytes), Frame(Kind.AUDIO, bytes(320)), Frame(Kind.DTMF, b"5"),
      Frame(Kind.HANGUP, b"")]),
]


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize(("name", "data", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parses_three_ways(parse: object, name: str, data: bytes,
                           expected: list[Frame]) -> None:
    assert callable(parse)
    assert parse(data) == expected


def test_frame_accessors() -> None:
    uuid_frame, audio, dtmf, err = parse_whole(
        encode_uuid(CALL_ID) + encode_audio(bytes(480), Kind.AUDIO_24K) + encode_dtmf("*")
        + encode_error(ErrorCode.MEMORY))
    assert uuid_frame.uuid == CALL_ID
    assert audio.is_audio and audio.sample_rate == 24000
    assert dtmf.digit == "*" and not dtmf.is_audio and dtmf.sample_rate is None
    assert err.error_code == ErrorCode.MEMORY
    assert Frame(Kind.ERROR, b"").error_code is None
    with pytest.raises(ValueError):
        _ = audio.uuid
    with pytest.raises(ValueError):
        _ = audio.digit
    with pytest.raises(ValueError):
        _ = audio.error_code


def test_every_audio_kind_has_its_rate() -> None:
    assert [SAMPLE_RATES[Kind(k)] for k in range(0x10, 0x19)] == [
        8000, 12000, 16000, 24000, 32000, 44100, 48000, 96000, 192000]
    for kind, rate in SAMPLE_RATES.items():
        (frame,) = parse_whole(encode_audio(bytes(4), kind))
        assert frame.sample_rate == rate


@pytest.mark.parametrize(("name", "data"), [
    ("unknown kind", b"\x02\x00\x00"),
    ("unknown kind 0x19", b"\x19\x00\x02\x00\x00"),
    ("short uuid", b"\x01\x00\x0f" + bytes(15)),
    ("long uuid", b"\x01\x00\x11" + bytes(17)),
    ("empty dtmf", b"\x03\x00\x00"),
    ("two-byte dtmf", b"\x03\x00\x0212"),
    ("binary dtmf", b"\x03\x00\x01\x00"),
    ("odd audio", b"\x10\x00\x03abc"),
    ("garbage", b"GET / HTTP/1.1\r\n"),
])
def test_malformed_is_a_protocol_error(name: str, data: bytes) -> None:
    with pytest.raises(AudioSocketProtocolError):
        parse_whole(data)
    with pytest.raises(AudioSocketProtocolError):
        parse_bytewise(data)


def test_length_is_rejected_from_the_header_alone() -> None:
    p = FrameParser(max_payload=1000)
    assert p.feed(b"\x10\x03\xe8") == []  # 1000 is fine...
    p = FrameParser(max_payload=1000)
    with pytest.raises(AudioSocketProtocolError, match="exceeds"):
        p.feed(b"\x10\x03\xea")  # ...1002 is refused before any payload arrives


def test_parser_stays_dead_after_an_error() -> None:
    p = FrameParser()
    with pytest.raises(AudioSocketProtocolError):
        p.feed(b"\x7f\x00\x00")
    with pytest.raises(AudioSocketProtocolError):
        p.feed(encode_hangup())


def test_truncated_frame_is_pending() -> None:
    p = FrameParser()
    assert p.feed(encode_audio(bytes(320))[:100]) == []
    assert p.pending == 100


def test_64k_of_garbage_fails_fast() -> None:
    junk = bytes((i * 7 + 3) % 256 for i in range(65536))
    with pytest.raises(AudioSocketProtocolError):
        FrameParser().feed(junk)


def test_max_size_audio_frame() -> None:
    pcm = bytes(0xFFFE)
    (frame,) = parse_whole(encode_audio(pcm))
    assert frame.payload == pcm


def test_encoders_refuse_what_asterisk_would_refuse() -> None:
    with pytest.raises(ValueError):
        encode_audio(b"")
    with pytest.raises(ValueError):
        encode_audio(b"abc")
    with pytest.raises(ValueError):
        encode_audio(bytes(2), Kind.UUID)
    with pytest.raises(ValueError):
        encode_dtmf("x")
    with pytest.raises(ValueError):
        encode(Kind.AUDIO, bytes(0x10000))
    with pytest.raises(ValueError):
        encode_error(256)
    assert encode_hangup() == b"\x00\x00\x00"
    assert encode_audio(b"\x01\x00") == b"\x10\x00\x02\x01\x00"
    assert encode_uuid(str(CALL_ID)) == encode_uuid(CALL_ID)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048), st.integers(min_value=1, max_value=64))
def test_fuzz_only_protocol_errors(data: bytes, chunk: int) -> None:
    p = FrameParser()
    frames: list[Frame] = []
    try:
        for i in range(0, len(data), chunk):
            frames += p.feed(data[i:i + chunk])
    except AudioSocketProtocolError:
        return
    # Whatever parsed re-encodes to the bytes consumed.
    consumed = b"".join(encode(f.kind, f.payload) for f in frames)
    assert data.startswith(consumed)
    assert len(consumed) + p.pending == len(data)


frame_strategy = st.one_of(
    st.builds(lambda b: encode_audio(b + b"\0" * (len(b) % 2)), st.binary(min_size=1,
                                                                           max_size=600)),
    st.sampled_from("0123456789*#ABCD").map(encode_dtmf),
    st.uuids().map(encode_uuid),
    st.just(encode_hangup()),
    st.integers(0, 255).map(encode_error),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(frame_strategy, max_size=20), st.integers(min_value=1, max_value=700))
def test_fuzz_valid_streams_roundtrip_at_any_split(frames: list[bytes], chunk: int) -> None:
    data = b"".join(frames)
    p = FrameParser()
    parsed: list[Frame] = []
    for i in range(0, len(data), chunk):
        parsed += p.feed(data[i:i + chunk])
    assert [encode(f.kind, f.payload) for f in parsed] == frames
    assert p.pending == 0
