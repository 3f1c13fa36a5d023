"""Replay the real Asterisk 22 AMI captures through the codec (see the fixtures README)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from televox_pbx.ami.codec import AmiBanner, AmiMessage, AmiParser, encode_message
from televox_pbx.ami.fixtures import (
    Direction,
    FixtureFormatError,
    default_fixture_dir,
    load_transcript,
    parse_side,
    parse_transcript,
    sent_originates,
    timed_messages,
    wire_bytes,
)

FIXTURES = default_fixture_dir(Path(__file__).resolve().parents[1])
ALL = sorted(p.name for p in FIXTURES.glob("*.raw.txt"))

# file -> (OriginateResponse Response, Reason, Hangup Cause or None, TechCause or None)
TABLE: dict[str, tuple[str, str, str | None, str | None]] = {
    "success.raw.txt": ("Success", "4", "16", None),
    "success-channelid.raw.txt": ("Success", "4", "16", None),
    "amd.raw.txt": ("Success", "4", "16", None),
    "busy.raw.txt": ("Failure", "0", "17", "486"),
    "503.raw.txt": ("Failure", "0", "34", "503"),
    "404.raw.txt": ("Failure", "0", "1", "404"),
    "noanswer.raw.txt": ("Failure", "3", "19", "480"),
    "dead.raw.txt": ("Failure", "0", "18", "408"),
    "noendpoint.raw.txt": ("Failure", "0", None, None),
    "farend-bye.raw.txt": ("Success", "4", "0", None),
    "amd-human.raw.txt": ("Success", "4", "16", None),
    "amd-voicemail.raw.txt": ("Success", "4", "16", None),
}

pytestmark = pytest.mark.skipif(not ALL, reason=f"no AMI captures under {FIXTURES}")


def test_table_covers_every_capture() -> None:
    assert set(TABLE) == set(ALL)


def _expected_counts(path: Path) -> Counter[str]:
    """Count received messages by their first line, straight from the text."""
    text = path.read_text()
    firsts = re.findall(r"^### << [^\n]*\n([^\n]*)\n", text, flags=re.M)
    return Counter(line for line in firsts if not line.startswith("Asterisk Call Manager"))


def _first_lines(msgs: list[AmiMessage]) -> Counter[str]:
    return Counter(f"{m.fields[0][0]}: {m.fields[0][1]}" for m in msgs)


@pytest.mark.parametrize("name", ALL)
def test_received_stream_parses_to_every_message(name: str) -> None:
    path = FIXTURES / name
    blocks = load_transcript(path)
    received = [b for b in blocks if b.direction == Direction.RECEIVED]
    assert received[0].wire.startswith(b"Asterisk Call Manager/")
    data = wire_bytes(blocks)
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF on the wire, as Asterisk sends

    whole = AmiParser().feed(data)
    assert isinstance(whole[0], AmiBanner) and whole[0].text.startswith("Asterisk Call Manager")
    msgs = [m for m in whole if isinstance(m, AmiMessage)]
    assert _first_lines(msgs) == _expected_counts(path)
    assert len(msgs) == len(received) - 1  # one message per block after the banner

    # Byte by byte, and in uneven chunks, gives the same messages.
    p = AmiParser()
    bytewise = [item for i in range(len(data)) for item in p.feed(data[i:i + 1])]
    assert bytewise == whole
    p = AmiParser()
    chunked = [item for i in range(0, len(data), 977) for item in p.feed(data[i:i + 977])]
    assert chunked == whole

    # Each message re-encodes to the exact bytes of its block.
    for block, msg in zip(received[1:], msgs, strict=True):
        assert encode_message(msg) == block.wire


@pytest.mark.parametrize("name", ALL)
def test_key_fields_match_the_readme_table(name: str) -> None:
    response, reason, cause, tech = TABLE[name]
    blocks = load_transcript(FIXTURES / name)
    [originate] = sent_originates(blocks)
    msgs = parse_side(blocks, Direction.RECEIVED)
    mine = [m for m in msgs if m.event == "OriginateResponse"
            and m.action_id == originate.action_id]
    assert len(mine) == 1
    assert mine[0].response == response
    assert mine[0].get("Reason") == reason
    uuid = originate.variables()["UUID"]
    if originate.get("ChannelId") == uuid:
        assert mine[0].get("Uniqueid") == uuid
    elif response == "Failure":
        assert mine[0].get("Uniqueid") == "<unknown>"
    hangups = [m for m in msgs if m.event == "Hangup"]
    if cause is None:
        assert hangups == []
        assert not any(m.event in ("Newchannel", "Newstate") for m in msgs)
        return
    channel = _channel_uniqueid(msgs, uuid)
    [hangup] = [m for m in hangups if m.get("Uniqueid") == channel]
    assert hangup.get("Cause") == cause
    assert hangup.get("TechCause") == tech


def _channel_uniqueid(msgs: list[AmiMessage], uuid: str) -> str:
    for m in msgs:
        if m.event == "VarSet" and m.get("Variable") == "UUID" and m.get("Value") == uuid:
            uid = m.get("Uniqueid")
            assert uid is not None
            return uid
    raise AssertionError("no VarSet UUID for the call")


def test_amd_user_event_fields() -> None:
    msgs = parse_side(load_transcript(FIXTURES / "amd.raw.txt"), Direction.RECEIVED)
    [ev] = [m for m in msgs if m.event == "UserEvent" and m.get("UserEvent") == "TeleVoxAMD"]
    assert ev.get("AMDSTATUS") == "MACHINE"
    assert ev.get("AMDCAUSE") == "LONGGREETING-1500-1500"
    # AppData of the UserEvent's Newexten has colons inside the value.
    [app] = [m for m in msgs if m.event == "Newexten" and m.get("Application") == "UserEvent"
             and "AMDSTATUS" in (m.get("AppData") or "")]
    assert (app.get("AppData") or "").startswith("TeleVoxAMD,UUID: ")


def test_farend_bye_soft_hangup_carries_16_but_hangup_0() -> None:
    msgs = parse_side(load_transcript(FIXTURES / "farend-bye.raw.txt"), Direction.RECEIVED)
    [soft] = [m for m in msgs if m.event == "SoftHangupRequest"]
    [hangup] = [m for m in msgs if m.event == "Hangup"]
    assert soft.get("Cause") == "16"
    assert (hangup.get("Cause"), hangup.get("Cause-txt")) == ("0", "Unknown")


def test_sent_side_and_timestamps() -> None:
    blocks = load_transcript(FIXTURES / "success.raw.txt")
    sent = parse_side(blocks, Direction.SENT)
    assert [m.action for m in sent] == ["Login", "Originate", "Logoff"]
    assert sent[1].getall("Variable") == ["UUID=3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"]
    times = [b.at_s for b in blocks]
    assert times == sorted(times) and times[-1] == pytest.approx(14.016)
    timed = timed_messages(blocks)
    assert len(timed) == len(blocks)


def test_loader_rejects_text_before_the_first_header() -> None:
    with pytest.raises(FixtureFormatError, match=r"x\.raw\.txt:1"):
        parse_transcript("Event: A\n", name="x.raw.txt")


def test_loader_converts_lf_to_crlf() -> None:
    blocks = parse_transcript("### << +  0.000s\nAsterisk Call Manager/1.0\n"
                              "### << +  1.500s\nEvent: A\nK: v\n\n")
    assert [b.wire for b in blocks] == [b"Asterisk Call Manager/1.0\r\n",
                                        b"Event: A\r\nK: v\r\n\r\n"]
    assert blocks[1].at_s == 1.5
