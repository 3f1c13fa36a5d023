"""AMI codec: every case parsed whole, byte by byte, and with trailing data (h11 style)."""

from __future__ import annotations

import pytest

from televox_pbx.ami.codec import (
    DEFAULT_MAX_MESSAGE_BYTES,
    END_COMMAND,
    RAW,
    AmiBanner,
    AmiMessage,
    AmiParser,
    AmiProtocolError,
    encode,
    encode_banner,
    encode_message,
)

Item = AmiBanner | AmiMessage
TRAILER = b"Event: Trailer\r\nKey: value"  # an incomplete next message


def feed_whole(data: bytes, *, expect_banner: bool = True) -> tuple[list[Item], AmiParser]:
    p = AmiParser(expect_banner=expect_banner)
    return p.feed(data), p


def feed_bytewise(data: bytes, *, expect_banner: bool = True) -> list[Item]:
    p = AmiParser(expect_banner=expect_banner)
    out: list[Item] = []
    for i in range(len(data)):
        out += p.feed(data[i:i + 1])
    return out


def three_ways(data: bytes, expected: list[Item], *, expect_banner: bool = True) -> None:
    whole, _ = feed_whole(data, expect_banner=expect_banner)
    assert whole == expected
    assert feed_bytewise(data, expect_banner=expect_banner) == expected
    with_trailer, p = feed_whole(data + TRAILER, expect_banner=expect_banner)
    assert with_trailer == expected
    assert p.buffered == len(TRAILER)
    # ... and the trailing message completes once its blank line arrives.
    assert p.feed(b"\r\n\r\n") == [AmiMessage((("Event", "Trailer"), ("Key", "value")))]


def msg(*pairs: tuple[str, str]) -> AmiMessage:
    return AmiMessage(tuple(pairs))


BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def test_banner_then_message() -> None:
    three_ways(BANNER + b"Response: Success\r\nActionID: login\r\n\r\n",
               [AmiBanner("Asterisk Call Manager/11.0.0"),
                msg(("Response", "Success"), ("ActionID", "login"))])


def test_banner_with_bare_lf() -> None:
    three_ways(b"Asterisk Call Manager/9.0.0\nEvent: A\n\n",
               [AmiBanner("Asterisk Call Manager/9.0.0"), msg(("Event", "A"))])


@pytest.mark.parametrize("data", [
    b"Event: A\r\nX: 1\r\n\r\n",
    b"Event: A\nX: 1\n\n",
    b"Event: A\r\nX: 1\n\r\n",
    b"Event: A\nX: 1\r\n\n",
])
def test_crlf_and_bare_lf_framing(data: bytes) -> None:
    three_ways(data, [msg(("Event", "A"), ("X", "1"))], expect_banner=False)


def test_stray_blank_lines_between_messages_are_ignored() -> None:
    three_ways(b"\r\n\r\nEvent: A\r\n\r\n\r\n\nEvent: B\r\n\r\n",
               [msg(("Event", "A")), msg(("Event", "B"))], expect_banner=False)


def test_repeated_keys_kept_in_order() -> None:
    data = (b"Event: Newchannel\r\nChanVariable: A=1\r\nChanVariable: B=x=y\r\n"
            b"Variable: UUID=abc\r\nVariable: FOO=\r\n\r\n")
    expected = msg(("Event", "Newchannel"), ("ChanVariable", "A=1"), ("ChanVariable", "B=x=y"),
                   ("Variable", "UUID=abc"), ("Variable", "FOO="))
    three_ways(data, [expected], expect_banner=False)
    assert expected.getall("chanvariable") == ["A=1", "B=x=y"]
    assert expected.variables("ChanVariable") == {"A": "1", "B": "x=y"}
    assert expected.variables() == {"UUID": "abc", "FOO": ""}


def test_values_with_colons_and_empty_values() -> None:
    data = (b"Event: Newexten\r\nAppData: TeleVoxAMD,UUID: abc,AMDSTATUS: MACHINE\r\n"
            b"AccountCode: \r\nEventTV: 2026-11-22T13:02:09.945+0000\r\nTight:value\r\n\r\n")
    three_ways(data, [msg(("Event", "Newexten"),
                          ("AppData", "TeleVoxAMD,UUID: abc,AMDSTATUS: MACHINE"),
                          ("AccountCode", ""), ("EventTV", "2026-11-22T13:02:09.945+0000"),
                          ("Tight", "value"))], expect_banner=False)


def test_non_utf8_bytes_survive_a_round_trip() -> None:
    data = b"Event: UserEvent\r\nCallerIDName: Jos\xe9 \xff\xfe\r\nK\xe9y: v\r\n\r\n"
    [m] = feed_whole(data, expect_banner=False)[0]
    assert isinstance(m, AmiMessage)
    assert m.get("CallerIDName") == "Jos\udce9 \udcff\udcfe"
    assert encode_message(m) == data
    three_ways(data, [m], expect_banner=False)


def test_utf8_text_decoded() -> None:
    three_ways("Event: A\r\nName: Zoë 名前\r\n\r\n".encode(),
               [msg(("Event", "A"), ("Name", "Zoë 名前"))], expect_banner=False)


def test_legacy_command_output_follows() -> None:
    data = (b"Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\n"
            b"Channel              Location             State   Application(Data)\n"
            b"PJSIP/trunk-00000001 s@televox-outbound:3 Up      AudioSocket(x)\n"
            b"\n"
            b"1 active channel\n"
            b"--END COMMAND--\r\n\r\n")
    expected = msg(("Response", "Follows"), ("Privilege", "Command"), ("ActionID", "7"),
                   (RAW, "Channel              Location             State   Application(Data)"),
                   (RAW, "PJSIP/trunk-00000001 s@televox-outbound:3 Up      AudioSocket(x)"),
                   (RAW, ""), (RAW, "1 active channel"), (RAW, END_COMMAND))
    three_ways(data, [expected], expect_banner=False)
    assert expected.output[-1] == "1 active channel"
    assert expected.output[2] == ""


def test_modern_command_output() -> None:
    data = (b"Response: Success\r\nMessage: Command output follows\r\n"
            b"Output: a: b\r\nOutput: \r\n\r\n")
    [m] = feed_whole(data, expect_banner=False)[0]
    assert isinstance(m, AmiMessage)
    assert m.output == ["a: b", ""]
    three_ways(data, [m], expect_banner=False)


def test_line_that_is_not_a_header_is_kept_raw() -> None:
    data = b"Event: Odd\r\nno colon here\r\n: empty key\r\nsp ace: x\r\n\r\n"
    expected = msg(("Event", "Odd"), (RAW, "no colon here"), (RAW, ": empty key"),
                   (RAW, "sp ace: x"))
    three_ways(data, [expected], expect_banner=False)
    assert encode_message(expected) == data


def test_get_is_case_insensitive_and_defaults() -> None:
    m = msg(("Event", "Hangup"), ("Uniqueid", "1.2"))
    assert m.get("uniqueid") == "1.2"
    assert m.get("UNIQUEID") == "1.2"
    assert m.get("Cause") is None
    assert m.get("Cause", "0") == "0"
    assert "Uniqueid" in m and "Cause" not in m
    assert m.event == "Hangup" and m.response is None and m.action_id is None


def test_bad_banner_is_a_protocol_error() -> None:
    p = AmiParser()
    with pytest.raises(AmiProtocolError):
        p.feed(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(AmiProtocolError):  # dead for good
        p.feed(b"Event: A\r\n\r\n")


def test_endless_banner_is_capped() -> None:
    p = AmiParser()
    with pytest.raises(AmiProtocolError):
        for _ in range(100):
            p.feed(b"x" * 100)


def test_huge_message_is_capped_whole_and_bytewise() -> None:
    body = b"Event: Big\r\n" + b"Variable: X=" + b"y" * 2000 + b"\r\n\r\n"
    with pytest.raises(AmiProtocolError):
        AmiParser(expect_banner=False, max_message_bytes=1000).feed(body)
    p = AmiParser(expect_banner=False, max_message_bytes=1000)
    with pytest.raises(AmiProtocolError):
        for i in range(len(body)):
            p.feed(body[i:i + 1])
    assert i <= 1001


def test_endless_line_without_newline_is_capped() -> None:
    p = AmiParser(expect_banner=False, max_message_bytes=4096)
    with pytest.raises(AmiProtocolError):
        for _ in range(10):
            p.feed(b"a" * 1000)
    assert p.buffered == 0  # the buffer is released


def test_endless_follows_without_end_command_is_capped() -> None:
    p = AmiParser(expect_banner=False, max_message_bytes=4096)
    p.feed(b"Response: Follows\r\n")
    with pytest.raises(AmiProtocolError):
        for _ in range(1000):
            p.feed(b"line\n\n")


def test_many_messages_in_one_feed_are_not_capped_as_one() -> None:
    one = b"Event: A\r\nX: " + b"1" * 100 + b"\r\n\r\n"
    items = AmiParser(expect_banner=False, max_message_bytes=500).feed(one * 100)
    assert len(items) == 100


def test_default_cap_allows_large_real_messages() -> None:
    value = "v" * (DEFAULT_MAX_MESSAGE_BYTES // 2)
    data = encode([("Event", "Big"), ("Value", value)])
    [m] = feed_whole(data, expect_banner=False)[0]
    assert isinstance(m, AmiMessage) and m.get("Value") == value


@pytest.mark.parametrize("fields", [
    [("Action", "Originate"), ("Channel", "PJSIP/15550001@trunk"), ("Variable", "UUID=a=b"),
     ("Variable", "X=y"), ("CallerID", '"TeleVox" <15550000>'), ("Empty", "")],
    [("Event", "VarSet"), ("Value", "  minrxlost=000.000000;  maxrxlost=1")],
    [("Event", "X"), ("Data", "a: b: c")],
])
def test_encode_then_parse_round_trip(fields: list[tuple[str, str]]) -> None:
    data = encode(fields)
    assert data.endswith(b"\r\n\r\n")
    three_ways(data, [AmiMessage(tuple(fields))], expect_banner=False)
    three_ways(encode_banner() + data,
               [AmiBanner("Asterisk Call Manager/9.0.0"), AmiMessage(tuple(fields))])


@pytest.mark.parametrize("fields", [
    [("Action", "Ping\r\nAction: Originate")],
    [("Bad\nKey", "x")],
    [("Bad:Key", "x")],
    [("Bad Key", "x")],
    [("Event", "x"), (RAW, "")],
])
def test_encode_refuses_what_would_split_the_message(fields: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        encode(fields)


def test_build_keeps_order() -> None:
    m = AmiMessage.build(("Action", "Originate"), ("Variable", "A=1"), ActionID="x")
    assert m.fields == (("Action", "Originate"), ("Variable", "A=1"), ("ActionID", "x"))
    assert m.action == "Originate" and m.action_id == "x"
    assert m.as_dict()["ActionID"] == "x"
