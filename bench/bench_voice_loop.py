"""Cost of the voice session's own loop (no models): CPU per 20 ms of call audio.

Runs a 60 s scripted call (callee talks, agent answers, a barge-in) on a FakeClock with
the scripted fakes, and prints the wall time the loop needed per simulated second.
Usage: .venv/bin/python bench/bench_voice_loop.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

# The scripted fakes live with the tests, not in the product package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from voice_fakes import (
    FakeCall,
    FakeCallbacks,
    FakeDnc,
    LoudnessVad,
    MemoryCallLog,
    ScriptedLlm,
    ScriptedStt,
    ScriptedTts,
    Timeline,
)

from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.voice.session import CallPorts, Engines, SessionConfig
from televox_pbx.voice.session_factory import VoiceSessionFactory

CAMPAIGN = Campaign.model_validate({
    "name": "bench", "caller_id": "+15550100000", "trunk": "t",
    "agent": {"persona_name": "Ava", "business": "Acme", "goal": "Talk.",
              "opening_line": "Hi, this is Ava, an AI assistant from Acme."},
    "silence": {"max_call_duration_s": 600}})
REPLY = "Sure, here is a fairly long answer, with several clauses, so that it plays a while."


async def one_call(seconds: float) -> tuple[float, int]:
    clock = FakeClock()
    call = FakeCall(clock)
    n_turns = int(seconds / 6) + 2
    engines = Engines(LoudnessVad(), ScriptedStt(["Tell me more."] * n_turns),
                      ScriptedLlm([REPLY] * n_turns), ScriptedTts())
    factory = VoiceSessionFactory(engines, CallPorts(FakeDnc(clock), FakeCallbacks(),
                                                     MemoryCallLog()), clock, SessionConfig())
    session = factory.create(campaign=CAMPAIGN, call_id=call.call_id, phone="+15550198000")
    handle = session._handle
    spent = [0.0, 0]

    async def timed(ev: object) -> None:  # the session's own work per event
        t = time.perf_counter()
        await handle(ev)  # type: ignore[arg-type]
        spent[0] += time.perf_counter() - t
        spent[1] += 1

    session._handle = timed  # type: ignore[method-assign]
    pacer = asyncio.create_task(call.pacer())
    task = asyncio.create_task(session(call))
    tl = Timeline(clock, call)
    started = time.perf_counter()
    while clock.monotonic() < seconds:
        await tl.say(1.5)
        await tl.silence(1.5)  # agent answers while frames of silence keep coming
        await tl.say(0.5)  # barge-in
        await tl.silence(2.5)
    wall = time.perf_counter() - started
    call.peer_hangup()
    await task
    pacer.cancel()
    print(f"session event handling: {spent[1]} events, {spent[0]:.3f} s "
          f"({spent[0] / (seconds / 0.02) * 1e6:.0f} us per 20 ms of call)")
    return wall, len(call.output.sent)


def main() -> None:
    seconds = 60.0
    wall, frames = asyncio.run(one_call(seconds))
    print(f"simulated call: {seconds:.0f} s, frames sent: {frames}")
    print(f"whole harness wall time (FakeClock + fakes + session): {wall:.3f} s "
          f"({wall / (seconds / 0.02) * 1e6:.0f} us per 20 ms frame)")


if __name__ == "__main__":
    main()
