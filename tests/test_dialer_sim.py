"""The 50-contact dialer scenario again, this time over real AMI/TCP against the PBX
simulator: the sim's ring timers and the dialer share one FakeClock."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import UTC, datetime

from dialer_support import add_dnc, make_campaign, seed
from pydantic import SecretStr

from televox_pbx.ami.client import AmiClient
from televox_pbx.campaigns.runner import CampaignRunner
from televox_pbx.clock import FakeClock
from televox_pbx.config.settings import AmiSettings
from televox_pbx.domain import CallOutcome, Disposition, OriginateRequest
from televox_pbx.sim import Scenario, Simulator
from televox_pbx.sim.scenario import Behaviour, Callee
from televox_pbx.store import Store
from televox_pbx.store.campaigns import get_campaign

SECRET = "dialer-sim-secret"
START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def phone(i: int, pos: int) -> str:
    return f"+1212555{pos}{i:03d}"


def phones_for(i: int) -> list[str]:
    return [phone(i, 1), phone(i, 2)] if i % 7 in (3, 5) else [phone(i, 1)]


def callee(i: int, pos: int) -> Callee:
    kind = i % 7
    ring = 1.0 + (i % 3)
    if kind == 1:
        return Callee(behaviour=Behaviour.RING_OUT)
    if kind == 2:
        return Callee(behaviour=Behaviour.BUSY, ring_s=ring)
    if kind == 3:
        return Callee(behaviour=Behaviour.VOICEMAIL, ring_s=ring, amd_delay_s=1.0)
    if kind == 5 and pos == 1:
        return Callee(behaviour=Behaviour.NOT_FOUND)
    return Callee(behaviour=Behaviour.ANSWER, ring_s=ring, amd_delay_s=1.0)


# What the voice session would report for answered calls, by behaviour kind.
SESSION: dict[int, tuple[int | None, Disposition | None]] = {
    0: (3, Disposition.INTERESTED), 4: (2, Disposition.OPT_OUT), 5: (5, None), 6: (1, None)}
EXPECTED = {0: ("completed", 1), 1: ("no_answer", 2), 2: ("busy", 2), 3: ("voicemail", 4),
            4: ("opted_out", 1), 5: ("completed", 2), 6: ("no_answer", 2)}


def session_results(req: OriginateRequest, outcome: CallOutcome) -> tuple[
        int | None, Disposition | None]:
    return SESSION.get(int(req.phone[-3:]) % 7, (None, None))



async def test_fifty_contacts_against_the_simulator(store: Store) -> None:
    clock = FakeClock(START)
    scenario = Scenario(numbers={p: callee(i, pos) for i in range(50)
                                 for pos, p in enumerate(phones_for(i), start=1)})
    sim = Simulator(scenario, clock=clock, secret=SECRET, allow_placeholder_speech=True)
    port = await sim.start()
    client = AmiClient(AmiSettings(port=port, ping_interval_s=600), port=port,
                       secret=SecretStr(SECRET))
    await client.start()
    camp = make_campaign(
        calling_window={"start": "08:00", "end": "21:00",
                        "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
        timezone_policy={"source": "fixed", "fixed_zone": "America/New_York"},
        pacing={"calls_per_minute": 30, "max_concurrent": 5},
        retry={"retry_interval_minutes": 1, "max_attempts_per_phone": 2},
        ring_timeout_s=5, amd="asterisk")  # the simulator's AMD() tells the voicemails
    await seed(store, camp, [phones_for(i) for i in range(50)])
    await add_dnc(store, phone(49, 1))
    live_at_originate: list[int] = []
    sent_at: list[float] = []

    class Watched(CampaignRunner):
        async def originate(self, req: OriginateRequest) -> None:
            live_at_originate.append(len(sim.channels))
            sent_at.append(clock.monotonic())
            await super().originate(req)

    runner = Watched(store, client, clock, max_concurrent_global=20,
                     session_results=session_results)
    pump = asyncio.create_task(runner.pump())
    try:
        for _ in range(1200):
            await runner.dialer.tick()
            row = await get_campaign(store, camp.name)
            assert row is not None
            if row.state == "COMPLETED":
                break
            await clock.advance(0.5)
            for _ in range(4):  # let AMI events cross the socket and reach the dialer
                await asyncio.sleep(0.002)
        else:
            raise AssertionError("campaign did not complete")
    finally:
        pump.cancel()
        runner.close()
        await client.close()
        await sim.close()

    originates = sim.actions_named("Originate")
    ids = [m.action_id for m in originates]
    assert len(ids) == len(set(ids))  # exactly one Originate per attempt
    rows = await store.fetchall("SELECT id, phone FROM call_attempts")
    assert {r["id"] for r in rows} == set(ids)
    assert max(live_at_originate) < 5
    assert min(b - a for a, b in itertools.pairwise(sent_at)) >= 2.0 - 1e-9
    assert phone(49, 1) not in {r["phone"] for r in rows}
    per_contact = Counter(r["phone"][-3:] for r in rows)
    contacts = await store.fetchall("SELECT status FROM contacts ORDER BY id")
    for i, c in enumerate(contacts):
        if i == 49:
            assert c["status"] == "dnc"
            continue
        assert (c["status"], per_contact[f"{i:03d}"]) == EXPECTED[i % 7], i
