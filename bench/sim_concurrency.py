"""How many simultaneous simulated calls the simulator + AMI client sustain.

Places N answered calls at once against the in-process simulator and a tiny echo
AudioSocket server (both real TCP on 127.0.0.1), and prints originate throughput, AMI
events per second through the client, and how well the callee's 20 ms audio kept pace.

    .venv/bin/python bench/sim_concurrency.py [N] [call_seconds]
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid

from pydantic import SecretStr

from televox_pbx.ami.client import AmiClient
from televox_pbx.ami.codec import AmiMessage
from televox_pbx.ami.tracker import CallTracker
from televox_pbx.clock import SystemClock
from televox_pbx.config.settings import AmiSettings
from televox_pbx.domain import CallStatus, OriginateRequest
from televox_pbx.sim import Callee, Scenario, ScriptItem, Simulator
from televox_pbx.sim.echo_server import EchoAudioSocketServer


async def main(n: int, call_s: float) -> None:
    echo = EchoAudioSocketServer(reply="echo", hangup_after_s=call_s)
    await echo.start()
    scenario = Scenario(default=Callee(ring_s=0.2, script=[ScriptItem(dtmf="1", at_s=0.5)]))
    sim = Simulator(scenario, audiosocket=("127.0.0.1", echo.port), secret="bench")
    port = await sim.start()
    client = AmiClient(AmiSettings(port=port), secret=SecretStr("bench"))
    tracker = CallTracker(SystemClock())
    finals: dict[str, CallStatus] = {}
    all_done = asyncio.Event()
    events = 0

    def on_event(msg: AmiMessage) -> None:
        nonlocal events
        events += 1
        for o in tracker.feed(msg):
            if o.status.is_final:
                finals[o.call_id] = o.status
                if len(finals) == n:
                    all_done.set()

    client.subscribe(on_event)
    await client.start()
    ids = [str(uuid.uuid4()) for _ in range(n)]
    for cid in ids:
        tracker.register(cid)
    t0 = time.perf_counter()
    await asyncio.gather(*(client.originate(OriginateRequest(
        call_id=cid, phone=f"1555{i:06d}", trunk="trunk", caller_id="100"))
        for i, cid in enumerate(ids)))
    t_orig = time.perf_counter() - t0
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_done.wait(), call_s + 60)
    wall = time.perf_counter() - t0
    sessions = [echo.sessions[c] for c in ids if c in echo.sessions]
    # Frames received per second of call, vs the 50/s real time pace.
    paced = [s.frames_in / call_s for s in sessions]
    completed = sum(1 for s in finals.values() if s == CallStatus.COMPLETED)
    print(f"calls={n} call_s={call_s}")
    print(f"originate_all_s={t_orig:.3f} originates_per_s={n / t_orig:.0f}")
    print(f"completed={completed}/{n} wall_s={wall:.2f}")
    print(f"ami_events={events} ami_events_per_s={events / wall:.0f}")
    if paced:
        paced.sort()
        print(f"frames_per_s min={paced[0]:.1f} median={paced[len(paced) // 2]:.1f} "
              f"(target 50.0)")
    dtmf_ok = sum(1 for s in sessions if s.dtmf == ["1"])
    print(f"dtmf_delivered={dtmf_ok}/{n}")
    await client.close()
    await sim.close()
    await echo.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200,
                     float(sys.argv[2]) if len(sys.argv) > 2 else 5.0))
