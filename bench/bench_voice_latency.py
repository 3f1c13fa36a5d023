"""Voice-to-voice latency with the real models, measured where a caller would feel it.

Simulated callees (Piper voices on the simulator's Asterisk-side AudioSocket leg) talk to
the real AudioSocket server and voice session (faster-whisper, llama.cpp, Piper). For every
callee line: from the last non-silent frame the callee sent to the first non-silent agent
frame the simulator received. Callees wait for each reply to finish (no barge-in).
Prints per-turn values and p50/p95 for one call at a time, then for 4 concurrent calls,
plus the session's own breakdown (transcripts.latency_json) so we see where time goes.

Usage: .venv/bin/python bench/bench_voice_latency.py [--calls N] [--concurrent-calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from repo_models import model_settings

from televox_pbx.audiosocket.server import AudioSocketServer
from televox_pbx.audiosocket.session import CallAudio
from televox_pbx.campaigns.dnc import CallDnc, DncService
from televox_pbx.clock import SystemClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.sim.audio_leg import AudioLeg, LegConfig, Segment
from televox_pbx.sim.speech import rms, silence, speech_from_tts
from televox_pbx.store.db import Store
from televox_pbx.store.transcripts import StoreCallbacks, StoreCallLog, transcript
from televox_pbx.voice.engines.holder import Engines as ModelHolder
from televox_pbx.voice.session import CallPorts, Engines, SessionConfig
from televox_pbx.voice.session_factory import VoiceSessionFactory

CAMPAIGN = Campaign.model_validate({
    "name": "bench", "caller_id": "+15550100000", "trunk": "trunk",
    "agent": {"persona_name": "Ava", "business": "Acme Solar",
              "opening_line": "Hi {{NAME}}, this is Ava, an AI assistant from Acme Solar. "
                              "Could we book a free solar consultation?",
              "goal": "Book a free solar consultation at a time that suits them. Answer "
                      "questions about it briefly: it is free, takes about 30 minutes, "
                      "an engineer visits the home and checks the roof."},
    "silence": {"reprompt_after_s": 10, "hangup_after_s": 12, "max_call_duration_s": 240}})

# Five lines per callee; none asks to stop or says goodbye, so each call yields 5 turns.
SCRIPTS: list[list[str]] = [
    ["Hi, sorry, who is this?", "What does the consultation involve?",
     "How long does it take?", "Do I need to be at home for it?",
     "Okay. What days do you have next week?"],
    ["Hello. Is this about my electricity bill?", "I see. Is it really free?",
     "We have a pretty old roof. Is that a problem?", "Would someone come to the house?",
     "Maybe. Can you tell me more about the savings?"],
    ["Yes, speaking.", "I'm not sure, I rent this place.",
     "My landlord might be interested though.", "What would he need to do?",
     "Alright, what information do you need from me?"],
    ["Hi. What company did you say?", "How did you get my number?",
     "Hmm, okay. How much do panels usually cost?", "Are there any tax credits?",
     "Could the engineer come on a Saturday?"],
    ["Good afternoon.", "I already have a few panels on the garage.",
     "Could you look at adding a battery?", "How long would the installation take?",
     "Sounds reasonable. What happens after the visit?"],
    ["Hello?", "Oh, an AI. That's interesting.", "What's the weather got to do with it?",
     "We get a lot of shade from the trees out back.", "Is the consultation done in person?"],
    ["Hi there.", "I've been thinking about solar for a while actually.",
     "What kind of panels do you install?", "Do you offer financing?",
     "How soon could someone come out?"],
    ["Yes?", "Is this a sales call?", "What would I have to sign?",
     "Do you work in my area?", "What time of day are the visits?"],
]
_PHONES = iter(range(10**6))
KEYS = ("endpoint_ms", "transcript_ms", "first_token_ms", "first_audio_ms", "first_frame_ms")
VOICE_RMS = 300.0  # the simulator's own threshold for "someone is talking"


@dataclass(slots=True)
class TurnClock:
    """Watches one leg's frames: callee speech end -> first agent voice after it."""

    samples: list[float] = field(default_factory=list)
    overlap_s: float = 0.0  # agent audio heard while the callee was talking
    # Agent voice sooner than any endpoint allows (< 0.25 s): it was already talking when
    # the callee resumed after a pause the endpointer took for the end. Not a sample.
    collisions: int = 0
    _said_end: float | None = None
    _awaiting: bool = False

    def __call__(self, direction: str, t: float, pcm: bytes) -> None:
        voiced = rms(pcm) > VOICE_RMS
        if direction == "said":
            if voiced:
                self._said_end = t
                self._awaiting = True
            return
        if not voiced or self._said_end is None:
            return
        if t - self._said_end < 0.06:  # the callee is still talking (frames every 20 ms)
            self.overlap_s += len(pcm) / 16000
        elif self._awaiting:
            if t - self._said_end < 0.25:
                self.collisions += 1
            else:
                self.samples.append(t - self._said_end)
            self._awaiting = False


@dataclass(slots=True)
class CallRun:
    call_id: str
    clock: TurnClock
    reason: str = ""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def run_calls(scripts: list[list[str]], concurrency: int, models: ModelHolder,
                    store: Store, speech: dict[str, bytes], config: SessionConfig
                    ) -> list[CallRun]:
    clock = SystemClock()
    factory = VoiceSessionFactory(
        Engines(models.vad(), models.stt(), models.llm(), models.tts(), models.turn()),
        CallPorts(CallDnc(DncService(store, clock=clock)), StoreCallbacks(store),
                  StoreCallLog(store)),
        clock, config)
    runs: list[CallRun] = []
    async with AudioSocketServer(clock) as server:

        async def one(lines: list[str]) -> None:
            call_id = str(uuid.uuid4())
            # One live attempt per number (the store's unique index): each call its own.
            phone = f"+1555{next(_PHONES):07d}"
            await store.execute("INSERT INTO call_attempts(id, phone) VALUES (?, ?)",
                                (call_id, phone))
            session = factory.create(campaign=CAMPAIGN, call_id=call_id,
                                     phone=phone, variables={"name": "Sam"})
            done = asyncio.Event()

            async def handler(call: CallAudio) -> None:
                try:
                    await session(call)
                finally:
                    done.set()

            server.expect(call_id, handler)
            # A short silent "line" at the end: wait for the last reply, then hang up.
            segments = [Segment(pcm=speech[text]) for text in lines]
            segments.append(Segment(pcm=silence(0.2)))
            watch = TurnClock()
            leg = AudioLeg(call_id, segments, LegConfig(
                "127.0.0.1", server.port, hangup_after_s=0.0, await_reply=True,
                max_turn_wait_s=30.0, turn_gap_s=1.5), clock, observer=watch)
            result = await leg.run()
            await done.wait()
            runs.append(CallRun(call_id, watch, result.reason.value))

        for i in range(0, len(scripts), concurrency):
            await asyncio.gather(*(one(s) for s in scripts[i:i + concurrency]))
    return runs


async def report(title: str, runs: list[CallRun], store: Store, show: bool) -> None:
    values = [s for r in runs for s in r.clock.samples]
    print(f"\n== {title}: {len(values)} turns over {len(runs)} calls")
    for n, r in enumerate(runs, 1):
        print(f"  call {n} ({r.reason}, overlap {r.clock.overlap_s:.1f} s, "
              f"collisions {r.clock.collisions}): "
              + " ".join(f"{s:.2f}" for s in r.clock.samples))
    print(f"  voice-to-voice  p50 = {pct(values, 0.5):.2f} s   p95 = {pct(values, 0.95):.2f} s"
          f"   max = {max(values, default=float('nan')):.2f} s")
    breakdown: dict[str, list[float]] = {k: [] for k in KEYS}
    for r in runs:
        for row in await transcript(store, r.call_id):
            if show:
                lat = "  ".join(f"{k}={row.latency[k]:.0f}" for k in KEYS
                                if row.latency and k in row.latency)
                print(f"    {row.speaker:>6}: {row.text}  {lat}")
            for k in KEYS:
                if row.latency and k in row.latency:
                    breakdown[k].append(row.latency[k])
    print("  session-side p50 (ms after callee speech end): " + "  ".join(
        f"{k}={statistics.median(v):.0f}" for k, v in breakdown.items() if v))
    print("  session-side p95 (ms): " + "  ".join(
        f"{k}={pct(v, 0.95):.0f}" for k, v in breakdown.items() if v))


async def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    models = ModelHolder(model_settings())
    await models.preload()
    print(f"models loaded in {time.perf_counter() - started:.1f} s")
    tts = speech_from_tts(models.tts())
    speech = {line: await tts(line) for script in SCRIPTS for line in script}
    config = SessionConfig()
    if args.baseline:
        # The session as it was before provisional turns and word-cut first clauses were
        # tuned: a turn that starts at 0.2 s, a first clause of >= 12 characters.
        config = SessionConfig(first_clause_chars=None, first_clause_max_words=None)
    if args.speculate_after is not None:
        config = replace(config, speculate_after_s=args.speculate_after)
    print(f"session config: endpoint silence {config.endpoint.silence_s} s, first clause "
          f">= {config.first_clause_chars or config.min_clause_chars} chars and <= "
          f"{config.first_clause_max_words} words, turn starts provisionally after "
          f"{config.speculate_after_s} s of pause")
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "bench.db")
        if args.calls:
            runs = await run_calls(SCRIPTS[:args.calls], 1, models, store, speech,
                                  config)
            await report("1 call at a time", runs, store, args.show)
        if args.concurrent_calls:
            runs = await run_calls(SCRIPTS[:args.concurrent_calls], 4, models, store,
                                  speech, config)
            await report("4 concurrent calls", runs, store, args.show)
        await store.close()
    models.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5, help="calls run one at a time")
    parser.add_argument("--concurrent-calls", type=int, default=8,
                        help="calls run 4 at a time")
    parser.add_argument("--show", action="store_true", help="print the transcripts")
    parser.add_argument("--speculate-after", type=float, default=None,
                        help="pause (s) after which a turn starts provisionally")
    parser.add_argument("--baseline", action="store_true",
                        help="first clause >= 12 chars and no word cut (for comparison)")
    asyncio.run(main(parser.parse_args()))
