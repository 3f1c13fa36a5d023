"""The simulator kept honest: each scenario's AMI events on the real Asterisk 22 (as the
daemon's event log stored them) against the simulator's for the same scenario, on the
fields the tracker and the dialer read (tests/sim_sequences.py). A difference fails and
names the field. With TELEVOX_RECORD_SEQUENCES=1 the real sequences are written to
tests/fixtures/asterisk22-sequences/, which tests/test_sim_sequences.py checks the
simulator against on every run, with or without Asterisk."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from daemon import Daemon
from far_end import (
    BUSY,
    DTMF_OPT_OUT,
    EARLY_HANGUP,
    NOT_FOUND,
    RING_FOREVER,
    UNAVAILABLE,
    VOICEMAIL,
    number,
)
from procs import ASTERISK_VERSION, Pbx, free_ports, sipp_caller, wait_until
from sim_sequences import SIM_CASES, differences, load_fixture, project, save_fixture, simulate

from televox_pbx.campaigns.phones import normalize_phone

SIPP_DIR = Path(__file__).resolve().parent / "sipp"
OUTBOUND = {"busy": BUSY, "unavailable": UNAVAILABLE, "not_found": NOT_FOUND,
            "ring_out": RING_FOREVER, "callee_hangs_up": EARLY_HANGUP,
            "daemon_hangs_up": DTMF_OPT_OUT}
CALLER = SIM_CASES["inbound"].inbound_caller or ""
CALLER_E164 = normalize_phone(CALLER, "US").e164


@pytest.fixture(scope="module")
def real_sequences(daemon: Daemon, pbx: Pbx) -> dict[str, dict[str, Any]]:
    """Every scenario once on the real PBX, all at the same time."""
    started = time.time()
    phones = {name: number(40 + i, code) for i, (name, code) in enumerate(OUTBOUND.items())}
    phones["voicemail_amd"] = number(50, VOICEMAIL)
    daemon.add_campaign("honest", [{"name": "Sam", "phone": phones[n]} for n in OUTBOUND],
                        ring_timeout_s=5, pacing={"calls_per_minute": 600, "max_concurrent": 6})
    daemon.add_campaign("honest-amd", [{"name": "Sam", "phone": phones["voicemail_amd"]}],
                        amd=True, voicemail={"action": "hangup"})
    sip_port, media_port = free_ports(2)
    caller = sipp_caller(pbx.sipp, pbx.run_dir / "sipp", SIPP_DIR / "caller.xml", pbx.address,
                         did="15550100200", caller=CALLER, sip_port=sip_port,
                         media_port=media_port).start()
    try:
        ids = {name: daemon.wait_final(phone, timeout_s=120)[0]["id"]
               for name, phone in phones.items()}
        caller.wait(60)
    finally:
        caller.stop()

    def inbound() -> str | None:
        # The store holds the caller in E.164 (app.py normalises it with default_country),
        # while the AMI events carry it as the provider sent it (CALLER).
        rows = daemon.rows("SELECT id, created_at FROM call_attempts WHERE phone = ? "
                           "AND direction = 'inbound'", CALLER_E164)
        return str(rows[-1]["id"]) if rows else None
    ids["inbound"] = str(wait_until("the inbound call in the store", inbound, 30))
    time.sleep(1.5)  # the event log is flushed in batches
    assert time.time() - started < 300
    return {name: project(daemon.events(cid), cid, CALLER) for name, cid in ids.items()}


@pytest.mark.parametrize("scenario", sorted(SIM_CASES))
def test_simulator_matches_the_real_pbx(scenario: str,
                                        real_sequences: dict[str, dict[str, Any]]) -> None:
    real = real_sequences[scenario]
    if os.environ.get("TELEVOX_RECORD_SEQUENCES") == "1":
        save_fixture(scenario, real, f"Asterisk {ASTERISK_VERSION}, tests/real_pbx")
    events, call_id = asyncio.run(simulate(SIM_CASES[scenario]))
    sim = project(events, call_id, CALLER)
    diffs = differences(real, sim)
    assert not diffs, f"{scenario}: the simulator disagrees with Asterisk:\n" + "\n".join(diffs)
    recorded = differences(load_fixture(scenario), real)
    assert not recorded, (f"{scenario}: Asterisk no longer gives the recorded sequence (record "
                          f"again with TELEVOX_RECORD_SEQUENCES=1):\n" + "\n".join(recorded))
