"""An inbound call through the real trunk: SIPp dials the DID, the dialplan announces the
call over AMI, the inbound campaign's agent answers."""

from __future__ import annotations

import asyncio
import secrets
import struct
import uuid
from pathlib import Path

from asterisk_conf import PbxAddress
from daemon import REPO, Daemon
from evidence import says, show, turns_of
from procs import Asterisk, Pbx, free_ports, sipp_caller, wait_until
from pydantic import SecretStr

from televox_pbx.ami.client import AmiClient
from televox_pbx.app_ports import AmiTransfer
from televox_pbx.config.campaign import TransferConfig
from televox_pbx.config.settings import AmiSettings

SIPP_DIR = Path(__file__).resolve().parent / "sipp"

CALLER_NATIONAL = "2125550199"  # as the provider sends it
CALLER_E164 = "+12125550199"


def test_inbound_call_is_answered_and_the_opt_out_lands_on_dnc_in_e164(
        daemon: Daemon, pbx: Pbx) -> None:
    sip_port, media_port = free_ports(2)
    caller = sipp_caller(pbx.sipp, pbx.run_dir / "sipp", SIPP_DIR / "caller.xml",
                         pbx.address, did="15550100200", caller=CALLER_NATIONAL,
                         sip_port=sip_port, media_port=media_port)
    caller.start()
    try:
        assert caller.wait(60) == 0, caller.out.read_text(errors="replace")[-2000:]
    finally:
        caller.stop()

    def inbound() -> list[dict[str, object]] | None:
        rows = daemon.rows("SELECT * FROM call_attempts WHERE direction = 'inbound'")
        return rows if rows and rows[0]["status"] not in ("answered", "intent") else None
    [call] = wait_until("the inbound call to be stored", inbound, 30)  # type: ignore[misc]
    assert call["status"] == "completed", call
    turns = daemon.transcript(str(call["id"]))
    agent, callee = turns_of(turns, "agent"), turns_of(turns, "callee")
    assert agent and says(agent[0]["text"], "this is Ava, an AI assistant"), show(turns)
    assert callee, show(turns)
    assert CALLER_E164 in daemon.on_dnc(), (
        f"DNC holds {sorted(daemon.on_dnc())}, not the caller in E.164")


class _AudioSocketStub:
    """The daemon's side of AudioSocket, no more: takes the call's UUID, keeps silence
    flowing (AudioSocket() leaves after 2 s without audio), notes when Asterisk leaves."""

    def __init__(self) -> None:
        self.call_ids: asyncio.Queue[str] = asyncio.Queue()
        self.left = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        kind, size = struct.unpack(">BH", await reader.readexactly(3))
        assert kind == 0x01, kind
        self.call_ids.put_nowait(str(uuid.UUID(bytes=await reader.readexactly(size))))

        async def silence() -> None:
            while True:
                writer.write(b"\x10\x01\x40" + bytes(320))
                await writer.drain()
                await asyncio.sleep(0.02)
        feeder = asyncio.create_task(silence())
        try:
            while True:
                kind, size = struct.unpack(">BH", await reader.readexactly(3))
                await reader.readexactly(size)
                if kind == 0x00:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.left.set()
            feeder.cancel()
            writer.close()


async def test_an_inbound_call_is_transferred_by_its_call_id(
        tools: tuple[Path, Path, str], run_dir: Path) -> None:
    """The shipped [televox-inbound] dialplan names the call with UUID(); the channel's
    Uniqueid is Asterisk's own. The transfer port must still find and redirect it. A
    Local channel runs the dialplan (no SIP, no models: a few seconds)."""
    binary, prefix, _ = tools
    sip, ami, audiosocket, far = free_ports(4)
    address = PbxAddress(sip_port=sip, ami_port=ami, audiosocket_port=audiosocket,
                         far_end_port=far, secret=secrets.token_hex(24))
    asterisk = Asterisk(binary, prefix, REPO / "asterisk", run_dir / "asterisk-transfer",
                        address)
    stub = _AudioSocketStub()
    server = await asyncio.start_server(stub.handle, address.host, audiosocket)
    client = AmiClient(AmiSettings(host=address.host, port=ami), secret=SecretStr(
        address.secret), action_timeout_s=10.0)
    try:
        await asyncio.to_thread(asterisk.start)
        asterisk.rx("dialplan add extension 100,1,Wait(20) into televox-test-agents")
        await client.start()
        await client.send_action({"Action": "Originate", "Channel": "Local/s@televox-inbound",
                                  "Application": "Wait", "Data": "30", "Async": "true"})
        call_id = await asyncio.wait_for(stub.call_ids.get(), 20)
        await AmiTransfer(client).transfer(
            call_id, TransferConfig(context="televox-test-agents", exten="100"))
        await asyncio.wait_for(stub.left.wait(), 20)
        where = {(m.get("Context"), m.get("Exten")) for m in await client.status()}
        assert ("televox-test-agents", "100") in where, where
    finally:
        await client.close()
        server.close()
        await asyncio.to_thread(asterisk.stop)


def test_each_number_is_answered_by_its_own_agent(daemon: Daemon, pbx: Pbx) -> None:
    """Two numbers, two agents: each caller hears the first message of the agent of the
    number it dialled."""
    from conftest import INBOUND_AGENTS

    heard: dict[str, str] = {}
    for number, (_, _, first) in INBOUND_AGENTS.items():
        sip_port, media_port = free_ports(2)
        caller_num = f"21255501{len(heard) + 50}"
        caller = sipp_caller(pbx.sipp, pbx.run_dir / "sipp", SIPP_DIR / "caller.xml",
                             pbx.address, did=number.removeprefix("+"), caller=caller_num,
                             sip_port=sip_port, media_port=media_port)
        caller.start()
        try:
            assert caller.wait(60) == 0, caller.out.read_text(errors="replace")[-2000:]
        finally:
            caller.stop()

        def stored(caller_num: str = caller_num) -> list[dict[str, object]] | None:
            rows = daemon.rows("SELECT * FROM call_attempts WHERE direction = 'inbound' "
                               "AND phone = ?", f"+1{caller_num}")
            return rows if rows and rows[0]["status"] not in ("answered", "intent") else None
        [call] = wait_until(f"the call to {number} to be stored", stored, 30)  # type: ignore[misc]
        agent = turns_of(daemon.transcript(str(call["id"])), "agent")
        assert agent, f"no agent turn on the call to {number}"
        heard[number] = str(agent[0]["text"])
        assert says(heard[number], first), (number, heard[number])
    assert len(set(heard.values())) == 2
