"""Crash safety end to end: the dialer runs in a subprocess against the simulator over
AMI, is SIGKILLed with 5 calls in flight, and is started again. The simulator must see
exactly one Originate per attempt, and the campaign must finish with no contact lost.
On SQLite and on PostgreSQL (both_backends: a killed process's connection drops and the
server rolls back what it had not committed)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dialer_support import make_campaign, seed

from televox_pbx.sim import Scenario, Simulator
from televox_pbx.sim.scenario import Behaviour, Callee
from televox_pbx.store import Store
from televox_pbx.store.campaigns import get_campaign

pytestmark = pytest.mark.both_backends
SECRET = "crash-test-secret"
N = 12


def zone_at_noon() -> str:
    """A fixed zone where it is around midday now, so the real-time window is open."""
    offset = 12 - datetime.now(UTC).hour  # hours east of UTC
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}")


async def start_runner(db: Path | str, port: int) -> asyncio.subprocess.Process:
    env = {**os.environ, "TELEVOX_AMI_SECRET": SECRET}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "televox_pbx.campaigns.runner", "--db", str(db),
        "--ami-port", str(port), "--max-concurrent", "5", "--exit-when-idle",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def wait_for(cond: Callable[[], bool], timeout_s: float) -> None:
    """Poll a condition on the simulator, which another process is driving."""
    for _ in range(int(timeout_s / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError


async def test_sigkill_with_calls_in_flight(store_url: str) -> None:
    db = store_url
    camp = make_campaign(
        calling_window={"start": "08:00", "end": "21:00",
                        "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
        timezone_policy={"source": "fixed", "fixed_zone": zone_at_noon()},
        pacing={"calls_per_minute": 600, "max_concurrent": 5},
        retry={"retry_interval_minutes": 0, "max_attempts_per_phone": 1},
        amd=False)
    phones = [f"+1212555{i:04d}" for i in range(N)]
    store = await Store.open(db)
    await seed(store, camp, [[p] for p in phones])
    await store.close()
    # Every callee rings for 2 s, then answers (no AudioSocket: the sim hangs up at once).
    sim = Simulator(Scenario(default=Callee(behaviour=Behaviour.ANSWER, ring_s=2.0)),
                    secret=SECRET, allow_placeholder_speech=True)
    port = await sim.start()
    try:
        first = await start_runner(db, port)
        await wait_for(lambda: len(sim.channels) >= 5, 30)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        in_flight_at_kill = len(sim.channels)
        originates_before = len(sim.actions_named("Originate"))

        second = await start_runner(db, port)
        out, err = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 0, err.decode()[-2000:]
        recovered = [json.loads(line) for line in out.decode().splitlines()
                     if '"recovered"' in line]
    finally:
        await sim.close()

    assert in_flight_at_kill >= 5 and originates_before >= 5
    # The restart found the killed run's open attempts and settled or kept each of them.
    assert len(recovered) == 1
    assert recovered[0]["kept"] + recovered[0]["finalised"] >= 5
    store = await Store.open(db)
    try:
        ids = [m.action_id for m in sim.actions_named("Originate")]
        assert len(ids) == len(set(ids)), "an attempt was originated twice"
        attempts = await store.fetchall("SELECT id, phone, status FROM call_attempts")
        assert {a["id"] for a in attempts} == set(ids)
        assert all(a["status"] in ("completed", "failed", "no_answer") for a in attempts)
        # One attempt per lead (one phone, one pass): nobody was dialled twice.
        assert Counter(a["phone"] for a in attempts) == Counter(phones)
        statuses = [r["status"] for r in await store.fetchall("SELECT status FROM contacts")]
        assert len(statuses) == N
        assert set(statuses) <= {"completed", "failed", "no_answer"}
        row = await get_campaign(store, camp.name)
        assert row is not None and row.state == "COMPLETED"
    finally:
        await store.close()
