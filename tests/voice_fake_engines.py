"""Scripted fake engines for tests: no model is loaded; time passes only on a FakeClock.

Re-exported by tests/voice_fakes.py, with the fake call and the timeline helper.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from televox_pbx.clock import FakeClock
from televox_pbx.voice.endpointing import rms
from televox_pbx.voice.interfaces import (
    AudioChunk,
    ChatMessage,
    LlmDelta,
    ToolCall,
    Transcript,
)

RATE = 8000


def tone(seconds: float, amplitude: float = 8000.0, freq: float = 220.0,
         rate: int = RATE) -> bytes:
    """A sine tone standing in for speech (the fake VAD hears loudness, not words)."""
    n = round(seconds * rate)
    t = np.arange(n, dtype=np.float64) / rate
    return (amplitude * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()


def scale(pcm: bytes, gain: float) -> bytes:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) * gain
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


# --- engines -------------------------------------------------------------------------


class LoudnessVadStream:
    def __init__(self, threshold_rms: float) -> None:
        self.threshold_rms = threshold_rms

    def speech_prob(self, pcm: bytes) -> float:
        return 0.95 if rms(pcm) >= self.threshold_rms else 0.02


@dataclass
class LoudnessVad:
    """Anything louder than `threshold_rms` is speech; so echo is 'speech' unless gated."""

    threshold_rms: float = 300.0
    sample_rate: int = RATE

    def new_stream(self) -> LoudnessVadStream:
        return LoudnessVadStream(self.threshold_rms)


@dataclass
class ScriptedStt:
    """Returns the scripted transcripts in order ('' once they run out)."""

    texts: list[str] = field(default_factory=list)
    clock: FakeClock | None = None
    delay_s: float = 0.0
    heard: list[AudioChunk] = field(default_factory=list)

    async def transcribe(self, audio: AudioChunk) -> Transcript:
        self.heard.append(audio)
        if self.clock is not None and self.delay_s:
            await self.clock.sleep(self.delay_s)
        return Transcript(self.texts.pop(0) if self.texts else "")


Reply = str | Sequence[str | ToolCall]


@dataclass
class ScriptedLlm:
    """Each call to `stream` plays the next scripted reply: a string (streamed word by
    word) or a list of text pieces and ToolCalls. Records the messages it was given."""

    replies: list[Reply] = field(default_factory=list)
    clock: FakeClock | None = None
    first_token_s: float = 0.0
    per_token_s: float = 0.0
    calls: list[list[ChatMessage]] = field(default_factory=list)
    schemas: list[dict[str, Any] | None] = field(default_factory=list)
    prefills: list[list[ChatMessage]] = field(default_factory=list)
    shared_prefills: list[list[ChatMessage]] = field(default_factory=list)
    cancelled: int = 0
    pulled_at: list[float] = field(default_factory=list)  # clock time of each later request

    async def prefill(self, messages: Sequence[ChatMessage],
                      tools_schema: dict[str, Any] | None = None, *,
                      shared: Sequence[ChatMessage] = ()) -> None:
        self.prefills.append(list(messages))
        self.shared_prefills.append(list(shared))

    async def _wait(self, seconds: float) -> None:
        if self.clock is not None and seconds:
            await self.clock.sleep(seconds)
        else:
            await asyncio.sleep(0)

    async def stream(self, messages: Sequence[ChatMessage],
                     tools_schema: dict[str, Any] | None = None) -> AsyncIterator[LlmDelta]:
        self.calls.append(list(messages))
        self.schemas.append(tools_schema)
        reply: Reply = self.replies.pop(0) if self.replies else "Okay."
        parts: list[str | ToolCall] = (
            [w + " " for w in reply.split(" ")] if isinstance(reply, str) else list(reply))
        try:
            await self._wait(self.first_token_s)
            for i, part in enumerate(parts):
                if i:
                    if self.clock is not None:  # the consumer asked for the next piece
                        self.pulled_at.append(self.clock.monotonic())
                    await self._wait(self.per_token_s)
                if isinstance(part, ToolCall):
                    yield LlmDelta(tool_call=part)
                else:
                    yield LlmDelta(text=part)
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise


@dataclass
class ScriptedTts:
    """Audio of `seconds_per_char` per character, as one tone chunk per call."""

    sample_rate: int = RATE
    seconds_per_char: float = 0.05
    amplitude: float = 8000.0
    clock: FakeClock | None = None
    delay_s: float = 0.0
    spoken: list[str] = field(default_factory=list)
    renders: list[tuple[float, float]] = field(default_factory=list)  # start, end

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        self.spoken.append(text)
        if self.clock is not None and self.delay_s:
            start = self.clock.monotonic()
            await self.clock.sleep(self.delay_s)
            self.renders.append((start, self.clock.monotonic()))
        yield AudioChunk(tone(len(text) * self.seconds_per_char, self.amplitude,
                              rate=self.sample_rate), self.sample_rate)


@dataclass
class ScriptedTurn:
    """An end-of-turn model that answers the scripted P(complete) in order (`default`
    once they run out), after `delay_s` on the clock."""

    probs: list[float] = field(default_factory=list)
    default: float = 0.9
    clock: FakeClock | None = None
    delay_s: float = 0.0
    asked: list[AudioChunk] = field(default_factory=list)

    async def complete(self, audio: AudioChunk) -> float:
        self.asked.append(audio)
        if self.clock is not None and self.delay_s:
            await self.clock.sleep(self.delay_s)
        return self.probs.pop(0) if self.probs else self.default
