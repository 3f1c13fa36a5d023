"""The simulator kept honest: one call's AMI events, as the tracker and dialer read them,
from a real Asterisk 22 (recorded by tests/real_pbx) and from the simulator.

A sequence is projected to what the call tracker (ami/tracker.py) and the app read:
- the OriginateResponse (Response, Reason, whether Uniqueid is the call id);
- the channel's events in order (Newchannel/Newstate state, (Soft)HangupRequest and
  Hangup Cause/TechCause, the AMD variables, UserEvent name and headers);
- the Dial* events in order (DialStatus, and whether they say "ringing" the way the
  tracker tests it: DialStatus RINGING or DestChannelStateDesc Ringing).
Asterisk publishes these three streams on different topics, so their relative order
varies from run to run (seen: OriginateResponse before DialBegin, after Hangup, and
between); within each stream the order holds, and is compared.

Fixtures: tests/fixtures/asterisk22-sequences/<scenario>.json, written by
tests/real_pbx/test_real_simulator.py with TELEVOX_RECORD_SEQUENCES=1.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from televox_pbx.ami.eventlog import mask_value
from televox_pbx.clock import FakeClock
from televox_pbx.sim.scenario import Callee, Scenario

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "asterisk22-sequences"
CALL = "<call-id>"
CALLER = "<caller>"
_CHANNEL = {
    "Newchannel": ("ChannelStateDesc",),
    "Newstate": ("ChannelStateDesc",),
    "HangupRequest": ("Cause", "TechCause"),
    "SoftHangupRequest": ("Cause", "TechCause"),
    "Hangup": ("Cause", "TechCause"),
    "VarSet": ("Variable", "Value"),
    "UserEvent": ("UserEvent", "CallId", "UUID", "TELEVOX_CALL_ID", "CallerID", "AMDSTATUS",
                  "AMDCAUSE"),
}
_DIAL = frozenset({"DialBegin", "DialState", "DialEnd"})
_AMD_VARS = frozenset({"AMDSTATUS", "AMDCAUSE", "TELEVOX_CALL_ID", "UUID"})

Event = Mapping[str, Any]


def _val(value: Any) -> str:
    """A field as stored (a repeated key becomes a list in the event log: take the last)."""
    if isinstance(value, list):
        return str(value[-1]) if value else ""
    return "" if value is None else str(value)


def project(events: Iterable[Event], call_id: str, caller: str | None = None,
            ) -> dict[str, Any]:
    """One call's events (dicts of fields, as the event log stores them) -> the projection."""
    # The event log stores the caller masked; the simulator's events carry it whole.
    callers = {caller, mask_value(caller)} if caller is not None else set()

    def tag(value: str) -> str:
        if value.lower() == call_id.lower():
            return CALL
        return CALLER if value in callers else value

    response: dict[str, str] | None = None
    channel: list[dict[str, str]] = []
    dial: list[dict[str, str]] = []
    for e in events:
        name = _val(e.get("Event"))
        if name == "OriginateResponse":
            if _val(e.get("ActionID")).lower() == call_id.lower():
                uid = _val(e.get("Uniqueid"))
                response = {"Response": _val(e.get("Response")), "Reason": _val(e.get("Reason")),
                            "Uniqueid": CALL if tag(uid) == CALL else "<other>"}
        elif name in _DIAL:
            if _val(e.get("DestUniqueid")).lower() != call_id.lower():
                continue
            status = _val(e.get("DialStatus"))
            ringing = status == "RINGING" or _val(e.get("DestChannelStateDesc")) == "Ringing"
            dial.append({"Event": name, "DialStatus": status,
                         "ringing": "yes" if ringing else "no"})
        elif name in _CHANNEL:
            mine = _val(e.get("Uniqueid")).lower() == call_id.lower() or any(
                _val(e.get(k)).lower() == call_id.lower() for k in ("CallId", "UUID"))
            if not mine or (name == "VarSet" and _val(e.get("Variable")) not in _AMD_VARS):
                continue
            item = {"Event": name}
            for key in _CHANNEL[name]:
                if e.get(key) is not None:
                    item[key] = tag(_val(e.get(key)))
            if "AMDCAUSE" in item:  # which limit AMD hit first varies with timing
                item["AMDCAUSE"] = _amd_cause(item["AMDCAUSE"])
            channel.append(item)
    return {"originate_response": response, "channel": channel, "dial": dial}


def _amd_cause(value: str) -> str:
    """AMDCAUSE as the tracker uses it (stored verbatim): its form, not which limit AMD hit
    first, which varies from run to run on the same greeting (LONGGREETING-2500-2500,
    MAXWORDS-6-5)."""
    return "CAUSE-n-n" if re.fullmatch(r"[A-Z]+-\d+-\d+", value) else value


def differences(real: Mapping[str, Any], sim: Mapping[str, Any]) -> list[str]:
    """Each disagreement, naming the stream, the event and the field."""
    out: list[str] = []
    if real["originate_response"] != sim["originate_response"]:
        r, s = real["originate_response"] or {}, sim["originate_response"] or {}
        for key in sorted(set(r) | set(s)):
            if r.get(key) != s.get(key):
                out.append(f"OriginateResponse.{key}: real {r.get(key)!r}, sim {s.get(key)!r}")
        if not r or not s:
            out.append(f"OriginateResponse: real {bool(r)}, sim {bool(s)}")
    for stream in ("channel", "dial"):
        rs, ss = real[stream], sim[stream]
        for i in range(max(len(rs), len(ss))):
            r = rs[i] if i < len(rs) else None
            s = ss[i] if i < len(ss) else None
            if r == s:
                continue
            if r is None or s is None or r["Event"] != s["Event"]:
                out.append(f"{stream}[{i}]: real {r}, sim {s}")
                break  # the rest is shifted: one message says it
            for key in sorted(set(r) | set(s)):
                if r.get(key) != s.get(key):
                    out.append(f"{stream}[{i}] {r['Event']}.{key}: real {r.get(key)!r}, "
                               f"sim {s.get(key)!r}")
    return out


# -- the scenarios, as the simulator plays them ---------------------------------------------


@dataclass(frozen=True, slots=True)
class SimCase:
    """How the simulator plays one scenario recorded on the real PBX."""

    callee: Callee
    amd: bool = False
    daemon_hangup_s: float | None = None  # the daemon side hangs up after this long
    ring_timeout_s: int = 5
    inbound_caller: str | None = None


SIM_CASES: dict[str, SimCase] = {
    "busy": SimCase(Callee(behaviour="busy")),
    "unavailable": SimCase(Callee(behaviour="unavailable")),
    "not_found": SimCase(Callee(behaviour="not_found")),
    "ring_out": SimCase(Callee(behaviour="ring_out")),
    "callee_hangs_up": SimCase(Callee(behaviour="answer", ring_s=0.3, hangup_after_s=1.0)),
    "daemon_hangs_up": SimCase(Callee(behaviour="answer", ring_s=0.3), daemon_hangup_s=0.5),
    "voicemail_amd": SimCase(Callee(behaviour="voicemail", ring_s=0.3, amd_delay_s=0.2),
                             amd=True, daemon_hangup_s=0.5),
    "inbound": SimCase(Callee(behaviour="answer"), daemon_hangup_s=0.5,
                       inbound_caller="2125550199"),
}


async def simulate(case: SimCase) -> tuple[list[Event], str]:
    """Play `case` on the simulator through a real AMI client; (events, call id)."""
    from sim_harness import harness  # tests/ helper: sim + AmiClient + AudioSocket peer

    scenario = Scenario(numbers={"+12125550000": case.callee}, timer_b_s=0.3,
                        no_traffic_timeout_s=5.0)
    clock = FakeClock()
    async with harness(scenario, sim_clock=clock, echo_hangup_s=case.daemon_hangup_s,
                       echo_reply="silent", allow_placeholder_speech=True) as h:
        if case.inbound_caller is not None:
            call_id = await h.sim.start_inbound(case.inbound_caller)
            await asyncio.wait_for(h.sim.wait_call_ended(call_id), 15)
        else:
            call_id = await h.originate("+12125550000", amd=case.amd,
                                        ring_timeout_s=case.ring_timeout_s)
            await h.wait_final(call_id, step_s=1.0)
        await asyncio.sleep(0.2)  # events after the final one (e.g. a late Hangup)
        events = [dict(_last_fields(m.fields)) for m in h.events]
    return events, call_id


def _last_fields(fields: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in fields:
        out[k] = v
    return out


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def save_fixture(name: str, projection: Mapping[str, Any], source: str) -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    data = {"scenario": name, "recorded_on": source, **projection}
    (FIXTURES / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
