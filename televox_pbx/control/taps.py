"""Live transcript lines of a call, as `televox call` prints them: what the agent says
(as it is synthesized) and what the callee said (as it is transcribed).

The standalone CLI taps its own App's engines. The daemon's engines serve every call, so
there the tap is per call: a session factory that wraps the engines of each session it
creates with that call's id, and a registry that sends each line to whoever follows it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from televox_pbx.voice.interfaces import AudioChunk, Stt, Transcript, Tts
from televox_pbx.voice.session import Engines, VoiceSession
from televox_pbx.voice.session_factory import VoiceSessionFactory

Say = Callable[[str, str], None]  # (speaker "agent" | "callee", text)


class _TappedStt:
    def __init__(self, inner: Stt, say: Say) -> None:
        self._inner = inner
        self._say = say

    async def transcribe(self, audio: AudioChunk) -> Transcript:
        result = await self._inner.transcribe(audio)
        self._say("callee", result.text)
        return result


class _TappedTts:
    def __init__(self, inner: Tts, say: Say) -> None:
        self._inner = inner
        self._say = say
        self.sample_rate = inner.sample_rate

    def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        self._say("agent", text)
        return self._inner.synthesize(text)


def tapped(engines: Engines, say: Say) -> Engines:
    return Engines(vad=engines.vad, stt=_TappedStt(engines.stt, say), llm=engines.llm,
                   tts=_TappedTts(engines.tts, say), turn=engines.turn)


class TranscriptTaps:
    """Lines per call id, for whoever follows that call. A call is followed only once its
    id is known (after the Originate), so the first lines of calls nobody follows yet are
    kept, a few per call for a few recent calls, and replayed to a late follower."""

    def __init__(self, early_calls: int = 16, early_lines: int = 8) -> None:
        self._listeners: dict[str, Say] = {}
        self._early: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()
        self._early_calls = early_calls
        self._early_lines = early_lines

    def follow(self, call_id: str, say: Say) -> Callable[[], None]:
        """Send this call's lines to `say` (the kept ones first); returns the unfollow."""
        key = call_id.lower()
        for speaker, text in self._early.pop(key, []):
            say(speaker, text)
        self._listeners[key] = say

        def unfollow() -> None:
            if self._listeners.get(key) is say:
                del self._listeners[key]
        return unfollow

    def say(self, call_id: str, speaker: str, text: str) -> None:
        listener = self._listeners.get(call_id)
        if listener is not None:
            listener(speaker, text)
            return
        lines = self._early.setdefault(call_id, [])
        self._early.move_to_end(call_id)
        if len(lines) < self._early_lines:
            lines.append((speaker, text))
        while len(self._early) > self._early_calls:
            self._early.popitem(last=False)


class TappingFactory(VoiceSessionFactory):
    """The daemon's session factory, with each session's STT and TTS reporting to `taps`
    under its call id."""

    def __init__(self, inner: VoiceSessionFactory, taps: TranscriptTaps) -> None:
        super().__init__(inner.engines, inner.ports, inner.clock, inner.config)
        self.taps = taps

    def create(self, *args: Any, **kw: Any) -> VoiceSession:
        call_id = str(kw.get("call_id", "")).lower()
        shared = self.engines
        # create() only builds the session (no await), so nothing else sees the swap.
        self.engines = tapped(shared, partial(self.taps.say, call_id))
        try:
            return super().create(*args, **kw)
        finally:
            self.engines = shared
