"""Record the greeting set (bench/greeting_set.py) as heard through a real PBX.

The set-up of tests/real_pbx, without the daemon: a real Asterisk 22 configured from the
shipped asterisk/*.conf, a SIPp far end that answers and plays each greeting as RTP
(PCMU), and an AudioSocket server (the daemon's own) that takes what Asterisk streams at
the answer. Each call is originated over AMI into [televox-outbound] with TELEVOX_AMD=0,
exactly as the daemon does with `amd: stream`; the first `capture_s` seconds the server
received are written to bench/greetings/<name>.ulaw (G.711 mu-law, 8 kHz: what the trunk
carried; Asterisk's slin is its exact decoding, so nothing is lost).

Needs root (SIPp sends RTP through a raw socket) and Asterisk at TELEVOX_ASTERISK_PREFIX
(default ~/.cache/televox/asterisk-22.10.1).
Run: PYTHONPATH=.:bench:tests/real_pbx python bench/record_greetings.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import tempfile
import uuid
from pathlib import Path

import numpy as np
from asterisk_conf import PbxAddress  # tests/real_pbx
from greeting_set import GREETINGS, RATE, Renderer
from procs import (
    DEFAULT_PREFIX,
    Asterisk,
    Sipp,
    find_asterisk,
    find_sipp,
    free_ports,
    wait_udp_bound,
    wait_until,
)
from rtp_pcap import Speech, rtp_stream, ulaw_decode, ulaw_encode, write_pcap

from televox_pbx.audiosocket.server import AudioSocketServer
from televox_pbx.audiosocket.session import AudioIn, CallAudio
from televox_pbx.clock import SystemClock

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "greetings"
FIRST_CODE = 40


def far_end_xml(template: str, codes: list[str], bye_ms: int) -> str:
    """tests/real_pbx/sipp/far_end.xml plus one answering code per greeting."""
    eregs = "".join(
        f'      <ereg regexp="^INVITE sip:\\+?[0-9]*{c}@" search_in="msg" check_it="false" '
        f'assign_to="is{c}"/>\n' for c in codes)
    jumps = "".join(f'  <nop next="a{c}" test="is{c}"/>\n' for c in codes)
    labels = "".join(
        f'  <label id="a{c}"/>\n  <nop><action><exec play_pcap_audio="{c}.pcap"/></action>'
        f'</nop>\n  <recv request="BYE" timeout="{bye_ms}" ontimeout="hangup" '
        f'next="bye_received"/>\n\n' for c in codes)
    xml = re.sub(r'(      <ereg [^\n]*assign_to="is30"/>\n)', lambda m: m.group(1) + eregs,
                 template)
    xml = xml.replace('  <nop next="a30" test="is30"/>\n',
                      '  <nop next="a30" test="is30"/>\n' + jumps)
    return xml.replace("  <!-- Asterisk hung up: answer its BYE. -->",
                       labels + "  <!-- Asterisk hung up: answer its BYE. -->")


async def originate(address: PbxAddress, phone: str, call_id: str) -> None:
    reader, writer = await asyncio.open_connection(address.host, address.ami_port)
    await reader.readline()  # banner

    async def action(fields: list[tuple[str, str]]) -> str:
        writer.write("".join(f"{k}: {v}\r\n" for k, v in fields).encode() + b"\r\n")
        await writer.drain()
        while True:  # skip events until the response
            block = (await reader.readuntil(b"\r\n\r\n")).decode(errors="replace")
            if block.startswith("Response:"):
                return block

    reply = await action([("Action", "Login"), ("Username", "televox"),
                          ("Secret", address.secret), ("Events", "off")])
    assert "Success" in reply, reply
    reply = await action([
        ("Action", "Originate"), ("Channel", f"PJSIP/{phone}@televox-trunk"),
        ("Context", "televox-outbound"), ("Exten", "s"), ("Priority", "1"),
        ("Async", "true"), ("Timeout", "20000"), ("CallerID", "+15550100000"),
        ("Variable", f"TELEVOX_CALL_ID={call_id}"), ("Variable", "TELEVOX_AMD=0")])
    assert "Success" in reply, reply
    writer.close()


async def record(address: PbxAddress, server: AudioSocketServer, phone: str,
                 capture_s: float) -> bytes:
    call_id = str(uuid.uuid4())
    frames: list[bytes] = []
    done = asyncio.Event()

    async def handle(call: CallAudio) -> None:
        heard = 0.0
        async for ev in call.incoming():
            if isinstance(ev, AudioIn):
                frames.append(ev.pcm)
                heard += len(ev.pcm) / (2 * ev.sample_rate)
                if heard >= capture_s:
                    break
        await call.hangup()
        done.set()

    server.expect(call_id, handle)
    await originate(address, phone, call_id)
    await asyncio.wait_for(done.wait(), capture_s + 30)
    return b"".join(frames)


async def record_all(address: PbxAddress, phones: dict[str, str], capture_s: float,
                     parallel: int) -> dict[str, bytes]:
    server = AudioSocketServer(SystemClock(), host=address.host, port=address.audiosocket_port)
    await server.start()
    gate = asyncio.Semaphore(parallel)

    async def one(name: str, phone: str) -> tuple[str, bytes]:
        async with gate:
            return name, await record(address, server, phone, capture_s)

    try:
        got = await asyncio.gather(*(one(n, p) for n, p in phones.items()))
    finally:
        await server.close()
    return dict(got)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--capture-s", type=float, default=8.0)
    ap.add_argument("--parallel", type=int, default=4)
    args = ap.parse_args()
    prefix = Path(os.environ.get("TELEVOX_ASTERISK_PREFIX") or DEFAULT_PREFIX)
    binary = find_asterisk(prefix, REPO.parent / "shared" / "asterisk" / "build.sh")
    sipp = find_sipp()
    run = Path(tempfile.mkdtemp(prefix="tvx-gr-"))
    sip, ami, audiosocket, far, media = free_ports(5)
    address = PbxAddress(sip_port=sip, ami_port=ami, audiosocket_port=audiosocket,
                         far_end_port=far, secret=secrets.token_hex(24))
    renderer = Renderer()
    sipp_dir = run / "sipp"
    sipp_dir.mkdir()
    codes = {g.name: str(FIRST_CODE + i) for i, g in enumerate(GREETINGS)}
    for g in GREETINGS:
        items = [Speech(0.0, renderer.render(g))]
        write_pcap(sipp_dir / f"{codes[g.name]}.pcap",
                   rtp_stream(args.capture_s + 4.0, items, []))
    template = (REPO / "tests" / "real_pbx" / "sipp" / "far_end.xml").read_text()
    for code in re.findall(r'play_pcap_audio="(\d+)\.pcap"', template):  # SIPp loads all
        write_pcap(sipp_dir / f"{code}.pcap", rtp_stream(1.0, [], []))
    (sipp_dir / "greetings.xml").write_text(
        far_end_xml(template, list(codes.values()), int((args.capture_s + 4) * 1000)))
    far_end = Sipp(sipp, sipp_dir, "far-end", [
        "-sf", "greetings.xml", "-i", address.host, "-p", str(far), "-mi", address.host,
        "-mp", str(media), "-aa", "-max_recv_loops", "1000"])
    asterisk = Asterisk(binary, prefix, REPO / "asterisk", run / "asterisk", address)
    try:
        far_end.start()
        wait_udp_bound(far)
        asterisk.start()
        asterisk.rx("pjsip qualify televox-trunk")
        wait_until("the trunk to qualify",
                   lambda: " Avail " in asterisk.rx("pjsip show contacts", check=False), 20)
        phones = {name: f"+1212555{i:02d}{code}" for i, (name, code) in
                  enumerate(codes.items())}
        got = asyncio.run(record_all(address, phones, args.capture_s, args.parallel))
    finally:
        asterisk.stop()
        far_end.stop()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, pcm in got.items():
        x = np.frombuffer(pcm, dtype="<i2")
        data = ulaw_encode(pcm)
        lossy = int(np.count_nonzero(np.frombuffer(ulaw_decode(data), dtype="<i2") != x))
        (OUT / f"{name}.ulaw").write_bytes(data)
        print(f"{name:18s} {len(x) / RATE:5.2f} s  peak {int(np.abs(x).max()):5d}"
              f"  samples changed by mu-law: {lossy}")
    print(f"{len(got)} greetings in {OUT} (run dir {run})")


if __name__ == "__main__":
    main()
