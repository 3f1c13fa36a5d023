"""Texts through a real Asterisk 22 (issue 16): our MESSAGE reaches a SIPp provider with
its body and From; a SIPp phone's STOP lands the number on the DNC list in E.164 (no call
and no text after it), START takes it back, and an ordinary reply is answered by the
local LLM. The PBX here is configured from the shipped asterisk/*.conf like the others,
with a far end that takes MESSAGEs; the SMS side runs in this process over AMI."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from asterisk_conf import PbxAddress
from daemon import REPO
from procs import Asterisk, Sipp, free_ports, wait_udp_bound
from pydantic import SecretStr

from televox_pbx.ami.client import AmiClient
from televox_pbx.campaigns import gate
from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.clock import SystemClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.settings import AmiSettings
from televox_pbx.sms.ami import AmiMessenger
from televox_pbx.sms.segments import measure
from televox_pbx.sms.service import Responder, SmsService
from televox_pbx.store import Store
from televox_pbx.store.campaigns import upsert_campaign

SIPP_DIR = Path(__file__).resolve().parent / "sipp"
CALLER_ID = "+15550100000"
ANN_NATIONAL, ANN = "2125550144", "+12125550144"
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass
class SmsPbx:
    asterisk: Asterisk
    far_end: Sipp
    address: PbxAddress
    sipp: str
    workdir: Path

    def texts(self) -> list[tuple[str, str]]:
        """(From header, body) of every MESSAGE the provider received."""
        out = []
        for msg in self.far_end.messages():
            first, _, sip = msg.partition("\n\n")
            if "message received" not in first or not sip.startswith("MESSAGE sip:"):
                continue
            head, _, body = sip.partition("\n\n")
            sender = re.search(r"^From:\s*(.*)$", head, flags=re.M | re.I)
            out.append((sender.group(1) if sender else "", body.strip()))
        return out

    def text_in(self, sender: str, body: str) -> None:
        sip_port, = free_ports(1)
        s = Sipp(self.sipp, self.workdir, f"sender-{secrets.token_hex(3)}", [
            f"{self.address.host}:{self.address.sip_port}", "-sf", "sms_sender.xml",
            "-s", CALLER_ID, "-key", "sender", sender, "-key", "text", body,
            "-i", self.address.host, "-p", str(sip_port), "-m", "1", "-l", "1"]).start()
        try:
            assert s.wait(30) == 0, s.out.read_text(errors="replace")[-2000:]
        finally:
            s.stop()


@pytest.fixture(scope="module")
def sms_pbx(tools: tuple[Path, Path, str], run_dir: Path) -> Iterator[SmsPbx]:
    binary, prefix, sipp = tools
    sip, ami, audiosocket, far = free_ports(4)
    address = PbxAddress(sip_port=sip, ami_port=ami, audiosocket_port=audiosocket,
                         far_end_port=far, secret=secrets.token_hex(24))
    workdir = run_dir / "sms"
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("sms_far_end.xml", "sms_sender.xml"):
        (workdir / name).write_bytes((SIPP_DIR / name).read_bytes())
    far_end = Sipp(sipp, workdir, "sms-far-end", [
        "-sf", "sms_far_end.xml", "-i", address.host, "-p", str(far), "-aa",
        "-max_recv_loops", "1000"])
    asterisk = Asterisk(binary, prefix, REPO / "asterisk", run_dir / "asterisk-sms", address)
    try:
        far_end.start()
        wait_udp_bound(far)
        asterisk.start()
        yield SmsPbx(asterisk, far_end, address, sipp, workdir)
    finally:
        asterisk.stop()
        far_end.stop()


def campaign() -> Campaign:
    return Campaign.model_validate({
        "name": "promo", "caller_id": CALLER_ID, "trunk": "televox-trunk",
        "channel": "sms", "sms": {"message": "Hi {{NAME}}, your Acme cleaning is due. "
                                             "Reply STOP to opt out."},
        "agent": {"persona_name": "Ava", "business": "Acme Dental",
                  "goal": "Book a cleaning appointment.",
                  "opening_line": "Hi, I'm Ava, an AI assistant at Acme Dental."},
        "calling_window": {"legal_override": True, "start": "00:00", "end": "23:59:59",
                           "weekdays": EVERY_DAY},
        "timezone_policy": {"source": "fixed", "fixed_zone": "UTC"},
        "pacing": {"calls_per_minute": 600, "max_concurrent": 2}})


@dataclass
class Side:
    store: Store
    sms: SmsService
    dialer: Dialer


@pytest.fixture
async def side(sms_pbx: SmsPbx, tmp_path: Path) -> AsyncIterator[Side]:
    store = await Store.open(tmp_path / "t.db")
    client = AmiClient(AmiSettings(port=sms_pbx.address.ami_port), port=sms_pbx.address.ami_port,
                       secret=SecretStr(sms_pbx.address.secret))
    await client.start()
    await client.wait_logged_in(20)
    sms = SmsService(store, AmiMessenger(client), SystemClock(), responder=_responder())
    client.subscribe(sms.on_event)
    task = asyncio.create_task(sms.run())
    dialer = Dialer(store, _NoCalls(), SystemClock())
    dialer.sms = sms
    try:
        yield Side(store, sms, dialer)
    finally:
        task.cancel()
        await client.close()
        await store.close()


def _responder() -> Responder:
    from televox_pbx.config.settings import ModelSettings
    from televox_pbx.sms.responder import LlmResponder
    from televox_pbx.voice.engines.holder import Engines

    models = Path(os.environ.get("TELEVOX_MODELS_DIR") or REPO / "var" / "models")
    return LlmResponder(Engines(ModelSettings(cache_dir=models)).llm())


class _NoCalls:
    async def originate(self, req: object) -> None:
        raise AssertionError("an SMS campaign must not place calls")


async def _until(what: str, check: object, timeout_s: float = 60.0) -> object:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await check() if callable(check) else None  # type: ignore[operator]
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.mark.models
async def test_texts_through_the_real_pbx(sms_pbx: SmsPbx, side: Side) -> None:
    cid = await upsert_campaign(side.store, campaign())
    await side.store.execute("UPDATE campaigns SET state = 'RUNNING' WHERE id = ?", (cid,))
    contact = await side.store.execute(
        "INSERT INTO contacts(campaign_id, name) VALUES (?, 'Ann')", (cid,))
    await side.store.execute("INSERT INTO contact_phones(contact_id, campaign_id, position,"
                             " e164) VALUES (?, ?, 1, ?)", (contact, cid, ANN))
    await side.dialer.tick()
    sent = await side.store.fetchone("SELECT status, reason FROM sms_messages")
    assert sent is not None and tuple(sent) == ("sent", None), tuple(sent or ())

    # 1. The provider receives our MESSAGE, From our caller ID, with the rendered body.
    async def first() -> list[tuple[str, str]]:
        return sms_pbx.texts()
    [(sender, body)] = await _until("our MESSAGE at the provider", first)  # type: ignore[misc]
    assert f"sip:{CALLER_ID}@" in sender
    assert body == "Hi Ann, your Acme cleaning is due. Reply STOP to opt out."

    # 2. STOP from the phone (national format): DNC in E.164, one confirmation, and no
    #    call or text to the number afterwards.
    sms_pbx.text_in(ANN_NATIONAL, "STOP")

    async def listed() -> bool:
        return await side.store.fetchone("SELECT 1 FROM dnc WHERE e164 = ? AND source ="
                                         " 'sms'", (ANN,)) is not None
    await _until("the STOP on the DNC list", listed)

    async def confirmed() -> bool:
        return len(sms_pbx.texts()) == 2
    await _until("the opt-out confirmation", confirmed)
    assert sms_pbx.texts()[1][1].startswith("You are unsubscribed")
    refused = await side.sms.send_single(campaign(), cid, ANN, "one more thing")
    assert refused.code == "dnc"
    decision = await gate.check(side.store, gate.GateContext(
        campaign=campaign(), phone=ANN, now=SystemClock().now()))
    assert decision.reason is gate.GateReason.DNC
    await side.store.execute("UPDATE contacts SET status = 'pending' WHERE id = ?",
                             (contact,))
    await side.dialer.tick()
    assert len(sms_pbx.texts()) == 2

    # 3. START takes the text opt-out back.
    sms_pbx.text_in(ANN_NATIONAL, "Start")

    async def unlisted() -> bool:
        return await side.store.fetchone("SELECT 1 FROM dnc WHERE e164 = ?", (ANN,)) is None
    await _until("START to take the opt-out back", unlisted)

    async def three() -> bool:
        return len(sms_pbx.texts()) == 3
    await _until("the START confirmation", three)

    # 4. An ordinary reply is answered by the campaign's agent (the local LLM), in one
    #    segment.
    sms_pbx.text_in(ANN_NATIONAL, "Do you have anything on Saturday morning?")

    async def answered() -> bool:
        return len(sms_pbx.texts()) == 4
    await _until("the agent's answer", answered, 180)
    reply = sms_pbx.texts()[3][1]
    assert reply and measure(reply).fits, reply

    # The text reaches the provider before its row is written (after MessageSend's
    # response): on a loaded box the row came a moment later (CI), so wait for it.
    async def stored() -> object:
        return await side.store.fetchone("SELECT body FROM sms_messages WHERE kind = 'reply'"
                                         " AND status = 'sent'")
    row = await _until("the reply's row", stored, 30)
    assert row is not None and row[0] == reply  # type: ignore[index]
