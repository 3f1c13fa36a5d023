"""Answering-machine detection in the audio stream (campaign `amd: stream`), sans-IO.

While the agent waits to speak, the callee's first seconds decide: a person says a short
"Hello?" and waits; a voicemail greeting talks on ("Hi, you've reached Sam Jones, I can't
take your call...") and may end in a beep. Frames go in with the VAD's probability, the
transcripts of what was said so far go in as they come, time passes with `tick`; out
comes one `Decision` (HUMAN, MACHINE or NOTSURE, with a cause in the style of Asterisk's
AMDCAUSE). No models and no clock inside: times are the caller's.

Tuned human-first, like asterisk/amd.conf: calling a person a machine leaves them a
recording or hangs up on them, while missing a machine only costs the opening said to a
greeting. So MACHINE needs a long greeting, a beep or the words of one; a short greeting
followed by a pause is a person, and so is silence (NOTSURE is answered as a person).
Human greetings must be answered quickly (the opening starts <= 0.6 s after them), which
bounds `after_greeting_s`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from televox_pbx.domain import AmdStatus
from televox_pbx.voice.endpointing import BeepDetector, rms

RATE = 8000

# Words only a recorded greeting says. Matched on whisper's lower-cased text.
_MACHINE_WORDS = re.compile(
    r"leave (me |us )?(a |your )?(message|name|number)|after the (tone|beep)"
    r"|at the (tone|beep)|not available|unavailable|can'?t (take|come to|get to|answer)"
    r"|cannot (take|come to|get to|answer)|(you'?ve|you have) reached|voice ?mail"
    r"|mailbox|away from (the|my) (phone|desk)|get back to you|return your call"
    r"|record your message|is not in service|can'?t talk|cannot talk"
    r"|missed (your|my|the) call|sorry i missed")
# ...and, of those, what a person on the line would not say either: enough to overturn a
# person's verdict once the agent is talking (voice/screening.py).
_RECORDING_WORDS = re.compile(
    r"leave (me |us )?(a |your )?(message|name|number)|after the (tone|beep)"
    r"|at the (tone|beep)|(you'?ve|you have) reached|voice ?mail|mailbox"
    r"|record your message|(are|is) (currently )?(not available|unavailable)")


def machine_words(text: str, *, strict: bool = False) -> bool:
    """The transcript sounds like a recorded greeting (`strict`: only a recording says
    it; "I can't talk right now" a person may)."""
    words = _RECORDING_WORDS if strict else _MACHINE_WORDS
    return words.search(text.lower().replace("\u2019", "'")) is not None


@dataclass(frozen=True, slots=True)
class DetectConfig:
    # Voice is timed by its energy, which the VAD only vouches for: on the real PBX
    # recordings Silero's probability lagged the voice by ~0.1 s, held on ~0.2 s after
    # it, and stayed at 0.2-0.35 through a whole high-pitched "Hello?".
    vad_floor: float = 0.15  # some frame of a burst must reach this to start a greeting
    silence_level: float = 256.0  # frame RMS below this is silence (amd.conf's default)
    noise_ratio: float = 4.0  # ...and below this many times the line's noise floor
    # Inside the greeting, a frame this far below its loudest (-30 dB) is silence.
    tail_ratio: float = 0.03
    onset_s: float = 0.08  # voice this long starts the greeting (clicks do not)
    # A pause this long after a short greeting ("Hello?", "Yes?"): a person waiting for
    # an answer. The opening must start within 0.6 s of their greeting's end.
    after_greeting_s: float = 0.4
    # A greeting longer than `short_greeting_s` must be followed by a longer pause: a
    # recording pauses ~0.4-0.5 s between its sentences ("...of Sam Jones. | I can't
    # take your call"), and the transcript of what it said so far may still come.
    short_greeting_s: float = 1.0
    after_long_greeting_s: float = 0.8
    # A greeting spanning longer than this (start to last voice) is a recording.
    max_human_greeting_s: float = 2.6
    initial_silence_s: float = 2.5  # nobody spoke: NOTSURE (a person waiting)
    total_s: float = 6.0  # undecided by then: NOTSURE


@dataclass(frozen=True, slots=True)
class Decision:
    status: AmdStatus  # HUMAN, MACHINE or NOTSURE
    cause: str  # e.g. SHORTGREETING-0.8, LONGGREETING-2.6, BEEP, WORDS, INITIALSILENCE
    at: float  # when it was decided
    beep: bool = False  # the greeting's beep has been heard: speak now
    greeting_end: float | None = None  # the last voice heard before deciding


class MachineDetector:
    def __init__(self, start: float, config: DetectConfig | None = None) -> None:
        self.config = config or DetectConfig()
        self.start = start
        self.decision: Decision | None = None
        self._beep = BeepDetector(RATE)
        self._peak = 0.0
        self._run = 0.0  # length of the voiced run in progress
        self._vouched = False  # the VAD heard speech somewhere in this run
        # The line's noise floor starts where it may not push the silence level up.
        self._floor = self._floor_min = self.config.silence_level / self.config.noise_ratio
        self._greeting: float | None = None  # when the greeting began
        self._last_voice: float | None = None  # end of the last voiced frame
        self._now = start

    @property
    def greeting_end(self) -> float | None:
        return self._last_voice

    def audio(self, t: float, pcm: bytes, prob: float) -> Decision | None:
        """One frame (8 kHz s16le) received at `t`, with the VAD's speech probability."""
        if self.decision is not None:
            return None
        cfg = self.config
        duration = len(pcm) / (2 * RATE)
        end = t + duration
        self._now = max(self._now, end)
        if self._beep.feed(pcm):
            return self._decide(AmdStatus.MACHINE, "BEEP", end, beep=True)
        level = rms(pcm)
        # The line's noise floor: follows quiet frames down at once, louder ones slowly.
        self._floor = max(self._floor_min, level if level < self._floor
                          else self._floor + 0.002 * (level - self._floor))
        voiced = level >= max(cfg.silence_level, cfg.noise_ratio * self._floor,
                              cfg.tail_ratio * self._peak)
        if voiced:
            self._run += duration
            self._vouched = self._vouched or prob >= cfg.vad_floor
            if self._vouched:
                self._peak = max(self._peak, level)
            if self._greeting is None and self._run >= cfg.onset_s and self._vouched:
                self._greeting = end - self._run
            if self._greeting is not None:
                self._last_voice = end
                span = end - self._greeting
                if span > cfg.max_human_greeting_s:
                    return self._decide(AmdStatus.MACHINE, f"LONGGREETING-{span:.1f}", end)
        else:
            self._run, self._vouched = 0.0, False
        return self.tick(end)

    def heard(self, text: str, at: float) -> Decision | None:
        """A transcript of the greeting so far (provisional ones too)."""
        if self.decision is None and machine_words(text):
            return self._decide(AmdStatus.MACHINE, "WORDS", max(at, self._now))
        return None

    def tick(self, now: float) -> Decision | None:
        """Time passes (with or without audio)."""
        if self.decision is not None:
            return None
        cfg = self.config
        self._now = now = max(self._now, now)
        if self._greeting is None:
            if now - self.start >= cfg.initial_silence_s:
                return self._decide(AmdStatus.NOTSURE, "INITIALSILENCE", now)
            return None
        last = self._last_voice
        assert last is not None
        span = last - self._greeting
        wait = cfg.after_greeting_s if span <= cfg.short_greeting_s \
            else cfg.after_long_greeting_s
        if now - last >= wait:  # (silence suppression sends no frames: time decides)
            return self._decide(AmdStatus.HUMAN, f"SHORTGREETING-{span:.1f}", now)
        if now - self.start >= cfg.total_s:
            return self._decide(AmdStatus.NOTSURE, "TOOLONG", now)
        return None

    def _decide(self, status: AmdStatus, cause: str, at: float, *,
                beep: bool = False) -> Decision:
        self.decision = Decision(status, cause, at, beep, self._last_voice)
        return self.decision
