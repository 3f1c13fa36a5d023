"""The real-PBX tier's own parts, checked without Asterisk: the rendered configuration
changes only the lines a user edits, the far-end table matches the SIPp scenario, and the
RTP the far ends play is well-formed G.711 with RFC 4733 events."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
from asterisk_conf import SHIPPED, PbxAddress, RenderError, pjsip_conf, render
from far_end import CALLEES
from rtp_pcap import (
    PT_EVENT,
    PT_PCMU,
    Digit,
    Speech,
    read_pcap_rtp,
    rtp_stream,
    ulaw_decode,
    ulaw_encode,
    write_pcap,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ADDRESS = PbxAddress(sip_port=15060, ami_port=15038, audiosocket_port=19092,
                     far_end_port=15070, secret="s3cret")


def test_rendering_changes_only_the_lines_a_user_edits(tmp_path: Path) -> None:
    conf = render(REPO / "asterisk", tmp_path, Path("/opt/asterisk"), ADDRESS)
    etc = conf.parent
    changed: dict[str, list[str]] = {}
    for name in SHIPPED:
        shipped = (REPO / "asterisk" / name).read_text(encoding="utf-8").splitlines()
        rendered = (etc / name).read_text(encoding="utf-8").splitlines()
        assert len(shipped) == len(rendered), name
        changed[name] = [new for old, new in zip(shipped, rendered, strict=True) if old != new]
    assert changed["amd.conf"] == []
    assert changed["manager.conf"] == ["port = 15038", "secret = s3cret"]
    assert changed["extensions.conf"] == ["TELEVOX_AUDIOSOCKET=127.0.0.1:19092"]
    assert "contact = sip:127.0.0.1:15070" in changed["pjsip.conf"]
    assert "bind = 127.0.0.1:15060" in changed["pjsip.conf"]
    text = (etc / "pjsip.conf").read_text(encoding="utf-8")
    assert not re.search(r"^[^;]*(REPLACE_|CHANGE_ME)", text, flags=re.M)
    assert f"astetcdir => {etc}" in conf.read_text(encoding="utf-8")


def test_a_shipped_file_without_its_placeholder_is_refused() -> None:
    with pytest.raises(RenderError, match=r"pjsip\.conf"):
        pjsip_conf("[transport-udp]\nbind = 0.0.0.0:5061\n", ADDRESS)


def test_far_end_table_matches_the_sipp_scenario() -> None:
    xml = (HERE / "sipp" / "far_end.xml").read_text(encoding="utf-8")
    for code, callee in CALLEES.items():
        assert f'play_pcap_audio="{code}.pcap"' in xml, code
        m = re.search(rf'<label id="a{code}"/>.*?<recv request="BYE" timeout="(\d+)"', xml,
                      flags=re.S)
        assert m is not None and int(m.group(1)) == round(callee.hangup_s * 1000), code
        assert f'assign_to="is{code}"' in xml, code


def test_ulaw_round_trip_keeps_the_signal() -> None:
    t = np.arange(800) / 8000
    pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    back = np.frombuffer(ulaw_decode(ulaw_encode(pcm.tobytes())), dtype="<i2")
    assert np.max(np.abs(back.astype(int) - pcm.astype(int))) < 300
    assert ulaw_encode(bytes(2)) == b"\xff"  # silence


def test_stream_is_20ms_packets_with_a_dtmf_event_in_sequence(tmp_path: Path) -> None:
    speech = Speech(0.1, np.full(800, 3000, dtype="<i2").tobytes())
    path = tmp_path / "x.pcap"
    write_pcap(path, rtp_stream(1.0, [speech], [Digit(0.5, "9", ms=100)]))
    packets = read_pcap_rtp(path)
    assert len(packets) == 50
    assert [round(t, 2) for t, _ in packets[:3]] == [0.0, 0.02, 0.04]
    headers = [struct.unpack("!BBHII", p[:12]) for _, p in packets]
    assert [h[2] for h in headers] == list(range(1, 51))  # one sequence across both kinds
    events = [(i, h, packets[i][1][12:]) for i, h in enumerate(headers)
              if h[1] & 0x7F == PT_EVENT]
    assert [i for i, _, _ in events] == [25, 26, 27, 28, 29, 30, 31, 32]  # 5 + 3 end packets
    assert events[0][1][1] & 0x80  # marker on the first
    assert {h[3] for _, h, _ in events} == {25 * 160}  # one timestamp for the whole event
    digit, flags, duration = struct.unpack("!BBH", events[-1][2])
    assert (digit, flags & 0x80, duration) == (9, 0x80, 5 * 160)
    assert all(h[1] & 0x7F == PT_PCMU for i, h in enumerate(headers) if not 25 <= i <= 32)
