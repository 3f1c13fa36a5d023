"""One small interface per engine. Sessions get engines through their constructor.

Audio inside the voice package is 16-bit signed little-endian mono PCM (`bytes`) with an
explicit sample rate; `np.ndarray` float32 is used only inside engine adapters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class AudioChunk:
    pcm: bytes  # s16le mono
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


class Vad(Protocol):
    """Frame-level speech probability. Stateless enough to be shared; create one per call
    with `new_stream()` when state is needed."""

    sample_rate: int  # the rate `speech_prob` expects (8000 or 16000)

    def new_stream(self) -> VadStream: ...


class VadStream(Protocol):
    def speech_prob(self, pcm: bytes) -> float:
        """Probability that this chunk (any length, typically 20-32 ms) contains speech."""


@dataclass(frozen=True, slots=True)
class Transcript:
    """`no_speech_prob` and `avg_logprob` are the decoder's own doubts (Whisper's
    probability that the clip held no speech, and its mean log-probability per token),
    for telling noise from words; None when the engine gives none."""

    text: str
    confidence: float | None = None
    no_speech_prob: float | None = None
    avg_logprob: float | None = None


class Stt(Protocol):
    async def transcribe(self, audio: AudioChunk) -> Transcript:
        """Full transcription of one utterance (any sample rate; the engine resamples)."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LlmDelta:
    """One streamed piece: text to speak, or a tool call (complete, already validated)."""

    text: str = ""
    tool_call: ToolCall | None = None


class Llm(Protocol):
    def stream(self, messages: Sequence[ChatMessage],
               tools_schema: dict[str, Any] | None = None) -> AsyncIterator[LlmDelta]:
        """Stream the reply. Cancelling the iterator must stop generation promptly.
        Engines should compute a piece only when it is asked for: the session stops
        asking while it synthesizes the first clause, to give TTS the CPU."""


class Tts(Protocol):
    sample_rate: int

    def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        """Audio for `text`, yielded as soon as each piece is ready."""


class TurnModel(Protocol):
    """End of turn from the sound of the utterance (not from silence alone)."""

    async def complete(self, audio: AudioChunk) -> float:
        """P(the speaker has finished) for an utterance that ends in a pause."""
