"""Machine detection in the audio stream: accuracy and decision time on the greeting set.

The greetings (bench/greeting_set.py: 12 people, 12 answering machines, five voices, with
and without a beep) as a real Asterisk 22 streamed them to AudioSocket
(bench/record_greetings.py wrote them to bench/greetings/*.ulaw). Each is fed in 20 ms
frames, as the session does, to the real listener (Silero VAD, the endpointer) and the
detector (voice/machine_detect.py); the utterances the listener reports (at its first
pause and at its endpoint) are transcribed by whisper, and each transcript reaches the
detector as late as whisper really took on this CPU. With `--no-words` the transcripts
are left out.

    decided: seconds from the answer (AudioSocket connect) to the verdict
    after end: for people, from the end of their greeting to the verdict (the opening
               is rendered and held meanwhile, so it starts a frame or two later)
    message: for machines (voicemail left), from the end of the greeting's audio (its
               beep included) to the start of the message; negative would be talking
               over it (then the message waits for the beep, or 1.5 s of silence)

Run: PYTHONPATH=.:bench:tests/real_pbx python bench/bench_machine_detect.py [--cache-dir var/models]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from greeting_set import GREETINGS, RATE, Greeting
from record_greetings import OUT
from rtp_pcap import ulaw_decode  # tests/real_pbx

from televox_pbx.audiosocket.session import AudioIn
from televox_pbx.config.settings import ModelSettings
from televox_pbx.domain import AmdStatus
from televox_pbx.voice import turn_events as te
from televox_pbx.voice.call_setup import SessionConfig
from televox_pbx.voice.endpointing import BeepDetector, rms
from televox_pbx.voice.engines.holder import Engines
from televox_pbx.voice.interfaces import AudioChunk
from televox_pbx.voice.listener import Listener
from televox_pbx.voice.machine_detect import Decision, MachineDetector, machine_words

FRAME = 0.02
LATE_S = 8.0  # voice/screening.py: a person's verdict the words may overturn until then
N = int(RATE * FRAME)


@dataclass
class Outcome:
    g: Greeting
    decision: Decision
    after_end: float | None  # people: verdict - greeting end
    message_gap: float | None  # machines: message start - end of the greeting's audio
    late: float | None = None  # a person's verdict overturned by the words at this time

    @property
    def treated_right(self) -> bool:
        """A person is answered (HUMAN or NOTSURE); a machine gets the voicemail path
        (first verdict only: a late one has talked over part of the greeting)."""
        machine = self.decision.status is AmdStatus.MACHINE
        return machine == (self.g.kind == "machine")

    @property
    def right_in_the_end(self) -> bool:
        machine = self.decision.status is AmdStatus.MACHINE or self.late is not None
        return machine == (self.g.kind == "machine")


def audio_end(pcm: np.ndarray) -> float:
    """End of the last frame above the line's noise: the greeting's end, beep included."""
    loud = [i for i in range(0, len(pcm) - N, N) if rms(pcm[i:i + N].tobytes()) > 200]
    return (loud[-1] + N) / RATE if loud else 0.0


def run_one(g: Greeting, pcm: np.ndarray, engines: Engines, words: bool,
            config: SessionConfig) -> Outcome:
    listener = Listener(engines.vad(), config)
    listener.start(0.0)
    detector = MachineDetector(0.0, config.machine_detect)
    stt = engines.stt()
    pending: list[tuple[float, str]] = []  # (delivered at, text)
    decision: Decision | None = None
    vm_beep = BeepDetector(RATE)
    message_at: float | None = None
    late: float | None = None
    for i in range(0, len(pcm) - N + 1, N):
        t = i / RATE
        frame = pcm[i:i + N].tobytes()
        events = listener.feed(AudioIn(frame, RATE, t), False)
        now = t + FRAME
        screening = decision is None or (
            decision.status is not AmdStatus.MACHINE and late is None and now <= LATE_S)
        if screening:  # (after a person's verdict, only the words are still heard)
            for ev in events:
                if words and isinstance(ev, te.SpeechPaused | te.SpeechStopped) and ev.audio:
                    began = time.perf_counter()
                    text = asyncio.run(stt.transcribe(AudioChunk(ev.audio, RATE))).text
                    pending.append((now + time.perf_counter() - began, text))
            for at, text in [p for p in pending if p[0] <= now]:
                pending.remove((at, text))
                if decision is None:
                    decision = detector.heard(text, at)
                elif machine_words(text, strict=True):
                    late = at
        if decision is None:
            decision = detector.audio(t, *listener.last_heard) or detector.tick(now)
            if decision is not None and decision.beep:
                message_at = decision.at
        elif (decision.status is AmdStatus.MACHINE or late) and message_at is None and (
                vm_beep.feed(frame) or now - listener.last_voice >= config.voicemail_silence_s):
            message_at = now  # voicemail mode: after a beep, or voicemail_silence_s of quiet
    assert decision is not None, g.name
    after_end = None
    if g.kind == "human" and decision.greeting_end is not None \
            and decision.status is not AmdStatus.MACHINE:
        after_end = decision.at - decision.greeting_end
    gap = message_at - audio_end(pcm) if message_at is not None else None
    return Outcome(g, decision, after_end, gap, late)


def summary(outcomes: list[Outcome], label: str) -> None:
    print(f"\n{label}")
    for kind in ("human", "machine"):
        mine = [o for o in outcomes if o.g.kind == kind]
        right = sum(o.treated_right for o in mine)
        decided = [o.decision.at for o in mine]
        line = (f"  {kind:8s} {right}/{len(mine)} right ({100 * right / len(mine):.0f} %);"
                f" decided after the answer: median {statistics.median(decided):.2f} s,"
                f" max {max(decided):.2f} s")
        if kind == "human":
            ends = [o.after_end for o in mine if o.after_end is not None]
            if ends:
                line += (f"; after the greeting's end: median {statistics.median(ends):.2f}"
                         f" s, max {max(ends):.2f} s")
        else:
            gaps = [o.message_gap for o in mine if o.message_gap is not None]
            if gaps:
                over = sum(g < -0.05 for g in gaps)  # a frame's rounding is not
                line += (f"; message after the greeting's end: median "
                         f"{statistics.median(gaps):.2f} s, min {min(gaps):.2f} s"
                         f" ({over} talked over it)")
        print(line)
    total = sum(o.treated_right for o in outcomes)
    print(f"  all      {total}/{len(outcomes)} ({100 * total / len(outcomes):.0f} %)")
    late = [o for o in outcomes if o.late is not None]
    if late:
        end = sum(o.right_in_the_end for o in outcomes)
        print(f"  + {len(late)} turned to MACHINE later by their words (the opening had "
              f"begun over them): {end}/{len(outcomes)} right in the end")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache-dir", type=Path, default=Path("var/models"))
    ap.add_argument("--no-words", action="store_true", help="audio only, no transcripts")
    args = ap.parse_args()
    engines = Engines(ModelSettings(cache_dir=args.cache_dir))
    config = SessionConfig()
    runs = [False] if args.no_words else [True, False]
    for words in runs:
        outcomes = []
        print(f"\n{'greeting':18s} {'kind':8s} {'voice':5s} {'verdict':8s} {'cause':20s}"
              f" {'decided':>7s} {'after end':>9s} {'message':>7s}")
        for g in GREETINGS:
            path = OUT / f"{g.name}.ulaw"
            pcm = np.frombuffer(ulaw_decode(path.read_bytes()), dtype="<i2")
            o = run_one(g, pcm, engines, words, config)
            outcomes.append(o)
            d = o.decision
            status = d.status.value if o.late is None else f"{d.status.value}>MACH"
            print(f"{g.name:18s} {g.kind:8s} {g.voice:5s} {status:8s} {d.cause:20s}"
                  f" {d.at:7.2f} {_s(o.after_end):>9s} {_s(o.message_gap):>7s}"
                  f"{'' if o.treated_right else '   WRONG'}"
                  f"{'' if o.late is None else f' (words at {o.late:.2f} s)'}")
        summary(outcomes, "with the transcripts" if words else "audio only (no words)")
    engines.close()


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


if __name__ == "__main__":
    main()
