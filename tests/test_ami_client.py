"""AmiClient against the simulator over real TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
from pydantic import SecretStr
from sim_harness import SECRET, fake_speech, harness

from televox_pbx.ami.client import (
    AmiActionError,
    AmiClient,
    AmiLoginError,
    AmiNotConnected,
    ConnectionState,
    OriginateUnknown,
    originate_fields,
    sanitize_variable,
)
from televox_pbx.ami.codec import AmiMessage
from televox_pbx.clock import FakeClock
from televox_pbx.config.settings import AmiSettings
from televox_pbx.domain import CallStatus, OriginateRequest
from televox_pbx.sim import Callee, Scenario, ScriptItem, Simulator

LONG_CALL = Scenario(default=Callee(ring_s=0.1, script=[ScriptItem(pause_s=0.1)]))


async def until(cond: object, timeout_s: float = 10.0, clock: FakeClock | None = None,
                step_s: float = 0.5) -> None:
    async def go() -> None:
        while not cond():  # type: ignore[operator]
            if clock is not None:
                await clock.advance(step_s)
            await asyncio.sleep(0.01)
    await asyncio.wait_for(go(), timeout_s)


async def test_login_and_state_listener() -> None:
    sim = Simulator(secret=SECRET)
    port = await sim.start()
    client = AmiClient(AmiSettings(port=port), secret=SecretStr(SECRET))
    seen: list[ConnectionState] = []
    client.add_state_listener(seen.append)
    await client.start()
    try:
        assert client.state == ConnectionState.LOGGED_IN
        assert client.banner == "Asterisk Call Manager/11.0.0"
        login = sim.actions_named("Login")[0]
        assert login.get("Secret") == "***"  # the sim's own record is masked too
        pong = await client.send_action({"Action": "Ping"})
        assert pong.get("Ping") == "Pong"
    finally:
        await client.close()
        await sim.close()
    assert seen == [ConnectionState.CONNECTING, ConnectionState.LOGGED_IN,
                    ConnectionState.DISCONNECTED]


async def test_login_rejected_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    sim = Simulator(secret=SECRET)
    port = await sim.start()
    client = AmiClient(AmiSettings(port=port), secret=SecretStr("wrong-secret-xyz"))
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(AmiLoginError, match="rejected"):
            await client.start()
        assert client.state == ConnectionState.DISCONNECTED
        assert "wrong-secret-xyz" not in caplog.text
    finally:
        await sim.close()


async def test_missing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELEVOX_AMI_SECRET", raising=False)
    client = AmiClient(AmiSettings(port=1))
    with pytest.raises(AmiLoginError, match="TELEVOX_AMI_SECRET"):
        await client.start()


async def test_unknown_action_and_not_connected() -> None:
    async with harness() as h:
        with pytest.raises(AmiActionError, match="Invalid/unknown command"):
            await h.client.send_action({"Action": "NoSuchThing"})
    client = AmiClient(AmiSettings(port=1), secret=SecretStr("x"))
    with pytest.raises(AmiNotConnected):
        await client.send_action({"Action": "Ping"})


def test_originate_fields_are_sanitised() -> None:
    req = OriginateRequest(call_id="0d7b5c1e-2f3a-4b5c-9d6e-7f8091a2b3c4", phone="+15550001",
                           trunk="trunk", caller_id='"Acme" <15550000>', ring_timeout_s=25,
                           variables={"first_name": "Ann,\r\nAction: Hangup", "plan": "gold"})
    fields = originate_fields(req, amd=False)
    d = dict(fields)
    assert d["ActionID"] == d["ChannelId"] == req.call_id
    assert d["Channel"] == "PJSIP/+15550001@trunk"
    assert d["Timeout"] == "25000" and d["Async"] == "true"
    variables = [v for k, v in fields if k == "Variable"]
    assert variables == [f"TELEVOX_CALL_ID={req.call_id}",
                         "TELEVOX_VAR_FIRST_NAME=Ann   Action: Hangup",
                         "TELEVOX_VAR_PLAN=gold", "TELEVOX_AMD=0"]
    assert sanitize_variable("a,b\nc") == "a b c"


async def test_originate_once_and_list_actions() -> None:
    async with harness(LONG_CALL, echo_hangup_s=3.0, speech=fake_speech) as h:
        call_id = await h.originate("15550123", variables={"name": "Bo"})
        await until(lambda: call_id in h.sim.results or any(
            o.status == CallStatus.ANSWERED for o in h.outcomes.get(call_id, [])))
        live = await h.client.live_call_ids()
        assert call_id in live
        status = await h.client.status()
        assert [e.get("Uniqueid") for e in status] == [call_id]
        channels = await h.client.core_show_channels()
        assert channels[0].get("Application") == "AudioSocket"
        originate = h.sim.actions_named("Originate")
        assert len(originate) == 1
        assert originate[0].get("ActionID") == call_id
        assert "TELEVOX_VAR_NAME=Bo" in originate[0].getall("Variable")


async def test_reconnect_mid_call_reconciles_without_second_originate() -> None:
    async with harness(LONG_CALL, echo_hangup_s=2.0, speech=fake_speech) as h:
        states: list[ConnectionState] = []
        h.client.add_state_listener(states.append)
        call_id = await h.originate("15550123")
        await until(lambda: any(o.status == CallStatus.ANSWERED
                                for o in h.outcomes.get(call_id, [])))
        assert h.sim.kill_ami_connections() == 1
        await until(lambda: h.client.connections == 2)
        assert states[:2] == [ConnectionState.RECONNECTING, ConnectionState.LOGGED_IN]
        live = await h.client.live_call_ids()
        assert call_id in live
        assert h.tracker.reconcile(call_id, call_id in live) is None  # still in progress
        outcome = await h.wait_final(call_id)
        assert outcome.status == CallStatus.COMPLETED
        assert len(h.sim.actions_named("Originate")) == 1


async def test_connection_lost_before_queued_response_is_unknown_not_resent() -> None:
    async with harness(LONG_CALL, echo_hangup_s=0.5, speech=fake_speech) as h:
        h.sim.abort_after_action.add("originate")
        with pytest.raises(OriginateUnknown) as err:
            await h.originate("15550123")
        call_id = err.value.call_id
        h.sim.abort_after_action.clear()
        await until(lambda: h.client.connections == 2)
        live = await h.client.live_call_ids()
        # The PBX did place it: reconcile says live, so the dialer must not dial again.
        assert call_id in live or call_id in h.sim.results
        await asyncio.sleep(0.2)
        assert len(h.sim.actions_named("Originate")) == 1


async def test_half_open_connection_is_detected_by_ping() -> None:
    clock = FakeClock()
    async with harness(client_clock=clock, ping_interval_s=10.0, ping_timeout_s=5.0) as h:
        h.client._rng = random.Random(1)
        states: list[ConnectionState] = []
        h.client.add_state_listener(states.append)
        await until(lambda: len(h.sim.actions_named("Ping")) == 1, clock=clock, step_s=1.0)
        assert h.client.connections == 1  # answered pings keep the connection
        h.sim.ping_enabled = False
        await until(lambda: ConnectionState.RECONNECTING in states, clock=clock, step_s=1.0)
        h.sim.ping_enabled = True
        await until(lambda: h.client.state == ConnectionState.LOGGED_IN, clock=clock,
                    step_s=0.25)
        assert states[:2] == [ConnectionState.RECONNECTING, ConnectionState.LOGGED_IN]
        assert h.client.connections == 2


async def test_malformed_bytes_end_the_connection_not_the_process() -> None:
    async with harness() as h:
        # Junk that still parses (a bare line, as in command output) is ignored...
        h.sim.send_raw(b"this is not ami: at all\r\n\r\n")
        assert (await h.client.send_action({"Action": "Ping"})).get("Ping") == "Pong"
        assert h.client.connections == 1
        # ...bytes that cannot be AMI (an endless message) end that connection only.
        h.sim.send_raw(b"Junk: " + b"x" * 400_000)
        await until(lambda: h.client.connections == 2)
        assert h.client.state == ConnectionState.LOGGED_IN
        pong = await h.client.send_action({"Action": "Ping"})
        assert pong.get("Ping") == "Pong"


async def test_subscriber_errors_are_logged_and_others_still_run(
        caplog: pytest.LogCaptureFixture) -> None:
    async with harness() as h:
        got: list[AmiMessage] = []

        def broken(msg: AmiMessage) -> None:
            raise RuntimeError("boom")
        h.client.subscribe(broken)
        h.client.subscribe(got.append)
        with caplog.at_level(logging.ERROR):
            await h.client.send_action({"Action": "UserEvent", "UserEvent": "Probe"})
            await until(lambda: any(m.get("UserEvent") == "Probe" for m in got))
        rec = [r for r in caplog.records if "subscriber failed" in r.getMessage()]
        assert rec and rec[0].exc_info is not None


async def test_async_iterator_and_close_cancels_tasks() -> None:
    async with harness() as h:
        it = h.client.events()

        async def first_user_event() -> AmiMessage:
            async for msg in it:
                if msg.get("UserEvent") == "Iter":
                    return msg
            raise AssertionError("iterator ended")
        waiter = asyncio.create_task(first_user_event())
        await asyncio.sleep(0)
        await h.client.send_action({"Action": "UserEvent", "UserEvent": "Iter", "A": "1"})
        msg = await asyncio.wait_for(waiter, 5)
        assert msg.get("A") == "1"
        await it.aclose()
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert not {"ami-supervisor", "ami-reader", "ami-pinger"} & names
