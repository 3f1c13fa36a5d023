"""Reading what a call left behind: the stereo recording and the transcript."""

from __future__ import annotations

import re
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RATE = 8000
WINDOW_S = 0.02


@dataclass(frozen=True, slots=True)
class Recording:
    callee: np.ndarray  # left track, int16
    agent: np.ndarray  # right track

    @property
    def seconds(self) -> float:
        return len(self.agent) / RATE

    def loud(self, track: str, threshold: int = 800) -> np.ndarray:
        """Times (s) of 20 ms windows of a track whose RMS is above `threshold`."""
        x = (self.callee if track == "callee" else self.agent).astype(np.float64)
        n = int(RATE * WINDOW_S)
        frames = x[: len(x) // n * n].reshape(-1, n)
        rms = np.sqrt((frames ** 2).mean(axis=1)) if len(frames) else np.zeros(0)
        return np.nonzero(rms > threshold)[0] * WINDOW_S

    def tone_at(self, track: str, freq: float, min_s: float = 0.2) -> float | None:
        """Start (s) of the first stretch of at least `min_s` dominated by `freq`."""
        x = (self.callee if track == "callee" else self.agent).astype(np.float64)
        n = int(RATE * WINDOW_S)
        run = 0
        for i in range(len(x) // n):
            frame = x[i * n:(i + 1) * n]
            if np.sqrt((frame ** 2).mean()) < 500:
                run = 0
                continue
            spectrum = np.abs(np.fft.rfft(frame * np.hanning(n), 4 * n))
            peak = np.fft.rfftfreq(4 * n, 1 / RATE)[int(np.argmax(spectrum))]
            run = run + 1 if abs(peak - freq) < 60 else 0
            if run * WINDOW_S >= min_s:
                return (i - run + 1) * WINDOW_S
        return None


def read_recording(path: Path) -> Recording:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, RATE, 2), path
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    return Recording(callee=data[:, 0].copy(), agent=data[:, 1].copy())


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


def says(text: str, phrase: str) -> bool:
    """`phrase` appears in `text` word for word (case and punctuation aside)."""
    want, have = " ".join(words(phrase)), " ".join(words(text))
    return f" {want} " in f" {have} "


def turns_of(turns: list[dict[str, Any]], speaker: str) -> list[dict[str, Any]]:
    return [t for t in turns if t["speaker"] == speaker and str(t["text"]).strip()]


def show(turns: list[dict[str, Any]]) -> str:
    """A transcript, one turn a line, for assertion messages."""
    return "\n".join(f"  {t['speaker']}{' (cut)' if t['interrupted'] else ''}: {t['text']}"
                     for t in turns)


def assert_message_after_beep(rec: Recording, turns: list[dict[str, Any]]) -> str:
    """A voicemail message was left, it started after the greeting's beep (never over the
    greeting) and asks for a call back. Returns the message's text."""
    beep_at = rec.tone_at("callee", 1000.0)
    assert beep_at is not None, "no beep in the recording"
    agent = rec.loud("agent")
    assert len(agent) * 0.02 >= 2.0, "no message was left"
    assert agent.min() >= beep_at + 0.3, (
        f"the agent spoke at {agent.min():.2f} s, over the greeting (beep at {beep_at:.2f} s)")
    [message] = turns_of(turns, "agent")
    assert says(message["text"], "please call us back"), show(turns)
    return str(message["text"])


def answered(turns: list[dict[str, Any]], question: str, next_line: str) -> bool:
    """The agent began to speak after the callee's turn saying `question` ended and before
    the callee's turn saying `next_line` began (times as stored: ISO strings, UTC)."""
    callee = turns_of(turns, "callee")
    asked = next((t for t in callee if says(t["text"], question)), None)
    then = next((t for t in callee if says(t["text"], next_line)), None)
    if asked is None:
        return False
    return any(asked["ended_at"] <= t["started_at"]
               and (then is None or t["started_at"] < then["started_at"])
               for t in turns_of(turns, "agent"))
