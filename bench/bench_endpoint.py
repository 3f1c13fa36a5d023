"""End of turn with and without the Smart Turn model: premature cut-offs and endpoint delay.

Callee utterances are synthesized with Piper at 8 kHz (the phone path), at three speaking
rates, each rendered anew (Piper's prosody varies from one render to the next). Those with
a mid-sentence pause are rendered whole, with a comma where the pause goes (so the voice
sounds unfinished there), and the comma's short gap is stretched to 0.5, 0.8 or 1.2 s.
Each is fed to the real listener (Silero VAD, the endpointer) in 20 ms frames followed by
3 s of line silence, with the end-of-turn model off, then on. A model verdict arrives
as late as the model really took on this CPU (measured per call).

    premature: an end of turn inside the mid-sentence pause (the callee is cut off)
    delay: from the end of the callee's voice to the end-of-turn decision

Run: PYTHONPATH=. python bench/bench_endpoint.py [--cache-dir var/models]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from televox_pbx.audiosocket.session import AudioIn
from televox_pbx.config.settings import ModelSettings
from televox_pbx.voice import turn_events as te
from televox_pbx.voice.call_setup import SessionConfig
from televox_pbx.voice.endpointing import EndpointConfig
from televox_pbx.voice.engines.holder import Engines
from televox_pbx.voice.engines.tts_piper import PiperTts
from televox_pbx.voice.engines.turn_smart import SmartTurn
from televox_pbx.voice.listener import Listener

RATE = 8000
FRAME = 320  # 20 ms at 8 kHz
PAUSED = [
    "I was thinking, maybe Tuesday at three would work for me.",
    "Well, let me check my calendar first.",
    "My address is, twelve Oak Street in Springfield.",
    "I'm not sure, I might have to work that day.",
    "Could you tell me, how much the cleaning costs?",
    "Actually, I wanted to ask about the warranty.",
    "So the appointment is, on Tuesday at three?",
    "If it's possible, I'd rather come in the morning.",
    "Yes, but I need to, check with my husband first.",
    "The thing is, I already switched dentists.",
    "Hmm, what time do you close on Fridays?",
    "I think, the best number to reach me is this one.",
]
WHOLE = [
    "Yes, that works.", "No thank you.", "Tuesday at three is fine.", "Who is this?",
    "Please take me off your list.", "Sure, go ahead.", "I can't make it that day.",
    "What does it cost?", "That sounds good to me.", "Can you call me back tomorrow?",
    "I'm not interested.", "Okay, see you then.",
]
PAUSES = (0.5, 0.8, 1.2)


@dataclass(frozen=True)
class Utterance:
    text: str
    pcm: bytes
    voice_end: float  # seconds: where the voice really ends
    gap: tuple[float, float] | None  # the mid-sentence pause (start, end), if any


def _levels(pcm: bytes) -> np.ndarray:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    n = len(x) // 80
    return np.sqrt((x[: n * 80].reshape(n, 80) ** 2).mean(axis=1))  # 10 ms windows


def voice_span(pcm: bytes) -> tuple[float, float]:
    lv = _levels(pcm)
    loud = np.flatnonzero(lv > lv.max() * 0.03)
    return loud[0] * 0.01, (loud[-1] + 1) * 0.01


def stretch_gap(pcm: bytes, pause_s: float) -> tuple[bytes, tuple[float, float]] | None:
    """Widen the longest quiet gap inside the voice to `pause_s` (the comma's)."""
    lv = _levels(pcm)
    start, end = voice_span(pcm)
    quiet = lv < lv.max() * 0.03
    best: tuple[int, int] | None = None
    i = int(start / 0.01)
    while i < int(end / 0.01):
        if quiet[i]:
            j = i
            while j < len(quiet) and quiet[j]:
                j += 1
            if best is None or j - i > best[1] - best[0]:
                best = (i, j)
            i = j
        i += 1
    if best is None or best[1] - best[0] < 4:
        return None
    cut = best[0] * 80 * 2 + (best[1] - best[0]) * 80  # middle of the gap, in bytes
    cut -= cut % 2
    natural = (best[1] - best[0]) * 0.01
    extra = bytes(round(max(0.0, pause_s - natural) * RATE) * 2)
    return pcm[:cut] + extra + pcm[cut:], (best[0] * 0.01,
                                           best[0] * 0.01 + max(natural, pause_s))


RATES = (0.9, 1.0, 1.15)  # Piper length_scale: faster, normal, slower speech


def corpus(engines: Engines) -> list[Utterance]:
    model = engines.registry.resolve("piper-joe-medium").main
    out: list[Utterance] = []
    for length_scale in RATES:
        tts = PiperTts(model, length_scale=length_scale)
        out += _rendered(tts)
        tts.close()
    return out


def _rendered(tts: PiperTts) -> list[Utterance]:
    out: list[Utterance] = []
    for text in WHOLE:
        pcm = tts.synthesize_pcm8k(text)
        out.append(Utterance(text, pcm, voice_span(pcm)[1], None))
    for text in PAUSED:
        for pause in PAUSES:
            pcm = tts.synthesize_pcm8k(text)
            stretched = stretch_gap(pcm, pause)
            if stretched is None:
                print(f"  (no gap found in {text!r}; skipped)")
                continue
            audio, gap = stretched
            out.append(Utterance(f"{text} [{pause}s]", audio, voice_span(audio)[1], gap))
    return out


@dataclass
class Outcome:
    premature: bool
    delay: float | None  # None: never ended
    model_ms: list[float]


_MEMO: dict[bytes, tuple[float, float]] = {}  # audio -> (P, seconds): one run per check


def verdict_of(model: SmartTurn, audio: bytes) -> tuple[float, float]:
    key = hashlib.sha1(audio).digest()
    if key not in _MEMO:
        started = time.perf_counter()
        prob = model.complete_prob(audio, RATE)
        _MEMO[key] = (prob, time.perf_counter() - started)
    return _MEMO[key]


def run(u: Utterance, engines: Engines, model: SmartTurn | None,
        endpoint: EndpointConfig) -> Outcome:
    listener = Listener(engines.vad(), SessionConfig(endpoint=endpoint),
                        turn_model=model is not None)
    pcm = bytes(RATE // 5 * 2) + u.pcm + bytes(3 * RATE * 2)  # 0.2 s lead, 3 s after
    lead = 0.2
    verdicts: list[tuple[float, int, float]] = []  # (due, check, P)
    stops: list[te.SpeechStopped] = []
    model_ms: list[float] = []
    for k in range(0, len(pcm) - FRAME + 1, FRAME):
        t = k / 2 / RATE
        now = t + FRAME / 2 / RATE
        events = listener.feed(AudioIn(pcm[k:k + FRAME], RATE, t), False)
        for due, check, prob in [v for v in verdicts if v[0] <= now]:
            verdicts.remove((due, check, prob))
            events += listener.verdict(check, prob, now)
        events += listener.tick(now)
        stops += [e for e in events if isinstance(e, te.SpeechStopped)]
        for check, audio in listener.take_checks():
            assert model is not None
            prob, spent = verdict_of(model, audio)
            model_ms.append(spent * 1000)
            verdicts.append((now + spent, check, prob))
    voice_end = lead + u.voice_end
    premature = u.gap is not None and any(s.at < lead + u.gap[1] for s in stops)
    # The endpointer times the end where the energy ends; a long final fricative may
    # fade under its floor a little before ours.
    final = [s for s in stops if s.last_speech >= voice_end - 0.2]
    delay = final[0].at - voice_end if final else None
    return Outcome(premature, delay, model_ms)


def report(name: str, outcomes: list[Outcome], paused: list[bool]) -> None:
    n_paused = sum(paused)
    cut = sum(o.premature for o in outcomes)
    delays = sorted(o.delay for o, p in zip(outcomes, paused, strict=True)
                    if o.delay is not None and not o.premature)
    whole = sorted(o.delay for o, p in zip(outcomes, paused, strict=True)
                   if o.delay is not None and not p)
    never = sum(o.delay is None for o in outcomes)
    ms = [m for o in outcomes for m in o.model_ms]

    def pct(xs: list[float], q: float) -> float:
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    slow = sum(d >= 1.0 for d in delays)
    print(f"{name:<52} premature {cut:>2}/{n_paused} ({100 * cut / max(1, n_paused):3.0f} %)"
          f"  delay p50 {pct(delays, 0.5) * 1000:4.0f} ms  mean "
          f"{statistics.mean(delays) * 1000:4.0f} ms  p95 {pct(delays, 0.95) * 1000:4.0f} ms"
          f"  >=1 s {slow:>2}/{len(delays)}"
          f"  (whole sentences p50 {pct(whole, 0.5) * 1000:4.0f} ms)"
          + (f"  never ended {never}" if never else "")
          + (f"  model {statistics.mean(ms):.0f} ms/call, {len(ms)} calls" if ms else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", type=Path, default=Path("var/models"))
    args = ap.parse_args()
    engines = Engines(ModelSettings(cache_dir=args.cache_dir))
    model = engines.turn()
    if model is None:
        raise SystemExit("smart-turn-v3.2 is not available (run scripts/setup.sh)")
    utterances = corpus(engines)
    paused = [u.gap is not None for u in utterances]
    print(f"{len(utterances)} utterances: {len(paused) - sum(paused)} whole, {sum(paused)} with a "
          f"mid-sentence pause of {', '.join(map(str, PAUSES))} s")
    base = EndpointConfig()
    configs: list[tuple[str, SmartTurn | None, EndpointConfig]] = [
        (f"silence timer alone ({base.silence_s} s)", None, base),
        ("silence timer alone (1.0 s)", None, replace(base, silence_s=1.0))]
    configs.append((f"smart turn, the defaults (P>={base.turn_threshold}: "
                    f"{base.turn_complete_s} s, else {base.turn_incomplete_s} s)", model, base))
    for complete_s, incomplete_s, threshold in ((0.3, 1.5, 0.5), (0.7, 1.5, 0.5),
                                                (0.3, 1.2, 0.8), (0.3, 1.5, 0.9),
                                                (0.3, 1.0, 0.9)):
        configs.append((f"smart turn (P>={threshold}: {complete_s} s, else {incomplete_s} s)",
                        model, replace(base, turn_complete_s=complete_s,
                                       turn_incomplete_s=incomplete_s,
                                       turn_threshold=threshold)))
    for name, m, endpoint in configs:
        report(name, [run(u, engines, m, endpoint) for u in utterances], paused)
    engines.close()


if __name__ == "__main__":
    main()
