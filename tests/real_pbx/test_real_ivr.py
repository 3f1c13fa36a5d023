"""An IVR campaign through a real Asterisk 22 (issue 16): the daemon (in this process,
with scripted engines: the flow needs no LLM, its TTS prompts are tones) dials a SIPp
callee that keys 1, then 2, as RFC 4733 events; the stored answers match and the CSV
export has them. The PBX is configured from the shipped asterisk/*.conf."""

from __future__ import annotations

import asyncio
import csv
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from app_support import fake_engines
from asterisk_conf import PbxAddress
from daemon import REPO
from procs import Asterisk, Sipp, free_ports, wait_udp_bound
from rtp_pcap import Digit, read_pcap_rtp, rtp_stream, write_pcap

from televox_pbx.app import App
from televox_pbx.campaigns.controls import Action, apply
from televox_pbx.cli import main
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import load_settings

SIPP_DIR = Path(__file__).resolve().parent / "sipp"
CALLEE = "+12125550177"
FLOW = {"opt_out_key": "9", "steps": [
    {"id": "intro", "play": [{"say": "Hi, an AI survey. Press 9 to stop."}]},
    {"id": "q1", "play": [{"say": "Happy? 1 or 2."}],
     "gather": {"question": "happy", "valid": "12", "timeout_s": 10},
     "branch": {"1": "q2", "2": "bye"}},
    {"id": "q2", "play": [{"say": "Again? 1 or 2."}],
     "gather": {"question": "again", "valid": "12", "timeout_s": 10}},
    {"id": "bye", "play": [{"say": "Thanks, bye."}], "hangup": True}]}
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@pytest.fixture(scope="module")
def ivr_pbx(tools: tuple[Path, Path, str], run_dir: Path) -> Iterator[tuple[PbxAddress, Sipp]]:
    binary, prefix, sipp = tools
    sip, ami, audiosocket, far, media = free_ports(5)
    address = PbxAddress(sip_port=sip, ami_port=ami, audiosocket_port=audiosocket,
                         far_end_port=far, secret=secrets.token_hex(24))
    workdir = run_dir / "ivr"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "ivr_callee.xml").write_bytes((SIPP_DIR / "ivr_callee.xml").read_bytes())
    write_pcap(workdir / "ivr_keys.pcap",
               rtp_stream(12.0, [], [Digit(3.0, "1"), Digit(6.0, "2")]))
    callee = Sipp(sipp, workdir, "ivr-callee", [
        "-sf", "ivr_callee.xml", "-i", address.host, "-p", str(far), "-mi", address.host,
        "-mp", str(media), "-aa", "-max_recv_loops", "1000"])
    asterisk = Asterisk(binary, prefix, REPO / "asterisk", run_dir / "asterisk-ivr", address)
    try:
        callee.start()
        wait_udp_bound(far)
        asterisk.start()
        yield address, callee
    finally:
        asterisk.stop()
        callee.stop()


def test_the_pcap_carries_keys_1_then_2_as_rfc4733(run_dir: Path,
                                                    ivr_pbx: tuple[PbxAddress, Sipp]) -> None:
    packets = read_pcap_rtp(run_dir / "ivr" / "ivr_keys.pcap")
    events = [p[12] for _, p in packets if p[1] & 0x7F == 101]
    assert events and events[0] == 1 and events[-1] == 2


def test_ivr_campaign_keys_1_then_2(ivr_pbx: tuple[PbxAddress, Sipp], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    address, callee = ivr_pbx
    secret = tmp_path / "ami-secret"
    secret.write_text(address.secret)
    (tmp_path / "campaigns").mkdir()
    data = {"name": "survey", "kind": "ivr", "ivr": FLOW, "caller_id": "+15550100000",
            "trunk": "televox-trunk", "amd": False,
            "agent": {"persona_name": "Ava", "business": "Acme", "goal": "survey",
                      "opening_line": "Hi, I'm Ava, an AI assistant."},
            "calling_window": {"legal_override": True, "start": "00:00", "end": "23:59:59",
                               "weekdays": EVERY_DAY},
            "timezone_policy": {"source": "fixed", "fixed_zone": "UTC"}}
    (tmp_path / "campaigns" / "survey.yaml").write_text(yaml.safe_dump(data))
    settings_path = tmp_path / "televox.yaml"
    settings_path.write_text(yaml.safe_dump({
        "database": {"path": "televox.db"}, "campaigns_dir": "campaigns",
        "recordings_dir": "recordings", "events": {"jsonl_path": "events.jsonl"},
        "ami": {"host": address.host, "port": address.ami_port,
                "secret_file": str(secret)},
        "audiosocket": {"bind_host": address.host, "port": address.audiosocket_port,
                        "advertise_host": address.host}}))
    settings = load_settings(settings_path)

    async def run() -> str:
        app = App(settings, engines=fake_engines([], []), control=False)
        await app.start()
        stop = asyncio.Event()
        running = asyncio.create_task(app.run(stop))
        try:
            store = app.store
            assert store is not None
            campaign = Campaign.model_validate(data)
            await apply(store, "survey", Action.START, app.clock.now(), campaign=campaign)
            row = await store.fetchone("SELECT id FROM campaigns WHERE name = 'survey'")
            assert row is not None
            contact = await store.execute(
                "INSERT INTO contacts(campaign_id, name) VALUES (?, 'Ann')", (row[0],))
            await store.execute("INSERT INTO contact_phones(contact_id, campaign_id, position,"
                                " e164) VALUES (?, ?, 1, ?)", (contact, row[0], CALLEE))
            for _ in range(600):
                done = await store.fetchone(
                    "SELECT status FROM contacts WHERE id = ? AND status NOT IN"
                    " ('pending','calling','connected')", (contact,))
                if done is not None:
                    return str(done[0])
                await asyncio.sleep(0.1)
            raise AssertionError("the IVR call did not finish in 60 s")
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)
            await asyncio.wait_for(app.stop(), 30)

    monkeypatch.chdir(tmp_path)
    status = asyncio.run(run())
    assert status == "completed", callee.out.read_text(errors="replace")[-2000:]
    out = tmp_path / "answers.csv"
    assert main(["-c", str(settings_path), "ivr", "export", "survey", str(out)]) == 0
    [row] = list(csv.DictReader(out.open()))
    # The CSV writer is formula-safe: a leading + is quoted with '.
    assert (row["phone"].lstrip("'"), row["happy"], row["again"]) == (CALLEE, "1", "2")
