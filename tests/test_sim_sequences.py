"""The simulator against AMI sequences recorded on a real Asterisk 22 (tests/real_pbx
records them; see tests/sim_sequences.py for what is compared and why)."""

from __future__ import annotations

import pytest
from sim_sequences import FIXTURES, SIM_CASES, differences, load_fixture, project, simulate


def test_every_scenario_has_a_recording() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == sorted(SIM_CASES)


@pytest.mark.parametrize("scenario", sorted(SIM_CASES))
async def test_simulator_matches_the_recorded_asterisk_sequence(scenario: str) -> None:
    case = SIM_CASES[scenario]
    events, call_id = await simulate(case)
    sim = project(events, call_id, case.inbound_caller)
    diffs = differences(load_fixture(scenario), sim)
    assert not diffs, f"{scenario}: the simulator disagrees with Asterisk:\n" + "\n".join(diffs)


def test_a_difference_names_the_field() -> None:
    real = {"originate_response": {"Response": "Failure", "Reason": "0", "Uniqueid": "<call-id>"},
            "channel": [{"Event": "Hangup", "Cause": "17", "TechCause": "486"}], "dial": []}
    sim = {"originate_response": {"Response": "Failure", "Reason": "5", "Uniqueid": "<call-id>"},
           "channel": [{"Event": "Hangup", "Cause": "17"}], "dial": []}
    assert differences(real, sim) == [
        "OriginateResponse.Reason: real '0', sim '5'",
        "channel[0] Hangup.TechCause: real '486', sim None"]


def test_projection_keeps_only_what_the_tracker_reads() -> None:
    cid = "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
    events = [
        {"Event": "Newchannel", "Uniqueid": cid, "ChannelStateDesc": "Down", "Exten": "s"},
        {"Event": "NewCallerid", "Uniqueid": cid},
        {"Event": "VarSet", "Uniqueid": cid, "Variable": "TELEVOX_VAR_NAME", "Value": "x"},
        {"Event": "DialState", "DestUniqueid": cid, "DialStatus": "RINGING",
         "DestChannelStateDesc": "Down"},
        {"Event": "OriginateResponse", "ActionID": cid, "Response": "Success", "Reason": "4",
         "Uniqueid": cid},
        {"Event": "Hangup", "Uniqueid": "1796553332.1", "Cause": "16"},  # another channel
    ]
    assert project(events, cid) == {
        "originate_response": {"Response": "Success", "Reason": "4", "Uniqueid": "<call-id>"},
        "channel": [{"Event": "Newchannel", "ChannelStateDesc": "Down"}],
        "dial": [{"Event": "DialState", "DialStatus": "RINGING", "ringing": "yes"}]}
