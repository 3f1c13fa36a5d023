"""The simulator's AudioSocket leg, seen from a tiny daemon-side echo server."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest
from sim_harness import fake_speech, harness

from televox_pbx.ami.client import AmiActionError
from televox_pbx.app_ports import AmiTransfer
from televox_pbx.config.campaign import TransferConfig
from televox_pbx.domain import CallStatus
from televox_pbx.sim import Callee, Scenario, ScriptItem, Simulator, SpeechUnavailable
from televox_pbx.sim.audio_leg import LegEnd, Segment, _skip_consumed
from televox_pbx.sim.scenario import load_scenario
from televox_pbx.sim.speech import RATE, rms, tone


def _first_loud_offset_s(pcm: bytes, threshold: float = 1000.0) -> float | None:
    for i in range(0, len(pcm) - 320, 320):
        if rms(pcm[i:i + 320]) > threshold:
            return i / 2 / RATE
    return None


async def test_uuid_frames_and_dtmf() -> None:
    scenario = Scenario(default=Callee(ring_s=0.05, script=[ScriptItem(dtmf="12")]))
    async with harness(scenario, echo_hangup_s=0.8) as h:
        call_id = await h.originate("15550100")
        session = await asyncio.wait_for(h.echo.wait_session(call_id), 5)
        await asyncio.wait_for(session.done.wait(), 5)
        assert session.dtmf == ["1", "2"]
        assert session.frame_sizes == {320}
        assert session.frames_in >= 20  # paced audio (silence) kept flowing
        outcome = await h.wait_final(call_id)
        assert outcome.status == CallStatus.COMPLETED
        assert h.sim.results[call_id].reason == LegEnd.DAEMON_HANGUP


async def test_30ms_frames() -> None:
    scenario = Scenario(default=Callee(ring_s=0.05), frame_ms=30)
    async with harness(scenario, echo_hangup_s=0.3) as h:
        call_id = await h.originate("15550100")
        session = await asyncio.wait_for(h.echo.wait_session(call_id), 5)
        await asyncio.wait_for(session.done.wait(), 5)
        assert session.frame_sizes == {480}


async def test_no_traffic_from_daemon_hangs_up_like_asterisk() -> None:
    scenario = Scenario(default=Callee(ring_s=0.05), no_traffic_timeout_s=0.3)
    async with harness(scenario, echo_reply="silent", echo_hangup_s=None) as h:
        call_id = await h.originate("15550100")
        outcome = await h.wait_final(call_id)
        assert h.sim.results[call_id].reason == LegEnd.NO_TRAFFIC
        assert outcome.status == CallStatus.COMPLETED and outcome.hangup_cause == 16


async def test_wav_recordings_of_both_sides(tmp_path: Path) -> None:
    scenario = Scenario(default=Callee(ring_s=0.05, script=[ScriptItem(say="hello there")]),
                        turn_gap_s=0.0)
    async with harness(scenario, echo_reply="tone", echo_hangup_s=1.2, speech=fake_speech,
                       out_dir=tmp_path) as h:
        call_id = await h.originate("15550100")
        await h.wait_final(call_id)
    heard = tmp_path / f"{call_id}-heard.wav"
    said = tmp_path / f"{call_id}-said.wav"
    for path in (heard, said):
        with wave.open(str(path)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            assert w.getnframes() > 4000
            pcm = w.readframes(w.getnframes())
            assert rms(pcm) > 500  # the agent's tone / the callee's "speech"


def test_say_without_speech_source_is_an_error() -> None:
    with pytest.raises(SpeechUnavailable, match="speech source"):
        Simulator(Scenario(numbers={"1": Callee(script=[ScriptItem(say="hi")])}))
    with pytest.raises(SpeechUnavailable):
        Simulator(Scenario(default=Callee(behaviour="voicemail")))
    Simulator(Scenario(default=Callee(behaviour="voicemail")), allow_placeholder_speech=True)


async def test_polite_callee_waits_but_barge_in_talks_over_agent() -> None:
    polite = Callee(ring_s=0.05, script=[ScriptItem(say="polite words", at_s=0.2)])
    rude = Callee(ring_s=0.05, script=[ScriptItem(say="rude words", at_s=0.2,
                                                             barge_in=True)])
    scenario = Scenario(numbers={"1001": polite, "1002": rude}, turn_gap_s=0.3,
                        max_turn_wait_s=1.0)
    # The echo "agent" plays a tone without pause, so a polite callee waits for the cap.
    async with harness(scenario, echo_reply="tone", echo_hangup_s=2.0,
                       speech=fake_speech) as h:
        a = await h.originate("1001")
        b = await h.originate("1002")
        sa = await asyncio.wait_for(h.echo.wait_session(a), 5)
        sb = await asyncio.wait_for(h.echo.wait_session(b), 5)
        await asyncio.gather(sa.done.wait(), sb.done.wait())
    polite_at = _first_loud_offset_s(bytes(sa.audio_in))
    rude_at = _first_loud_offset_s(bytes(sb.audio_in))
    assert polite_at is not None and rude_at is not None
    assert rude_at < 0.6 <= polite_at


async def test_ami_hangup_ends_the_leg() -> None:
    scenario = Scenario(default=Callee(ring_s=0.05))
    async with harness(scenario, echo_hangup_s=None) as h:
        call_id = await h.originate("15550100")
        await asyncio.wait_for(h.echo.wait_session(call_id), 5)
        channel = (await h.client.core_show_channels())[0].get("Channel")
        await h.client.send_action({"Action": "Hangup", "Channel": channel or ""})
        outcome = await h.wait_final(call_id)
        assert outcome.status == CallStatus.COMPLETED and outcome.hangup_cause == 16
        assert h.sim.results[call_id].reason == LegEnd.PBX_HANGUP
        assert await h.client.core_show_channels() == []


async def test_inbound_call() -> None:
    scenario = Scenario(inbound=Callee(script=[ScriptItem(dtmf="5")]))
    async with harness(scenario, echo_hangup_s=0.5) as h:
        call_id = await h.sim.start_inbound("+15550111")
        session = await asyncio.wait_for(h.echo.wait_session(call_id), 5)
        await asyncio.wait_for(session.done.wait(), 5)
        assert session.dtmf == ["5"]
        await asyncio.wait_for(h.sim.wait_call_ended(call_id), 5)
        await asyncio.sleep(0.05)
        inbound = [m for m in h.events if m.get("UserEvent") == "TelevoxInbound"]
        assert inbound[0].get("CallId") == call_id
        assert inbound[0].get("CallerID") == "+15550111"
        # Asterisk gives the inbound channel its own Uniqueid; only the UserEvent names ours.
        channel = inbound[0].get("Uniqueid")
        assert channel and channel != call_id
        hangups = [m for m in h.events if m.event == "Hangup" and m.get("Uniqueid") == channel]
        assert hangups and hangups[0].get("Cause") == "16"


async def test_many_concurrent_calls() -> None:
    scenario = Scenario(default=Callee(ring_s=0.05, script=[ScriptItem(dtmf="1")]))
    async with harness(scenario, echo_hangup_s=0.5) as h:
        ids = await asyncio.gather(*(h.originate(f"1555{i:04d}") for i in range(60)))
        outcomes = await asyncio.gather(*(h.wait_final(c, real_timeout_s=30) for c in ids))
        assert {o.status for o in outcomes} == {CallStatus.COMPLETED}
        assert len(h.sim.actions_named("Originate")) == 60
        assert all(h.echo.sessions[c].dtmf == ["1"] for c in ids)


def test_amd_consumed_audio_is_skipped() -> None:
    one_s = tone(1.0)
    segs = [Segment(pcm=one_s), Segment(pause_s=1.0), Segment(pcm=one_s, at_s=5.0)]
    out = _skip_consumed(segs, 1.5)
    assert out[0].pause_s == pytest.approx(0.5)
    assert out[1].at_s == 5.0 and len(out) == 2
    kept = _skip_consumed([Segment(pcm=one_s)], 0.25)
    assert len(kept[0].pcm) == len(one_s) - int(0.25 * RATE) * 2
    assert np.frombuffer(kept[0].pcm, "<i2").size == 6000


async def test_redirect_moves_the_channel_out_of_audiosocket() -> None:
    scenario = Scenario(default=Callee(ring_s=0.05))
    async with harness(scenario, echo_hangup_s=None) as h:
        call_id = await h.originate("15550100")
        session = await asyncio.wait_for(h.echo.wait_session(call_id), 5)
        channel = (await h.client.status())[0].get("Channel") or ""
        resp = await h.client.send_action({"Action": "Redirect", "Channel": channel,
                                           "Context": "agents", "Exten": "100",
                                           "Priority": "1"})
        assert resp.get("Message") == "Redirect successful"
        await asyncio.wait_for(session.done.wait(), 5)
        assert session.ended_by == "peer"
        with pytest.raises(AmiActionError, match="No such channel"):
            await h.client.send_action({"Action": "Hangup", "Channel": "PJSIP/nope-1"})


async def test_the_transfer_port_redirects_inbound_and_outbound_calls_by_call_id() -> None:
    # An inbound channel's Uniqueid is Asterisk's own, not the call id (the dialplan's
    # UUID()): the port must find it by TELEVOX_CALL_ID.
    scenario = Scenario(default=Callee(ring_s=0.05), inbound=Callee())
    target = TransferConfig(context="agents", exten="100")
    async with harness(scenario, echo_hangup_s=None) as h:
        first = await h.sim.start_inbound("+15550111")
        second = await h.sim.start_inbound("+15550112")
        out = await h.originate("15550100")
        sessions = {c: await asyncio.wait_for(h.echo.wait_session(c), 5)
                    for c in (first, second, out)}
        port = AmiTransfer(h.client)
        await port.transfer(second, target)
        await asyncio.wait_for(sessions[second].done.wait(), 5)
        assert sessions[second].ended_by == "peer"
        assert not sessions[first].done.is_set(), "only that call's channel moved"
        await port.transfer(out, target)
        await asyncio.wait_for(sessions[out].done.wait(), 5)
        assert not sessions[first].done.is_set()
        redirects = h.sim.actions_named("Redirect")
        assert len(redirects) == 2 and {r.get("Exten") for r in redirects} == {"100"}
        with pytest.raises(RuntimeError, match="no live channel"):
            await port.transfer("00000000-0000-4000-8000-00000000dead", target)


async def test_scenario_file_sets_a_callee_who_awaits_the_reply(tmp_path: Path) -> None:
    """`await_reply: true` in the scenario file: the callee's line waits for the agent to
    have spoken (here it never does, so until max_turn_wait_s); without it, it does not."""
    path = tmp_path / "scenario.yaml"
    path.write_text(
        "numbers:\n"
        "  '1001': {ring_s: 0.05, await_reply: true, script: [{say: 'waits', at_s: 0.1}]}\n"
        "  '1002': {ring_s: 0.05, script: [{say: 'talks', at_s: 0.1}]}\n"
        "turn_gap_s: 0.1\nmax_turn_wait_s: 1.0\n")
    scenario = load_scenario(path)
    assert scenario.numbers["1001"].await_reply and not scenario.numbers["1002"].await_reply
    async with harness(scenario, echo_reply="silent", echo_hangup_s=1.6,
                       speech=fake_speech) as h:
        a = await h.originate("1001")
        b = await h.originate("1002")
        sa = await asyncio.wait_for(h.echo.wait_session(a), 5)
        sb = await asyncio.wait_for(h.echo.wait_session(b), 5)
        await asyncio.gather(sa.done.wait(), sb.done.wait())
    waited = _first_loud_offset_s(bytes(sa.audio_in))
    talked = _first_loud_offset_s(bytes(sb.audio_in))
    assert waited is not None and talked is not None
    assert talked < 0.6 <= 1.0 <= waited
