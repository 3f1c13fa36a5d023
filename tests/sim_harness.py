"""Shared wiring for simulator tests: echo AudioSocket server + simulator + AMI client +
call tracker, all on 127.0.0.1 with ephemeral ports."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr

from televox_pbx.ami.client import AmiClient
from televox_pbx.ami.codec import AmiMessage
from televox_pbx.ami.tracker import CallTracker
from televox_pbx.clock import Clock, FakeClock, SystemClock
from televox_pbx.config.settings import AmiSettings
from televox_pbx.domain import CallOutcome, OriginateRequest
from televox_pbx.sim import Scenario, Simulator
from televox_pbx.sim.echo_server import EchoAudioSocketServer
from televox_pbx.sim.speech import tone

SECRET = "s3cret-for-tests"


async def fake_speech(text: str) -> bytes:
    """An explicit, injected stand-in for Piper in protocol tests (not transcribed)."""
    return tone(0.3 + 0.05 * len(text.split()), 350.0, 5000)


class Harness:
    def __init__(self, sim: Simulator, client: AmiClient, echo: EchoAudioSocketServer,
                 tracker: CallTracker, sim_clock: Clock) -> None:
        self.sim = sim
        self.client = client
        self.echo = echo
        self.tracker = tracker
        self.sim_clock = sim_clock
        self.outcomes: dict[str, list[CallOutcome]] = {}
        self.events: list[AmiMessage] = []
        self._changed = asyncio.Event()
        client.subscribe(self._on_event)

    def _on_event(self, msg: AmiMessage) -> None:
        self.events.append(msg)
        for outcome in self.tracker.feed(msg):
            self.outcomes.setdefault(outcome.call_id, []).append(outcome)
            self._changed.set()

    async def originate(self, phone: str, *, exten: str = "s", ring_timeout_s: int = 30,
                        variables: dict[str, str] | None = None,
                        amd: bool | None = None) -> str:
        call_id = str(uuid.uuid4())
        self.tracker.register(call_id)
        await self.client.originate(OriginateRequest(
            call_id=call_id, phone=phone, trunk="trunk", caller_id='"Televox" <15550000>',
            exten=exten, ring_timeout_s=ring_timeout_s, variables=variables or {}), amd=amd)
        return call_id

    def final(self, call_id: str) -> CallOutcome | None:
        for o in self.outcomes.get(call_id, []):
            if o.status.is_final:
                return o
        return None

    async def wait_final(self, call_id: str, *, step_s: float = 1.0,
                         real_timeout_s: float = 15.0) -> CallOutcome:
        """Wait for the final outcome, advancing the sim's fake clock if it has one."""
        async def go() -> CallOutcome:
            while (o := self.final(call_id)) is None:
                if isinstance(self.sim_clock, FakeClock):
                    await self.sim_clock.advance(step_s)
                    await asyncio.sleep(0.005)
                else:
                    self._changed.clear()
                    with _suppress_timeout():
                        await asyncio.wait_for(self._changed.wait(), 0.1)
            return o
        return await asyncio.wait_for(go(), real_timeout_s)


class _suppress_timeout:
    def __enter__(self) -> None:
        return None

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        return et is TimeoutError


@asynccontextmanager
async def harness(scenario: Scenario | None = None, *, sim_clock: Clock | None = None,
                  client_clock: Clock | None = None, echo_reply: str = "echo",
                  echo_hangup_s: float | None = 0.5, ping_interval_s: float = 600.0,
                  ping_timeout_s: float = 5.0, **sim_kw: Any) -> AsyncIterator[Harness]:
    echo = EchoAudioSocketServer(reply=echo_reply, hangup_after_s=echo_hangup_s)
    await echo.start()
    sclock = sim_clock or SystemClock()
    sim = Simulator(scenario, audiosocket=("127.0.0.1", echo.port), clock=sclock,
                    secret=SECRET, **sim_kw)
    port = await sim.start()
    settings = AmiSettings(host="127.0.0.1", port=port, ping_interval_s=ping_interval_s,
                           ping_timeout_s=ping_timeout_s, reconnect_max_backoff_s=2.0)
    client = AmiClient(settings, clock=client_clock or SystemClock(),
                       secret=SecretStr(SECRET), action_timeout_s=5.0)
    h = Harness(sim, client, echo, CallTracker(SystemClock()), sclock)
    await client.start()
    try:
        yield h
    finally:
        await client.close()
        await sim.close()
        await echo.close()
