"""Issue 12, "a daemon that survives": items 5 (an AMI outage kills the daemon) and 6 (one
call's missing result stalls every other call's outcome), login gating, Originates that
Asterisk refuses while shutting down, and supervised loops.

The dialer, the simulator's timers and the runner's waits share a FakeClock; the AMI
client gets a clock of its own where a test must hold a reconnect back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from dialer_support import make_campaign, seed
from pydantic import SecretStr

from televox_pbx.ami.client import (
    AmiClient,
    AmiNotConnected,
    ConnectionState,
    OriginateRefused,
)
from televox_pbx.ami.codec import AmiMessage
from televox_pbx.app_ports import ResultLog
from televox_pbx.campaigns.recovery import ReconcileReport
from televox_pbx.campaigns.runner import CampaignRunner, SessionResult, SessionResults
from televox_pbx.clock import FakeClock
from televox_pbx.config.settings import AmiSettings
from televox_pbx.domain import CallOutcome, Disposition, OriginateRequest
from televox_pbx.sim import Scenario, Simulator
from televox_pbx.sim.ami_server import AmiSession
from televox_pbx.sim.scenario import Behaviour, Callee
from televox_pbx.store import Store
from televox_pbx.store.attempts import is_final_status
from televox_pbx.supervise import supervise

SECRET = "survive-secret"
START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York
A, B = "+12125550001", "+12125550002"


def campaign(**overrides: object) -> object:
    base: dict[str, object] = dict(
        calling_window={"start": "08:00", "end": "21:00",
                        "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
        timezone_policy={"source": "fixed", "fixed_zone": "America/New_York"},
        pacing={"calls_per_minute": 600, "max_concurrent": 4},
        retry={"max_attempts_per_phone": 1}, ring_timeout_s=20)
    base.update(overrides)
    return make_campaign(**base)


@dataclass
class Rig:
    store: Store
    sim: Simulator
    client: AmiClient
    runner: CampaignRunner
    clock: FakeClock
    client_clock: FakeClock

    async def attempts(self) -> dict[str, str]:
        rows = await self.store.fetchall("SELECT phone, status FROM call_attempts")
        return {str(r["phone"]): str(r["status"]) for r in rows}

    async def until(self, cond: Callable[[], object], *, advance_s: float = 0.0,
                    steps: int = 400) -> None:
        """Poll `cond` while socket and store I/O (real threads) gets its turn; with
        `advance_s`, also move the shared clock that far per step."""
        for _ in range(steps):
            got = cond()
            if asyncio.iscoroutine(got):
                got = await got
            if got:
                return
            if advance_s:
                await self.clock.advance(advance_s)
            await asyncio.sleep(0.01)
        raise AssertionError("condition not reached")

    async def stop(self, stop: asyncio.Event, run: asyncio.Task[None]) -> None:
        """Stop the runner; the clock keeps moving (a dialer between two ticks sleeps on
        it) until `run` has returned."""
        stop.set()
        await self.until(run.done, advance_s=1.0)
        await run


@asynccontextmanager
async def rig(store: Store, scenario: Scenario, session_results: SessionResults | None = None,
              clock: FakeClock | None = None, recover: bool = True) -> AsyncIterator[Rig]:
    """Simulator, AMI client and runner; with `recover`, the runner has recovered (as
    the daemon does before it runs), so the dialer is ready."""
    clock, client_clock = clock or FakeClock(START), FakeClock(START)
    sim = Simulator(scenario, clock=clock, secret=SECRET, allow_placeholder_speech=True)
    port = await sim.start()
    client = AmiClient(AmiSettings(port=port, ping_interval_s=600, reconnect_max_backoff_s=2),
                       port=port, secret=SecretStr(SECRET), clock=client_clock)
    await client.start()
    runner = CampaignRunner(store, client, clock, max_concurrent_global=4,
                            session_results=session_results)
    if recover:
        await runner.recover()
        assert runner.ready()
    try:
        yield Rig(store, sim, client, runner, clock, client_clock)
    finally:
        await runner.aclose()
        await client.close()
        await sim.close()


# -- item 5: an AMI outage during the reconcile loop ------------------------------------

async def test_ami_outage_during_reconcile_keeps_the_daemon_up(store: Store) -> None:
    """The link drops while a call rings; its end is never seen; the periodic reconcile
    comes round while AMI is down. The daemon stays up, and once AMI is back the reconcile
    after login settles the attempt whose channel is gone, and only then is it ready."""
    await seed(store, campaign(), [[A]])
    scenario = Scenario(numbers={A: Callee(behaviour=Behaviour.RING_OUT)})
    async with rig(store, scenario) as r:
        stop = asyncio.Event()
        run = asyncio.create_task(r.runner.run(stop))
        try:
            await r.until(lambda: r.sim.actions_named("Originate"))
            assert r.sim.kill_ami_connections() == 1
            await r.until(lambda: r.client.state is not ConnectionState.LOGGED_IN)
            assert not r.runner.ready()
            # 100 s pass with AMI down: the ring times out unseen (20 s), and the periodic
            # reconcile (every 30 s) finds an attempt past its 60 s grace.
            for _ in range(100):
                await r.clock.advance(1.0)
                await asyncio.sleep(0.005)
            assert not run.done(), run.exception() if run.done() else None
            assert not is_final_status((await r.attempts())[A])
            await r.client_clock.advance(5.0)  # the reconnect backoff
            await r.until(lambda: r.client.state is ConnectionState.LOGGED_IN)
            await r.until(lambda: r.runner.ready())
            assert is_final_status((await r.attempts())[A])
            assert len(r.sim.actions_named("Originate")) == 1  # nothing re-sent
            assert not run.done()
        finally:
            await r.stop(stop, run)


# -- item 6: one missing session result ------------------------------------------------

async def test_a_missing_result_does_not_delay_another_calls_outcome(store: Store) -> None:
    """A's voice session never reports; B's does. B's outcome is stored at once while A's
    waits, and A's wait ends on the injected clock (SESSION_RESULT_WAIT_S), not wall time."""
    clock = FakeClock(START)
    results = ResultLog(store, clock)

    async def session_results(req: OriginateRequest, outcome: CallOutcome) -> SessionResult:
        if req.phone == A:
            return await results.wait(req.call_id, 60.0)
        return (2, Disposition.INTERESTED)

    await seed(store, campaign(), [[A], [B]])
    # No AudioSocket: an answered call hangs up as soon as it is up. A ends first.
    scenario = Scenario(numbers={A: Callee(ring_s=1.0), B: Callee(ring_s=3.0)})
    async with rig(store, scenario, session_results, clock) as r:
        pump = asyncio.create_task(r.runner.pump())
        try:
            await r.runner.dialer.tick()
            await r.clock.advance(0.5)
            await r.runner.dialer.tick()
            assert len(r.sim.actions_named("Originate")) == 2
            # Well inside A's 60 s wait: B is settled all the same.
            await r.until(lambda: _final(r, B), advance_s=0.25, steps=200)
            rows = await store.fetchall("SELECT phone, disposition FROM call_attempts")
            assert {str(x["phone"]): x["disposition"] for x in rows}[B] == "INTERESTED"
            assert (await r.attempts())[A] == "answered"
            assert not pump.done()
            # A's result never comes: after 60 s on the clock its outcome is stored anyway.
            await r.until(lambda: _final(r, A), advance_s=1.0, steps=120)
        finally:
            pump.cancel()


async def _final(r: Rig, phone: str) -> bool:
    return is_final_status((await r.attempts()).get(phone, "none"))


# -- every action waits for a completed login ------------------------------------------

class SlowLoginServer:
    """A bare AMI server that answers the Login only when told to, and records every
    byte it receives."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.login_seen = asyncio.Event()
        self.release = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                self.received += data
                if b"Action: Login" in data and not self.login_seen.is_set():
                    self.login_seen.set()
                    await self.release.wait()
                    aid = bytes(self.received).split(b"ActionID: ")[1].split(b"\r\n")[0]
                    writer.write(b"Response: Success\r\nActionID: " + aid +
                                 b"\r\nMessage: Authentication accepted\r\n\r\n")
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()


async def test_an_action_before_login_completes_is_not_sent() -> None:
    server = SlowLoginServer()
    port = await server.start()
    client = AmiClient(AmiSettings(port=port), port=port, secret=SecretStr(SECRET),
                       clock=FakeClock())
    starting = asyncio.create_task(client.start())
    try:
        await asyncio.wait_for(server.login_seen.wait(), 5)
        assert client.state is ConnectionState.CONNECTING
        req = OriginateRequest(call_id="0d7b5c1e-2f3a-4b5c-9d6e-7f8091a2b3c4", phone=A,
                               trunk="trunk", caller_id="+15550100000")
        with pytest.raises(AmiNotConnected):
            await asyncio.wait_for(client.originate(req), 5)
        with pytest.raises(AmiNotConnected):
            await asyncio.wait_for(client.send_action({"Action": "CoreShowChannels"}), 5)
        await asyncio.sleep(0.05)  # anything written would have arrived by now
        assert b"Originate" not in server.received
        assert b"CoreShowChannels" not in server.received
        server.release.set()
        await asyncio.wait_for(starting, 5)
        assert client.state is ConnectionState.LOGGED_IN
    finally:
        server.release.set()
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await client.close()
        await server.close()


# -- "Asterisk is shutting down": refused before dialling, so not sent ------------------

async def test_originate_refused_while_asterisk_shuts_down_is_not_sent(store: Store) -> None:
    await seed(store, campaign(), [[A]])
    async with rig(store, Scenario()) as r:
        def shutting_down(session: AmiSession, msg: AmiMessage,
                          aid: list[tuple[str, str]]) -> None:
            session.send([("Response", "Error"), *aid,
                          ("Message", "Asterisk is shutting down")])
        r.sim._originate = shutting_down  # type: ignore[method-assign]
        req = OriginateRequest(call_id="9d7b5c1e-2f3a-4b5c-9d6e-7f8091a2b3c4", phone=B,
                               trunk="trunk", caller_id="+15550100000")
        with pytest.raises(OriginateRefused) as refused:
            await r.client.originate(req)
        assert isinstance(refused.value, AmiNotConnected)
        await r.runner.dialer.tick()
        assert len(r.sim.actions_named("Originate")) == 2
        assert await r.attempts() == {A: "not_sent"}  # not 'failed': no call was made
        contact = await store.fetchone("SELECT status FROM contacts")
        assert contact is not None and contact["status"] == "pending"


# -- supervised loops ------------------------------------------------------------------

async def test_a_failing_dialer_loop_restarts_and_the_daemon_stays_up(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    await seed(store, campaign(), [[A]])
    async with rig(store, Scenario(numbers={A: Callee(behaviour=Behaviour.RING_OUT)})) as r:
        real_tick = r.runner.dialer.tick
        calls = 0

        async def flaky_tick() -> object:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("database is locked")
            return await real_tick()
        r.runner.dialer.tick = flaky_tick  # type: ignore[method-assign]
        stop = asyncio.Event()
        with caplog.at_level(logging.ERROR):
            run = asyncio.create_task(r.runner.run(stop))
            try:
                await r.until(lambda: r.sim.actions_named("Originate"), advance_s=0.5)
                assert not run.done()
            finally:
                await r.stop(stop, run)
        failed = [x for x in caplog.records if x.getMessage() == "loop failed; restarting"]
        assert failed and failed[0].exc_info is not None
        assert getattr(failed[0], "loop", None) == "dialer loop"
        assert getattr(failed[0], "restart_in_s", None) == 1.0


async def test_ready_only_once_the_reconcile_after_each_login_is_done(store: Store) -> None:
    """The dialer's gate: not while AMI is down, and after a re-login not until the
    reconcile through CoreShowChannels has finished (no fixed pause)."""
    async with rig(store, Scenario(), recover=False) as r:
        gate = asyncio.Event()
        entered = asyncio.Event()
        real = r.runner.reconcile_now

        async def gated() -> ReconcileReport:
            entered.set()
            await gate.wait()
            return await real()
        r.runner.reconcile_now = gated  # type: ignore[method-assign]
        assert not r.runner.ready()  # built after the login: recovery not run yet
        await r.runner.recover()
        assert r.runner.ready()
        r.sim.kill_ami_connections()
        await r.until(lambda: r.client.state is not ConnectionState.LOGGED_IN)
        assert not r.runner.ready()
        await r.client_clock.advance(5.0)
        await r.until(lambda: r.client.state is ConnectionState.LOGGED_IN)
        await asyncio.wait_for(entered.wait(), 5)
        assert not r.runner.ready()  # logged in, but its calls not reconciled yet
        gate.set()
        await r.until(r.runner.ready)


async def test_a_supervised_loop_backs_off_on_the_clock_and_cancel_stops_it(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    runs = 0

    async def always_fails() -> None:
        nonlocal runs
        runs += 1
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR):
        task = asyncio.create_task(supervise("probe loop", always_fails, clock,
                                             context={"part": "test"}))
        await asyncio.sleep(0)
        assert runs == 1
        await clock.advance(0.9)
        assert runs == 1  # backing off, on the injected clock
        await clock.advance(0.1)
        assert runs == 2
        await clock.advance(2.0)
        assert runs == 3
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    failed = [x for x in caplog.records if x.getMessage() == "loop failed; restarting"]
    assert [getattr(x, "restart_in_s", None) for x in failed] == [1.0, 2.0, 4.0]
    assert all(getattr(x, "part", None) == "test" and x.exc_info for x in failed)
