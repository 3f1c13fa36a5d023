"""Originate to each scripted callee behaviour; B's tracker must classify it right."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sim_harness import fake_speech, harness

from televox_pbx.ami.fixtures import Direction, load_transcript, parse_side
from televox_pbx.clock import FakeClock
from televox_pbx.domain import AmdStatus, CallStatus, FailureKind
from televox_pbx.sim import Behaviour, Callee, Scenario, ScriptItem, Simulator

FIXTURES = Path("/work/shared/fixtures/asterisk-22")

SCENARIO = Scenario(
    numbers={
        "15550001": Callee(behaviour=Behaviour.ANSWER, ring_s=0.2),
        "15550002": Callee(behaviour=Behaviour.BUSY),
        "15550003": Callee(behaviour=Behaviour.RING_OUT),
        "15550004": Callee(behaviour=Behaviour.NOT_FOUND),
        "15550005": Callee(behaviour=Behaviour.UNAVAILABLE),
        "15550006": Callee(behaviour=Behaviour.NO_LISTENER),
        "15550007": Callee(behaviour=Behaviour.VOICEMAIL, ring_s=0.2),
        "15550008": Callee(behaviour=Behaviour.NO_ENDPOINT),
        "15550009": Callee(script=[ScriptItem(pause_s=0.1)], hangup_after_s=0.3, ring_s=0.2),
    })


@pytest.mark.parametrize(("phone", "status", "failure", "cause", "sip"), [
    ("15550002", CallStatus.BUSY, None, 17, 486),
    ("15550003", CallStatus.NO_ANSWER, None, 19, 480),
    ("15550004", CallStatus.FAILED, FailureKind.INVALID_NUMBER, 1, 404),
    ("15550005", CallStatus.FAILED, FailureKind.CONGESTION, 34, 503),
    ("15550006", CallStatus.NO_ANSWER, None, 18, 408),
    ("15550008", CallStatus.FAILED, FailureKind.NO_CHANNEL, None, None),
])
async def test_unanswered_behaviours(phone: str, status: CallStatus,
                                     failure: FailureKind | None, cause: int | None,
                                     sip: int | None) -> None:
    clock = FakeClock()
    async with harness(SCENARIO, sim_clock=clock, speech=fake_speech) as h:
        call_id = await h.originate(phone, ring_timeout_s=8)
        outcome = await h.wait_final(call_id, step_s=2.0)
        assert (outcome.status, outcome.failure) == (status, failure)
        assert outcome.hangup_cause == cause
        assert outcome.sip_code == sip
        assert len(h.sim.actions_named("Originate")) == 1


async def test_ring_out_waits_for_the_originate_timeout() -> None:
    clock = FakeClock()
    async with harness(SCENARIO, sim_clock=clock, speech=fake_speech) as h:
        call_id = await h.originate("15550003", ring_timeout_s=8)
        await clock.advance(7.0)
        assert h.final(call_id) is None
        outcome = await h.wait_final(call_id, step_s=0.5)
        assert outcome.status == CallStatus.NO_ANSWER
        assert clock.monotonic() >= 8.0


async def test_answered_call_completes_with_cause_16() -> None:
    async with harness(SCENARIO, speech=fake_speech) as h:
        call_id = await h.originate("15550001")
        outcome = await h.wait_final(call_id)
        assert outcome.status == CallStatus.COMPLETED
        assert outcome.hangup_cause == 16
        assert outcome.answered_at is not None
        statuses = [o.status for o in h.outcomes[call_id]]
        assert CallStatus.ANSWERED in statuses


async def test_callee_hangup_is_cause_0_and_still_completed() -> None:
    async with harness(SCENARIO, speech=fake_speech, echo_hangup_s=None) as h:
        call_id = await h.originate("15550009")
        outcome = await h.wait_final(call_id)
        assert outcome.status == CallStatus.COMPLETED
        assert outcome.hangup_cause == 0
        names = [m.event for m in h.events if m.get("Uniqueid") == call_id]
        assert names[-3:] == ["HangupRequest", "SoftHangupRequest", "Hangup"]


async def test_voicemail_with_amd_is_machine() -> None:
    async with harness(SCENARIO, speech=fake_speech) as h:
        call_id = await h.originate("15550007", exten="amd")
        outcome = await h.wait_final(call_id)
        assert outcome.status == CallStatus.VOICEMAIL
        assert outcome.amd_status == AmdStatus.MACHINE
        amd = [m for m in h.events if m.get("UserEvent") == "TelevoxAMD"]
        assert amd and amd[0].get("AMDCAUSE") == "MAXWORDS-6-5"
        assert amd[0].get("CallId") == call_id  # as asterisk/extensions.conf sends it


async def test_human_with_amd_flag() -> None:
    async with harness(SCENARIO, speech=fake_speech) as h:
        call_id = await h.originate("15550001", amd=True)
        outcome = await h.wait_final(call_id)
        assert outcome.status == CallStatus.COMPLETED
        assert outcome.amd_status == AmdStatus.HUMAN
        originate = h.sim.actions_named("Originate")[0]
        assert "TELEVOX_AMD=1" in originate.getall("Variable")


def _channel_events(messages: list, uid: str) -> list[str]:
    noise = {"Newexten", "VarSet", "NewCallerid", "NewConnectedLine", "DeviceStateChange",
             "Cdr", "RTCPSent", "RTCPReceived", "DTMFBegin", "DTMFEnd"}
    out = []
    for m in messages:
        if m.event is None or m.event in noise:
            continue
        if uid in (m.get("Uniqueid"), m.get("DestUniqueid")) or m.event == "OriginateResponse":
            out.append(m.event)
    return out


@pytest.mark.parametrize(("fixture", "phone"), [
    ("busy", "15550002"), ("503", "15550005"), ("404", "15550004"),
    ("noanswer", "15550003"), ("dead", "15550006"),
])
async def test_event_order_matches_asterisk_fixture(fixture: str, phone: str) -> None:
    received = parse_side(load_transcript(FIXTURES / f"{fixture}.raw.txt"), Direction.RECEIVED)
    real_uid = next(m.get("Uniqueid") for m in received if m.event == "Hangup")
    expected = _channel_events(received, real_uid or "")
    clock = FakeClock()
    async with harness(SCENARIO, sim_clock=clock, speech=fake_speech) as h:
        call_id = await h.originate(phone, ring_timeout_s=8)
        await h.wait_final(call_id, step_s=2.0)
        got = _channel_events(h.events, call_id)
        # Same events; the end of the call in the same order. (Before the answer Asterisk
        # races DialBegin against a fast 180 Ringing, as noanswer.raw.txt shows.)
        assert sorted(got) == sorted(expected)
        ending = {"OriginateResponse", "HangupRequest", "DialEnd", "Hangup"}
        assert [e for e in got if e in ending] == [e for e in expected if e in ending]
        hangup = next(m for m in h.events if m.event == "Hangup")
        fixture_hangup = next(m for m in received if m.event == "Hangup")
        for key in ("Cause", "Cause-txt", "TechCause", "ChannelStateDesc"):
            assert hangup.get(key) == fixture_hangup.get(key), key


async def test_success_fixture_fields_on_answer() -> None:
    received = parse_side(load_transcript(FIXTURES / "success-channelid.raw.txt"),
                          Direction.RECEIVED)
    real = next(m for m in received if m.event == "OriginateResponse")
    async with harness(SCENARIO, speech=fake_speech) as h:
        call_id = await h.originate("15550001")
        await h.wait_final(call_id)
        ours = next(m for m in h.events if m.event == "OriginateResponse")
        assert [k for k, _ in ours.fields] == [k for k, _ in real.fields]
        assert (ours.get("CallerIDNum"), ours.get("CallerIDName")) == ("15550000", "Televox")
        assert ours.get("Uniqueid") == call_id and ours.get("Reason") == "4"
        assert ours.get("ActionID") == call_id


async def test_sim_requires_login_and_drops_a_bad_client() -> None:
    sim = Simulator(secret="x")
    port = await sim.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readline()).startswith(b"Asterisk Call Manager/")
        writer.write(b"Action: CoreShowChannels\r\nActionID: 7\r\n\r\n")
        reply = await reader.readuntil(b"\r\n\r\n")
        assert b"Response: Error" in reply and b"Authentication Required" in reply
        writer.write(b"Junk: " + b"x" * 400_000)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the sim
        writer.close()
        # The simulator itself is fine: a new client logs in.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(b"Action: Login\r\nUsername: televox\r\nSecret: x\r\nActionID: 1\r\n\r\n")
        assert b"Authentication accepted" in await reader.readuntil(b"\r\n\r\n")
        writer.close()
    finally:
        await sim.close()
