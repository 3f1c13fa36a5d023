"""Sans-IO turn detection: speech onset, end of utterance, barge-in, echo and beeps.

Time always comes from the caller (the injected clock). End of utterance is decided by
`tick()` as well as `feed()`, because a far end with silence suppression sends no frames
at all while the callee is quiet: the silence must be noticed by a timer, not by audio.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum

import numpy as np


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    threshold: float = 0.5  # VAD probability that counts as speech
    onset_s: float = 0.06  # speech this long starts an utterance
    # Quiet this long ends it. Measured from where the voice's energy ends (see
    # tail_level_ratio), so 0.7 s here is what 0.5 s of VAD silence plus Silero's ~0.2 s
    # hangover was: a comma pause ("Yes, | Tuesday at three") must not end the turn.
    # Latency does not wait on it: the turn starts provisionally at the first pause.
    silence_s: float = 0.7
    # While the agent is talking the callee must be clearer and longer to interrupt, so line
    # noise and the agent's own echo do not cut it off.
    barge_in_threshold: float = 0.7
    barge_in_onset_s: float = 0.12
    # Incoming audio quieter than this fraction of the loudest frame we played in the last
    # echo window is taken to be our own voice coming back. 0.35 is -9 dB: hybrid echo
    # return loss is usually 10-30 dB, and a callee talking over us is rarely 9 dB below
    # our synthesized voice. Tune per trunk.
    echo_ratio: float = 0.35
    echo_window_s: float = 0.3
    # ...and only if it also correlates this well with what we played (see EchoGate).
    # None: the level alone decides (a quiet callee over the agent is then lost).
    echo_correlation: float | None = 0.5
    # Silero VAD keeps saying "speech" for ~0.15-0.25 s after the voice has died away (its
    # LSTM's hangover). Inside an utterance, a chunk this far below the utterance's loudest
    # (0.03 = -30 dB) counts as silence, so the end is timed where the energy ends. At
    # -20 dB a final fricative was cut off ("works" heard as "work"). Line noise sits well
    # below -30 dB of speech. None: trust the VAD alone.
    tail_level_ratio: float | None = 0.03
    # Audio this loud (-40 dB of the utterance's loudest) after the point a provisional
    # turn took its audio means the callee's last sound was still fading in (a final "s"):
    # the turn is redone on the whole utterance rather than answer a clipped word.
    clipped_level_ratio: float = 0.01
    # End of turn from a model (Smart Turn, when the engines have one), beside the
    # silence timer: asked once the callee has paused `turn_check_after_s`, a turn it
    # finds complete (P >= turn_threshold) ends after `turn_complete_s` of quiet, one it
    # finds unfinished (a pause mid-sentence) only after `turn_incomplete_s`. Chosen on
    # bench/bench_endpoint.py (Piper speech at 8 kHz with mid-sentence pauses): against
    # the 0.7 s timer alone, premature cut-offs fell from 66 % to 33 % and the median
    # endpoint delay from 700 to 360 ms; the cost is a tail (a quarter of turns wait
    # 1.2 s). The model is sure too often at a comma: below 0.9 it cut off as often as
    # the timer.
    turn_check_after_s: float = 0.2
    turn_threshold: float = 0.9
    turn_complete_s: float = 0.3
    turn_incomplete_s: float = 1.2


class Edge(Enum):
    START = "start"
    END = "end"


@dataclass(frozen=True, slots=True)
class SpeechEdge:
    edge: Edge
    at: float  # when speech began (START) or when the last speech was heard (END)


class Endpointer:
    """Feed VAD probabilities with their time; get START/END edges of callee speech."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self._candidate_since: float | None = None
        self._speaking = False
        self._last_speech = 0.0
        self._peak = 0.0  # loudest chunk of the current utterance
        self.silence_s = config.silence_s  # quiet that ends the utterance now (see hold)

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def peak(self) -> float:
        """Level (RMS) of the loudest chunk of the current (or last) utterance."""
        return self._peak

    @property
    def last_speech(self) -> float:
        """End of the last speech heard in the current (or last) utterance."""
        return self._last_speech

    @property
    def pending_onset(self) -> float | None:
        """Start time of speech not yet long enough to count."""
        return self._candidate_since

    def hold(self, silence_s: float) -> None:
        """Make the current pause end the utterance after `silence_s` of quiet instead (an
        end-of-turn verdict on it); speech that goes on restores the default."""
        self.silence_s = silence_s

    def feed(self, prob: float, t: float, duration: float, *, agent_playing: bool,
             level: float | None = None) -> SpeechEdge | None:
        """One chunk of `duration` seconds that started at `t`; `level` is its RMS."""
        cfg = self.config
        threshold = cfg.barge_in_threshold if agent_playing else cfg.threshold
        onset = cfg.barge_in_onset_s if agent_playing else cfg.onset_s
        end_t = t + duration
        if prob >= threshold:
            if self._speaking:
                if level is not None and cfg.tail_level_ratio is not None:
                    self._peak = max(self._peak, level)
                    if level < self._peak * cfg.tail_level_ratio:
                        return self.tick(end_t)  # the VAD's hangover, not a voice
                self._last_speech = end_t
                self.silence_s = cfg.silence_s
                return None
            if self._candidate_since is None:
                self._candidate_since = t
                self._peak = 0.0
            self._peak = max(self._peak, level or 0.0)
            if end_t - self._candidate_since >= onset - 1e-9:
                self._speaking = True
                self.silence_s = cfg.silence_s
                self._last_speech = end_t
                start, self._candidate_since = self._candidate_since, None
                return SpeechEdge(Edge.START, start)
            return None
        self._candidate_since = None
        return self.tick(end_t)

    def tick(self, now: float) -> SpeechEdge | None:
        if self._speaking and now - self._last_speech >= self.silence_s - 1e-9:
            self._speaking = False
            return SpeechEdge(Edge.END, self._last_speech)
        return None

    def reset(self) -> None:
        self._candidate_since = None
        self._speaking = False


def rms(pcm: bytes) -> float:
    if len(pcm) < 2:
        return 0.0
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32)
    return float(math.sqrt(float(np.mean(samples * samples))))


class EchoGate:
    """Tells our own voice coming back (line echo) from the callee.

    A chunk much quieter than what we just played may be echo. With the played audio at
    hand (`played(..., pcm)`), it counts as echo only if the last ~100 ms heard also
    look like it: a normalized cross-correlation of at least `echo_correlation` at some
    delay within the echo window. A callee who talks over us quietly (phone levels are
    often 10-20 dB under our synthesized voice) does not look like our audio, and is
    heard instead of being thrown away with the echo."""

    def __init__(self, config: EndpointConfig, rate: int = 8000) -> None:
        self.config = config
        self.rate = rate
        self._played: deque[tuple[float, float]] = deque()  # (play time, rms)
        self._out: deque[tuple[float, bytes]] = deque()  # (play time, pcm), silence too
        self._in: deque[bytes] = deque()  # the last ~100 ms heard
        self._in_bytes = 0

    def played(self, t: float, level: float, pcm: bytes | None = None) -> None:
        if level > 0:
            self._played.append((t, level))
        if pcm is not None:
            self._out.append((t, pcm))
        self._forget(t)

    def _forget(self, t: float) -> None:
        """Drop what is too old to be echoing back at `t`."""
        window = self.config.echo_window_s
        while self._played and self._played[0][0] < t - window:
            self._played.popleft()
        while self._out and self._out[0][0] < t - window - _ECHO_LOOK_S:
            self._out.popleft()

    def heard(self, pcm: bytes) -> None:
        """Every chunk heard, in order (the correlation looks at the last ~100 ms)."""
        self._in.append(pcm)
        self._in_bytes += len(pcm)
        while self._in_bytes - len(self._in[0]) >= _ECHO_LOOK_S * self.rate * 2:
            self._in_bytes -= len(self._in.popleft())

    def is_echo(self, t: float, pcm: bytes) -> bool:
        self._forget(t)
        loudest = max((lvl for when, lvl in self._played if when <= t + 0.02), default=0.0)
        if loudest <= 0.0 or rms(pcm) >= self.config.echo_ratio * loudest:
            return False
        least = self.config.echo_correlation
        if least is None or not self._out or not self._in:
            return True
        return self._resemblance(t) >= least

    def _resemblance(self, t: float) -> float:
        """Best normalized cross-correlation of the audio heard lately with the audio
        played up to `t`, over the delays the reference spans."""
        x = _samples(b"".join(self._in))
        y = _samples(b"".join(p for when, p in self._out if when <= t + 0.02))
        n = len(x)
        if n == 0 or len(y) < n:
            return 0.0
        size = 1 << (len(y) + n - 1).bit_length()
        corr = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size)), size)
        corr = corr[: len(y) - n + 1]
        sq = np.concatenate(([0.0], np.cumsum(y * y)))
        energy = sq[n:] - sq[:-n]
        denom = np.sqrt(np.maximum(energy, 0.0) * float(np.dot(x, x))) + 1e-9
        return float(np.max(np.abs(corr) / denom))


_ECHO_LOOK_S = 0.1


def _samples(pcm: bytes) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    return np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)


class BeepDetector:
    """Finds a voicemail beep: one tone (400-2500 Hz) holding nearly all the energy, at one
    pitch, for at least `min_s`. Reports once, when the tone ends.

    Speech passes looser tests: in a real greeting (tests/fixtures/voicemail-greeting-
    asterisk22.wav) a vowel's strongest harmonic held 60-85% of the energy for 0.18 s while
    it glided 567 -> 348 Hz, and a beep test of 60% purity with the pitch allowed to drift
    100 Hz a frame fired 0.54 s into the greeting, 3.4 s before the beep. The beep itself
    holds ~100% in its peak and does not move. So: 95% purity, and every frame within
    `max_drift_hz` of the run's first frame (not of the previous one)."""

    def __init__(self, sample_rate: int = 8000, min_s: float = 0.15,
                 purity: float = 0.95, floor_rms: float = 300.0,
                 max_drift_hz: float = 25.0) -> None:
        self.sample_rate = sample_rate
        self.min_s = min_s
        self.purity = purity
        self.floor_rms = floor_rms
        self.max_drift_hz = max_drift_hz
        self._tone_s = 0.0
        self._freq: float | None = None

    def _tone(self, pcm: bytes) -> float | None:
        x = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
        if len(x) < 64 or rms(pcm) < self.floor_rms:
            return None
        spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
        peak = int(np.argmax(spec))
        if not 0 < peak < len(spec) - 1:
            return None
        band = float(spec[peak - 2: peak + 3].sum())
        if band < self.purity * float(spec.sum()):
            return None
        # Where between bins the tone lies (parabola through the log power of the peak
        # and its neighbours): a steady beep's estimate moves by a few Hz at most.
        a, b, c = np.log(spec[peak - 1: peak + 2] + 1e-12)
        curve = a - 2.0 * b + c
        offset = 0.5 * (a - c) / curve if curve < 0 else 0.0
        freq = (peak + float(offset)) * self.sample_rate / len(x)
        return freq if 400.0 <= freq <= 2500.0 else None

    def feed(self, pcm: bytes) -> bool:
        """True on the first chunk after a long enough tone stopped."""
        freq = self._tone(pcm)
        duration = len(pcm) / 2 / self.sample_rate
        if freq is not None and (self._freq is None
                                 or abs(freq - self._freq) <= self.max_drift_hz):
            if self._freq is None:
                self._freq = freq  # the run's pitch: later frames may not wander off it
            self._tone_s += duration
            return False
        done = self._tone_s >= self.min_s
        self._tone_s = 0.0
        self._freq = None
        if freq is not None and not done:
            self._freq, self._tone_s = freq, duration  # a new steady tone may start here
        return done
