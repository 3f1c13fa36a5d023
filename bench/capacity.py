"""How many conversations at once this box keeps at p95 first audio <= 2 s, real models.

For N = 1..max, N simulated callees (Piper voices on the simulator's AudioSocket leg) call
the real AudioSocket server and voice sessions at the same time, sharing one set of
models (faster-whisper, llama.cpp, Piper; through the engines' scheduler unless
--no-scheduler). Each callee waits for the agent's opening, then says its lines, each after
the previous reply. Per N it prints:
- first audio: from the callee's last voiced frame to the agent's first voiced frame
  after it, as the line carries it (p50, p95, max), and the opening's start after answer;
- the session's own breakdown (ms after the callee's speech end): endpoint, transcript
  (STT), first token, first audio;
- resident memory: the peak of this process (models, sessions and simulated callees) and
  what each added call cost over one call, at the peak and in the median while the calls
  ran.
Then the most concurrent calls whose p95 first audio was <= 2 s (the `capacity.
conversations` to set; `per_core` = that / cores).

The numbers depend on the box's load: say when other work shared the cores.

Usage: .venv/bin/python bench/capacity.py [--max-calls 5] [--lines 3] [--no-scheduler]
       [--save FILE.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_voice_latency import CAMPAIGN, KEYS, SCRIPTS, TurnClock, pct
from repo_models import model_settings

from televox_pbx.agent.warmup import warm_prompts
from televox_pbx.audiosocket.server import AudioSocketServer
from televox_pbx.audiosocket.session import CallAudio
from televox_pbx.campaigns.dnc import CallDnc, DncService
from televox_pbx.clock import SystemClock
from televox_pbx.sim.audio_leg import AudioLeg, LegConfig, Segment
from televox_pbx.sim.speech import rms, silence, speech_from_tts
from televox_pbx.store.db import Store
from televox_pbx.store.transcripts import StoreCallbacks, StoreCallLog, transcript
from televox_pbx.voice.engines.holder import Engines as ModelHolder
from televox_pbx.voice.session import CallPorts, Engines, SessionConfig
from televox_pbx.voice.session_factory import VoiceSessionFactory

TARGET_P95_S = 2.0
_PHONES = iter(range(10**6))  # one live attempt per number: each call its own


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass(slots=True)
class Opening:
    """Answer -> the agent's first voiced frame."""

    start: float = 0.0
    first: float | None = None

    def __call__(self, direction: str, t: float, pcm: bytes) -> None:
        if direction == "heard" and self.first is None and rms(pcm) > 300.0:
            self.first = t


@dataclass(slots=True)
class RunResult:
    calls: int
    first_audio: list[float] = field(default_factory=list)
    openings: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    rss_samples: list[float] = field(default_factory=list)  # every 0.25 s while calls ran
    collisions: int = 0
    ended: list[str] = field(default_factory=list)
    cpu_s: float = 0.0  # this process's CPU time over the run (all threads)
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"calls": self.calls, "turns": len(self.first_audio),
                "p50": pct(self.first_audio, 0.5), "p95": pct(self.first_audio, 0.95),
                "max": max(self.first_audio, default=float("nan")),
                "opening_max": max(self.openings, default=float("nan")),
                "stages_p50": {k: statistics.median(v) for k, v in self.stages.items() if v},
                "stages_p95": {k: pct(v, 0.95) for k, v in self.stages.items() if v},
                "peak_rss_mb": self.peak_rss_mb, "collisions": self.collisions,
                "held_rss_mb": statistics.median(self.rss_samples) if self.rss_samples
                else float("nan"),
                "cpu_s": self.cpu_s, "wall_s": self.wall_s,
                "ended": sorted(set(self.ended))}


def session_engines(models: ModelHolder, scheduled: bool, clock: SystemClock) -> Engines:
    engines = Engines(models.vad(), models.stt(), models.llm(), models.tts(), models.turn())
    if not scheduled:
        return engines
    from televox_pbx.voice.engines.scheduled import EngineScheduler

    return EngineScheduler.create(clock).wrap(engines)


async def run_n(n: int, lines: int, engines: Engines, store: Store,
                speech: dict[str, bytes], offset: int = 0) -> RunResult:
    """`n` calls at once, the callees' scripts from SCRIPTS[offset]."""
    clock = SystemClock()
    factory = VoiceSessionFactory(engines, CallPorts(CallDnc(DncService(store, clock=clock)),
                                                     StoreCallbacks(store), StoreCallLog(store)),
                                  clock, SessionConfig())
    result = RunResult(n)
    call_ids: list[str] = []
    sampling = True

    async def sample_rss() -> None:
        while sampling:
            now = rss_mb()
            result.rss_samples.append(now)
            result.peak_rss_mb = max(result.peak_rss_mb, now)
            await asyncio.sleep(0.25)

    async with AudioSocketServer(clock) as server:

        async def one(script: list[str]) -> None:
            call_id = str(uuid.uuid4())
            call_ids.append(call_id)
            phone = f"+1555{next(_PHONES):07d}"
            await store.execute("INSERT INTO call_attempts(id, phone) VALUES (?, ?)",
                                (call_id, phone))
            session = factory.create(campaign=CAMPAIGN, call_id=call_id, phone=phone,
                                     variables={"name": "Sam"})
            done = asyncio.Event()

            async def handler(call: CallAudio) -> None:
                try:
                    await session(call)
                finally:
                    done.set()

            server.expect(call_id, handler)
            segments = [Segment(pcm=speech[text]) for text in script[:lines]]
            segments.append(Segment(pcm=silence(0.2)))
            watch, opening = TurnClock(), Opening(clock.monotonic())

            def observe(direction: str, t: float, pcm: bytes) -> None:
                watch(direction, t, pcm)
                opening(direction, t, pcm)
            leg = AudioLeg(call_id, segments, LegConfig(
                "127.0.0.1", server.port, hangup_after_s=0.0, await_reply=True,
                max_turn_wait_s=30.0, turn_gap_s=1.5), clock, observer=observe)
            got = await leg.run()
            await done.wait()
            result.first_audio.extend(watch.samples)
            result.collisions += watch.collisions
            result.ended.append(got.reason.value)
            if opening.first is not None:
                result.openings.append(opening.first - opening.start)

        sampler = asyncio.create_task(sample_rss())
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(SCRIPTS[(offset + i) % len(SCRIPTS)]) for i in range(n)))
        result.cpu_s = time.process_time() - cpu0
        result.wall_s = time.perf_counter() - wall0
        sampling = False
        await sampler
    result.stages = {k: [] for k in KEYS}
    for call_id in call_ids:
        for row in await transcript(store, call_id):
            for k in KEYS:
                if row.speaker == "agent" and row.latency and k in row.latency:
                    result.stages[k].append(row.latency[k])
    return result


def show(r: dict[str, Any], base: dict[str, Any] | None) -> None:
    """`base`: the one-call run, for what each added call cost: over the peak (which
    catches transient buffers, such as a batch's) and over the median RSS while the calls
    ran (what the calls hold)."""
    stages = r["stages_p50"]
    added = r["calls"] - 1
    per_call = ("" if base is None or added == 0 else
                f"  +{(r['peak_rss_mb'] - base['peak_rss_mb']) / added:.0f} MB/added call "
                f"at peak, +{(r['held_rss_mb'] - base['held_rss_mb']) / added:.0f} MB held")
    print(f"N={r['calls']}: {r['turns']} turns  first audio p50 {r['p50']:.2f} s  "
          f"p95 {r['p95']:.2f} s  max {r['max']:.2f} s  opening <= {r['opening_max']:.2f} s"
          f"  collisions {r['collisions']}  peak RSS {r['peak_rss_mb']:.0f} MB{per_call}")
    turns = max(1, r["turns"])
    print(f"      CPU {r['cpu_s']:.0f} s over {r['wall_s']:.0f} s wall "
          f"({r['cpu_s'] / r['wall_s']:.2f} cores; {r['cpu_s'] / turns:.1f} CPU s per callee "
          f"turn, the opening included); calls ended: {', '.join(r['ended'])}")
    print("      stage p50 (ms after speech end): " + "  ".join(
        f"{k.removesuffix('_ms')}={v:.0f}" for k, v in stages.items()))
    print("      stage p95 (ms):                  " + "  ".join(
        f"{k.removesuffix('_ms')}={v:.0f}" for k, v in r["stages_p95"].items()))


async def main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    models = ModelHolder(model_settings())
    await models.preload()
    print(f"models loaded in {time.perf_counter() - started:.1f} s; RSS {rss_mb():.0f} MB; "
          f"{len(os.sched_getaffinity(0))} cores; load average {os.getloadavg()[0]:.1f}; "
          f"scheduler {'off' if args.no_scheduler else 'on'}")
    tts = speech_from_tts(models.tts())
    speech = {line: await tts(line) for script in SCRIPTS for line in script[:args.lines]}
    # As the daemon does before its first dial: the campaign's stable prompt evaluated.
    await warm_prompts(models.llm(), [CAMPAIGN])
    engines = session_engines(models, not args.no_scheduler, SystemClock())
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "bench.db")
        for n in range(args.min_calls, args.max_calls + 1):
            r = (await run_n(n, args.lines, engines, store, speech)).summary()
            r["load"] = os.getloadavg()[0]
            results.append(r)
            show(r, results[0] if results[0]["calls"] == 1 else None)
            if r["p95"] > TARGET_P95_S * 1.5 and not args.all:
                break  # past the target by far: more calls will not meet it
        await store.close()
    models.close()
    ok = [r["calls"] for r in results if r["p95"] <= TARGET_P95_S]
    best = max(ok, default=0)
    print(f"most concurrent calls at p95 first audio <= {TARGET_P95_S:.0f} s: {best}")
    return {"results": results, "capacity": best}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-calls", type=int, default=1)
    parser.add_argument("--max-calls", type=int, default=5)
    parser.add_argument("--lines", type=int, default=3, help="callee lines per call")
    parser.add_argument("--no-scheduler", action="store_true",
                        help="the engines as the calls ask (as before the scheduler)")
    parser.add_argument("--all", action="store_true", help="go on past a missed target")
    parser.add_argument("--save", default=None, help="write the results as JSON")
    options = parser.parse_args()
    found = asyncio.run(main(options))
    if options.save:
        Path(options.save).write_text(json.dumps(found, indent=1), encoding="utf-8")
